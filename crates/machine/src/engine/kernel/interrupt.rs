//! Interrupt spin locks: KeAcquire/ReleaseInterruptSpinLock, KeSynchronizeExecution.

use super::*;

impl Machine<'_> {
    /// One call of this family ([`Args`]: values, IRQL, name).
    pub(super) fn kcall_interrupt(
        &mut self,
        cpu: u32,
        k: &KernelCall,
        a: &Args,
    ) -> Result<Flow, Halt> {
        let (irql, name, v) = (a.irql, a.name, |i| a.v(i));
        match k.kr {
            Kr::KeAcquireInterruptSpinLock | Kr::KeSynchronizeExecution => {
                let i = interrupt_of(&k.places[0]);
                let decl = &self.prog.interrupts[i.ix()];
                let sync = Irql(decl.sync_irql);
                let lock = decl.lock;
                if irql > sync && self.prog.checks.automatic {
                    let detail = format!("{name}(&{}) was called at IRQL {irql}, above the interrupt's SynchronizeIrql {sync}", decl.name);
                    return Err(self.bugcheck(
                        cpu,
                        Bugcheck::verifier(c4::RAISE_TO_LOWER, irql.0 as u64, sync.0 as u64, 0),
                        detail,
                    ));
                } else {
                    self.set_irql(cpu, sync);
                }
                let then = if k.kr == Kr::KeSynchronizeExecution {
                    let routine = routine_of(&k.places[1]);
                    After::Synchronize {
                        interrupt: i,
                        routine,
                        context: v(0),
                        old: irql,
                        push: k.push_result,
                    }
                } else {
                    After::PushOld {
                        old: irql,
                        push: k.push_result,
                    }
                };
                self.acquire(
                    cpu,
                    lock,
                    LockFamily::Interrupt,
                    LockMode::Exclusive,
                    AcquireKind::Synchronize,
                    then,
                )
            }
            Kr::KeReleaseInterruptSpinLock => {
                let i = interrupt_of(&k.places[0]);
                let lock = self.prog.interrupts[i.ix()].lock;
                let lower_to = Some(Irql(v(0).clamp(0, 15) as u8));
                self.release_checks(cpu, lock, lower_to, None, name)?;
                self.check_owned(cpu, lock, name, LockFamily::Interrupt)?;
                self.release_held(cpu, lock, LockFamily::Interrupt, LockMode::Exclusive);
                self.lower_after_release(cpu, lock, Irql(v(0).clamp(0, 15) as u8))?;
                self.finish(cpu, k, 0)
            }
            _ => self.finish(cpu, k, 0),
        }
    }
}
