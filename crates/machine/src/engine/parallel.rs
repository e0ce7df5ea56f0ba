//! The parallel driver (`--mode parallel`): every virtual processor is an OS
//! thread pinned to a core (processor `i` on core `i mod cores`, so more
//! processors than cores work), running the same interpreter and kernel
//! routines as deterministic mode.
//!
//! What is real: scenario data are `AtomicI64` cells shared by the
//! processor threads ([`words::DataStore`]); the scenario's locks are the
//! real guard-free locks of `spinlocks::raw` ([`words::RealLocks`]: the
//! owner is the processor index, in-stack queued nodes come from a
//! per-processor arena, a halted run abandons them); a processor whose
//! lock is taken spins on the real lock word from its own OS thread, and
//! one that re-reads data nobody wrote watches the real cell, both outside
//! the machine lock, until the memory changes (so the holder, or the
//! writer, runs meanwhile, and the handoff crosses cores as real cache
//! line transfers do); interrupts, DPCs, ready threads and work items for
//! another processor set its mailbox word, which its watching or idle
//! thread sees at once and handles at its next safe point.
//!
//! What is serialised: everything else a statement does — the
//! interpreter's step, the kernel routine's checks, the verifier and
//! statistics — runs under one machine lock (`parking_lot::Mutex`, or a
//! FIFO ticket lock with no more processors than cores), taken by a
//! processor thread for one turn (its safe point and up to
//! [`STEPS_PER_TURN`] statements, ending early after every read of shared
//! data, every release and every spin). So the verifier sees one merged
//! event stream in order, every stop is checked at once, and the acquire's
//! read-modify-write of a real lock word happens in a turn; which processor
//! takes the next turn, how long a spin lasts and what interleaves with
//! what are decided by real thread timing: an unguarded read-modify-write
//! loses updates for real, and runs are not reproducible.
//!
//! Time: a processor's clock advances by the nominal cost of what it does
//! (100 ns a statement, 50 ns a spin iteration, a stall's length), so
//! neither waiting for the machine lock nor the OS preempting a processor
//! thread adds to hold times, watchdogs or warnings (the contract asks for
//! the thread's CPU time for that reason; nominal costs are the same idea
//! made independent of how loaded the machine is); how many spin
//! iterations a wait takes, and what interleaves with what, is decided by
//! real thread timing. Interrupt lines and `SimFireInterrupt` follow the
//! processor's own clock (the contract says the wall clock; at the
//! interpreter's speed a statement takes about ten times its nominal cost
//! in real time, so a wall-clock line would land µs-scale arrivals at the
//! wrong statements); `--timeout` follows the wall clock (0 = every
//! processor thread started); `duration` and the 100 ms limit are measured
//! on the largest processor clock, as in deterministic mode; a stall also
//! waits for real.
//!
//! Never hangs: the first bugcheck sets the halt flag, which every
//! processor sees at its next turn or its next load while watching; a
//! wait-for cycle among spinning processors is found by the same analysis
//! as deterministic mode (0x133) at the spinner's next turn (a watch ends
//! after [`WATCH_LOADS`] loads at most); a stretch at DISPATCH_LEVEL past
//! `watchdog` (processor clock) is 0x133; the calling thread is a
//! watchdog that cuts the run off after `timeout` of wall time with
//! TIME_LIMIT_REACHED.

use super::*;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};
use vcpu::LockId;
use words::{DataStore, RealLocks};

/// Default `--timeout` of a parallel run (contract: `10000ms`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(10_000);

/// What the parallel driver adds to a report.
#[derive(Clone, Debug, Default)]
pub struct ParallelFacts {
    /// Per processor: the core its thread was pinned to (None: pinning
    /// failed or no cores were reported).
    pub cores: Vec<Option<usize>>,
    /// Per processor: CPU time spent at each IRQL 0..=15, in ns.
    pub irql_ns: Vec<[u64; 16]>,
    /// Steps (statements and spin iterations) each processor took.
    pub steps: Vec<u64>,
    /// Per processor: CPU time its OS thread used from the start line to
    /// its end, in ns (wall time where the OS has no per-thread clock).
    pub cpu_ns: Vec<u64>,
    /// Wall time of the run, in ns.
    pub wall_ns: u64,
    /// Per lock (the program's lock order): wall-clock statistics.
    pub locks: Vec<WallLockStats>,
}

