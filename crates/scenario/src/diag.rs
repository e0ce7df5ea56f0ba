//! Diagnostics for rejected input: every error names `file:line:col`, puts a
//! caret under the span and, where one exists, suggests a fix ("did you mean
//! `DeviceLock`?"). Rendered by miette.

use crate::ast::Span;
use miette::{Diagnostic, MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A scenario file's text and name, shared by all its diagnostics.
///
/// The start of every line is indexed once, when the source is made, so
/// turning a byte offset into `line:column` is a binary search. A line ends
/// at LF, CRLF or a lone CR; a UTF-8 byte-order mark at the start is dropped
/// (offsets count from the first byte after it).
#[derive(Clone, Debug)]
pub struct Source {
    /// The name shown in diagnostics (usually the path).
    pub name: String,
    /// The text, without a leading byte-order mark.
    pub text: Arc<str>,
    /// Byte offset of the first byte of every line; `line_starts[0] == 0`.
    line_starts: Arc<[usize]>,
    /// Files `#include`d after the first: each one's text is appended to
    /// `text` (after a line ending), starting at the offset given; offsets
    /// from there on belong to that file, with lines counted from its start.
    segments: Arc<[(usize, String)]>,
    /// The line [`Source::line_col`] found last: tried first, since the
    /// checker asks for lines in file order (a search of the line starts
    /// of a 100,000-line file reads far apart places of them).
    last_line: LineHint,
}

/// A line index, shared by clones only as a starting value.
#[derive(Debug, Default)]
struct LineHint(AtomicUsize);

impl Clone for LineHint {
    fn clone(&self) -> Self {
        LineHint(AtomicUsize::new(self.0.load(Ordering::Relaxed)))
    }
}

/// The UTF-8 byte-order mark.
const BOM: &str = "\u{feff}";

/// Most bytes of one line a diagnostic shows; a longer line is cut to a
/// window around the caret, with `…` where text was left out.
pub const SNIPPET_WIDTH: usize = 120;

impl Source {
    /// A source named `name` (a leading byte-order mark is dropped).
    pub fn new(name: impl Into<String>, text: impl Into<Arc<str>>) -> Self {
        let mut text: Arc<str> = text.into();
        if let Some(rest) = text.strip_prefix(BOM) {
            text = Arc::from(rest);
        }
        let line_starts = line_starts(text.as_bytes());
        Source {
            name: name.into(),
            text,
            line_starts,
            segments: Arc::from(vec![]),
            last_line: LineHint::default(),
        }
    }

    /// A source made of several files: the first, named `name`, then each
    /// of `files` (name and text) appended after a line ending. Offsets in
    /// an appended file report its name and its own line numbers.
    pub fn with_files(name: impl Into<String>, text: &str, files: &[(String, String)]) -> Self {
        let strip = |t: &str| t.strip_prefix(BOM).unwrap_or(t).to_string();
        let mut all = strip(text);
        let mut segments = vec![];
        for (n, t) in files {
            all.push('\n');
            segments.push((all.len(), n.clone()));
            all.push_str(&strip(t));
        }
        let mut s = Source::new(name, all);
        s.segments = segments.into();
        s
    }

    /// The offset where file `index` starts (0: the first file; then the
    /// appended ones in order); the end of the text past the last.
    pub fn file_of_index(&self, index: usize) -> usize {
        match index {
            0 => 0,
            i => self.segments.get(i - 1).map_or(self.text.len(), |s| s.0),
        }
    }

    /// Index of the file holding `offset`: 0 for the first file, then the
    /// appended (`#include`d) ones in order.
    pub fn file_index(&self, offset: usize) -> usize {
        self.segments
            .iter()
            .rposition(|(start, _)| *start <= offset)
            .map_or(0, |i| i + 1)
    }

    /// Names of the appended (`#include`d) files, in order (file 1, 2, ...).
    pub fn included_files(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().map(|(_, n)| n.as_str())
    }

    /// The file holding `offset`: its name, and the offset its text starts at.
    pub fn file_of(&self, offset: usize) -> (&str, usize) {
        match self
            .segments
            .iter()
            .rev()
            .find(|(start, _)| *start <= offset)
        {
            Some((start, name)) => (name, *start),
            None => (&self.name, 0),
        }
    }

    /// 1-based line and column (in bytes) of a byte offset, in its file.
    pub fn line_col(&self, offset: usize) -> (u32, u32) {
        let offset = offset.min(self.text.len());
        let line = self.line_index_near_last(offset);
        let col = offset - self.line_starts[line];
        let first = match self.file_of(offset).1 {
            0 => 0,
            start => self.line_index(start),
        };
        (
            u32::try_from(line - first + 1).unwrap_or(u32::MAX),
            u32::try_from(col + 1).unwrap_or(u32::MAX),
        )
    }

    /// Number of lines (text after the last line ending, even none, is a line).
    pub fn line_count(&self) -> usize {
        self.line_starts.len()
    }

    /// The text of a 1-based line (without its line ending); empty past the
    /// last line.
    pub fn line_text(&self, line: u32) -> &str {
        let (start, end) = self.line_range(line.saturating_sub(1) as usize);
        self.text.get(start..end).unwrap_or("")
    }

    /// [`Source::line_index`], trying the line found last and the one
    /// after it before searching.
    fn line_index_near_last(&self, offset: usize) -> usize {
        let last = self.last_line.0.load(Ordering::Relaxed);
        let holds = |i: usize| {
            self.line_starts.get(i).is_some_and(|&s| s <= offset)
                && self
                    .line_starts
                    .get(i + 1)
                    .is_none_or(|&next| offset < next)
        };
        let line = if holds(last) {
            last
        } else if holds(last + 1) {
            last + 1
        } else {
            self.line_index(offset)
        };
        self.last_line.0.store(line, Ordering::Relaxed);
        line
    }

    /// 0-based index of the line holding `offset` (already clamped).
    fn line_index(&self, offset: usize) -> usize {
        self.line_starts
            .partition_point(|&start| start <= offset)
            .saturating_sub(1)
    }

    /// Byte range of a 0-based line, without its line ending.
    fn line_range(&self, index: usize) -> (usize, usize) {
        let len = self.text.len();
        let Some(&start) = self.line_starts.get(index) else {
            return (len, len);
        };
        let mut end = self.line_starts.get(index + 1).copied().unwrap_or(len);
        let bytes = self.text.as_bytes();
        if end > start && bytes[end - 1] == b'\n' {
            end -= 1;
        }
        if end > start && bytes[end - 1] == b'\r' {
            end -= 1;
        }
        (start, end)
    }

    /// The lines around `span` as a diagnostic shows them: the line before,
    /// the caret's line and the line after, each cut to [`SNIPPET_WIDTH`]
    /// bytes around the caret's column.
    fn snippet(&self, span: Span) -> Snippet {
        let offset = span.offset.min(self.text.len());
        let line = self.line_index(offset);
        let (start, end) = self.line_range(line);
        let caret_col = offset.min(end) - start;
        let caret_len = span.len.min(end.saturating_sub(offset));
        // The window of columns shown, the same on every line shown.
        let line_len = end - start;
        let (win_start, win_end) = if line_len <= SNIPPET_WIDTH {
            (0, SNIPPET_WIDTH)
        } else {
            let lead = SNIPPET_WIDTH / 3;
            let from = caret_col.saturating_sub(lead).min(line_len - SNIPPET_WIDTH);
            (from, from + SNIPPET_WIDTH)
        };
        // Context lines stay inside the caret's file.
        let (file_name, file_start) = self.file_of(offset);
        let file_first = self.line_index(file_start);
        let file_last = self
            .segments
            .iter()
            .find(|(start, _)| *start > offset)
            .map_or(self.line_count() - 1, |(start, _)| {
                self.line_index(*start).saturating_sub(1)
            });
        let first = line.saturating_sub(1).max(file_first);
        let last = (line + 1).min(file_last).max(line);
        let mut text = String::new();
        let mut shown = SourceSpan::from((0, 0));
        let mut column_shift = 0isize;
        for index in first..=last {
            if index > first {
                text.push('\n');
            }
            let (ls, le) = self.line_range(index);
            let body = &self.text[ls..le];
            // A context line that fits is shown whole; a long one gets the
            // caret line's window.
            let (from, to) = if index != line && body.len() <= SNIPPET_WIDTH {
                (0, body.len())
            } else {
                (
                    floor_char_boundary(body, win_start.min(body.len())),
                    floor_char_boundary(body, win_end.min(body.len())),
                )
            };
            if from > 0 {
                text.push('…');
            }
            if index == line {
                let at = text.len() + caret_col.saturating_sub(from).min(to - from);
                let len = caret_len.min(to.saturating_sub(caret_col));
                shown = SourceSpan::from((at, len));
                column_shift = caret_col as isize - (at - text_line_start(&text)) as isize;
            }
            text.push_str(&body[from..to]);
            if to < body.len() {
                text.push('…');
            }
        }
        Snippet {
            name: file_name.to_string(),
            text,
            first_line: first - file_first,
            caret_line: line - first,
            column_shift,
            shown,
        }
    }
}

/// Start of the last line of `text`.
fn text_line_start(text: &str) -> usize {
    text.rfind('\n').map_or(0, |nl| nl + 1)
}

/// The largest char boundary of `s` at or below `at`.
fn floor_char_boundary(s: &str, mut at: usize) -> usize {
    while at > 0 && !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// Offsets where lines start: 0, and after every LF, CRLF and lone CR
/// (the end of a file that ends with a line ending starts an empty line).
fn line_starts(bytes: &[u8]) -> Arc<[usize]> {
    let mut starts = vec![0];
    for (i, &b) in bytes.iter().enumerate() {
        let ends_line = b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n'));
        if ends_line {
            starts.push(i + 1);
        }
    }
    starts.into()
}

/// The few lines of source a diagnostic shows, cut out of the file so that
/// rendering never walks (or prints) the whole file.
#[derive(Clone, Debug)]
pub struct Snippet {
    name: String,
    /// The lines shown, joined with `\n`, long ones cut to a window.
    text: String,
    /// 0-based line number of the snippet's first line in the file.
    first_line: usize,
    /// Which snippet line holds the caret.
    caret_line: usize,
    /// File column minus snippet column on the caret's line.
    column_shift: isize,
    /// The caret's span in the snippet.
    shown: SourceSpan,
}

impl Snippet {
    /// The text shown (for tests and plain renderers).
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl SourceCode for Snippet {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let inner = self
            .text
            .read_span(span, context_lines_before, context_lines_after)?;
        let column = if inner.line() == self.caret_line {
            (inner.column() as isize + self.column_shift).max(0) as usize
        } else {
            inner.column()
        };
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            *inner.span(),
            inner.line() + self.first_line,
            column,
            inner.line_count(),
        )))
    }
}

