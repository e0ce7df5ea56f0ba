//! What the verifier knows about the machine at the current point of the
//! stream: the locks each processor holds, the ISRs nested on it, and the
//! name and kind of every running context.
//!
//! Ownership is per processor: a hold starts at `Acquired` and ends at the
//! matching `Released` on the same processor (`Converted` turns a shared
//! hold exclusive). An ISR holds its interrupt spin lock while it runs; that
//! hold is taken from the `ContextStart` of the ISR as well as from an
//! `Acquired { how: IsrEntry }`, so the verifier is right whichever of the two
//! the engine emits first, and also if it emits only one of them.

use crate::fast_hash::{FxHashMap, FxHashSet};
use crate::order::ChainKey;
use std::collections::BTreeMap;
use std::sync::Arc;
use vcpu::{AcquireKind, ContextKind, CpuId, LockId, LockMode, Nanos};

/// One lock held by a processor.
#[derive(Clone, Debug)]
pub(crate) struct Hold {
    pub lock: LockId,
    pub mode: LockMode,
    pub how: AcquireKind,
    pub at: Nanos,
    pub line: u32,
    pub ctx: u32,
}

/// An ISR running on a processor, over whatever it interrupted.
#[derive(Clone, Debug)]
pub(crate) struct IsrFrame {
    pub ctx: u32,
    pub interrupt_lock: Option<LockId>,
    pub line: u32,
}

/// The per-processor part of the state.
#[derive(Clone, Debug, Default)]
pub(crate) struct CpuState {
    /// Locks acquired and not yet released, oldest first.
    pub holds: Vec<Hold>,
    /// ISRs running on this processor, outermost first.
    pub isrs: Vec<IsrFrame>,
    /// `hold_chain[i]`: the interned sequence of `holds[..=i]`'s locks.
    hold_chain: Vec<u32>,
    /// `isr_chain[i]`: the interned sequence of `isrs[..=i]`'s interrupt locks.
    isr_chain: Vec<u32>,
}

/// Interns sequences of locks, one element at a time, as lockdep's
/// `chain_key` does: chain 0 is the empty sequence, and the chain of a
/// sequence plus one lock is looked up from the chain of the sequence. Equal
/// numbers mean equal sequences (no hash collisions: the table is exact).
#[derive(Clone, Debug, Default)]
pub(crate) struct ChainTable {
    next: FxHashMap<(u32, u64), u32>,
}

impl ChainTable {
    /// The chain of `parent` followed by `item`.
    fn extend(&mut self, parent: u32, item: u64) -> u32 {
        let fresh = self.next.len() as u32 + 1;
        *self.next.entry((parent, item)).or_insert(fresh)
    }
}

/// Recompute `hold_chain[from..]` after `holds` changed at `from`.
fn rechain_holds(table: &mut ChainTable, state: &mut CpuState, from: usize) {
    state.hold_chain.truncate(from);
    for i in from..state.holds.len() {
        let parent = if i == 0 { 0 } else { state.hold_chain[i - 1] };
        let c = table.extend(parent, u64::from(state.holds[i].lock.0));
        state.hold_chain.push(c);
    }
}

/// Recompute `isr_chain[from..]` after `isrs` changed at `from`.
fn rechain_isrs(table: &mut ChainTable, state: &mut CpuState, from: usize) {
    state.isr_chain.truncate(from);
    for i in from..state.isrs.len() {
        let parent = if i == 0 { 0 } else { state.isr_chain[i - 1] };
        let item = state.isrs[i]
            .interrupt_lock
            .map_or(u64::MAX, |l| u64::from(l.0));
        let c = table.extend(parent, item);
        state.isr_chain.push(c);
    }
}

/// A running context, from its `ContextStart`.
#[derive(Clone, Debug)]
pub(crate) struct CtxInfo {
    pub kind: ContextKind,
    pub name: Arc<str>,
    pub interrupt_lock: Option<LockId>,
    pub start_at: Nanos,
    pub start_line: u32,
}

