//! [`QueuedSpinLock`]: the in-stack queued spin lock, with
//! [`LockQueueHandle`] playing `KLOCK_QUEUE_HANDLE`. An MCS queue of
//! waiters beside a separate `locked` flag: the scheme of Linux's
//! qspinlock, not Windows' exact lock word (see below).
//!
//! The lock has two words: `locked` (someone holds the lock) and `tail` (the
//! last queued waiter's node, or null when no one is queued). Each waiter
//! brings a node (inside its handle, in its own stack frame): `{ next, lock }`
//! where `lock` holds the node's state ([`LOCK_QUEUE_WAIT`] while it waits
//! behind another node).
//!
//! * **Fast path**: if `tail` is null (no one queued) and `locked` reads
//!   false, compare-exchange `locked` from false to true. That is the whole
//!   uncontended acquire; the node is published nowhere.
//! * **Queueing** (someone is queued, or the fast path lost): swap `tail` to
//!   our node. With a predecessor, set `WAIT`, link into the predecessor's
//!   `next` (a `Release` store, so the `WAIT` store is visible before the
//!   link is) and spin on *our own* node until the predecessor makes us the
//!   queue's **head**. Without a predecessor we are the head at once.
//! * **The head** spins on `locked` and takes it with a compare-exchange.
//!   Then, before it gets its guard, it leaves the queue: if no successor is
//!   linked, it compare-exchanges `tail` from its node back to null; if a
//!   successor is linked, or that compare-exchange fails (a successor has
//!   swapped the tail but not linked yet, so the head waits for the link),
//!   it makes the successor the new head with one store to the successor's
//!   node.
//! * **Release** is one `Release` store, `locked = false`, whoever waits.
//!
//! So an uncontended acquire + release is one compare-exchange and one
//! store, as for a test-and-set lock, where a lock whose word *is* the tail
//! (a textbook MCS lock) needs two read-modify-writes: swap the tail in,
//! compare-exchange it back to null.
//!
//! **Order.** Queued waiters get the lock in the order of their tail swaps:
//! only the head takes `locked`, and headship passes down the queue. A
//! newcomer uses the fast path only if it sees no one queued, so once a
//! waiter is queued every later newcomer queues behind it; in particular an
//! owner that has seen a waiter ([`QueuedSpinLockGuard::has_waiters`]) and
//! releases cannot take the lock back ahead of it. The one exception is a
//! race: a newcomer that read a null `tail` just before a waiter swapped in
//! can still win `locked` against that waiter's compare-exchange (once: its
//! next acquire sees the queue).
//!
//! **Spinning.** Only the head spins on the lock's own cache line; every
//! other waiter spins on its own node, aligned to 128 bytes, and a change of
//! head costs one remote write.
//!
//! **Not Windows' word protocol.** Windows' in-stack queued spin lock keeps
//! only the tail: `KeReleaseInStackQueuedSpinLock` releases with an
//! interlocked compare-exchange of the tail (or, with a successor, a store
//! into the successor's node, after waiting for its link if needed), and the
//! lock passes straight from owner to waiter. This lock gives up that exact
//! protocol for the one-store release; the emulator's model
//! ([`model::QueuedLockModel`](crate::model::QueuedLockModel)) and [`raw::RawQueuedSpinLock`](super::raw::RawQueuedSpinLock)
//! keep Windows' MCS protocol word for word. What stays: FIFO among queued
//! waiters, local spinning, and nodes in the callers' stack frames.
//!
//! The flip side of FIFO: the lock goes to the next queued waiter even if
//! the OS has descheduled that thread, and everyone behind it waits until it
//! runs again. Windows waiters spin at `DISPATCH_LEVEL`, where no thread
//! switch can happen; in user space, run no more spinning threads than
//! cores (pinned, as the emulator's parallel mode does), or expect stalls of
//! a scheduler time slice per handoff when oversubscribed.
//!
//! # Two-phase acquire and release
//!
//! For a caller that must return to its own scheduler between spin
//! iterations (the emulator's parallel mode), the acquire comes in steps
//! that never spin:
//!
//! * [`QueuedSpinLock::begin_acquire`] tries the fast path and, if that
//!   fails, swaps the tail and returns [`QueuedAcquire::Waiting`] with a
//!   [`QueuedWaiter`]. The waiter's first [`poll`](QueuedWaiter::poll)
//!   completes the enqueue: it links the node into its predecessor, or, at
//!   the head of the queue, publishes the node as the head (what
//!   [`QueuedSpinLockGuard::linked_waiters`] counts from). So linking is a
//!   separate step from the tail swap, as in the emulator's model, and the
//!   swapped-but-unlinked state lasts as long as the waiter's owner does not
//!   poll. Each later poll reads the node's own word once; at the head, it
//!   reads `locked` and, if free, takes it and leaves the queue. If a
//!   successor is still unlinked at that point the waiter already holds the
//!   lock ([`QueuedWaiter::holds_lock`]) and each poll reads `next` once
//!   until the link arrives; then it returns the guard.
//!   [`QueuedSpinLock::lock`] is exactly `begin_acquire` and then
//!   [`QueuedWaiter::wait`] (poll, pause, poll...), so the blocking and the
//!   two-phase paths run the same protocol, store for store.
//! * Release never waits: [`QueuedSpinLockGuard::begin_release`] always
//!   returns `Ok(())` (and dropping the guard is the same one store). The
//!   wait for a successor's link that an MCS release has is done by the
//!   acquiring head instead, before it gets the guard. [`QueuedReleaser`]
//!   remains for API compatibility and is never returned.
//! * Dropping a [`QueuedWaiter`] that has not acquired **waits for the lock
//!   and releases it at once**: a queued node cannot leave the queue any
//!   other way.
//!
//! ```
//! use core::pin::pin;
//! use spinlocks::{LockQueueHandle, QueuedAcquire, QueuedSpinLock, QueuedSpinLockGuard};
//!
//! // One thread driving three acquirers by hand, as a scheduler would.
//! let lock = QueuedSpinLock::new(0);
//! let mut ha = pin!(LockQueueHandle::new());
//! let (mut hb, mut hc) = (pin!(LockQueueHandle::new()), pin!(LockQueueHandle::new()));
//! let QueuedAcquire::Acquired(mut a) = lock.begin_acquire(ha.as_mut()) else {
//!     unreachable!("no one was queued and the lock was free")
//! };
//! let QueuedAcquire::Waiting(mut b) = lock.begin_acquire(hb.as_mut()) else {
//!     unreachable!("`a` holds it")
//! };
//! let QueuedAcquire::Waiting(mut c) = lock.begin_acquire(hc.as_mut()) else {
//!     unreachable!("`a` holds it")
//! };
//! *a += 1;
//! assert!(b.poll().is_none()); // `b` is the queue's head: publishes itself
//! assert!(b.poll().is_none()); // `a` holds the lock
//! // Releasing is one store, whoever waits.
//! assert!(QueuedSpinLockGuard::begin_release(a).is_ok());
//! // `b` takes the lock, but `c` has swapped the tail without linking:
//! // `b` must wait for the link to make `c` the head.
//! assert!(b.poll().is_none());
//! assert!(b.holds_lock());
//! assert!(c.poll().is_none()); // links into `b`'s node
//! let mut b = b.poll().expect("link seen: `b` left the queue");
//! *b += 1;
//! drop(b);
//! let mut c = c.poll().expect("`c` is the head and the lock is free");
//! *c += 1;
//! assert!(!c.has_waiters());
//! drop(c);
//! assert!(!lock.is_locked());
//! assert_eq!(lock.with_lock(|v| *v), 3);
//! ```
//!
//! # The handle and why this is sound
//!
//! While a node is queued, other threads hold raw pointers to it (the tail,
//! the predecessor's `next`, the lock's record of its head) and write
//! through them. So the node must neither move nor be freed until it has
//! left the queue. These rules give that, with no `unsafe` needed from the
//! caller:
//!
//! 1. [`QueuedSpinLock::lock`] and [`QueuedSpinLock::begin_acquire`] take
//!    the handle as `Pin<&mut LockQueueHandle>` and the handle is `!Unpin`:
//!    once pinned (with [`core::pin::pin!`] or `Box::pin`) it can never move
//!    again.
//! 2. The waiter, and then the guard, keep that exclusive borrow for their
//!    lifetime, so the handle cannot be touched, reused or dropped while its
//!    node is queued through it. A node leaves the queue before its waiter
//!    hands out the guard (a guard's node is referenced by no other thread),
//!    and dropping a waiter that has not acquired waits for the lock and
//!    then releases it.
//! 3. Pinning promises that the handle's memory is not reused before its
//!    `Drop` runs. The handle counts as in use from the acquire until the
//!    guard is dropped ([`LockQueueHandle::is_queued`]). If a waiter or a
//!    guard was leaked (`mem::forget`), the handle stays in use; `Drop` then
//!    aborts the process (the user-mode stand-in for a bugcheck) rather than
//!    free memory other threads may write to. (For a leaked guard that is
//!    stricter than needed, its node having left the queue, but it keeps
//!    the rule simple and the same as under the MCS protocol.) Likewise
//!    locking through a handle still in use (again only possible after a
//!    leak) panics.
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
use core::ops::{Deref, DerefMut};
use core::pin::{pin, Pin};
use core::ptr;

