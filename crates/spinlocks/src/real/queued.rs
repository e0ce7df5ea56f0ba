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
//! # The handle and why this is sound
//!
//! While a node is queued, other threads hold raw pointers to it (the tail,
//! and the predecessor's `next`) and write through them. So the node must
//! neither move nor be freed until it has left the queue. Three rules give
//! that, with no `unsafe` needed from the caller:
//!
//! 1. [`QueuedSpinLock::lock`] takes the handle as `Pin<&mut LockQueueHandle>`
//!    and the handle is `!Unpin`: once pinned (with [`core::pin::pin!`] or
//!    `Box::pin`) it can never move again.
//! 2. The guard keeps that exclusive borrow for its lifetime, so the handle
//!    cannot be touched, reused or dropped while the lock is held through it;
//!    dropping the guard releases the lock and leaves the node idle.
//! 3. Pinning promises that the handle's memory is not reused before its
//!    `Drop` runs. If a guard was leaked (`mem::forget`), the node is still
//!    the queue's owner when the handle is dropped; `Drop` then aborts the
//!    process (the user-mode stand-in for a bugcheck) rather than free memory
//!    other threads may write to. Likewise locking through a handle whose node
//!    is still queued (again only possible after a leaked guard) panics.
//!
//! Waiting nodes never escape: `lock` does not return until its node owns the
//! lock, so the only queued node user code can reach is an owner's.
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

use super::sync::{const_fn_unless_loom, spin_loop, AtomicPtr, AtomicUsize, Ordering};

/// Flag in a queue node: the node's owner is waiting for the lock.
pub const LOCK_QUEUE_WAIT: usize = 1;
/// Flag in a queue node: the node's owner holds the lock.
pub const LOCK_QUEUE_OWNER: usize = 2;
/// A node that is in no queue.
const LOCK_QUEUE_IDLE: usize = 0;

/// One waiter's queue entry (`KSPIN_LOCK_QUEUE`). Aligned to 128 bytes so
/// each waiter spins on its own cache line (two lines on CPUs that fetch
/// line pairs).
#[repr(C, align(128))]
struct QueueNode {
    next: AtomicPtr<QueueNode>,
    /// `LOCK_QUEUE_IDLE`, `LOCK_QUEUE_WAIT` or `LOCK_QUEUE_OWNER`.
    lock: AtomicUsize,
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
                node: QueueNode {
                    next: AtomicPtr::new(ptr::null_mut()),
                    lock: AtomicUsize::new(LOCK_QUEUE_IDLE),
                },
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
// `std::sync::Mutex`); the tail only points at nodes whose owners are
// inside `lock` or hold a guard.
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
    /// # Panics
    ///
    /// If `handle`'s node is still queued (its previous guard was leaked).
    #[inline]
    pub fn lock<'a>(&'a self, handle: Pin<&'a mut LockQueueHandle>) -> QueuedSpinLockGuard<'a, T> {
        let node: &'a QueueNode = &handle.into_ref().get_ref().node;
        assert_idle(node);
        node.next.store(ptr::null_mut(), Ordering::Relaxed);
        // Claim the node before publishing it (it is ours until the swap).
        node.lock.store(LOCK_QUEUE_OWNER, Ordering::Relaxed);
        let me = node as *const QueueNode as *mut QueueNode;
        // AcqRel: Acquire pairs with the previous owner's Release on the tail
        // (if the lock was free); Release publishes `next = null` to the
        // successor that will swap after us and write our `next`.
        let pred = self.tail.swap(me, Ordering::AcqRel);
        if !pred.is_null() {
            self.wait_behind(node, pred);
        }
        QueuedSpinLockGuard::new(self, node)
    }

    #[cold]
    fn wait_behind(&self, node: &QueueNode, pred: *mut QueueNode) {
        node.lock.store(LOCK_QUEUE_WAIT, Ordering::Relaxed);
        // SAFETY: `pred` was the tail, so its node is queued and its owner
        // cannot leave the queue (free the node) before handing the lock to
        // its successor, which is us, and it cannot do that before seeing
        // this link. The node is pinned (see the module docs).
        let pred = unsafe { &*pred };
        // Release: the WAIT store above is visible to the predecessor before
        // the link is (Windows puts a full barrier here; release suffices,
        // as the predecessor reads our word only after it reads the link).
        pred.next
            .store(node as *const _ as *mut _, Ordering::Release);
        // Acquire pairs with the predecessor's Release handover.
        while node.lock.load(Ordering::Acquire) & LOCK_QUEUE_WAIT != 0 {
            spin_loop();
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
        node.next.store(ptr::null_mut(), Ordering::Relaxed);
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

    /// Release (`KeReleaseInStackQueuedSpinLock`); only the guard calls it.
    #[inline]
    fn unlock(&self, node: &QueueNode) {
        let mut next = node.next.load(Ordering::Acquire);
        if next.is_null() {
            let me = node as *const QueueNode as *mut QueueNode;
            // Release pairs with the next acquirer's swap.
            if self
                .tail
                .compare_exchange(me, ptr::null_mut(), Ordering::Release, Ordering::Relaxed)
                .is_ok()
            {
                node.lock.store(LOCK_QUEUE_IDLE, Ordering::Relaxed);
                return;
            }
            // A successor swapped the tail but has not linked in yet.
            next = wait_for_link(node);
        }
        // SAFETY: `next` is a waiter spinning in `wait_behind` on its own
        // pinned node; it stays there until this store, after which we never
        // touch it again. Release publishes our critical section.
        unsafe { &*next }
            .lock
            .store(LOCK_QUEUE_OWNER, Ordering::Release);
        node.lock.store(LOCK_QUEUE_IDLE, Ordering::Relaxed);
    }
}

#[cold]
fn wait_for_link(node: &QueueNode) -> *mut QueueNode {
    loop {
        let next = node.next.load(Ordering::Acquire);
        if !next.is_null() {
            return next;
        }
        spin_loop();
    }
}

fn assert_idle(node: &QueueNode) {
    assert!(
        node.lock.load(Ordering::Relaxed) == LOCK_QUEUE_IDLE,
        "LockQueueHandle is still queued in a QueuedSpinLock (its guard was leaked)"
    );
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

    /// The number of waiters linked in behind this owner, walking the queue.
    /// A waiter that has swapped the tail but not yet linked is not counted.
    /// O(waiters); meant for diagnostics and tests.
    pub fn linked_waiters(&self) -> usize {
        let mut n = 0;
        let mut cur = self.node.next.load(Ordering::Acquire);
        while !cur.is_null() {
            n += 1;
            // SAFETY: every node behind the owner belongs to a thread spinning
            // in `wait_behind`; none can leave before this owner hands over,
            // which cannot happen while `self` (the guard) is alive.
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
    #[inline]
    fn drop(&mut self) {
        self.lock.unlock(self.node);
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for QueuedSpinLockGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
