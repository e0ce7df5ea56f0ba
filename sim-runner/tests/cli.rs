//! The built binary, end to end: exit statuses, what goes to standard
//! error, and the shape of `test` output. Only what the command line itself
//! controls is checked here; the engine's verdicts are tested with it.

mod common;

use common::{bin, stderr, stdout};
use std::fs;
use std::path::PathBuf;

fn scratch(name: &str) -> PathBuf {
    common::scratch("cli-tests", name)
}

const SCENARIO: &str = r#"scenario "ok" { cpus 1; expect clean; }
ULONG X;
thread T { X = 1; }
"#;

#[test]
fn run_unreadable_file_is_rejected_with_its_name() {
    let dir = scratch("unreadable");
    let missing = dir.join("missing.sim");
    let o = bin().arg("run").arg(&missing).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!("error: cannot read {}: ", missing.display())),
        "{err}"
    );
    assert!(stdout(&o).is_empty());
}

#[test]
fn run_directory_is_rejected() {
    let dir = scratch("run-dir");
    let o = bin().arg("run").arg(&dir).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("error: cannot read"), "{}", stderr(&o));
}

#[test]
fn run_parallel_mode_reports_mode_and_refuses_deterministic_options() {
    let dir = scratch("parallel");
    let file = dir.join("ok.sim");
    fs::write(&file, SCENARIO).unwrap();
    let o = bin()
        .args(["run", "--mode", "parallel", "--format", "json"])
        .arg(&file)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON report");
    assert_eq!(v["mode"], "parallel");
    assert_eq!(v["seed"], serde_json::Value::Null);
    assert_eq!(v["strategy"], serde_json::Value::Null);
    assert_eq!(v["depth"], serde_json::Value::Null);
    assert!(v["parallel"]["processors"]
        .as_array()
        .is_some_and(|p| !p.is_empty()));
    for (args, needle) in [
        (
            &["--mode", "parallel", "--strategy", "pct"][..],
            "--strategy does not apply",
        ),
        (
            &["--mode", "parallel", "--depth", "2"][..],
            "--depth does not apply",
        ),
        (
            &["--timeout", "10ms"][..],
            "--timeout is only for --mode parallel",
        ),
        (
            &["--mode", "parallel", "--timeout", "10xs"][..],
            "not a duration",
        ),
    ] {
        let o = bin().arg("run").args(args).arg(&file).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
        assert!(stdout(&o).is_empty());
    }
}

/// Parallel mode: `--seed` does not apply (contract: only `--strategy` and
/// `--depth` are errors), so it is ignored with a warning; `test --seeds N`
/// runs a file N times and says runs, with no seed in the JSON.
#[test]
fn parallel_mode_ignores_seed_with_a_warning_and_counts_runs() {
    let dir = scratch("parallel-seed");
    let file = dir.join("ok.sim");
    fs::write(&file, SCENARIO).unwrap();
    let o = bin()
        .args([
            "run", "--mode", "parallel", "--seed", "5", "--format", "json",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("--seed does not apply in parallel mode and is ignored"));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON report");
    assert_eq!(v["seed"], serde_json::Value::Null);
    let o = bin()
        .args(["test", "--mode", "parallel", "--seeds", "3"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("clean (all 3 runs)"), "{}", stdout(&o));
    let o = bin()
        .args([
            "test", "--mode", "parallel", "--seeds", "2", "--format", "json",
        ])
        .arg(&file)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON");
    assert_eq!(v["files"][0]["seed"], serde_json::Value::Null, "{v}");
}

#[test]
fn run_trace_to_an_unwritable_path_is_rejected() {
    let dir = scratch("trace");
    let file = dir.join("ok.sim");
    fs::write(&file, SCENARIO).unwrap();
    let out = dir.join("no-such-dir").join("t.json");
    let o = bin()
        .arg("run")
        .arg(&file)
        .arg("--trace")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).starts_with(&format!("error: cannot write trace {}: ", out.display())),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).is_empty());
    assert!(!out.exists());
}

