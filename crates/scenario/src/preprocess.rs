//! Preprocessing (contract v2, "Language for real drivers", Preprocessing):
//! `#include "path"` and `#define` (object-like and function-like, without
//! `#`, `##` or variadic macros), on tokens.
//!
//! Included files are found first (a textual scan of their `#include`
//! lines), then every file's text goes into one [`Source`] whose appended
//! parts keep their own names and line numbers, so diagnostics point into
//! the included file. The tokens of that source are then walked in C order:
//! a directive is handled where it stands, an `#include` splices the
//! included file's tokens in (once: a second include of one file is
//! ignored; an include cycle is an error), and macro names expand. Tokens a
//! macro produces carry the span of its invocation, so a diagnostic or an
//! `ASSERT` text shows the text as written.

use crate::ast::Span;
use crate::diag::{SimError, Source};
use crate::lexer::{tokenize_partial, Token, TokenKind};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Most files one scenario may include (directly or not).
const MAX_FILES: usize = 64;
/// Most tokens macro expansion may produce for one scenario.
const MAX_TOKENS: usize = 4_000_000;
/// Deepest macro nesting.
const MAX_EXPANSION_DEPTH: usize = 64;

/// A file of the scenario: its name in diagnostics, text, and the
/// directory its includes are relative to.
struct FileText {
    name: String,
    text: String,
    dir: PathBuf,
    /// The canonical path (to recognise a second include), if on disk.
    key: Option<PathBuf>,
}

/// The preprocessed scenario: its source (all files), the tokens to parse
/// (ending with `Eof`), the lexical error that cut the tokens short (if
/// any) and the preprocessing errors.
#[derive(Debug)]
pub struct Preprocessed {
    pub source: Source,
    pub tokens: Vec<Token>,
    pub lex_error: Option<SimError>,
    pub errors: Vec<SimError>,
}

/// A `#define`.
#[derive(Clone, Debug)]
struct Macro {
    /// `Some` for a function-like macro: its parameter names.
    params: Option<Vec<String>>,
    body: Vec<TokenKind>,
}

/// The `"path"` of each `#include "path"` line of `text`, in order (a
/// textual scan: directives are whole lines).
fn include_paths(text: &str) -> Vec<String> {
    let mut out = vec![];
    for line in text.lines() {
        let l = line.trim_start();
        let Some(rest) = l.strip_prefix('#') else {
            continue;
        };
        let Some(rest) = rest.trim_start().strip_prefix("include") else {
            continue;
        };
        let rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix('"') {
            if let Some(end) = r.find('"') {
                out.push(r[..end].to_string());
            }
        }
    }
    out
}