/// Wall-clock lock statistics of a parallel run: per lock, acquisitions,
/// contended ones (the first attempt found it taken), and spin and hold
/// times in wall-clock ns (`Instant` at the request, the grant and the
/// release, taken under the machine lock).
#[derive(Debug, Default)]
pub(super) struct WallLocks {
    /// Per lock.
    pub locks: Vec<WallLockStats>,
    /// Per processor: spins in progress (lock, since).
    spins: Vec<Vec<(LockId, Instant)>>,
    /// Per processor: holds (lock, since).
    holds: Vec<Vec<(LockId, Instant)>>,
}

/// One lock's wall-clock statistics.
#[derive(Clone, Copy, Debug, Default)]
pub struct WallLockStats {
    pub acquisitions: u64,
    pub contended: u64,
    /// Spins: granted, or cut off by the end of the run.
    pub spin: WallSpan,
    /// Holds: released, or cut off by the end of the run.
    pub hold: WallSpan,
}

/// Durations of one kind (spins or holds), in wall-clock ns.
#[derive(Clone, Copy, Debug, Default)]
pub struct WallSpan {
    pub count: u64,
    pub total_ns: u64,
    pub max_ns: u64,
}

impl WallSpan {
    fn add(&mut self, since: Instant, now: Instant) {
        let ns = now.saturating_duration_since(since).as_nanos() as u64;
        self.count += 1;
        self.total_ns += ns;
        self.max_ns = self.max_ns.max(ns);
    }

    /// The mean, in ns (0 when there is none).
    pub fn mean_ns(&self) -> u64 {
        self.total_ns / self.count.max(1)
    }
}

impl WallLocks {
    fn new(locks: usize, cpus: usize) -> Self {
        WallLocks {
            locks: vec![WallLockStats::default(); locks],
            spins: vec![Vec::new(); cpus],
            holds: vec![Vec::new(); cpus],
        }
    }

    /// `cpu`'s first attempt at `lock` found it taken: a contended
    /// acquisition (counted even if the run ends before the grant, as the
    /// LOCKS table counts it).
    pub(super) fn spinning(&mut self, cpu: u32, lock: LockId) {
        self.locks[lock.0 as usize].contended += 1;
        self.spins[cpu as usize].push((lock, Instant::now()));
    }

    /// The run ended: spins and holds still going count to now, in the
    /// means and the longest alike.
    fn finish(mut self) -> Vec<WallLockStats> {
        let now = Instant::now();
        for &(l, t) in self.spins.iter().flatten() {
            self.locks[l.0 as usize].spin.add(t, now);
        }
        for &(l, t) in self.holds.iter().flatten() {
            self.locks[l.0 as usize].hold.add(t, now);
        }
        self.locks
    }

    /// `cpu` got `lock`.
    pub(super) fn granted(&mut self, cpu: u32, lock: LockId) {
        let now = Instant::now();
        let s = &mut self.locks[lock.0 as usize];
        s.acquisitions += 1;
        let spins = &mut self.spins[cpu as usize];
        if let Some(i) = spins.iter().rposition(|&(l, _)| l == lock) {
            s.spin.add(spins.remove(i).1, now);
        }
        self.holds[cpu as usize].push((lock, now));
    }

    /// `cpu` released `lock`.
    pub(super) fn released(&mut self, cpu: u32, lock: LockId) {
        let holds = &mut self.holds[cpu as usize];
        if let Some(i) = holds.iter().rposition(|&(l, _)| l == lock) {
            let since = holds.remove(i).1;
            self.locks[lock.0 as usize].hold.add(since, Instant::now());
        }
    }
}

