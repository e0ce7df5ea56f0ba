//! [`QueuedSpinLock`]: the in-stack queued spin lock (an MCS lock), with
//! [`LockQueueHandle`] playing `KLOCK_QUEUE_HANDLE`.
//!
//! The lock word is the queue's tail: a pointer to the last waiter's node, or
//! null when free. Each acquirer brings a node (inside its handle, in its own
//! stack frame): `{ next, lock }` where `lock` holds the flag bits
//! [`LOCK_QUEUE_WAIT`] and [`LOCK_QUEUE_OWNER`].
//!
//! * **Acquire**: `node.next = null`; swap the tail to this node. If the old
//!   tail was null the lock is ours (`OWNER`). Otherwise set `WAIT`, link into
//!   the predecessor's `next` (a `Release` store, so the `WAIT` store is
//!   visible before the link is), and spin on *our own* node until the
//!   predecessor clears `WAIT`.
//! * **Release**: if no successor is linked, compare-exchange the tail from
//!   our node back to null. If that fails, a successor has swapped the tail
//!   but not linked yet: spin until our `next` is set. Then hand over with a
//!   single store to the successor's word (`WAIT` cleared, `OWNER` set).
//!
//! Waiters are served strictly first come, first served (in the order of
//! their tail swaps), and each spins on its own cache line, so a handoff
//! costs one remote write.
//!
//! The flip side of strict FIFO: the lock goes to the next waiter even if
//! the OS has descheduled that thread, and everyone behind it waits until it
//! runs again. Windows waiters spin at `DISPATCH_LEVEL`, where no thread
//! switch can happen; in user space, run no more spinning threads than
//! cores (pinned, as the emulator's parallel mode does), or expect stalls of
//! a scheduler time slice per handoff when oversubscribed.
//!
//! # Two-phase acquire and release
//!
//! For a caller that must return to its own scheduler between spin
//! iterations (the emulator's parallel mode), both halves of the protocol
//! come in steps that never spin:
//!
//! * [`QueuedSpinLock::begin_acquire`] swaps the tail. On an empty queue it
//!   returns [`QueuedAcquire::Acquired`]; otherwise it sets `WAIT` and
//!   returns [`QueuedAcquire::Waiting`] with a [`QueuedWaiter`]. The
//!   waiter's first [`poll`](QueuedWaiter::poll) links the node into its
//!   predecessor; each later poll reads the node's own word once, and
//!   returns the guard when the predecessor has handed over. So linking is a
//!   separate step from the tail swap, as in the emulator's model
//!   (`model::QueuedLockModel`), and a predecessor can observe the
//!   swapped-but-unlinked state for as long as the waiter's owner does not
//!   poll. [`QueuedSpinLock::lock`] is exactly `begin_acquire` and then
//!   [`QueuedWaiter::wait`] (poll, pause, poll...), so the blocking and the
//!   two-phase paths run the same node protocol, store for store.
//! * [`QueuedSpinLockGuard::begin_release`] does the first release step. If
//!   a successor has swapped the tail but not linked yet it returns a
//!   [`QueuedReleaser`], whose [`poll`](QueuedReleaser::poll) reads `next`
//!   once and hands over when the link has arrived. Dropping the guard does
//!   the whole release (spinning for the link if it must).
//! * Dropping a [`QueuedWaiter`] that has not acquired **waits for the lock
//!   and releases it at once**: a queued node cannot leave an MCS queue any
//!   other way. Dropping an unfinished [`QueuedReleaser`] completes the
//!   release.
//!
//! ```
//! use core::pin::pin;
//! use spinlocks::{LockQueueHandle, QueuedAcquire, QueuedSpinLock, QueuedSpinLockGuard};
//!
//! // One thread driving two acquirers by hand, as a scheduler would.
//! let lock = QueuedSpinLock::new(0);
//! let (mut ha, mut hb) = (pin!(LockQueueHandle::new()), pin!(LockQueueHandle::new()));
//! let QueuedAcquire::Acquired(mut a) = lock.begin_acquire(ha.as_mut()) else {
//!     unreachable!("the queue was empty")
//! };
//! let QueuedAcquire::Waiting(mut b) = lock.begin_acquire(hb.as_mut()) else {
//!     unreachable!("`a` holds it")
//! };
//! *a += 1;
//! // `b` has swapped the tail but not linked: the release must wait for it.
//! let mut releaser = QueuedSpinLockGuard::begin_release(a).unwrap_err();
//! assert!(!releaser.poll());
//! assert!(b.poll().is_none()); // links into `a`'s node
//! assert!(releaser.poll()); // sees the link, hands over
//! let mut b = b.poll().expect("handed over");
//! *b += 1;
//! assert!(QueuedSpinLockGuard::begin_release(b).is_ok()); // no one behind
//! assert!(!lock.is_locked());
//! assert_eq!(lock.with_lock(|v| *v), 2);
//! ```
//!
//! # The handle and why this is sound
//!
//! While a node is queued, other threads hold raw pointers to it (the tail,
//! and the predecessor's `next`) and write through them. So the node must
//! neither move nor be freed until it has left the queue. These rules give
//! that, with no `unsafe` needed from the caller:
//!
//! 1. [`QueuedSpinLock::lock`] and [`QueuedSpinLock::begin_acquire`] take
//!    the handle as `Pin<&mut LockQueueHandle>` and the handle is `!Unpin`:
//!    once pinned (with [`core::pin::pin!`] or `Box::pin`) it can never move
//!    again.
//! 2. The guard, waiter or releaser keeps that exclusive borrow for its
//!    lifetime, so the handle cannot be touched, reused or dropped while its
//!    node is queued through it. Dropping any of them takes the node out of
//!    the queue before the borrow ends: the guard releases, the releaser
//!    finishes releasing, and a waiter that has not acquired waits for the
//!    lock and then releases it.
//! 3. Pinning promises that the handle's memory is not reused before its
//!    `Drop` runs. If a guard, waiter or releaser was leaked
//!    (`mem::forget`), the node is still queued when the handle is dropped;
//!    `Drop` then aborts the process (the user-mode stand-in for a
//!    bugcheck) rather than free memory other threads may write to.
//!    Likewise locking through a handle whose node is still queued (again
//!    only possible after a leak) panics.
//!
//! # Example: threads calling `lock`
//!
//! ```
//! use core::pin::pin;
//! use spinlocks::{LockQueueHandle, QueuedSpinLock};
//!
//! let lock = QueuedSpinLock::new(Vec::new());
//! std::thread::scope(|s| {
//!     for i in 0..4 {
//!         let lock = &lock;
//!         s.spawn(move || {
//!             // KLOCK_QUEUE_HANDLE LockHandle;  (in this stack frame)
//!             let mut handle = pin!(LockQueueHandle::new());
//!             for _ in 0..100 {
//!                 // KeAcquireInStackQueuedSpinLock(&Lock, &LockHandle);
//!                 let mut guard = lock.lock(handle.as_mut());
//!                 guard.push(i);
//!                 // KeReleaseInStackQueuedSpinLock(&LockHandle); on drop
//!             }
//!         });
//!     }
//! });
//! assert_eq!(lock.with_lock(|v| v.len()), 400);
//! ```

