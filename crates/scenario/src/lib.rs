//! The `.sim` scenario language: text in, a checked [`Program`] out.
//!
//! Data flows one way: [`lexer`] → [`parser`] ([`ast`]) → [`check`]
//! (names, types, lock kinds resolved, compiled to the interpreter's code in
//! [`program`]). Diagnostics ([`diag`]) carry `file:line:col`, a caret and a
//! suggestion.
//!
//! Architecture invariant: this crate knows nothing of the machine that runs
//! a program. It may use `vcpu`'s vocabulary (IRQL values, lock ids, bug
//! check names) and must never import `machine`, `verifier` or `spinlocks`.

pub mod ast;
pub mod check;
pub mod dbgprint;
pub mod diag;
pub mod kernel;
pub mod lexer;
mod names;
pub mod parser;
pub mod preprocess;
pub mod program;

pub use diag::{SimError, Source};
pub use program::Program;

use std::path::Path;

/// Why a file could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be read.
    Io { path: String, message: String },
    /// Syntax or check errors (at least one).
    Rejected(Vec<SimError>),
}

/// Largest scenario file read: 16 MiB. A larger file (or standard input
/// that goes on past it) is refused before it is parsed.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// The name standard input gets in diagnostics when the path is `-`.
pub const STDIN_NAME: &str = "<stdin>";

/// Read, parse and check a `.sim` file; the path `-` reads standard input.
///
/// Only regular files are read: a directory, FIFO, socket or device is
/// refused from its metadata, without opening it (so `/dev/zero` or a FIFO
/// nobody writes to cannot make the tool hang). A file above
/// [`MAX_FILE_BYTES`] is refused; bytes that are not UTF-8 are a diagnostic
/// at their `line:column`.
pub fn load_file(path: &Path) -> Result<Program, LoadError> {
    let (name, bytes) = read_input(path)?;
    load_bytes(&name, &bytes)
}

/// The bytes of a scenario file (or of standard input for `-`) and the name
/// to use in diagnostics, with the checks of [`load_file`].
pub fn read_input(path: &Path) -> Result<(String, Vec<u8>), LoadError> {
    if path.as_os_str() == "-" {
        let bytes = read_limited(std::io::stdin().lock(), STDIN_NAME)?;
        return Ok((STDIN_NAME.to_string(), bytes));
    }
    let name = path.display().to_string();
    let io = |message: String| LoadError::Io {
        path: name.clone(),
        message,
    };
    // Follows symbolic links: a link to a regular file is read.
    let meta = std::fs::metadata(path).map_err(|e| io(e.to_string()))?;
    if !meta.is_file() {
        return Err(io(format!(
            "not a regular file (it is {}); only regular files are read, or `-` for standard input",
            file_kind(&meta.file_type())
        )));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(io(too_large(meta.len())));
    }
    let file = open_no_block(path).map_err(|e| io(e.to_string()))?;
    // The path may have been replaced between the two looks.
    match file.metadata() {
        Ok(m) if m.is_file() => {}
        Ok(m) => {
            return Err(io(format!(
                "not a regular file (it is {})",
                file_kind(&m.file_type())
            )))
        }
        Err(e) => return Err(io(e.to_string())),
    }
    let bytes = read_limited(file, &name)?;
    Ok((name, bytes))
}

/// "is N bytes; the limit is 16 MiB".
fn too_large(len: u64) -> String {
    format!(
        "the file is {len} bytes; scenario files are limited to {} bytes (16 MiB)",
        MAX_FILE_BYTES
    )
}

/// Everything `reader` gives, refused past [`MAX_FILE_BYTES`].
fn read_limited(reader: impl std::io::Read, name: &str) -> Result<Vec<u8>, LoadError> {
    use std::io::Read;
    let mut bytes = Vec::new();
    reader
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| LoadError::Io {
            path: name.to_string(),
            message: e.to_string(),
        })?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(LoadError::Io {
            path: name.to_string(),
            message: format!(
                "the input goes on past {} bytes; scenario files are limited to 16 MiB",
                MAX_FILE_BYTES
            ),
        });
    }
    Ok(bytes)
}

/// Open for reading without ever blocking in `open` (a FIFO swapped in
/// after the metadata check must not hang the tool).
pub(crate) fn open_no_block(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    options.open(path)
}

/// "a directory", "a FIFO", ... for messages.
pub(crate) fn file_kind(t: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

/// Parse and check scenario bytes: text that is not UTF-8 is rejected with
/// a diagnostic at the first bad byte.
pub fn load_bytes(name: &str, bytes: &[u8]) -> Result<Program, LoadError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => load_source(name, text),
        Err(e) => Err(LoadError::Rejected(vec![invalid_utf8(name, bytes, &e)])),
    }
}

/// The diagnostic for bytes that are not UTF-8: at the first bad byte.
fn invalid_utf8(name: &str, bytes: &[u8], e: &std::str::Utf8Error) -> SimError {
    let at = e.valid_up_to();
    let bad = e.error_len().unwrap_or(bytes.len() - at).max(1);
    let shown: Vec<String> = bytes[at..(at + bad).min(bytes.len())]
        .iter()
        .map(|b| format!("0x{b:02X}"))
        .collect();
    // The text before the bad byte is valid, so offsets there are the same
    // in the lossy copy the diagnostic shows.
    let text = String::from_utf8_lossy(bytes);
    let bom = usize::from(bytes.starts_with(b"\xEF\xBB\xBF")) * 3;
    let source = Source::new(name, text.as_ref());
    SimError::new(
        &source,
        // U+FFFD stands in for the bad bytes in the copy shown.
        ast::Span::new(at - bom, '\u{fffd}'.len_utf8()),
        format!("the file is not valid UTF-8 (byte {})", shown.join(" ")),
    )
    .label("not UTF-8")
    .help("save the file as UTF-8")
}

/// Parse and check scenario text; `name` is used in diagnostics.
///
/// # Errors
/// [`LoadError::Rejected`] with the diagnostics when the text does not parse
/// or check.
pub fn load_source(name: &str, text: &str) -> Result<Program, LoadError> {
    let pp = preprocess::preprocess(name, text);
    if !pp.errors.is_empty() {
        let mut errors = pp.errors;
        errors.truncate(check::MAX_ERRORS);
        return Err(LoadError::Rejected(errors));
    }
    let source = pp.source;
    let file =
        parser::parse_tokens(&source, pp.tokens, pp.lex_error).map_err(LoadError::Rejected)?;
    check::check(&source, &file).map_err(LoadError::Rejected)
}

/// Is this conformance file's issue prefix (`A-01-...` → `A`) delivered,
/// as `.ci/delivered` lists? Files of later issues may use syntax the
/// language does not have yet. Tests only.
#[cfg(test)]
pub(crate) fn testkit_delivered(p: &Path) -> bool {
    let list =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci/delivered"))
            .unwrap_or_default();
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    list.split_whitespace()
        .any(|d| name.strip_prefix(d).is_some_and(|r| r.starts_with('-')))
}
