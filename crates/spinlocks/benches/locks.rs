//! Fixed-time lock contention benchmark (`harness = false`), in the style of
//! parking_lot's lock benchmark.
//!
//! For each lock and each thread count T (1, 2 and the number of cores,
//! deduplicated), T threads pinned with `core_affinity` loop for a fixed wall
//! time:
//!
//! ```text
//! acquire -> work_in (k cheap ops on the protected data) -> release -> work_between
//! ```
//!
//! and report ops/s per thread (mean, min, max) and Jain's fairness index
//! (Σx)² / (n·Σx²) over the per-thread rates (1.0 = perfectly even).
//! Reader/writer locks run two mixes: read-heavy (90 % shared) and
//! write-heavy (10 % shared). All locks run in the same process, one after
//! the other, and a table of ratios (ours / peer) closes the report.
//!
//! ```text
//! cargo bench -p spinlocks --bench locks
//! BENCH_SECS=0.5 cargo bench -p spinlocks --bench locks      # shorter
//! cargo bench -p spinlocks --bench locks -- --secs 0.5 --filter Ex
//! ```
//!
//! Environment (or `--secs`, `--work-in`, `--work-between`, `--filter`,
//! `--rounds`): `BENCH_SECS` seconds per configuration (default 1.5; 30
//! configurations on 2 cores, so about 45 s in all), `BENCH_ROUNDS` (default
//! 3: each configuration's time is split into rounds run round-robin over
//! all configurations, and the median round is reported, with the spread of
//! the rounds as a noise gauge), `BENCH_WORK_IN` (default 8),
//! `BENCH_WORK_BETWEEN` (default 32), `BENCH_FILTER` (substring of lock
//! names to run).
//!
//! On a 2-core machine "T = cores" is 2, so contention is modest: two
//! threads can only ever fight over one line, and a spinning waiter never
//! shares its core with the holder. Read the numbers as that, not as a
//! many-core result.

use std::hint::black_box;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use spinlocks::{ExSpinLock, KSpinLock, LockQueueHandle, QueuedSpinLock};

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
mutex_impl!(spin::mutex::TicketMutex<Data>, "spin::TicketMutex", |l| l
    .lock());
mutex_impl!(parking_lot::Mutex<Data>, "parking_lot::Mutex", |l| l.lock());
mutex_impl!(
    parking_lot::FairMutex<Data>,
    "parking_lot::FairMutex",
    |l| l.lock()
);
mutex_impl!(std::sync::Mutex<Data>, "std::Mutex", |l| l.lock().unwrap());
rwlock_impl!(ExSpinLock<Data>, "ExSpinLock", |l| read: l.read(), write: l.write());
rwlock_impl!(spin::RwLock<Data>, "spin::RwLock", |l| read: l.read(), write: l.write());
rwlock_impl!(parking_lot::RwLock<Data>, "parking_lot::RwLock", |l| read: l.read(), write: l.write());
rwlock_impl!(std::sync::RwLock<Data>, "std::RwLock", |l| read: l.read().unwrap(), write: l.write().unwrap());

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mix {
    /// Every operation exclusive (mutexes).
    Exclusive,
    /// 90 % shared, 10 % exclusive.
    ReadHeavy,
    /// 10 % shared, 90 % exclusive.
    WriteHeavy,
}

impl Mix {
    fn label(self) -> &'static str {
        match self {
            Mix::Exclusive => "excl",
            Mix::ReadHeavy => "r90/w10",
            Mix::WriteHeavy => "r10/w90",
        }
    }
    /// Percentage of shared operations.
    fn shared_pct(self) -> u64 {
        match self {
            Mix::Exclusive => 0,
            Mix::ReadHeavy => 90,
            Mix::WriteHeavy => 10,
        }
    }
}

