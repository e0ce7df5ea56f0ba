//! Kernel objects around spin locks (contract v2, "Kernel objects (v2,
//! language)"; windows-facts "Events and waits", "Timers, the clock and
//! interrupt time", "IRPs and the cancel spin lock"): KeInitializeDpc,
//! KEVENT and KeWaitForSingleObject (a waiting thread blocks: its processor
//! runs another thread or idles), KTIMER on the clock and
//! KeQueryInterruptTime, work items on one system worker thread per
//! processor, IRPs with IoCancelIrp and the cancel spin lock.

use super::*;
use scenario::ast::ObjKind;
use scenario::program::{IRP_CANCEL, IRP_CANCEL_IRQL, IRP_CANCEL_ROUTINE};

/// `STATUS_TIMEOUT`.
const STATUS_TIMEOUT: i64 = 0x102;
/// The synthetic address reported as a wait's timeout (P4 of 0x120-0x122).
const TIMEOUT_ADDRESS: u64 = 0xFFFF_D000_0000_1000;

impl Machine<'_> {
    /// The object argument `i` of a call (resolved before the dispatch).
    fn object_arg(k: &KernelCall, i: usize) -> ObjectId {
        object_of(k.places.get(i))
    }

    /// A reference's kernel object (index into `Program::objects`).
    pub(in crate::engine) fn object_at(&self, r: i64) -> Option<ObjectId> {
        let v = self.var_of_ref(r)?;
        self.prog.object_of.get(&v).copied().map(ObjectId)
    }

    /// A run-time error of the language: the run ends in `assertion_failed`
    /// naming it (contract v2, "Run-time errors").
    pub(in crate::engine) fn runtime_error(&mut self, cpu: u32, what: String) -> Halt {
        self.assertion(cpu, format!("run-time error: {what}"))
    }

    /// Are any timers set (they expire at clock ticks)?
    pub(in crate::engine) fn timers_set(&self) -> bool {
        self.shared.timers.iter().any(|&o| {
            matches!(
                self.shared.objects[o as usize],
                ObjState::Timer { due: Some(_), .. }
            )
        })
    }

    /// Did the run end at its time limit or duration (the waiters left are
    /// then no finding of their own)?
    pub(in crate::engine) fn ended_by_limit(&self) -> bool {
        self.out
            .engine_warnings
            .iter()
            .any(|w| w.rule == "TIME_LIMIT_REACHED")
            || self
                .prog
                .duration
                .is_some_and(|d| self.driver.end_time >= d)
    }

    /// The earliest clock tick of an idle processor that will expire a
    /// timer or a timed wait there: (time, processor). A periodic timer
    /// counts only while threads still run (it does not keep a run alive).
    pub(in crate::engine) fn next_timed_event(&self) -> Option<(Nanos, usize)> {
        let clock = self.prog.clock.max(1);
        let mut best: Option<(Nanos, usize)> = None;
        let mut consider = |due: Nanos, cpu: u32, m: &Self| {
            let c = cpu as usize;
            if m.busy(c) {
                return;
            }
            let tick = due.div_ceil(clock).saturating_mul(clock);
            let t = tick.max(m.cpus[c].next_tick);
            if best.is_none_or(|b| (t, c) < b) {
                best = Some((t, c));
            }
        };
        for &o in &self.shared.timers {
            if let ObjState::Timer {
                due: Some(due),
                period,
                cpu,
                ..
            } = self.shared.objects[o as usize]
            {
                if period == 0 || self.shared.threads_alive > 0 {
                    consider(due, cpu.0, self);
                }
            }
        }
        for w in &self.shared.waiters {
            if let Some(t) = w.timeout_at {
                consider(t, w.cpu.0, self);
            }
        }
        best
    }

    /// A clock tick at `tick_at` on `cpu`: expire the timers set there
    /// (signal, release waiters, re-arm a periodic one, queue its DPC with
    /// the tick's time in 100 ns units as SystemArgument1/2) and the timed
    /// waits of threads of that processor (they return STATUS_TIMEOUT).
    pub(in crate::engine) fn tick_objects(&mut self, cpu: u32, tick_at: Nanos) {
        for i in 0..self.shared.timers.len() {
            let o = self.shared.timers[i] as usize;
            let ObjState::Timer {
                due: Some(due),
                period,
                dpc,
                cpu: on,
                ..
            } = self.shared.objects[o]
            else {
                continue;
            };
            if on != CpuId(cpu) || due > tick_at {
                continue;
            }
            if let ObjState::Timer { due, signaled, .. } = &mut self.shared.objects[o] {
                *due = (period > 0).then(|| tick_at.saturating_add(period));
                *signaled = true;
            }
            let name: Arc<str> = self.prog.objects[o].name.as_str().into();
            self.notify(cpu, EventKind::TimerExpired { name });
            self.signal(cpu, ObjectId(o as u32));
            if let Some(d) = dpc {
                let t = (tick_at / 100) as i64;
                self.insert_dpc(cpu, d, t & 0xFFFF_FFFF, t >> 32);
            }
        }
        let mut i = 0;
        while i < self.shared.waiters.len() {
            let w = &self.shared.waiters[i];
            if w.cpu == CpuId(cpu) && w.timeout_at.is_some_and(|t| t <= tick_at) {
                self.release_waiter(i, STATUS_TIMEOUT, cpu, true);
            } else {
                i += 1;
            }
        }
    }

    /// A dispatcher object became signaled: release its waiters as its
    /// type says (notification: every waiter, and it stays signaled;
    /// synchronization: one waiter, chosen by the Scheduler, and it resets).
    fn signal(&mut self, cpu: u32, object: ObjectId) {
        let notification = match self.shared.objects[object.ix()] {
            ObjState::Event { notification, .. } | ObjState::Timer { notification, .. } => {
                notification
            }
            _ => return,
        };
        let waiting: Vec<usize> = (0..self.shared.waiters.len())
            .filter(|&i| self.shared.waiters[i].object == object)
            .collect();
        if waiting.is_empty() {
            return;
        }
        if notification {
            // Every waiter, in the order they blocked.
            while let Some(i) = self.shared.waiters.iter().position(|w| w.object == object) {
                self.release_waiter(i, 0, cpu, false);
            }
            return;
        }
        let pick = if waiting.len() > 1 {
            self.driver.sched.place(waiting.len())
        } else {
            0
        };
        self.release_waiter(waiting[pick], 0, cpu, false);
        self.set_signaled(object, false);
    }

    fn set_signaled(&mut self, object: ObjectId, to: bool) {
        if let ObjState::Event { signaled, .. } | ObjState::Timer { signaled, .. } =
            &mut self.shared.objects[object.ix()]
        {
            *signaled = to;
        }
    }

    /// Waiter `i` is released with `status`: it becomes ready on its
    /// processor and runs there at the next thread switch; it cannot run
    /// before the release (the releaser's clock carries over to an idle
    /// processor, and to any under random and pct).
    fn release_waiter(&mut self, i: usize, status: i64, by: u32, timed_out: bool) {
        let mut w = self.shared.waiters.remove(i);
        if let Some(Pending::Wait { result, .. }) = &mut w.ctx.payload.pending {
            *result = Some(status);
        }
        let c = w.cpu.ix();
        self.post(w.cpu.0);
        let now = self.cpus[by as usize].clock;
        if (self.driver.lamport || self.cpus[c].stack.is_empty()) && self.cpus[c].clock < now {
            self.cpus[c].clock = now;
        }
        let name = w.ctx.payload.name.clone();
        let object: Arc<str> = self.prog.objects[w.object.ix()].name.as_str().into();
        self.notify(
            by,
            EventKind::ThreadReleased {
                name,
                object,
                timed_out,
            },
        );
        self.cpus[c].ready.push_back(w.ctx);
    }

    /// The thread on top of `cpu` blocks on `object`: it keeps its IRQL and
    /// locks; its processor runs another thread or idles.
    fn block(
        &mut self,
        cpu: u32,
        object: ObjectId,
        timeout_at: Option<Nanos>,
        push: bool,
    ) -> Result<Flow, Halt> {
        let c = cpu as usize;
        let name = self.cpus[c]
            .top()
            .map(|t| t.payload.name.clone())
            .unwrap_or_else(|| "?".into());
        let oname: Arc<str> = self.prog.objects[object.ix()].name.as_str().into();
        self.notify(
            cpu,
            EventKind::ThreadBlocked {
                name,
                object: oname,
            },
        );
        let irql = self.cpus[c].irql;
        let Some(mut ctx) = self.cpus[c].stack.pop() else {
            return Ok(Flow::Yield);
        };
        ctx.saved_irql = irql;
        ctx.payload.pending = Some(Pending::Wait { result: None, push });
        self.shared.waiters.push(Waiter {
            cpu: CpuId(cpu),
            ctx,
            object,
            timeout_at,
        });
        self.set_irql(cpu, Irql::PASSIVE);
        self.cpus[c].slice_start = self.cpus[c].clock;
        Ok(Flow::Yield)
    }

    /// Idle system worker threads take queued work items, lowest processor
    /// first, in FIFO order; each runs `Routine(Parameter)` at
    /// PASSIVE_LEVEL on its processor (contract v2, ExQueueWorkItem).
    pub(in crate::engine) fn dispatch_work(&mut self, from: u32) {
        if self.driver.in_driver_entry {
            return;
        }
        while !self.shared.work_queue.is_empty() {
            let Some(w) =
                (0..self.shared.workers_busy.len()).find(|&w| !self.shared.workers_busy[w])
            else {
                return;
            };
            let Some(item) = self.shared.work_queue.pop_front() else {
                return;
            };
            let ObjState::WorkItem { routine, param, .. } = self.shared.objects[item.ix()] else {
                continue;
            };
            self.shared.workers_busy[w] = true;
            let name: Arc<str> = self.prog.routines[routine as usize].name.as_str().into();
            let mut ctx = self.thread_context_args(name, routine, vec![param]);
            ctx.payload.worker = Some(CpuId(w as u32));
            ctx.payload.work_item = Some(item);
            let now = self.cpus[from as usize].clock;
            let p = &mut self.cpus[w];
            if (self.driver.lamport || p.stack.is_empty()) && p.clock < now {
                p.clock = now;
            }
            p.ready.push_back(ctx);
        }
    }

    /// The ddi_compliance IRQL rule of an event or timer routine: above
    /// DISPATCH_LEVEL is 0xC4 with `sub` (0x20016 for KeSetEvent, else
    /// 0x20011).
    fn ddi_above_dispatch(
        &mut self,
        cpu: u32,
        a: &Args,
        object: ObjectId,
        sub: u64,
    ) -> Result<(), Halt> {
        if !self.prog.checks.ddi_compliance || a.irql <= Irql::DISPATCH {
            return Ok(());
        }
        let o = &self.prog.objects[object.ix()];
        let rule = if sub == c4::DDI_IRQL_KE_SET_EVENT {
            "IrqlKeSetEvent"
        } else {
            "IrqlKeDispatchLte"
        };
        let detail = format!(
            "{}(&{}) was called at IRQL {}; it must be called at DISPATCH_LEVEL or below (DDI compliance rule {rule})",
            a.name, o.name, a.irql
        );
        let b = Bugcheck::verifier(sub, a.irql.0 as u64, o.address, 0);
        Err(self.bugcheck(cpu, b, detail))
    }

    /// The object must have been initialized by its routine.
    fn initialized(&mut self, cpu: u32, a: &Args, object: ObjectId) -> Result<(), Halt> {
        if matches!(self.shared.objects[object.ix()], ObjState::Uninitialized) {
            let o = &self.prog.objects[object.ix()];
            let what = format!(
                "{}(&{}): the {} was never initialized (call its KeInitialize/ExInitialize routine first)",
                a.name,
                o.name,
                o.kind.name()
            );
            return Err(self.runtime_error(cpu, what));
        }
        Ok(())
    }

    /// One call of this family ([`Args`]: values, IRQL, name).
    pub(super) fn kcall_objects(
        &mut self,
        cpu: u32,
        k: &KernelCall,
        a: &Args,
    ) -> Result<Flow, Halt> {
        let v = |i| a.v(i);
        match k.kr {
            Kr::KeInitializeDpc => {
                let d = dpc_of(&k.places[0]);
                let Place::Routine(r) = k.places[1] else {
                    return self.finish(cpu, k, 0);
                };
                let st = &mut self.shared.dpcs[d.ix()];
                st.routine = Some(r);
                st.context = v(0);
                self.finish(cpu, k, 0)
            }
            Kr::KeInitializeEvent => {
                let o = Self::object_arg(k, 0);
                if self.shared.waiters.iter().any(|w| w.object == o) {
                    let what = format!(
                        "KeInitializeEvent(&{}) while a thread waits on it",
                        self.prog.objects[o.ix()].name
                    );
                    return Err(self.runtime_error(cpu, what));
                }
                self.shared.objects[o.ix()] = ObjState::Event {
                    notification: v(0) == 0,
                    signaled: v(1) != 0,
                };
                self.finish(cpu, k, 0)
            }
            Kr::KeSetEvent => {
                let o = Self::object_arg(k, 0);
                self.ddi_above_dispatch(cpu, a, o, c4::DDI_IRQL_KE_SET_EVENT)?;
                self.initialized(cpu, a, o)?;
                if v(1) != 0 {
                    let what = format!("KeSetEvent(&{}, ..., TRUE): this version supports only Wait = FALSE (a KeWaitXxx call must follow a TRUE at once)", self.prog.objects[o.ix()].name);
                    return Err(self.runtime_error(cpu, what));
                }
                let ObjState::Event { signaled, .. } = self.shared.objects[o.ix()] else {
                    return self.finish(cpu, k, 0);
                };
                self.set_signaled(o, true);
                self.signal(cpu, o);
                self.finish(cpu, k, signaled as i64)
            }
            Kr::KeClearEvent | Kr::KeResetEvent | Kr::KeReadStateEvent => {
                let o = Self::object_arg(k, 0);
                self.ddi_above_dispatch(cpu, a, o, c4::DDI_IRQL_KE_DISPATCH_LTE)?;
                self.initialized(cpu, a, o)?;
                let ObjState::Event { signaled, .. } = self.shared.objects[o.ix()] else {
                    return self.finish(cpu, k, 0);
                };
                if k.kr != Kr::KeReadStateEvent {
                    self.set_signaled(o, false);
                }
                self.finish(cpu, k, signaled as i64)
            }
            Kr::KeWaitForSingleObject => self.wait(cpu, k, a),
            Kr::KeInitializeTimer | Kr::KeInitializeTimerEx => {
                let o = Self::object_arg(k, 0);
                self.ddi_above_dispatch(cpu, a, o, c4::DDI_IRQL_KE_DISPATCH_LTE)?;
                let notification = k.kr == Kr::KeInitializeTimer || v(0) == 0;
                self.shared.objects[o.ix()] = ObjState::Timer {
                    notification,
                    signaled: false,
                    due: None,
                    period: 0,
                    dpc: None,
                    cpu: CpuId(cpu),
                };
                self.finish(cpu, k, 0)
            }
            Kr::KeSetTimer | Kr::KeSetTimerEx => {
                let o = Self::object_arg(k, 0);
                self.ddi_above_dispatch(cpu, a, o, c4::DDI_IRQL_KE_DISPATCH_LTE)?;
                self.initialized(cpu, a, o)?;
                let due_time = v(0);
                let period_ms = if k.kr == Kr::KeSetTimerEx { v(1) } else { 0 };
                let dpc_place = k.places.last().copied().unwrap_or(Place::Null);
                let dpc = match dpc_place {
                    Place::Dpc(d) => Some(DpcId(d)),
                    _ => None,
                };
                let now = self.cpus[cpu as usize].clock;
                let due = if due_time < 0 {
                    now.saturating_add(due_time.unsigned_abs().saturating_mul(100))
                } else {
                    (due_time as u64).saturating_mul(100)
                };
                if period_ms < 0 {
                    let what = format!(
                        "{}(&{}, ..., {period_ms}, ...): a timer's Period is in milliseconds and cannot be negative",
                        a.name,
                        self.prog.objects[o.ix()].name
                    );
                    return Err(self.runtime_error(cpu, what));
                }
                let period = (period_ms as u64).saturating_mul(1_000_000);
                let was = matches!(
                    self.shared.objects[o.ix()],
                    ObjState::Timer { due: Some(_), .. }
                );
                if let ObjState::Timer { notification, .. } = self.shared.objects[o.ix()] {
                    self.shared.objects[o.ix()] = ObjState::Timer {
                        notification,
                        signaled: false,
                        due: Some(due),
                        period,
                        dpc,
                        cpu: CpuId(cpu),
                    };
                }
                self.finish(cpu, k, was as i64)
            }
            Kr::KeCancelTimer | Kr::KeReadStateTimer => {
                let o = Self::object_arg(k, 0);
                self.ddi_above_dispatch(cpu, a, o, c4::DDI_IRQL_KE_DISPATCH_LTE)?;
                self.initialized(cpu, a, o)?;
                let ObjState::Timer { due, signaled, .. } = &mut self.shared.objects[o.ix()] else {
                    return self.finish(cpu, k, 0);
                };
                let result = if k.kr == Kr::KeCancelTimer {
                    due.take().is_some()
                } else {
                    *signaled
                };
                self.finish(cpu, k, result as i64)
            }
            Kr::KeQueryInterruptTime => {
                let p = &self.cpus[cpu as usize];
                let last = p.next_tick.saturating_sub(self.prog.clock).min(p.clock);
                let last = if self.driver.in_driver_entry { 0 } else { last };
                self.finish(cpu, k, (last / 100) as i64)
            }
            Kr::ExInitializeWorkItem => {
                let o = Self::object_arg(k, 0);
                let Place::Routine(r) = k.places[1] else {
                    return self.finish(cpu, k, 0);
                };
                if matches!(
                    self.shared.objects[o.ix()],
                    ObjState::WorkItem { queued: true, .. }
                ) {
                    let what = format!(
                        "ExInitializeWorkItem(&{}) while the item is queued",
                        self.prog.objects[o.ix()].name
                    );
                    return Err(self.runtime_error(cpu, what));
                }
                self.shared.objects[o.ix()] = ObjState::WorkItem {
                    routine: r,
                    param: v(0),
                    queued: false,
                };
                self.finish(cpu, k, 0)
            }
            Kr::ExQueueWorkItem => {
                let o = Self::object_arg(k, 0);
                self.initialized(cpu, a, o)?;
                if let ObjState::WorkItem { queued, .. } = &mut self.shared.objects[o.ix()] {
                    if *queued {
                        let what = format!("ExQueueWorkItem(&{}): the item is queued again before its routine started", self.prog.objects[o.ix()].name);
                        return Err(self.runtime_error(cpu, what));
                    }
                    *queued = true;
                }
                self.shared.work_queue.push_back(o);
                self.post_all();
                self.shared.threads_alive += 1;
                let name: Arc<str> = self.prog.objects[o.ix()].name.as_str().into();
                self.notify(cpu, EventKind::WorkItemQueued { name });
                self.dispatch_work(cpu);
                self.finish(cpu, k, 0)
            }
            Kr::IoSetCancelRoutine => {
                let o = Self::object_arg(k, 0);
                let leaf = self.prog.objects[o.ix()].leaf;
                let slot = leaf + IRP_CANCEL_ROUTINE;
                let old = self.shared.vars.get(slot as usize);
                self.write_var(cpu, slot, v(0));
                self.finish(cpu, k, old)
            }
            Kr::IoMarkIrpPending => {
                let o = Self::object_arg(k, 0);
                if let ObjState::Irp { pending, .. } = &mut self.shared.objects[o.ix()] {
                    *pending = true;
                }
                self.finish(cpu, k, 0)
            }
            Kr::IoCompleteRequest => {
                let o = Self::object_arg(k, 0);
                if let ObjState::Irp { completed, .. } = &mut self.shared.objects[o.ix()] {
                    if *completed {
                        let d = &self.prog.objects[o.ix()];
                        let detail = format!(
                            "IoCompleteRequest({}) completed an IRP that was already completed",
                            d.name
                        );
                        let b = Bugcheck::new(
                            code::MULTIPLE_IRP_COMPLETE_REQUESTS,
                            [d.address, 0, 0, 0],
                        );
                        return Err(self.bugcheck(cpu, b, detail));
                    }
                    *completed = true;
                }
                self.finish(cpu, k, 0)
            }
            Kr::IoAcquireCancelSpinLock => {
                let Some(lock) = self.prog.cancel_lock else {
                    return self.finish(cpu, k, 0);
                };
                let k2 = KernelCall {
                    kr: Kr::KeAcquireSpinLock,
                    places: vec![Place::Lock(lock), k.places[0]],
                    values: 0,
                    text: None,
                    push_result: false,
                };
                self.kcall_ordinary(cpu, &k2, a)
            }
            Kr::IoReleaseCancelSpinLock => {
                let Some(lock) = self.prog.cancel_lock else {
                    return self.finish(cpu, k, 0);
                };
                if self.prog.checks.automatic && a.irql != Irql::DISPATCH {
                    let detail = format!("IoReleaseCancelSpinLock({}) was called at IRQL {}: the cancel spin lock must be released at DISPATCH_LEVEL, with the IRQL IoAcquireCancelSpinLock (or IoCancelIrp, in Irp->CancelIrql) saved", v(0), a.irql);
                    let b = Bugcheck::verifier(
                        c4::CANCEL_LOCK_RELEASE_NOT_AT_DISPATCH,
                        a.irql.0 as u64,
                        v(0) as u64,
                        0,
                    );
                    return Err(self.bugcheck(cpu, b, detail));
                }
                let k2 = KernelCall {
                    kr: Kr::KeReleaseSpinLock,
                    places: vec![Place::Lock(lock)],
                    values: 1,
                    text: None,
                    push_result: false,
                };
                self.kcall_ordinary(cpu, &k2, a)
            }
            Kr::IoCancelIrp => {
                let o = Self::object_arg(k, 0);
                let Some(lock) = self.prog.cancel_lock else {
                    return self.finish(cpu, k, 0);
                };
                let old = a.irql;
                self.set_irql(cpu, old.max(Irql::DISPATCH));
                self.acquire(
                    cpu,
                    lock,
                    LockFamily::Ordinary,
                    LockMode::Exclusive,
                    AcquireKind::Kernel,
                    After::CancelIrp {
                        irp: o,
                        old,
                        push: k.push_result,
                    },
                )
            }
            _ => self.finish(cpu, k, 0),
        }
    }

    /// IoCancelIrp holds the cancel spin lock: set `Cancel`, take the
    /// cancel routine; call it with the caller's IRQL in `CancelIrql` (it
    /// must release the lock), or release the lock and return FALSE.
    pub(in crate::engine) fn cancel_irp_locked(
        &mut self,
        cpu: u32,
        irp: ObjectId,
        old: Irql,
        push: bool,
    ) -> Result<Flow, Halt> {
        let leaf = self.prog.objects[irp.ix()].leaf;
        self.write_var(cpu, leaf + IRP_CANCEL, 1);
        let routine = self.shared.vars.get((leaf + IRP_CANCEL_ROUTINE) as usize);
        self.write_var(cpu, leaf + IRP_CANCEL_ROUTINE, 0);
        let target = self
            .prog
            .routines
            .iter()
            .position(|r| routine != 0 && r.address as i64 == routine);
        match target {
            Some(r) => {
                self.write_var(cpu, leaf + IRP_CANCEL_IRQL, old.0 as i64);
                let irp_ref = self.prog.objects[irp.ix()].reference;
                self.call(
                    cpu,
                    r as RoutineId,
                    vec![0, irp_ref],
                    OnReturn::CancelRoutine {
                        irp,
                        routine: routine as u64,
                        push_result: push,
                    },
                )
            }
            None => {
                if let Some(lock) = self.prog.cancel_lock {
                    self.release_held(cpu, lock, LockFamily::Ordinary, LockMode::Exclusive);
                }
                self.set_irql(cpu, old);
                if push {
                    self.push(cpu, 0);
                }
                Ok(Flow::Next)
            }
        }
    }

    /// A cancel routine returned: 0x11B if it still holds the cancel spin
    /// lock (P1 = the IRP, P2 = the routine); else IoCancelIrp returns TRUE.
    pub(in crate::engine) fn end_cancel_routine(
        &mut self,
        cpu: u32,
        irp: ObjectId,
        routine: u64,
        push: bool,
    ) -> Result<Flow, Halt> {
        let lock = self.prog.cancel_lock;
        if lock.is_some_and(|l| self.held[cpu as usize].iter().any(|h| h.lock == l)) {
            let d = &self.prog.objects[irp.ix()];
            let detail = format!(
                "the cancel routine of {} returned still holding the cancel spin lock: it must call IoReleaseCancelSpinLock(Irp->CancelIrql)",
                d.name
            );
            let b = Bugcheck::new(
                code::DRIVER_RETURNED_HOLDING_CANCEL_LOCK,
                [d.address, routine, 0, 0],
            );
            return Err(self.bugcheck(cpu, b, detail));
        }
        if push {
            self.push(cpu, 1);
        }
        Ok(Flow::Next)
    }

    /// KeWaitForSingleObject: the automatic IRQL checks (0x120 above
    /// DISPATCH_LEVEL; at DISPATCH_LEVEL 0x121 without a timeout, 0x122
    /// with a non-zero one), then: signaled, it returns STATUS_SUCCESS at
    /// once (a synchronization object resets); a zero timeout returns
    /// STATUS_TIMEOUT; otherwise the thread blocks (0xB8 in a DPC or an
    /// ISR; a run-time error in DriverEntry).
    fn wait(&mut self, cpu: u32, k: &KernelCall, a: &Args) -> Result<Flow, Halt> {
        let o = Self::object_arg(k, 0);
        if !matches!(
            self.prog.objects[o.ix()].kind,
            ObjKind::Event | ObjKind::Timer
        ) {
            let what = format!(
                "KeWaitForSingleObject(&{}): {} is not an object a thread can wait on (a KEVENT or KTIMER)",
                self.prog.objects[o.ix()].name,
                self.prog.objects[o.ix()].kind.with_article()
            );
            return Err(self.runtime_error(cpu, what));
        }
        let (given, timeout) = (a.v(3) != 0, a.v(4));
        let irql = a.irql;
        if self.prog.checks.automatic && irql >= Irql::DISPATCH {
            let sub = if irql > Irql::DISPATCH {
                Some(c4::WAIT_ABOVE_DISPATCH)
            } else if !given {
                Some(c4::WAIT_AT_DISPATCH_NO_TIMEOUT)
            } else if timeout != 0 {
                Some(c4::WAIT_AT_DISPATCH_WITH_TIMEOUT)
            } else {
                None
            };
            if let Some(sub) = sub {
                let d = &self.prog.objects[o.ix()];
                let how = if !given {
                    "without a timeout".to_string()
                } else if timeout == 0 {
                    "with a zero timeout".to_string()
                } else {
                    "with a timeout".to_string()
                };
                let detail = format!("KeWaitForSingleObject(&{}) {how} was called at IRQL {irql}: a wait may only block at APC_LEVEL or below (at DISPATCH_LEVEL only a zero timeout is allowed); holding a spin lock means DISPATCH_LEVEL", d.name);
                let b = Bugcheck::verifier(
                    sub,
                    irql.0 as u64,
                    d.address,
                    if given { TIMEOUT_ADDRESS } else { 0 },
                );
                return Err(self.bugcheck(cpu, b, detail));
            }
        }
        self.initialized(cpu, a, o)?;
        let (signaled, notification) = match self.shared.objects[o.ix()] {
            ObjState::Event {
                signaled,
                notification,
            }
            | ObjState::Timer {
                signaled,
                notification,
                ..
            } => (signaled, notification),
            _ => (false, true),
        };
        if signaled {
            if !notification {
                self.set_signaled(o, false);
            }
            return self.finish(cpu, k, 0);
        }
        if given && timeout == 0 {
            return self.finish(cpu, k, STATUS_TIMEOUT);
        }
        let kind = self.cpus[cpu as usize].top().map(|t| t.kind);
        if kind != Some(ContextKind::Thread) {
            let d = &self.prog.objects[o.ix()];
            let detail = format!("KeWaitForSingleObject(&{}) had to block in a {}: a DPC or ISR cannot wait (it runs on whatever thread it interrupted)", d.name, if kind == Some(ContextKind::Dpc) { "DPC routine" } else { "service routine" });
            let thread = self.thread_addr(self.owner_of(cpu));
            let b = Bugcheck::new(code::ATTEMPTED_SWITCH_FROM_DPC, [thread, 0, 0, 0]);
            return Err(self.bugcheck(cpu, b, detail));
        }
        if self.driver.in_driver_entry {
            let what = format!(
                "KeWaitForSingleObject(&{}) blocked in DriverEntry, before any thread or interrupt can run to signal it",
                self.prog.objects[o.ix()].name
            );
            return Err(self.runtime_error(cpu, what));
        }
        let now = self.cpus[cpu as usize].clock;
        let timeout_at = given.then(|| {
            if timeout < 0 {
                now.saturating_add(timeout.unsigned_abs().saturating_mul(100))
            } else {
                (timeout as u64).saturating_mul(100)
            }
        });
        self.block(cpu, o, timeout_at, k.push_result)
    }
}
