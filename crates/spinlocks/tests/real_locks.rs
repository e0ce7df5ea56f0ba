//! Threaded and property tests of the real locks (`spinlocks::real`).
//!
//! Not built under `--cfg loom` (loom atomics only work inside a loom model).
#![cfg(not(loom))]

use core::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Barrier;
use std::thread;

use proptest::prelude::*;
use spinlocks::{
    ExExclusiveGuard, ExSharedGuard, ExSpinLock, InterruptSpinLock, KSpinLock, LockQueueHandle,
    QueuedSpinLock,
};

const THREADS: usize = 4;
const ITERS: usize = 5_000;

/// A non-atomic read-modify-write with a yield in the middle: lost updates
/// show up at once if two threads are ever inside together.
fn racy_increment(counter: &mut (u64, u64)) {
    let v = counter.0;
    std::hint::spin_loop();
    counter.0 = v + 1;
    counter.1 += 1;
}

fn hammer(f: impl Fn() + Sync) {
    let barrier = Barrier::new(THREADS);
    thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                barrier.wait();
                for _ in 0..ITERS {
                    f();
                }
            });
        }
    });
}

const EXPECTED: u64 = (THREADS * ITERS) as u64;

// ------------------------------------------------------------------ KSpinLock

#[test]
fn kspin_counts_exactly() {
    let lock = KSpinLock::new((0, 0));
    hammer(|| racy_increment(&mut lock.lock()));
    assert_eq!(lock.into_inner(), (EXPECTED, EXPECTED));
}

#[test]
fn kspin_try_lock_and_test() {
    let lock = KSpinLock::new(5);
    assert!(!lock.is_locked());
    assert!(!lock.is_held_by_current_thread());
    let g = lock.try_lock().expect("free lock");
    assert!(lock.is_locked());
    assert!(lock.is_held_by_current_thread());
    // KeTryToAcquireSpinLockAtDpcLevel on a held lock fails, even for the owner.
    assert!(lock.try_lock().is_none());
    thread::scope(|s| {
        s.spawn(|| {
            assert!(lock.is_locked());
            assert!(!lock.is_held_by_current_thread());
            assert!(lock.try_lock().is_none());
        });
    });
    drop(g);
    assert!(!lock.is_locked());
    assert_eq!(format!("{lock:?}"), "KSpinLock { data: 5, .. }");
}

#[test]
#[should_panic(expected = "SPIN_LOCK_ALREADY_OWNED")]
fn kspin_reacquire_by_owner_panics() {
    let lock = KSpinLock::new(());
    let _g = lock.lock();
    let _again = lock.lock();
}

#[test]
fn kspin_reacquire_panic_releases_and_lock_stays_usable() {
    let lock = KSpinLock::new(1);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _g = lock.lock();
        let _again = lock.lock();
    }));
    let msg = *r.unwrap_err().downcast::<String>().unwrap();
    assert!(msg.contains("SPIN_LOCK_ALREADY_OWNED"), "{msg}");
    // The first guard was dropped during unwinding.
    assert!(!lock.is_locked());
    *lock.lock() += 1;
    assert_eq!(*lock.lock(), 2);
}

#[test]
fn kspin_leaked_guard_keeps_lock_held() {
    let lock = KSpinLock::new(0);
    std::mem::forget(lock.lock());
    assert!(lock.is_locked());
    thread::scope(|s| {
        s.spawn(|| assert!(lock.try_lock().is_none()));
    });
}

#[test]
fn kspin_unsized_and_static() {
    static COUNTER: KSpinLock<u32> = KSpinLock::new(0);
    *COUNTER.lock() += 1;
    assert_eq!(*COUNTER.lock(), 1);

    let boxed: Box<KSpinLock<[u8]>> = Box::new(KSpinLock::new([1, 2, 3]));
    boxed.lock()[1] = 9;
    assert_eq!(&*boxed.lock(), &[1, 9, 3]);
}

// ------------------------------------------------------------ QueuedSpinLock

