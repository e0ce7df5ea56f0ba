//! Test helpers: a fixed lock table and a builder of hand-written event
//! streams that keeps per-processor clocks, IRQLs and context stacks, so a
//! test reads like the scenario it stands for.

use crate::{Config, GuardInfo, LockInfo, Verifier, Violation, Warning};
use std::collections::BTreeMap;
use std::sync::Arc;
use vcpu::{AcquireKind, ContextKind, CpuId, Event, EventKind, Irql, LockFamily, LockId, LockMode};

/// `EX_SPIN_LOCK Table;`
pub const TABLE: LockId = LockId(0);
/// `KSPIN_LOCK Stats;`
pub const STATS: LockId = LockId(1);
/// `KSPIN_LOCK A;`
pub const A: LockId = LockId(2);
/// `KSPIN_LOCK B;`
pub const B: LockId = LockId(3);
/// `KSPIN_LOCK C;`
pub const C: LockId = LockId(4);
/// The interrupt spin lock of `KINTERRUPT Irq(OnInterrupt, 5, 7);`
pub const IRQ: LockId = LockId(5);

/// `_Guarded_by_(Table) ULONG Entries;`
pub const ENTRIES: u32 = 0;
/// `_Guarded_by_(Stats) ULONG Count;`
pub const COUNT: u32 = 1;
/// `_Guarded_by_(Irq) ULONG State;`
pub const STATE: u32 = 2;
/// `ULONG Free;` (not guarded)
pub const FREE: u32 = 3;

/// The interrupt's SynchronizeIrql: its ISR runs there, holding its lock.
pub const SYNCH_IRQL: Irql = Irql(7);

pub fn addr(lock: LockId) -> u64 {
    0xFFFF_8000_0000_1000 + 0x40 * u64::from(lock.0)
}

pub fn locks() -> Vec<LockInfo> {
    let decl = [
        ("Table", LockFamily::ReaderWriter),
        ("Stats", LockFamily::Ordinary),
        ("A", LockFamily::Ordinary),
        ("B", LockFamily::Ordinary),
        ("C", LockFamily::Ordinary),
        ("Irq", LockFamily::Interrupt),
    ];
    decl.iter()
        .enumerate()
        .map(|(i, (name, family))| LockInfo {
            name: (*name).to_string(),
            address: addr(LockId(i as u32)),
            family: *family,
        })
        .collect()
}

pub fn guards() -> Vec<GuardInfo> {
    vec![
        GuardInfo {
            var: ENTRIES,
            name: "Entries".into(),
            guard: TABLE,
        },
        GuardInfo {
            var: COUNT,
            name: "Count".into(),
            guard: STATS,
        },
        GuardInfo {
            var: STATE,
            name: "State".into(),
            guard: IRQ,
        },
    ]
}

pub fn verifier(config: Config) -> Verifier {
    Verifier::new(config, locks(), guards())
}

/// What [`Script::run`] saw.
#[derive(Debug)]
pub struct Outcome {
    /// The violation and the index of the event that raised it.
    pub violation: Option<(usize, Violation)>,
    pub warnings: Vec<Warning>,
    /// Index of the script's last `AcquireRequested`.
    pub last_request: Option<usize>,
}

impl Outcome {
    /// The violation, asserting it was raised by the script's last lock
    /// request (and so by nothing earlier).
    pub fn violation_at_last_request(&self) -> &Violation {
        let (i, v) = self.violation.as_ref().expect("a violation");
        assert_eq!(Some(*i), self.last_request, "raised by event {i}: {v:#?}");
        v
    }

    pub fn assert_clean(&self) {
        assert!(
            self.violation.is_none(),
            "unexpected violation: {:#?}",
            self.violation
        );
        assert!(
            self.warnings.is_empty(),
            "unexpected warnings: {:#?}",
            self.warnings
        );
    }

    pub fn rules(&self) -> Vec<&'static str> {
        self.warnings.iter().map(|w| w.rule).collect()
    }
}

#[derive(Clone, Debug)]
struct Frame {
    ctx: u32,
    kind: ContextKind,
    name: Arc<str>,
    /// The ISR's interrupt lock, when the script emitted its acquire events.
    isr_lock_events: Option<LockId>,
}

#[derive(Clone, Debug, Default)]
struct Cpu {
    clock: u64,
    irql: Vec<Irql>,
    frames: Vec<Frame>,
    holds: Vec<(LockId, LockMode)>,
}

