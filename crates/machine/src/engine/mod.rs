//! The deterministic engine: N virtual processors driven by one OS thread in
//! virtual time.
//!
//! Each step picks the busy processor with the smallest clock (ties broken by
//! the seeded RNG), runs its safe point (deliver an interrupt, drain a DPC,
//! switch threads at the end of a time slice) and then one statement or one
//! spin iteration of the context on top of its stack. Every random choice —
//! statement cost jitter, tie breaks, thread placement — comes from one
//! ChaCha RNG seeded by the scenario seed, so a file and a seed give the same
//! run, byte for byte.
//!
//! The state comes in groups: per-processor state (`cpus`, and `held`, the
//! locks each processor holds), `Shared` state every processor sees (data,
//! locks, kernel objects, waiters, work queue, handles, pool), the
//! `Driver` that decides who runs (scheduler, arrivals, step counts, mode,
//! end time) and the `Outcome` (verifier, statistics, observers, output,
//! warnings, the `Stop` record). A run that stops — a bugcheck, a failed
//! assertion, a run-time error — is `Err(Halt)`: the stop is recorded
//! once for the report and every caller unwinds with `?`.
//!
//! Submodules: [`exec`] interprets compiled code, [`kernel`] implements the
//! kernel routines, [`locks`] keeps the lock table and per-processor holds,
//! [`ids`] the typed ids of the machine's tables, [`words`] the lock words
//! and data cells (models and plain cells in deterministic mode, the real
//! `spinlocks::raw` locks and shared atomics in parallel mode), [`finish`]
//! turns the final state into a [`RunReport`](crate::RunReport),
//! [`parallel`] drives one OS thread per processor.

mod exec;
mod finish;
mod ids;
mod kernel;
mod locks;
pub mod parallel;
mod words;

use crate::report::RunReport;
use crate::sched::{new_scheduler, Scheduler, Strategy};
use ids::{CpuId, DpcId, InterruptId, ListId, ObjectId};
use locks::{Held, LockState};
use scenario::program::{Program, RoutineId};
use std::collections::VecDeque;
use std::sync::Arc;
use tracing::{debug, info, trace};
use vcpu::bugcheck::code;
use vcpu::processor::{Context, PendingInterrupt};
use vcpu::{Bugcheck, ContextKind, Event, EventKind, Importance, Irql, Nanos, Processor};
use verifier::{LockStats, Observer, Verifier};

/// Cost of one statement: base plus seeded jitter (ns).
pub const STATEMENT_NS: Nanos = 100;
pub const STATEMENT_JITTER_NS: Nanos = 20;
/// Cost of one spin iteration on a held lock (ns).
pub const SPIN_NS: Nanos = 50;
pub const SPIN_JITTER_NS: Nanos = 10;
/// Time slice of threads sharing a processor below DISPATCH_LEVEL.
pub const QUANTUM_NS: Nanos = 20_000;
/// Virtual-time limit of a run without `duration`.
pub const DEFAULT_LIMIT_NS: Nanos = 100_000_000;
/// Steps (statements and spin iterations over all processors) after which a
/// run is cut off whatever its virtual time, so no run can take minutes.
pub const MAX_STEPS: u64 = 50_000_000;
/// Deepest call nesting before the kernel stack "overflows".
pub const MAX_CALL_DEPTH: usize = 256;
/// A stall advances at most this much per step, so interrupts can arrive.
const STALL_CHUNK_NS: Nanos = 1_000;

/// `access` of a 0xD1 (its P3): a read, a write, an instruction fetch.
const READ: u64 = 0;
const WRITE: u64 = 1;
const EXECUTE: u64 = 8;

/// A local variable's value.
#[derive(Clone, Debug)]
enum Value {
    Int(i64),
    /// A KLOCK_QUEUE_HANDLE.
    Handle(Option<locks::QueueHandle>),
}

/// What to do when a frame returns, besides popping it.
#[derive(Clone, Debug)]
enum OnReturn {
    /// Push the result (if any) for the caller.
    Normal { push_result: bool },
    /// End of the context's routine.
    ContextEnd,
    /// End of a KeSynchronizeExecution callback.
    Synchronize {
        interrupt: InterruptId,
        old_irql: Irql,
        push_result: bool,
    },
    /// End of a cancel routine IoCancelIrp called (object `irp`, the
    /// routine's address): 0x11B if it still holds the cancel spin lock.
    CancelRoutine {
        irp: ObjectId,
        routine: u64,
        push_result: bool,
    },
}

#[derive(Clone, Debug)]
struct Frame {
    routine: RoutineId,
    pc: u32,
    locals: Vec<Value>,
    line: u32,
    stack_base: usize,
    on_return: OnReturn,
    /// Events of `KEVENT` locals this activation took (objects).
    local_events: Vec<u32>,
}

#[derive(Clone, Debug)]
struct TryRecord {
    depth: usize,
    handler: u32,
    stack_len: usize,
}

/// A blocking operation in progress (the context spins or stalls).
#[derive(Clone, Debug)]
enum Pending {
    /// Spinning on a lock; `then` finishes the call once it is granted.
    Acquire(locks::AcquireOp),
    /// A queued release waiting for its successor to link.
    QueuedRelease(locks::QueuedReleaseOp),
    /// KeStallExecutionProcessor until this time.
    Stall { until: Nanos },
    /// A thread blocked in KeWaitForSingleObject; `result` is the status
    /// the wait returns once the thread is released (pushed if `push`).
    Wait { result: Option<i64>, push: bool },
    /// KeFlushQueuedDpcs: waits until each DPC object queued at the call
    /// (with its count of completed runs then) has run since, or is neither
    /// queued nor running (removed).
    Flush { dpcs: Vec<(DpcId, u64)> },
}

/// The interpreter state of one context (the processor's context payload).
#[derive(Debug)]
struct Exec {
    name: Arc<str>,
    frames: Vec<Frame>,
    stack: Vec<i64>,
    tries: Vec<TryRecord>,
    pending: Option<Pending>,
    /// The lock epoch at the last poll of `pending` that made no progress:
    /// the context is stuck while no lock has changed since.
    stuck_at: Option<u64>,
    /// For a thread: has ContextStart been emitted.
    started: bool,
    /// Stopped inside a statement, right after reading shared data: other
    /// processors may run before the statement goes on (so an unguarded
    /// read-modify-write can lose an update), but no safe point is taken.
    mid_statement: bool,
    /// Random and pct: the last shared read of this context (routine, op
    /// index, variable, the variable's write version when read).
    last_read: Option<(RoutineId, u32, u32, u64)>,
    /// Random and pct: re-read `var` at the same place with nothing written
    /// since (version): the context only waits until someone writes it.
    data_wait: Option<(u32, u64)>,
    /// For a DPC: its object; for an ISR: its interrupt.
    object: u32,
    /// IRQL the ISR was entered at (SynchronizeIrql).
    entry_irql: Irql,
    /// A system worker thread running a work item: its processor.
    worker: Option<CpuId>,
    /// For a worker: the work item it runs (queued until the routine starts).
    work_item: Option<ObjectId>,
}

impl Exec {
    fn new(name: Arc<str>, object: u32) -> Self {
        Exec {
            name,
            frames: vec![],
            stack: vec![],
            tries: vec![],
            pending: None,
            stuck_at: None,
            started: false,
            mid_statement: false,
            last_read: None,
            data_wait: None,
            object,
            entry_irql: Irql::PASSIVE,
            worker: None,
            work_item: None,
        }
    }
}

/// Per-DPC-object state.
#[derive(Clone, Debug, Default)]
struct DpcState {
    importance: Importance,
    target: Option<CpuId>,
    queued_on: Option<CpuId>,
    /// Its routine (None until KeInitializeDpc for a KDPC in data).
    routine: Option<RoutineId>,
    /// DeferredContext, and SystemArgument1/2 of the last insert.
    context: i64,
    args: (i64, i64),
    /// Runs of its routine completed so far (KeFlushQueuedDpcs).
    runs: u64,
    /// The clock of the processor that last ended a run of it or removed it
    /// from its queue (causality of KeFlushQueuedDpcs under random and pct).
    settled_at: Nanos,
}

/// Per-object state of the kernel objects kept in data (contract v2,
/// "Kernel objects"); `Uninitialized` until their initialization routine.
#[derive(Clone, Debug)]
enum ObjState {
    Uninitialized,
    /// A KEVENT: notification (else synchronization) and its state.
    Event {
        notification: bool,
        signaled: bool,
    },
    /// A KTIMER: its type and state; `due` (absolute virtual ns) while
    /// set, on processor `cpu`; `period` in ns (0: one shot); its DPC.
    Timer {
        notification: bool,
        signaled: bool,
        due: Option<Nanos>,
        period: Nanos,
        dpc: Option<DpcId>,
        cpu: CpuId,
    },
    /// A WORK_QUEUE_ITEM: routine, parameter, and queued but not started.
    WorkItem {
        routine: RoutineId,
        param: i64,
        queued: bool,
    },
    /// An IRP: completed yet, marked pending.
    Irp {
        completed: bool,
        pending: bool,
    },
}

