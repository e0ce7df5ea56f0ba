//! The text report: one run rendered in the spirit of WinDbg's `!analyze -v`.
//!
//! [`render`] is a pure function of the [`RunReport`]: the same report gives
//! the same bytes, with no colour and no dependence on the terminal, so the
//! output can be diffed, snapshot-tested and pasted into a bug report.
//! [`outcome_summary`] and [`expectation_text`] give the one-line forms the
//! `test` command prints.

use machine::report::{
    AssertionReport, BugcheckReport, CpuState, Frame, LockStatsReport, RunReport, WarningReport,
};
use machine::Outcome;
use std::fmt::Write;
use vcpu::bugcheck::code;
use vcpu::Irql;

/// Width of the banner and of wrapped paragraphs (WinDbg's 79 columns).
pub(crate) const WIDTH: usize = 79;

/// Render a run as the text report.
pub fn render(report: &RunReport) -> String {
    let mut out = String::new();
    match report.outcome {
        Outcome::Bugcheck => banner(&mut out, "Bugcheck Analysis"),
        Outcome::AssertionFailed => banner(&mut out, "Assertion Failure"),
        Outcome::Clean => banner(&mut out, "Run Summary"),
    }
    header(&mut out, report);
    out.push('\n');

    match (&report.bugcheck, &report.assertion) {
        (Some(bugcheck), _) => bugcheck_section(&mut out, report, bugcheck),
        (None, Some(assertion)) => assertion_section(&mut out, report, assertion),
        (None, None) => clean_section(&mut out, report),
    }

    processors_section(&mut out, &report.processors);
    warnings_section(&mut out, &report.warnings);
    output_section(&mut out, &report.output);
    locks_section(&mut out, &report.locks);
    if let Some(p) = &report.parallel {
        parallel_section(&mut out, p);
    }
    expectation_section(&mut out, report);
    out
}

/// Parallel mode: which core each processor thread ran on, its steps per
/// second of CPU time and its share of time at each IRQL.
fn parallel_section(out: &mut String, p: &machine::report::ParallelReport) {
    let _ = writeln!(out, "\nPARALLEL:  {:.1} ms wall time", p.wall_ms);
    for q in &p.processors {
        let core = q
            .core
            .map_or("unpinned".to_string(), |c| format!("core {c}"));
        let share: Vec<String> = q
            .irql_share
            .iter()
            .map(|(irql, f)| format!("IRQL {irql} {:.0}%", f * 100.0))
            .collect();
        let _ = writeln!(
            out,
            "  cpu {}  {core}  {} steps  {:.2} M steps/s  {}",
            q.cpu,
            q.steps,
            q.steps_per_cpu_second / 1e6,
            share.join(", ")
        );
    }
    if p.locks.is_empty() {
        return;
    }
    let width = p
        .locks
        .iter()
        .map(|l| l.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        out,
        "  wall-clock locks:\n    {:<width$}  acquisitions  contended  mean/max spin µs   mean/max hold µs",
        "name"
    );
    for l in &p.locks {
        let row = format!(
            "    {:<width$}  {:>12}  {:>9}  {:>7.2} / {:<8.2}  {:>7.2} / {:.2}",
            l.name,
            l.acquisitions,
            l.contended,
            l.mean_spin_us,
            l.max_spin_us,
            l.mean_hold_us,
            l.max_hold_us
        );
        let _ = writeln!(out, "{}", row.trim_end());
    }
}

/// How the run ended, on one line: `bugcheck 0xF SPIN_LOCK_ALREADY_OWNED`,
/// `bugcheck 0xC4(0x1001) DRIVER_VERIFIER_DETECTED_VIOLATION`,
/// `assertion_failed`, `clean`, `clean with 2 warnings (HOLD_TIME_EXCEEDED)`.
pub fn outcome_summary(report: &RunReport) -> String {
    match (&report.outcome, &report.bugcheck) {
        (Outcome::Bugcheck, Some(b)) => format!("bugcheck {} {}", code_text(b), b.name),
        (Outcome::Bugcheck, None) => "bugcheck".to_string(),
        (Outcome::AssertionFailed, _) => "assertion_failed".to_string(),
        (Outcome::Clean, _) if report.warnings.is_empty() => "clean".to_string(),
        (Outcome::Clean, _) => {
            let mut rules: Vec<&str> = Vec::new();
            for w in &report.warnings {
                if !rules.contains(&w.rule.as_str()) {
                    rules.push(&w.rule);
                }
            }
            let n = report.warnings.len();
            format!(
                "clean with {n} warning{} ({})",
                if n == 1 { "" } else { "s" },
                rules.join(", ")
            )
        }
    }
}

