//! Lock-order graph benchmark (`cargo bench -p verifier --bench lock_order`).
//!
//! Feeds the [`Verifier`] synthetic event streams, with deadlock detection on:
//!
//! - **nested N**: one thread takes N spin locks nested (the first with
//!   `KeAcquireSpinLock`, the others `AtDpcLevel`) and releases them in
//!   reverse order, twice. The first pass adds N·(N−1)/2 lock-order edges
//!   (each held lock → the requested one); the second pass repeats the same
//!   chains, which lockdep-style chain caching validates once.
//! - **wide N×K**: N locks, each taken alone and then with each of the K
//!   locks after it, from the last lock down to the first, so every new
//!   edge points at a lock that already has a long chain of successors
//!   (the case where searching the graph on each new edge costs the most).
//!
//! Prints wall time (ms), time per lock (µs) and, for nested runs, the
//! per-lock time relative to N = 200 (1.0 would be constant work per lock;
//! the edges themselves grow with N, so about N/200 is linear work per
//! edge). `BENCH_REPEAT` (default 3) sets how many runs each figure is the
//! best of.

use std::sync::Arc;
use std::time::{Duration, Instant};
use vcpu::{AcquireKind, ContextKind, Event, EventKind, Irql, LockFamily, LockId, LockMode};
use verifier::{Config, LockInfo, Verifier};

/// A lock table of `n` ordinary spin locks named `L0`, `L1`, ...
fn locks(n: u32) -> Vec<LockInfo> {
    (0..n)
        .map(|i| LockInfo {
            name: format!("L{i}"),
            address: 0xFFFF_8000_0000_1000 + 0x40 * u64::from(i),
            family: LockFamily::Ordinary,
        })
        .collect()
}

/// Builds a one-thread event stream on processor 0.
struct Stream {
    events: Vec<Event>,
    at: u64,
}

impl Stream {
    fn new() -> Self {
        let mut s = Stream {
            events: Vec::new(),
            at: 0,
        };
        s.push(EventKind::ContextStart {
            kind: ContextKind::Thread,
            name: Arc::from("Worker"),
            irql: Irql::PASSIVE,
            interrupt_lock: None,
        });
        s
    }

    fn push(&mut self, kind: EventKind) {
        self.at += 10;
        let line = 10 + (self.events.len() as u32 % 1000);
        self.events.push(Event {
            at: self.at,
            cpu: 0,
            ctx: 1,
            line,
            kind,
        });
    }

    /// Request then acquire `lock`; `first` says whether it raises IRQL.
    fn acquire(&mut self, lock: u32, first: bool) {
        let (how, irql) = if first {
            (AcquireKind::Raising, Irql::PASSIVE)
        } else {
            (AcquireKind::AtDpcLevel, Irql::DISPATCH)
        };
        let (family, mode) = (LockFamily::Ordinary, LockMode::Exclusive);
        let lock = LockId(lock);
        self.push(EventKind::AcquireRequested {
            lock,
            family,
            mode,
            how,
            irql,
        });
        self.push(EventKind::Acquired {
            lock,
            family,
            mode,
            how,
            spun: 0,
        });
    }

    fn release(&mut self, lock: u32) {
        self.push(EventKind::Released {
            lock: LockId(lock),
            family: LockFamily::Ordinary,
            mode: LockMode::Exclusive,
        });
    }
}

/// N locks nested, released in reverse, `passes` times.
fn nested(n: u32, passes: u32) -> Vec<Event> {
    let mut s = Stream::new();
    for _ in 0..passes {
        for i in 0..n {
            s.acquire(i, i == 0);
        }
        for i in (0..n).rev() {
            s.release(i);
        }
    }
    s.events
}

/// N locks; lock i is held while each of i+1..=i+k is taken, i descending.
fn wide(n: u32, k: u32) -> Vec<Event> {
    let mut s = Stream::new();
    for i in (0..n).rev() {
        for j in (i + 1)..=(i + k).min(n - 1) {
            s.acquire(i, true);
            s.acquire(j, false);
            s.release(j);
            s.release(i);
        }
    }
    s.events
}

/// Best wall time of `repeat` fresh verifiers over `events`, and the number
/// of lock-order edges the last one built.
fn measure(n: u32, events: &[Event], repeat: u32) -> (Duration, usize) {
    let config = Config {
        deadlock_detection: true,
        hold_limit_ns: u64::MAX,
        ..Config::default()
    };
    let mut best = Duration::MAX;
    let mut edges = 0;
    for _ in 0..repeat {
        let mut v = Verifier::new(config, locks(n), Vec::new());
        let start = Instant::now();
        for e in events {
            if let Some(violation) = v.observe(e) {
                panic!("benchmark stream must be clean: {}", violation.detail);
            }
        }
        best = best.min(start.elapsed());
        edges = v.lock_order().edges().len();
    }
    (best, edges)
}

fn main() {
    let repeat = std::env::var("BENCH_REPEAT")
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(3)
        .max(1);
    println!("lock-order graph: best of {repeat} runs, deadlock detection on");
    println!(
        "{:<28} {:>6} {:>9} {:>10} {:>10} {:>8}",
        "stream", "locks", "edges", "ms", "us/lock", "ratio"
    );
    let mut base_per_lock = None;
    for (n, passes) in [(200u32, 1u32), (2000, 1), (200, 2), (2000, 2)] {
        let events = nested(n, passes);
        let (t, edges) = measure(n, &events, repeat);
        let per_lock = t.as_secs_f64() * 1e6 / f64::from(n * passes);
        if n == 200 && passes == 1 {
            base_per_lock = Some(per_lock);
        }
        let ratio = base_per_lock.map_or(1.0, |b| per_lock / b);
        let label = if passes == 1 {
            format!("nested {n}")
        } else {
            format!("nested {n}, {passes} passes")
        };
        println!(
            "{:<28} {:>6} {:>9} {:>10.2} {:>10.3} {:>8.2}",
            label,
            n,
            edges,
            t.as_secs_f64() * 1e3,
            per_lock,
            ratio
        );
    }
    let (n, k) = (2000u32, 8u32);
    let events = wide(n, k);
    let (t, edges) = measure(n, &events, repeat);
    println!(
        "{:<28} {:>6} {:>9} {:>10.2} {:>10.3} {:>8}",
        format!("wide {n}x{k}, descending"),
        n,
        edges,
        t.as_secs_f64() * 1e3,
        t.as_secs_f64() * 1e6 / f64::from(n),
        "-"
    );
}
