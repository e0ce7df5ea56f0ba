//! Fuzzing the lexer, parser, checker and engine with proptest: arbitrary
//! text, token soup, and real scenarios (the project's `scenarios/`, the
//! shared conformance files and a few samples here) mutated by deleting,
//! duplicating, swapping and inserting ranges. Loading must return `Ok` or
//! `Err` with at least one error — never panic or overflow the stack — and a
//! mutated scenario that still checks must run to a report without panicking.

use proptest::prelude::*;
use scenario::parser::parse;
use scenario::Source;
use std::path::Path;
use std::sync::OnceLock;

const SAMPLES: [&str; 3] = [
    r#"// sample: everything at once
scenario "fuzz-all" {
    title "all constructs";
    cpus 4; seed 0x2A;
    verifier deadlock_detection, force_irql_checking;
    watchdog 10ms; duration 5ms;
    expect bugcheck 0xC4(0x1001);
    expect warning HOLD_TIME_EXCEEDED;
}
KSPIN_LOCK A;
PAGED _Guarded_by_(A) LONG X = -5;
EX_SPIN_LOCK E;
KINTERRUPT I(Isr, DISPATCH_LEVEL + 3, 7);
KDPC D(Dpc);
LIST_ENTRY Q;
BOOLEAN Isr(PKINTERRUPT Interrupt, PVOID Context) { return TRUE; }
VOID Dpc(PKDPC Dpc, PVOID Context, PVOID Arg1, PVOID Arg2) { X += 1; }
PAGED ULONG F(ULONG n, KIRQL k) {
    ULONG i = 0, j;
    for (i = 0; i < n; i++) { if (i % 2 == 0) continue; else if (i > 7) break; j = i << 2 | 1; }
    while (n > 0) { n--; }
    return n > 3 ? (ULONG)-1 : ~n & 0xFF;
}
thread T on cpu 1 repeat 2 {
    KIRQL Old; KLOCK_QUEUE_HANDLE H;
    __try { ExRaiseStatus(0xC0000005); } __except (EXCEPTION_EXECUTE_HANDLER) { DbgPrint("x %d\n", X); }
    KeAcquireInStackQueuedSpinLock(&A, &H);
    KeReleaseInStackQueuedSpinLock(&H);
    --X; ++X; X -= F(3, Old);
    { ; }
}
interrupt I on cpu 0 at 2us every 50us count 3;
"#,
    r#"scenario "s2" { cpus 1; expect clean; }
ULONG Count;
thread A { Count = Count + 1; ASSERT(Count == 1 && !FALSE || NULL); }
"#,
    r#"/* block comment */ scenario "s3" { cpus 2; expect bugcheck SPIN_LOCK_ALREADY_OWNED; }
KSPIN_LOCK L; VOID R(VOID) { KIRQL o; KeAcquireSpinLock(&L, &o); R(); }
thread W on cpu 0 { R(); }
"#,
];

/// Tokens to insert or to build token soup from.
const TOKENS: [&str; 48] = [
    "scenario",
    "\"s\"",
    "{",
    "}",
    "(",
    ")",
    ";",
    ",",
    "cpus",
    "expect",
    "bugcheck",
    "0xC4",
    "25us",
    "thread",
    "interrupt",
    "on",
    "cpu",
    "repeat",
    "at",
    "every",
    "count",
    "KSPIN_LOCK",
    "ULONG",
    "VOID",
    "PAGED",
    "_Guarded_by_",
    "KINTERRUPT",
    "KDPC",
    "if",
    "else",
    "while",
    "for",
    "return",
    "__try",
    "__except",
    "x",
    "&",
    "&&",
    "=",
    "+=",
    "++",
    "?",
    ":",
    "<<=",
    "/*",
    "\"",
    "é",
    "\n",
];

/// Is this conformance file's issue delivered (its prefix listed in
/// `.ci/delivered`)? Later issues' files may use syntax not there yet.
fn delivered(p: &Path) -> bool {
    let list =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci/delivered"))
            .unwrap_or_default();
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    list.split_whitespace()
        .any(|d| name.strip_prefix(d).is_some_and(|r| r.starts_with('-')))
}

fn corpus() -> &'static Vec<String> {
    static CORPUS: OnceLock<Vec<String>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let mut texts: Vec<String> = SAMPLES.iter().map(|s| s.to_string()).collect();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut own = vec![];
        let mut dirs = vec![root.join("scenarios")];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "sim") {
                    own.push(p);
                }
            }
        }
        own.sort();
        // A file that `#include`s another cannot be read alone.
        texts.extend(
            own.iter()
                .filter_map(|p| std::fs::read_to_string(p).ok())
                .filter(|t| !t.contains("#include")),
        );
        let dir = root.join("../shared/conformance");
        match std::fs::read_dir(&dir) {
            Ok(entries) => {
                let mut paths: Vec<_> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "sim"))
                    .filter(|p| delivered(p))
                    .collect();
                paths.sort();
                // A file that `#include`s another cannot be read alone.
                texts.extend(
                    paths
                        .iter()
                        .filter_map(|p| std::fs::read_to_string(p).ok())
                        .filter(|t| !t.contains("#include")),
                );
            }
            Err(_) => eprintln!(
                "no conformance folder at {}: fuzzing the samples only",
                dir.display()
            ),
        }
        texts
    })
}

