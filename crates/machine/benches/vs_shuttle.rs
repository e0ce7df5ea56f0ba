//! kspin against shuttle (`cargo bench -p machine --bench vs_shuttle`):
//! the same workload in both, in one process. Two threads, each `N` times
//! lock / increment / unlock, for `N` = 10 and 50.
//!
//! * kspin: a `.sim` scenario with two threads on two cpus, each `N` times
//!   `KeAcquireSpinLock` / `Count = Count + 1` / `KeReleaseSpinLock`, with
//!   `verifier standard`. The program is loaded once; each run gets a new
//!   seed. Strategy `random` is the row to compare with shuttle's random
//!   scheduler; `timing` and `pct` are extra rows (pct's step budget is
//!   computed once, as exploration does).
//! * shuttle: two `shuttle::thread`s, each `N` times lock a
//!   `shuttle::sync::Mutex`, increment, unlock; executed by a
//!   `shuttle::Runner` with a `RandomScheduler` for a fixed number of
//!   iterations per batch ([`SHUTTLE_BATCH`]), timed, so the figure is
//!   executions per second (what `shuttle::check_random` does per iteration).
//!
//! Each configuration runs for `BENCH_SECS` seconds (default 2; `-- --quick`
//! makes it 0.3). The table goes to stdout and the figures to
//! `target/bench-results/machine-vs-shuttle.json`.

use machine::{load_source, run, Program, RunOptions, Strategy};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Shuttle iterations per `Runner::run` call: enough to amortise the
/// runner's setup, small enough to stop close to the time budget.
const SHUTTLE_BATCH: usize = 50;

/// The workload sizes: lock / increment / unlock per thread.
const SIZES: [u32; 2] = [10, 50];

const SCENARIO: &str = r#"
scenario "vs-shuttle" { cpus 2; verifier standard; }
KSPIN_LOCK Lock;
_Guarded_by_(Lock) ULONG Count;
thread Left on cpu 0 {
    ULONG i;
    KIRQL Old;
    for (i = 0; i < ITERS; i++) {
        KeAcquireSpinLock(&Lock, &Old);
        Count = Count + 1;
        KeReleaseSpinLock(&Lock, Old);
    }
}
thread Right on cpu 1 {
    ULONG i;
    KIRQL Old;
    for (i = 0; i < ITERS; i++) {
        KeAcquireSpinLock(&Lock, &Old);
        Count = Count + 1;
        KeReleaseSpinLock(&Lock, Old);
    }
}
"#;

/// The kspin scenario with `n` iterations per thread, loaded once.
fn program(n: u32) -> Program {
    let text = SCENARIO.replace("ITERS", &n.to_string());
    match load_source("vs-shuttle.sim", &text) {
        Ok(p) => p,
        Err(_) => panic!("the benchmark scenario must load"),
    }
}

/// kspin runs per second over `secs`, a new seed each run.
fn kspin_runs_per_sec(prog: &Program, strategy: Strategy, secs: Duration) -> f64 {
    // PCT's step budget comes from one timing run; exploration computes it
    // once per file, so the benchmark does too.
    let pct_steps = match strategy {
        Strategy::Pct => Some(machine::engine::timing_steps(prog)),
        _ => None,
    };
    let start = Instant::now();
    let mut runs = 0u64;
    while start.elapsed() < secs {
        let report = run(
            prog,
            &RunOptions {
                seed: Some(runs + 1),
                strategy,
                pct_steps,
                ..Default::default()
            },
        );
        assert!(report.expectation_met, "kspin run {} failed", runs + 1);
        runs += 1;
    }
    runs as f64 / start.elapsed().as_secs_f64()
}

/// The shuttle workload: two threads, each `n` times lock / increment /
/// unlock on one `shuttle::sync::Mutex`.
fn shuttle_workload(n: u32) {
    let lock = Arc::new(shuttle::sync::Mutex::new(0u32));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let lock = Arc::clone(&lock);
            shuttle::thread::spawn(move || {
                for _ in 0..n {
                    *lock.lock().unwrap() += 1;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(*lock.lock().unwrap(), 2 * n);
}

/// Shuttle executions per second over `secs`: batches of [`SHUTTLE_BATCH`]
/// random-scheduler iterations, a new seed each batch.
fn shuttle_runs_per_sec(n: u32, secs: Duration) -> f64 {
    let start = Instant::now();
    let (mut runs, mut seed) = (0u64, 1u64);
    while start.elapsed() < secs {
        let scheduler = shuttle::scheduler::RandomScheduler::new_from_seed(seed, SHUTTLE_BATCH);
        let runner = shuttle::Runner::new(scheduler, shuttle::Config::default());
        runs += runner.run(move || shuttle_workload(n)) as u64;
        seed += 1;
    }
    runs as f64 / start.elapsed().as_secs_f64()
}

/// Seconds per configuration: `--quick` gives 0.3, else `BENCH_SECS` or 2.
fn budget() -> Duration {
    let secs = if std::env::args().any(|a| a == "--quick") {
        0.3
    } else {
        std::env::var("BENCH_SECS")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(2.0)
    };
    Duration::from_secs_f64(secs)
}

/// `target/bench-results/` of the workspace (or of `CARGO_TARGET_DIR`).
fn results_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("bench-results")
}

fn main() {
    let secs = budget();
    println!(
        "machine vs shuttle: two threads x N lock/increment/unlock, {:.1} s per configuration",
        secs.as_secs_f64()
    );
    println!(
        "{:>4} {:<8} {:>16} {:>18} {:>8}",
        "N", "kspin", "kspin runs/s", "shuttle runs/s", "ratio"
    );
    let mut rows: Vec<Value> = Vec::new();
    for n in SIZES {
        let prog = program(n);
        let shuttle = shuttle_runs_per_sec(n, secs);
        for strategy in [Strategy::Random, Strategy::Timing, Strategy::Pct] {
            let kspin = kspin_runs_per_sec(&prog, strategy, secs);
            let ratio = kspin / shuttle;
            println!(
                "{:>4} {:<8} {:>16.0} {:>18.0} {:>8.2}",
                n,
                strategy.name(),
                kspin,
                shuttle,
                ratio
            );
            rows.push(json!({
                "workload": "two threads x N lock/increment/unlock",
                "n": n,
                "kspin_strategy": strategy.name(),
                "kspin_runs_per_sec": kspin,
                "shuttle_runs_per_sec": shuttle,
                "ratio": ratio,
            }));
        }
    }
    let dir = results_dir();
    let text = serde_json::to_string_pretty(&Value::Array(rows)).unwrap_or_default();
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| dir.canonicalize())
        .map(|d| d.join("machine-vs-shuttle.json"))
        .and_then(|p| std::fs::write(&p, text + "\n").map(|()| p));
    match written {
        Ok(p) => println!("written: {}", p.display()),
        Err(e) => eprintln!("could not write {}: {e}", dir.display()),
    }
}
