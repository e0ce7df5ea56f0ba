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
//!
//! # Two-phase acquire
//!
//! [`ExSpinLock::begin_read`] and [`ExSpinLock::begin_write`] take the lock
//! or return a waiter ([`ExReadWaiter`], [`ExWriteWaiter`]) whose `poll`
//! does one step (one read of the word, at most one compare-exchange) and
//! never loops; [`read`](ExSpinLock::read) and [`write`](ExSpinLock::write)
//! are `begin_*` followed by the waiter's `wait`. A write waiter holds its
//! claim while it waits (bit 31 while it drains readers, or its place in
//! the waiter count and so bit 30 while another writer holds bit 31), so
//! writer preference is the same as for `write`. Dropping a write waiter
//! withdraws that claim; a read waiter holds nothing.
//!
//! ```
//! use spinlocks::ExSpinLock;
//!
//! // One thread playing several processors, polling by hand.
//! let lock = ExSpinLock::new(0);
//! let reader = lock.read();
//! // A writer arrives: it claims bit 31 and waits for `reader` to drain.
//! let mut writer = lock.begin_write().unwrap_err();
//! assert!(writer.poll().is_none());
//! // A new reader must now queue behind the waiting writer.
//! let mut late = lock.begin_read().unwrap_err();
//! assert!(late.poll().is_none());
//! drop(reader);
//! let mut w = writer.poll().expect("the reader has drained");
//! *w += 1;
//! assert!(late.poll().is_none()); // held exclusive
//! drop(w);
//! assert_eq!(*late.poll().expect("the writer is gone"), 1);
//!
//! // Dropping a waiting writer withdraws its claim.
//! let holder = lock.write();
//! let second = lock.begin_write().unwrap_err(); // registered: bit 30
//! assert!(lock.is_exclusive_waiting());
//! drop(second);
//! assert!(!lock.is_exclusive_waiting());
//! drop(holder);
//! assert!(lock.try_read().is_some());
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
    /// writer holds, claims or waits for it: the same steps as
    /// [`begin_read`](Self::begin_read) and then [`ExReadWaiter::wait`].
    ///
    /// # Panics
    ///
    /// If 2^20 − 1 shared holders already exist.
    #[inline]
    pub fn read(&self) -> ExSharedGuard<'_, T> {
        // `begin_read`'s fast path, written out as before the two-phase API:
        // routing `read` and `write` through `begin_*`'s `Result` moved the
        // one-thread benchmark by up to 15% (a code-placement effect: with
        // loops aligned to 64 bytes both shapes measured the same), so the
        // old shape stays. The slow path is the waiter's.
        let word = self.word.load(Ordering::Relaxed);
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

    /// The rest of `read`: the slow part of `begin_read`, then the waiter's
    /// polls.
    #[cold]
    #[inline(never)]
    fn read_slow(&self) {
        if let Err(waiter) = self.begin_read_slow() {
            waiter.wait_raw();
        }
    }

    /// First phase of a two-phase shared acquire: takes the lock shared
    /// unless a writer holds, claims or waits for it, in which case it
    /// returns an [`ExReadWaiter`] to [`poll`](ExReadWaiter::poll). Never
    /// waits for a holder (it retries its compare-exchange only while other
    /// readers change the count under it).
    ///
    /// # Panics
    ///
    /// If 2^20 − 1 shared holders already exist.
    #[inline]
    pub fn begin_read(&self) -> Result<ExSharedGuard<'_, T>, ExReadWaiter<'_, T>> {
        let word = self.word.load(Ordering::Relaxed);
        // Fast path: no writer, count not full, one compare-exchange.
        if word & (EX_EXCLUSIVE | EX_EXCLUSIVE_WAITING) == 0
            && word & EX_SHARED_MASK != EX_SHARED_MASK
            && self
                .word
                .compare_exchange_weak(word, word + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            return Ok(ExSharedGuard::new(self));
        }
        self.begin_read_slow().map(|()| ExSharedGuard::new(self))
    }

    /// `begin_read` past its fast path: `Ok(())` if it took the lock shared.
    #[cold]
    fn begin_read_slow(&self) -> Result<(), ExReadWaiter<'_, T>> {
        if self.try_read_raw() {
            Ok(())
        } else {
            Err(ExReadWaiter {
                lock: self,
                done: false,
                _not_send: PhantomData,
            })
        }
    }

    /// One shared-acquire attempt: `false` only if a writer holds, claims or
    /// waits (retries while other readers merely change the count).
    fn try_read_raw(&self) -> bool {
        reader_try(&self.word)
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
    /// bit 31, then waits for the shared holders to drain: the same steps as
    /// [`begin_write`](Self::begin_write) and then [`ExWriteWaiter::wait`].
    #[inline]
    pub fn write(&self) -> ExExclusiveGuard<'_, T> {
        // `begin_write`'s fast path, written out (see `read`).
        if let Err(word) =
            self.word
                .compare_exchange_weak(0, EX_EXCLUSIVE, Ordering::Acquire, Ordering::Relaxed)
        {
            self.write_slow(word);
        }
        ExExclusiveGuard::new(self)
    }

    /// The rest of `write`: the slow part of `begin_write`, then the
    /// waiter's polls.
    #[cold]
    #[inline(never)]
    fn write_slow(&self, word: u32) {
        if let Err(waiter) = self.begin_write_slow(word) {
            waiter.wait_raw();
        }
    }

    /// First phase of a two-phase exclusive acquire. Claims bit 31 if no
    /// other writer has it; with no shared holders either, that is the lock
    /// (`Ok`). Otherwise returns an [`ExWriteWaiter`] that already keeps new
    /// readers out: it either owns bit 31 and waits for the shared holders to
    /// drain, or is registered as a waiting writer (bit 30 and the waiter
    /// count) behind the writer that owns bit 31. (The one exception: with
    /// 1023 writers registered already, it waits unregistered, and the
    /// others' bit 30 keeps readers out.)
    ///
    /// Never waits for a holder: it retries its compare-exchange only while
    /// the word changes under it.
    #[inline]
    pub fn begin_write(&self) -> Result<ExExclusiveGuard<'_, T>, ExWriteWaiter<'_, T>> {
        match self
            .word
            .compare_exchange_weak(0, EX_EXCLUSIVE, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => Ok(ExExclusiveGuard::new(self)),
            Err(word) => self
                .begin_write_slow(word)
                .map(|()| ExExclusiveGuard::new(self)),
        }
    }

    /// `begin_write` past its fast path, `word` being the value its
    /// compare-exchange saw: `Ok(())` if it took the lock exclusive.
    #[cold]
    fn begin_write_slow(&self, word: u32) -> Result<(), ExWriteWaiter<'_, T>> {
        writer_begin(&self.word, word).map_err(|state| ExWriteWaiter {
            lock: self,
            state,
            _not_send: PhantomData,
        })
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

