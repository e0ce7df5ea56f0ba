//! Generated-scenario property test (issue R item 10): proptest writes
//! VALID `.sim` programs that use every routine family of the language —
//! ordinary spin locks, in-stack queued spin locks, `EX_SPIN_LOCK` shared
//! and exclusive, interrupt spin locks and `KeSynchronizeExecution`, DPCs
//! queued with `KeInsertQueueDpc`, ExInterlocked lists, the Interlocked
//! routines, `KeRaiseIrql`/`KeLowerIrql`, `KeStallExecutionProcessor` and
//! `DbgPrint` — over several threads, processors and seeds, and checks:
//!
//! - every generated program passes the checker (a program the checker
//!   rejects is a generator bug and fails the test, with the program and the
//!   errors);
//! - running it does not panic, whatever it ends in (clean, or a bugcheck:
//!   some blocks are driver bugs the checker cannot see, such as a
//!   recursive acquire or a lock kept at the end of a thread, and two
//!   threads may take the ordinary locks in opposite orders);
//! - two runs of the same program with the same seed give byte-identical
//!   JSON reports;
//! - the JSON report says what the `RunReport` says (outcome, bugcheck code
//!   and parameters, assertion, seed, processors, warnings, output).
//!
//! 48 cases by default, so `cargo test` stays within a few seconds; set
//! `KSPIN_PROPTEST_CASES` for more (e.g. `KSPIN_PROPTEST_CASES=2000`).

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

// ---------------------------------------------------------------- engine API
// The one place that names the engine: when it moves to crate `machine`,
// these two lines become `use machine::{...}` and `machine::run`.
use machine::{Outcome, RunOptions, RunReport};

/// Run a loaded program once with `seed` (deterministic mode).
fn run_engine(program: &machine::Program, seed: u64) -> RunReport {
    machine::run(
        program,
        &RunOptions {
            seed: Some(seed),
            ..RunOptions::default()
        },
    )
}

// ---------------------------------------------------------------- generator

/// The file scope every generated program shares: one object of each kind,
/// the ISR, its SynchCritSection routine and the DPC routine. `DPC_BODY` and
/// `ISR_BODY` are replaced by generated statements.
const GLOBALS: &str = r#"
KSPIN_LOCK SpinA;
KSPIN_LOCK SpinB;
KSPIN_LOCK QueuedLock;
KSPIN_LOCK ListLock;
EX_SPIN_LOCK TableLock;
KINTERRUPT Device(DeviceIsr, 5);
KDPC Completion(CompletionDpc);
LIST_ENTRY Pending;

_Guarded_by_(SpinA) ULONG CountA;
_Guarded_by_(SpinB) ULONG CountB;
_Guarded_by_(TableLock) ULONG Table;
_Guarded_by_(Device) ULONG DeviceState;
LONG Counter;
ULONG Scratch;

BOOLEAN DeviceIsr(PKINTERRUPT Interrupt, PVOID Context) {
    ULONG Item;
    DeviceState = DeviceState + 1;
ISR_BODY
    return TRUE;
}

BOOLEAN SyncWithDevice(PVOID SynchronizeContext) {
    DeviceState = DeviceState + 1;
    return TRUE;
}

VOID CompletionDpc(PKDPC Dpc, PVOID Context, PVOID Arg1, PVOID Arg2) {
    KLOCK_QUEUE_HANDLE Handle;
    ULONG Item;
DPC_BODY
}
"#;

/// Which spin lock of the two ordinary ones.
#[derive(Clone, Copy, Debug)]
enum Spin {
    A,
    B,
}

impl Spin {
    fn name(self) -> &'static str {
        match self {
            Spin::A => "SpinA",
            Spin::B => "SpinB",
        }
    }

    /// The data it guards.
    fn data(self) -> &'static str {
        match self {
            Spin::A => "CountA",
            Spin::B => "CountB",
        }
    }
}

/// What a thread does while it holds an ordinary spin lock (at DISPATCH_LEVEL).
#[derive(Clone, Copy, Debug)]
enum Inner {
    Nothing,
    /// The other ordinary lock, `AtDpcLevel` (two orders make a cycle).
    Spin(Spin),
    /// `TableLock` shared, `AtDpcLevel`.
    TableShared,
    /// `QueuedLock`, in-stack queued `AtDpcLevel`.
    Queued,
    /// A DPC queued while holding the lock.
    QueueDpc,
}