use super::sync::{const_fn_unless_loom, spin_loop, AtomicBool, AtomicPtr, AtomicUsize, Ordering};

/// Flag in a queue node: the node's owner is waiting (for the lock, or, in
/// [`QueuedSpinLock`], for its predecessor to make it the queue's head).
pub const LOCK_QUEUE_WAIT: usize = 1;
/// Flag in a queue node: the node's owner holds the lock.
pub const LOCK_QUEUE_OWNER: usize = 2;
/// A node that is in no queue.
pub(crate) const LOCK_QUEUE_IDLE: usize = 0;
/// [`QueuedSpinLock`] only: the node is the queue's head, whose owner
/// competes for the `locked` flag.
const LOCK_QUEUE_HEAD: usize = 4;

/// How many times [`QueuedWaiter::wait`] re-polls without pausing while it
/// holds the lock and waits for its successor's link (then it pauses between
/// polls as usual, in case the successor was descheduled). 0 under loom,
/// where every spin iteration must yield to the model's scheduler.
const LINK_SPINS: u32 = if cfg!(loom) { 0 } else { 64 };

/// One waiter's queue entry (`KSPIN_LOCK_QUEUE`). Aligned to 128 bytes so
/// each waiter spins on its own cache line (two lines on CPUs that fetch
/// line pairs). Shared by [`QueuedSpinLock`] and, with its MCS protocol,
/// [`raw::RawQueuedSpinLock`](super::raw::RawQueuedSpinLock).
///
/// Invariant: an idle node (in no queue) has `next == null`. A node leaves a
/// queue either by the tail compare-exchange (no successor ever saw it, so
/// `next` is still null) or by handing over (which resets `next`), so an
/// acquire never has to store it.
#[repr(C, align(128))]
pub(crate) struct QueueNode {
    pub(crate) next: AtomicPtr<QueueNode>,
    /// `LOCK_QUEUE_IDLE`, `LOCK_QUEUE_WAIT` or `LOCK_QUEUE_OWNER` (and, in a
    /// `QueuedSpinLock`, `LOCK_QUEUE_HEAD`).
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

