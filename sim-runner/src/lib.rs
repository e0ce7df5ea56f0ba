//! The `sim-runner` command line as a library: argument definitions
//! ([`cli`]), the subcommands ([`run_cmd`], [`test_cmd`], [`explore_cmd`],
//! [`rules_cmd`]), the text report ([`text`]), the Chrome trace of a run
//! ([`trace`]) and the rendering of rejected input ([`diagnostics`]).
//! `main.rs` only parses arguments, sets up logging and dispatches.
//!
//! Architecture invariant: the only crate that renders (text, JSON, traces)
//! and the only one that knows the command line; every decision about a run
//! (schedules, exploration, outcomes) is the machine's.

pub mod bad_sim;
pub mod cli;
pub mod color;
pub mod diagnostics;
pub mod explore_cmd;
pub mod output;
pub mod rules_cmd;
pub mod run_cmd;
pub mod setup_cmd;
pub mod test_cmd;
pub mod test_report;
pub mod text;
pub mod timeline;
pub mod trace;

/// Exit statuses of the contract.
pub mod exit {
    /// The expectation held (for `test`: every scenario passed).
    pub const OK: u8 = 0;
    /// The expectation did not hold (for `test`: a scenario failed, or none
    /// was found; for `explore`: a failing seed was found).
    pub const FAILED: u8 = 1;
    /// The input was rejected: unreadable file, syntax or check error, bad
    /// option; also the output could not be written (the reason is on
    /// standard error).
    pub const REJECTED: u8 = 2;
    /// Standard output was a pipe whose reader went away: the command ends
    /// quietly with the status of a tool killed by SIGPIPE (128 + 13).
    pub const BROKEN_PIPE: u8 = 141;
}

use std::io::Write;

/// Parse-independent entry point: run `cli` with the given streams and
/// return the exit status. Output that cannot be written ends every command
/// the same way (see [`output`]).
///
/// `colors` says which stream may get colour ([`color::Colors::resolve`]).
pub fn dispatch(
    cli: &cli::Cli,
    out: &mut dyn Write,
    err: &mut dyn Write,
    colors: color::Colors,
) -> u8 {
    let mut out = output::Guarded::new(out);
    let status = dispatch_to(cli, &mut out, err, colors);
    out.finish(status, err)
}

/// Run `f` into a buffer and write it to `out`, coloured by
/// [`color::highlight`] when `on` (the caller passes `false` for JSON).
fn with_paint(on: bool, f: impl FnOnce(&mut dyn Write) -> u8, out: &mut dyn Write) -> u8 {
    if !on {
        return f(out);
    }
    let mut buf = Vec::new();
    let status = f(&mut buf);
    let painted = color::highlight(&String::from_utf8_lossy(&buf), color::Paint::new(true));
    let _ = out.write_all(painted.as_bytes());
    status
}

fn dispatch_to(
    cli: &cli::Cli,
    out: &mut dyn Write,
    err: &mut dyn Write,
    colors: color::Colors,
) -> u8 {
    match &cli.command {
        cli::Command::Run(args) => run_cmd::execute(args, out, err, colors),
        cli::Command::Test(args) => test_cmd::execute(args, out, err, colors),
        cli::Command::Explore(args) => explore_cmd::execute(args, out, err, colors),
        cli::Command::Rules(args) => {
            let on = colors.out && args.format == cli::Format::Text;
            with_paint(on, |o| rules_cmd::rules(args, o, err), out)
        }
        cli::Command::Explain(args) => {
            let on = colors.out && args.format == cli::Format::Text;
            with_paint(on, |o| rules_cmd::explain(args, o, err), out)
        }
        cli::Command::Completions(args) => setup_cmd::completions(args.shell, out),
        cli::Command::Man => setup_cmd::man(out),
    }
}
