//! The checked, compiled scenario: every name resolved to an index, every
//! routine compiled to stack code the engine interprets one statement at a
//! time. Nothing here refers back to the syntax tree.

use crate::ast::{Arith, BinOp, Expect, ObjKind, ScalarType, UnOp};
use crate::diag::Source;
use crate::kernel::Kr;
use vcpu::{LockId, Nanos};

/// Index of a routine in [`Program::routines`].
pub type RoutineId = u32;
/// Index of a data variable in [`Program::vars`].
pub type VarId = u32;

/// Driver Verifier's options as the header's `verifier` line sets them
/// (contract v2, "`verifier` = Driver Verifier's options"; windows-facts,
/// "Driver Verifier"). `standard` turns every option on, `none` is a retail
/// kernel (nothing here on), and naming any option also turns on the
/// automatic checks, which Driver Verifier runs for every verified driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checks {
    /// The automatic checks: the IRQL rules of the calls (0xC4/0x30, 0x31,
    /// 0x32, 0x40, 0x41, 0x42, 0x111).
    pub automatic: bool,
    /// Deadlock detection: lock ownership by thread, 0xC4/0x1000, 0x1001,
    /// 0x1003, 0x1004, 0x1007, 0x1008, 0x1009, 0x100A.
    pub deadlock_detection: bool,
    /// Force IRQL checking: 0xD1 for pageable data and code at raised IRQL,
    /// 0xC4/0xE1 for pageable locks and objects.
    pub force_irql_checking: bool,
    /// DDI compliance checking: 0xC4/0x20015 (IrqlKeReleaseSpinLock).
    pub ddi_compliance: bool,
}

impl Checks {
    /// `verifier standard;` (the default): every option.
    pub const ALL: Checks = Checks {
        automatic: true,
        deadlock_detection: true,
        force_irql_checking: true,
        ddi_compliance: true,
    };
    /// `verifier none;`: a retail kernel.
    pub const NONE: Checks = Checks {
        automatic: false,
        deadlock_detection: false,
        force_irql_checking: false,
        ddi_compliance: false,
    };
    /// Names accepted by `verifier a, b;`.
    pub const NAMES: &'static [&'static str] = &[
        "standard",
        "none",
        "deadlock_detection",
        "force_irql_checking",
        "ddi_compliance",
    ];
}

/// The declared kind of a lock in the lock table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockKind {
    /// `KSPIN_LOCK` (ordinary or in-stack queued use).
    Spin,
    /// `EX_SPIN_LOCK`.
    Ex,
    /// The spin lock of a `KINTERRUPT` (index into `interrupts`).
    Interrupt(u32),
}

#[derive(Clone, Debug)]
pub struct LockDecl {
    pub name: String,
    pub kind: LockKind,
    pub paged: bool,
    pub address: u64,
    pub line: u32,
}

#[derive(Clone, Debug)]
pub struct InterruptDecl {
    pub name: String,
    pub isr: RoutineId,
    pub irql: u8,
    pub sync_irql: u8,
    pub lock: LockId,
    pub address: u64,
}

#[derive(Clone, Debug)]
pub struct DpcDecl {
    pub name: String,
    pub routine: RoutineId,
    /// Declared `PAGED` (0xC4/0xE1 at first use with force_irql_checking).
    pub paged: bool,
    pub address: u64,
    /// Declared with its routine (`KDPC D(Routine[, Context]);`); a KDPC
    /// in a struct, array or pool block needs `KeInitializeDpc` first.
    pub initialized: bool,
    /// The DeferredContext given at the declaration (a reference, or 0).
    pub context: i64,
    /// The hidden leaf whose reference is the KDPC's address (`&D`).
    pub leaf: Option<VarId>,
    /// That reference (0 until the leaf exists): what the routine's `Dpc`
    /// parameter receives.
    pub reference: i64,
}

