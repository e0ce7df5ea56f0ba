//! [`ExSpinLock`]: the reader/writer spin lock (`EX_SPIN_LOCK`), writer
//! preferring, with shared-to-exclusive try-convert.
//!
//! # Word encoding (one `AtomicU32`)
//!
//! | bits   | meaning |
//! |--------|---------|
//! | 31     | [`EX_EXCLUSIVE`]: held exclusive, or claimed by a writer that is waiting for the shared holders to drain |
//! | 30     | [`EX_EXCLUSIVE_WAITING`]: at least one exclusive acquirer is waiting (set exactly when bits 20..=29 are non-zero) |
//! | 20..=29| the number of waiting exclusive acquirers (saturates at 1023; see below) |
//! | 0..=19 | the number of shared holders |
//!
//! Windows' layout is bit 31 / bit 30 / shared count. A single "a writer
//! waits" bit goes wrong once two writers wait: the first to win would clear
//! the bit and erase the second's claim, letting new readers in ahead of it.
//! So the waiters are *counted* in the same word (bits 20..=29) and bit 30 is
//! kept equal to "that count is non-zero"; every change to either is one
//! compare-exchange of the whole word, so they never disagree. If more than
//! 1023 writers wait at once, the extra ones spin unregistered: bit 30 stays
//! set by the registered ones, so correctness is unaffected.
//!
//! # Protocol
//!
//! * **Shared**: increment the count, but only while bits 31 and 30 are both
//!   clear. A writer that holds, claims or waits for the lock therefore keeps
//!   new readers out (writer preference); readers can starve under a steady
//!   stream of writers, as on Windows.
//! * **Exclusive**: set bit 31 (if clear); while another writer has bit 31,
//!   register as a waiter (bit 30 and the count) and retry when it clears,
//!   unregistering in the same compare-exchange that sets bit 31. Then wait
//!   for the shared count to drain. Waiting writers are granted in no
//!   particular order.
//! * **Try-convert** shared → exclusive: succeeds only if the word is exactly
//!   "one shared holder, nothing else" (we are the sole reader and no writer
//!   holds, claims or waits); on failure the caller keeps its shared hold.
//! * Releases are a `fetch_sub` (shared) or clearing bit 31 (exclusive).
//!
//! Re-entering a lock already held (shared or exclusive) can deadlock, as on
//! Windows: a second `read` blocks behind any writer waiting for the first.
//!
//! ```
//! use spinlocks::{ExSharedGuard, ExSpinLock};
//!
//! let lock = ExSpinLock::new(vec![1, 2, 3]);
//! {
//!     let a = lock.read();
//!     let b = lock.read(); // shared holders coexist
//!     assert_eq!(a.len() + b.len(), 6);
//!     assert_eq!(lock.shared_count(), 2);
//!     // Not the only reader: conversion fails and `b` is handed back.
//!     let b = ExSharedGuard::try_convert(b).unwrap_err();
//!     drop((a, b));
//! }
//! let r = lock.read();
//! let mut w = ExSharedGuard::try_convert(r).expect("sole reader, no writer");
//! w.push(4);
//! drop(w);
//! assert_eq!(*lock.write(), [1, 2, 3, 4]);
//! ```

use core::cell::UnsafeCell;
use core::fmt;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};

use super::sync::{const_fn_unless_loom, spin_loop, AtomicU32, Ordering};

/// Bit 31: held (or claimed) exclusive.
pub const EX_EXCLUSIVE: u32 = 1 << 31;
/// Bit 30: an exclusive acquirer is waiting.
pub const EX_EXCLUSIVE_WAITING: u32 = 1 << 30;
/// One waiting exclusive acquirer in the waiter count (bits 20..=29).
const WAITER_ONE: u32 = 1 << 20;
/// The waiter count field.
const WAITER_MASK: u32 = 0x3FF << 20;
/// The shared-holder count field (bits 0..=19).
pub const EX_SHARED_MASK: u32 = WAITER_ONE - 1;

/// A writer-preferring reader/writer spin lock protecting a `T`.
/// See the [module docs](self) for the word encoding and protocol.
pub struct ExSpinLock<T: ?Sized> {
    word: AtomicU32,
    data: UnsafeCell<T>,
}

// SAFETY: readers on several threads share `&T` at once, so `T: Sync` is
// needed as well as `T: Send` (the same bounds as `std::sync::RwLock`).
unsafe impl<T: ?Sized + Send + Sync> Sync for ExSpinLock<T> {}
// SAFETY: owning the lock is owning the `T`.
unsafe impl<T: ?Sized + Send> Send for ExSpinLock<T> {}

impl<T> ExSpinLock<T> {
    const_fn_unless_loom! {
        /// A free lock around `data` (word = 0).
        pub fn new(data: T) -> Self {
            Self {
                word: AtomicU32::new(0),
                data: UnsafeCell::new(data),
            }
        }
    }