/// Preprocess the scenario `name` with text `text`; includes are read
/// relative to `name`'s directory.
pub fn preprocess(name: &str, text: &str) -> Preprocessed {
    let dir = Path::new(name)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut files = vec![FileText {
        name: name.to_string(),
        text: text.to_string(),
        dir,
        key: std::fs::canonicalize(name).ok(),
    }];
    // (file, path as written) -> index of the file read, or why not.
    let mut resolved: HashMap<(usize, String), Result<usize, String>> = HashMap::new();
    let mut i = 0;
    // Bytes of every included file so far: together they keep to the
    // limit of one scenario file.
    let mut included_bytes: u64 = 0;
    while i < files.len() {
        for p in include_paths(&files[i].text) {
            if resolved.contains_key(&(i, p.clone())) {
                continue;
            }
            let full = files[i].dir.join(&p);
            let key = std::fs::canonicalize(&full).ok();
            let known = files.iter().position(|f| f.key.is_some() && f.key == key);
            let r = match known {
                Some(k) => Ok(k),
                None if files.len() >= MAX_FILES => {
                    Err(format!("more than {MAX_FILES} files are included"))
                }
                None => match read_include(&full, &mut included_bytes) {
                    Ok(bytes) => match String::from_utf8(bytes) {
                        Ok(t) => {
                            files.push(FileText {
                                name: full.display().to_string(),
                                text: t,
                                dir: full.parent().map(Path::to_path_buf).unwrap_or_default(),
                                key,
                            });
                            Ok(files.len() - 1)
                        }
                        Err(_) => Err("the file is not valid UTF-8".to_string()),
                    },
                    Err(e) => Err(e.to_string()),
                },
            };
            resolved.insert((i, p), r);
        }
        i += 1;
    }
    let rest: Vec<(String, String)> = files[1..]
        .iter()
        .map(|f| (f.name.clone(), f.text.clone()))
        .collect();
    let source = if rest.is_empty() {
        Source::new(name, text)
    } else {
        Source::with_files(name, text, &rest)
    };
    let (tokens, lex_error) = tokenize_partial(&source);
    // One file and no `#` anywhere: no directive, so no macro either, and
    // walking the tokens would copy every one of them unchanged. The
    // lexer's tokens are the result as they are.
    if files.len() == 1 && !tokens.iter().any(|t| t.kind == TokenKind::Hash) {
        return Preprocessed {
            source,
            tokens,
            lex_error,
            errors: vec![],
        };
    }
    // The token range of every file.
    let starts: Vec<usize> = (0..files.len())
        .map(|f| if f == 0 { 0 } else { source.file_of_index(f) })
        .collect();
    let eof = tokens.last().cloned().unwrap_or(Token {
        kind: TokenKind::Eof,
        span: Span::new(source.text.len(), 0),
    });
    let body = &tokens[..tokens.len().saturating_sub(1)];
    let ranges: Vec<(usize, usize)> = (0..files.len())
        .map(|f| {
            let lo = starts[f];
            let hi = starts.get(f + 1).copied().unwrap_or(usize::MAX);
            let a = body.partition_point(|t| t.span.offset < lo);
            let b = body.partition_point(|t| t.span.offset < hi);
            (a, b)
        })
        .collect();
    let mut pp = Pp {
        source: &source,
        tokens: body,
        ranges,
        resolved,
        macros: HashMap::new(),
        out: Vec::with_capacity(tokens.len()),
        errors: vec![],
        included: vec![false; files.len()],
        stack: vec![],
        names: files
            .iter()
            .map(|f| {
                Path::new(&f.name)
                    .file_name()
                    .map_or(f.name.clone(), |n| n.to_string_lossy().into_owned())
            })
            .collect(),
    };
    pp.file(0);
    let mut out = pp.out;
    let errors = pp.errors;
    out.push(eof);
    Preprocessed {
        source,
        tokens: out,
        lex_error,
        errors,
    }
}

struct Pp<'a> {
    source: &'a Source,
    tokens: &'a [Token],
    ranges: Vec<(usize, usize)>,
    resolved: HashMap<(usize, String), Result<usize, String>>,
    macros: HashMap<String, (Macro, Span)>,
    out: Vec<Token>,
    errors: Vec<SimError>,
    included: Vec<bool>,
    stack: Vec<usize>,
    /// Each file's name as a cycle is told (its last path component).
    names: Vec<String>,
}