/// A kernel object kept in data: a KEVENT, KTIMER, WORK_QUEUE_ITEM or IRP
/// (KDPCs are in [`Program::dpcs`] and listed here too, `index` naming
/// their DPC), found from its hidden leaf through [`Program::object_of`].
#[derive(Clone, Debug)]
pub struct ObjectDecl {
    pub kind: ObjKind,
    /// As reports name it (`Ext.Done`, `Irps[1]`).
    pub name: String,
    pub paged: bool,
    pub address: u64,
    /// The hidden leaf: a reference to it is the object's address.
    pub leaf: VarId,
    /// The object's address as the scenario sees it: the reference `&X`
    /// evaluates to (its variable and lock parts; a field's lock part is
    /// its instance's lock base plus the locks before it).
    pub reference: i64,
    /// For a KDPC, its index in [`Program::dpcs`].
    pub index: u32,
}

/// Offsets of an IRP's field leaves from its object leaf (the built-in
/// `IRP` struct: Type, Cancel, CancelIrql, IoStatus.Status,
/// IoStatus.Information, CancelRoutine, Tail.Overlay...).
pub const IRP_CANCEL: u32 = 1;
/// Activations of one `KEVENT` local declaration that may hold their event
/// at once (recursion or concurrent calls of the routine beyond this is a
/// run-time error).
pub const LOCAL_EVENTS: usize = 16;
pub const IRP_CANCEL_IRQL: u32 = 2;
pub const IRP_STATUS: u32 = 3;
pub const IRP_CANCEL_ROUTINE: u32 = 5;

#[derive(Clone, Debug)]
pub struct ListDecl {
    pub name: String,
    pub paged: bool,
    pub address: u64,
    /// The `Flink` leaf of the head as the entry routines see it.
    pub entry_head: Option<VarId>,
}

#[derive(Clone, Debug)]
pub struct VarDecl {
    pub name: String,
    pub ty: ScalarType,
    pub init: i64,
    pub paged: bool,
    pub guard: Option<LockId>,
    pub address: u64,
}

/// A place an argument refers to (`&name`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    Lock(LockId),
    Interrupt(u32),
    Dpc(u32),
    List(u32),
    Var(VarId),
    /// A local slot of the current frame.
    Local(u16),
    Routine(RoutineId),
    /// A global KLOCK_QUEUE_HANDLE (index into [`Program::handles`]).
    GlobalHandle(u32),
    /// An `ExAllocatePoolWithTag` call site (index into [`Program::pool_sites`]).
    PoolSite(u32),
    /// A lock (`true`) or variable (`false`) reached at run time: its
    /// reference (see [`make_ref`]) is on the operand stack, pushed after
    /// the call's values, in argument order.
    Ref(bool),
    /// A kernel object reached at run time (a pointer value, `&Ext->Done`):
    /// its reference is on the stack like [`Place::Ref`]'s; `nullable`
    /// when NULL is allowed (KeSetTimer's Dpc).
    Obj {
        kind: ObjKind,
        nullable: bool,
    },
    /// A resolved kernel object (index into [`Program::objects`]).
    Object(u32),
    /// A NULL object argument where one is allowed.
    Null,
}

/// Tag bit of a reference: a non-NULL pointer to storage.
pub const REF_TAG: i64 = 1 << 62;

/// A reference to storage: the first variable and the first lock of what
/// it designates (a struct instance, an array, a leaf). Field selection and
/// indexing add to both parts at once.
pub fn make_ref(var: u32, lock: u32) -> i64 {
    REF_TAG | ((lock as i64) << 32) | var as i64
}

/// The (variable, lock) offset pair added to a reference.
pub fn ref_offset(var: u32, lock: u32) -> i64 {
    ((lock as i64) << 32) | var as i64
}

/// The variable a reference designates.
pub fn ref_var(r: i64) -> VarId {
    (r & 0xFFFF_FFFF) as u32
}

/// The lock a reference designates.
pub fn ref_lock(r: i64) -> LockId {
    LockId(((r >> 32) & 0x3FFF_FFFF) as u32)
}

/// A kernel call: places are resolved at compile time, values are popped.
#[derive(Clone, Debug)]
pub struct KernelCall {
    pub kr: Kr,
    pub places: Vec<Place>,
    /// How many values to pop from the operand stack (in argument order).
    pub values: u8,
    /// DbgPrint's format, or ASSERT's expression text.
    pub text: Option<String>,
    /// Whether the result is used (pushed) or discarded.
    pub push_result: bool,
}

