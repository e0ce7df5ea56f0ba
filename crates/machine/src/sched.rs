//! The one place where a deterministic run makes a choice.
//!
//! Every nondeterministic decision of the deterministic driver — which
//! processor takes the next step, how much a statement or a spin iteration
//! costs, where an unpinned thread is placed — goes through a [`Scheduler`],
//! as in shuttle's scheduler split. Three strategies (contract v2, "The
//! command line"):
//!
//! - [`Strategy::Timing`]: version 1. One clock advances all processors in
//!   virtual time; the seed jitters each statement's cost (100 ns + 0..=20 ns)
//!   and each spin iteration's (50 ns + 0..=10 ns) and breaks ties. It only
//!   interleaves accesses that are within a few hundred ns of each other.
//! - [`Strategy::Random`]: at every step (a shared-data access, a lock
//!   operation or a safe point) the seed picks which processor steps. Each
//!   schedule first draws a weight per processor (log-uniform, ratios up to 64),
//!   so one processor can run far ahead of another: that is what brings two
//!   accesses that are microseconds apart in the timing run together.
//! - [`Strategy::Pct`]: probabilistic concurrency testing (Burckhardt,
//!   Kothari, Musuvathi, Nagarakatte, "A Randomized Scheduler with
//!   Probabilistic Guarantees of Finding Bugs", ASPLOS 2010): the seed gives
//!   each processor a distinct priority; the highest-priority processor that
//!   can step does; at `depth` change points (drawn uniformly within the
//!   step budget `k`) the running processor drops below every other. Steps
//!   are counted at visible operations only (shared data, kernel calls,
//!   context changes): preempting between two steps nobody else can observe
//!   gives the same schedule as preempting at the next visible one, so `k`
//!   is small and a bug's window is a large share of it.
//!   A bug of depth `d` among `n` processors in `k` steps is found with
//!   probability at least `1 / (n · k^(d-1))` per schedule when `depth >=
//!   d - 1` (a bug of depth `d` needs `d - 1` preemptions at the right
//!   steps; `k` counts visible steps, see below).
//!
//! Under `random` and `pct` statement costs are fixed (no jitter) and each
//! processor keeps its own clock; time follows causality (the engine's
//! Lamport-clock rules).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::fmt;

/// Picks in a row one processor may take while another could step before
/// PCT makes it yield (drop below every other priority). Spin loops on data
/// that changes place would otherwise starve the processor they wait for.
pub const PCT_STARVATION_STEPS: u64 = 2_000;

/// Default number of PCT change points (`--depth`).
pub const DEFAULT_DEPTH: u32 = 3;

/// How the deterministic driver interleaves processors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash, PartialOrd, Ord)]
pub enum Strategy {
    /// Version 1: virtual time with seeded cost jitter (default for `run`).
    #[default]
    Timing,
    /// A seeded random choice among the processors that can step.
    Random,
    /// Probabilistic concurrency testing with `depth` change points.
    Pct,
}

impl Strategy {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Timing => "timing",
            Strategy::Random => "random",
            Strategy::Pct => "pct",
        }
    }

    /// Parse a command-line name (`timing`, `random`, `pct`).
    ///
    /// # Errors
    /// The accepted names, when `s` is none of them.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "timing" => Ok(Strategy::Timing),
            "random" => Ok(Strategy::Random),
            "pct" => Ok(Strategy::Pct),
            _ => Err(format!(
                "unknown strategy `{s}`: expected timing, random or pct"
            )),
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Every choice the deterministic driver makes.
///
/// Implementations draw all their randomness from the seed they were built
/// with, so the same seed gives the same choices.
pub trait Scheduler: fmt::Debug {
    /// The strategy this scheduler implements.
    fn strategy(&self) -> Strategy;
    /// The scheduler's seeded generator: every draw goes through it.
    fn rng(&mut self) -> &mut ChaCha8Rng;
    /// The cost of one statement or spin iteration in virtual ns: `base`
    /// plus at most `jitter` (fixed at `base` unless a strategy jitters).
    fn cost(&mut self, base: u64, _jitter: u64) -> u64 {
        base
    }
    /// Where an unpinned thread goes: an index into `candidates` processors
    /// (the least loaded ones). `candidates >= 1`.
    fn place(&mut self, candidates: usize) -> usize {
        self.rng().gen_range(0..candidates)
    }
    /// Timing only: which of `ties` processors at the same smallest clock
    /// steps (`ties >= 2`).
    fn tie_break(&mut self, ties: usize) -> usize {
        self.rng().gen_range(0..ties)
    }
    /// Random and PCT: which of the processors that can step (ids in
    /// ascending order, never empty) takes the next step.
    fn pick(&mut self, steppable: &[u32]) -> u32;
    /// The step just taken was visible to other processors (it touched
    /// shared data, called the kernel or changed a context). PCT counts
    /// its change points in these steps only: a preemption between two
    /// invisible steps is the same schedule as one at the next visible step.
    fn visible_step(&mut self) {}
}

/// Build the scheduler for a run.
///
/// `cpus` is the processor count; `depth` the PCT change points;
/// `pct_steps` the PCT step budget `k` (the step count of the file's timing
/// run at its header seed; at least 1).
pub fn new_scheduler(
    strategy: Strategy,
    seed: u64,
    cpus: u32,
    depth: u32,
    pct_steps: u64,
) -> Box<dyn Scheduler + Send> {
    match strategy {
        Strategy::Timing => Box::new(TimingScheduler::new(seed)),
        Strategy::Random => Box::new(RandomScheduler::new(seed, cpus)),
        Strategy::Pct => Box::new(PctScheduler::new(seed, cpus, depth, pct_steps)),
    }
}

