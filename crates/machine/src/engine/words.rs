//! Lock words and scenario data: the models of deterministic mode, or the
//! real atomics and real locks of parallel mode behind the same calls.
//!
//! * [`DataStore`]: the scenario's shared variables as `AtomicI64` cells
//!   (with a write counter each), in both modes. Deterministic mode touches
//!   them from one thread; in parallel mode the processor threads share
//!   them (`Arc`), and a processor waiting for data watches a cell's write
//!   counter from its own OS thread, outside the machine lock.
//! * [`OrdWord`], [`QueuedWord`], [`ExWord`]: one scenario lock's word in
//!   the lock table. Deterministic mode keeps the two-phase models of
//!   `spinlocks::model` (byte-identical reports); parallel mode keeps the
//!   guard-free real locks of `spinlocks::raw` ([`RealLocks`]): the owner is
//!   the processor index and in-stack queued nodes come from a
//!   per-processor [`QueueNodeArena`] (one slot per queued lock a processor
//!   holds or waits for), so a hold spans statements and a halted run
//!   abandons its locks ([`RealLocks`]' `Drop` resets the queues before the
//!   arena goes). A spinning processor thread watches the real word
//!   ([`RealLocks::probe`]) outside the machine lock until it changes.
//!
//! Never imports anything above `spinlocks`/`vcpu` (the machine's own
//! modules use these types, not the other way round).

use spinlocks::model::{ExLockModel, NodeId, Owner, Poll, QueuedLockModel, SpinLockModel};
use spinlocks::raw::{
    ExclusiveWait, QueueNode, QueueNodeArena, RawExSpinLock, RawInterruptSpinLock,
    RawQueuedSpinLock, RawSpinLock,
};
use spinlocks::real::ex::EX_EXCLUSIVE;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

/// The scenario's shared variables: one `AtomicI64` per leaf, and per leaf
/// a count of writes (data waits compare it). Writes are `Release` stores,
/// reads `Acquire` loads; the counters are only advanced by the thread that
/// writes, so they need no read-modify-write.
#[derive(Debug)]
pub(super) struct DataStore {
    values: Box<[AtomicI64]>,
    versions: Box<[AtomicU64]>,
}

impl DataStore {
    /// Cells with these initial values, no writes yet.
    pub(super) fn new(init: impl Iterator<Item = i64>) -> Self {
        let values: Box<[AtomicI64]> = init.map(AtomicI64::new).collect();
        let versions = (0..values.len()).map(|_| AtomicU64::new(0)).collect();
        DataStore { values, versions }
    }

    /// The number of cells.
    #[inline]
    pub(super) fn len(&self) -> usize {
        self.values.len()
    }

    /// Cell `v`'s value. Panics when out of range (callers check).
    #[inline]
    pub(super) fn get(&self, v: usize) -> i64 {
        self.values[v].load(Ordering::Acquire)
    }

    /// Cell `v`'s value, `None` when out of range.
    #[inline]
    pub(super) fn try_get(&self, v: usize) -> Option<i64> {
        self.values.get(v).map(|c| c.load(Ordering::Acquire))
    }

    /// Store `x` in cell `v` and count the write.
    #[inline]
    pub(super) fn set(&self, v: usize, x: i64) {
        self.values[v].store(x, Ordering::Release);
        let n = &self.versions[v];
        n.store(n.load(Ordering::Relaxed) + 1, Ordering::Release);
    }

    /// Zero cell `v` as fresh storage (a new pool block), not counted as
    /// a write.
    pub(super) fn zero(&self, v: usize) {
        self.values[v].store(0, Ordering::Release);
    }

    /// How many writes cell `v` has had.
    #[inline]
    pub(super) fn version(&self, v: usize) -> u64 {
        self.versions[v].load(Ordering::Acquire)
    }
}

/// Nesting slots per processor in the queued-node arena: how many in-stack
/// queued spin locks one processor may hold or wait for at once.
pub(super) const QUEUE_SLOTS: usize = 32;

/// One scenario lock as a real lock of `spinlocks::raw`.
#[derive(Debug)]
pub(super) enum RealLock {
    /// A KSPIN_LOCK: the ordinary word and the MCS queue (the machine makes
    /// the two exclude each other, as the one Windows word does).
    Spin {
        ordinary: RawSpinLock,
        queued: RawQueuedSpinLock,
    },
    Ex(RawExSpinLock),
    Interrupt(RawInterruptSpinLock),
}

