//! Guard-free locks for interpreters: acquire and release as plain calls,
//! with the owner named by a processor index (`u32`) instead of a thread.
//!
//! The emulator's parallel mode holds a scenario's lock across interpreted
//! statements (a `KeAcquireSpinLock` statement, then others, then a
//! `KeReleaseSpinLock` statement), from a loop that also delivers interrupts,
//! and must be able to abandon every lock when a run halts. RAII guards do
//! not fit that: nothing in the interpreter's Rust stack frame lives as long
//! as the scenario's hold. These types carry no data (the scenario's data
//! lives elsewhere), have no guards, and run Windows' protocols: for the
//! ordinary, interrupt and EX locks the same as the [`real`](crate::real)
//! locks (the same word layouts and orderings, and for the EX lock the same
//! code). The queued lock is the exception: [`RawQueuedSpinLock`] keeps
//! Windows' MCS protocol (the lock word is the queue's tail; release is a
//! compare-exchange of the tail, or a handover into the successor's node),
//! while the real [`QueuedSpinLock`](crate::QueuedSpinLock) trades that for
//! a separate `locked` flag and a one-store release (see
//! [`real::queued`](crate::real::queued)). Both use the same node layout
//! and flag bits.
//!
//! | Windows | here | owner |
//! |---------|------|-------|
//! | `KSPIN_LOCK` ([`KeAcquireSpinLock`]) | [`RawSpinLock`] | word = processor + 1, so [`owner`](RawSpinLock::owner) answers "already owned by this processor" / "not owned" |
//! | interrupt spin lock ([`KeAcquireInterruptSpinLock`]) | [`RawInterruptSpinLock`] | as `RawSpinLock`, plus `SynchronizeIrql` |
//! | `EX_SPIN_LOCK` ([`ExAcquireSpinLockShared`]) | [`RawExSpinLock`] | shared count, exclusive owner, writer-waiting bit; [`try_convert`](RawExSpinLock::try_convert) |
//! | in-stack queued ([`KeAcquireInStackQueuedSpinLock`]) | [`RawQueuedSpinLock`] with [`QueueNode`]s from a [`QueueNodeArena`] | the node: one per (processor, nesting slot) |
//!
//! Every acquire is two-phase and never spins: a `try_*`/`begin_*` call
//! makes the first attempt, a `poll_*` call one further spin iteration.
//!
//! [`KeAcquireSpinLock`]: https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/wdm/nf-wdm-keacquirespinlock
//! [`KeAcquireInterruptSpinLock`]: https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/wdm/nf-wdm-keacquireinterruptspinlock
//! [`ExAcquireSpinLockShared`]: https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/wdm/nf-wdm-exacquirespinlockshared
//! [`KeAcquireInStackQueuedSpinLock`]: https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/wdm/nf-wdm-keacquireinstackqueuedspinlock
//!
//! # The queued lock's safety contract
//!
//! An MCS queue holds raw pointers to its nodes (the tail, a predecessor's
//! `next`) and other processors write through them. So the acquire and
//! release calls of [`RawQueuedSpinLock`] are `unsafe`, and the caller
//! promises, for every node it passes:
//!
//! 1. **The node stays in place and alive while it is queued**: from the
//!    acquire call that enqueues it until the release call that returns
//!    `true`. Nodes of a [`QueueNodeArena`] never move, and the arena (like
//!    each [`QueueNode`]) aborts the process if dropped while a node is still
//!    queued, rather than free memory other threads may write to.
//! 2. **One acquisition per node at a time, driven by one thread at a
//!    time**: the processor that owns the arena row, one nesting slot per
//!    lock it holds or waits for. `poll_acquire`, `begin_release` and
//!    `poll_release` get the node (and lock) its acquire used.
//! 3. **Halting**: abandoning a run leaves nodes queued. Call
//!    [`RawQueuedSpinLock::reset`] on each lock and
//!    [`QueueNodeArena::reset`] on the arena (both need `&mut`: no processor
//!    may be running) before reusing or dropping them.
//!
//! ```
//! use spinlocks::raw::{QueueNodeArena, RawQueuedSpinLock, RawSpinLock};
//!
//! // Processor 0 takes an ordinary lock; processor 1 finds it owned.
//! let lock = RawSpinLock::new();
//! assert_eq!(lock.try_acquire(0), Ok(()));
//! assert_eq!(lock.owner(), Some(0));
//! assert_eq!(lock.try_acquire(1), Err(0)); // owned by processor 0
//! assert!(lock.release(1).is_err()); // SPIN_LOCK_NOT_OWNED
//! lock.release(0).unwrap();
//!
//! // A queued lock, nodes indexed by (processor, nesting slot).
//! let arena = QueueNodeArena::new(2, 4);
//! let queued = RawQueuedSpinLock::new();
//! let (a, b) = (arena.node(0, 0), arena.node(1, 0));
//! // SAFETY: arena nodes stay in place; each is used by one acquisition at
//! // a time, and released before the arena is dropped.
//! unsafe {
//!     assert!(queued.begin_acquire(a)); // free: owned at once
//!     assert!(!queued.begin_acquire(b)); // queued behind `a`
//!     assert!(!queued.poll_acquire(b));
//!     assert!(queued.begin_release(a)); // handed to `b`
//!     assert!(queued.poll_acquire(b));
//!     assert!(queued.begin_release(b));
//! }
//! assert!(!queued.is_locked());
//! ```

