//! The lexer: `.sim` text → tokens with byte spans.
//!
//! Owns the lexical rules of the contract: `//` and `/* */` comments,
//! identifiers, decimal and `0x` hex integers, durations (`25us`, stored in
//! nanoseconds), strings with `\n` `\t` `\"` `\\` escapes and every C
//! operator the language uses. Lexical errors (overflow, unknown duration
//! suffix, unterminated string or comment, stray character) are reported as
//! [`SimError`]s; the lexer never panics on any input.

use crate::ast::{ScalarType, Span};
use crate::diag::{SimError, Source};

/// What a token is. Punctuation variants are named after their shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// An identifier or keyword (keywords are contextual; the parser decides).
    Ident(String),
    /// An unsuffixed decimal integer literal.
    Int(u64),
    /// An integer literal whose C type is known from its form: `0x`
    /// hexadecimal, suffixed (`U`, `L`, `UL`, `ULL`) or a character
    /// constant (`'kspn'`). The value is the literal's bits.
    TypedInt(u64, ScalarType),
    /// `#` (a preprocessing directive starts).
    Hash,
    /// `.`
    Dot,
    /// `->`
    Arrow,
    /// An integer immediately followed by `ns`, `us` or `ms`, in nanoseconds.
    Duration(u64),
    /// A string literal, escapes resolved.
    Str(String),
    LParen,
    RParen,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Comma,
    Semi,
    Question,
    Colon,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Shl,
    Shr,
    Lt,
    Le,
    Gt,
    Ge,
    EqEq,
    Ne,
    Amp,
    Pipe,
    Caret,
    AndAnd,
    OrOr,
    Bang,
    Tilde,
    Assign,
    PlusEq,
    MinusEq,
    PlusPlus,
    MinusMinus,
    /// `*=`, `/=`, `%=`, `&=`, `|=`, `^=`, `<<=`, `>>=`: not part of the
    /// language, lexed whole so the parser can say so clearly.
    OtherAssign(&'static str),
    /// End of input (or of the part before a lexical error).
    Eof,
}

impl TokenKind {
    /// The source text of a punctuation token, for messages.
    pub fn punct_text(&self) -> Option<&'static str> {
        use TokenKind::*;
        Some(match self {
            LParen => "(",
            RParen => ")",
            LBrace => "{",
            RBrace => "}",
            LBracket => "[",
            RBracket => "]",
            Comma => ",",
            Semi => ";",
            Question => "?",
            Colon => ":",
            Plus => "+",
            Minus => "-",
            Star => "*",
            Slash => "/",
            Percent => "%",
            Shl => "<<",
            Shr => ">>",
            Lt => "<",
            Le => "<=",
            Gt => ">",
            Ge => ">=",
            EqEq => "==",
            Ne => "!=",
            Amp => "&",
            Pipe => "|",
            Caret => "^",
            AndAnd => "&&",
            OrOr => "||",
            Bang => "!",
            Tilde => "~",
            Assign => "=",
            PlusEq => "+=",
            MinusEq => "-=",
            PlusPlus => "++",
            MinusMinus => "--",
            OtherAssign(s) => s,
            Hash => "#",
            Dot => ".",
            Arrow => "->",
            Ident(_) | Int(_) | TypedInt(..) | Duration(_) | Str(_) | Eof => return None,
        })
    }
}

/// A token and the bytes it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub span: Span,
}

/// Tokenize a whole file; the last token is always [`TokenKind::Eof`].
pub fn tokenize(source: &Source) -> Result<Vec<Token>, Box<SimError>> {
    match tokenize_partial(source) {
        (tokens, None) => Ok(tokens),
        (_, Some(e)) => Err(Box::new(e)),
    }
}

/// Tokenize up to the first lexical error: the tokens before it (always
/// ending with [`TokenKind::Eof`], placed where the error starts) and the
/// error, if any. The parser uses this to report errors in source order.
pub fn tokenize_partial(source: &Source) -> (Vec<Token>, Option<SimError>) {
    let mut lx = Lexer {
        source,
        text: &source.text,
        pos: 0,
        tokens: Vec::with_capacity(token_estimate(source.text.len())),
    };
    let error = lx.run().err().map(|e| *e);
    let end = match &error {
        Some(e) => e.span.offset().min(source.text.len()),
        None => source.text.len(),
    };
    lx.tokens.push(Token {
        kind: TokenKind::Eof,
        span: Span::new(end, 0),
    });
    (lx.tokens, error)
}

