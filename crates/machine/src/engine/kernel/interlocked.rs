//! Interlocked data: InterlockedIncrement, InterlockedDecrement, InterlockedExchange,
//! InterlockedCompareExchange, InterlockedOr/And/Xor, InterlockedExchangeAdd, InterlockedAdd.

use super::*;

impl Machine<'_> {
    /// One call of this family ([`Args`]: values, IRQL, name).
    pub(super) fn kcall_interlocked(
        &mut self,
        cpu: u32,
        k: &KernelCall,
        a: &Args,
    ) -> Result<Flow, Halt> {
        let (c, name, v) = (cpu as usize, a.name, |i| a.v(i));
        match k.kr {
            Kr::InterlockedIncrement
            | Kr::InterlockedDecrement
            | Kr::InterlockedExchange
            | Kr::InterlockedCompareExchange
            | Kr::InterlockedOr
            | Kr::InterlockedAnd
            | Kr::InterlockedXor
            | Kr::InterlockedExchangeAdd
            | Kr::InterlockedAdd => {
                let place = k.places[0];
                let (old, ty) = match place {
                    Place::Var(x) => {
                        let d = &self.prog.vars[x as usize];
                        self.pageable_fault(cpu, d.paged, false, d.address, WRITE, |irql| {
                            format!(
                                "pageable data `{}` was touched by {name} at IRQL {irql}",
                                d.name
                            )
                        })?;
                        (self.shared.vars.get(x as usize), d.ty)
                    }
                    Place::Local(s) => {
                        let f = self.cpus[c]
                            .stack
                            .last()
                            .and_then(|t| t.payload.frames.last());
                        let cur = match f.and_then(|f| f.locals.get(s as usize)) {
                            Some(Value::Int(x)) => *x,
                            _ => 0,
                        };
                        let ty = f.map(|f| f.routine).and_then(|r| {
                            self.prog.routines[r as usize]
                                .slots
                                .get(s as usize)
                                .copied()
                                .flatten()
                        });
                        (cur, ty.unwrap_or(scenario::ast::ScalarType::Long))
                    }
                    _ => (0, scenario::ast::ScalarType::Long),
                };
                let new = truncate(
                    ty,
                    match k.kr {
                        Kr::InterlockedIncrement => old.wrapping_add(1),
                        Kr::InterlockedDecrement => old.wrapping_sub(1),
                        Kr::InterlockedExchange => v(0),
                        Kr::InterlockedOr => old | v(0),
                        Kr::InterlockedAnd => old & v(0),
                        Kr::InterlockedXor => old ^ v(0),
                        Kr::InterlockedExchangeAdd | Kr::InterlockedAdd => old.wrapping_add(v(0)),
                        _ if truncate(ty, old) == truncate(ty, v(1)) => v(0),
                        _ => old,
                    },
                );
                // Increment/Decrement/Add return the new value, the others the old.
                let result = match k.kr {
                    Kr::InterlockedIncrement | Kr::InterlockedDecrement | Kr::InterlockedAdd => new,
                    _ => old,
                };
                match place {
                    Place::Var(x) => self.write_var(cpu, x, new),
                    Place::Local(s) => {
                        let f = self.cpus[c]
                            .stack
                            .last_mut()
                            .and_then(|t| t.payload.frames.last_mut());
                        if let Some(Value::Int(x)) = f.and_then(|f| f.locals.get_mut(s as usize)) {
                            *x = new;
                        }
                    }
                    _ => {}
                }
                self.finish(cpu, k, result)
            }
            _ => self.finish(cpu, k, 0),
        }
    }
}