    fn ptr(&self) -> *mut QueueNode {
        self as *const QueueNode as *mut QueueNode
    }
}

/// The in-stack handle (`KLOCK_QUEUE_HANDLE`): the caller's queue node.
///
/// Create it, pin it (usually on the stack with [`core::pin::pin!`]) and
/// pass `handle.as_mut()` to [`QueuedSpinLock::lock`]. One handle serves any
/// number of acquisitions, of any locks, one at a time.
///
/// Dropping a handle that is still in use aborts the process; that can only
/// happen if a guard or waiter was leaked with `mem::forget` (see the
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

    /// Whether this handle is in use by an acquisition right now: its node
    /// queued in a lock, or its guard alive (only observable as `true` after
    /// a guard or waiter was leaked).
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

/// A queued spin lock protecting a `T`: FIFO among queued waiters, each
/// waiter but the head spinning on its own node, and one compare-exchange
/// and one store for an uncontended acquire and release. See the
/// [module docs](self) for the algorithm and the soundness argument for the
/// in-stack handle.
pub struct QueuedSpinLock<T: ?Sized> {
    /// Whether the lock is held. Taken by a compare-exchange (fast path or
    /// queue head), released by a store.
    locked: AtomicBool,
    /// The last node in the queue of waiters, or null if no one is queued.
    tail: AtomicPtr<QueueNode>,
    /// The queue's head once it has published itself (its first poll, or
    /// the previous head's handover), else null. Read only by the lock's
    /// holder, to count the waiters (`linked_waiters`); the protocol itself
    /// never reads it.
    head: AtomicPtr<QueueNode>,
    data: UnsafeCell<T>,
}

