//! Threaded and property tests of the real locks (`spinlocks::real`).
//!
//! Not built under `--cfg loom` (loom atomics only work inside a loom model).
#![cfg(not(loom))]

use core::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Barrier;
use std::thread;

use proptest::prelude::*;
use spinlocks::{
    ExExclusiveGuard, ExSharedGuard, ExSpinLock, InterruptSpinLock, KSpinLock, LockQueueHandle,
    QueuedAcquire, QueuedSpinLock, QueuedSpinLockGuard, QueuedWaiter,
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

// ------------------------------------------------------- two-phase acquire
//
// These drive the locks ONLY through begin_* / poll (and, for the queued
// lock, begin_release / poll), never through lock/read/write.

/// `racy_increment` with a longer critical section, so that the two-phase
/// tests' waiters really wait: a thread that runs alone for a whole time
/// slice (2 cores shared with other work) would otherwise often finish all
/// its iterations before the others start.
fn slow_racy_increment(counter: &mut (u64, u64)) {
    for _ in 0..16 {
        std::hint::spin_loop();
    }
    racy_increment(counter);
}

/// Polls `poll` until it yields, pausing in between; returns the value and
/// how many unsuccessful polls it took.
fn poll_until<G>(mut poll: impl FnMut() -> Option<G>) -> (G, u64) {
    let mut polls = 0;
    loop {
        if let Some(g) = poll() {
            return (g, polls);
        }
        polls += 1;
        std::hint::spin_loop();
    }
}

/// Two threads, then `THREADS`: every acquire is begin + a poll loop, and
/// each thread counts its unsuccessful polls. Counts stay exact. The main
/// thread holds the lock until every thread has begun and polled once in
/// vain, so waiting is certain, not left to the OS scheduler.
#[test]
fn kspin_two_phase_mutual_exclusion() {
    for threads in [2, THREADS] {
        let lock = KSpinLock::new((0u64, 0u64));
        let polls = AtomicUsize::new(0);
        let queued = AtomicUsize::new(0);
        thread::scope(|s| {
            let held = lock.lock();
            for _ in 0..threads {
                s.spawn(|| {
                    let mut mine = 0;
                    for i in 0..ITERS {
                        let mut guard = match lock.begin_acquire() {
                            Ok(guard) => {
                                assert_ne!(i, 0, "the main thread holds it");
                                guard
                            }
                            Err(mut waiter) => {
                                if i == 0 {
                                    assert!(waiter.poll().is_none());
                                    mine += 1;
                                    queued.fetch_add(1, Ordering::Release);
                                }
                                let (guard, n) = poll_until(|| waiter.poll());
                                mine += n;
                                guard
                            }
                        };
                        assert!(lock.is_held_by_current_thread());
                        slow_racy_increment(&mut guard);
                    }
                    polls.fetch_add(mine as usize, Ordering::Relaxed);
                });
            }
            while queued.load(Ordering::Acquire) != threads {
                std::hint::spin_loop();
            }
            drop(held);
        });
        let want = (threads * ITERS) as u64;
        assert_eq!(lock.into_inner(), (want, want));
        let polls = polls.into_inner();
        eprintln!("KSpinLock, {threads} threads: {polls} unsuccessful polls");
        assert!(polls >= threads);
    }
}

#[test]
fn kspin_waiter_gives_up_on_drop_and_rechecks_ownership() {
    let lock = KSpinLock::new(0);
    thread::scope(|s| {
        let g = lock.lock();
        s.spawn(|| {
            let mut waiter = lock.begin_acquire().unwrap_err();
            assert!(waiter.poll().is_none());
            assert!(waiter.poll().is_none());
            drop(waiter); // nothing registered: nothing to undo
        })
        .join()
        .unwrap();
        drop(g);
    });
    assert!(!lock.is_locked());
    // A waiter whose thread meanwhile took the lock by other means would spin
    // on itself: its next poll panics like a recursive `lock`.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let r = thread::scope(|s| {
        let lock_ref = &lock;
        let other = s.spawn(move || {
            let g = lock_ref.lock();
            rx.recv().unwrap();
            drop(g);
        });
        while !lock.is_locked() {
            std::hint::spin_loop();
        }
        let mut waiter = lock.begin_acquire().unwrap_err();
        tx.send(()).unwrap();
        other.join().unwrap();
        let _mine = lock.lock();
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| waiter.poll().is_some()))
    });
    let msg = *r.unwrap_err().downcast::<String>().unwrap();
    assert!(msg.contains("SPIN_LOCK_ALREADY_OWNED"), "{msg}");
    assert!(!lock.is_locked());
}

