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
pub mod report;
pub mod rules;

pub use report::{Outcome, RunReport};
pub use scenario::{load_file, load_source, LoadError, Program};

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
}

/// Run a loaded scenario.
pub fn run(program: &Program, options: &RunOptions) -> RunReport {
    let seed = options.seed.unwrap_or(program.seed);
    engine::run(program, seed)
}

/// Run a loaded scenario and return its event stream too (see
/// [`vcpu::Event`]): context starts and ends, IRQL changes, lock requests,
/// grants and releases, data accesses, DbgPrint, DPCs queued, interrupts.
pub fn run_recorded(program: &Program, options: &RunOptions) -> (RunReport, Vec<vcpu::Event>) {
    let seed = options.seed.unwrap_or(program.seed);
    engine::run_recorded(program, seed)
}