/// Version 1's choices: seeded jitter of costs and tie breaks.
#[derive(Debug)]
pub struct TimingScheduler {
    rng: ChaCha8Rng,
}

impl TimingScheduler {
    /// A timing scheduler for `seed`.
    pub fn new(seed: u64) -> Self {
        TimingScheduler {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }
}

impl Scheduler for TimingScheduler {
    fn strategy(&self) -> Strategy {
        Strategy::Timing
    }
    fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }
    fn cost(&mut self, base: u64, jitter: u64) -> u64 {
        base + self.rng.gen_range(0..=jitter)
    }
    fn pick(&mut self, steppable: &[u32]) -> u32 {
        // Not used by the timing driver; a uniform choice keeps it total.
        steppable[self.rng.gen_range(0..steppable.len())]
    }
}

/// A weighted random choice among the processors that can step.
#[derive(Debug)]
pub struct RandomScheduler {
    rng: ChaCha8Rng,
    /// Per-processor weight, drawn once per schedule (log-uniform 16..=1024).
    weights: Vec<u64>,
}

impl RandomScheduler {
    /// A random scheduler for `seed` over `cpus` processors.
    pub fn new(seed: u64, cpus: u32) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Log-uniform over 16..=1024 (ratios up to 64 between processors).
        let weights = (0..cpus)
            .map(|_| (16.0 * 2f64.powf(rng.gen_range(0.0..=6.0))) as u64)
            .collect();
        RandomScheduler { rng, weights }
    }
}

impl Scheduler for RandomScheduler {
    fn strategy(&self) -> Strategy {
        Strategy::Random
    }
    fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }
    fn pick(&mut self, steppable: &[u32]) -> u32 {
        let total: u64 = steppable
            .iter()
            .map(|&c| self.weights.get(c as usize).copied().unwrap_or(1))
            .sum();
        let mut x = self.rng.gen_range(0..total);
        for &c in steppable {
            let w = self.weights.get(c as usize).copied().unwrap_or(1);
            if x < w {
                return c;
            }
            x -= w;
        }
        steppable[steppable.len() - 1]
    }
}

/// PCT: priorities, and change points that demote the running processor.
#[derive(Debug)]
pub struct PctScheduler {
    rng: ChaCha8Rng,
    /// Priority per processor: higher runs first. Initial priorities are a
    /// permutation of `depth + 1 ..= depth + cpus`; the i-th demotion sets
    /// `depth + 1 - i`, below every initial one; a starvation yield (see
    /// [`PCT_STARVATION_STEPS`]) sets a negative one, below all of those.
    priority: Vec<i64>,
    /// Consecutive picks of `running` while another processor could step.
    run_length: u64,
    /// Starvation yields so far.
    yields: i64,
    /// Steps at which the running processor is demoted, ascending.
    change_points: Vec<u64>,
    /// Visible steps taken so far (see [`Scheduler::visible_step`]).
    steps: u64,
    /// The processor picked at the previous step.
    running: Option<u32>,
    demotions: u64,
    depth: u64,
}

impl PctScheduler {
    /// A PCT scheduler for `seed` over `cpus` processors, with `depth`
    /// change points drawn uniformly in `1..=steps`.
    pub fn new(seed: u64, cpus: u32, depth: u32, steps: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = cpus as usize;
        let mut order: Vec<u64> = (0..n as u64).collect();
        // Fisher–Yates with the seeded RNG.
        for i in (1..n).rev() {
            let j = rng.gen_range(0..=i);
            order.swap(i, j);
        }
        let base = i64::from(depth) + 1;
        let priority = order.into_iter().map(|o| base + o as i64).collect();
        let k = steps.max(1);
        let mut change_points: Vec<u64> = (0..depth).map(|_| rng.gen_range(1..=k)).collect();
        change_points.sort_unstable();
        PctScheduler {
            rng,
            priority,
            change_points,
            steps: 0,
            running: None,
            demotions: 0,
            depth: u64::from(depth),
            run_length: 0,
            yields: 0,
        }
    }

    /// The change points, ascending (for reports and tests).
    pub fn change_points(&self) -> &[u64] {
        &self.change_points
    }
}

impl Scheduler for PctScheduler {
    fn strategy(&self) -> Strategy {
        Strategy::Pct
    }
    fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }
    fn visible_step(&mut self) {
        self.steps += 1;
    }
    fn pick(&mut self, steppable: &[u32]) -> u32 {
        while self.change_points.first().is_some_and(|&p| p <= self.steps) {
            self.change_points.remove(0);
            if let Some(r) = self.running {
                // The i-th demotion gets depth + 1 - i: below every initial
                // priority (>= depth + 1) and every earlier demotion.
                self.demotions += 1;
                self.priority[r as usize] = (self.depth + 1).saturating_sub(self.demotions) as i64;
            }
        }
        // A processor that keeps the others from ever stepping (a polling
        // loop whose reads change place, so it never counts as waiting)
        // yields: PCT assumes every thread eventually blocks or ends.
        if let Some(r) = self.running {
            if steppable.len() > 1 && steppable.contains(&r) {
                self.run_length += 1;
                if self.run_length > PCT_STARVATION_STEPS {
                    self.yields += 1;
                    self.priority[r as usize] = -self.yields;
                    self.run_length = 0;
                }
            }
        }
        let best = steppable
            .iter()
            .copied()
            .max_by_key(|&c| self.priority.get(c as usize).copied().unwrap_or(0))
            .unwrap_or(steppable[0]);
        if self.running != Some(best) {
            self.run_length = 0;
        }
        self.running = Some(best);
        best
    }
}
