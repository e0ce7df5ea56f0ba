//! The rule catalog (`crates/scenario/rules.json`) against the rest of the
//! project: its outcomes are real `expect` lines, its scenarios exist and
//! show the outcome, and every stop code, Driver Verifier subcode and
//! warning the engine can produce has a rule.

use machine::rules::{catalog, Expected, Rule};
use scenario::check::WARNING_RULES;
use scenario::{load_source, LoadError};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use vcpu::bugcheck::{code, code_of_name, Bugcheck};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The outcomes a scenario expects: the text of each `expect ...;` line.
fn expect_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split("//").next().unwrap_or("").trim())
        .filter_map(|l| l.strip_prefix("expect "))
        .filter_map(|l| l.trim().strip_suffix(';'))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn every_outcome_is_an_expect_line_the_checker_accepts_verbatim() {
    for r in catalog() {
        let text = format!(
            "scenario \"t\" {{ cpus 1; expect {}; }}\nthread T {{ }}\n",
            r.outcome
        );
        let program = match load_source("rule.sim", &text) {
            Ok(p) => p,
            Err(LoadError::Rejected(errs)) => {
                panic!(
                    "rule {}: `expect {};` rejected: {}",
                    r.id, r.outcome, errs[0]
                )
            }
            Err(LoadError::Io { message, .. }) => panic!("{message}"),
        };
        // The checker's canonical text, as `test` prints it, is the outcome itself.
        assert_eq!(program.expects.len(), 1);
        assert_eq!(program.expects[0].1, r.outcome, "rule {}", r.id);
    }
}

#[test]
fn outcomes_name_known_codes_subcodes_and_warnings() {
    for r in catalog() {
        match r.expected() {
            Expected::Bugcheck { code, param1 } => {
                let b = Bugcheck::new(code, [param1.unwrap_or(0), 0, 0, 0]);
                assert_ne!(b.name(), "UNKNOWN_BUGCHECK", "rule {}", r.id);
                if code == code::DRIVER_VERIFIER_DETECTED_VIOLATION {
                    let p1 = param1.unwrap_or_else(|| panic!("rule {}: 0xC4 needs P1", r.id));
                    assert_ne!(
                        b.summary(),
                        "Driver Verifier detected a violation",
                        "rule {}: unknown subcode {p1:#X}",
                        r.id
                    );
                }
            }
            Expected::Warning(w) => assert!(WARNING_RULES.contains(&w), "rule {}", r.id),
            Expected::AssertionFailed => {}
        }
    }
}

#[test]
fn ids_are_unique_and_upper_case() {
    let mut seen = BTreeSet::new();
    for r in catalog() {
        assert!(seen.insert(r.id.as_str()), "duplicate rule id {}", r.id);
        assert!(
            !r.id.is_empty()
                && r.id
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
            "rule id `{}` is not UPPER_CASE",
            r.id
        );
    }
}

#[test]
fn texts_are_written_out() {
    for r in catalog() {
        assert!(
            !r.summary.contains('\n'),
            "rule {}: summary on one line",
            r.id
        );
        assert!(
            r.explanation.len() > 200,
            "rule {}: explanation too short",
            r.id
        );
        assert!(r.fix.len() > 60, "rule {}: fix too short", r.id);
        // A bugcheck's own summary is taken from vcpu::bugcheck, not copied.
        if let Some(b) = r.bugcheck() {
            let raw: serde_json::Value =
                serde_json::from_str(machine::rules::CATALOG_JSON).unwrap();
            let entry = raw
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["id"] == r.id.as_str())
                .unwrap();
            assert_ne!(
                entry["summary"].as_str(),
                Some(b.summary()),
                "rule {}: leave `summary` out, it is the bugcheck's own",
                r.id
            );
        }
    }
}

fn scenario_paths(r: &Rule) -> Vec<&str> {
    r.bad
        .iter()
        .chain(&r.fixed)
        .chain(&r.also)
        .map(String::as_str)
        .collect()
}

