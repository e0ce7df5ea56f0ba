//! The command-line surface (clap derive): global flags and one variant of
//! [`Command`] per subcommand.

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Simulated Windows-kernel spin locks: run `.sim` scenarios on virtual
/// processors and report the bugcheck (or the clean run) they end in.
#[derive(Debug, Parser)]
#[command(name = "sim-runner", version, propagate_version = true)]
pub struct Cli {
    /// Log the emulator's internals to standard error (-v info, -vv debug,
    /// -vvv trace). `RUST_LOG` overrides the level when set.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,

    /// When to colour the output: auto (when the stream is a terminal and
    /// `NO_COLOR` is unset or empty), always, never.
    #[arg(long, value_enum, default_value_t = ColorArg::Auto, global = true, value_name = "WHEN")]
    pub color: ColorArg,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one scenario and print its report.
    ///
    /// Exit status: 0 the expectation held, 1 it did not, 2 the input was
    /// rejected.
    Run(RunCommand),
    /// Run every `.sim` under the paths, each against its expectations.
    ///
    /// Prints one line per scenario and ends with `N passed, N failed`.
    /// Exit status: 0 all passed, 1 any failed (or none found), 2 a path
    /// does not exist.
    Test(TestArgs),
    /// Run one scenario with seed after seed until one breaks its
    /// expectation, and report the smallest such seed.
    ///
    /// Seeds START, START+1, ... (START defaults to the header's seed) are
    /// run on J worker threads; the answer does not depend on J.
    /// Exit status: 0 every seed met the expectation, 1 a failing seed was
    /// found, 2 the input was rejected.
    Explore(ExploreArgs),
    /// List every rule: its id, the outcome it ends a run in, one line of
    /// explanation.
    Rules(RulesArgs),
    /// Explain one rule in full, with the scenario that shows it.
    ///
    /// RULE is a rule id or a bugcheck or warning name (any case), or a
    /// code: `0x133`, `133` (bare numbers are hex), `0xC4/0x1001`,
    /// `0xC4(0x1001)`, `C4(1001)`, or a 0xC4 subcode alone (`0x1001`).
    /// Exit status: 0, or 2 for an unknown rule.
    Explain(ExplainArgs),
    /// Print a shell completion script for SHELL on standard output.
    ///
    /// bash: `sim-runner completions bash > ~/.local/share/bash-completion/completions/sim-runner`;
    /// zsh: into a directory on `$fpath` as `_sim-runner`;
    /// fish: `~/.config/fish/completions/sim-runner.fish`.
    Completions(CompletionsArgs),
    /// Print the manual page (roff) on standard output:
    /// `sim-runner man > ~/.local/share/man/man1/sim-runner.1`.
    Man,
}

/// `sim-runner completions SHELL`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_name = "SHELL", value_enum)]
    pub shell: clap_complete::Shell,
}

/// `--color`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorArg {
    /// Colour a stream when it is a terminal and `NO_COLOR` is unset or empty.
    Auto,
    /// Always colour (overrides `NO_COLOR`).
    Always,
    /// Never colour.
    Never,
}

/// `test --format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TestFormat {
    /// One line per scenario, then `N passed, N failed`.
    Text,
    /// One JSON object: `{"passed", "failed", "files": [...]}`.
    Json,
    /// A JUnit XML report: one testsuite per folder, one testcase per
    /// scenario and seed.
    Junit,
}