/// Every scenario lock of a parallel run as a real lock, the queued-node
/// arena, and which arena slots each processor is using.
#[derive(Debug)]
pub(super) struct RealLocks {
    locks: Box<[RealLock]>,
    arena: QueueNodeArena,
    /// Per processor: bit `s` set while slot `s` is queued. Touched only
    /// under the machine lock.
    slots: Box<[AtomicU64]>,
}

impl RealLocks {
    /// Real locks for `kinds` (`Spin`, `Ex`, `Interrupt(SynchronizeIrql)`)
    /// on `processors` processors.
    pub(super) fn new(
        kinds: impl Iterator<Item = scenario::program::LockKind>,
        processors: u32,
        irql_of: impl Fn(u32) -> u8,
    ) -> Self {
        use scenario::program::LockKind;
        let locks = kinds
            .map(|k| match k {
                LockKind::Spin => RealLock::Spin {
                    ordinary: RawSpinLock::new(),
                    queued: RawQueuedSpinLock::new(),
                },
                LockKind::Ex => RealLock::Ex(RawExSpinLock::new()),
                LockKind::Interrupt(i) => {
                    RealLock::Interrupt(RawInterruptSpinLock::new(irql_of(i)))
                }
            })
            .collect();
        RealLocks {
            locks,
            arena: QueueNodeArena::new(processors.max(1), QUEUE_SLOTS),
            slots: (0..processors.max(1)).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn ordinary(&self, ix: u32) -> &dyn RawOrdinary {
        match &self.locks[ix as usize] {
            RealLock::Spin { ordinary, .. } => ordinary,
            RealLock::Interrupt(l) => l,
            RealLock::Ex(_) => unreachable!("an EX_SPIN_LOCK has no ordinary word"),
        }
    }

    fn queued(&self, ix: u32) -> &RawQueuedSpinLock {
        match &self.locks[ix as usize] {
            RealLock::Spin { queued, .. } => queued,
            _ => unreachable!("only a KSPIN_LOCK has a queue"),
        }
    }

    fn ex(&self, ix: u32) -> &RawExSpinLock {
        match &self.locks[ix as usize] {
            RealLock::Ex(l) => l,
            _ => unreachable!("not an EX_SPIN_LOCK"),
        }
    }

    fn node(&self, n: NodeId) -> &QueueNode {
        self.arena.node(n.0 >> 8, (n.0 & 0xff) as usize)
    }

    /// A snapshot of lock `ix` as a spinner on it sees it (and of its own
    /// queued node, if any): a spinning processor thread watches this,
    /// outside the machine lock, until it changes. Plain loads only.
    pub(super) fn probe(&self, ix: u32, node: Option<NodeId>) -> u64 {
        let mine = node.map_or(0, |n| self.node(n).is_waiting() as u64) << 62;
        mine | match &self.locks[ix as usize] {
            RealLock::Spin { ordinary, queued } => {
                ordinary.owner().map_or(0, |o| u64::from(o) + 1) | (queued.is_locked() as u64) << 40
            }
            RealLock::Ex(l) => u64::from(l.raw_word()),
            RealLock::Interrupt(l) => l.owner().map_or(0, |o| u64::from(o) + 1),
        }
    }
}

impl Drop for RealLocks {
    /// Abandon every hold and wait of a run that ended (halted or not):
    /// reset each queue, then the arena, so no queued node is dropped.
    fn drop(&mut self) {
        for l in self.locks.iter_mut() {
            if let RealLock::Spin { queued, .. } = l {
                queued.reset();
            }
        }
        self.arena.reset();
    }
}

/// The ordinary and interrupt raw locks' common calls.
trait RawOrdinary {
    fn try_acquire(&self, processor: u32) -> Result<(), u32>;
    fn release(&self, processor: u32) -> Result<(), Option<u32>>;
    fn owner(&self) -> Option<u32>;
}

/// `RawOrdinary` for a raw lock type with the same-named inherent calls.
macro_rules! raw_ordinary {
    ($t:ty) => {
        impl RawOrdinary for $t {
            fn try_acquire(&self, processor: u32) -> Result<(), u32> {
                <$t>::try_acquire(self, processor)
            }
            fn release(&self, processor: u32) -> Result<(), Option<u32>> {
                <$t>::release(self, processor).map_err(|e| e.owner)
            }
            fn owner(&self) -> Option<u32> {
                <$t>::owner(self)
            }
        }
    };
}

raw_ordinary!(RawSpinLock);
raw_ordinary!(RawInterruptSpinLock);

/// An ordinary or interrupt spin lock's word: test-and-test-and-set on the
/// model (deterministic) or on a real `RawSpinLock` /
/// `RawInterruptSpinLock` (parallel). Owners are processor numbers.
#[derive(Debug)]
pub(super) enum OrdWord {
    Model(SpinLockModel),
    Real(Arc<RealLocks>, u32),
}

impl OrdWord {
    /// One test-and-set.
    pub(super) fn try_acquire(&mut self, owner: Owner) -> bool {
        match self {
            OrdWord::Model(m) => m.try_acquire(owner),
            OrdWord::Real(r, ix) => r.ordinary(*ix).try_acquire(owner).is_ok(),
        }
    }

    /// First phase of an acquire.
    pub(super) fn begin(&mut self, owner: Owner) -> Poll {
        self.poll(owner)
    }

    /// One spin iteration.
    pub(super) fn poll(&mut self, owner: Owner) -> Poll {
        if self.try_acquire(owner) {
            Poll::Acquired
        } else {
            Poll::Spinning
        }
    }

    /// Release; `Err(holder)` when `owner` does not hold it.
    pub(super) fn release(&mut self, owner: Owner) -> Result<(), Option<Owner>> {
        match self {
            OrdWord::Model(m) => m.release(owner),
            OrdWord::Real(r, ix) => r.ordinary(*ix).release(owner),
        }
    }

    pub(super) fn holder(&self) -> Option<Owner> {
        match self {
            OrdWord::Model(m) => m.holder(),
            OrdWord::Real(r, ix) => r.ordinary(*ix).owner(),
        }
    }

    pub(super) fn is_free(&self) -> bool {
        self.holder().is_none()
    }
}

/// An in-stack queued spin lock's MCS queue: the model (deterministic) or
/// a real `RawQueuedSpinLock` with nodes from the arena (parallel; a
/// node's id is `processor << 8 | slot`).
#[derive(Debug)]
pub(super) enum QueuedWord {
    Model(QueuedLockModel),
    Real(Arc<RealLocks>, u32),
}

/// More in-stack queued spin locks held or awaited on one processor than
/// the node arena has slots ([`QUEUE_SLOTS`]).
#[derive(Debug)]
pub(super) struct OutOfNodes;

impl QueuedWord {
    /// Swap the tail (and link): the node and whether it owns the lock.
    pub(super) fn begin(&mut self, owner: Owner) -> Result<(NodeId, Poll), OutOfNodes> {
        match self {
            QueuedWord::Model(m) => Ok(m.begin(owner)),
            QueuedWord::Real(r, ix) => {
                let busy = &r.slots[owner as usize];
                let used = busy.load(Ordering::Relaxed);
                let slot = (!used).trailing_zeros() as usize;
                if slot >= QUEUE_SLOTS {
                    return Err(OutOfNodes);
                }
                busy.store(used | 1 << slot, Ordering::Relaxed);
                let id = NodeId(owner << 8 | slot as u32);
                // SAFETY: arena nodes never move and live as long as the
                // `RealLocks` (whose Drop resets the queues first); the slot
                // bit gives this node to one acquisition at a time; every
                // call on it is made under the machine lock, one at a time.
                let got = unsafe { r.queued(*ix).begin_acquire(r.node(id)) };
                Ok((id, if got { Poll::Acquired } else { Poll::Spinning }))
            }
        }
    }

    /// One spin iteration of the node's wait: whether it owns the lock, and
    /// whether the queue changed (the model's separate link step).
    pub(super) fn poll(&mut self, n: NodeId) -> (Poll, bool) {
        match self {
            QueuedWord::Model(m) => {
                let before = m.waiters();
                let p = m.poll(n);
                (p, m.waiters() != before)
            }
            QueuedWord::Real(r, ix) => {
                // SAFETY: as in `begin`; `n` is queued in this lock.
                let got = unsafe { r.queued(*ix).poll_acquire(r.node(n)) };
                (if got { Poll::Acquired } else { Poll::Spinning }, false)
            }
        }
    }

    /// First phase of a release; `Spinning` while a successor's link is
    /// still missing.
    pub(super) fn begin_release(&mut self, n: NodeId) -> Poll {
        match self {
            QueuedWord::Model(m) => m.begin_release(n),
            QueuedWord::Real(r, ix) => {
                // SAFETY: as in `begin`; `n` owns this lock.
                let done = unsafe { r.queued(*ix).begin_release(r.node(n)) };
                Self::released(r, n, done)
            }
        }
    }

    /// One step of a release waiting for the link.
    pub(super) fn poll_release(&mut self, n: NodeId) -> Poll {
        match self {
            QueuedWord::Model(m) => m.poll_release(n),
            QueuedWord::Real(r, ix) => {
                // SAFETY: as in `begin`; `begin_release(n)` returned false.
                let done = unsafe { r.queued(*ix).poll_release(r.node(n)) };
                Self::released(r, n, done)
            }
        }
    }

    fn released(r: &RealLocks, n: NodeId, done: bool) -> Poll {
        if !done {
            return Poll::Spinning;
        }
        let busy = &r.slots[(n.0 >> 8) as usize];
        let used = busy.load(Ordering::Relaxed);
        busy.store(used & !(1 << (n.0 & 0xff)), Ordering::Relaxed);
        Poll::Acquired
    }

    /// Nobody holds or waits for it.
    pub(super) fn is_free(&self) -> bool {
        match self {
            QueuedWord::Model(m) => m.is_free(),
            QueuedWord::Real(r, ix) => !r.queued(*ix).is_locked(),
        }
    }
}

/// An `EX_SPIN_LOCK`'s word: the model (deterministic) or a real
/// `RawExSpinLock` (parallel), which counts shared holders without names,
/// so the shared holds and pending exclusive waits per processor are kept
/// here.
#[derive(Debug)]
pub(super) enum ExWord {
    Model(ExLockModel),
    Real {
        locks: Arc<RealLocks>,
        ix: u32,
        /// Per processor: shared holds.
        shared_by: Vec<u32>,
        /// Per processor: its pending exclusive acquire.
        waits: Vec<Option<ExclusiveWait>>,
    },
}

impl ExWord {
    /// Lock `ix` of `locks`, free, with a record per processor.
    pub(super) fn real(locks: &Arc<RealLocks>, ix: u32) -> Self {
        let n = locks.slots.len();
        ExWord::Real {
            locks: locks.clone(),
            ix,
            shared_by: vec![0; n],
            waits: (0..n).map(|_| None).collect(),
        }
    }

    /// One shared attempt (writer preference: waits while a writer holds,
    /// drains or waits).
    pub(super) fn poll_shared(&mut self, owner: Owner) -> Poll {
        match self {
            ExWord::Model(m) => m.poll_shared(owner),
            ExWord::Real {
                locks,
                ix,
                shared_by,
                ..
            } => {
                if locks.ex(*ix).try_acquire_shared() {
                    shared_by[owner as usize] += 1;
                    Poll::Acquired
                } else {
                    Poll::Spinning
                }
            }
        }
    }

    /// First phase of an exclusive acquire.
    pub(super) fn begin_exclusive(&mut self, owner: Owner) -> Poll {
        match self {
            ExWord::Model(m) => m.begin_exclusive(owner),
            ExWord::Real {
                locks, ix, waits, ..
            } => match locks.ex(*ix).begin_acquire_exclusive(owner) {
                Ok(()) => Poll::Acquired,
                Err(w) => {
                    waits[owner as usize] = Some(w);
                    Poll::Spinning
                }
            },
        }
    }

    /// One spin iteration of an exclusive acquire.
    pub(super) fn poll_exclusive(&mut self, owner: Owner) -> Poll {
        match self {
            ExWord::Model(m) => m.poll_exclusive(owner),
            ExWord::Real {
                locks, ix, waits, ..
            } => {
                let Some(w) = waits.get_mut(owner as usize).and_then(Option::as_mut) else {
                    return self.begin_exclusive(owner);
                };
                if locks.ex(*ix).poll_acquire_exclusive(owner, w) {
                    waits[owner as usize] = None;
                    Poll::Acquired
                } else {
                    Poll::Spinning
                }
            }
        }
    }

    /// A checked shared release; `Err` when `owner` holds no shared hold.
    pub(super) fn release_shared(&mut self, owner: Owner) -> Result<(), ()> {
        match self {
            ExWord::Model(m) => m.release_shared(owner).map_err(|_| ()),
            ExWord::Real {
                locks,
                ix,
                shared_by,
                ..
            } => match shared_by.get_mut(owner as usize) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    locks.ex(*ix).release_shared();
                    Ok(())
                }
                _ => Err(()),
            },
        }
    }

