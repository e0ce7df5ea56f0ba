//! The syntax tree of a `.sim` file, exactly as written (names unresolved).
//! Every node carries the byte span it came from, so the checker and the
//! runtime can point at the source.

/// A byte range in the source file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Span {
    pub offset: usize,
    pub len: usize,
}

impl Span {
    pub fn new(offset: usize, len: usize) -> Self {
        Span { offset, len }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        let start = self.offset.min(other.offset);
        let end = (self.offset + self.len).max(other.offset + other.len);
        Span::new(start, end - start)
    }
}

impl From<Span> for miette::SourceSpan {
    fn from(s: Span) -> Self {
        (s.offset, s.len).into()
    }
}

/// A name as written, with where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A value with the span it was written at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

/// A whole `.sim` file.
#[derive(Clone, Debug, PartialEq)]
pub struct File {
    pub header: Header,
    pub items: Vec<Item>,
}

/// The `scenario "name" { ... }` block.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    pub name: Spanned<String>,
    pub entries: Vec<HeaderEntry>,
    pub span: Span,
}

/// One `key value;` line of the header. Durations are in nanoseconds.
#[derive(Clone, Debug, PartialEq)]
pub enum HeaderEntry {
    Title(Spanned<String>),
    Cpus(Spanned<u64>),
    Seed(Spanned<u64>),
    /// `verifier standard;`, `verifier none;` or a comma list of check names.
    Verifier(Vec<Ident>),
    Watchdog(Spanned<u64>),
    /// `dpc_timeout D;` (contract v2).
    DpcTimeout(Spanned<u64>),
    /// `clock D;` (contract v2).
    Clock(Spanned<u64>),
    Duration(Spanned<u64>),
    Expect(Spanned<Expect>),
}

/// An `expect ...;` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    Clean,
    AssertionFailed,
    /// `expect warning RULE;`
    Warning(Ident),
    /// `expect bugcheck NAME;`
    BugcheckName(Ident),
    /// `expect bugcheck 0xC4(0x1001);` or `expect bugcheck 0x10;`
    BugcheckCode {
        code: u64,
        param1: Option<u64>,
    },
    /// `expect any { item; item; }` (contract v2, "Expectations"): one of
    /// the items holds.
    Any(Vec<Expect>),
}

/// A top-level item.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    // Boxed: a file may hold 100,000 items, and the list of them should
    // cost a pointer each, not the size of the largest declaration.
    Global(Box<GlobalDecl>),
    Routine(Box<Routine>),
    Thread(Box<ThreadDecl>),
    Interrupt(Box<InterruptLine>),
    /// `enum [TAG] { A = 1, B, ... };` (also inside a `typedef`): its
    /// enumerators, integer constants of type `LONG`.
    Enum(Box<EnumDecl>),
    /// `typedef struct [TAG] { ... } NAME, *PNAME;`
    Struct(Box<StructDef>),
}

/// A struct type: its (typedef) name and fields.
#[derive(Clone, Debug, PartialEq)]
pub struct StructDef {
    pub name: String,
    /// The pointer names the `typedef` declares (`*PX`).
    pub pointer_names: Vec<String>,
    /// `struct TAG`, if the struct has a tag.
    pub tag: Option<String>,
    pub fields: Vec<FieldDecl>,
    pub span: Span,
}

/// One field of a struct.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldDecl {
    /// `_Guarded_by_(F)`: a lock field of the same struct, or a global lock.
    pub guarded_by: Option<Ident>,
    pub ty: FieldType,
    pub name: Ident,
    /// `[N]`: a fixed array of N elements.
    pub array: Option<u64>,
}

/// The type of a struct field or of an aggregate global's elements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldType {
    Scalar(ScalarType),
    KSpinLock,
    ExSpinLock,
    /// `LIST_ENTRY`: two pointer leaves, `Flink` and `Blink`.
    ListEntry,
    /// `KLOCK_QUEUE_HANDLE`: one hidden leaf the engine keeps the handle for.
    QueueHandle,
    /// A pointer, by its type as written (`PJOB`, `struct _JOB *`,
    /// `JOB *`, `PVOID`): one 64-bit leaf.
    Pointer(String),
    /// A struct type, by name.
    Struct(String),
    /// A kernel object kept in data (`KDPC`, `KEVENT`, `KTIMER`,
    /// `WORK_QUEUE_ITEM`; an `IRP`'s own object): one hidden leaf whose
    /// reference is the object's address (contract v2, "Kernel objects").
    Object(ObjKind),
}

