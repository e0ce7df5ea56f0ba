//! `sim-runner explore FILE`: run one scenario under a schedule strategy
//! (default `pct`), seed after seed, until a seed breaks its expectation —
//! or with `--all`, count every distinct outcome. The search itself is
//! [`machine::explore`]; this module parses nothing and only renders.
//!
//! Progress (an `indicatif` bar: schedules done, schedules/s, distinct
//! outcomes) goes to standard error, and only when that is a terminal. It is
//! drawn from the calling thread only: the caller may hold the
//! standard-error lock (`main` does), and a worker that tried to draw would
//! wait for it forever.

use crate::cli::{ExploreArgs, Format};
use crate::{diagnostics, exit, text};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use machine::explore::{explore, Exploration, ExploreOptions, Failure};
use machine::Program;
use serde_json::json;
use std::io::{IsTerminal, Write};

/// Run the command; returns the process exit status.
pub fn execute(
    args: &ExploreArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
    colors: crate::color::Colors,
) -> u8 {
    let color = colors.err;
    if let Err(e) = crate::cli::check_depth(args.strategy, args.depth) {
        let _ = writeln!(err, "{e}");
        return exit::REJECTED;
    }
    tracing::debug!(file = %args.file.display(), "loading scenario");
    let program = match scenario::load_file(&args.file) {
        Ok(program) => program,
        Err(e) => {
            let _ = err.write_all(diagnostics::render_load_error(&e, color).as_bytes());
            return exit::REJECTED;
        }
    };
    let first = args.seed.unwrap_or(program.seed);
    if first.checked_add(args.schedules - 1).is_none() {
        let _ = writeln!(
            err,
            "error: {} schedules from seed {first} would go past the largest seed ({}); lower --schedules or --seed",
            args.schedules,
            u64::MAX
        );
        return exit::REJECTED;
    }
    let jobs = args.jobs.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        |j| usize::try_from(j).unwrap_or(usize::MAX),
    );
    let strategy = args.strategy.strategy();
    tracing::info!(first, schedules = args.schedules, jobs, %strategy, "exploring");

    let bar = progress_bar(args.schedules);
    let opts = ExploreOptions {
        first_seed: first,
        schedules: args.schedules,
        jobs,
        strategy,
        depth: args.depth,
        all: args.all,
    };
    let result = explore(&program, &opts, &|p| {
        bar.set_position(p.done);
        bar.set_message(format!(
            "{} distinct outcome{}",
            p.distinct,
            if p.distinct == 1 { "" } else { "s" }
        ));
    });
    bar.finish_and_clear();

    let file = shell_word(&args.file.display().to_string());
    let rendered = match args.format {
        Format::Text => crate::color::highlight(
            &render_text(&file, &result),
            crate::color::Paint::new(colors.out),
        ),
        Format::Json => render_json(&program, &file, &result),
    };
    // A failed write is reported by the caller's output guard
    // ([`crate::output`]), the same way for every command.
    let _ = out
        .write_all(rendered.as_bytes())
        .and_then(|()| out.flush());

    if result.failing.is_some() {
        exit::FAILED
    } else {
        exit::OK
    }
}

/// The text output: one line when every seed held; otherwise the seed, the
/// exact command that replays it, and that seed's full report. With
/// `--all`, a table of the distinct outcomes first.
pub fn render_text(file: &str, result: &Exploration) -> String {
    let (first, last, n) = (result.first_seed, result.last_seed, result.schedules);
    let plural = if n == 1 { "" } else { "s" };
    let how = match result.depth {
        Some(d) => format!("{} depth {d}", result.strategy),
        None => result.strategy.to_string(),
    };
    let mut s = String::new();
    if !result.outcomes.is_empty() {
        s.push_str(&format!(
            "explored {n} schedule{plural} (seeds {first}..{last}, {how}): {} distinct outcome{}\n",
            result.outcomes.len(),
            if result.outcomes.len() == 1 { "" } else { "s" }
        ));
        let width = result
            .outcomes
            .iter()
            .map(|o| o.count.to_string().len())
            .max()
            .unwrap_or(1);
        for o in &result.outcomes {
            s.push_str(&format!(
                "  {:>width$}  {}  {}  first seed {}: sim-runner run {file} {}\n",
                o.count,
                if o.expectation_met {
                    "held  "
                } else {
                    "BROKEN"
                },
                o.outcome,
                o.first_seed,
                result.replay_args(o.first_seed),
            ));
        }
    }
    match &result.failing {
        None => {
            if result.outcomes.is_empty() {
                s.push_str(&format!(
                    "explored {n} schedule{plural} (seeds {first}..{last}, {how}): expectation held in all\n"
                ));
            } else {
                s.push_str("expectation held in all\n");
            }
            s
        }
        Some((seed, failure)) => {
            if !result.outcomes.is_empty() {
                s.push('\n');
            }
            s.push_str(&match failure {
                Failure::Expectation(report) => {
                    let why = report.expectation_failure.clone().unwrap_or_else(|| {
                        format!(
                            "expected {}, got {}",
                            text::expectation_text(report),
                            text::outcome_summary(report)
                        )
                    });
                    format!("seed {seed} breaks the expectation: {why}\n")
                }
                Failure::Panic(message) => {
                    format!("seed {seed} makes the engine panic: {message}\n")
                }
            });
            s.push_str(&format!(
                "replay it: sim-runner run {file} {}\n",
                result.replay_args(*seed)
            ));
            if result.outcomes.is_empty() {
                s.push_str(&format!(
                    "found after {n} schedule{plural} (seeds {first}..{last}, {how})\n"
                ));
            }
            if let Failure::Expectation(report) = failure {
                s.push('\n');
                s.push_str(&text::render(report));
            }
            s
        }
    }
}

