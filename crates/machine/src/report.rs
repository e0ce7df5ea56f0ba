//! The result of one run, as data: what the text and JSON reports print.
//! Serialized with serde, this *is* the contract's `--format json` object.

use serde::Serialize;

/// How the run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Clean,
    Bugcheck,
    AssertionFailed,
}

/// One frame of a scenario backtrace (innermost first).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Frame {
    pub routine: String,
    pub line: u32,
    /// `file:line` for display.
    pub location: String,
}

/// A lock held by a processor when the run stopped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HeldLock {
    pub lock: String,
    /// `ordinary`, `queued`, `shared`, `exclusive`, `interrupt`.
    pub mode: String,
    /// Context (thread, DPC, ISR) that took it.
    pub by: String,
    pub line: u32,
    /// The `#include`d file `line` is in (absent: the scenario file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// One processor's state when the run stopped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CpuState {
    pub cpu: u32,
    pub irql: u8,
    /// What runs on top (`thread Worker#1`, `DPC SlowDpc`, `ISR OnInterrupt`, `idle`).
    pub running: String,
    /// `spinning on Lock` etc., if it is waiting.
    pub waiting: Option<String>,
    pub held: Vec<HeldLock>,
}

/// The bugcheck that ended the run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BugcheckReport {
    pub code: u32,
    pub name: String,
    /// The rule's id as `sim-runner rules` lists it (contract v2, JSON).
    pub rule: String,
    pub params: [u64; 4],
    /// The parameters as `0x` and upper-case hex digits (contract v2, JSON).
    pub params_hex: [String; 4],
    /// What each parameter means.
    pub param_meanings: [String; 4],
    /// The rule's one-line explanation.
    pub summary: String,
    /// Scenario-specific explanation (which lock, which routine, ...).
    pub detail: String,
    pub cpu: u32,
    pub irql: u8,
    pub line: u32,
    /// Thread, DPC or ISR that was running.
    pub context: String,
    pub backtrace: Vec<Frame>,
    /// Deadlock or lock-order analysis lines, if any.
    pub analysis: Vec<String>,
}

/// A failed ASSERT (or PAGED_CODE above APC_LEVEL).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AssertionReport {
    pub message: String,
    pub cpu: u32,
    pub irql: u8,
    pub line: u32,
    pub context: String,
    pub backtrace: Vec<Frame>,
}

/// A finding that does not end the run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WarningReport {
    pub rule: String,
    pub line: u32,
    pub message: String,
}

/// Statistics of one lock over the run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LockStatsReport {
    pub name: String,
    pub family: String,
    pub acquisitions: u64,
    pub contended: u64,
    pub longest_hold_us: f64,
    pub longest_spin_us: f64,
}

/// Everything about one run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunReport {
    pub scenario: String,
    pub title: Option<String>,
    pub file: String,
    /// The seed; `None` in parallel mode (not reproducible).
    pub seed: Option<u64>,
    /// The schedule strategy: `timing`, `random` or `pct`; `None` in
    /// parallel mode.
    pub strategy: Option<String>,
    /// PCT change points; `None` unless the strategy is `pct`.
    pub depth: Option<u32>,
    pub mode: String,
    pub cpus: u32,
    pub outcome: Outcome,
    pub bugcheck: Option<BugcheckReport>,
    pub assertion: Option<AssertionReport>,
    pub warnings: Vec<WarningReport>,
    /// The `expect` lines as written (`bugcheck 0xC4(0x1001)`, `clean`, ...).
    pub expectations: Vec<String>,
    pub expectation_met: bool,
    /// Why the expectation failed, if it did.
    pub expectation_failure: Option<String>,
    /// DbgPrint lines, in order.
    pub output: Vec<String>,
    pub locks: Vec<LockStatsReport>,
    /// Processor states when the run stopped.
    pub processors: Vec<CpuState>,
    /// Virtual time at the end of the run, microseconds.
    pub virtual_time_us: f64,
    /// Statements executed over all processors.
    pub statements: u64,
    /// Parallel mode only (absent from the JSON otherwise): the cores the
    /// processor threads ran on, their share of time at each IRQL, steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel: Option<ParallelReport>,
}

/// What a parallel run adds to its report (`"parallel"` in the JSON).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParallelReport {
    /// Wall time of the run, in ms.
    pub wall_ms: f64,
    /// One entry per virtual processor.
    pub processors: Vec<ParallelProcessor>,
    /// Wall-clock lock statistics, one entry per lock acquired or waited
    /// for at least once (the LOCKS table's virtual-time figures are per processor
    /// clock; these are real time, `Instant` at request, grant, release).
    pub locks: Vec<ParallelLock>,
}

/// One lock's wall-clock statistics in a parallel run; times in µs of
/// wall time.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParallelLock {
    pub name: String,
    pub acquisitions: u64,
    /// Acquisitions whose first attempt found the lock taken (granted or
    /// still spinning when the run ended).
    pub contended: u64,
    /// Mean and longest spin of the contended acquisitions (a spin still
    /// going when the run ended counts up to the end).
    pub mean_spin_us: f64,
    pub max_spin_us: f64,
    /// Mean and longest hold (a hold still going when the run ended counts
    /// up to the end).
    pub mean_hold_us: f64,
    pub max_hold_us: f64,
}

/// One processor thread of a parallel run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParallelProcessor {
    pub cpu: u32,
    /// The core its OS thread was pinned to (`None`: pinning failed).
    pub core: Option<usize>,
    /// Steps (statements and spin iterations) it took.
    pub steps: u64,
    /// Steps per second of its OS thread's CPU time (Unix:
    /// `CLOCK_THREAD_CPUTIME_ID`; elsewhere wall time), from the start
    /// line to the thread's end. The CPU time includes the thread's
    /// spinning on real lock words, its waits for the machine lock and its
    /// idle back-off, so a processor that mostly waits shows a low rate.
    pub steps_per_cpu_second: f64,
    /// Share of its CPU time at each IRQL that it spent time at, as
    /// `(irql, fraction)` pairs in IRQL order.
    pub irql_share: Vec<(u8, f64)>,
}
