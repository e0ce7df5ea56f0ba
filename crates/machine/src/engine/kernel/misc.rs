//! The rest: KeStallExecutionProcessor, ExRaiseStatus, DbgPrint, ASSERT, PAGED_CODE, SimFireInterrupt.

use super::*;

/// Longest stall that draws no STALL_TOO_LONG warning (contract v2,
/// "Warnings"; windows-facts: the WDK asks for stalls of at most 50 µs).
const STALL_LIMIT_US: u64 = 50;

impl Machine<'_> {
    /// One call of this family ([`Args`]: values, IRQL, name).
    pub(super) fn kcall_misc(&mut self, cpu: u32, k: &KernelCall, a: &Args) -> Result<Flow, Halt> {
        let (c, vals, irql, v) = (cpu as usize, a.vals, a.irql, |i| a.v(i));
        match k.kr {
            Kr::KeStallExecutionProcessor => {
                let us = v(0).max(0) as u64;
                if us > STALL_LIMIT_US {
                    let line = self.line_of(cpu);
                    let routine = self.cpus[c]
                        .top()
                        .map(|t| t.payload.name.to_string())
                        .unwrap_or_default();
                    self.warn(verifier::rule::STALL_TOO_LONG, &routine, line, || {
                        format!("KeStallExecutionProcessor({us}) at line {line} busy-waits {us} µs, more than the {STALL_LIMIT_US} µs a driver should stall: the processor does nothing else meanwhile; wait with a timer or an event instead")
                    });
                }
                let until = self.cpus[c].clock.saturating_add(us.saturating_mul(1000));
                self.top_exec(cpu).pending = Some(Pending::Stall { until });
                self.finish(cpu, k, 0)?;
                Ok(Flow::Yield)
            }
            Kr::ExRaiseStatus => {
                self.exception(cpu, v(0) as u32 as u64, "ExRaiseStatus")?;
                Ok(Flow::Yield)
            }
            Kr::DbgPrint => {
                // A pointer prints as the address of what it points to
                // (the synthetic addresses of the reference's storage).
                let shown: Vec<i64> = vals
                    .iter()
                    .map(|&x| match self.var_of_ref(x) {
                        Some(var) => self.prog.vars[var as usize].address as i64,
                        None => x,
                    })
                    .collect();
                let text = scenario::dbgprint::format(k.text.as_deref().unwrap_or(""), &shown);
                for line in text.trim_end_matches('\n').split('\n') {
                    if self.out.output.len() < MAX_OUTPUT_LINES {
                        self.out.output.push(line.to_string());
                    } else if self.out.output.len() == MAX_OUTPUT_LINES {
                        self.out.output.push(format!(
                            "... DbgPrint output truncated after {MAX_OUTPUT_LINES} lines"
                        ));
                    }
                }
                self.notify(cpu, EventKind::Print { text });
                self.finish(cpu, k, 0)
            }
            Kr::Assert => {
                if v(0) == 0 {
                    let text = k.text.clone().unwrap_or_default();
                    return Err(self.assertion(cpu, format!("ASSERT({text}) failed")));
                }
                self.finish(cpu, k, 0)
            }
            Kr::PagedCode => {
                if irql > Irql::APC {
                    return Err(self.assertion(cpu, format!("PAGED_CODE() at IRQL {irql}: pageable code must run at or below APC_LEVEL")));
                }
                self.finish(cpu, k, 0)
            }
            Kr::SimFireInterrupt => {
                let i = interrupt_of(&k.places[0]);
                let target = self
                    .prog
                    .interrupt_lines
                    .iter()
                    .find(|l| l.interrupt == i.0)
                    .map_or(cpu, |l| l.cpu);
                let at = self.cpus[c]
                    .clock
                    .saturating_add((v(0).max(0) as u64).saturating_mul(1000));
                self.schedule_arrival(Arrival {
                    at,
                    seq: 0,
                    interrupt: i,
                    cpu: CpuId(target),
                    every: None,
                    remaining: Some(0),
                });
                self.finish(cpu, k, 0)
            }
            _ => self.finish(cpu, k, 0),
        }
    }
}
