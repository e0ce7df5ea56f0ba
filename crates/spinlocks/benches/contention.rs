//! Fixed-time lock contention benchmark (`harness = false`), parking_lot
//! style: our four lock families against `spin`, `parking_lot` and `std`.
//!
//! For each lock and each thread count T (1, 2 and the number of cores,
//! deduplicated), T threads pinned with `core_affinity` loop for a fixed wall
//! time:
//!
//! ```text
//! acquire -> work_in (k cheap ops on the protected data) -> release -> work_between
//! ```
//!
//! and report ops/s (summed over the threads), per-thread min and max, and
//! Jain's fairness index (Σx)² / (n·Σx²) over the per-thread rates (1.0 =
//! perfectly even). Reader/writer locks run two mixes: `read90` (90 %
//! shared) and `read10` (10 % shared); mutexes run `exclusive`. A final row
//! set, workload `uncontended`, runs every mutex (and the reader/writer locks
//! in exclusive mode) at T = 1 with `work_in = work_between = 0`: the cost of
//! one acquire + release pair, in ns. Two extra `floor` rows there (printed,
//! not written to the JSON) time bare atomics: one compare-exchange + one
//! store (a test-and-set lock's minimum) and one swap + one compare-exchange
//! (an MCS lock's minimum), the bounds the real locks are measured against.
//!
//! Every lock runs in the same process, one configuration after the other,
//! round-robin over `rounds` rounds (the median round is kept, the spread of
//! the rounds is printed as a noise gauge). Ratios to each peer in the same
//! run close the report.
//!
//! ```text
//! cargo bench -p spinlocks --bench contention                  # ~1 min
//! cargo bench -p spinlocks --bench contention -- --quick       # ~15 s
//! cargo bench -p spinlocks --bench contention -- --work-in 0 --work-between 100
//! BENCH_SECS=3 BENCH_FILTER=Queued cargo bench -p spinlocks --bench contention
//! ```
//!
//! Options (command line, or the environment variable in brackets):
//! `--secs` [`BENCH_SECS`] seconds per configuration (default 1.2; 0.3 with
//! `--quick` [`BENCH_QUICK=1`]), `--rounds` [`BENCH_ROUNDS`] (default 3),
//! `--work-in` [`BENCH_WORK_IN`] (default 8), `--work-between`
//! [`BENCH_WORK_BETWEEN`] (default 32), `--filter` [`BENCH_FILTER`]
//! (substring of lock names), `--uncontended-only`
//! [`BENCH_UNCONTENDED_ONLY=1`] (only the `uncontended` row set: about 16 s,
//! so more rounds fit when the machine is noisy; the JSON then holds only
//! those rows).
//!
//! Results: a table on stdout, and `target/bench-results/locks.json` (under
//! `CARGO_TARGET_DIR` if set), a JSON list of
//! `{"lock", "threads", "workload", "ops_per_sec", "jain"}`.
//!
//! On a 2-core machine "T = cores" is 2: contention is one cache line
//! ping-ponging between two cores, and a waiter never shares its core with
//! the holder. FIFO queueing (MCS) shows its value only with many cores.

use std::hint::black_box;
use std::path::PathBuf;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use spinlocks::{ExSpinLock, InterruptSpinLock, KSpinLock, LockQueueHandle, QueuedSpinLock};

/// The protected data: a few words, as a small kernel structure would be.
type Data = [u64; 4];

/// What the benchmark needs from a lock.
trait BenchLock: Send + Sync + Sized {
    const NAME: &'static str;
    /// Whether the lock has a shared mode (then it runs the R/W mixes).
    const RW: bool = false;
    fn create() -> Self;
    /// Exclusive access. `h` is a per-thread queue handle (only the queued
    /// lock uses it).
    fn exclusive<R>(&self, h: Pin<&mut LockQueueHandle>, f: impl FnOnce(&mut Data) -> R) -> R;
    /// Shared access (exclusive for mutexes).
    fn shared<R>(&self, h: Pin<&mut LockQueueHandle>, f: impl FnOnce(&Data) -> R) -> R {
        self.exclusive(h, |d| f(d))
    }
}