/// The kernel objects a scenario keeps in data (contract v2, "Kernel
/// objects (v2, language)").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjKind {
    /// `KDPC`.
    Dpc,
    /// `KEVENT`.
    Event,
    /// `KTIMER`.
    Timer,
    /// `WORK_QUEUE_ITEM`.
    WorkItem,
    /// `IRP` (the hidden first field of the built-in `IRP` struct).
    Irp,
}

impl ObjKind {
    /// The WDK type name.
    pub fn name(self) -> &'static str {
        match self {
            ObjKind::Dpc => "KDPC",
            ObjKind::Event => "KEVENT",
            ObjKind::Timer => "KTIMER",
            ObjKind::WorkItem => "WORK_QUEUE_ITEM",
            ObjKind::Irp => "IRP",
        }
    }

    /// The name with its indefinite article (`a KEVENT`, `an IRP`).
    pub fn with_article(self) -> String {
        let n = self.name();
        let an = matches!(n.as_bytes()[0], b'A' | b'E' | b'I' | b'O' | b'U');
        format!("{} {n}", if an { "an" } else { "a" })
    }

    /// `sizeof` the object on x64 (windows-facts, "x64 sizes"); an IRP's
    /// hidden leaf is its 8-byte header (the struct pads to 208).
    pub fn size(self) -> u64 {
        match self {
            ObjKind::Dpc | ObjKind::Timer => 64,
            ObjKind::Event => 24,
            ObjKind::WorkItem => 32,
            ObjKind::Irp => 8,
        }
    }
}

/// The enumerators of an `enum`, in order: a name and its `= value`, if given.
#[derive(Clone, Debug, PartialEq)]
pub struct EnumDecl {
    pub enumerators: Vec<(Ident, Option<Expr>)>,
    pub span: Span,
}

/// A global object or data declaration.
///
/// A file may hold 100,000 of these, nearly all plain data: what only some
/// declarations have (a guard, an initial value, an interrupt's
/// expressions) is boxed, so a declaration stays small (see the test
/// `global_declarations_stay_small`).
#[derive(Clone, Debug, PartialEq)]
pub struct GlobalDecl {
    /// `PAGED` prefix.
    pub paged: bool,
    /// `_Guarded_by_(L)` prefix.
    pub guarded_by: Option<Box<Ident>>,
    pub ty: GlobalType,
    pub name: Ident,
    /// `= expr` for data.
    pub init: Option<Box<Expr>>,
    pub span: Span,
}

/// The type of a global (expressions boxed: see [`GlobalDecl`]).
#[derive(Clone, Debug, PartialEq)]
pub enum GlobalType {
    KSpinLock,
    ExSpinLock,
    /// `KINTERRUPT I(Isr, Irql[, SynchronizeIrql[, &SpinLock]]);`
    KInterrupt {
        isr: Ident,
        irql: Box<Expr>,
        sync_irql: Option<Box<Expr>>,
        /// A global `KSPIN_LOCK` shared as the interrupt spin lock of every
        /// KINTERRUPT that names it (IoConnectInterrupt's SpinLock).
        spin_lock: Option<Box<Ident>>,
    },
    /// `KDPC D(Routine[, DeferredContext]);`
    KDpc {
        routine: Ident,
        context: Option<Box<Expr>>,
    },
    ListEntry,
    /// `KLOCK_QUEUE_HANDLE H;` at file scope (shared by its users).
    QueueHandle,
    Scalar(Spanned<ScalarType>),
    /// A struct, or an array (`[N]`) of any field type: stored as one
    /// named leaf per scalar and lock (`Devices[1].Lock`).
    Aggregate {
        ty: FieldType,
        array: Option<u64>,
    },
}

