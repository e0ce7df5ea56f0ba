//! The parser: tokens → [`crate::ast::File`], by recursive descent.
//!
//! Owns the grammar of the contract (header, global declarations, routines,
//! statements, C expressions with C precedence, workload lines), syntax
//! errors worded like a compiler's, and the nesting limit that keeps deep
//! input from overflowing the stack. Names stay unresolved: `TRUE`,
//! `DISPATCH_LEVEL` or a routine name are all [`ExprKind::Name`]; the
//! checker gives them meaning.
//!
//! After a syntax error the parser skips to the next line that starts (in
//! column 1) with a top-level keyword and goes on, so a file with several
//! independent mistakes reports each of them; errors come in source order.

use crate::ast::*;
use crate::diag::{did_you_mean, SimError, Source};
use crate::lexer::{BoxedError, LResult, Token, TokenKind};
use std::collections::HashMap;

/// Deepest nesting accepted: statements within statements plus the
/// parentheses, calls, casts and unary operators of the expression being
/// parsed may nest this many levels, and one expression's tree may be this
/// many operators deep (so `1 + 1 + ...` is limited too). Real drivers stay
/// far below it; it is low enough that parsing, and walking the tree, fit in
/// the 2 MiB stack of a test thread even in an unoptimized build (the parser
/// needs about 1 MiB at the limit).
pub const MAX_DEPTH: usize = 128;

/// Stop collecting errors after this many.
const MAX_ERRORS: usize = 20;

type PResult<T> = LResult<T>;

/// Header keys, for "did you mean".
const HEADER_KEYS: [&str; 9] = [
    "title",
    "cpus",
    "seed",
    "verifier",
    "watchdog",
    "dpc_timeout",
    "clock",
    "duration",
    "expect",
];

/// Words that can never be names.
const STATEMENT_KEYWORDS: [&str; 17] = [
    "if",
    "else",
    "while",
    "for",
    "do",
    "switch",
    "case",
    "default",
    "goto",
    "break",
    "continue",
    "return",
    "sizeof",
    "__try",
    "__except",
    "__finally",
    "__leave",
];

/// WDK pointer names a local may have besides struct pointers.
const LOCAL_POINTERS: &[&str] = &[
    "PLIST_ENTRY",
    "PVOID",
    "PKDPC",
    "PRKDPC",
    "PKEVENT",
    "PRKEVENT",
    "PKTIMER",
    "PWORK_QUEUE_ITEM",
    "PDEVICE_OBJECT",
    "PDRIVER_CANCEL",
    "PKDEFERRED_ROUTINE",
    "PWORKER_THREAD_ROUTINE",
    "PKSYNCHRONIZE_ROUTINE",
];

/// Type and prefix words that can never be names.
const TYPE_KEYWORDS: &[&str] = &[
    "VOID",
    "BOOLEAN",
    "ULONG",
    "LONG",
    "KIRQL",
    "UCHAR",
    "CCHAR",
    "USHORT",
    "ULONG64",
    "ULONGLONG",
    "ULONG_PTR",
    "SIZE_T",
    "LONG64",
    "LONGLONG",
    "LONG_PTR",
    "NTSTATUS",
    "KPRIORITY",
    "POOL_TYPE",
    "KDPC_IMPORTANCE",
    "sizeof",
    "KSPIN_LOCK",
    "EX_SPIN_LOCK",
    "KINTERRUPT",
    "KDPC",
    "LIST_ENTRY",
    "KLOCK_QUEUE_HANDLE",
    "KEVENT",
    "KTIMER",
    "WORK_QUEUE_ITEM",
    "PAGED",
    "_Guarded_by_",
];

/// What may start a top-level item, for "did you mean".
const ITEM_STARTS: [&str; 15] = [
    "scenario",
    "thread",
    "interrupt",
    "PAGED",
    "_Guarded_by_",
    "KSPIN_LOCK",
    "EX_SPIN_LOCK",
    "KINTERRUPT",
    "KDPC",
    "LIST_ENTRY",
    "VOID",
    "BOOLEAN",
    "ULONG",
    "LONG",
    "KIRQL",
];

const LOCAL_TYPES: &[&str] = &[
    "KIRQL",
    "KLOCK_QUEUE_HANDLE",
    "ULONG",
    "LONG",
    "BOOLEAN",
    "UCHAR",
    "CCHAR",
    "USHORT",
    "ULONG64",
    "ULONGLONG",
    "ULONG_PTR",
    "SIZE_T",
    "LONG64",
    "LONGLONG",
    "LONG_PTR",
    "NTSTATUS",
    "KPRIORITY",
    "POOL_TYPE",
    "KDPC_IMPORTANCE",
];

const PARAM_TYPES: [&str; 7] = [
    "ULONG",
    "LONG",
    "BOOLEAN",
    "KIRQL",
    "PVOID",
    "PKINTERRUPT",
    "PKDPC",
];

fn is_reserved(word: &str) -> bool {
    STATEMENT_KEYWORDS.contains(&word) || TYPE_KEYWORDS.contains(&word)
}

/// The scalar type a WDK type name stands for (contract v2, "Scalar types").
pub fn scalar_type(word: &str) -> Option<ScalarType> {
    Some(match word {
        "ULONG" => ScalarType::Ulong,
        "LONG" | "NTSTATUS" | "KPRIORITY" | "POOL_TYPE" | "KDPC_IMPORTANCE" => ScalarType::Long,
        "BOOLEAN" => ScalarType::Boolean,
        "KIRQL" => ScalarType::Kirql,
        "UCHAR" => ScalarType::Uchar,
        "CCHAR" => ScalarType::Char,
        "USHORT" => ScalarType::Ushort,
        "ULONG64" | "ULONGLONG" | "ULONG_PTR" | "SIZE_T" => ScalarType::Ulong64,
        "LONG64" | "LONGLONG" | "LONG_PTR" => ScalarType::Long64,
        _ => return None,
    })
}

/// The kernel object a type word names (`KDPC`, `KEVENT`, `KTIMER`,
/// `WORK_QUEUE_ITEM`), if it names one.
fn object_kind(word: &str) -> Option<crate::ast::ObjKind> {
    use crate::ast::ObjKind;
    Some(match word {
        "KDPC" => ObjKind::Dpc,
        "KEVENT" => ObjKind::Event,
        "KTIMER" => ObjKind::Timer,
        "WORK_QUEUE_ITEM" => ObjKind::WorkItem,
        _ => return None,
    })
}

/// The scalar a WDK pointer name points to (`PULONG`, `PKIRQL`, ...), if
/// it is one (contract v2, "P_NAME").
pub fn scalar_pointer(word: &str) -> Option<ScalarType> {
    Some(match word {
        "PULONG" => ScalarType::Ulong,
        "PLONG" | "PNTSTATUS" => ScalarType::Long,
        "PBOOLEAN" => ScalarType::Boolean,
        "PKIRQL" => ScalarType::Kirql,
        "PUCHAR" => ScalarType::Uchar,
        "PUSHORT" => ScalarType::Ushort,
        "PULONG64" | "PULONGLONG" | "PULONG_PTR" | "PSIZE_T" => ScalarType::Ulong64,
        "PLONG64" | "PLONGLONG" => ScalarType::Long64,
        _ => return None,
    })
}

/// `PKINTERRUPT`, `PVOID`, ...: `P` followed by an uppercase letter.
fn is_pointer_type(word: &str) -> bool {
    let b = word.as_bytes();
    b.len() >= 2 && b[0] == b'P' && b[1].is_ascii_uppercase() && !is_reserved(word)
}

/// The value of an integer constant expression made of literals (array
/// sizes and indexes the parser must know), if it is one.
pub(crate) fn fold(e: &Expr) -> Option<i64> {
    use crate::check::{binary_type, eval_binary, eval_unary, operand_type, truncate};
    Some(match &e.kind {
        ExprKind::Int(v) => *v,
        ExprKind::Typed(v, t) => truncate(*t, *v),
        ExprKind::Unary(op, a) => eval_unary(*op, Arith::I64, fold(a)?),
        ExprKind::Binary(op, a, b) => {
            let _ = binary_type;
            eval_binary(
                *op,
                operand_type(*op, Arith::I64, Arith::I64),
                fold(a)?,
                fold(b)?,
            )?
        }
        ExprKind::Cast(t, a) => truncate(*t, fold(a)?),
        ExprKind::SizeOf(_, n) => *n as i64,
        _ => return None,
    })
}

/// The assignment operator a token is, if any.
fn assign_op(kind: &TokenKind) -> Option<AssignOp> {
    Some(match kind {
        TokenKind::Assign => AssignOp::Set,
        TokenKind::PlusEq => AssignOp::Compound(BinOp::Add),
        TokenKind::MinusEq => AssignOp::Compound(BinOp::Sub),
        TokenKind::OtherAssign(op) => AssignOp::Compound(match *op {
            "*=" => BinOp::Mul,
            "/=" => BinOp::Div,
            "%=" => BinOp::Rem,
            "&=" => BinOp::BitAnd,
            "|=" => BinOp::BitOr,
            "^=" => BinOp::BitXor,
            "<<=" => BinOp::Shl,
            _ => BinOp::Shr,
        }),
        _ => return None,
    })
}

fn binop(kind: &TokenKind) -> Option<(BinOp, u8)> {
    use TokenKind as T;
    Some(match kind {
        T::OrOr => (BinOp::Or, 1),
        T::AndAnd => (BinOp::And, 2),
        T::Pipe => (BinOp::BitOr, 3),
        T::Caret => (BinOp::BitXor, 4),
        T::Amp => (BinOp::BitAnd, 5),
        T::EqEq => (BinOp::Eq, 6),
        T::Ne => (BinOp::Ne, 6),
        T::Lt => (BinOp::Lt, 7),
        T::Le => (BinOp::Le, 7),
        T::Gt => (BinOp::Gt, 7),
        T::Ge => (BinOp::Ge, 7),
        T::Shl => (BinOp::Shl, 8),
        T::Shr => (BinOp::Shr, 8),
        T::Plus => (BinOp::Add, 9),
        T::Minus => (BinOp::Sub, 9),
        T::Star => (BinOp::Mul, 10),
        T::Slash => (BinOp::Div, 10),
        T::Percent => (BinOp::Rem, 10),
        _ => return None,
    })
}

/// Parse a whole `.sim` file. On failure, at least one error, in source order.
///
/// The text is preprocessed first (`#define`, `#include` relative to the
/// source's name); a file that includes others gives spans into the
/// combined source [`crate::preprocess::preprocess`] builds, so callers
/// that need the spans should use that and [`parse_tokens`].
pub fn parse(source: &Source) -> Result<File, Vec<SimError>> {
    let pp = crate::preprocess::preprocess(&source.name, &source.text);
    if !pp.errors.is_empty() {
        return Err(pp.errors);
    }
    parse_tokens(source, pp.tokens, pp.lex_error)
}

/// Parse tokens of `source` (already preprocessed; the last is `Eof`) and
/// the lexical error that cut them short, if any.
pub fn parse_tokens(
    source: &Source,
    mut tokens: Vec<Token>,
    lex_error: Option<SimError>,
) -> Result<File, Vec<SimError>> {
    if tokens.is_empty() {
        tokens.push(Token {
            kind: TokenKind::Eof,
            span: Span::new(source.text.len(), 0),
        });
    }
    let mut p = Parser {
        source,
        tokens,
        pos: 0,
        depth: 0,
        lex_error: lex_error.map(Box::new),
        prototypes: Vec::new(),
        typedefs: HashMap::new(),
        structs: HashMap::new(),
        pointer_names: Default::default(),
    };
    p.file()
}

struct Parser<'a> {
    source: &'a Source,
    /// Never empty: ends with `Eof`.
    tokens: Vec<Token>,
    pos: usize,
    /// Current recursion depth (statements and expressions).
    depth: usize,
    /// The lexical error that truncated `tokens`, until reported.
    lex_error: Option<Box<SimError>>,
    /// Routine prototypes (`VOID F(ULONG x);`): name and span, to check
    /// that each is defined somewhere in the file.
    prototypes: Vec<Ident>,
    /// `typedef` names of scalar types (enum types are `LONG`).
    typedefs: HashMap<String, ScalarType>,
    /// Struct type names (typedef names and `struct TAG`s): size and alignment.
    structs: HashMap<String, (u64, u64)>,
    /// Pointer names a struct `typedef` declared (`PDEVICE`).
    pointer_names: std::collections::HashSet<String>,
}

fn end_of(span: Span) -> usize {
    span.offset.saturating_add(span.len)
}

/// A span from `start` to `end` (byte offsets).
fn between(start: usize, end: usize) -> Span {
    Span::new(start, end.saturating_sub(start))
}

