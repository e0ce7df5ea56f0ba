//! `run --timeline`: a text picture of a run, drawn from its event stream
//! ([`machine::run_recorded`]) after the report.
//!
//! One block of three rows per processor, one column per slice of virtual
//! time:
//!
//! - `run`: what runs: a letter per thread, DPC or ISR (the legend says
//!   which), `.` idle. When several run within one column, the one highest
//!   up (ISR over DPC over thread) is shown, so a short ISR stays visible.
//! - `irql`: the highest IRQL reached in the column, in hex (`2` =
//!   DISPATCH_LEVEL, `D` = CLOCK_LEVEL), `.` for PASSIVE_LEVEL.
//! - `lock`: `~` while the processor spins on a lock, else the letter of
//!   the lock it holds (the innermost), blank when it holds none.
//!
//! The bugcheck is `X` in the `run` row of its processor, in the column of
//! its time. The width follows `COLUMNS`, else the terminal, else 100.

use crate::color::Paint;
use machine::RunReport;
use scenario::Program;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use vcpu::{ContextKind, Event, EventKind};

/// Width used when neither `COLUMNS` nor the terminal gives one.
pub const DEFAULT_WIDTH: usize = 100;
/// Narrowest timeline drawn (label included).
const MIN_WIDTH: usize = 40;
/// Width of the row labels (`cpu 0 run  `).
const LABEL: usize = 11;

/// The width to draw at: `COLUMNS` when it is a number, else the width of
/// the terminal on standard output, else [`DEFAULT_WIDTH`].
pub fn width() -> usize {
    if let Some(w) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|w| *w > 0)
    {
        return w;
    }
    terminal_size::terminal_size()
        .map(|(terminal_size::Width(w), _)| usize::from(w))
        .unwrap_or(DEFAULT_WIDTH)
}

/// What runs on a processor during a segment of time.
#[derive(Clone, Debug, Default)]
struct State {
    /// Contexts, innermost last: (kind, name).
    stack: Vec<(ContextKind, String)>,
    irql: u8,
    /// Held locks, innermost last.
    held: Vec<u32>,
}

/// A stretch of time with one state.
#[derive(Clone, Debug)]
struct Segment {
    from: u64,
    to: u64,
    context: Option<(ContextKind, String)>,
    irql: u8,
    lock: Option<u32>,
}

/// Per processor: its segments and its spins.
#[derive(Clone, Debug, Default)]
struct Lane {
    segments: Vec<Segment>,
    spins: Vec<(u64, u64)>,
}

fn rank(kind: ContextKind) -> u8 {
    match kind {
        ContextKind::Thread => 1,
        ContextKind::Dpc => 2,
        ContextKind::Isr => 3,
    }
}

fn kind_word(kind: ContextKind) -> &'static str {
    match kind {
        ContextKind::Thread => "thread",
        ContextKind::Dpc => "DPC",
        ContextKind::Isr => "ISR",
    }
}

/// Letters for names: the initial when free, else the next free letter.
#[derive(Debug, Default)]
struct Letters {
    used: BTreeMap<char, String>,
    by_name: BTreeMap<String, char>,
}

impl Letters {
    fn get(&mut self, key: &str, name: &str, upper: bool) -> char {
        if let Some(c) = self.by_name.get(key) {
            return *c;
        }
        let case = |c: char| {
            if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        };
        let initial = name
            .chars()
            .find(|c| c.is_ascii_alphabetic())
            .map(case)
            .unwrap_or('?');
        let alphabet = ('a'..='z').map(case).chain('0'..='9');
        let c = std::iter::once(initial)
            .chain(alphabet)
            .find(|c| !self.used.contains_key(c) && *c != 'X' && *c != '?')
            .unwrap_or('#');
        self.used.insert(c, key.to_string());
        self.by_name.insert(key.to_string(), c);
        c
    }
}

