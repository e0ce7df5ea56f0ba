//! Parallel mode (issue C), end to end through the library: a certain
//! deadlock ends in 0x133 every time and in bounded wall time; 64 processors
//! on however few cores end; the first bugcheck stops every processor; an
//! unguarded read-modify-write loses updates for real; reports say
//! `parallel` and carry no seed.

use machine::{load_file, load_source, run, Mode, Outcome, Program, RunOptions};
use std::path::Path;
use std::time::{Duration, Instant};

fn repo(rel: &str) -> Program {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel);
    load_file(&path).unwrap_or_else(|e| panic!("{rel}: {e:?}"))
}

fn parallel(timeout_ms: u64) -> RunOptions {
    RunOptions {
        mode: Mode::Parallel,
        timeout: Some(Duration::from_millis(timeout_ms)),
        ..RunOptions::default()
    }
}

#[test]
fn a_certain_deadlock_ends_in_0x133_every_time_in_bounded_time() {
    let p = repo("scenarios/rules/0x133-two-cpu-deadlock-bad.sim");
    for i in 0..50 {
        let t = Instant::now();
        let r = run(&p, &parallel(5_000));
        let took = t.elapsed();
        let b = r
            .bugcheck
            .as_ref()
            .unwrap_or_else(|| panic!("run {i}: no bugcheck: {:?} {:?}", r.outcome, r.warnings));
        assert_eq!(b.code, 0x133, "run {i}");
        assert_eq!(b.params[0], 1, "run {i}: P1 = 1 (a deadlock)");
        assert!(
            b.analysis.iter().any(|l| l.contains("wait-for cycle")),
            "run {i}: {:?}",
            b.analysis
        );
        assert!(took < Duration::from_secs(5), "run {i} took {took:?}");
        assert_eq!(r.mode, "parallel");
        assert_eq!(r.seed, None);
        assert_eq!(r.strategy, None);
        // The two spins that never ended are contended acquisitions in the
        // wall-clock statistics too, as in the LOCKS table.
        let wall: u64 = r
            .parallel
            .as_ref()
            .unwrap()
            .locks
            .iter()
            .map(|l| l.contended)
            .sum();
        let virt: u64 = r.locks.iter().map(|l| l.contended).sum();
        assert!(
            wall >= 2 && wall == virt,
            "run {i}: wall {wall}, LOCKS {virt}"
        );
    }
}

#[test]
fn sixty_four_processors_on_few_cores_end() {
    let text = r#"
scenario "many" { cpus 64; expect clean; }
KSPIN_LOCK Lock;
_Guarded_by_(Lock) ULONG Count;
thread Worker repeat 64 {
    KIRQL Old;
    ULONG i;
    for (i = 0; i < 20; i++) {
        KeAcquireSpinLock(&Lock, &Old);
        Count = Count + 1;
        KeReleaseSpinLock(&Lock, Old);
    }
}
thread Audit on cpu 0 {
    KIRQL Old;
    ULONG Seen;
    Seen = 0;
    while (Seen < 1280) {
        KeAcquireSpinLock(&Lock, &Old);
        Seen = Count;
        KeReleaseSpinLock(&Lock, Old);
    }
}
"#;
    let p = load_source("many.sim", text).expect("loads");
    let t = Instant::now();
    let r = run(&p, &parallel(30_000));
    assert!(
        r.expectation_met,
        "{:?} {:?} {:?}",
        r.outcome, r.warnings, r.bugcheck
    );
    let facts = r.parallel.as_ref().expect("parallel facts");
    assert_eq!(facts.processors.len(), 64);
    assert!(t.elapsed() < Duration::from_secs(30));
}