// SAFETY: one thread at a time gets `&mut T` (the same bounds as
// `std::sync::Mutex`); `tail`, `head` and the nodes' `next` only point at
// nodes whose owners hold a waiter, which borrows the pinned handle.
unsafe impl<T: ?Sized + Send> Sync for QueuedSpinLock<T> {}
// SAFETY: owning the lock is owning the `T`.
unsafe impl<T: ?Sized + Send> Send for QueuedSpinLock<T> {}

impl<T> QueuedSpinLock<T> {
    const_fn_unless_loom! {
        /// A free lock around `data` (not locked, no one queued).
        pub fn new(data: T) -> Self {
            Self {
                locked: AtomicBool::new(false),
                tail: AtomicPtr::new(ptr::null_mut()),
                head: AtomicPtr::new(ptr::null_mut()),
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
    /// waiting in FIFO order behind earlier queued waiters. The guard borrows
    /// the handle until it is dropped.
    ///
    /// The same as [`begin_acquire`](Self::begin_acquire) followed, if that
    /// queued, by [`QueuedWaiter::wait`].
    ///
    /// # Panics
    ///
    /// If `handle` is still in use (its previous guard or waiter was leaked).
    #[inline]
    pub fn lock<'a>(&'a self, handle: Pin<&'a mut LockQueueHandle>) -> QueuedSpinLockGuard<'a, T> {
        match self.begin_acquire(handle) {
            QueuedAcquire::Acquired(guard) => guard,
            QueuedAcquire::Waiting(waiter) => waiter.wait(),
        }
    }

    /// First phase of a two-phase acquire. If no one is queued and the lock
    /// is free, takes it ([`QueuedAcquire::Acquired`]). Otherwise swaps the
    /// tail to `handle`'s node: the node is queued but not yet linked into
    /// its predecessor (or, with none, not yet published as the head), and
    /// the returned [`QueuedWaiter`]'s first [`poll`](QueuedWaiter::poll)
    /// does that. Never spins.
    ///
    /// # Panics
    ///
    /// If `handle` is still in use (its previous guard or waiter was leaked).
    #[inline]
    pub fn begin_acquire<'a>(
        &'a self,
        handle: Pin<&'a mut LockQueueHandle>,
    ) -> QueuedAcquire<'a, T> {
        let node: &'a QueueNode = &handle.into_ref().get_ref().node;
        assert_idle(node);
        if self.try_fast(node) {
            QueuedAcquire::Acquired(QueuedSpinLockGuard::new(self, node))
        } else {
            QueuedAcquire::Waiting(self.enqueue(node))
        }
    }

    /// The fast path: no one queued, and `locked` taken by one
    /// compare-exchange. On success marks `node` as the guard's (OWNER);
    /// on failure leaves it idle.
    #[inline]
    fn try_fast(&self, node: &QueueNode) -> bool {
        // Relaxed: only hints. A non-null tail sends us to the queue (FIFO).
        // A held lock is tested before the compare-exchange
        // (test-and-test-and-set), so a contender queues without taking the
        // line from the holder; uncontended, it is one more load of a line
        // the compare-exchange needs anyway. If a waiter swaps in right
        // after the tail load, we may still win `locked` ahead of it (the
        // one exception to FIFO, see the module docs); mutual exclusion
        // rests on the compare-exchange alone.
        if !self.tail.load(Ordering::Relaxed).is_null() || self.locked.load(Ordering::Relaxed) {
            return false;
        }
        // Acquire pairs with the previous holder's Release store.
        if self
            .locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        // Our own node; no other thread reads or writes it.
        node.lock.store(LOCK_QUEUE_OWNER, Ordering::Relaxed);
        true
    }

    /// The queueing path: swap the tail to `node`.
    #[cold]
    #[inline(never)]
    fn enqueue<'a>(&'a self, node: &'a QueueNode) -> QueuedWaiter<'a, T> {
        // No `next = null` store: an idle node's `next` is always null (see
        // `QueueNode`).
        //
        // AcqRel. Release publishes our node's `next = null` (from its last
        // use) to the successor that will swap after us and write our `next`.
        // Acquire pairs with the Release of earlier tail writes: the
        // predecessor's `next = null` before we write it, and a departed
        // head's `head = null` before we publish ourselves as head.
        let pred = self.tail.swap(node.ptr(), Ordering::AcqRel);
        // One store to our `lock` word, after the swap. No other thread reads
        // it, and the only one that writes it, our predecessor (making us the
        // head), does so only after reading our link, which the waiter's
        // first poll stores with Release (ordering this store before it).
        // Nothing runs on this thread between the swap and this store (no
        // panic, no call), so a leaked waiter always leaves the node marked
        // queued for the handle's `Drop`.
        let state = if pred.is_null() {
            LOCK_QUEUE_HEAD
        } else {
            LOCK_QUEUE_WAIT
        };
        node.lock.store(state, Ordering::Relaxed);
        QueuedWaiter {
            lock: self,
            node,
            pred,
            state: WaiterState::Linking,
        }
    }

    /// Tries once to acquire the lock: succeeds only if no one is queued and
    /// the lock is free (one compare-exchange of `locked`). A failed attempt
    /// leaves the handle idle.
    ///
    /// # Panics
    ///
    /// If `handle` is still in use (its previous guard or waiter was leaked).
    #[inline]
    pub fn try_lock<'a>(
        &'a self,
        handle: Pin<&'a mut LockQueueHandle>,
    ) -> Option<QueuedSpinLockGuard<'a, T>> {
        let node: &'a QueueNode = &handle.into_ref().get_ref().node;
        assert_idle(node);
        self.try_fast(node)
            .then(|| QueuedSpinLockGuard::new(self, node))
    }

    /// Runs `f` holding the lock, with a handle in this stack frame.
    pub fn with_lock<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let handle = pin!(LockQueueHandle::new());
        let mut guard = self.lock(handle);
        f(&mut guard)
    }

    /// Whether anyone holds the lock or is queued for it. A hint.
    #[inline]
    pub fn is_locked(&self) -> bool {
        self.locked.load(Ordering::Relaxed) || !self.tail.load(Ordering::Relaxed).is_null()
    }

    /// Mutable access without locking: `&mut self` proves no one holds it.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

