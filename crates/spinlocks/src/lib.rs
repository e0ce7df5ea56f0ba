//! The four Windows spin lock families.
//!
//! * [`model`]: each family as a two-phase state machine (`begin` takes the
//!   lock or registers a waiter; `poll` advances a waiter one step). The
//!   emulator's deterministic engine drives these; they keep Windows' word
//!   layouts and algorithms (test-and-set word, MCS queue with WAIT/OWNER
//!   bits, the EX_SPIN_LOCK exclusive/waiting bits and shared count) and know
//!   nothing about scenarios: an owner is an opaque number.
//! * [`real`]: the same four families as real, usable Rust locks over
//!   atomics with RAII guards, re-exported at the crate root, for anyone to
//!   use (the benchmarks measure these). They have the models'
//!   two-phase shape as well: `begin_acquire` / `begin_read` / `begin_write`
//!   take the lock or return a waiter whose `poll` does one spin iteration
//!   and never loops, so a thread can interleave spinning with other work
//!   (interrupt delivery, a watchdog). See [`real`'s docs](real#two-phase-acquire).
//! * [`raw`]: Windows' protocols without data or guards, the owner named by
//!   a processor index and MCS nodes from a per-processor arena, for an
//!   interpreter that holds a lock across statements and abandons it on
//!   halt: the emulator's parallel mode runs every scenario lock on these.
//!   For the ordinary, interrupt and EX locks these are the real
//!   locks' protocols; the raw queued lock keeps Windows' MCS protocol (the
//!   tail as the lock word), which the real [`QueuedSpinLock`] trades for a
//!   one-store release.
//!
//! | lock | Windows | acquire | notes |
//! |------|---------|---------|-------|
//! | [`KSpinLock`] | `KSPIN_LOCK` | [`lock`](KSpinLock::lock), [`try_lock`](KSpinLock::try_lock) | test-and-test-and-set; re-acquire by the owner panics `SPIN_LOCK_ALREADY_OWNED` |
//! | [`QueuedSpinLock`] | in-stack queued spin lock | [`lock(handle)`](QueuedSpinLock::lock) with a pinned [`LockQueueHandle`] | MCS queue beside a `locked` flag (Linux qspinlock style, not Windows' word protocol): FIFO among queued waiters, local spinning, uncontended one compare-exchange + one store |
//! | [`ExSpinLock`] | `EX_SPIN_LOCK` | [`read`](ExSpinLock::read), [`write`](ExSpinLock::write), [`ExSharedGuard::try_convert`] | writer preferring reader/writer |
//! | [`InterruptSpinLock`] | interrupt spin lock | [`synchronize`](InterruptSpinLock::synchronize), [`lock`](InterruptSpinLock::lock) | carries `SynchronizeIrql` |
//!
//! Two-phase: [`KSpinLock::begin_acquire`] → [`KSpinWaiter::poll`];
//! [`QueuedSpinLock::begin_acquire`] → [`QueuedWaiter::poll`] (its
//! [`QueuedSpinLockGuard::begin_release`] never waits now, so it never
//! returns a [`QueuedReleaser`]);
//! [`ExSpinLock::begin_read`] / [`begin_write`](ExSpinLock::begin_write) →
//! [`ExReadWaiter::poll`] / [`ExWriteWaiter::poll`];
//! [`InterruptSpinLock::begin_acquire`] → [`InterruptSpinWaiter::poll`].
//!
//! ```
//! use core::pin::pin;
//! use spinlocks::{ExSpinLock, InterruptSpinLock, KSpinLock, LockQueueHandle, QueuedSpinLock};
//!
//! let counter = KSpinLock::new(0);
//! *counter.lock() += 1;
//!
//! let queue = QueuedSpinLock::new(Vec::new());
//! let mut handle = pin!(LockQueueHandle::new());
//! queue.lock(handle.as_mut()).push("first");
//!
//! let table = ExSpinLock::new([0u8; 16]);
//! let sum: u32 = table.read().iter().map(|&b| u32::from(b)).sum();
//! table.write()[0] = 1;
//!
//! let isr_data = InterruptSpinLock::new(7, 0u32);
//! let seen = isr_data.synchronize(|d| { *d += 1; *d });
//! assert_eq!((sum, seen), (0, 1));
//!
//! // Two-phase: begin, then poll one spin iteration at a time.
//! let mut guard = match counter.begin_acquire() {
//!     Ok(guard) => guard,
//!     Err(mut waiter) => loop {
//!         if let Some(guard) = waiter.poll() {
//!             break guard;
//!         }
//!         std::hint::spin_loop(); // or: deliver an interrupt, pet a watchdog
//!     },
//! };
//! *guard += 1;
//! assert_eq!(*guard, 2);
//! ```
//!
//! # Testing
//!
//! * `cargo test -p spinlocks`: unit, integration, property and doc tests.
//! * The loom model checks of the real and raw locks' protocols (mutual
//!   exclusion; the queued lock's fast path against its queue, its head
//!   exit under the swap/link race, FIFO handoff and no barging past a seen
//!   waiter; the raw MCS release/link race; no lost wake-ups; writer
//!   preference; try-convert; and the two-phase paths: begin/poll loops,
//!   a queue head waiting for its successor's link, dropped queued
//!   waiters, withdrawn write waiters):
//!
//!   ```text
//!   RUSTFLAGS="--cfg loom" cargo test -p spinlocks --release --test loom
//!   ```
//!
//!   The whole suite runs in well under a minute (a few seconds of model
//!   checking after the build). Two-thread models use a preemption bound of
//!   4 unless `LOOM_MAX_PREEMPTIONS` says otherwise (all pass at 10, in
//!   about two minutes on a 2-core machine, most of it in the three models
//!   where each thread acquires a queued lock twice); the three-thread
//!   queued-lock models cap it at 2 and 3, because loom's spin-loop
//!   modelling can starve a lock holder behind two spinners at higher
//!   bounds (see `tests/loom.rs`).
//! * `cargo bench -p spinlocks --bench contention` (`-- --quick` for a
//!   short run): the fixed-time contention benchmark against `spin`,
//!   `parking_lot` and `std`, with an uncontended row set; writes
//!   `target/bench-results/locks.json`. See `docs/performance.md`.
//!
//! Architecture invariant: no dependency on anything above it (no `vcpu`,
//! `verifier`, `scenario` or `machine`); an owner is an opaque number.

pub mod model;
pub mod real;

pub use real::raw;

pub use real::{
    ExExclusiveGuard, ExReadWaiter, ExSharedGuard, ExSpinLock, ExWriteWaiter, InterruptSpinLock,
    InterruptSpinLockGuard, InterruptSpinWaiter, KSpinLock, KSpinLockGuard, KSpinWaiter,
    LockQueueHandle, QueuedAcquire, QueuedReleaser, QueuedSpinLock, QueuedSpinLockGuard,
    QueuedWaiter,
};
