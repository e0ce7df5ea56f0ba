//! `sim-runner run FILE`: load one scenario, run it, print its report, and
//! with `--trace OUT.json` also write the run's Chrome trace ([`crate::trace`]).

use crate::cli::{Format, ModeArg, RunArgs};
use crate::{diagnostics, exit, text, trace};
use machine::{Mode, RunOptions};
use std::io::Write;

/// Run the command; returns the process exit status.
///
/// The report goes to `out`; rejections (options not available yet,
/// unreadable file, syntax or check errors, a trace file that cannot be
/// written) go to `err` with status 2. The trace is written before the
/// report is printed, so a failed write leaves standard output empty.
pub fn execute(
    args: &RunArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
    colors: crate::color::Colors,
) -> u8 {
    let (color, out_color) = (colors.err, colors.out);
    if let Err(e) = crate::cli::check_depth(args.strategy, args.depth) {
        let _ = writeln!(err, "{e}");
        return exit::REJECTED;
    }
    if args.mode == ModeArg::Parallel {
        let _ = writeln!(
            err,
            "error: parallel mode is not available yet (issue C); run without --mode or with --mode deterministic"
        );
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
    let _ = err.write_all(diagnostics::render_warnings(&program, color).as_bytes());

    let options = RunOptions {
        seed: args.seed,
        mode: Mode::Deterministic,
        strategy: args.strategy.strategy(),
        depth: args.depth,
        pct_steps: None,
    };
    tracing::debug!(seed = ?options.seed, "running scenario");
    let mut events = Vec::new();
    let report = match &args.trace {
        None if !args.timeline => machine::run(&program, &options),
        None => {
            let (report, recorded) = machine::run_recorded(&program, &options);
            events = recorded;
            report
        }
        Some(path) => {
            let (report, recorded) = machine::run_recorded(&program, &options);
            events = recorded;
            tracing::debug!(events = events.len(), path = %path.display(), "writing trace");
            let trace = trace::chrome_trace(&program, &report, &events);
            if let Err(e) = std::fs::write(path, trace::render(&trace)) {
                let _ = writeln!(err, "error: cannot write trace {}: {e}", path.display());
                return exit::REJECTED;
            }
            report
        }
    };
    tracing::debug!(outcome = ?report.outcome, met = report.expectation_met, "run finished");

    let rendered = match args.format {
        Format::Text if args.timeline => {
            let paint = crate::color::Paint::new(out_color);
            let width = crate::timeline::width();
            let picture = crate::timeline::render(&program, &report, &events, width, paint);
            format!("{}\n{picture}", text::render(&report))
        }
        Format::Text => text::render(&report),
        Format::Json => match serde_json::to_string_pretty(&report) {
            Ok(mut json) => {
                json.push('\n');
                json
            }
            Err(e) => {
                let _ = writeln!(err, "error: cannot serialize the report: {e}");
                return exit::FAILED;
            }
        },
    };
    // A failed write is reported by the caller's output guard
    // ([`crate::output`]), the same way for every command.
    let _ = out
        .write_all(rendered.as_bytes())
        .and_then(|()| out.flush());

    if report.expectation_met {
        exit::OK
    } else {
        exit::FAILED
    }
}
