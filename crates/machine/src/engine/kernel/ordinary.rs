//! Ordinary spin locks: KeInitializeSpinLock, KeAcquire/ReleaseSpinLock and the AtDpcLevel/FromDpcLevel, try and test forms.
//! The ForDpc forms (contract v2, "Kernel objects") take the arm of the
//! form they act as: the raising one below DISPATCH_LEVEL (the release: an
//! OldIrql below DISPATCH_LEVEL), else the AtDpcLevel/FromDpcLevel one.

use super::*;

impl Machine<'_> {
    /// One call of this family ([`Args`]: values, IRQL, name).
    pub(super) fn kcall_ordinary(
        &mut self,
        cpu: u32,
        k: &KernelCall,
        a: &Args,
    ) -> Result<Flow, Halt> {
        let (c, irql, name, v) = (cpu as usize, a.irql, a.name, |i| a.v(i));
        match k.kr {
            Kr::KeInitializeSpinLock => {
                let l = lock_of(&k.places[0]);
                if self.lock_holders(l).is_empty() {
                    let kind = self.prog.locks[l.0 as usize].kind;
                    self.shared.locks[l.0 as usize] = match &self.shared.real {
                        Some(real) => LockState::real(kind, real, l.0),
                        None => LockState::new(kind),
                    };
                }
                self.finish(cpu, k, 0)
            }
            Kr::KeAcquireSpinLock
            | Kr::KeAcquireSpinLockRaiseToDpc
            | Kr::KeAcquireSpinLockForDpc
                if k.kr != Kr::KeAcquireSpinLockForDpc || irql < Irql::DISPATCH =>
            {
                let l = lock_of(&k.places[0]);
                self.acquire_irql_ok(cpu, false, l, name)?;
                // Retail, above DISPATCH_LEVEL: KfRaiseIrql just sets it.
                let new = if self.prog.checks.automatic {
                    irql.max(Irql::DISPATCH)
                } else {
                    Irql::DISPATCH
                };
                self.set_irql(cpu, new);
                let then = if k.kr == Kr::KeAcquireSpinLock {
                    After::WriteOld {
                        place: k.places[1],
                        old: irql,
                    }
                } else {
                    After::PushOld {
                        old: irql,
                        push: k.push_result,
                    }
                };
                self.acquire(
                    cpu,
                    l,
                    LockFamily::Ordinary,
                    LockMode::Exclusive,
                    AcquireKind::Raising,
                    then,
                )
            }
            Kr::KeAcquireSpinLockAtDpcLevel | Kr::KeAcquireSpinLockForDpc => {
                let l = lock_of(&k.places[0]);
                self.acquire_irql_ok(cpu, true, l, name)?;
                // The ForDpc form returns the IRQL at the call.
                let then = if k.kr == Kr::KeAcquireSpinLockForDpc {
                    After::PushOld {
                        old: irql,
                        push: k.push_result,
                    }
                } else {
                    After::Nothing
                };
                self.acquire(
                    cpu,
                    l,
                    LockFamily::Ordinary,
                    LockMode::Exclusive,
                    AcquireKind::AtDpcLevel,
                    then,
                )
            }
            Kr::KeReleaseSpinLock
            | Kr::KeReleaseSpinLockFromDpcLevel
            | Kr::KeReleaseSpinLockForDpc => {
                let l = lock_of(&k.places[0]);
                let from_dpc = k.kr == Kr::KeReleaseSpinLockFromDpcLevel
                    || (k.kr == Kr::KeReleaseSpinLockForDpc && v(0) >= Irql::DISPATCH.0 as i64);
                self.release_irql_ok(cpu, from_dpc, l, name)?;
                let lower_to = (!from_dpc).then(|| Irql(v(0).clamp(0, 15) as u8));
                self.release_checks(cpu, l, lower_to, None, name)?;
                self.check_owned(cpu, l, name, LockFamily::Ordinary)?;
                self.release_held(cpu, l, LockFamily::Ordinary, LockMode::Exclusive);
                if !from_dpc {
                    self.lower_after_release(cpu, l, Irql(v(0).clamp(0, 15) as u8))?;
                }
                self.finish(cpu, k, 0)
            }
            Kr::KeTryToAcquireSpinLockAtDpcLevel => {
                let l = lock_of(&k.places[0]);
                self.acquire_irql_ok(cpu, true, l, name)?;
                let got = match &mut self.shared.locks[l.0 as usize] {
                    LockState::Spin {
                        ordinary,
                        used_ordinary,
                        ..
                    } => {
                        *used_ordinary = true;
                        ordinary.try_acquire(cpu)
                    }
                    _ => false,
                };
                if got {
                    let clock = self.cpus[c].clock;
                    let op = locks::AcquireOp {
                        lock: l,
                        family: LockFamily::Ordinary,
                        mode: LockMode::Exclusive,
                        how: AcquireKind::AtDpcLevel,
                        node: None,
                        then: After::Nothing,
                        started: clock,
                    };
                    if let Flow::Yield = self.granted(cpu, op)? {
                        return Ok(Flow::Yield);
                    }
                }
                self.finish(cpu, k, got as i64)
            }
            Kr::KeTestSpinLock => {
                let l = lock_of(&k.places[0]);
                let free = match &self.shared.locks[l.0 as usize] {
                    LockState::Spin {
                        ordinary, queued, ..
                    } => ordinary.is_free() && queued.is_free(),
                    LockState::Interrupt(x) => x.is_free(),
                    LockState::Ex(x) => x.word() == 0,
                };
                self.finish(cpu, k, free as i64)
            }
            _ => self.finish(cpu, k, 0),
        }
    }
}
