//! Rejected input on standard error: load errors rendered for people.
//!
//! Syntax and check errors go through miette's graphical handler, so the
//! user sees `file:line:col`, the source line with a labelled caret, and the
//! help ("did you mean `DeviceLock`?"). Colour only when standard error is a
//! terminal (and `NO_COLOR` is unset); otherwise plain Unicode.

use miette::{GraphicalReportHandler, GraphicalTheme};
use scenario::{LoadError, SimError};

/// Render one diagnostic, ending with a newline.
pub fn render_diagnostic(error: &SimError, color: bool) -> String {
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme);
    let mut out = String::new();
    if handler.render_report(&mut out, error).is_err() {
        // The handler only fails on a broken source span; the plain form
        // still carries `file:line:col: message`.
        out = format!("error: {error}\n");
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// Everything to print on standard error for a load error.
pub fn render_load_error(error: &LoadError, color: bool) -> String {
    match error {
        LoadError::Io { path, message } => format!("error: cannot read {path}: {message}\n"),
        LoadError::Rejected(errors) if errors.is_empty() => {
            "error: the scenario was rejected (no diagnostic given)\n".to_string()
        }
        LoadError::Rejected(errors) => {
            let mut out: String = errors.iter().map(|e| render_diagnostic(e, color)).collect();
            out.push_str(&rejected_line(errors.len()));
            out
        }
    }
}

/// The last line of a rejection: how many errors. The checker stops
/// collecting at [`scenario::check::MAX_ERRORS`], so at the cap the count
/// is a floor and the line says so.
fn rejected_line(n: usize) -> String {
    let s = if n == 1 { "" } else { "s" };
    if n >= scenario::check::MAX_ERRORS {
        format!("error: scenario rejected with {n} error{s} (more not shown)\n")
    } else {
        format!("error: scenario rejected with {n} error{s}\n")
    }
}

/// Whether standard error should get colour under `--color auto`.
pub fn stderr_color() -> bool {
    use std::io::IsTerminal;
    crate::color::wanted(crate::cli::ColorArg::Auto, std::io::stderr().is_terminal())
}

/// Check-time warnings of a loaded program, each with its caret and
/// suggestion, for standard error (empty when there are none). They are
/// not part of the run report.
pub fn render_warnings(program: &scenario::Program, color: bool) -> String {
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme);
    let mut out = String::new();
    for w in &program.warnings {
        let warning = Warning(w);
        let mut one = String::new();
        if handler.render_report(&mut one, &warning).is_err() {
            one = format!("warning: {w}\n");
        }
        if !one.ends_with('\n') {
            one.push('\n');
        }
        out.push_str(&one);
    }
    out
}

/// A check diagnostic shown as a warning: the same text, caret and help,
/// with warning severity.
#[derive(Debug)]
struct Warning<'a>(&'a SimError);

impl std::fmt::Display for Warning<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "warning: {}", self.0)
    }
}

impl std::error::Error for Warning<'_> {}

impl miette::Diagnostic for Warning<'_> {
    fn severity(&self) -> Option<miette::Severity> {
        Some(miette::Severity::Warning)
    }
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.0.help()
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.0.source_code()
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        self.0.labels()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scenario::ast::Span;
    use scenario::Source;

    fn misspelt() -> SimError {
        let text = "scenario \"s\" { cpus 1; }\nKSPIN_LOCK DeviceLock;\nthread T { KeAcquireSpinLock(&DevceLock, &Old); }\n";
        let source = Source::new("dir/bad.sim", text);
        let offset = text.find("DevceLock").unwrap();
        SimError::new(&source, Span::new(offset, 9), "undeclared name `DevceLock`")
            .label("not declared")
            .help("did you mean `DeviceLock`?")
    }

    #[test]
    fn graphical_diagnostic_has_location_caret_and_help() {
        let out = render_diagnostic(&misspelt(), false);
        assert!(out.contains("dir/bad.sim:3:31"), "{out}");
        assert!(
            out.contains("thread T { KeAcquireSpinLock(&DevceLock, &Old); }"),
            "{out}"
        );
        assert!(out.contains("not declared"), "{out}");
        assert!(out.contains("did you mean `DeviceLock`?"), "{out}");
        assert!(
            !out.contains('\u{1b}'),
            "no escape codes without colour: {out:?}"
        );
    }

    #[test]
    fn rejected_lists_every_diagnostic() {
        let err = LoadError::Rejected(vec![misspelt(), misspelt()]);
        let out = render_load_error(&err, false);
        assert_eq!(out.matches("undeclared name").count(), 2, "{out}");
        assert!(
            out.ends_with("error: scenario rejected with 2 errors\n"),
            "{out}"
        );
    }

    #[test]
    fn rejected_at_the_cap_says_more_are_not_shown() {
        let n = scenario::check::MAX_ERRORS;
        let err = LoadError::Rejected(vec![misspelt(); n]);
        let out = render_load_error(&err, false);
        assert!(
            out.ends_with(&format!(
                "error: scenario rejected with {n} errors (more not shown)\n"
            )),
            "{out}"
        );
    }

    #[test]
    fn io_error_names_the_file() {
        let err = LoadError::Io {
            path: "x.sim".into(),
            message: "No such file or directory (os error 2)".into(),
        };
        assert_eq!(
            render_load_error(&err, false),
            "error: cannot read x.sim: No such file or directory (os error 2)\n"
        );
    }
}
