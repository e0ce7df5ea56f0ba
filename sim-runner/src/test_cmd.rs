//! `sim-runner test [PATH ...]`: every `.sim` under the paths, each run with
//! its own header seed and judged against its own `expect` lines.
//!
//! One line per scenario (`PASS  path  outcome` or `FAIL  path  why`), in
//! path order so the output is deterministic, then `N passed, N failed`.
//! With `--seeds N` each scenario runs with N consecutive seeds from its
//! header seed and fails at the first seed whose run misses the expectation.

use crate::cli::{ModeArg, TestArgs, TestFormat};
use crate::{exit, text};
use machine::{LoadError, RunOptions};
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use walkdir::WalkDir;

/// The verdict on one scenario file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the file met its expectation (every seed did).
    pub passed: bool,
    /// What is printed after the path.
    pub detail: String,
}

/// One run of one scenario file with one seed, or the verdict on a file
/// that did not run (rejected, unreadable, a `.bad.sim` input).
#[derive(Debug, Clone)]
pub struct Case {
    /// The seed of the run; `None` when nothing ran.
    pub seed: Option<u64>,
    /// Whether this case passed.
    pub passed: bool,
    /// One line: the outcome when it passed, why it failed otherwise.
    pub detail: String,
    /// The run's report, when a run happened.
    pub report: Option<machine::RunReport>,
    /// Wall-clock time the case took.
    pub time: Duration,
}

/// Everything `test` found out about one file.
#[derive(Debug, Clone)]
pub struct FileResult {
    /// The path as found.
    pub path: PathBuf,
    /// One case per seed run (at least one).
    pub cases: Vec<Case>,
    /// The verdict printed in text form.
    pub verdict: Verdict,
}

impl FileResult {
    /// The case the verdict is about: the first failing one, else the first.
    pub fn decisive(&self) -> &Case {
        self.cases
            .iter()
            .find(|c| !c.passed)
            .unwrap_or(&self.cases[0])
    }
}

