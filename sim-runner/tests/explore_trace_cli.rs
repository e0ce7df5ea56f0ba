//! The built binary: `run --trace` and `explore`, end to end, on the
//! repository's explore scenarios.

mod common;

use common::{bin, stderr, stdout};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

fn scratch(name: &str) -> PathBuf {
    common::scratch("explore-trace-cli", name)
}

fn scenario(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(rel)
}

fn racy() -> PathBuf {
    scenario("explore/lost-update-race.sim")
}

fn fixed() -> PathBuf {
    scenario("explore/lost-update-fixed.sim")
}

/// The seed named on the first line of a failing exploration.
fn failing_seed(o: &Output) -> u64 {
    let out = stdout(o);
    let first = out.lines().next().unwrap_or_default();
    let rest = first
        .strip_prefix("seed ")
        .unwrap_or_else(|| panic!("no seed on the first line: {out}"));
    rest.split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn run_trace_writes_a_chrome_trace() {
    let dir = scratch("trace");
    let out = dir.join("t.json");
    let o = bin()
        .arg("run")
        .arg(scenario("tutorial/02-isr-dpc-synchronize.sim"))
        .arg("--trace")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("EXPECTATION"),
        "the report still prints"
    );
    let text = fs::read_to_string(&out).unwrap();
    let trace: serde_json::Value = serde_json::from_str(&text).unwrap();
    let events = trace["traceEvents"].as_array().expect("traceEvents");
    assert!(events
        .iter()
        .any(|e| e["ph"] == "X" && e["name"] == "ISR DeviceIsr"));
    assert!(events
        .iter()
        .any(|e| e["ph"] == "M" && e["args"]["name"] == "cpu 1"));
    assert_eq!(trace["displayTimeUnit"], "ns");

    // Same file and seed: same bytes.
    let again = dir.join("again.json");
    let o = bin()
        .arg("run")
        .arg(scenario("tutorial/02-isr-dpc-synchronize.sim"))
        .arg("--trace")
        .arg(&again)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(fs::read(&out).unwrap(), fs::read(&again).unwrap());
}

/// Waits, releases, timers and work items are instants of their own
/// categories; a blocked thread's slice ends when it blocks and a new one
/// starts when it runs again.
#[test]
fn run_trace_shows_waits_timers_and_work_items() {
    let dir = scratch("trace-objects");
    let mut names = vec![];
    for (file, i) in [
        ("language/event-synchronization-one-waiter.sim", 0),
        ("language/timer-periodic-dpc.sim", 1),
        ("language/work-item-from-dpc.sim", 2),
    ] {
        let out = dir.join(format!("t{i}.json"));
        let o = bin()
            .arg("run")
            .arg(scenario(file))
            .arg("--trace")
            .arg(&out)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{file}: {}", stderr(&o));
        let trace: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&out).unwrap()).unwrap();
        for e in trace["traceEvents"].as_array().expect("traceEvents") {
            if e["ph"] == "i" {
                names.push(format!("{} {}", e["cat"], e["name"]));
            }
        }
    }
    let has = |want: &str| names.iter().any(|n| n.contains(want));
    assert!(
        has("\"wait\" \"A waits for Ready\"") || has("\"wait\" \"B waits for Ready\""),
        "{names:?}"
    );
    assert!(has("released from Ready"), "{names:?}");
    assert!(has("\"timer\" \"timer Poll expired\""), "{names:?}");
    assert!(has("\"work_item\" \"work item W queued\""), "{names:?}");
}

/// `--trace-limit`: the trace stops at the limit with a mark and a
/// warning; the run, its report and its exit status are unchanged.
#[test]
fn run_trace_limit_cuts_the_trace_with_a_warning() {
    let dir = scratch("trace-limit");
    let file = scenario("regressions/periodic-interrupt-duration.sim");
    let out = dir.join("t.json");
    let full = bin()
        .args(["run", "--trace"])
        .arg(dir.join("full.json"))
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(full.status.code(), Some(0), "{}", stderr(&full));
    assert!(stderr(&full).is_empty(), "{}", stderr(&full));
    assert!(fs::metadata(dir.join("full.json")).unwrap().len() > 8192);
    let o = bin()
        .args(["run", "--trace-limit", "8K", "--trace"])
        .arg(&out)
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), stdout(&full), "the report is unchanged");
    let err = stderr(&o);
    assert!(
        err.starts_with("warning: the trace reached its 8 KiB limit at ")
            && err.ends_with(&format!(
                " µs of virtual time; later events are not in {}\n",
                out.display()
            )),
        "{err}"
    );
    let bytes = fs::read(&out).unwrap();
    assert!(bytes.len() <= 8192, "{}", bytes.len());
    let trace: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let events = trace["traceEvents"].as_array().unwrap();
    assert_eq!(events.last().unwrap()["name"], "trace truncated");

    for bad in ["100", "1.5M", "lots", "1T"] {
        let o = bin()
            .args(["run", "--trace-limit", bad, "--trace"])
            .arg(&out)
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{bad}");
        assert!(
            stderr(&o).contains("--trace-limit"),
            "{bad}: {}",
            stderr(&o)
        );
    }
    let o = bin()
        .args(["run", "--trace-limit", "1M"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "--trace-limit needs --trace");
}