/// A pending shared acquire of an [`ExSpinLock`], from
/// [`begin_read`](ExSpinLock::begin_read).
///
/// Each [`poll`](Self::poll) reads the word once and, if no writer holds,
/// claims or waits for the lock, tries one compare-exchange to add a shared
/// holder. It never loops or pauses; [`wait`](Self::wait) polls until the
/// lock is ours. A read waiter registers nothing in the word, so dropping it
/// just gives up. Once `poll` has returned the guard, polling again panics.
/// Not `Send`.
#[must_use = "a waiter does nothing unless polled"]
pub struct ExReadWaiter<'a, T: ?Sized> {
    lock: &'a ExSpinLock<T>,
    done: bool,
    _not_send: PhantomData<*const ()>,
}

impl<'a, T: ?Sized> ExReadWaiter<'a, T> {
    /// One spin iteration; `Some(guard)` once the lock is held shared.
    ///
    /// # Panics
    ///
    /// If 2^20 − 1 shared holders already exist, and if called again after
    /// it returned the guard.
    #[inline]
    pub fn poll(&mut self) -> Option<ExSharedGuard<'a, T>> {
        self.step().then(|| ExSharedGuard::new(self.lock))
    }

    /// `poll` without the guard: `true` once the lock is held shared.
    #[inline]
    fn step(&mut self) -> bool {
        assert!(!self.done, "ExReadWaiter polled after it acquired the lock");
        let word = self.lock.word.load(Ordering::Relaxed);
        if word & (EX_EXCLUSIVE | EX_EXCLUSIVE_WAITING) != 0 {
            return false;
        }
        assert!(
            word & EX_SHARED_MASK != EX_SHARED_MASK,
            "ExSpinLock: too many shared holders"
        );
        // Acquire pairs with the last writer's Release.
        self.done = self
            .lock
            .word
            .compare_exchange(word, word + 1, Ordering::Acquire, Ordering::Relaxed)
            .is_ok();
        self.done
    }

    /// Polls, pausing with [`core::hint::spin_loop`] in between, until the
    /// lock is held shared.
    pub fn wait(self) -> ExSharedGuard<'a, T> {
        let lock = self.lock;
        self.wait_raw();
        ExSharedGuard::new(lock)
    }

    /// `wait` without the guard (the caller builds it).
    #[cold]
    #[inline(never)]
    fn wait_raw(mut self) {
        while !self.step() {
            spin_loop();
        }
    }
}

