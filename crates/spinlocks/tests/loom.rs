//! Loom model checks of the real locks' protocols.
//!
//! Run with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p spinlocks --release --test loom
//! ```
//!
//! Each model has 2 or 3 threads. Two-thread models use a preemption bound
//! of 4 (override with `LOOM_MAX_PREEMPTIONS`); the three-thread queued-lock
//! models cap it at 2 or 3 (see below). Protected data is a `loom::cell::UnsafeCell`, so
//! loom itself reports any two accesses that the lock failed to order
//! (mutual exclusion *and* the acquire/release memory ordering); spin loops
//! that never end (a lost wake-up, a deadlock) fail the model too.
//!
//! Why the `KSpinLock` and `ExSpinLock` models have two threads: loom models
//! a spin-wait iteration as a yield, and switching away from a thread that
//! yielded costs no preemption. With two threads spinning on the same word
//! while a third holds the lock, loom can hand the processor back and forth
//! between the two spinners forever and never run the holder, so the model
//! exceeds its branch limit whatever the lock does. With two threads a yield
//! always runs the other one. (The queued-lock models, whose waiters spin on
//! separate nodes, or, for the one queue head, on the `locked` flag, complete
//! with three threads up to a small preemption bound; beyond it loom finds
//! the same starving schedules, so their bound is capped.) Scenarios that need
//! three parties, such as two writers waiting at once, are covered by the
//! threaded tests in `real_locks.rs`.
#![cfg(loom)]

use core::pin::pin;

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

use spinlocks::{
    ExExclusiveGuard, ExSharedGuard, ExSpinLock, InterruptSpinLock, KSpinLock, LockQueueHandle,
    QueuedAcquire, QueuedSpinLock, QueuedSpinLockGuard,
};

/// Two-thread models: preemption bound 4 unless `LOOM_MAX_PREEMPTIONS` says
/// otherwise.
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(4);
    }
    builder.check(f);
}

/// Three-thread models: the bound is capped at `cap` whatever the
/// environment says. Two waiters spinning while a third thread holds the
/// lock is the shape in which loom can starve the holder (see the module
/// docs); with more preemptions it reaches such schedules and gives up.
fn model_capped(cap: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(builder.preemption_bound.map_or(cap, |b| b.min(cap)));
    builder.check(f);
}

/// Read-modify-write of a loom cell: loom flags it if unsynchronised.
fn bump(cell: &UnsafeCell<usize>) {
    cell.with_mut(|p| unsafe { *p += 1 });
}

fn get(cell: &UnsafeCell<usize>) -> usize {
    cell.with(|p| unsafe { *p })
}

// ---------------------------------------------------------------- KSpinLock

#[test]
fn kspin_mutual_exclusion() {
    model(|| {
        let lock = Arc::new(KSpinLock::new(UnsafeCell::new(0)));
        let l2 = lock.clone();
        let t = thread::spawn(move || {
            for _ in 0..2 {
                bump(&l2.lock());
            }
        });
        for _ in 0..2 {
            bump(&lock.lock());
        }
        t.join().unwrap();
        assert_eq!(get(&lock.lock()), 4);
        assert!(!lock.is_locked());
    });
}

#[test]
fn kspin_try_lock_excludes() {
    model(|| {
        let lock = Arc::new(KSpinLock::new(UnsafeCell::new(0)));
        let l2 = lock.clone();
        let t = thread::spawn(move || {
            if let Some(g) = l2.try_lock() {
                bump(&g);
            }
        });
        {
            let g = lock.lock();
            assert!(lock.is_held_by_current_thread());
            bump(&g);
        }
        assert!(!lock.is_held_by_current_thread());
        t.join().unwrap();
    });
}

#[test]
fn interrupt_lock_mutual_exclusion() {
    model(|| {
        let lock = Arc::new(InterruptSpinLock::new(5, UnsafeCell::new(0)));
        let l2 = lock.clone();
        let t = thread::spawn(move || l2.synchronize(|c| bump(c)));
        bump(&lock.lock());
        t.join().unwrap();
        assert_eq!(lock.synchronize(|c| get(c)), 2);
    });
}

