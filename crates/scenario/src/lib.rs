//! The `.sim` scenario language: text in, a checked [`Program`] out.
//!
//! Data flows one way: [`lexer`] → [`parser`] ([`ast`]) → [`check`]
//! (names, types, lock kinds resolved, compiled to the interpreter's code in
//! [`program`]). Diagnostics ([`diag`]) carry `file:line:col`, a caret and a
//! suggestion.
//!
//! Architecture invariant: this crate knows nothing of the machine that runs
//! a program. It may use `vcpu`'s vocabulary (IRQL values, lock ids, bug
//! check names) and must never import `machine`, `verifier` or `spinlocks`.

pub mod ast;
pub mod check;
pub mod diag;
pub mod kernel;
pub mod lexer;
pub mod parser;
pub mod program;

pub use diag::{SimError, Source};
pub use program::Program;

use std::path::Path;

/// Why a file could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be read.
    Io { path: String, message: String },
    /// Syntax or check errors (at least one).
    Rejected(Vec<SimError>),
}

/// Read, parse and check a `.sim` file.
///
/// # Errors
/// [`LoadError::Io`] when the file cannot be read, [`LoadError::Rejected`]
/// with every diagnostic when it does not parse or check.
pub fn load_file(path: &Path) -> Result<Program, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| LoadError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    load_source(&path.display().to_string(), &text)
}

/// Parse and check scenario text; `name` is used in diagnostics.
///
/// # Errors
/// [`LoadError::Rejected`] with the diagnostics when the text does not parse
/// or check.
pub fn load_source(name: &str, text: &str) -> Result<Program, LoadError> {
    let source = Source::new(name, text);
    let file = parser::parse(&source).map_err(LoadError::Rejected)?;
    check::check(&source, &file).map_err(LoadError::Rejected)
}

/// Is this conformance file's issue prefix (`A-01-...` → `A`) delivered,
/// as `.ci/delivered` lists? Files of later issues may use syntax the
/// language does not have yet. Tests only.
#[cfg(test)]
pub(crate) fn testkit_delivered(p: &Path) -> bool {
    let list =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci/delivered"))
            .unwrap_or_default();
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    list.split_whitespace()
        .any(|d| name.strip_prefix(d).is_some_and(|r| r.starts_with('-')))
}