macro_rules! mutex_impl {
    ($ty:ty, $name:literal, |$l:ident| $lock:expr) => {
        impl BenchLock for $ty {
            const NAME: &'static str = $name;
            fn create() -> Self {
                <$ty>::new([0; 4])
            }
            #[inline]
            fn exclusive<R>(
                &self,
                _h: Pin<&mut LockQueueHandle>,
                f: impl FnOnce(&mut Data) -> R,
            ) -> R {
                let $l = self;
                let mut g = $lock;
                f(&mut g)
            }
        }
    };
}

macro_rules! rwlock_impl {
    ($ty:ty, $name:literal, |$l:ident| read: $read:expr, write: $write:expr) => {
        impl BenchLock for $ty {
            const NAME: &'static str = $name;
            const RW: bool = true;
            fn create() -> Self {
                <$ty>::new([0; 4])
            }
            #[inline]
            fn exclusive<R>(
                &self,
                _h: Pin<&mut LockQueueHandle>,
                f: impl FnOnce(&mut Data) -> R,
            ) -> R {
                let $l = self;
                let mut g = $write;
                f(&mut g)
            }
            #[inline]
            fn shared<R>(&self, _h: Pin<&mut LockQueueHandle>, f: impl FnOnce(&Data) -> R) -> R {
                let $l = self;
                let g = $read;
                f(&g)
            }
        }
    };
}

mutex_impl!(KSpinLock<Data>, "KSpinLock", |l| l.lock());
mutex_impl!(spin::Mutex<Data>, "spin::Mutex", |l| l.lock());
mutex_impl!(
    spin::mutex::TicketMutex<Data>,
    "spin::mutex::TicketMutex",
    |l| l.lock()
);
mutex_impl!(parking_lot::Mutex<Data>, "parking_lot::Mutex", |l| l.lock());
mutex_impl!(
    parking_lot::FairMutex<Data>,
    "parking_lot::FairMutex",
    |l| l.lock()
);
mutex_impl!(std::sync::Mutex<Data>, "std::sync::Mutex", |l| l
    .lock()
    .unwrap());
rwlock_impl!(ExSpinLock<Data>, "ExSpinLock", |l| read: l.read(), write: l.write());
rwlock_impl!(spin::RwLock<Data>, "spin::RwLock", |l| read: l.read(), write: l.write());
rwlock_impl!(parking_lot::RwLock<Data>, "parking_lot::RwLock", |l| read: l.read(), write: l.write());

impl BenchLock for QueuedSpinLock<Data> {
    const NAME: &'static str = "QueuedSpinLock";
    fn create() -> Self {
        QueuedSpinLock::new([0; 4])
    }
    #[inline]
    fn exclusive<R>(&self, h: Pin<&mut LockQueueHandle>, f: impl FnOnce(&mut Data) -> R) -> R {
        let mut g = self.lock(h);
        f(&mut g)
    }
}

impl BenchLock for InterruptSpinLock<Data> {
    const NAME: &'static str = "InterruptSpinLock";
    fn create() -> Self {
        // A device interrupt at DIRQL 5; the IRQL is data only here.
        InterruptSpinLock::new(5, [0; 4])
    }
    #[inline]
    fn exclusive<R>(&self, _h: Pin<&mut LockQueueHandle>, f: impl FnOnce(&mut Data) -> R) -> R {
        let mut g = self.lock();
        f(&mut g)
    }
}

/// Floor: the cheapest possible test-and-set lock, one compare-exchange to
/// acquire and one plain store to release (what `spin::Mutex` does).
/// Printed in the `uncontended` rows only, not written to the JSON.
struct FloorCasStore(AtomicUsize);

/// Floor: the two atomic read-modify-writes any MCS lock needs on an
/// uncontended pair (swap the tail to our node, compare-exchange it back to
/// null), and nothing else. Single-threaded use only (it never waits).
struct FloorSwapCas(AtomicPtr<u64>);