/// Room for the tokens of `len` bytes of text, reserved up front: real
/// files take two or more bytes a token, so the vector is seldom regrown
/// (each regrowth copies every token and touches fresh memory, which is
/// what a 100,000-item file pays for most). Capacity past what is used
/// costs address space only.
fn token_estimate(len: usize) -> usize {
    len / 2 + 2
}

struct Lexer<'a> {
    source: &'a Source,
    text: &'a str,
    pos: usize,
    tokens: Vec<Token>,
}

/// Errors stay boxed inside the lexer and parser so `Result`s stay small.
pub(crate) type LResult<T> = Result<T, Box<SimError>>;

/// `label` and `help` on a boxed error, so errors chain like [`SimError`]'s
/// own builder.
pub(crate) trait BoxedError {
    fn label(self, label: impl Into<String>) -> Self;
    fn help(self, help: impl Into<String>) -> Self;
}

impl BoxedError for Box<SimError> {
    fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

const DURATION_HELP: &str = "durations end in ns, us or ms";

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident_continue(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

impl Lexer<'_> {
    fn byte(&self, at: usize) -> Option<u8> {
        self.text.as_bytes().get(at).copied()
    }

    fn slice(&self, start: usize, end: usize) -> &str {
        self.text.get(start..end).unwrap_or("")
    }

    fn error(&self, start: usize, len: usize, msg: impl Into<String>) -> Box<SimError> {
        Box::new(SimError::new(self.source, Span::new(start, len), msg))
    }

    fn push(&mut self, kind: TokenKind, start: usize) {
        self.tokens.push(Token {
            kind,
            span: Span::new(start, self.pos - start),
        });
    }

    fn run(&mut self) -> LResult<()> {
        while let Some(b) = self.byte(self.pos) {
            let start = self.pos;
            if b.is_ascii_whitespace() {
                self.pos += 1;
            } else if b == b'/' && self.byte(start + 1) == Some(b'/') {
                while let Some(c) = self.byte(self.pos) {
                    // CR, LF and CRLF all end a line (and the comment).
                    if c == b'\n' || c == b'\r' {
                        break;
                    }
                    self.pos += 1;
                }
            } else if b == b'/' && self.byte(start + 1) == Some(b'*') {
                self.block_comment()?;
            } else if is_ident_start(b) {
                while self.byte(self.pos).is_some_and(is_ident_continue) {
                    self.pos += 1;
                }
                let name = self.slice(start, self.pos).to_string();
                self.push(TokenKind::Ident(name), start);
            } else if b.is_ascii_digit() {
                let kind = self.number()?;
                self.push(kind, start);
            } else if b == b'"' {
                let s = self.string()?;
                self.push(TokenKind::Str(s), start);
            } else if b == b'\'' {
                let v = self.char_constant()?;
                self.push(TokenKind::TypedInt(v, ScalarType::Long), start);
            } else if b == b'\\'
                && (self.byte(start + 1) == Some(b'\n') || (self.byte(start + 1) == Some(b'\r')))
            {
                // A line continuation (`\` at a line's end): whitespace.
                self.pos += 2;
                if self.byte(start + 1) == Some(b'\r') && self.byte(self.pos) == Some(b'\n') {
                    self.pos += 1;
                }
            } else {
                let kind = self.punct()?;
                self.push(kind, start);
            }
        }
        Ok(())
    }

    fn block_comment(&mut self) -> LResult<()> {
        let start = self.pos;
        self.pos += 2;
        loop {
            match self.byte(self.pos) {
                None => {
                    return Err(self
                        .error(start, 2, "unterminated comment")
                        .label("comment starts here")
                        .help("close it with `*/`"))
                }
                Some(b'*') if self.byte(self.pos + 1) == Some(b'/') => {
                    self.pos += 2;
                    return Ok(());
                }
                Some(_) => self.pos += 1,
            }
        }
    }

    fn number(&mut self) -> LResult<TokenKind> {
        let start = self.pos;
        let hex =
            self.byte(start) == Some(b'0') && matches!(self.byte(start + 1), Some(b'x' | b'X'));
        let (digits_start, radix) = if hex { (start + 2, 16) } else { (start, 10) };
        self.pos = digits_start;
        while self
            .byte(self.pos)
            .is_some_and(|b| (b as char).is_digit(radix))
        {
            self.pos += 1;
        }
        let digits_end = self.pos;
        while self.byte(self.pos).is_some_and(is_ident_continue) {
            self.pos += 1;
        }
        let end = self.pos;
        let digits = self.slice(digits_start, digits_end);
        let suffix = self.slice(digits_end, end);
        if hex && digits.is_empty() {
            return Err(self
                .error(start, end - start, "hexadecimal literal has no digits")
                .label("expected hex digits after `0x`"));
        }
        if !hex && digits.len() > 1 && digits.starts_with('0') {
            return Err(self
                .error(start, end - start, "integer literal with a leading zero")
                .label("leading zero")
                .help(
                    "octal literals are not supported; write the number in decimal or as `0x...`",
                ));
        }
        let mut value: u64 = 0;
        for c in digits.chars() {
            let d = c.to_digit(radix).unwrap_or(0) as u64;
            value = match value
                .checked_mul(radix as u64)
                .and_then(|v| v.checked_add(d))
            {
                Some(v) => v,
                None => {
                    return Err(self
                        .error(start, end - start, "integer literal is too large")
                        .label("does not fit in 64 bits"))
                }
            };
        }
        if let Some(t) = int_suffix(suffix, hex, value) {
            return Ok(t);
        }
        let scale: u64 = match suffix {
            "ns" => 1,
            "us" => 1_000,
            "ms" => 1_000_000,
            _ if hex => {
                return Err(self
                    .error(
                        start,
                        end - start,
                        format!("invalid suffix `{suffix}` on hexadecimal literal"),
                    )
                    .label("invalid suffix")
                    .help("durations are written in decimal, e.g. `25us`"))
            }
            _ => {
                return Err(self
                    .error(
                        start,
                        end - start,
                        format!("unknown duration suffix `{suffix}`"),
                    )
                    .label("unknown suffix")
                    .help(DURATION_HELP))
            }
        };
        if hex {
            return Err(self
                .error(start, end - start, "a duration must be written in decimal")
                .label("hexadecimal duration")
                .help("write it in decimal, e.g. `25us`"));
        }
        match value.checked_mul(scale) {
            Some(ns) => Ok(TokenKind::Duration(ns)),
            None => Err(self
                .error(start, end - start, "duration is too large")
                .label("does not fit in 64 bits of nanoseconds")),
        }
    }

    /// `'a'` to `'abcd'`: a `LONG` with the first character in the high byte.
    fn char_constant(&mut self) -> LResult<u64> {
        let start = self.pos;
        self.pos += 1;
        let mut value: u64 = 0;
        let mut n = 0;
        loop {
            match self.byte(self.pos) {
                Some(b'\'') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    let r = match self.byte(self.pos + 1) {
                        Some(b'n') => b'\n',
                        Some(b't') => b'\t',
                        Some(b'0') => 0,
                        Some(b'\\') => b'\\',
                        Some(b'\'') => b'\'',
                        _ => {
                            return Err(self
                                .error(self.pos, 2, "unknown escape in a character constant")
                                .help("character constants support `\\n`, `\\t`, `\\0`, `\\'` and `\\\\`"))
                        }
                    };
                    value = (value << 8) | r as u64;
                    n += 1;
                    self.pos += 2;
                }
                Some(c) if c.is_ascii() && c != b'\n' && c != b'\r' => {
                    value = (value << 8) | c as u64;
                    n += 1;
                    self.pos += 1;
                }
                _ => {
                    return Err(self
                        .error(start, 1, "unterminated character constant")
                        .label("starts here")
                        .help("a character constant is 1 to 4 ASCII characters between `'`, e.g. `'kspn'`"))
                }
            }
        }
        if n == 0 || n > 4 {
            return Err(self
                .error(
                    start,
                    self.pos - start,
                    format!("a character constant has 1 to 4 characters, not {n}"),
                )
                .label("here")
                .help("pool tags are written `'kspn'`"));
        }
        // A LONG: the bits sign-extend from 32.
        Ok(value as u32 as i32 as i64 as u64)
    }