#[test]
fn every_scenario_path_exists() {
    for r in catalog() {
        for p in scenario_paths(r) {
            assert!(
                p.starts_with("scenarios/") && p.ends_with(".sim"),
                "rule {}: `{p}` is not a scenario path",
                r.id
            );
            assert!(
                root().join(p).is_file(),
                "rule {}: {p} does not exist",
                r.id
            );
        }
        if let Some(fixed) = &r.fixed {
            assert!(r.bad.is_some(), "rule {}: `fixed` without `bad`", r.id);
            assert!(fixed.ends_with("-fixed.sim"), "rule {}: {fixed}", r.id);
        }
    }
}

#[test]
fn bad_scenarios_expect_the_outcome_and_fixed_ones_do_not() {
    for r in catalog() {
        let bad = r
            .bad
            .iter()
            .chain(r.also.iter().filter(|p| p.ends_with("-bad.sim")));
        for p in bad {
            let expects = expect_lines(&read(p));
            assert!(
                expects.contains(&r.outcome),
                "rule {}: {p} has no `expect {};` (it expects {expects:?})",
                r.id,
                r.outcome
            );
        }
        let fixed = r
            .fixed
            .iter()
            .chain(r.also.iter().filter(|p| p.ends_with("-fixed.sim")));
        for p in fixed {
            let expects = expect_lines(&read(p));
            assert!(
                expects.iter().all(|e| e == "clean"),
                "rule {}: {p} should end clean, it expects {expects:?}",
                r.id
            );
        }
    }
}

/// Rules with no scenario yet; every other rule must name its `bad` one.
const WITHOUT_SCENARIO: &[&str] = &[];

#[test]
fn rules_have_a_bad_scenario_unless_listed() {
    for r in catalog() {
        let listed = WITHOUT_SCENARIO.contains(&r.id.as_str());
        assert_eq!(
            r.bad.is_none(),
            listed,
            "rule {}: {}",
            r.id,
            if listed {
                "it has a scenario now, remove it from WITHOUT_SCENARIO"
            } else {
                "give it a `bad` scenario"
            }
        );
    }
}

/// Driver Verifier subcode names and values, read from `vcpu::bugcheck`'s `c4` module.
fn c4_subcodes() -> BTreeMap<String, u64> {
    let src = read("crates/vcpu/src/bugcheck.rs");
    let start = src.find("pub mod c4 {").expect("mod c4 in bugcheck.rs");
    let block = &src[start..start + src[start..].find('}').unwrap()];
    let mut map = BTreeMap::new();
    for line in block.lines() {
        let Some(rest) = line.trim().strip_prefix("pub const ") else {
            continue;
        };
        let (name, value) = rest
            .split_once(": u64 = ")
            .expect("pub const NAME: u64 = 0x..;");
        let value = value.trim_end_matches(';').trim_start_matches("0x");
        map.insert(name.to_string(), u64::from_str_radix(value, 16).unwrap());
    }
    map
}

