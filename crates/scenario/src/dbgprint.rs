//! `DbgPrint` formats: parsed by the checker (an unsupported conversion is a
//! check error) and applied by the engine at run time.
//!
//! Conversions: `%d` `%i` (signed), `%u` (unsigned), `%x` `%X` (hex), `%c`
//! (a character), `%s` (a string literal argument), `%p` (a pointer, 16
//! upper-case hex digits as on x64 Windows) and `%%`. Flags `-` `0` `+`
//! space `#`, a width and a `.precision` as C's printf has them; size
//! prefixes `h`, `l` (32 bits, as Windows' `long`), `ll` and `I64` (64
//! bits). Widths and precisions above [`MAX_WIDTH`] are cut to it.

/// Largest width or precision applied.
pub const MAX_WIDTH: usize = 4096;

/// What a `DbgPrint` format supports, for help texts.
pub const SUPPORTED: &str = "DbgPrint supports %d %i %u %x %X %c %s %p and %%, with flags - 0 + space #, a width, a .precision and the sizes h, l, ll, I64";

/// One `%` conversion of a format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// Byte offset of the `%` in the format.
    pub offset: usize,
    /// Bytes from the `%` to the conversion letter, inclusive.
    pub len: usize,
    pub left: bool,
    pub zero: bool,
    pub plus: bool,
    pub space: bool,
    pub alt: bool,
    pub width: usize,
    pub precision: Option<usize>,
    /// `ll` / `I64`: 64 bits.
    pub wide: bool,
    /// `h`: 16 bits.
    pub short: bool,
    /// The conversion letter.
    pub conv: char,
}

/// A format that cannot be used: where (byte offset and length in the
/// format) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatError {
    pub offset: usize,
    pub len: usize,
    pub message: String,
}

/// The conversions of `fmt` (`%%` is none), or the first unsupported one.
pub fn parse(fmt: &str) -> Result<Vec<Spec>, FormatError> {
    let bytes = fmt.as_bytes();
    let mut specs = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            i += 1;
            continue;
        }
        if bytes.get(i + 1) == Some(&b'%') {
            i += 2;
            continue;
        }
        let (spec, next) = parse_one(fmt, i)?;
        specs.push(spec);
        i = next;
    }
    Ok(specs)
}

/// The conversion starting at the `%` at `start`, and where the text goes on.
fn parse_one(fmt: &str, start: usize) -> Result<(Spec, usize), FormatError> {
    let bytes = fmt.as_bytes();
    let mut i = start + 1;
    let mut spec = Spec {
        offset: start,
        len: 0,
        left: false,
        zero: false,
        plus: false,
        space: false,
        alt: false,
        width: 0,
        precision: None,
        wide: false,
        short: false,
        conv: ' ',
    };
    while let Some(&b) = bytes.get(i) {
        match b {
            b'-' => spec.left = true,
            b'0' => spec.zero = true,
            b'+' => spec.plus = true,
            b' ' => spec.space = true,
            b'#' => spec.alt = true,
            _ => break,
        }
        i += 1;
    }
    let number = |i: &mut usize| {
        let mut n: usize = 0;
        while let Some(d) = bytes.get(*i).filter(|b| b.is_ascii_digit()) {
            n = n.saturating_mul(10).saturating_add(usize::from(d - b'0'));
            *i += 1;
        }
        n.min(MAX_WIDTH)
    };
    spec.width = number(&mut i);
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        spec.precision = Some(number(&mut i));
    }
    let rest = &fmt[i..];
    if rest.starts_with("I64") {
        spec.wide = true;
        i += 3;
    } else if rest.starts_with("ll") {
        spec.wide = true;
        i += 2;
    } else if rest.starts_with('l') {
        i += 1;
    } else if rest.starts_with('h') {
        spec.short = true;
        i += 1;
    }
    let Some(conv) = fmt[i..].chars().next() else {
        return Err(FormatError {
            offset: start,
            len: i - start,
            message: "the format ends in the middle of a `%` conversion".into(),
        });
    };
    let end = i + conv.len_utf8();
    if !matches!(conv, 'd' | 'i' | 'u' | 'x' | 'X' | 'c' | 's' | 'p') {
        return Err(FormatError {
            offset: start,
            len: end - start,
            message: format!("unsupported DbgPrint conversion `{}`", &fmt[start..end]),
        });
    }
    spec.conv = conv;
    spec.len = end - start;
    Ok((spec, end))
}

