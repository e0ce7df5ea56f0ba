//! Turns the machine's final state into a [`RunReport`]: outcome, bugcheck
//! with backtrace and processor states, warnings, lock statistics, output,
//! and whether the expectations held.

use super::*;
use crate::report::{
    self, AssertionReport, BugcheckReport, CpuState, HeldLock, LockStatsReport, Outcome, RunReport,
    WarningReport,
};

impl Machine<'_> {
    fn backtrace(&self, cpu: u32) -> Vec<report::Frame> {
        let file = &self.prog.source.name;
        let Some(top) = self.cpus[cpu as usize].top() else {
            return vec![];
        };
        let mut out: Vec<report::Frame> = top
            .payload
            .frames
            .iter()
            .rev()
            .map(|f| {
                let routine = self.prog.routines[f.routine as usize].name.clone();
                let routine = if f.routine as usize >= self.first_thread_routine() {
                    top.payload.name.to_string()
                } else {
                    routine
                };
                report::Frame {
                    routine,
                    line: f.line,
                    location: self.prog.location(file, f.routine, f.line),
                }
            })
            .collect();
        if out.is_empty() {
            // An ISR waiting for its interrupt lock has no frame yet.
            out.push(report::Frame {
                routine: format!("{} (entry)", top.payload.name),
                line: 0,
                location: file.clone(),
            });
        }
        out
    }

    /// Fold the holds and spins still open when the run stopped (a deadlock,
    /// a watchdog) into a lock's statistics: they are often the point.
    fn add_unfinished(&self, lock: vcpu::LockId, s: &mut verifier::LockStat) {
        for (c, p) in self.cpus.iter().enumerate() {
            for h in self.held[c].iter().filter(|h| h.lock == lock) {
                s.longest_hold_ns = s.longest_hold_ns.max(p.clock.saturating_sub(h.at));
            }
            for ctx in p.stack.iter() {
                if let Some(Pending::Acquire(op)) = &ctx.payload.pending {
                    if op.lock == lock {
                        s.contended += 1;
                        s.longest_spin_ns =
                            s.longest_spin_ns.max(p.clock.saturating_sub(op.started));
                    }
                }
            }
        }
    }

    fn first_thread_routine(&self) -> usize {
        self.prog
            .threads
            .iter()
            .map(|t| t.routine as usize)
            .min()
            .unwrap_or(usize::MAX)
    }

    fn context_name(&self, cpu: u32) -> String {
        self.cpus[cpu as usize]
            .top()
            .map_or("idle".into(), |t| context_label(t.kind, &t.payload.name))
    }

    fn processor_states(&self) -> Vec<CpuState> {
        self.cpus
            .iter()
            .map(|p| {
                let waiting = p.top().and_then(|t| match &t.payload.pending {
                    Some(Pending::Acquire(op)) => {
                        Some(format!("spinning on {}", self.lock_name(op.lock)))
                    }
                    Some(Pending::QueuedRelease(op)) => Some(format!(
                        "releasing {}: waiting for the next waiter to link",
                        self.lock_name(op.lock)
                    )),
                    Some(Pending::Stall { .. }) => Some("stalling".into()),
                    Some(Pending::Flush { .. }) => {
                        Some("waiting in KeFlushQueuedDpcs for queued DPCs to run".into())
                    }
                    Some(Pending::Wait { .. }) | None => None,
                });
                CpuState {
                    cpu: p.id,
                    irql: p.irql.0,
                    running: self.context_name(p.id),
                    waiting,
                    held: self.held[p.id as usize]
                        .iter()
                        .map(|h| HeldLock {
                            lock: self.lock_name(h.lock).to_string(),
                            mode: h.mode_name().to_string(),
                            by: self
                                .label_of(h.ctx)
                                .unwrap_or_else(|| "a returned context".into()),
                            line: h.line,
                            file: h.routine.and_then(|r| self.prog.header_of(r)),
                        })
                        .collect(),
                }
            })
            .collect()
    }
}

fn us(ns: Nanos) -> f64 {
    (ns as f64 / 1000.0 * 1000.0).round() / 1000.0
}