/// One self-contained piece of a thread body, at PASSIVE_LEVEL.
#[derive(Clone, Debug)]
enum Block {
    /// `KeAcquireSpinLock` (or `RaiseToDpc`), the guarded data, `inner`, release.
    SpinLock {
        lock: Spin,
        raise_to_dpc: bool,
        inner: Inner,
    },
    /// In-stack queued acquire and release.
    Queued,
    /// `TableLock` shared (a read) or exclusive (a write); `convert` tries
    /// `ExTryConvertSharedSpinLockExclusive` on a shared hold.
    Table { exclusive: bool, convert: bool },
    /// `KeAcquireInterruptSpinLock` / `KeReleaseInterruptSpinLock`.
    InterruptLock,
    /// `KeSynchronizeExecution(&Device, SyncWithDevice, NULL)`.
    Synchronize,
    /// `KeInsertQueueDpc(&Completion, a1, a2)`.
    QueueDpc(u32, u32),
    /// `ExInterlockedInsertTailList` / `...HeadList`.
    ListInsert { head: bool, value: u32 },
    /// `ExInterlockedRemoveHeadList`.
    ListRemove,
    /// `InterlockedIncrement`, `...Decrement`, `...Exchange`, `...CompareExchange`.
    Interlocked { op: u8, value: u32 },
    /// `KeRaiseIrql(level, &Old)`, a stall or an Interlocked call, `KeLowerIrql`.
    Raise { to_dispatch: bool },
    /// `KeStallExecutionProcessor(us)`.
    Stall(u32),
    /// `DbgPrint`.
    Print(u32),
    /// `SimFireInterrupt(&Device, us)`.
    Fire(u32),
    /// `for (i = 0; i < n; i++) { ... }` over simple blocks.
    Loop(u32, Vec<Block>),
    /// A driver bug the checker cannot see, for the run to find: see [`Bug`].
    Bug(Bug),
}

/// Driver bugs that are valid programs: the run ends in a bugcheck (which
/// one depends on the `verifier` options and on the interleaving).
#[derive(Clone, Copy, Debug)]
enum Bug {
    /// The lock acquired again by its owner (0xC4/0x1000 or 0xF).
    Recursive(Spin),
    /// A release of a lock nobody holds (0xC4/0x1007 or 0x10).
    ReleaseUnowned(Spin),
    /// The thread keeps the lock (0xC4/0x100A, or 0xE1 at its end).
    Leak(Spin),
    /// `ExRaiseStatus` under a spin lock, not handled (0x1E).
    RaiseUnderLock(Spin),
    /// A spin lock requested at DIRQL (0xC4/0x42 with the automatic checks).
    AcquireAboveDispatch(Spin),
}

/// One statement of the DPC routine or the ISR.
#[derive(Clone, Copy, Debug)]
enum Deferred {
    SpinAtDpc(Spin),
    TableSharedAtDpc,
    TableExclusiveAtDpc,
    QueuedAtDpc,
    Synchronize,
    ListInsert(u32),
    ListRemove,
    Interlocked,
    Stall(u32),
    Print,
}

/// A thread of the workload.
#[derive(Clone, Debug)]
struct Thread {
    cpu: Option<u32>,
    repeat: u32,
    blocks: Vec<Block>,
}

/// A whole generated program.
#[derive(Clone, Debug)]
struct Spec {
    cpus: u32,
    header_seed: u64,
    verifier: &'static str,
    threads: Vec<Thread>,
    dpc: Vec<Deferred>,
    isr: Vec<Deferred>,
    /// `interrupt Device on cpu N at Dus every Eus count K;`
    interrupt: Option<(u32, u32, u32, u32)>,
    run_seed: u64,
}

/// The `verifier` options this version of the checker accepts.
const VERIFIERS: [&str; 5] = [
    "standard",
    "none",
    "deadlock_detection",
    "force_irql_checking",
    "deadlock_detection, force_irql_checking",
];

fn spin() -> impl Strategy<Value = Spin> {
    prop_oneof![Just(Spin::A), Just(Spin::B)]
}

fn inner() -> impl Strategy<Value = Inner> {
    prop_oneof![
        Just(Inner::Nothing),
        spin().prop_map(Inner::Spin),
        Just(Inner::TableShared),
        Just(Inner::Queued),
        Just(Inner::QueueDpc),
    ]
}

