//! Engine benchmark (`cargo bench -p scenario --bench engine`): deterministic
//! schedules per second on a small two-thread scenario, and the cost of the
//! verifier (`verifier standard` against `verifier none`) in the same run.
//! Numbers are printed as ratios against the baseline of the same run; set
//! `BENCH_SECS` to change the time per configuration (default 2 s).

use machine::{load_source, run, Program, RunOptions};
use std::time::{Duration, Instant};

const SCENARIO: &str = r#"
scenario "bench-two-threads" { cpus 2; VERIFIER }
KSPIN_LOCK Lock;
_Guarded_by_(Lock) ULONG Count;
VOID Bump(VOID) {
    KIRQL Old;
    KeAcquireSpinLock(&Lock, &Old);
    Count = Count + 1;
    KeReleaseSpinLock(&Lock, Old);
}
thread Left on cpu 0 { ULONG i; for (i = 0; i < 50; i++) { Bump(); } }
thread Right on cpu 1 { ULONG i; for (i = 0; i < 50; i++) { Bump(); } }
"#;

fn program(verifier: &str) -> Program {
    let text = SCENARIO.replace("VERIFIER", &format!("verifier {verifier};"));
    match load_source("bench.sim", &text) {
        Ok(p) => p,
        Err(_) => panic!("the benchmark scenario must load"),
    }
}

/// Runs per second and statements per second over `secs`, a new seed each run.
fn measure(prog: &Program, secs: Duration) -> (f64, f64) {
    let start = Instant::now();
    let (mut runs, mut statements) = (0u64, 0u64);
    while start.elapsed() < secs {
        let r = run(
            prog,
            &RunOptions {
                seed: Some(runs + 1),
                ..Default::default()
            },
        );
        assert!(r.expectation_met);
        statements += r.statements;
        runs += 1;
    }
    let t = start.elapsed().as_secs_f64();
    (runs as f64 / t, statements as f64 / t)
}

fn main() {
    let secs = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(2.0);
    let secs = Duration::from_secs_f64(secs);
    let on = program("standard");
    let off = program("none");
    let (runs_on, stmts_on) = measure(&on, secs);
    let (runs_off, stmts_off) = measure(&off, secs);
    println!("engine: two threads x 50 lock/unlock, 2 cpus, deterministic, one seed per run");
    println!(
        "{:<22} {:>12} {:>16} {:>8}",
        "configuration", "schedules/s", "statements/s", "ratio"
    );
    println!(
        "{:<22} {:>12.0} {:>16.0} {:>8.2}",
        "verifier none", runs_off, stmts_off, 1.0
    );
    println!(
        "{:<22} {:>12.0} {:>16.0} {:>8.2}",
        "verifier standard",
        runs_on,
        stmts_on,
        runs_on / runs_off
    );
}
