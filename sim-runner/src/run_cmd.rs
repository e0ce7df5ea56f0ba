//! `sim-runner run FILE`: load one scenario, run it, print its report, and
//! with `--trace OUT.json` also write the run's Chrome trace ([`crate::trace`]).

use crate::cli::{Format, ModeArg, RunArgs};
use crate::{diagnostics, exit, text, trace};
use machine::{Mode, RunOptions};
use std::io::{BufWriter, Write};

/// Run the command; returns the process exit status.
///
/// The report goes to `out`; rejections (options not available yet,
/// unreadable file, syntax or check errors, a trace file that cannot be
/// written) go to `err` with status 2. The trace streams to its file while
/// the run goes ([`trace::TraceWriter`]) and is finished before the report
/// is printed, so a failed write leaves standard output empty; a trace
/// that reaches its `--trace-limit` is cut with a warning on `err`.
pub fn execute(
    args: &RunArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
    colors: crate::color::Colors,
) -> u8 {
    let (color, out_color) = (colors.err, colors.out);
    let parallel = args.mode == ModeArg::Parallel;
    let strategy = args.strategy.unwrap_or(crate::cli::StrategyArg::Timing);
    let refusal = if parallel && args.strategy.is_some() {
        Some("error: --strategy does not apply in parallel mode (the OS schedules the processor threads)".to_string())
    } else if parallel && args.depth.is_some() {
        Some("error: --depth does not apply in parallel mode".to_string())
    } else if !parallel && args.timeout.is_some() {
        Some(
            "error: --timeout is only for --mode parallel (deterministic runs end by virtual time)"
                .to_string(),
        )
    } else if parallel && (args.trace.is_some() || args.timeline) {
        Some("error: --trace and --timeline are only for deterministic mode".to_string())
    } else {
        crate::cli::check_depth(strategy, args.depth).err()
    };
    if let Some(e) = refusal {
        let _ = writeln!(err, "{e}");
        return exit::REJECTED;
    }
    // The contract: `--seed` does not apply in parallel mode (only
    // `--strategy` and `--depth` are errors): say it is ignored.
    if parallel && args.seed.is_some() {
        let _ = writeln!(
            err,
            "warning: --seed does not apply in parallel mode and is ignored (parallel runs are not reproducible; the report's seed is null)"
        );
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
        mode: if parallel {
            Mode::Parallel
        } else {
            Mode::Deterministic
        },
        strategy: strategy.strategy(),
        depth: args.depth,
        pct_steps: None,
        timeout: args.timeout,
    };
    tracing::debug!(seed = ?options.seed, "running scenario");
    // The timeline needs the whole stream (a short run's); a trace streams.
    let mut recorder = machine::Recorder::default();
    let report = match &args.trace {
        None if !args.timeline => machine::run(&program, &options),
        None => machine::run_observed(&program, &options, &mut [&mut recorder]),
        Some(path) => {
            let cannot = |err: &mut dyn Write, e: std::io::Error| {
                let _ = writeln!(err, "error: cannot write trace {}: {e}", path.display());
                exit::REJECTED
            };
            let file = match std::fs::File::create(path) {
                Ok(file) => file,
                Err(e) => return cannot(err, e),
            };
            let limit = args.trace_limit.unwrap_or(trace::DEFAULT_LIMIT);
            tracing::debug!(path = %path.display(), limit, "streaming trace");
            let mut writer = trace::TraceWriter::new(&program, BufWriter::new(file), limit);
            let report = if args.timeline {
                machine::run_observed(&program, &options, &mut [&mut writer, &mut recorder])
            } else {
                machine::run_observed(&program, &options, &mut [&mut writer])
            };
            match writer.finish(&report) {
                Err(e) => return cannot(err, e),
                Ok(done) => {
                    tracing::debug!(bytes = done.bytes, "trace written");
                    if let Some(at) = done.truncated_at {
                        let _ = writeln!(
                            err,
                            "warning: the trace reached its {} limit at {:.3} µs of virtual time; later events are not in {}",
                            trace::human_size(limit),
                            at as f64 / 1000.0,
                            path.display()
                        );
                    }
                }
            }
            report
        }
    };
    tracing::debug!(outcome = ?report.outcome, met = report.expectation_met, "run finished");

    let rendered = match args.format {
        Format::Text if args.timeline => {
            let paint = crate::color::Paint::new(out_color);
            let width = crate::timeline::width();
            let picture =
                crate::timeline::render(&program, &report, &recorder.events, width, paint);
            format!("{}\n{picture}", text::render(&report))
        }
        Format::Text => {
            crate::color::highlight(&text::render(&report), crate::color::Paint::new(out_color))
        }
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
