//! Findings that do not end a run, and their de-duplication.
//!
//! A warning is reported once per rule and place: the same rule about the
//! same lock, routine or variable at the same line is recorded the first
//! time only, so a loop that holds a lock too long a thousand times gives one
//! line in the report. Warnings keep the order in which they were found.

use crate::Warning;
use std::collections::BTreeSet;

/// The warning rule names, as written in scenario `expect warning` lines.
pub mod rule {
    /// `_Guarded_by_` data touched without its lock, or written under a shared hold.
    pub const UNGUARDED_ACCESS: &str = "UNGUARDED_ACCESS";
    /// A spin lock held longer than the hold limit (25 µs by default).
    pub const HOLD_TIME_EXCEEDED: &str = "HOLD_TIME_EXCEEDED";
    /// An ISR ran longer than the ISR limit (25 µs by default).
    pub const ISR_TOO_LONG: &str = "ISR_TOO_LONG";
    /// A DPC ran longer than the DPC limit (100 µs by default).
    pub const DPC_TOO_LONG: &str = "DPC_TOO_LONG";
    /// A spin lock taken in an ISR and elsewhere at a lower IRQL without
    /// that interrupt's lock (contract v2, "Warnings").
    pub const ISR_LOCK_INVERSION: &str = "ISR_LOCK_INVERSION";
    /// An exception raised holding a spin lock or at raised IRQL was handled.
    pub const EXCEPTION_UNDER_SPIN_LOCK: &str = "EXCEPTION_UNDER_SPIN_LOCK";
    /// A DPC or ISR returned holding a spin lock it took.
    pub const LOCK_HELD_AT_RETURN: &str = "LOCK_HELD_AT_RETURN";
    /// IRQL dropped below DISPATCH_LEVEL while a spin lock is held.
    pub const IRQL_LOWERED_WHILE_HOLDING: &str = "IRQL_LOWERED_WHILE_HOLDING";
    /// KeStallExecutionProcessor asked for more than 50 µs.
    pub const STALL_TOO_LONG: &str = "STALL_TOO_LONG";
    /// The run was cut off.
    pub const TIME_LIMIT_REACHED: &str = "TIME_LIMIT_REACHED";
    /// Every rule, for reports and `expect` validation.
    pub const ALL: &[&str] = &[
        UNGUARDED_ACCESS,
        HOLD_TIME_EXCEEDED,
        ISR_TOO_LONG,
        DPC_TOO_LONG,
        ISR_LOCK_INVERSION,
        EXCEPTION_UNDER_SPIN_LOCK,
        LOCK_HELD_AT_RETURN,
        IRQL_LOWERED_WHILE_HOLDING,
        STALL_TOO_LONG,
        TIME_LIMIT_REACHED,
    ];
}

/// Warnings found so far, each (rule, subject, line) once.
#[derive(Clone, Debug, Default)]
pub(crate) struct WarningLog {
    list: Vec<Warning>,
    seen: BTreeSet<(&'static str, String, u32)>,
}

impl WarningLog {
    /// Record a warning about `subject` (lock, routine or variable name) at
    /// `line` unless the same rule already fired there; the message is only
    /// built when it is new.
    pub fn report(
        &mut self,
        rule: &'static str,
        subject: &str,
        line: u32,
        message: impl FnOnce() -> String,
    ) {
        if self.seen.insert((rule, subject.to_string(), line)) {
            self.list.push(Warning {
                rule,
                line,
                message: message(),
            });
        }
    }

    pub fn list(&self) -> &[Warning] {
        &self.list
    }
}

/// Nanoseconds as microseconds with one decimal: `31.2 µs`.
pub fn micros(ns: u64) -> String {
    // Integer arithmetic, rounded half up, so the text never depends on floats.
    let tenths = (ns + 50) / 100;
    format!("{}.{} µs", tenths / 10, tenths % 10)
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn micros_rounds_to_one_decimal() {
        assert_eq!(micros(0), "0.0 µs");
        assert_eq!(micros(25_000), "25.0 µs");
        assert_eq!(micros(31_249), "31.2 µs");
        assert_eq!(micros(31_250), "31.3 µs");
        assert_eq!(micros(999), "1.0 µs");
    }

    #[test]
    fn same_rule_subject_and_line_reported_once() {
        let mut log = WarningLog::default();
        log.report(rule::HOLD_TIME_EXCEEDED, "A", 3, || "first".into());
        log.report(rule::HOLD_TIME_EXCEEDED, "A", 3, || "second".into());
        log.report(rule::HOLD_TIME_EXCEEDED, "A", 4, || "other line".into());
        log.report(rule::HOLD_TIME_EXCEEDED, "B", 3, || "other lock".into());
        log.report(rule::ISR_TOO_LONG, "A", 3, || "other rule".into());
        let msgs: Vec<&str> = log.list().iter().map(|w| w.message.as_str()).collect();
        assert_eq!(msgs, ["first", "other line", "other lock", "other rule"]);
    }
}
