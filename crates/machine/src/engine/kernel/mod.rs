//! The kernel routines, one submodule per family: [`irql`], [`ordinary`]
//! spin locks, in-stack [`queued`], reader/writer [`ex`], [`interrupt`]
//! spin locks, [`dpc`]s, ExInterlocked [`lists`], [`interlocked`] data and
//! [`misc`]. Each routine checks its IRQL precondition first, then ownership
//! and mode, then hands the lock to [`locks`](super::locks) and the verifier
//! — the contract's order. This module pops the arguments once and
//! dispatches by family; the checks shared by several families live here.

use super::exec::Flow;

mod dpc;
mod ex;
mod interlocked;
mod interrupt;
mod irql;
mod lists;
mod misc;
mod objects;
mod ordinary;
pub(super) mod pool;
mod queued;

use super::locks::{After, ListOp, QueuedReleaseOp};
use super::*;
use scenario::check::truncate;
use scenario::kernel::Kr;
use scenario::program::{KernelCall, Place};
use spinlocks::model::Poll;
use vcpu::bugcheck::c4;
use vcpu::{AcquireKind, LockFamily, LockId, LockMode};

fn lock_of(p: &Place) -> LockId {
    match p {
        Place::Lock(l) => *l,
        _ => LockId(0),
    }
}

/// The DPC a resolved place designates (the checker typed the argument).
fn dpc_of(p: &Place) -> DpcId {
    match p {
        Place::Dpc(d) => DpcId(*d),
        _ => DpcId(0),
    }
}

/// The interrupt a place designates.
fn interrupt_of(p: &Place) -> InterruptId {
    match p {
        Place::Interrupt(i) => InterruptId(*i),
        _ => InterruptId(0),
    }
}

/// The ExInterlocked list a place designates.
fn list_of(p: &Place) -> ListId {
    match p {
        Place::List(q) => ListId(*q),
        _ => ListId(0),
    }
}

/// The routine a place designates.
fn routine_of(p: &Place) -> RoutineId {
    match p {
        Place::Routine(r) => *r,
        _ => 0,
    }
}

/// The kernel object a resolved place designates.
fn object_of(p: Option<&Place>) -> ObjectId {
    match p {
        Some(Place::Object(o)) => ObjectId(*o),
        _ => ObjectId(0),
    }
}

/// DbgPrint lines kept in the report.
const MAX_OUTPUT_LINES: usize = 10_000;

/// One kernel call's argument values, the IRQL at the call and the
/// routine's WDK name, as the family functions receive them.
pub(super) struct Args<'a> {
    vals: &'a [i64],
    irql: Irql,
    name: &'static str,
}

impl Args<'_> {
    /// Argument value `i` (0 if the call has fewer).
    fn v(&self, i: usize) -> i64 {
        self.vals.get(i).copied().unwrap_or(0)
    }
}