#[test]
#[should_panic(expected = "SPIN_LOCK_ALREADY_OWNED")]
fn kspin_begin_acquire_by_owner_panics() {
    let lock = KSpinLock::new(());
    let _g = lock.lock();
    let _ = lock.begin_acquire();
}

#[test]
fn kspin_waiter_polled_after_acquiring_panics() {
    let lock = KSpinLock::new(0);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    thread::scope(|s| {
        let lock_ref = &lock;
        let holder = s.spawn(move || {
            let g = lock_ref.lock();
            rx.recv().unwrap();
            drop(g);
        });
        while !lock.is_locked() {
            std::hint::spin_loop();
        }
        let mut waiter = lock.begin_acquire().unwrap_err();
        tx.send(()).unwrap();
        holder.join().unwrap();
        drop(waiter.poll().expect("free now"));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| waiter.poll().is_some()));
        let msg = *r.unwrap_err().downcast::<&str>().unwrap();
        assert!(msg.contains("polled after it acquired"), "{msg}");
    });
    assert!(!lock.is_locked());
}

#[test]
fn interrupt_two_phase_mutual_exclusion() {
    let lock = InterruptSpinLock::new(6, (0u64, 0u64));
    hammer(|| {
        let mut guard = match lock.begin_acquire() {
            Ok(guard) => guard,
            Err(mut waiter) => {
                assert_eq!(waiter.synchronize_irql(), 6);
                poll_until(|| waiter.poll()).0
            }
        };
        assert_eq!(guard.synchronize_irql(), 6);
        racy_increment(&mut guard);
    });
    assert_eq!(lock.into_inner(), (EXPECTED, EXPECTED));
}

/// Acquire and release through the two-phase calls only (each thread
/// reusing its handle), counting unsuccessful polls. As for `KSpinLock`, the
/// main thread holds the lock until every thread has queued and polled.
#[test]
fn queued_two_phase_mutual_exclusion() {
    let cores = thread::available_parallelism().map_or(2, |n| n.get());
    for threads in [2, cores.clamp(2, THREADS)] {
        let lock = QueuedSpinLock::new((0u64, 0u64));
        let (acquire_polls, release_polls) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let queued = AtomicUsize::new(0);
        let mut main_handle = pin!(LockQueueHandle::new());
        thread::scope(|s| {
            let held = lock.lock(main_handle.as_mut());
            for _ in 0..threads {
                s.spawn(|| {
                    let mut h = pin!(LockQueueHandle::new());
                    let (mut acq, mut rel) = (0, 0);
                    for i in 0..ITERS {
                        let mut guard = match lock.begin_acquire(h.as_mut()) {
                            QueuedAcquire::Acquired(guard) => {
                                assert_ne!(i, 0, "the main thread holds it");
                                guard
                            }
                            QueuedAcquire::Waiting(mut waiter) => {
                                if i == 0 {
                                    assert!(waiter.poll().is_none()); // links
                                    assert!(waiter.poll().is_none());
                                    acq += 2;
                                    queued.fetch_add(1, Ordering::Release);
                                }
                                let (guard, n) = poll_until(|| waiter.poll());
                                acq += n;
                                guard
                            }
                        };
                        slow_racy_increment(&mut guard);
                        if let Err(mut releaser) = QueuedSpinLockGuard::begin_release(guard) {
                            rel += poll_until(|| releaser.poll().then_some(())).1 + 1;
                        }
                        assert!(!h.is_queued());
                    }
                    acquire_polls.fetch_add(acq as usize, Ordering::Relaxed);
                    release_polls.fetch_add(rel as usize, Ordering::Relaxed);
                });
            }
            while queued.load(Ordering::Acquire) != threads {
                std::hint::spin_loop();
            }
            drop(held);
        });
        let want = (threads * ITERS) as u64;
        assert!(!lock.is_locked());
        assert_eq!(lock.into_inner(), (want, want));
        let (acq, rel) = (acquire_polls.into_inner(), release_polls.into_inner());
        eprintln!("QueuedSpinLock, {threads} threads: {acq} acquire polls, {rel} release polls");
        assert!(acq >= 2 * threads);
    }
}

