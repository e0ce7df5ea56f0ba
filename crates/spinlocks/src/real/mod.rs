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

pub use ex::{ExExclusiveGuard, ExSharedGuard, ExSpinLock};
pub use interrupt::{InterruptSpinLock, InterruptSpinLockGuard};
pub use kspin::{KSpinLock, KSpinLockGuard};
pub use queued::{LockQueueHandle, QueuedSpinLock, QueuedSpinLockGuard};
