//! The guard-free `raw` layer: ownership queries, two-phase paths, reset on
//! halt, and a threaded mutual-exclusion check per family.
#![cfg(not(loom))]

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};

use spinlocks::raw::{
    NotOwned, QueueNodeArena, RawExSpinLock, RawInterruptSpinLock, RawQueuedSpinLock, RawSpinLock,
};

#[test]
fn ordinary_owner_is_processor_index() {
    let lock = RawSpinLock::new();
    assert_eq!(lock.owner(), None);
    assert!(!lock.is_locked());
    assert_eq!(lock.try_acquire(3), Ok(()));
    assert_eq!(lock.owner(), Some(3));
    // "Already owned by this processor": the error names the caller.
    assert_eq!(lock.try_acquire(3), Err(3));
    assert_eq!(lock.try_acquire(0), Err(3));
    // "Not owned": release by another processor fails and changes nothing.
    assert_eq!(lock.release(0), Err(NotOwned { owner: Some(3) }));
    assert_eq!(lock.owner(), Some(3));
    assert_eq!(lock.release(3), Ok(()));
    assert_eq!(lock.release(3), Err(NotOwned { owner: None }));
    // Processor 0 is a real owner (the word is index + 1, not the index).
    assert_eq!(lock.try_acquire(0), Ok(()));
    assert_eq!(lock.owner(), Some(0));
    lock.force_release();
    assert_eq!(lock.owner(), None);
    assert!(NotOwned { owner: Some(1) }
        .to_string()
        .contains("processor 1"));
}

#[test]
#[should_panic(expected = "reserved")]
fn ordinary_rejects_max_processor() {
    let _ = RawSpinLock::new().try_acquire(u32::MAX);
}

#[test]
fn interrupt_lock_carries_irql_and_owner() {
    let lock = RawInterruptSpinLock::new(7);
    assert_eq!(lock.synchronize_irql(), 7);
    assert_eq!(lock.try_acquire(1), Ok(()));
    assert_eq!(lock.owner(), Some(1));
    assert_eq!(lock.try_acquire(2), Err(1));
    assert_eq!(lock.release(2), Err(NotOwned { owner: Some(1) }));
    assert_eq!(lock.release(1), Ok(()));
    assert!(!lock.is_locked());
}

#[test]
fn ex_shared_exclusive_and_owner() {
    let lock = RawExSpinLock::new();
    assert!(lock.try_acquire_shared());
    assert!(lock.try_acquire_shared());
    assert_eq!(lock.shared_count(), 2);
    assert_eq!(lock.exclusive_owner(), None);
    // A writer arrives: claims bit 31 and drains.
    let mut w = lock.begin_acquire_exclusive(4).unwrap_err();
    assert!(w.is_draining());
    assert!(!lock.try_acquire_shared(), "writer preference");
    assert!(!lock.poll_acquire_exclusive(4, &mut w));
    lock.release_shared();
    lock.release_shared();
    assert!(lock.poll_acquire_exclusive(4, &mut w));
    assert_eq!(lock.exclusive_owner(), Some(4));
    // A second writer registers (bit 30) and keeps readers out.
    let second = lock.begin_acquire_exclusive(5).unwrap_err();
    assert!(lock.is_exclusive_waiting());
    assert_eq!(lock.release_exclusive(5), Err(NotOwned { owner: Some(4) }));
    lock.cancel_exclusive(second);
    assert!(!lock.is_exclusive_waiting());
    assert_eq!(lock.release_exclusive(4), Ok(()));
    assert_eq!(lock.exclusive_owner(), None);
    assert_eq!(lock.raw_word(), 0);
}

#[test]
fn ex_try_convert() {
    let lock = RawExSpinLock::new();
    assert!(lock.try_acquire_shared());
    assert!(lock.try_acquire_shared());
    assert!(!lock.try_convert(1), "not the only reader");
    lock.release_shared();
    assert!(lock.try_convert(1));
    assert_eq!(lock.exclusive_owner(), Some(1));
    assert_eq!(lock.shared_count(), 0);
    assert!(!lock.try_acquire_exclusive(2));
    lock.release_exclusive(1).unwrap();
    assert!(lock.try_acquire_exclusive(2));
    lock.force_reset();
    assert_eq!((lock.raw_word(), lock.exclusive_owner()), (0, None));
}

#[test]
#[should_panic(expected = "without a shared holder")]
fn ex_release_shared_unheld_panics() {
    RawExSpinLock::new().release_shared();
}