impl<T: ?Sized> fmt::Debug for ExReadWaiter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExReadWaiter")
            .field("acquired", &self.done)
            .finish_non_exhaustive()
    }
}

/// Where a waiting writer stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WriterState {
    /// Not counted in the word (only when 1023 writers are registered).
    Unregistered,
    /// Counted in bits 20..=29 (so bit 30 is set); another writer has bit 31.
    Registered,
    /// Owns bit 31; waiting for the shared holders to drain.
    Draining,
    /// The guard has been handed out.
    Done,
}

/// A pending exclusive acquire of an [`ExSpinLock`], from
/// [`begin_write`](ExSpinLock::begin_write).
///
/// While it waits, the writer keeps its claim, so new readers stay out
/// (writer preference): it either owns bit 31 and waits for the shared
/// holders to drain, or is registered as a waiting writer (bit 30 and the
/// waiter count) until the writer that owns bit 31 lets go. Each
/// [`poll`](Self::poll) is one step: one read of the word and at most one
/// compare-exchange (to claim bit 31, unregistering in the same step). It
/// never loops or pauses; [`wait`](Self::wait) polls until the lock is ours.
///
/// **Dropping a waiter withdraws its claim**: a registered writer leaves
/// the waiter count (clearing bit 30 if it was the last), and one that owns
/// bit 31 clears it, so readers and other writers can get in. Once `poll`
/// has returned the guard the waiter is spent (dropping it does nothing)
/// and polling it again panics. Not `Send`.
#[must_use = "dropping a write waiter withdraws it"]
pub struct ExWriteWaiter<'a, T: ?Sized> {
    lock: &'a ExSpinLock<T>,
    state: WriterState,
    _not_send: PhantomData<*const ()>,
}

impl<'a, T: ?Sized> ExWriteWaiter<'a, T> {
    /// One step; `Some(guard)` once the lock is held exclusive.
    ///
    /// # Panics
    ///
    /// If called again after it returned the guard.
    #[inline]
    pub fn poll(&mut self) -> Option<ExExclusiveGuard<'a, T>> {
        self.step().then(|| ExExclusiveGuard::new(self.lock))
    }

    /// `poll` without the guard: `true` once the lock is held exclusive.
    #[inline]
    fn step(&mut self) -> bool {
        writer_step(&self.lock.word, &mut self.state)
    }

    /// Polls, pausing with [`core::hint::spin_loop`] in between, until the
    /// lock is held exclusive.
    pub fn wait(self) -> ExExclusiveGuard<'a, T> {
        let lock = self.lock;
        self.wait_raw();
        ExExclusiveGuard::new(lock)
    }

    /// `wait` without the guard (the caller builds it).
    #[cold]
    #[inline(never)]
    fn wait_raw(mut self) {
        while !self.step() {
            spin_loop();
        }
    }

    /// Whether this writer owns bit 31 (and waits only for readers to
    /// drain), rather than waiting for another writer.
    pub fn is_draining(&self) -> bool {
        self.state == WriterState::Draining
    }
}

impl<T: ?Sized> Drop for ExWriteWaiter<'_, T> {
    /// Withdraws the claim (see the type docs).
    fn drop(&mut self) {
        writer_withdraw(&self.lock.word, self.state);
    }
}

