//! The verifier: a pure observer of the engine's event stream.
//!
//! The engine emits one stream of [`vcpu::Event`]s; this crate watches it and
//! reports what Windows' Driver Verifier would report, plus findings that do
//! not end a run. It never changes what the machine does: the engine calls
//! [`Verifier::observe`] for every event, in order, and stops the run at the
//! first [`Violation`] it gets back. Every observer of the stream (the
//! verifier, [`LockStats`], trace writers, [`Recorder`]) implements
//! [`Observer`].
//!
//! Architecture invariant: it sees only `vcpu` events and the lock/guard
//! tables it is given; it never imports `scenario`, `machine` or
//! `spinlocks`, and never looks into the machine.
//!
//! What is checked:
//!
//! - **Lock hierarchy** (`deadlock_detection`): a graph of acquisition order
//!   over the whole run (an edge `H → L` when `L` is requested while the
//!   processor holds `H`); a cycle is `0xC4/0x1001` even if it never deadlocked
//!   ([`order`]).
//! - **ISR inversion** (`deadlock_detection`): a spin lock taken inside an ISR
//!   and also at IRQL ≤ DISPATCH_LEVEL without the interrupt's lock, also
//!   `0xC4/0x1001` ([`inversion`]).
//! - **Warnings**, always on: `UNGUARDED_ACCESS` (guarded data touched without
//!   its lock, or written under a shared hold), `HOLD_TIME_EXCEEDED`,
//!   `ISR_TOO_LONG`, `DPC_TOO_LONG`, each reported once per rule and place
//!   ([`warnings`]).
//! - **Statistics** per lock: acquisitions, contended acquisitions, longest
//!   hold and spin ([`stats`]).
//!
//! Ownership is per processor: a processor holds the locks it acquired and has
//! not released, and an ISR nests over the context it interrupted. Every
//! iteration that can reach an output goes over ordered collections, so the
//! same event stream always gives the same report, byte for byte.
//!
//! ```
//! use std::sync::Arc;
//! use vcpu::{AcquireKind, ContextKind, Event, EventKind, Irql, LockFamily, LockId, LockMode};
//! use verifier::{Config, LockInfo, Verifier};
//!
//! let locks = vec![LockInfo { name: "Stats".into(), address: 0x1000, family: LockFamily::Ordinary }];
//! let mut v = Verifier::new(Config::default(), locks, Vec::new());
//! let ev = |at, line, kind| Event { at, cpu: 0, ctx: 1, line, kind };
//! let name: Arc<str> = Arc::from("Worker");
//! let stats = LockId(0);
//! let (family, mode) = (LockFamily::Ordinary, LockMode::Exclusive);
//! let stream = [
//!     ev(0, 0, EventKind::ContextStart { kind: ContextKind::Thread, name: name.clone(), irql: Irql::PASSIVE, interrupt_lock: None }),
//!     ev(100, 7, EventKind::AcquireRequested { lock: stats, family, mode, how: AcquireKind::Raising, irql: Irql::PASSIVE }),
//!     ev(200, 7, EventKind::Acquired { lock: stats, family, mode, how: AcquireKind::Raising, spun: 0 }),
//!     ev(40_000, 9, EventKind::Released { lock: stats, family, mode }),
//! ];
//! for e in &stream {
//!     assert!(v.observe(e).is_none());
//! }
//! assert_eq!(v.warnings()[0].rule, "HOLD_TIME_EXCEEDED");
//! ```

mod fast_hash;
pub mod inversion;
pub mod observer;
pub mod order;
mod state;
pub mod stats;
pub mod warnings;

#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;

use serde::Serialize;

pub use observer::Verifier;

/// Anything that watches a run's event stream: the verifier, the lock
/// statistics, trace writers and recorders. The machine hands every
/// [`vcpu::Event`] to each observer in the order it emitted them; an
/// observer sees nothing else of the machine, so a new analysis or report is
/// a new observer.
pub trait Observer {
    /// See one event. Return a [`Violation`] when a rule this observer
    /// keeps is broken: the machine stops the run with its bug check (only
    /// the verifier does; reports and recorders return `None`).
    fn observe(&mut self, ev: &vcpu::Event) -> Option<Violation>;
}

