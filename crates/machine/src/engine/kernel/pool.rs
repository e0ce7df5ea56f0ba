//! Pool: ExAllocatePoolWithTag and ExFreePoolWithTag (contract v2, "Pool").
//! Each call site hands out blocks made at check time (one zeroed `T`
//! each, never handed out twice); a freed block keeps its storage.

use super::*;

/// Driver Verifier's pool subcodes (P1 of 0xC4) and BAD_POOL_CALLER's
/// (P1 of 0xC2), windows-facts "Pool".
mod sub {
    /// 0xC4/0x01: paged pool allocated above APC_LEVEL.
    pub const ALLOC_PAGED_ABOVE_APC: u64 = 0x01;
    /// 0xC4/0x02: nonpaged pool allocated above DISPATCH_LEVEL.
    pub const ALLOC_NONPAGED_ABOVE_DISPATCH: u64 = 0x02;
    /// 0xC4/0x10: a free of an address no allocation returned.
    pub const FREE_BAD_ADDRESS: u64 = 0x10;
    /// 0xC4/0x11: paged pool freed above APC_LEVEL.
    pub const FREE_PAGED_ABOVE_APC: u64 = 0x11;
    /// 0xC4/0x12: nonpaged pool freed above DISPATCH_LEVEL.
    pub const FREE_NONPAGED_ABOVE_DISPATCH: u64 = 0x12;
    // 0xC4/0x13 (a block freed twice) is `vcpu::bugcheck::c4::POOL_FREE_TWICE`.
    /// 0xC2/0x07: a block freed twice (retail).
    pub const C2_FREE_TWICE: u64 = 0x07;
    /// 0xC2/0x08: an allocation at a bad IRQL (retail).
    pub const C2_ALLOC_BAD_IRQL: u64 = 0x08;
    /// 0xC2/0x09: a free at a bad IRQL (retail).
    pub const C2_FREE_BAD_IRQL: u64 = 0x09;
    /// 0xC2/0x0A: a free with another tag than the allocation's.
    pub const C2_WRONG_TAG: u64 = 0x0A;
    /// 0xC2/0x46: a free of an address no allocation returned (retail).
    pub const C2_BAD_ADDRESS: u64 = 0x46;
}

/// One block handed out: its tag, whether it is paged, whether freed.
#[derive(Clone, Copy, Debug)]
pub(in crate::engine) struct Block {
    tag: u32,
    paged: bool,
    freed: bool,
}

