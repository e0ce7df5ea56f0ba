//! Data-driven checks of rejected input: every file in `tests/rejects/`
//! has the lines `// error: <text>`, `// at: <line>:<col>` and optionally
//! `// help: <text>` (usually first; anywhere in the file); loading its
//! bytes must fail with that first diagnostic. Files are read as bytes, so
//! entries can hold a byte-order mark, CR-only line ends or bytes that are
//! not UTF-8.

use scenario::{load_bytes, LoadError};
use std::path::Path;

#[test]
fn every_reject_file_gives_its_diagnostic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rejects");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/rejects exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "sim"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 15,
        "expected the reject corpus, found {}",
        files.len()
    );
    for path in files {
        let bytes = std::fs::read(&path).expect("readable");
        let text = String::from_utf8_lossy(&bytes);
        let header = |key: &str| {
            text.split(['\n', '\r'])
                .map(|l| l.trim_start_matches('\u{feff}'))
                .find_map(|l| l.strip_prefix(&format!("// {key}: ")))
                .map(str::to_string)
        };
        let want_error =
            header("error").unwrap_or_else(|| panic!("{}: no `// error:` line", path.display()));
        let want_at =
            header("at").unwrap_or_else(|| panic!("{}: no `// at:` line", path.display()));
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("reject.sim");
        let errors = match load_bytes(name, &bytes) {
            Ok(_) => panic!("{name} was accepted"),
            Err(LoadError::Rejected(errors)) => errors,
            Err(LoadError::Io { message, .. }) => panic!("{name}: {message}"),
        };
        let first = &errors[0];
        assert_eq!(first.message, want_error, "{name}: message");
        assert_eq!(
            first.location,
            format!("{name}:{want_at}"),
            "{name}: location"
        );
        if let Some(help) = header("help") {
            assert_eq!(first.help.as_deref(), Some(help.as_str()), "{name}: help");
        }
    }
}