use core::fmt;
use core::ptr;

use super::ex::{
    reader_try, writer_begin, writer_step, writer_withdraw, WriterState, EX_EXCLUSIVE,
    EX_EXCLUSIVE_WAITING, EX_SHARED_MASK,
};
use super::queued::{QueueNode as Node, LOCK_QUEUE_IDLE, LOCK_QUEUE_OWNER, LOCK_QUEUE_WAIT};
use super::sync::{const_fn_unless_loom, AtomicPtr, AtomicU32, Ordering};

/// A release by a processor that does not own the lock (`SPIN_LOCK_NOT_OWNED`,
/// bugcheck 0x10): the owner found instead, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotOwned {
    /// The processor that owns the lock, or `None` if it is free.
    pub owner: Option<u32>,
}

impl fmt::Display for NotOwned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.owner {
            Some(p) => write!(f, "SPIN_LOCK_NOT_OWNED: owned by processor {p}"),
            None => f.write_str("SPIN_LOCK_NOT_OWNED: the lock is free"),
        }
    }
}

impl std::error::Error for NotOwned {}

/// The owner word of a processor: its index + 1 (0 means free).
#[inline]
fn owner_word(processor: u32) -> u32 {
    assert!(
        processor != u32::MAX,
        "processor index u32::MAX is reserved"
    );
    processor + 1
}

#[inline]
fn word_owner(word: u32) -> Option<u32> {
    word.checked_sub(1)
}

// ------------------------------------------------------------- RawSpinLock

/// An ordinary spin lock (`KSPIN_LOCK`, [`KeAcquireSpinLock`]) without data
/// or guards: one `u32` word, 0 when free, otherwise the owning processor's
/// index + 1 (as a checked kernel stores its owner). Test-and-test-and-set,
/// the protocol of [`KSpinLock`](crate::KSpinLock).
///
/// [`KeAcquireSpinLock`]: https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/wdm/nf-wdm-keacquirespinlock
pub struct RawSpinLock {
    word: AtomicU32,
}

impl RawSpinLock {
    const_fn_unless_loom! {
        /// A free lock (`KeInitializeSpinLock`).
        pub fn new() -> Self {
            Self { word: AtomicU32::new(0) }
        }
    }

    /// One test-and-test-and-set iteration for `processor`: read the word
    /// and, if it is free, try once to store `processor + 1`. Serves as both
    /// phases of an acquire (call it again to poll). `Err(owner)` if the
    /// lock is held, naming the holder: `Err(processor)` means the caller
    /// already owns it (`SPIN_LOCK_ALREADY_OWNED`, bugcheck 0xF). After a
    /// lost race with another acquirer, `Err` names that winner.
    ///
    /// # Panics
    ///
    /// If `processor` is `u32::MAX` (reserved: the word stores index + 1).
    #[inline]
    pub fn try_acquire(&self, processor: u32) -> Result<(), u32> {
        let me = owner_word(processor);
        let word = self.word.load(Ordering::Relaxed);
        if word != 0 {
            return Err(word - 1);
        }
        // Acquire pairs with the previous owner's Release store.
        self.word
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
            .map(|_| ())
            .map_err(|now| now.wrapping_sub(1))
    }

