//! In-stack queued spin locks: KeAcquire/ReleaseInStackQueuedSpinLock and their AtDpcLevel/FromDpcLevel forms.
//! The ForDpc forms act as the raising form below DISPATCH_LEVEL, else as
//! the AtDpcLevel form; their release chooses by the IRQL saved in the
//! handle (contract v2, "Kernel objects").

use super::*;

impl Machine<'_> {
    /// One call of this family ([`Args`]: values, IRQL, name).
    pub(super) fn kcall_queued(
        &mut self,
        cpu: u32,
        k: &KernelCall,
        a: &Args,
    ) -> Result<Flow, Halt> {
        let (irql, name) = (a.irql, a.name);
        match k.kr {
            Kr::KeAcquireInStackQueuedSpinLock
            | Kr::KeAcquireInStackQueuedSpinLockAtDpcLevel
            | Kr::KeAcquireInStackQueuedSpinLockForDpc => {
                let l = lock_of(&k.places[0]);
                let after = match k.places[1] {
                    Place::Local(slot) => After::Handle { slot, old: irql },
                    Place::GlobalHandle(index) => {
                        // The saved IRQL lives in the handle and is written
                        // before the acquire waits: a second acquirer sharing
                        // the handle overwrites the holder's (windows-facts,
                        // "In-stack queued spin lock").
                        if let Some(Some(h)) = self.shared.handles.get_mut(index as usize) {
                            h.old_irql = irql;
                        }
                        After::GlobalHandle { index, old: irql }
                    }
                    Place::Var(var) => {
                        // A handle in a struct field or array element.
                        if let Some(Some(h)) = self.shared.field_handles.get_mut(&var) {
                            h.old_irql = irql;
                        }
                        After::FieldHandle { var, old: irql }
                    }
                    _ => return Ok(Flow::Next),
                };
                let at_dpc = k.kr == Kr::KeAcquireInStackQueuedSpinLockAtDpcLevel
                    || (k.kr == Kr::KeAcquireInStackQueuedSpinLockForDpc && irql >= Irql::DISPATCH);
                self.acquire_irql_ok(cpu, at_dpc, l, name)?;
                if !at_dpc {
                    let new = if self.prog.checks.automatic {
                        irql.max(Irql::DISPATCH)
                    } else {
                        Irql::DISPATCH
                    };
                    self.set_irql(cpu, new);
                }
                let how = if at_dpc {
                    AcquireKind::AtDpcLevel
                } else {
                    AcquireKind::Raising
                };
                self.acquire(cpu, l, LockFamily::Queued, LockMode::Exclusive, how, after)
            }
            Kr::KeReleaseInStackQueuedSpinLock
            | Kr::KeReleaseInStackQueuedSpinLockFromDpcLevel
            | Kr::KeReleaseInStackQueuedSpinLockForDpc => {
                let handle = match k.places[0] {
                    Place::Local(slot) => {
                        let f = self.frame(cpu);
                        match f.locals.get_mut(slot as usize) {
                            Some(Value::Handle(h)) => h.take(),
                            _ => None,
                        }
                    }
                    Place::GlobalHandle(index) => self
                        .shared
                        .handles
                        .get_mut(index as usize)
                        .and_then(Option::take),
                    Place::Var(var) => self
                        .shared
                        .field_handles
                        .get_mut(&var)
                        .and_then(Option::take),
                    _ => return Ok(Flow::Next),
                };
                let Some(h) = handle.filter(|h| h.acquired) else {
                    let detail = format!("{name} was given a KLOCK_QUEUE_HANDLE that holds no lock (never acquired, or already released)");
                    return Err(self.bugcheck(
                        cpu,
                        Bugcheck::new(code::SPIN_LOCK_NOT_OWNED, [0, 0, 0, 0]),
                        detail,
                    ));
                };
                let l = h.lock;
                let from_dpc = k.kr == Kr::KeReleaseInStackQueuedSpinLockFromDpcLevel
                    || (k.kr == Kr::KeReleaseInStackQueuedSpinLockForDpc
                        && h.old_irql >= Irql::DISPATCH);
                self.release_irql_ok(cpu, from_dpc, l, name)?;
                let lower_to = (!from_dpc).then_some(h.old_irql);
                self.release_checks(cpu, l, lower_to, None, name)?;
                let poll = match &mut self.shared.locks[l.0 as usize] {
                    LockState::Spin { queued, .. } => queued.begin_release(h.node),
                    _ => Poll::Acquired,
                };
                match poll {
                    Poll::Acquired => {
                        self.finish_queued_release(cpu, l, lower_to)?;
                        self.finish(cpu, k, 0)
                    }
                    Poll::Spinning => {
                        let exec = &mut self.top_exec(cpu);
                        exec.pending = Some(Pending::QueuedRelease(QueuedReleaseOp {
                            lock: l,
                            node: h.node,
                            lower_to,
                        }));
                        exec.stuck_at = None;
                        Ok(Flow::Yield)
                    }
                }
            }
            _ => self.finish(cpu, k, 0),
        }
    }
}
