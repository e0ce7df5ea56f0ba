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
mod ordinary;
mod queued;

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

    /// Run one kernel call: pop its argument values, dispatch by family.
    pub(super) fn kernel(&mut self, cpu: u32, k: &KernelCall) -> Flow {
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
        let flow = match k.kr {
            Kr::KeGetCurrentIrql
            | Kr::KeGetCurrentProcessorNumber
            | Kr::KeRaiseIrql
            | Kr::KeRaiseIrqlToDpcLevel
            | Kr::KeLowerIrql => self.kcall_irql(cpu, k, &vals, irql, name),
            Kr::KeInitializeSpinLock
            | Kr::KeAcquireSpinLock
            | Kr::KeAcquireSpinLockRaiseToDpc
            | Kr::KeAcquireSpinLockAtDpcLevel
            | Kr::KeReleaseSpinLock
            | Kr::KeReleaseSpinLockFromDpcLevel
            | Kr::KeTryToAcquireSpinLockAtDpcLevel
            | Kr::KeTestSpinLock => self.kcall_ordinary(cpu, k, &vals, irql, name),
            Kr::KeAcquireInStackQueuedSpinLock
            | Kr::KeAcquireInStackQueuedSpinLockAtDpcLevel
            | Kr::KeReleaseInStackQueuedSpinLock
            | Kr::KeReleaseInStackQueuedSpinLockFromDpcLevel => {
                self.kcall_queued(cpu, k, &vals, irql, name)
            }
            Kr::ExAcquireSpinLockShared
            | Kr::ExAcquireSpinLockExclusive
            | Kr::ExAcquireSpinLockSharedAtDpcLevel
            | Kr::ExAcquireSpinLockExclusiveAtDpcLevel
            | Kr::ExReleaseSpinLockShared
            | Kr::ExReleaseSpinLockExclusive
            | Kr::ExReleaseSpinLockSharedFromDpcLevel
            | Kr::ExReleaseSpinLockExclusiveFromDpcLevel
            | Kr::ExTryConvertSharedSpinLockExclusive => self.kcall_ex(cpu, k, &vals, irql, name),
            Kr::KeAcquireInterruptSpinLock
            | Kr::KeSynchronizeExecution
            | Kr::KeReleaseInterruptSpinLock => self.kcall_interrupt(cpu, k, &vals, irql, name),
            Kr::KeInsertQueueDpc
            | Kr::KeRemoveQueueDpc
            | Kr::KeSetImportanceDpc
            | Kr::KeSetTargetProcessorDpc => self.kcall_dpc(cpu, k, &vals, irql, name),
            Kr::ExInterlockedInsertTailList
            | Kr::ExInterlockedInsertHeadList
            | Kr::ExInterlockedRemoveHeadList
            | Kr::IsListEmpty => self.kcall_lists(cpu, k, &vals, irql, name),
            Kr::InterlockedIncrement
            | Kr::InterlockedDecrement
            | Kr::InterlockedExchange
            | Kr::InterlockedCompareExchange => self.kcall_interlocked(cpu, k, &vals, irql, name),
            Kr::KeStallExecutionProcessor
            | Kr::ExRaiseStatus
            | Kr::DbgPrint
            | Kr::Assert
            | Kr::PagedCode
            | Kr::SimFireInterrupt => self.kcall_misc(cpu, k, &vals, irql, name),
        };
        self.kernel_args = vals;
        flow
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