    /// Releases the lock held by `processor` (`KeReleaseSpinLock`).
    /// `Err` (and no change) if `processor` does not own it.
    #[inline]
    pub fn release(&self, processor: u32) -> Result<(), NotOwned> {
        let word = self.word.load(Ordering::Relaxed);
        // Only the owner can change the word away from its own value, so the
        // check and the store cannot be separated by another change that
        // matters.
        if word != owner_word(processor) {
            return Err(NotOwned {
                owner: word_owner(word),
            });
        }
        // Release publishes the critical section to the next acquirer.
        self.word.store(0, Ordering::Release);
        Ok(())
    }

    /// The owning processor, or `None` if free. Exact when the caller asks
    /// about itself (only it can make `Some(caller)` appear or disappear);
    /// a hint otherwise.
    #[inline]
    pub fn owner(&self) -> Option<u32> {
        word_owner(self.word.load(Ordering::Relaxed))
    }

    /// Whether the lock is held (`!KeTestSpinLock`). A hint.
    #[inline]
    pub fn is_locked(&self) -> bool {
        self.word.load(Ordering::Relaxed) != 0
    }

    /// Frees the lock whoever holds it: abandoning it when a run halts.
    /// With `Release` ordering, so a later acquirer sees what the abandoned
    /// holder wrote.
    pub fn force_release(&self) {
        self.word.store(0, Ordering::Release);
    }
}

impl Default for RawSpinLock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for RawSpinLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawSpinLock")
            .field("owner", &self.owner())
            .finish()
    }
}

// ----------------------------------------------------- RawInterruptSpinLock

/// An interrupt spin lock ([`KeAcquireInterruptSpinLock`]) without data or
/// guards: a [`RawSpinLock`] tagged with the interrupt's `SynchronizeIrql`
/// (data only; the caller raises IRQL).
///
/// [`KeAcquireInterruptSpinLock`]: https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/wdm/nf-wdm-keacquireinterruptspinlock
pub struct RawInterruptSpinLock {
    synchronize_irql: u8,
    lock: RawSpinLock,
}

impl RawInterruptSpinLock {
    const_fn_unless_loom! {
        /// A free lock for an interrupt whose `SynchronizeIrql` is
        /// `synchronize_irql`.
        ///
        /// # Panics
        ///
        /// If `synchronize_irql` exceeds `HIGH_LEVEL` (15).
        pub fn new(synchronize_irql: u8) -> Self {
            assert!(synchronize_irql <= super::interrupt::HIGH_LEVEL, "IRQL above HIGH_LEVEL");
            Self { synchronize_irql, lock: RawSpinLock::new() }
        }
    }

    /// The interrupt's `SynchronizeIrql`: the level to spin and hold at.
    pub fn synchronize_irql(&self) -> u8 {
        self.synchronize_irql
    }

    /// One acquire attempt; see [`RawSpinLock::try_acquire`].
    #[inline]
    pub fn try_acquire(&self, processor: u32) -> Result<(), u32> {
        self.lock.try_acquire(processor)
    }

    /// `KeReleaseInterruptSpinLock`; see [`RawSpinLock::release`].
    #[inline]
    pub fn release(&self, processor: u32) -> Result<(), NotOwned> {
        self.lock.release(processor)
    }

    /// The owning processor, or `None` if free.
    #[inline]
    pub fn owner(&self) -> Option<u32> {
        self.lock.owner()
    }

    /// Whether the lock is held. A hint.
    pub fn is_locked(&self) -> bool {
        self.lock.is_locked()
    }

    /// Frees the lock whoever holds it (halt).
    pub fn force_release(&self) {
        self.lock.force_release();
    }
}

impl fmt::Debug for RawInterruptSpinLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawInterruptSpinLock")
            .field("synchronize_irql", &self.synchronize_irql)
            .field("owner", &self.owner())
            .finish()
    }
}

// ----------------------------------------------------------- RawExSpinLock

