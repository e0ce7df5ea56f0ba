//! Schedule exploration: run one program under one strategy with seed after
//! seed, on several OS threads, and find the smallest seed that breaks its
//! expectation — or, with `all`, count every distinct outcome.
//!
//! Seeds `first, first+1, ...` are handed out in increasing order by an
//! atomic counter. A worker that finds a failing seed lowers a shared bound;
//! no worker starts a seed above it, and every seed below it was handed out
//! before and is finished when the scope ends. So the answer is the smallest
//! failing seed whatever the number of jobs, and exploring is as
//! deterministic as one run. With `all`, each distinct outcome keeps the
//! smallest seed that produced it and a count, both independent of jobs.
//!
//! PCT's step budget `k` (the step count of the file's timing run at its
//! header seed) is computed once, before the first schedule.

use crate::report::{Outcome, RunReport};
use crate::sched::{Strategy, DEFAULT_DEPTH};
use crate::{engine, Program, RunOptions};
use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Mutex;
use std::time::Duration;

/// What to explore.
#[derive(Clone, Debug)]
pub struct ExploreOptions {
    /// The first seed (the CLI defaults it to the header's seed).
    pub first_seed: u64,
    /// How many seeds at most (at least 1; `first_seed + schedules - 1` must
    /// not overflow).
    pub schedules: u64,
    /// Worker threads (clamped to `1..=schedules`).
    pub jobs: usize,
    /// The strategy of every schedule.
    pub strategy: Strategy,
    /// PCT change points (`None`: [`DEFAULT_DEPTH`]).
    pub depth: Option<u32>,
    /// Run every seed and count outcomes instead of stopping at the first
    /// seed that breaks the expectation.
    pub all: bool,
}

/// Why a seed failed.
#[derive(Debug)]
pub enum Failure {
    /// The run did not meet the expectation.
    Expectation(Box<RunReport>),
    /// The engine panicked (a bug in the emulator, not in the scenario).
    Panic(String),
}

/// One distinct outcome seen while exploring with `all`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutcomeCount {
    /// The outcome, as [`outcome_key`] writes it.
    pub outcome: String,
    /// Did this outcome meet the file's expectation?
    pub expectation_met: bool,
    /// The smallest seed that produced it.
    pub first_seed: u64,
    /// How many seeds produced it.
    pub count: u64,
}

/// Progress while exploring, reported on the calling thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Schedules finished so far.
    pub done: u64,
    /// Distinct outcomes seen so far.
    pub distinct: usize,
}

/// The result of exploring.
#[derive(Debug)]
pub struct Exploration {
    pub first_seed: u64,
    /// The last seed that counts: the failing one, or the last one tried.
    pub last_seed: u64,
    /// `last_seed - first_seed + 1`: every one of these seeds was run.
    pub schedules: u64,
    pub strategy: Strategy,
    /// PCT change points; `None` for the other strategies.
    pub depth: Option<u32>,
    /// PCT step budget `k`; `None` for the other strategies.
    pub pct_steps: Option<u64>,
    /// The smallest failing seed and why it failed.
    pub failing: Option<(u64, Failure)>,
    /// With `all`: every distinct outcome, in order of first seed.
    pub outcomes: Vec<OutcomeCount>,
}

/// How often the calling thread reports progress while the workers run.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// A short, stable name of a run's outcome: `clean`, `clean + warning
/// HOLD_TIME_EXCEEDED`, `bugcheck 0xC4(0x1001) at line 12`,
/// `assertion_failed at line 18`. Two runs with the same key ended the same
/// way for the purpose of counting outcomes.
pub fn outcome_key(r: &RunReport) -> String {
    let mut s = match (&r.outcome, &r.bugcheck, &r.assertion) {
        (Outcome::Bugcheck, Some(b), _) => {
            if b.code == vcpu::bugcheck::code::DRIVER_VERIFIER_DETECTED_VIOLATION
                || b.code == vcpu::bugcheck::code::DPC_WATCHDOG_VIOLATION
            {
                format!(
                    "bugcheck 0x{:X}(0x{:X}) at line {}",
                    b.code, b.params[0], b.line
                )
            } else {
                format!("bugcheck 0x{:X} at line {}", b.code, b.line)
            }
        }
        (Outcome::Bugcheck, None, _) => "bugcheck".to_string(),
        (Outcome::AssertionFailed, _, Some(a)) => format!("assertion_failed at line {}", a.line),
        (Outcome::AssertionFailed, _, None) => "assertion_failed".to_string(),
        (Outcome::Clean, _, _) => "clean".to_string(),
    };
    let mut rules: Vec<&str> = r.warnings.iter().map(|w| w.rule.as_str()).collect();
    rules.sort_unstable();
    rules.dedup();
    for w in rules {
        s.push_str(" + warning ");
        s.push_str(w);
    }
    s
}

