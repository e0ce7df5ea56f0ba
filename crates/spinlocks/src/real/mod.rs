//! The four Windows spin lock families as real Rust locks over atomics.
//!
//! | Windows | here | guard(s) |
//! |---------|------|----------|
//! | `KSPIN_LOCK` | [`KSpinLock`] | [`KSpinLockGuard`] |
//! | in-stack queued spin lock, `KLOCK_QUEUE_HANDLE` | [`QueuedSpinLock`], [`LockQueueHandle`] | [`QueuedSpinLockGuard`] |
//! | `EX_SPIN_LOCK` | [`ExSpinLock`] | [`ExSharedGuard`], [`ExExclusiveGuard`] |
//! | interrupt spin lock, `KeSynchronizeExecution` | [`InterruptSpinLock`] | [`InterruptSpinLockGuard`] |
//!
//! All of them busy-wait (with [`core::hint::spin_loop`]) and never park or
//! yield to the OS scheduler: they are meant for short critical sections,
//! ideally on threads that are not preempted (one per core, pinned), as at
//! `DISPATCH_LEVEL`. Guards release on drop and are `!Send`, because a
//! Windows spin lock is released on the processor that took it.
//!
//! Each lock is `Send` and `Sync` when `T: Send` (and, for the reader/writer
//! [`ExSpinLock`], whose readers share `&T` across threads, also `T: Sync`,
//! as for `std::sync::RwLock`).
//!
//! # Two-phase acquire
//!
//! Every family also acquires in two phases, the shape of the
//! [`model`](crate::model) state machines, for callers that must return to
//! their own scheduler between spin iterations (an interpreter delivering
//! interrupts and running a watchdog there, as the emulator's parallel mode
//! does with the `raw` locks). A `begin_*` call takes the
//! lock or returns a waiter; the waiter's `poll` is one spin iteration (one
//! read of the lock word or the caller's own queue node, at most one atomic
//! read-modify-write; two when the queued lock's head takes the lock and
//! leaves the queue in the same poll) and returns the guard once the lock
//! is taken. The blocking calls are these same steps in a loop with a pause.
//!
//! | lock | begin | waiter | dropping a pending waiter |
//! |------|-------|--------|---------------------------|
//! | [`KSpinLock`] | [`begin_acquire`](KSpinLock::begin_acquire) | [`KSpinWaiter`] | gives up (nothing to undo) |
//! | [`InterruptSpinLock`] | [`begin_acquire`](InterruptSpinLock::begin_acquire) | [`InterruptSpinWaiter`] | gives up |
//! | [`QueuedSpinLock`] | [`begin_acquire`](QueuedSpinLock::begin_acquire) → [`QueuedAcquire`] | [`QueuedWaiter`] | waits for the lock, then releases it (a queued node cannot leave the queue early) |
//! | [`ExSpinLock`] | [`begin_read`](ExSpinLock::begin_read), [`begin_write`](ExSpinLock::begin_write) | [`ExReadWaiter`], [`ExWriteWaiter`] | reader: gives up; writer: withdraws its bit 31 / bit 30 claim |
//!
//! The queued lock's [`QueuedSpinLockGuard::begin_release`] (with its
//! [`QueuedReleaser`]) is the two-phase release of the MCS protocol it used
//! to run, whose release could wait for a successor's link. Its release is
//! now one store and never waits, so `begin_release` always returns
//! `Ok(())`; the wait for a successor's link happens in the queue head's
//! [`QueuedWaiter::poll`] before it returns the guard
//! ([`QueuedWaiter::holds_lock`]).
//!
//! IRQL is not modelled here (user threads have none); the emulator layers it
//! on top. [`InterruptSpinLock`] carries its `SynchronizeIrql` as data.
//!
//! Under `--cfg loom` every atomic and spin hint comes from loom (see
//! the private `sync` shim), and `tests/loom.rs` model-checks the protocols.

mod sync;

pub mod ex;
pub mod interrupt;
pub mod kspin;
pub mod queued;
pub mod raw;

pub use ex::{ExExclusiveGuard, ExReadWaiter, ExSharedGuard, ExSpinLock, ExWriteWaiter};
pub use interrupt::{InterruptSpinLock, InterruptSpinLockGuard, InterruptSpinWaiter};
pub use kspin::{KSpinLock, KSpinLockGuard, KSpinWaiter};
pub use queued::{
    LockQueueHandle, QueuedAcquire, QueuedReleaser, QueuedSpinLock, QueuedSpinLockGuard,
    QueuedWaiter,
};
