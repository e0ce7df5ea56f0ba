//! `run --trace OUT.json`: the run's event stream as a Chrome trace event
//! file (the JSON object format), loadable in Perfetto and chrome://tracing.
//!
//! Layout: one process per virtual processor (`pid` = cpu, named `cpu N`)
//! with these tracks (`tid`):
//!
//! - 0 `contexts`: one complete (`X`) slice per context activation —
//!   `thread Worker`, `DPC SlowDpc`, `ISR OnInterrupt` — DPCs and ISRs
//!   nested over the thread they interrupted. Threads sharing a processor by
//!   time slices get one slice per stretch they run, cut at the engine's
//!   `ThreadPreempted` / `ThreadResumed` events (later stretches carry args
//!   `resumed: true`).
//! - 1 `locks`: one slice per hold, from `Acquired` to `Released`, named
//!   after the lock, and a `spin on L` slice before it when the acquisition
//!   spun.
//! - an `IRQL` counter per processor, and instant events for `DbgPrint`,
//!   DPCs queued, interrupts raised, and the bugcheck (or failed assertion)
//!   that stopped the run.
//!
//! A slice that would not nest inside the slices already on its track (a
//! lock released out of order) goes to an overflow track: `contexts (2)`
//! (tid 2), `locks (2)` (tid 3), and so on — Perfetto drops slices that
//! overlap without nesting.
//!
//! Timestamps are microseconds of virtual time, never decreasing on one
//! processor (an event the engine stamps earlier than its predecessor is
//! moved to the predecessor's time). Holds, spins and contexts
//! still open when the run stopped are closed at the end of the run (the
//! later of the last event and the report's virtual end time). The output
//! is built only from the stream, the program and the report, in stream
//! order: the same file and seed give the same bytes.

use machine::{Outcome, Program, RunReport};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use vcpu::{AcquireKind, ContextKind, Event, EventKind, LockFamily, LockId, LockMode, Nanos};

/// Track of a slice before lane assignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Track {
    Contexts,
    Locks,
}

impl Track {
    /// The `tid` of lane `lane` of this track: contexts 0, 2, 4 ...; locks 1, 3, 5 ...
    fn tid(self, lane: usize) -> u64 {
        let base = match self {
            Track::Contexts => 0,
            Track::Locks => 1,
        };
        2 * lane as u64 + base
    }

    fn lane_name(self, lane: usize) -> String {
        let name = match self {
            Track::Contexts => "contexts",
            Track::Locks => "locks",
        };
        if lane == 0 {
            name.to_string()
        } else {
            format!("{name} ({})", lane + 1)
        }
    }
}

/// A finished slice, before it gets its lane.
#[derive(Debug)]
struct Slice {
    cpu: u32,
    track: Track,
    start: Nanos,
    end: Nanos,
    name: String,
    cat: &'static str,
    args: Value,
}

/// A context slice not closed yet.
#[derive(Debug)]
struct OpenContext {
    serial: u32,
    label: String,
    start: Nanos,
    irql: u8,
    line: u32,
    resumed: bool,
}

/// A lock hold not released yet.
#[derive(Debug)]
struct OpenHold {
    lock: LockId,
    start: Nanos,
    family: LockFamily,
    mode: LockMode,
    how: AcquireKind,
    spun: Nanos,
    line: u32,
    by: String,
}

/// An acquisition asked for and not granted yet.
#[derive(Debug)]
struct Request {
    ctx: u32,
    lock: LockId,
    at: Nanos,
}

/// What one processor has open while the stream is walked.
#[derive(Debug, Default)]
struct CpuState {
    /// The thread running at the bottom of the stack, if any.
    thread: Option<OpenContext>,
    /// DPCs and ISRs over it, innermost last.
    nested: Vec<OpenContext>,
    holds: Vec<OpenHold>,
    requests: Vec<Request>,
}

