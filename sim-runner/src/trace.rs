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
//! # Streaming
//!
//! [`TraceWriter`] is a [`machine::Observer`]: it writes each event to the
//! file as soon as it is complete, so its memory does not grow with the
//! run. A counter or an instant is written when its event arrives; a slice
//! when it closes (so the file is not in time order: viewers sort it). The
//! writer keeps only bounded state: per processor the contexts, holds and
//! lock requests still open, the labels of live contexts (a label is
//! dropped when its context ends), and for lane assignment only the placed
//! slices that a slice still to close could overlap without nesting (those
//! that strictly contain the start of a slice still open on the track, and
//! on the locks track those ending after a pending request, whose spin may
//! start before them). A closed slice goes to the first lane of its track
//! where it nests with the retained slices (and, for a spin, starts after
//! the lane's pruned ones). A slice starting at the same virtual time as a
//! slice still open on its track is held back until that one is written,
//! so a parent precedes its children when their `ts` are equal (viewers
//! that sort by `ts` keep file order on ties); at most [`MAX_DEFERRED`]
//! are held per track. Metadata (`process_name`, `thread_name`, sort
//! indexes) is written when a processor or a lane is first used.
//!
//! Timestamps are microseconds of virtual time (`ts`, `dur`; the file says
//! `displayTimeUnit: ns`), never decreasing on one processor (an event the
//! engine stamps earlier than its predecessor is moved to the
//! predecessor's time). At the end ([`TraceWriter::finish`], given the run's
//! report) holds, spins and contexts still open are closed at the end of
//! the run (the later of the last event and the report's virtual end
//! time), and the bugcheck or failed assertion is the last event. The
//! output is built only from the stream, the program and the report, in
//! stream order: the same file and seed give the same bytes.
//!
//! # Size limit
//!
//! The file never grows past its limit ([`DEFAULT_LIMIT`], `--trace-limit`):
//! when the next event would not fit, the writer stops, writes a global
//! instant `trace truncated` (args: the limit and the virtual time reached)
//! and later closes the JSON; [`Finished::truncated_at`] tells the caller.
//! The run itself goes on unchanged.

use machine::{Outcome, Program, RunReport};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::io::{self, Write};
use vcpu::{AcquireKind, ContextKind, Event, EventKind, LockFamily, LockId, LockMode, Nanos};

/// Default size limit of a trace file in bytes (1 GiB).
pub const DEFAULT_LIMIT: u64 = 1 << 30;

/// Smallest accepted size limit in bytes (4 KiB): room for the header, the
/// truncation mark and the closing.
pub const MIN_LIMIT: u64 = 4 << 10;

/// Bytes kept free under the limit for the `trace truncated` instant and
/// the closing of the JSON (both are far shorter).
const RESERVE: u64 = 512;

/// Most slices held back on one track waiting for a parent with the same
/// start (see the module documentation); past it they are written anyway.
pub const MAX_DEFERRED: usize = 256;

const HEADER: &[u8] = b"{\"traceEvents\":[\n";
const CLOSING: &[u8] = b"\n],\"displayTimeUnit\":\"ns\"}\n";

/// Track of a slice before lane assignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Track {
    Contexts,
    Locks,
}

impl Track {
    fn index(self) -> usize {
        match self {
            Track::Contexts => 0,
            Track::Locks => 1,
        }
    }