/// `sim-runner run FILE`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The scenario file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Seed for the deterministic schedule (decimal or 0x hex); overrides
    /// the scenario's `seed`.
    #[arg(long, value_name = "N", value_parser = parse_seed)]
    pub seed: Option<u64>,

    /// Which engine runs the scenario.
    #[arg(long, value_enum, default_value_t = ModeArg::Deterministic)]
    pub mode: ModeArg,

    /// How processors interleave: timing (default; virtual time with seeded
    /// cost jitter), random (a seeded choice at every step), pct
    /// (probabilistic concurrency testing). Deterministic mode only.
    #[arg(long, value_enum)]
    pub strategy: Option<StrategyArg>,

    /// PCT change points (default 3); only with `--strategy pct`.
    #[arg(long, value_name = "D", value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub depth: Option<u32>,

    /// Parallel mode only: cut the run off after this wall time (e.g.
    /// `10000ms`, `10s`; default 10000ms) with TIME_LIMIT_REACHED.
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub timeout: Option<std::time::Duration>,

    /// Report format on standard output: text (the `!analyze -v` style
    /// report) or json (one object with the contract's fields).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Also write the run's events as a Chrome trace event file (open it in
    /// Perfetto or chrome://tracing): one process per virtual processor,
    /// context and lock-hold slices, IRQL counter, DbgPrint and bugcheck
    /// markers. Written as the run goes, up to --trace-limit.
    #[arg(long, value_name = "OUT.json")]
    pub trace: Option<PathBuf>,

    /// Largest trace file in bytes, with an optional K, M or G suffix
    /// (powers of 1024; default 1G, at least 4K). When it is reached the
    /// trace ends with a `trace truncated` mark and a warning; the run and
    /// its report go on unchanged.
    #[arg(long, value_name = "BYTES", requires = "trace", value_parser = parse_size)]
    pub trace_limit: Option<u64>,

    /// After the text report, draw a timeline: one row per processor,
    /// columns of virtual time, showing what runs (thread, DPC, ISR), the
    /// IRQL, lock holds and spins, and the bugcheck. Its width follows
    /// `COLUMNS` or the terminal (default 100). Text format only: with
    /// `--format json` it is rejected.
    #[arg(long)]
    pub timeline: bool,
}

/// `sim-runner run`'s arguments, checked together after parsing: clap has
/// no conflict between a flag and one value of another option, so
/// `--timeline` with `--format json` is rejected here, as a usage error
/// (exit status 2). Reads as [`RunArgs`].
#[derive(Debug)]
pub struct RunCommand(RunArgs);

impl RunCommand {
    fn check(args: &RunArgs) -> Result<(), clap::Error> {
        if args.timeline && args.format == Format::Json {
            return Err(clap::Error::raw(
                clap::error::ErrorKind::ArgumentConflict,
                "--timeline draws on the text report; drop --format json\n",
            ));
        }
        Ok(())
    }
}

impl std::ops::Deref for RunCommand {
    type Target = RunArgs;
    fn deref(&self) -> &RunArgs {
        &self.0
    }
}

impl clap::FromArgMatches for RunCommand {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let args = RunArgs::from_arg_matches(matches)?;
        Self::check(&args)?;
        Ok(Self(args))
    }
    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches(matches)?;
        Self::check(&self.0)
    }
}

impl Args for RunCommand {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        RunArgs::augment_args(cmd)
    }
    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        RunArgs::augment_args_for_update(cmd)
    }
}

/// `sim-runner explore FILE`.
#[derive(Debug, Args)]
pub struct ExploreArgs {
    /// The scenario file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// How many seeds to try at most.
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub schedules: u64,

    /// Worker threads (default: the machine's available parallelism).
    #[arg(long, value_name = "J", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub jobs: Option<u64>,

    /// First seed (decimal or 0x hex; default: the scenario's `seed`).
    #[arg(long, value_name = "START", value_parser = parse_seed)]
    pub seed: Option<u64>,

    /// How processors interleave in each schedule: pct (default), random or
    /// timing.
    #[arg(long, value_enum, default_value_t = StrategyArg::Pct)]
    pub strategy: StrategyArg,

    /// PCT change points (default 3); only with `--strategy pct`.
    #[arg(long, value_name = "D", value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub depth: Option<u32>,

    /// Run every schedule and count each distinct outcome with its first
    /// seed, instead of stopping at the first that breaks the expectation.
    #[arg(long)]
    pub all: bool,

    /// Output format on standard output: text, or json (one object: the
    /// seeds tried, the failing seed, its replay command and its report).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `sim-runner test [PATH ...]`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// Files or directories (searched recursively for `.sim` files).
    #[arg(value_name = "PATH", default_value = "scenarios")]
    pub paths: Vec<PathBuf>,
    /// Run each scenario with this many seeds, from its header seed on;
    /// it passes only if every one of them meets its expectation.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub seeds: u64,

