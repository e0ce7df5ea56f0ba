//! Data-driven checks of rejected input: every file in `tests/rejects/`
//! lists the diagnostics loading it must give, in order, as groups of
//! comment lines: `// error: <text>`, then `// at: <line>:<col>` and
//! optionally `// help: <text>`, up to the next `// error:` line. A file
//! with a single `// error:` line may put its `// at:` and `// help:` lines
//! anywhere (the original format). Loading must give exactly as many
//! diagnostics as the file lists, so a file with three independent errors
//! proves all three are reported. Files are read as bytes, so entries can
//! hold a byte-order mark, CR-only line ends or bytes that are not UTF-8.

use scenario::{load_bytes, LoadError};
use std::path::Path;

/// One expected diagnostic.
#[derive(Debug, Default)]
struct Want {
    error: String,
    at: Option<String>,
    help: Option<String>,
}

/// The expected diagnostics of a corpus file, in order.
fn expected(text: &str) -> Vec<Want> {
    let lines: Vec<&str> = text
        .split(['\n', '\r'])
        .map(|l| l.trim_start_matches('\u{feff}'))
        .collect();
    let field = |l: &str, key: &str| l.strip_prefix(&format!("// {key}: ")).map(str::to_string);
    let errors = lines.iter().filter(|l| field(l, "error").is_some()).count();
    let mut wants: Vec<Want> = Vec::new();
    if errors == 1 {
        let find = |key: &str| lines.iter().find_map(|l| field(l, key));
        wants.push(Want {
            error: find("error").unwrap_or_default(),
            at: find("at"),
            help: find("help"),
        });
        return wants;
    }
    for l in &lines {
        if let Some(e) = field(l, "error") {
            wants.push(Want {
                error: e,
                ..Want::default()
            });
        } else if let Some(w) = wants.last_mut() {
            if let Some(at) = field(l, "at") {
                w.at.get_or_insert(at);
            } else if let Some(help) = field(l, "help") {
                w.help.get_or_insert(help);
            }
        }
    }
    wants
}

#[test]
fn every_reject_file_gives_its_diagnostics() {
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
    let mut multi = 0;
    for path in files {
        let bytes = std::fs::read(&path).expect("readable");
        let text = String::from_utf8_lossy(&bytes);
        let wants = expected(&text);
        assert!(!wants.is_empty(), "{}: no `// error:` line", path.display());
        if wants.len() > 1 {
            multi += 1;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("reject.sim");
        let errors = match load_bytes(name, &bytes) {
            Ok(_) => panic!("{name} was accepted"),
            Err(LoadError::Rejected(errors)) => errors,
            Err(LoadError::Io { message, .. }) => panic!("{name}: {message}"),
        };
        let got: Vec<String> = errors
            .iter()
            .map(|e| format!("{}: {}", e.location, e.message))
            .collect();
        assert_eq!(
            errors.len(),
            wants.len(),
            "{name}: number of diagnostics; got {got:#?}"
        );
        for (i, (want, got)) in wants.iter().zip(&errors).enumerate() {
            let at = want
                .at
                .as_deref()
                .unwrap_or_else(|| panic!("{name}: error {} has no `// at:` line", i + 1));
            assert_eq!(got.message, want.error, "{name}: message {}", i + 1);
            assert_eq!(
                got.location,
                format!("{name}:{at}"),
                "{name}: location {}",
                i + 1
            );
            if let Some(help) = &want.help {
                assert_eq!(
                    got.help.as_deref(),
                    Some(help.as_str()),
                    "{name}: help {}",
                    i + 1
                );
            }
        }
    }
    assert!(multi >= 2, "the corpus should hold multi-error files");
}
