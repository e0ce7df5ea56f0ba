//! Rule tests on hand-built event streams: each rule fires when it should,
//! and stays silent on correct code.

use crate::testkit::*;
use crate::{rule, Config, LockStats};
use vcpu::bugcheck::{c4, code};
use vcpu::{AcquireKind, LockFamily, LockMode};

fn no_deadlock_detection() -> Config {
    Config {
        deadlock_detection: false,
        ..Config::default()
    }
}

// ---------------------------------------------------------------- lock order

#[test]
fn consistent_order_over_many_iterations_is_clean() {
    let mut s = Script::new();
    s.thread(0, "P0").thread(1, "P1");
    for _ in 0..50 {
        for cpu in [0, 1] {
            s.on(cpu)
                .acquire(10, A)
                .acquire_at_dpc(11, B)
                .write(12, FREE)
                .release(13, B)
                .release(14, A);
        }
    }
    s.check().assert_clean();
}

#[test]
fn nested_consistent_order_across_families_is_clean() {
    // Table (shared or exclusive) → Stats (ordinary) → A (queued) → Irq (interrupt lock).
    let mut s = Script::new();
    s.thread(0, "Reader").thread(1, "Writer");
    for i in 0..10 {
        s.on(0)
            .acquire_shared(5, TABLE)
            .acquire_at_dpc(6, STATS)
            .acquire_with(
                7,
                A,
                LockFamily::Queued,
                LockMode::Exclusive,
                AcquireKind::AtDpcLevel,
                i,
            )
            .acquire(8, IRQ)
            .write(9, COUNT)
            .write(9, STATE)
            .release(10, IRQ)
            .release(11, A)
            .release(12, STATS)
            .release(13, TABLE);
        s.on(1)
            .acquire(20, TABLE)
            .write(21, ENTRIES)
            .acquire_at_dpc(22, STATS)
            .release(23, STATS)
            .acquire_at_dpc(24, A)
            .acquire(25, IRQ)
            .release(26, IRQ)
            .release(27, A)
            .release(28, TABLE);
    }
    s.check().assert_clean();
}

#[test]
fn a_dag_of_orders_is_not_a_cycle() {
    // A→B, A→C and B→C: every order agrees with A < B < C.
    let mut s = Script::new();
    s.thread(0, "T0")
        .acquire(1, A)
        .acquire_at_dpc(2, B)
        .release(3, B)
        .release(4, A);
    s.thread(1, "T1")
        .acquire(5, A)
        .acquire_at_dpc(6, C)
        .release(7, C)
        .release(8, A);
    s.thread(2, "T2")
        .acquire(9, B)
        .acquire_at_dpc(10, C)
        .release(11, C)
        .release(12, B);
    s.thread(3, "T3")
        .acquire(13, A)
        .acquire_at_dpc(14, B)
        .acquire_at_dpc(15, C);
    s.check().assert_clean();
}

/// D-01: a cycle through a reader/writer and an ordinary lock, reported
/// although the two threads never overlap in time.
fn mixed_family_cycle() -> Script {
    let mut s = Script::new();
    s.thread(0, "Reader")
        .acquire_shared(8, TABLE)
        .acquire(9, STATS)
        .release(10, STATS)
        .release(11, TABLE)
        .end();
    s.thread(1, "Writer")
        .wait(50_000)
        .acquire(19, STATS)
        .acquire_at_dpc(20, TABLE);
    s
}

#[test]
fn two_lock_cycle_is_reported_even_without_overlap() {
    let out = mixed_family_cycle().check();
    let v = out.violation_at_last_request();
    assert_eq!(v.bugcheck.code, code::DRIVER_VERIFIER_DETECTED_VIOLATION);
    assert_eq!(
        v.bugcheck.params,
        [c4::LOCK_HIERARCHY_VIOLATION, addr(TABLE), addr(STATS), 0]
    );
    assert_eq!(
        v.detail,
        "lock hierarchy violation: thread Writer requested Table (line 20) while holding \
         Stats, closing the lock-order cycle Table → Stats → Table"
    );
    assert_eq!(v.analysis.len(), 3);
    assert_eq!(
        v.analysis[0],
        "thread Reader: Table (line 8) then Stats (line 9)"
    );
    assert_eq!(
        v.analysis[1],
        "thread Writer: Stats (line 19) then Table (line 20)"
    );
    assert!(v.analysis[2].starts_with("Table and Stats are taken in opposite orders"));
}

