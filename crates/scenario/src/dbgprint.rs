//! `DbgPrint` formats: parsed by the checker (an unsupported conversion is a
//! check error) and applied by the engine at run time.
//!
//! Conversions: `%d` `%i` (signed), `%u` (unsigned), `%o` (octal), `%x`
//! `%X` (hex), `%c` (a character), `%s` (a string literal argument), `%p`
//! (a pointer, 16 upper-case hex digits as on x64 Windows) and `%%`. Flags
//! `-` `0` `+` space `#`, a width and a `.precision` as C's printf has them;
//! the sizes of the WDK's DbgPrint: `h` (16 bits), `l` and `I32` (32 bits,
//! as Windows' `long`), `ll`, `I64` and `I` (64 bits; `I` is the size of a
//! pointer, `SIZE_T` and `ULONG_PTR` on x64). `%hs` and `%hc` are the narrow
//! string and character, as in the WDK. Widths and precisions above
//! [`MAX_WIDTH`] are cut to it.
//!
//! Formats that a driver could pass to DbgPrint but that print something a
//! scenario cannot have (wide strings, counted strings, floating point) or
//! that make no sense (a size on `%p`, `%I64s`) are errors that say why.

/// Largest width or precision applied.
pub const MAX_WIDTH: usize = 4096;

/// What a `DbgPrint` format supports, for help texts.
pub const SUPPORTED: &str = "DbgPrint supports %d %i %u %o %x %X %c %s %p and %%, with flags - 0 + space #, a width, a .precision and the sizes h, l, ll, I32, I64, I";

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
    /// `ll` / `I64` / `I`: 64 bits.
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

/// A size prefix, as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Size {
    None,
    /// `h`
    Short,
    /// `l`
    Long,
    /// `ll`
    LongLong,
    /// `I32`
    I32,
    /// `I64`
    I64,
    /// `I` (pointer-sized)
    Ptr,
}

/// The size prefixes, longest first, as they are matched.
const SIZES: &[(&str, Size)] = &[
    ("I64", Size::I64),
    ("I32", Size::I32),
    ("ll", Size::LongLong),
    ("I", Size::Ptr),
    ("l", Size::Long),
    ("h", Size::Short),
];

