//! One virtual processor: IRQL, a stack of execution contexts (a thread at
//! the bottom, DPC and ISR frames above it), the DPC queue, pending device
//! interrupts, the threads waiting for a time slice, and the virtual clock.
//!
//! The processor is generic over the context payload `C` (the interpreter's
//! frames), so it knows nothing about scenarios. It answers the questions
//! asked at every safe point: which interrupt may be delivered now, whether
//! the DPC queue may drain, whether a time slice may switch threads.

use crate::{ContextKind, CpuId, Irql, Nanos};
use std::collections::VecDeque;

/// DPC importance (KeSetImportanceDpc), with the WDK's values: Low 0,
/// Medium 1 (the default), High 2, MediumHigh 3 (contract v2, "DPCs, the
/// clock and the watchdog").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Importance {
    Low,
    #[default]
    Medium,
    High,
    MediumHigh,
}

impl Importance {
    /// The importance of a `KeSetImportanceDpc` value (unknown: Medium).
    pub fn from_value(v: i64) -> Importance {
        match v {
            0 => Importance::Low,
            2 => Importance::High,
            3 => Importance::MediumHigh,
            _ => Importance::Medium,
        }
    }
}

/// A per-processor DPC queue of DPC object indices. Each DPC is queued at
/// most once; high importance goes to the head, others to the tail.
#[derive(Clone, Debug, Default)]
pub struct DpcQueue {
    queue: VecDeque<u32>,
}

impl DpcQueue {
    /// Queue `dpc`; false if it is already queued.
    pub fn insert(&mut self, dpc: u32, importance: Importance) -> bool {
        if self.queue.contains(&dpc) {
            return false;
        }
        match importance {
            Importance::High => self.queue.push_front(dpc),
            _ => self.queue.push_back(dpc),
        }
        true
    }

    /// Unqueue `dpc`; true if it was queued.
    pub fn remove(&mut self, dpc: u32) -> bool {
        match self.queue.iter().position(|&d| d == dpc) {
            Some(i) => {
                self.queue.remove(i);
                true
            }
            None => false,
        }
    }

    /// Take the next DPC to run (it is unqueued before it runs).
    pub fn pop(&mut self) -> Option<u32> {
        self.queue.pop_front()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// How many DPCs are queued.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn contains(&self, dpc: u32) -> bool {
        self.queue.contains(&dpc)
    }
}

/// A device interrupt waiting to be delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingInterrupt {
    /// Index of the KINTERRUPT object.
    pub interrupt: u32,
    /// Its IRQL: delivered only while the processor is below it.
    pub irql: Irql,
}

/// One execution context on a processor's stack.
#[derive(Debug)]
pub struct Context<C> {
    pub kind: ContextKind,
    /// Serial number, unique in the run.
    pub serial: u32,
    /// IRQL to restore when this context (a DPC or ISR) returns.
    pub saved_irql: Irql,
    /// When it started running (virtual time).
    pub started: Nanos,
    /// Clock ticks that found this context (a DPC or ISR) running: the
    /// single DPC/ISR watchdog count.
    pub ticks: u64,
    pub payload: C,
}

/// A virtual processor.
#[derive(Debug)]
pub struct Processor<C> {
    pub id: CpuId,
    pub irql: Irql,
    /// Virtual clock of this processor.
    pub clock: Nanos,
    /// Running contexts: the current thread at the bottom, DPCs and ISRs above.
    pub stack: Vec<Context<C>>,
    /// Threads of this processor waiting for a time slice.
    pub ready: VecDeque<Context<C>>,
    pub dpcs: DpcQueue,
    pub pending: Vec<PendingInterrupt>,
    /// Start of the current thread's time slice.
    pub slice_start: Nanos,
    /// Since when the processor has been at DISPATCH_LEVEL or above.
    pub raised_since: Option<Nanos>,
    /// A DPC interrupt is requested: the queue drains at the first safe
    /// point below DISPATCH_LEVEL.
    pub dpc_requested: bool,
    /// Time of this processor's next clock tick.
    pub next_tick: Nanos,
    /// Ticks that found the processor at DISPATCH_LEVEL or above since it
    /// last dropped below (the cumulative watchdog count).
    pub raised_ticks: u64,
}

impl<C> Processor<C> {
    pub fn new(id: CpuId) -> Self {
        Processor {
            id,
            irql: Irql::PASSIVE,
            clock: 0,
            stack: Vec::new(),
            ready: VecDeque::new(),
            dpcs: DpcQueue::default(),
            pending: Vec::new(),
            slice_start: 0,
            raised_since: None,
            dpc_requested: false,
            next_tick: Nanos::MAX,
            raised_ticks: 0,
        }
    }

    /// Set the IRQL, keeping track of the raised-IRQL stretch for the DPC
    /// watchdog. Returns the previous IRQL.
    pub fn set_irql(&mut self, to: Irql) -> Irql {
        let from = self.irql;
        self.irql = to;
        match (from.is_raised(), to.is_raised()) {
            (false, true) => self.raised_since = Some(self.clock),
            (true, false) => {
                self.raised_since = None;
                self.raised_ticks = 0;
            }
            _ => {}
        }
        from
    }

    /// Make a device interrupt pending (level-triggered: a second arrival
    /// before delivery merges with the first).
    pub fn raise_interrupt(&mut self, p: PendingInterrupt) {
        if !self.pending.contains(&p) {
            self.pending.push(p);
        }
    }