#[test]
fn cycle_is_not_checked_without_deadlock_detection() {
    let out = mixed_family_cycle().run(no_deadlock_detection());
    out.assert_clean();
}

#[test]
fn cycle_within_one_thread_is_reported() {
    let mut s = Script::new();
    s.thread(0, "T")
        .acquire(1, A)
        .acquire_at_dpc(2, B)
        .release(3, B)
        .release(4, A)
        .acquire(5, B)
        .acquire_at_dpc(6, A);
    let out = s.check();
    let v = out.violation_at_last_request();
    assert_eq!(
        v.bugcheck.params,
        [c4::LOCK_HIERARCHY_VIOLATION, addr(A), addr(B), 0]
    );
    assert_eq!(v.analysis[0], "thread T: A (line 1) then B (line 2)");
    assert_eq!(v.analysis[1], "thread T: B (line 5) then A (line 6)");
}

#[test]
fn three_lock_cycle_is_reported() {
    let mut s = Script::new();
    s.thread(0, "P0")
        .acquire(10, A)
        .acquire_at_dpc(11, B)
        .release(12, B)
        .release(13, A);
    s.thread(1, "P1")
        .acquire(20, B)
        .acquire_at_dpc(21, C)
        .release(22, C)
        .release(23, B);
    s.thread(2, "P2").acquire(30, C).acquire_at_dpc(31, A);
    let out = s.check();
    let v = out.violation_at_last_request();
    assert_eq!(
        v.bugcheck.params,
        [c4::LOCK_HIERARCHY_VIOLATION, addr(A), addr(C), 0]
    );
    assert!(
        v.detail.ends_with("the lock-order cycle A → B → C → A"),
        "{}",
        v.detail
    );
    assert_eq!(
        v.analysis[..3],
        [
            "thread P0: A (line 10) then B (line 11)",
            "thread P1: B (line 20) then C (line 21)",
            "thread P2: C (line 30) then A (line 31)",
        ]
    );
    assert!(
        v.analysis[3].contains("on 3 processors"),
        "{}",
        v.analysis[3]
    );
}

#[test]
fn shared_holds_take_part_in_cycles() {
    let mut s = Script::new();
    s.thread(0, "R1")
        .acquire_shared(1, TABLE)
        .acquire_at_dpc(2, A)
        .release(3, A)
        .release(4, TABLE);
    s.thread(1, "R2").acquire(5, A);
    s.on(1).acquire_with(
        6,
        TABLE,
        LockFamily::ReaderWriter,
        LockMode::Shared,
        AcquireKind::AtDpcLevel,
        0,
    );
    let out = s.check();
    assert_eq!(
        out.violation_at_last_request().bugcheck.params[1],
        addr(TABLE)
    );
}

#[test]
fn interrupt_lock_taken_by_the_kernel_is_not_in_the_lock_order() {
    // Contract v2: deadlock detection sees the driver's own acquisitions,
    // not the interrupt lock the kernel takes before an ISR. cpu 0: T0 holds
    // A when the interrupt arrives; cpu 1: T1 takes Irq then A. Version 1
    // reported A → Irq → A as 0xC4/0x1001; Windows does not.
    let mut s = Script::new();
    s.thread(0, "T0")
        .acquire(3, A)
        .isr(0, "OnInterrupt")
        .end()
        .on(0)
        .release(4, A);
    s.thread(1, "T1").acquire(8, IRQ).acquire_at_dpc(9, A);
    let out = s.check();
    assert!(out.violation.is_none(), "{:#?}", out.violation);
}

#[test]
fn isr_start_alone_adds_no_lock_order_edge() {
    // Same as above, but the engine emits no acquire events for the ISR.
    let mut s = Script::new();
    s.thread(0, "T0")
        .acquire(3, A)
        .isr_bare(0, "OnInterrupt")
        .end()
        .on(0)
        .release(4, A);
    s.thread(1, "T1").acquire(8, IRQ).acquire_at_dpc(9, A);
    assert!(s.check().violation.is_none());
}

// ------------------------------------------------------------ ISR inversion