/// A pending exclusive acquire of a [`RawExSpinLock`]: the state the caller
/// keeps (per processor) between [`RawExSpinLock::begin_acquire_exclusive`]
/// and the [`poll_acquire_exclusive`](RawExSpinLock::poll_acquire_exclusive)
/// that succeeds, or hands to
/// [`cancel_exclusive`](RawExSpinLock::cancel_exclusive) to withdraw.
/// While pending it holds a claim in the word (bit 31, or its place among
/// the waiting writers and so bit 30), which keeps new readers out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "a pending writer keeps readers out until polled to the end or cancelled"]
pub struct ExclusiveWait {
    state: WriterState,
}

impl ExclusiveWait {
    /// Whether this writer owns bit 31 and waits only for readers to drain.
    pub fn is_draining(&self) -> bool {
        self.state == WriterState::Draining
    }
}

/// A reader/writer spin lock (`EX_SPIN_LOCK`, [`ExAcquireSpinLockShared`])
/// without data or guards: the word of [`ExSpinLock`](crate::ExSpinLock)
/// (bit 31 exclusive, bit 30 writer waiting, bits 20..=29 waiting writers,
/// bits 0..=19 shared count) and the same code, plus the exclusive owner's
/// processor index (Windows keeps none; the emulator's checks want it).
///
/// Shared holders are counted, not named, as on Windows.
///
/// [`ExAcquireSpinLockShared`]: https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/wdm/nf-wdm-exacquirespinlockshared
pub struct RawExSpinLock {
    word: AtomicU32,
    /// Exclusive owner's index + 1, or 0. Written only by the exclusive
    /// owner, while it holds bit 31 with the readers drained.
    owner: AtomicU32,
}

impl RawExSpinLock {
    const_fn_unless_loom! {
        /// A free lock (word = 0).
        pub fn new() -> Self {
            Self { word: AtomicU32::new(0), owner: AtomicU32::new(0) }
        }
    }

    /// One shared-acquire attempt (`ExAcquireSpinLockShared`'s step): takes
    /// the lock shared unless a writer holds, claims or waits for it. Call
    /// it again to poll. Retries only while other readers change the count.
    ///
    /// # Panics
    ///
    /// If 2^20 − 1 shared holders already exist.
    #[inline]
    pub fn try_acquire_shared(&self) -> bool {
        reader_try(&self.word)
    }

    /// `ExReleaseSpinLockShared`: drops one shared hold.
    ///
    /// # Panics
    ///
    /// If there is no shared holder (the word is left unchanged).
    #[inline]
    pub fn release_shared(&self) {
        // A genuine holder's own hold keeps the count above 0 until this
        // decrement, so the check cannot be invalidated in between.
        assert!(
            self.word.load(Ordering::Relaxed) & EX_SHARED_MASK != 0,
            "RawExSpinLock::release_shared without a shared holder"
        );
        // Release pairs with a draining writer's Acquire.
        self.word.fetch_sub(1, Ordering::Release);
    }

    /// The retail kernel's unchecked `ExReleaseSpinLockShared`: the word
    /// goes down by one whatever it holds, wrapping as Windows' own does
    /// (after an exclusive hold with no readers it runs into the
    /// exclusive-waiting bit and a huge shared count, so the next exclusive
    /// acquire drains readers that never leave). For an interpreter that
    /// models a driver's wrong-mode release; never needed otherwise.
    #[inline]
    pub fn release_shared_unchecked(&self) {
        self.word.fetch_sub(1, Ordering::Release);
        if self.word.load(Ordering::Relaxed) & EX_EXCLUSIVE == 0 {
            self.owner.store(0, Ordering::Relaxed);
        }
    }

    /// First phase of `ExAcquireSpinLockExclusive` for `processor`:
    /// `Ok(())` if the lock is now held exclusive; otherwise the pending
    /// writer's [`ExclusiveWait`] (its claim already keeps new readers out).
    /// Never waits for a holder.
    #[inline]
    pub fn begin_acquire_exclusive(&self, processor: u32) -> Result<(), ExclusiveWait> {
        let me = owner_word(processor);
        let taken =
            match self
                .word
                .compare_exchange(0, EX_EXCLUSIVE, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => Ok(()),
                Err(word) => {
                    writer_begin(&self.word, word).map_err(|state| ExclusiveWait { state })
                }
            };
        if taken.is_ok() {
            self.owner.store(me, Ordering::Relaxed);
        }
        taken
    }