impl<T: ?Sized> fmt::Debug for ExWriteWaiter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExWriteWaiter")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// `begin_write` past its fast path, on a bare lock word: `word` is the
/// value the fast path's compare-exchange saw. `Ok(())` if the lock is now
/// held exclusive; otherwise the waiting writer's state (bit 31 claimed and
/// draining readers, or registered behind another writer).
pub(crate) fn writer_begin(lock: &AtomicU32, mut word: u32) -> Result<(), WriterState> {
    loop {
        if word & EX_EXCLUSIVE == 0 {
            // Claim bit 31. Acquire: if no reader is left, the lock is
            // ours now, after the previous holders' Release.
            match lock.compare_exchange(
                word,
                word | EX_EXCLUSIVE,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) if word & EX_SHARED_MASK == 0 => return Ok(()),
                Ok(_) => return Err(WriterState::Draining),
                Err(now) => {
                    word = now;
                    continue;
                }
            }
        }
        if word & WAITER_MASK == WAITER_MASK {
            return Err(WriterState::Unregistered);
        }
        // Another writer has bit 31: register, which sets bit 30 so that
        // readers cannot slip in when that writer releases.
        match lock.compare_exchange(
            word,
            (word + WAITER_ONE) | EX_EXCLUSIVE_WAITING,
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(_) => return Err(WriterState::Registered),
            Err(now) => word = now,
        }
    }
}

/// One step of a waiting writer on a bare lock word: one read, at most one
/// compare-exchange. `true` (and `Done`) once the lock is held exclusive.
///
/// # Panics
///
/// If `state` is already `Done`.
#[inline]
pub(crate) fn writer_step(lock: &AtomicU32, state: &mut WriterState) -> bool {
    match *state {
        WriterState::Draining => {
            // Acquire pairs with each reader's Release decrement.
            if lock.load(Ordering::Acquire) & EX_SHARED_MASK != 0 {
                return false;
            }
        }
        WriterState::Registered | WriterState::Unregistered => {
            let word = lock.load(Ordering::Relaxed);
            if word & EX_EXCLUSIVE != 0 {
                // Still another writer's. Register if not yet counted
                // (the count was full when we arrived).
                if *state == WriterState::Unregistered
                    && word & WAITER_MASK != WAITER_MASK
                    && lock
                        .compare_exchange(
                            word,
                            (word + WAITER_ONE) | EX_EXCLUSIVE_WAITING,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        )
                        .is_ok()
                {
                    *state = WriterState::Registered;
                }
                return false;
            }
            // Claim bit 31, and leave the waiters in the same step.
            let mut new = word | EX_EXCLUSIVE;
            if *state == WriterState::Registered {
                new = unregister_waiter(new);
            }
            // Acquire: if no reader is left the lock is ours now.
            if lock
                .compare_exchange(word, new, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                return false;
            }
            if word & EX_SHARED_MASK != 0 {
                *state = WriterState::Draining;
                return false;
            }
        }
        WriterState::Done => panic!("ExWriteWaiter polled after it acquired the lock"),
    }
    *state = WriterState::Done;
    true
}

/// Withdraws a waiting writer's claim on a bare lock word (see
/// [`ExWriteWaiter`]'s drop).
pub(crate) fn writer_withdraw(lock: &AtomicU32, state: WriterState) {
    match state {
        WriterState::Registered => {
            let mut word = lock.load(Ordering::Relaxed);
            while let Err(now) = lock.compare_exchange_weak(
                word,
                unregister_waiter(word),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                word = now;
            }
        }
        WriterState::Draining => {
            // Bit 31 is ours (readers still hold: nothing to publish, but
            // Release keeps the word's release sequence simple to reason
            // about).
            lock.fetch_and(!EX_EXCLUSIVE, Ordering::Release);
        }
        WriterState::Unregistered | WriterState::Done => {}
    }
}

/// One shared-acquire attempt on a bare lock word: `false` only if a writer
/// holds, claims or waits (retries while other readers merely change the
/// count).
///
/// # Panics
///
/// If 2^20 − 1 shared holders already exist.
pub(crate) fn reader_try(lock: &AtomicU32) -> bool {
    let mut word = lock.load(Ordering::Relaxed);
    loop {
        if word & (EX_EXCLUSIVE | EX_EXCLUSIVE_WAITING) != 0 {
            return false;
        }
        assert!(
            word & EX_SHARED_MASK != EX_SHARED_MASK,
            "ExSpinLock: too many shared holders"
        );
        match lock.compare_exchange(word, word + 1, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(now) => word = now,
        }
    }
}
