//! Expectations: does a run's outcome satisfy the scenario's `expect` lines?
//! Every line must hold; no line means `expect clean`.

use crate::report::{Outcome, RunReport};
use scenario::ast::Expect;
use vcpu::bugcheck::code_of_name;

/// What the run ended in, in expectation terms ("bugcheck 0xC4(0x1001)
/// DRIVER_VERIFIER_DETECTED_VIOLATION", "clean", "warning X at line N").
pub fn describe(r: &RunReport) -> String {
    match r.outcome {
        Outcome::Bugcheck => match &r.bugcheck {
            Some(b) if b.code == 0xC4 => format!(
                "bugcheck {:#X}({:#X}) {} at line {}",
                b.code, b.params[0], b.name, b.line
            ),
            Some(b) => format!("bugcheck {:#X} {} at line {}", b.code, b.name, b.line),
            None => "bugcheck".into(),
        },
        Outcome::AssertionFailed => match &r.assertion {
            Some(a) => format!("assertion_failed at line {}: {}", a.line, a.message),
            None => "assertion_failed".into(),
        },
        Outcome::Clean => match r.warnings.first() {
            Some(w) => format!("no bugcheck but warning {} at line {}", w.rule, w.line),
            None => "clean".into(),
        },
    }
}

/// Does `e` hold for `r` judged as if it were the file's only `expect`
/// line (contract v2, "Expectations")?
fn holds_alone(e: &Expect, r: &RunReport) -> bool {
    match e {
        Expect::Clean => r.outcome == Outcome::Clean && r.warnings.is_empty(),
        Expect::AssertionFailed => r.outcome == Outcome::AssertionFailed,
        Expect::Warning(w) => {
            r.outcome == Outcome::Clean && r.warnings.iter().any(|x| x.rule == w.name)
        }
        Expect::BugcheckName(n) => r
            .bugcheck
            .as_ref()
            .is_some_and(|b| Some(b.code) == code_of_name(&n.name)),
        Expect::BugcheckCode { code, param1 } => r
            .bugcheck
            .as_ref()
            .is_some_and(|b| b.code as u64 == *code && param1.is_none_or(|p| b.params[0] == p)),
        Expect::Any(items) => items.iter().any(|i| holds_alone(i, r)),
    }
}

/// Does `e` expect the run to end in a bugcheck or failed assertion — an
/// `expect bugcheck` or `expect assertion_failed` line, or an `expect any`
/// whose holding item is one?
fn expects_failure(e: &Expect, r: &RunReport) -> bool {
    match e {
        Expect::AssertionFailed | Expect::BugcheckName(_) | Expect::BugcheckCode { .. } => true,
        Expect::Any(items) => items
            .iter()
            .any(|i| expects_failure(i, r) && holds_alone(i, r)),
        _ => false,
    }
}

/// `None` if every expectation holds, else why not. Every line must hold;
/// `expect warning W` holds when W is among the warnings, and when no
/// line expects a bugcheck or failed assertion the run must also end
/// without one (contract v2, "Expectations").
pub fn evaluate(expects: &[(Expect, String)], r: &RunReport) -> Option<String> {
    let clean = [(Expect::Clean, "clean".to_string())];
    let expects = if expects.is_empty() {
        &clean[..]
    } else {
        expects
    };
    let failure_expected = expects.iter().any(|(e, _)| expects_failure(e, r));
    for (e, text) in expects {
        let ok = match e {
            Expect::Warning(w) => {
                (failure_expected || r.outcome == Outcome::Clean)
                    && r.warnings.iter().any(|x| x.rule == w.name)
            }
            other => holds_alone(other, r),
        };
        if !ok {
            return Some(format!("expected {text}, got {}", describe(r)));
        }
    }
    None
}