impl Machine<'_> {
    fn irql(&self, cpu: u32) -> Irql {
        self.cpus[cpu as usize].irql
    }

    /// The IRQL precondition of an acquire: an `AtDpcLevel` form needs
    /// DISPATCH_LEVEL or above (else 0xC4/0x40), a raising form must not be
    /// called above it (else 0xC4/0x42).
    fn acquire_irql_ok(
        &mut self,
        cpu: u32,
        at_dpc: bool,
        lock: LockId,
        routine: &str,
    ) -> Result<(), Halt> {
        if !self.prog.checks.automatic {
            return Ok(());
        }
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
        match bad {
            true => Err(self.irql_violation(cpu, sub, lock, routine, why)),
            false => Ok(()),
        }
    }

    /// The IRQL precondition of a release: a `FromDpcLevel` form needs
    /// DISPATCH_LEVEL or above (else 0xC4/0x41), the others exactly
    /// DISPATCH_LEVEL (else 0xC4/0x32).
    fn release_irql_ok(
        &mut self,
        cpu: u32,
        from_dpc: bool,
        lock: LockId,
        routine: &str,
    ) -> Result<(), Halt> {
        if !self.prog.checks.automatic {
            return Ok(());
        }
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
        match bad {
            true => Err(self.irql_violation(cpu, sub, lock, routine, why)),
            false => Ok(()),
        }
    }

    /// 0xC4 with an IRQL subcode about `lock`.
    fn irql_violation(
        &mut self,
        cpu: u32,
        sub: u64,
        lock: LockId,
        routine: &str,
        why: &str,
    ) -> Halt {
        let irql = self.irql(cpu);
        let detail = format!(
            "{routine}(&{}) was called at IRQL {irql}: {why}",
            self.lock_name(lock)
        );
        self.bugcheck(
            cpu,
            Bugcheck::verifier(sub, irql.0 as u64, self.lock_addr(lock), 0),
            detail,
        )
    }

    /// The object a reference passed to `kr` designates, as the place the
    /// routine takes (a KDPC's DPC, or the object); NULL is a NULL
    /// dereference unless `nullable` (`Ok(None)` when a `__try` handled
    /// it); anything else is a run-time error.
    fn resolve_object(
        &mut self,
        cpu: u32,
        kr: Kr,
        kind: scenario::ast::ObjKind,
        nullable: bool,
        r: i64,
    ) -> Result<Option<Place>, Halt> {
        use scenario::ast::ObjKind;
        if r == 0 {
            if nullable {
                return Ok(Some(Place::Null));
            }
            self.null_dereference(cpu)?;
            return Ok(None);
        }
        if let Some(o) = self.object_at(r) {
            let d = &self.prog.objects[o.ix()];
            let ok = d.kind == kind
                || (kr == Kr::KeWaitForSingleObject
                    && matches!(d.kind, ObjKind::Event | ObjKind::Timer));
            if ok {
                return Ok(Some(if d.kind == ObjKind::Dpc {
                    Place::Dpc(d.index)
                } else {
                    Place::Object(o.0)
                }));
            }
        }
        let what = match (self.object_at(r), self.var_of_ref(r)) {
            (Some(o), _) => {
                let d = &self.prog.objects[o.ix()];
                format!("`{}` ({})", d.name, d.kind.with_article())
            }
            (None, Some(v)) => format!("`{}`", self.prog.vars[v as usize].name),
            (None, None) => format!("{r:#x}"),
        };
        let msg = format!(
            "{} was given {what}, which is not {} (a pointer converted to a type its object does not have)",
            kr.name(),
            kind.with_article()
        );
        Err(self.runtime_error(cpu, msg))
    }

    /// The call returns `v` (pushed if its result is used).
    fn finish(&mut self, cpu: u32, k: &KernelCall, v: i64) -> Result<Flow, Halt> {
        if k.push_result {
            self.push(cpu, v);
        }
        Ok(Flow::Next)
    }

    /// Run one kernel call: pop its argument values, dispatch by family.
    pub(super) fn kernel(&mut self, cpu: u32, k: &KernelCall) -> Result<Flow, Halt> {
        self.driver.visible = true;
        if k.places
            .iter()
            .any(|p| matches!(p, Place::Ref(_) | Place::Obj { .. }))
        {
            // Places reached at run time: their references are on the
            // stack above the values, in argument order.
            let refs = k
                .places
                .iter()
                .filter(|p| matches!(p, Place::Ref(_) | Place::Obj { .. }))
                .count();
            let exec = self.top_exec(cpu);
            let at = exec.stack.len().saturating_sub(refs);
            let popped: Vec<i64> = exec.stack.drain(at..).collect();
            let mut resolved = k.clone();
            let mut it = popped.into_iter();
            for p in resolved.places.iter_mut() {
                if let Place::Obj { kind, nullable } = *p {
                    let r = it.next().unwrap_or(0);
                    match self.resolve_object(cpu, k.kr, kind, nullable, r)? {
                        Some(place) => *p = place,
                        None => return Ok(Flow::Yield),
                    }
                    continue;
                }
                if let Place::Ref(lock) = *p {
                    let r = it.next().unwrap_or(0);
                    let l = scenario::program::ref_lock(r);
                    let bad = if lock {
                        r & scenario::program::REF_TAG == 0 || l.0 as usize >= self.prog.locks.len()
                    } else {
                        self.var_of_ref(r).is_none()
                    };
                    if bad {
                        self.null_dereference(cpu)?;
                        return Ok(Flow::Yield);
                    }
                    *p = if lock {
                        Place::Lock(scenario::program::ref_lock(r))
                    } else {
                        Place::Var(scenario::program::ref_var(r))
                    };
                }
            }
            return self.kernel(cpu, &resolved);
        }
        let n = k.values as usize;
        let mut vals = std::mem::take(&mut self.kernel_args);
        vals.clear();
        {
            let exec = &mut self.top_exec(cpu);
            let at = exec.stack.len().saturating_sub(n);
            vals.extend(exec.stack.drain(at..));
        }
        let irql = self.irql(cpu);
        let name = k.kr.name();
        if let Err(halt) = self.pageable_object(cpu, k, name) {
            self.kernel_args = vals;
            return Err(halt);
        }
        let args = Args {
            vals: &vals,
            irql,
            name,
        };
        let flow = match k.kr {
            Kr::KeGetCurrentIrql
            | Kr::KeGetCurrentProcessorNumber
            | Kr::KeRaiseIrql
            | Kr::KeRaiseIrqlToDpcLevel
            | Kr::KeLowerIrql => self.kcall_irql(cpu, k, &args),
            Kr::KeInitializeSpinLock
            | Kr::KeAcquireSpinLock
            | Kr::KeAcquireSpinLockRaiseToDpc
            | Kr::KeAcquireSpinLockAtDpcLevel
            | Kr::KeReleaseSpinLock
            | Kr::KeReleaseSpinLockFromDpcLevel
            | Kr::KeTryToAcquireSpinLockAtDpcLevel
            | Kr::KeTestSpinLock
            | Kr::KeAcquireSpinLockForDpc
            | Kr::KeReleaseSpinLockForDpc => self.kcall_ordinary(cpu, k, &args),
            Kr::KeAcquireInStackQueuedSpinLock
            | Kr::KeAcquireInStackQueuedSpinLockAtDpcLevel
            | Kr::KeReleaseInStackQueuedSpinLock
            | Kr::KeReleaseInStackQueuedSpinLockFromDpcLevel
            | Kr::KeAcquireInStackQueuedSpinLockForDpc
            | Kr::KeReleaseInStackQueuedSpinLockForDpc => self.kcall_queued(cpu, k, &args),
            Kr::ExAcquireSpinLockShared
            | Kr::ExAcquireSpinLockExclusive
            | Kr::ExAcquireSpinLockSharedAtDpcLevel
            | Kr::ExAcquireSpinLockExclusiveAtDpcLevel
            | Kr::ExReleaseSpinLockShared
            | Kr::ExReleaseSpinLockExclusive
            | Kr::ExReleaseSpinLockSharedFromDpcLevel
            | Kr::ExReleaseSpinLockExclusiveFromDpcLevel
            | Kr::ExTryConvertSharedSpinLockExclusive => self.kcall_ex(cpu, k, &args),
            Kr::KeAcquireInterruptSpinLock
            | Kr::KeSynchronizeExecution
            | Kr::KeReleaseInterruptSpinLock => self.kcall_interrupt(cpu, k, &args),
            Kr::KeInitializeDpc
            | Kr::KeInitializeEvent
            | Kr::KeSetEvent
            | Kr::KeClearEvent
            | Kr::KeResetEvent
            | Kr::KeReadStateEvent
            | Kr::KeWaitForSingleObject
            | Kr::KeInitializeTimer
            | Kr::KeInitializeTimerEx
            | Kr::KeSetTimer
            | Kr::KeSetTimerEx
            | Kr::KeCancelTimer
            | Kr::KeReadStateTimer
            | Kr::KeQueryInterruptTime
            | Kr::ExInitializeWorkItem
            | Kr::ExQueueWorkItem
            | Kr::IoAcquireCancelSpinLock
            | Kr::IoReleaseCancelSpinLock
            | Kr::IoSetCancelRoutine
            | Kr::IoMarkIrpPending
            | Kr::IoCompleteRequest
            | Kr::IoCancelIrp => self.kcall_objects(cpu, k, &args),
            Kr::KeInsertQueueDpc
            | Kr::KeRemoveQueueDpc
            | Kr::KeSetImportanceDpc
            | Kr::KeSetTargetProcessorDpc
            | Kr::KeFlushQueuedDpcs => self.kcall_dpc(cpu, k, &args),
            Kr::ExInterlockedInsertTailList
            | Kr::ExInterlockedInsertHeadList
            | Kr::ExInterlockedRemoveHeadList
            | Kr::IsListEmpty => self.kcall_lists(cpu, k, &args),
            Kr::ExAllocatePoolWithTag | Kr::ExFreePoolWithTag => {
                self.kcall_pool(cpu, k, &vals, irql, name)
            }
            Kr::InitializeListHead
            | Kr::InsertHeadList
            | Kr::InsertTailList
            | Kr::RemoveHeadList
            | Kr::RemoveTailList
            | Kr::RemoveEntryList => self.kcall_entry_lists(cpu, k, &vals, name),
            Kr::InterlockedIncrement
            | Kr::InterlockedDecrement
            | Kr::InterlockedExchange
            | Kr::InterlockedCompareExchange
            | Kr::InterlockedOr
            | Kr::InterlockedAnd
            | Kr::InterlockedXor
            | Kr::InterlockedExchangeAdd
            | Kr::InterlockedAdd => self.kcall_interlocked(cpu, k, &args),
            Kr::KeStallExecutionProcessor
            | Kr::ExRaiseStatus
            | Kr::DbgPrint
            | Kr::Assert
            | Kr::PagedCode
            | Kr::SimFireInterrupt => self.kcall_misc(cpu, k, &args),
        };
        self.kernel_args = vals;
        flow
    }

    /// Force IRQL checking: a spin lock, KDPC or ExInterlocked list head in
    /// `PAGED` storage is 0xC4/0xE1 at its first use — the first check of
    /// any call (contract v2, "Order when several rules apply").
    fn pageable_object(&mut self, cpu: u32, k: &KernelCall, routine: &str) -> Result<(), Halt> {
        if !self.prog.checks.force_irql_checking {
            return Ok(());
        }
        for p in &k.places {
            let (paged, name, address, what) = match *p {
                Place::Lock(l) => {
                    let d = &self.prog.locks[l.0 as usize];
                    (d.paged, &d.name, d.address, "spin lock")
                }
                Place::Interrupt(i) => {
                    let d = &self.prog.locks[self.prog.interrupts[i as usize].lock.0 as usize];
                    (d.paged, &d.name, d.address, "interrupt object")
                }
                Place::Dpc(d) => {
                    let d = &self.prog.dpcs[d as usize];
                    (d.paged, &d.name, d.address, "KDPC")
                }
                // IRPs and work items in PAGED storage are PAGED data (a fault
                // only at raised IRQL); the kernel objects the contract
                // names are 0xE1 at first use.
                Place::Object(o)
                    if matches!(
                        self.prog.objects[o as usize].kind,
                        scenario::ast::ObjKind::Event | scenario::ast::ObjKind::Timer
                    ) =>
                {
                    let d = &self.prog.objects[o as usize];
                    (d.paged, &d.name, d.address, d.kind.name())
                }
                Place::List(q)
                    if matches!(
                        k.kr,
                        Kr::ExInterlockedInsertTailList
                            | Kr::ExInterlockedInsertHeadList
                            | Kr::ExInterlockedRemoveHeadList
                    ) =>
                {
                    let d = &self.prog.lists[q as usize];
                    (d.paged, &d.name, d.address, "ExInterlocked list head")
                }
                _ => continue,
            };
            if paged {
                let detail = format!("{routine}: {what} `{name}` lives in pageable storage; kernel objects a driver shares with raised IRQL must be nonpaged");
                return Err(self.bugcheck(
                    cpu,
                    Bugcheck::verifier(c4::PAGEABLE_OBJECT, address, 0, 0),
                    detail,
                ));
            }
        }
        Ok(())
    }

    /// The checks of a release before the kernel's own (contract v2 order):
    /// with the automatic checks 0xC4/0x31 for a saved IRQL above the
    /// current one, or (P4 = 1) a DPC routine dropping below DISPATCH_LEVEL;
    /// with deadlock detection 0x1007 (nobody owns it), 0x1004 (another
    /// thread does), 0x1009 (an EX_SPIN_LOCK released in the other mode,
    /// `ex_mode`), 0x1003 (lowering below DISPATCH_LEVEL while the thread
    /// still owns another lock); with ddi_compliance 0xC4/0x20015 when
    /// `KeReleaseSpinLock`'s NewIrql is not the IRQL its acquire saved.
    fn release_checks(
        &mut self,
        cpu: u32,
        lock: LockId,
        lower_to: Option<Irql>,
        ex_mode: Option<LockMode>,
        routine: &str,
    ) -> Result<(), Halt> {
        let cur = self.irql(cpu);
        if let Some(to) = lower_to {
            if self.prog.checks.automatic && to > cur {
                let detail = format!("{routine}(&{}) asked to lower IRQL to {to}, above the current IRQL {cur}: the saved IRQL is wrong", self.lock_name(lock));
                return Err(self.bugcheck(
                    cpu,
                    Bugcheck::verifier(c4::LOWER_TO_HIGHER, cur.0 as u64, to.0 as u64, 0),
                    detail,
                ));
            }
            self.dpc_lowers_below_dispatch(cpu, to)?;
        }
        self.dd_release_ok(cpu, lock, routine)?;
        let owner = self.owner_of(cpu);
        if self.prog.checks.deadlock_detection {
            if let (Some(mode), Some(h)) = (ex_mode, self.held_by_owner(owner, lock)) {
                if h.mode != mode {
                    let (said, held) = if mode == LockMode::Shared {
                        ("shared", "exclusive")
                    } else {
                        ("exclusive", "shared")
                    };
                    let detail = format!("`{}` was released {said} with {routine}, but {} holds it {held}: the release routine must match the acquire", self.lock_name(lock), self.owner_label(owner));
                    return Err(self.bugcheck(
                        cpu,
                        Bugcheck::verifier(c4::RELEASE_WRONG_MODE, self.lock_addr(lock), 0, 0),
                        detail,
                    ));
                }
            }
            if let Some(to) = lower_to.filter(|&t| t < Irql::DISPATCH) {
                let other = self.held[cpu as usize]
                    .iter()
                    .rev()
                    .find(|h| h.lock != lock && h.owner == owner)
                    .cloned();
                if let Some(h) = other {
                    let detail = format!(
                        "releasing `{}` lowered IRQL to {to} while `{}` (taken at line {}) is still held: locks released in the wrong order; release the most recently acquired lock first",
                        self.lock_name(lock),
                        self.lock_name(h.lock),
                        h.line
                    );
                    let (a, b) = (self.lock_addr(lock), self.lock_addr(h.lock));
                    return Err(self.bugcheck(
                        cpu,
                        Bugcheck::verifier(c4::RELEASED_OUT_OF_ORDER, a, b, 0),
                        detail,
                    ));
                }
            }
        }
        if self.prog.checks.ddi_compliance {
            if let Some(to) = lower_to {
                let saved = self.held[cpu as usize]
                    .iter()
                    .rev()
                    .find(|h| h.lock == lock)
                    .and_then(|h| h.saved_irql);
                if let Some(saved) = saved.filter(|&s| s != to) {
                    // KeReleaseSpinLockForDpc below DISPATCH_LEVEL acts
                    // as KeReleaseSpinLock, with its checks.
                    if routine == "KeReleaseSpinLock" || routine == "KeReleaseSpinLockForDpc" {
                        let detail = format!("{routine}(&{}, {to}): its acquire saved {saved}; the NewIrql must be the OldIrql the acquire returned (DDI compliance rule IrqlKeReleaseSpinLock)", self.lock_name(lock));
                        return Err(self.bugcheck(
                            cpu,
                            Bugcheck::verifier(
                                c4::DDI_IRQL_KE_RELEASE_SPIN_LOCK,
                                self.lock_addr(lock),
                                saved.0 as u64,
                                to.0 as u64,
                            ),
                            detail,
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// 0x10 when `cpu` does not hold `lock` (in `family`'s sense).
    fn check_owned(
        &mut self,
        cpu: u32,
        lock: LockId,
        routine: &str,
        family: LockFamily,
    ) -> Result<(), Halt> {
        let holder = match &self.shared.locks[lock.0 as usize] {
            LockState::Spin { ordinary, .. } => ordinary.holder(),
            LockState::Interrupt(l) => l.holder(),
            LockState::Ex(_) => None,
        };
        if holder == Some(cpu) {
            return Ok(());
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
        Err(self.bugcheck(
            cpu,
            Bugcheck::new(code::SPIN_LOCK_NOT_OWNED, [self.lock_addr(lock), 0, 0, 0]),
            detail,
        ))
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