use core::cell::UnsafeCell;
use core::fmt;
use core::marker::{PhantomData, PhantomPinned};
use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};
use core::pin::{pin, Pin};
use core::ptr;

use super::sync::{const_fn_unless_loom, spin_loop, AtomicPtr, AtomicUsize, Ordering};

/// Flag in a queue node: the node's owner is waiting for the lock.
pub const LOCK_QUEUE_WAIT: usize = 1;
/// Flag in a queue node: the node's owner holds the lock.
pub const LOCK_QUEUE_OWNER: usize = 2;
/// A node that is in no queue.
pub(crate) const LOCK_QUEUE_IDLE: usize = 0;

/// One waiter's queue entry (`KSPIN_LOCK_QUEUE`). Aligned to 128 bytes so
/// each waiter spins on its own cache line (two lines on CPUs that fetch
/// line pairs).
///
/// Invariant: an idle node (in no queue) has `next == null`. A node leaves a
/// queue either by the tail compare-exchange (no successor ever saw it, so
/// `next` is still null) or by handing over (which resets `next`), so an
/// acquire never has to store it.
#[repr(C, align(128))]
pub(crate) struct QueueNode {
    pub(crate) next: AtomicPtr<QueueNode>,
    /// `LOCK_QUEUE_IDLE`, `LOCK_QUEUE_WAIT` or `LOCK_QUEUE_OWNER`.
    pub(crate) lock: AtomicUsize,
}