/// One instruction.
#[derive(Clone, Debug)]
pub enum Op {
    /// Statement boundary at a source line: a safe point that costs time.
    Stmt(u32),
    Push(i64),
    Load(u16),
    Store(u16, ScalarType),
    LoadVar(VarId),
    StoreVar(VarId),
    /// A unary operator on an operand of the given arithmetic type.
    Unary(UnOp, Arith),
    /// A binary operator whose operands convert to the given type first.
    Binary(BinOp, Arith),
    Cast(ScalarType),
    /// Turn any non-zero into 1.
    Bool,
    Jump(u32),
    JumpIfFalse(u32),
    Pop,
    Call {
        routine: RoutineId,
        args: u8,
        push_result: bool,
    },
    Kernel(Box<KernelCall>),
    /// Return; pops a value when the routine returns one.
    Return(bool),
    /// Enter `__try`; the handler starts at the target.
    TryEnter(u32),
    TryExit,
    /// Duplicate the top of the operand stack.
    Dup,
    /// Add an offset to the reference on top of the stack; with `deref`,
    /// the reference came from a pointer and NULL faults (0xD1 at
    /// IRQL >= DISPATCH_LEVEL, else STATUS_ACCESS_VIOLATION).
    AddRef {
        offset: i64,
        deref: bool,
    },
    /// Pop an index and a reference to an array of `len` elements, each
    /// `stride` (a [`ref_offset`]) apart: the element's reference; an index
    /// out of range ends the run in `assertion_failed`.
    Index {
        len: u64,
        stride: i64,
    },
    /// Pop an index and a reference to an element (`p[i]` on a pointer):
    /// the reference `i` elements of `vars` variables and `locks` locks
    /// further, within the array the element belongs to (see
    /// [`Program::arrays`]; an object outside arrays is an array of one);
    /// out of range ends the run in `assertion_failed`.
    IndexPtr {
        vars: u32,
        locks: u32,
    },
    /// Pop a reference, push the variable's value (as `LoadVar`).
    LoadRef,
    /// Take a free event of local-object site `site` for this activation
    /// (released when the routine returns) and store its reference in
    /// local `slot`.
    AllocLocalEvent {
        site: u32,
        slot: u16,
    },
    /// Pop a value, then a reference; store (as `StoreVar`).
    StoreRef,
}

/// A compiled routine (thread bodies are routines too).
#[derive(Clone, Debug)]
pub struct Code {
    pub name: String,
    pub params: u16,
    /// Types of every local slot (parameters first); `None` = queue handle.
    pub slots: Vec<Option<ScalarType>>,
    pub ops: Vec<Op>,
    pub paged: bool,
    /// The file it is written in: 0 the scenario, else an `#include`d one
    /// (`Program::files[file - 1]`); its lines count from that file's start.
    pub file: u32,
    pub returns: bool,
    /// The declared scalar return type: the returned value converts to it.
    pub ret: Option<ScalarType>,
    pub address: u64,
    pub line: u32,
}

/// An `ExAllocatePoolWithTag(Type, sizeof(T), Tag)` call site: the blocks
/// of type `T` it hands out, in order (each a reference, see [`make_ref`]),
/// made at check time; a block is never handed out twice.
#[derive(Clone, Debug)]
pub struct PoolSite {
    /// The struct type of its blocks.
    pub ty: String,
    /// Source line of the call.
    pub line: u32,
    /// Each block: its reference, its variables and its locks.
    pub blocks: Vec<(i64, std::ops::Range<u32>, std::ops::Range<u32>)>,
}

/// An array in data (global, in a struct, in a pool block): where its
/// element 0 starts and how many variables and locks each element has.
#[derive(Clone, Debug)]
pub struct ArrayDecl {
    pub var: VarId,
    pub lock: u32,
    pub len: u64,
    pub vars: u32,
    pub locks: u32,
}