/// The Chrome trace of one run (see the module documentation).
pub fn chrome_trace(program: &Program, report: &RunReport, events: &[Event]) -> Value {
    let cpus = report.cpus.max(program.cpus) as usize;
    let last_event = events.iter().map(|e| e.at).max().unwrap_or(0);
    let end = last_event.max(us_to_ns(report.virtual_time_us));

    let mut state: Vec<CpuState> = (0..cpus).map(|_| CpuState::default()).collect();
    // Labels of every context by serial (for the `by` of lock holds), and
    // which serials are threads. Only looked up, never iterated.
    let mut labels: BTreeMap<u32, String> = BTreeMap::new();
    let mut threads: BTreeSet<u32> = BTreeSet::new();
    let mut slices: Vec<Slice> = Vec::new();
    // Counters and instants, each with its time, in stream order.
    let mut points: Vec<(Nanos, Value)> = Vec::new();

    for cpu in 0..cpus {
        points.push((0, counter(cpu as u32, 0, 0)));
    }

    // The latest time seen on each processor: an event stamped earlier is
    // shown at that time instead (see `monotone`).
    let mut clocks: Vec<Nanos> = vec![0; cpus];
    for ev in events {
        let c = ev.cpu as usize;
        if c >= state.len() {
            state.resize_with(c + 1, CpuState::default);
            clocks.resize(c + 1, 0);
        }
        let ev = &monotone(ev, &mut clocks[c]);
        let st = &mut state[c];

        // A request is only pending while its context waits: any other
        // event of that context means it went on without the lock.
        if !matches!(
            ev.kind,
            EventKind::Acquired { .. } | EventKind::AcquireRequested { .. }
        ) {
            st.requests.retain(|r| r.ctx != ev.ctx);
        }

        // An event of a thread that is not the one we think is running on
        // this processor: a time-slice switch happened since its last event.
        if !matches!(ev.kind, EventKind::ContextStart { .. }) && st.nested.is_empty() {
            let running = st.thread.as_ref().map(|t| t.serial);
            if running != Some(ev.ctx) {
                if let Some(label) = labels.get(&ev.ctx).filter(|_| threads.contains(&ev.ctx)) {
                    if let Some(open) = st.thread.take() {
                        slices.push(context_slice(ev.cpu, open, ev.at));
                    }
                    st.thread = Some(OpenContext {
                        serial: ev.ctx,
                        label: label.clone(),
                        start: ev.at,
                        irql: 0,
                        line: ev.line,
                        resumed: true,
                    });
                }
            }
        }

        match &ev.kind {
            EventKind::ContextStart {
                kind, name, irql, ..
            } => {
                let label = context_label(*kind, name);
                labels.insert(ev.ctx, label.clone());
                let open = OpenContext {
                    serial: ev.ctx,
                    label: label.clone(),
                    start: ev.at,
                    irql: irql.0,
                    line: ev.line,
                    resumed: false,
                };
                if *kind == ContextKind::Thread {
                    threads.insert(ev.ctx);
                    // The thread that ran here before was switched out.
                    if let Some(previous) = st.thread.take() {
                        slices.push(context_slice(ev.cpu, previous, ev.at));
                    }
                    st.thread = Some(open);
                } else {
                    st.nested.push(open);
                }
            }
            // The switch-in was handled above: an event of a thread that is
            // not the one running here opens its next stretch.
            EventKind::ThreadResumed { .. } => {}
            EventKind::ThreadPreempted { .. } => {
                if st.thread.as_ref().is_some_and(|o| o.serial == ev.ctx) {
                    let open = st.thread.take().expect("checked above");
                    slices.push(context_slice(ev.cpu, open, ev.at));
                }
            }
            EventKind::ContextEnd { .. } => {
                if st.nested.last().is_some_and(|o| o.serial == ev.ctx) {
                    let open = st.nested.pop().expect("checked above");
                    slices.push(context_slice(ev.cpu, open, ev.at));
                } else if st.thread.as_ref().is_some_and(|o| o.serial == ev.ctx) {
                    let open = st.thread.take().expect("checked above");
                    slices.push(context_slice(ev.cpu, open, ev.at));
                }
            }
            EventKind::IrqlChanged { to, .. } => {
                points.push((ev.at, counter(ev.cpu, ev.at, to.0)));
            }
            EventKind::AcquireRequested { lock, .. } => {
                st.requests.push(Request {
                    ctx: ev.ctx,
                    lock: *lock,
                    at: ev.at,
                });
            }
            EventKind::Acquired {
                lock,
                family,
                mode,
                how,
                spun,
            } => {
                if let Some(i) = st
                    .requests
                    .iter()
                    .rposition(|r| r.ctx == ev.ctx && r.lock == *lock)
                {
                    st.requests.remove(i);
                }
                let lock_name = lock_name(program, *lock);
                if *spun > 0 {
                    let start = ev.at.saturating_sub(*spun);
                    slices.push(Slice {
                        cpu: ev.cpu,
                        track: Track::Locks,
                        start,
                        end: ev.at,
                        name: format!("spin on {lock_name}"),
                        cat: "spin",
                        args: json!({
                            "lock": lock_name,
                            "spun_us": ns_to_us(*spun),
                            "line": ev.line,
                        }),
                    });
                }
                let by = labels.get(&ev.ctx).cloned().unwrap_or_default();
                st.holds.push(OpenHold {
                    lock: *lock,
                    start: ev.at,
                    family: *family,
                    mode: *mode,
                    how: *how,
                    spun: *spun,
                    line: ev.line,
                    by,
                });
            }
            EventKind::Released { lock, .. } => {
                if let Some(i) = st.holds.iter().rposition(|h| h.lock == *lock) {
                    let hold = st.holds.remove(i);
                    slices.push(hold_slice(program, ev.cpu, hold, ev.at));
                }
            }
            EventKind::Converted { lock } => {
                if let Some(h) = st.holds.iter_mut().rev().find(|h| h.lock == *lock) {
                    // The hold goes on, now exclusive: split it so the
                    // slice's mode stays true.
                    let before = OpenHold {
                        lock: h.lock,
                        start: h.start,
                        family: h.family,
                        mode: h.mode,
                        how: h.how,
                        spun: h.spun,
                        line: h.line,
                        by: h.by.clone(),
                    };
                    h.start = ev.at;
                    h.mode = LockMode::Exclusive;
                    h.spun = 0;
                    h.line = ev.line;
                    slices.push(hold_slice(program, ev.cpu, before, ev.at));
                }
            }
            EventKind::Access { .. } => {}
            EventKind::Print { text } => {
                let shown = text.trim_end_matches(['\n', '\r']);
                points.push((
                    ev.at,
                    instant(
                        ev.cpu,
                        ev.at,
                        shown,
                        "print",
                        json!({ "text": text, "line": ev.line }),
                    ),
                ));
            }
            EventKind::DpcQueued { name, target } => {
                points.push((
                    ev.at,
                    instant(
                        ev.cpu,
                        ev.at,
                        &format!("DPC {name} queued"),
                        "dpc",
                        json!({ "dpc": &**name, "target_cpu": target, "line": ev.line }),
                    ),
                ));
            }
            EventKind::InterruptRaised { name, irql } => {
                points.push((
                    ev.at,
                    instant(
                        ev.cpu,
                        ev.at,
                        &format!("interrupt {name} raised"),
                        "interrupt",
                        json!({ "interrupt": &**name, "irql": irql.0 }),
                    ),
                ));
            }
        }
    }

    // Close what is still open at the end of the run: holds first, then
    // the spins of processors still waiting, then contexts innermost first.
    let cpus = state.len();
    for (cpu, st) in state.into_iter().enumerate() {
        let cpu = cpu as u32;
        for hold in st.holds {
            slices.push(hold_slice(program, cpu, hold, end));
        }
        let waiting = report
            .processors
            .iter()
            .any(|p| p.cpu == cpu && p.waiting.is_some());
        if waiting {
            for r in st.requests {
                let lock_name = lock_name(program, r.lock);
                slices.push(Slice {
                    cpu,
                    track: Track::Locks,
                    start: r.at,
                    end,
                    name: format!("spin on {lock_name}"),
                    cat: "spin",
                    args: json!({
                        "lock": lock_name,
                        "spun_us": ns_to_us(end - r.at),
                        "unfinished": true,
                    }),
                });
            }
        }
        for open in st.nested.into_iter().rev() {
            slices.push(context_slice(cpu, open, end));
        }
        if let Some(open) = st.thread {
            slices.push(context_slice(cpu, open, end));
        }
    }

    if let Some(b) = report
        .bugcheck
        .as_ref()
        .filter(|_| report.outcome == Outcome::Bugcheck)
    {
        let params: Vec<String> = b.params.iter().map(|p| format!("{p:#x}")).collect();
        points.push((
            end,
            json!({
                "name": b.name,
                "cat": "bugcheck",
                "ph": "i",
                "s": "g",
                "ts": ns_to_us(end),
                "pid": b.cpu,
                "tid": 0,
                "args": {
                    "code": format!("{:#X}", b.code),
                    "params": params,
                    "detail": b.detail,
                    "context": b.context,
                    "line": b.line,
                },
            }),
        ));
    }
    if let Some(a) = report
        .assertion
        .as_ref()
        .filter(|_| report.outcome == Outcome::AssertionFailed)
    {
        points.push((
            end,
            json!({
                "name": "ASSERTION FAILED",
                "cat": "assertion",
                "ph": "i",
                "s": "g",
                "ts": ns_to_us(end),
                "pid": a.cpu,
                "tid": 0,
                "args": {
                    "message": a.message,
                    "context": a.context,
                    "line": a.line,
                },
            }),
        ));
    }

    assemble(cpus, slices, points)
}

