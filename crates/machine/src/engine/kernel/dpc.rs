//! DPCs: KeInsertQueueDpc, KeRemoveQueueDpc, KeSetImportanceDpc, KeSetTargetProcessorDpc.

use super::*;

impl Machine<'_> {
    /// One call of this family ([`Args`]: values, IRQL, name).
    pub(super) fn kcall_dpc(&mut self, cpu: u32, k: &KernelCall, a: &Args) -> Flow {
        let (c, v) = (cpu as usize, |i| a.v(i));
        match k.kr {
            Kr::KeInsertQueueDpc => {
                let d = index_of(&k.places[0]);
                let st = &self.dpcs[d as usize];
                if st.queued_on.is_some() {
                    return self.finish(cpu, k, 0);
                }
                let target = st.target.unwrap_or(cpu);
                let imp = st.importance;
                self.cpus[target as usize].dpcs.insert(d, imp);
                self.dpcs[d as usize].queued_on = Some(target);
                // Whether the insert requests a DPC interrupt on the target
                // (contract v2 delivery table); otherwise the DPC waits for
                // the target's next clock tick.
                let tp = &self.cpus[target as usize];
                let deep = tp.dpcs.len() >= 4;
                let idle = tp.stack.is_empty() && tp.ready.is_empty();
                let request = if target == cpu {
                    imp != Importance::Low || deep
                } else {
                    matches!(imp, Importance::High | Importance::MediumHigh) || deep || idle
                };
                if request {
                    self.cpus[target as usize].dpc_requested = true;
                }
                // An idle target processor catches up to now before running it.
                let now = self.cpus[c].clock;
                if target != cpu
                    && !self.parallel
                    && self.cpus[target as usize].stack.is_empty()
                    && self.cpus[target as usize].clock < now
                {
                    self.cpus[target as usize].clock = now;
                }
                let dname: Arc<str> = self.prog.dpcs[d as usize].name.as_str().into();
                self.emit(
                    cpu,
                    EventKind::DpcQueued {
                        name: dname,
                        target,
                    },
                );
                self.finish(cpu, k, 1)
            }
            Kr::KeRemoveQueueDpc => {
                let d = index_of(&k.places[0]);
                let removed = match self.dpcs[d as usize].queued_on.take() {
                    Some(t) => self.cpus[t as usize].dpcs.remove(d),
                    None => false,
                };
                self.finish(cpu, k, removed as i64)
            }
            Kr::KeSetImportanceDpc => {
                let d = index_of(&k.places[0]);
                self.dpcs[d as usize].importance = Importance::from_value(v(0));
                self.finish(cpu, k, 0)
            }
            Kr::KeSetTargetProcessorDpc => {
                let d = index_of(&k.places[0]);
                let t = v(0);
                if t < 0 || t >= self.prog.cpus as i64 {
                    self.assertion(cpu, format!("KeSetTargetProcessorDpc(&{}, {t}): processor {t} does not exist (the scenario has {} processors)", self.prog.dpcs[d as usize].name, self.prog.cpus));
                    return Flow::Yield;
                }
                self.dpcs[d as usize].target = Some(t as u32);
                self.finish(cpu, k, 0)
            }
            _ => self.finish(cpu, k, 0),
        }
    }
}
