//! [`InterruptSpinLock`]: the spin lock of a connected interrupt, with its
//! `SynchronizeIrql`.
//!
//! On Windows each connected interrupt has an ordinary spin lock and a
//! `SynchronizeIrql` (at least the interrupt's own IRQL). The ISR runs at
//! `SynchronizeIrql` holding that lock; other code touches the shared data
//! only through `KeSynchronizeExecution` (raise to `SynchronizeIrql`, take
//! the lock, call a routine, release, lower, return the routine's result) or
//! `KeAcquireInterruptSpinLock` / `KeReleaseInterruptSpinLock`.
//!
//! User-mode threads have no IRQL to raise, so here the IRQL is carried as
//! data ([`synchronize_irql`](InterruptSpinLock::synchronize_irql)) for the
//! emulator and for callers that model IRQL themselves; the locking itself is
//! a [`KSpinLock`] (test-and-test-and-set, owner-tagged).
//!
//! ```
//! use spinlocks::InterruptSpinLock;
//!
//! // A device at DIRQL 5 whose ISR and DPC share a register shadow.
//! let device = InterruptSpinLock::new(5, [0u32; 4]);
//! assert_eq!(device.synchronize_irql(), 5);
//!
//! // KeSynchronizeExecution(Interrupt, SynchCritSection, Context)
//! let old = device.synchronize(|regs| {
//!     let old = regs[0];
//!     regs[0] = 0xdead;
//!     old
//! });
//! assert_eq!(old, 0);
//!
//! // KeAcquireInterruptSpinLock / KeReleaseInterruptSpinLock
//! let regs = device.lock();
//! assert_eq!(regs[0], 0xdead);
//! ```
//!
//! # Two-phase acquire
//!
//! As for [`KSpinLock`]: [`InterruptSpinLock::begin_acquire`] makes one
//! attempt and otherwise returns an [`InterruptSpinWaiter`], whose
//! [`poll`](InterruptSpinWaiter::poll) is one test-and-test-and-set
//! iteration. The waiter carries the `SynchronizeIrql`, the level a kernel
//! would spin at (it raises before it spins). Dropping a waiter gives up.
//!
//! ```
//! use spinlocks::InterruptSpinLock;
//!
//! let device = InterruptSpinLock::new(5, 0u32);
//! let barrier = std::sync::Barrier::new(2);
//! std::thread::scope(|s| {
//!     let isr = device.lock(); // the "ISR" holds it
//!     s.spawn(|| {
//!         // Another processor: it gets a waiter, which spins at
//!         // SynchronizeIrql.
//!         let mut waiter = device.begin_acquire().unwrap_err();
//!         assert_eq!(waiter.synchronize_irql(), 5);
//!         assert!(waiter.poll().is_none()); // still held
//!         barrier.wait(); // let the holder go
//!         let mut guard = loop {
//!             if let Some(guard) = waiter.poll() {
//!                 break guard;
//!             }
//!             std::hint::spin_loop();
//!         };
//!         *guard += 1;
//!     });
//!     barrier.wait();
//!     drop(isr);
//! });
//! assert_eq!(device.synchronize(|v| *v), 1);
//! ```

use core::fmt;
use core::ops::{Deref, DerefMut};

use super::kspin::{KSpinLock, KSpinLockGuard, KSpinWaiter};
use super::sync::const_fn_unless_loom;

/// `HIGH_LEVEL` on x64: the largest IRQL.
pub const HIGH_LEVEL: u8 = 15;

/// An interrupt spin lock protecting a `T`, tagged with the interrupt's
/// `SynchronizeIrql`.
pub struct InterruptSpinLock<T: ?Sized> {
    synchronize_irql: u8,
    lock: KSpinLock<T>,
}

impl<T> InterruptSpinLock<T> {
    const_fn_unless_loom! {
        /// A free lock around `data` for an interrupt whose `SynchronizeIrql`
        /// is `synchronize_irql`.
        ///
        /// # Panics
        ///
        /// If `synchronize_irql` exceeds [`HIGH_LEVEL`] (15).
        pub fn new(synchronize_irql: u8, data: T) -> Self {
            assert!(synchronize_irql <= HIGH_LEVEL, "IRQL above HIGH_LEVEL");
            Self {
                synchronize_irql,
                lock: KSpinLock::new(data),
            }
        }
    }

    /// Consumes the lock and returns the data.
    pub fn into_inner(self) -> T {
        self.lock.into_inner()
    }
}

impl<T: ?Sized> InterruptSpinLock<T> {
    /// The interrupt's `SynchronizeIrql`.
    pub fn synchronize_irql(&self) -> u8 {
        self.synchronize_irql
    }

    /// `KeSynchronizeExecution`: run `routine` holding the lock and return
    /// its result. The lock is released even if `routine` panics.
    ///
    /// # Panics
    ///
    /// With `SPIN_LOCK_ALREADY_OWNED` if this thread already holds the lock.
    #[inline]
    pub fn synchronize<R>(&self, routine: impl FnOnce(&mut T) -> R) -> R {
        let mut guard = self.lock.lock();
        routine(&mut guard)
    }

