//! ExInterlocked list routines (the list lock taken inside, at any IRQL),
//! IsListEmpty, and the WDK's inline list routines on LIST_ENTRY leaves
//! (InitializeListHead, Insert/Remove Head/Tail, RemoveEntryList), which
//! check that the neighbours point back before linking or unlinking.

use super::*;

/// A reference's Flink and Blink variables, if it is a reference.
fn links(r: i64) -> Option<(usize, usize)> {
    if r & scenario::program::REF_TAG == 0 {
        return None;
    }
    let v = scenario::program::ref_var(r) as usize;
    Some((v, v + 1))
}

impl Machine<'_> {
    /// Flink of the entry `r` (None: not an entry, or out of the table).
    fn flink(&self, r: i64) -> Option<i64> {
        links(r).and_then(|(f, _)| self.shared.vars.get(f).copied())
    }

    fn blink(&self, r: i64) -> Option<i64> {
        links(r).and_then(|(_, b)| self.shared.vars.get(b).copied())
    }

    fn set_link(&mut self, cpu: u32, r: i64, blink: bool, to: i64) {
        if let Some((f, b)) = links(r) {
            let v = if blink { b } else { f };
            if v < self.shared.vars.len() {
                self.write_var(cpu, v as u32, to);
            }
        }
    }

    /// 0x139, P1 = 3: broken list links.
    fn corrupt_list(&mut self, cpu: u32, name: &str) -> Halt {
        self.bugcheck(
            cpu,
            Bugcheck::new(code::KERNEL_SECURITY_CHECK_FAILURE, [3, 0, 0, 0]),
            format!("{name} found a LIST_ENTRY whose neighbours do not point back to it (a double remove, or an entry never inserted)"),
        )
    }

    /// The WDK's inline list routines over LIST_ENTRY leaves.
    pub(super) fn kcall_entry_lists(
        &mut self,
        cpu: u32,
        k: &KernelCall,
        vals: &[i64],
        name: &'static str,
    ) -> Result<Flow, Halt> {
        let v = |i: usize| vals.get(i).copied().unwrap_or(0);
        if v(0) == 0 || (vals.len() > 1 && v(1) == 0) {
            self.null_dereference(cpu)?;
            return Ok(Flow::Yield);
        }
        match k.kr {
            Kr::InitializeListHead => {
                let h = v(0);
                self.set_link(cpu, h, false, h);
                self.set_link(cpu, h, true, h);
                self.finish(cpu, k, 0)
            }
            Kr::InsertTailList => {
                let (h, e) = (v(0), v(1));
                let Some(b) = self.blink(h) else {
                    return Err(self.corrupt_list(cpu, name));
                };
                if self.flink(b) != Some(h) {
                    return Err(self.corrupt_list(cpu, name));
                }
                self.set_link(cpu, e, false, h);
                self.set_link(cpu, e, true, b);
                self.set_link(cpu, b, false, e);
                self.set_link(cpu, h, true, e);
                self.finish(cpu, k, 0)
            }
            Kr::InsertHeadList => {
                let (h, e) = (v(0), v(1));
                let Some(f) = self.flink(h) else {
                    return Err(self.corrupt_list(cpu, name));
                };
                if self.blink(f) != Some(h) {
                    return Err(self.corrupt_list(cpu, name));
                }
                self.set_link(cpu, e, false, f);
                self.set_link(cpu, e, true, h);
                self.set_link(cpu, f, true, e);
                self.set_link(cpu, h, false, e);
                self.finish(cpu, k, 0)
            }
            Kr::RemoveEntryList => {
                let e = v(0);
                let (Some(f), Some(b)) = (self.flink(e), self.blink(e)) else {
                    return Err(self.corrupt_list(cpu, name));
                };
                if self.blink(f) != Some(e) || self.flink(b) != Some(e) {
                    return Err(self.corrupt_list(cpu, name));
                }
                self.set_link(cpu, b, false, f);
                self.set_link(cpu, f, true, b);
                self.finish(cpu, k, (f == b) as i64)
            }
            Kr::RemoveHeadList => {
                let h = v(0);
                let Some(e) = self.flink(h) else {
                    return Err(self.corrupt_list(cpu, name));
                };
                let Some(f) = self.flink(e) else {
                    return Err(self.corrupt_list(cpu, name));
                };
                if self.blink(e) != Some(h) || self.blink(f) != Some(e) {
                    return Err(self.corrupt_list(cpu, name));
                }
                self.set_link(cpu, h, false, f);
                self.set_link(cpu, f, true, h);
                self.finish(cpu, k, e)
            }
            Kr::RemoveTailList => {
                let h = v(0);
                let Some(e) = self.blink(h) else {
                    return Err(self.corrupt_list(cpu, name));
                };
                let Some(b) = self.blink(e) else {
                    return Err(self.corrupt_list(cpu, name));
                };
                if self.flink(e) != Some(h) || self.flink(b) != Some(e) {
                    return Err(self.corrupt_list(cpu, name));
                }
                self.set_link(cpu, h, true, b);
                self.set_link(cpu, b, false, h);
                self.finish(cpu, k, e)
            }
            _ => self.finish(cpu, k, 0),
        }
    }

    /// One call of this family ([`Args`]: values, IRQL, name).
    pub(super) fn kcall_lists(&mut self, cpu: u32, k: &KernelCall, a: &Args) -> Result<Flow, Halt> {
        let (irql, v) = (a.irql, |i| a.v(i));
        match k.kr {
            Kr::ExInterlockedInsertTailList
            | Kr::ExInterlockedInsertHeadList
            | Kr::ExInterlockedRemoveHeadList => {
                let list = list_of(&k.places[0]);
                let lock = lock_of(&k.places[1]);
                let (op, value) = match k.kr {
                    Kr::ExInterlockedInsertTailList => (ListOp::InsertTail, v(0)),
                    Kr::ExInterlockedInsertHeadList => (ListOp::InsertHead, v(0)),
                    _ => (ListOp::RemoveHead, 0),
                };
                self.set_irql(cpu, irql.max(Irql::DISPATCH));
                self.acquire(
                    cpu,
                    lock,
                    LockFamily::Ordinary,
                    LockMode::Exclusive,
                    AcquireKind::Interlocked,
                    After::List {
                        op,
                        list,
                        value,
                        old: irql,
                        push: k.push_result,
                    },
                )
            }
            Kr::IsListEmpty => {
                // A head of LIST_ENTRY leaves is empty when Flink points at
                // itself; a version 1 head when it holds no integer.
                let points_at_itself = |m: &Self, fv: u32| {
                    m.shared.vars.get(fv as usize).is_some_and(|&f| {
                        f & scenario::program::REF_TAG != 0 && scenario::program::ref_var(f) == fv
                    })
                };
                let empty = match k.places[0] {
                    Place::List(list) => {
                        self.shared.lists[list as usize].is_empty()
                            && self.prog.lists[list as usize]
                                .entry_head
                                .is_none_or(|fv| points_at_itself(self, fv))
                    }
                    Place::Var(fv) => points_at_itself(self, fv),
                    _ => true,
                };
                self.finish(cpu, k, empty as i64)
            }
            _ => self.finish(cpu, k, 0),
        }
    }
}
