//! DPCs: KeInsertQueueDpc, KeRemoveQueueDpc, KeSetImportanceDpc, KeSetTargetProcessorDpc, KeFlushQueuedDpcs.

use super::*;

impl Machine<'_> {
    /// One call of this family ([`Args`]: values, IRQL, name).
    pub(super) fn kcall_dpc(&mut self, cpu: u32, k: &KernelCall, a: &Args) -> Result<Flow, Halt> {
        let (c, v) = (cpu as usize, |i| a.v(i));
        match k.kr {
            Kr::KeInsertQueueDpc => {
                let d = dpc_of(&k.places[0]);
                if self.shared.dpcs[d.ix()].routine.is_none() {
                    let what = format!("KeInsertQueueDpc(&{}): the KDPC was never initialized (call KeInitializeDpc first)", self.prog.dpcs[d.ix()].name);
                    return Err(self.runtime_error(cpu, what));
                }
                let queued = self.insert_dpc(cpu, d, v(0), v(1));
                self.finish(cpu, k, queued as i64)
            }
            Kr::KeRemoveQueueDpc => {
                let d = dpc_of(&k.places[0]);
                let removed = match self.shared.dpcs[d.ix()].queued_on.take() {
                    Some(t) => self.cpus[t.ix()].dpcs.remove(d.0),
                    None => false,
                };
                if removed {
                    let st = &mut self.shared.dpcs[d.ix()];
                    st.settled_at = st.settled_at.max(self.cpus[c].clock);
                }
                self.finish(cpu, k, removed as i64)
            }
            Kr::KeSetImportanceDpc => {
                let d = dpc_of(&k.places[0]);
                self.shared.dpcs[d.ix()].importance = Importance::from_value(v(0));
                self.finish(cpu, k, 0)
            }
            Kr::KeSetTargetProcessorDpc => {
                let d = dpc_of(&k.places[0]);
                let t = v(0);
                if t < 0 || t >= self.prog.cpus as i64 {
                    return Err(self.assertion(cpu, format!("KeSetTargetProcessorDpc(&{}, {t}): processor {t} does not exist (the scenario has {} processors)", self.prog.dpcs[d.ix()].name, self.prog.cpus)));
                }
                self.shared.dpcs[d.ix()].target = Some(CpuId(t as u32));
                self.finish(cpu, k, 0)
            }
            Kr::KeFlushQueuedDpcs => {
                // It waits, and a DPC routine cannot wait: the thread switch
                // finds a DPC active (0xB8; P1 = the thread it interrupted).
                let in_dpc = self.cpus[c]
                    .top()
                    .is_some_and(|t| t.kind == ContextKind::Dpc);
                if in_dpc {
                    let routine = self.cpus[c]
                        .top()
                        .map(|t| t.payload.name.to_string())
                        .unwrap_or_default();
                    let thread = self.thread_addr(self.owner_of(cpu));
                    let detail = format!("DPC routine {routine} called KeFlushQueuedDpcs, which waits for DPCs to run: a DPC routine runs at DISPATCH_LEVEL and cannot wait (the switch away from it is ATTEMPTED_SWITCH_FROM_DPC)");
                    return Err(self.bugcheck(
                        cpu,
                        Bugcheck::new(code::ATTEMPTED_SWITCH_FROM_DPC, [thread, 0, 0, 0]),
                        detail,
                    ));
                }
                // A DPC interrupt on every processor whose queue is not
                // empty; the caller waits for the DPCs queued now.
                let mut wait = vec![];
                for p in 0..self.cpus.len() {
                    if self.cpus[p].dpcs.is_empty() {
                        continue;
                    }
                    self.cpus[p].dpc_requested = true;
                    for (d, st) in self.shared.dpcs.iter().enumerate() {
                        if st.queued_on == Some(CpuId(p as u32)) {
                            wait.push((DpcId(d as u32), st.runs));
                        }
                    }
                }
                // A DPC running at the call (on another processor) is waited
                // for too: Windows' flush DPC runs after it on that processor,
                // so the routine has returned when the flush does.
                for p in 0..self.cpus.len() {
                    for t in &self.cpus[p].stack {
                        let d = DpcId(t.payload.object);
                        if t.kind == ContextKind::Dpc && !wait.iter().any(|w| w.0 == d) {
                            wait.push((d, self.shared.dpcs[d.ix()].runs));
                        }
                    }
                }
                let flow = self.finish(cpu, k, 0)?;
                if wait.is_empty() {
                    return Ok(flow);
                }
                let exec = self.top_exec(cpu);
                exec.pending = Some(Pending::Flush { dpcs: wait });
                exec.stuck_at = None;
                Ok(Flow::Yield)
            }
            _ => self.finish(cpu, k, 0),
        }
    }

    /// Queue DPC `d` with SystemArgument1/2; false if it was already
    /// queued. Requests a DPC interrupt on the target as the contract's
    /// delivery table says.
    pub(in crate::engine) fn insert_dpc(&mut self, cpu: u32, d: DpcId, a1: i64, a2: i64) -> bool {
        let c = cpu as usize;
        let st = &self.shared.dpcs[d.ix()];
        if st.queued_on.is_some() {
            return false;
        }
        let target = st.target.unwrap_or(CpuId(cpu));
        let imp = st.importance;
        self.shared.dpcs[d.ix()].args = (a1, a2);
        self.cpus[target.ix()].dpcs.insert(d.0, imp);
        self.shared.dpcs[d.ix()].queued_on = Some(target);
        if target != CpuId(cpu) {
            self.post(target.0);
        }
        // Whether the insert requests a DPC interrupt on the target
        // (contract v2 delivery table); otherwise the DPC waits for the
        // target's next clock tick.
        let tp = &self.cpus[target.ix()];
        let deep = tp.dpcs.len() >= 4;
        let idle = tp.stack.is_empty() && tp.ready.is_empty();
        let request = if target == CpuId(cpu) {
            imp != Importance::Low || deep
        } else {
            matches!(imp, Importance::High | Importance::MediumHigh) || deep || idle
        };
        if request {
            self.cpus[target.ix()].dpc_requested = true;
        }
        // An idle target processor catches up to now before running it.
        let now = self.cpus[c].clock;
        if target != CpuId(cpu)
            && !self.driver.parallel
            && self.cpus[target.ix()].stack.is_empty()
            && self.cpus[target.ix()].clock < now
        {
            self.cpus[target.ix()].clock = now;
        }
        let dname: Arc<str> = self.prog.dpcs[d.ix()].name.as_str().into();
        self.notify(
            cpu,
            EventKind::DpcQueued {
                name: dname,
                target: target.0,
            },
        );
        true
    }

    /// KeFlushQueuedDpcs may return: each DPC it waits for has completed a
    /// run since the call, or is neither queued nor running (it was removed
    /// before it ran). A DPC that queues itself again does not hold the
    /// wait up once it has run.
    pub(in crate::engine) fn flush_done(&self, wait: &[(DpcId, u64)]) -> bool {
        wait.iter().all(|&(d, runs)| {
            let st = &self.shared.dpcs[d.ix()];
            st.runs > runs
                || (st.queued_on.is_none()
                    && !self.cpus.iter().any(|p| {
                        p.stack
                            .iter()
                            .any(|t| t.kind == ContextKind::Dpc && t.payload.object == d.0)
                    }))
        })
    }
}