/// Every block kind but `Loop`.
fn simple_block() -> impl Strategy<Value = Block> {
    prop_oneof![
        (spin(), any::<bool>(), inner()).prop_map(|(lock, raise_to_dpc, inner)| Block::SpinLock {
            lock,
            raise_to_dpc,
            inner
        }),
        Just(Block::Queued),
        (any::<bool>(), any::<bool>())
            .prop_map(|(exclusive, convert)| Block::Table { exclusive, convert }),
        Just(Block::InterruptLock),
        Just(Block::Synchronize),
        (0u32..3, 0u32..3).prop_map(|(a, b)| Block::QueueDpc(a, b)),
        (any::<bool>(), 1u32..100).prop_map(|(head, value)| Block::ListInsert { head, value }),
        Just(Block::ListRemove),
        (0u8..4, 0u32..10).prop_map(|(op, value)| Block::Interlocked { op, value }),
        any::<bool>().prop_map(|to_dispatch| Block::Raise { to_dispatch }),
        (1u32..6).prop_map(Block::Stall),
        (0u32..1000).prop_map(Block::Print),
        (1u32..20).prop_map(Block::Fire),
    ]
}

fn bug() -> impl Strategy<Value = Bug> {
    prop_oneof![
        spin().prop_map(Bug::Recursive),
        spin().prop_map(Bug::ReleaseUnowned),
        spin().prop_map(Bug::Leak),
        spin().prop_map(Bug::RaiseUnderLock),
        spin().prop_map(Bug::AcquireAboveDispatch),
    ]
}

fn block() -> impl Strategy<Value = Block> {
    prop_oneof![
        24 => simple_block(),
        4 => (1u32..4, prop::collection::vec(simple_block(), 1..4))
            .prop_map(|(n, body)| Block::Loop(n, body)),
        1 => bug().prop_map(Block::Bug),
    ]
}

/// One block of every family, in a random order: the first thread runs
/// these, so every program uses every routine family.
fn every_family() -> impl Strategy<Value = Vec<Block>> {
    Just(vec![
        Block::SpinLock {
            lock: Spin::A,
            raise_to_dpc: false,
            inner: Inner::Nothing,
        },
        Block::Queued,
        Block::Table {
            exclusive: false,
            convert: false,
        },
        Block::Table {
            exclusive: true,
            convert: false,
        },
        Block::InterruptLock,
        Block::Synchronize,
        Block::QueueDpc(0, 0),
        Block::ListInsert {
            head: false,
            value: 7,
        },
        Block::ListRemove,
        Block::Interlocked { op: 0, value: 0 },
        Block::Raise { to_dispatch: true },
        Block::Stall(1),
        Block::Print(0),
    ])
    .prop_shuffle()
}

fn deferred() -> impl Strategy<Value = Deferred> {
    prop_oneof![
        spin().prop_map(Deferred::SpinAtDpc),
        Just(Deferred::TableSharedAtDpc),
        Just(Deferred::TableExclusiveAtDpc),
        Just(Deferred::QueuedAtDpc),
        Just(Deferred::Synchronize),
        (1u32..100).prop_map(Deferred::ListInsert),
        Just(Deferred::ListRemove),
        Just(Deferred::Interlocked),
        (1u32..4).prop_map(Deferred::Stall),
        Just(Deferred::Print),
    ]
}