impl QueueNode {
    const_fn_unless_loom! {
        /// An idle node.
        pub(crate) fn new() -> Self {
            Self {
                next: AtomicPtr::new(ptr::null_mut()),
                lock: AtomicUsize::new(LOCK_QUEUE_IDLE),
            }
        }
    }
}

/// The in-stack handle (`KLOCK_QUEUE_HANDLE`): the caller's queue node.
///
/// Create it, pin it (usually on the stack with [`core::pin::pin!`]) and
/// pass `handle.as_mut()` to [`QueuedSpinLock::lock`]. One handle serves any
/// number of acquisitions, of any locks, one at a time.
///
/// Dropping a handle whose node is still queued aborts the process; that can
/// only happen if a guard was leaked with `mem::forget` (see the
/// [module docs](self)).
pub struct LockQueueHandle {
    node: QueueNode,
    _pinned: PhantomPinned,
}

impl LockQueueHandle {
    const_fn_unless_loom! {
        /// An idle handle.
        pub fn new() -> Self {
            Self {
                node: QueueNode::new(),
                _pinned: PhantomPinned,
            }
        }
    }

    /// Whether this handle's node is in a lock's queue right now (only
    /// observable as `true` after a guard was leaked).
    pub fn is_queued(&self) -> bool {
        self.node.lock.load(Ordering::Relaxed) != LOCK_QUEUE_IDLE
    }
}

impl Default for LockQueueHandle {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for LockQueueHandle {
    fn drop(&mut self) {
        if self.is_queued() {
            // Other threads may still write to this node: freeing it would be
            // a use-after-free. Stop the world instead, as a kernel would.
            eprintln!(
                "LockQueueHandle dropped while its node is still queued in a \
                 QueuedSpinLock (was the guard leaked?); aborting"
            );
            std::process::abort();
        }
    }
}

impl fmt::Debug for LockQueueHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockQueueHandle")
            .field("queued", &self.is_queued())
            .finish()
    }
}

/// A queued (MCS) spin lock protecting a `T`: FIFO, each waiter spinning on
/// its own node. See the [module docs](self) for the algorithm and the
/// soundness argument for the in-stack handle.
pub struct QueuedSpinLock<T: ?Sized> {
    /// The last node in the queue (the owner's, if no one waits), or null.
    tail: AtomicPtr<QueueNode>,
    data: UnsafeCell<T>,
}

// SAFETY: one thread at a time gets `&mut T` (the same bounds as
// `std::sync::Mutex`); the tail only points at nodes whose owners hold a
// guard, a waiter or a releaser, each of which borrows the pinned handle.
unsafe impl<T: ?Sized + Send> Sync for QueuedSpinLock<T> {}
// SAFETY: owning the lock is owning the `T`.
unsafe impl<T: ?Sized + Send> Send for QueuedSpinLock<T> {}

impl<T> QueuedSpinLock<T> {
    const_fn_unless_loom! {
        /// A free lock around `data` (tail = null).
        pub fn new(data: T) -> Self {
            Self {
                tail: AtomicPtr::new(ptr::null_mut()),
                data: UnsafeCell::new(data),
            }
        }
    }

    /// Consumes the lock and returns the data.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> QueuedSpinLock<T> {
    /// Acquires the lock with `handle`'s node (`KeAcquireInStackQueuedSpinLock`),
    /// spinning in FIFO order behind earlier waiters. The guard borrows the
    /// handle until it is dropped.
    ///
    /// The same as [`begin_acquire`](Self::begin_acquire) followed, if that
    /// queued behind someone, by [`QueuedWaiter::wait`].
    ///
    /// # Panics
    ///
    /// If `handle`'s node is still queued (its previous guard was leaked).
    #[inline]
    pub fn lock<'a>(&'a self, handle: Pin<&'a mut LockQueueHandle>) -> QueuedSpinLockGuard<'a, T> {
        match self.begin_acquire(handle) {
            QueuedAcquire::Acquired(guard) => guard,
            QueuedAcquire::Waiting(waiter) => waiter.wait(),
        }
    }