/// The lock around the machine's state. With no more processors than
/// cores it is a FIFO ticket spin lock, so the processor threads take
/// steps in turn (a waiter spins on its own core; a spinning processor
/// cannot starve the holder of a scenario lock); with more, a parking
/// mutex, so waiters do not burn the cores the running ones need.
trait MachineLock<'p>: Sync {
    fn with<R>(&self, f: impl FnOnce(&mut Machine<'p>) -> R) -> R;
    /// More processor threads than cores (the parking lock): a watching
    /// thread yields now and then.
    const OVERSUBSCRIBED: bool;
}

impl<'p> MachineLock<'p> for spin::mutex::TicketMutex<Machine<'p>> {
    const OVERSUBSCRIBED: bool = false;
    fn with<R>(&self, f: impl FnOnce(&mut Machine<'p>) -> R) -> R {
        f(&mut self.lock())
    }
}

impl<'p> MachineLock<'p> for Mutex<Machine<'p>> {
    const OVERSUBSCRIBED: bool = true;
    fn with<R>(&self, f: impl FnOnce(&mut Machine<'p>) -> R) -> R {
        f(&mut self.lock())
    }
}

impl ParallelFacts {
    /// Facts of `n` processors that have not run yet.
    fn empty(n: usize) -> Self {
        ParallelFacts {
            cores: vec![None; n],
            irql_ns: vec![[0; 16]; n],
            steps: vec![0; n],
            cpu_ns: vec![0; n],
            wall_ns: 0,
            locks: Vec::new(),
        }
    }
}

/// Run `prog` in parallel mode; `timeout` bounds its wall time.
pub fn run_parallel(prog: &Program, timeout: Duration) -> (RunReport, ParallelFacts) {
    let mut m = Machine::new(prog, Schedule::timing(prog.seed));
    m.driver.parallel = true;
    let n = m.cpus.len();
    // The scenario's locks become real locks; every processor gets a
    // mailbox word.
    let real = Arc::new(words::RealLocks::new(
        prog.locks.iter().map(|l| l.kind),
        n as u32,
        |i| prog.interrupts[i as usize].sync_irql,
    ));
    m.shared.locks = prog
        .locks
        .iter()
        .enumerate()
        .map(|(i, l)| LockState::real(l.kind, &real, i as u32))
        .collect();
    m.shared.real = Some(real);
    m.shared.mailboxes = (0..n).map(|_| AtomicU32::new(0)).collect();
    m.driver.wall = Some(Box::new(WallLocks::new(prog.locks.len(), n)));
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    // DriverEntry first, to completion, before any processor thread starts
    // (the same code as deterministic mode).
    if m.driver_entry().is_err() {
        let report = finish::report(&m, Schedule::timing(prog.seed));
        return (report, ParallelFacts::empty(n));
    }
    let (m, facts) = if n <= cores.len().max(1) {
        let lock = spin::mutex::TicketMutex::new(m);
        let facts = drive(&lock, n, &cores, timeout);
        (lock.into_inner(), facts)
    } else {
        let lock = Mutex::new(m);
        let facts = drive(&lock, n, &cores, timeout);
        (lock.into_inner(), facts)
    };
    let mut m = m;
    let mut facts = facts;
    if m.out.stop.is_none() {
        m.end_blocked_for_ever();
    }
    facts.locks = m.driver.wall.take().map_or_else(Vec::new, |w| w.finish());
    if m.driver.end_time == 0 {
        m.driver.end_time = m.cpus.iter().map(|p| p.clock).max().unwrap_or(0);
    }
    let report = finish::report(&m, Schedule::timing(prog.seed));
    (report, facts)
}

/// Start one pinned thread per processor, all released together when
/// every one is pinned (time 0 of the wall clock), and watch the timeout.
fn drive<'p>(
    machine: &impl MachineLock<'p>,
    n: usize,
    cores: &[core_affinity::CoreId],
    timeout: Duration,
) -> ParallelFacts {
    let done = AtomicBool::new(false);
    let ready = std::sync::Barrier::new(n + 1);
    let facts = Mutex::new(ParallelFacts::empty(n));
    let started = std::sync::OnceLock::<Instant>::new();
    let ended = Mutex::new(None::<Instant>);
    let arrived = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        let (done, facts, ready) = (&done, &facts, &ready);
        let (arrived, started, ended) = (&arrived, &started, &ended);
        for i in 0..n {
            s.spawn(move || {
                let core = (!cores.is_empty()).then(|| cores[i % cores.len()]);
                let pinned = core.is_some_and(core_affinity::set_for_current);
                facts.lock().cores[i] = if pinned { core.map(|c| c.id) } else { None };
                // Warm up (the lock's cache line, this thread's stack) so the
                // first turn is not slower than the next.
                machine.with(|m| m.cpus[i].clock);
                ready.wait();
                // A start line: every processor thread is running before any
                // takes a turn (waking from the barrier takes the OS tens of
                // µs per thread, in which a first one would run alone).
                if arrived.fetch_add(1, Ordering::AcqRel) + 1 == n {
                    let _ = started.set(Instant::now());
                }
                let mut spins = 0u32;
                while arrived.load(Ordering::Acquire) < n {
                    spins = spins.wrapping_add(1);
                    if spins.is_multiple_of(64) {
                        std::thread::yield_now();
                    } else {
                        std::hint::spin_loop();
                    }
                }
                processor_thread(machine, done, facts, i);
                let end = Instant::now();
                let mut last = ended.lock();
                *last = Some(last.map_or(end, |l: Instant| l.max(end)));
            });
        }
        ready.wait();
        // --timeout counts from the start line (the last processor thread
        // to arrive sets it), not from when this thread wakes up.
        while started.get().is_none() && !done.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        let start = *started.get_or_init(Instant::now);
        // The watchdog: the wall-clock timeout.
        while !done.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(1));
            if start.elapsed() > timeout {
                machine.with(|m| {
                    if m.out.stop.is_none() && !m.driver.over {
                        let now = m.cpus.iter().map(|p| p.clock).max().unwrap_or(0);
                        m.driver.end_time = now;
                        m.cut_off(format!(
                            "the parallel run was cut off by --timeout after {} ms of wall time, with threads still running: {{}}",
                            timeout.as_millis()
                        ));
                        m.driver.over = true;
                    }
                });
                done.store(true, Ordering::Release);
            }
        }
    });
    let mut facts = facts.into_inner();
    facts.wall_ns = match (started.get(), ended.into_inner()) {
        (Some(&s), Some(e)) => e.saturating_duration_since(s).as_nanos() as u64,
        _ => 0,
    };
    facts
}