/// The expectation as written in the scenario (`bugcheck 0x10`,
/// `warning HOLD_TIME_EXCEEDED and clean`), or `clean (default)` when the
/// scenario has no `expect` line.
pub fn expectation_text(report: &RunReport) -> String {
    if report.expectations.is_empty() {
        "clean (default)".to_string()
    } else {
        report.expectations.join(", ")
    }
}

/// `0xF`, or `0xC4(0x1001)` for Driver Verifier violations, whose first
/// parameter names the rule.
fn code_text(b: &BugcheckReport) -> String {
    if b.code == code::DRIVER_VERIFIER_DETECTED_VIOLATION {
        format!("{:#X}({:#X})", b.code, b.params[0])
    } else {
        format!("{:#X}", b.code)
    }
}

fn banner(out: &mut String, title: &str) {
    let stars = "*".repeat(WIDTH);
    let inner = WIDTH - 2;
    let left = (inner.saturating_sub(title.len())) / 2;
    let line = format!("*{:left$}{title:<width$}*", "", width = inner - left);
    let _ = writeln!(out, "{stars}\n{line}\n{stars}");
}

fn header(out: &mut String, report: &RunReport) {
    let cpus = if report.cpus == 1 {
        "1 cpu".to_string()
    } else {
        format!("{} cpus", report.cpus)
    };
    // Version 1's header for the default strategy; others are named.
    let schedule = match (report.seed, report.strategy.as_deref(), report.depth) {
        (Some(seed), Some("timing") | None, _) => format!("seed {seed}, "),
        (Some(seed), Some(s), Some(d)) => format!("seed {seed}, strategy {s} depth {d}, "),
        (Some(seed), Some(s), None) => format!("seed {seed}, strategy {s}, "),
        (None, _, _) => String::new(),
    };
    let _ = writeln!(
        out,
        "scenario   {}  ({}, {schedule}{}, {})",
        report.scenario, report.file, report.mode, cpus
    );
    if let Some(title) = &report.title {
        let _ = writeln!(out, "title      {title}");
    }
}

/// The end of the run in prose: virtual time and statements executed.
fn run_length(report: &RunReport) -> String {
    let n = report.statements;
    format!(
        "{} µs virtual time, {n} statement{}",
        fmt_us(report.virtual_time_us),
        if n == 1 { "" } else { "s" }
    )
}

fn bugcheck_section(out: &mut String, report: &RunReport, b: &BugcheckReport) {
    let _ = writeln!(out, "{} ({:x})", b.name, b.code);
    paragraph(out, &sentence(&b.summary));
    out.push_str("\nArguments:\n");
    for (i, (param, meaning)) in b.params.iter().zip(&b.param_meanings).enumerate() {
        if meaning.is_empty() {
            let _ = writeln!(out, "Arg{}: {param:016x}", i + 1);
        } else {
            let _ = writeln!(out, "Arg{}: {param:016x}, {meaning}", i + 1);
        }
    }
    if !b.detail.is_empty() {
        out.push('\n');
        paragraph(out, &b.detail);
    }
    out.push('\n');
    let _ = writeln!(out, "BUGCHECK_CODE:  {}", code_text(b));
    where_it_happened(out, report, b.cpu, b.irql, &b.context, b.line, &b.backtrace);
    let _ = writeln!(out, "STOPPED_AT:  {}", run_length(report));
    stack(out, &b.backtrace);
    if !b.analysis.is_empty() {
        out.push_str("\nANALYSIS:\n");
        for line in &b.analysis {
            let _ = writeln!(out, "  {line}");
        }
    }
    if let Some(rule) = rule_of(b) {
        let _ = writeln!(out, "\nLEARN:  sim-runner explain {rule}");
    }
}

/// The catalog rule a bugcheck report shows. Where two rules share a stop
/// code, the report's own parameters and analysis tell them apart.
/// The catalog rule behind a bugcheck: the machine names it in the report
/// (`bugcheck.rule`); an empty name (a report built by hand) falls back to
/// the code.
fn rule_of(b: &BugcheckReport) -> Option<&str> {
    if !b.rule.is_empty() {
        return Some(b.rule.as_str());
    }
    let query = match (b.code, b.params[0]) {
        (0xC4, sub) => format!("0xC4(0x{sub:X})"),
        (code, _) => format!("0x{code:X}"),
    };
    machine::rules::find(&query).ok().map(|r| r.id.as_str())
}