    /// First phase of a two-phase acquire: swap the tail to `handle`'s node.
    /// If the queue was empty the lock is ours
    /// ([`QueuedAcquire::Acquired`]); otherwise the node is queued (`WAIT`
    /// set) but not yet linked into its predecessor, and the returned
    /// [`QueuedWaiter`]'s first [`poll`](QueuedWaiter::poll) links it. Never
    /// spins.
    ///
    /// # Panics
    ///
    /// If `handle`'s node is still queued (its previous guard was leaked).
    #[inline]
    pub fn begin_acquire<'a>(
        &'a self,
        handle: Pin<&'a mut LockQueueHandle>,
    ) -> QueuedAcquire<'a, T> {
        let node: &'a QueueNode = &handle.into_ref().get_ref().node;
        assert_idle(node);
        // No `next = null` store: an idle node's `next` is always null (see
        // `QueueNode`).
        let me = node as *const QueueNode as *mut QueueNode;
        // AcqRel: Acquire pairs with the previous owner's Release on the tail
        // (if the lock was free); Release publishes our node's `next = null`
        // (from its last release) to the successor that will swap after us
        // and write our `next`.
        let pred = self.tail.swap(me, Ordering::AcqRel);
        // One store to our `lock` word, after the swap, whichever way it
        // went (so a queued acquire no longer stores OWNER and then WAIT).
        // Storing it after publishing the node is fine: no other thread
        // reads our `lock` word, and the only one that writes it, our
        // predecessor, does so only after reading our link, which the
        // waiter's first poll stores with Release (ordering this WAIT store
        // before it). Nothing runs on this thread between the swap and this
        // store (no panic, no call), so a leaked guard or waiter still
        // always leaves the node marked queued for the handle's `Drop`.
        if pred.is_null() {
            node.lock.store(LOCK_QUEUE_OWNER, Ordering::Relaxed);
            QueuedAcquire::Acquired(QueuedSpinLockGuard::new(self, node))
        } else {
            // (A successor may already write our `next` through the tail;
            // that is fine.)
            node.lock.store(LOCK_QUEUE_WAIT, Ordering::Relaxed);
            QueuedAcquire::Waiting(QueuedWaiter {
                lock: self,
                node,
                pred,
                state: WaiterState::Linking,
            })
        }
    }

    /// Tries once to acquire the lock: succeeds only if the queue is empty
    /// (compare-exchange of the tail from null to our node).
    ///
    /// # Panics
    ///
    /// If `handle`'s node is still queued (its previous guard was leaked).
    #[inline]
    pub fn try_lock<'a>(
        &'a self,
        handle: Pin<&'a mut LockQueueHandle>,
    ) -> Option<QueuedSpinLockGuard<'a, T>> {
        let node: &'a QueueNode = &handle.into_ref().get_ref().node;
        assert_idle(node);
        if !self.tail.load(Ordering::Relaxed).is_null() {
            return None;
        }
        // `next` is already null (an idle node's always is).
        let me = node as *const QueueNode as *mut QueueNode;
        // Release: publishes `next = null` (see `lock`). Set OWNER only on
        // success, so a failed attempt leaves the node idle.
        match self
            .tail
            .compare_exchange(ptr::null_mut(), me, Ordering::AcqRel, Ordering::Relaxed)
        {
            Ok(_) => {
                node.lock.store(LOCK_QUEUE_OWNER, Ordering::Relaxed);
                Some(QueuedSpinLockGuard::new(self, node))
            }
            Err(_) => None,
        }
    }

    /// Runs `f` holding the lock, with a handle in this stack frame.
    pub fn with_lock<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let handle = pin!(LockQueueHandle::new());
        let mut guard = self.lock(handle);
        f(&mut guard)
    }

    /// Whether anyone holds or waits for the lock (tail non-null). A hint.
    #[inline]
    pub fn is_locked(&self) -> bool {
        !self.tail.load(Ordering::Relaxed).is_null()
    }

    /// Mutable access without locking: `&mut self` proves no one holds it.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

/// First step of a release (`KeReleaseInStackQueuedSpinLock`): `true` if
/// the lock was released (to no one, or handed to a linked successor);
/// `false` if a successor has swapped the tail but not linked in yet, in
/// which case [`release_poll`] must be called until it returns `true`.
#[inline]
pub(crate) fn release_begin(tail: &AtomicPtr<QueueNode>, node: &QueueNode) -> bool {
    let next = node.next.load(Ordering::Acquire);
    if next.is_null() {
        let me = node as *const QueueNode as *mut QueueNode;
        // Release pairs with the next acquirer's swap.
        if tail
            .compare_exchange(me, ptr::null_mut(), Ordering::Release, Ordering::Relaxed)
            .is_ok()
        {
            node.lock.store(LOCK_QUEUE_IDLE, Ordering::Relaxed);
            return true;
        }
        // A successor swapped the tail but has not linked in yet.
        return false;
    }
    hand_over(node, next);
    true
}

