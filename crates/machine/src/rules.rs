//! The rule catalog: every rule that ends a run (a bugcheck, a failed
//! assertion) or marks it (a warning), with the `expect` text it produces,
//! the verifier check that enables it, an explanation for driver writers,
//! the fix, and the scenarios that show it.
//!
//! The catalog is data, `crates/machine/rules.json`, compiled in with
//! `include_str!` and parsed once by [`catalog`]. Stop codes, names and
//! parameter meanings come from [`vcpu::bugcheck`]; an entry whose outcome is
//! a bugcheck may leave out `summary`, and then gets that bugcheck's own
//! one-line summary. [`find`] looks a rule up the ways a user would name it:
//! by id, by bugcheck name, or by code (`0xC4(0x1001)`, `0xC4/0x1001`,
//! `0x1001`, `0xF`).

use scenario::check::WARNING_RULES;
use scenario::diag::nearest;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;
use vcpu::bugcheck::{code, code_name, code_of_name, Bugcheck};

/// The catalog's source text.
pub const CATALOG_JSON: &str = include_str!("../rules.json");

/// Which verifier check must be on for the rule to fire (`verifier ...;`
/// in the scenario header; `standard`, the default, turns them all on).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// Fires whatever the verifier settings, `verifier none;` included.
    Always,
    /// Driver Verifier's automatic checks: on with any verifier option.
    Automatic,
    DeadlockDetection,
    ForceIrqlChecking,
    DdiCompliance,
}

impl Check {
    /// The name as written in the catalog and in a `verifier` line.
    pub fn name(self) -> &'static str {
        match self {
            Check::Always => "always",
            Check::Automatic => "automatic",
            Check::DeadlockDetection => "deadlock_detection",
            Check::ForceIrqlChecking => "force_irql_checking",
            Check::DdiCompliance => "ddi_compliance",
        }
    }

    /// One line for `explain`.
    pub fn describe(self) -> String {
        match self {
            Check::Always => "always (even with `verifier none;`)".to_string(),
            Check::Automatic => "Driver Verifier's automatic checks (on with any `verifier` option; off with `verifier none;`)".to_string(),
            c => format!("{} (part of `verifier standard;`, the default)", c.name()),
        }
    }
}

/// A spin-lock family a rule concerns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// `KSPIN_LOCK` with KeAcquireSpinLock and friends.
    Ordinary,
    /// `KSPIN_LOCK` with the in-stack queued routines.
    Queued,
    /// `EX_SPIN_LOCK`.
    ReaderWriter,
    /// The spin lock of a `KINTERRUPT`.
    Interrupt,
}

impl Family {
    /// The family as a driver writer names it.
    pub fn label(self) -> &'static str {
        match self {
            Family::Ordinary => "KSPIN_LOCK (ordinary)",
            Family::Queued => "KSPIN_LOCK (in-stack queued)",
            Family::ReaderWriter => "EX_SPIN_LOCK",
            Family::Interrupt => "interrupt spin lock",
        }
    }
}

/// One rule of the catalog.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Stable upper-case name (`SPIN_LOCK_ALREADY_OWNED`, `IRQL_RAISE_TO_LOWER`).
    pub id: String,
    /// Exactly the `expect` text the rule produces: `bugcheck 0xC4(0x1001)`,
    /// `bugcheck SPIN_LOCK_ALREADY_OWNED`, `warning DPC_TOO_LONG`,
    /// `assertion_failed`.
    pub outcome: String,
    /// The verifier check that enables it.
    pub check: Check,
    /// One line. Filled from the bugcheck's summary when the entry has none.
    #[serde(default)]
    pub summary: String,
    /// What the kernel does, why it is fatal or risky, what Windows does.
    pub explanation: String,
    /// How to correct the driver.
    pub fix: String,
    /// The scenario that shows the rule (path from the repository root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bad: Option<String>,
    /// The corrected driver, ending clean.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<String>,
    /// Further scenarios showing the same rule another way (bad and fixed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<String>,
    /// The lock families concerned (empty: an IRQL or routine rule).
    pub families: Vec<Family>,
    /// What happens without the option that produces the rule (contract
    /// v2, outcome table, "without that option").
    #[serde(default)]
    pub without: String,
}

/// An outcome, parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected<'a> {
    /// A stop code, with the first parameter when the outcome names it.
    Bugcheck {
        code: u32,
        param1: Option<u64>,
    },
    /// A warning rule of [`WARNING_RULES`].
    Warning(&'a str),
    AssertionFailed,
}