/// One relaxed load of our own node, inlined into every acquire; the panic
/// is out of line.
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

/// RAII guard of a [`QueuedSpinLock`]: holds the lock, borrowing the handle
/// it was acquired with, and releases it on drop (one store).
///
/// Not `Send`: released on the acquiring thread, like the kernel's.
#[must_use = "dropping the guard releases the lock at once"]
pub struct QueuedSpinLockGuard<'a, T: ?Sized> {
    lock: &'a QueuedSpinLock<T>,
    /// The handle's node: out of the queue (no other thread refers to it),
    /// marked OWNER until the release.
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

    /// Whether another thread has queued for the lock (including one that
    /// has swapped the tail but not yet linked in). While this is true, the
    /// lock goes to a queued waiter next: an acquirer that starts after this
    /// call returned `true` (this thread, say, after releasing) queues
    /// behind it.
    pub fn has_waiters(&self) -> bool {
        !self.lock.tail.load(Ordering::Relaxed).is_null()
    }

    /// First phase of a two-phase release (`KeReleaseInStackQueuedSpinLock`).
    /// Always `Ok(())`: the release is one store, whoever waits, and is
    /// complete when this returns. (Under the MCS protocol a release could
    /// find its successor swapped into the tail but not linked and return a
    /// [`QueuedReleaser`] to wait for the link; in this lock the queue's head
    /// waits for that link before it takes its guard, see
    /// [`QueuedWaiter::holds_lock`].) The same as dropping the guard. An
    /// associated function, so that it cannot shadow a method of `T`.
    pub fn begin_release(this: Self) -> Result<(), QueuedReleaser<'a>> {
        drop(this);
        Ok(())
    }

    /// The number of waiters in the queue that have completed their enqueue
    /// (the first poll: linked into the predecessor, or published as the
    /// head), counting from the queue's head and following the links. A
    /// waiter that has swapped the tail but not linked yet is not counted,
    /// and neither is anyone behind it. O(waiters); meant for diagnostics
    /// and tests.
    pub fn linked_waiters(&self) -> usize {
        let mut n = 0;
        // Acquire pairs with a head's Release when it published itself.
        let mut cur = self.lock.head.load(Ordering::Acquire);
        while !cur.is_null() {
            n += 1;
            // SAFETY: `head` is null or a queued node: a head leaves the
            // queue only after taking `locked`, which this guard holds, and
            // it moves or clears `head` before leaving (earlier heads did so
            // before releasing the lock we then acquired, so their writes are
            // visible). Nodes behind it can only become head through it.
            // None of these waiters can drop out meanwhile (dropping a
            // waiter waits for the lock). Nodes are pinned.
            cur = unsafe { &*cur }.next.load(Ordering::Acquire);
        }
        n
    }
}

