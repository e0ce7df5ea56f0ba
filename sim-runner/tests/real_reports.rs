//! Snapshot tests of reports produced by real runs of scenarios in
//! `scenarios/`: the whole pipeline (parse, check, engine, verifier, text and
//! JSON rendering). A change in any layer that alters what a user sees shows
//! up here. Update with `INSTA_UPDATE=always cargo test -p sim-runner` and
//! review the diff.

use machine::{load_source, run, LoadError, RunOptions};
use std::path::Path;

/// Run a scenario file from the repository, naming it by its relative path
/// so snapshots do not depend on where the checkout lives.
fn report(rel: &str) -> machine::RunReport {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {rel}: {e}"));
    match load_source(rel, &text) {
        Ok(p) => run(&p, &RunOptions::default()),
        Err(LoadError::Rejected(e)) => panic!("{rel} rejected: {}", e[0]),
        Err(LoadError::Io { message, .. }) => panic!("{rel}: {message}"),
    }
}

fn snapshot(name: &str, rel: &str) {
    let r = report(rel);
    assert!(r.expectation_met, "{rel}: {:?}", r.expectation_failure);
    insta::assert_snapshot!(format!("text_{name}"), sim_runner::text::render(&r));
    insta::assert_snapshot!(
        format!("json_{name}"),
        serde_json::to_string_pretty(&r).expect("json")
    );
}

#[test]
fn recursive_acquire() {
    snapshot(
        "real_recursive_acquire",
        "scenarios/rules/0x0F-recursive-acquire-bad.sim",
    );
}

#[test]
fn two_cpu_deadlock() {
    snapshot(
        "real_two_cpu_deadlock",
        "scenarios/rules/0x133-two-cpu-deadlock-bad.sim",
    );
}

#[test]
fn lock_order_cycle() {
    snapshot(
        "real_lock_order_cycle",
        "scenarios/rules/0xC4-0x1001-lock-order-cycle-bad.sim",
    );
}

#[test]
fn queued_fifo_clean() {
    snapshot(
        "real_queued_fifo",
        "scenarios/rules/queued-fifo-order-observed.sim",
    );
}

#[test]
fn paged_data() {
    snapshot("real_paged_data", "scenarios/rules/0xD1-paged-data-bad.sim");
}
