//! `sim-runner rules` and `sim-runner explain` through the built binary:
//! what goes to standard output and error, and the exit statuses.

mod common;

// The binary is run from the repository root so scenario paths resolve.
use common::{bin_in_repo as bin, stderr, stdout};
use machine::rules::catalog;

#[test]
fn rules_lists_every_rule_with_its_outcome() {
    let o = bin().arg("rules").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(stderr(&o).is_empty());
    for r in catalog() {
        let line = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(r.id.as_str()))
            .unwrap_or_else(|| panic!("{} not listed:\n{out}", r.id));
        assert!(line.contains(&r.outcome), "{line}");
    }
    assert!(out
        .lines()
        .any(|l| l.starts_with("SPIN_LOCK_ALREADY_OWNED ")));
}

#[test]
fn rules_json_is_the_catalog() {
    let o = bin().args(["rules", "--format", "json"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ids: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = catalog().iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, expected);
}

#[test]
fn explain_by_code_prints_the_rule_in_full() {
    let o = bin().args(["explain", "0xC4(0x1001)"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let rule = catalog()
        .iter()
        .find(|r| r.id == "LOCK_HIERARCHY_VIOLATION")
        .unwrap();
    assert!(out.starts_with("LOCK_HIERARCHY_VIOLATION\n"), "{out}");
    // The explanation, re-wrapped: compare words.
    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(words(&out).contains(&words(&rule.explanation)), "{out}");
    assert!(words(&out).contains(&words(&rule.fix)), "{out}");
    let bad = rule.bad.as_deref().unwrap();
    assert!(out.contains(&format!("Shown by: {bad}\n")), "{out}");
    assert!(
        out.contains(&format!("Run it: sim-runner run {bad}")),
        "{out}"
    );
}

#[test]
fn explain_accepts_the_other_spellings() {
    for (query, id) in [
        ("0xC4/0x1001", "LOCK_HIERARCHY_VIOLATION"),
        ("0x1001", "LOCK_HIERARCHY_VIOLATION"),
        ("0xF", "SPIN_LOCK_ALREADY_OWNED"),
        ("spin_lock_already_owned", "SPIN_LOCK_ALREADY_OWNED"),
        ("DRIVER_IRQL_NOT_LESS_OR_EQUAL", "PAGEABLE_AT_RAISED_IRQL"),
        ("HOLD_TIME_EXCEEDED", "HOLD_TIME_EXCEEDED"),
    ] {
        let o = bin().args(["explain", query]).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{query}: {}", stderr(&o));
        assert!(stdout(&o).starts_with(&format!("{id}\n")), "{query}");
    }
}

#[test]
fn explain_unknown_rule_exits_2_with_help() {
    let o = bin().args(["explain", "NOPE"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stdout(&o).is_empty());
    let err = stderr(&o);
    assert!(
        err.starts_with("error: unknown rule `NOPE`\nhelp: "),
        "{err}"
    );
    assert!(err.contains("`sim-runner rules` lists every rule"), "{err}");

    let o = bin()
        .args(["explain", "LOCK_HIERACHY_VIOLATION"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("help: did you mean `LOCK_HIERARCHY_VIOLATION`?"),
        "{err}"
    );
}

#[test]
fn explain_outside_the_repository_says_where_the_scenario_is() {
    let o = bin()
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .args(["explain", "SPIN_LOCK_NOT_OWNED"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert!(out.contains("(cannot read it from here: "), "{out}");
    assert!(
        out.contains("run sim-runner from the repository root"),
        "{out}"
    );
}