/// A lock a processor holds, as seen by the lock-order rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HeldLock {
    pub lock: LockId,
    /// Line of the acquire (of the ISR's start for an ISR's interrupt lock).
    pub line: u32,
    /// The context that took it.
    pub ctx: u32,
}

/// Processors and contexts.
#[derive(Clone, Debug, Default)]
pub(crate) struct Machine {
    cpus: Vec<CpuState>,
    ctxs: BTreeMap<u32, CtxInfo>,
    chains: ChainTable,
}

/// `thread`, `DPC` or `ISR`.
pub(crate) fn kind_word(kind: ContextKind) -> &'static str {
    match kind {
        ContextKind::Thread => "thread",
        ContextKind::Dpc => "DPC",
        ContextKind::Isr => "ISR",
    }
}

impl Machine {
    fn cpu_mut(&mut self, cpu: CpuId) -> &mut CpuState {
        let i = cpu as usize;
        if self.cpus.len() <= i {
            self.cpus.resize_with(i + 1, CpuState::default);
        }
        &mut self.cpus[i]
    }

    /// Recompute the chains of `cpu` from the first hold and ISR frame
    /// that changed.
    fn rechain(&mut self, cpu: CpuId, holds_from: Option<usize>, isrs_from: Option<usize>) {
        self.cpu_mut(cpu);
        let (table, state) = (&mut self.chains, &mut self.cpus[cpu as usize]);
        if let Some(from) = holds_from {
            rechain_holds(table, state, from);
        }
        if let Some(from) = isrs_from {
            rechain_isrs(table, state, from);
        }
    }

    /// The processor's held-lock sequence, interned: what the lock-order
    /// graph caches validated chains by.
    pub fn chain_key(&self, cpu: CpuId) -> ChainKey {
        self.cpu(cpu)
            .map_or(ChainKey { holds: 0, isrs: 0 }, |s| ChainKey {
                holds: s.hold_chain.last().copied().unwrap_or(0),
                isrs: s.isr_chain.last().copied().unwrap_or(0),
            })
    }

    pub fn cpu(&self, cpu: CpuId) -> Option<&CpuState> {
        self.cpus.get(cpu as usize)
    }

    pub fn ctx(&self, ctx: u32) -> Option<&CtxInfo> {
        self.ctxs.get(&ctx)
    }

    /// The kind of a context; an unknown one is taken for a thread.
    pub fn kind(&self, ctx: u32) -> ContextKind {
        self.ctxs.get(&ctx).map_or(ContextKind::Thread, |c| c.kind)
    }

    /// `thread Reader`, `DPC SlowDpc`, `ISR OnInterrupt` (`context #7` if unknown).
    pub fn label(&self, ctx: u32) -> String {
        match self.ctxs.get(&ctx) {
            Some(c) => format!("{} {}", kind_word(c.kind), c.name),
            None => format!("context #{ctx}"),
        }
    }

    pub fn on_start(&mut self, cpu: CpuId, ctx: u32, line: u32, at: Nanos, info: CtxInfo) {
        if info.kind == ContextKind::Isr {
            let state = self.cpu_mut(cpu);
            state.isrs.push(IsrFrame {
                ctx,
                interrupt_lock: info.interrupt_lock,
                line,
            });
            let at = state.isrs.len() - 1;
            self.rechain(cpu, None, Some(at));
        }
        let info = CtxInfo {
            start_at: at,
            start_line: line,
            ..info
        };
        self.ctxs.insert(ctx, info);
    }

    /// The context ended: forget it (and an ISR's hold of its interrupt lock,
    /// if the engine did not release it before `ContextEnd`).
    pub fn on_end(&mut self, cpu: CpuId, ctx: u32) -> Option<CtxInfo> {
        let info = self.ctxs.remove(&ctx);
        let state = self.cpu_mut(cpu);
        if let Some(i) = state.isrs.iter().rposition(|f| f.ctx == ctx) {
            let frame = state.isrs.remove(i);
            let mut hold_at = None;
            if let Some(il) = frame.interrupt_lock {
                if let Some(h) = state
                    .holds
                    .iter()
                    .rposition(|h| h.lock == il && h.how == AcquireKind::IsrEntry)
                {
                    state.holds.remove(h);
                    hold_at = Some(h);
                }
            }
            self.rechain(cpu, hold_at, Some(i));
        }
        info
    }