    /// The `tid` of lane `lane` of this track: contexts 0, 2, 4 ...; locks 1, 3, 5 ...
    fn tid(self, lane: usize) -> u64 {
        2 * lane as u64 + self.index() as u64
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
    /// A spin: its start is not the start of a slice that was open.
    spin: bool,
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

/// One lane of a track: the placed slices (start, end ns) a slice still to
/// close could overlap, and the latest end of those dropped.
#[derive(Debug, Default)]
struct Lane {
    placed: Vec<(Nanos, Nanos)>,
    floor: Nanos,
}

/// A rendered slice held back until the slice with the same start that
/// will contain it is written.
#[derive(Debug)]
struct Deferred {
    start: Nanos,
    end: Nanos,
    line: Vec<u8>,
}

/// What one processor has open while the stream goes by.
#[derive(Debug, Default)]
struct CpuState {
    /// Latest event time on this processor (ns).
    clock: Nanos,
    /// The thread running at the bottom of the stack, if any.
    thread: Option<OpenContext>,
    /// DPCs and ISRs over it, innermost last.
    nested: Vec<OpenContext>,
    holds: Vec<OpenHold>,
    requests: Vec<Request>,
    /// Lanes of the contexts and locks tracks.
    lanes: [Vec<Lane>; 2],
    deferred: [Vec<Deferred>; 2],
}

impl CpuState {
    /// Start times (ns) of the slices still open on `track`.
    fn open_starts(&self, track: Track) -> Vec<Nanos> {
        match track {
            Track::Contexts => self
                .thread
                .iter()
                .chain(&self.nested)
                .map(|o| o.start)
                .collect(),
            Track::Locks => self.holds.iter().map(|h| h.start).collect(),
        }
    }
}

/// A live context: its label, and whether it is a thread.
#[derive(Debug)]
struct Live {
    label: String,
    thread: bool,
}

/// How much the writer holds in memory (see [`TraceWriter::retained`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retained {
    /// Contexts, holds and requests open, over all processors.
    pub open: usize,
    /// Labels of live contexts.
    pub labels: usize,
    /// Placed slices kept for lane assignment, over all lanes.
    pub placed: usize,
    /// Lanes in use, over all processors and tracks.
    pub lanes: usize,
    /// Slices held back for a parent with the same start.
    pub deferred: usize,
}

/// What [`TraceWriter::finish`] hands back.
#[derive(Debug)]
pub struct Finished<W> {
    /// The writer the trace went to (flushed).
    pub out: W,
    /// Bytes written, never more than the limit.
    pub bytes: u64,
    /// Virtual time (ns) of the first event left out when the file reached
    /// its limit; `None` when the trace is complete.
    pub truncated_at: Option<Nanos>,
}

/// Streams a run's Chrome trace to `W` as the events arrive (see the module
/// documentation). Give it to [`machine::run_observed`], then call
/// [`TraceWriter::finish`] with the report.
#[derive(Debug)]
pub struct TraceWriter<'p, W: Write> {
    program: &'p Program,
    out: W,
    /// Size limit in bytes.
    limit: u64,
    /// Bytes written so far.
    written: u64,
    /// No event line written yet (the next one needs no comma).
    first: bool,
    cpus: Vec<CpuState>,
    /// Live contexts by serial. Only looked up, never iterated.
    live: BTreeMap<u32, Live>,
    /// Latest event time over all processors (ns).
    last_at: Nanos,
    truncated: Option<Nanos>,
    error: Option<io::Error>,
}

impl<'p, W: Write> TraceWriter<'p, W> {
    /// A writer for a run of `program` into `out`, at most `limit` bytes
    /// (raised to [`MIN_LIMIT`] if smaller). Writes the header and the
    /// processors' metadata at once; a write error is kept and returned by
    /// [`TraceWriter::finish`].
    pub fn new(program: &'p Program, out: W, limit: u64) -> Self {
        let mut w = TraceWriter {
            program,
            out,
            limit: limit.max(MIN_LIMIT),
            written: 0,
            first: true,
            cpus: Vec::new(),
            live: BTreeMap::new(),
            last_at: 0,
            truncated: None,
            error: None,
        };
        w.raw(HEADER);
        w.ensure_cpu(program.cpus.saturating_sub(1), 0);
        w
    }

    /// What the writer holds in memory now: it stays bounded however long
    /// the run (for tests and diagnostics).
    pub fn retained(&self) -> Retained {
        let mut r = Retained {
            labels: self.live.len(),
            ..Retained::default()
        };
        for st in &self.cpus {
            r.open += usize::from(st.thread.is_some())
                + st.nested.len()
                + st.holds.len()
                + st.requests.len();
            for lanes in &st.lanes {
                r.lanes += lanes.len();
                r.placed += lanes.iter().map(|l| l.placed.len()).sum::<usize>();
            }
            r.deferred += st.deferred.iter().map(Vec::len).sum::<usize>();
        }
        r
    }

    /// Close what is still open at the end of the run, write the bugcheck
    /// or failed assertion, close the JSON and flush. Returns the first
    /// write error, if any.
    pub fn finish(mut self, report: &RunReport) -> io::Result<Finished<W>> {
        if self.writing() {
            self.close_all(report);
        }
        if self.error.is_none() {
            self.raw(CLOSING);
        }
        if self.error.is_none() {
            if let Err(e) = self.out.flush() {
                self.error = Some(e);
            }
        }
        match self.error {
            Some(e) => Err(e),
            None => Ok(Finished {
                out: self.out,
                bytes: self.written,
                truncated_at: self.truncated,
            }),
        }
    }

    fn writing(&self) -> bool {
        self.truncated.is_none() && self.error.is_none()
    }

