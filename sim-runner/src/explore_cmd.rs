//! `sim-runner explore FILE`: run one scenario with seed after seed until a
//! seed breaks its expectation.
//!
//! Seeds `START`, `START+1`, ... (up to `--schedules N` of them) are handed
//! out in increasing order by an atomic counter to `--jobs J` scoped worker
//! threads. When a worker finds a failing seed it lowers the shared bound;
//! no worker starts a seed above the bound, and every seed below it has
//! already been handed out and is finished before the scope ends. So the
//! answer is the *smallest* failing seed whatever J is, and exploring is as
//! deterministic as `run`.
//!
//! Progress (an `indicatif` bar) goes to standard error, and only when that
//! is a terminal. It is drawn from the calling thread only: the caller may
//! hold the standard-error lock (`main` does), and a worker that tried to
//! draw would wait for it forever.

use crate::cli::{ExploreArgs, Format};
use crate::{diagnostics, exit, text};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use scenario::{Program, RunOptions, RunReport};
use serde_json::json;
use std::io::{IsTerminal, Write};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Mutex;
use std::time::Duration;

/// Why a seed failed.
#[derive(Debug)]
pub enum Failure {
    /// The run did not meet the expectation.
    Expectation(Box<RunReport>),
    /// The engine panicked (a bug in the emulator, not in the scenario).
    Panic(String),
}

/// The result of exploring.
#[derive(Debug)]
pub struct Exploration {
    pub first_seed: u64,
    /// The last seed that counts: the failing one, or the last one tried.
    pub last_seed: u64,
    /// `last_seed - first_seed + 1`: every one of these seeds was run.
    pub schedules: u64,
    /// The smallest failing seed and why it failed.
    pub failing: Option<(u64, Failure)>,
}

/// How often the calling thread reports progress while the workers run.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// Run seeds `first_seed ..= first_seed + schedules - 1` on `jobs` threads
/// and return the smallest failing seed, if any. `progress` is called on
/// the calling thread with the number of seeds finished so far, about every
/// 100 ms and once at the end.
///
/// `schedules` must be at least 1 and the seeds must not overflow `u64`.
pub fn explore(
    program: &Program,
    first_seed: u64,
    schedules: u64,
    jobs: usize,
    progress: &dyn Fn(u64),
) -> Exploration {
    assert!(schedules >= 1, "explore needs at least one schedule");
    assert!(
        first_seed.checked_add(schedules - 1).is_some(),
        "seed range overflows u64"
    );
    let next = AtomicU64::new(0);
    // Offset of the smallest failing seed found so far (u64::MAX: none).
    let bound = AtomicU64::new(u64::MAX);
    let found: Mutex<Option<(u64, Failure)>> = Mutex::new(None);
    let done = AtomicU64::new(0);
    let jobs = jobs.clamp(1, usize::try_from(schedules).unwrap_or(usize::MAX));

    let worker = || loop {
        let i = next.fetch_add(1, Ordering::SeqCst);
        if i >= schedules || i >= bound.load(Ordering::SeqCst) {
            break;
        }
        let seed = first_seed + i;
        let options = RunOptions {
            seed: Some(seed),
            ..RunOptions::default()
        };
        let result = panic::catch_unwind(AssertUnwindSafe(|| scenario::run(program, &options)));
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
            progress(done.load(Ordering::Relaxed));
        }
    });
    progress(done.load(Ordering::Relaxed));

    let failing = found
        .into_inner()
        .unwrap_or_else(|poison| poison.into_inner());
    match failing {
        Some((i, failure)) => Exploration {
            first_seed,
            last_seed: first_seed + i,
            schedules: i + 1,
            failing: Some((first_seed + i, failure)),
        },
        None => Exploration {
            first_seed,
            last_seed: first_seed + (schedules - 1),
            schedules,
            failing: None,
        },
    }
}

/// Run the command; returns the process exit status.
pub fn execute(args: &ExploreArgs, out: &mut dyn Write, err: &mut dyn Write, color: bool) -> u8 {
    tracing::debug!(file = %args.file.display(), "loading scenario");
    let program = match scenario::load_file(&args.file) {
        Ok(program) => program,
        Err(e) => {
            let _ = err.write_all(diagnostics::render_load_error(&e, color).as_bytes());
            return exit::REJECTED;
        }
    };
    let first = args.seed.unwrap_or(program.seed);
    if first.checked_add(args.schedules - 1).is_none() {
        let _ = writeln!(
            err,
            "error: {} schedules from seed {first} would go past the largest seed ({}); lower --schedules or --seed",
            args.schedules,
            u64::MAX
        );
        return exit::REJECTED;
    }
    let jobs = args.jobs.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        |j| usize::try_from(j).unwrap_or(usize::MAX),
    );
    tracing::info!(first, schedules = args.schedules, jobs, "exploring");

    let bar = progress_bar(args.schedules);
    let result = explore(&program, first, args.schedules, jobs, &|n| {
        bar.set_position(n)
    });
    bar.finish_and_clear();

    let file = args.file.display().to_string();
    let rendered = match args.format {
        Format::Text => render_text(&file, &result),
        Format::Json => render_json(&program, &result),
    };
    // A failed write is reported by the caller's output guard
    // ([`crate::output`]), the same way for every command.
    let _ = out
        .write_all(rendered.as_bytes())
        .and_then(|()| out.flush());

    if result.failing.is_some() {
        exit::FAILED
    } else {
        exit::OK
    }
}

