//! `*.bad.sim`: inputs that must be rejected (the conformance convention).
//!
//! A file whose name ends in `.bad.sim` passes `test` when loading it fails
//! with a rejection (what `run` reports with exit status 2) and every
//! diagnostic listed in its first comment block is among those produced.
//! The list follows a line containing `Expected diagnostic:` or `Expected
//! diagnostics:`, one diagnostic a line:
//!
//! ```text
//! //   NAME:LINE:COL: message (help: text)
//! ```
//!
//! NAME is matched against the base name of the diagnostic's file, and the
//! help only when given. When the block says `rejected with N errors` (or
//! `1 error`), exactly N diagnostics must be produced.

use crate::test_cmd::Verdict;
use scenario::{LoadError, SimError};
use std::path::Path;

/// Is `path` an input that must be rejected?
pub fn is_bad_sim(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".bad.sim"))
}

/// One diagnostic a `.bad.sim` file expects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedDiagnostic {
    /// File base name.
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub col: u32,
    /// The message, exactly.
    pub message: String,
    /// The help text, when the line gives one.
    pub help: Option<String>,
}

impl std::fmt::Display for ExpectedDiagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.col, self.message
        )?;
        if let Some(h) = &self.help {
            write!(f, " (help: {h})")?;
        }
        Ok(())
    }
}

/// What a `.bad.sim` file's first comment block asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expectations {
    /// The diagnostics listed.
    pub diagnostics: Vec<ExpectedDiagnostic>,
    /// `rejected with N errors`, when said.
    pub count: Option<usize>,
}

/// Read the expectations from the first comment block of `text` (the
/// `//` lines at the top of the file).
pub fn expectations(text: &str) -> Expectations {
    let text = text.trim_start_matches('\u{feff}');
    let block: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| l.starts_with("//"))
        .map(|l| l.trim_start_matches('/').trim())
        .collect();
    let mut out = Expectations::default();
    let mut listing = false;
    for line in &block {
        if out.count.is_none() {
            out.count = rejected_count(line);
        }
        if listing {
            if let Some(d) = parse_diagnostic(line) {
                out.diagnostics.push(d);
            }
        } else if line.contains("Expected diagnostic:") || line.contains("Expected diagnostics:") {
            listing = true;
        }
    }
    out
}

/// `... rejected with 3 errors ...` → 3.
fn rejected_count(line: &str) -> Option<usize> {
    let line = line.to_ascii_lowercase();
    let rest = &line[line.find("rejected with ")? + "rejected with ".len()..];
    let (n, tail) = rest.split_once(' ')?;
    (tail.starts_with("error"))
        .then(|| n.parse().ok())
        .flatten()
}

/// `NAME:LINE:COL: message (help: text)`.
fn parse_diagnostic(line: &str) -> Option<ExpectedDiagnostic> {
    let mut parts = line.splitn(4, ':');
    let file = parts.next()?.trim().to_string();
    let line_no = parts.next()?.trim().parse().ok()?;
    let col = parts.next()?.trim().parse().ok()?;
    let rest = parts.next()?.trim();
    let (message, help) = match rest
        .strip_suffix(')')
        .and_then(|r| r.rsplit_once(" (help: "))
    {
        Some((m, h)) => (m.trim().to_string(), Some(h.to_string())),
        None => (rest.to_string(), None),
    };
    Some(ExpectedDiagnostic {
        file,
        line: line_no,
        col,
        message,
        help,
    })
}

/// Does `got` match `want`?
fn matches(want: &ExpectedDiagnostic, got: &SimError) -> bool {
    // location is `path:line:col`; the path may itself hold colons.
    let mut it = got.location.rsplitn(3, ':');
    let (Some(col), Some(line), Some(path)) = (it.next(), it.next(), it.next()) else {
        return false;
    };
    let base = Path::new(path)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(path);
    base == want.file
        && line.parse() == Ok(want.line)
        && col.parse() == Ok(want.col)
        && got.message == want.message
        && want
            .help
            .as_ref()
            .is_none_or(|h| got.help.as_deref() == Some(h.as_str()))
}

/// Judge a `.bad.sim` file: it must be rejected with what it lists.
pub fn judge(path: &Path) -> Verdict {
    let fail = |detail: String| Verdict {
        passed: false,
        detail,
    };
    let (name, bytes) = match scenario::read_input(path) {
        Ok(x) => x,
        Err(LoadError::Io { message, .. }) => return fail(format!("cannot read: {message}")),
        Err(LoadError::Rejected(e)) => return fail(format!("cannot read: {} errors", e.len())),
    };
    let want = expectations(&String::from_utf8_lossy(&bytes));
    let errors = match scenario::load_bytes(&name, &bytes) {
        Ok(_) => return fail("accepted, but a .bad.sim input must be rejected".to_string()),
        Err(LoadError::Io { message, .. }) => return fail(format!("cannot read: {message}")),
        Err(LoadError::Rejected(errors)) => errors,
    };
    let got = || {
        errors
            .iter()
            .map(|e| {
                let mut s = format!("{e}");
                if let Some(h) = &e.help {
                    s.push_str(&format!(" (help: {h})"));
                }
                s
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    for d in &want.diagnostics {
        if !errors.iter().any(|e| matches(d, e)) {
            return fail(format!(
                "expected diagnostic `{d}` was not produced; got: {}",
                got()
            ));
        }
    }
    if let Some(n) = want.count {
        if errors.len() != n {
            return fail(format!(
                "expected rejection with {n} error{}, got {}: {}",
                if n == 1 { "" } else { "s" },
                errors.len(),
                got()
            ));
        }
    }
    let n = errors.len();
    Verdict {
        passed: true,
        detail: match want.diagnostics.len() {
            0 => format!(
                "rejected as expected ({n} error{}; no diagnostics listed)",
                if n == 1 { "" } else { "s" }
            ),
            k => format!(
                "rejected as expected ({k} listed diagnostic{} produced)",
                if k == 1 { "" } else { "s" }
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "// I: three errors, then `scenario rejected with 3 errors`. Expected diagnostics:\n//   a.bad.sim:17:24: `X` is not declared (help: did you mean `Y`?)\n//   a.bad.sim:31:5: `F` takes 2 arguments, but 1 was given\nscenario \"s\" { cpus 1; }\n// not part of the block: z.sim:1:1: no\n";

    #[test]
    fn reads_the_listed_diagnostics_and_the_count() {
        let e = expectations(HEAD);
        assert_eq!(e.count, Some(3));
        assert_eq!(e.diagnostics.len(), 2);
        assert_eq!(
            e.diagnostics[0],
            ExpectedDiagnostic {
                file: "a.bad.sim".into(),
                line: 17,
                col: 24,
                message: "`X` is not declared".into(),
                help: Some("did you mean `Y`?".into()),
            }
        );
        assert_eq!(e.diagnostics[1].help, None);
        assert_eq!(
            e.diagnostics[1].message,
            "`F` takes 2 arguments, but 1 was given"
        );
    }

    #[test]
    fn names_and_singular_count() {
        assert!(is_bad_sim(Path::new("dir/x.bad.sim")));
        assert!(!is_bad_sim(Path::new("dir/x.sim")));
        assert_eq!(rejected_count("rejected with 1 error, exit 2"), Some(1));
        assert_eq!(rejected_count("is rejected with the nearest"), None);
    }
}
