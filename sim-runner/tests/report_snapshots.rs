//! Snapshot tests of the text report and the JSON object for hand-built
//! run reports: the rendering is pinned byte for byte.

use machine::report::{
    AssertionReport, BugcheckReport, CpuState, Frame, HeldLock, LockStatsReport, RunReport,
    WarningReport,
};
use machine::Outcome;
use sim_runner::text::{outcome_summary, render};
use vcpu::bugcheck::c4;
use vcpu::Bugcheck;

const FILE: &str = "scenarios/rules/recursive.sim";
const ORDER_FILE: &str = "scenarios/rules/lock-order.sim";

fn frame(file: &str, routine: &str, line: u32) -> Frame {
    Frame {
        routine: routine.into(),
        line,
        location: format!("{file}:{line}"),
    }
}

/// A `BugcheckReport` whose name, meanings and summary come from vcpu.
fn bugcheck(
    b: Bugcheck,
    detail: &str,
    cpu: u32,
    irql: u8,
    line: u32,
    context: &str,
) -> BugcheckReport {
    BugcheckReport {
        code: b.code,
        name: b.name().into(),
        rule: machine::rules::rule_for_bugcheck(b.code, b.params[0])
            .unwrap_or("")
            .into(),
        params: b.params,
        params_hex: b.params.map(|p| format!("0x{p:X}")),
        param_meanings: b.param_meanings().map(String::from),
        summary: b.summary().into(),
        detail: detail.into(),
        cpu,
        irql,
        line,
        context: context.into(),
        backtrace: vec![],
        analysis: vec![],
    }
}

fn base(name: &str, outcome: Outcome) -> RunReport {
    RunReport {
        scenario: name.into(),
        title: None,
        file: FILE.into(),
        seed: Some(1),
        strategy: Some("timing".into()),
        depth: None,
        mode: "deterministic".into(),
        cpus: 2,
        outcome,
        bugcheck: None,
        assertion: None,
        warnings: vec![],
        expectations: vec![],
        expectation_met: true,
        expectation_failure: None,
        output: vec![],
        locks: vec![],
        processors: vec![],
        virtual_time_us: 0.0,
        statements: 0,
        parallel: None,
    }
}

fn lock(
    name: &str,
    family: &str,
    acq: u64,
    contended: u64,
    hold: f64,
    spin: f64,
) -> LockStatsReport {
    LockStatsReport {
        name: name.into(),
        family: family.into(),
        acquisitions: acq,
        contended,
        longest_hold_us: hold,
        longest_spin_us: spin,
    }
}

/// The contract's example: a recursive KeAcquireSpinLock.
fn recursive_acquire() -> RunReport {
    let mut b = bugcheck(
        Bugcheck::new(vcpu::bugcheck::code::SPIN_LOCK_ALREADY_OWNED, [0xffff_e000_0000_1000, 0, 0, 0]),
        "KeAcquireSpinLock(&DeviceLock) at line 15 in Recurse: processor 0 already holds DeviceLock, taken at line 15 by thread Worker; it would spin on its own lock forever.",
        0,
        2,
        15,
        "thread Worker",
    );
    b.backtrace = vec![
        frame(FILE, "Recurse", 15),
        frame(FILE, "Recurse", 18),
        frame(FILE, "Worker", 22),
    ];
    RunReport {
        title: Some("A routine that calls itself while holding a spin lock".into()),
        bugcheck: Some(b),
        expectations: vec!["bugcheck SPIN_LOCK_ALREADY_OWNED".into()],
        processors: vec![
            CpuState {
                cpu: 0,
                irql: 2,
                running: "thread Worker".into(),
                waiting: None,
                held: vec![HeldLock {
                    lock: "DeviceLock".into(),
                    mode: "ordinary".into(),
                    by: "thread Worker".into(),
                    line: 15,
                    file: None,
                }],
            },
            CpuState {
                cpu: 1,
                irql: 0,
                running: "idle".into(),
                waiting: None,
                held: vec![],
            },
        ],
        output: vec!["depth 1\n".into()],
        locks: vec![lock("DeviceLock", "KSPIN_LOCK", 1, 0, 0.85, 0.0)],
        virtual_time_us: 1.375,
        statements: 9,
        ..base("recursive-acquire", Outcome::Bugcheck)
    }
}

