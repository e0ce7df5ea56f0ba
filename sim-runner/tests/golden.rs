//! Golden digests: for every scenario in `scenarios/` and
//! `../shared/conformance/`, over seeds 1..=5 of `timing` and 1..=2 of
//! `random` and `pct`, a hash of the JSON report, of
//! the text report and of the event stream. Any byte that changes fails the
//! test. A deliberate change regenerates the file with
//! `UPDATE_GOLDEN=1 cargo test -p sim-runner --test golden` in a commit of its
//! own that says why.
//!
//! Files that the loader rejects are recorded as `rejected` (their
//! diagnostics are pinned by the rejects corpus, not here). Conformance files
//! are skipped when `../shared` is not beside the repository.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use machine::Strategy;

/// Seeds of the default `timing` strategy.
const SEEDS: std::ops::RangeInclusive<u64> = 1..=5;
/// Seeds of `random` and `pct` (depth 3).
const OTHER_SEEDS: std::ops::RangeInclusive<u64> = 1..=2;

/// FNV-1a, 64 bits: stable across platforms and Rust versions.
fn fnv(bytes: &[u8], mut h: u64) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

fn sims(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .filter_map(Result::ok)
        .map(|e| e.into_path())
        .filter(|p| p.extension().is_some_and(|e| e == "sim"))
        .collect();
    v.sort();
    v
}

/// `path` (under `root/..`) as seen from the package directory `root/sim-runner`.
fn pathdiff(path: &Path, root: &Path) -> PathBuf {
    match path.strip_prefix(root) {
        Ok(rel) => Path::new("..").join(rel),
        Err(_) => Path::new("../..").join(path.strip_prefix(root.join("..")).unwrap()),
    }
}

fn digest_lines() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files: Vec<(String, PathBuf)> = sims(&root.join("scenarios"))
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(&root).unwrap().display().to_string();
            (rel, p)
        })
        .collect();
    let shared = root.join("../shared/conformance");
    if shared.is_dir() {
        for p in sims(&shared) {
            if p.components().any(|c| c.as_os_str() == "include") {
                continue;
            }
            let rel = format!(
                "shared/conformance/{}",
                p.strip_prefix(&shared).unwrap().display()
            );
            files.push((rel, p));
        }
    }
    let mut out = String::new();
    for (rel, path) in files {
        // Loaded by a path relative to the test's working directory (the
        // package), so the digests do not depend on where the checkout lives.
        let relpath = pathdiff(&path, &root);
        let program = match machine::load_file(&relpath) {
            Ok(p) => p,
            Err(_) => {
                let _ = writeln!(out, "{rel} rejected");
                continue;
            }
        };
        let pct_steps = machine::engine::timing_steps(&program);
        let schedules = SEEDS
            .map(|s| (s, Strategy::Timing))
            .chain(OTHER_SEEDS.flat_map(|s| [(s, Strategy::Random), (s, Strategy::Pct)]));
        for (seed, strategy) in schedules {
            let options = machine::RunOptions {
                seed: Some(seed),
                strategy,
                pct_steps: Some(pct_steps),
                ..Default::default()
            };
            let (report, events) = machine::run_recorded(&program, &options);
            let json = serde_json::to_string_pretty(&report).unwrap();
            let text = sim_runner::text::render(&report);
            let mut eh = FNV_START;
            for e in &events {
                eh = fnv(serde_json::to_string(e).unwrap().as_bytes(), eh);
                eh = fnv(b"\n", eh);
            }
            let tag = match strategy {
                Strategy::Timing => String::new(),
                s => format!(" strategy={s}"),
            };
            let _ = writeln!(
                out,
                "{rel} seed={seed}{tag} json={:016x} text={:016x} events={:016x} n={}",
                fnv(json.as_bytes(), FNV_START),
                fnv(text.as_bytes(), FNV_START),
                eh,
                events.len()
            );
        }
    }
    out
}

#[test]
fn golden_digests_unchanged() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/digests.txt");
    let now = digest_lines();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &now).unwrap();
        return;
    }
    let before = std::fs::read_to_string(&golden)
        .expect("tests/golden/digests.txt missing: run with UPDATE_GOLDEN=1");
    let shared_present = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/conformance")
        .is_dir();
    let mut diffs = vec![];
    let now_lines: Vec<&str> = now.lines().collect();
    let before_lines: Vec<&str> = before
        .lines()
        .filter(|l| shared_present || !l.starts_with("shared/"))
        .collect();
    for l in &before_lines {
        if !now_lines.contains(l) {
            diffs.push(format!("- {l}"));
        }
    }
    for l in &now_lines {
        if !before_lines.contains(l) {
            diffs.push(format!("+ {l}"));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} digest lines changed (UPDATE_GOLDEN=1 to accept a deliberate change):\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}