    pub fn on_acquired(&mut self, cpu: CpuId, hold: Hold) {
        let state = self.cpu_mut(cpu);
        state.holds.push(hold);
        let at = state.holds.len() - 1;
        self.rechain(cpu, Some(at), None);
    }

    /// The hold that a release ends (the latest of that lock on that processor).
    pub fn on_released(&mut self, cpu: CpuId, lock: LockId) -> Option<Hold> {
        let state = self.cpu_mut(cpu);
        let i = state.holds.iter().rposition(|h| h.lock == lock)?;
        let hold = state.holds.remove(i);
        self.rechain(cpu, Some(i), None);
        Some(hold)
    }

    pub fn on_converted(&mut self, cpu: CpuId, lock: LockId) {
        let state = self.cpu_mut(cpu);
        if let Some(h) = state.holds.iter_mut().rev().find(|h| h.lock == lock) {
            h.mode = LockMode::Exclusive;
        }
    }

    /// Every lock the processor holds, oldest first, each once: its
    /// acquisitions, then the interrupt locks of its ISRs not acquired by an
    /// event. Linear in the number of holds.
    pub fn held(&self, cpu: CpuId) -> Vec<HeldLock> {
        let Some(state) = self.cpu(cpu) else {
            return Vec::new();
        };
        let mut seen: FxHashSet<LockId> = FxHashSet::default();
        seen.reserve(state.holds.len() + state.isrs.len());
        let holds = state.holds.iter().map(|h| HeldLock {
            lock: h.lock,
            line: h.line,
            ctx: h.ctx,
        });
        let isrs = state.isrs.iter().filter_map(|f| {
            f.interrupt_lock.map(|il| HeldLock {
                lock: il,
                line: f.line,
                ctx: f.ctx,
            })
        });
        holds.chain(isrs).filter(|h| seen.insert(h.lock)).collect()
    }

    /// Every lock the processor holds, oldest first, possibly repeated:
    /// its acquisitions, then the interrupt locks of its ISRs.
    pub fn held_locks(&self, cpu: CpuId) -> impl Iterator<Item = LockId> + '_ {
        let state = self.cpu(cpu);
        let holds = state
            .into_iter()
            .flat_map(|s| s.holds.iter().map(|h| h.lock));
        let isrs = state
            .into_iter()
            .flat_map(|s| s.isrs.iter().filter_map(|f| f.interrupt_lock));
        holds.chain(isrs)
    }

    /// True if the processor holds `lock` in any way.
    pub fn cpu_holds(&self, cpu: CpuId, lock: LockId) -> bool {
        self.cpu(cpu).is_some_and(|s| {
            s.holds.iter().any(|h| h.lock == lock)
                || s.isrs.iter().any(|f| f.interrupt_lock == Some(lock))
        })
    }

    /// The strongest mode in which context `ctx` on `cpu` holds `lock`
    /// itself: its own acquisitions, or its interrupt lock if it is an ISR.
    /// A lock held by a context this one interrupted does not count: the
    /// interrupted critical section is exactly what the access would race.
    pub fn ctx_holds(&self, cpu: CpuId, ctx: u32, lock: LockId) -> Option<LockMode> {
        let state = self.cpu(cpu)?;
        let mut best = None;
        for h in state
            .holds
            .iter()
            .filter(|h| h.lock == lock && h.ctx == ctx)
        {
            if h.mode == LockMode::Exclusive {
                return Some(LockMode::Exclusive);
            }
            best = Some(h.mode);
        }
        if state
            .isrs
            .iter()
            .any(|f| f.ctx == ctx && f.interrupt_lock == Some(lock))
        {
            return Some(LockMode::Exclusive);
        }
        best
    }
}