/// A lock-order cycle found by deadlock detection, with analysis, two
/// processors holding locks, warnings, DbgPrint output and an expectation
/// that did not hold.
fn lock_order_cycle() -> RunReport {
    let mut b = bugcheck(
        Bugcheck::verifier(c4::LOCK_HIERARCHY_VIOLATION, 0xffff_e000_0000_1040, 0xffff_e000_0000_1000, 0),
        "KeAcquireSpinLock(&ListLock) at line 31 in Consume closes a cycle in the lock order: DeviceLock is taken before ListLock at line 24 and ListLock before DeviceLock at line 30.",
        1,
        2,
        31,
        "DPC DrainDpc",
    );
    b.backtrace = vec![
        frame(ORDER_FILE, "Consume", 31),
        frame(ORDER_FILE, "DrainDpc", 40),
    ];
    b.analysis = vec![
        "lock order cycle (2 locks):".into(),
        "  DeviceLock -> ListLock   first at line 24 (thread Producer, cpu 0)".into(),
        "  ListLock -> DeviceLock   first at line 30 (DPC DrainDpc, cpu 1)".into(),
        "fix: take DeviceLock and ListLock in one global order everywhere".into(),
    ];
    RunReport {
        scenario: "lock-order-cycle".into(),
        file: ORDER_FILE.into(),
        seed: Some(0x2a),
        cpus: 2,
        bugcheck: Some(b),
        warnings: vec![
            WarningReport {
                rule: "HOLD_TIME_EXCEEDED".into(),
                line: 24,
                message: "DeviceLock held 31.2 µs (limit 25 µs) by thread Producer".into(),
            },
            WarningReport {
                rule: "UNGUARDED_ACCESS".into(),
                line: 102,
                message: "Count is _Guarded_by_(DeviceLock) but was written without it".into(),
            },
        ],
        expectations: vec!["bugcheck 0xC4(0x1003)".into()],
        expectation_met: false,
        expectation_failure: Some(
            "expected bugcheck 0xC4(0x1003), got bugcheck 0xC4(0x1001)".into(),
        ),
        processors: vec![
            CpuState {
                cpu: 0,
                irql: 2,
                running: "thread Producer".into(),
                waiting: Some("spinning on ListLock".into()),
                held: vec![HeldLock {
                    lock: "DeviceLock".into(),
                    mode: "ordinary".into(),
                    by: "thread Producer".into(),
                    line: 24,
                    file: None,
                }],
            },
            CpuState {
                cpu: 1,
                irql: 2,
                running: "DPC DrainDpc".into(),
                waiting: None,
                held: vec![
                    HeldLock {
                        lock: "ListLock".into(),
                        mode: "queued".into(),
                        by: "DPC DrainDpc".into(),
                        line: 30,
                        file: None,
                    },
                    HeldLock {
                        lock: "StatsLock".into(),
                        mode: "exclusive".into(),
                        by: "DPC DrainDpc".into(),
                        line: 29,
                        file: None,
                    },
                ],
            },
        ],
        output: vec!["producer: queued 3\n".into(), "drain: start".into()],
        locks: vec![
            lock("DeviceLock", "KSPIN_LOCK", 12, 3, 31.2, 4.125),
            lock("ListLock", "KSPIN_LOCK", 7, 0, 2.5, 0.0),
            lock("StatsLock", "EX_SPIN_LOCK", 1024, 117, 0.3, 12.75),
        ],
        virtual_time_us: 187.5,
        statements: 1412,
        ..base("lock-order-cycle", Outcome::Bugcheck)
    }
}

fn clean_run() -> RunReport {
    RunReport {
        scenario: "counter-two-cpus".into(),
        file: "scenarios/tutorial/counter.sim".into(),
        title: Some("Two processors increment a counter under one lock".into()),
        warnings: vec![WarningReport {
            rule: "HOLD_TIME_EXCEEDED".into(),
            line: 12,
            message: "CounterLock held 40.0 µs (limit 25 µs) by thread Adder#1".into(),
        }],
        expectations: vec!["warning HOLD_TIME_EXCEEDED".into()],
        output: vec!["Counter = 200".into()],
        locks: vec![lock("CounterLock", "KSPIN_LOCK", 200, 57, 40.0, 39.5)],
        virtual_time_us: 12.3,
        statements: 1234,
        ..base("counter-two-cpus", Outcome::Clean)
    }
}