/// Parse an outcome (`bugcheck NAME`, `bugcheck 0xC4(0x1001)`,
/// `bugcheck 0x10`, `warning RULE`, `assertion_failed`); the bugcheck name
/// or code and the warning must be known.
pub fn parse_outcome(text: &str) -> Result<Expected<'_>, String> {
    if text == "assertion_failed" {
        return Ok(Expected::AssertionFailed);
    }
    if let Some(w) = text.strip_prefix("warning ") {
        return if WARNING_RULES.contains(&w) {
            Ok(Expected::Warning(w))
        } else {
            Err(format!("`{w}` is not a warning rule"))
        };
    }
    let Some(b) = text.strip_prefix("bugcheck ") else {
        return Err(format!(
            "`{text}` is not an outcome (bugcheck ..., warning ..., assertion_failed)"
        ));
    };
    let (code, param1) = match code_of_name(b) {
        Some(c) => (c, None),
        None => {
            parse_code(b).ok_or_else(|| format!("`{b}` is neither a bugcheck name nor a code"))?
        }
    };
    if code_name(code).is_none() {
        return Err(format!("{code:#X} is not a stop code the emulator knows"));
    }
    Ok(Expected::Bugcheck { code, param1 })
}

/// `0xC4(0x1001)`, `0xC4/0x1001`, `0xC4 0x1001` or `0xF`: a code and
/// maybe a first parameter. Every number in `0x` hex.
fn parse_code(text: &str) -> Option<(u32, Option<u64>)> {
    // Codes are hex with or without `0x` (`133` is 0x133, as in `!analyze`).
    fn hex(s: &str) -> Option<u64> {
        let s = s.trim();
        let digits = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .unwrap_or(s);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u64::from_str_radix(digits, 16).ok()
    }
    let text = text.trim();
    let (code, param) = if let Some(open) = text.find('(') {
        let inner = text[open + 1..].strip_suffix(')')?;
        (&text[..open], Some(inner))
    } else if let Some((c, p)) = text.split_once(['/', ' ']) {
        (c, Some(p))
    } else {
        (text, None)
    };
    let code = u32::try_from(hex(code)?).ok()?;
    match param {
        Some(p) => Some((code, Some(hex(p)?))),
        None => Some((code, None)),
    }
}

impl Rule {
    /// The outcome, parsed (validated when the catalog was loaded).
    pub fn expected(&self) -> Expected<'_> {
        parse_outcome(&self.outcome).unwrap_or_else(|e| panic!("rule {}: {e}", self.id))
    }

    /// The bugcheck of the outcome (parameters other than the first zero),
    /// for its name, summary and parameter meanings.
    pub fn bugcheck(&self) -> Option<Bugcheck> {
        match self.expected() {
            Expected::Bugcheck { code, param1 } => {
                Some(Bugcheck::new(code, [param1.unwrap_or(0), 0, 0, 0]))
            }
            _ => None,
        }
    }

    /// The Driver Verifier option the rule needs, in the words of the
    /// contract's outcome table ("needs"): `automatic` (on with any
    /// verifier option), `deadlock_detection`, `force_irql_checking`,
    /// `ddi_compliance`, `always` (the kernel's own check) or `none` (the
    /// kernel's own check, reached when the verifier rule before it is off
    /// or does not apply: see [`Rule::needs_after`]).
    pub fn needs(&self) -> &'static str {
        if self.check != Check::Always {
            return self.check.name();
        }
        match self.expected() {
            Expected::Bugcheck { code, .. }
                if [
                    code::SPIN_LOCK_ALREADY_OWNED,
                    code::SPIN_LOCK_NOT_OWNED,
                    0xB8,
                ]
                .contains(&code) =>
            {
                "none"
            }
            _ => "always",
        }
    }

    /// For a rule that [`Rule::needs`] `none`: the verifier rules checked
    /// before it, whose absence lets it fire.
    pub fn needs_after(&self) -> Option<&'static str> {
        match self.expected() {
            Expected::Bugcheck { code, .. } if self.needs() == "none" => match code {
                code::SPIN_LOCK_ALREADY_OWNED => Some("0xC4(0x1000)"),
                code::SPIN_LOCK_NOT_OWNED => Some("0xC4(0x1004), 0xC4(0x1007)"),
                _ => Some("0xC4(0x120), 0xC4(0x121), 0xC4(0x122)"),
            },
            _ => None,
        }
    }

    /// Every scenario path the rule names: the bad one, the fixed one, then
    /// the others.
    pub fn scenarios(&self) -> Vec<&str> {
        self.bad
            .iter()
            .chain(self.fixed.iter())
            .chain(self.also.iter())
            .map(String::as_str)
            .collect()
    }

    /// Other rules that end a run in the same way: the same outcome text, or
    /// the same stop code with a first parameter that does not tell them
    /// apart (one gives none, or both give the same). So 0x133 names
    /// SPIN_DEADLOCK, DPC_WATCHDOG_TIMEOUT (P1 = 0) and
    /// DPC_WATCHDOG_CUMULATIVE (P1 = 1) as one another's, while the 0xC4
    /// subcodes stay apart.
    pub fn same_outcome(&self) -> impl Iterator<Item = &'static Rule> + '_ {
        let mine = self.expected();
        catalog().iter().filter(move |r| {
            r.id != self.id
                && (r.outcome == self.outcome
                    || match (&mine, r.expected()) {
                        (
                            Expected::Bugcheck { code: a, param1: p },
                            Expected::Bugcheck { code: b, param1: q },
                        ) => *a == b && (p.is_none() || q.is_none() || *p == q),
                        _ => false,
                    })
        })
    }
}

