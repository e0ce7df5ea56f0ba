//! Properties that must hold in every schedule, checked over many seeds:
//! in-stack queued locks are FIFO, EX_SPIN_LOCK prefers writers, and every
//! run is reproducible from its seed.

use machine::{load_file, run, LoadError, Program, RunOptions};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn load(rel: &str) -> Program {
    match load_file(&root().join(rel)) {
        Ok(p) => p,
        Err(LoadError::Io { path, message }) => panic!("cannot read {path}: {message}"),
        Err(LoadError::Rejected(errs)) => panic!("{rel} rejected: {}", errs[0]),
    }
}

/// Every run of `rel` over `seeds` meets its expectation.
fn holds_for_seeds(rel: &str, seeds: std::ops::RangeInclusive<u64>) {
    outputs_over_seeds(rel, seeds);
}

#[test]
fn queued_lock_is_fifo_in_every_seed() {
    holds_for_seeds("scenarios/rules/queued-fifo-order-observed.sim", 1..=200);
}

#[test]
fn ex_lock_prefers_writers_in_every_seed() {
    holds_for_seeds("scenarios/rules/ex-writer-preference-observed.sim", 1..=200);
}

#[test]
fn try_convert_semantics_in_every_seed() {
    holds_for_seeds("scenarios/rules/ex-try-convert-fixed.sim", 1..=100);
}

fn all_scenarios() -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![root().join("scenarios")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("scenarios/ is readable") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "sim")
                // `*.bad.sim` inputs must be rejected; they do not run.
                && !p.to_string_lossy().ends_with(".bad.sim")
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn same_seed_same_report_for_every_scenario() {
    let files = all_scenarios();
    assert!(!files.is_empty());
    for f in files {
        let prog = load_file(&f).unwrap_or_else(|_| panic!("{} loads", f.display()));
        let opts = RunOptions::default();
        let a = serde_json::to_string(&run(&prog, &opts)).expect("json");
        let b = serde_json::to_string(&run(&prog, &opts)).expect("json");
        assert_eq!(a, b, "{} is not reproducible", f.display());
    }
}

#[test]
fn seeds_change_the_interleaving() {
    // Two processors bumping one counter: different seeds give different
    // schedules (statement-cost jitter), visible in the virtual end time.
    let prog = scenario::load_source(
        "jitter.sim",
        r#"scenario "jitter" { cpus 2; }
        KSPIN_LOCK L; ULONG N;
        thread A on cpu 0 { ULONG i; KIRQL o; for (i = 0; i < 20; i++) { KeAcquireSpinLock(&L, &o); N++; KeReleaseSpinLock(&L, o); } }
        thread B on cpu 1 { ULONG i; KIRQL o; for (i = 0; i < 20; i++) { KeAcquireSpinLock(&L, &o); N++; KeReleaseSpinLock(&L, o); } }"#,
    )
    .map_err(|_| "rejected")
    .expect("valid scenario");
    let mut times: Vec<u64> = (1..=20)
        .map(|s| {
            (run(
                &prog,
                &RunOptions {
                    seed: Some(s),
                    ..Default::default()
                },
            )
            .virtual_time_us
                * 1000.0) as u64
        })
        .collect();
    times.sort();
    times.dedup();
    assert!(
        times.len() > 5,
        "only {} distinct schedules over 20 seeds",
        times.len()
    );
}

/// The distinct DbgPrint outputs of a scenario over a range of seeds; every
/// run must meet its expectation.
fn outputs_over_seeds(rel: &str, seeds: std::ops::RangeInclusive<u64>) -> Vec<String> {
    let prog = load(rel);
    let mut seen: Vec<String> = seeds
        .map(|seed| {
            let r = run(
                &prog,
                &RunOptions {
                    seed: Some(seed),
                    ..Default::default()
                },
            );
            assert!(
                r.expectation_met,
                "{rel} with seed {seed}: {:?}",
                r.expectation_failure
            );
            r.output.join("\n")
        })
        .collect();
    seen.sort();
    seen.dedup();
    seen
}

#[test]
fn ordinary_lock_grants_in_no_fixed_order() {
    let seen = outputs_over_seeds("scenarios/regressions/ordinary-lock-no-fifo.sim", 1..=50);
    assert_eq!(
        seen,
        ["granted in order 12", "granted in order 21"],
        "both orders must occur"
    );
}

#[test]
fn ex_exclusive_waiters_are_granted_in_no_promised_order() {
    let seen = outputs_over_seeds(
        "scenarios/regressions/ex-exclusive-waiters-unordered.sim",
        1..=50,
    );
    assert_eq!(
        seen,
        ["writers granted in order 12", "writers granted in order 21"]
    );
}