/// What one turn of a processor thread under the machine lock decided.
enum Turn {
    /// The run stopped or is over.
    End,
    /// It stepped.
    Stepped(After),
    /// It had nothing to run.
    Idle,
}

/// What a spinning or data-waiting processor thread watches, outside the
/// machine lock, before its next turn: plain loads of real memory.
#[derive(Clone, Copy)]
enum Watch {
    /// A scenario lock's real word (and its own queue node) as last seen.
    Lock {
        ix: u32,
        node: Option<spinlocks::model::NodeId>,
        seen: u64,
    },
    /// A variable's write count as last seen.
    Data { var: u32, version: u64 },
}

/// Loads a watching processor thread makes at most before it takes a turn
/// anyway (its virtual clock, interrupt arrivals and the deadlock check
/// move only in turns).
const WATCH_LOADS: u32 = 128;

/// The view of real memory a processor thread watches outside the lock.
struct Memory<'a> {
    real: &'a RealLocks,
    data: &'a DataStore,
    mailbox: &'a AtomicU32,
    done: &'a AtomicBool,
    /// More processors than cores: yield now and then while watching.
    oversubscribed: bool,
}

impl Memory<'_> {
    /// Spin on real memory until what `w` watches changes, mail arrives,
    /// the run ends, or [`WATCH_LOADS`] loads.
    fn watch(&self, w: Watch) {
        for k in 0..WATCH_LOADS {
            if self.done.load(Ordering::Relaxed) || self.mailbox.load(Ordering::Relaxed) != 0 {
                return;
            }
            let changed = match w {
                Watch::Lock { ix, node, seen } => self.real.probe(ix, node) != seen,
                Watch::Data { var, version } => self.data.version(var as usize) != version,
            };
            if changed {
                return;
            }
            if self.oversubscribed && k % 32 == 31 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

/// What a processor thread does outside the lock after its step.
#[derive(Clone, Copy)]
enum After {
    /// Go on.
    Next,
    /// Its spin iteration found the lock still taken, or it re-read data
    /// nobody wrote: watch that memory.
    Watch(Watch),
    /// It is inside `KeStallExecutionProcessor`: wait one chunk of real time.
    Stall,
}

/// Steps a processor thread takes per turn under the machine lock at most:
/// fewer handoffs of the lock (and of the machine's cache lines) between
/// cores; still a fine interleaving, since a turn also ends right after
/// every read of shared data (where another processor's write may come in
/// before the statement goes on) and at every spin, stall and idle moment.
const STEPS_PER_TURN: u32 = 8;

/// How far a processor waiting for data may run ahead of the processors
/// that are doing something else, in virtual ns.
const DATA_WAIT_SLACK_NS: Nanos = 1_000;

/// Idle turns after which an idle processor thread naps [`IDLE_NAP`]
/// between looks.
const IDLE_NAP_AFTER: u32 = 256;
const IDLE_NAP: Duration = Duration::from_micros(50);

/// The loop of processor `i`'s OS thread: one step at a time under the
/// machine lock, until the run stops or is over.
///
/// Time: the processor's clock advances by the nominal cost of what it
/// does (100 ns a statement, 50 ns a spin iteration, a stall's length), so
/// neither waiting for the machine lock nor the OS preempting a processor
/// thread — as it must when processors outnumber cores — adds to hold
/// times, watchdogs or warnings; how many spin iterations a wait takes, and
/// what interleaves with what, is decided by real thread timing.
fn processor_thread<'p, L: MachineLock<'p>>(
    machine: &L,
    done: &AtomicBool,
    facts: &Mutex<ParallelFacts>,
    i: usize,
) {
    let me = i as u32;
    let mut irql_ns = [0u64; 16];
    let mut steps = 0u64;
    let mut idle = 0u32;
    let (real, data, mailboxes) = machine.with(|m| {
        (
            m.shared.real.clone().expect("parallel mode has real locks"),
            m.shared.vars.clone(),
            m.shared.mailboxes.clone(),
        )
    });
    let memory = Memory {
        real: &real,
        data: &data,
        mailbox: &mailboxes[i],
        done,
        oversubscribed: L::OVERSUBSCRIBED,
    };
    let thread_cpu = ThreadCpu::start();
    // While this processor spins: (its clock, the running peers' clock)
    // when the spin began (see `keep_pace`).
    let mut pace: Option<(Nanos, Nanos)> = None;
    while !done.load(Ordering::Acquire) {
        // Mail is looked at in this turn's safe point.
        memory.mailbox.store(0, Ordering::Release);
        let turn = machine.with(|m| {
            if m.out.stop.is_some() || m.driver.over {
                return Turn::End;
            }
            // `duration` and the 100 ms limit are measured on the largest
            // processor clock, as in deterministic mode.
            let limit = m.prog.duration.unwrap_or(DEFAULT_LIMIT_NS);
            let now = m.cpus.iter().map(|p| p.clock).max().unwrap_or(0);
            if now >= limit {
                m.driver.end_time = limit;
                m.time_limit(limit);
                m.driver.over = true;
                return Turn::End;
            }
            // Interrupt lines and SimFireInterrupt follow the processor's
            // own clock; an idle processor's clock jumps to its next arrival
            // once another processor's clock has passed it, or when no other
            // processor has anything to run.
            if m.arrivals_matter() {
                while let Some(ai) = m.due_arrival_for(me) {
                    m.deliver_arrival(ai);
                }
            }
            if m.out.stop.is_some() {
                return Turn::End;
            }
            // A tick that stops the run leaves this turn's steps no-ops.
            let mut ticked = Ok(());
            // A timer or timed wait due on this idle processor: its clock
            // jumps to that tick once another clock has passed it, or when
            // nobody else has anything to run (as an arrival's does).
            if !m.busy(i) {
                if let Some((t, c)) = m.next_timed_event().filter(|e| e.1 == i) {
                    let passed = m.cpus.iter().any(|p| p.clock >= t);
                    let others = (0..m.cpus.len()).any(|o| o != c && m.busy(o));
                    if passed || !others {
                        let p = &mut m.cpus[c];
                        p.clock = p.clock.max(t);
                        ticked = m.clock_ticks(me);
                    }
                }
            }
            if !m.busy(i) {
                if m.parallel_run_over() {
                    m.driver.over = true;
                    return Turn::End;
                }
                return Turn::Idle;
            }
            // Up to STEPS_PER_TURN steps per turn (fewer lock handoffs);
            // a turn ends early when the processor spins, stalls, idles or
            // the run stops, so waits and halts are seen at once.
            let mut after = After::Next;
            for _ in 0..STEPS_PER_TURN {
                steps += 1;
                let before = m.cpus[i].clock;
                let irql = m.cpus[i].irql.0.min(15) as usize;
                if !m.count_step(before) {
                    m.driver.over = true;
                    return Turn::End;
                }
                let held_before = m.held[i].len();
                let stepped = ticked.and_then(|()| m.step(me));
                // A release ends the turn, so a processor spinning on that
                // lock can take it before this one comes back for it (a
                // turn of many steps would otherwise release and re-take it
                // unseen, starving the spinner into a false 0x133).
                let released = m.held[i].len() < held_before;
                m.hold_back_data_waiter(i, before);
                let top = m.cpus[i].top();
                let stuck = top.is_some_and(|c| m.is_stuck(c));
                if stuck {
                    m.keep_pace(i, &mut pace);
                } else {
                    pace = None;
                }
                irql_ns[irql] += m.cpus[i].clock.saturating_sub(before);
                let top = m.cpus[i].top();
                let stalling =
                    top.is_some_and(|c| matches!(c.payload.pending, Some(Pending::Stall { .. })));
                if stepped.is_ok() && stuck {
                    // A deadlock stops the run: the turn ends below.
                    let _ = m.check_deadlock();
                }
                after = if stuck {
                    m.watch_for(i).map_or(After::Next, After::Watch)
                } else if stalling {
                    After::Stall
                } else if m.data_waiting(i) {
                    m.watch_for(i).map_or(After::Next, After::Watch)
                } else {
                    After::Next
                };
                let mid_read = m.cpus[i].top().is_some_and(|c| c.payload.mid_statement);
                if !matches!(after, After::Next)
                    || stuck
                    || released
                    || mid_read
                    || m.out.stop.is_some()
                    || !m.busy(i)
                    || m.data_waiting(i)
                {
                    break;
                }
            }
            Turn::Stepped(after)
        });
        match turn {
            Turn::End => {
                done.store(true, Ordering::Release);
                break;
            }
            Turn::Stepped(after) => {
                idle = 0;
                match after {
                    After::Next => {}
                    // A spinner leaves the machine to the others meanwhile
                    // and spins on the real lock word (or the data it
                    // re-reads) until it changes.
                    After::Watch(w) => {
                        memory.watch(w);
                    }
                    // A stall takes real time: one chunk per step.
                    After::Stall => {
                        let t = Instant::now();
                        while t.elapsed() < Duration::from_nanos(STALL_CHUNK_NS) {
                            std::hint::spin_loop();
                        }
                    }
                }
            }
            Turn::Idle => {
                // Back off, so an idle processor does not take the machine
                // lock from busy ones: spin, then yield, then nap briefly
                // (an idle processor's clock does not move meanwhile);
                // mail for it ends the back-off at once.
                idle = idle.saturating_add(1);
                if memory.mailbox.load(Ordering::Acquire) != 0 {
                    idle = 0;
                } else if idle > IDLE_NAP_AFTER {
                    std::thread::sleep(IDLE_NAP);
                } else if idle > 64 {
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
            }
        }
    }
    let mut f = facts.lock();
    f.irql_ns[i] = irql_ns;
    f.steps[i] = steps;
    f.cpu_ns[i] = thread_cpu.elapsed_ns();
}

/// The calling thread's CPU time since [`ThreadCpu::start`]:
/// `CLOCK_THREAD_CPUTIME_ID` on Unix, the wall clock elsewhere (or if the
/// thread clock cannot be read).
struct ThreadCpu {
    at: Option<u64>,
    wall: Instant,
}

impl ThreadCpu {
    fn start() -> Self {
        ThreadCpu {
            at: Self::now(),
            wall: Instant::now(),
        }
    }

    /// The thread's CPU time in ns.
    #[cfg(unix)]
    fn now() -> Option<u64> {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; the clock id is a
        // constant every supported Unix defines.
        let ok = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0;
        ok.then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
    }

    #[cfg(not(unix))]
    fn now() -> Option<u64> {
        None
    }

    fn elapsed_ns(&self) -> u64 {
        match (self.at, Self::now()) {
            (Some(at), Some(now)) => now.saturating_sub(at),
            _ => self.wall.elapsed().as_nanos() as u64,
        }
    }
}

impl Machine<'_> {
    /// An arrival for `cpu` whose time has come: its clock reached it; or,
    /// when `cpu` is idle, the largest clock passed it or nobody else has
    /// anything to run.
    fn due_arrival_for(&self, cpu: u32) -> Option<usize> {
        let c = cpu as usize;
        let next = (0..self.driver.arrivals.len())
            .filter(|&i| self.driver.arrivals[i].cpu == CpuId(cpu))
            .min_by_key(|&i| (self.driver.arrivals[i].at, self.driver.arrivals[i].seq))?;
        let at = self.driver.arrivals[next].at;
        if at <= self.cpus[c].clock {
            return Some(next);
        }
        if self.busy(c) {
            return None;
        }
        let passed = self.cpus.iter().any(|p| p.clock >= at);
        let others = (0..self.cpus.len()).any(|o| o != c && self.busy(o));
        (passed || !others).then_some(next)
    }

    /// A processor that only re-reads data nobody has written since waits
    /// for another processor: its clock may not run ahead of the busiest
    /// clock among the processors that are doing something else (plus
    /// [`DATA_WAIT_SLACK_NS`]), so a peer thread the OS has descheduled
    /// does not make the waiter's hold look long. With no such processor
    /// its clock runs freely (a lone spinner still meets the watchdog).
    fn hold_back_data_waiter(&mut self, i: usize, before: Nanos) {
        if !self.data_waiting(i) {
            return;
        }
        let active = (0..self.cpus.len())
            .filter(|&o| o != i && self.busy(o) && !self.data_waiting(o))
            .map(|o| self.cpus[o].clock)
            .max();
        if let Some(peer) = active {
            let cap = before.max(peer.saturating_add(DATA_WAIT_SLACK_NS));
            let p = &mut self.cpus[i];
            p.clock = p.clock.min(cap);
        }
    }

    /// What processor `i`'s thread should watch outside the lock: the real
    /// word of the lock its top context spins on (and its queue node), or
    /// the variable it re-reads; None for other waits.
    fn watch_for(&self, i: usize) -> Option<Watch> {
        // Not while something for this processor waits on its own clock (a
        // DPC queued for its next tick, an interrupt arrival, a timer or a
        // timed wait): the clock only moves in turns.
        let p = &self.cpus[i];
        if !p.dpcs.is_empty()
            || !p.pending.is_empty()
            || self.next_arrival_at(i).is_some()
            || self.next_timed_event().is_some_and(|(_, c)| c == i)
        {
            return None;
        }
        let top = p.top()?;
        if let Some(Pending::Acquire(op)) = &top.payload.pending {
            let real = self.shared.real.as_ref()?;
            return Some(Watch::Lock {
                ix: op.lock.0,
                node: op.node,
                seen: real.probe(op.lock.0, op.node),
            });
        }
        let (var, version) = top.payload.data_wait?;
        // Only while another processor runs and could write it: with every
        // processor waiting, a watch would only slow the waiters' clocks.
        let writer = (0..self.cpus.len()).any(|o| o != i && self.runs(o) && !self.data_waiting(o));
        (writer && self.shared.vars.version(var as usize) == version)
            .then_some(Watch::Data { var, version })
    }

    /// A processor spinning (on a lock, or for DPCs to flush) spends the
    /// time the processors not spinning spend while it spins (a processor
    /// polling data counts: it runs): its clock advances at least as far
    /// as the busiest running clock has since the spin began (`pace`: both
    /// clocks then). Otherwise a spinner, which takes a turn only when its
    /// watch ends, would fall behind the holder and its DISPATCH_LEVEL
    /// stretch would never meet the watchdog (a holder that never releases
    /// ended the run at the time limit instead of 0x133). Only the
    /// progress counts, not the gap between the clocks: the OS running one
    /// processor thread late makes the clocks drift apart, and importing
    /// that drift would make a DPC that spins briefly look long.
    fn keep_pace(&mut self, i: usize, pace: &mut Option<(Nanos, Nanos)>) {
        let peer = (0..self.cpus.len())
            .filter(|&o| o != i && self.runs(o))
            .map(|o| self.cpus[o].clock)
            .max();
        let Some(peer) = peer else {
            return;
        };
        let mine = self.cpus[i].clock;
        let &mut (mine0, peer0) = pace.get_or_insert((mine, peer));
        self.catch_up(i, mine0 + peer.saturating_sub(peer0));
    }

    /// Processor `o` has something to run and is not spinning.
    fn runs(&self, o: usize) -> bool {
        self.busy(o) && !self.cpus[o].top().is_some_and(|c| self.is_stuck(c))
    }

    /// When processor `i`'s next interrupt arrival is due, if it has one.
    fn next_arrival_at(&self, i: usize) -> Option<Nanos> {
        self.driver
            .arrivals
            .iter()
            .filter(|a| a.cpu.ix() == i)
            .map(|a| a.at)
            .min()
    }

    /// Move processor `i`'s clock forward to `to`, but not past its next
    /// interrupt arrival: that is taken at the next turn's safe point, one
    /// at a time (a jump over several arrivals of one line would merge them
    /// into one interrupt, losing ISR runs a scenario may count).
    fn catch_up(&mut self, i: usize, to: Nanos) {
        let next_arrival = self.next_arrival_at(i);
        let p = &mut self.cpus[i];
        let to = next_arrival.map_or(to, |at| to.min(at.max(p.clock)));
        p.clock = p.clock.max(to);
    }

    /// Nothing runs anywhere and nothing will arrive: no processor is
    /// busy, no timer or timed wait is due, and no interrupt can still
    /// arrive (or none matters). Threads blocked in waits without a timeout
    /// are then blocked for ever, as deterministic mode says.
    fn parallel_run_over(&self) -> bool {
        !(0..self.cpus.len()).any(|c| self.busy(c))
            && self.next_timed_event().is_none()
            && (self.driver.arrivals.is_empty() || !self.arrivals_matter())
    }
}