/// Parse a catalog: every entry's outcome must parse, and an entry without
/// a summary gets its bugcheck's (an assertion or warning must give one).
pub fn parse_catalog(json: &str) -> Result<Vec<Rule>, String> {
    let mut rules: Vec<Rule> = serde_json::from_str(json).map_err(|e| e.to_string())?;
    for r in &mut rules {
        let expected = parse_outcome(&r.outcome).map_err(|e| format!("rule {}: {e}", r.id))?;
        if r.summary.trim().is_empty() {
            match expected {
                Expected::Bugcheck { code, param1 } => {
                    r.summary = Bugcheck::new(code, [param1.unwrap_or(0), 0, 0, 0])
                        .summary()
                        .to_string();
                }
                _ => return Err(format!("rule {}: no summary", r.id)),
            }
        }
    }
    Ok(rules)
}

/// Every rule, in catalog order (parsed once).
pub fn catalog() -> &'static [Rule] {
    static CATALOG: OnceLock<Vec<Rule>> = OnceLock::new();
    CATALOG.get_or_init(|| {
        parse_catalog(CATALOG_JSON)
            .unwrap_or_else(|e| panic!("crates/machine/rules.json is invalid: {e}"))
    })
}

/// Look a rule up by id (any case; `-` or spaces for `_`), by its outcome
/// text, by bugcheck name, or by code: `0xC4(0x1001)`, `0xC4/0x1001`,
/// `0x1001` (a Driver Verifier subcode), `0xF`. When several rules share the
/// outcome the first in the catalog is returned (see [`Rule::same_outcome`]).
/// Not found: the nearest id or bugcheck name, if one is close.
pub fn find(query: &str) -> Result<&'static Rule, Option<&'static str>> {
    let rules = catalog();
    let q = query.trim();
    let id = q.to_ascii_uppercase().replace(['-', ' '], "_");
    if let Some(r) = rules.iter().find(|r| r.id == id) {
        return Ok(r);
    }
    if let Some(r) = rules.iter().find(|r| r.outcome.eq_ignore_ascii_case(q)) {
        return Ok(r);
    }
    let bare = strip_prefix_ignore_case(q, "bugcheck ")
        .or_else(|| strip_prefix_ignore_case(q, "warning "))
        .unwrap_or(q)
        .trim();
    let by_code = |code: u32, param1: Option<u64>| {
        rules.iter().find(|r| match r.expected() {
            Expected::Bugcheck { code: c, param1: p } => {
                c == code && (param1.is_none() || p == param1)
            }
            _ => false,
        })
    };
    if let Some(code) = code_of_name(&bare.to_ascii_uppercase()) {
        if let Some(r) = by_code(code, None) {
            return Ok(r);
        }
    }
    if let Some((n, param1)) = parse_code(bare) {
        let found = match param1 {
            Some(_) => by_code(n, param1),
            // A bare number: a stop code, else a Driver Verifier subcode.
            None => by_code(n, None)
                .or_else(|| by_code(code::DRIVER_VERIFIER_DETECTED_VIOLATION, Some(n as u64))),
        };
        if let Some(r) = found {
            return Ok(r);
        }
    }
    if let Some(r) = rules.iter().find(|r| r.id.eq_ignore_ascii_case(bare)) {
        return Ok(r);
    }
    Err(suggest(&id))
}