/// At most one spinning thread per core: with strict FIFO handoff, a waiter
/// that the OS deschedules stalls everyone queued behind it (the reason
/// Windows waits at DISPATCH_LEVEL, where no thread switch happens). So the
/// long run uses as many threads as cores, and a short run oversubscribes.
#[test]
fn queued_counts_exactly() {
    let cores = thread::available_parallelism().map_or(2, |n| n.get());
    for (threads, iters) in [(cores.clamp(2, THREADS), ITERS), (THREADS + 2, 200)] {
        let lock = QueuedSpinLock::new((0u64, 0u64));
        let barrier = Barrier::new(threads);
        thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    let mut h = pin!(LockQueueHandle::new());
                    barrier.wait();
                    for _ in 0..iters {
                        racy_increment(&mut lock.lock(h.as_mut()));
                    }
                });
            }
        });
        let want = (threads * iters) as u64;
        assert_eq!(lock.into_inner(), (want, want));
    }
}

#[test]
fn queued_handle_reused_across_locks() {
    let a = QueuedSpinLock::new(0);
    let b = QueuedSpinLock::new(0);
    let mut h = pin!(LockQueueHandle::new());
    for i in 0..10 {
        let lock = if i % 2 == 0 { &a } else { &b };
        *lock.lock(h.as_mut()) += 1;
        assert!(!h.is_queued());
    }
    assert_eq!((a.into_inner(), b.into_inner()), (5, 5));
}

#[test]
fn queued_try_lock() {
    let lock = QueuedSpinLock::new(1);
    let mut h1 = pin!(LockQueueHandle::new());
    let mut h2 = pin!(LockQueueHandle::new());
    let g = lock.try_lock(h1.as_mut()).expect("free lock");
    assert!(lock.is_locked());
    assert!(!g.has_waiters());
    assert!(lock.try_lock(h2.as_mut()).is_none());
    // A failed try leaves the handle idle.
    assert!(!h2.is_queued());
    drop(g);
    assert!(!lock.is_locked());
    assert_eq!(format!("{lock:?}"), "QueuedSpinLock { data: 1, .. }");
}

/// Waiters are served in the order they joined the queue: with the lock
/// held, waiter i is started only once waiter i-1 is linked in.
#[test]
fn queued_is_fifo() {
    const WAITERS: usize = 5;
    let lock = QueuedSpinLock::new(Vec::new());
    let mut h = pin!(LockQueueHandle::new());
    thread::scope(|s| {
        let g = lock.lock(h.as_mut());
        for i in 0..WAITERS {
            let lock = &lock;
            s.spawn(move || {
                let h = pin!(LockQueueHandle::new());
                lock.lock(h).push(i);
            });
            while g.linked_waiters() != i + 1 {
                std::hint::spin_loop();
            }
        }
        assert!(g.has_waiters());
        drop(g);
    });
    assert_eq!(lock.into_inner(), (0..WAITERS).collect::<Vec<_>>());
}

/// Handoff is strict: if anyone was queued when the owner released, the
/// next owner is that waiter, never the releasing thread coming back
/// (which an unfair lock allows). Two threads; each records, under the
/// lock, its id and whether someone was waiting when it let go.
#[test]
fn queued_hands_over_to_the_waiter() {
    let lock = QueuedSpinLock::new(Vec::new());
    let barrier = Barrier::new(2);
    thread::scope(|s| {
        for id in 0..2 {
            let (lock, barrier) = (&lock, &barrier);
            s.spawn(move || {
                let mut h = pin!(LockQueueHandle::new());
                barrier.wait();
                for _ in 0..2_000 {
                    let mut g = lock.lock(h.as_mut());
                    // Give the other thread a moment to queue up.
                    for _ in 0..50 {
                        std::hint::spin_loop();
                    }
                    let waiting = g.has_waiters();
                    g.push((id, waiting));
                    // Nothing can leave the queue before this release, so
                    // `waiting` is still true (or became true) now.
                }
            });
        }
    });
    let log = lock.into_inner();
    let mut handoffs = 0;
    for w in log.windows(2) {
        let ((a, waiting), (b, _)) = (w[0], w[1]);
        if waiting {
            assert_ne!(a, b, "owner {a} came back ahead of a queued waiter");
            handoffs += 1;
        }
    }
    // Not a correctness requirement, just evidence that the test contended.
    eprintln!(
        "{handoffs} handoffs to a queued waiter out of {}",
        log.len()
    );
}

