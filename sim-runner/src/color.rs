//! `--color auto|always|never` and `NO_COLOR`: which stream gets colour,
//! and the few styles the command line uses (ANSI SGR codes).
//!
//! `auto` colours a stream when it is a terminal and `NO_COLOR` is unset
//! or empty (<https://no-color.org>); `always` and `never` are explicit and
//! win over `NO_COLOR`, as the convention asks of command-line flags.

use crate::cli::ColorArg;

/// Whether colour is wanted on a stream, given whether it is a terminal.
pub fn wanted(choice: ColorArg, is_terminal: bool) -> bool {
    match choice {
        ColorArg::Always => true,
        ColorArg::Never => false,
        ColorArg::Auto => is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    }
}

/// Colour for standard output and standard error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Colors {
    /// Standard output may be coloured.
    pub out: bool,
    /// Standard error may be coloured.
    pub err: bool,
}

impl Colors {
    /// No colour anywhere.
    pub const NONE: Colors = Colors {
        out: false,
        err: false,
    };

    /// Resolve `--color` against the process's real streams.
    pub fn resolve(choice: ColorArg) -> Colors {
        use std::io::IsTerminal;
        Colors {
            out: wanted(choice, std::io::stdout().is_terminal()),
            err: wanted(choice, std::io::stderr().is_terminal()),
        }
    }
}

/// Styles text when colour is on, leaves it as it is otherwise.
#[derive(Clone, Copy, Debug)]
pub struct Paint {
    on: bool,
}

impl Paint {
    /// A painter that colours only when `on`.
    pub fn new(on: bool) -> Self {
        Paint { on }
    }

    /// Whether this painter colours.
    pub fn is_on(&self) -> bool {
        self.on
    }

    fn sgr(&self, code: &str, text: &str) -> String {
        if self.on {
            format!("\u{1b}[{code}m{text}\u{1b}[0m")
        } else {
            text.to_string()
        }
    }

    /// A passing verdict (bold green).
    pub fn pass(&self, text: &str) -> String {
        self.sgr("1;32", text)
    }

    /// A failing verdict (bold red).
    pub fn fail(&self, text: &str) -> String {
        self.sgr("1;31", text)
    }

    /// A warning (bold yellow).
    pub fn warn(&self, text: &str) -> String {
        self.sgr("1;33", text)
    }

    /// Something to notice (bold).
    pub fn bold(&self, text: &str) -> String {
        self.sgr("1", text)
    }

    /// Secondary text (dim).
    pub fn dim(&self, text: &str) -> String {
        self.sgr("2", text)
    }
}

/// Colour a rendered report (`run`, `explore`, `rules`, `explain`) line by
/// line: the banner, section heads, table head and rule name bold, the stop code and a failed assertion
/// red, warnings yellow, the expectation green when met and red when not.
/// The text is unchanged when `paint` is off.
pub fn highlight(text: &str, paint: Paint) -> String {
    if !paint.is_on() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 256);
    for line in text.split_inclusive('\n') {
        let (body, nl) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        let styled = if body.starts_with("EXPECTATION:") {
            if body.contains("NOT met") {
                paint.fail(body)
            } else {
                paint.pass(body)
            }
        } else if body.starts_with("BUGCHECK_CODE:")
            || body.starts_with("ASSERTION FAILED")
            || (body.starts_with("seed ") && body.contains("breaks the expectation"))
            || (body.starts_with("  ") && body.contains(" BROKEN "))
        {
            paint.fail(body)
        } else if body.starts_with("WARNINGS:") && !body.ends_with("none") {
            paint.warn(body)
        } else if body.starts_with('*')
            || body.starts_with("replay it:")
            || (body.starts_with("RULE ") && body.contains("OUTCOME"))
            || (!body.is_empty()
                && !body.contains(' ')
                && body
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            || (!body.is_empty()
                && body.ends_with(':')
                && body
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c == '_' || c == ':'))
        {
            paint.bold(body)
        } else {
            body.to_string()
        };
        out.push_str(&styled);
        out.push_str(nl);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highlight_colours_only_when_on() {
        let text = "EXPECTATION: clean — NOT met: x\nBUGCHECK_CODE:  0xF\nplain\n";
        assert_eq!(highlight(text, Paint::new(false)), text);
        let on = highlight(text, Paint::new(true));
        assert!(on.contains("\u{1b}[1;31mEXPECTATION: clean — NOT met: x\u{1b}[0m\n"));
        assert!(on.contains("\u{1b}[1;31mBUGCHECK_CODE:  0xF\u{1b}[0m\n"));
        assert!(on.ends_with("plain\n"));
    }

    #[test]
    fn explicit_choices_ignore_the_terminal() {
        assert!(wanted(ColorArg::Always, false));
        assert!(!wanted(ColorArg::Never, true));
        assert!(!wanted(ColorArg::Auto, false));
    }

    #[test]
    fn paint_only_when_on() {
        assert_eq!(Paint::new(false).fail("FAIL"), "FAIL");
        assert_eq!(Paint::new(true).fail("FAIL"), "\u{1b}[1;31mFAIL\u{1b}[0m");
    }
}
