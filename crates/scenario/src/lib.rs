//! The `.sim` scenario language and the deterministic engine that runs it.
//!
//! Data flows one way: [`lexer`] → [`parser`] ([`ast`]) → [`check`]
//! (names, types, lock kinds resolved, compiled to the interpreter's code)
//! → [`engine`] (virtual processors, locks, verifier) → [`report`].

pub mod ast;
pub mod check;
pub mod diag;
pub mod engine;
pub mod expect;
pub mod kernel;
pub mod lexer;
pub mod parser;
pub mod program;
pub mod report;
pub mod rules;

pub use diag::{SimError, Source};
pub use program::Program;
pub use report::{Outcome, RunReport};

use std::path::Path;

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

/// Why a file could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be read.
    Io { path: String, message: String },
    /// Syntax or check errors (at least one).
    Rejected(Vec<SimError>),
}

/// Read, parse and check a `.sim` file.
pub fn load_file(path: &Path) -> Result<Program, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| LoadError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    load_source(&path.display().to_string(), &text)
}

/// Parse and check scenario text; `name` is used in diagnostics.
pub fn load_source(name: &str, text: &str) -> Result<Program, LoadError> {
    let source = Source::new(name, text);
    let file = parser::parse(&source).map_err(LoadError::Rejected)?;
    check::check(&source, &file).map_err(LoadError::Rejected)
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