fn assertion_section(out: &mut String, report: &RunReport, a: &AssertionReport) {
    out.push_str("ASSERTION FAILED\n");
    paragraph(out, &a.message);
    out.push('\n');
    where_it_happened(out, report, a.cpu, a.irql, &a.context, a.line, &a.backtrace);
    let _ = writeln!(out, "STOPPED_AT:  {}", run_length(report));
    stack(out, &a.backtrace);
    let rule = if a.message.starts_with("PAGED_CODE()") {
        "PAGED_CODE_ABOVE_APC_LEVEL"
    } else {
        "ASSERTION_FAILED"
    };
    let _ = writeln!(out, "\nLEARN:  sim-runner explain {rule}");
}

fn clean_section(out: &mut String, report: &RunReport) {
    if report
        .warnings
        .iter()
        .any(|w| w.rule == "TIME_LIMIT_REACHED")
    {
        // Cut short (the time limit, the step limit, or threads blocked for
        // ever): no bugcheck, but not a clean end either.
        let _ = writeln!(
            out,
            "Run ended without a bugcheck at {}, cut short: see TIME_LIMIT_REACHED below.",
            run_length(report)
        );
        return;
    }
    let _ = writeln!(out, "Run completed cleanly at {}.", run_length(report));
}

/// `PROCESSOR: 0   IRQL: 2 (DISPATCH_LEVEL)   CONTEXT: thread Worker`
/// and the faulting source line.
fn where_it_happened(
    out: &mut String,
    report: &RunReport,
    cpu: u32,
    irql: u8,
    context: &str,
    line: u32,
    backtrace: &[Frame],
) {
    let _ = writeln!(
        out,
        "PROCESSOR: {cpu}   IRQL: {}   CONTEXT: {context}",
        Irql(irql)
    );
    // The innermost frame names the file the line is in (a header the
    // scenario includes, or the scenario itself).
    match backtrace.first().filter(|f| f.line == line && f.line != 0) {
        Some(f) => {
            let _ = writeln!(out, "FAULTING_SOURCE_LINE:  {}", f.location);
        }
        None => {
            let _ = writeln!(out, "FAULTING_SOURCE_LINE:  {}:{line}", report.file);
        }
    }
}

fn stack(out: &mut String, frames: &[Frame]) {
    if frames.is_empty() {
        return;
    }
    out.push_str("\nSTACK_TEXT:\n");
    let width = frames
        .iter()
        .map(|f| f.routine.chars().count())
        .max()
        .unwrap_or(0);
    for f in frames {
        let _ = writeln!(out, "  {}  {}", pad(&f.routine, width), f.location);
    }
}

fn processors_section(out: &mut String, cpus: &[CpuState]) {
    if cpus.is_empty() {
        return;
    }
    out.push_str("\nPROCESSORS:\n");
    let rows: Vec<[String; 3]> = cpus
        .iter()
        .map(|c| {
            [
                format!("cpu {}", c.cpu),
                format!("IRQL {}", Irql(c.irql)),
                c.running.clone(),
            ]
        })
        .collect();
    let w: [usize; 3] =
        std::array::from_fn(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0));
    for (c, row) in cpus.iter().zip(&rows) {
        let mut line = format!(
            "  {}  {}  {}",
            pad(&row[0], w[0]),
            pad(&row[1], w[1]),
            row[2]
        );
        if let Some(waiting) = &c.waiting {
            line.push_str(&" ".repeat(w[2] - row[2].chars().count()));
            line.push_str("  ");
            line.push_str(waiting);
        }
        let _ = writeln!(out, "{line}");
        let indent = 2 + w[0] + 2;
        for h in &c.held {
            let at = match &h.file {
                Some(f) => format!("{f}:{}", h.line),
                None => format!("line {}", h.line),
            };
            let _ = writeln!(
                out,
                "{:indent$}holds {} ({}, taken at {at} by {})",
                "", h.lock, h.mode, h.by
            );
        }
    }
}

fn warnings_section(out: &mut String, warnings: &[WarningReport]) {
    if warnings.is_empty() {
        out.push_str("\nWARNINGS: none\n");
        return;
    }
    out.push_str("\nWARNINGS:\n");
    let rule_w = warnings
        .iter()
        .map(|w| w.rule.chars().count())
        .max()
        .unwrap_or(0);
    let lines: Vec<String> = warnings
        .iter()
        .map(|w| format!("line {}", w.line))
        .collect();
    let line_w = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    for (w, line) in warnings.iter().zip(&lines) {
        let _ = writeln!(
            out,
            "  {}  {}  {}",
            pad(&w.rule, rule_w),
            pad(line, line_w),
            w.message
        );
    }
}