#[derive(Clone, Debug)]
struct Config {
    secs: f64,
    work_in: u32,
    work_between: u32,
    filter: Option<String>,
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
    fn mean(&self) -> f64 {
        self.rates.iter().sum::<f64>() / self.rates.len() as f64
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
    let (work_in, work_between) = (cfg.work_in, cfg.work_between);
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
    let mut cfg = Config {
        secs: env_or("BENCH_SECS", 1.5),
        work_in: env_or("BENCH_WORK_IN", 8),
        work_between: env_or("BENCH_WORK_BETWEEN", 32),
        filter: std::env::var("BENCH_FILTER").ok().filter(|f| !f.is_empty()),
        rounds: env_or("BENCH_ROUNDS", 3),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_default();
        match arg.as_str() {
            "--secs" => cfg.secs = value().parse().unwrap_or(cfg.secs),
            "--work-in" => cfg.work_in = value().parse().unwrap_or(cfg.work_in),
            "--work-between" => cfg.work_between = value().parse().unwrap_or(cfg.work_between),
            "--filter" => cfg.filter = Some(value()),
            "--rounds" => cfg.rounds = value().parse().unwrap_or(cfg.rounds),
            // `cargo bench` passes `--bench`; ignore it and anything unknown.
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
    /// (max − min) / median of the rounds' mean rates.
    spread: f64,
}

struct Bench<'a> {
    cfg: &'a Config,
    thread_counts: Vec<usize>,
    cases: Vec<Case>,
}

impl Bench<'_> {
    fn case<L: BenchLock>(&mut self) {
        if let Some(f) = &self.cfg.filter {
            if !L::NAME.contains(f.as_str()) {
                return;
            }
        }
        let mixes: &[Mix] = if L::RW {
            &[Mix::ReadHeavy, Mix::WriteHeavy]
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
                rs.sort_by(|a, b| a.mean().total_cmp(&b.mean()));
                let spread = (rs[rs.len() - 1].mean() - rs[0].mean()) / rs[rs.len() / 2].mean();
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
        "{:<24} {:>8} {:>3} {:>14} {:>10} {:>10} {:>6} {:>7}",
        "lock", "mix", "T", "ops/s/thread", "min", "max", "Jain", "spread"
    );
    for s in summaries {
        let o = &s.median;
        println!(
            "{:<24} {:>8} {:>3} {:>14} {:>10} {:>10} {:>6.3} {:>6.0}%",
            o.name,
            o.mix.label(),
            o.threads,
            fmt_rate(o.mean()),
            fmt_rate(o.min()),
            fmt_rate(o.max()),
            o.jain(),
            s.spread * 100.0
        );
    }
}

fn print_ratios(summaries: &[Summary], thread_counts: &[usize]) {
    const MUTEX_PEERS: [&str; 5] = [
        "spin::Mutex",
        "spin::TicketMutex",
        "parking_lot::Mutex",
        "parking_lot::FairMutex",
        "std::Mutex",
    ];
    const RW_PEERS: [&str; 3] = ["spin::RwLock", "parking_lot::RwLock", "std::RwLock"];
    let find = |name: &str, mix: Mix, threads: usize| {
        summaries
            .iter()
            .map(|s| &s.median)
            .find(|o| o.name == name && o.mix == mix && o.threads == threads)
    };
    println!();
    println!("Ratios of mean ops/s per thread, ours / peer (> 1: ours is faster)");
    let groups: [(&str, Mix, &[&str]); 4] = [
        ("KSpinLock", Mix::Exclusive, &MUTEX_PEERS),
        ("QueuedSpinLock", Mix::Exclusive, &MUTEX_PEERS),
        ("ExSpinLock", Mix::ReadHeavy, &RW_PEERS),
        ("ExSpinLock", Mix::WriteHeavy, &RW_PEERS),
    ];
    for (ours, mix, peers) in groups {
        for &t in thread_counts {
            let Some(o) = find(ours, mix, t) else {
                continue;
            };
            let cells: Vec<String> = peers
                .iter()
                .filter_map(|p| {
                    find(p, mix, t).map(|po| format!("{p} {:.2}x", o.mean() / po.mean()))
                })
                .collect();
            if !cells.is_empty() {
                println!(
                    "  {:<15} {:>8} T={:<2} vs  {}",
                    ours,
                    mix.label(),
                    t,
                    cells.join(" | ")
                );
            }
        }
    }
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
    bench.case::<spin::Mutex<Data>>();
    bench.case::<spin::mutex::TicketMutex<Data>>();
    bench.case::<parking_lot::Mutex<Data>>();
    bench.case::<parking_lot::FairMutex<Data>>();
    bench.case::<std::sync::Mutex<Data>>();
    bench.case::<ExSpinLock<Data>>();
    bench.case::<spin::RwLock<Data>>();
    bench.case::<parking_lot::RwLock<Data>>();
    bench.case::<std::sync::RwLock<Data>>();

    println!(
        "spinlocks lock benchmark: {} configurations x {:.2} s ({} rounds, round-robin; \
         median round shown), work_in = {}, work_between = {}, {} cores (threads pinned \
         round-robin), T = {:?}",
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
            "note: only {ncores} core(s): contention is modest, and any other load on the \
             machine shows up as noise (see the spread column); compare ratios, not absolutes"
        );
    }
    println!();
    let summaries = bench.run_all(&cores);
    print_table(&summaries);
    print_ratios(&summaries, &thread_counts);
}