#[test]
fn queued_handle_of_leaked_guard_cannot_be_reused() {
    let lock = QueuedSpinLock::new(0);
    let other = QueuedSpinLock::new(0);
    let mut h = Box::pin(LockQueueHandle::new());
    std::mem::forget(lock.lock(h.as_mut()));
    assert!(h.is_queued());
    assert!(lock.is_locked());
    // Reusing the still-queued node would corrupt `lock`'s queue: refused.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        drop(other.lock(h.as_mut()));
    }));
    let msg = *r.unwrap_err().downcast::<&str>().unwrap();
    assert!(msg.contains("still queued"), "{msg}");
    assert!(!other.is_locked());
    // Dropping `h` would abort (its node still owns `lock`): leak it.
    std::mem::forget(h);
}

#[test]
fn queued_leaked_guard_keeps_lock_held() {
    let lock = QueuedSpinLock::new(0);
    let mut h = Box::pin(LockQueueHandle::new());
    std::mem::forget(lock.lock(h.as_mut()));
    assert!(lock.is_locked());
    let mut h2 = pin!(LockQueueHandle::new());
    assert!(lock.try_lock(h2.as_mut()).is_none());
    // Dropping `h` now would abort the process (its node is still the queue's
    // owner); leaking it keeps the memory valid forever.
    std::mem::forget(h);
}

// --------------------------------------------------------------- ExSpinLock

#[test]
fn ex_writers_count_exactly() {
    let lock = ExSpinLock::new((0, 0));
    hammer(|| racy_increment(&mut lock.write()));
    assert_eq!(lock.into_inner(), (EXPECTED, EXPECTED));
}

#[test]
fn ex_mixed_readers_never_see_torn_state() {
    let lock = ExSpinLock::new((0u64, 0u64));
    let n = AtomicUsize::new(0);
    hammer(|| {
        let i = n.fetch_add(1, Ordering::Relaxed);
        if i % 10 == 9 {
            racy_increment(&mut lock.write());
        } else {
            let g = lock.read();
            assert_eq!(g.0, g.1, "reader saw a half-done write");
        }
    });
    let (a, b) = lock.into_inner();
    assert_eq!(a, b);
    assert_eq!(a, (THREADS * ITERS / 10) as u64);
}

#[test]
fn ex_readers_share() {
    let lock = ExSpinLock::new(7);
    let barrier = Barrier::new(3);
    thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                let g = lock.read();
                // All three hold it at once, or this barrier never opens.
                barrier.wait();
                assert_eq!(*g, 7);
                assert!(lock.shared_count() >= 1);
            });
        }
    });
    assert_eq!(lock.raw_word(), 0);
}

#[test]
fn ex_try_convert_semantics() {
    let lock = ExSpinLock::new(0);
    // Sole reader, no writer: succeeds.
    let w = ExSharedGuard::try_convert(lock.read()).expect("sole reader");
    assert!(lock.is_locked_exclusive());
    assert_eq!(lock.shared_count(), 0);
    assert!(lock.try_read().is_none());
    drop(w);
    assert_eq!(lock.raw_word(), 0);

    // Two readers: fails, and the caller keeps its shared hold.
    let a = lock.read();
    let b = lock.read();
    let b = ExSharedGuard::try_convert(b).unwrap_err();
    assert_eq!(lock.shared_count(), 2);
    drop(a);
    // Now b is alone: succeeds.
    let mut w = ExSharedGuard::try_convert(b).expect("now the only reader");
    *w += 1;
    drop(w);
    assert_eq!(*lock.read(), 1);

    // A writer waiting for us to drain: fails, we still hold shared, and the
    // writer gets in once we release.
    let r = lock.read();
    thread::scope(|s| {
        let writer = s.spawn(|| *lock.write() += 10);
        while !lock.is_locked_exclusive() {
            std::hint::spin_loop();
        }
        let r = ExSharedGuard::try_convert(r).unwrap_err();
        assert_eq!(*r, 1);
        assert_eq!(lock.shared_count(), 1);
        drop(r);
        writer.join().unwrap();
    });
    assert_eq!(*lock.read(), 11);
    assert_eq!(lock.raw_word(), 0);
}