    /// One step of a pending exclusive acquire: `true` once `processor`
    /// holds the lock exclusive (then `wait` is spent).
    ///
    /// # Panics
    ///
    /// If `wait` is already spent (this returned `true` for it before).
    #[inline]
    pub fn poll_acquire_exclusive(&self, processor: u32, wait: &mut ExclusiveWait) -> bool {
        let me = owner_word(processor);
        let done = writer_step(&self.word, &mut wait.state);
        if done {
            self.owner.store(me, Ordering::Relaxed);
        }
        done
    }

    /// Withdraws a pending exclusive acquire: leaves the waiting writers
    /// (clearing bit 30 with the last) or gives bit 31 back. Nothing to do
    /// for a spent `wait`.
    pub fn cancel_exclusive(&self, wait: ExclusiveWait) {
        writer_withdraw(&self.word, wait.state);
    }

    /// One exclusive attempt that fails if anyone holds the lock in either
    /// mode (`ExTryAcquireSpinLockExclusiveAtDpcLevel`-like).
    pub fn try_acquire_exclusive(&self, processor: u32) -> bool {
        let me = owner_word(processor);
        let mut word = self.word.load(Ordering::Relaxed);
        loop {
            if word & (EX_EXCLUSIVE | EX_SHARED_MASK) != 0 {
                return false;
            }
            match self.word.compare_exchange(
                word,
                word | EX_EXCLUSIVE,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.owner.store(me, Ordering::Relaxed);
                    return true;
                }
                Err(now) => word = now,
            }
        }
    }

    /// `ExReleaseSpinLockExclusive` by `processor`. `Err` (and no change)
    /// if `processor` is not the exclusive owner.
    pub fn release_exclusive(&self, processor: u32) -> Result<(), NotOwned> {
        let owner = self.owner.load(Ordering::Relaxed);
        if owner != owner_word(processor) || self.word.load(Ordering::Relaxed) & EX_EXCLUSIVE == 0 {
            return Err(NotOwned {
                owner: word_owner(owner),
            });
        }
        self.owner.store(0, Ordering::Relaxed);
        // Leaves bit 30 and the waiter count for the waiting writers.
        self.word.fetch_and(!EX_EXCLUSIVE, Ordering::Release);
        Ok(())
    }

    /// `ExTryConvertSharedSpinLockExclusive` for `processor`, which holds
    /// the lock shared: `true` if it is now the exclusive owner (it was the
    /// only shared holder and no writer held, claimed or waited); `false`
    /// and still shared otherwise.
    pub fn try_convert(&self, processor: u32) -> bool {
        let me = owner_word(processor);
        // Acquire: readers that left before us happen-before our writes.
        let ok = self
            .word
            .compare_exchange(1, EX_EXCLUSIVE, Ordering::Acquire, Ordering::Relaxed)
            .is_ok();
        if ok {
            self.owner.store(me, Ordering::Relaxed);
        }
        ok
    }

    /// The exclusive owner, or `None`. Exact when the caller asks about
    /// itself; a hint otherwise.
    pub fn exclusive_owner(&self) -> Option<u32> {
        word_owner(self.owner.load(Ordering::Relaxed))
    }

    /// How many shared holders there are. A hint.
    pub fn shared_count(&self) -> u32 {
        self.word.load(Ordering::Relaxed) & EX_SHARED_MASK
    }

    /// Whether bit 30 is set: some exclusive acquirer waits. A hint.
    pub fn is_exclusive_waiting(&self) -> bool {
        self.word.load(Ordering::Relaxed) & EX_EXCLUSIVE_WAITING != 0
    }

    /// The raw lock word (see [`ExSpinLock`](crate::ExSpinLock)).
    pub fn raw_word(&self) -> u32 {
        self.word.load(Ordering::Relaxed)
    }

    /// Frees the lock whatever its state: abandoning it when a run halts.
    /// Pending [`ExclusiveWait`]s must be discarded, not polled or
    /// cancelled, afterwards.
    pub fn force_reset(&self) {
        self.owner.store(0, Ordering::Relaxed);
        self.word.store(0, Ordering::Release);
    }
}