/// One rejected-input error (or, in [`crate::Program::warnings`], a
/// check-time warning).
#[derive(Clone, Debug, thiserror::Error, Diagnostic)]
#[error("{location}: {message}")]
pub struct SimError {
    pub message: String,
    /// `file:line:col`, also in the message so plain-text output has it.
    pub location: String,
    /// The lines around the error, as shown under the message.
    #[source_code]
    pub src: Snippet,
    /// Where the error is, in bytes of the whole file.
    pub span: SourceSpan,
    /// The caret's place in [`SimError::src`].
    #[label("{label}")]
    shown: SourceSpan,
    pub label: String,
    #[help]
    pub help: Option<String>,
}

impl SimError {
    /// An error at `span` of `source`.
    pub fn new(source: &Source, span: Span, message: impl Into<String>) -> Self {
        let (line, col) = source.line_col(span.offset);
        let src = source.snippet(span);
        SimError {
            message: message.into(),
            location: format!("{}:{}:{}", source.file_of(span.offset).0, line, col),
            shown: src.shown,
            src,
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
    fn line_col_in_any_order() {
        let text = "a\nbb\n\nccc\r\nd\re";
        let s = Source::new("f.sim", text);
        let fresh = |o: usize| Source::new("f.sim", text).line_col(o);
        for o in (0..=text.len())
            .chain((0..=text.len()).rev())
            .chain([7, 0, 12, 3, 3, 99])
        {
            assert_eq!(s.line_col(o), fresh(o), "offset {o}");
        }
    }

    #[test]
    fn line_col_counts_from_one() {
        let s = Source::new("f.sim", "ab\ncd\n");
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(4), (2, 2));
        assert_eq!(s.line_text(2), "cd");
    }

    #[test]
    fn cr_lf_and_crlf_all_end_lines() {
        let s = Source::new("f.sim", "a\rb\r\nc\nd");
        assert_eq!(s.line_col(2), (2, 1));
        assert_eq!(s.line_col(5), (3, 1));
        assert_eq!(s.line_col(7), (4, 1));
        assert_eq!(s.line_text(1), "a");
        assert_eq!(s.line_text(2), "b");
        assert_eq!(s.line_text(3), "c");
        assert_eq!(s.line_text(4), "d");
        assert_eq!(s.line_text(9), "");
    }

    #[test]
    fn end_of_file_after_a_newline_is_on_the_next_line() {
        let s = Source::new("f.sim", "ab\n");
        assert_eq!(s.line_col(3), (2, 1));
        assert_eq!(s.line_col(99), (2, 1));
    }

    #[test]
    fn byte_order_mark_is_dropped() {
        let s = Source::new("f.sim", "\u{feff}ab\ncd");
        assert_eq!(&*s.text, "ab\ncd");
        assert_eq!(s.line_col(0), (1, 1));
    }

    #[test]
    fn long_line_is_shown_as_a_window_around_the_caret() {
        let line = format!("{}BAD{}", "x".repeat(100_000), "y".repeat(100_000));
        let text = format!("first\n{line}\nlast\n");
        let s = Source::new("f.sim", text.as_str());
        let offset = text.find("BAD").unwrap();
        let e = SimError::new(&s, Span::new(offset, 3), "bad");
        assert_eq!(e.location, "f.sim:2:100001");
        let shown = e.src.text();
        assert!(
            shown.len() < 3 * (SNIPPET_WIDTH + 8),
            "{} bytes",
            shown.len()
        );
        assert_eq!(&shown[e.shown.offset()..e.shown.offset() + 3], "BAD");
        assert!(shown.starts_with("first\n…x"), "{shown}");
        assert!(shown.ends_with("y…\nlast"), "{shown}");
        // miette's own header (line and column) agrees with the location.
        let contents = e.src.read_span(&e.shown, 0, 0).unwrap();
        assert_eq!((contents.line() + 1, contents.column() + 1), (2, 100_001));
    }

    #[test]
    fn caret_at_end_of_a_long_line_stays_inside_the_window() {
        let text = format!("{};", "x".repeat(10_000));
        let s = Source::new("f.sim", text.as_str());
        let e = SimError::new(&s, Span::new(10_000, 1), "bad");
        let shown = e.src.text();
        assert_eq!(&shown[e.shown.offset()..e.shown.offset() + 1], ";");
    }

    #[test]
    fn suggests_near_names_only() {
        let names = ["DeviceLock", "Count"];
        assert_eq!(nearest("DevceLock", names), Some("DeviceLock"));
        assert_eq!(nearest("devicelock", names), Some("DeviceLock"));
        assert_eq!(nearest("Zebra", names), None);
    }
}
