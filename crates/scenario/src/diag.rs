//! Diagnostics for rejected input: every error names `file:line:col`, puts a
//! caret under the span and, where one exists, suggests a fix ("did you mean
//! `DeviceLock`?"). Rendered by miette.

use crate::ast::Span;
use miette::{Diagnostic, NamedSource, SourceSpan};
use std::sync::Arc;

/// A scenario file's text and name, shared by all its diagnostics.
#[derive(Clone, Debug)]
pub struct Source {
    pub name: String,
    pub text: Arc<str>,
}

impl Source {
    pub fn new(name: impl Into<String>, text: impl Into<Arc<str>>) -> Self {
        Source {
            name: name.into(),
            text: text.into(),
        }
    }

    /// 1-based line and column of a byte offset.
    pub fn line_col(&self, offset: usize) -> (u32, u32) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.bytes().filter(|&b| b == b'\n').count() as u32 + 1;
        let col = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) as u32 + 1;
        (line, col)
    }

    /// The text of a 1-based line (without its newline).
    pub fn line_text(&self, line: u32) -> &str {
        self.text
            .lines()
            .nth(line.saturating_sub(1) as usize)
            .unwrap_or("")
    }
}

/// One rejected-input error.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{location}: {message}")]
pub struct SimError {
    pub message: String,
    /// `file:line:col`, also in the message so plain-text output has it.
    pub location: String,
    #[source_code]
    pub src: NamedSource<Arc<str>>,
    #[label("{label}")]
    pub span: SourceSpan,
    pub label: String,
    #[help]
    pub help: Option<String>,
}

impl SimError {
    /// An error at `span` of `source`.
    pub fn new(source: &Source, span: Span, message: impl Into<String>) -> Self {
        let (line, col) = source.line_col(span.offset);
        SimError {
            message: message.into(),
            location: format!("{}:{}:{}", source.name, line, col),
            src: NamedSource::new(source.name.clone(), source.text.clone()),
            span: span.into(),
            label: "here".into(),
            help: None,
        }
    }

    /// Replace the label under the caret.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// Add a suggestion.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// The candidate closest to `name` (Levenshtein, case-insensitive), if any
/// is close enough to be a plausible misspelling.
pub fn nearest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = strsim::levenshtein(&lower, &c.to_ascii_lowercase());
        let limit = (name.len().max(c.len()) / 3).max(2);
        if d <= limit && best.is_none_or(|(bd, bc)| d < bd || (d == bd && c < bc)) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// "did you mean `X`?" for a misspelt name, if there is a near one.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    nearest(name, candidates).map(|c| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let s = Source::new("f.sim", "ab\ncd\n");
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(4), (2, 2));
        assert_eq!(s.line_text(2), "cd");
    }

    #[test]
    fn suggests_near_names_only() {
        let names = ["DeviceLock", "Count"];
        assert_eq!(nearest("DevceLock", names), Some("DeviceLock"));
        assert_eq!(nearest("devicelock", names), Some("DeviceLock"));
        assert_eq!(nearest("Zebra", names), None);
    }
}
