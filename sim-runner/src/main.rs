//! `sim-runner`: the command line of the emulator.
//!
//! Parses the arguments, turns on logging when asked (`-v`, `RUST_LOG`),
//! and hands over to [`sim_runner::dispatch`].

/// mimalloc: loading a large scenario allocates many small objects, and
/// mimalloc keeps the front end's time per item flat as files grow
/// (`cargo bench -p scenario --bench frontend`, docs/performance.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use sim_runner::cli::Cli;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.color);
    let colors = sim_runner::color::Colors::resolve(cli.color);
    // Standard error is passed unlocked: `explore`'s worker threads log
    // through it (with -v), and a lock held here for the whole command
    // would make them wait forever.
    let status = sim_runner::dispatch(
        &cli,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr(),
        colors,
    );
    ExitCode::from(status)
}

/// Logging is off unless `-v` is given or `RUST_LOG` is set; it goes to
/// standard error so reports on standard output stay clean.
fn init_logging(verbose: u8, color: sim_runner::cli::ColorArg) {
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty());
    let filter = match (from_env, verbose) {
        (Some(directives), _) => EnvFilter::new(directives),
        (None, 0) => return,
        (None, 1) => EnvFilter::new("info"),
        (None, 2) => EnvFilter::new("debug"),
        (None, _) => EnvFilter::new("trace"),
    };
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(sim_runner::color::wanted(
            color,
            std::io::stderr().is_terminal(),
        ))
        .init();
}