impl BenchLock for FloorCasStore {
    const NAME: &'static str = "floor: CAS + store";
    fn create() -> Self {
        Self(AtomicUsize::new(0))
    }
    #[inline]
    fn exclusive<R>(&self, _h: Pin<&mut LockQueueHandle>, f: impl FnOnce(&mut Data) -> R) -> R {
        while self
            .0
            .compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
        let r = f(&mut [0; 4]);
        self.0.store(0, Ordering::Release);
        r
    }
}

impl BenchLock for FloorSwapCas {
    const NAME: &'static str = "floor: swap + CAS";
    fn create() -> Self {
        Self(AtomicPtr::new(std::ptr::null_mut()))
    }
    #[inline]
    fn exclusive<R>(&self, _h: Pin<&mut LockQueueHandle>, f: impl FnOnce(&mut Data) -> R) -> R {
        let mut node = 0u64;
        let me: *mut u64 = &mut node;
        let pred = self.0.swap(me, Ordering::AcqRel);
        assert!(pred.is_null(), "the floor lock is for one thread only");
        let r = f(&mut [0; 4]);
        let _ = self.0.compare_exchange(
            me,
            std::ptr::null_mut(),
            Ordering::Release,
            Ordering::Relaxed,
        );
        r
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mix {
    /// Every operation exclusive (mutexes).
    Exclusive,
    /// 90 % shared, 10 % exclusive.
    Read90,
    /// 10 % shared, 90 % exclusive.
    Read10,
    /// Exclusive, T = 1, no work in or between: the acquire + release cost.
    Uncontended,
}

impl Mix {
    fn label(self) -> &'static str {
        match self {
            Mix::Exclusive => "exclusive",
            Mix::Read90 => "read90",
            Mix::Read10 => "read10",
            Mix::Uncontended => "uncontended",
        }
    }
    /// Percentage of shared operations.
    fn shared_pct(self) -> u64 {
        match self {
            Mix::Exclusive | Mix::Uncontended => 0,
            Mix::Read90 => 90,
            Mix::Read10 => 10,
        }
    }
}

#[derive(Clone, Debug)]
struct Config {
    secs: f64,
    work_in: u32,
    work_between: u32,
    filter: Option<String>,
    /// Only the `uncontended` row set.
    uncontended_only: bool,
    /// Each configuration's time is split into this many rounds.
    rounds: usize,
}

#[derive(Clone, Debug)]
struct Outcome {
    name: &'static str,
    mix: Mix,
    threads: usize,
    /// ops/s of each thread.
    rates: Vec<f64>,
}

impl Outcome {
    /// Total ops/s over all threads.
    fn total(&self) -> f64 {
        self.rates.iter().sum()
    }
    fn min(&self) -> f64 {
        self.rates.iter().copied().fold(f64::INFINITY, f64::min)
    }
    fn max(&self) -> f64 {
        self.rates.iter().copied().fold(0.0, f64::max)
    }
    /// Jain's fairness index (Σx)² / (n·Σx²).
    fn jain(&self) -> f64 {
        let sum: f64 = self.rates.iter().sum();
        let sq: f64 = self.rates.iter().map(|x| x * x).sum();
        if sq == 0.0 {
            return 0.0;
        }
        sum * sum / (self.rates.len() as f64 * sq)
    }
}

/// xorshift64: a per-thread cheap random source for the R/W mix.
#[inline]
fn next_rand(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

fn run<L: BenchLock>(
    cfg: &Config,
    mix: Mix,
    threads: usize,
    cores: &[core_affinity::CoreId],
) -> Outcome {
    let lock = L::create();
    let stop = AtomicBool::new(false);
    let barrier = Barrier::new(threads + 1);
    let (work_in, work_between) = if mix == Mix::Uncontended {
        (0, 0)
    } else {
        (cfg.work_in, cfg.work_between)
    };
    let shared_pct = mix.shared_pct();
    let rates = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let (lock, stop, barrier) = (&lock, &stop, &barrier);
                let core = cores.get(i % cores.len().max(1)).copied();
                s.spawn(move || {
                    if let Some(core) = core {
                        core_affinity::set_for_current(core);
                    }
                    let mut handle = pin!(LockQueueHandle::new());
                    let mut rng = 0x9E37_79B9_7F4A_7C15u64
                        ^ (i as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407);
                    let mut local = i as u64;
                    let mut ops = 0u64;
                    barrier.wait();
                    let start = Instant::now();
                    while !stop.load(Ordering::Relaxed) {
                        let shared = shared_pct != 0 && next_rand(&mut rng) % 100 < shared_pct;
                        if shared {
                            let v = lock.shared(handle.as_mut(), |d| {
                                let mut acc = 0u64;
                                for k in 0..work_in {
                                    acc = acc.wrapping_add(black_box(d[(k & 3) as usize]));
                                }
                                acc
                            });
                            black_box(v);
                        } else {
                            lock.exclusive(handle.as_mut(), |d| {
                                for k in 0..work_in {
                                    let j = (k & 3) as usize;
                                    d[j] = black_box(d[j])
                                        .wrapping_mul(6364136223846793005)
                                        .wrapping_add(1);
                                }
                            });
                        }
                        for _ in 0..work_between {
                            local = black_box(
                                local
                                    .wrapping_mul(2862933555777941757)
                                    .wrapping_add(3037000493),
                            );
                        }
                        ops += 1;
                    }
                    black_box(local);
                    ops as f64 / start.elapsed().as_secs_f64()
                })
            })
            .collect();
        barrier.wait();
        std::thread::sleep(Duration::from_secs_f64(cfg.secs));
        stop.store(true, Ordering::Relaxed);
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<f64>>()
    });
    Outcome {
        name: L::NAME,
        mix,
        threads,
        rates,
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn parse_config() -> Config {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick =
        args.iter().any(|a| a == "--quick") || std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1");
    let mut cfg = Config {
        secs: env_or("BENCH_SECS", if quick { 0.3 } else { 1.2 }),
        work_in: env_or("BENCH_WORK_IN", 8),
        work_between: env_or("BENCH_WORK_BETWEEN", 32),
        filter: std::env::var("BENCH_FILTER").ok().filter(|f| !f.is_empty()),
        uncontended_only: args.iter().any(|a| a == "--uncontended-only")
            || std::env::var("BENCH_UNCONTENDED_ONLY").is_ok_and(|v| v == "1"),
        rounds: env_or("BENCH_ROUNDS", 3),
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_default();
        match arg.as_str() {
            "--secs" => cfg.secs = value().parse().unwrap_or(cfg.secs),
            "--work-in" => cfg.work_in = value().parse().unwrap_or(cfg.work_in),
            "--work-between" => cfg.work_between = value().parse().unwrap_or(cfg.work_between),
            "--filter" => cfg.filter = Some(value()),
            "--rounds" => cfg.rounds = value().parse().unwrap_or(cfg.rounds),
            // `cargo bench` passes `--bench`; `--quick` and
            // `--uncontended-only` were handled above.
            _ => {}
        }
    }
    cfg.rounds = cfg.rounds.max(1);
    cfg
}

fn fmt_rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// One (lock, mix, thread count) configuration.
struct Case {
    mix: Mix,
    threads: usize,
    run: RunFn,
}

type RunFn = fn(&Config, Mix, usize, &[core_affinity::CoreId]) -> Outcome;

/// The median round of a configuration, and how far the rounds spread.
struct Summary {
    median: Outcome,
    /// (max − min) / median of the rounds' total rates.
    spread: f64,
}

struct Bench<'a> {
    cfg: &'a Config,
    thread_counts: Vec<usize>,
    cases: Vec<Case>,
}