impl<T: ?Sized> Deref for QueuedSpinLockGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while it holds the lock.
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
    /// The release: one `Release` store of `locked = false` (plus marking
    /// our own handle idle). Never waits.
    #[inline]
    fn drop(&mut self) {
        // Our own node, out of the queue: no other thread touches it.
        self.node.lock.store(LOCK_QUEUE_IDLE, Ordering::Relaxed);
        // Release publishes the critical section to the next holder's
        // Acquire compare-exchange (the queue's head or a fast-path taker).
        self.lock.locked.store(false, Ordering::Release);
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
    /// No one was queued and the lock was free: it is ours.
    Acquired(QueuedSpinLockGuard<'a, T>),
    /// Queued: poll the waiter.
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
    /// Swapped into the tail; not yet linked into the predecessor (or, with
    /// no predecessor, not yet published as the head).
    Linking,
    /// Linked; spinning on our own node's WAIT bit until the predecessor
    /// makes us the head.
    Waiting,
    /// The queue's head: spinning on `locked`.
    Head,
    /// Holds `locked`, but a successor has swapped the tail behind us and
    /// not linked yet: waiting for the link to make it the head.
    Leaving,
    /// The guard has been handed out.
    Done,
}

/// A node queued in a [`QueuedSpinLock`], waiting for the lock: the second
/// phase of [`QueuedSpinLock::begin_acquire`].
///
/// * The first [`poll`](Self::poll) completes the enqueue (links the node
///   into its predecessor's `next`, or, first in the queue, publishes it as
///   the head) and returns `None`.
/// * Until the node is the queue's head, each poll reads the node's own
///   word once.
/// * At the head, each poll reads the lock's `locked` flag and, if it is
///   free, takes it with a compare-exchange and leaves the queue: with no
///   successor, a compare-exchange of the tail back to null; with one, a
///   store making it the head, which needs its link. If that successor has
///   not linked yet, the waiter now holds the lock
///   ([`holds_lock`](Self::holds_lock)) and each poll reads `next` once
///   until the link arrives. Then the poll returns `Some(guard)`.
///
/// Polls never loop or pause. [`wait`](Self::wait) polls to the end
/// ([`QueuedSpinLock::lock`] is `begin_acquire` + `wait`).
///
/// # Dropping a waiter
///
/// A queued node cannot simply leave: its predecessor will write to it and
/// make it the head. So **dropping a waiter that has not acquired waits for
/// the lock** (links if needed, spins until it takes the lock) **and then
/// releases it at once**; the next waiter in the queue becomes the head.
/// That is sound, but it blocks for as long as the lock takes to arrive, and
/// forever if the dropping thread itself is what the queue waits for. To
/// abandon a waiter without waiting (say, tearing down after a deadlock),
/// leak it *and* its handle (`mem::forget` of the waiter with a
/// `Box::pin`ned handle that is also leaked): leaking the waiter alone
/// leaves the handle queued, and dropping a queued handle aborts the process
/// (see the [module docs](self)).
///
/// Once `poll` has returned the guard the waiter is spent (dropping it does
/// nothing) and polling it again panics. Not `Send`.
#[must_use = "dropping a waiter waits for the lock (then releases it)"]
pub struct QueuedWaiter<'a, T: ?Sized> {
    lock: &'a QueuedSpinLock<T>,
    node: &'a QueueNode,
    /// The predecessor's node (what the tail was when we swapped), or null.
    pred: *mut QueueNode,
    state: WaiterState,
}