/// Deterministic, one thread playing three processors: FIFO order is the
/// order of the tail swaps, whatever order the waiters poll (and link) in,
/// and the first poll is the link (for the queue's first waiter, publishing
/// itself as the head).
#[test]
fn queued_two_phase_fifo_by_hand() {
    let lock = QueuedSpinLock::new(Vec::new());
    let mut ha = pin!(LockQueueHandle::new());
    let mut hb = pin!(LockQueueHandle::new());
    let mut hc = pin!(LockQueueHandle::new());
    {
        let QueuedAcquire::Acquired(mut a) = lock.begin_acquire(ha.as_mut()) else {
            panic!("empty queue")
        };
        let QueuedAcquire::Waiting(mut b) = lock.begin_acquire(hb.as_mut()) else {
            panic!("held")
        };
        let QueuedAcquire::Waiting(mut c) = lock.begin_acquire(hc.as_mut()) else {
            panic!("held")
        };
        assert!(a.has_waiters());
        assert_eq!(a.linked_waiters(), 0, "swapped, not linked");
        assert!(!b.is_linked() && !c.is_linked());
        // C links first (behind B, which is not linked behind A yet).
        assert!(c.poll().is_none());
        assert!(c.is_linked());
        assert_eq!(a.linked_waiters(), 0);
        assert!(b.poll().is_none());
        assert_eq!(a.linked_waiters(), 2);
        // Waiting polls: nothing until handed over.
        for _ in 0..3 {
            assert!(b.poll().is_none());
            assert!(c.poll().is_none());
        }
        a.push('a');
        // Both linked: the release hands straight to B, not C.
        assert!(QueuedSpinLockGuard::begin_release(a).is_ok());
        assert!(c.poll().is_none(), "C overtook B");
        let mut b = b.poll().expect("B is next");
        b.push('b');
        assert_eq!(b.linked_waiters(), 1);
        assert!(QueuedSpinLockGuard::begin_release(b).is_ok());
        let mut c = c.poll().expect("C is next");
        c.push('c');
        assert!(!c.has_waiters());
        assert!(QueuedSpinLockGuard::begin_release(c).is_ok());
        assert!(!lock.is_locked());
    }
    assert!(!ha.is_queued() && !hb.is_queued() && !hc.is_queued());
    assert_eq!(lock.with_lock(|v| v.clone()), ['a', 'b', 'c']);
}

