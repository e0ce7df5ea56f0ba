//! The [`Verifier`]: feeds each event to the machine model (`state`)
//! and to the rules, and returns the first violation.
//!
//! Per event, in the order the contract gives ("the verifier's order and
//! inversion rules" after the engine's own ownership checks):
//!
//! - `ContextStart` / `ContextEnd`: context bookkeeping; an ISR's start is
//!   also its request of its interrupt lock for the lock-order graph; the end
//!   of an ISR or DPC is timed (`ISR_TOO_LONG`, `DPC_TOO_LONG`).
//! - `AcquireRequested`: lock-order edges and cycle check, then the ISR
//!   inversion rule (both only with `deadlock_detection`).
//! - `Acquired` / `Released` / `Converted`: holds; a release is timed
//!   (`HOLD_TIME_EXCEEDED`, except an ISR's own hold of its interrupt lock).
//! - `Access`: the lockset rule for guarded data (`UNGUARDED_ACCESS`).

use crate::inversion::{IsrInversion, IsrUse, LowerUse};
use crate::order::{CompactWitness, LockOrder, NO_LABEL};
use crate::state::{kind_word, CtxInfo, Hold, Machine};
use crate::warnings::{micros, rule, WarningLog};
use crate::{lock_name, Config, GuardInfo, LockInfo, Violation, Warning};
use std::collections::BTreeMap;
use vcpu::{AcquireKind, ContextKind, Event, EventKind, Irql, LockFamily, LockId, LockMode, Nanos};

/// Driver Verifier for the emulator: observes events, never changes them.
#[derive(Clone, Debug)]
pub struct Verifier {
    config: Config,
    locks: Vec<LockInfo>,
    guards: BTreeMap<u32, GuardInfo>,
    machine: Machine,
    order: LockOrder,
    inversion: IsrInversion,
    warnings: WarningLog,
}

