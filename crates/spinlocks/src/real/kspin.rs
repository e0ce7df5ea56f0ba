//! [`KSpinLock`]: the ordinary spin lock (`KSPIN_LOCK`).
//!
//! One pointer-sized word. Zero means free; a held lock stores the owner's
//! thread tag with bit 0 set, the way a checked Windows kernel stores
//! `owner | 1`. Acquire is test-and-test-and-set: one atomic attempt, and
//! while that fails, spin *reading* the word (with a pause hint) until it
//! reads zero, then try again. Release stores zero with `Release` ordering.
//!
//! Because the word names its owner, a thread that tries to take a lock it
//! already holds panics with `SPIN_LOCK_ALREADY_OWNED` (bugcheck 0xF) instead
//! of spinning forever. The check runs only on the contended path (after the
//! first atomic attempt failed), so the uncontended cost is one thread-local
//! read plus one compare-exchange.
//!
//! ```
//! use spinlocks::KSpinLock;
//! use std::sync::Arc;
//!
//! let lock = Arc::new(KSpinLock::new(0u64));
//! let handles: Vec<_> = (0..4)
//!     .map(|_| {
//!         let lock = Arc::clone(&lock);
//!         std::thread::spawn(move || {
//!             for _ in 0..1000 {
//!                 *lock.lock() += 1;
//!             }
//!         })
//!     })
//!     .collect();
//! for h in handles {
//!     h.join().unwrap();
//! }
//! assert_eq!(*lock.lock(), 4000);
//!
//! // KeTryToAcquireSpinLockAtDpcLevel: fails at once while held.
//! let g = lock.lock();
//! assert!(lock.is_held_by_current_thread());
//! assert!(lock.is_locked() && lock.try_lock().is_none());
//! drop(g);
//! assert!(lock.try_lock().is_some());
//! ```
//!
//! # Two-phase acquire
//!
//! For a caller that must not sit in a spin loop (the emulator's parallel
//! mode returns to its scheduler between spin iterations, to deliver
//! interrupts and feed the watchdog), [`KSpinLock::begin_acquire`] makes one
//! attempt and, if the lock is held, returns a [`KSpinWaiter`]. Each
//! [`KSpinWaiter::poll`] is exactly one test-and-test-and-set iteration (one
//! read of the word, at most one compare-exchange) and never loops.
//! [`lock`](KSpinLock::lock) is `begin_acquire` followed by
//! [`KSpinWaiter::wait`], which polls with a pause in between, so both paths
//! run the same protocol. A waiter registers nothing in the lock: dropping it
//! just gives up.
//!
//! ```
//! use spinlocks::KSpinLock;
//! use std::sync::atomic::{AtomicBool, Ordering};
//!
//! let lock = KSpinLock::new(0u32);
//! let waiting = AtomicBool::new(false);
//! std::thread::scope(|s| {
//!     let held = lock.lock();
//!     s.spawn(|| {
//!         // Held by the main thread: begin_acquire hands back a waiter.
//!         let mut waiter = lock.begin_acquire().unwrap_err();
//!         waiting.store(true, Ordering::Release);
//!         let mut guard = loop {
//!             // One spin iteration per poll. In between, the caller is free
//!             // to deliver an interrupt, check a watchdog, and so on.
//!             if let Some(guard) = waiter.poll() {
//!                 break guard;
//!             }
//!             std::hint::spin_loop();
//!         };
//!         *guard += 1;
//!     });
//!     while !waiting.load(Ordering::Acquire) {
//!         std::hint::spin_loop();
//!     }
//!     drop(held);
//! });
//! assert_eq!(*lock.lock(), 1);
//! ```

use core::cell::UnsafeCell;
use core::fmt;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};

use super::sync::{
    const_fn_unless_loom, current_thread_tag, spin_loop, AtomicUsize, Ordering, ANONYMOUS_TAG,
};

/// The message a re-acquire by the owning thread panics with.
pub const SPIN_LOCK_ALREADY_OWNED: &str = "SPIN_LOCK_ALREADY_OWNED";