/// Builds an event stream. Every event costs 100 ns on its processor.
#[derive(Clone, Debug, Default)]
pub struct Script {
    events: Vec<Event>,
    cpus: BTreeMap<CpuId, Cpu>,
    cpu: CpuId,
    next_ctx: u32,
}

impl Script {
    pub fn new() -> Self {
        Script {
            next_ctx: 1,
            ..Script::default()
        }
    }

    fn cur(&mut self) -> &mut Cpu {
        self.cpus.entry(self.cpu).or_default()
    }

    fn irql(&mut self) -> Irql {
        self.cur().irql.last().copied().unwrap_or(Irql::PASSIVE)
    }

    fn emit(&mut self, line: u32, kind: EventKind) -> &mut Self {
        let cpu = self.cpu;
        let c = self.cur();
        let ctx = c.frames.last().map_or(0, |f| f.ctx);
        let at = c.clock;
        c.clock += 100;
        self.events.push(Event {
            at,
            cpu,
            ctx,
            line,
            kind,
        });
        self
    }

    /// Continue on processor `cpu`, in the context on top of it.
    pub fn on(&mut self, cpu: CpuId) -> &mut Self {
        self.cpu = cpu;
        self
    }

    /// Let `ns` of virtual time pass on the current processor.
    pub fn wait(&mut self, ns: u64) -> &mut Self {
        self.cur().clock += ns;
        self
    }

    fn start(
        &mut self,
        cpu: CpuId,
        kind: ContextKind,
        name: &str,
        irql: Irql,
        il: Option<LockId>,
    ) -> &mut Self {
        self.cpu = cpu;
        let ctx = self.next_ctx;
        self.next_ctx += 1;
        let name: Arc<str> = Arc::from(name);
        let c = self.cur();
        c.frames.push(Frame {
            ctx,
            kind,
            name: name.clone(),
            isr_lock_events: None,
        });
        c.irql.push(irql);
        self.emit(
            0,
            EventKind::ContextStart {
                kind,
                name,
                irql,
                interrupt_lock: il,
            },
        )
    }

    /// A system thread starts on `cpu` at PASSIVE_LEVEL.
    pub fn thread(&mut self, cpu: CpuId, name: &str) -> &mut Self {
        self.start(cpu, ContextKind::Thread, name, Irql::PASSIVE, None)
    }

    /// A DPC starts on `cpu` at DISPATCH_LEVEL.
    pub fn dpc(&mut self, cpu: CpuId, name: &str) -> &mut Self {
        self.start(cpu, ContextKind::Dpc, name, Irql::DISPATCH, None)
    }

    /// The ISR of `Irq` starts on `cpu`, and the kernel takes its interrupt
    /// lock (`AcquireRequested` + `Acquired` with `IsrEntry`).
    pub fn isr(&mut self, cpu: CpuId, name: &str) -> &mut Self {
        self.isr_bare(cpu, name);
        let irql = self.irql();
        self.emit(
            0,
            EventKind::AcquireRequested {
                lock: IRQ,
                family: LockFamily::Interrupt,
                mode: LockMode::Exclusive,
                how: AcquireKind::IsrEntry,
                irql,
            },
        );
        self.emit(
            0,
            EventKind::Acquired {
                lock: IRQ,
                family: LockFamily::Interrupt,
                mode: LockMode::Exclusive,
                how: AcquireKind::IsrEntry,
                spun: 0,
            },
        );
        self.cur()
            .frames
            .last_mut()
            .expect("isr frame")
            .isr_lock_events = Some(IRQ);
        self
    }

    /// The ISR of `Irq` starts, with only its `ContextStart` (no lock events).
    pub fn isr_bare(&mut self, cpu: CpuId, name: &str) -> &mut Self {
        self.start(cpu, ContextKind::Isr, name, SYNCH_IRQL, Some(IRQ))
    }

    /// The context on top of the current processor returns.
    pub fn end(&mut self) -> &mut Self {
        let frame = self
            .cur()
            .frames
            .last()
            .cloned()
            .expect("a running context");
        if let Some(il) = frame.isr_lock_events {
            self.emit(
                0,
                EventKind::Released {
                    lock: il,
                    family: LockFamily::Interrupt,
                    mode: LockMode::Exclusive,
                },
            );
        }
        self.emit(
            0,
            EventKind::ContextEnd {
                kind: frame.kind,
                name: frame.name,
            },
        );
        let c = self.cur();
        c.frames.pop();
        c.irql.pop();
        self
    }

