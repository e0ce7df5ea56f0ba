//! The kernel routines: IRQL, the four lock families, DPCs, interrupts,
//! ExInterlocked lists, Interlocked data, and the rest. Each checks its IRQL
//! precondition first, then ownership and mode, then hands the lock to
//! [`locks`](super::locks) and the verifier — the contract's order.

use super::exec::Flow;
use super::locks::{After, ListOp, QueuedReleaseOp};
use super::*;
use scenario::check::truncate;
use scenario::kernel::Kr;
use scenario::program::{KernelCall, Place};
use spinlocks::model::{ExReleaseError, Poll};
use vcpu::bugcheck::c4;
use vcpu::{AcquireKind, LockFamily, LockId, LockMode};

fn lock_of(p: &Place) -> LockId {
    match p {
        Place::Lock(l) => *l,
        _ => LockId(0),
    }
}

fn index_of(p: &Place) -> u32 {
    match p {
        Place::Interrupt(i)
        | Place::Dpc(i)
        | Place::List(i)
        | Place::Var(i)
        | Place::Routine(i) => *i,
        Place::Local(s) => *s as u32,
        Place::Lock(l) => l.0,
    }
}

/// DbgPrint lines kept in the report.
const MAX_OUTPUT_LINES: usize = 10_000;

impl Machine<'_> {
    fn irql(&self, cpu: u32) -> Irql {
        self.cpus[cpu as usize].irql
    }

    /// The IRQL precondition of an acquire: an `AtDpcLevel` form needs
    /// DISPATCH_LEVEL or above (else 0xC4/0x40), a raising form must not be
    /// called above it (else 0xC4/0x42). False if the run stopped.
    fn acquire_irql_ok(&mut self, cpu: u32, at_dpc: bool, lock: LockId, routine: &str) -> bool {
        let irql = self.irql(cpu);
        let (bad, sub, why) = if at_dpc {
            (
                irql < Irql::DISPATCH,
                c4::ACQUIRE_AT_DPC_BELOW_DISPATCH,
                "the AtDpcLevel form requires DISPATCH_LEVEL or above already",
            )
        } else {
            (
                irql > Irql::DISPATCH,
                c4::ACQUIRE_ABOVE_DISPATCH,
                "it raises to DISPATCH_LEVEL and must not be called above it",
            )
        };
        !bad || !self.irql_violation(cpu, sub, lock, routine, why)
    }

    /// The IRQL precondition of a release: a `FromDpcLevel` form needs
    /// DISPATCH_LEVEL or above (else 0xC4/0x41), the others exactly
    /// DISPATCH_LEVEL (else 0xC4/0x32). False if the run stopped.
    fn release_irql_ok(&mut self, cpu: u32, from_dpc: bool, lock: LockId, routine: &str) -> bool {
        let irql = self.irql(cpu);
        let (bad, sub, why) = if from_dpc {
            (
                irql < Irql::DISPATCH,
                c4::RELEASE_FROM_DPC_BELOW_DISPATCH,
                "the FromDpcLevel form requires DISPATCH_LEVEL or above",
            )
        } else {
            (irql != Irql::DISPATCH, c4::RELEASE_NOT_AT_DISPATCH, "a spin lock must be released at DISPATCH_LEVEL, with the IRQL its acquire saved (release locks in the reverse order of acquisition, and do not change IRQL while holding one)")
        };
        !bad || !self.irql_violation(cpu, sub, lock, routine, why)
    }

    /// 0xC4 with an IRQL subcode about `lock`; always true (the run stops).
    fn irql_violation(
        &mut self,
        cpu: u32,
        sub: u64,
        lock: LockId,
        routine: &str,
        why: &str,
    ) -> bool {
        let irql = self.irql(cpu);
        let detail = format!(
            "{routine}(&{}) was called at IRQL {irql}: {why}",
            self.lock_name(lock)
        );
        self.bugcheck(
            cpu,
            Bugcheck::verifier(sub, irql.0 as u64, self.lock_addr(lock), 0),
            detail,
        );
        true
    }

    fn finish(&mut self, cpu: u32, k: &KernelCall, v: i64) -> Flow {
        if k.push_result {
            self.push(cpu, v);
        }
        if self.stop.is_some() {
            Flow::Yield
        } else {
            Flow::Next
        }
    }

    pub(super) fn kernel(&mut self, cpu: u32, k: &KernelCall) -> Flow {
        let c = cpu as usize;
        let n = k.values as usize;
        let vals: Vec<i64> = {
            let exec = &mut self.top_exec(cpu);
            let at = exec.stack.len().saturating_sub(n);
            exec.stack.split_off(at)
        };
        let v = |i: usize| vals.get(i).copied().unwrap_or(0);
        let irql = self.irql(cpu);
        let name = scenario::kernel::ROUTINES
            .iter()
            .find(|s| s.kr == k.kr)
            .map_or("?", |s| s.name);
        match k.kr {
            Kr::KeGetCurrentIrql => self.finish(cpu, k, irql.0 as i64),
            Kr::KeGetCurrentProcessorNumber => self.finish(cpu, k, cpu as i64),
            Kr::KeRaiseIrql | Kr::KeRaiseIrqlToDpcLevel => {
                let to = if k.kr == Kr::KeRaiseIrql { v(0) } else { 2 };
                let invalid = !(0..=15).contains(&to);
                if invalid || Irql(to as u8) < irql {
                    {
                        let detail = irql_out_of_range(name, to).unwrap_or_else(|| format!("{name} asked for IRQL {to}, below the current IRQL {irql}: raising must never lower"));
                        self.bugcheck(
                            cpu,
                            Bugcheck::verifier(c4::RAISE_TO_LOWER, irql.0 as u64, to as u64, 0),
                            detail,
                        );
                        return Flow::Yield;
                    }
                }
                self.set_irql(cpu, Irql(to as u8));
                if k.kr == Kr::KeRaiseIrql {
                    if !self.store_place(cpu, k.places[0], irql.0 as i64) {
                        return Flow::Yield;
                    }
                    return self.finish(cpu, k, 0);
                }
                self.finish(cpu, k, irql.0 as i64)
            }
            Kr::KeLowerIrql => {
                let to = v(0);
                let invalid = !(0..=15).contains(&to);
                if invalid || Irql(to as u8) > irql {
                    {
                        let detail = irql_out_of_range("KeLowerIrql", to).unwrap_or_else(|| format!("KeLowerIrql asked for IRQL {to}, above the current IRQL {irql}: lowering must never raise"));
                        self.bugcheck(
                            cpu,
                            Bugcheck::verifier(c4::LOWER_TO_HIGHER, irql.0 as u64, to as u64, 0),
                            detail,
                        );
                        return Flow::Yield;
                    }
                }
                self.set_irql(cpu, Irql(to as u8));
                self.finish(cpu, k, 0)
            }
            Kr::KeInitializeSpinLock => {
                let l = lock_of(&k.places[0]);
                if self.lock_holders(l).is_empty() {
                    self.locks[l.0 as usize] = LockState::new(self.prog.locks[l.0 as usize].kind);
                }
                self.finish(cpu, k, 0)
            }
            Kr::KeAcquireSpinLock | Kr::KeAcquireSpinLockRaiseToDpc => {
                let l = lock_of(&k.places[0]);
                if !self.acquire_irql_ok(cpu, false, l, name) {
                    return Flow::Yield;
                }
                let new = irql.max(Irql::DISPATCH);
                self.set_irql(cpu, new);
                let then = if k.kr == Kr::KeAcquireSpinLock {
                    After::WriteOld {
                        place: k.places[1],
                        old: irql,
                    }
                } else {
                    After::PushOld {
                        old: irql,
                        push: k.push_result,
                    }
                };
                self.acquire(
                    cpu,
                    l,
                    LockFamily::Ordinary,
                    LockMode::Exclusive,
                    AcquireKind::Raising,
                    then,
                )
            }
            Kr::KeAcquireSpinLockAtDpcLevel => {
                let l = lock_of(&k.places[0]);
                if !self.acquire_irql_ok(cpu, true, l, name) {
                    return Flow::Yield;
                }
                self.acquire(
                    cpu,
                    l,
                    LockFamily::Ordinary,
                    LockMode::Exclusive,
                    AcquireKind::AtDpcLevel,
                    After::Nothing,
                )
            }
            Kr::KeReleaseSpinLock | Kr::KeReleaseSpinLockFromDpcLevel => {
                let l = lock_of(&k.places[0]);
                let from_dpc = k.kr == Kr::KeReleaseSpinLockFromDpcLevel;
                if !self.release_irql_ok(cpu, from_dpc, l, name) {
                    return Flow::Yield;
                }
                if !self.check_owned(cpu, l, name, LockFamily::Ordinary) {
                    return Flow::Yield;
                }
                self.release_held(cpu, l, LockFamily::Ordinary, LockMode::Exclusive);
                if !from_dpc && !self.lower_after_release(cpu, l, Irql(v(0).clamp(0, 15) as u8)) {
                    return Flow::Yield;
                }
                self.finish(cpu, k, 0)
            }
            Kr::KeTryToAcquireSpinLockAtDpcLevel => {
                let l = lock_of(&k.places[0]);
                if !self.acquire_irql_ok(cpu, true, l, name) {
                    return Flow::Yield;
                }
                let got = match &mut self.locks[l.0 as usize] {
                    LockState::Spin {
                        ordinary,
                        used_ordinary,
                        ..
                    } => {
                        *used_ordinary = true;
                        ordinary.try_acquire(cpu)
                    }
                    _ => false,
                };
                if got {
                    let clock = self.cpus[c].clock;
                    let op = locks::AcquireOp {
                        lock: l,
                        family: LockFamily::Ordinary,
                        mode: LockMode::Exclusive,
                        how: AcquireKind::AtDpcLevel,
                        node: None,
                        then: After::Nothing,
                        started: clock,
                    };
                    if let Flow::Yield = self.granted(cpu, op) {
                        return Flow::Yield;
                    }
                }
                self.finish(cpu, k, got as i64)
            }
            Kr::KeTestSpinLock => {
                let l = lock_of(&k.places[0]);
                let free = match &self.locks[l.0 as usize] {
                    LockState::Spin {
                        ordinary, queued, ..
                    } => ordinary.is_free() && queued.is_free(),
                    LockState::Interrupt(x) => x.is_free(),
                    LockState::Ex(x) => x.word() == 0,
                };
                self.finish(cpu, k, free as i64)
            }
            Kr::KeAcquireInStackQueuedSpinLock | Kr::KeAcquireInStackQueuedSpinLockAtDpcLevel => {
                let l = lock_of(&k.places[0]);
                let Place::Local(slot) = k.places[1] else {
                    return Flow::Next;
                };
                let at_dpc = k.kr == Kr::KeAcquireInStackQueuedSpinLockAtDpcLevel;
                if !self.acquire_irql_ok(cpu, at_dpc, l, name) {
                    return Flow::Yield;
                }
                if !at_dpc {
                    self.set_irql(cpu, irql.max(Irql::DISPATCH));
                }
                let how = if at_dpc {
                    AcquireKind::AtDpcLevel
                } else {
                    AcquireKind::Raising
                };
                self.acquire(
                    cpu,
                    l,
                    LockFamily::Queued,
                    LockMode::Exclusive,
                    how,
                    After::Handle { slot, old: irql },
                )
            }
            Kr::KeReleaseInStackQueuedSpinLock | Kr::KeReleaseInStackQueuedSpinLockFromDpcLevel => {
                let Place::Local(slot) = k.places[0] else {
                    return Flow::Next;
                };
                let from_dpc = k.kr == Kr::KeReleaseInStackQueuedSpinLockFromDpcLevel;
                let handle = {
                    let f = self.frame(cpu);
                    match f.locals.get_mut(slot as usize) {
                        Some(Value::Handle(h)) => h.take(),
                        _ => None,
                    }
                };
                let Some(h) = handle.filter(|h| h.acquired) else {
                    let detail = format!("{name} was given a KLOCK_QUEUE_HANDLE that holds no lock (never acquired, or already released)");
                    self.bugcheck(
                        cpu,
                        Bugcheck::new(code::SPIN_LOCK_NOT_OWNED, [0, 0, 0, 0]),
                        detail,
                    );
                    return Flow::Yield;
                };
                let l = h.lock;
                if !self.release_irql_ok(cpu, from_dpc, l, name) {
                    return Flow::Yield;
                }
                let lower_to = (!from_dpc).then_some(h.old_irql);
                let poll = match &mut self.locks[l.0 as usize] {
                    LockState::Spin { queued, .. } => queued.begin_release(h.node),
                    _ => Poll::Acquired,
                };
                match poll {
                    Poll::Acquired => {
                        self.finish_queued_release(cpu, l, lower_to);
                        if self.stop.is_some() {
                            return Flow::Yield;
                        }
                        self.finish(cpu, k, 0)
                    }
                    Poll::Spinning => {
                        let exec = &mut self.top_exec(cpu);
                        exec.pending = Some(Pending::QueuedRelease(QueuedReleaseOp {
                            lock: l,
                            node: h.node,
                            lower_to,
                        }));
                        exec.stuck_at = None;
                        Flow::Yield
                    }
                }
            }
            Kr::ExAcquireSpinLockShared
            | Kr::ExAcquireSpinLockExclusive
            | Kr::ExAcquireSpinLockSharedAtDpcLevel
            | Kr::ExAcquireSpinLockExclusiveAtDpcLevel => {
                let l = lock_of(&k.places[0]);
                let shared = matches!(
                    k.kr,
                    Kr::ExAcquireSpinLockShared | Kr::ExAcquireSpinLockSharedAtDpcLevel
                );
                let at_dpc = matches!(
                    k.kr,
                    Kr::ExAcquireSpinLockSharedAtDpcLevel
                        | Kr::ExAcquireSpinLockExclusiveAtDpcLevel
                );
                let mode = if shared {
                    LockMode::Shared
                } else {
                    LockMode::Exclusive
                };
                if !self.acquire_irql_ok(cpu, at_dpc, l, name) {
                    return Flow::Yield;
                }
                let then = if at_dpc {
                    After::Nothing
                } else {
                    self.set_irql(cpu, irql.max(Irql::DISPATCH));
                    After::PushOld {
                        old: irql,
                        push: k.push_result,
                    }
                };
                let how = if at_dpc {
                    AcquireKind::AtDpcLevel
                } else {
                    AcquireKind::Raising
                };
                self.acquire(cpu, l, LockFamily::ReaderWriter, mode, how, then)
            }
            Kr::ExReleaseSpinLockShared
            | Kr::ExReleaseSpinLockExclusive
            | Kr::ExReleaseSpinLockSharedFromDpcLevel
            | Kr::ExReleaseSpinLockExclusiveFromDpcLevel => {
                let l = lock_of(&k.places[0]);
                let shared = matches!(
                    k.kr,
                    Kr::ExReleaseSpinLockShared | Kr::ExReleaseSpinLockSharedFromDpcLevel
                );
                let from_dpc = matches!(
                    k.kr,
                    Kr::ExReleaseSpinLockSharedFromDpcLevel
                        | Kr::ExReleaseSpinLockExclusiveFromDpcLevel
                );
                if !self.release_irql_ok(cpu, from_dpc, l, name) {
                    return Flow::Yield;
                }
                let mode = if shared {
                    LockMode::Shared
                } else {
                    LockMode::Exclusive
                };
                let check = match &self.locks[l.0 as usize] {
                    LockState::Ex(x) => {
                        let ok = if shared {
                            x.holds_shared(cpu)
                        } else {
                            x.holds_exclusive(cpu)
                        };
                        if ok {
                            Ok(())
                        } else if x.holds_shared(cpu) || x.holds_exclusive(cpu) {
                            Err(ExReleaseError::WrongMode)
                        } else {
                            Err(ExReleaseError::NotHeld)
                        }
                    }
                    _ => Err(ExReleaseError::NotHeld),
                };
                match check {
                    Ok(()) => {}
                    Err(ExReleaseError::WrongMode) => {
                        let (said, held) = if shared {
                            ("shared", "exclusive")
                        } else {
                            ("exclusive", "shared")
                        };
                        let detail = format!("`{}` was released {said} with {name}, but processor {cpu} holds it {held}: the release routine must match the acquire", self.lock_name(l));
                        self.bugcheck(
                            cpu,
                            Bugcheck::verifier(c4::RELEASE_WRONG_MODE, self.lock_addr(l), 0, 0),
                            detail,
                        );
                        return Flow::Yield;
                    }
                    Err(ExReleaseError::NotHeld) => {
                        let detail = format!(
                            "{name}(&{}) on processor {cpu}, which does not hold it",
                            self.lock_name(l)
                        );
                        self.bugcheck(
                            cpu,
                            Bugcheck::new(code::SPIN_LOCK_NOT_OWNED, [self.lock_addr(l), 0, 0, 0]),
                            detail,
                        );
                        return Flow::Yield;
                    }
                }
                self.release_held(cpu, l, LockFamily::ReaderWriter, mode);
                if !from_dpc && !self.lower_after_release(cpu, l, Irql(v(0).clamp(0, 15) as u8)) {
                    return Flow::Yield;
                }
                self.finish(cpu, k, 0)
            }
            Kr::ExTryConvertSharedSpinLockExclusive => {
                let l = lock_of(&k.places[0]);
                let (holds_shared, holds_excl) = match &self.locks[l.0 as usize] {
                    LockState::Ex(x) => (x.holds_shared(cpu), x.holds_exclusive(cpu)),
                    _ => (false, false),
                };
                if !holds_shared {
                    if holds_excl {
                        let detail = format!(
                            "{name}(&{}) by processor {cpu}, which holds it exclusive, not shared",
                            self.lock_name(l)
                        );
                        self.bugcheck(
                            cpu,
                            Bugcheck::verifier(c4::RELEASE_WRONG_MODE, self.lock_addr(l), 0, 0),
                            detail,
                        );
                        return Flow::Yield;
                    }
                    if !holds_excl {
                        let detail = format!(
                            "{name}(&{}) by processor {cpu}, which does not hold it",
                            self.lock_name(l)
                        );
                        self.bugcheck(
                            cpu,
                            Bugcheck::new(code::SPIN_LOCK_NOT_OWNED, [self.lock_addr(l), 0, 0, 0]),
                            detail,
                        );
                        return Flow::Yield;
                    }
                    return self.finish(cpu, k, 0);
                }
                let ok = match &mut self.locks[l.0 as usize] {
                    LockState::Ex(x) => x.try_convert(cpu),
                    _ => false,
                };
                if ok {
                    self.lock_changed(cpu, l);
                    if let Some(h) = self.held[c].iter_mut().rev().find(|h| h.lock == l) {
                        h.mode = LockMode::Exclusive;
                    }
                    self.emit(cpu, EventKind::Converted { lock: l });
                }
                self.finish(cpu, k, ok as i64)
            }
            Kr::KeAcquireInterruptSpinLock | Kr::KeSynchronizeExecution => {
                let i = index_of(&k.places[0]);
                let decl = &self.prog.interrupts[i as usize];
                let sync = Irql(decl.sync_irql);
                let lock = decl.lock;
                if irql > sync {
                    let detail = format!("{name}(&{}) was called at IRQL {irql}, above the interrupt's SynchronizeIrql {sync}", decl.name);
                    self.bugcheck(
                        cpu,
                        Bugcheck::verifier(c4::RAISE_TO_LOWER, irql.0 as u64, sync.0 as u64, 0),
                        detail,
                    );
                    return Flow::Yield;
                } else {
                    self.set_irql(cpu, sync);
                }
                let then = if k.kr == Kr::KeSynchronizeExecution {
                    let routine = index_of(&k.places[1]);
                    After::Synchronize {
                        interrupt: i,
                        routine,
                        context: v(0),
                        old: irql,
                        push: k.push_result,
                    }
                } else {
                    After::PushOld {
                        old: irql,
                        push: k.push_result,
                    }
                };
                self.acquire(
                    cpu,
                    lock,
                    LockFamily::Interrupt,
                    LockMode::Exclusive,
                    AcquireKind::Synchronize,
                    then,
                )
            }
            Kr::KeReleaseInterruptSpinLock => {
                let i = index_of(&k.places[0]);
                let lock = self.prog.interrupts[i as usize].lock;
                if !self.check_owned(cpu, lock, name, LockFamily::Interrupt) {
                    return Flow::Yield;
                }
                self.release_held(cpu, lock, LockFamily::Interrupt, LockMode::Exclusive);
                if !self.lower_after_release(cpu, lock, Irql(v(0).clamp(0, 15) as u8)) {
                    return Flow::Yield;
                }
                self.finish(cpu, k, 0)
            }
            Kr::KeInsertQueueDpc => {
                let d = index_of(&k.places[0]);
                let st = &self.dpcs[d as usize];
                if st.queued_on.is_some() {
                    return self.finish(cpu, k, 0);
                }
                let target = st.target.unwrap_or(cpu);
                let imp = st.importance;
                self.cpus[target as usize].dpcs.insert(d, imp);
                self.dpcs[d as usize].queued_on = Some(target);
                // An idle target processor catches up to now before running it.
                let now = self.cpus[c].clock;
                if target != cpu
                    && self.cpus[target as usize].stack.is_empty()
                    && self.cpus[target as usize].clock < now
                {
                    self.cpus[target as usize].clock = now;
                }
                let dname: Arc<str> = self.prog.dpcs[d as usize].name.as_str().into();
                self.emit(
                    cpu,
                    EventKind::DpcQueued {
                        name: dname,
                        target,
                    },
                );
                self.finish(cpu, k, 1)
            }
            Kr::KeRemoveQueueDpc => {
                let d = index_of(&k.places[0]);
                let removed = match self.dpcs[d as usize].queued_on.take() {
                    Some(t) => self.cpus[t as usize].dpcs.remove(d),
                    None => false,
                };
                self.finish(cpu, k, removed as i64)
            }
            Kr::KeSetImportanceDpc => {
                let d = index_of(&k.places[0]);
                self.dpcs[d as usize].importance = match v(0) {
                    0 => Importance::Low,
                    2 => Importance::High,
                    _ => Importance::Medium,
                };
                self.finish(cpu, k, 0)
            }
            Kr::KeSetTargetProcessorDpc => {
                let d = index_of(&k.places[0]);
                let t = v(0);
                if t < 0 || t >= self.prog.cpus as i64 {
                    self.assertion(cpu, format!("KeSetTargetProcessorDpc(&{}, {t}): processor {t} does not exist (the scenario has {} processors)", self.prog.dpcs[d as usize].name, self.prog.cpus));
                    return Flow::Yield;
                }
                self.dpcs[d as usize].target = Some(t as u32);
                self.finish(cpu, k, 0)
            }
            Kr::ExInterlockedInsertTailList
            | Kr::ExInterlockedInsertHeadList
            | Kr::ExInterlockedRemoveHeadList => {
                let list = index_of(&k.places[0]);
                let lock = lock_of(&k.places[1]);
                let (op, value) = match k.kr {
                    Kr::ExInterlockedInsertTailList => (ListOp::InsertTail, v(0)),
                    Kr::ExInterlockedInsertHeadList => (ListOp::InsertHead, v(0)),
                    _ => (ListOp::RemoveHead, 0),
                };
                self.set_irql(cpu, irql.max(Irql::DISPATCH));
                let ld = &self.prog.lists[list as usize];
                if ld.paged && self.prog.checks.force_irql_checking {
                    let detail = format!(
                        "list head `{}` lives in paged pool and {name} touches it at raised IRQL",
                        ld.name
                    );
                    self.page_fault(cpu, ld.address, 1, detail);
                    return Flow::Yield;
                }
                self.acquire(
                    cpu,
                    lock,
                    LockFamily::Ordinary,
                    LockMode::Exclusive,
                    AcquireKind::Interlocked,
                    After::List {
                        op,
                        list,
                        value,
                        old: irql,
                        push: k.push_result,
                    },
                )
            }
            Kr::IsListEmpty => {
                let list = index_of(&k.places[0]);
                let empty = self.lists[list as usize].is_empty();
                self.finish(cpu, k, empty as i64)
            }
            Kr::InterlockedIncrement
            | Kr::InterlockedDecrement
            | Kr::InterlockedExchange
            | Kr::InterlockedCompareExchange => {
                let place = k.places[0];
                let (old, ty) = match place {
                    Place::Var(x) => {
                        let d = &self.prog.vars[x as usize];
                        let irql = self.irql(cpu);
                        if d.paged && irql.is_raised() && self.prog.checks.force_irql_checking {
                            let detail = format!(
                                "pageable data `{}` was touched by {name} at IRQL {irql}",
                                d.name
                            );
                            self.page_fault(cpu, d.address, 1, detail);
                            return Flow::Yield;
                        }
                        (self.vars[x as usize], d.ty)
                    }
                    Place::Local(s) => {
                        let f = self.cpus[c]
                            .stack
                            .last()
                            .and_then(|t| t.payload.frames.last());
                        let cur = match f.and_then(|f| f.locals.get(s as usize)) {
                            Some(Value::Int(x)) => *x,
                            _ => 0,
                        };
                        let ty = f.map(|f| f.routine).and_then(|r| {
                            self.prog.routines[r as usize]
                                .slots
                                .get(s as usize)
                                .copied()
                                .flatten()
                        });
                        (cur, ty.unwrap_or(scenario::ast::ScalarType::Long))
                    }
                    _ => (0, scenario::ast::ScalarType::Long),
                };
                let new = truncate(
                    ty,
                    match k.kr {
                        Kr::InterlockedIncrement => old.wrapping_add(1),
                        Kr::InterlockedDecrement => old.wrapping_sub(1),
                        Kr::InterlockedExchange => v(0),
                        _ if old == v(1) => v(0),
                        _ => old,
                    },
                );
                // Increment/Decrement return the new value, the others the old.
                let result = match k.kr {
                    Kr::InterlockedIncrement | Kr::InterlockedDecrement => new,
                    _ => old,
                };
                match place {
                    Place::Var(x) => self.write_var(cpu, x, new),
                    Place::Local(s) => {
                        let f = self.cpus[c]
                            .stack
                            .last_mut()
                            .and_then(|t| t.payload.frames.last_mut());
                        if let Some(Value::Int(x)) = f.and_then(|f| f.locals.get_mut(s as usize)) {
                            *x = new;
                        }
                    }
                    _ => {}
                }
                self.finish(cpu, k, result)
            }
            Kr::KeStallExecutionProcessor => {
                let us = v(0).max(0) as u64;
                let until = self.cpus[c].clock.saturating_add(us.saturating_mul(1000));
                self.top_exec(cpu).pending = Some(Pending::Stall { until });
                self.finish(cpu, k, 0);
                Flow::Yield
            }
            Kr::ExRaiseStatus => {
                self.exception(cpu, v(0) as u32 as u64, "ExRaiseStatus");
                Flow::Yield
            }
            Kr::DbgPrint => {
                let text = scenario::dbgprint::format(k.text.as_deref().unwrap_or(""), &vals);
                for line in text.trim_end_matches('\n').split('\n') {
                    if self.output.len() < MAX_OUTPUT_LINES {
                        self.output.push(line.to_string());
                    } else if self.output.len() == MAX_OUTPUT_LINES {
                        self.output.push(format!(
                            "... DbgPrint output truncated after {MAX_OUTPUT_LINES} lines"
                        ));
                    }
                }
                self.emit(cpu, EventKind::Print { text });
                self.finish(cpu, k, 0)
            }
            Kr::Assert => {
                if v(0) == 0 {
                    let text = k.text.clone().unwrap_or_default();
                    self.assertion(cpu, format!("ASSERT({text}) failed"));
                    return Flow::Yield;
                }
                self.finish(cpu, k, 0)
            }
            Kr::PagedCode => {
                if irql > Irql::APC {
                    self.assertion(cpu, format!("PAGED_CODE() at IRQL {irql}: pageable code must run at or below APC_LEVEL"));
                    return Flow::Yield;
                }
                self.finish(cpu, k, 0)
            }
            Kr::SimFireInterrupt => {
                let i = index_of(&k.places[0]);
                let target = self
                    .prog
                    .interrupt_lines
                    .iter()
                    .find(|l| l.interrupt == i)
                    .map_or(cpu, |l| l.cpu);
                let at = self.cpus[c]
                    .clock
                    .saturating_add((v(0).max(0) as u64).saturating_mul(1000));
                self.schedule_arrival(Arrival {
                    at,
                    seq: 0,
                    interrupt: i,
                    cpu: target,
                    every: None,
                    remaining: Some(0),
                });
                self.finish(cpu, k, 0)
            }
        }
    }

    /// 0x10 when `cpu` does not hold `lock` (in `family`'s sense).
    fn check_owned(&mut self, cpu: u32, lock: LockId, routine: &str, family: LockFamily) -> bool {
        let holder = match &self.locks[lock.0 as usize] {
            LockState::Spin { ordinary, .. } => ordinary.holder(),
            LockState::Interrupt(l) => l.holder(),
            LockState::Ex(_) => None,
        };
        if holder == Some(cpu) {
            return true;
        }
        let who = match holder {
            Some(h) => format!("it is held by processor {h}"),
            None => "it is not held at all".to_string(),
        };
        let what = if family == LockFamily::Interrupt {
            "interrupt spin lock"
        } else {
            "spin lock"
        };
        let detail = format!(
            "{routine} released {what} `{}` on processor {cpu}, but {who}",
            self.lock_name(lock)
        );
        self.bugcheck(
            cpu,
            Bugcheck::new(code::SPIN_LOCK_NOT_OWNED, [self.lock_addr(lock), 0, 0, 0]),
            detail,
        );
        false
    }
}

/// The detail of an IRQL call whose argument is no IRQL at all (above
/// HIGH_LEVEL or negative); `None` for 0..=15.
fn irql_out_of_range(routine: &str, to: i64) -> Option<String> {
    if to > 15 {
        Some(format!(
            "{routine} asked for IRQL {to}, above HIGH_LEVEL (15): there is no such IRQL"
        ))
    } else if to < 0 {
        Some(format!(
            "{routine} asked for IRQL {to}, below PASSIVE_LEVEL (0): there is no such IRQL"
        ))
    } else {
        None
    }
}