#[test]
fn ex_downgrade() {
    let lock = ExSpinLock::new(1);
    let mut w = lock.write();
    *w = 2;
    let r = ExExclusiveGuard::downgrade(w);
    assert_eq!(*r, 2);
    assert!(!lock.is_locked_exclusive());
    assert_eq!(lock.shared_count(), 1);
    let r2 = lock.try_read().expect("readers welcome after a downgrade");
    assert!(lock.try_write().is_none());
    drop((r, r2));
    assert!(lock.try_write().is_some());
}

/// Writer preference with several waiting writers: while one writer holds
/// the lock and two more wait, no new reader may get in until both waiting
/// writers are through (a single "writer waiting" bit would be cleared by the
/// first of them to win).
#[test]
fn ex_two_waiting_writers_keep_readers_out() {
    for _ in 0..50 {
        let lock = ExSpinLock::new(0u32);
        let done = AtomicUsize::new(0);
        thread::scope(|s| {
            let g = lock.write();
            for _ in 0..2 {
                s.spawn(|| {
                    let mut g = lock.write();
                    *g += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                });
            }
            while lock.exclusive_waiters() != 2 {
                std::hint::spin_loop();
            }
            assert!(lock.is_exclusive_waiting());
            drop(g);
            loop {
                if let Some(r) = lock.try_read() {
                    assert_eq!(done.load(Ordering::Relaxed), 2, "reader overtook a writer");
                    assert_eq!(*r, 2);
                    break;
                }
                std::hint::spin_loop();
            }
        });
        assert_eq!(lock.raw_word(), 0);
    }
}

#[test]
fn ex_blocked_reader_waits_for_writer() {
    let lock = ExSpinLock::new(0);
    let reader_in = AtomicBool::new(false);
    thread::scope(|s| {
        let r = lock.read();
        let writer = s.spawn(|| *lock.write() = 1);
        while !lock.is_locked_exclusive() {
            std::hint::spin_loop();
        }
        // A new reader arrives while the writer waits for us: it must queue
        // behind the writer and see its value.
        let late_reader = s.spawn(|| {
            let v = *lock.read();
            reader_in.store(true, Ordering::Relaxed);
            v
        });
        for _ in 0..1_000 {
            std::hint::spin_loop();
        }
        assert!(!reader_in.load(Ordering::Relaxed));
        drop(r);
        writer.join().unwrap();
        assert_eq!(late_reader.join().unwrap(), 1);
    });
}

// --------------------------------------------------------- InterruptSpinLock

#[test]
fn interrupt_lock_synchronizes() {
    let lock = InterruptSpinLock::new(9, (0, 0));
    assert_eq!(lock.synchronize_irql(), 9);
    hammer(|| lock.synchronize(racy_increment));
    let total = lock.synchronize(|c| c.0);
    assert_eq!(total, EXPECTED);
    let g = lock.lock();
    assert_eq!(g.synchronize_irql(), 9);
    assert!(lock.is_held_by_current_thread());
    assert!(lock.try_lock().is_none());
}

#[test]
fn interrupt_lock_released_when_routine_panics() {
    let lock = InterruptSpinLock::new(5, 0);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        lock.synchronize(|_| panic!("ISR bug"));
    }));
    assert!(r.is_err());
    assert!(!lock.is_locked());
}

#[test]
#[should_panic(expected = "HIGH_LEVEL")]
fn interrupt_lock_rejects_irql_above_high_level() {
    let _ = InterruptSpinLock::new(16, ());
}

// ------------------------------------------------------------------ proptest

/// One step against an `ExSpinLock` from a single thread.
#[derive(Debug, Clone)]
enum ExOp {
    TryRead,
    TryWrite,
    DropShared(usize),
    DropExclusive,
    Convert(usize),
    Downgrade,
}

