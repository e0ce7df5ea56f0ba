//! Per-lock statistics over a run: how often each lock was taken, how often
//! the taker had to spin, the longest hold and the longest spin.
//!
//! Holds are matched per (processor, lock): a reader/writer lock can have
//! several shared holders at once on different processors, and each
//! `Released` ends the latest hold of that lock on its own processor. An
//! ISR's hold of its interrupt lock ends at its `Released` or, if the engine
//! emits none, at the ISR's `ContextEnd`.

use serde::Serialize;
use std::collections::BTreeMap;
use vcpu::{AcquireKind, ContextKind, CpuId, Event, EventKind, LockId, Nanos};

/// The statistics of one lock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LockStat {
    /// Every `Acquired`.
    pub acquisitions: u64,
    /// Acquisitions that spun before being granted.
    pub contended: u64,
    /// Longest `Acquired` → `Released` on one processor (ns).
    pub longest_hold_ns: u64,
    /// Longest spin before an acquisition (ns).
    pub longest_spin_ns: u64,
}

/// Statistics of every lock, fed by the event stream.
#[derive(Clone, Debug, Default)]
pub struct LockStats {
    stats: Vec<LockStat>,
    /// Open holds per (processor, lock), latest last.
    open: BTreeMap<(CpuId, LockId), Vec<(Nanos, AcquireKind)>>,
    /// Running ISRs: context → (processor, interrupt lock).
    isrs: BTreeMap<u32, (CpuId, LockId)>,
}

impl LockStats {
    /// Statistics for a machine with `lock_count` locks (more are added on
    /// demand if an event names a higher index).
    pub fn new(lock_count: usize) -> Self {
        LockStats {
            stats: vec![LockStat::default(); lock_count],
            ..LockStats::default()
        }
    }

    fn stat_mut(&mut self, lock: LockId) -> &mut LockStat {
        let i = lock.0 as usize;
        if self.stats.len() <= i {
            self.stats.resize(i + 1, LockStat::default());
        }
        &mut self.stats[i]
    }

    fn end_hold(&mut self, lock: LockId, acquired: Nanos, released: Nanos) {
        let held = released.saturating_sub(acquired);
        let s = self.stat_mut(lock);
        s.longest_hold_ns = s.longest_hold_ns.max(held);
    }

    pub fn observe(&mut self, ev: &Event) {
        match &ev.kind {
            EventKind::Acquired {
                lock, how, spun, ..
            } => {
                let s = self.stat_mut(*lock);
                s.acquisitions += 1;
                if *spun > 0 {
                    s.contended += 1;
                }
                s.longest_spin_ns = s.longest_spin_ns.max(*spun);
                self.open
                    .entry((ev.cpu, *lock))
                    .or_default()
                    .push((ev.at, *how));
            }
            EventKind::Released { lock, .. } => {
                if let Some((at, _)) = self.open.get_mut(&(ev.cpu, *lock)).and_then(Vec::pop) {
                    self.end_hold(*lock, at, ev.at);
                }
            }
            EventKind::ContextStart {
                kind: ContextKind::Isr,
                interrupt_lock: Some(il),
                ..
            } => {
                self.isrs.insert(ev.ctx, (ev.cpu, *il));
            }
            EventKind::ContextEnd {
                kind: ContextKind::Isr,
                ..
            } => {
                if let Some(key) = self.isrs.remove(&ev.ctx) {
                    let open = self.open.get_mut(&key);
                    if let Some(stack) = open {
                        if stack
                            .last()
                            .is_some_and(|(_, how)| *how == AcquireKind::IsrEntry)
                        {
                            let (at, _) = stack.pop().expect("checked non-empty");
                            self.end_hold(key.1, at, ev.at);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// The statistics of one lock (all zero for a lock never seen).
    pub fn get(&self, lock: LockId) -> LockStat {
        self.stats.get(lock.0 as usize).copied().unwrap_or_default()
    }

    /// Every lock's statistics, indexed by `LockId`.
    pub fn all(&self) -> &[LockStat] {
        &self.stats
    }
}
