//! `sim-runner rules` and `sim-runner explain RULE`: the rule catalog
//! ([`machine::rules`], data in `crates/machine/rules.json`) as an aligned
//! table, and one rule in full: outcome, verifier check, explanation, fix,
//! the bugcheck parameters (from `vcpu::bugcheck`), and the source of the
//! scenario that shows it, read relative to the current directory.
//!
//! Both take `--format json`: the catalog entries as JSON, `explain` with
//! the scenario's source added.

use crate::cli::{ExplainArgs, Format, RulesArgs};
use crate::exit;
use crate::text::{paragraph, sentence};
use machine::rules::{self, Expected, Rule};
use serde::Serialize;
use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;
use vcpu::bugcheck::{code, Bugcheck};

/// `sim-runner rules`; returns the exit status.
pub fn rules(args: &RulesArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let catalog = rules::catalog();
    let text = match args.format {
        Format::Text => render_table(catalog),
        Format::Json => match to_json(&catalog.iter().map(Listed::of).collect::<Vec<_>>()) {
            Ok(json) => json,
            Err(e) => return serialize_error(err, e),
        },
    };
    emit(out, &text)
}

/// `sim-runner explain RULE`; returns the exit status (2: unknown rule).
pub fn explain(args: &ExplainArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let rule = match rules::find(&args.rule) {
        Ok(rule) => rule,
        Err(suggestion) => {
            let _ = writeln!(err, "error: unknown rule `{}`", args.rule.trim());
            let _ = match suggestion {
                Some(s) => writeln!(
                    err,
                    "help: did you mean `{s}`? (`sim-runner rules` lists every rule)"
                ),
                None => writeln!(
                    err,
                    "help: `sim-runner rules` lists every rule; RULE may also be a bugcheck name or a code such as 0xC4(0x1001)"
                ),
            };
            return exit::REJECTED;
        }
    };
    let base = Path::new(".");
    let text = match args.format {
        Format::Text => render_explain(rule, base),
        Format::Json => {
            let explained = Explained {
                rule: Listed::of(rule),
                stop_code: rule.bugcheck().map(|b| b.code),
                bugcheck_name: rule.bugcheck().map(|b| b.name()),
                same_outcome: rule.same_outcome().map(|r| r.id.as_str()).collect(),
                bad_source: rule
                    .bad
                    .as_ref()
                    .and_then(|p| std::fs::read_to_string(base.join(p)).ok()),
            };
            match to_json(&explained) {
                Ok(json) => json,
                Err(e) => return serialize_error(err, e),
            }
        }
    };
    emit(out, &text)
}

/// `rules --format json`: a catalog entry with the option it needs and
/// its scenarios.
#[derive(Serialize)]
struct Listed<'a> {
    #[serde(flatten)]
    rule: &'a Rule,
    /// The option needed, as the contract's outcome table says ([`Rule::needs`]).
    needs: &'static str,
    /// For `needs: none`, the verifier rules checked first.
    needs_after: Option<&'static str>,
    /// Every scenario that shows the rule (bad, fixed, others).
    scenarios: Vec<&'a str>,
}

impl<'a> Listed<'a> {
    fn of(rule: &'a Rule) -> Self {
        Listed {
            rule,
            needs: rule.needs(),
            needs_after: rule.needs_after(),
            scenarios: rule.scenarios(),
        }
    }
}

/// `explain --format json`: the catalog entry and what `explain` adds.
#[derive(Serialize)]
struct Explained<'a> {
    #[serde(flatten)]
    rule: Listed<'a>,
    stop_code: Option<u32>,
    bugcheck_name: Option<&'static str>,
    same_outcome: Vec<&'a str>,
    /// The `bad` scenario's text; null when it has none or it cannot be read.
    bad_source: Option<String>,
}