/// The JSON output: `{"scenario", "strategy", "depth", "schedules",
/// "first_seed", "last_seed", "failing_seed", "replay", "outcomes",
/// "report", "panic"}`; `outcomes` lists `{"outcome", "expectation_met",
/// "first_seed", "count"}` with `--all` (empty otherwise).
pub fn render_json(program: &Program, file: &str, result: &Exploration) -> String {
    let (failing_seed, report, panic) = match &result.failing {
        None => (None, serde_json::Value::Null, None),
        Some((seed, Failure::Expectation(report))) => (
            Some(*seed),
            serde_json::to_value(report.as_ref()).unwrap_or(serde_json::Value::Null),
            None,
        ),
        Some((seed, Failure::Panic(message))) => {
            (Some(*seed), serde_json::Value::Null, Some(message.clone()))
        }
    };
    let outcomes: Vec<serde_json::Value> = result
        .outcomes
        .iter()
        .map(|o| {
            json!({
                "outcome": o.outcome,
                "expectation_met": o.expectation_met,
                "first_seed": o.first_seed,
                "count": o.count,
            })
        })
        .collect();
    let value = json!({
        "scenario": program.name,
        "strategy": result.strategy.name(),
        "depth": result.depth,
        "schedules": result.schedules,
        "first_seed": result.first_seed,
        "last_seed": result.last_seed,
        "failing_seed": failing_seed,
        "replay": failing_seed.map(|s| format!("sim-runner run {file} {}", result.replay_args(s))),
        "outcomes": outcomes,
        "report": report,
        "panic": panic,
    });
    let mut s = serde_json::to_string_pretty(&value).unwrap_or_else(|_| value.to_string());
    s.push('\n');
    s
}

/// `path` as one shell word, so the printed replay command can be pasted:
/// as it is when it has only safe characters, else in single quotes. `-`
/// (standard input) gets a reminder that the scenario must be piped in.
pub fn shell_word(path: &str) -> String {
    if path == "-" {
        return "- < SCENARIO.sim".to_string();
    }
    let safe = !path.is_empty()
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_./-+=:,@%".contains(&b));
    if safe {
        path.to_string()
    } else {
        format!("'{}'", path.replace('\'', "'\\''"))
    }
}

/// A bar on standard error when it is a terminal; hidden otherwise.
fn progress_bar(len: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "exploring {bar:30} {pos}/{len} schedules, {per_sec}, {msg}, eta {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use machine::Strategy;

    const RACY: &str = include_str!("../../scenarios/explore/lost-update-race.sim");
    const FIXED: &str = include_str!("../../scenarios/explore/lost-update-fixed.sim");

    fn load(name: &str, text: &str) -> Program {
        scenario::load_source(name, text).expect("scenario loads")
    }

    fn opts(first: u64, n: u64, strategy: Strategy, all: bool) -> ExploreOptions {
        ExploreOptions {
            first_seed: first,
            schedules: n,
            jobs: 2,
            strategy,
            depth: None,
            all,
        }
    }

    #[test]
    fn replay_paths_are_one_shell_word() {
        assert_eq!(shell_word("scenarios/a-b.sim"), "scenarios/a-b.sim");
        assert_eq!(shell_word("sp ace's.sim"), "'sp ace'\\''s.sim'");
        assert_eq!(shell_word("-"), "- < SCENARIO.sim");
    }

    #[test]
    fn fixed_scenario_text() {
        let program = load("lost-update-fixed.sim", FIXED);
        let result = explore(&program, &opts(0, 100, Strategy::Timing, false), &|_| {});
        assert_eq!(
            render_text("f.sim", &result),
            "explored 100 schedules (seeds 0..99, timing): expectation held in all\n"
        );
    }

    #[test]
    fn text_and_json_name_the_seed_and_the_replay_command() {
        let program = load("lost-update-race.sim", RACY);
        let result = explore(&program, &opts(1, 200, Strategy::Pct, false), &|_| {});
        let seed = result.failing.as_ref().map(|(s, _)| *s).unwrap();
        let text = render_text("x/race.sim", &result);
        assert!(
            text.starts_with(&format!(
                "seed {seed} breaks the expectation: expected clean, got assertion_failed"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "replay it: sim-runner run x/race.sim --seed {seed} --strategy pct --depth 3\n"
            )),
            "{text}"
        );
        assert!(text.contains("ASSERT(Packets == 20) failed"), "{text}");
        let json: serde_json::Value =
            serde_json::from_str(&render_json(&program, "x/race.sim", &result)).unwrap();
        assert_eq!(json["scenario"], "lost-update-race");
        assert_eq!(json["failing_seed"], seed);
        assert_eq!(json["strategy"], "pct");
        assert_eq!(json["report"]["seed"], seed);
        assert_eq!(json["report"]["strategy"], "pct");
        assert_eq!(json["report"]["expectation_met"], false);
    }

    #[test]
    fn all_lists_each_outcome_with_its_replay() {
        let program = load("lost-update-race.sim", RACY);
        let result = explore(&program, &opts(1, 100, Strategy::Random, true), &|_| {});
        let text = render_text("r.sim", &result);
        assert!(
            text.starts_with(
                "explored 100 schedules (seeds 1..100, random): 2 distinct outcomes\n"
            ),
            "{text}"
        );
        for o in &result.outcomes {
            assert!(
                text.contains(&format!(
                    "sim-runner run r.sim --seed {} --strategy random\n",
                    o.first_seed
                )),
                "{text}"
            );
        }
    }
}