fn ex_op() -> impl Strategy<Value = ExOp> {
    prop_oneof![
        Just(ExOp::TryRead),
        Just(ExOp::TryWrite),
        any::<usize>().prop_map(ExOp::DropShared),
        Just(ExOp::DropExclusive),
        any::<usize>().prop_map(ExOp::Convert),
        Just(ExOp::Downgrade),
    ]
}

proptest! {
    /// Any single-threaded sequence of try-operations agrees with a simple
    /// model (n readers xor one writer), and the word always decodes to it.
    #[test]
    fn ex_try_ops_match_model(ops in proptest::collection::vec(ex_op(), 1..60)) {
        let lock = ExSpinLock::new(0u32);
        let mut shared: Vec<ExSharedGuard<'_, u32>> = Vec::new();
        let mut exclusive: Option<ExExclusiveGuard<'_, u32>> = None;
        for op in ops {
            match op {
                ExOp::TryRead => {
                    let g = lock.try_read();
                    prop_assert_eq!(g.is_some(), exclusive.is_none());
                    shared.extend(g);
                }
                ExOp::TryWrite => {
                    let g = lock.try_write();
                    prop_assert_eq!(g.is_some(), exclusive.is_none() && shared.is_empty());
                    if let Some(mut g) = g {
                        *g += 1;
                        exclusive = Some(g);
                    }
                }
                ExOp::DropShared(i) => {
                    if !shared.is_empty() {
                        let i = i % shared.len();
                        drop(shared.swap_remove(i));
                    }
                }
                ExOp::DropExclusive => exclusive = None,
                ExOp::Convert(i) => {
                    if !shared.is_empty() {
                        let i = i % shared.len();
                        let alone = shared.len() == 1;
                        let g = shared.swap_remove(i);
                        match ExSharedGuard::try_convert(g) {
                            Ok(w) => {
                                prop_assert!(alone);
                                exclusive = Some(w);
                            }
                            Err(g) => {
                                prop_assert!(!alone);
                                shared.push(g);
                            }
                        }
                    }
                }
                ExOp::Downgrade => {
                    if let Some(w) = exclusive.take() {
                        shared.push(ExExclusiveGuard::downgrade(w));
                    }
                }
            }
            prop_assert_eq!(lock.shared_count() as usize, shared.len());
            prop_assert_eq!(lock.is_locked_exclusive(), exclusive.is_some());
            prop_assert!(!lock.is_exclusive_waiting());
            prop_assert_eq!(lock.exclusive_waiters(), 0);
        }
        drop(shared);
        drop(exclusive);
        prop_assert_eq!(lock.raw_word(), 0);
    }

}

proptest! {
    // Each case spawns threads; a few dozen cases are plenty.
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Counters stay exact for any small mix of threads and iterations, for
    /// the three mutual-exclusion locks.
    #[test]
    fn mutex_locks_count_exactly(threads in 1usize..4, iters in 1usize..300) {
        let k = KSpinLock::new(0usize);
        let q = QueuedSpinLock::new(0usize);
        let i = InterruptSpinLock::new(3, 0usize);
        thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    let mut h = pin!(LockQueueHandle::new());
                    for _ in 0..iters {
                        *k.lock() += 1;
                        *q.lock(h.as_mut()) += 1;
                        i.synchronize(|v| *v += 1);
                    }
                });
            }
        });
        let want = threads * iters;
        prop_assert_eq!((k.into_inner(), q.into_inner(), i.into_inner()), (want, want, want));
    }
}

/// `Send`/`Sync` as documented.
#[test]
fn auto_traits() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<KSpinLock<Vec<u8>>>();
    send_sync::<QueuedSpinLock<Vec<u8>>>();
    send_sync::<ExSpinLock<Vec<u8>>>();
    send_sync::<InterruptSpinLock<Vec<u8>>>();
    send_sync::<LockQueueHandle>();
    // A Send-but-not-Sync payload is fine for the mutual-exclusion locks.
    send_sync::<KSpinLock<std::cell::Cell<u8>>>();
    send_sync::<QueuedSpinLock<std::cell::Cell<u8>>>();
}