fn lanes(cpus: usize, events: &[Event], end: u64, deadlocked: bool) -> Vec<Lane> {
    let mut states = vec![State::default(); cpus];
    let mut since = vec![0u64; cpus];
    let mut lanes = vec![Lane::default(); cpus];
    let mut pending: Vec<Option<u64>> = vec![None; cpus];
    let close = |lane: &mut Lane, state: &State, from: u64, to: u64| {
        if to > from {
            lane.segments.push(Segment {
                from,
                to,
                context: state.stack.last().cloned(),
                irql: state.irql,
                lock: state.held.last().copied(),
            });
        }
    };
    for e in events {
        let c = e.cpu as usize;
        if c >= cpus {
            continue;
        }
        let at = e.at.min(end);
        close(&mut lanes[c], &states[c], since[c], at);
        since[c] = since[c].max(at);
        let s = &mut states[c];
        match &e.kind {
            EventKind::ContextStart {
                kind, name, irql, ..
            } => {
                s.stack.push((*kind, name.to_string()));
                s.irql = irql.0;
            }
            EventKind::ContextEnd { name, .. } => {
                if let Some(i) = s.stack.iter().rposition(|(_, n)| **n == **name) {
                    s.stack.remove(i);
                }
            }
            EventKind::ThreadPreempted { name } => {
                if let Some(i) = s
                    .stack
                    .iter()
                    .rposition(|(k, n)| *k == ContextKind::Thread && **n == **name)
                {
                    s.stack.remove(i);
                }
            }
            EventKind::ThreadResumed { name } => {
                s.stack.insert(0, (ContextKind::Thread, name.to_string()));
            }
            EventKind::IrqlChanged { to, .. } => s.irql = to.0,
            EventKind::AcquireRequested { .. } => pending[c] = Some(at),
            EventKind::Acquired { lock, spun, .. } => {
                pending[c] = None;
                if *spun > 0 {
                    lanes[c].spins.push((at.saturating_sub(*spun), at));
                }
                s.held.push(lock.0);
            }
            EventKind::Released { lock, .. } => {
                if let Some(i) = s.held.iter().rposition(|l| *l == lock.0) {
                    s.held.remove(i);
                }
            }
            _ => {}
        }
    }
    for c in 0..cpus {
        close(&mut lanes[c], &states[c], since[c], end);
        // A request never granted in a deadlocked run spins to the end.
        if let (true, Some(from)) = (deadlocked, pending[c]) {
            lanes[c].spins.push((from, end));
        }
    }
    lanes
}

fn irql_char(irql: u8) -> char {
    match irql {
        0 => '.',
        n => char::from_digit(u32::from(n.min(15)), 16)
            .unwrap_or('?')
            .to_ascii_uppercase(),
    }
}

fn micros(ns: u64) -> String {
    let us = ns as f64 / 1000.0;
    if ns < 1000 {
        format!("{ns}ns")
    } else if us >= 100.0 {
        format!("{us:.0}us")
    } else {
        format!("{us:.1}us")
    }
}