pub(super) fn report(m: &Machine<'_>, schedule: Schedule) -> RunReport {
    let seed = schedule.seed;
    let prog = m.prog;
    let mut bugcheck = None;
    let mut assertion = None;
    let outcome = match &m.out.stop {
        None => Outcome::Clean,
        Some(Stop::Bugcheck {
            bugcheck: b,
            cpu,
            detail,
            analysis,
            rule,
        }) => {
            let irql = m.cpus[*cpu as usize].irql.0;
            let rule = rule
                .or_else(|| crate::rules::rule_for_bugcheck(b.code, b.params[0]))
                .unwrap_or("")
                .to_string();
            let backtrace = m.backtrace(*cpu);
            bugcheck = Some(BugcheckReport {
                code: b.code,
                name: b.name().to_string(),
                rule,
                params: b.params,
                params_hex: b.params.map(|p| format!("0x{p:X}")),
                param_meanings: b.param_meanings().map(|s| s.to_string()),
                summary: b.summary().to_string(),
                detail: detail.clone(),
                cpu: *cpu,
                irql,
                line: backtrace.first().map_or(0, |f| f.line),
                context: m.context_name(*cpu),
                backtrace,
                analysis: analysis.clone(),
            });
            Outcome::Bugcheck
        }
        Some(Stop::Assertion { cpu, message }) => {
            let backtrace = m.backtrace(*cpu);
            assertion = Some(AssertionReport {
                message: message.clone(),
                cpu: *cpu,
                irql: m.cpus[*cpu as usize].irql.0,
                line: backtrace.first().map_or(0, |f| f.line),
                context: m.context_name(*cpu),
                backtrace,
            });
            Outcome::AssertionFailed
        }
    };
    let warnings: Vec<WarningReport> = m
        .out
        .verifier
        .warnings()
        .iter()
        .chain(m.out.engine_warnings.iter())
        .map(|w| WarningReport {
            rule: w.rule.to_string(),
            line: w.line,
            message: w.message.clone(),
        })
        .collect();
    // A pool block's locks are listed only when used: every call site has
    // pre-made blocks, most of them never allocated.
    let in_pool_block = |i: usize| {
        prog.pool_sites.iter().any(|site| {
            site.blocks
                .iter()
                .any(|(_, _, locks)| locks.contains(&(i as u32)))
        })
    };
    let locks = prog
        .locks
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let mut s = m.out.stats.get(vcpu::LockId(i as u32));
            m.add_unfinished(vcpu::LockId(i as u32), &mut s);
            if s.acquisitions == 0 && s.contended == 0 && in_pool_block(i) {
                return None;
            }
            let family = match (l.kind, &m.shared.locks[i]) {
                (
                    scenario::program::LockKind::Spin,
                    locks::LockState::Spin {
                        used_queued: true,
                        used_ordinary: false,
                        ..
                    },
                ) => "KSPIN_LOCK (queued)",
                (scenario::program::LockKind::Spin, _) => "KSPIN_LOCK",
                (scenario::program::LockKind::Ex, _) => "EX_SPIN_LOCK",
                // A KSPIN_LOCK that KINTERRUPTs share keeps its own name.
                (scenario::program::LockKind::Interrupt(i), _)
                    if prog.interrupts[i as usize].name != l.name =>
                {
                    "KSPIN_LOCK (shared interrupt lock)"
                }
                (scenario::program::LockKind::Interrupt(_), _) => "KINTERRUPT",
            };
            Some(LockStatsReport {
                name: l.name.clone(),
                family: family.to_string(),
                acquisitions: s.acquisitions,
                contended: s.contended,
                longest_hold_us: us(s.longest_hold_ns),
                longest_spin_us: us(s.longest_spin_ns),
            })
        })
        .collect();
    let mut r = RunReport {
        scenario: prog.name.clone(),
        title: prog.title.clone(),
        file: prog.source.name.clone(),
        seed: (!m.driver.parallel).then_some(seed),
        strategy: (!m.driver.parallel).then(|| schedule.strategy.name().to_string()),
        depth: (!m.driver.parallel && schedule.strategy == crate::sched::Strategy::Pct)
            .then_some(schedule.depth),
        mode: if m.driver.parallel {
            "parallel"
        } else {
            "deterministic"
        }
        .into(),
        cpus: prog.cpus,
        outcome,
        bugcheck,
        assertion,
        warnings,
        expectations: prog.expects.iter().map(|(_, t)| t.clone()).collect(),
        expectation_met: true,
        expectation_failure: None,
        output: m.out.output.clone(),
        locks,
        processors: m.processor_states(),
        virtual_time_us: us(m.driver.end_time),
        statements: m.out.statements,
        parallel: None,
    };
    let failure = crate::expect::evaluate(&prog.expects, &r);
    r.expectation_met = failure.is_none();
    r.expectation_failure = failure;
    r
}