    /// The retail kernel's unchecked shared release: the word goes down by
    /// one, wrapping into the flag bits when it had no shared count (as on
    /// Windows; contract v2, 0x1007/0x1009 rows).
    pub(super) fn force_release_shared(&mut self) {
        match self {
            ExWord::Model(m) => m.force_release_shared(),
            ExWord::Real {
                locks,
                ix,
                shared_by,
                ..
            } => {
                locks.ex(*ix).release_shared_unchecked();
                if let Some(n) = shared_by.iter_mut().find(|n| **n > 0) {
                    *n -= 1;
                }
            }
        }
    }

    /// A checked exclusive release; `Err` when `owner` is not the owner.
    pub(super) fn release_exclusive(&mut self, owner: Owner) -> Result<(), ()> {
        match self {
            ExWord::Model(m) => m.release_exclusive(owner).map_err(|_| ()),
            ExWord::Real { locks, ix, .. } => {
                locks.ex(*ix).release_exclusive(owner).map_err(|_| ())
            }
        }
    }

    /// The retail kernel's unchecked exclusive release: the word is cleared.
    pub(super) fn force_release_exclusive(&mut self) {
        match self {
            ExWord::Model(m) => m.force_release_exclusive(),
            ExWord::Real {
                locks,
                ix,
                shared_by,
                waits,
            } => {
                locks.ex(*ix).force_reset();
                shared_by.iter_mut().for_each(|n| *n = 0);
                // A reset word forgets its waiting writers: they start over.
                waits.iter_mut().for_each(|w| *w = None);
            }
        }
    }