#[test]
fn run_report_is_the_same_with_and_without_trace() {
    let dir = scratch("same-report");
    let file = scenario("rules/0xC4-0x1001-lock-order-cycle-bad.sim");
    let plain = bin()
        .args(["run", "--format", "json"])
        .arg(&file)
        .output()
        .unwrap();
    let traced = bin()
        .args(["run", "--format", "json", "--trace"])
        .arg(dir.join("t.json"))
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(plain.status.code(), traced.status.code());
    assert_eq!(stdout(&plain), stdout(&traced));
    let trace: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("t.json")).unwrap()).unwrap();
    assert!(trace["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["cat"] == "bugcheck" && e["name"] == "DRIVER_VERIFIER_DETECTED_VIOLATION"));
}

#[test]
fn explore_finds_the_race_and_run_reproduces_it() {
    let o = bin()
        .args(["explore", "--schedules", "300"])
        .arg(racy())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let seed = failing_seed(&o);
    let out = stdout(&o);
    assert!(
        out.lines()
            .next()
            .unwrap()
            .contains("breaks the expectation: expected clean, got assertion_failed"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "replay it: sim-runner run {} --seed {seed} --strategy pct --depth 3\n",
            racy().display()
        )),
        "{out}"
    );
    assert!(out.contains("ASSERT(Packets == 20) failed"), "{out}");

    let o = bin()
        .args([
            "run",
            "--seed",
            &seed.to_string(),
            "--strategy",
            "pct",
            "--depth",
            "3",
        ])
        .arg(racy())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("ASSERT(Packets == 20) failed"));

    // The header seed itself passes (so `test scenarios/` does).
    let o = bin().arg("run").arg(racy()).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

#[test]
fn explore_answer_does_not_depend_on_jobs() {
    let mut seeds = vec![];
    for jobs in ["1", "2", "4"] {
        let o = bin()
            .args(["explore", "--schedules", "300", "--jobs", jobs])
            .arg(racy())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "jobs {jobs}: {}", stderr(&o));
        seeds.push(failing_seed(&o));
    }
    assert!(seeds.windows(2).all(|w| w[0] == w[1]), "{seeds:?}");
}

#[test]
fn explore_fixed_scenario_holds() {
    let o = bin()
        .args(["explore", "--schedules", "200", "--seed", "0"])
        .arg(fixed())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert_eq!(
        stdout(&o),
        "explored 200 schedules (seeds 0..199, pct depth 3): expectation held in all\n"
    );
    assert!(stderr(&o).is_empty(), "no progress bar off a terminal");
}

#[test]
fn explore_json() {
    let o = bin()
        .args(["explore", "--schedules", "300", "--format", "json"])
        .arg(racy())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["scenario"], "lost-update-race");
    let seed = v["failing_seed"].as_u64().expect("a failing seed");
    assert_eq!(v["last_seed"], seed);
    assert_eq!(
        v["schedules"].as_u64().unwrap(),
        seed - v["first_seed"].as_u64().unwrap() + 1
    );
    assert_eq!(v["report"]["seed"], seed);
    assert_eq!(v["report"]["outcome"], "assertion_failed");
    assert_eq!(v["strategy"], "pct");
    assert_eq!(v["depth"], 3);
    assert_eq!(
        v["replay"],
        format!(
            "sim-runner run {} --seed {seed} --strategy pct --depth 3",
            racy().display()
        )
    );

    let o = bin()
        .args(["explore", "--schedules", "20", "--format", "json"])
        .arg(fixed())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["failing_seed"], serde_json::Value::Null);
    assert_eq!(v["report"], serde_json::Value::Null);
    assert_eq!(v["schedules"], 20);
    assert_eq!(
        v["last_seed"].as_u64().unwrap(),
        v["first_seed"].as_u64().unwrap() + 19
    );
}