    fn string(&mut self) -> LResult<String> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        let unterminated = |lx: &Self| {
            lx.error(start, 1, "unterminated string literal")
                .label("string starts here")
                .help("close it with `\"` on the same line; write `\\n` for a line break")
        };
        loop {
            let Some(c) = self.text.get(self.pos..).and_then(|t| t.chars().next()) else {
                return Err(unterminated(self));
            };
            match c {
                '"' => {
                    self.pos += 1;
                    return Ok(out);
                }
                '\n' | '\r' => return Err(unterminated(self)),
                '\\' => {
                    let esc_start = self.pos;
                    self.pos += 1;
                    let Some(e) = self.text.get(self.pos..).and_then(|t| t.chars().next()) else {
                        return Err(unterminated(self));
                    };
                    let resolved = match e {
                        'n' => '\n',
                        't' => '\t',
                        '"' => '"',
                        '\\' => '\\',
                        '\n' | '\r' => return Err(unterminated(self)),
                        other => {
                            return Err(self
                                .error(
                                    esc_start,
                                    1 + other.len_utf8(),
                                    format!("unknown escape `\\{other}`"),
                                )
                                .label("unknown escape")
                                .help("strings support `\\n`, `\\t`, `\\\"` and `\\\\`"))
                        }
                    };
                    self.pos += e.len_utf8();
                    out.push(resolved);
                }
                other => {
                    self.pos += other.len_utf8();
                    out.push(other);
                }
            }
        }
    }

    fn punct(&mut self) -> LResult<TokenKind> {
        use TokenKind::*;
        let start = self.pos;
        let b = self.byte(start).unwrap_or(0);
        let next = self.byte(start + 1);
        let third = self.byte(start + 2);
        let (kind, len) = match (b, next) {
            (b'<', Some(b'<')) if third == Some(b'=') => (OtherAssign("<<="), 3),
            (b'>', Some(b'>')) if third == Some(b'=') => (OtherAssign(">>="), 3),
            (b'<', Some(b'<')) => (Shl, 2),
            (b'>', Some(b'>')) => (Shr, 2),
            (b'<', Some(b'=')) => (Le, 2),
            (b'>', Some(b'=')) => (Ge, 2),
            (b'=', Some(b'=')) => (EqEq, 2),
            (b'!', Some(b'=')) => (Ne, 2),
            (b'&', Some(b'&')) => (AndAnd, 2),
            (b'|', Some(b'|')) => (OrOr, 2),
            (b'+', Some(b'+')) => (PlusPlus, 2),
            (b'-', Some(b'-')) => (MinusMinus, 2),
            (b'+', Some(b'=')) => (PlusEq, 2),
            (b'-', Some(b'=')) => (MinusEq, 2),
            (b'*', Some(b'=')) => (OtherAssign("*="), 2),
            (b'/', Some(b'=')) => (OtherAssign("/="), 2),
            (b'%', Some(b'=')) => (OtherAssign("%="), 2),
            (b'&', Some(b'=')) => (OtherAssign("&="), 2),
            (b'|', Some(b'=')) => (OtherAssign("|="), 2),
            (b'^', Some(b'=')) => (OtherAssign("^="), 2),
            (b'-', Some(b'>')) => (Arrow, 2),
            (b'#', _) => (Hash, 1),
            (b'.', _) => (Dot, 1),
            (b'(', _) => (LParen, 1),
            (b')', _) => (RParen, 1),
            (b'{', _) => (LBrace, 1),
            (b'}', _) => (RBrace, 1),
            (b'[', _) => (LBracket, 1),
            (b']', _) => (RBracket, 1),
            (b',', _) => (Comma, 1),
            (b';', _) => (Semi, 1),
            (b'?', _) => (Question, 1),
            (b':', _) => (Colon, 1),
            (b'+', _) => (Plus, 1),
            (b'-', _) => (Minus, 1),
            (b'*', _) => (Star, 1),
            (b'/', _) => (Slash, 1),
            (b'%', _) => (Percent, 1),
            (b'<', _) => (Lt, 1),
            (b'>', _) => (Gt, 1),
            (b'&', _) => (Amp, 1),
            (b'|', _) => (Pipe, 1),
            (b'^', _) => (Caret, 1),
            (b'!', _) => (Bang, 1),
            (b'~', _) => (Tilde, 1),
            (b'=', _) => (Assign, 1),
            _ => {
                let c = self
                    .text
                    .get(start..)
                    .and_then(|t| t.chars().next())
                    .unwrap_or('?');
                let shown = if c.is_control() {
                    format!("{c:?}")
                } else {
                    format!("`{c}`")
                };
                return Err(self
                    .error(start, c.len_utf8(), format!("unexpected character {shown}"))
                    .label("not part of the scenario language"));
            }
        };
        self.pos += len;
        Ok(kind)
    }
}