impl Parser<'_> {
    // ----- token access -------------------------------------------------

    fn peek(&self) -> &Token {
        self.peek_at(0)
    }

    fn peek_at(&self, n: usize) -> &Token {
        let last = self.tokens.len().saturating_sub(1);
        let i = self.pos.saturating_add(n).min(last);
        &self.tokens[i]
    }

    fn kind(&self) -> &TokenKind {
        &self.peek().kind
    }

    fn at(&self, kind: &TokenKind) -> bool {
        self.kind() == kind
    }

    fn at_word(&self, word: &str) -> bool {
        matches!(self.kind(), TokenKind::Ident(w) if w == word)
    }

    fn at_eof(&self) -> bool {
        self.at(&TokenKind::Eof)
    }

    fn bump(&mut self) -> Token {
        let tok = self.peek().clone();
        if tok.kind != TokenKind::Eof {
            self.pos += 1;
        }
        tok
    }

    fn eat(&mut self, kind: &TokenKind) -> Option<Span> {
        if self.at(kind) {
            Some(self.bump().span)
        } else {
            None
        }
    }

    fn start(&self) -> usize {
        self.peek().span.offset
    }

    /// End of the last consumed token.
    fn prev_end(&self) -> usize {
        match self.pos.checked_sub(1).and_then(|i| self.tokens.get(i)) {
            Some(t) => end_of(t.span),
            None => 0,
        }
    }

    fn span_from(&self, start: usize) -> Span {
        between(start, self.prev_end().max(start))
    }

    fn line(&self, offset: usize) -> u32 {
        self.source.line_col(offset).0
    }

    // ----- errors -------------------------------------------------------

    fn error(&self, span: Span, msg: impl Into<String>) -> Box<SimError> {
        Box::new(SimError::new(self.source, span, msg))
    }

    /// How the current token reads in a message.
    fn describe(&self, tok: &Token) -> String {
        if tok.kind == TokenKind::Eof {
            return "end of file".into();
        }
        let text = self
            .source
            .text
            .get(tok.span.offset..end_of(tok.span))
            .unwrap_or("");
        let mut shown: String = text.chars().take(40).collect();
        if shown.len() < text.len() {
            shown.push('…');
        }
        match &tok.kind {
            TokenKind::Ident(w) if STATEMENT_KEYWORDS.contains(&w.as_str()) => {
                format!("keyword `{shown}`")
            }
            TokenKind::Ident(w) if TYPE_KEYWORDS.contains(&w.as_str()) => format!("`{shown}`"),
            TokenKind::Str(_) => format!("string {shown}"),
            _ => format!("`{shown}`"),
        }
    }

    /// "expected WHAT [CONTEXT], found X" at the current token. If the
    /// current token is the end of what the lexer could read, the lexical
    /// error is the real problem and is returned instead.
    fn expected(&mut self, what: &str, context: &str) -> Box<SimError> {
        let tok = self.peek().clone();
        if tok.kind == TokenKind::Eof {
            if let Some(e) = self.lex_error.take() {
                return e;
            }
        }
        let found = self.describe(&tok);
        let msg = if context.is_empty() {
            format!("expected {what}, found {found}")
        } else {
            format!("expected {what} {context}, found {found}")
        };
        let prev_end = self.prev_end();
        if what == "`;`" && self.pos > 0 && self.line(prev_end) < self.line(tok.span.offset) {
            let line = self.line(prev_end);
            return Box::new(
                SimError::new(self.source, Span::new(prev_end, 0), msg)
                    .label("expected `;` here")
                    .help(format!("add `;` at the end of line {line}")),
            );
        }
        Box::new(SimError::new(self.source, tok.span, msg).label(format!("expected {what}")))
    }

    fn expect(&mut self, kind: TokenKind, context: &str) -> PResult<Span> {
        if let Some(span) = self.eat(&kind) {
            return Ok(span);
        }
        let what = format!("`{}`", kind.punct_text().unwrap_or("?"));
        Err(self.expected(&what, context))
    }

    fn expect_word(&mut self, word: &str, context: &str) -> PResult<Span> {
        if self.at_word(word) {
            return Ok(self.bump().span);
        }
        Err(self.expected(&format!("`{word}`"), context))
    }

    /// One level deeper; an error past [`MAX_DEPTH`].
    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            let span = self.peek().span;
            return Err(self
                .error(span, "nesting is too deep")
                .label("nested too deeply")
                .help(format!(
                    "blocks, statements and expressions may nest at most {MAX_DEPTH} levels"
                )));
        }
        Ok(())
    }

    fn check_tree_depth(&self, depth: usize, span: Span) -> PResult<()> {
        if depth > MAX_DEPTH {
            return Err(self
                .error(span, "expression is too deeply nested")
                .label("too deep")
                .help(format!(
                    "an expression may nest at most {MAX_DEPTH} operators deep; split it up"
                )));
        }
        Ok(())
    }

    /// A name that is not a keyword.
    fn ident(&mut self, what: &str) -> PResult<Ident> {
        match self.kind() {
            TokenKind::Ident(w) if !is_reserved(w) => {
                let name = w.clone();
                let span = self.bump().span;
                Ok(Ident { name, span })
            }
            TokenKind::Ident(w) => {
                let w = w.clone();
                Err(self
                    .expected(what, "")
                    .help(format!("`{w}` is reserved and cannot be used as a name")))
            }
            _ => Err(self.expected(what, "")),
        }
    }

    fn int(&mut self, what: &str) -> PResult<Spanned<u64>> {
        if let TokenKind::Int(v) | TokenKind::TypedInt(v, _) = *self.kind() {
            let span = self.bump().span;
            return Ok(Spanned { value: v, span });
        }
        Err(self.expected(what, ""))
    }

    fn duration(&mut self, what: &str) -> PResult<Spanned<u64>> {
        match *self.kind() {
            TokenKind::Duration(v) => {
                let span = self.bump().span;
                Ok(Spanned { value: v, span })
            }
            TokenKind::Int(_) => Err(self
                .expected(what, "")
                .help("durations end in ns, us or ms, e.g. `10ms`")),
            _ => Err(self.expected(what, "")),
        }
    }

    fn string(&mut self, what: &str) -> PResult<Spanned<String>> {
        if let TokenKind::Str(s) = self.kind() {
            let value = s.clone();
            let span = self.bump().span;
            return Ok(Spanned { value, span });
        }
        Err(self.expected(what, ""))
    }

    // ----- file ---------------------------------------------------------

    fn file(&mut self) -> Result<File, Vec<SimError>> {
        let mut header: Option<Header> = None;
        let mut first_header: Option<Span> = None;
        let mut items = Vec::new();
        self.builtin_structs(&mut items);
        let mut errors: Vec<SimError> = Vec::new();
        while !self.at_eof() {
            let result = if self.at_word("scenario") {
                let kw = self.peek().span;
                match first_header {
                    Some(first) => {
                        let line = self.line(first.offset);
                        Err(self
                            .error(kw, "only one scenario block is allowed")
                            .label("second scenario block")
                            .help(format!("the scenario block is at line {line}")))
                    }
                    None => {
                        first_header = Some(kw);
                        self.header().map(|h| header = Some(h))
                    }
                }
            } else {
                self.item(&mut items)
            };
            if let Err(e) = result {
                errors.push(*e);
                if errors.len() >= MAX_ERRORS {
                    break;
                }
                self.recover();
            }
        }
        if let Some(e) = self.lex_error.take() {
            if errors.len() < MAX_ERRORS {
                errors.push(*e);
            }
        }
        let prototypes = std::mem::take(&mut self.prototypes);
        let mut defined = crate::names::NameSet::new();
        if !prototypes.is_empty() {
            defined.reserve(items.len());
            for i in &items {
                if let Item::Routine(r) = i {
                    defined.insert(&r.name.name);
                }
            }
        }
        for proto in prototypes {
            if !defined.contains(&proto.name) && errors.len() < MAX_ERRORS {
                errors.push(
                    SimError::new(
                        self.source,
                        proto.span,
                        format!("`{}` is declared but never defined", proto.name),
                    )
                    .label("prototype without a body")
                    .help(
                        "write the routine's body somewhere in the file, or remove the prototype",
                    ),
                );
            }
        }
        match header {
            Some(header) if errors.is_empty() => Ok(File { header, items }),
            // (A header that failed to parse has left an error behind.)
            None if errors.is_empty() => Err(vec![SimError::new(
                self.source,
                Span::new(0, 0),
                "missing `scenario \"name\" { ... }` block",
            )
            .label("expected the scenario block")
            .help("every scenario file has one header, e.g. `scenario \"my-test\" { cpus 2; expect clean; }`")]),
            _ => Err(errors),
        }
    }

    /// Skip to the next line that starts with a top-level keyword.
    fn recover(&mut self) {
        self.depth = 0;
        self.bump();
        while !self.at_eof() {
            let tok = self.peek();
            let at_line_start = tok.span.offset == 0
                || matches!(
                    self.source.text.as_bytes().get(tok.span.offset - 1),
                    Some(b'\n' | b'\r')
                );
            if at_line_start
                && matches!(&tok.kind, TokenKind::Ident(w) if ITEM_STARTS.contains(&w.as_str()))
            {
                return;
            }
            self.bump();
        }
    }

    // ----- header -------------------------------------------------------

    fn header(&mut self) -> PResult<Header> {
        let start = self.bump().span.offset; // `scenario`
        let name = self.string("the scenario name (a string)")?;
        let open = self.expect(TokenKind::LBrace, "to open the scenario block")?;
        let mut entries = Vec::new();
        let mut seen: Vec<(String, Span)> = Vec::new();
        loop {
            if self.eat(&TokenKind::RBrace).is_some() {
                break;
            }
            if self.eat(&TokenKind::Semi).is_some() {
                continue;
            }
            if self.at_eof() {
                let line = self.line(open.offset);
                return Err(self
                    .expected("`}`", "to close the scenario block")
                    .help(format!("the scenario block opens at line {line}")));
            }
            let key = match self.kind() {
                TokenKind::Ident(_) => self.bump(),
                _ => return Err(self.expected("a header key such as `cpus` or `expect`", "")),
            };
            let TokenKind::Ident(word) = &key.kind else {
                return Err(self.expected("a header key", ""));
            };
            if word != "expect" {
                if let Some((_, first)) = seen.iter().find(|(k, _)| k == word) {
                    let line = self.line(first.offset);
                    return Err(self
                        .error(key.span, format!("header key `{word}` is given twice"))
                        .label("given again here")
                        .help(format!("first given at line {line}")));
                }
                seen.push((word.clone(), key.span));
            }
            let entry = match word.as_str() {
                "title" => HeaderEntry::Title(self.string("a title string after `title`")?),
                "cpus" => HeaderEntry::Cpus(self.int("a number of processors after `cpus`")?),
                "seed" => HeaderEntry::Seed(self.int("a number after `seed`")?),
                "verifier" => {
                    let mut names = vec![self.ident("a verifier setting after `verifier`")?];
                    while self.eat(&TokenKind::Comma).is_some() {
                        names.push(self.ident("a verifier check name after `,`")?);
                    }
                    HeaderEntry::Verifier(names)
                }
                "watchdog" => HeaderEntry::Watchdog(self.duration("a duration after `watchdog`")?),
                "dpc_timeout" => {
                    HeaderEntry::DpcTimeout(self.duration("a duration after `dpc_timeout`")?)
                }
                "clock" => HeaderEntry::Clock(self.duration("a duration after `clock`")?),
                "duration" => HeaderEntry::Duration(self.duration("a duration after `duration`")?),
                "expect" => HeaderEntry::Expect(self.expect_line(key.span.offset)?),
                other => {
                    let help = did_you_mean(other, HEADER_KEYS).unwrap_or_else(|| {
                        "header keys are title, cpus, seed, verifier, watchdog, dpc_timeout, clock, duration and expect".into()
                    });
                    return Err(self
                        .error(key.span, format!("unknown header key `{other}`"))
                        .label("unknown key")
                        .help(help));
                }
            };
            // `expect any { ... }` may stand without a `;` after its `}`.
            let any = matches!(&entry, HeaderEntry::Expect(x) if matches!(x.value, Expect::Any(_)));
            entries.push(entry);
            if any {
                self.eat(&TokenKind::Semi);
            } else {
                self.expect(TokenKind::Semi, "after header entry")?;
            }
        }
        Ok(Header {
            name,
            entries,
            span: self.span_from(start),
        })
    }

    /// After `expect`: `clean`, `assertion_failed`, `warning R`,
    /// `bugcheck NAME`, `bugcheck CODE[(P1)]`.
    fn expect_line(&mut self, start: usize) -> PResult<Spanned<Expect>> {
        const WHAT: &str = "`clean`, `assertion_failed`, `warning` or `bugcheck` after `expect`";
        let word = match self.kind() {
            TokenKind::Ident(w) => w.clone(),
            _ => return Err(self.expected(WHAT, "")),
        };
        let word_span = self.peek().span;
        let value = match word.as_str() {
            "clean" => {
                self.bump();
                Expect::Clean
            }
            "any" if start != usize::MAX => {
                self.bump();
                let open = self.expect(TokenKind::LBrace, "after `expect any`")?;
                let mut items = vec![];
                loop {
                    if self.eat(&TokenKind::RBrace).is_some() {
                        break;
                    }
                    if self.at_eof() {
                        let line = self.line(open.offset);
                        return Err(self
                            .expected("`}`", "to close `expect any`")
                            .help(format!("`expect any {{` opens at line {line}")));
                    }
                    let item = self.expect_line(usize::MAX)?;
                    items.push(item.value);
                    self.expect(TokenKind::Semi, "after an `expect any` item")?;
                }
                if items.is_empty() {
                    return Err(self
                        .error(word_span, "`expect any { }` lists no outcome")
                        .help("write e.g. `expect any { clean; bugcheck 0x133; }`"));
                }
                Expect::Any(items)
            }
            "assertion_failed" => {
                self.bump();
                Expect::AssertionFailed
            }
            "warning" => {
                self.bump();
                Expect::Warning(self.ident("a warning name such as `HOLD_TIME_EXCEEDED`")?)
            }
            "bugcheck" => {
                self.bump();
                match *self.kind() {
                    TokenKind::Int(code) | TokenKind::TypedInt(code, _) => {
                        self.bump();
                        let param1 = if self.eat(&TokenKind::LParen).is_some() {
                            let p = self.int("the first bugcheck parameter")?.value;
                            self.expect(TokenKind::RParen, "after the bugcheck parameter")?;
                            Some(p)
                        } else {
                            None
                        };
                        Expect::BugcheckCode { code, param1 }
                    }
                    TokenKind::Ident(_) => Expect::BugcheckName(
                        self.ident("a bugcheck name or code after `bugcheck`")?,
                    ),
                    _ => return Err(self.expected("a bugcheck name or code after `bugcheck`", "")),
                }
            }
            other => {
                let help = did_you_mean(
                    other,
                    ["clean", "assertion_failed", "warning", "bugcheck", "any"],
                )
                .unwrap_or_else(|| {
                    "write `expect clean;`, `expect bugcheck NAME;` or `expect warning NAME;`"
                        .into()
                });
                return Err(self
                    .error(word_span, format!("unknown expectation `{other}`"))
                    .label("unknown expectation")
                    .help(help));
            }
        };
        let start = if start == usize::MAX {
            word_span.offset
        } else {
            start
        };
        Ok(Spanned {
            value,
            span: self.span_from(start),
        })
    }

    // ----- top-level items ----------------------------------------------

    /// The scalar type a type name stands for: a WDK name or a `typedef`.
    fn scalar_of(&self, word: &str) -> Option<ScalarType> {
        scalar_type(word).or_else(|| self.typedefs.get(word).copied())
    }

    /// The pointer type `w *` as the checker names it: a scalar by its
    /// WDK name (a `typedef` of `ULONG` gives `ULONG *`), a struct by its own.
    fn pointer_to(&self, w: &str) -> String {
        match self.scalar_of(w) {
            Some(t) if !self.structs.contains_key(w) => format!("{} *", t.name()),
            _ => format!("{w} *"),
        }
    }

    /// A pointer type word usable for a global or a return type: a
    /// struct's pointer name, a WDK pointer name of a scalar or object.
    fn is_pointer_word(&self, w: &str) -> bool {
        self.pointer_names.contains(w) || LOCAL_POINTERS.contains(&w) || scalar_pointer(w).is_some()
    }

    /// May a local declaration start with this word?
    fn is_local_type(&self, word: &str) -> bool {
        LOCAL_TYPES.contains(&word)
            || LOCAL_POINTERS.contains(&word)
            || scalar_pointer(word).is_some()
            || self.structs.contains_key(word)
            || self.typedefs.contains_key(word)
            || self.pointer_names.contains(word)
            || word == "KEVENT"
    }

    /// `typedef enum [TAG] { ... } NAME, *PNAME;`, `typedef SCALAR NAME;`
    /// or `enum [TAG] { ... };`.
    fn typedef_or_enum(&mut self, items: &mut Vec<Item>) -> PResult<()> {
        let start = self.start();
        let is_typedef = self.at_word("typedef");
        if is_typedef {
            self.bump();
        }
        let ty = if self.at_word("enum") {
            self.bump();
            if matches!(self.kind(), TokenKind::Ident(_)) {
                self.bump(); // the tag
            }
            let open = self.expect(TokenKind::LBrace, "to open the `enum` body")?;
            let mut enumerators = vec![];
            loop {
                if self.eat(&TokenKind::RBrace).is_some() {
                    break;
                }
                if self.at_eof() {
                    return Err(self.unclosed_block(open));
                }
                let name = self.ident("an enumerator name")?;
                let value = if self.eat(&TokenKind::Assign).is_some() {
                    Some(self.expr()?)
                } else {
                    None
                };
                enumerators.push((name, value));
                if self.eat(&TokenKind::Comma).is_none() {
                    self.expect(TokenKind::RBrace, "to close the `enum` body")?;
                    break;
                }
            }
            items.push(Item::Enum(Box::new(EnumDecl {
                enumerators,
                span: self.span_from(start),
            })));
            ScalarType::Long
        } else if is_typedef {
            let tok = self.peek().clone();
            match &tok.kind {
                TokenKind::Ident(w) if self.scalar_of(w).is_some() => {
                    self.bump();
                    self.scalar_of(w).unwrap_or(ScalarType::Long)
                }
                TokenKind::Ident(w) if w == "struct" => return self.struct_typedef(start, items),
                _ => {
                    return Err(self
                        .expected("a scalar type or `enum` after `typedef`", "")
                        .help("write `typedef enum { ... } NAME;` or `typedef ULONG NAME;`"))
                }
            }
        } else {
            return Err(self.expected("`enum`", ""));
        };
        if is_typedef {
            loop {
                let pointer = self.eat(&TokenKind::Star).is_some();
                let name = self.ident("the name the `typedef` declares")?;
                if !pointer {
                    if scalar_type(&name.name).is_some() || is_reserved(&name.name) {
                        return Err(self
                            .error(name.span, format!("`{}` is a built-in type", name.name))
                            .label("cannot be redefined"));
                    }
                    self.typedefs.insert(name.name.clone(), ty);
                }
                if self.eat(&TokenKind::Comma).is_none() {
                    break;
                }
            }
        }
        self.expect(TokenKind::Semi, "after the declaration")?;
        Ok(())
    }

    /// Size and alignment of a field type.
    fn layout(&self, t: &FieldType) -> (u64, u64) {
        match t {
            FieldType::Scalar(s) => (s.size(), s.size()),
            FieldType::KSpinLock => (8, 8),
            FieldType::ListEntry => (16, 8),
            FieldType::Pointer(_) => (8, 8),
            FieldType::QueueHandle => (24, 8),
            FieldType::ExSpinLock => (4, 4),
            FieldType::Struct(n) => self.structs.get(n).copied().unwrap_or((1, 1)),
            FieldType::Object(k) => (k.size(), 8),
        }
    }

    /// A field or aggregate element type named by `word`, if any.
    fn field_type(&self, word: &str) -> Option<FieldType> {
        if let Some(s) = self.scalar_of(word) {
            return Some(FieldType::Scalar(s));
        }
        match word {
            "KSPIN_LOCK" => Some(FieldType::KSpinLock),
            "LIST_ENTRY" => Some(FieldType::ListEntry),
            "KLOCK_QUEUE_HANDLE" => Some(FieldType::QueueHandle),
            "EX_SPIN_LOCK" => Some(FieldType::ExSpinLock),
            w if self.structs.contains_key(w) => Some(FieldType::Struct(w.to_string())),
            w => object_kind(w).map(FieldType::Object),
        }
    }

    /// The built-in struct types of the kernel objects with fields
    /// (`LARGE_INTEGER`, `IO_STATUS_BLOCK`, `IRP`; contract v2, "Kernel
    /// objects"), declared first when the file names one of them, with
    /// their WDK pointer names. `sizeof(IRP)` is 208 (windows-facts,
    /// "x64 sizes") although only the fields the contract lists exist.
    fn builtin_structs(&mut self, items: &mut Vec<Item>) {
        let names = [
            "LARGE_INTEGER",
            "PLARGE_INTEGER",
            "IO_STATUS_BLOCK",
            "PIO_STATUS_BLOCK",
            "IRP",
            "PIRP",
        ];
        let used = self
            .tokens
            .iter()
            .any(|t| matches!(&t.kind, TokenKind::Ident(w) if names.contains(&w.as_str())));
        if !used {
            return;
        }
        let field = |name: &str, ty: FieldType, array: Option<u64>| FieldDecl {
            guarded_by: None,
            ty,
            name: Ident {
                name: name.to_string(),
                span: Span::default(),
            },
            array,
        };
        // (name, pointer name, fields, (size, alignment))
        type Def<'a> = (&'a str, &'a str, Vec<FieldDecl>, (u64, u64));
        let defs: [Def; 5] = [
            (
                "LARGE_INTEGER",
                "PLARGE_INTEGER",
                vec![field(
                    "QuadPart",
                    FieldType::Scalar(ScalarType::Long64),
                    None,
                )],
                (8, 8),
            ),
            (
                "IO_STATUS_BLOCK",
                "PIO_STATUS_BLOCK",
                vec![
                    field("Status", FieldType::Scalar(ScalarType::Long), None),
                    field("Information", FieldType::Scalar(ScalarType::Ulong64), None),
                ],
                (16, 8),
            ),
            (
                "IRP_OVERLAY",
                "PIRP_OVERLAY",
                vec![
                    field("ListEntry", FieldType::ListEntry, None),
                    field("DriverContext", FieldType::Pointer("PVOID".into()), Some(4)),
                ],
                (48, 8),
            ),
            (
                "IRP_TAIL",
                "PIRP_TAIL",
                vec![field(
                    "Overlay",
                    FieldType::Struct("IRP_OVERLAY".into()),
                    None,
                )],
                (48, 8),
            ),
            (
                "IRP",
                "PIRP",
                // The hidden object leaf comes first: a reference to an
                // IRP is a reference to it (see `IRP_FIELD_*` in program).
                vec![
                    field("Type", FieldType::Object(crate::ast::ObjKind::Irp), None),
                    field("Cancel", FieldType::Scalar(ScalarType::Boolean), None),
                    field("CancelIrql", FieldType::Scalar(ScalarType::Kirql), None),
                    field(
                        "IoStatus",
                        FieldType::Struct("IO_STATUS_BLOCK".into()),
                        None,
                    ),
                    field(
                        "CancelRoutine",
                        FieldType::Pointer("PDRIVER_CANCEL".into()),
                        None,
                    ),
                    field("Tail", FieldType::Struct("IRP_TAIL".into()), None),
                ],
                (208, 8),
            ),
        ];
        for (name, pointer, fields, layout) in defs {
            self.structs.insert(name.to_string(), layout);
            self.pointer_names.insert(pointer.to_string());
            items.push(Item::Struct(Box::new(StructDef {
                name: name.to_string(),
                pointer_names: vec![pointer.to_string()],
                tag: None,
                fields,
                span: Span::default(),
            })));
        }
    }

    /// A constant array size: an integer constant expression of literals.
    fn array_size(&mut self) -> PResult<Option<u64>> {
        let Some(open) = self.eat(&TokenKind::LBracket) else {
            return Ok(None);
        };
        let e = self.expr()?;
        let close = self.expect(TokenKind::RBracket, "to close the array size")?;
        match fold(&e) {
            Some(n) if (1..=65_536).contains(&n) => Ok(Some(n as u64)),
            _ => Err(self
                .error(
                    open.to(close),
                    "an array size must be a constant from 1 to 65536",
                )
                .label("not a constant size")
                .help("write a number or a #define'd number")),
        }
    }

    /// `typedef struct [TAG] { fields } NAME, *PNAME;` after `typedef`.
    fn struct_typedef(&mut self, start: usize, items: &mut Vec<Item>) -> PResult<()> {
        self.bump(); // struct
        let tag = match self.kind() {
            TokenKind::Ident(t) => {
                let t = t.clone();
                self.bump();
                Some(t)
            }
            _ => None,
        };
        let open = self.expect(TokenKind::LBrace, "to open the `struct` body")?;
        let mut fields: Vec<FieldDecl> = vec![];
        let (mut size, mut align) = (0u64, 1u64);
        loop {
            if self.eat(&TokenKind::RBrace).is_some() {
                break;
            }
            if self.at_eof() {
                return Err(self.unclosed_block(open));
            }
            let mut guarded_by = None;
            if self.at_word("_Guarded_by_") {
                self.bump();
                self.expect(TokenKind::LParen, "after `_Guarded_by_`")?;
                guarded_by = Some(self.ident("the name of the guarding lock")?);
                self.expect(TokenKind::RParen, "after the guarding lock")?;
            }
            if self.at_word("volatile") {
                self.bump();
            }
            let tok = self.peek().clone();
            let ty = match &tok.kind {
                // `struct TAG *Next` (the struct itself, or another).
                TokenKind::Ident(w)
                    if w == "struct"
                        && matches!(self.peek_at(1).kind, TokenKind::Ident(_))
                        && self.peek_at(2).kind == TokenKind::Star =>
                {
                    self.bump();
                    let t = match &self.peek().kind {
                        TokenKind::Ident(t) => t.clone(),
                        _ => String::new(),
                    };
                    self.bump();
                    FieldType::Pointer(format!("struct {t} *"))
                }
                TokenKind::Ident(w)
                    if self.peek_at(1).kind == TokenKind::Star
                        && (self.structs.contains_key(w) || self.scalar_of(w).is_some()) =>
                {
                    self.bump();
                    FieldType::Pointer(self.pointer_to(w))
                }
                TokenKind::Ident(w) if is_pointer_type(w) && self.field_type(w).is_none() => {
                    FieldType::Pointer(w.clone())
                }
                TokenKind::Ident(w) => match self.field_type(w) {
                    Some(t) => t,
                    None => {
                        return Err(self
                            .error(tok.span, format!("`{w}` is not a field type this version supports"))
                            .label("unsupported field type")
                            .help("fields are scalars, KSPIN_LOCK, EX_SPIN_LOCK, structs declared before, and arrays of them"))
                    }
                },
                _ => return Err(self.expected("a field type", "")),
            };
            self.bump();
            loop {
                let name = self.ident("a field name")?;
                if fields.iter().any(|f| f.name.name == name.name) {
                    return Err(self
                        .error(
                            name.span,
                            format!("field `{}` is declared twice", name.name),
                        )
                        .label("repeated"));
                }
                let array = self.array_size()?;
                let (s, a) = self.layout(&ty);
                size = size.div_ceil(a) * a + s * array.unwrap_or(1);
                align = align.max(a);
                fields.push(FieldDecl {
                    guarded_by: guarded_by.clone(),
                    ty: ty.clone(),
                    name,
                    array,
                });
                if self.eat(&TokenKind::Comma).is_none() {
                    break;
                }
            }
            self.expect(TokenKind::Semi, "after the field")?;
        }
        let size = size.div_ceil(align) * align;
        let mut names = vec![];
        let mut pointer_names = vec![];
        loop {
            let pointer = self.eat(&TokenKind::Star).is_some();
            let name = self.ident("the name the `typedef` declares")?;
            if !pointer {
                names.push(name);
            } else {
                self.pointer_names.insert(name.name.clone());
                pointer_names.push(name.name.clone());
            }
            if self.eat(&TokenKind::Comma).is_none() {
                break;
            }
        }
        self.expect(TokenKind::Semi, "after the declaration")?;
        let Some(first) = names.first() else {
            return Err(self
                .error(self.span_from(start), "the `typedef` names no struct type")
                .help("write `typedef struct _X { ... } X, *PX;`"));
        };
        for n in &names {
            self.structs.insert(n.name.clone(), (size, align));
        }
        if let Some(t) = &tag {
            self.structs.insert(format!("struct {t}"), (size, align));
        }
        items.push(Item::Struct(Box::new(StructDef {
            name: first.name.clone(),
            pointer_names,
            tag: tag.clone(),
            fields,
            span: self.span_from(start),
        })));
        for n in &names[1..] {
            // Other names of the same type.
            items.push(Item::Struct(Box::new(StructDef {
                name: n.name.clone(),
                pointer_names: vec![],
                tag: None,
                fields: items
                    .iter()
                    .rev()
                    .find_map(|i| match i {
                        Item::Struct(s) if s.name == first.name => Some(s.fields.clone()),
                        _ => None,
                    })
                    .unwrap_or_default(),
                span: n.span,
            })));
        }
        Ok(())
    }

    /// A name and its `.field`, `->field` and `[index]` selectors.
    fn postfix_from_ident(&mut self) -> PResult<Expr> {
        let id = self.ident("a name")?;
        let e = Expr {
            span: id.span,
            kind: ExprKind::Name(id),
        };
        self.postfix_rest(e)
    }

    /// The `.field`, `->field` and `[index]` selectors after `e`.
    fn postfix_rest(&mut self, mut e: Expr) -> PResult<Expr> {
        loop {
            match self.kind() {
                TokenKind::Dot | TokenKind::Arrow => {
                    let arrow = self.bump().kind == TokenKind::Arrow;
                    let field = self.ident(if arrow {
                        "a field name after `->`"
                    } else {
                        "a field name after `.`"
                    })?;
                    let span = e.span.to(field.span);
                    e = Expr {
                        kind: ExprKind::Member {
                            base: Box::new(e),
                            field,
                            arrow,
                        },
                        span,
                    };
                }
                TokenKind::LBracket => {
                    self.bump();
                    let index = self.expr()?;
                    let close = self.expect(TokenKind::RBracket, "to close the index")?;
                    let span = e.span.to(close);
                    e = Expr {
                        kind: ExprKind::Index(Box::new(e), Box::new(index)),
                        span,
                    };
                }
                _ => return Ok(e),
            }
        }
    }

    fn item(&mut self, items: &mut Vec<Item>) -> PResult<()> {
        if self.at_word("typedef") || self.at_word("enum") {
            return self.typedef_or_enum(items);
        }
        if self.at_word("thread") {
            items.push(Item::Thread(Box::new(self.thread()?)));
            return Ok(());
        }
        if self.at_word("interrupt") {
            items.push(Item::Interrupt(Box::new(self.interrupt_line()?)));
            return Ok(());
        }
        let start = self.start();
        let mut paged: Option<Span> = None;
        let mut guarded_by: Option<(Ident, Span)> = None;
        loop {
            if self.at_word("volatile") {
                // Accepted; it has no effect in the simulation.
                self.bump();
            } else if self.at_word("PAGED") {
                let span = self.bump().span;
                if paged.is_some() {
                    return Err(self.error(span, "`PAGED` is given twice").label("repeated"));
                }
                paged = Some(span);
            } else if self.at_word("_Guarded_by_") {
                let kw = self.bump().span;
                if guarded_by.is_some() {
                    return Err(self
                        .error(kw, "`_Guarded_by_` is given twice")
                        .label("repeated"));
                }
                self.expect(TokenKind::LParen, "after `_Guarded_by_`")?;
                let lock = self.ident("the name of the guarding lock")?;
                let close = self.expect(TokenKind::RParen, "after the guarding lock")?;
                guarded_by = Some((lock, kw.to(close)));
            } else {
                break;
            }
        }
        let ty_tok = self.peek().clone();
        let word = match &ty_tok.kind {
            TokenKind::Ident(w) => w.clone(),
            _ => {
                return Err(if paged.is_some() || guarded_by.is_some() {
                    self.expected("a type", "after the prefix")
                } else {
                    self.expected("a declaration, a routine, `thread` or `interrupt`", "")
                })
            }
        };
        let ty_span = ty_tok.span;
        let object = match word.as_str() {
            "KSPIN_LOCK" | "EX_SPIN_LOCK" | "KINTERRUPT" | "KDPC" | "LIST_ENTRY" => true,
            "KEVENT" | "KTIMER" | "WORK_QUEUE_ITEM" => true,
            "VOID" => false,
            w if self.scalar_of(w).is_some() => false,
            w if self.structs.contains_key(w) => true,
            "KLOCK_QUEUE_HANDLE" => true,
            // A pointer: global data or a routine's return type.
            w if self.is_pointer_word(w) => false,
            _ if paged.is_some() || guarded_by.is_some() => {
                let mut err = self.expected("a type", "after the prefix");
                if let Some(help) = did_you_mean(&word, ITEM_STARTS[5..].iter().copied()) {
                    err = err.help(help);
                }
                return Err(err);
            }
            _ => {
                let mut err =
                    self.expected("a declaration, a routine, `thread` or `interrupt`", "");
                if let Some(help) = did_you_mean(&word, ITEM_STARTS) {
                    err = err.help(help);
                }
                return Err(err);
            }
        };
        self.bump();
        // `T *Name`, `VOID *Name`: a pointer to a struct or scalar.
        let star = self.at(&TokenKind::Star)
            && (word == "VOID"
                || self.structs.contains_key(&word)
                || self.scalar_of(&word).is_some());
        if star {
            self.bump();
        }
        let pointer = if star && word == "VOID" {
            Some("PVOID".to_string())
        } else if star {
            Some(self.pointer_to(&word))
        } else if self.is_pointer_word(&word) {
            Some(word.clone())
        } else {
            None
        };
        let object = object && pointer.is_none();
        let name = self.ident("a name after the type")?;
        if !object && self.at(&TokenKind::LParen) {
            if let Some((_, gspan)) = &guarded_by {
                return Err(self
                    .error(*gspan, "`_Guarded_by_` applies to data, not to routines")
                    .label("not allowed on a routine"));
            }
            let ret_ty = match (&pointer, self.scalar_of(&word)) {
                (Some(p), _) => Type::Pointer(p.clone()),
                (None, Some(s)) => Type::Scalar(s),
                (None, None) => Type::Void,
            };
            let ret = Spanned {
                value: ret_ty,
                span: ty_span,
            };
            // `RET Name(params);` is a prototype, as in a header: names may be
            // used before their definition anyway, so it only has to match one.
            if let Some(routine) = self.routine(start, paged.is_some(), ret, name.clone())? {
                items.push(Item::Routine(Box::new(routine)));
            } else {
                self.prototypes.push(name);
            }
            return Ok(());
        }
        if word == "VOID" && pointer.is_none() {
            return Err(self
                .expected(
                    "`(`",
                    &format!("to start the parameter list of `{}`", name.name),
                )
                .help("data cannot be VOID; use ULONG, LONG, BOOLEAN or KIRQL"));
        }
        // One or more declarators sharing the type and prefixes.
        let mut decls = Vec::new();
        let mut name = name;
        loop {
            let (ty, init) = match &pointer {
                // A pointer global: one 64-bit leaf (or an array of them).
                Some(p) => (
                    GlobalType::Aggregate {
                        ty: FieldType::Pointer(p.clone()),
                        array: self.array_size()?,
                    },
                    None,
                ),
                None => self.global_declarator(&word, ty_span, &name)?,
            };
            decls.push((ty, name, init));
            if self.eat(&TokenKind::Comma).is_none() {
                break;
            }
            if star {
                self.expect(TokenKind::Star, "before the next pointer's name")?;
            }
            name = self.ident("a name after `,`")?;
        }
        self.expect(TokenKind::Semi, "after declaration")?;
        let span = self.span_from(start);
        for (ty, name, init) in decls {
            items.push(Item::Global(Box::new(GlobalDecl {
                paged: paged.is_some(),
                guarded_by: guarded_by.as_ref().map(|(i, _)| Box::new(i.clone())),
                ty,
                name,
                init: init.map(Box::new),
                span,
            })));
        }
        Ok(())
    }

    /// What follows a global's name: constructor arguments or an initializer.
    fn global_declarator(
        &mut self,
        word: &str,
        ty_span: Span,
        name: &Ident,
    ) -> PResult<(GlobalType, Option<Expr>)> {
        // `KSPIN_LOCK Locks[4];`, `LIST_ENTRY Heads[2];`, ...: an array of a
        // lock, list head or queue handle is an aggregate, element by element.
        if self.at(&TokenKind::LBracket) {
            let elem = match word {
                "KSPIN_LOCK" => Some(FieldType::KSpinLock),
                "EX_SPIN_LOCK" => Some(FieldType::ExSpinLock),
                "LIST_ENTRY" => Some(FieldType::ListEntry),
                "KLOCK_QUEUE_HANDLE" => Some(FieldType::QueueHandle),
                _ => None,
            };
            if let Some(ty) = elem {
                let array = self.array_size()?;
                return Ok((GlobalType::Aggregate { ty, array }, None));
            }
        }
        let ty = match word {
            "KSPIN_LOCK" => GlobalType::KSpinLock,
            "EX_SPIN_LOCK" => GlobalType::ExSpinLock,
            "LIST_ENTRY" => GlobalType::ListEntry,
            "KLOCK_QUEUE_HANDLE" => GlobalType::QueueHandle,
            "KINTERRUPT" => {
                let ctx = format!(
                    "after `{}`: an interrupt is declared `KINTERRUPT I(Isr, Irql[, SynchronizeIrql[, &SpinLock]]);`",
                    name.name
                );
                self.expect(TokenKind::LParen, &ctx)?;
                let isr = self.ident("the name of the interrupt service routine")?;
                self.expect(TokenKind::Comma, "after the service routine")?;
                let irql = Box::new(self.expr()?);
                let sync_irql = if self.eat(&TokenKind::Comma).is_some() {
                    Some(Box::new(self.expr()?))
                } else {
                    None
                };
                let spin_lock = if sync_irql.is_some() && self.eat(&TokenKind::Comma).is_some() {
                    self.expect(
                        TokenKind::Amp,
                        "before the shared interrupt spin lock (`&SpinLock`)",
                    )?;
                    Some(self.ident("the name of a KSPIN_LOCK")?)
                } else {
                    None
                };
                self.expect(TokenKind::RParen, "to close the interrupt declaration")?;
                GlobalType::KInterrupt {
                    isr,
                    irql,
                    sync_irql,
                    spin_lock: spin_lock.map(Box::new),
                }
            }
            w if self.structs.contains_key(w) => GlobalType::Aggregate {
                ty: FieldType::Struct(w.to_string()),
                array: self.array_size()?,
            },
            "KDPC" if self.at(&TokenKind::LParen) => {
                self.bump();
                let routine = self.ident("the name of the DPC routine")?;
                let context = if self.eat(&TokenKind::Comma).is_some() {
                    Some(Box::new(self.expr()?))
                } else {
                    None
                };
                self.expect(
                    TokenKind::RParen,
                    "after the DPC routine (and its DeferredContext)",
                )?;
                GlobalType::KDpc { routine, context }
            }
            w if object_kind(w).is_some() => GlobalType::Aggregate {
                ty: FieldType::Object(object_kind(w).expect("matched")),
                array: self.array_size()?,
            },
            _ => {
                let s = self.scalar_of(word).unwrap_or(ScalarType::Ulong);
                match self.array_size()? {
                    Some(n) => GlobalType::Aggregate {
                        ty: FieldType::Scalar(s),
                        array: Some(n),
                    },
                    None => GlobalType::Scalar(Spanned {
                        value: s,
                        span: ty_span,
                    }),
                }
            }
        };
        let init = if matches!(ty, GlobalType::Scalar(_)) && self.eat(&TokenKind::Assign).is_some()
        {
            Some(self.expr()?)
        } else {
            None
        };
        Ok((ty, init))
    }

    fn routine(
        &mut self,
        start: usize,
        paged: bool,
        ret: Spanned<Type>,
        name: Ident,
    ) -> PResult<Option<Routine>> {
        self.expect(TokenKind::LParen, "")?;
        let mut params = Vec::new();
        if self.eat(&TokenKind::RParen).is_none() {
            if self.at_word("VOID") && self.peek_at(1).kind == TokenKind::RParen {
                self.bump();
                self.bump();
            } else {
                loop {
                    params.push(self.param()?);
                    if self.eat(&TokenKind::Comma).is_none() {
                        self.expect(TokenKind::RParen, "to close the parameter list")?;
                        break;
                    }
                }
            }
        }
        if self.eat(&TokenKind::Semi).is_some() {
            return Ok(None);
        }
        let body = self.block("to open the routine body")?;
        Ok(Some(Routine {
            paged,
            ret,
            name,
            params,
            body,
            span: self.span_from(start),
        }))
    }

    fn param(&mut self) -> PResult<Param> {
        let tok = self.peek().clone();
        let ty = match &tok.kind {
            TokenKind::Ident(w) => {
                if self.scalar_of(w).is_some() && self.peek_at(1).kind == TokenKind::Star {
                    // `ULONG *Name`: a pointer to a scalar.
                    self.bump();
                    Type::Pointer(self.pointer_to(w))
                } else if let Some(s) = self.scalar_of(w) {
                    Type::Scalar(s)
                } else if self.structs.contains_key(w) && self.peek_at(1).kind == TokenKind::Star {
                    // `T *Name`: a pointer to a struct.
                    self.bump();
                    Type::Pointer(format!("{w} *"))
                } else if is_pointer_type(w) {
                    Type::Pointer(w.clone())
                } else if w == "VOID" {
                    return Err(self
                        .error(tok.span, "a parameter cannot be VOID")
                        .label("VOID parameter")
                        .help("write `()` or `(VOID)` for a routine without parameters"));
                } else if w == "KLOCK_QUEUE_HANDLE" {
                    return Err(self
                        .error(tok.span, "a `KLOCK_QUEUE_HANDLE` cannot be a parameter")
                        .label("locals only")
                        .help("declare the queue handle as a local"));
                } else {
                    let mut err = self.expected("a parameter type", "");
                    if let Some(help) = did_you_mean(w, PARAM_TYPES) {
                        err = err.help(help);
                    }
                    return Err(err);
                }
            }
            _ => return Err(self.expected("a parameter type", "")),
        };
        self.bump();
        let name = self.ident("a parameter name")?;
        Ok(Param {
            ty: Spanned {
                value: ty,
                span: tok.span,
            },
            name,
        })
    }

    /// `thread Name [on cpu N] [repeat K] { ... }`
    fn thread(&mut self) -> PResult<ThreadDecl> {
        let start = self.bump().span.offset;
        let name = self.ident("a thread name")?;
        let mut cpu: Option<Spanned<u64>> = None;
        let mut repeat: Option<Spanned<u64>> = None;
        loop {
            if self.at(&TokenKind::LBrace) {
                break;
            }
            let opt_span = self.peek().span;
            if self.at_word("on") {
                self.bump();
                self.expect_word("cpu", "after `on`")?;
                let n = self.int("a processor number after `on cpu`")?;
                self.set_once(&mut cpu, n, opt_span, "on cpu")?;
            } else if self.at_word("repeat") {
                self.bump();
                let k = self.int("a count after `repeat`")?;
                self.set_once(&mut repeat, k, opt_span, "repeat")?;
            } else {
                return Err(
                    self.expected("`on cpu N`, `repeat K` or `{`", "in the thread declaration")
                );
            }
        }
        let body = self.block("to open the thread body")?;
        Ok(ThreadDecl {
            name,
            cpu,
            repeat,
            body,
            span: self.span_from(start),
        })
    }

    fn set_once(
        &self,
        slot: &mut Option<Spanned<u64>>,
        value: Spanned<u64>,
        opt_span: Span,
        what: &str,
    ) -> PResult<()> {
        if slot.is_some() {
            return Err(self
                .error(opt_span.to(value.span), format!("`{what}` is given twice"))
                .label("repeated option"));
        }
        *slot = Some(value);
        Ok(())
    }

    /// `interrupt I on cpu N [at D] [every D] [count K];`
    fn interrupt_line(&mut self) -> PResult<InterruptLine> {
        let start = self.bump().span.offset;
        let interrupt = self.ident("the name of a KINTERRUPT")?;
        let mut cpu = None;
        let mut at = None;
        let mut every = None;
        let mut count = None;
        loop {
            if self.at(&TokenKind::Semi) {
                break;
            }
            let opt_span = self.peek().span;
            if self.at_word("on") {
                self.bump();
                self.expect_word("cpu", "after `on`")?;
                let n = self.int("a processor number after `on cpu`")?;
                self.set_once(&mut cpu, n, opt_span, "on cpu")?;
            } else if self.at_word("at") {
                self.bump();
                let d = self.duration("a duration after `at`")?;
                self.set_once(&mut at, d, opt_span, "at")?;
            } else if self.at_word("every") {
                self.bump();
                let d = self.duration("a duration after `every`")?;
                self.set_once(&mut every, d, opt_span, "every")?;
            } else if self.at_word("count") {
                self.bump();
                let k = self.int("a number after `count`")?;
                self.set_once(&mut count, k, opt_span, "count")?;
            } else {
                let what = if cpu.is_none() {
                    "`on cpu N`"
                } else {
                    "`at D`, `every D`, `count K` or `;`"
                };
                return Err(self.expected(what, "in the interrupt line"));
            }
        }
        self.bump(); // `;`
        let span = self.span_from(start);
        let Some(cpu) = cpu else {
            return Err(self
                .error(span, "an interrupt line needs `on cpu N`")
                .label("no processor given")
                .help(format!("write `interrupt {} on cpu 0;`", interrupt.name)));
        };
        Ok(InterruptLine {
            interrupt,
            cpu,
            at,
            every,
            count,
            span,
        })
    }

    // ----- statements ---------------------------------------------------
    //
    // The functions on the recursive path (`block`, `stmt`, `stmt_kind`,
    // `if_stmt`, ...) are kept small and build their error messages in
    // separate cold functions: in unoptimized builds a frame holds every
    // temporary of its function, and 256 levels must fit in a 2 MiB stack.

    fn block(&mut self, what: &'static str) -> PResult<Block> {
        let open = self.expect(TokenKind::LBrace, what)?;
        let mut stmts = Vec::new();
        loop {
            if self.eat(&TokenKind::RBrace).is_some() {
                break;
            }
            if self.at_eof() {
                return Err(self.unclosed_block(open));
            }
            stmts.push(self.stmt()?);
        }
        // A statement is large and a growing vector keeps room for four:
        // give the room back (100,000 one-line routines would keep 300,000
        // empty statements otherwise).
        stmts.shrink_to_fit();
        Ok(Block {
            stmts,
            span: self.span_from(open.offset),
        })
    }

    #[cold]
    #[inline(never)]
    fn unclosed_block(&mut self, open: Span) -> Box<SimError> {
        let line = self.line(open.offset);
        self.expected("`}`", "to close the block")
            .help(format!("the block opens at line {line}"))
    }

    fn stmt(&mut self) -> PResult<Stmt> {
        self.enter()?;
        let start = self.start();
        let r = self.stmt_kind();
        self.depth -= 1;
        Ok(Stmt {
            kind: r?,
            span: self.span_from(start),
        })
    }

    fn stmt_kind(&mut self) -> PResult<StmtKind> {
        let word = match self.kind() {
            TokenKind::LBrace => return Ok(StmtKind::Block(self.block("to open a block")?)),
            TokenKind::Semi => {
                self.bump();
                return Ok(StmtKind::Empty);
            }
            TokenKind::Ident(w) => w.as_str(),
            _ => "",
        };
        match word {
            "if" => self.if_stmt(),
            "while" => self.while_stmt(),
            "for" => self.for_stmt(),
            "break" => self.jump_stmt(StmtKind::Break, "after `break`"),
            "continue" => self.jump_stmt(StmtKind::Continue, "after `continue`"),
            "return" => self.return_stmt(),
            "__try" => self.try_stmt(),
            "do" => self.do_stmt(),
            "switch" => self.switch_stmt(),
            "else" | "__except" | "__finally" | "case" | "default" | "goto" | "__leave" => {
                Err(self.misplaced_keyword())
            }
            _ => {
                let kind = self.simple_stmt_kind(true)?;
                let context = match kind {
                    StmtKind::Decl { .. } => "after declaration",
                    _ => "after statement",
                };
                self.expect(TokenKind::Semi, context)?;
                Ok(kind)
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn misplaced_keyword(&self) -> Box<SimError> {
        let tok = self.peek();
        let w = match &tok.kind {
            TokenKind::Ident(w) => w.as_str(),
            _ => "",
        };
        match w {
            "else" => self.error(tok.span, "`else` without a matching `if`").label("no `if` before this"),
            "case" | "default" => self
                .error(tok.span, format!("`{w}` outside a `switch`"))
                .label("no `switch` around this"),
            "__except" => self.error(tok.span, "`__except` without a matching `__try`").label("no `__try` before this"),
            "__finally" => self
                .error(tok.span, "`__finally` is not supported")
                .label("not supported")
                .help("use `__except (EXCEPTION_EXECUTE_HANDLER) { ... }`"),
            _ => self
                .error(tok.span, format!("`{w}` is not supported in scenarios"))
                .label("not supported")
                .help(
                    "statements are declarations, assignments, `++`/`--`, calls, if/else, while, for, \
                     break, continue, return, blocks and __try/__except",
                ),
        }
    }

    fn jump_stmt(&mut self, kind: StmtKind, context: &'static str) -> PResult<StmtKind> {
        self.bump();
        self.expect(TokenKind::Semi, context)?;
        Ok(kind)
    }

    fn return_stmt(&mut self) -> PResult<StmtKind> {
        self.bump();
        let value = if self.at(&TokenKind::Semi) {
            None
        } else {
            Some(self.expr()?)
        };
        self.expect(TokenKind::Semi, "after `return`")?;
        Ok(StmtKind::Return(value))
    }

    fn try_stmt(&mut self) -> PResult<StmtKind> {
        self.bump();
        let body = self.block("to open the `__try` block")?;
        if self.at_word("__finally") {
            return Err(self.misplaced_keyword());
        }
        self.expect_word("__except", "after the `__try` block")?;
        let filter = self.paren_cond("after `__except`", "to close the `__except` filter")?;
        let handler = self.block("to open the `__except` block")?;
        Ok(StmtKind::Try {
            body,
            filter,
            handler,
        })
    }

    /// `( expr )` after `if`, `while`, `__except`.
    fn paren_cond(&mut self, open: &'static str, close: &'static str) -> PResult<Expr> {
        self.expect(TokenKind::LParen, open)?;
        let cond = self.expr()?;
        self.expect(TokenKind::RParen, close)?;
        Ok(cond)
    }

    fn if_stmt(&mut self) -> PResult<StmtKind> {
        self.bump();
        let cond = self.paren_cond("after `if`", "to close the `if` condition")?;
        let then = Box::new(self.stmt()?);
        let els = if self.at_word("else") {
            self.bump();
            Some(Box::new(self.stmt()?))
        } else {
            None
        };
        Ok(StmtKind::If { cond, then, els })
    }

    /// `do statement while (cond);`
    fn do_stmt(&mut self) -> PResult<StmtKind> {
        self.bump();
        let body = Box::new(self.stmt()?);
        self.expect_word("while", "after the body of `do`")?;
        let cond = self.paren_cond("after `while`", "to close the `while` condition")?;
        self.expect(TokenKind::Semi, "after `do ... while (...)`")?;
        Ok(StmtKind::DoWhile { body, cond })
    }

    /// `switch (value) { case K: ... default: ... }`
    fn switch_stmt(&mut self) -> PResult<StmtKind> {
        self.bump();
        let value = self.paren_cond("after `switch`", "to close the `switch` value")?;
        let open = self.expect(TokenKind::LBrace, "to open the `switch` body")?;
        let mut arms: Vec<SwitchArm> = Vec::new();
        loop {
            if self.eat(&TokenKind::RBrace).is_some() {
                break;
            }
            if self.at_eof() {
                return Err(self.unclosed_block(open));
            }
            if self.at_word("case") || self.at_word("default") {
                let kw = self.bump();
                let is_case = matches!(&kw.kind, TokenKind::Ident(w) if w == "case");
                let label = if is_case { Some(self.expr()?) } else { None };
                let colon = self.expect(
                    TokenKind::Colon,
                    if is_case {
                        "after the `case` value"
                    } else {
                        "after `default`"
                    },
                )?;
                let span = kw.span.to(colon);
                match arms.last_mut() {
                    Some(a) if a.stmts.is_empty() => a.labels.push((label, span)),
                    _ => arms.push(SwitchArm {
                        labels: vec![(label, span)],
                        stmts: vec![],
                    }),
                }
                continue;
            }
            let stmt = self.stmt()?;
            match arms.last_mut() {
                Some(a) => a.stmts.push(stmt),
                None => {
                    return Err(self
                        .error(
                            stmt.span,
                            "a statement in a `switch` before any `case` label",
                        )
                        .label("never executed")
                        .help("start the body with `case K:` or `default:`"))
                }
            }
        }
        Ok(StmtKind::Switch { value, arms })
    }

    fn while_stmt(&mut self) -> PResult<StmtKind> {
        self.bump();
        let cond = self.paren_cond("after `while`", "to close the `while` condition")?;
        let body = Box::new(self.stmt()?);
        Ok(StmtKind::While { cond, body })
    }

    fn for_stmt(&mut self) -> PResult<StmtKind> {
        self.bump();
        self.expect(TokenKind::LParen, "after `for`")?;
        let init = if self.at(&TokenKind::Semi) {
            None
        } else {
            Some(Box::new(self.simple_stmt(true)?))
        };
        self.expect(TokenKind::Semi, "after the `for` initializer")?;
        let cond = if self.at(&TokenKind::Semi) {
            None
        } else {
            Some(self.expr()?)
        };
        self.expect(TokenKind::Semi, "after the `for` condition")?;
        let step = if self.at(&TokenKind::RParen) {
            None
        } else {
            Some(Box::new(self.simple_stmt(false)?))
        };
        self.expect(TokenKind::RParen, "to close the `for` header")?;
        let body = Box::new(self.stmt()?);
        Ok(StmtKind::For {
            init,
            cond,
            step,
            body,
        })
    }

    /// A statement without its `;`: declaration (if allowed), assignment,
    /// increment/decrement, or expression.
    fn simple_stmt(&mut self, allow_decl: bool) -> PResult<Stmt> {
        let start = self.start();
        let kind = self.simple_stmt_kind(allow_decl)?;
        Ok(Stmt {
            kind,
            span: self.span_from(start),
        })
    }

    fn simple_stmt_kind(&mut self, allow_decl: bool) -> PResult<StmtKind> {
        if allow_decl && self.at_word("volatile") {
            // `volatile` is accepted and has no effect.
            self.bump();
        }
        let next = &self.peek_at(1).kind;
        match self.kind() {
            TokenKind::PlusPlus | TokenKind::MinusMinus => {
                let increment = self.bump().kind == TokenKind::PlusPlus;
                let target = self.postfix_from_ident()?;
                return Ok(match target.kind {
                    ExprKind::Name(target) => StmtKind::IncDec { target, increment },
                    _ => StmtKind::IncDecPlace { target, increment },
                });
            }
            TokenKind::Ident(w)
                if self.is_local_type(w)
                    || ((self.structs.contains_key(w) || self.scalar_of(w).is_some())
                        && *next == TokenKind::Star) =>
            {
                if !allow_decl {
                    return Err(self.expected("an assignment, `++`, `--` or a call", ""));
                }
                return self.local_decl();
            }
            TokenKind::Ident(w) if TYPE_KEYWORDS.contains(&w.as_str()) => {
                return Err(self.type_in_statement())
            }
            TokenKind::Ident(w)
                if !is_reserved(w)
                    && matches!(
                        next,
                        TokenKind::Dot | TokenKind::LBracket | TokenKind::Arrow
                    ) =>
            {
                // A field or element: `Ctr.Retries += 1;`, `Slots[2]++;`.
                let save = self.pos;
                let target = self.postfix_from_ident()?;
                if let Some(op) = assign_op(self.kind()) {
                    self.bump();
                    let value = self.expr()?;
                    return Ok(StmtKind::AssignPlace { target, op, value });
                }
                if matches!(self.kind(), TokenKind::PlusPlus | TokenKind::MinusMinus) {
                    let increment = self.bump().kind == TokenKind::PlusPlus;
                    return Ok(StmtKind::IncDecPlace { target, increment });
                }
                self.pos = save;
            }
            TokenKind::Ident(w) if !is_reserved(w) => {
                let op = assign_op(next);
                if let Some(op) = op {
                    let target = self.ident("a variable name")?;
                    self.bump();
                    let value = self.expr()?;
                    return Ok(StmtKind::Assign { target, op, value });
                }
                if matches!(next, TokenKind::PlusPlus | TokenKind::MinusMinus) {
                    let increment = *next == TokenKind::PlusPlus;
                    let target = self.ident("a variable name")?;
                    self.bump();
                    return Ok(StmtKind::IncDec { target, increment });
                }
                if allow_decl && matches!(next, TokenKind::Ident(second) if !is_reserved(second)) {
                    return Err(self.unknown_local_type());
                }
            }
            _ => {}
        }
        let value = self.expr()?;
        let place = matches!(
            value.kind,
            ExprKind::Deref(_) | ExprKind::Member { .. } | ExprKind::Index(..)
        );
        match self.kind() {
            // `*p = 5;`, `F()->Count += 1;`
            k if place && assign_op(k).is_some() => {
                let op = assign_op(k).expect("matched");
                self.bump();
                let v = self.expr()?;
                Ok(StmtKind::AssignPlace {
                    target: value,
                    op,
                    value: v,
                })
            }
            // `(*p)++;`
            TokenKind::PlusPlus | TokenKind::MinusMinus if place => {
                let increment = self.bump().kind == TokenKind::PlusPlus;
                Ok(StmtKind::IncDecPlace {
                    target: value,
                    increment,
                })
            }
            TokenKind::Assign
            | TokenKind::PlusEq
            | TokenKind::MinusEq
            | TokenKind::OtherAssign(_) => Err(self.assign_to_expression()),
            _ => Ok(StmtKind::Expr(value)),
        }
    }

    #[cold]
    #[inline(never)]
    fn type_in_statement(&self) -> Box<SimError> {
        let tok = self.peek();
        let w = match &tok.kind {
            TokenKind::Ident(w) => w.as_str(),
            _ => "",
        };
        let (msg, help) = match w {
            "VOID" => (
                "a local cannot be VOID".to_string(),
                "use ULONG, LONG, BOOLEAN or KIRQL",
            ),
            "UCHAR" => ("`UCHAR` locals are not supported".to_string(), "use ULONG"),
            "PAGED" | "_Guarded_by_" => (
                format!("`{w}` applies to file-scope declarations only"),
                "move the declaration to file scope",
            ),
            _ => (
                format!("a `{w}` cannot be a local"),
                "declare it at file scope, before or after the routines",
            ),
        };
        self.error(tok.span, msg)
            .label("not allowed here")
            .help(help)
    }

    #[cold]
    #[inline(never)]
    fn unknown_local_type(&self) -> Box<SimError> {
        let tok = self.peek();
        let w = match &tok.kind {
            TokenKind::Ident(w) => w.as_str(),
            _ => "",
        };
        let help = did_you_mean(w, LOCAL_TYPES.iter().copied()).unwrap_or_else(|| {
            "a local's type is a scalar (KIRQL, ULONG, LONG, BOOLEAN, UCHAR, USHORT, ULONG64, NTSTATUS, PVOID ...), KLOCK_QUEUE_HANDLE, a struct or enum declared with typedef, or a pointer to one (PX, T *)".to_string()
        });
        self.error(tok.span, format!("unknown type `{w}`"))
            .label("unknown type")
            .help(help)
    }

    #[cold]
    #[inline(never)]
    fn assignment_in_expression(&self) -> Box<SimError> {
        self.error(
            self.peek().span,
            "an assignment is a statement, not an expression",
        )
        .label("assignment inside an expression")
        .help("write the assignment as a statement of its own")
    }

    #[cold]
    #[inline(never)]
    fn assign_to_expression(&self) -> Box<SimError> {
        self.error(self.peek().span, "only a variable can be assigned to")
            .label("assignment to an expression")
            .help("the left side of `=`, `+=` or `-=` must be a plain name")
    }

    /// `TYPE a [= e], b [= e]` (without `;`).
    fn local_decl(&mut self) -> PResult<StmtKind> {
        let tok = self.bump();
        let ty = match &tok.kind {
            TokenKind::Ident(w) if w == "KLOCK_QUEUE_HANDLE" => Type::QueueHandle,
            TokenKind::Ident(w) if w == "KEVENT" => Type::Event,
            TokenKind::Ident(w)
                if self.pointer_names.contains(w)
                    || LOCAL_POINTERS.contains(&w.as_str())
                    || scalar_pointer(w).is_some() =>
            {
                Type::Pointer(w.clone())
            }
            TokenKind::Ident(w) if self.structs.contains_key(w) => Type::Struct(w.clone()),
            TokenKind::Ident(w) => Type::Scalar(self.scalar_of(w).unwrap_or(ScalarType::Ulong)),
            _ => Type::Scalar(ScalarType::Ulong),
        };
        // `T *p;`: a pointer to a struct or a scalar.
        let ty = match (&tok.kind, self.kind()) {
            (TokenKind::Ident(w), TokenKind::Star) if self.structs.contains_key(w) => {
                self.bump();
                Type::Pointer(format!("{w} *"))
            }
            (TokenKind::Ident(w), TokenKind::Star) if self.scalar_of(w).is_some() => {
                self.bump();
                Type::Pointer(self.pointer_to(w))
            }
            _ => ty,
        };
        let mut vars = Vec::new();
        loop {
            let name = self.ident("a variable name")?;
            if let Some(n) = self.array_size()? {
                // A local array: one local per element (`H[0]`, `H[1]`),
                // reached with constant indexes.
                for k in 0..n.min(256) {
                    vars.push((
                        Ident {
                            name: format!("{}[{k}]", name.name),
                            span: name.span,
                        },
                        None,
                    ));
                }
                if self.eat(&TokenKind::Comma).is_none() {
                    break;
                }
                continue;
            }
            let init = if self.at(&TokenKind::Assign) {
                if ty == Type::QueueHandle {
                    let span = self.peek().span;
                    return Err(self
                        .error(span, "a `KLOCK_QUEUE_HANDLE` cannot be initialized")
                        .label("no initializer allowed")
                        .help("the acquire routine fills it in"));
                }
                self.bump();
                Some(self.expr()?)
            } else {
                None
            };
            vars.push((name, init));
            if self.eat(&TokenKind::Comma).is_none() {
                break;
            }
        }
        Ok(StmtKind::Decl {
            ty: Spanned {
                value: ty,
                span: tok.span,
            },
            vars,
        })
    }

    // ----- expressions --------------------------------------------------
    //
    // Expression functions return the tree depth with the node, so a long
    // operator chain (built in a loop, not by recursion) is limited as well
    // as deep parentheses. Recursion is counted in `unary` (every nested
    // expression passes through it) and around the branches of `?:`.

    /// A full expression.
    fn expr(&mut self) -> PResult<Expr> {
        Ok(self.ternary()?.0)
    }

    fn ternary(&mut self) -> PResult<(Expr, usize)> {
        let (cond, cd) = self.binary(1)?;
        if self.eat(&TokenKind::Question).is_none() {
            return Ok((cond, cd));
        }
        let (a, ad) = self.nested_ternary()?;
        self.expect(TokenKind::Colon, "in the conditional expression")?;
        let (b, bd) = self.nested_ternary()?;
        let depth = cd.max(ad).max(bd) + 1;
        let span = cond.span.to(b.span);
        self.check_tree_depth(depth, span)?;
        Ok((
            Expr {
                kind: ExprKind::Cond(Box::new(cond), Box::new(a), Box::new(b)),
                span,
            },
            depth,
        ))
    }

    fn nested_ternary(&mut self) -> PResult<(Expr, usize)> {
        self.enter()?;
        let r = self.ternary();
        self.depth -= 1;
        r
    }

    /// Precedence climbing over the binary operators.
    fn binary(&mut self, min_prec: u8) -> PResult<(Expr, usize)> {
        let (mut lhs, mut depth) = self.unary()?;
        while let Some((op, prec)) = binop(self.kind()) {
            if prec < min_prec {
                break;
            }
            self.bump();
            let (rhs, rd) = self.binary(prec + 1)?;
            depth = depth.max(rd) + 1;
            let span = lhs.span.to(rhs.span);
            self.check_tree_depth(depth, span)?;
            lhs = Expr {
                kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)),
                span,
            };
        }
        if matches!(self.kind(), TokenKind::OtherAssign(_)) {
            return Err(self.assignment_in_expression());
        }
        Ok((lhs, depth))
    }

    fn unary(&mut self) -> PResult<(Expr, usize)> {
        self.enter()?;
        let r = self.unary_inner();
        self.depth -= 1;
        r
    }

    fn unary_inner(&mut self) -> PResult<(Expr, usize)> {
        match self.kind() {
            TokenKind::Minus => self.prefix(UnOp::Neg),
            TokenKind::Bang => self.prefix(UnOp::Not),
            TokenKind::Tilde => self.prefix(UnOp::BitNot),
            TokenKind::Amp => self.addr_of(),
            TokenKind::Star => self.prefix_with(ExprKind::Deref),
            TokenKind::PlusPlus | TokenKind::MinusMinus => Err(self.incdec_in_expression(None)),
            TokenKind::LParen => self.paren_or_cast(),
            _ => self.primary(),
        }
    }

    fn prefix(&mut self, op: UnOp) -> PResult<(Expr, usize)> {
        self.prefix_with(|inner| ExprKind::Unary(op, inner))
    }

    /// A prefix operator (`-`, `!`, `~`, `*`) applied to the unary
    /// expression after it, as `make` builds it.
    fn prefix_with(&mut self, make: impl FnOnce(Box<Expr>) -> ExprKind) -> PResult<(Expr, usize)> {
        let op_span = self.bump().span;
        let (inner, d) = self.unary()?;
        let span = op_span.to(inner.span);
        self.check_tree_depth(d + 1, span)?;
        Ok((
            Expr {
                kind: make(Box::new(inner)),
                span,
            },
            d + 1,
        ))
    }

    fn addr_of(&mut self) -> PResult<(Expr, usize)> {
        let amp = self.bump().span;
        // `&*p`, `&(*d).A`: the address of a place reached through `*` or
        // parentheses.
        if matches!(self.kind(), TokenKind::Star | TokenKind::LParen) {
            let (place, d) = self.unary()?;
            let span = amp.to(place.span);
            return Ok((
                Expr {
                    kind: ExprKind::AddrOfPlace(Box::new(place)),
                    span,
                },
                d + 1,
            ));
        }
        if !matches!(self.kind(), TokenKind::Ident(_)) {
            return Err(self
                .expected("a name after `&`", "")
                .help("`&` can only take the address of a plain name"));
        }
        let place = self.postfix_from_ident()?;
        let span = amp.to(place.span);
        let kind = match place.kind {
            ExprKind::Name(name) => ExprKind::AddrOf(name),
            _ => ExprKind::AddrOfPlace(Box::new(place)),
        };
        Ok((Expr { kind, span }, 1))
    }

    #[cold]
    #[inline(never)]
    fn incdec_in_expression(&self, name: Option<&str>) -> Box<SimError> {
        let tok = self.peek();
        let op = tok.kind.punct_text().unwrap_or("++");
        let suggestion = match name {
            Some(n) => format!("{n}{op}"),
            None => format!("{op}x"),
        };
        self.error(
            tok.span,
            format!("`{op}` cannot be used inside an expression"),
        )
        .label("not an expression")
        .help(format!("write `{suggestion};` as a statement of its own"))
    }

    fn paren_or_cast(&mut self) -> PResult<(Expr, usize)> {
        let open = self.bump().span;
        let cast = match &self.kind() {
            TokenKind::Ident(w) if self.peek_at(1).kind == TokenKind::RParen => self.scalar_of(w),
            _ => None,
        };
        // `(PX)e`, `(T *)e`: a pointer conversion; references carry no
        // type at run time, so the value passes unchanged.
        let pointer_cast = cast.is_none()
            && match (&self.kind(), &self.peek_at(1).kind, &self.peek_at(2).kind) {
                (TokenKind::Ident(w), TokenKind::RParen, _) => {
                    self.pointer_names.contains(w)
                        || (is_pointer_type(w) && !self.structs.contains_key(w))
                }
                (TokenKind::Ident(w), TokenKind::Star, TokenKind::RParen) => {
                    self.structs.contains_key(w) || w == "VOID"
                }
                _ => false,
            };
        if pointer_cast {
            while self.eat(&TokenKind::RParen).is_none() {
                self.bump();
            }
            let (mut inner, d) = self.unary()?;
            inner.span = open.to(inner.span);
            return Ok((inner, d + 1));
        }
        if let Some(ty) = cast {
            self.bump();
            self.bump();
            let (inner, d) = self.unary()?;
            let span = open.to(inner.span);
            self.check_tree_depth(d + 1, span)?;
            return Ok((
                Expr {
                    kind: ExprKind::Cast(ty, Box::new(inner)),
                    span,
                },
                d + 1,
            ));
        }
        let (mut inner, d) = self.ternary()?;
        let close = self.expect(TokenKind::RParen, "to close `(`")?;
        inner.span = open.to(close);
        if matches!(
            self.kind(),
            TokenKind::Dot | TokenKind::LBracket | TokenKind::Arrow
        ) {
            // `(*p).Field`, `(p)->Field`.
            return Ok((self.postfix_rest(inner)?, d + 1));
        }
        Ok((inner, d))
    }

    fn primary(&mut self) -> PResult<(Expr, usize)> {
        let tok = self.peek();
        let span = tok.span;
        let kind = match &tok.kind {
            TokenKind::Int(v) => match i64::try_from(*v) {
                Ok(v) => ExprKind::Int(v),
                Err(_) => return Err(self.bad_primary()),
            },
            TokenKind::TypedInt(v, t) => ExprKind::Typed(*v as i64, *t),
            TokenKind::Ident(w) if w == "sizeof" => return self.sizeof(),
            TokenKind::Str(_) => return Ok((self.string_literal(), 1)),
            TokenKind::Ident(w) if !is_reserved(w) => {
                let name = Ident {
                    name: w.clone(),
                    span,
                };
                if matches!(
                    self.peek_at(1).kind,
                    TokenKind::Dot | TokenKind::LBracket | TokenKind::Arrow
                ) {
                    let e = self.postfix_from_ident()?;
                    return match self.kind() {
                        TokenKind::PlusPlus | TokenKind::MinusMinus => {
                            Err(self.incdec_in_expression(None))
                        }
                        _ => Ok((e, 1)),
                    };
                }
                self.bump();
                return match self.kind() {
                    TokenKind::LParen => {
                        let (call, d) = self.call(name)?;
                        if matches!(
                            self.kind(),
                            TokenKind::Dot | TokenKind::LBracket | TokenKind::Arrow
                        ) {
                            // `F()->Field`: a routine returning a pointer.
                            return Ok((self.postfix_rest(call)?, d + 1));
                        }
                        Ok((call, d))
                    }
                    TokenKind::PlusPlus | TokenKind::MinusMinus => {
                        Err(self.incdec_in_expression(Some(&name.name)))
                    }
                    _ => Ok((
                        Expr {
                            kind: ExprKind::Name(name),
                            span,
                        },
                        1,
                    )),
                };
            }
            _ => return Err(self.bad_primary()),
        };
        self.bump();
        Ok((Expr { kind, span }, 1))
    }

    /// `sizeof(T)` for a scalar type name: a `SIZE_T`.
    fn sizeof(&mut self) -> PResult<(Expr, usize)> {
        let start = self.start();
        self.bump();
        self.expect(TokenKind::LParen, "after `sizeof`")?;
        let tok = self.peek().clone();
        // `sizeof(T *)`: a pointer, 8 bytes, whatever T is.
        if matches!(&tok.kind, TokenKind::Ident(_)) && self.peek_at(1).kind == TokenKind::Star {
            self.bump();
            while self.eat(&TokenKind::Star).is_some() {}
            self.expect(TokenKind::RParen, "to close `sizeof(`")?;
            return Ok((
                Expr {
                    kind: ExprKind::Typed(8, ScalarType::Ulong64),
                    span: self.span_from(start),
                },
                1,
            ));
        }
        // A scalar, kernel-object or struct type keeps its name, so
        // `ExAllocatePoolWithTag(..., sizeof(KEVENT), ...)` knows its blocks.
        if let TokenKind::Ident(w) = &tok.kind {
            let size = match self.scalar_of(w) {
                Some(t) if scalar_type(w).is_some() => Some(t.size()),
                _ if object_kind(w).is_some() => object_kind(w).map(|k| k.size()),
                None => self.structs.get(w).map(|s| s.0),
                Some(_) => None,
            };
            if let Some(size) = size {
                let ty = Ident {
                    name: w.clone(),
                    span: tok.span,
                };
                self.bump();
                self.expect(TokenKind::RParen, "to close `sizeof(`")?;
                return Ok((
                    Expr {
                        kind: ExprKind::SizeOf(ty, size),
                        span: self.span_from(start),
                    },
                    1,
                ));
            }
        }
        let size = match &tok.kind {
            TokenKind::Ident(w) => match self.scalar_of(w) {
                Some(t) => t.size(),
                None if matches!(
                    w.as_str(),
                    "KSPIN_LOCK" | "LIST_ENTRY" | "KLOCK_QUEUE_HANDLE" | "EX_SPIN_LOCK"
                ) =>
                {
                    match w.as_str() {
                        "KSPIN_LOCK" => 8,
                        "EX_SPIN_LOCK" => 4,
                        "LIST_ENTRY" => 16,
                        _ => 24,
                    }
                }
                None if is_pointer_type(w) => 8,
                None => {
                    return Err(self
                        .expected("a type name", "after `sizeof(`")
                        .help("`sizeof` takes a type: `sizeof(ULONG)`"))
                }
            },
            _ => return Err(self.expected("a type name", "after `sizeof(`")),
        };
        self.bump();
        self.expect(TokenKind::RParen, "to close `sizeof(`")?;
        Ok((
            Expr {
                kind: ExprKind::Typed(size as i64, ScalarType::Ulong64),
                span: self.span_from(start),
            },
            1,
        ))
    }

    /// Adjacent string literals concatenate, as in C.
    fn string_literal(&mut self) -> Expr {
        let mut value = String::new();
        let mut span = self.peek().span;
        while let TokenKind::Str(more) = self.kind() {
            value.push_str(more);
            span = span.to(self.peek().span);
            self.bump();
        }
        Expr {
            kind: ExprKind::Str(value),
            span,
        }
    }

    /// The error for a token that cannot start an expression.
    #[cold]
    #[inline(never)]
    fn bad_primary(&mut self) -> Box<SimError> {
        let tok = self.peek().clone();
        match &tok.kind {
            TokenKind::Int(_) => self
                .error(tok.span, "integer literal is too large")
                .label("larger than 0x7FFFFFFFFFFFFFFF")
                .help("values are 64-bit signed integers"),
            TokenKind::Duration(_) => self
                .error(tok.span, "a duration is not a value")
                .label("duration in an expression")
                .help(
                    "durations belong in the header and workload lines; \
                     KeStallExecutionProcessor takes a plain number of microseconds",
                ),
            TokenKind::Ident(w) if TYPE_KEYWORDS.contains(&w.as_str()) => self
                .expected("an expression", "")
                .help("a cast is written `(ULONG)x`"),
            _ => self.expected("an expression", ""),
        }
    }

    fn call(&mut self, callee: Ident) -> PResult<(Expr, usize)> {
        self.bump(); // `(`
        let mut args = Vec::new();
        let mut depth = 1;
        if self.eat(&TokenKind::RParen).is_none() {
            loop {
                let (arg, d) = self.ternary()?;
                depth = depth.max(d + 1);
                args.push(arg);
                if self.eat(&TokenKind::Comma).is_none() {
                    if !self.at(&TokenKind::RParen) {
                        return Err(self.unclosed_call(&callee.name));
                    }
                    self.bump();
                    break;
                }
            }
        }
        let span = callee.span.to(Span::new(self.prev_end(), 0));
        self.check_tree_depth(depth, span)?;
        Ok((
            Expr {
                kind: ExprKind::Call { callee, args },
                span,
            },
            depth,
        ))
    }

    #[cold]
    #[inline(never)]
    fn unclosed_call(&mut self, callee: &str) -> Box<SimError> {
        self.expected("`)`", &format!("to close the call to `{callee}`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(text: &str) -> Source {
        Source::new("t.sim", text)
    }

    fn ok(text: &str) -> File {
        match parse(&src(text)) {
            Ok(f) => f,
            Err(errs) => panic!(
                "unexpected errors: {:#?}",
                errs.iter().map(|e| e.to_string()).collect::<Vec<_>>()
            ),
        }
    }

    fn errs(text: &str) -> Vec<SimError> {
        match parse(&src(text)) {
            Ok(_) => panic!("expected an error for {text:?}"),
            Err(e) => {
                assert!(!e.is_empty());
                e
            }
        }
    }

    /// The first error: (message, line:col).
    fn err(text: &str) -> (String, String) {
        let e = errs(text).remove(0);
        let loc = e.location.trim_start_matches("t.sim:").to_string();
        (e.message, loc)
    }

    const HDR: &str = "scenario \"t\" { cpus 1; }\n";

    fn body(stmts: &str) -> Vec<Stmt> {
        let f = ok(&format!("{HDR}thread T {{\n{stmts}\n}}"));
        match f.items.into_iter().next() {
            Some(Item::Thread(t)) => t.body.stmts,
            other => panic!("not a thread: {other:?}"),
        }
    }

    fn expr(text: &str) -> Expr {
        let mut stmts = body(&format!("x = {text};"));
        match stmts.remove(0).kind {
            StmtKind::Assign { value, .. } => value,
            other => panic!("not an assignment: {other:?}"),
        }
    }

    /// An expression as fully parenthesized text, to check precedence.
    fn show(e: &Expr) -> String {
        match &e.kind {
            ExprKind::Int(v) => v.to_string(),
            ExprKind::Typed(v, _) => v.to_string(),
            ExprKind::Str(s) => format!("{s:?}"),
            ExprKind::Name(n) => n.name.clone(),
            ExprKind::AddrOf(n) => format!("&{}", n.name),
            ExprKind::AddrOfPlace(p) => format!("&{}", show(p)),
            ExprKind::Member { base, field, arrow } => {
                format!(
                    "{}{}{}",
                    show(base),
                    if *arrow { "->" } else { "." },
                    field.name
                )
            }
            ExprKind::Index(a, i) => format!("{}[{}]", show(a), show(i)),
            ExprKind::Deref(x) => format!("(*{})", show(x)),
            ExprKind::SizeOf(t, _) => format!("sizeof({})", t.name),
            ExprKind::Unary(op, x) => format!("({op:?} {})", show(x)),
            ExprKind::Binary(op, a, b) => format!("({} {op:?} {})", show(a), show(b)),
            ExprKind::Cond(c, a, b) => format!("({} ? {} : {})", show(c), show(a), show(b)),
            ExprKind::Cast(t, x) => format!("(({t:?}) {})", show(x)),
            ExprKind::Call { callee, args } => {
                format!(
                    "{}({})",
                    callee.name,
                    args.iter().map(show).collect::<Vec<_>>().join(", ")
                )
            }
        }
    }

    fn text_of(text: &str, span: Span) -> &str {
        &text[span.offset..span.offset + span.len]
    }

    // ----- conformance ---------------------------------------------------

    #[test]
    fn parses_every_conformance_scenario() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            eprintln!("skipping: no conformance folder at {}", dir.display());
            return;
        };
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "sim"))
            .filter(|p| crate::testkit_delivered(p))
            .collect();
        paths.sort();
        assert!(!paths.is_empty(), "no .sim files in {}", dir.display());
        for path in paths {
            let text = std::fs::read_to_string(&path).expect("readable");
            let source = Source::new(path.display().to_string(), text);
            if let Err(errs) = parse(&source) {
                panic!(
                    "{}: {}",
                    path.display(),
                    errs.iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
        }
    }

    #[test]
    fn contract_example_parses() {
        let text = r#"// Recursive acquisition
scenario "recursive-acquire" {
    title "A routine that calls itself while holding a spin lock";
    cpus 2;
    seed 1;
    expect bugcheck SPIN_LOCK_ALREADY_OWNED;
}

KSPIN_LOCK DeviceLock;
_Guarded_by_(DeviceLock) ULONG Depth;

VOID Recurse(ULONG n) {
    KIRQL OldIrql;
    KeAcquireSpinLock(&DeviceLock, &OldIrql);
    Depth = Depth + 1;
    if (n > 0) {
        Recurse(n - 1);
    }
    KeReleaseSpinLock(&DeviceLock, OldIrql);
}

thread Worker on cpu 0 { Recurse(1); }
"#;
        let f = ok(text);
        assert_eq!(f.header.name.value, "recursive-acquire");
        assert_eq!(text_of(text, f.header.name.span), "\"recursive-acquire\"");
        assert_eq!(f.header.entries.len(), 4);
        assert_eq!(f.items.len(), 4);
        let Item::Routine(r) = &f.items[2] else {
            panic!("routine")
        };
        assert_eq!(r.name.name, "Recurse");
        assert_eq!(r.params.len(), 1);
        assert_eq!(r.params[0].ty.value, Type::Scalar(ScalarType::Ulong));
        assert!(text_of(text, r.span).starts_with("VOID Recurse"));
        assert!(text_of(text, r.span).ends_with('}'));
        // Statement spans start at their first token (line numbers).
        let s = &r.body.stmts[3];
        assert!(matches!(s.kind, StmtKind::If { .. }));
        assert_eq!(src(text).line_col(s.span.offset), (16, 5));
    }

    // ----- header ----------------------------------------------------------

    #[test]
    fn header_keys() {
        let f = ok(r#"scenario "n" {
            title "T";
            cpus 4;
            seed 0x10;
            verifier deadlock_detection, force_irql_checking;
            watchdog 10ms;
            duration 2us;
            expect clean;
            expect assertion_failed;
            expect warning HOLD_TIME_EXCEEDED;
            expect bugcheck SPIN_LOCK_NOT_OWNED;
            expect bugcheck 0xC4(0x1001);
            expect bugcheck 0x10;
        }"#);
        use HeaderEntry as H;
        let e = &f.header.entries;
        assert!(matches!(&e[0], H::Title(t) if t.value == "T"));
        assert!(matches!(&e[1], H::Cpus(n) if n.value == 4));
        assert!(matches!(&e[2], H::Seed(n) if n.value == 16));
        assert!(
            matches!(&e[3], H::Verifier(v) if v.len() == 2 && v[1].name == "force_irql_checking")
        );
        assert!(matches!(&e[4], H::Watchdog(d) if d.value == 10_000_000));
        assert!(matches!(&e[5], H::Duration(d) if d.value == 2_000));
        assert!(matches!(&e[6], H::Expect(x) if x.value == Expect::Clean));
        assert!(matches!(&e[7], H::Expect(x) if x.value == Expect::AssertionFailed));
        assert!(
            matches!(&e[8], H::Expect(Spanned { value: Expect::Warning(w), .. }) if w.name == "HOLD_TIME_EXCEEDED")
        );
        assert!(
            matches!(&e[9], H::Expect(Spanned { value: Expect::BugcheckName(w), .. }) if w.name == "SPIN_LOCK_NOT_OWNED")
        );
        assert!(
            matches!(&e[10], H::Expect(x) if x.value == Expect::BugcheckCode { code: 0xC4, param1: Some(0x1001) })
        );
        assert!(
            matches!(&e[11], H::Expect(x) if x.value == Expect::BugcheckCode { code: 0x10, param1: None })
        );
        let f = ok("scenario \"n\" { verifier none; verifier_x: ; }"
            .replace("verifier_x: ;", "")
            .as_str());
        assert!(matches!(&f.header.entries[0], H::Verifier(v) if v[0].name == "none"));
    }

    #[test]
    fn header_may_follow_items() {
        let f = ok("KSPIN_LOCK L;\nscenario \"n\" { cpus 1; }\n");
        assert_eq!(f.items.len(), 1);
    }

    #[test]
    fn missing_header() {
        let (m, loc) = err("KSPIN_LOCK L;\n");
        assert_eq!(m, "missing `scenario \"name\" { ... }` block");
        assert_eq!(loc, "1:1");
        assert_eq!(err("").1, "1:1");
    }

    #[test]
    fn second_header() {
        let (m, loc) = err("scenario \"a\" { cpus 1; }\nscenario \"b\" { cpus 1; }\n");
        assert_eq!(m, "only one scenario block is allowed");
        assert_eq!(loc, "2:1");
    }

    #[test]
    fn unknown_header_key_suggests() {
        let e = errs("scenario \"a\" {\n  cpu 2;\n}").remove(0);
        assert_eq!(e.message, "unknown header key `cpu`");
        assert!(e.location.ends_with(":2:3"));
        assert_eq!(e.help.as_deref(), Some("did you mean `cpus`?"));
    }

    #[test]
    fn header_value_errors() {
        let e = errs("scenario \"a\" { watchdog 10; }").remove(0);
        assert_eq!(
            e.message,
            "expected a duration after `watchdog`, found `10`"
        );
        assert_eq!(
            e.help.as_deref(),
            Some("durations end in ns, us or ms, e.g. `10ms`")
        );
        assert_eq!(
            err("scenario \"a\" { cpus 2ms; }").0,
            "expected a number of processors after `cpus`, found `2ms`"
        );
        assert_eq!(
            err("scenario \"a\" { cpus 1; cpus 2; }").0,
            "header key `cpus` is given twice"
        );
        assert_eq!(
            err("scenario \"a\" { expect cleen; }").0,
            "unknown expectation `cleen`"
        );
        assert_eq!(
            err("scenario a { }").0,
            "expected the scenario name (a string), found `a`"
        );
        let (m, loc) = err("scenario \"a\" { cpus 1 }");
        assert_eq!(m, "expected `;` after header entry, found `}`");
        assert_eq!(loc, "1:23");
        assert_eq!(
            err("scenario \"a\" { cpus 1;").0,
            "expected `}` to close the scenario block, found end of file"
        );
        assert_eq!(
            err("scenario \"a\" { expect bugcheck 0xC4(; }").0,
            "expected the first bugcheck parameter, found `;`"
        );
        assert_eq!(
            err("scenario \"a\" { watchdog 25sec; }").0,
            "unknown duration suffix `sec`"
        );
    }

    // ----- globals -----------------------------------------------------------

    fn globals(decls: &str) -> Vec<GlobalDecl> {
        ok(&format!("{HDR}{decls}"))
            .items
            .into_iter()
            .map(|i| match i {
                Item::Global(g) => *g,
                other => panic!("not a global: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn global_objects_and_data() {
        let g = globals(
            "KSPIN_LOCK L;\nEX_SPIN_LOCK E;\nKINTERRUPT I(Isr, 5);\nKINTERRUPT J(Isr, DISPATCH_LEVEL + 3, 7);\n\
             KDPC D(Routine);\nLIST_ENTRY Q;\nULONG X;\nLONG Y = -5;\nBOOLEAN B;\nKIRQL K = HIGH_LEVEL;\n\
             PAGED KSPIN_LOCK P;\n_Guarded_by_(L) ULONG G;\nPAGED _Guarded_by_(L) ULONG H;\n_Guarded_by_(L) PAGED LONG J2;\n\
             ULONG A1, A2 = 3;",
        );
        assert_eq!(g.len(), 16);
        assert_eq!(g[0].ty, GlobalType::KSpinLock);
        assert_eq!(g[1].ty, GlobalType::ExSpinLock);
        assert!(
            matches!(&g[2].ty, GlobalType::KInterrupt { isr, sync_irql: None, .. } if isr.name == "Isr")
        );
        assert!(matches!(
            &g[3].ty,
            GlobalType::KInterrupt {
                sync_irql: Some(_),
                spin_lock: None,
                ..
            }
        ));
        assert!(matches!(&g[4].ty, GlobalType::KDpc { routine, .. } if routine.name == "Routine"));
        assert_eq!(g[5].ty, GlobalType::ListEntry);
        assert!(matches!(&g[6].ty, GlobalType::Scalar(s) if s.value == ScalarType::Ulong));
        assert!(g[6].init.is_none());
        assert!(matches!(&g[7].init, Some(e) if show(e) == "(Neg 5)"));
        assert!(matches!(&g[9].ty, GlobalType::Scalar(s) if s.value == ScalarType::Kirql));
        assert!(g[10].paged && g[10].guarded_by.is_none());
        assert!(!g[11].paged && g[11].guarded_by.as_ref().is_some_and(|l| l.name == "L"));
        assert!(g[12].paged && g[12].guarded_by.is_some());
        assert!(g[13].paged && g[13].guarded_by.is_some());
        assert_eq!(g[14].name.name, "A1");
        assert!(g[15].init.is_some());
    }

    #[test]
    fn pointer_globals_and_routines() {
        let src = format!(
            "{HDR}typedef struct _D {{ ULONG X; }} D, *PD;\nPD A;\nD *B, *C;\nPVOID V;\nPD T[4];\nPULONG U;\nULONG *W;\n\
             PD F(VOID) {{ return NULL; }}\nD *G(VOID) {{ return NULL; }}\nVOID *H(VOID) {{ return NULL; }}"
        );
        let items = ok(&src).items;
        let ptr = |i: &Item| match i {
            Item::Global(g) => match &g.ty {
                GlobalType::Aggregate {
                    ty: FieldType::Pointer(p),
                    array,
                } => format!("{} {p} {array:?}", g.name.name),
                other => panic!("not a pointer: {other:?}"),
            },
            Item::Routine(r) => format!("{} {:?}", r.name.name, r.ret.value),
            other => panic!("unexpected {other:?}"),
        };
        let got: Vec<String> = items.iter().skip(1).map(ptr).collect();
        assert_eq!(
            got,
            [
                "A PD None",
                "B D * None",
                "C D * None",
                "V PVOID None",
                "T PD Some(4)",
                "U PULONG None",
                "W ULONG * None",
                "F Pointer(\"PD\")",
                "G Pointer(\"D *\")",
                "H Pointer(\"PVOID\")",
            ]
        );
    }

    #[test]
    fn global_spans_cover_the_declaration() {
        let text = format!("{HDR}PAGED _Guarded_by_(L) ULONG X = 1;\n");
        let g = globals(&text[HDR.len()..]);
        assert_eq!(
            text_of(&text, g[0].span),
            "PAGED _Guarded_by_(L) ULONG X = 1;"
        );
        assert_eq!(text_of(&text, g[0].name.span), "X");
    }

    #[test]
    fn global_errors() {
        let (m, loc) = err(&format!("{HDR}KSPINLOCK L;"));
        assert_eq!(
            m,
            "expected a declaration, a routine, `thread` or `interrupt`, found `KSPINLOCK`"
        );
        assert_eq!(loc, "2:1");
        let e = errs(&format!("{HDR}KSPINLOCK L;")).remove(0);
        assert_eq!(e.help.as_deref(), Some("did you mean `KSPIN_LOCK`?"));
        assert_eq!(
            err(&format!("{HDR}ULONG X")).0,
            "expected `;` after declaration, found end of file"
        );
        assert_eq!(
            err(&format!("{HDR}VOID X;")).0,
            "expected `(` to start the parameter list of `X`, found `;`"
        );
        assert_eq!(
            err(&format!("{HDR}KDPC D(R;")).0,
            "expected `)` after the DPC routine (and its DeferredContext), found `;`"
        );
        assert_eq!(
            err(&format!("{HDR}PAGED PAGED ULONG X;")).0,
            "`PAGED` is given twice"
        );
        assert_eq!(
            err(&format!("{HDR}PAGED thread T {{ }}")).0,
            "expected a type after the prefix, found `thread`"
        );
        let e = errs(&format!("{HDR}PAGED KSPINLOCK L;")).remove(0);
        assert_eq!(e.help.as_deref(), Some("did you mean `KSPIN_LOCK`?"));
        assert_eq!(
            err(&format!("{HDR}_Guarded_by_(L) VOID F() {{ }}")).0,
            "`_Guarded_by_` applies to data, not to routines"
        );
        assert_eq!(
            err(&format!("{HDR}ULONG while;")).0,
            "expected a name after the type, found keyword `while`"
        );
        assert!(matches!(
            globals("KLOCK_QUEUE_HANDLE H;")[0].ty,
            GlobalType::QueueHandle
        ));
    }

    // ----- routines --------------------------------------------------------------

    fn routine(text: &str) -> Routine {
        match ok(&format!("{HDR}{text}")).items.into_iter().next() {
            Some(Item::Routine(r)) => *r,
            other => panic!("not a routine: {other:?}"),
        }
    }

    #[test]
    fn routines_and_parameters() {
        let r = routine("VOID F() { }");
        assert_eq!(r.ret.value, Type::Void);
        assert!(r.params.is_empty() && !r.paged);
        assert!(routine("VOID F(VOID) { }").params.is_empty());
        let r = routine("PAGED KIRQL G(KIRQL a, LONG b, BOOLEAN c, ULONG d) { return a; }");
        assert!(r.paged);
        assert_eq!(r.ret.value, Type::Scalar(ScalarType::Kirql));
        assert_eq!(r.params.len(), 4);
        assert_eq!(r.params[1].ty.value, Type::Scalar(ScalarType::Long));
        let r = routine("BOOLEAN Isr(PKINTERRUPT Interrupt, PVOID Context) { return TRUE; }");
        assert_eq!(r.params[0].ty.value, Type::Pointer("PKINTERRUPT".into()));
        assert_eq!(r.params[1].name.name, "Context");
        let r = routine("VOID Dpc(PKDPC Dpc, PVOID Context, PVOID Arg1, PVOID Arg2) { }");
        assert_eq!(r.params.len(), 4);
        assert_eq!(
            routine("ULONG H() { return 1; }").ret.value,
            Type::Scalar(ScalarType::Ulong)
        );
        assert_eq!(
            routine("LONG H() { return -1; }").ret.value,
            Type::Scalar(ScalarType::Long)
        );
        assert_eq!(
            routine("BOOLEAN H() { return 0; }").ret.value,
            Type::Scalar(ScalarType::Boolean)
        );
    }

    #[test]
    fn routine_errors() {
        assert_eq!(
            err(&format!("{HDR}VOID F(VOID x) {{ }}")).0,
            "a parameter cannot be VOID"
        );
        assert_eq!(
            err(&format!("{HDR}VOID F(int x) {{ }}")).0,
            "expected a parameter type, found `int`"
        );
        assert_eq!(
            err(&format!("{HDR}VOID F(ULONG) {{ }}")).0,
            "expected a parameter name, found `)`"
        );
        assert_eq!(
            err(&format!("{HDR}VOID F(ULONG a {{ }}")).0,
            "expected `)` to close the parameter list, found `{`"
        );
        assert_eq!(
            err(&format!("{HDR}VOID F(ULONG a);")).0,
            "`F` is declared but never defined"
        );
        let e = errs(&format!("{HDR}VOID F() {{\n  x = 1;\n")).remove(0);
        assert_eq!(
            e.message,
            "expected `}` to close the block, found end of file"
        );
        assert_eq!(e.help.as_deref(), Some("the block opens at line 2"));
        assert_eq!(
            err(&format!("{HDR}VOID F(KLOCK_QUEUE_HANDLE h) {{ }}")).0,
            "a `KLOCK_QUEUE_HANDLE` cannot be a parameter"
        );
    }

    // ----- workload -----------------------------------------------------------

    fn items(text: &str) -> Vec<Item> {
        ok(&format!("{HDR}{text}")).items
    }

    #[test]
    fn threads() {
        let it = items("thread A { }\nthread B on cpu 1 { }\nthread C repeat 4 on cpu 0 { x = 1; }\nthread D repeat 2 { }");
        let t: Vec<&ThreadDecl> = it
            .iter()
            .map(|i| match i {
                Item::Thread(t) => &**t,
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(t[0].cpu.is_none() && t[0].repeat.is_none());
        assert_eq!(t[1].cpu.as_ref().map(|c| c.value), Some(1));
        assert_eq!(t[2].cpu.as_ref().map(|c| c.value), Some(0));
        assert_eq!(t[2].repeat.as_ref().map(|c| c.value), Some(4));
        assert_eq!(t[2].body.stmts.len(), 1);
        assert!(t[3].cpu.is_none());
        assert_eq!(
            err(&format!("{HDR}thread A on cpu 1 on cpu 2 {{ }}")).0,
            "`on cpu` is given twice"
        );
        assert_eq!(
            err(&format!("{HDR}thread A on 1 {{ }}")).0,
            "expected `cpu` after `on`, found `1`"
        );
        assert_eq!(
            err(&format!("{HDR}thread A at 1us {{ }}")).0,
            "expected `on cpu N`, `repeat K` or `{` in the thread declaration, found `at`"
        );
    }

    #[test]
    fn interrupt_lines() {
        let it = items("interrupt I on cpu 0;\ninterrupt J count 3 every 5us on cpu 1 at 2ms;");
        let Item::Interrupt(a) = &it[0] else { panic!() };
        assert_eq!(a.cpu.value, 0);
        assert!(a.at.is_none() && a.every.is_none() && a.count.is_none());
        let Item::Interrupt(b) = &it[1] else { panic!() };
        assert_eq!(b.interrupt.name, "J");
        assert_eq!(b.cpu.value, 1);
        assert_eq!(b.at.as_ref().map(|d| d.value), Some(2_000_000));
        assert_eq!(b.every.as_ref().map(|d| d.value), Some(5_000));
        assert_eq!(b.count.as_ref().map(|d| d.value), Some(3));
        let (m, loc) = err(&format!("{HDR}interrupt I at 1us;"));
        assert_eq!(m, "an interrupt line needs `on cpu N`");
        assert_eq!(loc, "2:1");
        assert_eq!(
            err(&format!("{HDR}interrupt I on cpu 0 at 5;")).0,
            "expected a duration after `at`, found `5`"
        );
        assert_eq!(
            err(&format!("{HDR}interrupt I on cpu 0 count 1 count 2;")).0,
            "`count` is given twice"
        );
        assert_eq!(
            err(&format!("{HDR}interrupt I on cpu 0 {{")).0,
            "expected `at D`, `every D`, `count K` or `;` in the interrupt line, found `{`"
        );
    }

    #[test]
    fn contextual_keywords_are_names_elsewhere() {
        let text = "ULONG thread;\nULONG interrupt;\nULONG count, at, every, on, cpu, repeat, scenario2;\n\
                    VOID count2(ULONG repeat) { ULONG on; on = repeat; thread = count + at; every++; }\n\
                    thread on on cpu 0 repeat 2 { ULONG cpu; cpu = on; }";
        let it = items(text);
        assert_eq!(it.len(), 11);
        assert!(matches!(&it[10], Item::Thread(t) if t.name.name == "on" && t.repeat.is_some()));
    }

    // ----- statements ---------------------------------------------------------------

    #[test]
    fn declarations() {
        let s = body(
            "KIRQL a;\nULONG i = 0, j;\nKLOCK_QUEUE_HANDLE H;\nLONG n = -1;\nBOOLEAN b = TRUE;",
        );
        let StmtKind::Decl { ty, vars } = &s[1].kind else {
            panic!()
        };
        assert_eq!(ty.value, Type::Scalar(ScalarType::Ulong));
        assert_eq!(vars.len(), 2);
        assert!(vars[0].1.is_some() && vars[1].1.is_none());
        assert!(matches!(&s[2].kind, StmtKind::Decl { ty, .. } if ty.value == Type::QueueHandle));
        assert!(
            matches!(&s[0].kind, StmtKind::Decl { ty, .. } if ty.value == Type::Scalar(ScalarType::Kirql))
        );
    }

    #[test]
    fn assignments_and_incdec() {
        let s = body("x = 1; x += 2; x -= 3; x++; ++x; x--; --x;");
        assert!(matches!(
            &s[0].kind,
            StmtKind::Assign {
                op: AssignOp::Set,
                ..
            }
        ));
        assert!(matches!(
            &s[1].kind,
            StmtKind::Assign {
                op: AssignOp::Compound(BinOp::Add),
                ..
            }
        ));
        assert!(
            matches!(&s[2].kind, StmtKind::Assign { op: AssignOp::Compound(BinOp::Sub), target, .. } if target.name == "x")
        );
        assert!(matches!(
            &s[3].kind,
            StmtKind::IncDec {
                increment: true,
                ..
            }
        ));
        assert!(matches!(
            &s[4].kind,
            StmtKind::IncDec {
                increment: true,
                ..
            }
        ));
        assert!(matches!(
            &s[5].kind,
            StmtKind::IncDec {
                increment: false,
                ..
            }
        ));
        assert!(matches!(
            &s[6].kind,
            StmtKind::IncDec {
                increment: false,
                ..
            }
        ));
    }

    #[test]
    fn control_flow() {
        let s = body(
            "if (a) b(); else if (c) { d(); } else e();\nwhile (x < 3) x++;\n\
             for (ULONG i = 0; i < 3; i++) { if (i) continue; else break; }\nfor (;;) { break; }\n\
             for (i = 0; ; i += 2) ;\nreturn;\nreturn x + 1;\n{ ; }\n;\n\
             __try { ExRaiseStatus(1); } __except (EXCEPTION_EXECUTE_HANDLER) { h = 1; }",
        );
        let StmtKind::If {
            els: Some(els),
            then,
            ..
        } = &s[0].kind
        else {
            panic!()
        };
        assert!(matches!(then.kind, StmtKind::Expr(_)));
        assert!(matches!(&els.kind, StmtKind::If { els: Some(_), .. }));
        assert!(
            matches!(&s[1].kind, StmtKind::While { body, .. } if matches!(body.kind, StmtKind::IncDec { .. }))
        );
        let StmtKind::For {
            init: Some(init),
            cond: Some(_),
            step: Some(step),
            ..
        } = &s[2].kind
        else {
            panic!()
        };
        assert!(matches!(init.kind, StmtKind::Decl { .. }));
        assert!(matches!(step.kind, StmtKind::IncDec { .. }));
        assert!(matches!(
            &s[3].kind,
            StmtKind::For {
                init: None,
                cond: None,
                step: None,
                ..
            }
        ));
        assert!(
            matches!(&s[4].kind, StmtKind::For { cond: None, step: Some(_), body, .. } if body.kind == StmtKind::Empty)
        );
        assert_eq!(s[5].kind, StmtKind::Return(None));
        assert!(matches!(&s[6].kind, StmtKind::Return(Some(_))));
        assert!(matches!(&s[7].kind, StmtKind::Block(b) if b.stmts.len() == 1));
        assert_eq!(s[8].kind, StmtKind::Empty);
        let StmtKind::Try {
            body,
            filter,
            handler,
        } = &s[9].kind
        else {
            panic!()
        };
        assert_eq!(body.stmts.len(), 1);
        assert_eq!(show(filter), "EXCEPTION_EXECUTE_HANDLER");
        assert_eq!(handler.stmts.len(), 1);
    }

    #[test]
    fn dangling_else_binds_to_nearest_if() {
        let s = body("if (a) if (b) x(); else y();");
        let StmtKind::If {
            then, els: None, ..
        } = &s[0].kind
        else {
            panic!("outer has no else")
        };
        assert!(matches!(&then.kind, StmtKind::If { els: Some(_), .. }));
    }

    #[test]
    fn statement_spans_start_at_first_token() {
        let text = format!("{HDR}thread T {{\n    x = 1;\n    if (x) {{\n        y();\n    }}\n}}");
        let f = ok(&text);
        let Item::Thread(t) = &f.items[0] else {
            panic!()
        };
        assert_eq!(text_of(&text, t.body.stmts[0].span), "x = 1;");
        assert_eq!(
            text_of(&text, t.body.stmts[1].span),
            "if (x) {\n        y();\n    }"
        );
        assert_eq!(src(&text).line_col(t.body.stmts[1].span.offset), (4, 5));
        assert!(text_of(&text, t.span).starts_with("thread T"));
    }

    #[test]
    fn missing_semicolon_points_after_previous_token() {
        let e = errs(&format!("{HDR}thread T {{\n    x = 1\n    y = 2;\n}}")).remove(0);
        assert_eq!(e.message, "expected `;` after statement, found `y`");
        assert_eq!(e.location, "t.sim:3:10");
        assert_eq!(e.label, "expected `;` here");
        assert_eq!(e.help.as_deref(), Some("add `;` at the end of line 3"));
        let (m, loc) = err(&format!("{HDR}thread T {{ f() }}"));
        assert_eq!(m, "expected `;` after statement, found `}`");
        assert_eq!(loc, "2:16");
    }

    #[test]
    fn statement_errors() {
        let t = |s: &str| err(&format!("{HDR}thread T {{\n{s}\n}}"));
        assert_eq!(t("else x();").0, "`else` without a matching `if`");
        assert_eq!(
            t("x = y <<= 2;").0,
            "an assignment is a statement, not an expression"
        );
        assert_eq!(t("case 1: x();").0, "`case` outside a `switch`");
        assert_eq!(t("f() = 2;").0, "only a variable can be assigned to");
        assert_eq!(t("PFOO p;").0, "unknown type `PFOO`");
        assert_eq!(t("KSPIN_LOCK L;").0, "a `KSPIN_LOCK` cannot be a local");
        assert_eq!(
            t("KLOCK_QUEUE_HANDLE H = 0;").0,
            "a `KLOCK_QUEUE_HANDLE` cannot be initialized"
        );
        assert_eq!(t("if x { }").0, "expected `(` after `if`, found `x`");
        assert_eq!(
            t("if (x { }").0,
            "expected `)` to close the `if` condition, found `{`"
        );
        assert_eq!(t("while (x) ").0, "expected an expression, found `}`");
        assert_eq!(
            t("for (i = 0, j = 0; ;) { }").0,
            "expected `;` after the `for` initializer, found `,`"
        );
        assert_eq!(
            t("for (;; ULONG i = 0) { }").0,
            "expected an assignment, `++`, `--` or a call, found `ULONG`"
        );
        assert_eq!(
            t("__try { } __finally { }").0,
            "`__finally` is not supported"
        );
        assert_eq!(
            t("__try { } x = 1;").0,
            "expected `__except` after the `__try` block, found `x`"
        );
        assert_eq!(
            t("__except (1) { }").0,
            "`__except` without a matching `__try`"
        );
        assert_eq!(t("break").0, "expected `;` after `break`, found `}`");
        assert_eq!(
            t("KIRQL a\nx();"),
            (
                "expected `;` after declaration, found `x`".into(),
                "3:8".into()
            )
        );
        assert_eq!(t("return 1").0, "expected `;` after `return`, found `}`");
        let (m, loc) = t("x = 1;\n  y = ;");
        assert_eq!(m, "expected an expression, found `;`");
        assert_eq!(loc, "4:7");
    }

    // ----- expressions ------------------------------------------------------------------

    #[test]
    fn precedence_follows_c() {
        let cases = [
            ("1 + 2 * 3", "(1 Add (2 Mul 3))"),
            ("1 - 2 - 3", "((1 Sub 2) Sub 3)"),
            ("a || b && c", "(a Or (b And c))"),
            ("a | b ^ c & d", "(a BitOr (b BitXor (c BitAnd d)))"),
            ("a == b < c", "(a Eq (b Lt c))"),
            ("a != b >= c", "(a Ne (b Ge c))"),
            ("a < b << 1", "(a Lt (b Shl 1))"),
            ("a <= b >> 1 + 2", "(a Le (b Shr (1 Add 2)))"),
            ("a > b", "(a Gt b)"),
            ("a % b / c * d", "(((a Rem b) Div c) Mul d)"),
            ("a & b == c", "(a BitAnd (b Eq c))"),
            ("-a * !b + ~c", "(((Neg a) Mul (Not b)) Add (BitNot c))"),
            ("- -a", "(Neg (Neg a))"),
            ("(1 + 2) * 3", "((1 Add 2) Mul 3)"),
            ("a ? b : c ? d : e", "(a ? b : (c ? d : e))"),
            ("a || b ? c + 1 : d", "((a Or b) ? (c Add 1) : d)"),
            ("a ? b ? c : d : e", "(a ? (b ? c : d) : e)"),
            ("(ULONG)x + 1", "(((Ulong) x) Add 1)"),
            ("(LONG)-1", "((Long) (Neg 1))"),
            ("(BOOLEAN)(a)", "((Boolean) a)"),
            ("(KIRQL)a", "((Kirql) a)"),
            ("(UCHAR)a", "((Uchar) a)"),
            ("F(&L, 1 + 2, G())", "F(&L, (1 Add 2), G())"),
            ("0xC0000005", "3221225477"),
            ("TRUE && !FALSE", "(TRUE And (Not FALSE))"),
            ("\"a\" \"b\"", "\"ab\""),
            ("*p + 1", "((*p) Add 1)"),
            ("*p * *q", "((*p) Mul (*q))"),
            ("F(1)->Count", "F(1)->Count"),
            ("(*p).Count", "(*p).Count"),
            ("p[i]", "p[i]"),
        ];
        for (text, want) in cases {
            assert_eq!(show(&expr(text)), want, "{text}");
        }
    }

    #[test]
    fn expression_spans_cover_their_text() {
        let text = format!("{HDR}thread T {{ x = (a + b) * F(1, 2) - (ULONG)c; }}");
        let f = ok(&text);
        let Item::Thread(t) = &f.items[0] else {
            panic!()
        };
        let StmtKind::Assign { value, target, .. } = &t.body.stmts[0].kind else {
            panic!()
        };
        assert_eq!(text_of(&text, target.span), "x");
        assert_eq!(text_of(&text, value.span), "(a + b) * F(1, 2) - (ULONG)c");
        let ExprKind::Binary(_, lhs, rhs) = &value.kind else {
            panic!()
        };
        assert_eq!(text_of(&text, lhs.span), "(a + b) * F(1, 2)");
        assert_eq!(text_of(&text, rhs.span), "(ULONG)c");
        let ExprKind::Binary(_, paren, call) = &lhs.kind else {
            panic!()
        };
        assert_eq!(text_of(&text, paren.span), "(a + b)");
        assert_eq!(text_of(&text, call.span), "F(1, 2)");
    }

    #[test]
    fn expression_errors() {
        let t = |s: &str| err(&format!("{HDR}thread T {{ x = {s}; }}"));
        assert_eq!(t("&5").0, "expected a name after `&`, found `5`");
        assert_eq!(t("&&a").0, "expected an expression, found `&&`");
        assert_eq!(t("i++ + 1").0, "`++` cannot be used inside an expression");
        assert_eq!(t("--i").0, "`--` cannot be used inside an expression");
        assert_eq!(t("25us").0, "a duration is not a value");
        assert_eq!(t("ULONG").0, "expected an expression, found `ULONG`");
        assert_eq!(
            t("while").0,
            "expected an expression, found keyword `while`"
        );
        assert_eq!(
            t("F(1, 2").0,
            "expected `)` to close the call to `F`, found `;`"
        );
        assert_eq!(t("(1 + 2").0, "expected `)` to close `(`, found `;`");
        assert_eq!(
            t("a ? b").0,
            "expected `:` in the conditional expression, found `;`"
        );
        assert_eq!(t("9223372036854775808").0, "integer literal is too large");
        assert_eq!(t("a @ b").0, "unexpected character `@`");
        let (m, loc) = t("1 +");
        assert_eq!(m, "expected an expression, found `;`");
        assert_eq!(loc, "2:19");
        assert!(matches!(
            expr("0x7FFFFFFFFFFFFFFF").kind,
            ExprKind::Typed(i64::MAX, ScalarType::Long64)
        ));
        assert!(matches!(
            expr("0xFFFFFFFFFFFFFFFF").kind,
            ExprKind::Typed(-1, ScalarType::Ulong64)
        ));
        assert!(matches!(
            expr("0x80000000").kind,
            ExprKind::Typed(0x8000_0000, ScalarType::Ulong)
        ));
        assert!(matches!(
            expr("2147483648").kind,
            ExprKind::Int(0x8000_0000)
        ));
        assert!(matches!(
            expr("1U").kind,
            ExprKind::Typed(1, ScalarType::Ulong)
        ));
        assert!(matches!(
            expr("1ull").kind,
            ExprKind::Typed(1, ScalarType::Ulong64)
        ));
        assert!(matches!(
            expr("5L").kind,
            ExprKind::Typed(5, ScalarType::Long)
        ));
        assert!(matches!(
            expr("'kspn'").kind,
            ExprKind::Typed(0x6B73_706E, ScalarType::Long)
        ));
        assert!(matches!(
            expr("sizeof(USHORT)").kind,
            ExprKind::SizeOf(ref t, 2) if t.name == "USHORT"
        ));
    }

    // ----- limits and recovery ----------------------------------------------------------

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let n = 100_000;
        let deep = [
            format!("x = {}1{};", "(".repeat(n), ")".repeat(n)),
            format!("x = {}1;", "- ".repeat(n)),
            format!("x = {}1;", "!~".repeat(n)),
            format!("x = 1{};", " + 1".repeat(n)),
            format!("x = {}1;", "a ? b : ".repeat(n)),
            format!("x = {}1;", "F(".repeat(n)),
            format!("x = {}1;", "(ULONG)".repeat(n)),
            format!("{}x();", "{".repeat(n)),
            format!("{}x();", "if (a) ".repeat(n)),
            format!("{}x();", "while (a) ".repeat(n)),
            format!("if (a) x(); {}", "else if (a) x(); ".repeat(n)),
        ];
        for d in deep {
            let text = format!("{HDR}thread T {{ {d} }}");
            let e = errs(&text);
            assert!(
                e[0].message.contains("too deep"),
                "{}: {}",
                &d[..20],
                e[0].message
            );
        }
    }

    #[test]
    fn nesting_up_to_the_limit_is_fine() {
        let n = MAX_DEPTH - 10;
        expr(&format!("{}1{}", "(".repeat(n), ")".repeat(n)));
        expr(&format!("1{}", " + 1".repeat(n)));
        body(&format!("{}{}", "{".repeat(n), "}".repeat(n)));
    }

    #[test]
    fn recovers_at_the_next_top_level_line() {
        let text = format!(
            "{HDR}ULONG X\nKSPIN_LOCK L;\nthread T {{\n    x = ;\n}}\nVOID F() {{ }}\nKDPC D(R;\n"
        );
        let e = errs(&text);
        let got: Vec<(&str, &str)> = e
            .iter()
            .map(|e| (e.message.as_str(), e.location.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "expected `;` after declaration, found `KSPIN_LOCK`",
                    "t.sim:2:8"
                ),
                ("expected an expression, found `;`", "t.sim:5:9"),
                (
                    "expected `)` after the DPC routine (and its DeferredContext), found `;`",
                    "t.sim:8:9"
                ),
            ]
        );
    }

    #[test]
    fn lexical_errors_come_in_source_order() {
        // A syntax error before a lexical error is reported first.
        let e = errs(&format!("{HDR}ULONG X\nULONG Y;\nULONG Z = 25sec;\n"));
        assert_eq!(e.len(), 2);
        assert_eq!(
            e[0].message,
            "expected `;` after declaration, found `ULONG`"
        );
        assert_eq!(e[1].message, "unknown duration suffix `sec`");
        // A lexical error where the parser stops is reported alone.
        let e = errs(&format!("{HDR}thread T {{ x = \"abc; }}\n"));
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].message, "unterminated string literal");
        assert_eq!(e[0].location, "t.sim:2:16");
        let e = errs("scenario \"a\" { cpus 1; } /* ");
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].message, "unterminated comment");
    }

    #[test]
    fn odd_inputs_do_not_panic() {
        for text in [
            "",
            "}",
            "{",
            "scenario",
            "scenario \"",
            "é",
            "scenario \"é\" { title \"é\"; } é",
            "\u{0}",
            "thread",
            "interrupt",
            "PAGED",
            "_Guarded_by_(",
            "VOID F(",
            "0x",
            "\"\\",
        ] {
            let _ = parse(&src(text));
        }
    }
}