impl Machine<'_> {
    fn pool_stop(&mut self, cpu: u32, b: Bugcheck, detail: String) -> Halt {
        self.bugcheck(cpu, b, detail)
    }

    /// ExAllocatePoolWithTag / ExFreePoolWithTag.
    pub(super) fn kcall_pool(
        &mut self,
        cpu: u32,
        k: &KernelCall,
        vals: &[i64],
        irql: Irql,
        name: &'static str,
    ) -> Result<Flow, Halt> {
        let v = |i: usize| vals.get(i).copied().unwrap_or(0);
        let automatic = self.prog.checks.automatic;
        match k.kr {
            Kr::ExAllocatePoolWithTag => {
                let paged = v(0) == 1;
                let limit = if paged { Irql::APC } else { Irql::DISPATCH };
                if irql > limit {
                    let b = if !automatic {
                        Bugcheck::new(
                            code::BAD_POOL_CALLER,
                            [sub::C2_ALLOC_BAD_IRQL, irql.0 as u64, v(0) as u64, 0],
                        )
                    } else if paged {
                        Bugcheck::verifier(
                            sub::ALLOC_PAGED_ABOVE_APC,
                            irql.0 as u64,
                            v(0) as u64,
                            v(1) as u64,
                        )
                    } else {
                        Bugcheck::verifier(
                            sub::ALLOC_NONPAGED_ABOVE_DISPATCH,
                            irql.0 as u64,
                            v(0) as u64,
                            v(1) as u64,
                        )
                    };
                    return Err(self.pool_stop(
                        cpu,
                        b,
                        format!(
                            "{name} of {} pool at IRQL {irql}",
                            if paged { "paged" } else { "nonpaged" }
                        ),
                    ));
                }
                let Place::PoolSite(site) = k
                    .places
                    .first()
                    .copied()
                    .unwrap_or(Place::PoolSite(u32::MAX))
                else {
                    return self.finish(cpu, k, 0);
                };
                let Some(s) = self.prog.pool_sites.get(site as usize) else {
                    return self.finish(cpu, k, 0);
                };
                let next = self
                    .shared
                    .pool_next
                    .get(site as usize)
                    .copied()
                    .unwrap_or(0);
                let Some((r, vars, _)) = s.blocks.get(next).cloned() else {
                    return Err(self.assertion(
                        cpu,
                        format!(
                            "{name} at line {} ran out of blocks: the simulation hands out {} per call site",
                            s.line,
                            s.blocks.len()
                        ),
                    ));
                };
                if let Some(n) = self.shared.pool_next.get_mut(site as usize) {
                    *n += 1;
                }
                for var in vars {
                    self.shared.vars.zero(var as usize);
                }
                self.shared.blocks.insert(
                    r,
                    Block {
                        tag: v(2) as u32,
                        paged,
                        freed: false,
                    },
                );
                self.finish(cpu, k, r)
            }
            Kr::ExFreePoolWithTag => {
                let (p, tag) = (v(0), v(1) as u32);
                // The block's address as a report shows it: its first byte.
                let at = if p & scenario::program::REF_TAG != 0 {
                    self.prog
                        .vars
                        .get(scenario::program::ref_var(p) as usize)
                        .map_or(p as u64, |d| d.address)
                } else {
                    p as u64
                };
                let block = self.shared.blocks.get(&p).copied();
                let paged = block.is_some_and(|b| b.paged);
                let limit = if paged { Irql::APC } else { Irql::DISPATCH };
                if irql > limit {
                    let b = if !automatic {
                        Bugcheck::new(
                            code::BAD_POOL_CALLER,
                            [sub::C2_FREE_BAD_IRQL, irql.0 as u64, 0, at],
                        )
                    } else if paged {
                        Bugcheck::verifier(sub::FREE_PAGED_ABOVE_APC, irql.0 as u64, 1, at)
                    } else {
                        Bugcheck::verifier(sub::FREE_NONPAGED_ABOVE_DISPATCH, irql.0 as u64, 0, at)
                    };
                    return Err(self.pool_stop(
                        cpu,
                        b,
                        format!(
                            "{name} of a {} block at IRQL {irql}",
                            if paged { "paged" } else { "nonpaged" }
                        ),
                    ));
                }
                let Some(b) = block else {
                    let bc = if automatic {
                        Bugcheck::verifier(sub::FREE_BAD_ADDRESS, at, 0, 0)
                    } else {
                        Bugcheck::new(code::BAD_POOL_CALLER, [sub::C2_BAD_ADDRESS, at, 0, 0])
                    };
                    return Err(self.pool_stop(
                        cpu,
                        bc,
                        format!("{name} of an address no allocation returned"),
                    ));
                };
                if b.freed {
                    let bc = if automatic {
                        Bugcheck::verifier(c4::POOL_FREE_TWICE, at, 0, 0)
                    } else {
                        Bugcheck::new(code::BAD_POOL_CALLER, [sub::C2_FREE_TWICE, 0, 0, at])
                    };
                    return Err(self.pool_stop(
                        cpu,
                        bc,
                        format!("{name} of a block already freed"),
                    ));
                }
                if b.tag != tag {
                    let bc = Bugcheck::new(
                        code::BAD_POOL_CALLER,
                        [sub::C2_WRONG_TAG, at, tag as u64, b.tag as u64],
                    );
                    return Err(self.pool_stop(
                        cpu,
                        bc,
                        format!("{name} with tag {tag:#010x}, but the block was allocated with tag {:#010x}", b.tag),
                    ));
                }
                if let Some(b) = self.shared.blocks.get_mut(&p) {
                    b.freed = true;
                }
                self.finish(cpu, k, 0)
            }
            _ => self.finish(cpu, k, 0),
        }
    }
}
