//! `test --format json|junit`: the whole run of `test` as one document.
//!
//! JSON (the contract): `{"passed", "failed", "files": [{"file", "passed",
//! "seed", "failure", "report"}]}`, one entry per file; `seed` and `report`
//! are those of the first failing seed, else of the header seed (`null`
//! when nothing ran: a rejected or unreadable file, a `.bad.sim` input);
//! `failure` is `null` or why it failed.
//!
//! JUnit XML: `<testsuites>` with one `<testsuite>` per folder and one
//! `<testcase>` per scenario and seed (`name` = the file name and seed,
//! `classname` = the folder, `file` = the path, `time` in seconds). A
//! failing case has `<failure message="..." type="...">` whose message
//! says what was expected and what happened, and whose text is the run's
//! full report.

use crate::test_cmd::FileResult;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;
use std::path::Path;

/// The JSON document, ending with a newline.
pub fn json(results: &[FileResult]) -> String {
    let passed = results.iter().filter(|r| r.verdict.passed).count();
    let files: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            let case = r.decisive();
            serde_json::json!({
                "file": r.path.display().to_string(),
                "passed": r.verdict.passed,
                "seed": case.seed,
                "failure": (!r.verdict.passed).then(|| r.verdict.detail.clone()),
                "report": case.report,
            })
        })
        .collect();
    let doc = serde_json::json!({
        "passed": passed,
        "failed": results.len() - passed,
        "files": files,
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_else(|e| {
        // Reports are plain data; this cannot happen but for a bug.
        format!("{{\"error\": \"cannot serialize: {e}\"}}")
    });
    s.push('\n');
    s
}

/// The folder a file is grouped under (its parent as written, `.` when it
/// has none).
fn folder(path: &Path) -> String {
    match path.parent().map(|p| p.display().to_string()) {
        Some(p) if !p.is_empty() => p,
        _ => ".".to_string(),
    }
}

fn secs(d: std::time::Duration) -> String {
    format!("{:.6}", d.as_secs_f64())
}

/// The JUnit XML document.
pub fn junit(results: &[FileResult]) -> String {
    // Folders in order of first appearance (files arrive sorted).
    let mut suites: Vec<(String, Vec<&FileResult>)> = Vec::new();
    for r in results {
        let f = folder(&r.path);
        match suites.iter_mut().find(|(name, _)| *name == f) {
            Some((_, v)) => v.push(r),
            None => suites.push((f, vec![r])),
        }
    }
    let count = |rs: &[&FileResult]| -> (usize, usize, std::time::Duration) {
        let cases = rs.iter().flat_map(|r| r.cases.iter());
        let (mut n, mut failed, mut time) = (0, 0, std::time::Duration::ZERO);
        for c in cases {
            n += 1;
            failed += usize::from(!c.passed);
            time += c.time;
        }
        (n, failed, time)
    };
    let all: Vec<&FileResult> = results.iter().collect();
    let (tests, failures, time) = count(&all);

    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    // Writing into a Vec cannot fail.
    let _ = w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
    let mut root = BytesStart::new("testsuites");
    root.push_attribute(("name", "sim-runner test"));
    root.push_attribute(("tests", tests.to_string().as_str()));
    root.push_attribute(("failures", failures.to_string().as_str()));
    root.push_attribute(("errors", "0"));
    root.push_attribute(("time", secs(time).as_str()));
    let _ = w.write_event(Event::Start(root));
    for (id, (name, rs)) in suites.iter().enumerate() {
        let (tests, failures, time) = count(rs);
        let mut suite = BytesStart::new("testsuite");
        suite.push_attribute(("name", name.as_str()));
        suite.push_attribute(("id", id.to_string().as_str()));
        suite.push_attribute(("tests", tests.to_string().as_str()));
        suite.push_attribute(("failures", failures.to_string().as_str()));
        suite.push_attribute(("errors", "0"));
        suite.push_attribute(("skipped", "0"));
        suite.push_attribute(("time", secs(time).as_str()));
        let _ = w.write_event(Event::Start(suite));
        for r in rs {
            let file_name = r
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| r.path.display().to_string());
            let runs = r.cases.len();
            for (k, c) in r.cases.iter().enumerate() {
                let case_name = match c.seed {
                    Some(seed) => format!("{file_name} [seed {seed}]"),
                    // Parallel mode with --seeds N: N runs, no seeds.
                    None if runs > 1 => format!("{file_name} [run {}]", k + 1),
                    None => file_name.clone(),
                };
                let mut tc = BytesStart::new("testcase");
                tc.push_attribute(("name", case_name.as_str()));
                tc.push_attribute(("classname", name.as_str()));
                tc.push_attribute(("file", r.path.display().to_string().as_str()));
                tc.push_attribute(("time", secs(c.time).as_str()));
                if c.passed {
                    let _ = w.write_event(Event::Empty(tc));
                    continue;
                }
                let _ = w.write_event(Event::Start(tc));
                let kind = match (&c.report, c.seed) {
                    (Some(_), _) => "expectation",
                    (None, Some(_)) => "engine",
                    (None, None) => "rejected",
                };
                let mut failure = BytesStart::new("failure");
                failure.push_attribute(("message", c.detail.as_str()));
                failure.push_attribute(("type", kind));
                let _ = w.write_event(Event::Start(failure));
                let body = match &c.report {
                    Some(report) => crate::text::render(report),
                    None => c.detail.clone(),
                };
                let _ = w.write_event(Event::Text(BytesText::new(&body)));
                let _ = w.write_event(Event::End(BytesEnd::new("failure")));
                let _ = w.write_event(Event::End(BytesEnd::new("testcase")));
            }
        }
        let _ = w.write_event(Event::End(BytesEnd::new("testsuite")));
    }
    let _ = w.write_event(Event::End(BytesEnd::new("testsuites")));
    let mut s = String::from_utf8_lossy(&w.into_inner()).into_owned();
    s.push('\n');
    s
}