/// The text output: one line when every seed held; otherwise the seed, how
/// to re-run it, and that seed's full report.
pub fn render_text(file: &str, result: &Exploration) -> String {
    let (first, last, n) = (result.first_seed, result.last_seed, result.schedules);
    let plural = if n == 1 { "" } else { "s" };
    match &result.failing {
        None => {
            format!(
                "explored {n} schedule{plural} (seeds {first}..{last}): expectation held in all\n"
            )
        }
        Some((seed, failure)) => {
            let mut s = match failure {
                Failure::Expectation(report) => {
                    let why = report.expectation_failure.clone().unwrap_or_else(|| {
                        format!(
                            "expected {}, got {}",
                            text::expectation_text(report),
                            text::outcome_summary(report)
                        )
                    });
                    format!("seed {seed} breaks the expectation: {why}\n")
                }
                Failure::Panic(message) => {
                    format!("seed {seed} makes the engine panic: {message}\n")
                }
            };
            s.push_str(&format!("re-run it: sim-runner run {file} --seed {seed}\n"));
            s.push_str(&format!(
                "found after {n} schedule{plural} (seeds {first}..{last})\n"
            ));
            if let Failure::Expectation(report) = failure {
                s.push('\n');
                s.push_str(&text::render(report));
            }
            s
        }
    }
}

/// The JSON output: `{"scenario", "schedules", "first_seed", "last_seed",
/// "failing_seed", "report", "panic"}`.
pub fn render_json(program: &Program, result: &Exploration) -> String {
    let (failing_seed, report, panic) = match &result.failing {
        None => (None, serde_json::Value::Null, None),
        Some((seed, Failure::Expectation(report))) => (
            Some(*seed),
            serde_json::to_value(report.as_ref()).unwrap_or(serde_json::Value::Null),
            None,
        ),
        Some((seed, Failure::Panic(message))) => {
            (Some(*seed), serde_json::Value::Null, Some(message.clone()))
        }
    };
    let value = json!({
        "scenario": program.name,
        "schedules": result.schedules,
        "first_seed": result.first_seed,
        "last_seed": result.last_seed,
        "failing_seed": failing_seed,
        "report": report,
        "panic": panic,
    });
    let mut s = serde_json::to_string_pretty(&value).unwrap_or_else(|_| value.to_string());
    s.push('\n');
    s
}

/// A bar on standard error when it is a terminal; hidden otherwise.
fn progress_bar(len: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("exploring {bar:30} {pos}/{len} seeds, eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RACY: &str = include_str!("../../scenarios/explore/lost-update-race.sim");
    const FIXED: &str = include_str!("../../scenarios/explore/lost-update-fixed.sim");

    fn load(name: &str, text: &str) -> Program {
        scenario::load_source(name, text).expect("scenario loads")
    }

    #[test]
    fn racy_scenario_fails_at_the_same_seed_for_any_job_count() {
        let program = load("lost-update-race.sim", RACY);
        let one = explore(&program, program.seed, 200, 1, &|_| {});
        let (seed, failure) = one.failing.as_ref().expect("a failing seed in 200");
        assert!(matches!(failure, Failure::Expectation(_)));
        assert_eq!(one.last_seed, *seed);
        assert_eq!(one.schedules, seed - program.seed + 1);
        for jobs in [2, 3, 8] {
            let many = explore(&program, program.seed, 200, jobs, &|_| {});
            assert_eq!(
                many.failing.as_ref().map(|(s, _)| *s),
                Some(*seed),
                "jobs {jobs}"
            );
            assert_eq!(many.schedules, one.schedules);
        }
        // Re-running the seed alone reproduces the failure.
        let report = scenario::run(
            &program,
            &RunOptions {
                seed: Some(*seed),
                ..RunOptions::default()
            },
        );
        assert!(!report.expectation_met);
    }

    #[test]
    fn fixed_scenario_holds_for_every_seed() {
        let program = load("lost-update-fixed.sim", FIXED);
        let last = AtomicU64::new(0);
        let result = explore(&program, 0, 100, 2, &|n| {
            last.store(n, Ordering::SeqCst);
        });
        assert!(result.failing.is_none());
        assert_eq!((result.first_seed, result.last_seed), (0, 99));
        assert_eq!(result.schedules, 100);
        assert_eq!(
            last.load(Ordering::SeqCst),
            100,
            "the last report counts every seed"
        );
        assert_eq!(
            render_text("f.sim", &result),
            "explored 100 schedules (seeds 0..99): expectation held in all\n"
        );
    }

    #[test]
    fn text_and_json_name_the_seed() {
        let program = load("lost-update-race.sim", RACY);
        let result = explore(&program, program.seed, 200, 2, &|_| {});
        let seed = result.failing.as_ref().map(|(s, _)| *s).unwrap();
        let text = render_text("x/race.sim", &result);
        assert!(
            text.starts_with(&format!(
                "seed {seed} breaks the expectation: expected clean, got assertion_failed"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "re-run it: sim-runner run x/race.sim --seed {seed}\n"
            )),
            "{text}"
        );
        assert!(text.contains("ASSERT(Packets == 20) failed"), "{text}");
        let json: serde_json::Value =
            serde_json::from_str(&render_json(&program, &result)).unwrap();
        assert_eq!(json["scenario"], "lost-update-race");
        assert_eq!(json["failing_seed"], seed);
        assert_eq!(json["last_seed"], seed);
        assert_eq!(json["first_seed"], program.seed);
        assert_eq!(json["report"]["seed"], seed);
        assert_eq!(json["report"]["expectation_met"], false);
    }
}