/// Deterministic. Under the MCS protocol this was "a release that finds its
/// successor swapped into the tail but not linked cannot complete". With
/// the separate `locked` flag the release is one store and never waits;
/// the wait for an unlinked successor moved to the queue's head, which has
/// taken the lock and must make that successor the head before it returns
/// its guard: it holds the lock meanwhile, one poll at a time.
#[test]
fn queued_head_waits_for_linking_successor() {
    let lock = QueuedSpinLock::new(0);
    let mut ha = pin!(LockQueueHandle::new());
    let mut hb = pin!(LockQueueHandle::new());
    let mut hc = pin!(LockQueueHandle::new());
    {
        let a = lock.begin_acquire(ha.as_mut()).into_result().expect("free");
        let mut b = lock.begin_acquire(hb.as_mut()).into_result().unwrap_err();
        let mut c = lock.begin_acquire(hc.as_mut()).into_result().unwrap_err();
        assert!(a.has_waiters() && a.linked_waiters() == 0);
        // A fast-path owner is in no queue: its release completes at once,
        // though B has not even linked (published itself as head).
        assert!(QueuedSpinLockGuard::begin_release(a).is_ok());
        assert!(lock.is_locked(), "B and C are still queued");
        assert!(b.poll().is_none()); // publishes B as the head
        assert!(b.is_linked() && !b.holds_lock());
        // B takes the lock; C has swapped in behind it but not linked.
        assert!(b.poll().is_none());
        assert!(b.holds_lock());
        for _ in 0..3 {
            assert!(b.poll().is_none(), "left the queue before C linked");
            assert!(b.holds_lock());
        }
        // Nobody else gets in meanwhile.
        assert!(lock.try_lock(ha.as_mut()).is_none());
        assert!(c.poll().is_none()); // the link
        assert!(c.is_linked());
        assert!(c.poll().is_none(), "B has not made C the head yet");
        let mut b = b.poll().expect("link seen: B makes C the head");
        *b += 1;
        assert_eq!(b.linked_waiters(), 1, "C, now the head");
        assert!(c.poll().is_none(), "B holds the lock");
        drop(b);
        let mut c = c.poll().expect("head, lock free");
        *c += 1;
        assert!(!c.has_waiters());
        assert!(QueuedSpinLockGuard::begin_release(c).is_ok());
        assert!(!lock.is_locked());
    }
    assert!(!ha.is_queued() && !hb.is_queued() && !hc.is_queued());

    // The blocking path: a head waiting in `wait` for its successor's link,
    // which arrives from another thread.
    let a = lock.begin_acquire(ha.as_mut()).into_result().expect("free");
    let b = lock.begin_acquire(hb.as_mut()).into_result().unwrap_err();
    let queued = AtomicBool::new(false);
    thread::scope(|s| {
        let (lock, queued_ref) = (&lock, &queued);
        let t = s.spawn(move || {
            let mut h = pin!(LockQueueHandle::new());
            let mut waiter = lock.begin_acquire(h.as_mut()).into_result().unwrap_err();
            queued_ref.store(true, Ordering::Release);
            thread::sleep(std::time::Duration::from_millis(10));
            *poll_until(|| waiter.poll()).0 += 1;
        });
        while !queued.load(Ordering::Acquire) {
            std::hint::spin_loop();
        }
        drop(a);
        *b.wait() += 1; // takes the lock, then spins for the link
        t.join().unwrap();
    });
    assert!(!lock.is_locked());
    assert!(!ha.is_queued() && !hb.is_queued());
    assert_eq!(lock.into_inner(), 4);
}

/// Dropping a pending waiter (linked or not) waits for the lock, releases
/// it at once, and passes it on to the next waiter; its handle ends idle.
#[test]
fn queued_dropped_waiter_waits_then_passes_the_lock_on() {
    for link_first in [false, true] {
        let lock = QueuedSpinLock::new(Vec::new());
        let mut ha = pin!(LockQueueHandle::new());
        let mut hc = pin!(LockQueueHandle::new());
        let queued = AtomicBool::new(false);
        let dropped = AtomicBool::new(false);
        let mut a = lock.lock(ha.as_mut());
        thread::scope(|s| {
            s.spawn(|| {
                let mut h = pin!(LockQueueHandle::new());
                let QueuedAcquire::Waiting(mut b) = lock.begin_acquire(h.as_mut()) else {
                    panic!("A holds it")
                };
                if link_first {
                    assert!(b.poll().is_none());
                }
                queued.store(true, Ordering::Release);
                drop(b); // spins until A hands over, then releases to C
                assert!(!h.is_queued());
                dropped.store(true, Ordering::Release);
            });
            while !queued.load(Ordering::Acquire) {
                std::hint::spin_loop();
            }
            // C queues behind B.
            let QueuedAcquire::Waiting(mut c) = lock.begin_acquire(hc.as_mut()) else {
                panic!("A holds it")
            };
            thread::sleep(std::time::Duration::from_millis(5));
            assert!(!dropped.load(Ordering::Acquire), "the drop did not wait");
            a.push('a');
            drop(a);
            let mut c = poll_until(|| c.poll()).0;
            c.push('c');
        });
        assert!(dropped.load(Ordering::Acquire));
        assert!(!lock.is_locked());
        assert_eq!(lock.into_inner(), ['a', 'c']);
    }
}

/// Leaking a waiter (the only way to abandon one without waiting) leaves its
/// handle queued, so the handle must be leaked too (dropping it would abort).
#[test]
fn queued_leaked_waiter_leaves_handle_queued() {
    let lock = QueuedSpinLock::new(0);
    let mut ha = pin!(LockQueueHandle::new());
    let mut hb = Box::pin(LockQueueHandle::new());
    let a = lock.lock(ha.as_mut());
    let QueuedAcquire::Waiting(mut b) = lock.begin_acquire(hb.as_mut()) else {
        panic!("held")
    };
    assert!(b.poll().is_none()); // linked, so A's release can hand over
    std::mem::forget(b);
    drop(a); // hands the lock to B's (leaked) node
    assert!(!ha.is_queued());
    assert!(hb.is_queued());
    assert!(lock.is_locked());
    assert!(lock.try_lock(ha.as_mut()).is_none());
    std::mem::forget(hb);
}

