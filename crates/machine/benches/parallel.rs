//! Parallel mode against deterministic mode (`cargo bench -p machine --bench
//! parallel`): statements per second per processor of a two-processor lock
//! scenario (two threads, each N times KeAcquireSpinLock / Count = Count + 1
//! / KeReleaseSpinLock, verifier standard). Deterministic mode runs every
//! processor on one OS thread, so its per-processor rate is its total over
//! the processors; parallel mode runs each processor on its own pinned
//! thread. `BENCH_SECS` sets the seconds per configuration (default 2),
//! `-- --quick` 0.3 s. Issue C's target: a parallel run executes >= 1
//! million scenario statements per second per processor.

use machine::{load_source, run, Mode, Program, RunOptions};
use std::time::{Duration, Instant};

const SCENARIO: &str = r#"
scenario "bench-parallel" { cpus 2; }
KSPIN_LOCK Lock;
_Guarded_by_(Lock) ULONG Count;
VOID Bump(VOID) {
    KIRQL Old;
    KeAcquireSpinLock(&Lock, &Old);
    Count = Count + 1;
    KeReleaseSpinLock(&Lock, Old);
}
thread Left on cpu 0 { ULONG i; for (i = 0; i < N; i++) { Bump(); } }
thread Right on cpu 1 { ULONG i; for (i = 0; i < N; i++) { Bump(); } }
"#;

fn program(n: u32) -> Program {
    match load_source("bench.sim", &SCENARIO.replace(" N;", &format!(" {n};"))) {
        Ok(p) => p,
        Err(e) => panic!("the benchmark scenario must load: {e:?}"),
    }
}

/// Statements per second per processor over `secs` of repeated runs.
fn measure(prog: &Program, mode: Mode, secs: Duration) -> (f64, u64) {
    let start = Instant::now();
    let (mut runs, mut statements) = (0u64, 0u64);
    while start.elapsed() < secs {
        let r = run(
            prog,
            &RunOptions {
                seed: Some(runs + 1),
                mode,
                ..Default::default()
            },
        );
        assert!(r.expectation_met, "{:?} {:?}", r.outcome, r.warnings);
        statements += r.statements;
        runs += 1;
    }
    let t = start.elapsed().as_secs_f64();
    (statements as f64 / t / f64::from(prog.cpus), runs)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let secs = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(if quick { 0.3 } else { 2.0 });
    let secs = Duration::from_secs_f64(secs);
    println!("parallel vs deterministic: 2 cpus, two threads x N lock/increment/unlock");
    println!(
        "{:>6} {:<14} {:>22} {:>8} {:>8}",
        "N", "mode", "statements/s/processor", "runs", "ratio"
    );
    for n in [1_000u32, 10_000] {
        let p = program(n);
        let (det, det_runs) = measure(&p, Mode::Deterministic, secs);
        let (par, par_runs) = measure(&p, Mode::Parallel, secs);
        println!(
            "{n:>6} {:<14} {det:>22.0} {det_runs:>8} {:>8.2}",
            "deterministic", 1.0
        );
        println!(
            "{n:>6} {:<14} {par:>22.0} {par_runs:>8} {:>8.2}",
            "parallel",
            par / det
        );
    }
}