impl Program {
    /// `file:line` of a line of routine `routine` (in the scenario or the
    /// header it is written in); `scenario` is the scenario's name as given.
    pub fn location(&self, scenario: &str, routine: RoutineId, line: u32) -> String {
        format!("{}:{line}", self.file_of(scenario, routine))
    }

    /// The file routine `routine` is written in: `scenario`, or the
    /// included file's name.
    pub fn file_of<'a>(&'a self, scenario: &'a str, routine: RoutineId) -> &'a str {
        self.routines
            .get(routine as usize)
            .and_then(|c| c.file.checked_sub(1))
            .and_then(|f| self.files.get(f as usize))
            .map_or(scenario, String::as_str)
    }

    /// The included file routine `routine` is written in, if it is in one.
    pub fn header_of(&self, routine: RoutineId) -> Option<String> {
        let c = self.routines.get(routine as usize)?;
        self.files.get(c.file.checked_sub(1)? as usize).cloned()
    }
}

/// A `thread` line.
#[derive(Clone, Debug)]
pub struct ThreadSpec {
    pub name: String,
    pub cpu: Option<u32>,
    pub repeat: u32,
    pub routine: RoutineId,
}

/// An `interrupt` line.
#[derive(Clone, Debug)]
pub struct InterruptLineSpec {
    pub interrupt: u32,
    pub cpu: u32,
    pub at: Nanos,
    pub every: Option<Nanos>,
    pub count: Option<u64>,
}

/// A checked scenario.
#[derive(Clone, Debug)]
pub struct Program {
    pub source: Source,
    pub name: String,
    pub title: Option<String>,
    pub cpus: u32,
    pub seed: u64,
    pub checks: Checks,
    /// DPC watchdog, cumulative limit (contract v2, header `watchdog`).
    pub watchdog: Nanos,
    /// Limit of one DPC or ISR (header `dpc_timeout`, default `watchdog`).
    pub dpc_timeout: Nanos,
    /// Period of the clock interrupt (header `clock`, default 1 ms).
    pub clock: Nanos,
    pub duration: Option<Nanos>,
    /// Expectations with their text as written.
    pub expects: Vec<(Expect, String)>,
    pub locks: Vec<LockDecl>,
    pub interrupts: Vec<InterruptDecl>,
    pub dpcs: Vec<DpcDecl>,
    pub lists: Vec<ListDecl>,
    pub vars: Vec<VarDecl>,
    pub routines: Vec<Code>,
    pub threads: Vec<ThreadSpec>,
    pub interrupt_lines: Vec<InterruptLineSpec>,
    /// Global KLOCK_QUEUE_HANDLEs, by name.
    pub handles: Vec<String>,
    /// The `ExAllocatePoolWithTag` call sites and the blocks each can hand out.
    pub pool_sites: Vec<PoolSite>,
    /// The `#include`d files as reports name them: relative to the
    /// scenario's directory (`include/adapter.h`), in order (file 1, 2, ...).
    pub files: Vec<String>,
    /// Every array in data, in declaration order (for `p[i]` on a pointer).
    pub arrays: Vec<ArrayDecl>,
    /// Kernel objects kept in data (contract v2, "Kernel objects").
    pub objects: Vec<ObjectDecl>,
    /// The object (index into `objects`) whose hidden leaf is a variable.
    pub object_of: std::collections::BTreeMap<VarId, u32>,
    /// `KEVENT` locals: per declaration, the events (indexes into
    /// `objects`) its activations take, [`LOCAL_EVENTS`] of them.
    pub local_events: Vec<Vec<u32>>,
    /// The system cancel spin lock `IoCancelSpinLock`, declared when the
    /// file uses the cancel routines.
    pub cancel_lock: Option<LockId>,
    /// `DriverEntry`, if defined: run to completion on processor 0 at
    /// PASSIVE_LEVEL before virtual time 0 (contract v2, "DriverEntry").
    pub driver_entry: Option<RoutineId>,
    /// Check-time warnings: accepted, but probably not what was meant (an
    /// interrupt line without `at` fires at time 0). Shown on standard
    /// error by the command line; never part of a run report.
    pub warnings: Vec<crate::SimError>,
}
