//! The interpreter: runs the top context of a processor up to its next
//! statement boundary, with calls, returns, `__try` records and exceptions.

use super::*;
use scenario::check::{eval_binary, eval_unary, truncate};
use scenario::program::Op;
use vcpu::bugcheck::status;

/// What executing one op asks the loop to do next.
pub(super) enum Flow {
    Next,
    /// Stop this step (blocked, context ended, a shared read mid-statement);
    /// a stopped run is `Err(Halt)` instead.
    Yield,
}

/// Ops run in one step at most, as a guard against code without boundaries.
const MAX_OPS_PER_STEP: usize = 10_000;

impl Machine<'_> {
    pub(super) fn top_exec(&mut self, cpu: u32) -> &mut Exec {
        &mut self.cpus[cpu as usize]
            .stack
            .last_mut()
            .expect("a running context")
            .payload
    }

    pub(super) fn frame(&mut self, cpu: u32) -> &mut Frame {
        self.top_exec(cpu)
            .frames
            .last_mut()
            .expect("a running frame")
    }

    pub(super) fn push(&mut self, cpu: u32, v: i64) {
        self.top_exec(cpu).stack.push(v);
    }

    pub(super) fn pop(&mut self, cpu: u32) -> i64 {
        self.top_exec(cpu).stack.pop().unwrap_or(0)
    }

    /// Run the top context until its next statement boundary.
    pub(super) fn exec(&mut self, cpu: u32) -> Result<(), Halt> {
        let prog = self.prog;
        // Resuming inside a statement: the next boundary ends this step.
        let mut boundaries = if std::mem::take(&mut self.top_exec(cpu).mid_statement) {
            1
        } else {
            0
        };
        for _ in 0..MAX_OPS_PER_STEP {
            let (routine, pc) = {
                let f = self.frame(cpu);
                (f.routine, f.pc)
            };
            let Some(op) = prog.routines[routine as usize].ops.get(pc as usize) else {
                // Falling off the end cannot happen (every body ends in Return).
                return Ok(());
            };
            if let Op::Stmt(line) = op {
                if boundaries > 0 {
                    return Ok(());
                }
                boundaries += 1;
                self.frame(cpu).line = *line;
                // Force IRQL checking: a statement of a PAGED routine runs
                // from a pageable page; at raised IRQL (also after the
                // routine raised it itself) that page is trimmed: 0xD1.
                let code = &prog.routines[routine as usize];
                self.pageable_fault(cpu, code.paged, false, code.address + pc as u64 * 4, EXECUTE, |irql| {
                    format!("a statement of pageable routine {} (line {line}) ran at IRQL {irql}; its code may be paged out, and a page fault cannot be serviced at DISPATCH_LEVEL or above", code.name)
                })?;
                self.out.statements += 1;
                let cost = self.cost(STATEMENT_NS, STATEMENT_JITTER_NS);
                self.cpus[cpu as usize].clock += cost;
                self.frame(cpu).pc += 1;
                continue;
            }
            self.frame(cpu).pc += 1;
            match self.op(cpu, op)? {
                Flow::Next => {}
                Flow::Yield => return Ok(()),
            }
        }
        Ok(())
    }

    /// Is event object `o` held by a live activation (a frame of any
    /// context, running, ready or blocked)?
    fn local_event_in_use(&self, o: u32) -> bool {
        let frames =
            |c: &Context<Exec>| c.payload.frames.iter().any(|f| f.local_events.contains(&o));
        self.cpus
            .iter()
            .any(|p| p.stack.iter().chain(p.ready.iter()).any(frames))
            || self.shared.waiters.iter().any(|w| frames(&w.ctx))
    }

    fn op(&mut self, cpu: u32, op: &Op) -> Result<Flow, Halt> {
        match op {
            Op::Stmt(_) => {}
            Op::AllocLocalEvent { site, slot } => {
                let events = &self.prog.local_events[*site as usize];
                // The declaration run again (a loop) reuses this activation's event.
                let mine = self
                    .frame(cpu)
                    .local_events
                    .iter()
                    .copied()
                    .find(|o| events.contains(o));
                let Some(o) = mine.or_else(|| {
                    events
                        .iter()
                        .copied()
                        .find(|&o| !self.local_event_in_use(o))
                }) else {
                    let name = self.prog.objects[events[0] as usize].name.clone();
                    return Err(self.runtime_error(
                        cpu,
                        format!(
                            "more than {} activations hold the KEVENT local `{name}` at once",
                            events.len()
                        ),
                    ));
                };
                // A fresh, uninitialized event for this activation.
                self.shared.objects[o as usize] = ObjState::Uninitialized;
                let r = self.prog.objects[o as usize].reference;
                let f = self.frame(cpu);
                if mine.is_none() {
                    f.local_events.push(o);
                }
                f.locals[*slot as usize] = Value::Int(r);
            }
            Op::Push(v) => self.push(cpu, *v),
            Op::Load(s) => {
                let v = match &self.frame(cpu).locals[*s as usize] {
                    Value::Int(v) => *v,
                    Value::Handle(_) => 0,
                };
                self.push(cpu, v);
            }
            Op::Store(s, t) => {
                let v = truncate(*t, self.pop(cpu));
                self.frame(cpu).locals[*s as usize] = Value::Int(v);
            }
            Op::LoadVar(v) => {
                self.touch_var(cpu, *v, false)?;
                let x = self.shared.vars.get(*v as usize);
                self.push(cpu, x);
                if self.driver.lamport || self.driver.parallel {
                    self.note_read(cpu, *v);
                }
                // A read of shared memory is where another processor may get
                // in before this statement writes: let the others catch up.
                self.top_exec(cpu).mid_statement = true;
                return Ok(Flow::Yield);
            }
            Op::StoreVar(v) => {
                let x = self.pop(cpu);
                self.touch_var(cpu, *v, true)?;
                self.write_var(cpu, *v, x);
            }
            Op::Unary(u, t) => {
                let a = self.pop(cpu);
                self.push(cpu, eval_unary(*u, *t, a));
            }
            Op::Binary(b, t) => {
                let y = self.pop(cpu);
                let x = self.pop(cpu);
                match eval_binary(*b, *t, x, y) {
                    Some(r) => self.push(cpu, r),
                    None => {
                        self.exception(
                            cpu,
                            status::INTEGER_DIVIDE_BY_ZERO,
                            "integer division by zero",
                        )?;
                        return Ok(Flow::Yield);
                    }
                }
            }
            Op::Cast(t) => {
                let a = self.pop(cpu);
                self.push(cpu, truncate(*t, a));
            }
            Op::Bool => {
                let a = self.pop(cpu);
                self.push(cpu, (a != 0) as i64);
            }
            Op::Jump(t) => self.frame(cpu).pc = *t,
            Op::JumpIfFalse(t) => {
                if self.pop(cpu) == 0 {
                    self.frame(cpu).pc = *t;
                }
            }
            Op::Pop => {
                self.pop(cpu);
            }
            Op::Call {
                routine,
                args,
                push_result,
            } => {
                let n = *args as usize;
                let exec = self.top_exec(cpu);
                let at = exec.stack.len().saturating_sub(n);
                let argv: Vec<i64> = exec.stack.split_off(at);
                return self.call(
                    cpu,
                    *routine,
                    argv,
                    OnReturn::Normal {
                        push_result: *push_result,
                    },
                );
            }
            Op::Kernel(k) => return self.kernel(cpu, k),
            Op::Return(has_value) => {
                let v = if *has_value {
                    Some(self.pop(cpu))
                } else {
                    None
                };
                return self.ret(cpu, v);
            }
            Op::TryEnter(h) => {
                let exec = self.top_exec(cpu);
                let rec = TryRecord {
                    depth: exec.frames.len(),
                    handler: *h,
                    stack_len: exec.stack.len(),
                };
                exec.tries.push(rec);
            }
            Op::TryExit => {
                self.top_exec(cpu).tries.pop();
            }
            Op::Dup => {
                let v = self.pop(cpu);
                self.push(cpu, v);
                self.push(cpu, v);
            }
            Op::AddRef { offset, deref } => {
                let r = self.pop(cpu);
                if *deref && r == 0 {
                    self.null_dereference(cpu)?;
                    return Ok(Flow::Yield);
                }
                self.push(cpu, r.wrapping_add(*offset));
            }
            Op::Index { len, stride } => {
                let i = self.pop(cpu);
                let r = self.pop(cpu);
                if i < 0 || i as u64 >= *len {
                    return Err(self.assertion(
                        cpu,
                        format!("array index {i} out of range (the array has {len} elements)"),
                    ));
                }
                self.push(cpu, r.wrapping_add(i.wrapping_mul(*stride)));
            }
            Op::IndexPtr { vars, locks } => {
                let i = self.pop(cpu);
                let r = self.pop(cpu);
                match self.index_pointer(r, i, *vars, *locks) {
                    Ok(r) => self.push(cpu, r),
                    Err(detail) => return Err(self.assertion(cpu, detail)),
                }
            }
            Op::LoadRef => {
                let r = self.pop(cpu);
                let Some(v) = self.var_of_ref(r) else {
                    self.null_dereference(cpu)?;
                    return Ok(Flow::Yield);
                };
                self.touch_var(cpu, v, false)?;
                let x = self.shared.vars.get(v as usize);
                self.push(cpu, x);
                if self.driver.lamport {
                    self.note_read(cpu, v);
                }
                self.top_exec(cpu).mid_statement = true;
                return Ok(Flow::Yield);
            }
            Op::StoreRef => {
                let x = self.pop(cpu);
                let r = self.pop(cpu);
                let Some(v) = self.var_of_ref(r) else {
                    self.null_dereference(cpu)?;
                    return Ok(Flow::Yield);
                };
                self.touch_var(cpu, v, true)?;
                self.write_var(cpu, v, x);
            }
        }
        Ok(Flow::Next)
    }

    /// `p[i]` on a pointer `r` to an element of `vars` variables and
    /// `locks` locks: the reference `i` elements further within the
    /// innermost array holding `r` at an element's start (an object
    /// outside arrays is an array of one); out of range is an error.
    fn index_pointer(&self, r: i64, i: i64, vars: u32, locks: u32) -> Result<i64, String> {
        use scenario::program::{ref_lock, ref_offset, ref_var};
        let (v, l) = (ref_var(r) as i64, ref_lock(r).0 as i64);
        let (sv, sl) = (vars as i64, locks as i64);
        let mut found: Option<(i64, u64)> = None; // (element index, array size)
        for a in &self.prog.arrays {
            if a.vars != vars || a.locks != locks {
                continue;
            }
            let (dv, dl) = (v - a.var as i64, l - a.lock as i64);
            let k = if sv > 0 {
                if dv < 0 || dv % sv != 0 {
                    continue;
                }
                dv / sv
            } else if sl > 0 {
                if dl < 0 || dl % sl != 0 {
                    continue;
                }
                dl / sl
            } else {
                continue;
            };
            if k as u64 >= a.len || dv != k * sv || dl != k * sl {
                continue;
            }
            if found.is_none_or(|(_, n)| a.len < n) {
                found = Some((k, a.len));
            }
        }
        let (k, len) = found.unwrap_or((0, 1));
        let j = k.wrapping_add(i);
        if j < 0 || j as u64 >= len {
            return Err(match found {
                Some(_) => format!(
                    "index {i} through a pointer to element {k} of an array of {len} elements is out of range"
                ),
                None => format!(
                    "index {i} through a pointer to a single object (not an array element) is out of range"
                ),
            });
        }
        Ok(r.wrapping_add(i.wrapping_mul(ref_offset(vars, locks))))
    }

    /// The variable a reference designates; `None` for NULL or a value that
    /// is not a reference to storage (an integer stored in a pointer).
    pub(super) fn var_of_ref(&self, r: i64) -> Option<u32> {
        let v = scenario::program::ref_var(r);
        (r & scenario::program::REF_TAG != 0 && (v as usize) < self.shared.vars.len()).then_some(v)
    }

    /// A NULL pointer dereferenced: 0xD1 (P1 = the address, 0) at IRQL >=
    /// DISPATCH_LEVEL, else the exception STATUS_ACCESS_VIOLATION.
    /// `Ok` when a `__try` handled the exception.
    pub(super) fn null_dereference(&mut self, cpu: u32) -> Result<(), Halt> {
        let irql = self.cpus[cpu as usize].irql;
        if irql.is_raised() {
            Err(self.page_fault(
                cpu,
                0,
                0,
                format!("a NULL pointer was dereferenced at IRQL {irql}"),
            ))
        } else {
            self.exception(cpu, status::ACCESS_VIOLATION, "NULL pointer dereference")
        }
    }

    /// Call a scenario routine (0xD1 when it is pageable and IRQL is raised).
    pub(super) fn call(
        &mut self,
        cpu: u32,
        routine: RoutineId,
        args: Vec<i64>,
        on_return: OnReturn,
    ) -> Result<Flow, Halt> {
        let code = &self.prog.routines[routine as usize];
        self.pageable_fault(cpu, code.paged, false, code.address, EXECUTE, |irql| {
            format!("pageable routine {} was called at IRQL {irql}; its code may be paged out, and a page fault cannot be serviced at DISPATCH_LEVEL or above", code.name)
        })?;
        if self.top_exec(cpu).frames.len() >= MAX_CALL_DEPTH {
            let detail = format!(
                "calls nested {MAX_CALL_DEPTH} deep (calling {}): the kernel stack overflowed",
                code.name
            );
            return Err(self.bugcheck(
                cpu,
                Bugcheck::new(code::UNEXPECTED_KERNEL_MODE_TRAP, [8, 0, 0, 0]),
                detail,
            ));
        }
        let mut frame = self.new_frame(routine, args, on_return);
        frame.stack_base = self.top_exec(cpu).stack.len();
        self.top_exec(cpu).frames.push(frame);
        Ok(Flow::Next)
    }

    /// The `force_irql_checking` rule, written once: pageable memory (`paged`)
    /// at `address` touched at IRQL >= DISPATCH_LEVEL — or at any IRQL when
    /// `at_any_irql` (a lock or list head whose use raises IRQL itself) — is
    /// 0xD1 ([`page_fault`](Self::page_fault)); `access` is [`READ`],
    /// [`WRITE`] or [`EXECUTE`]. Without the option paged memory is
    /// resident and nothing happens.
    /// Source: contract v2 outcome table; windows-facts (Driver Verifier
    /// "Force IRQL checking" trims pageable memory at DISPATCH_LEVEL).
    pub(super) fn pageable_fault(
        &mut self,
        cpu: u32,
        paged: bool,
        at_any_irql: bool,
        address: u64,
        access: u64,
        detail: impl FnOnce(Irql) -> String,
    ) -> Result<(), Halt> {
        let irql = self.cpus[cpu as usize].irql;
        if !paged || !self.prog.checks.force_irql_checking || !(at_any_irql || irql.is_raised()) {
            return Ok(());
        }
        let detail = detail(irql);
        Err(self.page_fault(cpu, address, access, detail))
    }

    /// 0xD1: pageable memory at `address` touched at raised IRQL; `access`
    /// is 0 read, 1 write, 8 execute; P4 is the current instruction.
    pub(super) fn page_fault(
        &mut self,
        cpu: u32,
        address: u64,
        access: u64,
        detail: String,
    ) -> Halt {
        let irql = self.cpus[cpu as usize].irql;
        let pc = self.caller_address(cpu);
        let params = [address, irql.0 as u64, access, pc];
        self.bugcheck(
            cpu,
            Bugcheck::new(code::DRIVER_IRQL_NOT_LESS_OR_EQUAL, params),
            detail,
        )
    }

    /// An address standing for the current instruction (routine + pc).
    pub(super) fn caller_address(&mut self, cpu: u32) -> u64 {
        let top = self.cpus[cpu as usize]
            .stack
            .last()
            .and_then(|c| c.payload.frames.last());
        top.map_or(0, |f| {
            self.prog.routines[f.routine as usize].address + f.pc as u64 * 4
        })
    }

    fn ret(&mut self, cpu: u32, value: Option<i64>) -> Result<Flow, Halt> {
        // A KEVENT local still waited on when its routine returns (contract
        // v2, "Run-time errors").
        let waited = if self.frame(cpu).local_events.is_empty() {
            None
        } else {
            let mine = self.frame(cpu).local_events.clone();
            mine.into_iter()
                .find(|&o| self.shared.waiters.iter().any(|w| w.object.0 == o))
        };
        if let Some(o) = waited {
            let name = self.prog.objects[o as usize].name.clone();
            return Err(self.runtime_error(
                cpu,
                format!("the KEVENT local `{name}` is still waited on when its routine returns"),
            ));
        }
        let exec = self.top_exec(cpu);
        if exec.frames.len() == 1 && matches!(exec.frames[0].on_return, OnReturn::ContextEnd) {
            // The context's routine returns: its checks (0x100A, 0xE1, 0xC8,
            // 0x111) see the frame, so a report points at the return.
            self.end_context(cpu)?;
            return Ok(Flow::Yield);
        }
        // C converts the returned value to the routine's return type.
        let routine = self.frame(cpu).routine;
        let value = match (value, self.prog.routines[routine as usize].ret) {
            (Some(v), Some(t)) => Some(truncate(t, v)),
            (v, _) => v,
        };
        let exec = self.top_exec(cpu);
        let frame = exec.frames.pop().expect("returning frame");
        let depth = exec.frames.len();
        exec.stack.truncate(frame.stack_base);
        exec.tries.retain(|t| t.depth <= depth);
        match frame.on_return {
            OnReturn::Normal { push_result } => {
                if push_result {
                    self.push(cpu, value.unwrap_or(0));
                }
                Ok(Flow::Next)
            }
            OnReturn::ContextEnd => {
                self.end_context(cpu)?;
                Ok(Flow::Yield)
            }
            OnReturn::CancelRoutine {
                irp,
                routine,
                push_result,
            } => self.end_cancel_routine(cpu, irp, routine, push_result),
            OnReturn::Synchronize {
                interrupt,
                old_irql,
                push_result,
            } => {
                self.end_synchronize(cpu, interrupt, old_irql)?;
                if push_result {
                    self.push(cpu, value.unwrap_or(0));
                }
                Ok(Flow::Next)
            }
        }
    }

    /// Read or write of a global: 0xD1 for pageable data at raised IRQL;
    /// an Access event for guarded data.
    pub(super) fn touch_var(&mut self, cpu: u32, var: u32, write: bool) -> Result<(), Halt> {
        self.driver.visible = true;
        let decl = &self.prog.vars[var as usize];
        self.pageable_fault(cpu, decl.paged, false, decl.address, if write { WRITE } else { READ }, |irql| {
            format!(
                "pageable data `{}` was {} at IRQL {irql}; it may be paged out, and a page fault cannot be serviced at DISPATCH_LEVEL or above",
                decl.name,
                if write { "written" } else { "read" }
            )
        })?;
        // DriverEntry runs before anything else can: nothing to guard against.
        if decl.guard.is_some() && !self.driver.in_driver_entry {
            self.emit(cpu, EventKind::Access { var, write })?;
        }
        Ok(())
    }

    /// Raise an exception on `cpu` (contract v2, "Exceptions"): the
    /// innermost `__try` of the running context (the thread, or the DPC or
    /// ISR activation) handles it at any IRQL, IRQL and locks staying as they
    /// were, with the warning EXCEPTION_UNDER_SPIN_LOCK when a lock is held
    /// or IRQL is >= DISPATCH_LEVEL. Unhandled: 0x1E in a DPC or ISR, at
    /// raised IRQL or holding a spin lock; else 0x7E. `Ok` when handled.
    pub(super) fn exception(&mut self, cpu: u32, status: u64, what: &str) -> Result<(), Halt> {
        let c = cpu as usize;
        let irql = self.cpus[c].irql;
        let addr = self.caller_address(cpu);
        let holding = self.held[c].first().cloned();
        let (kind, name) = {
            let top = self.cpus[c].stack.last().expect("a running context");
            (top.kind, top.payload.name.clone())
        };
        let why = match &holding {
            Some(h) => format!(
                "while holding spin lock `{}` (taken at line {})",
                self.prog.locks[h.lock.0 as usize].name, h.line
            ),
            None => format!("at IRQL {irql}"),
        };
        let line = self.line_of(cpu);
        let exec = self.top_exec(cpu);
        if let Some(t) = exec.tries.pop() {
            exec.frames.truncate(t.depth);
            exec.stack.truncate(t.stack_len);
            if let Some(f) = exec.frames.last_mut() {
                f.pc = t.handler;
            }
            if holding.is_some() || irql.is_raised() {
                let subject = context_label(kind, &name);
                let still = if holding.is_some() {
                    "with the lock still held and IRQL still raised"
                } else {
                    "at the same raised IRQL"
                };
                self.warn(verifier::rule::EXCEPTION_UNDER_SPIN_LOCK, &subject, line, || {
                    format!("{what} (status {status:#010X}) raised at line {line} in {subject} {why} was handled by a __try/__except: code that can raise must not run under a spin lock or at raised IRQL, and the handler runs {still}")
                });
            }
            return Ok(());
        }
        if kind != ContextKind::Thread || irql.is_raised() || holding.is_some() {
            let detail = format!(
                "{what} (status {status:#010X}) raised in {} {why} was not handled by any __try/__except of that {}",
                context_label(kind, &name),
                if kind == ContextKind::Thread { "thread" } else { "routine" }
            );
            return Err(self.bugcheck(
                cpu,
                Bugcheck::new(code::KMODE_EXCEPTION_NOT_HANDLED, [status, addr, 0, 0]),
                detail,
            ));
        }
        let detail = format!(
            "{what} (status {status:#010X}) in {} was not handled by any __try/__except",
            context_label(kind, &name)
        );
        Err(self.bugcheck(
            cpu,
            Bugcheck::new(
                code::SYSTEM_THREAD_EXCEPTION_NOT_HANDLED,
                [status, addr, 0, 0],
            ),
            detail,
        ))
    }

    /// Write a value to a `&place` output argument.
    pub(super) fn store_place(
        &mut self,
        cpu: u32,
        place: scenario::program::Place,
        v: i64,
    ) -> Result<(), Halt> {
        use scenario::program::Place;
        match place {
            Place::Local(s) => {
                let f = self.frame(cpu);
                if let Some(Value::Int(x)) = f.locals.get_mut(s as usize) {
                    *x = v;
                }
                Ok(())
            }
            Place::Var(var) => {
                self.touch_var(cpu, var, true)?;
                self.write_var(cpu, var, v);
                Ok(())
            }
            _ => Ok(()),
        }
    }
}