    /// Write bytes outside the event list (header, closing).
    fn raw(&mut self, bytes: &[u8]) {
        if self.error.is_some() {
            return;
        }
        match self.out.write_all(bytes) {
            Ok(()) => self.written += bytes.len() as u64,
            Err(e) => self.error = Some(e),
        }
    }

    /// Write event lines together, or stop the trace at `at` if they do
    /// not fit under the limit. Returns whether they were written.
    fn lines(&mut self, at: Nanos, lines: &[&[u8]]) -> bool {
        if !self.writing() {
            return false;
        }
        let size: u64 = lines.iter().map(|l| l.len() as u64 + 2).sum();
        if self.written + size + RESERVE > self.limit {
            self.truncate(at);
            return false;
        }
        for line in lines {
            self.line(line);
        }
        self.error.is_none()
    }

    fn line(&mut self, line: &[u8]) {
        if !self.first {
            self.raw(b",\n");
        }
        self.first = false;
        self.raw(line);
    }

    /// The limit is reached at `at`: the last event says so.
    fn truncate(&mut self, at: Nanos) {
        self.truncated = Some(at);
        let mark = json!({
            "name": "trace truncated", "cat": "trace", "ph": "i", "s": "g",
            "ts": ns_to_us(at), "pid": 0, "tid": 0,
            "args": { "limit_bytes": self.limit, "at_us": ns_to_us(at) },
        })
        .to_string();
        self.line(mark.as_bytes());
        // Nothing more is kept: the rest of the run is not written.
        self.cpus = Vec::new();
        self.live = BTreeMap::new();
    }

    fn event_line(&mut self, at: Nanos, value: &Value) {
        let line = value.to_string();
        self.lines(at, &[line.as_bytes()]);
    }

    /// Make sure processor `cpu` exists, writing the metadata of each new
    /// one (its process, its lane-0 tracks) and its IRQL counter at 0.
    fn ensure_cpu(&mut self, cpu: u32, at: Nanos) {
        while self.cpus.len() <= cpu as usize && self.writing() {
            let n = self.cpus.len();
            self.cpus.push(CpuState {
                lanes: [vec![Lane::default()], vec![Lane::default()]],
                ..CpuState::default()
            });
            let mut lines = vec![
                json!({
                    "name": "process_name", "ph": "M", "pid": n, "tid": 0,
                    "args": { "name": format!("cpu {n}") },
                })
                .to_string(),
                json!({
                    "name": "process_sort_index", "ph": "M", "pid": n, "tid": 0,
                    "args": { "sort_index": n },
                })
                .to_string(),
            ];
            for track in [Track::Contexts, Track::Locks] {
                lines.extend(lane_metadata(n as u32, track, 0));
            }
            lines.push(counter(n as u32, 0, 0).to_string());
            let refs: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
            self.lines(at, &refs);
        }
    }

