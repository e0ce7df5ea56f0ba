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
            self.cpu_mut(cpu).isrs.push(IsrFrame {
                ctx,
                interrupt_lock: info.interrupt_lock,
                line,
            });
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
            if let Some(il) = frame.interrupt_lock {
                if let Some(h) = state
                    .holds
                    .iter()
                    .rposition(|h| h.lock == il && h.how == AcquireKind::IsrEntry)
                {
                    state.holds.remove(h);
                }
            }
        }
        info
    }

    pub fn on_acquired(&mut self, cpu: CpuId, hold: Hold) {
        self.cpu_mut(cpu).holds.push(hold);
    }

    /// The hold that a release ends (the latest of that lock on that processor).
    pub fn on_released(&mut self, cpu: CpuId, lock: LockId) -> Option<Hold> {
        let state = self.cpu_mut(cpu);
        let i = state.holds.iter().rposition(|h| h.lock == lock)?;
        Some(state.holds.remove(i))
    }

    pub fn on_converted(&mut self, cpu: CpuId, lock: LockId) {
        let state = self.cpu_mut(cpu);
        if let Some(h) = state.holds.iter_mut().rev().find(|h| h.lock == lock) {
            h.mode = LockMode::Exclusive;
        }
    }

    /// Every lock the processor holds, oldest first, each once: its
    /// acquisitions, then the interrupt locks of its ISRs not acquired by an
    /// event.
    pub fn held(&self, cpu: CpuId) -> Vec<HeldLock> {
        let Some(state) = self.cpu(cpu) else {
            return Vec::new();
        };
        let mut out: Vec<HeldLock> = Vec::with_capacity(state.holds.len() + state.isrs.len());
        for h in &state.holds {
            if !out.iter().any(|o| o.lock == h.lock) {
                out.push(HeldLock {
                    lock: h.lock,
                    line: h.line,
                    ctx: h.ctx,
                });
            }
        }
        for f in &state.isrs {
            if let Some(il) = f.interrupt_lock {
                if !out.iter().any(|o| o.lock == il) {
                    out.push(HeldLock {
                        lock: il,
                        line: f.line,
                        ctx: f.ctx,
                    });
                }
            }
        }
        out
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