/// Readers and writers, all through begin/poll: no torn reads, exact count.
#[test]
fn ex_two_phase_mixed() {
    let lock = ExSpinLock::new((0u64, 0u64));
    let n = AtomicUsize::new(0);
    hammer(|| {
        let i = n.fetch_add(1, Ordering::Relaxed);
        if i % 4 == 3 {
            let mut g = match lock.begin_write() {
                Ok(g) => g,
                Err(mut w) => poll_until(|| w.poll()).0,
            };
            racy_increment(&mut g);
        } else {
            let g = match lock.begin_read() {
                Ok(g) => g,
                Err(mut r) => poll_until(|| r.poll()).0,
            };
            assert_eq!(g.0, g.1, "reader saw a half-done write");
        }
    });
    assert_eq!(lock.raw_word(), 0);
    let (a, b) = lock.into_inner();
    assert_eq!(
        (a, b),
        ((THREADS * ITERS / 4) as u64, (THREADS * ITERS / 4) as u64)
    );
}

/// Deterministic: a write waiter keeps a new reader out (begin_read and its
/// polls) until the writer has had the lock and released it, both when the
/// waiter drains readers (bit 31) and when it waits behind another writer
/// (bit 30).
#[test]
fn ex_write_waiter_blocks_new_readers_until_done() {
    let lock = ExSpinLock::new(0);

    // Draining: bit 31 claimed, one old reader still in.
    let old = lock.read();
    let mut w = lock.begin_write().unwrap_err();
    assert!(w.is_draining());
    assert!(lock.is_locked_exclusive());
    let mut r = lock.begin_read().unwrap_err();
    for _ in 0..3 {
        assert!(r.poll().is_none());
        assert!(w.poll().is_none());
    }
    drop(old);
    assert!(r.poll().is_none(), "reader overtook the draining writer");
    let mut g = w.poll().expect("readers drained");
    *g += 1;
    assert!(r.poll().is_none(), "reader got in under a writer");
    drop(g);
    assert_eq!(*r.poll().expect("writer done"), 1);
    assert_eq!(lock.raw_word(), 0);

    // Registered: another writer holds bit 31; the waiter holds bit 30.
    let first = lock.write();
    let mut w = lock.begin_write().unwrap_err();
    assert!(!w.is_draining());
    assert_eq!(lock.exclusive_waiters(), 1);
    assert!(w.poll().is_none());
    drop(first);
    let mut r = lock.begin_read().unwrap_err();
    assert!(r.poll().is_none(), "reader overtook the registered writer");
    assert!(lock.try_read().is_none());
    let mut g = w.poll().expect("bit 31 free, no readers");
    assert_eq!(lock.exclusive_waiters(), 0);
    assert!(!lock.is_exclusive_waiting());
    *g += 1;
    assert!(r.poll().is_none());
    drop(g);
    assert_eq!(*r.poll().expect("writer done"), 2);
    assert_eq!(lock.raw_word(), 0);
}

