//! The engine's single event stream.
//!
//! Every observable thing a virtual processor does — a context starting or
//! ending, an IRQL change, a lock requested, granted or released, a touch of
//! shared data, a `DbgPrint` — is one [`Event`]. The verifier and the
//! reports (statistics, traces) consume this stream and nothing else, so a
//! new analysis never needs a hook inside the engine.

use crate::{CpuId, Irql};
use serde::Serialize;
use std::sync::Arc;

/// Virtual time in nanoseconds since the start of the run.
pub type Nanos = u64;

/// Index of a lock in the machine's lock table (interrupt locks included).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct LockId(pub u32);

/// The four spin lock families.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum LockFamily {
    /// `KSPIN_LOCK` taken with KeAcquireSpinLock and friends.
    Ordinary,
    /// `KSPIN_LOCK` taken with the in-stack queued routines.
    Queued,
    /// `EX_SPIN_LOCK`.
    ReaderWriter,
    /// The spin lock of a `KINTERRUPT`.
    Interrupt,
}

/// Shared or exclusive. Every family but `ReaderWriter` is always exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum LockMode {
    Exclusive,
    Shared,
}

/// How an acquisition was requested.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum AcquireKind {
    /// Raises IRQL itself (KeAcquireSpinLock, ExAcquireSpinLockShared, ...).
    Raising,
    /// An `AtDpcLevel` form: the caller is already at DISPATCH_LEVEL or above.
    AtDpcLevel,
    /// Taken by the kernel around an ISR.
    IsrEntry,
    /// Taken by KeSynchronizeExecution or KeAcquireInterruptSpinLock.
    Synchronize,
    /// Taken inside an ExInterlocked list routine.
    Interlocked,
    /// Taken by the kernel itself on the driver's behalf: the cancel spin
    /// lock inside IoCancelIrp (deadlock detection does not see it;
    /// contract v2, `deadlock_detection`).
    Kernel,
}

/// What kind of execution context runs on a processor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum ContextKind {
    Thread,
    Dpc,
    Isr,
}

/// One thing that happened, where and when.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    /// Virtual time of the processor when it happened.
    pub at: Nanos,
    pub cpu: CpuId,
    /// Serial number of the context (thread, DPC or ISR activation).
    pub ctx: u32,
    /// Scenario source line of the statement that caused it (0 if none).
    pub line: u32,
    pub kind: EventKind,
}

/// The payload of an [`Event`].
#[derive(Clone, Debug, Serialize)]
pub enum EventKind {
    /// A thread, DPC or ISR starts running `name` at `irql`.
    /// For an ISR, `interrupt_lock` is the lock it holds while it runs.
    ContextStart {
        kind: ContextKind,
        name: Arc<str>,
        irql: Irql,
        interrupt_lock: Option<LockId>,
    },
    /// The context returned.
    ContextEnd { kind: ContextKind, name: Arc<str> },
    /// A thread's time slice ended; another thread of the processor runs.
    ThreadPreempted { name: Arc<str> },
    /// A thread runs again after waiting for a time slice.
    ThreadResumed { name: Arc<str> },
    /// The processor's IRQL changed.
    IrqlChanged { from: Irql, to: Irql },
    /// A lock was asked for (before the ownership check and before spinning).
    AcquireRequested {
        lock: LockId,
        family: LockFamily,
        mode: LockMode,
        how: AcquireKind,
        irql: Irql,
    },
    /// The lock was granted after spinning `spun` nanoseconds.
    Acquired {
        lock: LockId,
        family: LockFamily,
        mode: LockMode,
        how: AcquireKind,
        spun: Nanos,
    },
    /// The lock was released.
    Released {
        lock: LockId,
        family: LockFamily,
        mode: LockMode,
    },
    /// An exclusive conversion of a shared hold succeeded.
    Converted { lock: LockId },
    /// Shared data `var` was read or written.
    Access { var: u32, write: bool },
    /// `DbgPrint` output.
    Print { text: String },
    /// A DPC was queued on `target`.
    DpcQueued { name: Arc<str>, target: CpuId },
    /// A device interrupt became pending.
    InterruptRaised { name: Arc<str>, irql: Irql },
    /// A thread blocked in `KeWaitForSingleObject` on `object` (contract
    /// v2, "Kernel objects"): its processor runs another thread or idles.
    ThreadBlocked { name: Arc<str>, object: Arc<str> },
    /// A blocked thread was released (`timed_out`: by its timeout) and is
    /// ready to run on its processor.
    ThreadReleased {
        name: Arc<str>,
        object: Arc<str>,
        timed_out: bool,
    },
    /// A KTIMER expired at a clock tick.
    TimerExpired { name: Arc<str> },
    /// A work item was queued for a system worker thread.
    WorkItemQueued { name: Arc<str> },
}