/// The token of an integer literal with the suffix `suffix` (empty, `U`,
/// `L`, `UL`, `ULL`, `LL` in either case), typed as C types it with a 32-bit
/// `long` (contract v2, "Scalar types"); `None` when `suffix` is not an
/// integer suffix (it may be a duration's).
fn int_suffix(suffix: &str, hex: bool, value: u64) -> Option<TokenKind> {
    let s = suffix.to_ascii_uppercase();
    let unsigned = match s.as_str() {
        "" | "L" | "LL" => false,
        "U" | "UL" | "LU" | "ULL" | "LLU" => true,
        _ => return None,
    };
    let long_long = s.contains("LL");
    if s.is_empty() && !hex {
        return Some(TokenKind::Int(value));
    }
    let fits32s = value <= i32::MAX as u64;
    let fits32u = value <= u32::MAX as u64;
    let fits64s = value <= i64::MAX as u64;
    let ty = if unsigned {
        if !long_long && fits32u {
            ScalarType::Ulong
        } else {
            ScalarType::Ulong64
        }
    } else if !long_long && fits32s {
        ScalarType::Long
    } else if !long_long && hex && fits32u {
        ScalarType::Ulong
    } else if fits64s {
        ScalarType::Long64
    } else if hex {
        ScalarType::Ulong64
    } else {
        // A decimal literal too large for LONG64: C makes it unsigned
        // with a warning; here it is ULONG64.
        ScalarType::Ulong64
    };
    Some(TokenKind::TypedInt(value, ty))
}