// ------------------------------------------------------------ QueuedSpinLock

#[test]
fn queued_mutual_exclusion_three_threads() {
    model_capped(2, || {
        let lock = Arc::new(QueuedSpinLock::new(UnsafeCell::new(0)));
        let ths: Vec<_> = (0..2)
            .map(|_| {
                let lock = lock.clone();
                thread::spawn(move || {
                    let mut h = pin!(LockQueueHandle::new());
                    bump(&lock.lock(h.as_mut()));
                })
            })
            .collect();
        let mut h = pin!(LockQueueHandle::new());
        bump(&lock.lock(h.as_mut()));
        for t in ths {
            t.join().unwrap();
        }
        assert_eq!(lock.with_lock(|c| get(c)), 3);
        assert!(!lock.is_locked());
    });
}

/// Two threads, each acquiring twice with the same handle: covers the fast
/// path racing a waiter's tail swap (both may then compete for `locked`),
/// the queue head's exit racing a successor between its tail swap and its
/// link (the head's tail compare-exchange fails and it must wait for the
/// link), handle reuse (the `next == null` invariant), and that a queued
/// waiter is always woken (a lost wake-up would spin forever and fail the
/// model).
#[test]
fn queued_release_link_race_and_reuse() {
    model(|| {
        let lock = Arc::new(QueuedSpinLock::new(UnsafeCell::new(0)));
        let l2 = lock.clone();
        let t = thread::spawn(move || {
            let mut h = pin!(LockQueueHandle::new());
            for _ in 0..2 {
                bump(&l2.lock(h.as_mut()));
            }
        });
        let mut h = pin!(LockQueueHandle::new());
        for _ in 0..2 {
            bump(&lock.lock(h.as_mut()));
        }
        t.join().unwrap();
        assert_eq!(lock.with_lock(|c| get(c)), 4);
        assert!(!lock.is_locked());
    });
}