#[test]
fn isr_lock_also_taken_at_passive_is_reported_isr_first() {
    let mut s = Script::new();
    s.thread(0, "Idle")
        .isr(0, "OnInterrupt")
        .acquire_at_dpc(12, STATS)
        .release(13, STATS)
        .end();
    s.thread(1, "Worker").acquire(20, STATS);
    let out = s.check();
    // Contract v2: the tool's warning, never a stop code.
    assert!(out.violation.is_none(), "{:#?}", out.violation);
    assert_eq!(out.rules(), [rule::ISR_LOCK_INVERSION]);
    let w = &out.warnings[0];
    assert_eq!(w.line, 20);
    assert!(
        w.message.contains("ISR OnInterrupt takes Stats at DIRQL 7 (line 12) while holding the interrupt spin lock of Irq"),
        "{}",
        w.message
    );
    assert!(
        w.message.contains("thread Worker takes Stats at PASSIVE_LEVEL (line 20) without holding the interrupt spin lock of Irq"),
        "{}",
        w.message
    );
    assert!(w
        .message
        .contains("If the interrupt of Irq arrives on the processor of thread Worker"));
}

#[test]
fn isr_lock_also_taken_in_a_dpc_is_reported_dpc_first() {
    let mut s = Script::new();
    s.dpc(1, "Poll")
        .acquire_at_dpc(30, STATS)
        .release(31, STATS)
        .end();
    s.thread(0, "Idle")
        .isr(0, "OnInterrupt")
        .acquire_at_dpc(12, STATS);
    let out = s.check();
    assert!(out.violation.is_none());
    assert_eq!(out.rules(), [rule::ISR_LOCK_INVERSION]);
    assert!(
        out.warnings[0]
            .message
            .contains("DPC Poll at DISPATCH_LEVEL"),
        "{}",
        out.warnings[0].message
    );
}

#[test]
fn lock_used_only_in_isrs_is_clean() {
    let mut s = Script::new();
    s.thread(0, "Idle");
    for _ in 0..5 {
        s.isr(0, "OnInterrupt")
            .acquire_at_dpc(12, STATS)
            .write(13, COUNT)
            .release(14, STATS)
            .end();
    }
    s.check().assert_clean();
}

#[test]
fn lock_always_taken_under_the_interrupt_lock_is_clean() {
    let mut s = Script::new();
    s.thread(0, "Idle")
        .isr(0, "OnInterrupt")
        .acquire_at_dpc(12, STATS)
        .release(13, STATS)
        .end();
    // KeSynchronizeExecution(&Irq, ...) whose routine takes Stats.
    s.thread(1, "Worker")
        .acquire(20, IRQ)
        .acquire_at_dpc(21, STATS)
        .release(22, STATS)
        .release(23, IRQ);
    s.check().assert_clean();
}

#[test]
fn interlocked_list_lock_shared_with_an_isr_is_clean() {
    // ExInterlocked routines disable interrupts while they hold the lock.
    let mut s = Script::new();
    s.thread(0, "Idle")
        .isr(0, "OnInterrupt")
        .interlocked(12, STATS)
        .end();
    s.thread(1, "Worker")
        .interlocked(20, STATS)
        .interlocked(21, STATS);
    s.check().assert_clean();
}

#[test]
fn inversion_is_a_warning_without_deadlock_detection_too() {
    let mut s = Script::new();
    s.thread(0, "Idle")
        .isr(0, "OnInterrupt")
        .acquire_at_dpc(12, STATS)
        .release(13, STATS)
        .end();
    s.thread(1, "Worker").acquire(20, STATS).release(21, STATS);
    let out = s.run(no_deadlock_detection());
    assert!(out.violation.is_none());
    assert_eq!(out.rules(), [rule::ISR_LOCK_INVERSION]);
}

// --------------------------------------------------------- guarded access

#[test]
fn guarded_access_with_the_lock_held_is_clean() {
    let mut s = Script::new();
    s.thread(0, "T")
        .acquire(1, STATS)
        .read(2, COUNT)
        .write(3, COUNT)
        .release(4, STATS)
        .acquire_shared(5, TABLE)
        .read(6, ENTRIES)
        .convert(7, TABLE)
        .write(8, ENTRIES)
        .release(9, TABLE)
        .acquire(10, TABLE)
        .write(11, ENTRIES)
        .release(12, TABLE)
        .acquire(13, IRQ) // KeAcquireInterruptSpinLock
        .write(14, STATE)
        .release(15, IRQ)
        .read(16, FREE)
        .write(17, FREE)
        .print(18, "done");
    s.isr(0, "OnInterrupt").write(30, STATE).end();
    s.isr_bare(0, "OnInterrupt").write(30, STATE).end();
    s.check().assert_clean();
}