/// The catalog id of the rule a bugcheck with `code` and first parameter
/// `p1` reports (contract v2, JSON `bugcheck.rule`): the first rule whose
/// outcome names this code and P1, else the first naming the code alone.
pub fn rule_for_bugcheck(code: u32, p1: u64) -> Option<&'static str> {
    let rules = catalog();
    let exact = rules.iter().find(|r| {
        matches!(r.expected(), Expected::Bugcheck { code: c, param1: Some(p) } if c == code && p == p1)
    });
    exact
        .or_else(|| {
            rules.iter().find(|r| {
                matches!(r.expected(), Expected::Bugcheck { code: c, param1: None } if c == code)
            })
        })
        .map(|r| r.id.as_str())
}

/// The nearest rule id or bugcheck name of a rule, if one is close.
fn suggest(query: &str) -> Option<&'static str> {
    let rules = catalog();
    let names = rules.iter().filter_map(|r| match r.expected() {
        Expected::Bugcheck { code, .. } => code_name(code),
        _ => None,
    });
    nearest(query, rules.iter().map(|r| r.id.as_str()).chain(names))
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_parses() {
        let rules = parse_catalog(CATALOG_JSON).unwrap_or_else(|e| panic!("{e}"));
        assert!(rules.len() >= 30, "only {} rules", rules.len());
        assert_eq!(catalog().len(), rules.len());
        assert!(catalog().iter().all(|r| !r.summary.is_empty()));
    }

    #[test]
    fn outcomes_parse_into_codes_warnings_and_assertions() {
        assert_eq!(
            parse_outcome("bugcheck 0xC4(0x1001)"),
            Ok(Expected::Bugcheck {
                code: 0xC4,
                param1: Some(0x1001)
            })
        );
        assert_eq!(
            parse_outcome("bugcheck SPIN_LOCK_ALREADY_OWNED"),
            Ok(Expected::Bugcheck {
                code: 0xF,
                param1: None
            })
        );
        assert_eq!(
            parse_outcome("bugcheck 0x10"),
            Ok(Expected::Bugcheck {
                code: 0x10,
                param1: None
            })
        );
        assert_eq!(
            parse_outcome("warning DPC_TOO_LONG"),
            Ok(Expected::Warning("DPC_TOO_LONG"))
        );
        assert_eq!(
            parse_outcome("assertion_failed"),
            Ok(Expected::AssertionFailed)
        );
        for bad in [
            "bugcheck SPIN_LOCK_ALREADY_OWN",
            "bugcheck 0x999",
            "bugcheck 0xC4(0x1001",
            "warning HOLD_TIME",
            "clean",
            "SPIN_LOCK_ALREADY_OWNED",
        ] {
            assert!(parse_outcome(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn an_invalid_catalog_is_rejected() {
        let entry = |outcome: &str, summary: &str| {
            format!(
                r#"[{{"id": "X", "outcome": "{outcome}", "check": "always", "summary": "{summary}",
                    "explanation": "e", "fix": "f", "families": []}}]"#
            )
        };
        assert!(parse_catalog(&entry("bugcheck NOT_A_BUGCHECK", "s")).is_err());
        assert!(parse_catalog(&entry("warning NOT_A_WARNING", "s")).is_err());
        assert!(parse_catalog(&entry("assertion_failed", "")).is_err());
        assert!(parse_catalog(&entry("assertion_failed", "s")).is_ok());
        let unknown_field = r#"[{"id": "X", "outcome": "assertion_failed", "check": "always",
            "summary": "s", "explanation": "e", "fix": "f", "families": [], "extra": 1}]"#;
        assert!(parse_catalog(unknown_field).is_err());
        let unknown_check = entry("assertion_failed", "s").replace("always", "sometimes");
        assert!(parse_catalog(&unknown_check).is_err());
    }

    #[test]
    fn a_missing_summary_comes_from_the_bugcheck() {
        let json = r#"[{"id": "X", "outcome": "bugcheck 0xC4(0x1003)", "check": "always",
            "explanation": "e", "fix": "f", "families": ["ordinary"]}]"#;
        let rules = parse_catalog(json).unwrap();
        assert_eq!(
            rules[0].summary,
            Bugcheck::verifier(0x1003, 0, 0, 0).summary()
        );
    }

    #[test]
    fn codes_parse_in_every_spelling() {
        assert_eq!(parse_code("0xC4(0x1001)"), Some((0xC4, Some(0x1001))));
        assert_eq!(parse_code("0xc4/0x1001"), Some((0xC4, Some(0x1001))));
        assert_eq!(parse_code("0xC4 0x1001"), Some((0xC4, Some(0x1001))));
        assert_eq!(parse_code("0x0F"), Some((0xF, None)));
        // Bare numbers are hex (contract, `explain`).
        assert_eq!(parse_code("C4"), Some((0xC4, None)));
        assert_eq!(parse_code("C4(1001)"), Some((0xC4, Some(0x1001))));
        assert_eq!(parse_code("133"), Some((0x133, None)));
        assert_eq!(parse_code("0xZZ"), None);
        assert_eq!(parse_code("lock"), None);
        assert_eq!(parse_code("0xC4("), None);
    }

    #[test]
    fn find_by_id_name_and_code() {
        let id = |q: &str| find(q).map(|r| r.id.as_str());
        assert_eq!(id("SPIN_LOCK_ALREADY_OWNED"), Ok("SPIN_LOCK_ALREADY_OWNED"));
        assert_eq!(id("spin-lock-already-owned"), Ok("SPIN_LOCK_ALREADY_OWNED"));
        assert_eq!(id("0xF"), Ok("SPIN_LOCK_ALREADY_OWNED"));
        assert_eq!(id("0x0f"), Ok("SPIN_LOCK_ALREADY_OWNED"));
        assert_eq!(id("0x10"), Ok("SPIN_LOCK_NOT_OWNED"));
        assert_eq!(id("0xC4(0x30)"), Ok("IRQL_RAISE_TO_LOWER"));
        assert_eq!(id("0xC4/0x30"), Ok("IRQL_RAISE_TO_LOWER"));
        assert_eq!(id("0x30"), Ok("IRQL_RAISE_TO_LOWER"));
        assert_eq!(id("0xC4(0x1001)"), Ok("LOCK_HIERARCHY_VIOLATION"));
        assert_eq!(id("C4(1001)"), Ok("LOCK_HIERARCHY_VIOLATION"));
        assert_eq!(id("133"), Ok("SPIN_DEADLOCK"));
        assert_eq!(id("0xC4(0x20015)"), Ok("IRQL_KE_RELEASE_SPIN_LOCK"));
        assert_eq!(id("bugcheck 0xC4(0x1001)"), Ok("LOCK_HIERARCHY_VIOLATION"));
        assert_eq!(id("isr_lock_inversion"), Ok("ISR_LOCK_INVERSION"));
        assert_eq!(id("0x100a"), Ok("RETURNED_HOLDING_LOCK"));
        assert_eq!(
            id("DRIVER_IRQL_NOT_LESS_OR_EQUAL"),
            Ok("PAGEABLE_AT_RAISED_IRQL")
        );
        assert_eq!(id("0xD1"), Ok("PAGEABLE_AT_RAISED_IRQL"));
        assert_eq!(id("warning DPC_TOO_LONG"), Ok("DPC_TOO_LONG"));
        assert_eq!(id("assertion_failed"), Ok("ASSERTION_FAILED"));
    }

    #[test]
    fn unknown_rules_get_a_suggestion_when_one_is_close() {
        assert_eq!(
            find("SPIN_LOCK_ALREDY_OWNED").map(|r| &r.id),
            Err(Some("SPIN_LOCK_ALREADY_OWNED"))
        );
        assert_eq!(
            find("hold_time_exceded").map(|r| &r.id),
            Err(Some("HOLD_TIME_EXCEEDED"))
        );
        assert_eq!(find("NOPE").map(|r| &r.id), Err(None));
        assert!(find("0xC4(0x9999)").is_err());
        assert_eq!(find("0xB8").map(|r| r.id.as_str()), Ok("SWITCH_FROM_DPC"));
        assert_eq!(find("0xB8").map(|r| r.needs()), Ok("none"));
    }

    #[test]
    fn rules_sharing_an_outcome_know_each_other() {
        let r = find("IRQL_LOWER_TO_HIGHER").unwrap();
        assert_eq!(r.same_outcome().count(), 0);
        let r = find("SPIN_DEADLOCK").unwrap();
        let others: Vec<&str> = r.same_outcome().map(|r| r.id.as_str()).collect();
        assert_eq!(others, ["DPC_WATCHDOG_TIMEOUT", "DPC_WATCHDOG_CUMULATIVE"]);
        let r = find("DPC_WATCHDOG_TIMEOUT").unwrap();
        let others: Vec<&str> = r.same_outcome().map(|r| r.id.as_str()).collect();
        assert_eq!(others, ["SPIN_DEADLOCK"]);
        let r = find("LOCK_HIERARCHY_VIOLATION").unwrap();
        assert_eq!(r.same_outcome().count(), 0, "0xC4 subcodes stay apart");
    }
}