/// One step of a release that waits for its successor's link: one read of
/// our `next`; once set, hand over and return `true`.
#[inline]
pub(crate) fn release_poll(node: &QueueNode) -> bool {
    let next = node.next.load(Ordering::Acquire);
    if next.is_null() {
        return false;
    }
    hand_over(node, next);
    true
}

/// Hands the lock to the linked successor `next` and leaves `node` idle.
#[inline]
fn hand_over(node: &QueueNode, next: *mut QueueNode) {
    // SAFETY: `next` is a waiter's pinned node, linked behind ours. Its owner
    // (a `QueuedWaiter`, or a `lock` call spinning in one) cannot leave the
    // queue, nor let the node be freed, before this store clears its WAIT
    // bit (dropping a waiter waits for the lock too); after this store we
    // never touch it again. (For `raw::RawQueuedSpinLock` the caller's
    // contract promises the same of its nodes.) Release publishes our
    // critical section.
    unsafe { &*next }
        .lock
        .store(LOCK_QUEUE_OWNER, Ordering::Release);
    // Back to the idle invariant (`next` null), so the next acquire through
    // this node need not store it. No one else writes our `next` any more:
    // only the successor that swapped the tail from our node does, once, and
    // the next one will be ordered after our next tail swap.
    node.next.store(ptr::null_mut(), Ordering::Relaxed);
    node.lock.store(LOCK_QUEUE_IDLE, Ordering::Relaxed);
}

/// The rest of a release whose first step found the successor unlinked.
#[cold]
#[inline(never)]
fn release_wait(node: &QueueNode) {
    while !release_poll(node) {
        spin_loop();
    }
}

/// One relaxed load of our own node, inlined into every acquire (it used to
/// be an out-of-line call on the uncontended path); the panic is out of line.
#[inline]
fn assert_idle(node: &QueueNode) {
    if node.lock.load(Ordering::Relaxed) != LOCK_QUEUE_IDLE {
        handle_still_queued();
    }
}

#[cold]
#[inline(never)]
fn handle_still_queued() -> ! {
    panic!("LockQueueHandle is still queued in a QueuedSpinLock (its guard was leaked)")
}

impl<T: Default> Default for QueuedSpinLock<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T> From<T> for QueuedSpinLock<T> {
    fn from(data: T) -> Self {
        Self::new(data)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for QueuedSpinLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("QueuedSpinLock");
        let handle = pin!(LockQueueHandle::new());
        match self.try_lock(handle) {
            Some(guard) => d.field("data", &&*guard),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish_non_exhaustive()
    }
}

/// RAII guard of a [`QueuedSpinLock`]: holds the lock through the borrowed
/// handle's node and hands it to the next waiter on drop.
///
/// Not `Send`: released on the acquiring thread, like the kernel's.
#[must_use = "dropping the guard releases the lock at once"]
pub struct QueuedSpinLockGuard<'a, T: ?Sized> {
    lock: &'a QueuedSpinLock<T>,
    node: &'a QueueNode,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: sharing the guard between threads only shares `&T`.
unsafe impl<T: ?Sized + Sync> Sync for QueuedSpinLockGuard<'_, T> {}

impl<'a, T: ?Sized> QueuedSpinLockGuard<'a, T> {
    fn new(lock: &'a QueuedSpinLock<T>, node: &'a QueueNode) -> Self {
        Self {
            lock,
            node,
            _not_send: PhantomData,
        }
    }

    /// Whether another thread has joined the queue behind this owner
    /// (including one that has swapped the tail but not linked in yet).
    pub fn has_waiters(&self) -> bool {
        !ptr::eq(self.lock.tail.load(Ordering::Relaxed), self.node)
    }

    /// First phase of a two-phase release (`KeReleaseInStackQueuedSpinLock`):
    /// `Ok(())` if the lock is released (no one waited, or the next waiter
    /// was linked and has been handed the lock). `Err(releaser)` if a waiter
    /// has swapped the tail but not yet linked into this node: the lock is
    /// still held (by this node, with no access to the data any more) until
    /// [`QueuedReleaser::poll`] sees the link and hands over. Never spins.
    ///
    /// Dropping the guard instead does the whole release, spinning for the
    /// link if needed. An associated function, so that it cannot shadow a
    /// method of `T`.
    pub fn begin_release(this: Self) -> Result<(), QueuedReleaser<'a>> {
        let this = ManuallyDrop::new(this);
        if release_begin(&this.lock.tail, this.node) {
            Ok(())
        } else {
            Err(QueuedReleaser {
                node: this.node,
                done: false,
                _not_send: PhantomData,
            })
        }
    }