/// Integer-like types of data, locals and parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScalarType {
    /// `ULONG`: 32-bit unsigned.
    Ulong,
    /// `LONG`, `NTSTATUS`, enum types: 32-bit signed.
    Long,
    /// `BOOLEAN`: 8-bit unsigned.
    Boolean,
    /// `KIRQL`: 8-bit unsigned.
    Kirql,
    /// `UCHAR`: 8-bit unsigned.
    Uchar,
    /// `CCHAR`: 8-bit signed.
    Char,
    /// `USHORT`: 16-bit unsigned.
    Ushort,
    /// `ULONG64`, `ULONGLONG`, `ULONG_PTR`, `SIZE_T`: 64-bit unsigned.
    Ulong64,
    /// `LONG64`, `LONGLONG`: 64-bit signed.
    Long64,
}

/// The type C arithmetic is done in after the integer promotions and the
/// usual arithmetic conversions (x64 Windows: `long` is 32-bit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arith {
    /// `int`: 32-bit signed.
    I32,
    /// `unsigned int`: 32-bit unsigned.
    U32,
    /// `long long`: 64-bit signed.
    I64,
    /// `unsigned long long`: 64-bit unsigned.
    U64,
}

impl Arith {
    /// The integer promotion of a scalar type.
    pub fn of(t: ScalarType) -> Arith {
        match t {
            ScalarType::Ulong => Arith::U32,
            ScalarType::Ulong64 => Arith::U64,
            ScalarType::Long64 => Arith::I64,
            _ => Arith::I32,
        }
    }

    /// C's usual arithmetic conversions of two promoted operands.
    pub fn common(a: Arith, b: Arith) -> Arith {
        use Arith::*;
        match (a, b) {
            (U64, _) | (_, U64) => U64,
            (I64, _) | (_, I64) => I64,
            (U32, _) | (_, U32) => U32,
            _ => I32,
        }
    }

    /// The scalar type that holds values of this arithmetic type.
    pub fn scalar(self) -> ScalarType {
        match self {
            Arith::I32 => ScalarType::Long,
            Arith::U32 => ScalarType::Ulong,
            Arith::I64 => ScalarType::Long64,
            Arith::U64 => ScalarType::Ulong64,
        }
    }
}

impl ScalarType {
    /// The WDK name of the type.
    pub fn name(self) -> &'static str {
        match self {
            ScalarType::Ulong => "ULONG",
            ScalarType::Long => "LONG",
            ScalarType::Boolean => "BOOLEAN",
            ScalarType::Kirql => "KIRQL",
            ScalarType::Uchar => "UCHAR",
            ScalarType::Char => "CCHAR",
            ScalarType::Ushort => "USHORT",
            ScalarType::Ulong64 => "ULONG64",
            ScalarType::Long64 => "LONG64",
        }
    }

    /// `sizeof` the type in bytes.
    pub fn size(self) -> u64 {
        match self {
            ScalarType::Boolean | ScalarType::Kirql | ScalarType::Uchar | ScalarType::Char => 1,
            ScalarType::Ushort => 2,
            ScalarType::Ulong | ScalarType::Long => 4,
            ScalarType::Ulong64 | ScalarType::Long64 => 8,
        }
    }
}

/// Types of locals, parameters and return values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Type {
    Void,
    Scalar(ScalarType),
    /// `KLOCK_QUEUE_HANDLE` (locals only).
    QueueHandle,
    /// `PKINTERRUPT`, `PVOID`, `PKDPC`, ... (WDK parameter lists; receive NULL).
    Pointer(String),
    /// A struct type, by name (locals only: one local per leaf).
    Struct(String),
    /// A `KEVENT` local: an event of the routine's activation.
    Event,
}

/// A routine definition.
#[derive(Clone, Debug, PartialEq)]
pub struct Routine {
    pub paged: bool,
    pub ret: Spanned<Type>,
    pub name: Ident,
    pub params: Vec<Param>,
    pub body: Block,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub ty: Spanned<Type>,
    pub name: Ident,
}

/// `thread Name [on cpu N] [repeat K] { ... }`
#[derive(Clone, Debug, PartialEq)]
pub struct ThreadDecl {
    pub name: Ident,
    pub cpu: Option<Spanned<u64>>,
    pub repeat: Option<Spanned<u64>>,
    pub body: Block,
    pub span: Span,
}

/// `interrupt I on cpu N [at D] [every D] [count K];` (durations in ns)
#[derive(Clone, Debug, PartialEq)]
pub struct InterruptLine {
    pub interrupt: Ident,
    pub cpu: Spanned<u64>,
    pub at: Option<Spanned<u64>>,
    pub every: Option<Spanned<u64>>,
    pub count: Option<Spanned<u64>>,
    pub span: Span,
}