    /// The pending interrupt that may be delivered now: the one with the
    /// highest IRQL above the current IRQL (earliest raised among equals).
    pub fn deliverable_interrupt(&self) -> Option<PendingInterrupt> {
        let mut best: Option<PendingInterrupt> = None;
        for p in &self.pending {
            if p.irql > self.irql && best.is_none_or(|b| p.irql > b.irql) {
                best = Some(*p);
            }
        }
        best
    }

    /// Remove a pending interrupt (it is being delivered).
    pub fn take_interrupt(&mut self, p: PendingInterrupt) {
        self.pending.retain(|q| *q != p);
    }

    /// True when the DPC queue may drain: IRQL below DISPATCH_LEVEL,
    /// something queued, and a DPC interrupt requested or the processor
    /// idle (contract v2: an idle processor drains as soon as its queue is
    /// not empty; otherwise a deferred DPC waits for a request or a tick).
    /// No drain starts inside a DPC (a DPC that lowered IRQL is still one).
    pub fn dpc_ready(&self) -> bool {
        self.irql < Irql::DISPATCH
            && !self.dpcs.is_empty()
            && (self.dpc_requested || (self.stack.is_empty() && self.ready.is_empty()))
            && !self.stack.iter().any(|c| c.kind == ContextKind::Dpc)
    }

    /// True when a time slice may switch threads: only a thread runs (no DPC
    /// or ISR above it), IRQL below DISPATCH_LEVEL, the slice is used up
    /// and another thread waits.
    pub fn slice_expired(&self, quantum: Nanos) -> bool {
        self.irql < Irql::DISPATCH
            && self.stack.len() <= 1
            && !self.ready.is_empty()
            && self.clock.saturating_sub(self.slice_start) >= quantum
    }

    /// The context on top of the stack (the one that runs).
    pub fn top(&self) -> Option<&Context<C>> {
        self.stack.last()
    }

    /// True when nothing runs and nothing waits on this processor.
    pub fn is_idle(&self) -> bool {
        self.stack.is_empty() && self.ready.is_empty() && self.dpcs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn irq(i: u32, l: u8) -> PendingInterrupt {
        PendingInterrupt {
            interrupt: i,
            irql: Irql(l),
        }
    }

    #[test]
    fn irql_masks_interrupts_at_or_below() {
        let mut p: Processor<()> = Processor::new(0);
        p.raise_interrupt(irq(0, 5));
        p.set_irql(Irql(5));
        assert_eq!(p.deliverable_interrupt(), None, "equal IRQL is masked");
        p.set_irql(Irql(7));
        assert_eq!(p.deliverable_interrupt(), None, "lower IRQL is masked");
        p.set_irql(Irql::DISPATCH);
        assert_eq!(p.deliverable_interrupt(), Some(irq(0, 5)));
    }

    #[test]
    fn higher_interrupt_nests_over_lower_isr() {
        let mut p: Processor<()> = Processor::new(0);
        p.raise_interrupt(irq(0, 5));
        p.raise_interrupt(irq(1, 9));
        assert_eq!(p.deliverable_interrupt(), Some(irq(1, 9)), "highest first");
        p.take_interrupt(irq(1, 9));
        // Running the IRQL-5 ISR: an IRQL-9 interrupt may nest, another 5 may not.
        p.take_interrupt(irq(0, 5));
        p.set_irql(Irql(5));
        p.raise_interrupt(irq(0, 5));
        assert_eq!(p.deliverable_interrupt(), None);
        p.raise_interrupt(irq(1, 9));
        assert_eq!(p.deliverable_interrupt(), Some(irq(1, 9)));
    }

    #[test]
    fn level_triggered_arrivals_merge() {
        let mut p: Processor<()> = Processor::new(0);
        p.raise_interrupt(irq(0, 5));
        p.raise_interrupt(irq(0, 5));
        assert_eq!(p.pending.len(), 1);
    }

    #[test]
    fn dpc_drain_order_and_queued_once() {
        let mut q = DpcQueue::default();
        assert!(q.insert(1, Importance::Low));
        assert!(q.insert(2, Importance::Medium));
        assert!(q.insert(3, Importance::High));
        assert!(!q.insert(2, Importance::High), "already queued");
        assert_eq!(q.pop(), Some(3));
        assert_eq!(q.pop(), Some(1));
        assert!(q.remove(2));
        assert!(!q.remove(2));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn dpcs_drain_only_below_dispatch() {
        let mut p: Processor<()> = Processor::new(0);
        p.dpcs.insert(0, Importance::Medium);
        p.dpc_requested = true;
        p.set_irql(Irql::DISPATCH);
        assert!(!p.dpc_ready());
        p.set_irql(Irql::APC);
        assert!(p.dpc_ready());
    }

    #[test]
    fn raised_stretch_is_tracked() {
        let mut p: Processor<()> = Processor::new(0);
        p.clock = 100;
        p.set_irql(Irql::DISPATCH);
        assert_eq!(p.raised_since, Some(100));
        p.clock = 200;
        p.set_irql(Irql(7));
        assert_eq!(p.raised_since, Some(100), "still raised");
        p.set_irql(Irql::PASSIVE);
        assert_eq!(p.raised_since, None);
    }
}