    /// One event of the run.
    fn event(&mut self, ev: &Event) {
        if !self.writing() {
            return;
        }
        self.ensure_cpu(ev.cpu, ev.at);
        if !self.writing() {
            return;
        }
        let c = ev.cpu as usize;
        // An event stamped earlier than its processor's previous one is
        // shown at that time (see `monotone`).
        let at = ev.at.max(self.cpus[c].clock);
        self.cpus[c].clock = at;
        self.last_at = self.last_at.max(at);
        let cpu = ev.cpu;
        let ctx = ev.ctx;

        // A request is only pending while its context waits: any other
        // event of that context means it went on without the lock.
        if !matches!(
            ev.kind,
            EventKind::Acquired { .. } | EventKind::AcquireRequested { .. }
        ) {
            self.cpus[c].requests.retain(|r| r.ctx != ctx);
        }

        // An event of a live thread that is not the one we think is running
        // on this processor: a time-slice switch happened since its last
        // event.
        if !matches!(ev.kind, EventKind::ContextStart { .. }) && self.cpus[c].nested.is_empty() {
            let running = self.cpus[c].thread.as_ref().map(|t| t.serial);
            if running != Some(ctx) {
                if let Some(live) = self.live.get(&ctx).filter(|l| l.thread) {
                    let label = live.label.clone();
                    let previous = self.cpus[c].thread.take();
                    self.cpus[c].thread = Some(OpenContext {
                        serial: ctx,
                        label,
                        start: at,
                        irql: 0,
                        line: ev.line,
                        resumed: true,
                    });
                    if let Some(open) = previous {
                        self.slice(context_slice(cpu, open, at));
                    }
                }
            }
        }

        match &ev.kind {
            EventKind::ContextStart {
                kind, name, irql, ..
            } => {
                let label = context_label(*kind, name);
                let thread = *kind == ContextKind::Thread;
                self.live.insert(
                    ctx,
                    Live {
                        label: label.clone(),
                        thread,
                    },
                );
                let open = OpenContext {
                    serial: ctx,
                    label,
                    start: at,
                    irql: irql.0,
                    line: ev.line,
                    resumed: false,
                };
                if thread {
                    // The thread that ran here before was switched out.
                    let previous = self.cpus[c].thread.replace(open);
                    if let Some(previous) = previous {
                        self.slice(context_slice(cpu, previous, at));
                    }
                } else {
                    self.cpus[c].nested.push(open);
                }
            }
            // The switch-in was handled above: an event of a thread that is
            // not the one running here opens its next stretch.
            EventKind::ThreadResumed { .. } => {}
            EventKind::ThreadPreempted { .. } => {
                let st = &mut self.cpus[c];
                if st.thread.as_ref().is_some_and(|o| o.serial == ctx) {
                    if let Some(open) = st.thread.take() {
                        self.slice(context_slice(cpu, open, at));
                    }
                }
            }
            EventKind::ContextEnd { .. } => {
                self.live.remove(&ctx);
                let st = &mut self.cpus[c];
                let closed = if st.nested.last().is_some_and(|o| o.serial == ctx) {
                    st.nested.pop()
                } else if st.thread.as_ref().is_some_and(|o| o.serial == ctx) {
                    st.thread.take()
                } else {
                    None
                };
                if let Some(open) = closed {
                    self.slice(context_slice(cpu, open, at));
                }
            }
            EventKind::IrqlChanged { to, .. } => {
                self.event_line(at, &counter(cpu, at, to.0));
            }
            EventKind::AcquireRequested { lock, .. } => {
                self.cpus[c].requests.push(Request {
                    ctx,
                    lock: *lock,
                    at,
                });
            }
            EventKind::Acquired {
                lock,
                family,
                mode,
                how,
                spun,
            } => {
                let st = &mut self.cpus[c];
                let requested = st
                    .requests
                    .iter()
                    .rposition(|r| r.ctx == ctx && r.lock == *lock)
                    .map(|i| st.requests.remove(i).at);
                let by = self
                    .live
                    .get(&ctx)
                    .map(|l| l.label.clone())
                    .unwrap_or_default();
                self.cpus[c].holds.push(OpenHold {
                    lock: *lock,
                    start: at,
                    family: *family,
                    mode: *mode,
                    how: *how,
                    spun: *spun,
                    line: ev.line,
                    by,
                });
                if *spun > 0 {
                    // The spin cannot have started before it was asked for.
                    let start = at.saturating_sub(*spun).max(requested.unwrap_or(0));
                    let lock_name = lock_name(self.program, *lock);
                    self.slice(Slice {
                        cpu,
                        track: Track::Locks,
                        start,
                        end: at,
                        name: format!("spin on {lock_name}"),
                        cat: "spin",
                        args: json!({
                            "lock": lock_name,
                            "spun_us": ns_to_us(*spun),
                            "line": ev.line,
                        }),
                        spin: true,
                    });
                }
            }
            EventKind::Released { lock, .. } => {
                let st = &mut self.cpus[c];
                if let Some(i) = st.holds.iter().rposition(|h| h.lock == *lock) {
                    let hold = st.holds.remove(i);
                    let slice = hold_slice(self.program, cpu, hold, at);
                    self.slice(slice);
                }
            }
            EventKind::Converted { lock } => {
                let st = &mut self.cpus[c];
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
                    h.start = at;
                    h.mode = LockMode::Exclusive;
                    h.spun = 0;
                    h.line = ev.line;
                    let slice = hold_slice(self.program, cpu, before, at);
                    self.slice(slice);
                }
            }
            EventKind::Access { .. } => {}
            EventKind::Print { text } => {
                let shown = text.trim_end_matches(['\n', '\r']);
                let v = instant(
                    cpu,
                    at,
                    shown,
                    "print",
                    json!({ "text": text, "line": ev.line }),
                );
                self.event_line(at, &v);
            }
            EventKind::DpcQueued { name, target } => {
                let v = instant(
                    cpu,
                    at,
                    &format!("DPC {name} queued"),
                    "dpc",
                    json!({ "dpc": &**name, "target_cpu": target, "line": ev.line }),
                );
                self.event_line(at, &v);
            }
            EventKind::InterruptRaised { name, irql } => {
                let v = instant(
                    cpu,
                    at,
                    &format!("interrupt {name} raised"),
                    "interrupt",
                    json!({ "interrupt": &**name, "irql": irql.0 }),
                );
                self.event_line(at, &v);
            }
            EventKind::ThreadBlocked { name, object } => {
                // The thread leaves its processor until it is released.
                let st = &mut self.cpus[c];
                if st.thread.as_ref().is_some_and(|o| o.serial == ctx) {
                    if let Some(open) = st.thread.take() {
                        self.slice(context_slice(cpu, open, at));
                    }
                }
                let v = instant(
                    cpu,
                    at,
                    &format!("{name} waits for {object}"),
                    "wait",
                    json!({ "thread": &**name, "object": &**object, "line": ev.line }),
                );
                self.event_line(at, &v);
            }
            EventKind::ThreadReleased {
                name,
                object,
                timed_out,
            } => {
                let what = if *timed_out {
                    "timed out on"
                } else {
                    "released from"
                };
                let v = instant(
                    cpu,
                    at,
                    &format!("{name} {what} {object}"),
                    "wait",
                    json!({ "thread": &**name, "object": &**object, "timed_out": timed_out }),
                );
                self.event_line(at, &v);
            }
            EventKind::TimerExpired { name } => {
                let v = instant(
                    cpu,
                    at,
                    &format!("timer {name} expired"),
                    "timer",
                    json!({ "timer": &**name }),
                );
                self.event_line(at, &v);
            }
            EventKind::WorkItemQueued { name } => {
                let v = instant(
                    cpu,
                    at,
                    &format!("work item {name} queued"),
                    "work_item",
                    json!({ "work_item": &**name, "line": ev.line }),
                );
                self.event_line(at, &v);
            }
        }
    }

    /// A slice closed: give it a lane and write it (or hold it back until
    /// the open slice with the same start that contains it is written).
    fn slice(&mut self, s: Slice) {
        if !self.writing() {
            return;
        }
        let Some(st) = self.cpus.get_mut(s.cpu as usize) else {
            return;
        };
        let t = s.track.index();
        let open = st.open_starts(s.track);
        // Placed slices a future slice could overlap without nesting: those
        // strictly containing the start of a slice still open (or this
        // one), and on the locks track those ending after a pending
        // request (its spin starts at or after the request).
        let earliest_request = match s.track {
            Track::Locks => st.requests.iter().map(|r| r.at).min(),
            Track::Contexts => None,
        };
        let keep = |(ps, pe): (Nanos, Nanos)| {
            open.iter()
                .chain(std::iter::once(&s.start))
                .any(|&o| ps < o && o < pe)
                || earliest_request.is_some_and(|r| pe > r)
        };
        let lanes = &mut st.lanes[t];
        for lane in lanes.iter_mut() {
            let floor = &mut lane.floor;
            lane.placed.retain(|&p| {
                let k = keep(p);
                if !k {
                    *floor = (*floor).max(p.1);
                }
                k
            });
        }
        let fits = |lane: &Lane| {
            (!s.spin || s.start >= lane.floor)
                && lane.placed.iter().all(|&(ps, pe)| {
                    pe <= s.start
                        || s.end <= ps
                        || (ps <= s.start && s.end <= pe)
                        || (s.start <= ps && pe <= s.end)
                })
        };
        let (lane, new_lane) = match lanes.iter().position(fits) {
            Some(n) => (n, false),
            None => {
                lanes.push(Lane::default());
                (lanes.len() - 1, true)
            }
        };
        lanes[lane].placed.push((s.start, s.end));

        let line = json!({
            "name": s.name,
            "cat": s.cat,
            "ph": "X",
            "ts": ns_to_us(s.start),
            "dur": ns_to_us(s.end - s.start),
            "pid": s.cpu,
            "tid": s.track.tid(lane),
            "args": s.args,
        })
        .to_string();
        if new_lane {
            let meta = lane_metadata(s.cpu, s.track, lane);
            let refs: Vec<&[u8]> = meta.iter().map(|l| l.as_bytes()).collect();
            if !self.lines(s.end, &refs) {
                return;
            }
        }
        let Some(st) = self.cpus.get_mut(s.cpu as usize) else {
            return;
        };
        let deferred = &mut st.deferred[t];
        if open.contains(&s.start) && deferred.len() < MAX_DEFERRED {
            deferred.push(Deferred {
                start: s.start,
                end: s.end,
                line: line.into_bytes(),
            });
            return;
        }
        if !self.lines(s.end, &[line.as_bytes()]) {
            return;
        }
        // Held-back slices whose start no open slice shares any more: their
        // parents are written; longest first so each precedes its children.
        let st = &mut self.cpus[s.cpu as usize];
        let held = std::mem::take(&mut st.deferred[t]);
        let (mut ready, wait): (Vec<Deferred>, Vec<Deferred>) =
            held.into_iter().partition(|d| !open.contains(&d.start));
        st.deferred[t] = wait;
        ready.sort_by_key(|d| (d.start, std::cmp::Reverse(d.end)));
        for d in ready {
            if !self.lines(d.end, &[&d.line]) {
                return;
            }
        }
    }

    /// The end of the run: close everything still open at `end`, then the
    /// bugcheck or assertion instant.
    fn close_all(&mut self, report: &RunReport) {
        let cpus = report.cpus.max(self.program.cpus);
        if cpus > 0 {
            self.ensure_cpu(cpus - 1, self.last_at);
        }
        let end = self.last_at.max(us_to_ns(report.virtual_time_us));
        // Holds first, then the spins of processors still waiting, then
        // contexts innermost first.
        for c in 0..self.cpus.len() {
            let cpu = c as u32;
            while let Some(hold) = self.cpus.get_mut(c).and_then(|st| st.holds.pop()) {
                let slice = hold_slice(self.program, cpu, hold, end);
                self.slice(slice);
            }
            let waiting = report
                .processors
                .iter()
                .any(|p| p.cpu == cpu && p.waiting.is_some());
            let requests = self
                .cpus
                .get_mut(c)
                .map(|st| std::mem::take(&mut st.requests))
                .unwrap_or_default();
            if waiting {
                for r in requests {
                    let lock_name = lock_name(self.program, r.lock);
                    self.slice(Slice {
                        cpu,
                        track: Track::Locks,
                        start: r.at,
                        end: end.max(r.at),
                        name: format!("spin on {lock_name}"),
                        cat: "spin",
                        args: json!({
                            "lock": lock_name,
                            "spun_us": ns_to_us(end.saturating_sub(r.at)),
                            "unfinished": true,
                        }),
                        spin: true,
                    });
                }
            }
            while let Some(open) = self.cpus.get_mut(c).and_then(|st| st.nested.pop()) {
                self.slice(context_slice(cpu, open, end));
            }
            if let Some(open) = self.cpus.get_mut(c).and_then(|st| st.thread.take()) {
                self.slice(context_slice(cpu, open, end));
            }
            // Nothing is open any more: whatever is still held back goes.
            for t in 0..2 {
                let mut held = self
                    .cpus
                    .get_mut(c)
                    .map(|st| std::mem::take(&mut st.deferred[t]))
                    .unwrap_or_default();
                held.sort_by_key(|d| (d.start, std::cmp::Reverse(d.end)));
                for d in held {
                    if !self.lines(d.end, &[&d.line]) {
                        return;
                    }
                }
            }
        }

        if let Some(b) = report
            .bugcheck
            .as_ref()
            .filter(|_| report.outcome == Outcome::Bugcheck)
        {
            let params: Vec<String> = b.params.iter().map(|p| format!("{p:#x}")).collect();
            let v = json!({
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
            });
            self.event_line(end, &v);
        }
        if let Some(a) = report
            .assertion
            .as_ref()
            .filter(|_| report.outcome == Outcome::AssertionFailed)
        {
            let v = json!({
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
            });
            self.event_line(end, &v);
        }
    }
}