#[cfg(test)]
mod tests {
    use super::*;
    use TokenKind::*;

    fn kinds(text: &str) -> Vec<TokenKind> {
        let src = Source::new("t.sim", text);
        tokenize(&src)
            .expect("lexes")
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    fn lex_err(text: &str) -> SimError {
        let src = Source::new("t.sim", text);
        *tokenize(&src).expect_err("should fail")
    }

    #[test]
    fn identifiers_numbers_durations() {
        assert_eq!(
            kinds("Foo _x9 42 0x1F 0XaB 25us 3ns 10ms 0"),
            vec![
                Ident("Foo".into()),
                Ident("_x9".into()),
                Int(42),
                TypedInt(31, ScalarType::Long),
                TypedInt(0xAB, ScalarType::Long),
                Duration(25_000),
                Duration(3),
                Duration(10_000_000),
                Int(0),
                Eof
            ]
        );
    }

    #[test]
    fn spans_are_byte_ranges() {
        let src = Source::new("t.sim", "ab  25us\n\"é\"");
        let toks = tokenize(&src).expect("lexes");
        assert_eq!(toks[0].span, Span::new(0, 2));
        assert_eq!(toks[1].span, Span::new(4, 4));
        assert_eq!(toks[2].span, Span::new(9, 4));
        assert_eq!(toks[3].span, Span::new(13, 0));
    }

    #[test]
    fn comments_are_skipped() {
        assert_eq!(
            kinds("a // b c\n/* d\n e */ f /**/"),
            vec![Ident("a".into()), Ident("f".into()), Eof]
        );
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(
            kinds(r#""a\n\t\"\\b" "é""#),
            vec![Str("a\n\t\"\\b".into()), Str("é".into()), Eof]
        );
    }

    #[test]
    fn operators_longest_match() {
        assert_eq!(
            kinds("<<= >>= << >> <= >= == != && || ++ -- += -= *= |= & | ^ ! ~ ? : = < > , ; ( ) { } [ ]"),
            vec![
                OtherAssign("<<="),
                OtherAssign(">>="),
                Shl,
                Shr,
                Le,
                Ge,
                EqEq,
                Ne,
                AndAnd,
                OrOr,
                PlusPlus,
                MinusMinus,
                PlusEq,
                MinusEq,
                OtherAssign("*="),
                OtherAssign("|="),
                Amp,
                Pipe,
                Caret,
                Bang,
                Tilde,
                Question,
                Colon,
                Assign,
                Lt,
                Gt,
                Comma,
                Semi,
                LParen,
                RParen,
                LBrace,
                RBrace,
                LBracket,
                RBracket,
                Eof
            ]
        );
        assert_eq!(kinds("a-b+c*d/e%f"), {
            let i = |s: &str| Ident(s.into());
            vec![
                i("a"),
                Minus,
                i("b"),
                Plus,
                i("c"),
                Star,
                i("d"),
                Slash,
                i("e"),
                Percent,
                i("f"),
                Eof,
            ]
        });
    }

    #[test]
    fn unknown_duration_suffix() {
        let e = lex_err("watchdog 25sec;");
        assert_eq!(e.message, "unknown duration suffix `sec`");
        assert_eq!(e.location, "t.sim:1:10");
        assert_eq!(e.help.as_deref(), Some("durations end in ns, us or ms"));
    }

    #[test]
    fn overflow_is_an_error() {
        assert_eq!(
            lex_err("18446744073709551616").message,
            "integer literal is too large"
        );
        assert_eq!(
            lex_err("0x10000000000000000").message,
            "integer literal is too large"
        );
        assert!(kinds("18446744073709551615").contains(&Int(u64::MAX)));
        assert_eq!(
            lex_err("18446744073709551615ms").message,
            "duration is too large"
        );
    }

    #[test]
    fn bad_numbers() {
        assert_eq!(lex_err("0x;").message, "hexadecimal literal has no digits");
        assert_eq!(lex_err("x = 010;").location, "t.sim:1:5");
        assert_eq!(
            lex_err("0x10us").message,
            "a duration must be written in decimal"
        );
        assert_eq!(
            lex_err("0x10zz").message,
            "invalid suffix `zz` on hexadecimal literal"
        );
    }

    #[test]
    fn unterminated_string_and_comment_point_at_start() {
        let e = lex_err("a\n  \"abc");
        assert_eq!(e.message, "unterminated string literal");
        assert_eq!(e.location, "t.sim:2:3");
        let e = lex_err("a \"abc\nd\"");
        assert_eq!(e.location, "t.sim:1:3");
        let e = lex_err("a\n /* abc");
        assert_eq!(e.message, "unterminated comment");
        assert_eq!(e.location, "t.sim:2:2");
        assert_eq!(lex_err("\"a\\").message, "unterminated string literal");
    }

    #[test]
    fn unknown_escape_and_character() {
        let e = lex_err("\"a\\q\"");
        assert_eq!(e.message, "unknown escape `\\q`");
        assert_eq!(e.location, "t.sim:1:3");
        let e = lex_err("a @ b");
        assert_eq!(e.message, "unexpected character `@`");
        assert_eq!(e.location, "t.sim:1:3");
        assert_eq!(lex_err("é").message, "unexpected character `é`");
        assert_eq!(lex_err("\"\\é").message, "unknown escape `\\é`");
    }

    #[test]
    fn partial_tokens_end_at_the_error() {
        let src = Source::new("t.sim", "a b @ c");
        let (toks, err) = tokenize_partial(&src);
        assert!(err.is_some());
        assert_eq!(toks.len(), 3);
        assert_eq!(
            toks[2],
            Token {
                kind: Eof,
                span: Span::new(4, 0)
            }
        );
    }
}