/// Dropping a write waiter withdraws its claim, and readers get in.
#[test]
fn ex_dropped_write_waiter_withdraws() {
    let lock = ExSpinLock::new(0);

    // Registered behind a writer: leaves the count and bit 30.
    let holder = lock.write();
    let w = lock.begin_write().unwrap_err();
    assert!(lock.is_exclusive_waiting());
    drop(w);
    assert!(!lock.is_exclusive_waiting());
    assert_eq!(lock.exclusive_waiters(), 0);
    drop(holder);
    assert_eq!(lock.raw_word(), 0);
    assert!(
        lock.begin_read().is_ok(),
        "reader kept out by a withdrawn writer"
    );
    assert_eq!(lock.raw_word(), 0);

    // Draining readers with bit 31: clears it.
    let old = lock.read();
    let mut w = lock.begin_write().unwrap_err();
    assert!(w.poll().is_none());
    assert!(lock.try_read().is_none());
    drop(w);
    assert!(!lock.is_locked_exclusive());
    let r2 = lock.begin_read().expect("readers welcome again");
    drop((old, r2));
    assert_eq!(lock.raw_word(), 0);

    // Two registered waiters: withdrawing one keeps the other's bit 30.
    let holder = lock.write();
    let w1 = lock.begin_write().unwrap_err();
    let mut w2 = lock.begin_write().unwrap_err();
    assert_eq!(lock.exclusive_waiters(), 2);
    drop(w1);
    assert_eq!(lock.exclusive_waiters(), 1);
    assert!(lock.is_exclusive_waiting());
    drop(holder);
    assert!(lock.try_read().is_none(), "w2's claim was lost");
    let g = w2.poll().expect("free");
    drop(g);
    assert_eq!(lock.raw_word(), 0);

    // A read waiter holds nothing: dropping it changes nothing.
    let holder = lock.write();
    let r = lock.begin_read().unwrap_err();
    let word = lock.raw_word();
    drop(r);
    assert_eq!(lock.raw_word(), word);
    drop(holder);
    assert_eq!(lock.raw_word(), 0);
}