    /// The general acquire: `AcquireRequested` then `Acquired` after `spun` ns.
    pub fn acquire_with(
        &mut self,
        line: u32,
        lock: LockId,
        family: LockFamily,
        mode: LockMode,
        how: AcquireKind,
        spun: u64,
    ) -> &mut Self {
        let irql = self.irql();
        self.emit(
            line,
            EventKind::AcquireRequested {
                lock,
                family,
                mode,
                how,
                irql,
            },
        );
        self.wait(spun);
        self.emit(
            line,
            EventKind::Acquired {
                lock,
                family,
                mode,
                how,
                spun,
            },
        );
        let new = match (family, how) {
            (_, AcquireKind::AtDpcLevel) => irql,
            (LockFamily::Interrupt, _) => SYNCH_IRQL,
            _ => irql.max(Irql::DISPATCH),
        };
        let c = self.cur();
        c.irql.push(new);
        c.holds.push((lock, mode));
        self
    }

    /// `KeAcquireSpinLock` / `ExAcquireSpinLockExclusive` /
    /// `KeAcquireInterruptSpinLock`, by the lock's declared family.
    pub fn acquire(&mut self, line: u32, lock: LockId) -> &mut Self {
        let family = locks()[lock.0 as usize].family;
        let how = if family == LockFamily::Interrupt {
            AcquireKind::Synchronize
        } else {
            AcquireKind::Raising
        };
        self.acquire_with(line, lock, family, LockMode::Exclusive, how, 0)
    }

    /// The `AtDpcLevel` form.
    pub fn acquire_at_dpc(&mut self, line: u32, lock: LockId) -> &mut Self {
        let family = locks()[lock.0 as usize].family;
        self.acquire_with(
            line,
            lock,
            family,
            LockMode::Exclusive,
            AcquireKind::AtDpcLevel,
            0,
        )
    }

    /// `ExAcquireSpinLockShared`.
    pub fn acquire_shared(&mut self, line: u32, lock: LockId) -> &mut Self {
        self.acquire_with(
            line,
            lock,
            LockFamily::ReaderWriter,
            LockMode::Shared,
            AcquireKind::Raising,
            0,
        )
    }

    /// Release the latest hold of `lock` on this processor, in its mode.
    pub fn release(&mut self, line: u32, lock: LockId) -> &mut Self {
        let c = self.cur();
        let i = c
            .holds
            .iter()
            .rposition(|(l, _)| *l == lock)
            .expect("release of a held lock");
        let (_, mode) = c.holds.remove(i);
        c.irql.pop();
        let family = locks()[lock.0 as usize].family;
        self.emit(line, EventKind::Released { lock, family, mode })
    }

    /// `ExTryConvertSharedSpinLockExclusive` that succeeds.
    pub fn convert(&mut self, line: u32, lock: LockId) -> &mut Self {
        let c = self.cur();
        if let Some(h) = c.holds.iter_mut().rev().find(|(l, _)| *l == lock) {
            h.1 = LockMode::Exclusive;
        }
        self.emit(line, EventKind::Converted { lock })
    }

    /// An `ExInterlocked...List` call: acquire and release inside one statement.
    pub fn interlocked(&mut self, line: u32, lock: LockId) -> &mut Self {
        self.acquire_with(
            line,
            lock,
            LockFamily::Ordinary,
            LockMode::Exclusive,
            AcquireKind::Interlocked,
            0,
        )
        .release(line, lock)
    }

    pub fn read(&mut self, line: u32, var: u32) -> &mut Self {
        self.emit(line, EventKind::Access { var, write: false })
    }

    pub fn write(&mut self, line: u32, var: u32) -> &mut Self {
        self.emit(line, EventKind::Access { var, write: true })
    }

    pub fn print(&mut self, line: u32, text: &str) -> &mut Self {
        self.emit(line, EventKind::Print { text: text.into() })
    }

    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Feed the stream to a fresh verifier until the first violation.
    pub fn run(&self, config: Config) -> Outcome {
        let mut v = verifier(config);
        let mut violation = None;
        for (i, ev) in self.events.iter().enumerate() {
            if let Some(x) = v.observe(ev) {
                violation = Some((i, x));
                break;
            }
        }
        let last_request = self
            .events
            .iter()
            .rposition(|e| matches!(e.kind, EventKind::AcquireRequested { .. }));
        Outcome {
            violation,
            warnings: v.warnings().to_vec(),
            last_request,
        }
    }

    /// [`Script::run`] with the default configuration.
    pub fn check(&self) -> Outcome {
        self.run(Config::default())
    }
}
