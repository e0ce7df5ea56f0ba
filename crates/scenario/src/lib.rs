//! The `.sim` scenario language and the deterministic engine that runs it.
//!
//! Data flows one way: [`lexer`] → [`parser`] ([`ast`]) → [`check`]
//! (names, types, lock kinds resolved, compiled to the interpreter's code)
//! → [`engine`] (virtual processors, locks, verifier) → [`report`].

pub mod ast;
pub mod diag;
pub mod lexer;
pub mod parser;
pub mod report;

pub use diag::{SimError, Source};
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

/// A checked, compiled scenario, ready to run any number of times.
#[derive(Debug)]
pub struct Program {
    pub source: Source,
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
    Ok(Program { source: Source::new(name, text) })
}

/// Run a loaded scenario.
pub fn run(program: &Program, options: &RunOptions) -> RunReport {
    RunReport {
        scenario: program.source.name.clone(),
        title: None,
        file: program.source.name.clone(),
        seed: options.seed.unwrap_or(1),
        mode: "deterministic".into(),
        cpus: 1,
        outcome: Outcome::Clean,
        bugcheck: None,
        assertion: None,
        warnings: vec![],
        expectations: vec![],
        expectation_met: true,
        expectation_failure: None,
        output: vec![],
        locks: vec![],
        processors: vec![],
        virtual_time_us: 0.0,
        statements: 0,
    }
}