impl Default for RawExSpinLock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for RawExSpinLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawExSpinLock")
            .field("word", &format_args!("{:#010x}", self.raw_word()))
            .field("exclusive_owner", &self.exclusive_owner())
            .finish()
    }
}

// ------------------------------------------------------- RawQueuedSpinLock

/// One queue node (`KSPIN_LOCK_QUEUE`) for a [`RawQueuedSpinLock`], on its
/// own 128-byte line. Usually one of a [`QueueNodeArena`]'s.
///
/// Dropping a node that is still queued aborts the process (other threads
/// may still write to it); see the [module docs](self#the-queued-locks-safety-contract).
pub struct QueueNode {
    node: Node,
}

impl QueueNode {
    const_fn_unless_loom! {
        /// An idle node.
        pub fn new() -> Self {
            Self { node: Node::new() }
        }
    }

    /// Whether the node is in a lock's queue (waiting or owning).
    pub fn is_queued(&self) -> bool {
        self.node.lock.load(Ordering::Relaxed) != LOCK_QUEUE_IDLE
    }

    /// Whether the node owns its lock. Exact for the thread driving it.
    pub fn is_owner(&self) -> bool {
        self.node.lock.load(Ordering::Relaxed) == LOCK_QUEUE_OWNER
    }

    /// Whether the node waits for its lock. Exact for the thread driving it.
    pub fn is_waiting(&self) -> bool {
        self.node.lock.load(Ordering::Relaxed) & LOCK_QUEUE_WAIT != 0
    }

    fn ptr(&self) -> *mut Node {
        &self.node as *const Node as *mut Node
    }

    fn assert_idle(&self) {
        assert!(
            !self.is_queued(),
            "QueueNode is already queued (one acquisition per node at a time)"
        );
    }
}

impl Default for QueueNode {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for QueueNode {
    fn drop(&mut self) {
        if self.is_queued() {
            eprintln!("QueueNode dropped while still queued in a RawQueuedSpinLock; aborting");
            std::process::abort();
        }
    }
}

impl fmt::Debug for QueueNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueNode")
            .field("owner", &self.is_owner())
            .field("waiting", &self.is_waiting())
            .finish()
    }
}

/// Queue nodes indexed by (processor, nesting slot), allocated once and
/// never moved: the per-processor `KSPIN_LOCK_QUEUE` array of a kernel
/// `PRCB`, for [`RawQueuedSpinLock`].
///
/// A processor uses slot `k` for the `k`-th queued lock it holds or waits
/// for at once (the interpreter's nesting depth).
pub struct QueueNodeArena {
    nodes: Box<[QueueNode]>,
    slots: usize,
}

impl QueueNodeArena {
    /// `processors × slots` idle nodes.
    ///
    /// # Panics
    ///
    /// If `slots` is 0.
    pub fn new(processors: u32, slots: usize) -> Self {
        assert!(slots > 0, "a QueueNodeArena needs at least one slot");
        let nodes = (0..processors as usize * slots)
            .map(|_| QueueNode::new())
            .collect();
        Self { nodes, slots }
    }

    /// The node of `processor`'s nesting slot `slot`.
    ///
    /// # Panics
    ///
    /// If either index is out of range.
    pub fn node(&self, processor: u32, slot: usize) -> &QueueNode {
        assert!(slot < self.slots, "nesting slot {slot} out of range");
        &self.nodes[processor as usize * self.slots + slot]
    }

    /// The number of processors.
    pub fn processors(&self) -> u32 {
        (self.nodes.len() / self.slots) as u32
    }

    /// Nesting slots per processor.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// The (processor, slot) of every node queued right now. O(nodes).
    pub fn queued(&self) -> Vec<(u32, usize)> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.is_queued())
            .map(|(i, _)| ((i / self.slots) as u32, i % self.slots))
            .collect()
    }

    /// Marks every node idle: abandoning all holds and waits when a run
    /// halts. `&mut self` proves no processor is using a node. Every lock
    /// that had one of these nodes queued must be [`reset`](RawQueuedSpinLock::reset)
    /// too, before it is used again.
    pub fn reset(&mut self) {
        for n in self.nodes.iter_mut() {
            n.node.next.store(ptr::null_mut(), Ordering::Relaxed);
            n.node.lock.store(LOCK_QUEUE_IDLE, Ordering::Relaxed);
        }
    }
}

