//! ExInterlocked list routines (the list lock taken inside, at any IRQL) and IsListEmpty.

use super::*;

impl Machine<'_> {
    /// One call of this family ([`Args`]: values, IRQL, name).
    pub(super) fn kcall_lists(&mut self, cpu: u32, k: &KernelCall, a: &Args) -> Flow {
        let (irql, v) = (a.irql, |i| a.v(i));
        match k.kr {
            Kr::ExInterlockedInsertTailList
            | Kr::ExInterlockedInsertHeadList
            | Kr::ExInterlockedRemoveHeadList => {
                let list = index_of(&k.places[0]);
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
                let list = index_of(&k.places[0]);
                let empty = self.lists[list as usize].is_empty();
                self.finish(cpu, k, empty as i64)
            }
            _ => self.finish(cpu, k, 0),
        }
    }
}