impl Bench<'_> {
    fn case<L: BenchLock>(&mut self) {
        if self.cfg.uncontended_only {
            return;
        }
        if let Some(f) = &self.cfg.filter {
            if !L::NAME.contains(f.as_str()) {
                return;
            }
        }
        let mixes: &[Mix] = if L::RW {
            &[Mix::Read90, Mix::Read10]
        } else {
            &[Mix::Exclusive]
        };
        for &mix in mixes {
            for &threads in &self.thread_counts {
                self.cases.push(Case {
                    mix,
                    threads,
                    run: run::<L>,
                });
            }
        }
    }

    fn uncontended<L: BenchLock>(&mut self) {
        if let Some(f) = &self.cfg.filter {
            if !L::NAME.contains(f.as_str()) {
                return;
            }
        }
        self.cases.push(Case {
            mix: Mix::Uncontended,
            threads: 1,
            run: run::<L>,
        });
    }

    /// Runs every case `rounds` times, round-robin (so a burst of outside
    /// load hits all locks alike), and keeps each case's median round.
    fn run_all(&self, cores: &[core_affinity::CoreId]) -> Vec<Summary> {
        let round_cfg = Config {
            secs: self.cfg.secs / self.cfg.rounds as f64,
            ..self.cfg.clone()
        };
        let mut rounds: Vec<Vec<Outcome>> = self.cases.iter().map(|_| Vec::new()).collect();
        for _ in 0..self.cfg.rounds {
            for (case, out) in self.cases.iter().zip(&mut rounds) {
                out.push((case.run)(&round_cfg, case.mix, case.threads, cores));
            }
        }
        rounds
            .into_iter()
            .map(|mut rs| {
                rs.sort_by(|a, b| a.total().total_cmp(&b.total()));
                let spread = (rs[rs.len() - 1].total() - rs[0].total()) / rs[rs.len() / 2].total();
                Summary {
                    median: rs.swap_remove(rs.len() / 2),
                    spread,
                }
            })
            .collect()
    }
}

