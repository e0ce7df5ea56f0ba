//! The parallel driver (`--mode parallel`): every virtual processor is an OS
//! thread pinned to a core (processor `i` on core `i mod cores`, so more
//! processors than cores work), running the same interpreter and kernel
//! routines as deterministic mode.
//!
//! Design (this version): the machine's state is shared under one machine
//! lock (`parking_lot::Mutex`), taken by a processor thread for one step —
//! its safe point and one statement or one spin iteration — and released
//! between steps. So the OS decides which processor's step comes next: an
//! unguarded read-modify-write loses updates for real, lock handoffs and
//! unfairness come from real thread timing, and runs are not reproducible.
//! Lock words are still the two-phase models of `spinlocks::model` updated
//! under the machine lock (the same code as deterministic mode), not the
//! real locks: contention on a lock is real contention on the machine lock.
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
//! wrong statements); `--timeout` follows the wall clock
//! (0 = the first processor's first turn) is the wall clock of `--timeout`
//! only; `duration` and the 100 ms limit are measured on the largest
//! processor clock, as in deterministic mode; a stall also waits for real.
//!
//! Never hangs: the first bugcheck stops every processor at its next step;
//! a wait-for cycle among spinning processors is found at once by the same
//! analysis as deterministic mode (0x133); a stretch at DISPATCH_LEVEL past
//! `watchdog` (CPU time) is 0x133; the calling thread is a watchdog that
//! cuts the run off after `timeout` of wall time with TIME_LIMIT_REACHED.

use super::*;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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
    /// Wall time of the run, in ns.
    pub wall_ns: u64,
}

/// The lock around the machine's state. With no more processors than
/// cores it is a FIFO ticket spin lock, so the processor threads take
/// steps in turn (a waiter spins on its own core; a spinning processor
/// cannot starve the holder of a scenario lock); with more, a parking
/// mutex, so waiters do not burn the cores the running ones need.
trait MachineLock<'p>: Sync {
    fn with<R>(&self, f: impl FnOnce(&mut Machine<'p>) -> R) -> R;
    /// Spin-loop hints a spinning processor spends outside the lock after
    /// a spin iteration that found its scenario lock taken: none with the
    /// FIFO lock (turns already alternate), some with the parking one.
    const SPIN_BACKOFF: u32;
}

impl<'p> MachineLock<'p> for spin::mutex::TicketMutex<Machine<'p>> {
    const SPIN_BACKOFF: u32 = 0;
    fn with<R>(&self, f: impl FnOnce(&mut Machine<'p>) -> R) -> R {
        f(&mut self.lock())
    }
}

impl<'p> MachineLock<'p> for Mutex<Machine<'p>> {
    const SPIN_BACKOFF: u32 = 64;
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
            wall_ns: 0,
        }
    }
}

/// Run `prog` in parallel mode; `timeout` bounds its wall time.
pub fn run_parallel(prog: &Program, timeout: Duration) -> (RunReport, ParallelFacts) {
    let mut m = Machine::new(prog, Schedule::timing(prog.seed));
    m.driver.parallel = true;
    let n = m.cpus.len();
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
    let mut start = Instant::now();
    let arrived = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        let (done, facts, ready) = (&done, &facts, &ready);
        let arrived = &arrived;
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
                arrived.fetch_add(1, Ordering::AcqRel);
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
            });
        }
        ready.wait();
        start = Instant::now();
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
    facts.wall_ns = start.elapsed().as_nanos() as u64;
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

/// What a processor thread does outside the lock after its step.
#[derive(Clone, Copy, PartialEq, Eq)]
enum After {
    /// Go on.
    Next,
    /// Its spin iteration found the lock still taken: spin a little.
    Spin,
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
    while !done.load(Ordering::Acquire) {
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
                irql_ns[irql] += m.cpus[i].clock.saturating_sub(before);
                let top = m.cpus[i].top();
                let stuck = top.is_some_and(|c| m.is_stuck(c));
                let stalling =
                    top.is_some_and(|c| matches!(c.payload.pending, Some(Pending::Stall { .. })));
                if stepped.is_ok() && stuck {
                    // A deadlock stops the run: the turn ends below.
                    let _ = m.check_deadlock();
                }
                after = if stuck {
                    After::Spin
                } else if stalling {
                    After::Stall
                } else {
                    After::Next
                };
                let mid_read = m.cpus[i].top().is_some_and(|c| c.payload.mid_statement);
                if after != After::Next
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
                    // A spinner leaves the machine to the holder meanwhile.
                    After::Spin => {
                        for _ in 0..L::SPIN_BACKOFF {
                            std::hint::spin_loop();
                        }
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
                // (an idle processor's clock does not move meanwhile).
                idle = idle.saturating_add(1);
                if idle > IDLE_NAP_AFTER {
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

    /// Nothing runs anywhere and nothing will arrive.
    fn parallel_run_over(&self) -> bool {
        !(0..self.cpus.len()).any(|c| self.busy(c))
            && !self.arrivals_matter()
            && self.next_timed_event().is_none()
    }
}