/// What an ISR may do at DIRQL: no spin locks of its own.
fn isr_statement() -> impl Strategy<Value = Deferred> {
    prop_oneof![
        (1u32..100).prop_map(Deferred::ListInsert),
        Just(Deferred::ListRemove),
        Just(Deferred::Interlocked),
        (1u32..3).prop_map(Deferred::Stall),
        Just(Deferred::Print),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    (1u32..=4).prop_flat_map(|cpus| {
        let thread = (
            prop::option::of(0..cpus),
            1u32..=2,
            prop::collection::vec(block(), 0..8),
        )
            .prop_map(|(cpu, repeat, blocks)| Thread {
                cpu,
                repeat,
                blocks,
            })
            .boxed();
        let interrupt = prop::option::of((0..cpus, 1u32..30, 10u32..60, 1u32..4));
        (
            any::<u64>(),
            prop::sample::select(&VERIFIERS[..]),
            (every_family(), thread.clone()),
            prop::collection::vec(thread, 0..3),
            prop::collection::vec(deferred(), 0..4),
            prop::collection::vec(isr_statement(), 0..3),
            interrupt,
            any::<u64>(),
        )
            .prop_map(
                move |(
                    header_seed,
                    verifier,
                    (tour, first),
                    others,
                    dpc,
                    isr,
                    interrupt,
                    run_seed,
                )| {
                    let mut first = first;
                    first.blocks.splice(0..0, tour);
                    let mut threads = vec![first];
                    threads.extend(others);
                    Spec {
                        cpus,
                        header_seed,
                        verifier,
                        threads,
                        dpc,
                        isr,
                        interrupt,
                        run_seed,
                    }
                },
            )
    })
}

// ---------------------------------------------------------------- rendering

fn render_inner(out: &mut String, inner: Inner, pad: &str) {
    match inner {
        Inner::Nothing => {}
        Inner::Spin(s) => {
            out.push_str(&format!(
                "{pad}KeAcquireSpinLockAtDpcLevel(&{n});\n{pad}{d} = {d} + 1;\n\
                 {pad}KeReleaseSpinLockFromDpcLevel(&{n});\n",
                n = s.name(),
                d = s.data()
            ));
        }
        Inner::TableShared => out.push_str(&format!(
            "{pad}ExAcquireSpinLockSharedAtDpcLevel(&TableLock);\n{pad}Scratch = Table;\n\
             {pad}ExReleaseSpinLockSharedFromDpcLevel(&TableLock);\n"
        )),
        Inner::Queued => out.push_str(&format!(
            "{pad}KeAcquireInStackQueuedSpinLockAtDpcLevel(&QueuedLock, &Handle);\n\
             {pad}Scratch = Scratch + 1;\n\
             {pad}KeReleaseInStackQueuedSpinLockFromDpcLevel(&Handle);\n"
        )),
        Inner::QueueDpc => out.push_str(&format!(
            "{pad}KeInsertQueueDpc(&Completion, NULL, NULL);\n"
        )),
    }
}

fn render_block(out: &mut String, b: &Block, pad: &str) {
    match b {
        Block::SpinLock {
            lock,
            raise_to_dpc,
            inner,
        } => {
            let n = lock.name();
            if *raise_to_dpc {
                out.push_str(&format!("{pad}Old = KeAcquireSpinLockRaiseToDpc(&{n});\n"));
            } else {
                out.push_str(&format!("{pad}KeAcquireSpinLock(&{n}, &Old);\n"));
            }
            out.push_str(&format!("{pad}{d} = {d} + 1;\n", d = lock.data()));
            render_inner(out, *inner, pad);
            out.push_str(&format!("{pad}KeReleaseSpinLock(&{n}, Old);\n"));
        }
        Block::Queued => out.push_str(&format!(
            "{pad}KeAcquireInStackQueuedSpinLock(&QueuedLock, &Handle);\n\
             {pad}Scratch = Scratch + 1;\n{pad}KeReleaseInStackQueuedSpinLock(&Handle);\n"
        )),
        Block::Table {
            exclusive: true, ..
        } => out.push_str(&format!(
            "{pad}Old = ExAcquireSpinLockExclusive(&TableLock);\n{pad}Table = Table + 1;\n\
             {pad}ExReleaseSpinLockExclusive(&TableLock, Old);\n"
        )),
        Block::Table {
            exclusive: false,
            convert,
        } => {
            out.push_str(&format!(
                "{pad}Old = ExAcquireSpinLockShared(&TableLock);\n{pad}Scratch = Table;\n"
            ));
            if *convert {
                out.push_str(&format!(
                    "{pad}if (ExTryConvertSharedSpinLockExclusive(&TableLock)) {{\n\
                     {pad}    Table = Table + 1;\n\
                     {pad}    ExReleaseSpinLockExclusive(&TableLock, Old);\n\
                     {pad}}} else {{\n\
                     {pad}    ExReleaseSpinLockShared(&TableLock, Old);\n\
                     {pad}}}\n"
                ));
            } else {
                out.push_str(&format!("{pad}ExReleaseSpinLockShared(&TableLock, Old);\n"));
            }
        }
        Block::InterruptLock => out.push_str(&format!(
            "{pad}Old = KeAcquireInterruptSpinLock(&Device);\n\
             {pad}DeviceState = DeviceState + 1;\n\
             {pad}KeReleaseInterruptSpinLock(&Device, Old);\n"
        )),
        Block::Synchronize => out.push_str(&format!(
            "{pad}KeSynchronizeExecution(&Device, SyncWithDevice, NULL);\n"
        )),
        Block::QueueDpc(a, b) => {
            let arg = |v: u32| {
                if v == 0 {
                    "NULL".to_string()
                } else {
                    v.to_string()
                }
            };
            out.push_str(&format!(
                "{pad}KeInsertQueueDpc(&Completion, {}, {});\n",
                arg(*a),
                arg(*b)
            ));
        }
        Block::ListInsert { head, value } => {
            let which = if *head { "Head" } else { "Tail" };
            out.push_str(&format!(
                "{pad}ExInterlockedInsert{which}List(&Pending, {value}, &ListLock);\n"
            ));
        }
        Block::ListRemove => out.push_str(&format!(
            "{pad}Item = ExInterlockedRemoveHeadList(&Pending, &ListLock);\n\
             {pad}if (IsListEmpty(&Pending)) {{ Scratch = Item; }}\n"
        )),
        Block::Interlocked { op, value } => {
            let call = match op % 4 {
                0 => "InterlockedIncrement(&Counter)".to_string(),
                1 => "InterlockedDecrement(&Counter)".to_string(),
                2 => format!("InterlockedExchange(&Counter, {value})"),
                _ => format!("InterlockedCompareExchange(&Counter, {value}, 0)"),
            };
            out.push_str(&format!("{pad}{call};\n"));
        }
        Block::Raise { to_dispatch } => {
            let level = if *to_dispatch { "DISPATCH_LEVEL" } else { "5" };
            out.push_str(&format!(
                "{pad}KeRaiseIrql({level}, &Raised);\n\
                 {pad}ASSERT(KeGetCurrentIrql() == {level});\n\
                 {pad}InterlockedIncrement(&Counter);\n\
                 {pad}KeStallExecutionProcessor(1);\n\
                 {pad}KeLowerIrql(Raised);\n"
            ));
        }
        Block::Stall(us) => out.push_str(&format!("{pad}KeStallExecutionProcessor({us});\n")),
        Block::Print(v) => out.push_str(&format!(
            "{pad}DbgPrint(\"step {v} on cpu %d, counter %d\\n\", \
             KeGetCurrentProcessorNumber(), Counter);\n"
        )),
        Block::Fire(us) => out.push_str(&format!("{pad}SimFireInterrupt(&Device, {us});\n")),
        Block::Bug(bug) => render_bug(out, *bug, pad),
        Block::Loop(n, body) => {
            out.push_str(&format!("{pad}for (i = 0; i < {n}; i++) {{\n"));
            let deeper = format!("{pad}    ");
            for b in body {
                render_block(out, b, &deeper);
            }
            out.push_str(&format!("{pad}}}\n"));
        }
    }
}

fn render_bug(out: &mut String, bug: Bug, pad: &str) {
    match bug {
        Bug::Recursive(s) => out.push_str(&format!(
            "{pad}KeAcquireSpinLock(&{n}, &Old);
{pad}KeAcquireSpinLockAtDpcLevel(&{n});
             {pad}KeReleaseSpinLockFromDpcLevel(&{n});
{pad}KeReleaseSpinLock(&{n}, Old);
",
            n = s.name()
        )),
        Bug::ReleaseUnowned(s) => out.push_str(&format!(
            "{pad}KeRaiseIrql(DISPATCH_LEVEL, &Old);
             {pad}KeReleaseSpinLock(&{n}, Old);
",
            n = s.name()
        )),
        Bug::Leak(s) => out.push_str(&format!(
            "{pad}KeAcquireSpinLock(&{n}, &Old);
{pad}{d} = {d} + 1;
",
            n = s.name(),
            d = s.data()
        )),
        Bug::RaiseUnderLock(s) => out.push_str(&format!(
            "{pad}KeAcquireSpinLock(&{n}, &Old);
{pad}ExRaiseStatus(0xC0000001);
             {pad}KeReleaseSpinLock(&{n}, Old);
",
            n = s.name()
        )),
        Bug::AcquireAboveDispatch(s) => out.push_str(&format!(
            "{pad}KeRaiseIrql(5, &Raised);
{pad}KeAcquireSpinLock(&{n}, &Old);
             {pad}KeReleaseSpinLock(&{n}, Old);
{pad}KeLowerIrql(Raised);
",
            n = s.name()
        )),
    }
}

fn render_deferred(out: &mut String, d: Deferred) {
    let pad = "    ";
    match d {
        Deferred::SpinAtDpc(s) => out.push_str(&format!(
            "{pad}KeAcquireSpinLockAtDpcLevel(&{n});\n{pad}{d} = {d} + 1;\n\
             {pad}KeReleaseSpinLockFromDpcLevel(&{n});\n",
            n = s.name(),
            d = s.data()
        )),
        Deferred::TableSharedAtDpc => out.push_str(&format!(
            "{pad}ExAcquireSpinLockSharedAtDpcLevel(&TableLock);\n{pad}Scratch = Table;\n\
             {pad}ExReleaseSpinLockSharedFromDpcLevel(&TableLock);\n"
        )),
        Deferred::TableExclusiveAtDpc => out.push_str(&format!(
            "{pad}ExAcquireSpinLockExclusiveAtDpcLevel(&TableLock);\n{pad}Table = Table + 1;\n\
             {pad}ExReleaseSpinLockExclusiveFromDpcLevel(&TableLock);\n"
        )),
        Deferred::QueuedAtDpc => out.push_str(&format!(
            "{pad}KeAcquireInStackQueuedSpinLockAtDpcLevel(&QueuedLock, &Handle);\n\
             {pad}Scratch = Scratch + 1;\n\
             {pad}KeReleaseInStackQueuedSpinLockFromDpcLevel(&Handle);\n"
        )),
        Deferred::Synchronize => out.push_str(&format!(
            "{pad}KeSynchronizeExecution(&Device, SyncWithDevice, NULL);\n"
        )),
        Deferred::ListInsert(v) => out.push_str(&format!(
            "{pad}ExInterlockedInsertTailList(&Pending, {v}, &ListLock);\n"
        )),
        Deferred::ListRemove => out.push_str(&format!(
            "{pad}Item = ExInterlockedRemoveHeadList(&Pending, &ListLock);\n"
        )),
        Deferred::Interlocked => out.push_str(&format!("{pad}InterlockedIncrement(&Counter);\n")),
        Deferred::Stall(us) => out.push_str(&format!("{pad}KeStallExecutionProcessor({us});\n")),
        Deferred::Print => out.push_str(&format!(
            "{pad}DbgPrint(\"deferred at IRQL %d\\n\", KeGetCurrentIrql());\n"
        )),
    }
}

/// The `.sim` text of a spec.
fn render(spec: &Spec) -> String {
    let mut out = format!(
        "// generated by crates/scenario/tests/generated.rs\n\
         scenario \"generated\" {{\n    title \"generated program\";\n    cpus {};\n    \
         seed {};\n    verifier {};\n    duration 5ms;\n}}\n",
        spec.cpus, spec.header_seed, spec.verifier
    );
    let mut dpc = String::new();
    for d in &spec.dpc {
        render_deferred(&mut dpc, *d);
    }
    let mut isr = String::new();
    for d in &spec.isr {
        render_deferred(&mut isr, *d);
    }
    out.push_str(
        &GLOBALS
            .replace("DPC_BODY\n", &dpc)
            .replace("ISR_BODY\n", &isr),
    );
    for (n, t) in spec.threads.iter().enumerate() {
        out.push_str(&format!("\nthread Worker{n}"));
        if let Some(cpu) = t.cpu {
            out.push_str(&format!(" on cpu {cpu}"));
        }
        if t.repeat > 1 {
            out.push_str(&format!(" repeat {}", t.repeat));
        }
        out.push_str(
            " {\n    KIRQL Old;\n    KIRQL Raised;\n    KLOCK_QUEUE_HANDLE Handle;\n    \
             ULONG Item;\n    ULONG i;\n",
        );
        for b in &t.blocks {
            render_block(&mut out, b, "    ");
        }
        out.push_str("}\n");
    }
    if let Some((cpu, at, every, count)) = spec.interrupt {
        out.push_str(&format!(
            "\ninterrupt Device on cpu {cpu} at {at}us every {every}us count {count};\n"
        ));
    }
    out
}

// ---------------------------------------------------------------- properties

/// The JSON report agrees with the `RunReport` it was made from.
fn check_json_agrees(report: &RunReport, json: &str) -> Result<(), TestCaseError> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let outcome = match report.outcome {
        Outcome::Clean => "clean",
        Outcome::Bugcheck => "bugcheck",
        Outcome::AssertionFailed => "assertion_failed",
    };
    prop_assert_eq!(v["outcome"].as_str(), Some(outcome));
    prop_assert_eq!(v["seed"].as_u64(), report.seed);
    prop_assert_eq!(v["cpus"].as_u64(), Some(u64::from(report.cpus)));
    prop_assert_eq!(v["statements"].as_u64(), Some(report.statements));
    prop_assert_eq!(
        report.bugcheck.is_some(),
        report.outcome == Outcome::Bugcheck
    );
    prop_assert_eq!(
        report.assertion.is_some(),
        report.outcome == Outcome::AssertionFailed
    );
    match &report.bugcheck {
        Some(b) => {
            prop_assert_eq!(v["bugcheck"]["code"].as_u64(), Some(u64::from(b.code)));
            let params: Vec<u64> = v["bugcheck"]["params"]
                .as_array()
                .map(|a| a.iter().filter_map(|p| p.as_u64()).collect())
                .unwrap_or_default();
            prop_assert_eq!(params, b.params.to_vec());
            prop_assert_eq!(v["bugcheck"]["detail"].as_str(), Some(b.detail.as_str()));
            prop_assert_eq!(v["bugcheck"]["name"].as_str(), Some(b.name.as_str()));
        }
        None => prop_assert!(v["bugcheck"].is_null()),
    }
    match &report.assertion {
        Some(a) => prop_assert_eq!(v["assertion"]["message"].as_str(), Some(a.message.as_str())),
        None => prop_assert!(v["assertion"].is_null()),
    }
    let rules: Vec<&str> = v["warnings"]
        .as_array()
        .map(|a| a.iter().filter_map(|w| w["rule"].as_str()).collect())
        .unwrap_or_default();
    let want: Vec<&str> = report.warnings.iter().map(|w| w.rule.as_str()).collect();
    prop_assert_eq!(rules, want);
    let output: Vec<&str> = v["output"]
        .as_array()
        .map(|a| a.iter().filter_map(|l| l.as_str()).collect())
        .unwrap_or_default();
    let want: Vec<&str> = report.output.iter().map(String::as_str).collect();
    prop_assert_eq!(output, want);
    Ok(())
}