    /// Report format: text (one line per scenario), json, or junit (XML
    /// for CI test reports).
    #[arg(long, value_enum, default_value_t = TestFormat::Text)]
    pub format: TestFormat,

    /// Write the report in `--format` to FILE instead of standard output;
    /// standard output then gets the text lines.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// deterministic (default) or parallel: run every file on pinned OS
    /// threads; with `--seeds N` each file runs N times.
    #[arg(long, value_enum, default_value_t = ModeArg::Deterministic)]
    pub mode: ModeArg,

    /// Parallel mode only: cut each run off after this wall time (default
    /// 10000ms).
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub timeout: Option<std::time::Duration>,
}

/// `sim-runner rules`.
#[derive(Debug, Args)]
pub struct RulesArgs {
    /// Output format on standard output.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `sim-runner explain RULE`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Rule id, bugcheck name or code.
    #[arg(value_name = "RULE")]
    pub rule: String,

    /// Output format on standard output.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `--mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// One OS thread, discrete-event scheduler in virtual time.
    Deterministic,
    /// Every virtual processor a pinned OS thread, in real time (not
    /// reproducible).
    Parallel,
}

/// `--format`.
/// The schedule strategies of deterministic mode ([`machine::Strategy`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StrategyArg {
    Timing,
    Random,
    Pct,
}

impl StrategyArg {
    /// The machine's strategy.
    pub fn strategy(self) -> machine::Strategy {
        match self {
            StrategyArg::Timing => machine::Strategy::Timing,
            StrategyArg::Random => machine::Strategy::Random,
            StrategyArg::Pct => machine::Strategy::Pct,
        }
    }
}

/// `--depth` is only for `pct`: the message when it is given otherwise.
pub fn check_depth(strategy: StrategyArg, depth: Option<u32>) -> Result<(), String> {
    match (strategy, depth) {
        (StrategyArg::Pct, _) | (_, None) => Ok(()),
        (s, Some(_)) => Err(format!(
            "error: --depth is only for --strategy pct (the strategy is {})",
            s.strategy()
        )),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Plain text, for people.
    Text,
    /// One JSON object, for tools.
    Json,
}

/// A seed in decimal or `0x` hexadecimal.
/// A duration as the scenario language writes them: an integer followed by
/// `ns`, `us`, `ms` or `s` (`10000ms`, `10s`); at least 1 ms.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration: write e.g. `10000ms` or `10s`"))?;
    let d = match unit {
        "ns" => std::time::Duration::from_nanos(n),
        "us" => std::time::Duration::from_micros(n),
        "ms" => std::time::Duration::from_millis(n),
        "s" => std::time::Duration::from_secs(n),
        _ => {
            return Err(format!(
                "`{s}` is not a duration: the unit must be ns, us, ms or s (e.g. `10000ms`)"
            ))
        }
    };
    if d < std::time::Duration::from_millis(1) {
        return Err(format!("`{s}` is too short: a timeout is at least 1ms"));
    }
    Ok(d)
}

fn parse_seed(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|e| format!("`{s}` is not a seed (a decimal or 0x hex integer): {e}"))
}

