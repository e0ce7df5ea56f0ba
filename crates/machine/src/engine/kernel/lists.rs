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
    /// Flink (or Blink) of the entry `r`, read as an access to shared data
    /// (None: not an entry, or out of the table); `Err` when the run stopped
    /// (pageable data at raised IRQL).
    fn read_link(&mut self, cpu: u32, r: i64, blink: bool) -> Result<Option<i64>, Halt> {
        let Some((f, b)) = links(r) else {
            return Ok(None);
        };
        let v = if blink { b } else { f };
        if v >= self.shared.vars.len() {
            return Ok(None);
        }
        self.touch_var(cpu, v as u32, false)?;
        Ok(Some(self.shared.vars.get(v)))
    }

    /// Write Flink (or Blink) of `r` as an access.
    fn set_link(&mut self, cpu: u32, r: i64, blink: bool, to: i64) -> Result<(), Halt> {
        if let Some((f, b)) = links(r) {
            let v = if blink { b } else { f };
            if v < self.shared.vars.len() {
                self.touch_var(cpu, v as u32, true)?;
                self.write_var(cpu, v as u32, to);
            }
        }
        Ok(())
    }

    /// A head whose Flink and Blink are both still 0 was never initialized
    /// (contract v2, "Run-time errors"): the run ends in assertion_failed.
    fn uninitialized_head(&mut self, cpu: u32, h: i64, name: &str) -> Result<(), Halt> {
        let Some((f, b)) = links(h) else {
            return Ok(());
        };
        if self.shared.vars.try_get(f) != Some(0) || self.shared.vars.try_get(b) != Some(0) {
            return Ok(());
        }
        let head = self.prog.vars[f]
            .name
            .trim_end_matches(".Flink")
            .to_string();
        Err(self.runtime_error(
            cpu,
            format!("{name}(&{head}): use of a list head never initialized (call InitializeListHead first)"),
        ))
    }

    /// The reference of the head whose Flink is variable `fv`, recovered
    /// from its links (an empty head points at itself; else the first
    /// entry's Blink points back at it); None if never initialized.
    fn head_ref(&self, fv: u32) -> Option<i64> {
        let f = self.shared.vars.try_get(fv as usize)?;
        if f & scenario::program::REF_TAG == 0 {
            return None;
        }
        if scenario::program::ref_var(f) == fv {
            return Some(f);
        }
        let b = self
            .shared
            .vars
            .try_get(scenario::program::ref_var(f) as usize + 1)?;
        (scenario::program::ref_var(b) == fv).then_some(b)
    }

    /// An ExInterlocked list routine on LIST_ENTRY links, the list lock
    /// held: insert `e` at the tail or head (returning the entry that was at
    /// that end, NULL when empty) or remove the head entry (NULL when
    /// empty), with the inline routines' link checks (0x139).
    pub(in crate::engine) fn interlocked_entry_op(
        &mut self,
        cpu: u32,
        op: ListOp,
        h: i64,
        e: i64,
    ) -> Result<i64, Halt> {
        let (name, kr) = match op {
            ListOp::InsertTail => ("ExInterlockedInsertTailList", Kr::InsertTailList),
            ListOp::InsertHead => ("ExInterlockedInsertHeadList", Kr::InsertHeadList),
            ListOp::RemoveHead => ("ExInterlockedRemoveHeadList", Kr::RemoveHeadList),
        };
        let first = self.read_link(cpu, h, op == ListOp::InsertTail)?;
        let empty = first == Some(h);
        let result = self.entry_op(cpu, kr, h, e, name)?;
        Ok(match op {
            ListOp::RemoveHead if empty => 0,
            ListOp::RemoveHead => result,
            _ if empty => 0,
            _ => first.unwrap_or(0),
        })
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
        if matches!(
            k.kr,
            Kr::InsertTailList | Kr::InsertHeadList | Kr::RemoveHeadList | Kr::RemoveTailList
        ) {
            self.uninitialized_head(cpu, v(0), name)?;
        }
        let result = self.entry_op(cpu, k.kr, v(0), v(1), name)?;
        self.finish(cpu, k, result)
    }

    /// One inline list routine on LIST_ENTRY links: `h` the head (or, for
    /// RemoveEntryList, the entry), `e` the entry to insert. Returns the
    /// routine's value; 0x139 on broken links.
    fn entry_op(
        &mut self,
        cpu: u32,
        kr: Kr,
        h: i64,
        e: i64,
        name: &'static str,
    ) -> Result<i64, Halt> {
        // Each routine is one step: it reads and writes the links it
        // touches as accesses to shared data (the lockset verifier sees
        // them).
        macro_rules! read {
            ($r:expr, $blink:expr) => {
                self.read_link(cpu, $r, $blink)?
            };
        }
        macro_rules! write {
            ($r:expr, $blink:expr, $to:expr) => {
                self.set_link(cpu, $r, $blink, $to)?
            };
        }
        match kr {
            Kr::InitializeListHead => {
                write!(h, false, h);
                write!(h, true, h);
                Ok(0)
            }
            Kr::InsertTailList => {
                let Some(b) = read!(h, true) else {
                    return Err(self.corrupt_list(cpu, name));
                };
                if read!(b, false) != Some(h) {
                    return Err(self.corrupt_list(cpu, name));
                }
                write!(e, false, h);
                write!(e, true, b);
                write!(b, false, e);
                write!(h, true, e);
                Ok(0)
            }
            Kr::InsertHeadList => {
                let Some(f) = read!(h, false) else {
                    return Err(self.corrupt_list(cpu, name));
                };
                if read!(f, true) != Some(h) {
                    return Err(self.corrupt_list(cpu, name));
                }
                write!(e, false, f);
                write!(e, true, h);
                write!(f, true, e);
                write!(h, false, e);
                Ok(0)
            }
            Kr::RemoveEntryList => {
                let e = h;
                let (Some(f), Some(b)) = (read!(e, false), read!(e, true)) else {
                    return Err(self.corrupt_list(cpu, name));
                };
                if read!(f, true) != Some(e) || read!(b, false) != Some(e) {
                    return Err(self.corrupt_list(cpu, name));
                }
                write!(b, false, f);
                write!(f, true, b);
                Ok((f == b) as i64)
            }
            Kr::RemoveHeadList => {
                let Some(e) = read!(h, false) else {
                    return Err(self.corrupt_list(cpu, name));
                };
                let Some(f) = read!(e, false) else {
                    return Err(self.corrupt_list(cpu, name));
                };
                if read!(e, true) != Some(h) || read!(f, true) != Some(e) {
                    return Err(self.corrupt_list(cpu, name));
                }
                write!(h, false, f);
                write!(f, true, h);
                Ok(e)
            }
            Kr::RemoveTailList => {
                let Some(e) = read!(h, true) else {
                    return Err(self.corrupt_list(cpu, name));
                };
                let Some(b) = read!(e, true) else {
                    return Err(self.corrupt_list(cpu, name));
                };
                if read!(e, false) != Some(h) || read!(b, false) != Some(e) {
                    return Err(self.corrupt_list(cpu, name));
                }
                write!(h, true, b);
                write!(b, false, h);
                Ok(e)
            }
            _ => Ok(0),
        }
    }

    /// One call of this family ([`Args`]: values, IRQL, name).
    pub(super) fn kcall_lists(&mut self, cpu: u32, k: &KernelCall, a: &Args) -> Result<Flow, Halt> {
        let (irql, v) = (a.irql, |i| a.v(i));
        match k.kr {
            Kr::ExInterlockedInsertTailList
            | Kr::ExInterlockedInsertHeadList
            | Kr::ExInterlockedRemoveHeadList => {
                // A global head (version 1 integers, and entries through its
                // LIST_ENTRY leaves), or a LIST_ENTRY field reached at run time.
                let (list, head) = match k.places[0] {
                    Place::List(_) => {
                        let list = list_of(&k.places[0]);
                        let head = self.prog.lists[list.ix()]
                            .entry_head
                            .map(|fv| scenario::program::make_ref(fv, 0));
                        (Some(list), head)
                    }
                    Place::Var(fv) => match self.head_ref(fv) {
                        Some(h) => (None, Some(h)),
                        None => {
                            let head = self.prog.vars[fv as usize]
                                .name
                                .trim_end_matches(".Flink")
                                .to_string();
                            return Err(self.runtime_error(
                                cpu,
                                format!("{}(&{head}): use of a list head never initialized (call InitializeListHead first)", a.name),
                            ));
                        }
                    },
                    _ => (None, None),
                };
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
                        head,
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
                    m.shared.vars.try_get(fv as usize).is_some_and(|f| {
                        f & scenario::program::REF_TAG != 0 && scenario::program::ref_var(f) == fv
                    })
                };
                // The head's Flink is read as an access to shared data.
                let head = match k.places[0] {
                    Place::List(list) => self.prog.lists[list as usize].entry_head,
                    Place::Var(fv) => Some(fv),
                    _ => None,
                };
                if let Some(fv) = head {
                    if matches!(k.places[0], Place::Var(_)) {
                        let head = scenario::program::make_ref(fv, 0);
                        self.uninitialized_head(cpu, head, a.name)?;
                    }
                    if (fv as usize) < self.shared.vars.len() {
                        self.touch_var(cpu, fv, false)?;
                    }
                }
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