#[test]
fn explore_rejects_bad_input() {
    let dir = scratch("explore-bad");
    let missing = dir.join("missing.sim");
    let o = bin().arg("explore").arg(&missing).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).starts_with(&format!("error: cannot read {}: ", missing.display())));
    assert!(stdout(&o).is_empty());

    let bad = dir.join("bad.sim");
    fs::write(
        &bad,
        "scenario \"b\" { cpus 1; }\nthread T { Undeclared = 1; }\n",
    )
    .unwrap();
    let o = bin().arg("explore").arg(&bad).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("scenario rejected"), "{}", stderr(&o));

    let o = bin()
        .args(["explore", "--schedules", "0"])
        .arg(fixed())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));

    let o = bin()
        .args([
            "explore",
            "--seed",
            "18446744073709551615",
            "--schedules",
            "2",
        ])
        .arg(fixed())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("past the largest seed"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn explore_with_logging_from_the_workers_finishes() {
    // With -vv the engine logs from every worker thread; they must not wait
    // for a standard-error lock held by the main thread.
    let dir = scratch("explore-verbose");
    let log = fs::File::create(dir.join("stderr.log")).unwrap();
    let mut child = bin()
        .args(["-vv", "explore", "--schedules", "40", "--jobs", "2"])
        .arg(racy())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("explore -vv did not finish");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(1));
    let logged = fs::read_to_string(dir.join("stderr.log")).unwrap();
    assert!(logged.contains("machine::engine"), "workers logged");
}

fn far(name: &str) -> std::path::PathBuf {
    scenario(&format!("explore/far-apart-{name}.sim"))
}

/// Issue F: the far-apart race (updates ~11 µs apart in the timing run) is
/// invisible to `timing`, found by `pct` and `random` within 1000
/// schedules, replayed by `run`; its fixed twin holds under every strategy.
#[test]
fn preempting_strategies_find_the_far_apart_race_and_run_replays_it() {
    let o = bin()
        .args(["explore", "--strategy", "timing", "--schedules", "1000"])
        .arg(far("race"))
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "timing never interleaves them: {}",
        stdout(&o)
    );
    for strategy in ["pct", "random"] {
        let o = bin()
            .args(["explore", "--strategy", strategy, "--schedules", "1000"])
            .arg(far("race"))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{strategy}: {}", stdout(&o));
        let out = stdout(&o);
        let replay = out
            .lines()
            .find_map(|l| l.strip_prefix("replay it: sim-runner run "))
            .unwrap_or_else(|| panic!("{strategy}: no replay line in {out}"))
            .to_string();
        let args: Vec<&str> = replay.split_whitespace().collect();
        let o = bin().arg("run").args(&args).output().unwrap();
        assert_eq!(
            o.status.code(),
            Some(1),
            "{strategy} replay: {}",
            stdout(&o)
        );
        assert!(stdout(&o).contains("ASSERT(Packets == 2) failed"));
        let o = bin()
            .args(["explore", "--strategy", strategy, "--schedules", "1000"])
            .arg(far("fixed"))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{strategy} fixed: {}", stdout(&o));
    }
}

/// `--all` counts each distinct outcome with its first seed, the same for
/// any number of jobs; `--depth` without `pct` is rejected.
#[test]
fn explore_all_counts_outcomes_independently_of_jobs() {
    let mut outs = vec![];
    for jobs in ["1", "2", "3"] {
        let o = bin()
            .args([
                "explore",
                "--all",
                "--schedules",
                "300",
                "--format",
                "json",
                "--jobs",
                jobs,
            ])
            .arg(far("race"))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1));
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(v["schedules"], 300);
        let total: u64 = v["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["count"].as_u64().unwrap())
            .sum();
        assert_eq!(total, 300);
        outs.push(v["outcomes"].clone());
    }
    assert!(outs.windows(2).all(|w| w[0] == w[1]), "{outs:?}");
    let o = bin()
        .args(["explore", "--strategy", "random", "--depth", "2"])
        .arg(far("race"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--depth is only for --strategy pct"),
        "{}",
        stderr(&o)
    );
}