/// `ev`, stamped no earlier than the processor's previous event.
///
/// A processor's clock should never go back, but the engine can stamp an
/// event earlier than the one before it on the same processor (a thread
/// time-sliced out during `KeStallExecutionProcessor` resumes at its stall's
/// original end time). Slices in a trace must not end before they start, so
/// such an event is moved to the processor's latest time.
fn monotone(ev: &Event, latest: &mut Nanos) -> Event {
    let at = ev.at.max(*latest);
    *latest = at;
    Event { at, ..ev.clone() }
}

/// Lanes, metadata, and everything in time order (stable, so events at the
/// same time keep their stream order).
fn assemble(cpus: usize, slices: Vec<Slice>, points: Vec<(Nanos, Value)>) -> Value {
    // Lane assignment: in (start, longest first, creation) order, each slice
    // goes to the first lane of its track where it nests.
    let mut order: Vec<usize> = (0..slices.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (&slices[a], &slices[b]);
        (x.cpu, x.start, std::cmp::Reverse(x.end), a).cmp(&(
            y.cpu,
            y.start,
            std::cmp::Reverse(y.end),
            b,
        ))
    });
    // lanes[cpu][track] = per lane, the ends of the slices open on it.
    let mut lanes: Vec<[Vec<Vec<Nanos>>; 2]> = (0..cpus).map(|_| [vec![], vec![]]).collect();
    let mut lane_of = vec![0usize; slices.len()];
    for &i in &order {
        let s = &slices[i];
        let t = match s.track {
            Track::Contexts => 0,
            Track::Locks => 1,
        };
        let track_lanes = &mut lanes[s.cpu as usize][t];
        let mut chosen = None;
        for (n, stack) in track_lanes.iter_mut().enumerate() {
            while stack.last().is_some_and(|&e| e <= s.start) {
                stack.pop();
            }
            if stack.last().is_none_or(|&e| e >= s.end) {
                stack.push(s.end);
                chosen = Some(n);
                break;
            }
        }
        lane_of[i] = chosen.unwrap_or_else(|| {
            track_lanes.push(vec![s.end]);
            track_lanes.len() - 1
        });
    }

    let mut out: Vec<Value> = Vec::new();
    for (cpu, cpu_lanes) in lanes.iter().enumerate() {
        out.push(json!({
            "name": "process_name", "ph": "M", "pid": cpu, "tid": 0,
            "args": { "name": format!("cpu {cpu}") },
        }));
        out.push(json!({
            "name": "process_sort_index", "ph": "M", "pid": cpu, "tid": 0,
            "args": { "sort_index": cpu },
        }));
        for track in [Track::Contexts, Track::Locks] {
            let t = match track {
                Track::Contexts => 0,
                Track::Locks => 1,
            };
            let used = cpu_lanes[t].len().max(1);
            for lane in 0..used {
                let tid = track.tid(lane);
                out.push(json!({
                    "name": "thread_name", "ph": "M", "pid": cpu, "tid": tid,
                    "args": { "name": track.lane_name(lane) },
                }));
                out.push(json!({
                    "name": "thread_sort_index", "ph": "M", "pid": cpu, "tid": tid,
                    "args": { "sort_index": tid },
                }));
            }
        }
    }

    // Sorted by start time, and at equal starts the longer slice first, so
    // a parent always precedes the slices nested in it.
    let mut timed: Vec<(Nanos, std::cmp::Reverse<Nanos>, Value)> =
        Vec::with_capacity(slices.len() + points.len());
    for (i, s) in slices.into_iter().enumerate() {
        let tid = s.track.tid(lane_of[i]);
        timed.push((
            s.start,
            std::cmp::Reverse(s.end - s.start),
            json!({
                "name": s.name,
                "cat": s.cat,
                "ph": "X",
                "ts": ns_to_us(s.start),
                "dur": ns_to_us(s.end - s.start),
                "pid": s.cpu,
                "tid": tid,
                "args": s.args,
            }),
        ));
    }
    timed.extend(
        points
            .into_iter()
            .map(|(at, v)| (at, std::cmp::Reverse(0), v)),
    );
    timed.sort_by_key(|(at, dur, _)| (*at, *dur));
    out.extend(timed.into_iter().map(|(_, _, v)| v));

    json!({ "traceEvents": out, "displayTimeUnit": "ns" })
}