/// A thread blocked in KeWaitForSingleObject.
#[derive(Debug)]
struct Waiter {
    cpu: CpuId,
    ctx: Context<Exec>,
    /// The object it waits on.
    object: ObjectId,
    /// When the wait times out (absolute virtual ns).
    timeout_at: Option<Nanos>,
}

/// A future interrupt arrival.
#[derive(Clone, Debug)]
struct Arrival {
    at: Nanos,
    seq: u64,
    interrupt: InterruptId,
    cpu: CpuId,
    every: Option<Nanos>,
    /// Arrivals left after this one (None = unbounded).
    remaining: Option<u64>,
}

/// The run has stopped (its [`Stop`] record is in the machine): the error
/// of every step, kernel routine and check that can end the run, so callers
/// unwind with `?`.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Halt;

/// How the run ended early.
#[derive(Clone, Debug)]
enum Stop {
    Bugcheck {
        bugcheck: Bugcheck,
        cpu: u32,
        detail: String,
        analysis: Vec<String>,
        /// The catalog rule, when the code and P1 alone do not name it.
        rule: Option<&'static str>,
    },
    Assertion {
        cpu: u32,
        message: String,
    },
}

/// The machine: per-processor state, shared state, the driver that decides
/// who runs, and the outcome the observers and the report see.
struct Machine<'p> {
    prog: &'p Program,
    // Per-processor state: each processor (IRQL, context stack, DPC queue,
    // pending interrupts, clock) and the locks it holds, by processor.
    cpus: Vec<Processor<Exec>>,
    held: Vec<Vec<Held>>,
    /// What every processor can see and change.
    shared: Shared,
    /// Who runs next, and when the run ends.
    driver: Driver,
    /// Observers, output, warnings and how the run stopped.
    out: Outcome<'p>,
    /// Scratch buffer for a kernel call's argument values (no allocation
    /// per call).
    kernel_args: Vec<i64>,
}

/// The machine's shared state: data, locks, kernel objects, waiters.
struct Shared {
    locks: Vec<LockState>,
    /// Scenario data: atomic cells (shared with the processor threads in
    /// parallel mode).
    vars: Arc<words::DataStore>,
    lists: Vec<VecDeque<i64>>,
    dpcs: Vec<DpcState>,
    /// Kernel objects in data (events, timers, work items, IRPs).
    objects: Vec<ObjState>,
    /// The KTIMER objects (indexes into `objects`), listed once: the clock
    /// and the loops look at these, not at every object, at each step.
    timers: Vec<u32>,
    /// Threads blocked in waits, in the order they blocked.
    waiters: Vec<Waiter>,
    /// Work items queued for a worker, FIFO, and which processor's
    /// system worker thread is busy.
    work_queue: VecDeque<ObjectId>,
    workers_busy: Vec<bool>,
    /// Per shared variable: the clock of the last writer.
    var_clock: Vec<Nanos>,
    /// Per lock: the clock of the processor that last changed its state.
    lock_clock: Vec<Nanos>,
    /// Bumped on every change of any lock's state (grant, release, link).
    lock_epoch: u64,
    /// Global KLOCK_QUEUE_HANDLEs.
    handles: Vec<Option<locks::QueueHandle>>,
    /// KLOCK_QUEUE_HANDLEs in struct fields and elements, by their leaf.
    field_handles: std::collections::BTreeMap<u32, Option<locks::QueueHandle>>,
    /// Pool: the next block of each call site, and every block handed out.
    pool_next: Vec<usize>,
    blocks: std::collections::BTreeMap<i64, kernel::pool::Block>,
    /// The last context serial handed out.
    serial: u32,
    /// Parallel mode: the real locks behind `locks` (None: the models).
    real: Option<Arc<words::RealLocks>>,
    /// Parallel mode: per processor, a mailbox word set when something
    /// arrives for it from elsewhere (a DPC queued for it, a thread made
    /// ready on it, an interrupt requested for it, a work item for its
    /// worker); its thread, spinning or idle outside the machine lock,
    /// watches it and takes its safe point at once. Empty otherwise.
    mailboxes: Arc<[std::sync::atomic::AtomicU32]>,
    /// Threads (and queued or running work items) not ended yet.
    threads_alive: usize,
}

/// The driver: every scheduling choice, the step counts, future interrupt
/// arrivals, the mode and when the run ended.
struct Driver {
    arrivals: Vec<Arrival>,
    arrival_seq: u64,
    /// Every choice of the run (which processor steps, costs, placement).
    sched: Box<dyn Scheduler + Send>,
    /// Random and pct: per-processor clocks follow causality (Lamport).
    lamport: bool,
    /// Scheduling steps taken (statements and spin iterations).
    steps: u64,
    /// The step being run did something another processor can observe
    /// (shared data, a kernel call, an event); cleared after each step.
    visible: bool,
    /// Steps so far that were visible.
    visible_steps: u64,
    /// Parallel mode: clocks are the processor threads' CPU time and
    /// statements cost nothing of their own.
    parallel: bool,
    /// Parallel mode: wall-clock lock statistics (None otherwise).
    wall: Option<Box<parallel::WallLocks>>,
    /// Parallel mode: the run is over (every thread ended, the duration or
    /// the timeout passed) without a stop.
    over: bool,
    /// DriverEntry is running (before virtual time 0: no clock ticks).
    in_driver_entry: bool,
    end_time: Nanos,
}

/// What the run produces besides its final state: the observers of its
/// events, DbgPrint output, the engine's warnings and how it stopped.
struct Outcome<'p> {
    verifier: Verifier,
    stats: LockStats,
    /// The caller's observers (trace writers, recorders): they see every
    /// event after the verifier and the statistics.
    observers: Vec<&'p mut (dyn Observer + Send)>,
    output: Vec<String>,
    statements: u64,
    /// How the run stopped, if it did (the report's record; control flow
    /// uses [`Halt`]).
    stop: Option<Stop>,
    /// Extra warnings raised by the engine itself (TIME_LIMIT_REACHED,
    /// STALL_TOO_LONG, LOCK_HELD_AT_RETURN, ...).
    engine_warnings: Vec<verifier::Warning>,
    /// (rule, subject, line) of every engine warning so far: each once.
    warned: std::collections::BTreeSet<(&'static str, String, u32)>,
}

/// What one deterministic run is: the seed and the schedule strategy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// The seed of every choice.
    pub seed: u64,
    /// How processors interleave.
    pub strategy: Strategy,
    /// PCT change points (ignored by the other strategies).
    pub depth: u32,
    /// PCT step budget `k`: the step count of the file's timing run at its
    /// header seed (see [`timing_steps`]).
    pub pct_steps: u64,
}

impl Schedule {
    /// Version 1's schedule: `timing` with `seed`.
    pub fn timing(seed: u64) -> Self {
        Schedule {
            seed,
            strategy: Strategy::Timing,
            depth: 0,
            pct_steps: 0,
        }
    }
}

/// Run a program in deterministic mode.
pub fn run(prog: &Program, schedule: Schedule) -> RunReport {
    run_observed(prog, schedule, &mut [])
}