impl fmt::Debug for QueueNodeArena {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueNodeArena")
            .field("processors", &self.processors())
            .field("slots", &self.slots)
            .field("queued", &self.queued())
            .finish()
    }
}

/// An in-stack queued spin lock ([`KeAcquireInStackQueuedSpinLock`], MCS)
/// without data or guards: Windows' protocol, with the queue's tail as the
/// lock word (acquire swaps it; release compare-exchanges it back to null,
/// or hands over into the linked successor's node, first waiting for the
/// link if the successor has swapped in but not linked), and nodes the
/// caller supplies (from a [`QueueNodeArena`]). This is the protocol
/// [`QueuedSpinLock`](crate::QueuedSpinLock) ran before it moved to a
/// separate `locked` flag, and that [`model::QueuedLockModel`](crate::model::QueuedLockModel) models.
///
/// The acquire and release calls are `unsafe`: see the
/// [safety contract](self#the-queued-locks-safety-contract).
///
/// [`KeAcquireInStackQueuedSpinLock`]: https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/wdm/nf-wdm-keacquireinstackqueuedspinlock
pub struct RawQueuedSpinLock {
    tail: AtomicPtr<Node>,
}

// SAFETY (of the unsafe methods' callers, summarised): every node reachable
// from `tail` or from a queued node's `next` is alive and in place (contract
// rule 1), and is written only through the protocol (rule 2).

impl RawQueuedSpinLock {
    const_fn_unless_loom! {
        /// A free lock (tail = null).
        pub fn new() -> Self {
            Self { tail: AtomicPtr::new(ptr::null_mut()) }
        }
    }