/// No lost wake-up: the owner waits until a waiter has joined the queue
/// (possibly not yet linked) and only then releases; the waiter must get in.
/// Also checks that loom did explore the release racing the enqueue: some
/// execution releases while the waiter has swapped the tail but not yet
/// published itself as the queue's head (`linked_waiters` reads 0).
#[test]
fn queued_waiter_is_woken() {
    static RELEASED_BEFORE_LINK: std::sync::atomic::AtomicBool =
        std::sync::atomic::AtomicBool::new(false);
    model(|| {
        let lock = Arc::new(QueuedSpinLock::new(UnsafeCell::new(0)));
        let mut h = pin!(LockQueueHandle::new());
        let g = lock.lock(h.as_mut());
        let l2 = lock.clone();
        let t = thread::spawn(move || {
            let mut h = pin!(LockQueueHandle::new());
            bump(&l2.lock(h.as_mut()));
        });
        while !g.has_waiters() {
            thread::yield_now();
        }
        bump(&g);
        if g.linked_waiters() == 0 {
            RELEASED_BEFORE_LINK.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        drop(g);
        t.join().unwrap();
        assert_eq!(lock.with_lock(|c| get(c)), 2);
    });
    assert!(
        RELEASED_BEFORE_LINK.load(std::sync::atomic::Ordering::Relaxed),
        "loom never explored a release racing with an unlinked successor"
    );
}

/// Strict FIFO: with the lock held, waiter A joins the queue, then waiter B
/// (started only once A is queued). On release A must go before B.
#[test]
fn queued_fifo_handoff() {
    model_capped(3, || {
        let lock = Arc::new(QueuedSpinLock::new(UnsafeCell::new(0)));
        let order = Arc::new(AtomicUsize::new(0));
        let mut h = pin!(LockQueueHandle::new());
        let g = lock.lock(h.as_mut());

        let spawn_waiter = |id: usize| {
            let lock = lock.clone();
            let order = order.clone();
            thread::spawn(move || {
                let mut h = pin!(LockQueueHandle::new());
                let g = lock.lock(h.as_mut());
                // Record the arrival order as a 2-digit number: first*10 + second.
                let prev = order.load(Ordering::Relaxed);
                order.store(prev * 10 + id, Ordering::Relaxed);
                bump(&g);
            })
        };
        let a = spawn_waiter(1);
        while !g.has_waiters() {
            thread::yield_now();
        }
        let b = spawn_waiter(2);
        drop(g);
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(
            order.load(Ordering::Relaxed),
            12,
            "waiters served out of order"
        );
        assert_eq!(lock.with_lock(|c| get(c)), 2);
    });
}

#[test]
fn queued_try_lock_excludes() {
    model(|| {
        let lock = Arc::new(QueuedSpinLock::new(UnsafeCell::new(0)));
        let l2 = lock.clone();
        let t = thread::spawn(move || {
            let mut h = pin!(LockQueueHandle::new());
            if let Some(g) = l2.try_lock(h.as_mut()) {
                bump(&g);
            };
        });
        let mut h = pin!(LockQueueHandle::new());
        bump(&lock.lock(h.as_mut()));
        t.join().unwrap();
        assert!(!lock.is_locked());
    });
}

/// No barging past a queue the owner has seen: the owner waits until a
/// waiter has swapped itself into the tail (`has_waiters`), releases, and
/// acquires again at once. Its second acquire must queue behind the waiter
/// (the fast path is only taken with an empty queue), so the waiter goes
/// first, in every execution.
#[test]
fn queued_owner_cannot_overtake_seen_waiter() {
    model(|| {
        let lock = Arc::new(QueuedSpinLock::new(UnsafeCell::new(0)));
        let order = Arc::new(AtomicUsize::new(0));
        let mut h = pin!(LockQueueHandle::new());
        let g = lock.lock(h.as_mut());
        let (l2, o2) = (lock.clone(), order.clone());
        let t = thread::spawn(move || {
            let mut h = pin!(LockQueueHandle::new());
            let g = l2.lock(h.as_mut());
            o2.store(o2.load(Ordering::Relaxed) * 10 + 1, Ordering::Relaxed);
            bump(&g);
        });
        while !g.has_waiters() {
            thread::yield_now();
        }
        drop(g);
        let g = lock.lock(h.as_mut());
        order.store(order.load(Ordering::Relaxed) * 10 + 2, Ordering::Relaxed);
        bump(&g);
        drop(g);
        t.join().unwrap();
        assert_eq!(order.load(Ordering::Relaxed), 12, "the owner barged");
        assert_eq!(lock.with_lock(|c| get(c)), 2);
    });
}

/// Three threads through the queue while the owner counts the queue from
/// its head record (`linked_waiters`, which dereferences queued nodes): the
/// count never exceeds the waiters that have swapped in, and the model
/// completes (no lost wake-up with two queued waiters, one of which may be
/// the head waiting for the other's link).
#[test]
fn queued_linked_waiters_three_threads() {
    model_capped(2, || {
        let lock = Arc::new(QueuedSpinLock::new(UnsafeCell::new(0)));
        let mut h = pin!(LockQueueHandle::new());
        let g = lock.lock(h.as_mut());
        let ths: Vec<_> = (0..2)
            .map(|_| {
                let lock = lock.clone();
                thread::spawn(move || {
                    let mut h = pin!(LockQueueHandle::new());
                    bump(&lock.lock(h.as_mut()));
                })
            })
            .collect();
        while !g.has_waiters() {
            thread::yield_now();
        }
        assert!(g.linked_waiters() <= 2);
        bump(&g);
        drop(g);
        for t in ths {
            t.join().unwrap();
        }
        assert_eq!(lock.with_lock(|c| get(c)), 3);
        assert!(!lock.is_locked());
    });
}

// --------------------------------------------------------------- ExSpinLock

/// A reader and a writer: the writer never overlaps the reader (loom would
/// flag the cell), whichever gets in first.
#[test]
fn ex_no_writer_while_reader_holds() {
    model(|| {
        let lock = Arc::new(ExSpinLock::new(UnsafeCell::new(0)));
        let l2 = lock.clone();
        let reader = thread::spawn(move || {
            let r = l2.read();
            let v = get(&r);
            assert!(v <= 1);
            // Still the same value: no writer got in while we hold.
            assert_eq!(get(&r), v);
        });
        bump(&lock.write());
        reader.join().unwrap();
        assert_eq!(lock.raw_word(), 0);
    });
}

#[test]
fn ex_writers_exclude_each_other() {
    model(|| {
        let lock = Arc::new(ExSpinLock::new(UnsafeCell::new(0)));
        let l2 = lock.clone();
        let t = thread::spawn(move || bump(&l2.write()));
        bump(&lock.write());
        t.join().unwrap();
        assert_eq!(get(&lock.read()), 2);
        assert_eq!(lock.raw_word(), 0, "waiter count or bits left behind");
    });
}

/// A downgraded writer keeps readers-in/writers-out semantics: the other
/// writer never overlaps either phase.
#[test]
fn ex_downgrade_is_atomic() {
    model(|| {
        let lock = Arc::new(ExSpinLock::new(UnsafeCell::new(0)));
        let l2 = lock.clone();
        let t = thread::spawn(move || bump(&l2.write()));
        let w = lock.write();
        bump(&w);
        let before = get(&w);
        let r = ExExclusiveGuard::downgrade(w);
        assert_eq!(get(&r), before, "a writer got in during the downgrade");
        drop(r);
        t.join().unwrap();
        assert_eq!(get(&lock.read()), 2);
        assert_eq!(lock.raw_word(), 0);
    });
}

/// Writer preference: once a writer has claimed the lock (bit 31, waiting for
/// a reader to drain), a new reader cannot get in.
#[test]
fn ex_waiting_writer_blocks_new_readers() {
    model(|| {
        let lock = Arc::new(ExSpinLock::new(UnsafeCell::new(0)));
        let r = lock.read();
        let l2 = lock.clone();
        let w = thread::spawn(move || bump(&l2.write()));
        while !lock.is_locked_exclusive() {
            thread::yield_now();
        }
        assert!(
            lock.try_read().is_none(),
            "reader overtook a waiting writer"
        );
        drop(r);
        w.join().unwrap();
        assert_eq!(get(&lock.read()), 1);
    });
}

/// Several waiting writers: while one writer holds the lock and another is
/// registered as waiting, a release by the holder must not let a new reader
/// in ahead of the waiter (the waiter count keeps bit 30 set).
#[test]
fn ex_waiting_writer_claim_survives_other_writers() {
    model(|| {
        let lock = Arc::new(ExSpinLock::new(UnsafeCell::new(0)));
        let done = Arc::new(AtomicBool::new(false));
        let g = lock.write();
        let (l2, d2) = (lock.clone(), done.clone());
        let w = thread::spawn(move || {
            let g = l2.write();
            bump(&g);
            d2.store(true, Ordering::Relaxed);
        });
        while lock.exclusive_waiters() == 0 {
            thread::yield_now();
        }
        // Hand over to the waiting writer (it is the only one that can take
        // bit 31 next; bit 30 must stay set until it does).
        drop(g);
        if let Some(r) = lock.try_read() {
            assert!(
                done.load(Ordering::Relaxed),
                "reader got in while a writer was waiting"
            );
            assert_eq!(get(&r), 1);
        }
        w.join().unwrap();
        assert_eq!(lock.raw_word(), 0);
    });
}

/// try_convert never yields two exclusive holders: two readers race to
/// convert; the cell catches any overlap (a converted writer against the
/// other's read, or two converted writers).
#[test]
fn ex_try_convert_is_exclusive() {
    model(|| {
        let lock = Arc::new(ExSpinLock::new(UnsafeCell::new(0)));
        let converted = Arc::new(AtomicUsize::new(0));
        let convert = |lock: &ExSpinLock<UnsafeCell<usize>>, converted: &AtomicUsize| {
            let r = lock.read();
            match ExSharedGuard::try_convert(r) {
                Ok(w) => {
                    bump(&w);
                    converted.fetch_add(1, Ordering::Relaxed);
                }
                Err(r) => {
                    // Still shared: reading is allowed, writing is not.
                    let _ = get(&r);
                    assert!(lock.shared_count() >= 1);
                }
            }
        };
        let (l2, c2) = (lock.clone(), converted.clone());
        let t = thread::spawn(move || convert(&l2, &c2));
        convert(&lock, &converted);
        t.join().unwrap();
        let n = converted.load(Ordering::Relaxed);
        assert!(n <= 2);
        assert_eq!(get(&lock.read()), n, "lost update");
        assert_eq!(lock.raw_word(), 0);
    });
}

/// A failed conversion leaves the caller holding shared, which still keeps
/// the waiting writer out until it is released.
#[test]
fn ex_failed_convert_keeps_shared() {
    model(|| {
        let lock = Arc::new(ExSpinLock::new(UnsafeCell::new(0)));
        let r = lock.read();
        let l2 = lock.clone();
        let w = thread::spawn(move || bump(&l2.write()));
        let converted = match ExSharedGuard::try_convert(r) {
            Ok(g) => {
                // Only possible before the writer claimed bit 31.
                bump(&g);
                true
            }
            Err(r) => {
                assert!(
                    lock.is_locked_exclusive(),
                    "conversion failed for no reason"
                );
                let _ = get(&r);
                assert_eq!(lock.shared_count(), 1);
                false
            }
        };
        w.join().unwrap();
        assert_eq!(get(&lock.read()), 1 + usize::from(converted));
        assert_eq!(lock.raw_word(), 0);
    });
}

// ------------------------------------------------------- two-phase acquire
//
// The begin/poll paths, driven by hand-written poll loops that yield to
// loom between polls (as the emulator's scheduler returns between spin
// iterations). `lock`/`read`/`write` run the same steps through the
// waiters' `wait`, so the models above cover those loops too.

/// Polls until `poll` yields, yielding to loom between polls.
fn poll_loop<G>(mut poll: impl FnMut() -> Option<G>) -> G {
    loop {
        if let Some(g) = poll() {
            return g;
        }
        thread::yield_now();
    }
}

#[test]
fn kspin_two_phase_mutual_exclusion() {
    model(|| {
        let lock = Arc::new(KSpinLock::new(UnsafeCell::new(0)));
        let acquire = |lock: &KSpinLock<UnsafeCell<usize>>| {
            let g = match lock.begin_acquire() {
                Ok(g) => g,
                Err(mut w) => poll_loop(|| w.poll()),
            };
            bump(&g);
        };
        let l2 = lock.clone();
        let t = thread::spawn(move || acquire(&l2));
        acquire(&lock);
        t.join().unwrap();
        assert_eq!(get(&lock.lock()), 2);
        assert!(!lock.is_locked());
    });
}

#[test]
fn interrupt_two_phase_mutual_exclusion() {
    model(|| {
        let lock = Arc::new(InterruptSpinLock::new(5, UnsafeCell::new(0)));
        let acquire = |lock: &InterruptSpinLock<UnsafeCell<usize>>| {
            let g = match lock.begin_acquire() {
                Ok(g) => g,
                Err(mut w) => poll_loop(|| w.poll()),
            };
            bump(&g);
        };
        let l2 = lock.clone();
        let t = thread::spawn(move || acquire(&l2));
        acquire(&lock);
        t.join().unwrap();
        assert_eq!(lock.synchronize(|c| get(c)), 2);
    });
}

/// The queue through the two-phase calls only: both threads acquire twice
/// with begin + polls and release with `begin_release`, which must always
/// complete at once. Checks the cell (mutual exclusion and the ordering of
/// every path to the lock: fast path, queue head), that nothing spins
/// forever, and that loom explored a queue head that took the lock while
/// its successor had swapped the tail but not linked, and had to wait for
/// the link before returning the guard (`holds_lock`).
#[test]
fn queued_two_phase_handoff() {
    static HEAD_WAITED_FOR_LINK: std::sync::atomic::AtomicBool =
        std::sync::atomic::AtomicBool::new(false);
    model(|| {
        let lock = Arc::new(QueuedSpinLock::new(UnsafeCell::new(0)));
        let run = |lock: &QueuedSpinLock<UnsafeCell<usize>>| {
            let mut h = pin!(LockQueueHandle::new());
            for _ in 0..2 {
                let g = match lock.begin_acquire(h.as_mut()) {
                    QueuedAcquire::Acquired(g) => g,
                    QueuedAcquire::Waiting(mut w) => poll_loop(|| {
                        let g = w.poll();
                        if g.is_none() && w.holds_lock() {
                            HEAD_WAITED_FOR_LINK.store(true, std::sync::atomic::Ordering::Relaxed);
                        }
                        g
                    }),
                };
                bump(&g);
                assert!(QueuedSpinLockGuard::begin_release(g).is_ok());
                assert!(!h.is_queued());
            }
        };
        let l2 = lock.clone();
        let t = thread::spawn(move || run(&l2));
        run(&lock);
        t.join().unwrap();
        assert_eq!(lock.with_lock(|c| get(c)), 4);
        assert!(!lock.is_locked());
    });
    assert!(
        HEAD_WAITED_FOR_LINK.load(std::sync::atomic::Ordering::Relaxed),
        "loom never explored a queue head waiting for its successor's link"
    );
}

/// Dropping a pending queued waiter: it waits for the lock, then releases it.
/// The other thread holds the lock while the waiter may or may not have
/// linked, and later takes it again: nothing may spin forever and the
/// queue must end empty.
#[test]
fn queued_dropped_waiter_passes_through() {
    static DROPPED_WAITING: std::sync::atomic::AtomicBool =
        std::sync::atomic::AtomicBool::new(false);
    model(|| {
        let lock = Arc::new(QueuedSpinLock::new(UnsafeCell::new(0)));
        let mut h = pin!(LockQueueHandle::new());
        let g = lock.lock(h.as_mut());
        let l2 = lock.clone();
        let t = thread::spawn(move || {
            let mut h = pin!(LockQueueHandle::new());
            match l2.begin_acquire(h.as_mut()) {
                QueuedAcquire::Acquired(g) => bump(&g),
                QueuedAcquire::Waiting(w) => {
                    DROPPED_WAITING.store(true, std::sync::atomic::Ordering::Relaxed);
                    drop(w);
                }
            }
            assert!(!h.is_queued());
        });
        bump(&g);
        drop(g);
        bump(&lock.lock(h.as_mut()));
        t.join().unwrap();
        assert!(!lock.is_locked());
    });
    assert!(
        DROPPED_WAITING.load(std::sync::atomic::Ordering::Relaxed),
        "loom never dropped a pending waiter"
    );
}

/// Reader against writer, both two-phase: the cell catches any overlap.
#[test]
fn ex_two_phase_reader_writer() {
    model(|| {
        let lock = Arc::new(ExSpinLock::new(UnsafeCell::new(0)));
        let l2 = lock.clone();
        let reader = thread::spawn(move || {
            let r = match l2.begin_read() {
                Ok(r) => r,
                Err(mut w) => poll_loop(|| w.poll()),
            };
            let v = get(&r);
            assert!(v <= 1);
            assert_eq!(get(&r), v);
        });
        let w = match lock.begin_write() {
            Ok(w) => w,
            Err(mut w) => poll_loop(|| w.poll()),
        };
        bump(&w);
        drop(w);
        reader.join().unwrap();
        assert_eq!(lock.raw_word(), 0);
    });
}

/// A write waiter that gives up withdraws its claim: a writer holds the
/// lock, a second writer begins (registering, or claiming bit 31 once the
/// first is gone), polls once, and drops its waiter unless that poll won.
/// Meanwhile the holder releases and reads through begin_read + polls, which
/// must get in (a leftover bit 30 or 31 would spin it forever), and the word
/// must end clean.
#[test]
fn ex_write_waiter_withdraws() {
    use std::sync::atomic::{AtomicBool as StdBool, Ordering::Relaxed};
    static WITHDREW_REGISTERED: StdBool = StdBool::new(false);
    static WITHDREW_DRAINING: StdBool = StdBool::new(false);
    model(|| {
        let lock = Arc::new(ExSpinLock::new(UnsafeCell::new(0)));
        let w = lock.write();
        let l2 = lock.clone();
        let t = thread::spawn(move || match l2.begin_write() {
            Ok(g) => bump(&g),
            Err(mut waiter) => {
                if let Some(g) = waiter.poll() {
                    bump(&g);
                } else if waiter.is_draining() {
                    WITHDREW_DRAINING.store(true, Relaxed);
                } else {
                    WITHDREW_REGISTERED.store(true, Relaxed);
                }
                // Unless it won, the waiter is dropped here, withdrawing.
            }
        });
        bump(&w);
        drop(w);
        let r = match lock.begin_read() {
            Ok(r) => r,
            Err(mut waiter) => poll_loop(|| waiter.poll()),
        };
        assert!(get(&r) >= 1);
        drop(r);
        t.join().unwrap();
        assert_eq!(lock.raw_word(), 0, "a withdrawn writer left bits behind");
    });
    assert!(
        WITHDREW_REGISTERED.load(Relaxed),
        "never withdrew a registered writer"
    );
    assert!(
        WITHDREW_DRAINING.load(Relaxed),
        "never withdrew a draining writer"
    );
}

// ------------------------------------------------------------------ raw layer

use spinlocks::raw::{QueueNodeArena, RawExSpinLock, RawQueuedSpinLock, RawSpinLock};

/// A raw lock, its MCS nodes and the data it guards (raw locks hold none).
struct RawShared<L> {
    lock: L,
    arena: QueueNodeArena,
    cell: UnsafeCell<usize>,
}

// SAFETY: `cell` is touched only under `lock` (that is what the models check:
// loom reports any access the lock failed to order).
unsafe impl<L: Sync> Sync for RawShared<L> {}
// SAFETY: as above.
unsafe impl<L: Send> Send for RawShared<L> {}

fn raw_shared<L>(lock: L, processors: u32) -> Arc<RawShared<L>> {
    Arc::new(RawShared {
        lock,
        arena: QueueNodeArena::new(processors, 1),
        cell: UnsafeCell::new(0),
    })
}

/// One raw MCS critical section by `processor`, through both two-phase
/// halves (begin/poll acquire, begin/poll release).
fn raw_queued_section(s: &RawShared<RawQueuedSpinLock>, processor: u32) {
    let node = s.arena.node(processor, 0);
    // SAFETY: the arena lives in the shared `Arc` until every thread is
    // joined; node (processor, 0) is used by this thread alone, one
    // acquisition at a time.
    unsafe {
        if !s.lock.begin_acquire(node) {
            while !s.lock.poll_acquire(node) {
                thread::yield_now();
            }
        }
        assert!(node.is_owner());
        bump(&s.cell);
        if !s.lock.begin_release(node) {
            while !s.lock.poll_release(node) {
                thread::yield_now();
            }
        }
    }
    assert!(!node.is_queued());
}

/// Raw MCS, two processors, two sections each with the same node: the
/// release/link race, node reuse (the `next == null` invariant) and no lost
/// wake-up.
#[test]
fn raw_queued_two_processors_reuse() {
    model(|| {
        let s = raw_shared(RawQueuedSpinLock::new(), 2);
        let s2 = s.clone();
        let t = thread::spawn(move || {
            for _ in 0..2 {
                raw_queued_section(&s2, 1);
            }
        });
        for _ in 0..2 {
            raw_queued_section(&s, 0);
        }
        t.join().unwrap();
        assert_eq!(get(&s.cell), 4);
        assert!(!s.lock.is_locked());
    });
}

/// Raw MCS, three processors once each (bound capped, see the module docs).
#[test]
fn raw_queued_three_processors() {
    model_capped(2, || {
        let s = raw_shared(RawQueuedSpinLock::new(), 3);
        let ths: Vec<_> = (1..3)
            .map(|p| {
                let s = s.clone();
                thread::spawn(move || raw_queued_section(&s, p))
            })
            .collect();
        raw_queued_section(&s, 0);
        for t in ths {
            t.join().unwrap();
        }
        assert_eq!(get(&s.cell), 3);
        assert!(!s.lock.is_locked());
    });
}

/// Raw ordinary lock: mutual exclusion with processor-index owners, and the
/// owner query is exact for the asking processor.
#[test]
fn raw_spin_mutual_exclusion_and_owner() {
    model(|| {
        let s = raw_shared(RawSpinLock::new(), 0);
        let s2 = s.clone();
        let section = |s: &RawShared<RawSpinLock>, p: u32| {
            while let Err(owner) = s.lock.try_acquire(p) {
                assert_ne!(owner, p);
                thread::yield_now();
            }
            assert_eq!(s.lock.owner(), Some(p));
            bump(&s.cell);
            s.lock.release(p).unwrap();
        };
        let t = thread::spawn(move || section(&s2, 1));
        section(&s, 0);
        t.join().unwrap();
        assert_eq!(get(&s.cell), 2);
        assert_eq!(s.lock.owner(), None);
    });
}

/// Raw EX: a reader (read under the shared hold) against a two-phase writer
/// (write under the exclusive hold); the writer knows itself as owner.
#[test]
fn raw_ex_reader_writer() {
    model(|| {
        let s = raw_shared(RawExSpinLock::new(), 0);
        let s2 = s.clone();
        let t = thread::spawn(move || {
            while !s2.lock.try_acquire_shared() {
                thread::yield_now();
            }
            let v = get(&s2.cell);
            assert!(v == 0 || v == 1);
            s2.lock.release_shared();
        });
        if let Err(mut w) = s.lock.begin_acquire_exclusive(0) {
            while !s.lock.poll_acquire_exclusive(0, &mut w) {
                thread::yield_now();
            }
        }
        assert_eq!(s.lock.exclusive_owner(), Some(0));
        bump(&s.cell);
        s.lock.release_exclusive(0).unwrap();
        t.join().unwrap();
        assert_eq!(s.lock.raw_word(), 0);
    });
}

/// Raw EX try-convert: two shared holders each try to convert; a success is
/// exclusive (loom checks the write), a failure stays shared.
#[test]
fn raw_ex_try_convert() {
    model(|| {
        let s = raw_shared(RawExSpinLock::new(), 0);
        let s2 = s.clone();
        let body = |s: &RawShared<RawExSpinLock>, p: u32| {
            while !s.lock.try_acquire_shared() {
                thread::yield_now();
            }
            if s.lock.try_convert(p) {
                assert_eq!(s.lock.exclusive_owner(), Some(p));
                bump(&s.cell);
                s.lock.release_exclusive(p).unwrap();
            } else {
                get(&s.cell);
                s.lock.release_shared();
            }
        };
        let t = thread::spawn(move || body(&s2, 1));
        body(&s, 0);
        t.join().unwrap();
        assert_eq!(s.lock.raw_word(), 0);
    });
}