impl<W: Write> machine::Observer for TraceWriter<'_, W> {
    fn observe(&mut self, ev: &Event) -> Option<verifier::Violation> {
        self.event(ev);
        None
    }
}

/// The `thread_name` and `thread_sort_index` lines of one lane.
fn lane_metadata(cpu: u32, track: Track, lane: usize) -> [String; 2] {
    let tid = track.tid(lane);
    [
        json!({
            "name": "thread_name", "ph": "M", "pid": cpu, "tid": tid,
            "args": { "name": track.lane_name(lane) },
        })
        .to_string(),
        json!({
            "name": "thread_sort_index", "ph": "M", "pid": cpu, "tid": tid,
            "args": { "sort_index": tid },
        })
        .to_string(),
    ]
}

/// A size in bytes as people say it: `1 GiB`, `512 MiB`, `4096 bytes`.
pub fn human_size(bytes: u64) -> String {
    for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        // Powers of two: a multiple has no bit under the unit's.
        if bytes >= size && bytes & (size - 1) == 0 {
            return format!("{} {unit}", bytes / size);
        }
    }
    format!("{bytes} bytes")
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
        spin: false,
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
        spin: false,
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
        AcquireKind::Kernel => "kernel",
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

    /// The trace of one run, written by a [`TraceWriter`] into memory.
    fn trace_bytes(
        program: &Program,
        seed: Option<u64>,
        limit: u64,
    ) -> (RunReport, Finished<Vec<u8>>) {
        let mut writer = TraceWriter::new(program, Vec::new(), limit);
        let report = machine::run_observed(
            program,
            &RunOptions {
                seed,
                ..RunOptions::default()
            },
            &mut [&mut writer],
        );
        let done = writer.finish(&report).expect("writing to memory");
        (report, done)
    }

    fn text(program: &Program, seed: Option<u64>) -> String {
        String::from_utf8(trace_bytes(program, seed, DEFAULT_LIMIT).1.out).expect("UTF-8")
    }

    fn traced(program: &Program, seed: Option<u64>) -> Value {
        serde_json::from_str(&text(program, seed)).expect("the trace is JSON")
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
        // One event per line.
        let text = text(&load(SMALL), None);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.first(), Some(&"{\"traceEvents\":["));
        assert_eq!(lines.last(), Some(&"],\"displayTimeUnit\":\"ns\"}"));
        assert_eq!(lines.len(), events(&trace).len() + 2);
        for line in &lines[1..lines.len() - 1] {
            let line = line.strip_suffix(',').unwrap_or(line);
            let _: Value = serde_json::from_str(line).expect("a line is one event");
        }
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
        let a = text(&program, Some(11));
        let b = text(&load(SMALL), Some(11));
        assert_eq!(a, b);
        assert_ne!(a, text(&program, Some(12)), "seed changes timing");
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
        insta::assert_snapshot!(text(&program, None));
    }

    /// (start ns, end ns) of every slice, per (pid, tid), in file order.
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

    /// Slices on one track never overlap without nesting, and at equal
    /// starts a parent comes before the slices inside it in the file: the
    /// check reads each track as Perfetto does, stably sorted by start
    /// (file order kept on ties).
    fn assert_nested(trace: &Value, what: &str) {
        for ((pid, tid), mut slices) in tracks(trace) {
            slices.sort_by_key(|&(start, _)| start);
            let mut open: Vec<i64> = Vec::new();
            for (start, end) in slices {
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
    fn nesting_check_can_fail() {
        let slice =
            |ts: f64, dur: f64| json!({"ph": "X", "pid": 0, "tid": 0, "ts": ts, "dur": dur});
        let good = json!({ "traceEvents": [slice(1.0, 5.0), slice(1.0, 2.0), slice(3.0, 1.0)] });
        assert_nested(&good, "good");
        for bad in [
            json!({ "traceEvents": [slice(1.0, 5.0), slice(4.0, 5.0)] }),
            // Equal starts, child first: a viewer nests them the wrong way.
            json!({ "traceEvents": [slice(1.0, 2.0), slice(1.0, 5.0)] }),
        ] {
            let caught = std::panic::catch_unwind(|| assert_nested(&bad, "bad"));
            assert!(caught.is_err(), "{bad}");
        }
    }

    #[test]
    fn every_repository_scenario_traces_with_proper_nesting() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let (files, errors) = crate::test_cmd::collect(&[root]);
        assert!(errors.is_empty(), "{errors:?}");
        assert!(files.len() > 50, "found {} scenarios", files.len());
        for file in files.into_iter().filter(|f| !crate::bad_sim::is_bad_sim(f)) {
            let program = scenario::load_file(&file).expect("repository scenario loads");
            let what = file.display().to_string();
            for seed in [None, Some(1), Some(2)] {
                let (report, done) = trace_bytes(&program, seed, DEFAULT_LIMIT);
                assert_eq!(done.truncated_at, None);
                let trace: Value =
                    serde_json::from_str(std::str::from_utf8(&done.out).expect("UTF-8"))
                        .unwrap_or_else(|e| panic!("{what}: not JSON: {e}"));
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

    /// A periodic 1 µs interrupt on the processor of an endless thread, for
    /// `duration`.
    fn ticking(duration: &str) -> Program {
        load(&format!(
            r#"scenario "ticks" {{ cpus 1; duration {duration}; expect clean; }}
KINTERRUPT I(Isr, 6);
_Guarded_by_(I) ULONG Ticks;
BOOLEAN Isr(PKINTERRUPT Interrupt, PVOID ServiceContext) {{
    Ticks++;
    return TRUE;
}}
interrupt I on cpu 0 every 1us;
thread Spin on cpu 0 {{ while (TRUE) {{ KeStallExecutionProcessor(1); }} }}
"#
        ))
    }

    /// Wraps a writer and records the most it ever held.
    #[derive(Debug)]
    struct Probe<'p> {
        writer: TraceWriter<'p, io::Sink>,
        most: Retained,
        events: u64,
    }

    impl machine::Observer for Probe<'_> {
        fn observe(&mut self, ev: &Event) -> Option<verifier::Violation> {
            machine::Observer::observe(&mut self.writer, ev);
            self.events += 1;
            let r = self.writer.retained();
            let m = &mut self.most;
            m.open = m.open.max(r.open);
            m.labels = m.labels.max(r.labels);
            m.placed = m.placed.max(r.placed);
            m.lanes = m.lanes.max(r.lanes);
            m.deferred = m.deferred.max(r.deferred);
            None
        }
    }

    fn probe(program: &Program) -> (Retained, u64, u64) {
        let mut p = Probe {
            writer: TraceWriter::new(program, io::sink(), u64::MAX),
            most: Retained::default(),
            events: 0,
        };
        let report = machine::run_observed(program, &RunOptions::default(), &mut [&mut p]);
        let done = p.writer.finish(&report).expect("sink");
        assert_eq!(done.truncated_at, None);
        (p.most, p.events, done.bytes)
    }

    #[test]
    fn retained_state_stays_flat_over_a_long_run() {
        let (short, short_events, short_bytes) = probe(&ticking("200us"));
        let (long, long_events, long_bytes) = probe(&ticking("5ms"));
        assert!(
            long_events > 20 * short_events / 2 && long_bytes > 10 * short_bytes,
            "the long run is really longer: {short_events} -> {long_events} events"
        );
        // Thousands of ISR activations, each a context slice and an
        // interrupt-lock hold, yet the writer holds what one moment needs.
        assert_eq!(long, short, "retained state grew with the run");
        assert!(long.placed <= 8, "{long:?}");
        assert!(long.labels <= 2, "{long:?}");
        assert!(long.open <= 6, "{long:?}");
        assert_eq!(long.lanes, 2, "{long:?}");
        assert_eq!(long.deferred, 0, "{long:?}");
    }

    #[test]
    fn a_trace_past_its_limit_is_cut_cleanly() {
        let program = ticking("2ms");
        let (full_report, full) = trace_bytes(&program, None, DEFAULT_LIMIT);
        assert_eq!(full.truncated_at, None);
        assert!(full.bytes > 64 << 10, "{}", full.bytes);
        let limit = 64 << 10;
        let (report, cut) = trace_bytes(&program, None, limit);
        // The run goes on and its report is unchanged.
        assert_eq!(
            serde_json::to_value(&report).unwrap(),
            serde_json::to_value(&full_report).unwrap()
        );
        let at = cut.truncated_at.expect("the limit was reached");
        assert!(at > 0 && at < 2_000_000, "{at}");
        assert_eq!(cut.bytes, cut.out.len() as u64);
        assert!(cut.bytes <= limit, "{} > {limit}", cut.bytes);
        assert!(cut.bytes > limit - 1024, "the limit is used: {}", cut.bytes);
        // Still one valid trace, the truncated prefix of the full one, then
        // the mark.
        let trace: Value = serde_json::from_slice(&cut.out).expect("JSON");
        let last = events(&trace).last().unwrap();
        assert_eq!(last["name"], "trace truncated");
        assert_eq!(last["args"]["limit_bytes"], limit);
        assert_eq!(last["ts"].as_f64(), Some(at as f64 / 1000.0));
        let n = events(&trace).len() - 1;
        let full: Value = serde_json::from_slice(&full.out).unwrap();
        assert_eq!(events(&full)[..n], events(&trace)[..n]);
        assert_nested(&trace, "truncated");
    }

    /// Accepts `room` bytes, then fails.
    #[derive(Debug)]
    struct Failing {
        room: usize,
    }

    impl Write for Failing {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if buf.len() > self.room {
                return Err(io::Error::other("disk full"));
            }
            self.room -= buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_write_error_is_returned_not_a_panic() {
        let program = load(SMALL);
        for room in [0, 10, 2000] {
            let mut writer = TraceWriter::new(&program, Failing { room }, DEFAULT_LIMIT);
            let report =
                machine::run_observed(&program, &RunOptions::default(), &mut [&mut writer]);
            let e = writer.finish(&report).expect_err("the write fails");
            assert_eq!(e.to_string(), "disk full");
        }
    }

    #[test]
    fn sizes_read_as_people_say_them() {
        assert_eq!(human_size(1 << 30), "1 GiB");
        assert_eq!(human_size(3 << 20), "3 MiB");
        assert_eq!(human_size(4096), "4 KiB");
        assert_eq!(human_size(4097), "4097 bytes");
    }
}