impl<'a, T: ?Sized> QueuedWaiter<'a, T> {
    /// One step: complete the enqueue (first poll), else read our own node
    /// or, at the head, try for the lock and leave the queue. `Some(guard)`
    /// once the lock is ours and the node has left the queue.
    ///
    /// # Panics
    ///
    /// If called again after it returned the guard.
    #[inline]
    pub fn poll(&mut self) -> Option<QueuedSpinLockGuard<'a, T>> {
        match self.state {
            WaiterState::Linking => {
                self.link();
                None
            }
            WaiterState::Waiting => {
                // Acquire pairs with the predecessor's Release when it made
                // us the head (belt and braces, see `make_head`).
                if self.node.lock.load(Ordering::Acquire) & LOCK_QUEUE_WAIT != 0 {
                    return None;
                }
                self.state = WaiterState::Head;
                self.poll_head()
            }
            WaiterState::Head => self.poll_head(),
            WaiterState::Leaving => self.poll_leaving(),
            WaiterState::Done => panic!("QueuedWaiter polled after it acquired the lock"),
        }
    }

    /// The first poll: link into the predecessor, or publish the node as the
    /// head.
    fn link(&mut self) {
        if self.pred.is_null() {
            // We are the head; record it for `linked_waiters`. Release: our
            // node's state and `next == null` are visible to the holder that
            // reads the record. A departed head cleared the record before
            // the tail compare-exchange our swap read from, so no older
            // value can overwrite this one.
            self.lock.head.store(self.node.ptr(), Ordering::Release);
            self.state = WaiterState::Head;
        } else {
            // SAFETY: `pred` was the tail when we swapped, so its node is
            // queued; its owner cannot leave the queue (nor free or reuse
            // the node) before making its successor, us, the head (or, had
            // it no successor, before compare-exchanging the tail from its
            // node to null, which fails since we swapped), and it cannot
            // make us the head before it sees this link. Nodes are pinned
            // (see the module docs).
            let pred = unsafe { &*self.pred };
            // Release: our WAIT store (in `enqueue`) is visible to the
            // predecessor before the link is (it writes our word only after
            // reading the link).
            pred.next.store(self.node.ptr(), Ordering::Release);
            self.state = WaiterState::Waiting;
        }
    }

    /// At the head: one read of `locked`; if free, one compare-exchange and,
    /// on success, the exit from the queue.
    #[inline]
    fn poll_head(&mut self) -> Option<QueuedSpinLockGuard<'a, T>> {
        let lock = self.lock;
        // Test before test-and-set: the spin reads keep the line shared.
        if lock.locked.load(Ordering::Relaxed) {
            return None;
        }
        // Acquire pairs with the previous holder's Release store.
        if lock
            .locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            // A fast-path taker that read an empty queue just before we
            // swapped in won the race; wait for its release.
            return None;
        }
        // The lock is ours; leave the queue before taking the guard.
        let next = self.node.next.load(Ordering::Acquire);
        if !next.is_null() {
            return Some(self.make_head(next));
        }
        // No one linked. Clear the head record first: once the tail is
        // null, a new first waiter may publish itself (its swap reads our
        // compare-exchange, whose Release orders this store before its).
        lock.head.store(ptr::null_mut(), Ordering::Relaxed);
        if lock
            .tail
            .compare_exchange(
                self.node.ptr(),
                ptr::null_mut(),
                Ordering::Release,
                Ordering::Relaxed,
            )
            .is_ok()
        {
            // No one swapped in after us, so no one will write our `next`
            // (still null: the idle invariant holds).
            return Some(self.acquired());
        }
        // A successor has swapped the tail but not linked yet: hold the lock
        // and wait for the link (one more read now, then one per poll).
        self.state = WaiterState::Leaving;
        self.poll_leaving()
    }

    /// Holding the lock, waiting for the successor's link: one read of
    /// `next`; once set, make the successor the head.
    #[inline]
    fn poll_leaving(&mut self) -> Option<QueuedSpinLockGuard<'a, T>> {
        let next = self.node.next.load(Ordering::Acquire);
        if next.is_null() {
            return None;
        }
        Some(self.make_head(next))
    }

    /// Hands headship to the linked successor `next`, leaving the queue.
    #[inline]
    fn make_head(&mut self, next: *mut QueueNode) -> QueuedSpinLockGuard<'a, T> {
        // The head record moves first: whoever holds the lock next (we, or
        // a later taker, after our release's Release store) counts from it.
        self.lock.head.store(next, Ordering::Relaxed);
        // SAFETY: `next` is a waiter's pinned node, linked behind ours. Its
        // owner (a `QueuedWaiter`, or a `lock` call spinning in one) cannot
        // leave the queue, nor let the node be freed, before it takes the
        // lock as head, which needs this store (dropping a waiter waits for
        // the lock too); after this store we never touch it again. The
        // Release (with the new head's Acquire) is belt and braces, not
        // load-bearing: the new head reads nothing of ours before it takes
        // `locked`, and our release store orders everything (our `head`
        // record write included) before that. A plain store on x86.
        unsafe { &*next }
            .lock
            .store(LOCK_QUEUE_HEAD, Ordering::Release);
        // Back to the idle invariant (`next` null), so the next acquire
        // through this node need not store it. No one else writes our `next`
        // any more: only the successor that swapped the tail from our node
        // does, once, and the next one will be ordered after our next swap.
        self.node.next.store(ptr::null_mut(), Ordering::Relaxed);
        self.acquired()
    }

    /// The node has left the queue holding the lock: hand out the guard.
    #[inline]
    fn acquired(&mut self) -> QueuedSpinLockGuard<'a, T> {
        self.node.lock.store(LOCK_QUEUE_OWNER, Ordering::Relaxed);
        self.state = WaiterState::Done;
        QueuedSpinLockGuard::new(self.lock, self.node)
    }

    /// Polls, pausing with [`core::hint::spin_loop`] in between, until the
    /// lock is ours. (While it holds the lock and waits for its successor's
    /// link, it re-polls at once a few dozen times before pausing again: the
    /// link is due a few instructions after the successor's tail swap, and
    /// at two contending threads this wait is on nearly every other handoff.)
    #[cold]
    #[inline(never)]
    pub fn wait(mut self) -> QueuedSpinLockGuard<'a, T> {
        self.poll_to_end()
    }

    /// The loop of `wait` (and of a dropped waiter).
    fn poll_to_end(&mut self) -> QueuedSpinLockGuard<'a, T> {
        let mut tight = LINK_SPINS;
        loop {
            if let Some(guard) = self.poll() {
                return guard;
            }
            if self.state == WaiterState::Leaving && tight != 0 {
                tight -= 1;
            } else {
                spin_loop();
            }
        }
    }

    /// Whether the enqueue is complete: the node linked into its predecessor
    /// or published as the head (the first poll does that). A queue head
    /// that has taken the lock waits for its successor's link.
    pub fn is_linked(&self) -> bool {
        self.state != WaiterState::Linking
    }

    /// Whether this waiter has taken the lock and only waits for its
    /// successor (which has swapped the tail behind it) to link, so it can
    /// make that successor the head and return the guard. Other acquirers
    /// are shut out meanwhile.
    pub fn holds_lock(&self) -> bool {
        self.state == WaiterState::Leaving
    }
}