    /// Consumes the lock and returns the data.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

/// Removes one registered waiter from `word`, clearing bit 30 with the last.
#[inline]
fn unregister_waiter(word: u32) -> u32 {
    let word = word - WAITER_ONE;
    if word & WAITER_MASK == 0 {
        word & !EX_EXCLUSIVE_WAITING
    } else {
        word
    }
}

impl<T: ?Sized> ExSpinLock<T> {
    /// Acquires the lock shared (`ExAcquireSpinLockShared`), spinning while a
    /// writer holds, claims or waits for it.
    ///
    /// # Panics
    ///
    /// If 2^20 − 1 shared holders already exist.
    #[inline]
    pub fn read(&self) -> ExSharedGuard<'_, T> {
        let word = self.word.load(Ordering::Relaxed);
        // Fast path: no writer, count not full, one compare-exchange.
        if word & (EX_EXCLUSIVE | EX_EXCLUSIVE_WAITING) != 0
            || word & EX_SHARED_MASK == EX_SHARED_MASK
            || self
                .word
                .compare_exchange_weak(word, word + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            self.read_slow();
        }
        ExSharedGuard::new(self)
    }

    #[cold]
    fn read_slow(&self) {
        loop {
            if self.try_read_raw() {
                return;
            }
            // Pause before every re-read, then spin until no writer holds,
            // claims or waits.
            loop {
                spin_loop();
                let word = self.word.load(Ordering::Relaxed);
                if word & (EX_EXCLUSIVE | EX_EXCLUSIVE_WAITING) == 0 {
                    break;
                }
            }
        }
    }

    /// One shared-acquire attempt: `false` only if a writer holds, claims or
    /// waits (retries while other readers merely change the count).
    fn try_read_raw(&self) -> bool {
        let mut word = self.word.load(Ordering::Relaxed);
        loop {
            if word & (EX_EXCLUSIVE | EX_EXCLUSIVE_WAITING) != 0 {
                return false;
            }
            assert!(
                word & EX_SHARED_MASK != EX_SHARED_MASK,
                "ExSpinLock: too many shared holders"
            );
            match self
                .word
                .compare_exchange(word, word + 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => word = now,
            }
        }
    }

    /// Acquires the lock shared if no writer holds, claims or waits for it.
    ///
    /// # Panics
    ///
    /// If 2^20 − 1 shared holders already exist.
    #[inline]
    pub fn try_read(&self) -> Option<ExSharedGuard<'_, T>> {
        self.try_read_raw().then(|| ExSharedGuard::new(self))
    }

    /// Acquires the lock exclusive (`ExAcquireSpinLockExclusive`): claims
    /// bit 31, then waits for the shared holders to drain.
    #[inline]
    pub fn write(&self) -> ExExclusiveGuard<'_, T> {
        if self
            .word
            .compare_exchange_weak(0, EX_EXCLUSIVE, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.write_slow();
        }
        ExExclusiveGuard::new(self)
    }

    #[cold]
    fn write_slow(&self) {
        let mut registered = false;
        let mut word = self.word.load(Ordering::Relaxed);
        loop {
            if word & EX_EXCLUSIVE == 0 {
                // Claim bit 31, and leave the waiters in the same step.
                let mut new = word | EX_EXCLUSIVE;
                if registered {
                    new = unregister_waiter(new);
                }
                match self
                    .word
                    .compare_exchange(word, new, Ordering::Acquire, Ordering::Relaxed)
                {
                    Ok(_) => break,
                    Err(now) => {
                        word = now;
                        continue;
                    }
                }
            }
            if !registered && word & WAITER_MASK != WAITER_MASK {
                // Another writer has bit 31: register, which sets bit 30 so
                // that readers cannot slip in when that writer releases.
                let new = (word + WAITER_ONE) | EX_EXCLUSIVE_WAITING;
                match self
                    .word
                    .compare_exchange(word, new, Ordering::Relaxed, Ordering::Relaxed)
                {
                    Ok(_) => registered = true,
                    Err(now) => {
                        word = now;
                        continue;
                    }
                }
            }
            spin_loop();
            word = self.word.load(Ordering::Relaxed);
        }
        self.drain_readers();
    }

    /// With bit 31 ours, wait for the shared holders to leave.
    #[inline]
    fn drain_readers(&self) {
        // Acquire pairs with each reader's Release decrement.
        while self.word.load(Ordering::Acquire) & EX_SHARED_MASK != 0 {
            spin_loop();
        }
    }

    /// Acquires the lock exclusive if no one holds it in either mode (waiting
    /// writers do not stop this: exclusive waiters have no promised order).
    pub fn try_write(&self) -> Option<ExExclusiveGuard<'_, T>> {
        let mut word = self.word.load(Ordering::Relaxed);
        loop {
            if word & (EX_EXCLUSIVE | EX_SHARED_MASK) != 0 {
                return None;
            }
            match self.word.compare_exchange(
                word,
                word | EX_EXCLUSIVE,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(ExExclusiveGuard::new(self)),
                Err(now) => word = now,
            }
        }
    }

    /// Whether bit 31 is set: held exclusive, or claimed by a writer waiting
    /// for readers to drain. A hint.
    pub fn is_locked_exclusive(&self) -> bool {
        self.word.load(Ordering::Relaxed) & EX_EXCLUSIVE != 0
    }

    /// Whether bit 30 is set: some exclusive acquirer is waiting. A hint.
    pub fn is_exclusive_waiting(&self) -> bool {
        self.word.load(Ordering::Relaxed) & EX_EXCLUSIVE_WAITING != 0
    }

    /// How many exclusive acquirers are registered as waiting (bits 20..=29).
    /// A hint.
    pub fn exclusive_waiters(&self) -> u32 {
        (self.word.load(Ordering::Relaxed) & WAITER_MASK) >> 20
    }

    /// How many shared holders there are. A hint.
    pub fn shared_count(&self) -> u32 {
        self.word.load(Ordering::Relaxed) & EX_SHARED_MASK
    }

    /// The raw lock word (for diagnostics and the emulator's statistics).
    pub fn raw_word(&self) -> u32 {
        self.word.load(Ordering::Relaxed)
    }

    /// Mutable access without locking: `&mut self` proves no one holds it.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