fn cases() -> u32 {
    std::env::var("KSPIN_PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(48)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn generated_programs_load_run_and_report_deterministically(spec in spec()) {
        let text = render(&spec);
        let program = match machine::load_source("generated.sim", &text) {
            Ok(p) => p,
            Err(e) => {
                return Err(TestCaseError::fail(format!(
                    "generator bug: the checker rejected\n{text}\n{e:?}"
                )));
            }
        };
        let first = run_engine(&program, spec.run_seed);
        let second = run_engine(&program, spec.run_seed);
        let (a, b) = match (serde_json::to_string(&first), serde_json::to_string(&second)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => return Err(TestCaseError::fail(e.to_string())),
        };
        prop_assert!(a == b, "same program and seed, different reports:\n{}", text);
        prop_assert_eq!(first.seed, Some(spec.run_seed));
        check_json_agrees(&first, &a)?;
    }
}

/// The generator can fail: a program that uses an undeclared lock is
/// rejected, so the load assertion above is not vacuous.
#[test]
fn a_broken_program_is_rejected() {
    let spec = Spec {
        cpus: 1,
        header_seed: 1,
        verifier: "standard",
        threads: vec![Thread {
            cpu: None,
            repeat: 1,
            blocks: vec![Block::Print(1)],
        }],
        dpc: Vec::new(),
        isr: Vec::new(),
        interrupt: None,
        run_seed: 1,
    };
    let good = render(&spec);
    assert!(machine::load_source("good.sim", &good).is_ok(), "{good}");
    let bad = good.replace(
        "DbgPrint(",
        "KeAcquireSpinLockAtDpcLevel(&NoSuchLock); DbgPrint(",
    );
    assert!(machine::load_source("bad.sim", &bad).is_err(), "{bad}");
}