    /// The number of waiters linked in behind this owner, walking the queue.
    /// A waiter that has swapped the tail but not yet linked is not counted.
    /// O(waiters); meant for diagnostics and tests.
    pub fn linked_waiters(&self) -> usize {
        let mut n = 0;
        let mut cur = self.node.next.load(Ordering::Acquire);
        while !cur.is_null() {
            n += 1;
            // SAFETY: every node behind the owner belongs to a pending
            // `QueuedWaiter` (perhaps inside `lock`); none can leave the queue
            // before this owner hands over (dropping a waiter waits for the
            // lock), which cannot happen while `self` (the guard) is alive.
            cur = unsafe { &*cur }.next.load(Ordering::Acquire);
        }
        n
    }
}

impl<T: ?Sized> Deref for QueuedSpinLockGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while its node owns the lock.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for QueuedSpinLockGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only borrow.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for QueuedSpinLockGuard<'_, T> {
    /// The full release: if a successor has swapped the tail but not linked
    /// in yet, spins until it has, then hands over.
    #[inline]
    fn drop(&mut self) {
        if !release_begin(&self.lock.tail, self.node) {
            release_wait(self.node);
        }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for QueuedSpinLockGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// What [`QueuedSpinLock::begin_acquire`] returns.
#[must_use = "dropping a waiter waits for the lock (then releases it)"]
pub enum QueuedAcquire<'a, T: ?Sized> {
    /// The queue was empty: the lock is ours.
    Acquired(QueuedSpinLockGuard<'a, T>),
    /// Queued behind another node: poll the waiter.
    Waiting(QueuedWaiter<'a, T>),
}

impl<'a, T: ?Sized> QueuedAcquire<'a, T> {
    /// `Ok(guard)` or `Err(waiter)`, for `?` and the `Result` combinators.
    pub fn into_result(self) -> Result<QueuedSpinLockGuard<'a, T>, QueuedWaiter<'a, T>> {
        match self {
            Self::Acquired(guard) => Ok(guard),
            Self::Waiting(waiter) => Err(waiter),
        }
    }
}

impl<T: ?Sized> fmt::Debug for QueuedAcquire<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Acquired(_) => f.write_str("Acquired(..)"),
            Self::Waiting(waiter) => f.debug_tuple("Waiting").field(waiter).finish(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WaiterState {
    /// Swapped into the tail, not yet linked into the predecessor.
    Linking,
    /// Linked; spinning on our own node's WAIT bit.
    Waiting,
    /// The guard has been handed out.
    Done,
}

/// A node queued in a [`QueuedSpinLock`], waiting for the lock: the second
/// phase of [`QueuedSpinLock::begin_acquire`].
///
/// * The first [`poll`](Self::poll) links the node into its predecessor's
///   `next` (the step that completes the enqueue) and returns `None`.
/// * Each later poll reads the node's own word once: `Some(guard)` when the
///   predecessor has cleared `WAIT`.
///
/// Polls never loop or pause. [`wait`](Self::wait) polls to the end
/// ([`QueuedSpinLock::lock`] is `begin_acquire` + `wait`).
///
/// # Dropping a waiter
///
/// A queued MCS node cannot simply leave: its predecessor will write to it
/// and hand it the lock. So **dropping a waiter that has not acquired waits
/// for the lock** (links if needed, spins until handed the lock) **and then
/// releases it at once**, passing it on to the next waiter. That is sound,
/// but it blocks for as long as the lock takes to arrive, and forever if the
/// dropping thread itself is what the queue waits for. To abandon a waiter
/// without waiting (say, tearing down after a deadlock), leak it *and* its
/// handle (`mem::forget` of the waiter with a `Box::pin`ned handle that is
/// also leaked): leaking the waiter alone leaves the handle queued, and
/// dropping a queued handle aborts the process (see the
/// [module docs](self)).
///
/// Once `poll` has returned the guard the waiter is spent (dropping it does
/// nothing) and polling it again panics. Not `Send`.
#[must_use = "dropping a waiter waits for the lock (then releases it)"]
pub struct QueuedWaiter<'a, T: ?Sized> {
    lock: &'a QueuedSpinLock<T>,
    node: &'a QueueNode,
    /// The predecessor's node (what the tail was when we swapped).
    pred: *mut QueueNode,
    state: WaiterState,
}

impl<'a, T: ?Sized> QueuedWaiter<'a, T> {
    /// One step: link into the predecessor (first poll), else read our own
    /// node once. `Some(guard)` when the lock has been handed to us.
    ///
    /// # Panics
    ///
    /// If called again after it returned the guard.
    #[inline]
    pub fn poll(&mut self) -> Option<QueuedSpinLockGuard<'a, T>> {
        match self.state {
            WaiterState::Linking => {
                // SAFETY: `pred` was the tail when we swapped, so its node is
                // queued; its owner cannot leave the queue (nor free or reuse
                // the node) before handing the lock to its successor, us, and
                // it cannot do that before it sees this link. Nodes are
                // pinned (see the module docs).
                let pred = unsafe { &*self.pred };
                // Release: our WAIT store (in `begin_acquire`) is visible to
                // the predecessor before the link is (Windows puts a full
                // barrier here; release suffices, as the predecessor reads our
                // word only after it reads the link).
                pred.next
                    .store(self.node as *const _ as *mut _, Ordering::Release);
                self.state = WaiterState::Waiting;
                None
            }
            WaiterState::Waiting => {
                // Acquire pairs with the predecessor's Release handover.
                if self.node.lock.load(Ordering::Acquire) & LOCK_QUEUE_WAIT != 0 {
                    return None;
                }
                self.state = WaiterState::Done;
                Some(QueuedSpinLockGuard::new(self.lock, self.node))
            }
            WaiterState::Done => panic!("QueuedWaiter polled after it acquired the lock"),
        }
    }

    /// Polls, pausing with [`core::hint::spin_loop`] in between, until the
    /// lock is ours.
    #[cold]
    #[inline(never)]
    pub fn wait(mut self) -> QueuedSpinLockGuard<'a, T> {
        loop {
            if let Some(guard) = self.poll() {
                return guard;
            }
            spin_loop();
        }
    }

    /// Whether the node has been linked into its predecessor (the first
    /// poll does that). A releasing predecessor waits for this.
    pub fn is_linked(&self) -> bool {
        self.state != WaiterState::Linking
    }
}