/// The largest char boundary at or below `fraction` of the text.
fn boundary(text: &str, fraction: f64) -> usize {
    let mut at = ((text.len() as f64) * fraction.clamp(0.0, 1.0)) as usize;
    at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// A range of text, as two fractions of its length.
fn range(text: &str, a: f64, b: f64) -> (usize, usize) {
    let (x, y) = (boundary(text, a), boundary(text, b));
    (x.min(y), x.max(y))
}

#[derive(Clone, Debug)]
enum Mutation {
    Delete(f64, f64),
    Duplicate(f64, f64),
    Swap(f64, f64, f64, f64),
    Insert(f64, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let f = || 0.0f64..=1.0;
    let small = || 0.0f64..=0.05;
    prop_oneof![
        (f(), small()).prop_map(|(a, w)| Mutation::Delete(a, a + w)),
        (f(), f()).prop_map(|(a, b)| Mutation::Delete(a, b)),
        (f(), small()).prop_map(|(a, w)| Mutation::Duplicate(a, a + w)),
        (f(), small(), f(), small()).prop_map(|(a, w, b, v)| Mutation::Swap(a, a + w, b, b + v)),
        (f(), 0..TOKENS.len()).prop_map(|(a, t)| Mutation::Insert(a, t)),
        (f(), 0..TOKENS.len()).prop_map(|(a, t)| Mutation::Insert(a, t)),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    match *m {
        Mutation::Delete(a, b) => {
            let (x, y) = range(text, a, b);
            format!("{}{}", &text[..x], &text[y..])
        }
        Mutation::Duplicate(a, b) => {
            let (x, y) = range(text, a, b);
            format!("{}{}", &text[..y], &text[x..])
        }
        Mutation::Swap(a, b, c, d) => {
            let (x1, y1) = range(text, a, b);
            let (x2, y2) = range(text, c, d);
            if y1 <= x2 {
                format!(
                    "{}{}{}{}{}",
                    &text[..x1],
                    &text[x2..y2],
                    &text[y1..x2],
                    &text[x1..y1],
                    &text[y2..]
                )
            } else if y2 <= x1 {
                format!(
                    "{}{}{}{}{}",
                    &text[..x2],
                    &text[x1..y1],
                    &text[y2..x1],
                    &text[x2..y2],
                    &text[y1..]
                )
            } else {
                text.to_string()
            }
        }
        Mutation::Insert(a, t) => {
            let x = boundary(text, a);
            format!("{} {} {}", &text[..x], TOKENS[t], &text[x..])
        }
    }
}

fn well_formed(text: &str, errors: &[scenario::SimError]) {
    assert!(!errors.is_empty(), "Err with no errors for {text:?}");
    for e in errors {
        assert!(e.location.starts_with("fuzz.sim:"), "{}", e.location);
        assert!(e.span.offset() <= text.len());
    }
}

/// Parse and check; the result is well formed: an error list is never
/// empty, and every error's location names the file. Returns the program
/// when the text is accepted.
fn parse_checked(text: &str) -> Option<scenario::Program> {
    let source = Source::new("fuzz.sim", text);
    match parse(&source) {
        Err(errors) => {
            well_formed(text, &errors);
            None
        }
        Ok(file) => match scenario::check::check(&source, &file) {
            Err(errors) => {
                well_formed(text, &errors);
                None
            }
            Ok(p) => Some(p),
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        parse_checked(&text);
    }

    #[test]
    fn token_soup_never_panics(tokens in prop::collection::vec(0..TOKENS.len(), 0..80)) {
        let text: Vec<&str> = tokens.iter().map(|&t| TOKENS[t]).collect();
        parse_checked(&text.join(" "));
        parse_checked(&format!("scenario \"s\" {{ cpus 1; }}\nthread T {{ {} }}", text.join(" ")));
    }

    #[test]
    fn mutated_scenarios_never_panic(
        which in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let texts = corpus();
        let mut text = texts[which.index(texts.len())].clone();
        for m in &mutations {
            text = apply(&text, m);
        }
        parse_checked(&text);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Mutations that survive the checker still run to a report. Runs are
    /// cut at 2 ms of virtual time to keep the test fast.
    #[test]
    fn mutated_scenarios_run_without_panic(
        which in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..3),
        seed in 0u64..1000,
    ) {
        let texts = corpus();
        let mut text = texts[which.index(texts.len())].clone();
        for m in &mutations {
            text = apply(&text, m);
        }
        if let Some(mut prog) = parse_checked(&text) {
            prog.duration = Some(prog.duration.unwrap_or(u64::MAX).min(2_000_000));
            let r = machine::run(&prog, &machine::RunOptions { seed: Some(seed), ..Default::default() });
            prop_assert_eq!(r.scenario, prog.name);
        }
    }
}

#[test]
fn unmutated_corpus_parses() {
    for text in corpus() {
        let source = Source::new("corpus.sim", text.as_str());
        if let Err(errors) = parse(&source) {
            panic!(
                "{}\n---\n{text}",
                errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
}