/// Run a program in deterministic mode and hand every event, in the order
/// the engine emitted them, to each of `observers` (after the verifier and
/// the statistics have seen it): trace writers, recorders, timelines.
pub fn run_observed<'a>(
    prog: &'a Program,
    schedule: Schedule,
    observers: &'a mut [&mut (dyn Observer + Send)],
) -> RunReport {
    let mut m = Machine::new(prog, schedule);
    m.out.observers = observers
        .iter_mut()
        .map(|o| &mut **o as &'a mut (dyn Observer + Send))
        .collect();
    m.main_loop();
    finish::report(&m, schedule)
}

/// The number of visible steps (steps that touch shared data, call the
/// kernel or change a context — what another processor can observe) of the
/// program's `timing` run at its header seed: PCT's step budget `k`,
/// computed once per file.
pub fn timing_steps(prog: &Program) -> u64 {
    let mut m = Machine::new(prog, Schedule::timing(prog.seed));
    m.main_loop();
    m.driver.visible_steps.max(1)
}

impl<'p> Machine<'p> {
    fn new(prog: &'p Program, schedule: Schedule) -> Self {
        let cpus: Vec<Processor<Exec>> = (0..prog.cpus).map(Processor::new).collect();
        let lock_infos = prog
            .locks
            .iter()
            .map(|l| verifier::LockInfo {
                name: l.name.clone(),
                address: l.address,
                family: locks::declared_family(l.kind),
            })
            .collect();
        let guards = prog
            .vars
            .iter()
            .enumerate()
            .filter_map(|(i, v)| {
                v.guard.map(|g| verifier::GuardInfo {
                    var: i as u32,
                    name: v.name.clone(),
                    guard: g,
                })
            })
            .collect();
        let config = verifier::Config {
            deadlock_detection: prog.checks.deadlock_detection,
            ..verifier::Config::default()
        };
        let shared = Shared {
            locks: prog.locks.iter().map(|l| LockState::new(l.kind)).collect(),
            vars: Arc::new(words::DataStore::new(prog.vars.iter().map(|v| v.init))),
            real: None,
            mailboxes: Arc::new([]),
            lists: vec![VecDeque::new(); prog.lists.len()],
            dpcs: prog
                .dpcs
                .iter()
                .map(|d| DpcState {
                    routine: d.initialized.then_some(d.routine),
                    context: d.context,
                    ..DpcState::default()
                })
                .collect(),
            objects: prog
                .objects
                .iter()
                .map(|o| match o.kind {
                    scenario::ast::ObjKind::Irp => ObjState::Irp {
                        completed: false,
                        pending: false,
                    },
                    _ => ObjState::Uninitialized,
                })
                .collect(),
            timers: prog
                .objects
                .iter()
                .enumerate()
                .filter(|(_, o)| o.kind == scenario::ast::ObjKind::Timer)
                .map(|(i, _)| i as u32)
                .collect(),
            waiters: vec![],
            work_queue: VecDeque::new(),
            workers_busy: vec![false; prog.cpus as usize],
            var_clock: vec![0; prog.vars.len()],
            lock_clock: vec![0; prog.locks.len()],
            lock_epoch: 0,
            handles: vec![None; prog.handles.len()],
            field_handles: std::collections::BTreeMap::new(),
            pool_next: vec![0; prog.pool_sites.len()],
            blocks: std::collections::BTreeMap::new(),
            serial: 0,
            threads_alive: 0,
        };
        let driver = Driver {
            arrivals: vec![],
            arrival_seq: 0,
            sched: new_scheduler(
                schedule.strategy,
                schedule.seed,
                prog.cpus,
                schedule.depth,
                schedule.pct_steps,
            ),
            lamport: schedule.strategy != Strategy::Timing,
            steps: 0,
            visible: false,
            visible_steps: 0,
            parallel: false,
            wall: None,
            over: false,
            in_driver_entry: false,
            end_time: 0,
        };
        let out = Outcome {
            verifier: Verifier::new(config, lock_infos, guards),
            stats: LockStats::new(prog.locks.len()),
            observers: Vec::new(),
            output: vec![],
            statements: 0,
            stop: None,
            engine_warnings: vec![],
            warned: Default::default(),
        };
        let mut m = Machine {
            prog,
            cpus,
            held: vec![vec![]; prog.cpus as usize],
            shared,
            driver,
            out,
            kernel_args: Vec::with_capacity(8),
        };
        m.place_threads();
        for p in &mut m.cpus {
            p.next_tick = prog.clock;
        }
        for l in &prog.interrupt_lines {
            if l.count == Some(0) {
                continue;
            }
            m.schedule_arrival(Arrival {
                at: l.at,
                seq: 0,
                interrupt: InterruptId(l.interrupt),
                cpu: CpuId(l.cpu),
                every: l.every,
                remaining: l.count.map(|c| c - 1),
            });
        }
        m
    }

    /// A new system-thread context (a new serial) that runs `routine` from
    /// its start at PASSIVE_LEVEL.
    fn thread_context(&mut self, name: Arc<str>, routine: RoutineId) -> Context<Exec> {
        self.thread_context_args(name, routine, vec![])
    }

    /// A new system-thread context running `routine(args)`.
    fn thread_context_args(
        &mut self,
        name: Arc<str>,
        routine: RoutineId,
        args: Vec<i64>,
    ) -> Context<Exec> {
        let mut exec = Exec::new(name, 0);
        exec.frames
            .push(self.new_frame(routine, args, OnReturn::ContextEnd));
        self.shared.serial += 1;
        Context {
            kind: ContextKind::Thread,
            serial: self.shared.serial,
            saved_irql: Irql::PASSIVE,
            started: 0,
            ticks: 0,
            payload: exec,
        }
    }

    fn place_threads(&mut self) {
        let prog = self.prog;
        let mut load = vec![0usize; prog.cpus as usize];
        for t in &prog.threads {
            for copy in 0..t.repeat {
                let cpu = match t.cpu {
                    Some(c) => c as usize,
                    None => {
                        let min = *load.iter().min().unwrap_or(&0);
                        let cands: Vec<usize> =
                            (0..load.len()).filter(|&i| load[i] == min).collect();
                        cands[self.driver.sched.place(cands.len())]
                    }
                };
                load[cpu] += 1;
                let name: Arc<str> = if t.repeat > 1 || t.name.contains('#') {
                    format!("{}#{copy}", t.name).into()
                } else {
                    t.name.as_str().into()
                };
                let ctx = self.thread_context(name, t.routine);
                self.cpus[cpu].ready.push_back(ctx);
                self.shared.threads_alive += 1;
            }
        }
    }

    fn new_frame(&self, routine: RoutineId, args: Vec<i64>, on_return: OnReturn) -> Frame {
        let code = &self.prog.routines[routine as usize];
        let mut locals: Vec<Value> = code
            .slots
            .iter()
            .map(|s| {
                if s.is_some() {
                    Value::Int(0)
                } else {
                    Value::Handle(None)
                }
            })
            .collect();
        // C converts each argument to its parameter's type.
        for (i, a) in args.into_iter().enumerate().take(code.params as usize) {
            locals[i] = Value::Int(match code.slots[i] {
                Some(t) => scenario::check::truncate(t, a),
                None => a,
            });
        }
        Frame {
            routine,
            pc: 0,
            locals,
            line: code.line,
            stack_base: 0,
            on_return,
            local_events: vec![],
        }
    }

    fn schedule_arrival(&mut self, mut a: Arrival) {
        self.driver.arrival_seq += 1;
        a.seq = self.driver.arrival_seq;
        self.post(a.cpu.0);
        self.driver.arrivals.push(a);
    }

    /// Parallel mode: tell processor `cpu`'s thread that something arrived
    /// for it (its mailbox word); nothing in deterministic mode.
    fn post(&self, cpu: u32) {
        if let Some(m) = self.shared.mailboxes.get(cpu as usize) {
            m.store(1, std::sync::atomic::Ordering::Release);
        }
    }

    /// Parallel mode: post to every processor (a work item for whichever
    /// worker is idle).
    fn post_all(&self) {
        for cpu in 0..self.shared.mailboxes.len() {
            self.post(cpu as u32);
        }
    }

    fn next_arrival(&self) -> Option<usize> {
        (0..self.driver.arrivals.len())
            .min_by_key(|&i| (self.driver.arrivals[i].at, self.driver.arrivals[i].seq))
    }

    /// Emit an event to the verifier and statistics; a verifier violation
    /// ends the run. `Err(Halt)` when the run has stopped (by this event's
    /// violation, or earlier in the step on a path that went on).
    fn emit(&mut self, cpu: u32, kind: EventKind) -> Result<(), Halt> {
        self.driver.visible = true;
        let top = self.cpus[cpu as usize].top();
        let ctx = top.map_or(0, |c| c.serial);
        let line = top.map_or(0, |c| self.context_line(c));
        let ev = Event {
            at: self.cpus[cpu as usize].clock,
            cpu,
            ctx,
            line,
            kind,
        };
        trace!(?ev, "event");
        Observer::observe(&mut self.out.stats, &ev);
        for o in &mut self.out.observers {
            o.observe(&ev);
        }
        if let Some(v) = Observer::observe(&mut self.out.verifier, &ev) {
            return Err(self.bugcheck_with(cpu, v.bugcheck, v.detail, v.analysis));
        }
        match self.out.stop {
            Some(_) => Err(Halt),
            None => Ok(()),
        }
    }

    /// Emit an event the verifier never ends a run on (IRQL changes,
    /// releases, prints, queueing, thread switches): nothing to check.
    fn notify(&mut self, cpu: u32, kind: EventKind) {
        let _ = self.emit(cpu, kind);
    }

    /// A context is stuck when its last poll made no progress and no lock
    /// has changed since.
    fn is_stuck(&self, c: &Context<Exec>) -> bool {
        c.payload.pending.is_some() && c.payload.stuck_at == Some(self.shared.lock_epoch)
    }

    /// The source line a context is at: its innermost frame's statement, or
    /// for an ISR still waiting for its interrupt lock, the ISR's declaration.
    /// The routine a context is running (for the file its line is in).
    fn context_routine(&self, c: &Context<Exec>) -> Option<u32> {
        match c.payload.frames.last() {
            Some(f) => Some(f.routine),
            None if c.kind == ContextKind::Isr => {
                Some(self.prog.interrupts[c.payload.object as usize].isr)
            }
            None => None,
        }
    }

    fn context_line(&self, c: &Context<Exec>) -> u32 {
        match c.payload.frames.last() {
            Some(f) => f.line,
            None if c.kind == ContextKind::Isr => {
                let isr = self.prog.interrupts[c.payload.object as usize].isr;
                self.prog.routines[isr as usize].line
            }
            None => 0,
        }
    }

    /// Stop the run with bugcheck `b` (only the first stop is recorded).
    fn bugcheck(&mut self, cpu: u32, b: Bugcheck, detail: impl Into<String>) -> Halt {
        self.bugcheck_with(cpu, b, detail.into(), vec![])
    }

    fn bugcheck_with(
        &mut self,
        cpu: u32,
        b: Bugcheck,
        detail: String,
        analysis: Vec<String>,
    ) -> Halt {
        if self.out.stop.is_none() {
            info!(cpu, code = format_args!("{:#x}", b.code), detail = %detail, "bugcheck");
            self.out.stop = Some(Stop::Bugcheck {
                bugcheck: b,
                cpu,
                detail,
                analysis,
                rule: None,
            });
        }
        Halt
    }

    /// A bugcheck whose catalog rule is `rule` (several rules share 0x133).
    fn bugcheck_rule(
        &mut self,
        cpu: u32,
        b: Bugcheck,
        detail: String,
        analysis: Vec<String>,
        rule: &'static str,
    ) -> Halt {
        if self.out.stop.is_none() {
            let _ = self.bugcheck_with(cpu, b, detail, analysis);
            if let Some(Stop::Bugcheck { rule: r, .. }) = &mut self.out.stop {
                *r = Some(rule);
            }
        }
        Halt
    }

    /// One of the tool's own warnings (contract v2, "Warnings"), reported
    /// once per rule, subject (lock or routine) and line.
    fn warn(
        &mut self,
        rule: &'static str,
        subject: &str,
        line: u32,
        message: impl FnOnce() -> String,
    ) {
        if self.out.warned.insert((rule, subject.to_string(), line)) {
            self.out.engine_warnings.push(verifier::Warning {
                rule,
                line,
                message: message(),
            });
        }
    }

    /// The line the running context of `cpu` is at.
    fn line_of(&self, cpu: u32) -> u32 {
        self.cpus[cpu as usize]
            .top()
            .map_or(0, |t| self.context_line(t))
    }

    /// IRQL is about to drop to `to` (< DISPATCH_LEVEL) on `cpu` while it
    /// holds spin locks: the warning IRQL_LOWERED_WHILE_HOLDING at this
    /// line, remembered in each hold (a later 0xF or deadlock points here).
    fn lowered_while_holding(&mut self, cpu: u32, to: Irql) {
        let c = cpu as usize;
        if self.held[c].is_empty() {
            return;
        }
        let line = self.line_of(cpu);
        for h in &mut self.held[c] {
            h.lowered_at.get_or_insert(line);
        }
        let names: Vec<String> = self.held[c]
            .iter()
            .map(|h| {
                format!(
                    "`{}` (taken at line {})",
                    self.prog.locks[h.lock.0 as usize].name, h.line
                )
            })
            .collect();
        let subject = names.join(",");
        self.warn(
            verifier::rule::IRQL_LOWERED_WHILE_HOLDING,
            &subject,
            line,
            || {
                format!(
                    "IRQL lowered to {to} at line {line} while spin lock {} is still held: the processor can now be interrupted by DPCs and switch threads, and any code it runs that asks for the lock spins on it for ever (0xF, or a deadlock)",
                    names.join(", ")
                )
            },
        );
    }

    /// The automatic check of a DPC routine lowering IRQL below
    /// DISPATCH_LEVEL (0xC4/0x31, P4 = 1; contract v2).
    fn dpc_lowers_below_dispatch(&mut self, cpu: u32, to: Irql) -> Result<(), Halt> {
        let c = cpu as usize;
        let in_dpc = self.cpus[c]
            .top()
            .is_some_and(|t| t.kind == ContextKind::Dpc);
        if !self.prog.checks.automatic || !in_dpc || to >= Irql::DISPATCH {
            return Ok(());
        }
        let cur = self.cpus[c].irql;
        let detail = format!("a DPC routine lowered IRQL to {to}: DPC routines run at DISPATCH_LEVEL and must not lower it");
        Err(self.bugcheck(
            cpu,
            Bugcheck::verifier(
                vcpu::bugcheck::c4::LOWER_TO_HIGHER,
                cur.0 as u64,
                to.0 as u64,
                1,
            ),
            detail,
        ))
    }

    /// Stop the run with a failed assertion (only the first stop counts).
    fn assertion(&mut self, cpu: u32, message: String) -> Halt {
        if self.out.stop.is_none() {
            self.out.stop = Some(Stop::Assertion { cpu, message });
        }
        Halt
    }

    fn set_irql(&mut self, cpu: u32, to: Irql) {
        let from = self.cpus[cpu as usize].set_irql(to);
        if from != to {
            self.notify(cpu, EventKind::IrqlChanged { from, to });
        }
    }

    fn cost(&mut self, base: Nanos, jitter: Nanos) -> Nanos {
        if self.driver.parallel {
            // Parallel mode: nominal costs, no jitter (the OS interleaves).
            return base;
        }
        self.driver.sched.cost(base, jitter)
    }

    /// Does this processor have anything to run?
    fn busy(&self, cpu: usize) -> bool {
        let p = &self.cpus[cpu];
        !p.stack.is_empty()
            || !p.ready.is_empty()
            || p.dpc_ready()
            || p.deliverable_interrupt().is_some()
    }

    /// Finite work left in the future (one-shot or counted arrivals), or
    /// any arrival while threads still run.
    fn arrivals_matter(&self) -> bool {
        self.shared.threads_alive > 0 || self.driver.arrivals.iter().any(|a| a.remaining.is_some())
    }

    /// Run `DriverEntry` to completion on processor 0 at PASSIVE_LEVEL
    /// before anything else starts; its statements take no time. Even when
    /// it stops the run, the processors are set back for the report.
    fn driver_entry(&mut self) -> Result<(), Halt> {
        let Some(routine) = self.prog.driver_entry else {
            return Ok(());
        };
        let held: Vec<_> = self
            .cpus
            .iter_mut()
            .map(|p| std::mem::take(&mut p.ready))
            .collect();
        let alive = self.shared.threads_alive;
        self.shared.threads_alive = 1;
        let queued = self.shared.work_queue.len();
        debug_assert_eq!(queued, 0);
        let ctx = self.thread_context("DriverEntry".into(), routine);
        self.cpus[0].ready.push_back(ctx);
        self.driver.in_driver_entry = true;
        let mut steps: u64 = 0;
        let mut ended = Ok(());
        while self.busy(0) {
            ended = self.step(0);
            if ended.is_err() {
                break;
            }
            steps += 1;
            if steps > 50_000_000 {
                ended = Err(self.assertion(0, "DriverEntry did not return".to_string()));
                break;
            }
        }
        self.driver.in_driver_entry = false;
        for p in self.cpus.iter_mut() {
            p.clock = 0;
        }
        for (p, r) in self.cpus.iter_mut().zip(held) {
            p.ready = r;
        }
        // Work items queued by DriverEntry start now, on the workers.
        self.shared.threads_alive = alive + self.shared.work_queue.len();
        self.dispatch_work(0);
        ended
    }

    fn main_loop(&mut self) {
        if self.driver_entry().is_err() {
            return;
        }
        let ended = if self.driver.lamport {
            self.main_loop_chosen()
        } else {
            self.main_loop_timed()
        };
        if ended.is_ok() {
            self.end_blocked_for_ever();
        }
        if self.driver.end_time == 0 {
            self.driver.end_time = self.cpus.iter().map(|p| p.clock).max().unwrap_or(0);
        }
    }

    /// A run that ended with threads still blocked in waits (not at its
    /// time limit): they are blocked for ever, and the run says so.
    fn end_blocked_for_ever(&mut self) {
        if self.shared.waiters.is_empty() || self.ended_by_limit() {
            return;
        }
        let now = self.cpus.iter().map(|p| p.clock).max().unwrap_or(0);
        self.driver.end_time = now;
        self.cut_off(
            "no processor could run any more, with threads blocked for ever: {}".to_string(),
        );
    }

    /// Timing: the busy processor with the smallest clock steps (ties: the
    /// scheduler); arrivals come in virtual-time order. Ends with `Err` when
    /// the run stopped.
    fn main_loop_timed(&mut self) -> Result<(), Halt> {
        let limit = self.prog.duration.unwrap_or(DEFAULT_LIMIT_NS);
        info!(scenario = %self.prog.name, cpus = self.cpus.len(), limit, "run starts");
        loop {
            // The busy processor(s) with the smallest clock, without allocating.
            let mut min_clock: Option<Nanos> = None;
            let mut ties = 0usize;
            for c in 0..self.cpus.len() {
                if !self.busy(c) {
                    continue;
                }
                let t = self.cpus[c].clock;
                match min_clock {
                    Some(m) if t > m => {}
                    Some(m) if t == m => ties += 1,
                    _ => {
                        min_clock = Some(t);
                        ties = 1;
                    }
                }
            }
            let arrival = if self.arrivals_matter() {
                self.next_arrival()
            } else {
                None
            };
            // A timer or timeout due on an idle processor: it takes that
            // clock tick (before an arrival at the same time or later).
            if let Some((t, tc)) = self.next_timed_event() {
                if min_clock.is_none_or(|m| t <= m)
                    && arrival.is_none_or(|ai| t < self.driver.arrivals[ai].at)
                {
                    if t > limit {
                        self.driver.end_time = limit;
                        self.time_limit(limit);
                        break;
                    }
                    let p = &mut self.cpus[tc];
                    p.clock = p.clock.max(t);
                    self.clock_ticks(tc as u32)?;
                    continue;
                }
            }
            // An arrival comes first if it is no later than every busy clock.
            if let Some(ai) = arrival {
                let at = self.driver.arrivals[ai].at;
                if min_clock.is_none_or(|t| at <= t) {
                    if at > limit {
                        self.driver.end_time = limit;
                        self.time_limit(limit);
                        break;
                    }
                    self.deliver_arrival(ai);
                    continue;
                }
            }
            let Some(min) = min_clock else {
                // Nothing runs and nothing will arrive: the run is over.
                self.driver.end_time = self.cpus.iter().map(|p| p.clock).max().unwrap_or(0);
                break;
            };
            if min > limit {
                self.driver.end_time = limit;
                self.time_limit(limit);
                break;
            }
            let pick = if ties > 1 {
                self.driver.sched.tie_break(ties)
            } else {
                0
            };
            let cpu = (0..self.cpus.len())
                .filter(|&c| self.cpus[c].clock == min && self.busy(c))
                .nth(pick)
                .expect("a busy processor at the minimum clock");
            if !self.count_step(min) {
                break;
            }
            let stepped = self.step(cpu as u32);
            if std::mem::take(&mut self.driver.visible) {
                self.driver.visible_steps += 1;
            }
            stepped?;
            if self.cpus[cpu].top().is_some_and(|c| self.is_stuck(c)) {
                self.check_deadlock()?;
            }
        }
        Ok(())
    }

    /// Count one scheduling step; past [`MAX_STEPS`] the run is cut off
    /// (returns false). `now` is the virtual time reported.
    fn count_step(&mut self, now: Nanos) -> bool {
        self.driver.steps += 1;
        if self.driver.steps > MAX_STEPS {
            self.driver.end_time = now;
            self.cut_off(format!(
                "the run was cut off after {MAX_STEPS} steps, at {} µs of virtual time, with threads still running: {{}}",
                now / 1000
            ));
            return false;
        }
        true
    }

    /// Random and pct: the scheduler picks among the processors that can
    /// step, whatever their clocks; each keeps its own clock, and time
    /// follows causality (contract v2, "The command line"). Ends with `Err`
    /// when the run stopped.
    fn main_loop_chosen(&mut self) -> Result<(), Halt> {
        let limit = self.prog.duration.unwrap_or(DEFAULT_LIMIT_NS);
        info!(scenario = %self.prog.name, cpus = self.cpus.len(), limit, strategy = %self.driver.sched.strategy(), "run starts");
        let mut steppable: Vec<u32> = Vec::with_capacity(self.cpus.len());
        loop {
            // Timed events happen when their processor's clock reaches them.
            if self.arrivals_matter() {
                while let Some(ai) = self.due_arrival() {
                    self.deliver_arrival(ai);
                }
            }
            let now = self.cpus.iter().map(|p| p.clock).max().unwrap_or(0);
            if now > limit {
                self.driver.end_time = limit;
                self.time_limit(limit);
                break;
            }
            steppable.clear();
            steppable.extend((0..self.cpus.len() as u32).filter(|&c| self.can_step(c as usize)));
            if steppable.is_empty() {
                // The processor with the earliest timed event jumps to it.
                let arrival = if self.arrivals_matter() {
                    self.next_arrival()
                } else {
                    None
                };
                // The earliest clock tick of a busy processor that waits.
                let tick = (0..self.cpus.len())
                    .filter(|&c| {
                        let p = &self.cpus[c];
                        self.busy(c)
                            && (!p.dpcs.is_empty()
                                || p.top().is_some_and(|t| {
                                    self.is_stuck(t)
                                        && matches!(t.payload.pending, Some(Pending::Acquire(_)))
                                }))
                    })
                    .min_by_key(|&c| (self.cpus[c].next_tick, c));
                // A timer or timeout due on an idle processor.
                let timed = self.next_timed_event();
                let tick_at = |m: &Self, t: usize| m.cpus[t].next_tick;
                let (tick, tick_time) = match (tick, timed) {
                    (Some(t), Some((at, tc))) if at < tick_at(self, t) => (Some(tc), at),
                    (None, Some((at, tc))) => (Some(tc), at),
                    (Some(t), _) => (Some(t), tick_at(self, t)),
                    (None, None) => (None, 0),
                };
                let tick_first = match (arrival, tick) {
                    (Some(ai), Some(_)) => tick_time < self.driver.arrivals[ai].at,
                    (None, Some(_)) => true,
                    _ => false,
                };
                if let (true, Some(t)) = (tick_first, tick) {
                    let at = tick_time;
                    if at > limit {
                        self.driver.end_time = limit;
                        self.time_limit(limit);
                        break;
                    }
                    let p = &mut self.cpus[t];
                    p.clock = p.clock.max(at);
                    self.clock_ticks(t as u32)?;
                    continue;
                }
                if let Some(ai) = arrival {
                    if self.driver.arrivals[ai].at > limit {
                        self.driver.end_time = limit;
                        self.time_limit(limit);
                        break;
                    }
                    self.deliver_arrival(ai);
                    continue;
                }
                if (0..self.cpus.len()).any(|c| self.busy(c)) {
                    self.check_deadlock()?;
                    // Nobody spins on a lock for ever: contexts that only
                    // re-read unchanged data go on (a bounded loop may end).
                    if self.release_data_waits() {
                        continue;
                    }
                    self.driver.end_time = now;
                    self.cut_off(
                        "no processor could take a step, with threads still running: {}"
                            .to_string(),
                    );
                }
                break;
            }
            let cpu = self.driver.sched.pick(&steppable);
            if !self.count_step(now) {
                break;
            }
            self.wake_from_data_wait(cpu as usize);
            let stepped = self.step(cpu);
            if std::mem::take(&mut self.driver.visible) {
                self.driver.visible_steps += 1;
                self.driver.sched.visible_step();
            }
            stepped?;
            if self.cpus[cpu as usize]
                .top()
                .is_some_and(|c| self.is_stuck(c))
            {
                self.check_deadlock()?;
            }
        }
        Ok(())
    }

    /// An arrival whose time its processor's clock has reached.
    fn due_arrival(&self) -> Option<usize> {
        (0..self.driver.arrivals.len())
            .filter(|&i| {
                let a = &self.driver.arrivals[i];
                a.at <= self.cpus[a.cpu.ix()].clock
            })
            .min_by_key(|&i| (self.driver.arrivals[i].at, self.driver.arrivals[i].seq))
    }

    /// Is the context on top of processor `c` only re-reading data nobody
    /// has written since (random, pct and parallel mode)?
    fn data_waiting(&self, c: usize) -> bool {
        self.cpus[c].top().is_some_and(|t| {
            t.payload
                .data_wait
                .is_some_and(|(v, ver)| self.shared.vars.version(v as usize) == ver)
        })
    }

    /// Random and pct: can this processor take a scheduler choice? Not when
    /// it has nothing to run, spins on a lock no one has changed since its
    /// last look, or re-reads data no one has written since (unless an
    /// interrupt can be delivered to it).
    fn can_step(&self, c: usize) -> bool {
        if !self.busy(c) {
            return false;
        }
        let p = &self.cpus[c];
        let Some(top) = p.top() else { return true };
        let waiting = self.is_stuck(top) || self.data_waiting(c);
        // A waiter still takes its interrupts and its requested DPC drain.
        !waiting || p.deliverable_interrupt().is_some() || (p.dpc_ready() && !self.is_stuck(top))
    }

    /// A context that waited on data someone wrote goes on with the
    /// writer's clock (Lamport).
    fn wake_from_data_wait(&mut self, c: usize) {
        let Some(top) = self.cpus[c].stack.last_mut() else {
            return;
        };
        if let Some((v, _)) = top.payload.data_wait.take() {
            let seen = self.shared.var_clock[v as usize];
            let p = &mut self.cpus[c];
            p.clock = p.clock.max(seen);
        }
    }

    /// Let every context waiting on unchanged data step again; false when
    /// there was none.
    fn release_data_waits(&mut self) -> bool {
        let mut any = false;
        for p in &mut self.cpus {
            if let Some(top) = p.stack.last_mut() {
                if top.payload.data_wait.take().is_some() {
                    top.payload.last_read = None;
                    any = true;
                }
            }
        }
        any
    }

    /// Random and pct: remember a shared read; a second read at the same
    /// place with nothing written since makes the context wait for a write.
    fn note_read(&mut self, cpu: u32, var: u32) {
        let ver = self.shared.vars.version(var as usize);
        let c = cpu as usize;
        let Some(top) = self.cpus[c].stack.last_mut() else {
            return;
        };
        let Some(f) = top.payload.frames.last() else {
            return;
        };
        let here = (f.routine, f.pc, var, ver);
        if top.payload.last_read == Some(here) {
            top.payload.data_wait = Some((var, ver));
        }
        top.payload.last_read = Some(here);
    }

    /// Write shared data (truncated to its type); records the write for
    /// data waits and its clock for causality.
    fn write_var(&mut self, cpu: u32, var: u32, value: i64) {
        let v = var as usize;
        self.shared
            .vars
            .set(v, scenario::check::truncate(self.prog.vars[v].ty, value));
        self.shared.var_clock[v] = self.cpus[cpu as usize].clock;
    }

    /// A lock's state changed (request, grant, release, link, convert).
    fn lock_changed(&mut self, cpu: u32, lock: vcpu::LockId) {
        self.shared.lock_epoch += 1;
        let clock = self.cpus[cpu as usize].clock;
        let l = &mut self.shared.lock_clock[lock.0 as usize];
        *l = (*l).max(clock);
    }

    /// The run reached its virtual-time limit: without `duration`, warn
    /// when threads are still running.
    fn time_limit(&mut self, limit: Nanos) {
        if self.prog.duration.is_some() || self.shared.threads_alive == 0 {
            return;
        }
        self.cut_off(format!(
            "the run reached the {} ms virtual-time limit with threads still running: {{}}; add `duration D;` to the header if this is intended",
            limit / 1_000_000
        ));
    }

    /// End the run early with a TIME_LIMIT_REACHED warning; `{}` in `what`
    /// is replaced by the threads still running and their lines.
    fn cut_off(&mut self, what: String) {
        let mut running = vec![];
        for p in &self.cpus {
            for c in p.stack.iter().chain(p.ready.iter()) {
                if c.kind == ContextKind::Thread && !c.payload.started {
                    running.push(format!("{} (cpu {}, not started)", c.payload.name, p.id));
                } else if c.kind == ContextKind::Thread {
                    let line = c.payload.frames.last().map_or(0, |f| f.line);
                    running.push(format!("{} (cpu {}, line {line})", c.payload.name, p.id));
                }
            }
        }
        for w in &self.shared.waiters {
            let line = w.ctx.payload.frames.last().map_or(0, |f| f.line);
            running.push(format!(
                "{} (cpu {}, line {line}, waiting for `{}`)",
                w.ctx.payload.name,
                w.cpu,
                self.prog.objects[w.object.ix()].name
            ));
        }
        let line = self
            .cpus
            .iter()
            .find_map(|p| p.top().map(|t| self.context_line(t)))
            .or_else(|| {
                // Nothing runs: the line a blocked thread waits at.
                self.shared
                    .waiters
                    .first()
                    .and_then(|w| w.ctx.payload.frames.last().map(|f| f.line))
            })
            .unwrap_or(0);
        let running = if running.is_empty() {
            "none".to_string()
        } else {
            running.join(", ")
        };
        self.out.engine_warnings.push(verifier::Warning {
            rule: "TIME_LIMIT_REACHED",
            line,
            message: what.replace("{}", &running),
        });
    }

    fn deliver_arrival(&mut self, ai: usize) {
        let a = self.driver.arrivals.remove(ai);
        let decl = &self.prog.interrupts[a.interrupt.ix()];
        let p = &mut self.cpus[a.cpu.ix()];
        if p.clock < a.at {
            // An idle processor wakes up at the arrival.
            p.clock = a.at;
        }
        p.raise_interrupt(PendingInterrupt {
            interrupt: a.interrupt.0,
            irql: Irql(decl.irql),
        });
        let name: Arc<str> = decl.name.as_str().into();
        self.notify(
            a.cpu.0,
            EventKind::InterruptRaised {
                name,
                irql: Irql(decl.irql),
            },
        );
        if let (Some(every), Some(rem)) = (a.every, a.remaining.or(Some(u64::MAX))) {
            if rem > 0 {
                let remaining = a.remaining.map(|r| r - 1);
                self.schedule_arrival(Arrival {
                    at: a.at.saturating_add(every),
                    remaining,
                    ..a
                });
            }
        }
    }

    /// One step of one processor: safe point, then one statement or spin.
    fn step(&mut self, cpu: u32) -> Result<(), Halt> {
        let c = cpu as usize;
        self.clock_ticks(cpu)?;
        let mid_statement = self.cpus[c].top().is_some_and(|t| t.payload.mid_statement);
        if !mid_statement {
            self.safe_point(cpu)?;
        }
        if self.cpus[c].stack.is_empty() {
            return Ok(());
        }
        let pending = self.cpus[c]
            .stack
            .last()
            .and_then(|x| x.payload.pending.clone());
        match pending {
            Some(p) => self.poll_pending(cpu, p),
            None => self.exec(cpu),
        }
    }

    /// The watchdog allotments in ticks: (cumulative, single DPC/ISR), each
    /// the limit divided by the clock period, rounded down, at least 1
    /// (contract v2, "DPCs, the clock and the watchdog").
    fn allotments(&self) -> (u64, u64) {
        let clock = self.prog.clock.max(1);
        (
            (self.prog.watchdog / clock).max(1),
            (self.prog.dpc_timeout / clock).max(1),
        )
    }

    /// The clock interrupts due on `cpu` (its clock reached them), held
    /// pending while IRQL >= CLOCK_LEVEL. Each requests a DPC interrupt if
    /// the queue is not empty and counts the watchdog: a tick that finds the
    /// processor at DISPATCH_LEVEL or above adds one to its cumulative count
    /// and to the running DPC's or ISR's own count; a count above its
    /// allotment ends the run, the single first (0x133, P1 = 0) then the
    /// cumulative (0x133, P1 = 1). Ticks take no virtual time.
    fn clock_ticks(&mut self, cpu: u32) -> Result<(), Halt> {
        if self.driver.in_driver_entry {
            return Ok(());
        }
        let c = cpu as usize;
        let clock = self.prog.clock.max(1);
        let (cumulative, single) = self.allotments();
        loop {
            let p = &mut self.cpus[c];
            if p.next_tick > p.clock || p.irql >= Irql::CLOCK {
                return Ok(());
            }
            let tick_at = p.next_tick;
            p.next_tick = p.next_tick.saturating_add(clock);
            // The tick expires due timers and timed-out waits first.
            if !self.shared.waiters.is_empty() || self.timers_set() {
                self.tick_objects(cpu, tick_at);
            }
            let p = &mut self.cpus[c];
            if !p.dpcs.is_empty() {
                p.dpc_requested = true;
            }
            if !p.irql.is_raised() {
                continue;
            }
            p.raised_ticks += 1;
            let raised = p.raised_ticks;
            let mut single_over = None;
            if let Some(top) = p.stack.last_mut() {
                if top.kind != ContextKind::Thread {
                    top.ticks += 1;
                    if top.ticks > single {
                        single_over = Some((
                            top.kind,
                            top.ticks,
                            tick_at - top.started,
                            top.payload.name.clone(),
                        ));
                    }
                }
            }
            if let Some((kind, ticks, ran, name)) = single_over {
                let what = if kind == ContextKind::Dpc {
                    "DPC"
                } else {
                    "ISR"
                };
                let detail = format!(
                    "{what} {name} on cpu {cpu} ran {ticks} clock ticks ({} µs), past its allotment of {single} ticks (dpc_timeout {} µs)",
                    ran / 1000,
                    self.prog.dpc_timeout / 1000
                );
                return Err(self.bugcheck_rule(
                    cpu,
                    Bugcheck::new(code::DPC_WATCHDOG_VIOLATION, [0, ticks, single, 0]),
                    detail,
                    vec![],
                    "DPC_WATCHDOG_TIMEOUT",
                ));
            }
            if raised > cumulative {
                let (_, analysis) = self.wait_for_analysis();
                let detail = format!(
                    "cpu {cpu} stayed at IRQL >= DISPATCH_LEVEL for {raised} clock ticks ({} µs), past the cumulative allotment of {cumulative} ticks (watchdog {} µs)",
                    raised * clock / 1000,
                    self.prog.watchdog / 1000
                );
                return Err(self.bugcheck_rule(
                    cpu,
                    Bugcheck::new(code::DPC_WATCHDOG_VIOLATION, [1, cumulative, 0, 0]),
                    detail,
                    analysis,
                    "DPC_WATCHDOG_CUMULATIVE",
                ));
            }
        }
    }

    /// The safe point before a statement: deliver an interrupt, drain a DPC
    /// or switch threads at the end of a slice.
    fn safe_point(&mut self, cpu: u32) -> Result<(), Halt> {
        let c = cpu as usize;
        if let Some(irq) = self.cpus[c].deliverable_interrupt() {
            self.cpus[c].take_interrupt(irq);
            return self.start_isr(cpu, InterruptId(irq.interrupt));
        }
        if self.cpus[c].dpc_ready() {
            if let Some(d) = self.cpus[c].dpcs.pop() {
                self.shared.dpcs[d as usize].queued_on = None;
                self.start_dpc(cpu, DpcId(d));
                return Ok(());
            }
        }
        if self.cpus[c].slice_expired(QUANTUM_NS) {
            let clock = self.cpus[c].clock;
            if let Some(name) = self.cpus[c].top().map(|t| t.payload.name.clone()) {
                debug!(cpu, thread = %name, at = clock, "time slice ends");
                self.notify(cpu, EventKind::ThreadPreempted { name });
            }
            let p = &mut self.cpus[c];
            if let Some(mut cur) = p.stack.pop() {
                cur.saved_irql = p.irql;
                p.ready.push_back(cur);
            }
            p.slice_start = clock;
        }
        if self.cpus[c].stack.is_empty() {
            let clock = self.cpus[c].clock;
            let p = &mut self.cpus[c];
            if let Some(next) = p.ready.pop_front() {
                p.stack.push(next);
                p.slice_start = clock;
            }
            // A thread runs at its own IRQL (a blocked one kept it).
            if let Some(own) = self.cpus[c].top().map(|t| t.saved_irql) {
                if own != self.cpus[c].irql {
                    self.set_irql(cpu, own);
                }
            }
            let resumed = self.cpus[c]
                .top()
                .filter(|t| t.payload.started)
                .map(|t| t.payload.name.clone());
            match resumed {
                Some(name) => self.notify(cpu, EventKind::ThreadResumed { name }),
                None => self.thread_first_run(cpu),
            }
        }
        Ok(())
    }

    fn thread_first_run(&mut self, cpu: u32) {
        let c = cpu as usize;
        let clock = self.cpus[c].clock;
        let Some(top) = self.cpus[c].stack.last_mut() else {
            return;
        };
        if top.kind != ContextKind::Thread || top.payload.started {
            return;
        }
        top.payload.started = true;
        top.started = clock;
        let name = top.payload.name.clone();
        // A work item counts as queued until its routine starts.
        if let Some(item) = top.payload.work_item {
            if let ObjState::WorkItem { queued, .. } = &mut self.shared.objects[item.ix()] {
                *queued = false;
            }
        }
        self.notify(
            cpu,
            EventKind::ContextStart {
                kind: ContextKind::Thread,
                name,
                irql: Irql::PASSIVE,
                interrupt_lock: None,
            },
        );
    }

    fn start_dpc(&mut self, cpu: u32, dpc: DpcId) {
        let saved = self.cpus[cpu as usize].irql;
        self.start_dpc_saved(cpu, dpc, saved);
    }

    /// Start DPC `dpc` on `cpu` at DISPATCH_LEVEL; `saved` is the IRQL the
    /// drain returns to when the queue is empty.
    fn start_dpc_saved(&mut self, cpu: u32, dpc: DpcId, saved: Irql) {
        let c = cpu as usize;
        debug!(cpu, dpc = %self.prog.dpcs[dpc.ix()].name, at = self.cpus[c].clock, "DPC starts");
        let decl = &self.prog.dpcs[dpc.ix()];
        let st = &self.shared.dpcs[dpc.ix()];
        let routine_id = st.routine.unwrap_or(decl.routine);
        let routine = &self.prog.routines[routine_id as usize];
        let name: Arc<str> = routine.name.as_str().into();
        let mut exec = Exec::new(name.clone(), dpc.0);
        // VOID Routine(PKDPC Dpc, PVOID DeferredContext, PVOID
        // SystemArgument1, PVOID SystemArgument2).
        let me = decl.reference;
        let args = vec![me, st.context, st.args.0, st.args.1];
        exec.frames
            .push(self.new_frame(routine_id, args, OnReturn::ContextEnd));
        self.shared.serial += 1;
        let clock = self.cpus[c].clock;
        self.cpus[c].stack.push(Context {
            kind: ContextKind::Dpc,
            serial: self.shared.serial,
            saved_irql: saved,
            started: clock,
            ticks: 0,
            payload: exec,
        });
        self.set_irql(cpu, Irql::DISPATCH);
        self.notify(
            cpu,
            EventKind::ContextStart {
                kind: ContextKind::Dpc,
                name,
                irql: Irql::DISPATCH,
                interrupt_lock: None,
            },
        );
    }

    /// Start the ISR of `interrupt` on `cpu`: its ContextStart (where the
    /// verifier may find an inversion) and the kernel's acquisition of its
    /// interrupt lock, requested even then.
    fn start_isr(&mut self, cpu: u32, interrupt: InterruptId) -> Result<(), Halt> {
        let c = cpu as usize;
        debug!(cpu, interrupt = %self.prog.interrupts[interrupt.ix()].name, at = self.cpus[c].clock, irql = self.cpus[c].irql.0, "interrupt delivered");
        let decl = &self.prog.interrupts[interrupt.ix()];
        let name: Arc<str> = self.prog.routines[decl.isr as usize].name.as_str().into();
        let mut exec = Exec::new(name.clone(), interrupt.0);
        exec.entry_irql = Irql(decl.sync_irql);
        self.shared.serial += 1;
        let saved = self.cpus[c].irql;
        let clock = self.cpus[c].clock;
        self.cpus[c].stack.push(Context {
            kind: ContextKind::Isr,
            serial: self.shared.serial,
            saved_irql: saved,
            started: clock,
            ticks: 0,
            payload: exec,
        });
        self.set_irql(cpu, Irql(decl.sync_irql));
        let started = self.emit(
            cpu,
            EventKind::ContextStart {
                kind: ContextKind::Isr,
                name,
                irql: Irql(decl.sync_irql),
                interrupt_lock: Some(decl.lock),
            },
        );
        // The kernel takes the interrupt spin lock before calling the ISR.
        self.begin_isr_lock(cpu, interrupt)?;
        started
    }

    /// The context on top of `cpu` returned from its routine.
    fn end_context(&mut self, cpu: u32) -> Result<(), Halt> {
        let c = cpu as usize;
        let Some(top) = self.cpus[c].stack.last() else {
            return Ok(());
        };
        let (kind, serial, saved, object) =
            (top.kind, top.serial, top.saved_irql, top.payload.object);
        let name = top.payload.name.clone();
        let entry_irql = top.payload.entry_irql;
        let worker = top.payload.worker;
        let irql = self.cpus[c].irql;
        let own_lock =
            (kind == ContextKind::Isr).then(|| self.prog.interrupts[object as usize].lock);
        // A thread body ending owning a lock: 0xC4/0x100A with deadlock
        // detection (P2 = the thread); without it the lock stays held. A DPC
        // or ISR returning holding a lock it took (the ISR's own interrupt
        // lock excepted) is the warning LOCK_HELD_AT_RETURN (contract v2).
        let kept: Vec<Held> = self.held[c]
            .iter()
            .filter(|h| h.ctx == serial && Some(h.lock) != own_lock)
            .cloned()
            .collect();
        if let Some(h) = kept.first() {
            let l = &self.prog.locks[h.lock.0 as usize];
            let what = context_label(kind, &name);
            // A work-item routine is not a thread body: like a DPC or ISR
            // it gets the warning, and 0xE1 for the IRQL it returns at
            // (contract v2, LOCK_HELD_AT_RETURN; 0x100A is for thread bodies).
            if kind == ContextKind::Thread && worker.is_none() {
                if self.prog.checks.deadlock_detection {
                    let detail = format!(
                        "{what} ended still owning spin lock `{}`, acquired at line {}",
                        l.name, h.line
                    );
                    let b = Bugcheck::verifier(
                        vcpu::bugcheck::c4::THREAD_OWNS_LOCK,
                        self.thread_addr(serial),
                        l.address,
                        0,
                    );
                    return Err(self.bugcheck(cpu, b, detail));
                }
            } else {
                let line = self.line_of(cpu);
                for h in &kept {
                    let lname = self.prog.locks[h.lock.0 as usize].name.clone();
                    let taken = h.line;
                    self.warn(verifier::rule::LOCK_HELD_AT_RETURN, &lname, line, || {
                        format!("{what} returned at line {line} still holding spin lock `{lname}` (taken at line {taken}): the lock stays held, and the next code that asks for it spins for ever")
                    });
                }
            }
        }
        match kind {
            ContextKind::Thread => {
                if irql != Irql::PASSIVE {
                    let addr = self
                        .prog
                        .routines
                        .iter()
                        .find(|r| *r.name == *name.split('#').next().unwrap_or(""))
                        .map_or(0, |r| r.address);
                    let detail = format!("thread {name} returned at IRQL {irql}; a system thread must return at PASSIVE_LEVEL");
                    return Err(self.bugcheck(
                        cpu,
                        Bugcheck::new(
                            code::WORKER_THREAD_RETURNED_AT_BAD_IRQL,
                            [addr, irql.0 as u64, 0, 0],
                        ),
                        detail,
                    ));
                }
                self.shared.threads_alive -= 1;
            }
            ContextKind::Dpc => {
                if irql != Irql::DISPATCH {
                    let routine = self.shared.dpcs[object as usize]
                        .routine
                        .unwrap_or(self.prog.dpcs[object as usize].routine);
                    let addr = self.prog.routines[routine as usize].address;
                    let kdpc = self.prog.dpcs[object as usize].address;
                    let detail = format!(
                        "DPC routine {name} returned at IRQL {irql} instead of DISPATCH_LEVEL"
                    );
                    let p1 = ((irql.0 as u64) << 16) | (2 << 8);
                    return Err(self.bugcheck(
                        cpu,
                        Bugcheck::new(code::IRQL_UNEXPECTED_VALUE, [p1, addr, kdpc, 0]),
                        detail,
                    ));
                }
            }
            ContextKind::Isr => {
                if irql != entry_irql && self.prog.checks.automatic {
                    let addr = self.prog.routines
                        [self.prog.interrupts[object as usize].isr as usize]
                        .address;
                    let detail = format!(
                        "ISR {name} was called at IRQL {entry_irql} and returned at IRQL {irql}"
                    );
                    return Err(self.bugcheck(
                        cpu,
                        Bugcheck::verifier(
                            vcpu::bugcheck::c4::ISR_RETURNED_AT_OTHER_IRQL,
                            addr,
                            entry_irql.0 as u64,
                            irql.0 as u64,
                        ),
                        detail,
                    ));
                }
                // The kernel releases the interrupt lock after the ISR.
                if let Some(lock) = own_lock {
                    self.release_interrupt_lock_for_isr(cpu, lock);
                }
            }
        }
        debug!(cpu, ?kind, %name, at = self.cpus[c].clock, "context returns");
        self.notify(cpu, EventKind::ContextEnd { kind, name });
        self.cpus[c].stack.pop();
        if kind == ContextKind::Dpc {
            let st = &mut self.shared.dpcs[object as usize];
            st.runs += 1;
            st.settled_at = st.settled_at.max(self.cpus[c].clock);
            // One pass at DISPATCH_LEVEL: the next queued DPC (those queued
            // meanwhile included) runs without IRQL dropping in between.
            if let Some(d) = self.cpus[c].dpcs.pop() {
                self.shared.dpcs[d as usize].queued_on = None;
                self.start_dpc_saved(cpu, DpcId(d), saved);
                return Ok(());
            }
            self.cpus[c].dpc_requested = false;
            self.set_irql(cpu, saved);
        } else if kind != ContextKind::Thread {
            self.set_irql(cpu, saved);
        } else {
            // The next thread on this processor starts a fresh slice.
            self.cpus[c].slice_start = self.cpus[c].clock;
            if let Some(w) = worker {
                // The worker takes the next queued item, or waits idle.
                self.shared.workers_busy[w.ix()] = false;
                self.dispatch_work(cpu);
            }
        }
        Ok(())
    }

    /// Build the wait-for graph of spinning processors. Returns whether it
    /// has a cycle, and lines describing it.
    fn wait_for_analysis(&self) -> (bool, Vec<String>) {
        let n = self.cpus.len();
        let mut waits: Vec<Option<(usize, Vec<u32>)>> = vec![None; n];
        for (c, p) in self.cpus.iter().enumerate() {
            let Some(top) = p.top() else { continue };
            if let Some(Pending::Acquire(op)) = &top.payload.pending {
                waits[c] = Some((op.lock.0 as usize, self.lock_holders(op.lock)));
            }
        }
        let mut lines = vec![];
        for (c, w) in waits.iter().enumerate() {
            let Some((lock, holders)) = w else { continue };
            let p = &self.cpus[c];
            let top = p
                .top()
                .map(|t| context_label(t.kind, &t.payload.name))
                .unwrap_or_default();
            let line = p
                .top()
                .and_then(|t| t.payload.frames.last())
                .map_or(0, |f| f.line);
            let lname = &self.prog.locks[*lock].name;
            let holding: Vec<String> = self.held[c]
                .iter()
                .map(|h| {
                    format!(
                        "{} (line {})",
                        self.prog.locks[h.lock.0 as usize].name, h.line
                    )
                })
                .collect();
            let by: Vec<String> = holders.iter().map(|h| format!("cpu {h}")).collect();
            lines.push(format!(
                "cpu {c}: {top} holds {} and spins on {lname} at line {line}, held by {}",
                if holding.is_empty() {
                    "nothing".to_string()
                } else {
                    holding.join(", ")
                },
                if by.is_empty() {
                    "nobody".to_string()
                } else {
                    by.join(", ")
                }
            ));
        }
        // Look for a cycle: follow the first holder from each waiting cpu.
        let mut cycle = None;
        for start in 0..n {
            let mut seen = vec![start];
            let mut cur = start;
            while let Some((_, holders)) = &waits[cur] {
                let Some(&next) = holders.first() else { break };
                let next = next as usize;
                if let Some(pos) = seen.iter().position(|&s| s == next) {
                    cycle = Some(seen[pos..].to_vec());
                    break;
                }
                seen.push(next);
                cur = next;
            }
            if cycle.is_some() {
                break;
            }
        }
        if let Some(cyc) = &cycle {
            let chain: Vec<String> = cyc.iter().map(|c| format!("cpu {c}")).collect();
            lines.push(format!(
                "wait-for cycle: {} -> cpu {}",
                chain.join(" -> "),
                cyc[0]
            ));
        }
        (cycle.is_some(), lines)
    }

    /// A wait-for cycle among spinning contexts is a deadlock at once,
    /// whatever interrupts may still arrive (contract v2): a processor whose
    /// running context spins on a lock waits for each processor where a
    /// holder of that lock is, when that holder cannot run — it is the
    /// spinner there, or lies under it (an interrupted context, a thread
    /// waiting for its slice) while that spinner keeps the processor at
    /// DISPATCH_LEVEL or above. 0x133, P1 = 1, P2 = the cumulative allotment
    /// in ticks, with the analysis.
    fn check_deadlock(&mut self) -> Result<(), Halt> {
        let n = self.cpus.len();
        let spinning: Vec<Option<vcpu::LockId>> = self
            .cpus
            .iter()
            .map(|p| {
                p.top().and_then(|t| match &t.payload.pending {
                    Some(Pending::Acquire(op)) if self.is_stuck(t) => Some(op.lock),
                    _ => None,
                })
            })
            .collect();
        let mut edges: Vec<Vec<usize>> = vec![vec![]; n];
        for c in 0..n {
            let Some(lock) = spinning[c] else { continue };
            for (h, holds) in self.held.iter().enumerate() {
                for hold in holds.iter().filter(|x| x.lock == lock) {
                    let p = &self.cpus[h];
                    let Some(top) = p.top() else { continue };
                    if spinning[h].is_none() {
                        continue;
                    }
                    let holder_is_top = top.serial == hold.ctx;
                    let buried = p
                        .stack
                        .iter()
                        .chain(p.ready.iter())
                        .any(|x| x.serial == hold.ctx);
                    if holder_is_top
                        || (buried
                            && (p.irql.is_raised() || p.stack.iter().any(|x| x.serial == hold.ctx)))
                    {
                        edges[c].push(h);
                    }
                }
            }
        }
        // Find a cycle (depth-first, colours).
        let mut colour = vec![0u8; n];
        let mut cycle: Option<Vec<usize>> = None;
        fn dfs(
            v: usize,
            edges: &[Vec<usize>],
            colour: &mut [u8],
            path: &mut Vec<usize>,
        ) -> Option<Vec<usize>> {
            colour[v] = 1;
            path.push(v);
            for &w in &edges[v] {
                if colour[w] == 1 {
                    let pos = path.iter().position(|&x| x == w).unwrap_or(0);
                    return Some(path[pos..].to_vec());
                }
                if colour[w] == 0 {
                    if let Some(c) = dfs(w, edges, colour, path) {
                        return Some(c);
                    }
                }
            }
            path.pop();
            colour[v] = 2;
            None
        }
        for v in 0..n {
            if colour[v] == 0 && spinning[v].is_some() {
                let mut path = vec![];
                if let Some(c) = dfs(v, &edges, &mut colour, &mut path) {
                    cycle = Some(c);
                    break;
                }
            }
        }
        let Some(cyc) = cycle else { return Ok(()) };
        let (_, mut analysis) = self.wait_for_analysis();
        analysis.retain(|l| !l.starts_with("wait-for cycle"));
        let chain: Vec<String> = cyc.iter().map(|c| format!("cpu {c}")).collect();
        analysis.push(format!(
            "wait-for cycle: {} -> cpu {}",
            chain.join(" -> "),
            cyc[0]
        ));
        for &c in &cyc {
            for h in &self.held[c] {
                if let Some(l) = h.lowered_at {
                    analysis.push(format!(
                        "cpu {c}: IRQL was lowered below DISPATCH_LEVEL at line {l} while {} was held",
                        self.prog.locks[h.lock.0 as usize].name
                    ));
                }
            }
        }
        debug!(
            ?analysis,
            "deadlock: a wait-for cycle among spinning contexts"
        );
        let cpu = *cyc.iter().min().unwrap_or(&0) as u32;
        let (cumulative, _) = self.allotments();
        let b = Bugcheck::new(code::DPC_WATCHDOG_VIOLATION, [1, cumulative, 0, 0]);
        let detail = "spin-lock deadlock: the processors in the wait-for cycle below spin on locks that only they could release, so none can ever go on; the DPC watchdog would fire".to_string();
        Err(self.bugcheck_rule(cpu, b, detail, analysis, "SPIN_DEADLOCK"))
    }
}

/// "thread Worker", "DPC SlowDpc", "ISR OnInterrupt".
fn context_label(kind: ContextKind, name: &str) -> String {
    match kind {
        ContextKind::Thread => format!("thread {name}"),
        ContextKind::Dpc => format!("DPC {name}"),
        ContextKind::Isr => format!("ISR {name}"),
    }
}