/// Why a conversion a C or WDK format knows is not supported here: `text`
/// runs from the `%` to the letter `conv`, after any flags, width,
/// precision and size.
fn unsupported_reason(text: &str, conv: char, size: &str) -> Option<String> {
    Some(match conv {
        'f' | 'F' | 'e' | 'E' | 'g' | 'G' | 'a' | 'A' => format!(
            "`{text}` prints floating point, which a scenario does not have: print an integer (scaled, if need be)"
        ),
        'n' => "`%n` stores the count of characters through a pointer; DbgPrint in a scenario does not support it".into(),
        '*' => "a `*` width or precision (taken from an argument) is not supported: write the number in the format".into(),
        'S' | 'C' | 'w' => format!(
            "`{text}` is a wide (UTF-16) string or character, which a scenario does not have: use %s or %c"
        ),
        'Z' => format!(
            "`{text}` prints an ANSI_STRING or UNICODE_STRING, which a scenario does not have: use %s with a string literal"
        ),
        'z' | 'j' | 't' | 'L' if size.is_empty() => format!(
            "the size `{conv}` is not one DbgPrint knows: use l (32 bits), ll or I64 (64 bits), or I (pointer-sized, as for SIZE_T)"
        ),
        'h' if size == "h" => "the size `hh` is not supported: use h (16 bits), or print the value with %u or %x".into(),
        _ => return None,
    })
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
    let size_at = i;
    let size = SIZES
        .iter()
        .find(|(text, _)| fmt[i..].starts_with(text))
        .map_or(Size::None, |&(text, size)| {
            i += text.len();
            size
        });
    let size_text = &fmt[size_at..i];
    spec.wide = matches!(size, Size::LongLong | Size::I64 | Size::Ptr);
    spec.short = size == Size::Short;
    let Some(conv) = fmt[i..].chars().next() else {
        return Err(FormatError {
            offset: start,
            len: i - start,
            message: "the format ends in the middle of a `%` conversion".into(),
        });
    };
    let mut end = i + conv.len_utf8();
    if conv == 'w' {
        // The WDK's `w` size (`%ws`, `%wc`, `%wZ`): name the whole conversion.
        end += fmt[end..]
            .chars()
            .next()
            .filter(char::is_ascii_alphabetic)
            .map_or(0, char::len_utf8);
    }
    let error = |message: String| FormatError {
        offset: start,
        len: end - start,
        message,
    };
    let text = &fmt[start..end];
    match conv {
        'd' | 'i' | 'u' | 'o' | 'x' | 'X' => {}
        'c' if matches!(size, Size::None | Size::Short | Size::Long) => {}
        's' if matches!(size, Size::None | Size::Short) => {}
        'p' if size == Size::None => {}
        's' if size == Size::Long => {
            return Err(error(format!(
                "`{text}` is a wide (UTF-16) string, which a scenario does not have: use %s"
            )))
        }
        's' | 'c' | 'p' => {
            return Err(error(format!(
                "the size `{size_text}` does not apply to %{conv}{}",
                if conv == 'p' {
                    ": a pointer is 64 bits on x64, write %p"
                } else {
                    ""
                }
            )))
        }
        _ => {
            return Err(error(
                unsupported_reason(text, conv, size_text)
                    .unwrap_or_else(|| format!("unsupported DbgPrint conversion `{text}`")),
            ))
        }
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
        'o' => {
            let body = digits(spec, format!("{:o}", unsigned(v)));
            // `#` makes the first digit a zero (C: it raises the precision
            // just enough), so `%#o` of 0 and `%#.0o` of 0 print "0".
            let body = if spec.alt && !body.starts_with('0') {
                format!("0{body}")
            } else {
                body
            };
            pad(spec, "", &body, true)
        }
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

    /// One value through a format, as the engine prints it.
    fn f(fmt: &str, v: i64) -> String {
        format(fmt, &[v])
    }

    /// (format, value, what DbgPrint prints on x64 Windows).
    const PRINTS: &[(&str, i64, &str)] = &[
        // Conversions.
        ("%d", -5, "-5"),
        ("%i", 7, "7"),
        ("%u", -1, "4294967295"),
        ("%o", 8, "10"),
        ("%o", -1, "37777777777"),
        ("%x", 255, "ff"),
        ("%X", 255, "FF"),
        ("%c", 65, "A"),
        ("100%%", 0, "100%"),
        // 32-bit sizes: none, `l`, `I32` (a 64-bit value is cut to its low half).
        ("%lu", -1, "4294967295"),
        ("%ld", 1 << 32, "0"),
        ("%lx", -1, "ffffffff"),
        ("%I32d", -1, "-1"),
        ("%I32u", -1, "4294967295"),
        ("%I32x", 0x1_2345_6789, "23456789"),
        ("%d", 0x1_0000_0005, "5"),
        // 16 bits.
        ("%hd", 65535, "-1"),
        ("%hu", -1, "65535"),
        ("%hx", 0x12345, "2345"),
        ("%ho", -1, "177777"),
        // 64 bits: `ll`, the WDK's `I64`, and `I` (pointer-sized on x64).
        ("%lld", -1, "-1"),
        ("%lld", i64::MIN, "-9223372036854775808"),
        ("%llu", -1, "18446744073709551615"),
        ("%llx", -1, "ffffffffffffffff"),
        ("%llX", 0x1_0000_00AB, "1000000AB"),
        ("%llo", -1, "1777777777777777777777"),
        ("%I64d", -1, "-1"),
        ("%I64d", i64::MAX, "9223372036854775807"),
        ("%I64u", -1, "18446744073709551615"),
        ("%I64x", 0x1_0000_00ab, "1000000ab"),
        ("%I64X", -2, "FFFFFFFFFFFFFFFE"),
        ("%Id", -1, "-1"),
        ("%Iu", 1 << 40, "1099511627776"),
        ("%Ix", -1, "ffffffffffffffff"),
        // Pointers: 16 upper-case digits, the full 64 bits.
        ("%p", 0x1234, "0000000000001234"),
        ("%p", 0, "0000000000000000"),
        ("%p", -1, "FFFFFFFFFFFFFFFF"),
        ("%p", 0x4000_0010_0000_0031, "4000001000000031"),
        ("[%20p]", 1, "[    0000000000000001]"),
        ("[%-18p]", 1, "[0000000000000001  ]"),
        // Flags, widths and precisions.
        ("[%5d]", 42, "[   42]"),
        ("[%-5d]", 42, "[42   ]"),
        ("[%05d]", -42, "[-0042]"),
        ("[%+d]", 42, "[+42]"),
        ("[% d]", 42, "[ 42]"),
        ("[%+ d]", 42, "[+42]"),
        ("[%-05d]", 42, "[42   ]"),
        ("[%.3d]", 7, "[007]"),
        ("[%6.3d]", -7, "[  -007]"),
        ("[%06.3d]", 7, "[   007]"),
        ("[%.0d]", 0, "[]"),
        ("[%3c]", 65, "[  A]"),
        ("[%#x]", 255, "[0xff]"),
        ("[%#X]", 255, "[0XFF]"),
        ("[%#x]", 0, "[0]"),
        ("[%#08x]", 255, "[0x0000ff]"),
        ("[%#llx]", -1, "[0xffffffffffffffff]"),
        ("[%#o]", 8, "[010]"),
        ("[%#o]", 0, "[0]"),
        ("[%#.0o]", 0, "[0]"),
        ("[%#.3o]", 8, "[010]"),
        ("[%#08o]", 8, "[00000010]"),
        ("[%-#6o]", 8, "[010   ]"),
        ("[%023I64u]", -1, "[00018446744073709551615]"),
        ("[%-22llu|]", 1, "[1                     |]"),
        ("[%I64d]", 5, "[5]"),
        ("[%lc]", 66, "[B]"),
        ("[%hc]", 67, "[C]"),
    ];

    #[test]
    fn formats_print_as_dbgprint_does() {
        let mut wrong = vec![];
        for &(fmt, v, want) in PRINTS {
            assert!(parse(fmt).is_ok(), "{fmt:?} must be accepted");
            let got = f(fmt, v);
            if got != want {
                wrong.push(format!("{fmt:?} of {v}: got {got:?}, want {want:?}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn several_values_in_order_and_missing_ones_are_zero() {
        assert_eq!(
            format("%p %llu %I64d %u\n", &[0x10, -1, -2, 3]),
            "0000000000000010 18446744073709551615 -2 3\n"
        );
        assert_eq!(format("%d %d", &[1]), "1 0");
    }

    /// (format, the `%s` argument, what it prints).
    const STRINGS: &[(&str, &str, &str)] = &[
        ("%s", "abc", "abc"),
        ("%5s", "abc", "  abc"),
        ("%-5s|", "abc", "abc  |"),
        ("%.2s", "abc", "ab"),
        ("%hs", "abc", "abc"),
        ("%.1s", "é!", "é"),
    ];

    #[test]
    fn strings_take_width_and_precision() {
        for &(fmt, arg, want) in STRINGS {
            let spec = parse(fmt).unwrap().remove(0);
            let end = spec.offset + spec.len;
            let got = format!("{}{}", convert(&spec, Arg::Str(arg)), &fmt[end..]);
            assert_eq!(got, want, "{fmt:?} of {arg:?}");
        }
    }

    /// (format, the offending conversion as written, the message).
    const REJECTED: &[(&str, &str, &str)] = &[
        ("ok %d then %q", "%q", "unsupported DbgPrint conversion `%q`"),
        ("%5", "%5", "the format ends in the middle of a `%` conversion"),
        ("%ll", "%ll", "the format ends in the middle of a `%` conversion"),
        ("%I64", "%I64", "the format ends in the middle of a `%` conversion"),
        ("x %-08.", "%-08.", "the format ends in the middle of a `%` conversion"),
        ("%I6d", "%I6", "unsupported DbgPrint conversion `%I6`"),
        ("%lI64d", "%lI", "unsupported DbgPrint conversion `%lI`"),
        ("%é", "%é", "unsupported DbgPrint conversion `%é`"),
        ("%f", "%f", "`%f` prints floating point, which a scenario does not have: print an integer (scaled, if need be)"),
        ("%.2e", "%.2e", "`%.2e` prints floating point, which a scenario does not have: print an integer (scaled, if need be)"),
        ("%n", "%n", "`%n` stores the count of characters through a pointer; DbgPrint in a scenario does not support it"),
        ("%*d", "%*", "a `*` width or precision (taken from an argument) is not supported: write the number in the format"),
        ("%.*d", "%.*", "a `*` width or precision (taken from an argument) is not supported: write the number in the format"),
        ("%hhd", "%hh", "the size `hh` is not supported: use h (16 bits), or print the value with %u or %x"),
        ("%zu", "%z", "the size `z` is not one DbgPrint knows: use l (32 bits), ll or I64 (64 bits), or I (pointer-sized, as for SIZE_T)"),
        ("%jd", "%j", "the size `j` is not one DbgPrint knows: use l (32 bits), ll or I64 (64 bits), or I (pointer-sized, as for SIZE_T)"),
        ("%ws", "%ws", "`%ws` is a wide (UTF-16) string or character, which a scenario does not have: use %s or %c"),
        ("%wZ", "%wZ", "`%wZ` is a wide (UTF-16) string or character, which a scenario does not have: use %s or %c"),
        ("%w", "%w", "`%w` is a wide (UTF-16) string or character, which a scenario does not have: use %s or %c"),
        ("%w1", "%w", "`%w` is a wide (UTF-16) string or character, which a scenario does not have: use %s or %c"),
        ("%S", "%S", "`%S` is a wide (UTF-16) string or character, which a scenario does not have: use %s or %c"),
        ("%ls", "%ls", "`%ls` is a wide (UTF-16) string, which a scenario does not have: use %s"),
        ("%Z", "%Z", "`%Z` prints an ANSI_STRING or UNICODE_STRING, which a scenario does not have: use %s with a string literal"),
        ("%lls", "%lls", "the size `ll` does not apply to %s"),
        ("%I64s", "%I64s", "the size `I64` does not apply to %s"),
        ("%I64c", "%I64c", "the size `I64` does not apply to %c"),
        ("%llp", "%llp", "the size `ll` does not apply to %p: a pointer is 64 bits on x64, write %p"),
        ("%lp", "%lp", "the size `l` does not apply to %p: a pointer is 64 bits on x64, write %p"),
        ("%Ip", "%Ip", "the size `I` does not apply to %p: a pointer is 64 bits on x64, write %p"),
    ];

    #[test]
    fn unsupported_formats_are_errors_with_their_place_and_reason() {
        for &(fmt, at, message) in REJECTED {
            let e = parse(fmt).expect_err(fmt);
            assert_eq!(&fmt[e.offset..e.offset + e.len], at, "{fmt:?}: the span");
            assert_eq!(e.message, message, "{fmt:?}: the message");
        }
    }

    #[test]
    fn percent_percent_is_no_conversion_and_every_other_one_counts() {
        assert_eq!(parse("100%% %-08.3lld %s %I64x %Iu %%").unwrap().len(), 4);
        assert!(parse("no conversions").unwrap().is_empty());
        let specs = parse("a%db%5.2I64uc").unwrap();
        assert_eq!(
            specs
                .iter()
                .map(|s| (s.offset, s.len, s.conv))
                .collect::<Vec<_>>(),
            [(1, 2, 'd'), (4, 8, 'u')]
        );
        assert!(specs[1].wide && !specs[0].wide);
    }

    /// Every format over a small alphabet up to four characters: parsing
    /// never panics, an error's span and a conversion's span lie on
    /// character boundaries inside the format (the checker slices the
    /// source with them), and an accepted format prints any values
    /// without panicking.
    #[test]
    fn no_format_panics_and_spans_stay_inside_the_format() {
        const ALPHABET: &[&str] = &[
            "%", "d", "s", "p", "o", "l", "h", "I", "6", "4", "3", "2", ".", "-", "0", "9", "#",
            "*", "é", "w", "Z", "x",
        ];
        let boundary = |fmt: &str, at: usize| fmt.is_char_boundary(at) && at <= fmt.len();
        let mut formats = vec![String::new()];
        let mut checked = 0;
        for _ in 0..4 {
            let mut longer = vec![];
            for f in &formats {
                for a in ALPHABET {
                    longer.push(format!("{f}{a}"));
                }
            }
            for fmt in &longer {
                match parse(fmt) {
                    Ok(specs) => {
                        for s in &specs {
                            assert!(
                                boundary(fmt, s.offset) && boundary(fmt, s.offset + s.len),
                                "{fmt:?}: {s:?}"
                            );
                            let _ = convert(s, Arg::Str("abc"));
                        }
                        let _ = format(fmt, &[i64::MIN, -1, 0, i64::MAX]);
                    }
                    Err(e) => {
                        assert!(
                            e.len > 0 && boundary(fmt, e.offset) && boundary(fmt, e.offset + e.len),
                            "{fmt:?}: {e:?}"
                        );
                        assert!(!e.message.is_empty());
                    }
                }
                checked += 1;
            }
            formats = longer;
        }
        assert_eq!(checked, 22 + 22 * 22 + 22 * 22 * 22 + 22 * 22 * 22 * 22);
    }

    #[test]
    fn escape_survives_format() {
        for text in ["100%", "%d%%", "no percent", "%"] {
            assert_eq!(format(&escape(text), &[7]), text);
        }
    }
}