impl Observer for Verifier {
    fn observe(&mut self, ev: &vcpu::Event) -> Option<Violation> {
        Verifier::observe(self, ev)
    }
}

impl Observer for LockStats {
    fn observe(&mut self, ev: &vcpu::Event) -> Option<Violation> {
        LockStats::observe(self, ev);
        None
    }
}

/// An observer that keeps every event (for tests and small traces; a long
/// run should stream to a writer instead).
#[derive(Debug, Default)]
pub struct Recorder {
    /// The events seen, in order.
    pub events: Vec<vcpu::Event>,
}

impl Observer for Recorder {
    fn observe(&mut self, ev: &vcpu::Event) -> Option<Violation> {
        self.events.push(ev.clone());
        None
    }
}
pub use stats::{LockStat, LockStats};
pub use warnings::rule;

/// Which checks are on and the time limits of the warning rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Config {
    /// Driver Verifier's deadlock detection: lock-order cycles and ISR inversions.
    pub deadlock_detection: bool,
    /// Longest a spin lock may be held before `HOLD_TIME_EXCEEDED` (ns).
    pub hold_limit_ns: u64,
    /// Longest an ISR may run before `ISR_TOO_LONG` (ns).
    pub isr_limit_ns: u64,
    /// Longest a DPC may run before `DPC_TOO_LONG` (ns).
    pub dpc_limit_ns: u64,
}

impl Default for Config {
    /// Deadlock detection on; 25 µs holds, 25 µs ISRs, 100 µs DPCs.
    fn default() -> Self {
        Config {
            deadlock_detection: true,
            hold_limit_ns: 25_000,
            isr_limit_ns: 25_000,
            dpc_limit_ns: 100_000,
        }
    }
}

/// One lock of the machine's lock table; `LockId(n)` is the n-th entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LockInfo {
    /// The name declared in the scenario (`DeviceLock`, or the KINTERRUPT's
    /// name for an interrupt spin lock).
    pub name: String,
    /// The lock's simulated address, used for bugcheck parameters.
    pub address: u64,
    /// Declared family: `Ordinary` for any `KSPIN_LOCK` (queued use included),
    /// `ReaderWriter` for `EX_SPIN_LOCK`, `Interrupt` for a `KINTERRUPT`'s lock.
    pub family: vcpu::LockFamily,
}

/// A `_Guarded_by_(lock)` variable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GuardInfo {
    /// The variable's number, as in `EventKind::Access`.
    pub var: u32,
    /// The variable's declared name.
    pub name: String,
    /// The lock that guards it (for a KINTERRUPT, its interrupt spin lock).
    pub guard: vcpu::LockId,
}

/// A rule broken badly enough to end the run: the bugcheck and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub bugcheck: vcpu::Bugcheck,
    /// One sentence naming the locks involved.
    pub detail: String,
    /// Driver-Verifier-style analysis: who took what, in which order, where.
    pub analysis: Vec<String>,
}

/// A finding that does not end the run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// One of the names in [`rule`].
    pub rule: &'static str,
    /// The scenario line the finding is about (the acquire of an over-long
    /// hold, the access, the routine's start).
    pub line: u32,
    pub message: String,
}

/// The declared name of a lock (`lock #n` if the table lacks it).
pub(crate) fn lock_name(locks: &[LockInfo], id: vcpu::LockId) -> String {
    locks
        .get(id.0 as usize)
        .map_or_else(|| format!("lock #{}", id.0), |l| l.name.clone())
}

/// The simulated address of a lock (0 if the table lacks it).
pub(crate) fn lock_addr(locks: &[LockInfo], id: vcpu::LockId) -> u64 {
    locks.get(id.0 as usize).map_or(0, |l| l.address)
}
