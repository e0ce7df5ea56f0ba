//! `sim-runner test [PATH ...]`: every `.sim` under the paths, each run with
//! its own header seed and judged against its own `expect` lines.
//!
//! One line per scenario (`PASS  path  outcome` or `FAIL  path  why`), in
//! path order so the output is deterministic, then `N passed, N failed`.
//! With `--seeds N` each scenario runs with N consecutive seeds from its
//! header seed and fails at the first seed whose run misses the expectation.

use crate::cli::TestArgs;
use crate::{exit, text};
use machine::{LoadError, RunOptions};
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use walkdir::WalkDir;

/// The verdict on one scenario file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub passed: bool,
    /// What is printed after the path.
    pub detail: String,
}

/// Run the command; returns the process exit status.
pub fn execute(args: &TestArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    // `symlink_metadata`: a dangling or looping link exists (and is
    // reported as what it is while walking), it is not "missing".
    let missing: Vec<&PathBuf> = args
        .paths
        .iter()
        .filter(|p| std::fs::symlink_metadata(p).is_err())
        .collect();
    if !missing.is_empty() {
        for p in missing {
            let _ = writeln!(err, "error: {} does not exist", p.display());
        }
        return exit::REJECTED;
    }

    let (files, walk_errors) = collect(&args.paths);
    tracing::info!(scenarios = files.len(), "collected scenarios");

    let mut passed = 0usize;
    let mut failed = 0usize;
    for (path, message) in &walk_errors {
        failed += 1;
        let _ = writeln!(out, "FAIL  {}  cannot read: {message}", path.display());
    }
    for path in &files {
        let verdict = judge_seeds(path, args.seeds);
        if verdict.passed {
            passed += 1;
        } else {
            failed += 1;
        }
        let status = if verdict.passed { "PASS" } else { "FAIL" };
        let written = writeln!(out, "{status}  {}  {}", path.display(), verdict.detail)
            .and_then(|()| out.flush());
        if written.is_err() {
            // Nobody can read the rest (a closed pipe, a full disk): stop;
            // the output guard reports it.
            return exit::FAILED;
        }
    }
    let _ = writeln!(out, "{passed} passed, {failed} failed");
    let _ = out.flush();

    if files.is_empty() && walk_errors.is_empty() {
        let under: Vec<String> = args.paths.iter().map(|p| p.display().to_string()).collect();
        let _ = writeln!(
            err,
            "error: no .sim scenario found under {}",
            under.join(", ")
        );
        return exit::FAILED;
    }
    if failed == 0 {
        exit::OK
    } else {
        exit::FAILED
    }
}

/// Every scenario under `paths`, sorted and without duplicates, and the
/// entries that could not be read while walking. A path naming a file is
/// taken as a scenario whatever its extension; directories are searched
/// recursively for `*.sim`. Symbolic links are followed, to files and to
/// directories; a real file reached several ways is run once (under the
/// first of its paths in sorted order), and a link loop is reported as one.
pub fn collect(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<(PathBuf, String)>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for root in paths {
        if root.is_file() {
            files.push(root.clone());
            continue;
        }
        for entry in WalkDir::new(root).follow_links(true).sort_by_file_name() {
            match entry {
                Ok(entry) => {
                    if entry.file_type().is_file() && is_sim(entry.path()) {
                        files.push(entry.into_path());
                    }
                }
                Err(e) => {
                    let path = e.path().unwrap_or(root).to_path_buf();
                    errors.push((path, walk_error_message(&e)));
                }
            }
        }
    }
    files.sort();
    files.dedup();
    // The same real file through several links: keep its first path.
    let mut seen = std::collections::HashSet::new();
    files.retain(|f| seen.insert(std::fs::canonicalize(f).unwrap_or_else(|_| f.clone())));
    errors.sort();
    errors.dedup();
    (files, errors)
}

/// Why a walk step failed, naming link loops as such.
fn walk_error_message(e: &walkdir::Error) -> String {
    if let Some(ancestor) = e.loop_ancestor() {
        return format!(
            "symbolic link loop: it leads back to {}",
            ancestor.display()
        );
    }
    match e.io_error() {
        Some(io) if is_link_loop(io) => format!("symbolic link loop ({io})"),
        Some(io) => io.to_string(),
        None => e.to_string(),
    }
}

/// ELOOP: too many levels of symbolic links.
fn is_link_loop(e: &std::io::Error) -> bool {
    #[cfg(unix)]
    {
        e.raw_os_error() == Some(libc::ELOOP)
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        false
    }
}

fn is_sim(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == "sim")
}

/// Load, run with the header's seed, and judge one scenario. A panic in the
/// engine fails this scenario only, so one bad file does not hide the rest.
pub fn judge(path: &Path) -> Verdict {
    judge_seeds(path, 1)
}

/// Like [`judge`], over `seeds` consecutive seeds from the header seed: the
/// verdict of the first failing seed, else the header seed's.
pub fn judge_seeds(path: &Path, seeds: u64) -> Verdict {
    let program = match scenario::load_file(path) {
        Ok(program) => program,
        Err(LoadError::Io { message, .. }) => {
            return Verdict {
                passed: false,
                detail: format!("cannot read: {message}"),
            };
        }
        Err(LoadError::Rejected(errors)) => {
            let detail = match errors.split_first() {
                None => "rejected".to_string(),
                Some((first, [])) => format!("rejected: {first}"),
                Some((first, rest)) => format!("rejected: {first} (and {} more)", rest.len()),
            };
            return Verdict {
                passed: false,
                detail,
            };
        }
    };
    let mut first = None;
    for k in 0..seeds.max(1) {
        let seed = program.seed.wrapping_add(k);
        let verdict = judge_run(path, &program, seed);
        match (verdict.passed, seeds > 1) {
            (false, true) => {
                return Verdict {
                    passed: false,
                    detail: format!("seed {seed}: {}", verdict.detail),
                }
            }
            (false, false) => return verdict,
            (true, _) => {
                first.get_or_insert(verdict);
            }
        }
    }
    let mut verdict = first.expect("at least one seed ran");
    if seeds > 1 {
        verdict.detail = format!("{} (all {seeds} seeds)", verdict.detail);
    }
    verdict
}

/// Run one loaded scenario with one seed and judge the report.
fn judge_run(path: &Path, program: &scenario::Program, seed: u64) -> Verdict {
    tracing::debug!(path = %path.display(), seed, "running scenario");
    let options = RunOptions {
        seed: Some(seed),
        ..RunOptions::default()
    };
    let report = match panic::catch_unwind(AssertUnwindSafe(|| machine::run(program, &options))) {
        Ok(report) => report,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".to_string());
            return Verdict {
                passed: false,
                detail: format!("engine panicked: {message}"),
            };
        }
    };
    if report.expectation_met {
        Verdict {
            passed: true,
            detail: text::outcome_summary(&report),
        }
    } else {
        let detail = report.expectation_failure.clone().unwrap_or_else(|| {
            format!(
                "expected {}, got {}",
                text::expectation_text(&report),
                text::outcome_summary(&report)
            )
        });
        Verdict {
            passed: false,
            detail,
        }
    }
}