/// One argument of a conversion.
#[derive(Clone, Copy, Debug)]
pub enum Arg<'a> {
    Int(i64),
    Str(&'a str),
}

/// The text of one conversion applied to `arg`.
pub fn convert(spec: &Spec, arg: Arg<'_>) -> String {
    let v = match arg {
        Arg::Int(v) => v,
        Arg::Str(s) => {
            let s = match spec.precision {
                Some(p) => s.char_indices().nth(p).map_or(s, |(at, _)| &s[..at]),
                None => s,
            };
            return pad(spec, "", s, false);
        }
    };
    let signed = |v: i64| -> (bool, u64) {
        let v = if spec.wide {
            v
        } else if spec.short {
            i64::from(v as i16)
        } else {
            i64::from(v as i32)
        };
        (v < 0, v.unsigned_abs())
    };
    let unsigned = |v: i64| -> u64 {
        if spec.wide {
            v as u64
        } else if spec.short {
            u64::from(v as u16)
        } else {
            u64::from(v as u32)
        }
    };
    match spec.conv {
        'd' | 'i' => {
            let (negative, magnitude) = signed(v);
            let sign = if negative {
                "-"
            } else if spec.plus {
                "+"
            } else if spec.space {
                " "
            } else {
                ""
            };
            pad(spec, sign, &digits(spec, magnitude.to_string()), true)
        }
        'u' => pad(spec, "", &digits(spec, unsigned(v).to_string()), true),
        'x' | 'X' => {
            let n = unsigned(v);
            let body = if spec.conv == 'x' {
                format!("{n:x}")
            } else {
                format!("{n:X}")
            };
            let prefix = match (spec.alt && n != 0, spec.conv) {
                (true, 'x') => "0x",
                (true, _) => "0X",
                _ => "",
            };
            pad(spec, prefix, &digits(spec, body), true)
        }
        'p' => pad(spec, "", &format!("{:016X}", v as u64), false),
        'c' => {
            let c = char::from_u32(v as u8 as u32).unwrap_or('?');
            pad(spec, "", &c.to_string(), false)
        }
        _ => String::new(),
    }
}

/// Apply the precision of an integer conversion (minimum digits; `.0` and
/// zero print nothing).
fn digits(spec: &Spec, body: String) -> String {
    match spec.precision {
        Some(0) if body == "0" => String::new(),
        Some(p) if body.len() < p => format!("{}{body}", "0".repeat(p - body.len())),
        _ => body,
    }
}

/// Pad `prefix` + `body` to the width: left-justified with `-`, with zeros
/// after the prefix for `0` on a number without a precision, else spaces.
fn pad(spec: &Spec, prefix: &str, body: &str, numeric: bool) -> String {
    let len = prefix.chars().count() + body.chars().count();
    let fill = spec.width.saturating_sub(len);
    if spec.left {
        format!("{prefix}{body}{}", " ".repeat(fill))
    } else if spec.zero && numeric && spec.precision.is_none() {
        format!("{prefix}{}{body}", "0".repeat(fill))
    } else {
        format!("{}{prefix}{body}", " ".repeat(fill))
    }
}

/// Escape `%` so that `text` goes through [`format`] unchanged.
pub fn escape(text: &str) -> String {
    text.replace('%', "%%")
}