/// The catalog as an aligned table: id, outcome, the option it needs,
/// summary; catalog order.
pub fn render_table(catalog: &[Rule]) -> String {
    let id_width = catalog.iter().map(|r| r.id.len()).max().unwrap_or(0).max(4);
    let outcome_width = catalog
        .iter()
        .map(|r| r.outcome.len())
        .max()
        .unwrap_or(0)
        .max(7);
    let needs_width = catalog
        .iter()
        .map(|r| r.needs().len())
        .max()
        .unwrap_or(0)
        .max(5);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:id_width$}  {:outcome_width$}  {:needs_width$}  SUMMARY",
        "RULE", "OUTCOME", "NEEDS"
    );
    for r in catalog {
        let _ = writeln!(
            s,
            "{:id_width$}  {:outcome_width$}  {:needs_width$}  {}",
            r.id,
            r.outcome,
            r.needs(),
            r.summary
        );
    }
    let _ = writeln!(
        s,
        "\n{} rules. `sim-runner explain RULE` shows one in full (RULE: an id, a bugcheck name or a code such as 0xC4(0x1001)).",
        catalog.len()
    );
    s
}

/// One rule in full. Scenario paths are read relative to `base`.
pub fn render_explain(rule: &Rule, base: &Path) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}\n", rule.id);
    let _ = writeln!(s, "outcome   {}{}", rule.outcome, outcome_note(rule));
    let _ = writeln!(s, "check     {}", rule.check.describe());
    let _ = match rule.needs_after() {
        Some(after) => writeln!(
            s,
            "needs     {} (reached when {after} is off or does not apply)",
            rule.needs()
        ),
        None => writeln!(s, "needs     {}", rule.needs()),
    };
    if !rule.without.is_empty() {
        let _ = writeln!(s, "without   {}", rule.without);
    }
    if !rule.families.is_empty() {
        let families: Vec<&str> = rule.families.iter().map(|f| f.label()).collect();
        let _ = writeln!(s, "families  {}", families.join(", "));
    }
    s.push('\n');
    paragraph(&mut s, &sentence(&rule.summary));
    s.push('\n');
    paragraph(&mut s, &rule.explanation);
    s.push_str("\nFix:\n");
    paragraph(&mut s, &rule.fix);
    if let Some(b) = rule.bugcheck() {
        parameters(&mut s, rule, &b);
    }
    let others: Vec<&str> = rule.same_outcome().map(|r| r.id.as_str()).collect();
    if !others.is_empty() {
        let _ = writeln!(
            s,
            "\n{}: {} (`sim-runner explain {}`)",
            if rule.bugcheck().is_some() {
                "Same stop code"
            } else {
                "Same outcome"
            },
            others.join(", "),
            others[0]
        );
    }

    s.push('\n');
    match &rule.bad {
        None => {
            let _ = writeln!(s, "Shown by: no scenario shows this rule yet.");
        }
        Some(bad) => {
            let _ = writeln!(s, "Shown by: {bad}\n");
            match std::fs::read_to_string(base.join(bad)) {
                Ok(text) => {
                    let width = text.lines().count().to_string().len();
                    for (i, line) in text.lines().enumerate() {
                        let numbered = format!("  {:>width$} | {line}", i + 1);
                        let _ = writeln!(s, "{}", numbered.trim_end());
                    }
                }
                Err(e) => {
                    let _ = writeln!(
                        s,
                        "  (cannot read it from here: {e}. It is {bad} in the repository; run sim-runner from the repository root to see it.)"
                    );
                }
            }
            s.push('\n');
        }
    }
    if let Some(fixed) = &rule.fixed {
        let _ = writeln!(s, "Corrected in: {fixed}");
    }
    for also in &rule.also {
        let _ = writeln!(s, "See also: {also}");
    }
    if let Some(bad) = &rule.bad {
        let _ = writeln!(s, "Run it: sim-runner run {bad}");
    }
    s
}

/// What the outcome text leaves implicit: the stop code of a name, the name
/// of a code.
fn outcome_note(rule: &Rule) -> String {
    match rule.expected() {
        Expected::Bugcheck { code, param1 } => {
            let b = Bugcheck::new(code, [param1.unwrap_or(0), 0, 0, 0]);
            if rule.outcome.contains(b.name()) {
                format!("  (stop code {code:#X})")
            } else {
                format!("  ({})", b.name())
            }
        }
        Expected::Warning(_) => "  (a warning: the run goes on)".to_string(),
        Expected::AssertionFailed => "  (the run stops at the failed assertion)".to_string(),
    }
}