/// The threaded version: a write waiter on another thread blocks a new
/// reader's polls until it has been through; dropping a waiter on another
/// thread lets the reader in.
#[test]
fn ex_write_waiter_threaded() {
    for drop_waiter in [false, true] {
        let lock = ExSpinLock::new(0);
        let claimed = AtomicBool::new(false);
        let writer_done = AtomicBool::new(false);
        let go = Barrier::new(2);
        thread::scope(|s| {
            let old = lock.read();
            s.spawn(|| {
                let mut w = lock.begin_write().unwrap_err();
                claimed.store(true, Ordering::Release);
                go.wait();
                // `writer_done` is set before the waiter or the guard goes:
                // the reader can only get in after that.
                if drop_waiter {
                    writer_done.store(true, Ordering::Release);
                    drop(w);
                } else {
                    let (mut g, _) = poll_until(|| w.poll());
                    *g += 1;
                    writer_done.store(true, Ordering::Release);
                    drop(g);
                }
            });
            while !claimed.load(Ordering::Acquire) {
                std::hint::spin_loop();
            }
            let mut r = lock.begin_read().unwrap_err();
            for _ in 0..100 {
                assert!(r.poll().is_none());
            }
            drop(old);
            go.wait();
            let (g, _) = poll_until(|| r.poll());
            assert!(
                writer_done.load(Ordering::Acquire),
                "reader overtook the writer"
            );
            assert_eq!(*g, if drop_waiter { 0 } else { 1 });
        });
        assert_eq!(lock.raw_word(), 0);
    }
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

/// One acquirer of the single-threaded `QueuedSpinLock` schedule below.
enum QProc<'a> {
    Idle,
    Waiting(QueuedWaiter<'a, Vec<usize>>),
    Holding(QueuedSpinLockGuard<'a, Vec<usize>>),
}

/// A pinned handle re-borrowed from a raw pointer, so that one handle can
/// serve acquisition after acquisition inside one data structure.
///
/// # Safety
///
/// `p` comes from `Box::into_raw` and stays allocated while the borrow
/// lives; the previous borrow of the same handle (its guard or waiter) is
/// gone before the next is made.
unsafe fn reborrow_handle<'a>(p: *mut LockQueueHandle) -> Pin<&'a mut LockQueueHandle> {
    // SAFETY: as the caller promises; the box is never moved.
    unsafe { Pin::new_unchecked(&mut *p) }
}

/// Drives `procs` acquirers from one thread through `schedule` (each entry
/// picks who takes the next step: begin, poll or release) and then drains
/// them round-robin, checking the queued lock against a model of its queue
/// at every step. Handles are reused across acquisitions.
fn queued_schedule(procs: usize, schedule: &[usize]) -> Result<(), TestCaseError> {
    use std::collections::VecDeque;

    let lock = QueuedSpinLock::new(Vec::new());
    let handles: Vec<*mut LockQueueHandle> = (0..procs)
        .map(|_| Box::into_raw(Box::new(LockQueueHandle::new())))
        .collect();
    // Leaked if a check fails midway (dropping a pending waiter would wait
    // for a lock that may never be released).
    let mut st =
        std::mem::ManuallyDrop::new((0..procs).map(|_| QProc::Idle).collect::<Vec<QProc<'_>>>());
    // The model: queued acquirers in tail-swap order.
    let mut queue: VecDeque<usize> = VecDeque::new();
    let mut acquisitions = 0usize;

    let steps = schedule
        .iter()
        .copied()
        .chain((0..procs * 6 + 6).flat_map(|_| 0..procs));
    for (k, i) in steps.enumerate() {
        // After the schedule: drain (no new acquisitions).
        let draining = k >= schedule.len();
        let holders = st.iter().filter(|p| matches!(p, QProc::Holding(_))).count();
        let holding_waiters = st
            .iter()
            .filter(|p| matches!(p, QProc::Waiting(w) if w.holds_lock()))
            .count();
        prop_assert!(holders + holding_waiters <= 1, "two holders");
        let next = match std::mem::replace(&mut st[i], QProc::Idle) {
            QProc::Idle if draining => QProc::Idle,
            QProc::Idle => {
                // SAFETY: handle `i` is idle: its last guard was released.
                match lock.begin_acquire(unsafe { reborrow_handle(handles[i]) }) {
                    QueuedAcquire::Acquired(mut g) => {
                        prop_assert!(queue.is_empty(), "fast path past a queued waiter");
                        prop_assert_eq!(holders + holding_waiters, 0);
                        acquisitions += 1;
                        g.push(i);
                        QProc::Holding(g)
                    }
                    QueuedAcquire::Waiting(w) => {
                        prop_assert!(!queue.is_empty() || holders + holding_waiters > 0);
                        prop_assert!(!w.is_linked() && !w.holds_lock());
                        queue.push_back(i);
                        QProc::Waiting(w)
                    }
                }
            }
            QProc::Waiting(mut w) => match w.poll() {
                Some(mut g) => {
                    prop_assert_eq!(queue.pop_front(), Some(i), "out of FIFO order");
                    prop_assert_eq!(holders, 0);
                    acquisitions += 1;
                    g.push(i);
                    QProc::Holding(g)
                }
                None => {
                    if w.holds_lock() {
                        prop_assert_eq!(queue.front(), Some(&i), "a non-head took the lock");
                        prop_assert_eq!(holders, 0);
                    }
                    QProc::Waiting(w)
                }
            },
            QProc::Holding(g) => {
                // Reachable from the head record: the longest prefix of the
                // queue whose waiters have completed their enqueue.
                let linked = queue
                    .iter()
                    .take_while(|&&j| matches!(&st[j], QProc::Waiting(w) if w.is_linked()))
                    .count();
                prop_assert_eq!(g.linked_waiters(), linked);
                prop_assert_eq!(g.has_waiters(), !queue.is_empty());
                prop_assert!(lock.is_locked());
                prop_assert!(QueuedSpinLockGuard::begin_release(g).is_ok());
                QProc::Idle
            }
        };
        st[i] = next;
    }
    // The drain rounds above must have let everyone finish.
    prop_assert!(
        st.iter().all(|p| matches!(p, QProc::Idle)),
        "drain did not finish"
    );
    prop_assert!(queue.is_empty());
    prop_assert!(!lock.is_locked());
    // SAFETY: every entry is idle (no borrow of a handle is left).
    unsafe { std::mem::ManuallyDrop::drop(&mut st) };
    for h in handles {
        // SAFETY: from `Box::into_raw`, no borrow left.
        let h = unsafe { Box::from_raw(h) };
        prop_assert!(!h.is_queued());
    }
    let log = lock.into_inner();
    prop_assert_eq!(log.len(), acquisitions);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any interleaving of begin / poll / release by up to five acquirers,
    /// driven from one thread: at most one holder (guard, or a head that
    /// took the lock and waits for its successor's link); the fast path
    /// only when no one is queued; guards handed out in tail-swap order;
    /// `linked_waiters`, `has_waiters` and `is_locked` as the model says;
    /// and every acquirer finishes once all are polled in turn.
    #[test]
    fn queued_any_schedule_matches_fifo_model(
        (procs, schedule) in (1usize..=5)
            .prop_flat_map(|n| (Just(n), proptest::collection::vec(0..n, 0..200)))
    ) {
        queued_schedule(procs, &schedule)?;
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
