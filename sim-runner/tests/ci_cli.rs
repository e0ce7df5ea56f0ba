//! `test --format json|junit`, `*.bad.sim` inputs, shell completions, the
//! man page and `--color`: the parts of the command line a CI job or a
//! first install relies on.

mod common;

use common::{bin, bin_in_repo, stderr, stdout};
use quick_xml::events::Event;
use quick_xml::Reader;
use std::fs;
use std::path::PathBuf;

fn scratch(name: &str) -> PathBuf {
    common::scratch("ci-cli-tests", name)
}

const PASSING: &str = r#"scenario "ok" { cpus 1; expect clean; }
ULONG X;
thread T { X = 1; }
"#;

const FAILING: &str = r#"scenario "wrong" { cpus 1; expect bugcheck 0x133; }
ULONG X;
thread T { X = 1; }
"#;

/// A parsed XML element: name, attributes, children, text.
#[derive(Debug, Default)]
struct Element {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<Element>,
    text: String,
}

impl Element {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    fn all(&self, name: &str) -> Vec<&Element> {
        self.children.iter().filter(|c| c.name == name).collect()
    }
}

/// Parse a whole document with quick-xml (failing on malformed XML) into
/// its root element.
fn parse_xml(xml: &str) -> Element {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Element> = vec![Element::default()];
    loop {
        let event = reader
            .read_event()
            .unwrap_or_else(|e| panic!("bad XML: {e}\n{xml}"));
        let open = |e: &quick_xml::events::BytesStart| Element {
            name: String::from_utf8(e.name().as_ref().to_vec()).unwrap(),
            attrs: e
                .attributes()
                .map(|a| {
                    let a = a.expect("well-formed attribute");
                    (
                        String::from_utf8(a.key.as_ref().to_vec()).unwrap(),
                        a.unescape_value().expect("attribute value").into_owned(),
                    )
                })
                .collect(),
            ..Element::default()
        };
        match event {
            Event::Start(e) => stack.push(open(&e)),
            Event::Empty(e) => {
                let el = open(&e);
                stack.last_mut().unwrap().children.push(el);
            }
            Event::End(_) => {
                let el = stack.pop().unwrap();
                stack.last_mut().expect("balanced tags").children.push(el);
            }
            Event::Text(t) => stack
                .last_mut()
                .unwrap()
                .text
                .push_str(&t.unescape().expect("text")),
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(stack.len(), 1, "unclosed elements");
    let mut doc = stack.pop().unwrap();
    assert_eq!(doc.children.len(), 1, "one root element");
    doc.children.pop().unwrap()
}

/// The structural rules of the JUnit schema that CI tools read: counts
/// that add up, required attributes, non-negative times, failures only
/// inside test cases, with a message.
fn check_junit_rules(root: &Element) {
    assert_eq!(root.name, "testsuites");
    let mut total = 0;
    let mut failed = 0;
    for suite in root.all("testsuite") {
        assert!(suite.attr("name").is_some_and(|n| !n.is_empty()));
        let cases = suite.all("testcase");
        assert!(!cases.is_empty(), "empty testsuite");
        assert_eq!(suite.attr("tests"), Some(cases.len().to_string().as_str()));
        let suite_failed = cases
            .iter()
            .filter(|c| !c.all("failure").is_empty())
            .count();
        assert_eq!(
            suite.attr("failures"),
            Some(suite_failed.to_string().as_str())
        );
        assert_eq!(suite.attr("errors"), Some("0"));
        for c in &cases {
            assert!(c.attr("name").is_some_and(|n| !n.is_empty()));
            assert!(c.attr("classname").is_some());
            let t: f64 = c.attr("time").unwrap().parse().expect("time is a number");
            assert!(t >= 0.0);
            for f in c.all("failure") {
                assert!(f.attr("message").is_some_and(|m| !m.is_empty()));
            }
            assert!(c.all("failure").len() <= 1);
        }
        total += cases.len();
        failed += suite_failed;
    }
    assert_eq!(root.attr("tests"), Some(total.to_string().as_str()));
    assert_eq!(root.attr("failures"), Some(failed.to_string().as_str()));
}

#[test]
fn junit_lists_every_repository_scenario_and_parses() {
    let out_file = scratch("junit-repo").join("report.xml");
    let o = bin_in_repo()
        .args(["test", "scenarios", "--format", "junit", "--output"])
        .arg(&out_file)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // Standard output keeps the text lines and the tally.
    let text = stdout(&o);
    assert!(
        text.lines().last().unwrap().ends_with(" passed, 0 failed"),
        "{text}"
    );
    let xml = fs::read_to_string(&out_file).unwrap();
    let root = parse_xml(&xml);
    check_junit_rules(&root);
    let scenarios = text.lines().filter(|l| l.starts_with("PASS")).count();
    let cases: usize = root
        .all("testsuite")
        .iter()
        .map(|s| s.all("testcase").len())
        .sum();
    assert_eq!(cases, scenarios, "one testcase per scenario (one seed)");
    let suites: Vec<&str> = root
        .all("testsuite")
        .iter()
        .map(|s| s.attr("name").unwrap())
        .collect();
    for folder in ["scenarios/rules", "scenarios/tutorial", "scenarios/rejects"] {
        assert!(suites.contains(&folder), "{suites:?}");
    }
}

#[test]
fn junit_failure_carries_the_expectation_and_the_outcome() {
    let dir = scratch("junit-fail");
    fs::write(dir.join("ok.sim"), PASSING).unwrap();
    fs::write(dir.join("wrong.sim"), FAILING).unwrap();
    let o = bin()
        .args(["test", "--format", "junit", "--seeds", "2"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let root = parse_xml(&stdout(&o));
    check_junit_rules(&root);
    let suites = root.all("testsuite");
    assert_eq!(suites.len(), 1);
    let cases = suites[0].all("testcase");
    assert_eq!(cases.len(), 4, "two files, two seeds each");
    let failures: Vec<&Element> = cases.iter().flat_map(|c| c.all("failure")).collect();
    assert_eq!(failures.len(), 2);
    let msg = failures[0].attr("message").unwrap();
    assert!(msg.contains("0x133") && msg.contains("clean"), "{msg}");
    assert!(
        failures[0].text.contains("EXPECTATION"),
        "the report: {}",
        failures[0].text
    );
    assert!(cases[2].attr("name").unwrap().contains("seed"), "{cases:?}");
}

#[test]
fn json_follows_the_contract() {
    let dir = scratch("json");
    fs::write(dir.join("ok.sim"), PASSING).unwrap();
    fs::write(dir.join("wrong.sim"), FAILING).unwrap();
    fs::write(
        dir.join("broken.sim"),
        "scenario \"b\" { cpus 1; }\nthread T { Y = 1; }\n",
    )
    .unwrap();
    let o = bin()
        .args(["test", "--format", "json"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert_eq!(v["passed"], 1);
    assert_eq!(v["failed"], 2);
    let files = v["files"].as_array().unwrap();
    assert_eq!(files.len(), 3);
    for f in files {
        for key in ["file", "passed", "seed", "failure", "report"] {
            assert!(f.get(key).is_some(), "{key} missing in {f}");
        }
    }
    let by = |name: &str| {
        files
            .iter()
            .find(|f| f["file"].as_str().unwrap().ends_with(name))
            .unwrap()
    };
    assert_eq!(by("ok.sim")["passed"], true);
    assert!(by("ok.sim")["failure"].is_null());
    assert_eq!(by("ok.sim")["seed"], 1);
    assert_eq!(by("ok.sim")["report"]["outcome"], "clean");
    assert!(by("wrong.sim")["failure"]
        .as_str()
        .unwrap()
        .contains("0x133"));
    assert!(by("broken.sim")["report"].is_null());
    assert!(by("broken.sim")["seed"].is_null());
}

#[test]
fn bad_sim_passes_only_with_its_diagnostics() {
    let dir = scratch("bad-sim");
    let body = "scenario \"x\" { cpus 1; }\nKSPIN_LOCK Lock;\nthread T { KIRQL Old; KeAcquireSpinLock(&Lok, &Old); }\n";
    let good = format!("// Rejected with 1 error. Expected diagnostic:\n//   good.bad.sim:5:42: `Lok` is not declared (help: did you mean `Lock`?)\n{body}");
    let wrong =
        format!("// Expected diagnostic:\n//   wrong.bad.sim:5:43: `Lok` is not declared\n{body}");
    fs::write(dir.join("good.bad.sim"), good).unwrap();
    fs::write(dir.join("wrong.bad.sim"), wrong).unwrap();
    fs::write(dir.join("accepted.bad.sim"), PASSING).unwrap();
    let o = bin().arg("test").arg(&dir).output().unwrap();
    let text = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    let line = |name: &str| text.lines().find(|l| l.contains(name)).unwrap().to_string();
    assert!(line("good.bad.sim").starts_with("PASS"), "{text}");
    assert!(
        line("wrong.bad.sim").starts_with("FAIL") && line("wrong.bad.sim").contains("5:43"),
        "{text}"
    );
    assert!(
        line("accepted.bad.sim").contains("must be rejected"),
        "{text}"
    );
    assert!(text.ends_with("1 passed, 2 failed\n"), "{text}");
}

#[test]
fn three_independent_errors_are_reported_together() {
    let dir = scratch("three-errors");
    let file = dir.join("three.sim");
    fs::write(
        &file,
        "scenario \"t\" { cpus 1; verifier deadlok; }\nKSPIN_LOCK Lock;\nthread T {\n    KIRQL Old;\n    KeAcquireSpinLock(&Lok, &Old);\n    KeReleaseSpinLock(&Lock);\n}\n",
    )
    .unwrap();
    let o = bin().arg("run").arg(&file).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("unknown verifier option `deadlok`"), "{err}");
    assert!(err.contains("`Lok` is not declared"), "{err}");
    assert!(err.contains("takes 2 arguments, but 1 was given"), "{err}");
    assert!(
        err.ends_with("error: scenario rejected with 3 errors\n"),
        "{err}"
    );
}

#[test]
fn completions_for_every_shell_mention_the_subcommands() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let o = bin().args(["completions", shell]).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{shell}");
        let script = stdout(&o);
        for sub in ["run", "test", "explore", "rules", "explain"] {
            assert!(script.contains(sub), "{shell} completion lacks {sub}");
        }
        assert!(script.contains("junit"), "{shell}: value completions");
    }
    assert_eq!(
        bin()
            .args(["completions", "tcsh"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn man_page_is_roff_with_every_subcommand() {
    let o = bin().arg("man").output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    let page = stdout(&o);
    assert!(
        page.starts_with(".ie") || page.contains(".TH"),
        "{}",
        &page[..200.min(page.len())]
    );
    assert!(page.contains(".TH sim-runner"), "title header");
    for sub in ["run", "test", "explore", "rules", "explain", "completions"] {
        assert!(
            page.contains(&format!("sim\\-runner {sub}"))
                || page.contains(&format!("sim-runner {sub}")),
            "man lacks {sub}"
        );
    }
    assert!(page.contains("\\-\\-timeline") || page.contains("--timeline"));
}

#[test]
fn color_is_never_on_by_default_in_a_pipe_and_always_on_request() {
    let dir = scratch("color");
    fs::write(dir.join("ok.sim"), PASSING).unwrap();
    let plain = bin().arg("test").arg(&dir).output().unwrap();
    assert!(!stdout(&plain).contains('\u{1b}'));
    let forced = bin()
        .args(["--color", "always", "test"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        stdout(&forced).contains("\u{1b}[1;32mPASS\u{1b}[0m"),
        "{}",
        stdout(&forced)
    );
    // `always` wins over NO_COLOR (set by `bin()`), `never` over a terminal.
    let never = bin()
        .args(["test", "--color", "never"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!stdout(&never).contains('\u{1b}'));
    let bad = dir.join("bad.sim");
    fs::write(&bad, "scenario \"b\" { cpus 1; }\nthread T { Y = 1; }\n").unwrap();
    let o = bin()
        .args(["run", "--color=always"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(
        stderr(&o).contains('\u{1b}'),
        "diagnostics coloured on request"
    );
    let o = bin()
        .args(["run", "--color=never"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!stderr(&o).contains('\u{1b}'));
}

#[test]
fn interrupt_line_without_at_warns_on_stderr_only() {
    let dir = scratch("no-at");
    let file = dir.join("no-at.sim");
    fs::write(
        &file,
        "scenario \"n\" { cpus 1; expect clean; }\nBOOLEAN Isr(VOID) { return TRUE; }\nKINTERRUPT Dev(Isr, 5);\ninterrupt Dev on cpu 0;\n",
    )
    .unwrap();
    let o = bin().arg("run").arg(&file).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("has no `at`: it first fires at time 0"),
        "{err}"
    );
    assert!(err.contains("no-at.sim:4:11"), "{err}");
    assert!(!stdout(&o).contains("has no `at`"));
    let json = bin()
        .args(["run", "--format", "json"])
        .arg(&file)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(
        v["warnings"].as_array().unwrap().is_empty(),
        "not in the report"
    );
}

#[test]
fn timeline_follows_columns() {
    let o = bin_in_repo()
        .env("COLUMNS", "72")
        .args([
            "run",
            "scenarios/rules/0x133-two-cpu-deadlock-bad.sim",
            "--timeline",
        ])
        .output()
        .unwrap();
    let text = stdout(&o);
    let start = text.find("Timeline:").expect("timeline after the report");
    let rows: Vec<&str> = text[start..]
        .lines()
        .take_while(|l| !l.starts_with("Legend"))
        .collect();
    assert!(rows.iter().any(|l| l.starts_with("cpu 1 run")), "{text}");
    assert!(rows.iter().all(|l| l.chars().count() <= 72), "{text}");
    let plain = bin_in_repo()
        .args(["run", "scenarios/rules/0x133-two-cpu-deadlock-bad.sim"])
        .output()
        .unwrap();
    assert!(
        text.starts_with(&stdout(&plain)),
        "the report is unchanged before the timeline"
    );
}