    pub(super) fn holds_shared(&self, owner: Owner) -> bool {
        match self {
            ExWord::Model(m) => m.holds_shared(owner),
            ExWord::Real { shared_by, .. } => shared_by.get(owner as usize).is_some_and(|&n| n > 0),
        }
    }

    pub(super) fn holds_exclusive(&self, owner: Owner) -> bool {
        match self {
            ExWord::Model(m) => m.holds_exclusive(owner),
            ExWord::Real { locks, ix, .. } => {
                let l = locks.ex(*ix);
                l.exclusive_owner() == Some(owner) && l.raw_word() & EX_EXCLUSIVE != 0
            }
        }
    }

    /// `ExTryConvertSharedSpinLockExclusive`.
    pub(super) fn try_convert(&mut self, owner: Owner) -> bool {
        match self {
            ExWord::Model(m) => m.try_convert(owner),
            ExWord::Real {
                locks,
                ix,
                shared_by,
                ..
            } => {
                let ok = locks.ex(*ix).try_convert(owner);
                if ok {
                    if let Some(n) = shared_by.get_mut(owner as usize) {
                        *n = n.saturating_sub(1);
                    }
                }
                ok
            }
        }
    }

    /// The raw word (0 when free).
    pub(super) fn word(&self) -> u32 {
        match self {
            ExWord::Model(m) => m.word(),
            ExWord::Real { locks, ix, .. } => locks.ex(*ix).raw_word(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use scenario::program::LockKind;

    fn real(kinds: &[LockKind], cpus: u32) -> Arc<RealLocks> {
        Arc::new(RealLocks::new(kinds.iter().copied(), cpus, |_| 5))
    }

    proptest! {
        /// The real ordinary word answers every call as the model does.
        #[test]
        fn real_ordinary_word_agrees_with_the_model(ops in proptest::collection::vec((0u8..3, 0u32..3), 1..64)) {
            let r = real(&[LockKind::Spin], 3);
            let mut model = OrdWord::Model(SpinLockModel::new());
            let mut word = OrdWord::Real(r, 0);
            for (op, owner) in ops {
                match op {
                    0 => prop_assert_eq!(model.begin(owner), word.begin(owner)),
                    1 => prop_assert_eq!(model.poll(owner), word.poll(owner)),
                    _ => prop_assert_eq!(model.release(owner), word.release(owner)),
                }
                prop_assert_eq!(model.holder(), word.holder());
                prop_assert_eq!(model.is_free(), word.is_free());
            }
        }
    }

    #[test]
    fn data_store_counts_writes_not_zeroing() {
        let d = DataStore::new([1, 2].into_iter());
        assert_eq!((d.len(), d.get(0), d.try_get(2)), (2, 1, None));
        d.set(1, 7);
        d.set(1, 8);
        d.zero(0);
        assert_eq!((d.get(0), d.get(1)), (0, 8));
        assert_eq!((d.version(0), d.version(1)), (0, 2));
    }

    #[test]
    fn real_queued_word_is_fifo_and_recycles_its_slots() {
        let r = real(&[LockKind::Spin], 3);
        let mut q = QueuedWord::Real(r.clone(), 0);
        // Many more acquire/release cycles than slots: slots come back.
        for _ in 0..(3 * QUEUE_SLOTS) {
            let (n, p) = q.begin(1).expect("a free slot");
            assert_eq!(p, Poll::Acquired);
            assert_eq!(q.begin_release(n), Poll::Acquired);
        }
        assert!(q.is_free());
        // 0 holds; 1 then 2 queue behind it and are served in that order.
        let (a, _) = q.begin(0).unwrap();
        let (b, pb) = q.begin(1).unwrap();
        let (c, pc) = q.begin(2).unwrap();
        assert_eq!((pb, pc), (Poll::Spinning, Poll::Spinning));
        let seen = r.probe(0, Some(b));
        assert_eq!(q.poll(b).0, Poll::Spinning);
        assert_eq!(q.begin_release(a), Poll::Acquired);
        assert_ne!(r.probe(0, Some(b)), seen, "a watcher sees the handoff");
        assert_eq!(q.poll(c).0, Poll::Spinning);
        assert_eq!(q.poll(b).0, Poll::Acquired);
        assert_eq!(q.begin_release(b), Poll::Acquired);
        assert_eq!(q.poll(c).0, Poll::Acquired);
        assert_eq!(q.begin_release(c), Poll::Acquired);
        assert!(q.is_free());
    }

    #[test]
    fn a_full_arena_is_an_error_and_a_halt_abandons_queued_nodes() {
        let r = real(&[LockKind::Spin, LockKind::Spin], 1);
        let mut q = QueuedWord::Real(r.clone(), 0);
        for _ in 0..QUEUE_SLOTS {
            q.begin(0).expect("a free slot");
        }
        assert!(q.begin(0).is_err());
        // Dropping the table with nodes still queued resets them (a queued
        // node dropped would abort the process).
        drop(q);
        drop(r);
    }

    #[test]
    fn real_ex_word_shared_exclusive_convert_and_retail_wrap() {
        let r = real(&[LockKind::Ex], 2);
        let mut x = ExWord::real(&r, 0);
        assert_eq!(x.poll_shared(0), Poll::Acquired);
        assert!(x.holds_shared(0) && !x.holds_shared(1));
        // A writer claims it and drains the reader; new readers wait.
        assert_eq!(x.begin_exclusive(1), Poll::Spinning);
        assert_eq!(x.poll_exclusive(1), Poll::Spinning);
        assert_eq!(x.release_shared(1), Err(()));
        assert_eq!(x.release_shared(0), Ok(()));
        assert_eq!(x.poll_exclusive(1), Poll::Acquired);
        assert!(x.holds_exclusive(1));
        assert_eq!(x.poll_shared(0), Poll::Spinning);
        assert_eq!(x.release_exclusive(0), Err(()));
        assert_eq!(x.release_exclusive(1), Ok(()));
        assert_eq!(x.word(), 0);
        // The sole reader converts.
        assert_eq!(x.poll_shared(0), Poll::Acquired);
        assert!(x.try_convert(0));
        assert!(x.holds_exclusive(0) && !x.holds_shared(0));
        // The retail wrong-mode release wraps the word as Windows' does.
        x.force_release_shared();
        assert_eq!(x.word(), EX_EXCLUSIVE - 1);
        x.force_release_exclusive();
        assert_eq!(x.word(), 0);
    }
}