/// Format DbgPrint output: each conversion takes the next of `vals` (0 when
/// they run out); an unsupported conversion (which the checker refuses) is
/// copied as it is.
pub fn format(fmt: &str, vals: &[i64]) -> String {
    let mut out = String::with_capacity(fmt.len());
    let mut args = vals.iter().copied();
    let bytes = fmt.as_bytes();
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            i += 1;
            continue;
        }
        out.push_str(&fmt[copied..i]);
        if bytes.get(i + 1) == Some(&b'%') {
            out.push('%');
            i += 2;
        } else {
            match parse_one(fmt, i) {
                Ok((spec, next)) => {
                    let v = args.next().unwrap_or(0);
                    out.push_str(&convert(&spec, Arg::Int(v)));
                    i = next;
                }
                Err(_) => {
                    out.push('%');
                    i += 1;
                }
            }
        }
        copied = i;
    }
    out.push_str(&fmt[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(fmt: &str, v: i64) -> String {
        format(fmt, &[v])
    }

    #[test]
    fn integers_as_c_prints_them() {
        assert_eq!(f("%d", -5), "-5");
        assert_eq!(f("%i", 7), "7");
        assert_eq!(f("%u", -1), "4294967295");
        assert_eq!(f("%lu", -1), "4294967295");
        assert_eq!(f("%llu", -1), "18446744073709551615");
        assert_eq!(f("%I64d", -1), "-1");
        assert_eq!(f("%ld", 1 << 32), "0");
        assert_eq!(f("%hd", 65535), "-1");
        assert_eq!(f("%x", 255), "ff");
        assert_eq!(f("%X", 255), "FF");
        assert_eq!(f("%lx", -1), "ffffffff");
        assert_eq!(f("%#x", 255), "0xff");
        assert_eq!(f("%#X", 255), "0XFF");
        assert_eq!(f("%#x", 0), "0");
        assert_eq!(f("%p", 0x1234), "0000000000001234");
        assert_eq!(f("%c", 65), "A");
        assert_eq!(format("100%%", &[]), "100%");
    }

    #[test]
    fn flags_widths_and_precisions() {
        assert_eq!(f("[%5d]", 42), "[   42]");
        assert_eq!(f("[%-5d]", 42), "[42   ]");
        assert_eq!(f("[%05d]", -42), "[-0042]");
        assert_eq!(f("[%+d]", 42), "[+42]");
        assert_eq!(f("[% d]", 42), "[ 42]");
        assert_eq!(f("[%+ d]", 42), "[+42]");
        assert_eq!(f("[%-05d]", 42), "[42   ]");
        assert_eq!(f("[%#08x]", 255), "[0x0000ff]");
        assert_eq!(f("[%.3d]", 7), "[007]");
        assert_eq!(f("[%6.3d]", -7), "[  -007]");
        assert_eq!(f("[%06.3d]", 7), "[   007]");
        assert_eq!(f("[%.0d]", 0), "[]");
        assert_eq!(f("[%3c]", 65), "[  A]");
        assert_eq!(f("[%I64d]", 5), "[5]", "I64 is a size, not a width");
    }

    #[test]
    fn strings_take_width_and_precision() {
        let spec = |fmt: &str| parse(fmt).unwrap().remove(0);
        assert_eq!(convert(&spec("%s"), Arg::Str("abc")), "abc");
        assert_eq!(convert(&spec("%5s"), Arg::Str("abc")), "  abc");
        assert_eq!(convert(&spec("%-5s"), Arg::Str("abc")), "abc  ");
        assert_eq!(convert(&spec("%.2s"), Arg::Str("abc")), "ab");
    }

    #[test]
    fn unsupported_conversions_are_errors_with_their_place() {
        let e = parse("ok %d then %q").unwrap_err();
        assert_eq!((e.offset, e.len), (11, 2));
        assert_eq!(e.message, "unsupported DbgPrint conversion `%q`");
        assert!(parse("%5").is_err());
        assert!(parse("%*d").is_err());
        assert!(parse("%f").is_err());
        assert_eq!(parse("%% %-08.3lld %s").unwrap().len(), 2);
    }
}