/// Explore `program` as `opts` says. `progress` is called on the calling
/// thread about every 100 ms and once at the end.
///
/// # Panics
/// When `opts.schedules` is 0 or the seed range overflows `u64` (the CLI
/// rejects both first).
pub fn explore(
    program: &Program,
    opts: &ExploreOptions,
    progress: &dyn Fn(Progress),
) -> Exploration {
    let schedules = opts.schedules;
    let first_seed = opts.first_seed;
    assert!(schedules >= 1, "explore needs at least one schedule");
    assert!(
        first_seed.checked_add(schedules - 1).is_some(),
        "seed range overflows u64"
    );
    let pct_steps = (opts.strategy == Strategy::Pct).then(|| engine::timing_steps(program));
    let depth = (opts.strategy == Strategy::Pct).then(|| opts.depth.unwrap_or(DEFAULT_DEPTH));
    let next = AtomicU64::new(0);
    // Offset of the smallest failing seed found so far (u64::MAX: none).
    let bound = AtomicU64::new(u64::MAX);
    let found: Mutex<Option<(u64, Failure)>> = Mutex::new(None);
    // outcome key -> (expectation met, smallest offset, count)
    let outcomes: Mutex<BTreeMap<String, (bool, u64, u64)>> = Mutex::new(BTreeMap::new());
    let distinct = AtomicUsize::new(0);
    let done = AtomicU64::new(0);
    let jobs = opts
        .jobs
        .clamp(1, usize::try_from(schedules).unwrap_or(usize::MAX));

    let worker = || loop {
        let i = next.fetch_add(1, Ordering::SeqCst);
        if i >= schedules || (!opts.all && i >= bound.load(Ordering::SeqCst)) {
            break;
        }
        let seed = first_seed + i;
        let options = RunOptions {
            seed: Some(seed),
            strategy: opts.strategy,
            depth,
            pct_steps,
            ..RunOptions::default()
        };
        let result = panic::catch_unwind(AssertUnwindSafe(|| crate::run(program, &options)));
        let (key, met) = match &result {
            Ok(report) => (outcome_key(report), report.expectation_met),
            Err(_) => ("engine panic".to_string(), false),
        };
        {
            let mut map = outcomes.lock().unwrap_or_else(|p| p.into_inner());
            let e = map.entry(key).or_insert((met, i, 0));
            e.1 = e.1.min(i);
            e.2 += 1;
            distinct.store(map.len(), Ordering::Relaxed);
        }
        done.fetch_add(1, Ordering::Relaxed);
        let failure = match result {
            Ok(report) if report.expectation_met => continue,
            Ok(report) => Failure::Expectation(Box::new(report)),
            Err(payload) => Failure::Panic(panic_message(payload.as_ref())),
        };
        tracing::debug!(seed, "seed breaks the expectation");
        let mut slot = found.lock().unwrap_or_else(|poison| poison.into_inner());
        if slot.as_ref().is_none_or(|(j, _)| i < *j) {
            *slot = Some((i, failure));
        }
        bound.fetch_min(i, Ordering::SeqCst);
    };

    let report_progress = || {
        progress(Progress {
            done: done.load(Ordering::Relaxed),
            distinct: distinct.load(Ordering::Relaxed),
        })
    };
    std::thread::scope(|s| {
        // Each worker holds a sender; the channel disconnects when the last
        // one finishes, which ends the progress loop without polling delay.
        let (alive, finished) = mpsc::channel::<()>();
        for _ in 0..jobs {
            let alive = alive.clone();
            s.spawn(move || {
                worker();
                drop(alive);
            });
        }
        drop(alive);
        while let Err(RecvTimeoutError::Timeout) | Ok(()) = finished.recv_timeout(PROGRESS_EVERY) {
            report_progress();
        }
    });
    report_progress();

    let failing = found
        .into_inner()
        .unwrap_or_else(|poison| poison.into_inner());
    let mut counted: Vec<OutcomeCount> = if opts.all {
        outcomes
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .into_iter()
            .map(|(outcome, (met, i, count))| OutcomeCount {
                outcome,
                expectation_met: met,
                first_seed: first_seed + i,
                count,
            })
            .collect()
    } else {
        vec![]
    };
    counted.sort_by_key(|o| o.first_seed);
    let (last, schedules, failing) = match failing {
        Some((i, failure)) if !opts.all => (first_seed + i, i + 1, Some((first_seed + i, failure))),
        Some((i, failure)) => (
            first_seed + (schedules - 1),
            schedules,
            Some((first_seed + i, failure)),
        ),
        None => (first_seed + (schedules - 1), schedules, None),
    };
    Exploration {
        first_seed,
        last_seed: last,
        schedules,
        strategy: opts.strategy,
        depth,
        pct_steps,
        failing,
        outcomes: counted,
    }
}

impl Exploration {
    /// The `sim-runner run` arguments that replay seed `seed` of this
    /// exploration (after the file name): `--seed N --strategy S [--depth D]`.
    pub fn replay_args(&self, seed: u64) -> String {
        let mut s = format!("--seed {seed} --strategy {}", self.strategy);
        if let Some(d) = self.depth {
            s.push_str(&format!(" --depth {d}"));
        }
        s
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_string())
}
