//! The `.sim` scenario language and the deterministic engine that runs it.
//!
//! Data flows one way: [`lexer`] → [`parser`] ([`ast`]) → [`check`]
//! (names, types, lock kinds resolved, compiled to the interpreter's code)
//! → [`engine`] (virtual processors, locks, verifier) → [`report`].

pub mod ast;
pub mod diag;
pub mod report;

pub use diag::{SimError, Source};
pub use report::{Outcome, RunReport};