/// The four bugcheck parameters as the report explains them. When the
/// outcome leaves P1 open and its meaning changes them (0x133), both forms.
fn parameters(s: &mut String, rule: &Rule, b: &Bugcheck) {
    let forms: Vec<Bugcheck> = match rule.expected() {
        Expected::Bugcheck { param1: None, .. }
            if b.code != code::DRIVER_VERIFIER_DETECTED_VIOLATION =>
        {
            let one = Bugcheck::new(b.code, [1, 0, 0, 0]);
            if one.param_meanings() == b.param_meanings() {
                vec![b.clone()]
            } else {
                vec![b.clone(), one]
            }
        }
        _ => vec![b.clone()],
    };
    for form in forms {
        let meanings = form.param_meanings();
        if meanings.iter().all(|m| m.is_empty()) {
            continue;
        }
        let _ = writeln!(s, "\nParameters of {} ({:#X}):", form.name(), form.code);
        for (i, m) in meanings.iter().enumerate() {
            if !m.is_empty() {
                let _ = writeln!(s, "  P{}  {m}", i + 1);
            }
        }
    }
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(value).map(|mut json| {
        json.push('\n');
        json
    })
}

fn serialize_error(err: &mut dyn Write, e: serde_json::Error) -> u8 {
    let _ = writeln!(err, "error: cannot serialize the catalog: {e}");
    exit::FAILED
}