/// The trace as text: one trace event per line, so the file diffs and
/// greps well and stays loadable.
pub fn render(trace: &Value) -> String {
    let mut s = String::from("{\"traceEvents\":[\n");
    if let Some(events) = trace.get("traceEvents").and_then(Value::as_array) {
        for (i, e) in events.iter().enumerate() {
            if i > 0 {
                s.push_str(",\n");
            }
            s.push_str(&e.to_string());
        }
    }
    s.push_str("\n],\"displayTimeUnit\":\"ns\"}\n");
    s
}

fn context_slice(cpu: u32, open: OpenContext, end: Nanos) -> Slice {
    let mut args = Map::new();
    args.insert("irql".into(), json!(open.irql));
    args.insert("line".into(), json!(open.line));
    if open.resumed {
        args.insert("resumed".into(), json!(true));
    }
    let cat = match open.label.split_once(' ').map(|(k, _)| k) {
        Some("DPC") => "dpc",
        Some("ISR") => "isr",
        _ => "thread",
    };
    Slice {
        cpu,
        track: Track::Contexts,
        start: open.start,
        end: end.max(open.start),
        name: open.label,
        cat,
        args: Value::Object(args),
    }
}

fn hold_slice(program: &Program, cpu: u32, hold: OpenHold, end: Nanos) -> Slice {
    Slice {
        cpu,
        track: Track::Locks,
        start: hold.start,
        end: end.max(hold.start),
        name: lock_name(program, hold.lock),
        cat: "lock",
        args: json!({
            "mode": mode_name(hold.mode),
            "family": family_name(hold.family),
            "how": how_name(hold.how),
            "spun_us": ns_to_us(hold.spun),
            "line": hold.line,
            "by": hold.by,
        }),
    }
}