fn print_table(summaries: &[Summary]) {
    println!(
        "{:<26} {:>11} {:>3} {:>10} {:>9} {:>9} {:>9} {:>6} {:>7}",
        "lock", "workload", "T", "ops/s", "ns/op", "min/thr", "max/thr", "Jain", "spread"
    );
    for s in summaries {
        let o = &s.median;
        println!(
            "{:<26} {:>11} {:>3} {:>10} {:>9.2} {:>9} {:>9} {:>6.3} {:>6.0}%",
            o.name,
            o.mix.label(),
            o.threads,
            fmt_rate(o.total()),
            1e9 / o.total(),
            fmt_rate(o.min()),
            fmt_rate(o.max()),
            o.jain(),
            s.spread * 100.0
        );
    }
}

const OURS: [&str; 4] = [
    "KSpinLock",
    "QueuedSpinLock",
    "InterruptSpinLock",
    "ExSpinLock",
];

fn print_ratios(summaries: &[Summary]) {
    println!();
    println!("Ratios of total ops/s, ours / peer, same workload and T (> 1: ours is faster;");
    println!("for `uncontended` the inverse is the cost ratio per acquire + release pair)");
    let outcomes: Vec<&Outcome> = summaries.iter().map(|s| &s.median).collect();
    for o in outcomes.iter().filter(|o| OURS.contains(&o.name)) {
        let cells: Vec<String> = outcomes
            .iter()
            .filter(|p| {
                !OURS.contains(&p.name)
                    && !is_floor(p.name)
                    && p.mix == o.mix
                    && p.threads == o.threads
                    // Mutex peers for mutexes, reader/writer peers for R/W mixes;
                    // in `uncontended` everyone is compared with everyone.
                    && (o.mix == Mix::Uncontended
                        || is_rw(p.name) == (o.name == "ExSpinLock"))
            })
            .map(|p| format!("{} {:.2}x", p.name, o.total() / p.total()))
            .collect();
        if !cells.is_empty() {
            println!(
                "  {:<18} {:>11} T={:<2} vs  {}",
                o.name,
                o.mix.label(),
                o.threads,
                cells.join(" | ")
            );
        }
    }
}