fn assertion_failed() -> RunReport {
    RunReport {
        scenario: "paged-code-under-lock".into(),
        file: "scenarios/rules/paged.sim".into(),
        cpus: 1,
        seed: Some(7),
        assertion: Some(AssertionReport {
            message: "PAGED_CODE() at IRQL 2 (DISPATCH_LEVEL): ReadConfig is pageable and must run at or below APC_LEVEL".into(),
            cpu: 0,
            irql: 2,
            line: 8,
            context: "thread Init".into(),
            backtrace: vec![
                Frame { routine: "ReadConfig".into(), line: 8, location: "scenarios/rules/paged.sim:8".into() },
                Frame { routine: "Init".into(), line: 20, location: "scenarios/rules/paged.sim:20".into() },
            ],
        }),
        expectations: vec!["assertion_failed".into()],
        processors: vec![CpuState {
            cpu: 0,
            irql: 2,
            running: "thread Init".into(),
            waiting: None,
            held: vec![HeldLock { lock: "ConfigLock".into(), mode: "ordinary".into(), by: "thread Init".into(), line: 19, file: None }],
        }],
        locks: vec![lock("ConfigLock", "KSPIN_LOCK", 1, 0, 0.25, 0.0)],
        virtual_time_us: 0.5,
        statements: 4,
        ..base("paged-code-under-lock", Outcome::AssertionFailed)
    }
}

fn json(report: &RunReport) -> String {
    serde_json::to_string_pretty(report).expect("report serializes")
}

#[test]
fn text_recursive_acquire() {
    insta::assert_snapshot!(render(&recursive_acquire()));
}

#[test]
fn text_lock_order_cycle() {
    insta::assert_snapshot!(render(&lock_order_cycle()));
}

#[test]
fn text_clean_run() {
    insta::assert_snapshot!(render(&clean_run()));
}

#[test]
fn text_assertion_failed() {
    insta::assert_snapshot!(render(&assertion_failed()));
}

#[test]
fn json_recursive_acquire() {
    insta::assert_snapshot!(json(&recursive_acquire()));
}

#[test]
fn json_lock_order_cycle() {
    insta::assert_snapshot!(json(&lock_order_cycle()));
}

#[test]
fn json_clean_run() {
    insta::assert_snapshot!(json(&clean_run()));
}

#[test]
fn json_assertion_failed() {
    insta::assert_snapshot!(json(&assertion_failed()));
}

#[test]
fn rendering_is_deterministic() {
    for report in [
        recursive_acquire(),
        lock_order_cycle(),
        clean_run(),
        assertion_failed(),
    ] {
        assert_eq!(render(&report), render(&report.clone()));
        assert!(!render(&report).contains('\u{1b}'), "no escape codes");
    }
}

#[test]
fn one_line_outcomes() {
    assert_eq!(
        outcome_summary(&recursive_acquire()),
        "bugcheck 0xF SPIN_LOCK_ALREADY_OWNED"
    );
    assert_eq!(
        outcome_summary(&lock_order_cycle()),
        "bugcheck 0xC4(0x1001) DRIVER_VERIFIER_DETECTED_VIOLATION"
    );
    assert_eq!(
        outcome_summary(&clean_run()),
        "clean with 1 warning (HOLD_TIME_EXCEEDED)"
    );
    assert_eq!(outcome_summary(&assertion_failed()), "assertion_failed");
    assert_eq!(outcome_summary(&base("x", Outcome::Clean)), "clean");
}

#[test]
fn json_has_the_contract_fields() {
    let value: serde_json::Value = serde_json::from_str(&json(&lock_order_cycle())).unwrap();
    for key in [
        "scenario",
        "seed",
        "mode",
        "outcome",
        "bugcheck",
        "warnings",
        "expectation_met",
        "output",
        "locks",
    ] {
        assert!(value.get(key).is_some(), "missing {key}");
    }
    assert_eq!(value["outcome"], "bugcheck");
    assert_eq!(value["bugcheck"]["code"], 196);
    assert_eq!(value["bugcheck"]["params"][0], 4097);
    assert_eq!(value["bugcheck"]["backtrace"][0]["routine"], "Consume");
    assert_eq!(value["warnings"][0]["rule"], "HOLD_TIME_EXCEEDED");
}