/// A byte count with an optional `K`, `M` or `G` suffix (powers of 1024,
/// an optional `B` or `iB` after it), at least [`crate::trace::MIN_LIMIT`].
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (digits, shift) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 10),
        Some((i, 'm' | 'M')) => (&t[..i], 20),
        Some((i, 'g' | 'G')) => (&t[..i], 30),
        _ => (t, 0),
    };
    let bad = || format!("`{s}` is not a size (bytes, or a number with K, M or G)");
    let n: u64 = digits.trim().parse().map_err(|_| bad())?;
    let bytes = n.checked_mul(1u64 << shift).ok_or_else(bad)?;
    if bytes < crate::trace::MIN_LIMIT {
        return Err(format!(
            "`{s}` is too small for a trace: at least {}",
            crate::trace::human_size(crate::trace::MIN_LIMIT)
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn sizes_take_suffixes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("8K"), Ok(8 << 10));
        assert_eq!(parse_size("64m"), Ok(64 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("16KB"), Ok(16 << 10));
        for bad in ["", "G", "-1", "1.5G", "1T", "99999999999G", "100", "1K"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn seeds_in_decimal_and_hex() {
        assert_eq!(parse_seed("42"), Ok(42));
        assert_eq!(parse_seed("0x2A"), Ok(42));
        assert!(parse_seed("-1").is_err());
        assert!(parse_seed("seven").is_err());
    }

    #[test]
    fn run_defaults() {
        let cli = Cli::try_parse_from(["sim-runner", "run", "a.sim"]).unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert_eq!(args.mode, ModeArg::Deterministic);
        assert_eq!(args.format, Format::Text);
        assert_eq!(args.seed, None);
        assert!(args.trace.is_none());
    }

    #[test]
    fn timeline_needs_the_text_report() {
        let e = Cli::try_parse_from([
            "sim-runner",
            "run",
            "a.sim",
            "--timeline",
            "--format",
            "json",
        ])
        .unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e
            .to_string()
            .contains("--timeline draws on the text report; drop --format json"));
        assert!(Cli::try_parse_from(["sim-runner", "run", "a.sim", "--timeline"]).is_ok());
        assert!(Cli::try_parse_from([
            "sim-runner",
            "run",
            "a.sim",
            "--timeline",
            "--format",
            "text"
        ])
        .is_ok());
    }

    #[test]
    fn explore_defaults_and_bounds() {
        let cli = Cli::try_parse_from(["sim-runner", "explore", "a.sim"]).unwrap();
        let Command::Explore(args) = cli.command else {
            panic!("not explore")
        };
        assert_eq!(args.schedules, 1000);
        assert_eq!(args.jobs, None);
        assert_eq!(args.seed, None);
        assert_eq!(args.format, Format::Text);
        let cli = Cli::try_parse_from([
            "sim-runner",
            "explore",
            "a.sim",
            "--schedules",
            "50",
            "--jobs",
            "3",
            "--seed",
            "0x10",
            "--format",
            "json",
        ])
        .unwrap();
        let Command::Explore(args) = cli.command else {
            panic!("not explore")
        };
        assert_eq!(
            (args.schedules, args.jobs, args.seed, args.format),
            (50, Some(3), Some(16), Format::Json)
        );
        assert!(
            Cli::try_parse_from(["sim-runner", "explore", "a.sim", "--schedules", "0"]).is_err()
        );
        assert!(Cli::try_parse_from(["sim-runner", "explore", "a.sim", "--jobs", "0"]).is_err());
    }

    #[test]
    fn test_defaults_to_scenarios_dir() {
        let cli = Cli::try_parse_from(["sim-runner", "-vv", "test"]).unwrap();
        assert_eq!(cli.verbose, 2);
        let Command::Test(args) = cli.command else {
            panic!("not test")
        };
        assert_eq!(args.paths, vec![PathBuf::from("scenarios")]);
        assert_eq!(args.format, TestFormat::Text);
        assert!(args.output.is_none());
        assert_eq!(cli.color, ColorArg::Auto);
        let cli = Cli::try_parse_from([
            "sim-runner",
            "test",
            "--format",
            "junit",
            "--output",
            "r.xml",
            "--color",
            "never",
        ])
        .unwrap();
        assert_eq!(cli.color, ColorArg::Never);
        let Command::Test(args) = cli.command else {
            panic!("not test")
        };
        assert_eq!(args.format, TestFormat::Junit);
        assert_eq!(args.output, Some(PathBuf::from("r.xml")));
        assert!(Cli::try_parse_from(["sim-runner", "test", "--format", "xml"]).is_err());
    }

    #[test]
    fn rules_and_explain_take_a_format() {
        let cli = Cli::try_parse_from(["sim-runner", "rules"]).unwrap();
        let Command::Rules(args) = cli.command else {
            panic!("not rules")
        };
        assert_eq!(args.format, Format::Text);
        let cli =
            Cli::try_parse_from(["sim-runner", "explain", "0xC4(0x1001)", "--format", "json"])
                .unwrap();
        let Command::Explain(args) = cli.command else {
            panic!("not explain")
        };
        assert_eq!(args.rule, "0xC4(0x1001)");
        assert_eq!(args.format, Format::Json);
        assert!(Cli::try_parse_from(["sim-runner", "explain"]).is_err());
    }
}