#[test]
fn the_first_bugcheck_stops_every_processor() {
    // cpu 1 loops for ever at PASSIVE_LEVEL; cpu 0's 0xC4/0x31 ends the run.
    let text = r#"
scenario "halt" { cpus 2; expect bugcheck 0xC4(0x31); }
ULONG Never;
ULONG Spins;
thread Faulty on cpu 0 {
    KeStallExecutionProcessor(20);
    KeLowerIrql(DISPATCH_LEVEL);
}
thread Looper on cpu 1 {
    while (Never == 0) { Spins = Spins + 1; }
}
"#;
    let p = load_source("halt.sim", text).expect("loads");
    for _ in 0..10 {
        let t = Instant::now();
        let r = run(&p, &parallel(10_000));
        assert!(r.expectation_met, "{:?} {:?}", r.outcome, r.bugcheck);
        assert_eq!(r.bugcheck.as_ref().map(|b| b.cpu), Some(0));
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}

/// Bounded: stops at the first lost update (about one run in 10 to 50 on
/// 2 cores, each run a few ms), gives up after 3000 runs.
#[test]
fn the_lost_update_race_loses_updates_for_real() {
    let p = repo("scenarios/explore/lost-update-race.sim");
    let mut lost = 0;
    for _ in 0..3000 {
        let r = run(&p, &parallel(10_000));
        if r.outcome == Outcome::AssertionFailed {
            lost += 1;
            assert!(
                r.output
                    .iter()
                    .any(|l| l.starts_with("Packets = ") && l != "Packets = 20"),
                "{:?}",
                r.output
            );
            break;
        }
    }
    assert!(lost > 0, "no update lost in 3000 parallel runs");
}

#[test]
fn timeout_cuts_off_a_run_that_never_ends() {
    let text = r#"
scenario "forever" { cpus 1; }
ULONG Never;
thread Spin on cpu 0 { while (Never == 0) { } }
"#;
    let p = load_source("forever.sim", text).expect("loads");
    let t = Instant::now();
    let r = run(&p, &parallel(200));
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(r.warnings.iter().any(|w| w.rule == "TIME_LIMIT_REACHED"));
    assert!(!r.expectation_met);
}

/// The scenario's locks are real locks with wall-clock statistics: every
/// grant the verifier's LOCKS table counts is one the real lock made, for
/// each family, and the guarded counters come out exact.
#[test]
fn wall_clock_lock_statistics_count_every_real_grant() {
    let text = r#"
scenario "families" { cpus 2; expect clean; }
KSPIN_LOCK Ordinary;
KSPIN_LOCK Queued;
EX_SPIN_LOCK Table;
ULONG A; ULONG B; ULONG C; ULONG Done;
VOID Work(VOID) {
    ULONG i; KIRQL Old; KLOCK_QUEUE_HANDLE H;
    for (i = 0; i < 300; i++) {
        KeAcquireSpinLock(&Ordinary, &Old); A = A + 1; KeReleaseSpinLock(&Ordinary, Old);
        KeAcquireInStackQueuedSpinLock(&Queued, &H); B = B + 1; KeReleaseInStackQueuedSpinLock(&H);
        Old = ExAcquireSpinLockExclusive(&Table); C = C + 1; ExReleaseSpinLockExclusive(&Table, Old);
        Old = ExAcquireSpinLockShared(&Table); ExReleaseSpinLockShared(&Table, Old);
    }
    if (InterlockedIncrement(&Done) == 2) { ASSERT(A == 600 && B == 600 && C == 600); }
}
thread T0 on cpu 0 { Work(); }
thread T1 on cpu 1 { Work(); }
"#;
    let p = load_source("families.sim", text).expect("loads");
    for _ in 0..5 {
        let r = run(&p, &parallel(10_000));
        assert!(r.expectation_met, "{:?} {:?}", r.outcome, r.bugcheck);
        let par = r.parallel.as_ref().expect("parallel facts");
        for (name, n) in [("Ordinary", 600), ("Queued", 600), ("Table", 1200)] {
            let wall = par.locks.iter().find(|l| l.name == name).expect(name);
            let virt = r.locks.iter().find(|l| l.name == name).expect(name);
            assert_eq!((wall.acquisitions, virt.acquisitions), (n, n), "{name}");
            assert!(wall.contended <= n && wall.max_hold_us >= wall.mean_hold_us);
            assert!(wall.contended == 0 || wall.max_spin_us > 0.0, "{name}");
        }
    }
}

/// Parallel mode's queued-node arena has 32 slots per processor: a 33rd
/// in-stack queued lock held at once is a run-time error, not a crash.
#[test]
fn more_queued_locks_held_at_once_than_arena_slots_is_a_runtime_error() {
    let text = r#"
scenario "deep" { cpus 1; }
KSPIN_LOCK Locks[40];
KLOCK_QUEUE_HANDLE Handles[40];
thread T on cpu 0 {
    ULONG i;
    for (i = 0; i < 40; i++) { KeAcquireInStackQueuedSpinLock(&Locks[i], &Handles[i]); }
}
"#;
    let p = load_source("deep.sim", text).expect("loads");
    let r = run(&p, &parallel(5_000));
    assert_eq!(r.outcome, Outcome::AssertionFailed, "{:?}", r.bugcheck);
    let all = format!("{:?}", r);
    assert!(all.contains("queue-node arena is full"), "{all}");
}

/// A thread blocked for ever in a wait with nothing left to wake it ends a
/// parallel run at once, as in deterministic mode (it used to wait out the
/// whole --timeout).
#[test]
fn threads_blocked_for_ever_end_the_run_at_once() {
    let text = r#"
scenario "blocked" { cpus 2; expect warning TIME_LIMIT_REACHED; }
KEVENT E;
NTSTATUS DriverEntry(VOID) { KeInitializeEvent(&E, NotificationEvent, FALSE); return STATUS_SUCCESS; }
thread T on cpu 0 { KeWaitForSingleObject(&E, Executive, KernelMode, FALSE, NULL); }
thread U on cpu 1 { ULONG x; x = 1; }
"#;
    let p = load_source("blocked.sim", text).expect("loads");
    for _ in 0..5 {
        let t = Instant::now();
        let r = run(&p, &parallel(10_000));
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "took {:?}",
            t.elapsed()
        );
        let w = r
            .warnings
            .iter()
            .find(|w| w.rule == "TIME_LIMIT_REACHED")
            .expect("warning");
        assert!(w.message.contains("blocked for ever"), "{}", w.message);
    }
}

/// Wall time runs from the start line to the last processor thread's end:
/// never shorter than any processor thread's own CPU time (it read about 0
/// when the calling thread woke late).
#[test]
fn wall_time_covers_every_processor_threads_cpu_time() {
    let p = repo("scenarios/rules/0x133-two-cpu-deadlock-bad.sim");
    for _ in 0..20 {
        let r = run(&p, &parallel(5_000));
        let par = r.parallel.as_ref().unwrap();
        for q in &par.processors {
            if q.steps_per_cpu_second > 0.0 {
                let cpu_ms = q.steps as f64 / q.steps_per_cpu_second * 1e3;
                assert!(
                    cpu_ms <= par.wall_ms * 1.05 + 0.05,
                    "cpu {} used {cpu_ms} ms of CPU in {} ms of wall time",
                    q.cpu,
                    par.wall_ms
                );
            }
        }
    }
}