    /// `KeAcquireInterruptSpinLock`: the guard releases on drop
    /// (`KeReleaseInterruptSpinLock`).
    ///
    /// # Panics
    ///
    /// With `SPIN_LOCK_ALREADY_OWNED` if this thread already holds the lock.
    #[inline]
    pub fn lock(&self) -> InterruptSpinLockGuard<'_, T> {
        InterruptSpinLockGuard {
            guard: self.lock.lock(),
            synchronize_irql: self.synchronize_irql,
        }
    }

    /// First phase of a two-phase acquire: one attempt; if the lock is held,
    /// an [`InterruptSpinWaiter`] to [`poll`](InterruptSpinWaiter::poll).
    /// See [`KSpinLock::begin_acquire`].
    ///
    /// # Panics
    ///
    /// With `SPIN_LOCK_ALREADY_OWNED` if this thread already holds the lock.
    #[inline]
    pub fn begin_acquire(
        &self,
    ) -> Result<InterruptSpinLockGuard<'_, T>, InterruptSpinWaiter<'_, T>> {
        match self.lock.begin_acquire() {
            Ok(guard) => Ok(InterruptSpinLockGuard {
                guard,
                synchronize_irql: self.synchronize_irql,
            }),
            Err(waiter) => Err(InterruptSpinWaiter {
                waiter,
                synchronize_irql: self.synchronize_irql,
            }),
        }
    }

    /// One acquire attempt; fails at once if the lock is held.
    #[inline]
    pub fn try_lock(&self) -> Option<InterruptSpinLockGuard<'_, T>> {
        self.lock.try_lock().map(|guard| InterruptSpinLockGuard {
            guard,
            synchronize_irql: self.synchronize_irql,
        })
    }

    /// Whether anyone holds the lock. A hint.
    pub fn is_locked(&self) -> bool {
        self.lock.is_locked()
    }

    /// Whether the calling thread holds the lock.
    pub fn is_held_by_current_thread(&self) -> bool {
        self.lock.is_held_by_current_thread()
    }

    /// Mutable access without locking: `&mut self` proves no one holds it.
    pub fn get_mut(&mut self) -> &mut T {
        self.lock.get_mut()
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for InterruptSpinLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InterruptSpinLock")
            .field("synchronize_irql", &self.synchronize_irql)
            .field("lock", &&self.lock)
            .finish()
    }
}

/// A pending acquire of an [`InterruptSpinLock`], from
/// [`begin_acquire`](InterruptSpinLock::begin_acquire). Each
/// [`poll`](Self::poll) is one test-and-test-and-set iteration (see
/// [`KSpinWaiter`]); dropping the waiter gives up. Not `Send`.
#[must_use = "a waiter does nothing unless polled"]
pub struct InterruptSpinWaiter<'a, T: ?Sized> {
    waiter: KSpinWaiter<'a, T>,
    synchronize_irql: u8,
}

impl<'a, T: ?Sized> InterruptSpinWaiter<'a, T> {
    /// One spin iteration; `Some(guard)` once the lock is ours.
    ///
    /// # Panics
    ///
    /// As [`KSpinWaiter::poll`]: if this thread holds the lock, or if the
    /// waiter already returned its guard.
    #[inline]
    pub fn poll(&mut self) -> Option<InterruptSpinLockGuard<'a, T>> {
        self.waiter.poll().map(|guard| InterruptSpinLockGuard {
            guard,
            synchronize_irql: self.synchronize_irql,
        })
    }

    /// Polls, pausing in between, until the lock is ours.
    pub fn wait(self) -> InterruptSpinLockGuard<'a, T> {
        InterruptSpinLockGuard {
            guard: self.waiter.wait(),
            synchronize_irql: self.synchronize_irql,
        }
    }

    /// The IRQL a kernel would spin at: the interrupt's `SynchronizeIrql`.
    pub fn synchronize_irql(&self) -> u8 {
        self.synchronize_irql
    }
}

impl<T: ?Sized> fmt::Debug for InterruptSpinWaiter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InterruptSpinWaiter")
            .field("synchronize_irql", &self.synchronize_irql)
            .field("waiter", &self.waiter)
            .finish()
    }
}

/// RAII guard of an [`InterruptSpinLock`]. Not `Send`.
#[must_use = "dropping the guard releases the lock at once"]
pub struct InterruptSpinLockGuard<'a, T: ?Sized> {
    guard: KSpinLockGuard<'a, T>,
    synchronize_irql: u8,
}

impl<T: ?Sized> InterruptSpinLockGuard<'_, T> {
    /// The IRQL a kernel would be running at while holding this lock.
    pub fn synchronize_irql(&self) -> u8 {
        self.synchronize_irql
    }
}

impl<T: ?Sized> Deref for InterruptSpinLockGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T: ?Sized> DerefMut for InterruptSpinLockGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for InterruptSpinLockGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