/// Run the command; returns the process exit status.
///
/// Text goes to `out` as each file is judged. With `--format json|junit`
/// the whole report is written at the end, to `out`, or to `--output FILE`
/// (standard output then gets the text lines, so a CI log shows them).
pub fn execute(
    args: &TestArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
    colors: crate::color::Colors,
) -> u8 {
    // `-` is `run`'s name for standard input; `test` walks files and folders.
    if args.paths.iter().any(|p| p.as_os_str() == "-") {
        let _ = writeln!(
            err,
            "error: `test` takes .sim files and folders, not `-` (standard input is for `run`: sim-runner run -)"
        );
        return exit::REJECTED;
    }
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

    if args.timeout.is_some() && args.mode != ModeArg::Parallel {
        let _ = writeln!(
            err,
            "error: --timeout is only for --mode parallel (deterministic runs end by virtual time)"
        );
        return exit::REJECTED;
    }
    // Fail before the suite runs when the report cannot be written: open
    // (without truncating) the file `--output` names.
    if let Some(file) = &args.output {
        if let Err(e) = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(file)
        {
            let _ = writeln!(err, "error: cannot write {}: {e}", file.display());
            return exit::REJECTED;
        }
    }
    let base = RunOptions {
        mode: if args.mode == ModeArg::Parallel {
            machine::Mode::Parallel
        } else {
            machine::Mode::Deterministic
        },
        timeout: args.timeout,
        ..RunOptions::default()
    };
    let (files, walk_errors) = collect(&args.paths);
    tracing::info!(scenarios = files.len(), "collected scenarios");
    let text_out = args.format == TestFormat::Text || args.output.is_some();
    let paint = crate::color::Paint::new(colors.out);

    let mut results = Vec::new();
    for (path, message) in &walk_errors {
        results.push(not_run(path, format!("cannot read: {message}")));
    }
    if text_out {
        for r in &results {
            let _ = writeln!(
                out,
                "{}  {}  {}",
                paint.fail("FAIL"),
                r.path.display(),
                r.verdict.detail
            );
        }
    }
    for path in &files {
        let result = judge_file_in(path, args.seeds, &base, err, colors.err);
        if text_out {
            let status = if result.verdict.passed {
                paint.pass("PASS")
            } else {
                paint.fail("FAIL")
            };
            let written = writeln!(
                out,
                "{status}  {}  {}",
                path.display(),
                result.verdict.detail
            )
            .and_then(|()| out.flush());
            if written.is_err() {
                // Nobody can read the rest (a closed pipe, a full disk): stop;
                // the output guard reports it.
                return exit::FAILED;
            }
        }
        results.push(result);
    }
    let passed = results.iter().filter(|r| r.verdict.passed).count();
    let failed = results.len() - passed;
    if text_out {
        let _ = writeln!(out, "{passed} passed, {failed} failed");
        let _ = out.flush();
    }
    if args.format != TestFormat::Text {
        let rendered = match args.format {
            TestFormat::Json => crate::test_report::json(&results),
            _ => crate::test_report::junit(&results),
        };
        match &args.output {
            Some(file) => {
                if let Err(e) = std::fs::write(file, rendered.as_bytes()) {
                    let _ = writeln!(err, "error: cannot write {}: {e}", file.display());
                    return exit::REJECTED;
                }
            }
            None => {
                let _ = out
                    .write_all(rendered.as_bytes())
                    .and_then(|()| out.flush());
            }
        }
    } else if let Some(file) = &args.output {
        // Text to a file: the lines again, without colour.
        let plain: String = results
            .iter()
            .map(|r| {
                format!(
                    "{}  {}  {}\n",
                    if r.verdict.passed { "PASS" } else { "FAIL" },
                    r.path.display(),
                    r.verdict.detail
                )
            })
            .chain(std::iter::once(format!(
                "{passed} passed, {failed} failed\n"
            )))
            .collect();
        if let Err(e) = std::fs::write(file, plain) {
            let _ = writeln!(err, "error: cannot write {}: {e}", file.display());
            return exit::REJECTED;
        }
    }

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

/// A file that could not be run at all.
fn not_run(path: &Path, detail: String) -> FileResult {
    FileResult {
        path: path.to_path_buf(),
        cases: vec![Case {
            seed: None,
            passed: false,
            detail: detail.clone(),
            report: None,
            time: Duration::ZERO,
        }],
        verdict: Verdict {
            passed: false,
            detail,
        },
    }
}

/// Judge one file: a `.bad.sim` input must be rejected with its listed
/// diagnostics; any other scenario runs with `seeds` seeds. Check-time
/// warnings of a scenario go to `err`.
pub fn judge_file(path: &Path, seeds: u64, err: &mut dyn Write, color: bool) -> FileResult {
    judge_file_in(path, seeds, &RunOptions::default(), err, color)
}

/// [`judge_file`] with the mode (and parallel timeout) of `base`: in
/// parallel mode the file runs `seeds` times, the seed unused.
pub fn judge_file_in(
    path: &Path,
    seeds: u64,
    base: &RunOptions,
    err: &mut dyn Write,
    color: bool,
) -> FileResult {
    let started = Instant::now();
    if crate::bad_sim::is_bad_sim(path) {
        let verdict = crate::bad_sim::judge(path);
        return FileResult {
            path: path.to_path_buf(),
            cases: vec![Case {
                seed: None,
                passed: verdict.passed,
                detail: verdict.detail.clone(),
                report: None,
                time: started.elapsed(),
            }],
            verdict,
        };
    }
    let program = match scenario::load_file(path) {
        Ok(program) => program,
        Err(LoadError::Io { message, .. }) => {
            return not_run(path, format!("cannot read: {message}"));
        }
        Err(LoadError::Rejected(errors)) => {
            let detail = match errors.split_first() {
                None => "rejected".to_string(),
                Some((first, [])) => format!("rejected: {first}"),
                Some((first, rest)) => format!("rejected: {first} (and {} more)", rest.len()),
            };
            return not_run(path, detail);
        }
    };
    let _ = err.write_all(crate::diagnostics::render_warnings(&program, color).as_bytes());
    let mut cases = Vec::new();
    // Parallel mode: N runs, no seeds (the OS schedules the threads).
    let parallel = base.mode == machine::Mode::Parallel;
    for k in 0..seeds.max(1) {
        let seed = program.seed.wrapping_add(k);
        let started = Instant::now();
        let (verdict, report) = judge_run(path, &program, seed, base);
        cases.push(Case {
            seed: (!parallel).then_some(seed),
            passed: verdict.passed,
            detail: verdict.detail,
            report,
            time: started.elapsed(),
        });
    }
    let verdict = match cases.iter().enumerate().find(|(_, c)| !c.passed) {
        Some((k, c)) if seeds > 1 && parallel => Verdict {
            passed: false,
            detail: format!("run {} of {seeds}: {}", k + 1, c.detail),
        },
        Some((_, c)) if seeds > 1 => Verdict {
            passed: false,
            detail: format!("seed {}: {}", c.seed.unwrap_or(0), c.detail),
        },
        Some((_, c)) => Verdict {
            passed: false,
            detail: c.detail.clone(),
        },
        None if seeds > 1 && parallel => Verdict {
            passed: true,
            detail: format!("{} (all {seeds} runs)", cases[0].detail),
        },
        None if seeds > 1 => Verdict {
            passed: true,
            detail: format!("{} (all {seeds} seeds)", cases[0].detail),
        },
        None => Verdict {
            passed: true,
            detail: cases[0].detail.clone(),
        },
    };
    FileResult {
        path: path.to_path_buf(),
        cases,
        verdict,
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
    judge_file(path, seeds, &mut std::io::sink(), false).verdict
}

/// Run one loaded scenario with one seed and judge the report.
fn judge_run(
    path: &Path,
    program: &scenario::Program,
    seed: u64,
    base: &RunOptions,
) -> (Verdict, Option<machine::RunReport>) {
    tracing::debug!(path = %path.display(), seed, "running scenario");
    let options = RunOptions {
        seed: Some(seed),
        ..base.clone()
    };
    let report = match panic::catch_unwind(AssertUnwindSafe(|| machine::run(program, &options))) {
        Ok(report) => report,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".to_string());
            return (
                Verdict {
                    passed: false,
                    detail: format!("engine panicked: {message}"),
                },
                None,
            );
        }
    };
    let verdict = if report.expectation_met {
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
    };
    (verdict, Some(report))
}