/// An ordinary Windows-style spin lock protecting a `T`.
///
/// * [`lock`](Self::lock) spins (test-and-test-and-set) until it owns the
///   lock and returns an RAII guard; dropping the guard releases it.
/// * [`try_lock`](Self::try_lock) fails at once if the word is non-zero
///   (`KeTryToAcquireSpinLockAtDpcLevel`).
/// * [`is_locked`](Self::is_locked) is `KeTestSpinLock` inverted: a hint,
///   stale as soon as it returns.
///
/// # Panics
///
/// [`lock`](Self::lock) panics with `SPIN_LOCK_ALREADY_OWNED` if the calling
/// thread already holds this lock (a real kernel would deadlock or bugcheck
/// 0xF). `try_lock` never panics: it just fails, as on Windows.
///
/// Not fair: a releasing thread can win the lock straight back. Use
/// [`QueuedSpinLock`](crate::QueuedSpinLock) for FIFO order.
pub struct KSpinLock<T: ?Sized> {
    /// 0 = free; otherwise the owner's thread tag (odd, so bit 0 is set).
    word: AtomicUsize,
    data: UnsafeCell<T>,
}

// SAFETY: the lock hands out `&mut T` to one thread at a time, so sharing the
// lock between threads only ever moves access to `T` between threads, which
// `T: Send` allows (the same bounds as `std::sync::Mutex`).
unsafe impl<T: ?Sized + Send> Sync for KSpinLock<T> {}
// SAFETY: owning the lock is owning the `T`.
unsafe impl<T: ?Sized + Send> Send for KSpinLock<T> {}

impl<T> KSpinLock<T> {
    const_fn_unless_loom! {
        /// A free lock around `data` (`KeInitializeSpinLock`: word = 0).
        pub fn new(data: T) -> Self {
            Self {
                word: AtomicUsize::new(0),
                data: UnsafeCell::new(data),
            }
        }
    }

    /// Consumes the lock and returns the data.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> KSpinLock<T> {
    /// Acquires the lock, spinning until it is free, and returns a guard.
    ///
    /// The same as [`begin_acquire`](Self::begin_acquire) followed by
    /// [`KSpinWaiter::wait`].
    ///
    /// # Panics
    ///
    /// With `SPIN_LOCK_ALREADY_OWNED` if the current thread already holds it.
    #[inline]
    pub fn lock(&self) -> KSpinLockGuard<'_, T> {
        match self.begin_acquire() {
            Ok(guard) => guard,
            Err(waiter) => waiter.wait(),
        }
    }

    /// First phase of a two-phase acquire: one test-and-set attempt. Returns
    /// the guard if it took the lock, otherwise a [`KSpinWaiter`] whose
    /// [`poll`](KSpinWaiter::poll) performs one spin iteration per call.
    /// Never spins itself.
    ///
    /// # Panics
    ///
    /// With `SPIN_LOCK_ALREADY_OWNED` if the current thread already holds the
    /// lock (spinning for it could never succeed), like [`lock`](Self::lock).
    #[inline]
    pub fn begin_acquire(&self) -> Result<KSpinLockGuard<'_, T>, KSpinWaiter<'_, T>> {
        let tag = current_thread_tag();
        match self
            .word
            .compare_exchange_weak(0, tag, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => Ok(KSpinLockGuard::new(self)),
            Err(word) => {
                check_not_owner(word, tag);
                Err(KSpinWaiter {
                    lock: self,
                    tag,
                    done: false,
                    _not_send: PhantomData,
                })
            }
        }
    }

    /// Tries once to acquire the lock. Fails at once, without an atomic
    /// read-modify-write, if the word is non-zero (whoever holds it,
    /// including the current thread).
    #[inline]
    pub fn try_lock(&self) -> Option<KSpinLockGuard<'_, T>> {
        if self.word.load(Ordering::Relaxed) != 0 {
            return None;
        }
        let tag = current_thread_tag();
        self.word
            .compare_exchange(0, tag, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| KSpinLockGuard::new(self))
    }

    /// Whether the lock is held by anyone right now (`!KeTestSpinLock`).
    /// Only a hint: the answer may be stale when it arrives.
    #[inline]
    pub fn is_locked(&self) -> bool {
        self.word.load(Ordering::Relaxed) != 0
    }

    /// Whether the calling thread holds this lock (the checked-build owner
    /// field). Exact for the calling thread: no other thread can make this
    /// flip from `true` to `false` or back.
    #[inline]
    pub fn is_held_by_current_thread(&self) -> bool {
        let tag = current_thread_tag();
        tag != ANONYMOUS_TAG && self.word.load(Ordering::Relaxed) == tag
    }

    /// Mutable access without locking: `&mut self` proves no one holds it.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// Releases the lock. Only the guard calls this.
    #[inline]
    fn unlock(&self) {
        debug_assert!(
            self.is_held_by_current_thread() || self.word.load(Ordering::Relaxed) == ANONYMOUS_TAG,
            "SPIN_LOCK_NOT_OWNED (bugcheck 0x10)"
        );
        self.word.store(0, Ordering::Release);
    }
}

