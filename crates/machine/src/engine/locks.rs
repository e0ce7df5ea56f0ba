//! The machine's lock table and per-processor holds: the glue between the
//! kernel routines and the two-phase lock models of the `spinlocks` crate.
//! Acquire = ownership/mode checks, the verifier's `AcquireRequested`, then
//! `begin`; a waiter spins by `poll` once per step until granted.

use super::exec::Flow;
use super::words::{ExWord, OrdWord, QueuedWord, RealLocks};
use super::*;
use scenario::program::{LockKind, Place};
use spinlocks::model::{ExLockModel, NodeId, Poll, QueuedLockModel, SpinLockModel};
use vcpu::bugcheck::c4;
use vcpu::{AcquireKind, LockFamily, LockId, LockMode};

/// Owner numbers with this bit are a processor's idle thread (the rest is
/// the processor number); others are a thread context's serial.
pub(super) const IDLE_OWNER: u32 = 0x8000_0000;

/// One KSPIN_LOCK used both ways (ordinary and in-stack queued): on
/// Windows the two share one word, so each kind waits while the other holds
/// it (contract v2, 0xC4/0x1008 row: without deadlock detection "the two
/// kinds still exclude each other"). `p` is one kind's poll, `other_free`
/// whether the other kind's side is free.
fn exclude(p: Poll, other_free: bool) -> Poll {
    if p == Poll::Acquired && !other_free {
        Poll::Spinning
    } else {
        p
    }
}

/// State of one lock.
#[derive(Debug)]
pub(super) enum LockState {
    /// A KSPIN_LOCK: ordinary word and MCS queue (only one may be used).
    Spin {
        ordinary: OrdWord,
        queued: QueuedWord,
        used_ordinary: bool,
        used_queued: bool,
    },
    Ex(ExWord),
    Interrupt(OrdWord),
}

impl LockState {
    /// A free lock on the models (deterministic mode).
    pub(super) fn new(kind: LockKind) -> Self {
        match kind {
            LockKind::Spin => LockState::Spin {
                ordinary: OrdWord::Model(SpinLockModel::new()),
                queued: QueuedWord::Model(QueuedLockModel::new()),
                used_ordinary: false,
                used_queued: false,
            },
            LockKind::Ex => LockState::Ex(ExWord::Model(ExLockModel::new())),
            LockKind::Interrupt(_) => LockState::Interrupt(OrdWord::Model(SpinLockModel::new())),
        }
    }

    /// Lock `ix` of `real` (parallel mode), free.
    pub(super) fn real(kind: LockKind, real: &Arc<RealLocks>, ix: u32) -> Self {
        match kind {
            LockKind::Spin => LockState::Spin {
                ordinary: OrdWord::Real(real.clone(), ix),
                queued: QueuedWord::Real(real.clone(), ix),
                used_ordinary: false,
                used_queued: false,
            },
            LockKind::Ex => LockState::Ex(ExWord::real(real, ix)),
            LockKind::Interrupt(_) => LockState::Interrupt(OrdWord::Real(real.clone(), ix)),
        }
    }
}

/// The family a declaration implies (KSPIN_LOCK counts as ordinary).
pub(super) fn declared_family(kind: LockKind) -> LockFamily {
    match kind {
        LockKind::Spin => LockFamily::Ordinary,
        LockKind::Ex => LockFamily::ReaderWriter,
        LockKind::Interrupt(_) => LockFamily::Interrupt,
    }
}