/// Upper-case identifiers following `prefix` in the non-test code of the
/// engine and the verifier (`code::SPIN_LOCK_NOT_OWNED`, `c4::SELF_DEADLOCK`).
fn raised(prefix: &str) -> BTreeSet<String> {
    let mut files = vec![];
    let mut dirs = vec![
        root().join("crates/machine/src"),
        root().join("crates/verifier/src"),
    ];
    while let Some(dir) = dirs.pop() {
        for e in fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                dirs.push(path);
            } else if name.ends_with(".rs") && !name.starts_with("test") {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut found = BTreeSet::new();
    for f in files {
        let src = fs::read_to_string(&f).unwrap();
        let src = src.split("#[cfg(test)]").next().unwrap();
        for (i, _) in src.match_indices(prefix) {
            let ident: String = src[i + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if !ident.is_empty() {
                found.insert(ident);
            }
        }
    }
    found
}

#[test]
fn every_stop_code_and_subcode_the_engine_raises_has_a_rule() {
    let codes: BTreeSet<u32> = raised("code::")
        .iter()
        .map(|n| code_of_name(n).unwrap_or_else(|| panic!("code::{n} is not in CODES")))
        .collect();
    let names = c4_subcodes();
    let subcodes: BTreeSet<u64> = raised("c4::")
        .iter()
        .map(|n| {
            *names
                .get(n)
                .unwrap_or_else(|| panic!("c4::{n} is not in bugcheck.rs"))
        })
        .collect();
    // Subcodes are raised through `Bugcheck::verifier`, i.e. as 0xC4.
    let mut codes = codes;
    if !subcodes.is_empty() {
        codes.insert(code::DRIVER_VERIFIER_DETECTED_VIOLATION);
    }
    // The scan must see what the engine certainly raises.
    assert!(codes.contains(&code::SPIN_LOCK_ALREADY_OWNED), "{codes:?}");
    assert!(codes.contains(&code::DPC_WATCHDOG_VIOLATION), "{codes:?}");
    assert!(
        subcodes.contains(&0x1001) && subcodes.contains(&0x30),
        "{subcodes:?}"
    );

    let rule_codes: Vec<(u32, Option<u64>)> = catalog()
        .iter()
        .filter_map(|r| match r.expected() {
            Expected::Bugcheck { code, param1 } => Some((code, param1)),
            _ => None,
        })
        .collect();
    for c in &codes {
        assert!(
            rule_codes.iter().any(|(rc, _)| rc == c),
            "the engine raises {c:#X} ({}) but no rule has that outcome",
            vcpu::bugcheck::code_name(*c).unwrap_or("?")
        );
    }
    for s in &subcodes {
        assert!(
            rule_codes.contains(&(code::DRIVER_VERIFIER_DETECTED_VIOLATION, Some(*s))),
            "the engine raises 0xC4({s:#X}) but no rule has that outcome"
        );
    }
    // And the other way round: no rule for something the engine never raises.
    for (c, p) in &rule_codes {
        assert!(codes.contains(c), "no code raises {c:#X}");
        if *c == code::DRIVER_VERIFIER_DETECTED_VIOLATION {
            assert!(
                subcodes.contains(&p.unwrap()),
                "no code raises 0xC4({:#X})",
                p.unwrap()
            );
        }
    }
}

#[test]
fn every_warning_has_a_rule() {
    for w in WARNING_RULES {
        let outcome = format!("warning {w}");
        assert!(
            catalog().iter().any(|r| r.outcome == outcome),
            "no rule for {outcome}"
        );
    }
    for w in verifier::rule::ALL {
        assert!(
            WARNING_RULES.contains(w),
            "verifier warning {w} cannot be expected"
        );
    }
}

#[test]
fn both_assertion_forms_have_a_rule() {
    let n = catalog()
        .iter()
        .filter(|r| r.expected() == Expected::AssertionFailed)
        .count();
    assert_eq!(n, 2, "ASSERT and PAGED_CODE");
}

#[test]
fn every_switchable_check_is_one_the_verifier_line_accepts() {
    use machine::rules::Check;
    use scenario::program::Checks;
    for r in catalog() {
        if r.check != Check::Always && r.check != Check::Automatic {
            assert!(
                Checks::NAMES.contains(&r.check.name()),
                "{}: check `{}` is not a `verifier` name",
                r.id,
                r.check.name()
            );
        }
    }
    // The contract's "needs" column.
    let switchable: BTreeSet<&str> = catalog()
        .iter()
        .filter(|r| r.check != Check::Always)
        .map(|r| r.id.as_str())
        .collect();
    assert!(switchable.contains("LOCK_HIERARCHY_VIOLATION"));
    assert!(switchable.contains("PAGEABLE_AT_RAISED_IRQL"));
    assert!(switchable.contains("RELEASED_OUT_OF_ORDER"));
    assert!(switchable.contains("SELF_DEADLOCK"));
    assert!(!switchable.contains("SPIN_LOCK_ALREADY_OWNED"));
    assert!(!switchable.contains("ISR_LOCK_INVERSION"));
}