    /// One attempt that succeeds only if the queue is empty
    /// (`KeTryToAcquireInStackQueuedSpinLock`): compare-exchange of the tail
    /// from null to `node`. On failure `node` stays idle.
    ///
    /// # Safety
    ///
    /// The [contract](self#the-queued-locks-safety-contract): on success
    /// `node` stays in place until released.
    ///
    /// # Panics
    ///
    /// If `node` is already queued.
    #[inline]
    pub unsafe fn try_acquire(&self, node: &QueueNode) -> bool {
        node.assert_idle();
        // Release publishes the node's `next = null`; Acquire pairs with
        // the previous owner's Release on the tail.
        let ok = self
            .tail
            .compare_exchange(
                ptr::null_mut(),
                node.ptr(),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok();
        if ok {
            node.node.lock.store(LOCK_QUEUE_OWNER, Ordering::Relaxed);
        }
        ok
    }

    /// First phase of an acquire: swaps the tail to `node`. `true` if the
    /// queue was empty (the lock is `node`'s). Otherwise `node` is queued
    /// and linked into its predecessor, and
    /// [`poll_acquire`](Self::poll_acquire) waits for the handover.
    ///
    /// # Safety
    ///
    /// The [contract](self#the-queued-locks-safety-contract): `node` stays
    /// in place until released, and every node queued in this lock does too.
    ///
    /// # Panics
    ///
    /// If `node` is already queued.
    #[inline]
    pub unsafe fn begin_acquire(&self, node: &QueueNode) -> bool {
        node.assert_idle();
        // Claim the node before publishing it; `next` is already null.
        node.node.lock.store(LOCK_QUEUE_OWNER, Ordering::Relaxed);
        // AcqRel. Release publishes our node's `next = null` (from its last
        // handover) to the successor that will swap after us and write our
        // `next`; Acquire pairs with the previous owner's Release on the
        // tail (if the lock was free) and with the predecessor's swap
        // (ordering its `next = null` before our link).
        let pred = self.tail.swap(node.ptr(), Ordering::AcqRel);
        if pred.is_null() {
            return true;
        }
        // Only the predecessor writes our `lock` word, after reading the
        // link below (Release), so WAIT is in place before it can clear it.
        node.node.lock.store(LOCK_QUEUE_WAIT, Ordering::Relaxed);
        // SAFETY: `pred` was the tail, so it is a queued node; by the
        // caller's contract it is alive and in place, and its owner cannot
        // leave the queue before handing over to us, which needs this link.
        unsafe { &*pred }.next.store(node.ptr(), Ordering::Release);
        false
    }

    /// One spin iteration of a queued acquire: one read of `node`'s own
    /// word. `true` once the predecessor has handed the lock over.
    ///
    /// # Safety
    ///
    /// `node` is the one passed to this lock's `begin_acquire` (which
    /// returned `false`) and the contract holds.
    #[inline]
    pub unsafe fn poll_acquire(&self, node: &QueueNode) -> bool {
        // Acquire pairs with the predecessor's Release handover.
        let word = node.node.lock.load(Ordering::Acquire);
        debug_assert!(word != LOCK_QUEUE_IDLE, "poll_acquire on an idle node");
        word & LOCK_QUEUE_WAIT == 0
    }

    /// First phase of `KeReleaseInStackQueuedSpinLock`: `true` if released
    /// (no one waited, or the linked successor has been handed the lock);
    /// `false` if a successor has swapped the tail but not linked yet, in
    /// which case [`poll_release`](Self::poll_release) until `true`.
    ///
    /// # Safety
    ///
    /// `node` owns this lock (its acquire returned or polled `true`) and the
    /// contract holds.
    ///
    /// # Panics
    ///
    /// If `node` does not own a lock.
    #[inline]
    pub unsafe fn begin_release(&self, node: &QueueNode) -> bool {
        assert!(node.is_owner(), "begin_release by a node that owns no lock");
        release_begin(&self.tail, &node.node)
    }

    /// One step of a release waiting for its successor's link: one read of
    /// `node`'s `next`; `true` once it has handed over.
    ///
    /// # Safety
    ///
    /// `begin_release(node)` on this lock returned `false`, no poll has
    /// returned `true` since, and the contract holds.
    #[inline]
    pub unsafe fn poll_release(&self, node: &QueueNode) -> bool {
        release_poll(&node.node)
    }

    /// Whether anyone holds or waits for the lock (tail non-null). A hint.
    pub fn is_locked(&self) -> bool {
        !self.tail.load(Ordering::Relaxed).is_null()
    }

    /// Whether `node` is the last in the queue (so nobody waits behind it,
    /// not even unlinked). A hint unless `node` owns the lock and the
    /// answer is `false`.
    pub fn is_tail(&self, node: &QueueNode) -> bool {
        ptr::eq(self.tail.load(Ordering::Relaxed), node.ptr())
    }

    /// Empties the queue (tail = null): abandoning all holds and waits when
    /// a run halts. Reset the nodes' arena too
    /// ([`QueueNodeArena::reset`]).
    pub fn reset(&mut self) {
        self.tail = AtomicPtr::new(ptr::null_mut());
    }
}

/// First step of an MCS release (`KeReleaseInStackQueuedSpinLock`): `true`
/// if the lock was released (to no one, or handed to a linked successor);
/// `false` if a successor has swapped the tail but not linked in yet, in
/// which case [`release_poll`] must be called until it returns `true`.
///
/// (This was `queued::release_begin`, shared with `QueuedSpinLock` while
/// that lock ran the same MCS protocol; it lives here, unchanged, since the
/// real lock moved to a separate locked flag.)
#[inline]
fn release_begin(tail: &AtomicPtr<Node>, node: &Node) -> bool {
    let next = node.next.load(Ordering::Acquire);
    if next.is_null() {
        let me = node as *const Node as *mut Node;
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
fn release_poll(node: &Node) -> bool {
    let next = node.next.load(Ordering::Acquire);
    if next.is_null() {
        return false;
    }
    hand_over(node, next);
    true
}

/// Hands the lock to the linked successor `next` and leaves `node` idle.
#[inline]
fn hand_over(node: &Node, next: *mut Node) {
    // SAFETY: `next` is a queued node linked behind ours; by the caller's
    // contract (rule 1 of the module docs) it stays alive and in place
    // while it is queued, and it cannot leave the queue before this store
    // clears its WAIT bit; after this store we never touch it again.
    // Release publishes our critical section.
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

impl Default for RawQueuedSpinLock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for RawQueuedSpinLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawQueuedSpinLock")
            .field("locked", &self.is_locked())
            .finish()
    }
}