impl Pp<'_> {
    fn err(&self, span: Span, msg: impl Into<String>) -> SimError {
        SimError::new(self.source, span, msg)
    }

    fn boxed(&self, span: Span, msg: impl Into<String>) -> Box<SimError> {
        Box::new(self.err(span, msg))
    }

    /// Does a line end lie between byte offsets `a` and `b` (a `\` line
    /// continuation does not count)?
    fn line_break_between(&self, a: usize, b: usize) -> bool {
        let text = self.source.text.as_bytes();
        let gap = &text[a.min(text.len())..b.min(text.len())];
        let mut i = 0;
        while i < gap.len() {
            if gap[i] == b'\n' || gap[i] == b'\r' {
                let continued = i > 0 && gap[i - 1] == b'\\'
                    || (gap[i] == b'\n' && i > 1 && gap[i - 1] == b'\r' && gap[i - 2] == b'\\');
                if !continued {
                    return true;
                }
            }
            i += 1;
        }
        false
    }

    /// Process file `f`'s tokens into `out`.
    fn file(&mut self, f: usize) {
        self.included[f] = true;
        self.stack.push(f);
        let (a, b) = self.ranges[f];
        let mut i = a;
        let file_start = self.tokens.get(a).map_or(0, |t| t.span.offset);
        let _ = file_start;
        while i < b {
            let tok = &self.tokens[i];
            let at_line_start = i == a
                || self.line_break_between(
                    self.tokens[i - 1].span.offset + self.tokens[i - 1].span.len,
                    tok.span.offset,
                );
            if tok.kind == TokenKind::Hash && at_line_start {
                // The directive: the tokens up to the end of its line.
                let mut j = i + 1;
                while j < b
                    && !self.line_break_between(
                        self.tokens[j - 1].span.offset + self.tokens[j - 1].span.len,
                        self.tokens[j].span.offset,
                    )
                {
                    j += 1;
                }
                let line: Vec<Token> = self.tokens[i..j].to_vec();
                self.directive(f, &line);
                i = j;
                continue;
            }
            if tok.kind == TokenKind::Hash {
                self.errors
                    .push(self.err(tok.span, "`#` must start a line").help(
                    "preprocessing directives (`#define`, `#include`) stand on lines of their own",
                ));
                i += 1;
                continue;
            }
            if f != 0 {
                if let TokenKind::Ident(w) = &tok.kind {
                    if w == "scenario"
                        && matches!(
                            self.tokens.get(i + 1).map(|t| &t.kind),
                            Some(TokenKind::Str(_))
                        )
                    {
                        self.errors.push(
                            self.err(
                                tok.span,
                                "an included file may not contain a `scenario` header",
                            )
                            .label("header in an included file")
                            .help("keep the header in the scenario file itself"),
                        );
                    }
                }
            }
            // Macro expansion: the token and, for a call, its arguments.
            let end = b;
            i = self.expand_at(i, end);
        }
        self.stack.pop();
    }

    /// Expand (or copy) the token at `i` of the file stream; the index after
    /// what it consumed.
    fn expand_at(&mut self, i: usize, end: usize) -> usize {
        // The token stream outlives `self`'s borrows: no copy to look at it.
        let tokens = self.tokens;
        let tok = &tokens[i];
        let TokenKind::Ident(name) = &tok.kind else {
            self.out.push(tok.clone());
            return i + 1;
        };
        let Some((m, _)) = self.macros.get(name).cloned() else {
            self.out.push(tok.clone());
            return i + 1;
        };
        let stream = &tokens[i..end];
        let mut hidden = vec![];
        match self.invoke(&m, name, stream, &mut hidden, 0) {
            Ok(Some((used, mut produced))) => {
                let span = stream[0].span.to(stream[used - 1].span);
                for t in &mut produced {
                    t.span = span;
                }
                if self.out.len() + produced.len() > MAX_TOKENS {
                    self.errors
                        .push(self.err(span, "macro expansion is too large"));
                    return end;
                }
                self.out.extend(produced);
                i + used
            }
            Ok(None) => {
                self.out.push(stream[0].clone());
                i + 1
            }
            Err(e) => {
                self.errors.push(*e);
                i + 1
            }
        }
    }

    /// Invoke macro `m` (named `name`) at the start of `stream`: how many
    /// tokens of `stream` the invocation used, and what it expands to
    /// (fully); `None` for a function-like macro named without `(`.
    #[allow(clippy::type_complexity)]
    fn invoke(
        &self,
        m: &Macro,
        name: &str,
        stream: &[Token],
        hidden: &mut Vec<String>,
        depth: usize,
    ) -> Result<Option<(usize, Vec<Token>)>, Box<SimError>> {
        if depth > MAX_EXPANSION_DEPTH {
            return Err(Box::new(
                self.err(stream[0].span, "macros nest too deeply")
                    .help(format!("at most {MAX_EXPANSION_DEPTH} levels")),
            ));
        }
        let span = stream[0].span;
        let mk = |k: &TokenKind| Token {
            kind: k.clone(),
            span,
        };
        let (used, body): (usize, Vec<Token>) = match &m.params {
            None => (1, m.body.iter().map(mk).collect()),
            Some(params) => {
                if stream.get(1).map(|t| &t.kind) != Some(&TokenKind::LParen) {
                    return Ok(None);
                }
                // Arguments: split at top-level commas up to the matching `)`.
                let mut args: Vec<Vec<Token>> = vec![vec![]];
                let mut level = 0usize;
                let mut k = 2;
                loop {
                    let Some(t) = stream.get(k) else {
                        return Err(Box::new(
                            self.err(span, format!("unterminated call of macro `{name}`"))
                                .help("close the argument list with `)`"),
                        ));
                    };
                    match t.kind {
                        TokenKind::LParen => level += 1,
                        TokenKind::RParen if level == 0 => break,
                        TokenKind::RParen => level -= 1,
                        TokenKind::Comma if level == 0 => {
                            args.push(vec![]);
                            k += 1;
                            continue;
                        }
                        _ => {}
                    }
                    args.last_mut().expect("never empty").push(t.clone());
                    k += 1;
                }
                if params.is_empty() && args.len() == 1 && args[0].is_empty() {
                    args.clear();
                }
                if args.len() != params.len() {
                    return Err(Box::new(
                        self.err(
                            span.to(stream[k].span),
                            format!(
                                "macro `{name}` takes {} argument{}, but {} {} given",
                                params.len(),
                                if params.len() == 1 { "" } else { "s" },
                                args.len(),
                                if args.len() == 1 { "was" } else { "were" }
                            ),
                        )
                        .label("wrong number of arguments"),
                    ));
                }
                // Arguments are expanded before substitution, as in C.
                let mut expanded = vec![];
                for a in &args {
                    expanded.push(self.expand_list(a, hidden, depth + 1)?);
                }
                let mut body = vec![];
                for t in &m.body {
                    match t {
                        TokenKind::Ident(w) => match params.iter().position(|p| p == w) {
                            Some(p) => body.extend(expanded[p].iter().cloned()),
                            None => body.push(mk(t)),
                        },
                        _ => body.push(mk(t)),
                    }
                }
                (k + 1, body)
            }
        };
        hidden.push(name.to_string());
        let r = self.expand_list(&body, hidden, depth + 1);
        hidden.pop();
        Ok(Some((used, r?)))
    }

    /// Expand every macro in `list` (names in `hidden` stay as they are).
    fn expand_list(
        &self,
        list: &[Token],
        hidden: &mut Vec<String>,
        depth: usize,
    ) -> Result<Vec<Token>, Box<SimError>> {
        let mut out = vec![];
        let mut i = 0;
        while i < list.len() {
            let t = &list[i];
            if let TokenKind::Ident(w) = &t.kind {
                if !hidden.contains(w) {
                    if let Some((m, _)) = self.macros.get(w) {
                        if let Some((used, produced)) =
                            self.invoke(m, w, &list[i..], hidden, depth)?
                        {
                            if out.len() + produced.len() > MAX_TOKENS {
                                return Err(self.boxed(t.span, "macro expansion is too large"));
                            }
                            out.extend(produced);
                            i += used;
                            continue;
                        }
                    }
                }
            }
            out.push(t.clone());
            i += 1;
        }
        Ok(out)
    }

    /// One directive line (`#` and the rest of its line) of file `f`.
    fn directive(&mut self, f: usize, line: &[Token]) {
        let hash = line[0].span;
        let Some(word_tok) = line.get(1) else {
            self.errors.push(
                self.err(hash, "an empty preprocessing directive")
                    .help("write `#define NAME value` or `#include \"file\"`"),
            );
            return;
        };
        let word = match &word_tok.kind {
            TokenKind::Ident(w) => w.as_str(),
            _ => "",
        };
        let whole = hash.to(line[line.len() - 1].span);
        match word {
            "include" => self.include(f, line, whole),
            "define" => self.define(line, whole),
            _ => {
                let mut e = self
                    .err(
                        hash.to(word_tok.span),
                        format!("`#{word}` is not supported"),
                    )
                    .label("unsupported directive")
                    .help("only `#include \"file\"` and `#define` are supported");
                if let Some(h) =
                    crate::diag::did_you_mean(word, ["include", "define"].iter().copied())
                {
                    e = e.help(h);
                }
                self.errors.push(e);
            }
        }
    }

    fn include(&mut self, f: usize, line: &[Token], whole: Span) {
        let path = match line.get(2).map(|t| &t.kind) {
            Some(TokenKind::Str(p)) if line.len() == 3 => p.clone(),
            _ => {
                self.errors.push(
                    self.err(whole, "`#include` takes one file name in quotes")
                        .help("write `#include \"driver.h\"`"),
                );
                return;
            }
        };
        match self.resolved.get(&(f, path.clone())).cloned() {
            Some(Ok(k)) => {
                if let Some(at) = self.stack.iter().position(|&x| x == k) {
                    let msg = if at + 1 == self.stack.len() {
                        format!("`{path}` includes itself (an include cycle)")
                    } else {
                        let chain: Vec<&str> = self.stack[at..]
                            .iter()
                            .map(|&x| self.names[x].as_str())
                            .collect();
                        format!(
                            "`{path}` is included again while it is being included (an include cycle: {} → {})",
                            chain.join(" → "),
                            self.names[k]
                        )
                    };
                    self.errors.push(
                        self.err(whole, msg)
                            .label("cycle")
                            .help("include each header once, from the scenario file"),
                    );
                } else if !self.included[k] {
                    self.file(k);
                }
            }
            Some(Err(why)) => self.errors.push(
                self.err(whole, format!("cannot read `{path}`: {why}"))
                    .label("included here")
                    .help("the path is relative to the including file's directory"),
            ),
            None => self.errors.push(
                self.err(whole, format!("cannot read `{path}`"))
                    .help("an `#include` line stands alone on its line"),
            ),
        }
    }

    fn define(&mut self, line: &[Token], whole: Span) {
        let Some(name_tok) = line.get(2) else {
            self.errors.push(
                self.err(whole, "`#define` needs a name")
                    .help("write `#define NAME value`"),
            );
            return;
        };
        let TokenKind::Ident(name) = &name_tok.kind else {
            self.errors.push(
                self.err(name_tok.span, "expected a macro name after `#define`")
                    .help("write `#define NAME value`"),
            );
            return;
        };
        let mut k = 3;
        // `(` right after the name (no space): a function-like macro.
        let params = match line.get(3) {
            Some(t)
                if t.kind == TokenKind::LParen
                    && t.span.offset == name_tok.span.offset + name_tok.span.len =>
            {
                let mut params = vec![];
                k = 4;
                loop {
                    match line.get(k).map(|t| &t.kind) {
                        Some(TokenKind::RParen) if params.is_empty() => {
                            k += 1;
                            break;
                        }
                        Some(TokenKind::Ident(p)) => {
                            if params.contains(p) {
                                self.errors.push(
                                    self.err(line[k].span, format!("parameter `{p}` is repeated")),
                                );
                                return;
                            }
                            params.push(p.clone());
                            k += 1;
                            match line.get(k).map(|t| &t.kind) {
                                Some(TokenKind::Comma) => k += 1,
                                Some(TokenKind::RParen) => {
                                    k += 1;
                                    break;
                                }
                                _ => {
                                    let at = line.get(k).map_or(whole, |t| t.span);
                                    self.errors.push(
                                        self.err(at, "expected `,` or `)` in the macro's parameter list")
                                            .help("write `#define NAME(a, b) ...`; variadic macros are not supported"),
                                    );
                                    return;
                                }
                            }
                        }
                        _ => {
                            let at = line.get(k).map_or(whole, |t| t.span);
                            self.errors
                                .push(self.err(at, "expected a parameter name").help(
                                "write `#define NAME(a, b) ...`; variadic macros are not supported",
                            ));
                            return;
                        }
                    }
                }
                Some(params)
            }
            _ => None,
        };
        let body: Vec<TokenKind> = line[k.min(line.len())..]
            .iter()
            .map(|t| t.kind.clone())
            .collect();
        if let Some(t) = line[k.min(line.len())..]
            .iter()
            .find(|t| t.kind == TokenKind::Hash)
        {
            self.errors.push(
                self.err(t.span, "`#` and `##` are not supported in macros")
                    .label("stringizing or pasting")
                    .help("write the text out"),
            );
            return;
        }
        let m = Macro { params, body };
        if let Some((old, old_span)) = self.macros.get(name) {
            if old.params != m.params || old.body != m.body {
                let (line_no, _) = self.source.line_col(old_span.offset);
                let file = self.source.file_of(old_span.offset).0.to_string();
                self.errors.push(
                    self.err(
                        name_tok.span,
                        format!("macro `{name}` is redefined differently"),
                    )
                    .label("redefined")
                    .help(format!("the first definition is at {file}:{line_no}")),
                );
            }
            return;
        }
        if crate::kernel::lookup(name).is_some() {
            self.errors.push(self.err(
                name_tok.span,
                format!("`{name}` is a kernel routine and cannot be a macro"),
            ));
            return;
        }
        self.macros.insert(name.clone(), (m, name_tok.span));
    }
}

/// Read an included file as `load_file` reads a scenario: only a regular
/// file (a FIFO, directory or device is refused from its metadata, without
/// opening it), opened without blocking, and the included files together
/// within [`crate::MAX_FILE_BYTES`] (16 MiB); `total` counts them.
fn read_include(path: &Path, total: &mut u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let limit = crate::MAX_FILE_BYTES;
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err(format!(
            "it is {}: only regular files can be included",
            crate::file_kind(&meta.file_type())
        ));
    }
    let left = limit.saturating_sub(*total);
    if meta.len() > left {
        return Err(format!(
            "the included files come to more than {limit} bytes; together they are limited to 16 MiB"
        ));
    }
    let file = crate::open_no_block(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(left + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > left {
        return Err(format!(
            "the included files come to more than {limit} bytes; together they are limited to 16 MiB"
        ));
    }
    *total += bytes.len() as u64;
    Ok(bytes)
}