fn counter(cpu: u32, at: Nanos, irql: u8) -> Value {
    json!({
        "name": "IRQL", "cat": "irql", "ph": "C", "ts": ns_to_us(at), "pid": cpu,
        "args": { "IRQL": irql },
    })
}

fn instant(cpu: u32, at: Nanos, name: &str, cat: &str, args: Value) -> Value {
    json!({
        "name": name, "cat": cat, "ph": "i", "s": "t", "ts": ns_to_us(at),
        "pid": cpu, "tid": 0, "args": args,
    })
}

fn lock_name(program: &Program, lock: LockId) -> String {
    program
        .locks
        .get(lock.0 as usize)
        .map_or_else(|| format!("lock #{}", lock.0), |l| l.name.clone())
}

fn context_label(kind: ContextKind, name: &str) -> String {
    match kind {
        ContextKind::Thread => format!("thread {name}"),
        ContextKind::Dpc => format!("DPC {name}"),
        ContextKind::Isr => format!("ISR {name}"),
    }
}

fn mode_name(mode: LockMode) -> &'static str {
    match mode {
        LockMode::Exclusive => "exclusive",
        LockMode::Shared => "shared",
    }
}

fn family_name(family: LockFamily) -> &'static str {
    match family {
        LockFamily::Ordinary => "ordinary",
        LockFamily::Queued => "queued",
        LockFamily::ReaderWriter => "reader_writer",
        LockFamily::Interrupt => "interrupt",
    }
}

