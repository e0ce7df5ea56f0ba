//! ISR-versus-lower-IRQL inversion: lockdep's "irq-safe" class for Windows.
//!
//! A spin lock `L` (not an interrupt lock) taken inside an ISR, and also
//! taken elsewhere at IRQL ≤ DISPATCH_LEVEL without the interrupt's spin
//! lock, can deadlock a single processor: if the interrupt arrives while the
//! lower-IRQL code holds `L`, the ISR spins on `L` at DIRQL and the holder
//! never runs again to release it. This is the tool's own prediction, the
//! warning `ISR_LOCK_INVERSION` (contract v2, "Warnings"): Driver Verifier
//! raises nothing until the ISR really interrupts the holder (then 0x1000,
//! or without deadlock detection 0xF or a hang).
//!
//! Both kinds of use are remembered for the whole run, so the finding is
//! made when the second of a conflicting pair appears, in either order.
//! A lower use made through an `ExInterlocked...List` routine is safe (the
//! real routine disables interrupts while it holds the lock) and is not
//! recorded; neither is a use holding the interrupt's lock (inside
//! `KeSynchronizeExecution` or `KeAcquireInterruptSpinLock`).

use crate::{lock_addr, lock_name, LockInfo, Violation};
use std::collections::BTreeMap;
use vcpu::bugcheck::c4;
use vcpu::{Bugcheck, Irql, LockId};

/// `L` requested inside an ISR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsrUse {
    /// `ISR OnInterrupt`.
    pub who: String,
    pub irql: Irql,
    pub line: u32,
    /// The interrupt lock the ISR runs under.
    pub interrupt_lock: Option<LockId>,
}

/// `L` requested outside any ISR at IRQL ≤ DISPATCH_LEVEL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LowerUse {
    /// `thread Worker`, `DPC Poll`.
    pub who: String,
    pub irql: Irql,
    pub line: u32,
    /// Interrupt locks the processor held at the request, sorted.
    pub interrupt_locks_held: Vec<LockId>,
}

impl LowerUse {
    fn exposed_to(&self, isr: &IsrUse) -> bool {
        match isr.interrupt_lock {
            Some(il) => !self.interrupt_locks_held.contains(&il),
            None => true,
        }
    }
}

/// Uses of each lock, first witness per distinct situation.
#[derive(Clone, Debug, Default)]
pub struct IsrInversion {
    isr: BTreeMap<LockId, Vec<IsrUse>>,
    lower: BTreeMap<LockId, Vec<LowerUse>>,
}

/// A conflicting pair of uses of one lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inversion {
    pub lock: LockId,
    pub isr: IsrUse,
    pub lower: LowerUse,
}

impl IsrInversion {
    pub fn new() -> Self {
        IsrInversion::default()
    }

    /// True if an ISR use of `lock` under `interrupt_lock` is already known
    /// (and was found harmless so far): a new one would change nothing.
    pub fn knows_isr(&self, lock: LockId, interrupt_lock: Option<LockId>) -> bool {
        self.isr
            .get(&lock)
            .is_some_and(|us| us.iter().any(|u| u.interrupt_lock == interrupt_lock))
    }

    /// True if a lower use of `lock` holding exactly these interrupt locks is
    /// already known.
    pub fn knows_lower(&self, lock: LockId, interrupt_locks_held: &[LockId]) -> bool {
        self.lower.get(&lock).is_some_and(|us| {
            us.iter()
                .any(|u| u.interrupt_locks_held == interrupt_locks_held)
        })
    }

    /// `lock` was requested inside an ISR.
    pub fn isr_use(&mut self, lock: LockId, u: IsrUse) -> Option<Inversion> {
        let uses = self.isr.entry(lock).or_default();
        if uses.iter().any(|o| o.interrupt_lock == u.interrupt_lock) {
            return None;
        }
        let hit = self
            .lower
            .get(&lock)
            .and_then(|ls| ls.iter().find(|l| l.exposed_to(&u)))
            .cloned();
        match hit {
            Some(lower) => Some(Inversion {
                lock,
                isr: u,
                lower,
            }),
            None => {
                uses.push(u);
                None
            }
        }
    }

    /// `lock` was requested outside any ISR at IRQL ≤ DISPATCH_LEVEL.
    pub fn lower_use(&mut self, lock: LockId, u: LowerUse) -> Option<Inversion> {
        let uses = self.lower.entry(lock).or_default();
        if uses
            .iter()
            .any(|o| o.interrupt_locks_held == u.interrupt_locks_held)
        {
            return None;
        }
        let hit = self
            .isr
            .get(&lock)
            .and_then(|is| is.iter().find(|i| u.exposed_to(i)))
            .cloned();
        match hit {
            Some(isr) => Some(Inversion {
                lock,
                isr,
                lower: u,
            }),
            None => {
                uses.push(u);
                None
            }
        }
    }
}

impl Inversion {
    /// The warning's message: the two uses and the consequence.
    pub fn message(&self, locks: &[LockInfo]) -> String {
        let v = self.violation(locks);
        format!("{} {}", v.detail, v.analysis.join(" "))
    }

    /// The finding as a detail and an analysis (the `bugcheck` is the
    /// re-acquire 0xC4/0x1000 it would become if the ISR really interrupted
    /// the holder under deadlock detection).
    pub fn violation(&self, locks: &[LockInfo]) -> Violation {
        let l = lock_name(locks, self.lock);
        let (isr, lower) = (&self.isr, &self.lower);
        let bugcheck = Bugcheck::verifier(c4::SELF_DEADLOCK, lock_addr(locks, self.lock), 0, 0);
        let (isr_holding, without) = match isr.interrupt_lock {
            Some(il) => {
                let il = lock_name(locks, il);
                (
                    format!(" while holding the interrupt spin lock of {il}"),
                    format!("without holding the interrupt spin lock of {il}"),
                )
            }
            None => (String::new(), "outside the ISR".to_string()),
        };
        let detail = format!(
            "{l} is taken by {} at {} and by {} at {} {without}: the ISR can interrupt \
             the holder of {l} on its own processor and spin forever",
            isr.who,
            isr.irql.name(),
            lower.who,
            lower.irql.name(),
        );
        let interrupt = match isr.interrupt_lock {
            Some(il) => format!("the interrupt of {}", lock_name(locks, il)),
            None => "the interrupt".to_string(),
        };
        let analysis = vec![
            format!(
                "{} takes {l} at {} (line {}){isr_holding}",
                isr.who,
                isr.irql.name(),
                isr.line
            ),
            format!(
                "{} takes {l} at {} (line {}) {without}",
                lower.who,
                lower.irql.name(),
                lower.line
            ),
            format!(
                "If {interrupt} arrives on the processor of {} while it holds {l}, {} spins \
                 on {l} at {} forever: {} cannot run again to release it. Outside the ISR, \
                 take {l} only under KeSynchronizeExecution or KeAcquireInterruptSpinLock.",
                lower.who,
                isr.who,
                isr.irql.name(),
                lower.who,
            ),
        ];
        Violation {
            bugcheck,
            detail,
            analysis,
        }
    }
}
