//! The exploration library: the smallest failing seed does not depend on the
//! number of jobs, `all` counts are exact and job-independent, every seed it
//! names replays with `run`, and each strategy is deterministic.

use machine::explore::{explore, outcome_key, ExploreOptions, Failure};
use machine::{load_file, run, Program, RunOptions, Strategy};
use std::path::Path;

fn load(rel: &str) -> Program {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel);
    load_file(&path).unwrap_or_else(|e| panic!("{rel}: {e:?}"))
}

fn opts(n: u64, jobs: usize, strategy: Strategy, all: bool) -> ExploreOptions {
    ExploreOptions {
        first_seed: 1,
        schedules: n,
        jobs,
        strategy,
        depth: None,
        all,
    }
}

#[test]
fn smallest_failing_seed_whatever_the_jobs() {
    let p = load("scenarios/explore/far-apart-race.sim");
    for strategy in [Strategy::Pct, Strategy::Random] {
        let one = explore(&p, &opts(1000, 1, strategy, false), &|_| {});
        let (seed, failure) = one.failing.as_ref().expect("found in 1000");
        assert!(matches!(failure, Failure::Expectation(_)));
        assert_eq!(one.schedules, seed - 1 + 1);
        for jobs in [2, 5] {
            let many = explore(&p, &opts(1000, jobs, strategy, false), &|_| {});
            assert_eq!(
                many.failing.as_ref().map(|f| f.0),
                Some(*seed),
                "{strategy} jobs {jobs}"
            );
        }
        let replay = run(
            &p,
            &RunOptions {
                seed: Some(*seed),
                strategy,
                depth: one.depth,
                ..RunOptions::default()
            },
        );
        assert!(!replay.expectation_met, "{strategy} seed {seed} replays");
    }
}

#[test]
fn all_counts_are_exact_and_job_independent() {
    let p = load("scenarios/explore/lost-update-race.sim");
    let a = explore(&p, &opts(120, 1, Strategy::Pct, true), &|_| {});
    let b = explore(&p, &opts(120, 4, Strategy::Pct, true), &|_| {});
    assert_eq!(a.outcomes, b.outcomes);
    assert_eq!(a.outcomes.iter().map(|o| o.count).sum::<u64>(), 120);
    assert!(a.outcomes.len() >= 2, "{:?}", a.outcomes);
    for o in &a.outcomes {
        let r = run(
            &p,
            &RunOptions {
                seed: Some(o.first_seed),
                strategy: Strategy::Pct,
                ..RunOptions::default()
            },
        );
        assert_eq!(outcome_key(&r), o.outcome);
        assert_eq!(r.expectation_met, o.expectation_met);
    }
}

#[test]
fn every_strategy_is_deterministic() {
    let p = load("scenarios/explore/far-apart-race.sim");
    for strategy in [Strategy::Timing, Strategy::Random, Strategy::Pct] {
        for seed in 1..20 {
            let o = RunOptions {
                seed: Some(seed),
                strategy,
                ..RunOptions::default()
            };
            let (r1, e1) = machine::run_recorded(&p, &o);
            let (r2, e2) = machine::run_recorded(&p, &o);
            assert_eq!(r1, r2);
            assert_eq!(
                serde_json::to_string(&e1).unwrap(),
                serde_json::to_string(&e2).unwrap()
            );
        }
    }
}

#[test]
fn timing_cannot_find_the_far_apart_race() {
    let p = load("scenarios/explore/far-apart-race.sim");
    let r = explore(&p, &opts(300, 2, Strategy::Timing, false), &|_| {});
    assert!(r.failing.is_none());
}

#[test]
fn pct_does_not_starve_the_processor_a_busy_poller_waits_for() {
    let p = load("scenarios/explore/polling-loop-fixed.sim");
    for strategy in [Strategy::Pct, Strategy::Random] {
        let r = explore(&p, &opts(1000, 2, strategy, false), &|_| {});
        assert!(
            r.failing.is_none(),
            "{strategy}: seed {:?} breaks it",
            r.failing.as_ref().map(|f| f.0)
        );
    }
}