impl Verifier {
    /// A verifier for a machine whose lock table is `locks` (`LockId(n)` is
    /// `locks[n]`) and whose `_Guarded_by_` data is `guards`.
    pub fn new(config: Config, locks: Vec<LockInfo>, guards: Vec<GuardInfo>) -> Self {
        Verifier {
            config,
            locks,
            guards: guards.into_iter().map(|g| (g.var, g)).collect(),
            machine: Machine::default(),
            order: LockOrder::new(),
            inversion: IsrInversion::new(),
            warnings: WarningLog::default(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The lock-order graph built so far (empty without `deadlock_detection`).
    pub fn lock_order(&self) -> &LockOrder {
        &self.order
    }

    /// Warnings found so far, in the order found.
    pub fn warnings(&self) -> &[Warning] {
        self.warnings.list()
    }

    /// Observe one event. `Some` is a violation that ends the run.
    pub fn observe(&mut self, ev: &Event) -> Option<Violation> {
        match &ev.kind {
            EventKind::ContextStart {
                kind,
                name,
                irql,
                interrupt_lock,
            } => {
                let info = CtxInfo {
                    kind: *kind,
                    name: name.clone(),
                    interrupt_lock: *interrupt_lock,
                    start_at: ev.at,
                    start_line: ev.line,
                };
                self.machine.on_start(ev.cpu, ev.ctx, ev.line, ev.at, info);
                if let (ContextKind::Isr, Some(il)) = (kind, interrupt_lock) {
                    // The kernel takes the interrupt lock before calling the ISR.
                    return self.on_request(
                        ev,
                        *il,
                        LockFamily::Interrupt,
                        AcquireKind::IsrEntry,
                        *irql,
                    );
                }
                None
            }
            EventKind::ContextEnd { .. } => {
                self.on_context_end(ev);
                None
            }
            EventKind::AcquireRequested {
                lock,
                family,
                how,
                irql,
                ..
            } => self.on_request(ev, *lock, *family, *how, *irql),
            EventKind::Acquired {
                lock, mode, how, ..
            } => {
                self.machine.on_acquired(
                    ev.cpu,
                    Hold {
                        lock: *lock,
                        mode: *mode,
                        how: *how,
                        at: ev.at,
                        line: ev.line,
                        ctx: ev.ctx,
                    },
                );
                None
            }
            EventKind::Released { lock, .. } => {
                if let Some(hold) = self.machine.on_released(ev.cpu, *lock) {
                    self.check_hold_time(&hold, ev.at);
                }
                None
            }
            EventKind::Converted { lock } => {
                self.machine.on_converted(ev.cpu, *lock);
                None
            }
            EventKind::Access { var, write } => {
                self.check_access(ev, *var, *write);
                None
            }
            EventKind::IrqlChanged { .. }
            | EventKind::ThreadPreempted { .. }
            | EventKind::ThreadResumed { .. }
            | EventKind::Print { .. }
            | EventKind::DpcQueued { .. }
            | EventKind::InterruptRaised { .. }
            | EventKind::ThreadBlocked { .. }
            | EventKind::ThreadReleased { .. }
            | EventKind::TimerExpired { .. }
            | EventKind::WorkItemQueued { .. } => None,
        }
    }

    fn declared_family(&self, lock: LockId) -> Option<LockFamily> {
        self.locks.get(lock.0 as usize).map(|l| l.family)
    }

    fn is_interrupt_lock(&self, lock: LockId, family: LockFamily) -> bool {
        family == LockFamily::Interrupt || self.declared_family(lock) == Some(LockFamily::Interrupt)
    }

    /// Lock-order edges from every held lock to `lock`, then the ISR rule.
    fn on_request(
        &mut self,
        ev: &Event,
        lock: LockId,
        family: LockFamily,
        how: AcquireKind,
        irql: Irql,
    ) -> Option<Violation> {
        // Deadlock detection sees the driver's own acquisitions only, not the
        // locks the kernel takes by itself (an ISR's interrupt lock on entry,
        // the lock inside an ExInterlocked routine): contract v2.
        let kernel_own = matches!(
            how,
            AcquireKind::IsrEntry | AcquireKind::Interlocked | AcquireKind::Kernel
        );
        if self.config.deadlock_detection && !kernel_own {
            if let Some(violation) = self.check_order(ev, lock) {
                return Some(violation);
            }
        }
        if self.is_interrupt_lock(lock, family) {
            return None;
        }
        let inversion = if self.machine.kind(ev.ctx) == ContextKind::Isr {
            let il = self.machine.ctx(ev.ctx).and_then(|c| c.interrupt_lock);
            if self.inversion.knows_isr(lock, il) {
                return None;
            }
            let u = IsrUse {
                who: self.machine.label(ev.ctx),
                irql,
                line: ev.line,
                interrupt_lock: il,
            };
            self.inversion.isr_use(lock, u)
        } else if irql <= Irql::DISPATCH
            && !matches!(how, AcquireKind::Interlocked | AcquireKind::Kernel)
        {
            let mut ils: Vec<LockId> = self
                .machine
                .held_locks(ev.cpu)
                .filter(|&l| self.declared_family(l) == Some(LockFamily::Interrupt))
                .collect();
            ils.sort_unstable();
            ils.dedup();
            if self.inversion.knows_lower(lock, &ils) {
                return None;
            }
            let u = LowerUse {
                who: self.machine.label(ev.ctx),
                irql,
                line: ev.line,
                interrupt_locks_held: ils,
            };
            self.inversion.lower_use(lock, u)
        } else {
            None
        };
        if let Some(i) = inversion {
            let name = lock_name(&self.locks, lock);
            let message = i.message(&self.locks);
            self.warnings
                .report(rule::ISR_LOCK_INVERSION, &name, ev.line, || message);
        }
        None
    }

    /// The lock-order rule for a request of `lock`: an edge from every held
    /// lock, each new one checked for a cycle. A chain of held locks already
    /// validated with `lock` adds nothing and is skipped.
    fn check_order(&mut self, ev: &Event, lock: LockId) -> Option<Violation> {
        let key = self.machine.chain_key(ev.cpu);
        if self.order.chain_validated(key, lock) {
            return None;
        }
        self.order.start_request(lock);
        let mut who = None;
        for h in self.machine.held(ev.cpu) {
            if !self.order.is_new_edge(h.lock, lock) {
                continue;
            }
            let who = *who.get_or_insert_with(|| self.order.intern(&self.machine.label(ev.ctx)));
            let holder = if h.ctx != ev.ctx {
                self.order.intern(&self.machine.label(h.ctx))
            } else {
                NO_LABEL
            };
            let witness = CompactWitness {
                who,
                holder,
                from_line: h.line,
                to_line: ev.line,
            };
            if let Some(cycle) = self.order.insert(h.lock, lock, witness) {
                return Some(cycle.violation(&self.locks));
            }
        }
        self.order.mark_validated(key, lock);
        None
    }

    fn on_context_end(&mut self, ev: &Event) {
        let Some(info) = self.machine.on_end(ev.cpu, ev.ctx) else {
            return;
        };
        let (rule, limit) = match info.kind {
            ContextKind::Isr => (rule::ISR_TOO_LONG, self.config.isr_limit_ns),
            ContextKind::Dpc => (rule::DPC_TOO_LONG, self.config.dpc_limit_ns),
            ContextKind::Thread => return,
        };
        let ran = ev.at.saturating_sub(info.start_at);
        if ran <= limit {
            return;
        }
        let line = if info.start_line != 0 {
            info.start_line
        } else {
            ev.line
        };
        self.warnings.report(rule, &info.name, line, || {
            format!(
                "{} {} ran for {} (limit {})",
                kind_word(info.kind),
                info.name,
                micros(ran),
                micros(limit)
            )
        });
    }

    fn check_hold_time(&mut self, hold: &Hold, released_at: Nanos) {
        if hold.how == AcquireKind::IsrEntry {
            return; // an ISR's own hold is judged by ISR_TOO_LONG alone
        }
        let held = released_at.saturating_sub(hold.at);
        let limit = self.config.hold_limit_ns;
        if held <= limit {
            return;
        }
        let name = lock_name(&self.locks, hold.lock);
        let who = self.machine.label(hold.ctx);
        self.warnings
            .report(rule::HOLD_TIME_EXCEEDED, &name, hold.line, || {
                format!(
                    "{name} held for {} by {who} (limit {}), acquired at line {}",
                    micros(held),
                    micros(limit),
                    hold.line
                )
            });
    }

    fn check_access(&mut self, ev: &Event, var: u32, write: bool) {
        let Some(guard) = self.guards.get(&var) else {
            return;
        };
        let lock = guard.guard;
        let mode = self.machine.ctx_holds(ev.cpu, ev.ctx, lock);
        let shared_write = write && mode == Some(LockMode::Shared);
        if mode.is_some() && !shared_write {
            return;
        }
        let lock_text = match self.declared_family(lock) {
            Some(LockFamily::Interrupt) => {
                format!(
                    "the interrupt spin lock of {}",
                    lock_name(&self.locks, lock)
                )
            }
            _ => lock_name(&self.locks, lock),
        };
        let who = self.machine.label(ev.ctx);
        let verb = if write { "written" } else { "read" };
        let interrupted_holder = mode.is_none() && self.machine.cpu_holds(ev.cpu, lock);
        let var_name = guard.name.clone();
        self.warnings
            .report(rule::UNGUARDED_ACCESS, &var_name, ev.line, || {
                if shared_write {
                    format!(
                        "{var_name} written under a shared hold of {lock_text} by {who} \
                         (line {}): writing needs it held exclusive",
                        ev.line
                    )
                } else if interrupted_holder {
                    format!(
                        "{var_name} {verb} by {who} (line {}) without holding {lock_text}: \
                         the context it interrupted holds it, and this access races that \
                         critical section",
                        ev.line
                    )
                } else {
                    format!(
                        "{var_name} {verb} by {who} (line {}) without holding {lock_text}",
                        ev.line
                    )
                }
            });
    }
}