fn output_section(out: &mut String, output: &[String]) {
    if output.is_empty() {
        return;
    }
    out.push_str("\nOUTPUT:\n");
    for entry in output {
        let entry = entry.strip_suffix('\n').unwrap_or(entry);
        for line in entry.split('\n') {
            let _ = writeln!(out, "  {line}");
        }
    }
}

fn locks_section(out: &mut String, locks: &[LockStatsReport]) {
    if locks.is_empty() {
        return;
    }
    out.push_str("\nLOCKS:\n");
    let head = [
        "name",
        "family",
        "acquisitions",
        "contended",
        "longest hold µs",
        "longest spin µs",
    ];
    let rows: Vec<[String; 6]> = locks
        .iter()
        .map(|l| {
            [
                l.name.clone(),
                l.family.clone(),
                l.acquisitions.to_string(),
                l.contended.to_string(),
                format!("{:.3}", l.longest_hold_us),
                format!("{:.3}", l.longest_spin_us),
            ]
        })
        .collect();
    let w: [usize; 6] = std::array::from_fn(|i| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([head[i].chars().count()])
            .max()
            .unwrap_or(0)
    });
    let format_row = |cells: [&str; 6]| {
        let mut line = String::new();
        for (i, cell) in cells.iter().enumerate() {
            line.push_str("  ");
            if i < 2 {
                line.push_str(&pad(cell, w[i]));
            } else {
                line.push_str(&pad_left(cell, w[i]));
            }
        }
        line.trim_end().to_string()
    };
    let _ = writeln!(out, "{}", format_row(head));
    for r in &rows {
        let _ = writeln!(
            out,
            "{}",
            format_row(std::array::from_fn(|i| r[i].as_str()))
        );
    }
}

fn expectation_section(out: &mut String, report: &RunReport) {
    let expected = expectation_text(report);
    out.push('\n');
    if report.expectation_met {
        let _ = writeln!(out, "EXPECTATION: {expected} — met");
    } else if let Some(why) = &report.expectation_failure {
        let _ = writeln!(out, "EXPECTATION: {expected} — NOT met: {why}");
    } else {
        let _ = writeln!(
            out,
            "EXPECTATION: {expected} — NOT met: the run ended {}",
            outcome_summary(report)
        );
    }
}

/// Microseconds in prose: three decimals with trailing zeros trimmed
/// (`12.3`, `0.125`, `40.0`).
fn fmt_us(us: f64) -> String {
    let s = format!("{us:.3}");
    let trimmed = s.trim_end_matches('0');
    if trimmed.ends_with('.') {
        format!("{trimmed}0")
    } else {
        trimmed.to_string()
    }
}

/// A one-line rule summary as a sentence: capital first letter, final period.
pub(crate) fn sentence(text: &str) -> String {
    let text = text.trim();
    let mut chars = text.chars();
    let mut s = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect::<String>(),
        None => return String::new(),
    };
    if !s.ends_with(['.', '!', '?']) {
        s.push('.');
    }
    s
}

/// Word-wrap `text` at [`WIDTH`] columns; explicit newlines are kept.
pub(crate) fn paragraph(out: &mut String, text: &str) {
    for source_line in text.lines() {
        let mut line = String::new();
        for word in source_line.split_whitespace() {
            if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > WIDTH {
                let _ = writeln!(out, "{line}");
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        let _ = writeln!(out, "{line}");
    }
}

fn pad(s: &str, width: usize) -> String {
    let n = s.chars().count();
    format!("{s}{}", " ".repeat(width.saturating_sub(n)))
}

fn pad_left(s: &str, width: usize) -> String {
    let n = s.chars().count();
    format!("{}{s}", " ".repeat(width.saturating_sub(n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microseconds_are_trimmed() {
        assert_eq!(fmt_us(12.3), "12.3");
        assert_eq!(fmt_us(40.0), "40.0");
        assert_eq!(fmt_us(0.125), "0.125");
        assert_eq!(fmt_us(1.0004), "1.0");
    }

    #[test]
    fn paragraphs_wrap_at_79_columns() {
        let mut out = String::new();
        paragraph(&mut out, &"word ".repeat(40));
        assert!(out.lines().all(|l| l.chars().count() <= WIDTH));
        assert_eq!(out.lines().count(), 3);
    }

    #[test]
    fn summaries_read_as_sentences() {
        assert_eq!(
            sentence("a spin lock was released"),
            "A spin lock was released."
        );
        assert_eq!(sentence("Done."), "Done.");
        assert_eq!(sentence(""), "");
    }

    #[test]
    fn banner_is_79_columns() {
        let mut out = String::new();
        banner(&mut out, "Bugcheck Analysis");
        assert!(out.lines().all(|l| l.len() == WIDTH), "{out}");
    }
}