/// `{ statements }`
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    pub stmts: Vec<Stmt>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Stmt {
    pub kind: StmtKind,
    pub span: Span,
}

/// `=` or a compound assignment (`+=`, `<<=`, ...: the binary operator).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssignOp {
    Set,
    /// `op=`: `x = x op value`.
    Compound(BinOp),
}

#[derive(Clone, Debug, PartialEq)]
pub enum StmtKind {
    /// `KIRQL a, b = 1;`
    Decl {
        ty: Spanned<Type>,
        vars: Vec<(Ident, Option<Expr>)>,
    },
    Assign {
        target: Ident,
        op: AssignOp,
        value: Expr,
    },
    /// `x++`, `++x`, `x--`, `--x`
    IncDec {
        target: Ident,
        increment: bool,
    },
    /// An assignment to a field, an element or through a pointer.
    AssignPlace {
        target: Expr,
        op: AssignOp,
        value: Expr,
    },
    /// `++`/`--` of a field, an element or through a pointer.
    IncDecPlace {
        target: Expr,
        increment: bool,
    },
    If {
        cond: Expr,
        then: Box<Stmt>,
        els: Option<Box<Stmt>>,
    },
    While {
        cond: Expr,
        body: Box<Stmt>,
    },
    /// `do body while (cond);`
    DoWhile {
        body: Box<Stmt>,
        cond: Expr,
    },
    /// `switch (value) { case K: ... default: ... }`: the statements of
    /// every arm in order (C fall-through), each arm's labels first.
    Switch {
        value: Expr,
        arms: Vec<SwitchArm>,
    },
    For {
        init: Option<Box<Stmt>>,
        cond: Option<Expr>,
        step: Option<Box<Stmt>>,
        body: Box<Stmt>,
    },
    Break,
    Continue,
    Return(Option<Expr>),
    /// An expression statement (in practice a call).
    Expr(Expr),
    Block(Block),
    /// `__try { } __except (filter) { }`
    Try {
        body: Block,
        filter: Expr,
        handler: Block,
    },
    /// `;`
    Empty,
}

/// One run of `case K:` / `default:` labels and the statements after them.
#[derive(Clone, Debug, PartialEq)]
pub struct SwitchArm {
    /// The labels: `Some(K)` for `case K:`, `None` for `default:`.
    pub labels: Vec<(Option<Expr>, Span)>,
    pub stmts: Vec<Stmt>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnOp {
    Neg,
    Not,
    BitNot,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Shl,
    Shr,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    BitAnd,
    BitOr,
    BitXor,
    And,
    Or,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// An unsuffixed decimal literal (`LONG`, or `LONG64` when larger).
    Int(i64),
    /// A literal whose type is given: hexadecimal, suffixed (`U`, `UL`,
    /// `ULL`) or a character constant (`'kspn'`); also `sizeof(T)`.
    Typed(i64, ScalarType),
    Str(String),
    /// A name: variable, constant (`TRUE`, `DISPATCH_LEVEL`, ...) or routine.
    Name(Ident),
    /// `&name`
    AddrOf(Ident),
    /// `&lvalue` of a field, element or `p->f`.
    AddrOfPlace(Box<Expr>),
    /// `s.f` (`arrow` false) or `p->f` (`arrow` true).
    Member {
        base: Box<Expr>,
        field: Ident,
        arrow: bool,
    },
    /// `a[i]`
    Index(Box<Expr>, Box<Expr>),
    /// `*p`
    Deref(Box<Expr>),
    /// `sizeof(T)` of a struct type: its name and size in bytes.
    SizeOf(Ident, u64),
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `c ? a : b`
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
    /// `(ULONG)x`
    Cast(ScalarType, Box<Expr>),
    Call {
        callee: Ident,
        args: Vec<Expr>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requirement R (a flat front end): a 100,000-global file holds
    /// 100,000 of these, and their size is most of its memory. A new kind
    /// of global whose payload is larger boxes it, as `KInterrupt` does.
    #[test]
    fn global_declarations_stay_small() {
        assert!(std::mem::size_of::<GlobalType>() <= 64);
        assert!(std::mem::size_of::<GlobalDecl>() <= 144);
    }
}