impl<T: Default> Default for ExSpinLock<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T> From<T> for ExSpinLock<T> {
    fn from(data: T) -> Self {
        Self::new(data)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for ExSpinLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ExSpinLock");
        d.field("word", &format_args!("{:#010x}", self.raw_word()));
        match self.try_read() {
            Some(guard) => d.field("data", &&*guard),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish_non_exhaustive()
    }
}

/// RAII shared guard of an [`ExSpinLock`] (`ExReleaseSpinLockShared` on
/// drop). Not `Send`: released where acquired, like the kernel's.
#[must_use = "dropping the guard releases the lock at once"]
pub struct ExSharedGuard<'a, T: ?Sized> {
    lock: &'a ExSpinLock<T>,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: sharing the guard between threads only shares `&T`.
unsafe impl<T: ?Sized + Sync> Sync for ExSharedGuard<'_, T> {}

impl<'a, T: ?Sized> ExSharedGuard<'a, T> {
    fn new(lock: &'a ExSpinLock<T>) -> Self {
        Self {
            lock,
            _not_send: PhantomData,
        }
    }

    /// `ExTryConvertSharedSpinLockExclusive`: turn this shared hold into an
    /// exclusive one, in one step, if the caller is the only shared holder
    /// and no writer holds, claims or waits for the lock. On failure the
    /// shared guard comes back unchanged in `Err`: the caller still holds the
    /// lock shared and must release it as such.
    ///
    /// An associated function (`ExSharedGuard::try_convert(g)`), so that it
    /// cannot shadow a method of `T`.
    pub fn try_convert(this: Self) -> Result<ExExclusiveGuard<'a, T>, Self> {
        // Acquire: readers that left before us happen-before our writes.
        match this
            .lock
            .word
            .compare_exchange(1, EX_EXCLUSIVE, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => {
                let this = ManuallyDrop::new(this);
                Ok(ExExclusiveGuard::new(this.lock))
            }
            Err(_) => Err(this),
        }
    }
}

impl<T: ?Sized> Deref for ExSharedGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: while a shared hold exists no writer can pass the drain.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for ExSharedGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // Release pairs with a writer's Acquire drain.
        self.lock.word.fetch_sub(1, Ordering::Release);
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for ExSharedGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// RAII exclusive guard of an [`ExSpinLock`] (`ExReleaseSpinLockExclusive`
/// on drop). Not `Send`.
#[must_use = "dropping the guard releases the lock at once"]
pub struct ExExclusiveGuard<'a, T: ?Sized> {
    lock: &'a ExSpinLock<T>,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: sharing the guard between threads only shares `&T`.
unsafe impl<T: ?Sized + Sync> Sync for ExExclusiveGuard<'_, T> {}

impl<'a, T: ?Sized> ExExclusiveGuard<'a, T> {
    fn new(lock: &'a ExSpinLock<T>) -> Self {
        Self {
            lock,
            _not_send: PhantomData,
        }
    }

    /// Atomically turns the exclusive hold into a shared one (no window in
    /// which another writer could get in). Waiting writers keep bit 30 set,
    /// so new readers still queue behind them.
    pub fn downgrade(this: Self) -> ExSharedGuard<'a, T> {
        let this = ManuallyDrop::new(this);
        // Bit 31 is ours and the shared count is 0: subtracting
        // (EX_EXCLUSIVE - 1) clears bit 31 and adds one shared holder.
        // Release publishes our writes to the readers that follow.
        this.lock
            .word
            .fetch_sub(EX_EXCLUSIVE - 1, Ordering::Release);
        ExSharedGuard::new(this.lock)
    }
}

impl<T: ?Sized> Deref for ExExclusiveGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: bit 31 is ours and the readers have drained.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for ExExclusiveGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only borrow.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for ExExclusiveGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // Leaves bit 30 and the waiter count for the waiting writers.
        self.lock.word.fetch_and(!EX_EXCLUSIVE, Ordering::Release);
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for ExExclusiveGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