/// A lock held by a processor.
#[derive(Clone, Debug)]
pub(super) struct Held {
    pub lock: LockId,
    pub mode: LockMode,
    pub family: LockFamily,
    /// Serial of the context that took it.
    pub ctx: u32,
    /// The thread that owns it for deadlock detection: the context's thread,
    /// or for a DPC or ISR the thread it interrupted (the processor's idle
    /// thread when none) — contract v2, `deadlock_detection`.
    pub owner: u32,
    /// The IRQL a `KeAcquireSpinLock` saved (ddi_compliance's
    /// IrqlKeReleaseSpinLock compares the release's NewIrql with it).
    pub saved_irql: Option<Irql>,
    /// The routine that took it (reports name the file of `line`).
    pub routine: Option<u32>,
    /// The line where IRQL was lowered below DISPATCH_LEVEL during the hold.
    pub lowered_at: Option<u32>,
    pub line: u32,
    /// When it was granted (virtual time of the holder's processor).
    pub at: Nanos,
    /// Taken by the kernel itself (an ISR's interrupt lock on entry, the
    /// lock inside an ExInterlocked routine): deadlock detection does not
    /// see it (contract v2, `deadlock_detection`).
    pub by_kernel: bool,
}

/// What a KLOCK_QUEUE_HANDLE holds.
#[derive(Clone, Debug)]
pub(super) struct QueueHandle {
    pub lock: LockId,
    pub node: NodeId,
    pub old_irql: Irql,
    pub acquired: bool,
}

/// ExInterlocked list operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ListOp {
    InsertTail,
    InsertHead,
    RemoveHead,
}

/// What finishes a call once its lock is granted.
#[derive(Clone, Debug)]
pub(super) enum After {
    Nothing,
    /// Write the old IRQL to `&Old`.
    WriteOld {
        place: Place,
        old: Irql,
    },
    /// Return the old IRQL.
    PushOld {
        old: Irql,
        push: bool,
    },
    /// Fill the queue handle.
    Handle {
        slot: u16,
        old: Irql,
    },
    /// Fill a global queue handle.
    GlobalHandle {
        index: u32,
        old: Irql,
    },
    /// Fill a queue handle in a struct field (by its leaf).
    FieldHandle {
        var: u32,
        old: Irql,
    },
    /// Run the ISR routine.
    IsrEntry {
        interrupt: InterruptId,
    },
    /// Run the KeSynchronizeExecution callback.
    Synchronize {
        interrupt: InterruptId,
        routine: RoutineId,
        context: i64,
        old: Irql,
        push: bool,
    },
    /// IoCancelIrp holds the cancel spin lock: cancel IRP object `irp`.
    CancelIrp {
        irp: ObjectId,
        old: Irql,
        push: bool,
    },
    /// Do the list operation, release, restore IRQL.
    List {
        op: ListOp,
        /// A version 1 head (integers), if the head is a global one.
        list: Option<ListId>,
        /// The head as a LIST_ENTRY (its reference), for entries.
        head: Option<i64>,
        value: i64,
        old: Irql,
        push: bool,
    },
}

/// A spinning acquire.
#[derive(Clone, Debug)]
pub(super) struct AcquireOp {
    pub lock: LockId,
    pub family: LockFamily,
    pub mode: LockMode,
    pub how: AcquireKind,
    pub node: Option<NodeId>,
    pub then: After,
    pub started: Nanos,
}

/// A queued release waiting for its successor to link.
#[derive(Clone, Debug)]
pub(super) struct QueuedReleaseOp {
    pub lock: LockId,
    pub node: NodeId,
    /// IRQL to lower to afterwards (None for the FromDpcLevel form).
    pub lower_to: Option<Irql>,
}

fn mode_name(family: LockFamily, mode: LockMode) -> &'static str {
    match (family, mode) {
        (LockFamily::Ordinary, _) => "ordinary",
        (LockFamily::Queued, _) => "queued",
        (LockFamily::Interrupt, _) => "interrupt",
        (LockFamily::ReaderWriter, LockMode::Shared) => "shared",
        (LockFamily::ReaderWriter, LockMode::Exclusive) => "exclusive",
    }
}

impl Held {
    pub(super) fn mode_name(&self) -> &'static str {
        mode_name(self.family, self.mode)
    }
}