fn is_floor(name: &str) -> bool {
    name.starts_with("floor")
}

fn is_rw(name: &str) -> bool {
    name.contains("RwLock") || name == "ExSpinLock"
}

/// `target/bench-results/` of the workspace (or of `CARGO_TARGET_DIR`).
fn results_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("bench-results")
}

/// The results as a JSON list (names need no escaping: no quotes or
/// backslashes in them).
fn to_json(summaries: &[Summary]) -> String {
    let rows: Vec<String> = summaries
        .iter()
        .filter(|s| !is_floor(s.median.name))
        .map(|s| {
            let o = &s.median;
            format!(
                "  {{\"lock\": \"{}\", \"threads\": {}, \"workload\": \"{}\", \
                 \"ops_per_sec\": {:.1}, \"jain\": {:.4}}}",
                o.name,
                o.threads,
                o.mix.label(),
                o.total(),
                o.jain()
            )
        })
        .collect();
    format!("[\n{}\n]\n", rows.join(",\n"))
}

fn main() {
    let cfg = parse_config();
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let ncores = cores.len().max(1);
    let mut thread_counts = vec![1, 2, ncores];
    thread_counts.sort_unstable();
    thread_counts.dedup();

    let mut bench = Bench {
        cfg: &cfg,
        thread_counts: thread_counts.clone(),
        cases: Vec::new(),
    };
    bench.case::<KSpinLock<Data>>();
    bench.case::<QueuedSpinLock<Data>>();
    bench.case::<InterruptSpinLock<Data>>();
    bench.case::<spin::Mutex<Data>>();
    bench.case::<spin::mutex::TicketMutex<Data>>();
    bench.case::<parking_lot::Mutex<Data>>();
    bench.case::<parking_lot::FairMutex<Data>>();
    bench.case::<std::sync::Mutex<Data>>();
    bench.case::<ExSpinLock<Data>>();
    bench.case::<spin::RwLock<Data>>();
    bench.case::<parking_lot::RwLock<Data>>();
    bench.uncontended::<KSpinLock<Data>>();
    bench.uncontended::<QueuedSpinLock<Data>>();
    bench.uncontended::<InterruptSpinLock<Data>>();
    bench.uncontended::<ExSpinLock<Data>>();
    bench.uncontended::<spin::Mutex<Data>>();
    bench.uncontended::<spin::mutex::TicketMutex<Data>>();
    bench.uncontended::<parking_lot::Mutex<Data>>();
    bench.uncontended::<parking_lot::FairMutex<Data>>();
    bench.uncontended::<std::sync::Mutex<Data>>();
    bench.uncontended::<spin::RwLock<Data>>();
    bench.uncontended::<parking_lot::RwLock<Data>>();
    bench.uncontended::<FloorCasStore>();
    bench.uncontended::<FloorSwapCas>();

    println!(
        "spinlocks contention benchmark: {} configurations x {:.2} s ({} rounds, round-robin; \
         median round shown), work_in = {}, work_between = {} (uncontended rows: 0 and 0), \
         {} cores (threads pinned round-robin), T = {:?}",
        bench.cases.len(),
        cfg.secs,
        cfg.rounds,
        cfg.work_in,
        cfg.work_between,
        ncores,
        thread_counts
    );
    if ncores <= 2 {
        println!(
            "note: only {ncores} core(s): contention is one cache line between two cores, \
             and other load on the machine shows up as noise (see the spread column); \
             compare ratios within a run, not absolutes"
        );
    }
    println!();
    let summaries = bench.run_all(&cores);
    print_table(&summaries);
    print_ratios(&summaries);

    let dir = results_dir();
    let path = dir.join("locks.json");
    match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, to_json(&summaries))) {
        Ok(()) => println!("\nwrote {}", path.display()),
        Err(e) => eprintln!("\ncould not write {}: {e}", path.display()),
    }
}