impl<T: ?Sized> Drop for QueuedWaiter<'_, T> {
    /// Waits for the lock and releases it at once (see the type docs).
    fn drop(&mut self) {
        if self.state != WaiterState::Done {
            let guard = loop {
                if let Some(guard) = self.poll() {
                    break guard;
                }
                spin_loop();
            };
            drop(guard);
        }
    }
}

impl<T: ?Sized> fmt::Debug for QueuedWaiter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueuedWaiter")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// A release of a [`QueuedSpinLock`] waiting for its successor to link in:
/// from [`QueuedSpinLockGuard::begin_release`].
///
/// The successor has swapped the tail, so the lock cannot go back to free;
/// it must be handed to that successor, whose node address arrives only
/// with its link. Each [`poll`](Self::poll) reads this node's `next` once
/// and, once it is set, hands the lock over and returns `true` (and keeps
/// returning `true`). Dropping an unfinished releaser completes the release,
/// spinning for the link (as dropping the guard does). Not `Send`.
#[must_use = "dropping a releaser spins until the release completes"]
pub struct QueuedReleaser<'a> {
    node: &'a QueueNode,
    done: bool,
    _not_send: PhantomData<*const ()>,
}

impl QueuedReleaser<'_> {
    /// One step: `true` once the lock has been handed to the successor.
    #[inline]
    pub fn poll(&mut self) -> bool {
        if !self.done {
            self.done = release_poll(self.node);
        }
        self.done
    }

    /// Polls, pausing in between, until the release is complete.
    pub fn wait(mut self) {
        if !self.done {
            release_wait(self.node);
            self.done = true;
        }
    }
}

impl Drop for QueuedReleaser<'_> {
    fn drop(&mut self) {
        if !self.done {
            release_wait(self.node);
        }
    }
}

impl fmt::Debug for QueuedReleaser<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueuedReleaser")
            .field("released", &self.done)
            .finish_non_exhaustive()
    }
}