#[test]
fn guarded_access_without_the_lock_warns() {
    let mut s = Script::new();
    s.thread(0, "T")
        .write(3, COUNT)
        .read(4, ENTRIES)
        .read(5, STATE);
    // Held on another processor does not count.
    s.thread(1, "U").acquire(7, STATS);
    s.on(0).write(8, COUNT);
    let out = s.check();
    assert_eq!(out.rules(), [rule::UNGUARDED_ACCESS; 4]);
    let msgs: Vec<&str> = out.warnings.iter().map(|w| w.message.as_str()).collect();
    assert_eq!(
        msgs[0],
        "Count written by thread T (line 3) without holding Stats"
    );
    assert_eq!(
        msgs[1],
        "Entries read by thread T (line 4) without holding Table"
    );
    assert_eq!(
        msgs[2],
        "State read by thread T (line 5) without holding the interrupt spin lock of Irq"
    );
    assert_eq!(out.warnings[3].line, 8);
}

#[test]
fn write_under_a_shared_hold_warns() {
    let mut s = Script::new();
    s.thread(0, "T")
        .acquire_shared(6, TABLE)
        .read(7, ENTRIES)
        .write(7, ENTRIES)
        .release(8, TABLE);
    let out = s.check();
    assert_eq!(out.warnings.len(), 1);
    let w = &out.warnings[0];
    assert_eq!((w.rule, w.line), (rule::UNGUARDED_ACCESS, 7));
    assert!(
        w.message.contains("under a shared hold of Table"),
        "{}",
        w.message
    );
}

#[test]
fn isr_touching_data_its_interrupted_thread_guards_warns() {
    let mut s = Script::new();
    s.thread(0, "T")
        .acquire(1, STATS)
        .isr(0, "OnInterrupt")
        .write(12, COUNT)
        .end();
    let out = s.check();
    assert_eq!(out.rules(), [rule::UNGUARDED_ACCESS]);
    assert!(out.warnings[0]
        .message
        .contains("the context it interrupted holds it"));
}

// ------------------------------------------------------------------ timing

#[test]
fn long_hold_warns_with_duration_limit_and_line() {
    let mut s = Script::new();
    s.thread(0, "T")
        .acquire(9, STATS)
        .wait(30_000)
        .release(10, STATS);
    let out = s.check();
    assert_eq!(out.warnings.len(), 1);
    let w = &out.warnings[0];
    assert_eq!((w.rule, w.line), (rule::HOLD_TIME_EXCEEDED, 9));
    // Acquired at +100 ns, released 100 + 30 000 ns later.
    assert_eq!(
        w.message,
        "Stats held for 30.1 µs by thread T (limit 25.0 µs), acquired at line 9"
    );
}

#[test]
fn short_holds_are_clean() {
    let mut s = Script::new();
    s.thread(0, "T");
    for _ in 0..100 {
        s.acquire(9, STATS)
            .wait(24_000)
            .release(10, STATS)
            .wait(1_000_000);
    }
    s.check().assert_clean();
}

#[test]
fn interrupt_lock_hold_limits() {
    // The ISR's own hold is judged by ISR_TOO_LONG only; a
    // KeAcquireInterruptSpinLock hold by HOLD_TIME_EXCEEDED.
    let mut s = Script::new();
    s.thread(0, "T").isr(0, "OnInterrupt").wait(40_000).end();
    s.on(0).acquire(20, IRQ).wait(26_000).release(21, IRQ);
    let out = s.check();
    assert_eq!(out.rules(), [rule::ISR_TOO_LONG, rule::HOLD_TIME_EXCEEDED]);
    assert!(out.warnings[0]
        .message
        .starts_with("ISR OnInterrupt ran for 40."));
    assert!(out.warnings[1].message.starts_with("Irq held for 26."));
}

#[test]
fn long_dpc_warns_and_counts_nested_isrs() {
    let mut s = Script::new();
    s.thread(0, "T");
    s.dpc(0, "Quick").wait(90_000).end();
    s.dpc(0, "Slow")
        .wait(60_000)
        .isr(0, "OnInterrupt")
        .wait(20_000)
        .end()
        .on(0)
        .wait(20_000)
        .end();
    s.dpc(0, "Slower").wait(150_000).end();
    let out = s.check();
    assert_eq!(out.rules(), [rule::DPC_TOO_LONG, rule::DPC_TOO_LONG]);
    assert!(
        out.warnings[0].message.starts_with("DPC Slow ran for 100."),
        "{}",
        out.warnings[0].message
    );
    assert!(out.warnings[0].message.ends_with("(limit 100.0 µs)"));
    assert!(out.warnings[1]
        .message
        .starts_with("DPC Slower ran for 150."));
}