/// Draw the timeline of a run `width` characters wide.
pub fn render(
    program: &Program,
    report: &RunReport,
    events: &[Event],
    width: usize,
    paint: Paint,
) -> String {
    let width = width.max(MIN_WIDTH);
    let cols = width - LABEL;
    let cpus = report.cpus.max(1) as usize;
    // The run's end: its last event, or the report's virtual time (a
    // deadlock is declared after the last step).
    let reported = (report.virtual_time_us * 1000.0).round() as u64;
    let end = events
        .iter()
        .map(|e| e.at)
        .max()
        .unwrap_or(0)
        .max(reported)
        .max(1);
    let deadlocked = report
        .bugcheck
        .as_ref()
        .is_some_and(|b| b.code == vcpu::bugcheck::code::DPC_WATCHDOG_VIOLATION);
    let lanes = lanes(cpus, events, end, deadlocked);
    // Each column covers `step` ns; the last one ends at or after `end`.
    let step = end.div_ceil(cols as u64).max(1);

    let mut contexts = Letters::default();
    let mut locks = Letters::default();
    let mut legend_contexts: Vec<(char, String)> = Vec::new();
    let mut legend_locks: Vec<(char, String)> = Vec::new();

    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}",
        paint.bold(&format!(
            "Timeline: 0 to {} of virtual time, {} per column",
            micros(end),
            micros(step)
        ))
    );
    // Time axis: a tick every 10 columns, labelled where the label fits.
    let mut labels = vec![' '; cols];
    let mut ticks = vec!['-'; cols];
    let mut next_free = 0;
    for col in (0..cols).step_by(10) {
        ticks[col] = '|';
        let text = micros(col as u64 * step);
        if col >= next_free && col + text.len() <= cols {
            for (i, ch) in text.chars().enumerate() {
                labels[col + i] = ch;
            }
            next_free = col + text.len() + 1;
        }
    }
    let _ = writeln!(
        s,
        "{:LABEL$}{}",
        "",
        labels.iter().collect::<String>().trim_end()
    );
    let _ = writeln!(s, "{:LABEL$}{}", "time", ticks.iter().collect::<String>());

    for (cpu, lane) in lanes.iter().enumerate() {
        let mut run = String::with_capacity(cols);
        let mut irql = String::with_capacity(cols);
        let mut lock = String::with_capacity(cols);
        for col in 0..cols {
            let (t0, t1) = (col as u64 * step, (col as u64 + 1) * step);
            let inside = lane
                .segments
                .iter()
                .filter(|g| g.from < t1 && g.to > t0)
                .collect::<Vec<_>>();
            let top = inside
                .iter()
                .filter_map(|g| g.context.as_ref())
                .max_by_key(|(k, _)| rank(*k));
            let run_ch = match top {
                None => '.',
                Some((kind, name)) => {
                    let key = format!("{}:{name}", kind_word(*kind));
                    let c = contexts.get(&key, name, *kind == ContextKind::Thread);
                    if !legend_contexts.iter().any(|(l, _)| *l == c) {
                        legend_contexts.push((c, format!("{} {name}", kind_word(*kind))));
                    }
                    c
                }
            };
            run.push(run_ch);
            let max_irql = inside.iter().map(|g| g.irql).max().unwrap_or(0);
            irql.push(irql_char(max_irql));
            let spinning = lane.spins.iter().any(|(a, b)| *a < t1 && *b > t0);
            let held = inside.iter().rev().find_map(|g| g.lock);
            let lock_ch = if spinning {
                '~'
            } else if let Some(l) = held {
                let name = program
                    .locks
                    .get(l as usize)
                    .map(|d| d.name.clone())
                    .unwrap_or_else(|| format!("lock{l}"));
                let c = locks.get(&name, &name, false);
                if !legend_locks.iter().any(|(x, _)| *x == c) {
                    legend_locks.push((c, name));
                }
                c
            } else {
                ' '
            };
            lock.push(lock_ch);
        }
        let mut run: Vec<char> = run.chars().collect();
        let bugcheck_here = report.bugcheck.as_ref().filter(|b| b.cpu as usize == cpu);
        if bugcheck_here.is_some() {
            // The bugcheck ends the run: its column is the last one drawn.
            let col = (((end - 1) / step) as usize).min(cols - 1);
            run[col] = 'X';
        }
        let run: String = run.into_iter().collect();
        let run = if paint.is_on() {
            run.replace('X', &paint.fail("X"))
        } else {
            run
        };
        let lock = if paint.is_on() {
            lock.replace('~', &paint.warn("~"))
        } else {
            lock
        };
        let _ = writeln!(s, "{:LABEL$}{run}", format!("cpu {cpu} run"));
        let _ = writeln!(s, "{:LABEL$}{irql}", "      irql");
        let _ = writeln!(s, "{:LABEL$}{}", "      lock", lock.trim_end());
    }

    s.push_str(&paint.dim("Legend:"));
    s.push('\n');
    let mut items: Vec<String> = legend_contexts
        .iter()
        .map(|(c, what)| format!("{c} = {what}"))
        .collect();
    items.push(". = idle".to_string());
    let _ = writeln!(s, "  run   {}", items.join(", "));
    let _ = writeln!(
        s,
        "  irql  highest IRQL in the column, hex (2 = DISPATCH_LEVEL, D = CLOCK_LEVEL); . = PASSIVE_LEVEL"
    );
    let mut items: Vec<String> = legend_locks
        .iter()
        .map(|(c, name)| format!("{c} = {name} held"))
        .collect();
    items.push("~ = spinning".to_string());
    let _ = writeln!(s, "  lock  {}", items.join(", "));
    if let Some(b) = &report.bugcheck {
        let _ = writeln!(
            s,
            "  X     bugcheck {:#X} ({}) on cpu {}",
            b.code, b.name, b.cpu
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn timeline_of(file: &str, width: usize) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(file);
        let program = scenario::load_file(&path).expect("scenario loads");
        let (report, events) = machine::run_recorded(&program, &machine::RunOptions::default());
        render(&program, &report, &events, width, Paint::new(false))
    }

    #[test]
    fn deadlock_timeline() {
        let t = timeline_of("scenarios/rules/0x133-two-cpu-deadlock-bad.sim", 100);
        assert!(t.lines().all(|l| l.chars().count() <= 100), "{t}");
        assert!(t.contains('~'), "spins shown: {t}");
        assert!(t.contains('X'), "bugcheck shown: {t}");
        insta::assert_snapshot!(t);
    }

    #[test]
    fn isr_dpc_timeline_is_width_aware() {
        let file = "scenarios/tutorial/02-isr-dpc-synchronize.sim";
        let wide = timeline_of(file, 120);
        let narrow = timeline_of(file, 60);
        assert!(wide.lines().all(|l| l.chars().count() <= 120), "{wide}");
        assert!(
            narrow
                .lines()
                .all(|l| l.chars().count() <= 60 || l.starts_with("  ")),
            "{narrow}"
        );
        assert!(wide.contains("ISR "), "{wide}");
        insta::assert_snapshot!(narrow);
    }
}