impl<T: ?Sized> Drop for QueuedWaiter<'_, T> {
    /// Waits for the lock and releases it at once (see the type docs).
    fn drop(&mut self) {
        if self.state != WaiterState::Done {
            drop(self.poll_to_end());
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

/// A two-phase release still waiting for something: the `Err` side of
/// [`QueuedSpinLockGuard::begin_release`].
///
/// Under the MCS protocol a release could find a successor swapped into the
/// tail but not linked, and had to wait for the link. This lock's release
/// is one store and never waits (the queue's head waits for its
/// successor's link before taking its guard instead), so `begin_release`
/// always returns `Ok(())` and no `QueuedReleaser` is ever created. The
/// type remains so that code written against the two-phase release keeps
/// compiling; [`poll`](Self::poll) would return `true` at once. Not `Send`.
#[must_use = "a releaser is polled until the release completes"]
pub struct QueuedReleaser<'a> {
    _lock: PhantomData<&'a QueueNode>,
    _not_send: PhantomData<*const ()>,
}

impl QueuedReleaser<'_> {
    /// One step: `true` once the release is complete (always, here).
    #[inline]
    pub fn poll(&mut self) -> bool {
        true
    }

    /// Polls until the release is complete (returns at once, here).
    pub fn wait(self) {}
}

impl fmt::Debug for QueuedReleaser<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueuedReleaser")
            .field("released", &true)
            .finish_non_exhaustive()
    }
}