fn how_name(how: AcquireKind) -> &'static str {
    match how {
        AcquireKind::Raising => "raising",
        AcquireKind::AtDpcLevel => "at_dpc_level",
        AcquireKind::IsrEntry => "isr_entry",
        AcquireKind::Synchronize => "synchronize",
        AcquireKind::Interlocked => "interlocked",
    }
}

/// Virtual nanoseconds as trace microseconds.
fn ns_to_us(ns: Nanos) -> f64 {
    ns as f64 / 1000.0
}

/// The report's microseconds back to nanoseconds.
fn us_to_ns(us: f64) -> Nanos {
    if us.is_finite() && us > 0.0 {
        (us * 1000.0).round() as Nanos
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use machine::RunOptions;
    use std::path::Path;

    fn load(text: &str) -> Program {
        scenario::load_source("t.sim", text).expect("scenario loads")
    }

    fn traced(program: &Program, seed: Option<u64>) -> Value {
        let (report, events) = machine::run_recorded(
            program,
            &RunOptions {
                seed,
                ..RunOptions::default()
            },
        );
        chrome_trace(program, &report, &events)
    }

    fn events(trace: &Value) -> &Vec<Value> {
        trace["traceEvents"].as_array().expect("traceEvents array")
    }

    fn named<'a>(trace: &'a Value, ph: &str, name: &str) -> Vec<&'a Value> {
        events(trace)
            .iter()
            .filter(|e| e["ph"] == ph && e["name"] == name)
            .collect()
    }

    /// Two processors, a contended lock, a DPC, DbgPrint.
    const SMALL: &str = r#"scenario "small" { cpus 2; seed 3; expect clean; }
KSPIN_LOCK CounterLock;
_Guarded_by_(CounterLock) ULONG Counter;
VOID DoneDpc(PKDPC Dpc, PVOID DeferredContext, PVOID SystemArgument1, PVOID SystemArgument2) {
    DbgPrint("done\n");
}
KDPC Done(DoneDpc);
VOID Add(VOID) {
    KIRQL OldIrql;
    ULONG i;
    for (i = 0; i < 5; i++) {
        KeAcquireSpinLock(&CounterLock, &OldIrql);
        Counter = Counter + 1;
        KeReleaseSpinLock(&CounterLock, OldIrql);
    }
}
thread Left on cpu 0 { Add(); KeInsertQueueDpc(&Done, NULL, NULL); }
thread Right on cpu 1 { Add(); }
"#;

    const RECURSIVE: &str = r#"scenario "recursive" { cpus 1; verifier none; expect bugcheck SPIN_LOCK_ALREADY_OWNED; }