/// Panics `SPIN_LOCK_ALREADY_OWNED` if the word read (`word`) names the
/// calling thread (`tag`): it would spin on itself forever.
#[inline]
fn check_not_owner(word: usize, tag: usize) {
    if word == tag && tag != ANONYMOUS_TAG {
        already_owned();
    }
}

#[cold]
#[inline(never)]
fn already_owned() -> ! {
    panic!(
        "{SPIN_LOCK_ALREADY_OWNED} (bugcheck 0xF): this thread already holds \
         the KSpinLock it is trying to acquire"
    );
}

/// A pending acquire of a [`KSpinLock`], from
/// [`begin_acquire`](KSpinLock::begin_acquire): the second phase of a
/// two-phase acquire.
///
/// Each [`poll`](Self::poll) is one test-and-test-and-set iteration: one read
/// of the lock word, and only if that read zero, one compare-exchange. It
/// never loops and never pauses; the caller decides what to do between polls
/// (run an interrupt, check a watchdog, or just [`core::hint::spin_loop`]).
/// [`wait`](Self::wait) polls until the lock is taken.
///
/// A waiter holds no claim on the lock (an ordinary spin lock has no waiter
/// state), so dropping one is free: it simply stops trying.
///
/// Once `poll` has returned the guard the waiter is spent; polling it again
/// panics. Not `Send`: the owner tag it will store names this thread.
#[must_use = "a waiter does nothing unless polled"]
pub struct KSpinWaiter<'a, T: ?Sized> {
    lock: &'a KSpinLock<T>,
    tag: usize,
    done: bool,
    _not_send: PhantomData<*const ()>,
}

impl<'a, T: ?Sized> KSpinWaiter<'a, T> {
    /// One spin iteration: read the word; if it is zero, try once to swap in
    /// this thread's tag. `Some(guard)` once the lock is ours.
    ///
    /// # Panics
    ///
    /// With `SPIN_LOCK_ALREADY_OWNED` if the word names the calling thread
    /// (it took the lock by other means while this waiter was pending, and
    /// still holds it), and if called again after it returned the guard.
    #[inline]
    pub fn poll(&mut self) -> Option<KSpinLockGuard<'a, T>> {
        assert!(!self.done, "KSpinWaiter polled after it acquired the lock");
        let word = self.lock.word.load(Ordering::Relaxed);
        if word == 0 {
            if self
                .lock
                .word
                .compare_exchange(0, self.tag, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                self.done = true;
                return Some(KSpinLockGuard::new(self.lock));
            }
            return None;
        }
        check_not_owner(word, self.tag);
        None
    }

    /// Polls, pausing with [`core::hint::spin_loop`] in between, until the
    /// lock is taken: the rest of [`KSpinLock::lock`].
    ///
    /// # Panics
    ///
    /// As [`poll`](Self::poll).
    #[cold]
    #[inline(never)]
    pub fn wait(mut self) -> KSpinLockGuard<'a, T> {
        loop {
            if let Some(guard) = self.poll() {
                return guard;
            }
            spin_loop();
        }
    }
}

impl<T: ?Sized> fmt::Debug for KSpinWaiter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KSpinWaiter")
            .field("acquired", &self.done)
            .finish_non_exhaustive()
    }
}

impl<T: Default> Default for KSpinLock<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T> From<T> for KSpinLock<T> {
    fn from(data: T) -> Self {
        Self::new(data)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for KSpinLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("KSpinLock");
        match self.try_lock() {
            Some(guard) => d.field("data", &&*guard),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish_non_exhaustive()
    }
}

/// RAII guard of a [`KSpinLock`]; releases it on drop
/// (`KeReleaseSpinLock`).
///
/// Not `Send`: a spin lock is released by the thread (processor) that
/// acquired it, and the owner tag in the word names that thread.
#[must_use = "dropping the guard releases the lock at once"]
pub struct KSpinLockGuard<'a, T: ?Sized> {
    lock: &'a KSpinLock<T>,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: sharing the guard between threads only shares `&T`.
unsafe impl<T: ?Sized + Sync> Sync for KSpinLockGuard<'_, T> {}

impl<'a, T: ?Sized> KSpinLockGuard<'a, T> {
    fn new(lock: &'a KSpinLock<T>) -> Self {
        Self {
            lock,
            _not_send: PhantomData,
        }
    }
}

impl<T: ?Sized> Deref for KSpinLockGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while this thread holds the lock.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for KSpinLockGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only borrow.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for KSpinLockGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.unlock();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for KSpinLockGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
