//! DPCs: KeInsertQueueDpc, KeRemoveQueueDpc, KeSetImportanceDpc, KeSetTargetProcessorDpc.

use super::*;

impl Machine<'_> {
    /// One call of this family ([`Args`]: values, IRQL, name).
    pub(super) fn kcall_dpc(&mut self, cpu: u32, k: &KernelCall, a: &Args) -> Flow {
        let v = |i| a.v(i);
        match k.kr {
            Kr::KeInsertQueueDpc => {
                let d = index_of(&k.places[0]);
                if self.dpcs[d as usize].routine.is_none() {
                    let what = format!("KeInsertQueueDpc(&{}): the KDPC was never initialized (call KeInitializeDpc first)", self.prog.dpcs[d as usize].name);
                    return self.runtime_error(cpu, what);
                }
                let queued = self.insert_dpc(cpu, d, v(0), v(1));
                self.finish(cpu, k, queued as i64)
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