KSPIN_LOCK DeviceLock;
thread Worker {
    KIRQL A;
    KIRQL B;
    KeAcquireSpinLock(&DeviceLock, &A);
    KeAcquireSpinLock(&DeviceLock, &B);
}
"#;

    #[test]
    fn shape_is_a_chrome_trace_object() {
        let trace = traced(&load(SMALL), None);
        assert_eq!(trace["displayTimeUnit"], "ns");
        for e in events(&trace) {
            let ph = e["ph"].as_str().expect("ph");
            assert!(["M", "X", "C", "i"].contains(&ph), "{e}");
            assert!(e["pid"].is_u64(), "{e}");
            assert!(e["name"].is_string(), "{e}");
            if ph != "M" {
                assert!(e["ts"].is_f64(), "{e}");
            }
            if ph == "X" {
                assert!(e["dur"].as_f64().is_some_and(|d| d >= 0.0), "{e}");
                assert!(e["tid"].is_u64(), "{e}");
            }
        }
        // The rendered text is the same JSON.
        let reparsed: Value = serde_json::from_str(&render(&trace)).unwrap();
        assert_eq!(reparsed, trace);
    }

    #[test]
    fn one_process_per_cpu_with_named_tracks() {
        let trace = traced(&load(SMALL), None);
        let processes: Vec<(u64, &str)> = named(&trace, "M", "process_name")
            .iter()
            .map(|e| {
                (
                    e["pid"].as_u64().unwrap(),
                    e["args"]["name"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(processes, vec![(0, "cpu 0"), (1, "cpu 1")]);
        let tracks: Vec<(u64, u64, &str)> = named(&trace, "M", "thread_name")
            .iter()
            .map(|e| {
                (
                    e["pid"].as_u64().unwrap(),
                    e["tid"].as_u64().unwrap(),
                    e["args"]["name"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            tracks,
            vec![
                (0, 0, "contexts"),
                (0, 1, "locks"),
                (1, 0, "contexts"),
                (1, 1, "locks")
            ]
        );
    }

    #[test]
    fn contexts_locks_counters_and_instants() {
        let trace = traced(&load(SMALL), None);
        let left = named(&trace, "X", "thread Left");
        assert_eq!(left.len(), 1);
        assert_eq!(
            (left[0]["pid"].as_u64(), left[0]["tid"].as_u64()),
            (Some(0), Some(0))
        );
        assert_eq!(left[0]["args"]["irql"], 0);
        let dpc = named(&trace, "X", "DPC DoneDpc");
        assert_eq!(dpc.len(), 1);
        assert_eq!(dpc[0]["args"]["irql"], 2);

        let holds = named(&trace, "X", "CounterLock");
        assert_eq!(holds.len(), 10, "5 acquisitions per processor");
        for h in &holds {
            assert_eq!(h["tid"], 1);
            assert_eq!(h["args"]["mode"], "exclusive");
            assert_eq!(h["args"]["family"], "ordinary");
            assert!(h["args"]["spun_us"].is_f64());
        }
        // Every spin slice ends where a hold of the same lock starts.
        for spin in named(&trace, "X", "spin on CounterLock") {
            let end = spin["ts"].as_f64().unwrap() + spin["dur"].as_f64().unwrap();
            assert!(
                holds.iter().any(|h| h["pid"] == spin["pid"]
                    && (h["ts"].as_f64().unwrap() - end).abs() < 1e-6
                    && h["args"]["spun_us"] == spin["dur"]),
                "{spin}"
            );
        }

        let irql: Vec<u64> = events(&trace)
            .iter()
            .filter(|e| e["ph"] == "C" && e["pid"] == 0)
            .map(|e| e["args"]["IRQL"].as_u64().unwrap())
            .collect();
        assert_eq!(irql.first(), Some(&0));
        assert!(irql.contains(&2), "{irql:?}");

        let prints = named(&trace, "i", "done");
        assert_eq!(prints.len(), 1);
        assert_eq!(prints[0]["args"]["text"], "done\n");
        assert_eq!(named(&trace, "i", "DPC Done queued").len(), 1);
        assert!(events(&trace).iter().all(|e| e["cat"] != "bugcheck"));
    }

    #[test]
    fn bugcheck_is_an_instant_at_the_end() {
        let trace = traced(&load(RECURSIVE), None);
        let marks: Vec<&Value> = events(&trace)
            .iter()
            .filter(|e| e["cat"] == "bugcheck")
            .collect();
        assert_eq!(marks.len(), 1);
        let b = marks[0];
        assert_eq!(b["name"], "SPIN_LOCK_ALREADY_OWNED");
        assert_eq!(b["ph"], "i");
        assert_eq!(b["args"]["code"], "0xF");
        let params = b["args"]["params"].as_array().unwrap();
        assert_eq!(params.len(), 4);
        assert!(params.iter().all(|p| p.as_str().unwrap().starts_with("0x")));
        assert!(b["args"]["detail"].as_str().unwrap().contains("DeviceLock"));
        // It is the last event, and the hold still open is closed by then.
        assert_eq!(events(&trace).last(), Some(b));
        let hold = named(&trace, "X", "DeviceLock");
        assert_eq!(hold.len(), 1);
        let end = hold[0]["ts"].as_f64().unwrap() + hold[0]["dur"].as_f64().unwrap();
        assert!((end - b["ts"].as_f64().unwrap()).abs() < 1e-6);
    }

    #[test]
    fn same_file_and_seed_give_the_same_bytes() {
        let program = load(SMALL);
        let a = render(&traced(&program, Some(11)));
        let b = render(&traced(&load(SMALL), Some(11)));
        assert_eq!(a, b);
        assert_ne!(
            a,
            render(&traced(&program, Some(12))),
            "seed changes timing"
        );
    }

    #[test]
    fn tiny_trace_snapshot() {
        let program = load(
            r#"scenario "tiny" { cpus 1; expect clean; }
KSPIN_LOCK L;
_Guarded_by_(L) ULONG X;
thread T {
    KIRQL Old;
    KeAcquireSpinLock(&L, &Old);
    X = 1;
    KeReleaseSpinLock(&L, Old);
    DbgPrint("X = %u\n", X);
}
"#,
        );
        insta::assert_snapshot!(render(&traced(&program, None)));
    }

    /// (start ns, end ns) of every slice, per (pid, tid).
    fn tracks(trace: &Value) -> std::collections::BTreeMap<(u64, u64), Vec<(i64, i64)>> {
        let mut map = std::collections::BTreeMap::new();
        for e in events(trace).iter().filter(|e| e["ph"] == "X") {
            let ts = (e["ts"].as_f64().unwrap() * 1000.0).round() as i64;
            let dur = (e["dur"].as_f64().unwrap() * 1000.0).round() as i64;
            map.entry((e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap()))
                .or_insert_with(Vec::new)
                .push((ts, ts + dur));
        }
        map
    }

    /// Slices on one track never overlap without nesting, and a parent
    /// comes before the slices inside it (Perfetto's requirement).
    fn assert_nested(trace: &Value, what: &str) {
        for ((pid, tid), slices) in tracks(trace) {
            let mut open: Vec<i64> = Vec::new();
            let mut last_start = i64::MIN;
            for (start, end) in slices {
                assert!(
                    start >= last_start,
                    "{what}: cpu {pid} tid {tid} not in time order"
                );
                last_start = start;
                while open.last().is_some_and(|&e| e <= start) {
                    open.pop();
                }
                if let Some(&parent_end) = open.last() {
                    assert!(
                        end <= parent_end,
                        "{what}: cpu {pid} tid {tid}: slice {start}..{end} overlaps its parent ending at {parent_end}"
                    );
                }
                open.push(end);
            }
        }
    }

    #[test]
    fn every_repository_scenario_traces_with_proper_nesting() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let (files, errors) = crate::test_cmd::collect(&[root]);
        assert!(errors.is_empty(), "{errors:?}");
        assert!(files.len() > 50, "found {} scenarios", files.len());
        for file in files {
            let program = scenario::load_file(&file).expect("repository scenario loads");
            let what = file.display().to_string();
            for seed in [None, Some(1), Some(2)] {
                let (report, stream) = machine::run_recorded(
                    &program,
                    &RunOptions {
                        seed,
                        ..RunOptions::default()
                    },
                );
                let trace = chrome_trace(&program, &report, &stream);
                assert_nested(&trace, &what);
                if report.bugcheck.is_some() {
                    assert!(
                        events(&trace).iter().any(|e| e["cat"] == "bugcheck"),
                        "{what}: no bugcheck mark"
                    );
                }
            }
        }
    }

    #[test]
    fn time_sliced_threads_get_one_slice_per_turn() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../scenarios/regressions/time-slices-repeat.sim"),
        )
        .unwrap();
        let trace = traced(&scenario::load_source("ts.sim", &text).unwrap(), None);
        // The stream has no switch event, so only the turns in which a
        // thread emits an event are seen; each copy runs at least twice.
        for copy in 0..3 {
            let turns = named(&trace, "X", &format!("thread Worker#{copy}"));
            assert!(turns.len() >= 2, "Worker#{copy}: {} turns", turns.len());
            assert!(turns[0]["args"].get("resumed").is_none());
            assert!(turns[1..].iter().all(|t| t["args"]["resumed"] == true));
        }
        assert_nested(&trace, "time-slices-repeat");
    }

    #[test]
    fn unfinished_spins_of_a_deadlock_run_to_the_end() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../scenarios/rules/0x133-two-cpu-deadlock-bad.sim"),
        )
        .unwrap();
        let trace = traced(&scenario::load_source("dl.sim", &text).unwrap(), None);
        let spins: Vec<&Value> = events(&trace)
            .iter()
            .filter(|e| e["cat"] == "spin" && e["args"]["unfinished"] == true)
            .collect();
        assert_eq!(spins.len(), 2, "both processors spin until the watchdog");
        let end = events(&trace).last().unwrap()["ts"].as_f64().unwrap();
        for s in spins {
            let e = s["ts"].as_f64().unwrap() + s["dur"].as_f64().unwrap();
            assert!((e - end).abs() < 1e-6, "{s}");
        }
    }
}
