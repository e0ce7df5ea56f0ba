//! Reader/writer spin locks (EX_SPIN_LOCK): shared and exclusive acquire and release, their DPC-level forms, ExTryConvertSharedSpinLockExclusive.

use super::*;

impl Machine<'_> {
    /// One call of this family ([`Args`]: values, IRQL, name).
    pub(super) fn kcall_ex(&mut self, cpu: u32, k: &KernelCall, a: &Args) -> Result<Flow, Halt> {
        let (c, irql, name, v) = (cpu as usize, a.irql, a.name, |i| a.v(i));
        match k.kr {
            Kr::ExAcquireSpinLockShared
            | Kr::ExAcquireSpinLockExclusive
            | Kr::ExAcquireSpinLockSharedAtDpcLevel
            | Kr::ExAcquireSpinLockExclusiveAtDpcLevel => {
                let l = lock_of(&k.places[0]);
                let shared = matches!(
                    k.kr,
                    Kr::ExAcquireSpinLockShared | Kr::ExAcquireSpinLockSharedAtDpcLevel
                );
                let at_dpc = matches!(
                    k.kr,
                    Kr::ExAcquireSpinLockSharedAtDpcLevel
                        | Kr::ExAcquireSpinLockExclusiveAtDpcLevel
                );
                let mode = if shared {
                    LockMode::Shared
                } else {
                    LockMode::Exclusive
                };
                self.acquire_irql_ok(cpu, at_dpc, l, name)?;
                let then = if at_dpc {
                    After::Nothing
                } else {
                    let new = if self.prog.checks.automatic {
                        irql.max(Irql::DISPATCH)
                    } else {
                        Irql::DISPATCH
                    };
                    self.set_irql(cpu, new);
                    After::PushOld {
                        old: irql,
                        push: k.push_result,
                    }
                };
                let how = if at_dpc {
                    AcquireKind::AtDpcLevel
                } else {
                    AcquireKind::Raising
                };
                self.acquire(cpu, l, LockFamily::ReaderWriter, mode, how, then)
            }
            Kr::ExReleaseSpinLockShared
            | Kr::ExReleaseSpinLockExclusive
            | Kr::ExReleaseSpinLockSharedFromDpcLevel
            | Kr::ExReleaseSpinLockExclusiveFromDpcLevel => {
                let l = lock_of(&k.places[0]);
                let shared = matches!(
                    k.kr,
                    Kr::ExReleaseSpinLockShared | Kr::ExReleaseSpinLockSharedFromDpcLevel
                );
                let from_dpc = matches!(
                    k.kr,
                    Kr::ExReleaseSpinLockSharedFromDpcLevel
                        | Kr::ExReleaseSpinLockExclusiveFromDpcLevel
                );
                self.release_irql_ok(cpu, from_dpc, l, name)?;
                let mode = if shared {
                    LockMode::Shared
                } else {
                    LockMode::Exclusive
                };
                let lower_to = (!from_dpc).then(|| Irql(v(0).clamp(0, 15) as u8));
                // Deadlock detection's 0x1007, 0x1004, 0x1009 and 0x1003; a
                // retail kernel has no check: the lock word changes.
                self.release_checks(cpu, l, lower_to, Some(mode), name)?;
                self.release_held(cpu, l, LockFamily::ReaderWriter, mode);
                if !from_dpc {
                    self.lower_after_release(cpu, l, Irql(v(0).clamp(0, 15) as u8))?;
                }
                self.finish(cpu, k, 0)
            }
            Kr::ExTryConvertSharedSpinLockExclusive => {
                let l = lock_of(&k.places[0]);
                let (holds_shared, holds_excl) = match &self.shared.locks[l.0 as usize] {
                    LockState::Ex(x) => (x.holds_shared(cpu), x.holds_exclusive(cpu)),
                    _ => (false, false),
                };
                if !holds_shared {
                    if holds_excl {
                        let detail = format!(
                            "{name}(&{}) by processor {cpu}, which holds it exclusive, not shared",
                            self.lock_name(l)
                        );
                        return Err(self.bugcheck(
                            cpu,
                            Bugcheck::verifier(c4::RELEASE_WRONG_MODE, self.lock_addr(l), 0, 0),
                            detail,
                        ));
                    }
                    if !holds_excl {
                        let detail = format!(
                            "{name}(&{}) by processor {cpu}, which does not hold it",
                            self.lock_name(l)
                        );
                        return Err(self.bugcheck(
                            cpu,
                            Bugcheck::new(code::SPIN_LOCK_NOT_OWNED, [self.lock_addr(l), 0, 0, 0]),
                            detail,
                        ));
                    }
                    return self.finish(cpu, k, 0);
                }
                let ok = match &mut self.shared.locks[l.0 as usize] {
                    LockState::Ex(x) => x.try_convert(cpu),
                    _ => false,
                };
                if ok {
                    self.lock_changed(cpu, l);
                    if let Some(h) = self.held[c].iter_mut().rev().find(|h| h.lock == l) {
                        h.mode = LockMode::Exclusive;
                    }
                    self.notify(cpu, EventKind::Converted { lock: l });
                }
                self.finish(cpu, k, ok as i64)
            }
            _ => self.finish(cpu, k, 0),
        }
    }
}