/// Write the output; a failure is reported by the caller's output guard
/// ([`crate::output`]), the same way for every command.
fn emit(out: &mut dyn Write, text: &str) -> u8 {
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    exit::OK
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    #[test]
    fn table_has_one_aligned_line_per_rule_in_catalog_order() {
        let catalog = rules::catalog();
        let table = render_table(catalog);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("RULE "), "{}", lines[0]);
        let column = lines[0].find("OUTCOME").unwrap();
        for (r, line) in catalog.iter().zip(&lines[1..]) {
            assert!(line.starts_with(&format!("{} ", r.id)), "{line}");
            assert_eq!(line.find(r.outcome.as_str()), Some(column), "{line}");
            assert!(line.ends_with(&r.summary), "{line}");
        }
        assert_eq!(lines[catalog.len() + 1], "");
    }

    #[test]
    fn explain_shows_the_rule_and_its_scenario() {
        let rule = rules::find("0xC4(0x1001)").unwrap();
        let text = render_explain(rule, &repo());
        assert!(text.starts_with("LOCK_HIERARCHY_VIOLATION\n"), "{text}");
        assert!(
            text.contains("outcome   bugcheck 0xC4(0x1001)  (DRIVER_VERIFIER_DETECTED_VIOLATION)")
        );
        assert!(text.contains("check     deadlock_detection"));
        assert!(text.contains("Fix:\n"));
        assert!(text.contains("  P1  0x1001: deadlock detected"), "{text}");
        assert!(
            text.contains("without   Without deadlock detection"),
            "{text}"
        );
        let bad = rule.bad.as_deref().unwrap();
        assert!(text.contains(&format!("Shown by: {bad}\n")));
        assert!(text.contains(&format!(
            "Corrected in: {}\n",
            rule.fixed.as_deref().unwrap()
        )));
        assert!(text.ends_with(&format!("Run it: sim-runner run {bad}\n")));
        // The scenario's text, numbered, when the file is there.
        if repo().join(bad).is_file() {
            assert!(
                text.contains("| scenario \"0xC4-0x1001-lock-order-cycle-bad\" {"),
                "{text}"
            );
        }
        let order = [
            "outcome",
            "check",
            "Fix:",
            "Shown by:",
            "Corrected in:",
            "Run it:",
        ];
        let at: Vec<usize> = order.iter().map(|k| text.find(k).unwrap()).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{at:?}");
    }

    #[test]
    fn explain_says_where_an_unreadable_scenario_should_be() {
        let rule = rules::find("SPIN_LOCK_ALREADY_OWNED").unwrap();
        let text = render_explain(rule, Path::new("/nonexistent"));
        let bad = rule.bad.as_deref().unwrap();
        assert!(
            text.contains("(cannot read it from here: ")
                && text.contains(&format!("It is {bad} in the repository")),
            "{text}"
        );
    }

    #[test]
    fn watchdog_rules_show_both_parameter_forms() {
        let text = render_explain(rules::find("DPC_WATCHDOG_TIMEOUT").unwrap(), &repo());
        assert!(text.contains("P1  0: a single DPC or ISR"), "{text}");
        let text = render_explain(rules::find("DPC_WATCHDOG_CUMULATIVE").unwrap(), &repo());
        assert!(text.contains("P1  1: the processor stayed"), "{text}");
        let text = render_explain(rules::find("SPIN_DEADLOCK").unwrap(), &repo());
        assert!(text.contains("P1  0: a single DPC or ISR"), "{text}");
        assert!(text.contains("P1  1: the processor stayed"), "{text}");
    }

    #[test]
    fn rules_without_a_scenario_say_so() {
        // Every catalog rule has a scenario today; a rule without one (a new
        // rule, before its scenario is written) must still explain itself.
        let mut rule = rules::find("TIME_LIMIT_REACHED").unwrap().clone();
        rule.bad = None;
        rule.fixed = None;
        let text = render_explain(&rule, &repo());
        assert!(
            text.contains("Shown by: no scenario shows this rule yet."),
            "{text}"
        );
        assert!(!text.contains("Run it:"));
        assert!(!text.contains("Parameters"));
    }

    #[test]
    fn unknown_rule_is_rejected_with_a_suggestion() {
        let args = ExplainArgs {
            rule: "SPIN_LOCK_ALREDY_OWNED".into(),
            format: Format::Text,
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(explain(&args, &mut out, &mut err), exit::REJECTED);
        let err = String::from_utf8(err).unwrap();
        assert!(err.starts_with("error: unknown rule `SPIN_LOCK_ALREDY_OWNED`\nhelp: did you mean `SPIN_LOCK_ALREADY_OWNED`?"), "{err}");
        assert!(out.is_empty());
    }

    #[test]
    fn explain_finds_a_rule_from_every_spelling() {
        let by = |q: &str| rules::find(q).map(|r| r.id.as_str()).ok();
        let order = by("LOCK_HIERARCHY_VIOLATION");
        assert!(order.is_some());
        for q in [
            "0xC4(0x1001)",
            "0xC4/0x1001",
            "C4(1001)",
            "c4(1001)",
            "0x1001",
            "1001",
        ] {
            assert_eq!(by(q), order, "{q}");
        }
        let watchdog = by("DPC_WATCHDOG_VIOLATION");
        assert!(watchdog.is_some());
        for q in ["0x133", "133", "dpc_watchdog_violation"] {
            assert_eq!(by(q), watchdog, "{q}");
        }
        assert_eq!(by("hold_time_exceeded"), Some("HOLD_TIME_EXCEEDED"));
        assert_eq!(by("0xF"), by("SPIN_LOCK_ALREADY_OWNED"));
        assert_eq!(by("F"), by("SPIN_LOCK_ALREADY_OWNED"));
        assert_eq!(by("0xC4(0x99999)"), None);
    }

    #[test]
    fn json_forms_parse_back() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let args = RulesArgs {
            format: Format::Json,
        };
        assert_eq!(rules(&args, &mut out, &mut err), exit::OK);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v.as_array().unwrap().len(), rules::catalog().len());
        assert_eq!(v[0]["id"], rules::catalog()[0].id.as_str());
        for (r, j) in rules::catalog().iter().zip(v.as_array().unwrap()) {
            assert_eq!(j["needs"], r.needs(), "{}", r.id);
            assert!(j["explanation"].is_string() && j["fix"].is_string());
            assert_eq!(
                j["scenarios"].as_array().unwrap().len(),
                r.scenarios().len()
            );
        }
        let owned = v
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["id"] == "SPIN_LOCK_ALREADY_OWNED")
            .unwrap();
        assert_eq!(owned["needs"], "none");
        assert_eq!(owned["needs_after"], "0xC4(0x1000)");

        let (mut out, mut err) = (Vec::new(), Vec::new());
        let args = ExplainArgs {
            rule: "0xC4/0x1001".into(),
            format: Format::Json,
        };
        assert_eq!(explain(&args, &mut out, &mut err), exit::OK);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["id"], "LOCK_HIERARCHY_VIOLATION");
        assert_eq!(v["check"], "deadlock_detection");
        assert_eq!(v["stop_code"], 0xC4);
        assert_eq!(v["same_outcome"], serde_json::json!([]));
        assert!(v["without"].as_str().unwrap().contains("0x133"));
        assert!(v["families"]
            .as_array()
            .unwrap()
            .contains(&"reader_writer".into()));
    }
}
