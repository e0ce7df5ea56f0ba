//! Front-end benchmark (`cargo bench -p scenario --bench frontend`): the time
//! to lex, parse and check generated files of 1k, 10k and 100k statements,
//! globals and routines. Prints the time per item and, per kind, the ratio
//! of the 100k load to the 10k load: a linear front end gives ~10x, and the
//! benchmark fails (exit 1) above 12x. `FRONTEND_MAX` lowers the largest
//! size (e.g. `FRONTEND_MAX=10000` for a quick look); `FRONTEND_KINDS`
//! (comma-separated: `statements,globals,routines,prototypes,threads`) picks the kinds.

/// The allocator the CLI uses (`sim-runner` sets mimalloc as the global
/// allocator), so the bench measures loading as users get it.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use scenario::load_source;
use std::time::{Duration, Instant};

/// A thread of `n` statements.
fn statements(n: usize) -> String {
    let mut s = String::from("scenario \"b\" { cpus 1; }\nULONG X;\nthread T {\n");
    for _ in 0..n {
        s.push_str("    X = X + 1;\n");
    }
    s.push_str("}\n");
    s
}

/// `n` global variables, each touched by the thread's last statement only
/// for the first one.
fn globals(n: usize) -> String {
    let mut s = String::from("scenario \"b\" { cpus 1; }\n");
    for i in 0..n {
        s.push_str(&format!("ULONG G{i};\n"));
    }
    s.push_str("thread T { G0 = 1; }\n");
    s
}

/// `n` routines, each calling the previous one.
fn routines(n: usize) -> String {
    let mut s = String::from("scenario \"b\" { cpus 1; }\nULONG X;\nVOID F0(VOID) { X = 1; }\n");
    for i in 1..n {
        s.push_str(&format!("VOID F{i}(VOID) {{ F{}(); }}\n", i - 1));
    }
    s.push_str("thread T { F0(); }\n");
    s
}

/// `n` routine prototypes, then the `n` routines.
fn prototypes(n: usize) -> String {
    let mut s = String::from("scenario \"b\" { cpus 1; }\n");
    for i in 0..n {
        s.push_str(&format!("VOID P{i}(VOID);\n"));
    }
    for i in 0..n {
        s.push_str(&format!("VOID P{i}(VOID) {{ }}\n"));
    }
    s.push_str("thread T { P0(); }\n");
    s
}

/// `n` threads of one statement each.
fn threads(n: usize) -> String {
    let mut s = String::from("scenario \"b\" { cpus 1; }\nULONG X;\n");
    for i in 0..n {
        s.push_str(&format!("thread T{i} {{ X = 1; }}\n"));
    }
    s
}

/// Writes a file of `n` items of one kind.
type Generator = fn(usize) -> String;

/// Time of one load; exits (status 1) if the generated file is rejected.
fn load_time(text: &str, n: usize) -> Duration {
    let start = Instant::now();
    let loaded = load_source("bench.sim", text);
    let took = start.elapsed();
    if let Err(e) = loaded {
        eprintln!("the generated file of {n} items was rejected: {e:?}");
        std::process::exit(1);
    }
    took
}

/// Rounds per kind: every round loads each size once, so that all sizes see
/// the same disturbance from other work on the machine; the best round of
/// each size counts.
const ROUNDS: usize = 5;

fn main() {
    let max: usize = std::env::var("FRONTEND_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let sizes: Vec<usize> = [1_000, 10_000, 100_000]
        .into_iter()
        .filter(|&n| n <= max)
        .collect();
    let kinds: [(&str, Generator); 5] = [
        ("statements", statements),
        ("globals", globals),
        ("routines", routines),
        ("prototypes", prototypes),
        ("threads", threads),
    ];
    let only = std::env::var("FRONTEND_KINDS").unwrap_or_default();
    let mut failed = false;
    for (kind, generate) in kinds {
        if !only.is_empty() && !only.split(',').any(|k| k == kind) {
            continue;
        }
        let texts: Vec<String> = sizes.iter().map(|&n| generate(n)).collect();
        let mut best = vec![Duration::MAX; sizes.len()];
        for _ in 0..ROUNDS {
            for (i, &n) in sizes.iter().enumerate() {
                best[i] = best[i].min(load_time(&texts[i], n));
            }
        }
        let mut times = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            let (text, t) = (&texts[i], best[i]);
            println!(
                "{kind:>10} {n:>7}: {:>9.3} ms load, {:>7.3} µs per item ({:.1} MB)",
                t.as_secs_f64() * 1e3,
                t.as_secs_f64() * 1e6 / n as f64,
                text.len() as f64 / 1e6
            );
            times.push((n, t));
        }
        let at = |n: usize| times.iter().find(|(m, _)| *m == n).map(|(_, t)| *t);
        if let (Some(t10), Some(t100)) = (at(10_000), at(100_000)) {
            let ratio = t100.as_secs_f64() / t10.as_secs_f64().max(1e-9);
            let verdict = if ratio <= 12.0 { "flat" } else { "NOT FLAT" };
            println!("{kind:>10} ratio 100k/10k: {ratio:.1}x ({verdict})");
            failed |= ratio > 12.0;
        }
    }
    if failed {
        eprintln!("a front-end load grows faster than linearly (ratio above 12x)");
        std::process::exit(1);
    }
}