impl Machine<'_> {
    pub(super) fn lock_name(&self, lock: LockId) -> &str {
        &self.prog.locks[lock.0 as usize].name
    }

    pub(super) fn lock_addr(&self, lock: LockId) -> u64 {
        self.prog.locks[lock.0 as usize].address
    }

    /// Processors holding `lock` (several for a shared EX_SPIN_LOCK).
    pub(super) fn lock_holders(&self, lock: LockId) -> Vec<u32> {
        let mut out: Vec<u32> = (0..self.held.len() as u32)
            .filter(|&c| self.held[c as usize].iter().any(|h| h.lock == lock))
            .collect();
        out.dedup();
        out
    }

    /// The thread that owns what `cpu`'s running context takes: the thread
    /// at the bottom of its stack, else the processor's idle thread
    /// (contract v2, `deadlock_detection`: an ISR or DPC counts as the thread
    /// it interrupted).
    pub(super) fn owner_of(&self, cpu: u32) -> u32 {
        self.cpus[cpu as usize]
            .stack
            .iter()
            .find(|c| c.kind == ContextKind::Thread)
            .map_or(IDLE_OWNER | cpu, |c| c.serial)
    }

    /// A simulated address for a thread (an idle thread for idle owners):
    /// the "thread" parameters of 0xC4/0x1004 and 0x100A.
    pub(super) fn thread_addr(&self, owner: u32) -> u64 {
        if owner & IDLE_OWNER != 0 {
            0xFFFF_F806_1D00_0000 + (owner & !IDLE_OWNER) as u64 * 0x1000
        } else {
            0xFFFF_C000_0100_0000 + owner as u64 * 0x1000
        }
    }

    /// "thread Worker", "the idle thread of cpu 1".
    pub(super) fn owner_label(&self, owner: u32) -> String {
        if owner & IDLE_OWNER != 0 {
            format!("the idle thread of cpu {}", owner & !IDLE_OWNER)
        } else {
            self.label_of(owner)
                .unwrap_or_else(|| "a thread that has ended".into())
        }
    }

    /// The hold of `lock` by thread `owner`, on any processor.
    pub(super) fn held_by_owner(&self, owner: u32, lock: LockId) -> Option<Held> {
        self.held
            .iter()
            .flat_map(|h| h.iter())
            .find(|h| h.lock == lock && h.owner == owner && !h.by_kernel)
            .cloned()
    }

    /// Deadlock detection's checks of a release (contract v2, in order):
    /// 0x1007 when nobody owns `lock`, 0x1004 when another thread does.
    pub(super) fn dd_release_ok(
        &mut self,
        cpu: u32,
        lock: LockId,
        routine: &str,
    ) -> Result<(), Halt> {
        if !self.prog.checks.deadlock_detection {
            return Ok(());
        }
        let owner = self.owner_of(cpu);
        let holds: Vec<Held> = self
            .held
            .iter()
            .flat_map(|h| h.iter())
            .filter(|h| h.lock == lock)
            .cloned()
            .collect();
        if holds.iter().any(|h| h.owner == owner) {
            return Ok(());
        }
        let addr = self.lock_addr(lock);
        let name = self.lock_name(lock).to_string();
        Err(match holds.first() {
            None => {
                let detail = format!(
                    "{routine}(&{name}) released a spin lock that no thread owns (never acquired, or already released)"
                );
                self.bugcheck(
                    cpu,
                    Bugcheck::verifier(c4::RELEASED_BEFORE_ACQUIRED, addr, 0, 0),
                    detail,
                )
            }
            Some(h) => {
                let detail = format!(
                    "{routine}(&{name}) by {} released a spin lock that {} owns (taken at line {}): a spin lock must be released by the thread that acquired it",
                    self.owner_label(owner),
                    self.owner_label(h.owner),
                    h.line
                );
                let b = Bugcheck::verifier(
                    c4::RELEASED_BY_WRONG_THREAD,
                    addr,
                    self.thread_addr(h.owner),
                    self.thread_addr(owner),
                );
                self.bugcheck(cpu, b, detail)
            }
        })
    }

    fn held_here(&self, cpu: u32, lock: LockId) -> Option<&Held> {
        self.held[cpu as usize]
            .iter()
            .rev()
            .find(|h| h.lock == lock)
    }

    /// Checks, verifier notification and the first phase of an acquire.
    pub(super) fn acquire(
        &mut self,
        cpu: u32,
        lock: LockId,
        family: LockFamily,
        mode: LockMode,
        how: AcquireKind,
        then: After,
    ) -> Result<Flow, Halt> {
        let c = cpu as usize;
        let decl = &self.prog.locks[lock.0 as usize];
        let irql = self.cpus[c].irql;
        let owner = self.owner_of(cpu);
        let kernel_own = matches!(
            how,
            AcquireKind::IsrEntry | AcquireKind::Interlocked | AcquireKind::Kernel
        );
        // Deadlock detection first: a lock re-acquired by the thread that owns
        // it, whatever its family (contract v2, 0xC4/0x1000).
        if self.prog.checks.deadlock_detection && !kernel_own {
            if let Some(h) = self.held_by_owner(owner, lock) {
                let by = self.held_by(&h);
                let detail = format!(
                    "{} re-acquired spin lock `{}` ({}) that it already owns ({} since line {}, {by}): it would wait for itself forever",
                    self.owner_label(owner),
                    decl.name,
                    mode_name(family, mode),
                    h.mode_name(),
                    h.line
                );
                return Err(self.bugcheck(
                    cpu,
                    Bugcheck::verifier(c4::SELF_DEADLOCK, decl.address, 0, 0),
                    detail,
                ));
            }
        }
        // The kernel's own check: an ordinary or interrupt spin lock this
        // processor already holds (0xF); a queued or EX lock just spins, and
        // so does the cancel spin lock (a queued lock in Windows).
        let queued_in_windows = Some(lock) == self.prog.cancel_lock;
        if (family == LockFamily::Ordinary || family == LockFamily::Interrupt) && !queued_in_windows
        {
            if let Some(h) = self.held_here(cpu, lock).cloned() {
                if h.family == LockFamily::Ordinary || h.family == LockFamily::Interrupt {
                    let by = self.held_by(&h);
                    let lowered = h.lowered_at.map_or(String::new(), |l| {
                        format!(" (IRQL was lowered below DISPATCH_LEVEL at line {l} while it was held, so this processor could run other code)")
                    });
                    let detail = format!(
                        "processor {cpu} already holds spin lock `{}`, taken at line {} by {by}{lowered}; acquiring it again would spin on its own lock forever",
                        decl.name, h.line
                    );
                    return Err(self.bugcheck(
                        cpu,
                        Bugcheck::new(code::SPIN_LOCK_ALREADY_OWNED, [decl.address, 0, 0, 0]),
                        detail,
                    ));
                }
            }
        }
        if let LockState::Spin {
            used_ordinary,
            used_queued,
            ..
        } = &mut self.shared.locks[lock.0 as usize]
        {
            let mixed = match family {
                LockFamily::Queued => *used_ordinary,
                _ => *used_queued,
            };
            if mixed && self.prog.checks.deadlock_detection {
                let (now, before) = if family == LockFamily::Queued {
                    ("in-stack queued", "ordinary")
                } else {
                    ("ordinary", "in-stack queued")
                };
                let detail = format!("spin lock `{}` is acquired with the {now} routines here but was used with the {before} routines before: one KSPIN_LOCK must use one family", decl.name);
                return Err(self.bugcheck(
                    cpu,
                    Bugcheck::verifier(c4::MIXED_ACQUIRE_API, decl.address, 0, 0),
                    detail,
                ));
            }
            if family == LockFamily::Queued {
                *used_queued = true;
            } else {
                *used_ordinary = true;
            }
        }
        self.emit(
            cpu,
            EventKind::AcquireRequested {
                lock,
                family,
                mode,
                how,
                irql,
            },
        )?;
        let begun = match &mut self.shared.locks[lock.0 as usize] {
            LockState::Spin {
                ordinary, queued, ..
            } => match family {
                LockFamily::Queued => queued
                    .begin(cpu)
                    .map(|(n, p)| (exclude(p, ordinary.is_free()), Some(n))),
                _ if !queued.is_free() => Ok((Poll::Spinning, None)),
                _ => Ok((ordinary.begin(cpu), None)),
            },
            LockState::Interrupt(l) => Ok((l.begin(cpu), None)),
            LockState::Ex(l) => Ok(match mode {
                LockMode::Shared => (l.poll_shared(cpu), None),
                LockMode::Exclusive => (l.begin_exclusive(cpu), None),
            }),
        };
        let Ok((poll, node)) = begun else {
            return Err(self.runtime_error(
                cpu,
                format!(
                    "processor {cpu} holds or waits for more than {} in-stack queued spin locks at once (acquiring `{}`): parallel mode's queue-node arena is full",
                    super::words::QUEUE_SLOTS,
                    decl.name
                ),
            ));
        };
        let clock = self.cpus[c].clock;
        let op = AcquireOp {
            lock,
            family,
            mode,
            how,
            node,
            then,
            started: clock,
        };
        match poll {
            Poll::Acquired => self.granted(cpu, op),
            Poll::Spinning => {
                if let Some(w) = &mut self.driver.wall {
                    w.spinning(cpu, lock);
                }
                let exec = &mut self.top_exec(cpu);
                exec.pending = Some(Pending::Acquire(op));
                exec.stuck_at = None;
                self.lock_changed(cpu, lock);
                Ok(Flow::Yield)
            }
        }
    }

    fn held_by(&self, h: &Held) -> String {
        self.label_of(h.ctx)
            .unwrap_or_else(|| "a context that has returned".into())
    }

    /// "thread Worker", "DPC SlowDpc"... of a live context, by serial.
    pub(super) fn label_of(&self, serial: u32) -> Option<String> {
        let running = self
            .cpus
            .iter()
            .flat_map(|p| p.stack.iter().chain(p.ready.iter()))
            .find(|ctx| ctx.serial == serial)
            .map(|ctx| context_label(ctx.kind, &ctx.payload.name));
        running.or_else(|| {
            self.shared
                .waiters
                .iter()
                .find(|w| w.ctx.serial == serial)
                .map(|w| {
                    format!(
                        "{} (blocked)",
                        context_label(w.ctx.kind, &w.ctx.payload.name)
                    )
                })
        })
    }

    /// One spin iteration of a pending operation.
    pub(super) fn poll_pending(&mut self, cpu: u32, p: Pending) -> Result<(), Halt> {
        let c = cpu as usize;
        match p {
            Pending::Wait { result, push } => {
                // Released: the wait returns its status.
                if let Some(status) = result {
                    self.top_exec(cpu).pending = None;
                    if push {
                        self.push(cpu, status);
                    }
                }
            }
            Pending::Stall { until } => {
                // The stall ends at an absolute time: a thread sliced out while
                // stalling may come back after it, and then just finishes.
                let clock = self.cpus[c].clock;
                let next = until.min(clock + STALL_CHUNK_NS).max(clock);
                self.cpus[c].clock = next;
                if next >= until {
                    self.top_exec(cpu).pending = None;
                }
            }
            Pending::Flush { dpcs } => {
                // Polled like a spin; done once every DPC it waits for has
                // run (or left its queue unrun). Seeing that carries the
                // clock of the processor that settled it (random and pct).
                let cost = self.cost(SPIN_NS, SPIN_JITTER_NS);
                self.cpus[c].clock += cost;
                if self.flush_done(&dpcs) {
                    if self.driver.lamport {
                        let seen = dpcs
                            .iter()
                            .map(|&(d, _)| self.shared.dpcs[d.ix()].settled_at)
                            .max()
                            .unwrap_or(0);
                        let p = &mut self.cpus[c];
                        p.clock = p.clock.max(seen);
                    }
                    self.top_exec(cpu).pending = None;
                }
            }
            Pending::Acquire(op) => {
                // Under random and pct, seeing the lock's state carries the
                // clock of the processor that last changed it.
                if self.driver.lamport {
                    let seen = self.shared.lock_clock[op.lock.0 as usize];
                    let p = &mut self.cpus[c];
                    p.clock = p.clock.max(seen);
                }
                let cost = self.cost(SPIN_NS, SPIN_JITTER_NS);
                self.cpus[c].clock += cost;
                let (poll, progress) = match &mut self.shared.locks[op.lock.0 as usize] {
                    LockState::Spin {
                        ordinary, queued, ..
                    } => match op.node {
                        Some(n) => {
                            let (p, progress) = queued.poll(n);
                            (exclude(p, ordinary.is_free()), progress)
                        }
                        None if !queued.is_free() => (Poll::Spinning, false),
                        None => (ordinary.poll(cpu), false),
                    },
                    LockState::Interrupt(l) => (l.poll(cpu), false),
                    LockState::Ex(l) => match op.mode {
                        LockMode::Shared => (l.poll_shared(cpu), false),
                        LockMode::Exclusive => (l.poll_exclusive(cpu), false),
                    },
                };
                match poll {
                    Poll::Acquired => {
                        self.top_exec(cpu).pending = None;
                        // The call is complete; the context goes on next step.
                        self.granted(cpu, op)?;
                    }
                    Poll::Spinning => {
                        if progress {
                            self.lock_changed(cpu, op.lock);
                        }
                        let epoch = self.shared.lock_epoch;
                        self.top_exec(cpu).stuck_at = Some(epoch);
                    }
                }
            }
            Pending::QueuedRelease(op) => {
                let cost = self.cost(SPIN_NS, SPIN_JITTER_NS);
                self.cpus[c].clock += cost;
                let done = match &mut self.shared.locks[op.lock.0 as usize] {
                    LockState::Spin { queued, .. } => {
                        queued.poll_release(op.node) == Poll::Acquired
                    }
                    _ => true,
                };
                if done {
                    self.top_exec(cpu).pending = None;
                    self.finish_queued_release(cpu, op.lock, op.lower_to)?;
                } else {
                    self.top_exec(cpu).stuck_at = None;
                }
            }
        }
        Ok(())
    }

    /// The lock is ours: record the hold, tell the observers, finish the call.
    pub(super) fn granted(&mut self, cpu: u32, op: AcquireOp) -> Result<Flow, Halt> {
        let c = cpu as usize;
        self.lock_changed(cpu, op.lock);
        if let Some(w) = &mut self.driver.wall {
            w.granted(cpu, op.lock);
        }
        let (serial, clock, line, routine) = {
            let p = &self.cpus[c];
            (
                p.top().map_or(0, |t| t.serial),
                p.clock,
                p.top().map_or(0, |t| self.context_line(t)),
                p.top().and_then(|t| self.context_routine(t)),
            )
        };
        let owner = self.owner_of(cpu);
        let saved_irql = match &op.then {
            After::WriteOld { old, .. }
            | After::PushOld { old, .. }
            | After::CancelIrp { old, .. } => Some(*old),
            _ => None,
        };
        self.held[c].push(Held {
            lock: op.lock,
            mode: op.mode,
            family: op.family,
            ctx: serial,
            owner,
            saved_irql,
            line,
            routine,
            at: clock,
            lowered_at: None,
            by_kernel: matches!(
                op.how,
                AcquireKind::IsrEntry | AcquireKind::Interlocked | AcquireKind::Kernel
            ),
        });
        let spun = clock - op.started;
        self.emit(
            cpu,
            EventKind::Acquired {
                lock: op.lock,
                family: op.family,
                mode: op.mode,
                how: op.how,
                spun,
            },
        )?;
        match op.then {
            After::Nothing => Ok(Flow::Next),
            After::WriteOld { place, old } => {
                self.store_place(cpu, place, old.0 as i64)?;
                Ok(Flow::Next)
            }
            After::PushOld { old, push } => {
                if push {
                    self.push(cpu, old.0 as i64);
                }
                Ok(Flow::Next)
            }
            After::CancelIrp { irp, old, push } => self.cancel_irp_locked(cpu, irp, old, push),
            After::Handle { slot, old } => {
                let node = op.node.expect("queued acquire has a node");
                let frame = self.frame(cpu);
                if let Some(v) = frame.locals.get_mut(slot as usize) {
                    *v = Value::Handle(Some(QueueHandle {
                        lock: op.lock,
                        node,
                        old_irql: old,
                        acquired: true,
                    }));
                }
                Ok(Flow::Next)
            }
            After::GlobalHandle { index, old } => {
                let node = op.node.expect("queued acquire has a node");
                if let Some(h) = self.shared.handles.get_mut(index as usize) {
                    *h = Some(QueueHandle {
                        lock: op.lock,
                        node,
                        old_irql: old,
                        acquired: true,
                    });
                }
                Ok(Flow::Next)
            }
            After::FieldHandle { var, old } => {
                let node = op.node.expect("queued acquire has a node");
                self.shared.field_handles.insert(
                    var,
                    Some(QueueHandle {
                        lock: op.lock,
                        node,
                        old_irql: old,
                        acquired: true,
                    }),
                );
                Ok(Flow::Next)
            }
            After::IsrEntry { interrupt } => {
                let isr = self.prog.interrupts[interrupt.ix()].isr;
                let mut frame = self.new_frame(isr, vec![], OnReturn::ContextEnd);
                frame.stack_base = 0;
                self.top_exec(cpu).frames.push(frame);
                Ok(Flow::Yield)
            }
            After::Synchronize {
                interrupt,
                routine,
                context,
                old,
                push,
            } => self.call(
                cpu,
                routine,
                vec![context],
                OnReturn::Synchronize {
                    interrupt,
                    old_irql: old,
                    push_result: push,
                },
            ),
            After::List {
                op: lop,
                list,
                head,
                value,
                old,
                push,
            } => {
                // Entries (LIST_ENTRY links) when the value is one, or when
                // a remove finds no version 1 integers; else integers.
                let integers = list.is_some_and(|l| !self.shared.lists[l.ix()].is_empty());
                let entries = match lop {
                    ListOp::RemoveHead => !integers,
                    _ => value & scenario::program::REF_TAG != 0,
                };
                if let (true, Some(h)) = (entries, head) {
                    let result = self.interlocked_entry_op(cpu, lop, h, value)?;
                    self.release_held(cpu, op.lock, LockFamily::Ordinary, LockMode::Exclusive);
                    self.set_irql(cpu, old);
                    if push {
                        self.push(cpu, result);
                    }
                    return Ok(Flow::Next);
                }
                let Some(list) = list else {
                    self.release_held(cpu, op.lock, LockFamily::Ordinary, LockMode::Exclusive);
                    self.set_irql(cpu, old);
                    if push {
                        self.push(cpu, 0);
                    }
                    return Ok(Flow::Next);
                };
                let q = &mut self.shared.lists[list.ix()];
                // Like the WDK: an insert returns the entry that was at that end
                // before (NULL, 0, when the list was empty); a remove returns the
                // removed entry or NULL.
                let result = match lop {
                    ListOp::InsertTail => {
                        let before = q.back().copied().unwrap_or(0);
                        q.push_back(value);
                        before
                    }
                    ListOp::InsertHead => {
                        let before = q.front().copied().unwrap_or(0);
                        q.push_front(value);
                        before
                    }
                    ListOp::RemoveHead => q.pop_front().unwrap_or(0),
                };
                self.release_held(cpu, op.lock, LockFamily::Ordinary, LockMode::Exclusive);
                self.set_irql(cpu, old);
                if push {
                    self.push(cpu, result);
                }
                Ok(Flow::Next)
            }
        }
    }

    /// Release in the model and drop the hold; emits `Released`.
    pub(super) fn release_held(
        &mut self,
        cpu: u32,
        lock: LockId,
        family: LockFamily,
        mode: LockMode,
    ) {
        let c = cpu as usize;
        self.lock_changed(cpu, lock);
        match &mut self.shared.locks[lock.0 as usize] {
            LockState::Spin { ordinary, .. } if family != LockFamily::Queued => {
                let _ = ordinary.release(cpu);
            }
            LockState::Spin { .. } => {}
            LockState::Interrupt(l) => {
                let _ = l.release(cpu);
            }
            LockState::Ex(l) => {
                // A release the model refuses (not held, or held in the
                // other mode) changes the word as the retail kernel would.
                match mode {
                    LockMode::Shared => {
                        if l.release_shared(cpu).is_err() {
                            l.force_release_shared();
                        }
                    }
                    LockMode::Exclusive => {
                        if l.release_exclusive(cpu).is_err() {
                            l.force_release_exclusive();
                        }
                    }
                }
            }
        }
        if let Some(i) = self.held[c].iter().rposition(|h| h.lock == lock) {
            self.held[c].remove(i);
            if let Some(w) = &mut self.driver.wall {
                w.released(cpu, lock);
            }
        }
        self.notify(cpu, EventKind::Released { lock, family, mode });
    }

    /// Lower IRQL after a release (contract v2 order): with the automatic
    /// checks 0xC4/0x31 when the saved IRQL is higher than the current one,
    /// or (P4 = 1) when a DPC routine drops below DISPATCH_LEVEL; with
    /// the warning IRQL_LOWERED_WHILE_HOLDING when it drops below
    /// DISPATCH_LEVEL while a spin lock is still held (deadlock detection's
    /// 0x1003 was checked before the release).
    pub(super) fn lower_after_release(
        &mut self,
        cpu: u32,
        released: LockId,
        to: Irql,
    ) -> Result<(), Halt> {
        let c = cpu as usize;
        let cur = self.cpus[c].irql;
        if self.prog.checks.automatic && to > cur {
            let detail = format!("releasing `{}` asked to lower IRQL to {to}, above the current IRQL {cur}: the saved IRQL is wrong", self.lock_name(released));
            return Err(self.bugcheck(
                cpu,
                Bugcheck::verifier(c4::LOWER_TO_HIGHER, cur.0 as u64, to.0 as u64, 0),
                detail,
            ));
        }
        if to < Irql::DISPATCH {
            self.dpc_lowers_below_dispatch(cpu, to)?;
            self.lowered_while_holding(cpu, to);
        }
        self.set_irql(cpu, to);
        Ok(())
    }

    pub(super) fn finish_queued_release(
        &mut self,
        cpu: u32,
        lock: LockId,
        lower_to: Option<Irql>,
    ) -> Result<(), Halt> {
        self.release_held(cpu, lock, LockFamily::Queued, LockMode::Exclusive);
        match lower_to {
            Some(to) => self.lower_after_release(cpu, lock, to),
            None => Ok(()),
        }
    }

    /// The kernel's acquisition of an interrupt lock before an ISR runs.
    pub(super) fn begin_isr_lock(&mut self, cpu: u32, interrupt: InterruptId) -> Result<(), Halt> {
        let lock = self.prog.interrupts[interrupt.ix()].lock;
        self.acquire(
            cpu,
            lock,
            LockFamily::Interrupt,
            LockMode::Exclusive,
            AcquireKind::IsrEntry,
            After::IsrEntry { interrupt },
        )
        .map(|_| ())
    }

    pub(super) fn release_interrupt_lock_for_isr(&mut self, cpu: u32, lock: LockId) {
        if self.held_here(cpu, lock).is_some() {
            self.release_held(cpu, lock, LockFamily::Interrupt, LockMode::Exclusive);
        }
    }

    /// End of a KeSynchronizeExecution callback: release and lower.
    pub(super) fn end_synchronize(
        &mut self,
        cpu: u32,
        interrupt: InterruptId,
        old: Irql,
    ) -> Result<(), Halt> {
        let lock = self.prog.interrupts[interrupt.ix()].lock;
        self.release_held(cpu, lock, LockFamily::Interrupt, LockMode::Exclusive);
        self.lower_after_release(cpu, lock, old)
    }
}
