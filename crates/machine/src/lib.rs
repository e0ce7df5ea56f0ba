//! The machine: runs a checked [`scenario::Program`] on virtual processors
//! and turns the run into a [`RunReport`].
//!
//! Data flows one way: `Program` → [`engine`] (per-processor state, shared
//! state, the interpreter and kernel routines, the lock table) → events →
//! observers (verifier, statistics, trace recorders) → [`report`]. Every
//! nondeterministic choice goes through one [`sched::Scheduler`];
//! [`explore`] sweeps seeds over a strategy. [`expect`] judges a report
//! against the file's `expect` lines; [`rules`] is the rule catalog.
//!
//! Architecture invariant: the machine knows the language's `Program` IR,
//! the locks (`spinlocks`) and the observers (`verifier`); it never parses
//! text and never renders (no text or JSON formatting of reports beyond
//! `serde` derives — rendering is the CLI's).

pub mod engine;
pub mod expect;
pub mod explore;
pub mod report;
pub mod rules;
pub mod sched;

pub use report::{Outcome, RunReport};
pub use scenario::{load_file, load_source, LoadError, Program};
pub use sched::Strategy;
pub use verifier::{Observer, Recorder};

/// Which engine runs the scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// One OS thread, discrete-event scheduler in virtual time (default).
    #[default]
    Deterministic,
    /// Every virtual processor a pinned OS thread (issue C).
    Parallel,
}

/// Options of one run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Overrides the header's `seed`.
    pub seed: Option<u64>,
    pub mode: Mode,
    /// How processors interleave (default `timing`).
    pub strategy: Strategy,
    /// PCT change points; `None` is [`sched::DEFAULT_DEPTH`].
    pub depth: Option<u32>,
    /// PCT step budget; `None` computes it from the file's timing run at
    /// its header seed ([`engine::timing_steps`]). Exploration computes it
    /// once per file and passes it here.
    pub pct_steps: Option<u64>,
    /// Parallel mode: wall time after which the run is cut off (`None`:
    /// [`engine::parallel::DEFAULT_TIMEOUT`], 10 s).
    pub timeout: Option<std::time::Duration>,
}

impl RunOptions {
    /// The deterministic schedule these options give for `program`.
    pub fn schedule(&self, program: &Program) -> engine::Schedule {
        let depth = self.depth.unwrap_or(sched::DEFAULT_DEPTH);
        let pct_steps = match (self.strategy, self.pct_steps) {
            (Strategy::Pct, Some(k)) => k,
            (Strategy::Pct, None) => engine::timing_steps(program),
            _ => 0,
        };
        engine::Schedule {
            seed: self.seed.unwrap_or(program.seed),
            strategy: self.strategy,
            depth: if self.strategy == Strategy::Pct {
                depth
            } else {
                0
            },
            pct_steps,
        }
    }
}

/// Run a loaded scenario, in the mode `options` says.
pub fn run(program: &Program, options: &RunOptions) -> RunReport {
    match options.mode {
        Mode::Deterministic => engine::run(program, options.schedule(program)),
        Mode::Parallel => run_parallel(program, options),
    }
}

/// Parallel mode: processor threads pinned to cores ([`engine::parallel`]).
/// The report's `seed`, `strategy` and `depth` are null and `parallel`
/// says which core each processor ran on and its time at each IRQL.
pub fn run_parallel(program: &Program, options: &RunOptions) -> RunReport {
    let timeout = options.timeout.unwrap_or(engine::parallel::DEFAULT_TIMEOUT);
    let (mut report, facts) = engine::parallel::run_parallel(program, timeout);
    let processors = (0..facts.cores.len())
        .map(|i| {
            let total: u64 = facts.irql_ns[i].iter().sum();
            let irql_share = facts.irql_ns[i]
                .iter()
                .enumerate()
                .filter(|(_, &ns)| ns > 0)
                .map(|(q, &ns)| (q as u8, ns as f64 / total.max(1) as f64))
                .collect();
            report::ParallelProcessor {
                cpu: i as u32,
                core: facts.cores[i],
                steps: facts.steps[i],
                steps_per_cpu_second: if facts.cpu_ns[i] == 0 {
                    0.0
                } else {
                    facts.steps[i] as f64 * 1e9 / facts.cpu_ns[i] as f64
                },
                irql_share,
            }
        })
        .collect();
    let us = |ns: u64| ns as f64 / 1e3;
    let locks = facts
        .locks
        .iter()
        .enumerate()
        .filter(|(_, s)| s.acquisitions > 0 || s.contended > 0)
        .map(|(i, s)| report::ParallelLock {
            name: program.locks[i].name.clone(),
            acquisitions: s.acquisitions,
            contended: s.contended,
            mean_spin_us: us(s.spin.mean_ns()),
            max_spin_us: us(s.spin.max_ns),
            mean_hold_us: us(s.hold.mean_ns()),
            max_hold_us: us(s.hold.max_ns),
        })
        .collect();
    report.parallel = Some(report::ParallelReport {
        wall_ms: facts.wall_ns as f64 / 1e6,
        processors,
        locks,
    });
    report
}

/// Run a loaded scenario and hand its event stream (see [`vcpu::Event`]:
/// context starts and ends, IRQL changes, lock requests, grants and
/// releases, data accesses, DbgPrint, DPCs queued, interrupts) to each of
/// `observers` as it happens — a trace writer streams to disk this way, in
/// memory that does not grow with the run.
pub fn run_observed(
    program: &Program,
    options: &RunOptions,
    observers: &mut [&mut (dyn Observer + Send)],
) -> RunReport {
    engine::run_observed(program, options.schedule(program), observers)
}

/// Run a loaded scenario and return its whole event stream too (memory
/// grows with the run: prefer [`run_observed`] for long runs).
pub fn run_recorded(program: &Program, options: &RunOptions) -> (RunReport, Vec<vcpu::Event>) {
    let mut rec = Recorder::default();
    let report = run_observed(program, options, &mut [&mut rec]);
    (report, rec.events)
}