#[test]
fn warnings_are_deduplicated_per_rule_place_and_line() {
    let mut s = Script::new();
    s.thread(0, "T");
    for _ in 0..5 {
        s.acquire(9, STATS).wait(30_000).release(10, STATS);
        s.write(11, COUNT).write(11, COUNT);
        s.isr(0, "OnInterrupt").wait(30_000).end();
        s.on(0);
    }
    s.acquire(12, STATS)
        .wait(30_000)
        .release(13, STATS)
        .write(14, COUNT);
    let out = s.check();
    let got: Vec<(&str, u32)> = out.warnings.iter().map(|w| (w.rule, w.line)).collect();
    assert_eq!(
        got,
        [
            (rule::HOLD_TIME_EXCEEDED, 9),
            (rule::UNGUARDED_ACCESS, 11),
            (rule::ISR_TOO_LONG, 0),
            (rule::HOLD_TIME_EXCEEDED, 12),
            (rule::UNGUARDED_ACCESS, 14),
        ]
    );
}

#[test]
fn custom_limits_are_honoured() {
    let mut s = Script::new();
    s.thread(0, "T")
        .acquire(1, STATS)
        .wait(5_000)
        .release(2, STATS);
    let strict = Config {
        hold_limit_ns: 1_000,
        ..Config::default()
    };
    assert_eq!(s.run(strict).rules(), [rule::HOLD_TIME_EXCEEDED]);
    s.check().assert_clean();
}

#[test]
fn same_stream_same_report() {
    let a = mixed_family_cycle().check();
    let b = mixed_family_cycle().check();
    assert_eq!(a.violation, b.violation);
}

// ------------------------------------------------------------- statistics

#[test]
fn lock_statistics() {
    let mut s = Script::new();
    s.thread(0, "R0").thread(1, "R1").thread(2, "W");
    // Two shared holders overlapping on cpus 0 and 1: 10 µs and 3 µs.
    s.on(0).acquire_shared(1, TABLE);
    s.on(1)
        .acquire_shared(1, TABLE)
        .wait(3_000)
        .release(2, TABLE);
    s.on(0).wait(10_000).release(2, TABLE);
    // A writer that spun 7 µs, held 1 µs.
    s.on(2)
        .acquire_with(
            3,
            TABLE,
            LockFamily::ReaderWriter,
            LockMode::Exclusive,
            AcquireKind::Raising,
            7_000,
        )
        .wait(900)
        .release(4, TABLE);
    // Stats: three uncontended, one spun 200 ns.
    s.on(0)
        .acquire(5, STATS)
        .release(6, STATS)
        .acquire(5, STATS)
        .release(6, STATS);
    s.on(1).acquire(5, STATS).release(6, STATS);
    s.on(2)
        .acquire_with(
            5,
            STATS,
            LockFamily::Ordinary,
            LockMode::Exclusive,
            AcquireKind::Raising,
            200,
        )
        .release(6, STATS);
    // An ISR's hold of its interrupt lock, with and without a Released event.
    s.isr(0, "OnInterrupt").wait(2_000).end();
    s.isr_bare(1, "OnInterrupt").end();

    let mut stats = LockStats::new(6);
    for ev in s.events() {
        stats.observe(ev);
    }
    let t = stats.get(TABLE);
    assert_eq!((t.acquisitions, t.contended), (3, 1));
    assert_eq!(t.longest_spin_ns, 7_000);
    // cpu 0: acquired at its t, released 100 + 10 000 ns later.
    assert_eq!(t.longest_hold_ns, 10_100);
    let st = stats.get(STATS);
    assert_eq!(
        (st.acquisitions, st.contended, st.longest_spin_ns),
        (4, 1, 200)
    );
    assert_eq!(st.longest_hold_ns, 100);
    let irq = stats.get(IRQ);
    assert_eq!((irq.acquisitions, irq.contended), (1, 0));
    assert_eq!(irq.longest_hold_ns, 2_100);
    assert_eq!(stats.get(A), crate::LockStat::default());
    assert_eq!(stats.get(vcpu::LockId(99)), crate::LockStat::default());
    assert_eq!(stats.all().len(), 6);
}
