//! IRQL: KeGetCurrentIrql, KeRaiseIrql(ToDpcLevel), KeLowerIrql, KeGetCurrentProcessorNumber.

use super::*;

impl Machine<'_> {
    /// One call of this family ([`Args`]: values, IRQL, name).
    pub(super) fn kcall_irql(&mut self, cpu: u32, k: &KernelCall, a: &Args) -> Result<Flow, Halt> {
        let (irql, name, v) = (a.irql, a.name, |i| a.v(i));
        match k.kr {
            Kr::KeGetCurrentIrql => self.finish(cpu, k, irql.0 as i64),
            Kr::KeGetCurrentProcessorNumber => self.finish(cpu, k, cpu as i64),
            Kr::KeRaiseIrql | Kr::KeRaiseIrqlToDpcLevel => {
                let to = if k.kr == Kr::KeRaiseIrql { v(0) } else { 2 };
                let invalid = !(0..=15).contains(&to);
                if self.prog.checks.automatic && (invalid || Irql(to as u8) < irql) {
                    {
                        let detail = irql_out_of_range(name, to).unwrap_or_else(|| format!("{name} asked for IRQL {to}, below the current IRQL {irql}: raising must never lower"));
                        return Err(self.bugcheck(
                            cpu,
                            Bugcheck::verifier(c4::RAISE_TO_LOWER, irql.0 as u64, to as u64, 0),
                            detail,
                        ));
                    }
                }
                self.set_irql(cpu, Irql(to.clamp(0, 15) as u8));
                if k.kr == Kr::KeRaiseIrql {
                    self.store_place(cpu, k.places[0], irql.0 as i64)?;
                    return self.finish(cpu, k, 0);
                }
                self.finish(cpu, k, irql.0 as i64)
            }
            Kr::KeLowerIrql => {
                let to = v(0);
                let invalid = !(0..=15).contains(&to);
                if self.prog.checks.automatic && (invalid || Irql(to as u8) > irql) {
                    {
                        let detail = irql_out_of_range("KeLowerIrql", to).unwrap_or_else(|| format!("KeLowerIrql asked for IRQL {to}, above the current IRQL {irql}: lowering must never raise"));
                        return Err(self.bugcheck(
                            cpu,
                            Bugcheck::verifier(c4::LOWER_TO_HIGHER, irql.0 as u64, to as u64, 0),
                            detail,
                        ));
                    }
                }
                let to = Irql(to.clamp(0, 15) as u8);
                if to < Irql::DISPATCH {
                    self.dpc_lowers_below_dispatch(cpu, to)?;
                    self.lowered_while_holding(cpu, to);
                }
                self.set_irql(cpu, to);
                self.finish(cpu, k, 0)
            }
            _ => self.finish(cpu, k, 0),
        }
    }
}
