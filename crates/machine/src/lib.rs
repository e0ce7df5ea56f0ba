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

/// Run a loaded scenario.
pub fn run(program: &Program, options: &RunOptions) -> RunReport {
    engine::run(program, options.schedule(program))
}

/// Run a loaded scenario and hand its event stream (see [`vcpu::Event`]:
/// context starts and ends, IRQL changes, lock requests, grants and
/// releases, data accesses, DbgPrint, DPCs queued, interrupts) to each of
/// `observers` as it happens — a trace writer streams to disk this way, in
/// memory that does not grow with the run.
pub fn run_observed(
    program: &Program,
    options: &RunOptions,
    observers: &mut [&mut dyn Observer],
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