#[test]
fn queued_fifo_and_node_states() {
    let arena = QueueNodeArena::new(3, 2);
    assert_eq!((arena.processors(), arena.slots()), (3, 2));
    let lock = RawQueuedSpinLock::new();
    let (a, b, c) = (arena.node(0, 0), arena.node(1, 0), arena.node(2, 1));
    // SAFETY: arena nodes stay in place; one acquisition per node; all
    // released before the arena is dropped.
    unsafe {
        assert!(lock.begin_acquire(a));
        assert!(a.is_owner() && lock.is_tail(a));
        assert!(!lock.begin_acquire(b));
        assert!(!lock.begin_acquire(c));
        assert!(b.is_waiting() && c.is_waiting());
        assert_eq!(arena.queued(), vec![(0, 0), (1, 0), (2, 1)]);
        assert!(!lock.poll_acquire(b));
        assert!(!lock.try_acquire(arena.node(0, 1)), "queue not empty");
        assert!(!arena.node(0, 1).is_queued());
        assert!(lock.begin_release(a));
        assert!(!a.is_queued());
        assert!(!lock.poll_acquire(c), "FIFO: b is next");
        assert!(lock.poll_acquire(b));
        assert!(lock.begin_release(b));
        assert!(lock.poll_acquire(c));
        assert!(lock.begin_release(c));
        assert!(!lock.is_locked());
        // Reused, the nodes work again (their `next` was reset).
        assert!(lock.try_acquire(b));
        assert!(lock.begin_release(b));
    }
    assert!(arena.queued().is_empty());
}

#[test]
fn queued_halt_reset() {
    let mut arena = QueueNodeArena::new(2, 1);
    let mut lock = RawQueuedSpinLock::new();
    // SAFETY: as above; the run is then abandoned with both resets.
    unsafe {
        assert!(lock.begin_acquire(arena.node(0, 0)));
        assert!(!lock.begin_acquire(arena.node(1, 0)));
    }
    assert_eq!(arena.queued().len(), 2);
    lock.reset();
    arena.reset();
    assert!(!lock.is_locked());
    assert!(arena.queued().is_empty());
    // SAFETY: as above.
    unsafe {
        assert!(lock.begin_acquire(arena.node(1, 0)));
        assert!(lock.begin_release(arena.node(1, 0)));
    }
}

#[test]
#[should_panic(expected = "already queued")]
fn queued_node_in_use_panics() {
    let arena = QueueNodeArena::new(1, 1);
    let lock = RawQueuedSpinLock::new();
    let other = RawQueuedSpinLock::new();
    let n = arena.node(0, 0);
    // SAFETY: as above; the second acquire panics before touching `other`.
    unsafe {
        assert!(lock.begin_acquire(n));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| other.begin_acquire(n)));
        assert!(lock.begin_release(n));
        std::panic::resume_unwind(r.unwrap_err());
    }
}

/// A counter guarded by a raw lock (no data in the lock itself).
struct Counter(UnsafeCell<u64>);
// SAFETY: only incremented while the test's raw lock is held.
unsafe impl Sync for Counter {}

const ITERS: u64 = 20_000;

#[test]
fn threaded_mutual_exclusion() {
    let ordinary = RawSpinLock::new();
    let ex = RawExSpinLock::new();
    let queued = RawQueuedSpinLock::new();
    let arena = QueueNodeArena::new(2, 1);
    let counters = [
        Counter(UnsafeCell::new(0)),
        Counter(UnsafeCell::new(0)),
        Counter(UnsafeCell::new(0)),
    ];
    let go = AtomicBool::new(false);
    std::thread::scope(|s| {
        for p in 0..2u32 {
            let (ordinary, ex, queued, arena, counters, go) =
                (&ordinary, &ex, &queued, &arena, &counters, &go);
            s.spawn(move || {
                while !go.load(Ordering::Acquire) {
                    std::hint::spin_loop();
                }
                for _ in 0..ITERS {
                    while ordinary.try_acquire(p).is_err() {
                        std::hint::spin_loop();
                    }
                    // SAFETY: `ordinary` is held.
                    unsafe { *counters[0].0.get() += 1 };
                    ordinary.release(p).unwrap();

                    if let Err(mut w) = ex.begin_acquire_exclusive(p) {
                        while !ex.poll_acquire_exclusive(p, &mut w) {
                            std::hint::spin_loop();
                        }
                    }
                    assert_eq!(ex.exclusive_owner(), Some(p));
                    // SAFETY: `ex` is held exclusive.
                    unsafe { *counters[1].0.get() += 1 };
                    ex.release_exclusive(p).unwrap();

                    let node = arena.node(p, 0);
                    // SAFETY: the arena outlives the threads; node (p, 0) is
                    // used only by this thread, one acquisition at a time.
                    unsafe {
                        if !queued.begin_acquire(node) {
                            while !queued.poll_acquire(node) {
                                std::hint::spin_loop();
                            }
                        }
                        *counters[2].0.get() += 1;
                        if !queued.begin_release(node) {
                            while !queued.poll_release(node) {
                                std::hint::spin_loop();
                            }
                        }
                    }
                }
            });
        }
        go.store(true, Ordering::Release);
    });
    for c in &counters {
        // SAFETY: the threads have been joined.
        assert_eq!(unsafe { *c.0.get() }, 2 * ITERS);
    }
}