#[test]
fn run_bad_option_values_exit_2() {
    for args in [
        &["run", "x.sim", "--mode", "fast"][..],
        &["run", "x.sim", "--format", "xml"][..],
        &["run", "x.sim", "--seed", "minus-one"][..],
        &["frobnicate"][..],
    ] {
        let o = bin().args(args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn run_prints_a_text_report_or_json_and_exits_by_expectation() {
    let dir = scratch("run-ok");
    let file = dir.join("ok.sim");
    fs::write(&file, SCENARIO).unwrap();

    let text = bin()
        .arg("run")
        .arg(&file)
        .args(["--seed", "0x10"])
        .output()
        .unwrap();
    let code = text.status.code().unwrap();
    assert!(code == 0 || code == 1, "{}", stderr(&text));
    let out = stdout(&text);
    assert!(out.lines().next().unwrap().starts_with("*****"), "{out}");
    assert!(out.contains("EXPECTATION: "), "{out}");
    assert_eq!(out.contains("— met"), code == 0, "{out}");

    let json = bin()
        .arg("run")
        .arg(&file)
        .args(["--format", "json", "--seed", "16"])
        .output()
        .unwrap();
    assert_eq!(json.status.code(), Some(code));
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["seed"], 16);
    assert_eq!(value["expectation_met"], code == 0);
    for key in [
        "scenario", "mode", "outcome", "bugcheck", "warnings", "output", "locks",
    ] {
        assert!(value.get(key).is_some(), "missing {key}");
    }
}

#[test]
fn run_is_byte_for_byte_repeatable() {
    let dir = scratch("repeat");
    let file = dir.join("ok.sim");
    fs::write(&file, SCENARIO).unwrap();
    let a = bin().arg("run").arg(&file).output().unwrap();
    let b = bin().arg("run").arg(&file).output().unwrap();
    assert_eq!(a.stdout, b.stdout);
}

#[test]
fn test_on_an_empty_directory_finds_nothing() {
    let dir = scratch("empty");
    fs::write(dir.join("notes.txt"), "not a scenario").unwrap();
    let o = bin().arg("test").arg(&dir).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "0 passed, 0 failed\n");
    assert!(
        stderr(&o).contains("no .sim scenario found"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn test_missing_path_exits_2() {
    let dir = scratch("missing-path");
    let o = bin().arg("test").arg(dir.join("nope")).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
}

#[test]
fn test_prints_one_sorted_line_per_scenario_then_the_tally() {
    let dir = scratch("tree");
    fs::create_dir_all(dir.join("rules/nested")).unwrap();
    fs::create_dir_all(dir.join("tutorial")).unwrap();
    for f in ["tutorial/b.sim", "rules/nested/c.sim", "rules/a.sim"] {
        fs::write(dir.join(f), SCENARIO).unwrap();
    }
    fs::write(dir.join("rules/readme.md"), "ignored").unwrap();

    let o = bin().arg("test").arg(&dir).output().unwrap();
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");

    let expected_paths = ["rules/a.sim", "rules/nested/c.sim", "tutorial/b.sim"];
    let mut passed = 0;
    for (line, rel) in lines.iter().zip(expected_paths) {
        let (status, rest) = line.split_at(4);
        assert!(status == "PASS" || status == "FAIL", "{line}");
        passed += usize::from(status == "PASS");
        let path = dir.join(rel).display().to_string();
        assert!(rest.starts_with(&format!("  {path}  ")), "{line}");
    }
    let tally = format!("{passed} passed, {} failed", 3 - passed);
    assert_eq!(lines[3], tally);
    assert_eq!(o.status.code(), Some(if passed == 3 { 0 } else { 1 }));
}

#[test]
fn test_accepts_files_and_deduplicates() {
    let dir = scratch("files");
    let file = dir.join("one.sim");
    fs::write(&file, SCENARIO).unwrap();
    let o = bin().arg("test").arg(&file).arg(&dir).output().unwrap();
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.lines().last().unwrap().ends_with(" failed"), "{out}");
}

#[test]
fn verbose_logging_goes_to_stderr_only() {
    let dir = scratch("verbose");
    let file = dir.join("ok.sim");
    fs::write(&file, SCENARIO).unwrap();
    let quiet = bin().arg("run").arg(&file).output().unwrap();
    let loud = bin().arg("-vv").arg("run").arg(&file).output().unwrap();
    assert_eq!(quiet.stdout, loud.stdout);
    assert!(stderr(&quiet).is_empty(), "{}", stderr(&quiet));
    assert!(
        stderr(&loud).contains("loading scenario"),
        "{}",
        stderr(&loud)
    );
}

#[test]
fn test_with_seeds_runs_every_seed_and_names_the_first_failing_one() {
    let racy = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios/explore/lost-update-race.sim");
    let one = bin().arg("test").arg(&racy).output().unwrap();
    assert_eq!(one.status.code(), Some(0), "{}", stdout(&one));
    let many = bin()
        .args(["test", "--seeds", "40"])
        .arg(&racy)
        .output()
        .unwrap();
    assert_eq!(many.status.code(), Some(1));
    let out = stdout(&many);
    assert!(out.contains("FAIL") && out.contains("seed 16:"), "{out}");
    assert!(out.trim_end().ends_with("0 passed, 1 failed"), "{out}");
    let zero = bin()
        .args(["test", "--seeds", "0"])
        .arg(&racy)
        .output()
        .unwrap();
    assert_eq!(zero.status.code(), Some(2), "--seeds 0 is rejected");
}
