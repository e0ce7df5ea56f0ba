//! The checker: resolves every name, checks types, argument counts and lock
//! kinds, validates the header, and compiles routines to [`Op`] code.
//! Every error carries the span of the offending text and, where one
//! exists, a suggestion; the file is rejected before anything runs.

// A rejection is the cold path (one per file); boxing every error would only add noise.
#![allow(clippy::result_large_err)]

use crate::ast::{
    self, Arith, BinOp, Expr, ExprKind, HeaderEntry, Ident, Item, ScalarType, Span, Stmt, StmtKind,
    Type,
};
use crate::dbgprint;
use crate::diag::{did_you_mean, SimError, Source};
use crate::kernel::{self, Kr, Sig, P};
use crate::names::{NameMap, NameSet};
use crate::program::*;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use vcpu::bugcheck::code_of_name;
use vcpu::LockId;

/// Warning rules an `expect warning` line may name.
pub const WARNING_RULES: &[&str] = &[
    "HOLD_TIME_EXCEEDED",
    "ISR_TOO_LONG",
    "DPC_TOO_LONG",
    "UNGUARDED_ACCESS",
    "TIME_LIMIT_REACHED",
    "ISR_LOCK_INVERSION",
    "EXCEPTION_UNDER_SPIN_LOCK",
    "LOCK_HELD_AT_RETURN",
    "IRQL_LOWERED_WHILE_HOLDING",
    "STALL_TOO_LONG",
];

const NONPAGED_BASE: u64 = 0xFFFF_F806_1A00_0000;
const PAGED_BASE: u64 = 0xFFFF_A000_0400_0000;
const CODE_BASE: u64 = 0xFFFF_F806_1B00_0000;
const PAGED_CODE_BASE: u64 = 0xFFFF_F806_1C00_0000;
const MAX_SLOTS: usize = 4096;
/// Longest `duration` (virtual time) a run may ask for.
const MAX_DURATION_NS: u64 = 1_000_000_000;
/// Shortest period of a periodic interrupt line.
const MIN_INTERRUPT_PERIOD_NS: u64 = 1_000;
/// Most errors reported for one file; the checker stops collecting there.
pub const MAX_ERRORS: usize = 20;

/// What a global name refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Global {
    Lock(LockId),
    Interrupt(u32),
    Dpc(u32),
    List(u32),
    Var(VarId),
    Routine(RoutineId),
    /// A global KLOCK_QUEUE_HANDLE.
    Handle(u32),
}

fn kind_name(g: Global, prog: &Program) -> &'static str {
    match g {
        Global::Lock(l) => match prog.locks[l.0 as usize].kind {
            LockKind::Spin => "a KSPIN_LOCK",
            LockKind::Ex => "an EX_SPIN_LOCK",
            LockKind::Interrupt(_) => "the interrupt spin lock that KINTERRUPTs share",
        },
        Global::Interrupt(_) => "a KINTERRUPT",
        Global::Dpc(_) => "a KDPC",
        Global::List(_) => "a LIST_ENTRY",
        Global::Var(_) => "a data variable",
        Global::Routine(_) => "a routine",
        Global::Handle(_) => "a KLOCK_QUEUE_HANDLE",
    }
}

/// The KINTERRUPTs whose interrupt spin lock is `lock`: "`A`, `B` and `C`".
fn sharer_list(prog: &Program, lock: LockId) -> String {
    let names: Vec<String> = prog
        .interrupts
        .iter()
        .filter(|d| d.lock == lock)
        .map(|d| format!("`{}`", d.name))
        .collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => names.join(""),
    }
}

type R<T> = Result<T, SimError>;

struct Checker<'a> {
    src: &'a Source,
    /// File-scope names (hashed: a file may declare 100,000 of them).
    globals: NameMap<(Global, Span)>,
    /// Each routine's prototype, by routine id (no second name lookup per
    /// definition or call: a file may define 100,000 routines).
    protos: Vec<Proto>,
    /// Enumerators declared so far, with their values.
    consts: HashMap<String, (i64, Span)>,
    /// Struct types by name.
    structs: HashMap<String, ast::StructDef>,
    /// `ExAllocatePoolWithTag` call sites by the offset of the call's name.
    pool_site_of: HashMap<usize, u32>,
    /// `KEVENT` local declarations (by the byte offset of the local's
    /// name): their index in `Program::local_events`.
    local_event_of: HashMap<usize, u32>,
    /// Struct pointer names (`PDEVICE`) and the struct they point to.
    pointers: HashMap<String, String>,
    /// Aggregate globals: element type, array length, first variable and
    /// first lock of their leaves.
    aggregates: HashMap<String, (ast::FieldType, Option<u64>, u32, u32)>,
    /// Guards naming a global lock, resolved once every global is declared:
    /// the guarded data and the lock's name.
    pending_guards: Vec<(Vec<VarId>, Ident)>,
    /// Names of the threads declared so far.
    thread_names: NameSet,
    prog: Program,
    /// Errors recorded so far (independent ones: after each, checking goes
    /// on with the next header entry, declaration, statement or workload
    /// item).
    errors: RefCell<Vec<SimError>>,
    /// Global list heads used so far with version 1 integers (`false`) or
    /// with LIST_ENTRY entries (`true`), and where first: one head takes
    /// one form (contract v2, a check error otherwise).
    list_forms: RefCell<HashMap<u32, (bool, Span)>>,
}

/// Check a parsed file and compile it.
///
/// # Errors
/// Every independent error found (at most [`MAX_ERRORS`]), in the order the
/// checker met them: header, declarations, routines, workload. A statement
/// with an error is abandoned at its first one (a misspelt name gives no
/// follow-on type errors) and checking goes on with the next statement; a
/// local whose declaration failed is still declared, so later uses of it
/// are not reported as undeclared.
pub fn check(src: &Source, file: &ast::File) -> Result<Program, Vec<SimError>> {
    let mut c = Checker {
        src,
        globals: NameMap::new(),
        protos: Vec::new(),
        consts: HashMap::new(),
        structs: HashMap::new(),
        pool_site_of: HashMap::new(),
        local_event_of: HashMap::new(),
        pointers: HashMap::new(),
        aggregates: HashMap::new(),
        pending_guards: vec![],
        thread_names: NameSet::new(),
        prog: Program {
            source: src.clone(),
            name: file.header.name.value.clone(),
            title: None,
            cpus: 0,
            seed: 1,
            checks: Checks::ALL,
            watchdog: 10_000_000,
            dpc_timeout: 0,
            clock: 1_000_000,
            duration: None,
            expects: vec![],
            locks: vec![],
            interrupts: vec![],
            dpcs: vec![],
            lists: vec![],
            vars: vec![],
            routines: vec![],
            threads: vec![],
            interrupt_lines: vec![],
            handles: vec![],
            pool_sites: vec![],
            files: {
                let dir = std::path::Path::new(&src.name)
                    .parent()
                    .map(std::path::Path::to_path_buf)
                    .unwrap_or_default();
                src.included_files()
                    .map(|n| {
                        let p = std::path::Path::new(n);
                        p.strip_prefix(&dir).unwrap_or(p).display().to_string()
                    })
                    .collect()
            },
            arrays: vec![],
            objects: vec![],
            object_of: Default::default(),
            local_events: vec![],
            cancel_lock: None,
            driver_entry: None,
            warnings: vec![],
        },
        errors: RefCell::new(vec![]),
        list_forms: RefCell::new(HashMap::new()),
    };
    c.run(file);
    let mut errors = c.errors.into_inner();
    if errors.is_empty() {
        Ok(c.prog)
    } else {
        errors.truncate(MAX_ERRORS);
        Err(errors)
    }
}

impl<'a> Checker<'a> {
    fn err(&self, span: Span, msg: impl Into<String>) -> SimError {
        SimError::new(self.src, span, msg)
    }

    fn line(&self, span: Span) -> u32 {
        self.src.line_col(span.offset).0
    }

    /// Keep an error and go on checking (up to [`MAX_ERRORS`]).
    fn record(&self, e: SimError) {
        let mut errors = self.errors.borrow_mut();
        if errors.len() < MAX_ERRORS {
            errors.push(e);
        }
    }

    /// Record the error of `r`, if any.
    fn keep(&self, r: R<()>) {
        if let Err(e) = r {
            self.record(e);
        }
    }

    fn error_count(&self) -> usize {
        self.errors.borrow().len()
    }

    fn run(&mut self, file: &ast::File) {
        self.header(&file.header);
        self.declare(file);
        self.resolve_globals(file);
        // Compile routines in declaration order (ids were assigned in declare).
        for item in &file.items {
            if let Item::Routine(r) = item {
                let id = match self.globals.get(&r.name.name) {
                    Some((Global::Routine(id), _)) => *id,
                    _ => continue,
                };
                let mut code = self.compile_routine(r);
                code.address = self.prog.routines[id as usize].address;
                self.prog.routines[id as usize] = code;
            }
        }
        if let Some((Global::Routine(id), span)) = self.globals.get("DriverEntry").cloned() {
            if self.routine_arity("DriverEntry") == 0 {
                self.prog.driver_entry = Some(id);
            } else {
                self.record(
                    self.err(span, "`DriverEntry` takes no parameters here")
                        .help("declare it `NTSTATUS DriverEntry(VOID)`"),
                );
            }
        }
        for item in &file.items {
            let r = match item {
                Item::Thread(t) => self.thread(t),
                Item::Interrupt(i) => self.interrupt_line(i),
                _ => Ok(()),
            };
            self.keep(r);
        }
        // A workload item that failed to check is not a missing workload.
        let declared = file
            .items
            .iter()
            .any(|i| matches!(i, Item::Thread(_) | Item::Interrupt(_)));
        if !declared && self.prog.threads.is_empty() && self.prog.interrupt_lines.is_empty() {
            self.record(self
                .err(file.header.name.span, "the scenario has no workload")
                .help("add a `thread Name on cpu 0 { ... }` or an `interrupt I on cpu 0 at 1us;` line"));
        }
    }

    // ----- header -------------------------------------------------------

    fn header(&mut self, h: &ast::Header) {
        let mut seen: BTreeMap<&'static str, Span> = BTreeMap::new();
        let mut cpus = None;
        for e in &h.entries {
            let r = self.header_entry(e, &mut seen, &mut cpus);
            self.keep(r);
        }
        if self.prog.dpc_timeout == 0 {
            self.prog.dpc_timeout = self.prog.watchdog;
        }
        match cpus {
            Some(n) => self.prog.cpus = n,
            None => {
                // Given but out of range (already reported): the count is
                // unknown, so `on cpu N` is only held to the 64-processor
                // limit (see `cpu`), and no count is invented.
                self.prog.cpus = 0;
                if !seen.contains_key("cpus") {
                    self.record(
                        self.err(h.name.span, "the scenario header has no `cpus` line")
                            .label("this scenario")
                            .help("add `cpus 2;` (1 to 64 virtual processors) to the header"),
                    );
                }
            }
        }
    }

    /// One header entry; `seen` holds the keys met so far.
    fn header_entry(
        &mut self,
        e: &HeaderEntry,
        seen: &mut BTreeMap<&'static str, Span>,
        cpus: &mut Option<u32>,
    ) -> R<()> {
        let mut once = |key: &'static str, span: Span, me: &Self| -> R<()> {
            if let Some(prev) = seen.insert(key, span) {
                let (l, _) = me.src.line_col(prev.offset);
                return Err(me
                    .err(span, format!("`{key}` is given twice in the header"))
                    .help(format!("the first is at line {l}")));
            }
            Ok(())
        };
        {
            match e {
                HeaderEntry::Title(t) => {
                    once("title", t.span, self)?;
                    self.prog.title = Some(t.value.clone());
                }
                HeaderEntry::Cpus(n) => {
                    once("cpus", n.span, self)?;
                    if !(1..=64).contains(&n.value) {
                        return Err(self
                            .err(n.span, format!("`cpus {}` is out of range", n.value))
                            .help("a scenario has 1 to 64 virtual processors"));
                    }
                    *cpus = Some(n.value as u32);
                }
                HeaderEntry::Seed(n) => {
                    once("seed", n.span, self)?;
                    self.prog.seed = n.value;
                }
                HeaderEntry::Verifier(names) => {
                    if let Some(first) = names.first() {
                        once("verifier", first.span, self)?;
                    }
                    self.prog.checks = self.verifier(names);
                }
                HeaderEntry::Watchdog(d) => {
                    once("watchdog", d.span, self)?;
                    if d.value == 0 {
                        return Err(self.err(d.span, "the watchdog period must be positive"));
                    }
                    self.prog.watchdog = d.value;
                }
                HeaderEntry::DpcTimeout(d) => {
                    once("dpc_timeout", d.span, self)?;
                    if d.value == 0 {
                        return Err(self.err(d.span, "the DPC timeout must be positive"));
                    }
                    self.prog.dpc_timeout = d.value;
                }
                HeaderEntry::Clock(d) => {
                    once("clock", d.span, self)?;
                    if d.value < 10_000 {
                        return Err(self
                            .err(d.span, "the clock period must be at least 10us")
                            .help("the clock interrupt comes every `clock`; Windows' is about 1ms to 15.6ms"));
                    }
                    self.prog.clock = d.value;
                }
                HeaderEntry::Duration(d) => {
                    once("duration", d.span, self)?;
                    if d.value == 0 {
                        return Err(self.err(d.span, "the duration must be positive"));
                    }
                    if d.value > MAX_DURATION_NS {
                        return Err(self
                            .err(d.span, "the duration is longer than a run may be")
                            .help("a run covers at most 1000ms of virtual time; spin-lock behaviour shows within microseconds to milliseconds"));
                    }
                    self.prog.duration = Some(d.value);
                }
                HeaderEntry::Expect(x) => {
                    let text = self.expect(x)?;
                    self.prog.expects.push((x.value.clone(), text));
                }
            }
        }
        Ok(())
    }

    /// The options of a `verifier` line; each unknown name is recorded.
    fn verifier(&self, names: &[Ident]) -> Checks {
        let mut checks = Checks::NONE;
        for n in names {
            match n.name.as_str() {
                "standard" => checks = Checks::ALL,
                "none" => {}
                "deadlock_detection" => {
                    checks.automatic = true;
                    checks.deadlock_detection = true;
                }
                "force_irql_checking" => {
                    checks.automatic = true;
                    checks.force_irql_checking = true;
                }
                "ddi_compliance" => {
                    checks.automatic = true;
                    checks.ddi_compliance = true;
                }
                other => {
                    let mut e = self.err(n.span, format!("unknown verifier option `{other}`"));
                    e = e.help(match did_you_mean(other, Checks::NAMES.iter().copied()) {
                        Some(s) => s,
                        None => format!("known options: {}", Checks::NAMES.join(", ")),
                    });
                    self.record(e);
                }
            }
        }
        checks
    }

    fn expect(&self, x: &ast::Spanned<ast::Expect>) -> R<String> {
        self.expect_item(&x.value)
    }

    fn expect_item(&self, x: &ast::Expect) -> R<String> {
        use ast::Expect::*;
        Ok(match x {
            Any(items) => {
                let mut parts = vec![];
                for i in items {
                    parts.push(self.expect_item(i)?);
                }
                format!("any {{ {}; }}", parts.join("; "))
            }
            Clean => "clean".into(),
            AssertionFailed => "assertion_failed".into(),
            Warning(id) => {
                if !WARNING_RULES.contains(&id.name.as_str()) {
                    let help = did_you_mean(&id.name, WARNING_RULES.iter().copied())
                        .unwrap_or_else(|| format!("warnings: {}", WARNING_RULES.join(", ")));
                    return Err(self
                        .err(id.span, format!("unknown warning `{}`", id.name))
                        .help(help));
                }
                format!("warning {}", id.name)
            }
            BugcheckName(id) => {
                if code_of_name(&id.name).is_none() {
                    let names = vcpu::bugcheck::CODES.iter().map(|(_, n)| *n);
                    let help = did_you_mean(&id.name, names)
                        .unwrap_or_else(|| "name a bugcheck like SPIN_LOCK_ALREADY_OWNED, or give its code: `0xC4(0x1001)`".into());
                    return Err(self
                        .err(id.span, format!("unknown bugcheck `{}`", id.name))
                        .help(help));
                }
                format!("bugcheck {}", id.name)
            }
            BugcheckCode { code, param1 } => match param1 {
                Some(p) => format!("bugcheck {code:#X}({p:#X})"),
                None => format!("bugcheck {code:#X}"),
            },
        })
    }

    // ----- declarations ---------------------------------------------------

    /// The value of a built-in constant or of an enumerator.
    fn constant(&self, name: &str) -> Option<i64> {
        kernel::constant(name).or_else(|| self.consts.get(name).map(|c| c.0))
    }

    /// Declare the enumerators of an `enum`: each is the value given, or
    /// one more than the one before (0 for the first).
    fn enumerators(&mut self, e: &ast::EnumDecl) {
        let mut next: i64 = 0;
        for (id, value) in &e.enumerators {
            if let Some(v) = value {
                match self.const_eval(v) {
                    Ok(v) => next = v,
                    Err(err) => {
                        self.record(
                            err.help("an enumerator's value is an integer constant expression"),
                        );
                    }
                }
            }
            let taken = kernel::lookup(&id.name).is_some() || kernel::constant(&id.name).is_some();
            if taken {
                self.record(self.err(
                    id.span,
                    format!("`{}` is a kernel name and cannot be redeclared", id.name),
                ));
            } else if let Some(prev) = self
                .consts
                .get(&id.name)
                .map(|c| c.1)
                .or_else(|| self.globals.get(&id.name).map(|g| g.1))
            {
                let l = self.line(prev);
                self.record(self.err(
                    id.span,
                    format!("`{}` is already declared at line {l}", id.name),
                ));
            } else {
                self.consts
                    .insert(id.name.clone(), (next as i32 as i64, id.span));
            }
            next = (next as i32).wrapping_add(1) as i64;
        }
    }

    fn define(&mut self, id: &Ident, g: Global) -> R<()> {
        if let Some((_, prev)) = self.consts.get(&id.name) {
            let l = self.line(*prev);
            return Err(self.err(
                id.span,
                format!("`{}` is already declared at line {l}", id.name),
            ));
        }
        if kernel::lookup(&id.name).is_some() || kernel::constant(&id.name).is_some() {
            return Err(self.err(
                id.span,
                format!("`{}` is a kernel name and cannot be redeclared", id.name),
            ));
        }
        // One search finds an earlier declaration or makes the entry.
        let Some(prev) = self
            .globals
            .insert_or_get(&id.name, (g, id.span))
            .map(|e| e.1)
        else {
            return Ok(());
        };
        let l = self.line(prev);
        Err(self.err(
            id.span,
            format!("`{}` is already declared at line {l}", id.name),
        ))
    }

    fn declare(&mut self, file: &ast::File) {
        // The tables get their room once, not by regrowing (which rehashes
        // every name each time).
        let count = |f: fn(&Item) -> bool| file.items.iter().filter(|i| f(i)).count();
        let routines = count(|i| matches!(i, Item::Routine(_)));
        self.globals.reserve(file.items.len());
        self.protos.reserve(routines);
        self.prog.routines.reserve(routines);
        self.prog
            .vars
            .reserve(count(|i| matches!(i, Item::Global(_))));
        let (mut np, mut pg, mut code, mut pcode) = (0u64, 0u64, 0u64, 0u64);
        // KINTERRUPTs naming a shared spin lock: (interrupt, lock name,
        // paged, address, line).
        let mut shared: Vec<(u32, Ident, bool, u64, u32)> = vec![];
        let mut addr = |paged: bool| {
            if paged {
                pg += 1;
                PAGED_BASE + pg * 0x40
            } else {
                np += 1;
                NONPAGED_BASE + np * 0x40
            }
        };
        for item in &file.items {
            match item {
                Item::Enum(e) => self.enumerators(e),
                Item::Struct(s) => {
                    self.pointers
                        .insert(format!("{} *", s.name), s.name.clone());
                    if let Some(t) = &s.tag {
                        self.pointers
                            .insert(format!("struct {t} *"), s.name.clone());
                    }
                    for p in &s.pointer_names {
                        self.pointers.insert(p.clone(), s.name.clone());
                    }
                    self.structs.insert(s.name.clone(), (**s).clone());
                }
                Item::Global(g) if matches!(g.ty, ast::GlobalType::Aggregate { .. }) => {
                    let ast::GlobalType::Aggregate { ty, array } = &g.ty else {
                        continue;
                    };
                    let line = self.line(g.span);
                    let base = (self.prog.vars.len() as u32, self.prog.locks.len() as u32);
                    self.aggregates
                        .insert(g.name.name.clone(), (ty.clone(), *array, base.0, base.1));
                    self.flatten(
                        &g.name,
                        g.name.name.clone(),
                        ty,
                        *array,
                        g.paged,
                        line,
                        0,
                        &mut addr,
                    );
                }
                Item::Global(g) => {
                    let line = self.line(g.span);
                    let address = addr(g.paged);
                    let name = g.name.name.clone();
                    let global = match &g.ty {
                        ast::GlobalType::KSpinLock | ast::GlobalType::ExSpinLock => {
                            let kind = if g.ty == ast::GlobalType::KSpinLock {
                                LockKind::Spin
                            } else {
                                LockKind::Ex
                            };
                            self.prog.locks.push(LockDecl {
                                name,
                                kind,
                                paged: g.paged,
                                address,
                                line,
                            });
                            Global::Lock(LockId(self.prog.locks.len() as u32 - 1))
                        }
                        ast::GlobalType::KInterrupt { spin_lock, .. } => {
                            let idx = self.prog.interrupts.len() as u32;
                            // A shared KSPIN_LOCK (resolved once every
                            // global is declared) is the interrupt lock of
                            // every KINTERRUPT naming it; otherwise the
                            // interrupt has a lock of its own.
                            let lock = match spin_lock {
                                Some(id) => {
                                    shared.push((idx, (**id).clone(), g.paged, address, line));
                                    LockId(u32::MAX)
                                }
                                None => {
                                    self.prog.locks.push(LockDecl {
                                        name: name.clone(),
                                        kind: LockKind::Interrupt(idx),
                                        paged: g.paged,
                                        address: address + 8,
                                        line,
                                    });
                                    LockId(self.prog.locks.len() as u32 - 1)
                                }
                            };
                            self.prog.interrupts.push(InterruptDecl {
                                name,
                                isr: 0,
                                irql: 0,
                                sync_irql: 0,
                                lock,
                                address,
                            });
                            Global::Interrupt(idx)
                        }
                        ast::GlobalType::KDpc { .. } => {
                            self.prog.dpcs.push(DpcDecl {
                                name,
                                routine: 0,
                                paged: g.paged,
                                address,
                                initialized: true,
                                context: 0,
                                leaf: None,
                                reference: 0,
                            });
                            Global::Dpc(self.prog.dpcs.len() as u32 - 1)
                        }
                        ast::GlobalType::ListEntry => {
                            self.prog.lists.push(ListDecl {
                                name,
                                paged: g.paged,
                                address,
                                entry_head: None,
                            });
                            Global::List(self.prog.lists.len() as u32 - 1)
                        }
                        ast::GlobalType::Aggregate { .. } => continue,
                        ast::GlobalType::QueueHandle => {
                            self.prog.handles.push(name);
                            Global::Handle(self.prog.handles.len() as u32 - 1)
                        }
                        ast::GlobalType::Scalar(t) => {
                            self.prog.vars.push(VarDecl {
                                name,
                                ty: t.value,
                                init: 0,
                                paged: g.paged,
                                guard: None,
                                address,
                            });
                            Global::Var(self.prog.vars.len() as u32 - 1)
                        }
                    };
                    let r = self.define(&g.name, global);
                    self.keep(r);
                }
                Item::Routine(r) => {
                    let address = if r.paged {
                        pcode += 1;
                        PAGED_CODE_BASE + pcode * 0x100
                    } else {
                        code += 1;
                        CODE_BASE + code * 0x100
                    };
                    self.prog.routines.push(Code {
                        name: r.name.name.clone(),
                        file: 0,
                        params: 0,
                        slots: vec![],
                        ops: vec![],
                        paged: r.paged,
                        returns: r.ret.value != Type::Void,
                        ret: match r.ret.value {
                            Type::Scalar(t) => Some(t),
                            _ => None,
                        },
                        address,
                        line: self.line(r.span),
                    });
                    let id = self.prog.routines.len() as u32 - 1;
                    let defined = self.define(&r.name, Global::Routine(id));
                    self.keep(defined);
                    let scalar = |t: &Type| match t {
                        Type::Scalar(s) => Some(*s),
                        _ => None,
                    };
                    self.protos.push(Proto {
                        ret: scalar(&r.ret.value),
                        params: r.params.iter().map(|p| scalar(&p.ty.value)).collect(),
                        ret_ptr: match &r.ret.value {
                            Type::Pointer(p) => Some(p.clone()),
                            _ => None,
                        },
                    });
                }
                _ => {}
            }
        }
        for (idx, id, paged, address, line) in shared {
            let lock = match self.shared_interrupt_lock(&id, idx) {
                Ok(l) => l,
                Err(e) => {
                    self.record(e);
                    self.prog.locks.push(LockDecl {
                        name: self.prog.interrupts[idx as usize].name.clone(),
                        kind: LockKind::Interrupt(idx),
                        paged,
                        address: address + 8,
                        line,
                    });
                    LockId(self.prog.locks.len() as u32 - 1)
                }
            };
            self.prog.interrupts[idx as usize].lock = lock;
        }
        self.pool_sites(file, &mut addr);
        self.local_event_sites(file, &mut addr);
        self.cancel_lock(file);
    }

    /// The KSPIN_LOCK `id` a KINTERRUPT (index `idx`) names as its
    /// interrupt spin lock: from now on the lock is an interrupt lock, shared
    /// by every KINTERRUPT that names it (contract v2, "Kernel objects").
    fn shared_interrupt_lock(&mut self, id: &Ident, idx: u32) -> R<LockId> {
        let g = match self.globals.get(&id.name) {
            Some((g, _)) => *g,
            None => return Err(self.unknown(id, &[])),
        };
        if let Global::Lock(l) = g {
            let d = &mut self.prog.locks[l.0 as usize];
            match d.kind {
                LockKind::Spin => {
                    d.kind = LockKind::Interrupt(idx);
                    return Ok(l);
                }
                LockKind::Interrupt(_) => return Ok(l),
                LockKind::Ex => {}
            }
        }
        Err(self
            .err(
                id.span,
                format!(
                    "an interrupt spin lock is a KSPIN_LOCK, but `{}` is {}",
                    id.name,
                    kind_name(g, &self.prog)
                ),
            )
            .label("not a KSPIN_LOCK")
            .help("name a global `KSPIN_LOCK` that only these interrupts use"))
    }

    /// The KINTERRUPTs whose interrupt spin lock is `lock`:
    /// "`A`, `B` and `C`".
    fn sharers(&self, lock: LockId) -> String {
        sharer_list(&self.prog, lock)
    }

    fn lookup_global(&self, id: &Ident) -> R<Global> {
        match self.globals.get(&id.name) {
            Some((g, _)) => Ok(*g),
            None => Err(self.unknown(id, &[])),
        }
    }

    fn unknown(&self, id: &Ident, locals: &[&str]) -> SimError {
        let mut cands: Vec<&str> = self.globals.keys().map(|s| s.as_str()).collect();
        cands.extend(locals.iter().copied());
        cands.extend(kernel::CONSTANTS.iter().map(|(n, _)| *n));
        let mut e = self
            .err(id.span, format!("`{}` is not declared", id.name))
            .label("unknown name");
        if let Some(h) = did_you_mean(&id.name, cands) {
            e = e.help(h);
        }
        e
    }

    fn routine_ref(&self, id: &Ident, what: &str) -> R<RoutineId> {
        match self.lookup_global(id)? {
            Global::Routine(r) => Ok(r),
            g => Err(self.err(
                id.span,
                format!(
                    "{what} must be a routine, but `{}` is {}",
                    id.name,
                    kind_name(g, &self.prog)
                ),
            )),
        }
    }

    /// Declare one leaf per scalar and lock of an aggregate global named
    /// `name` (a struct, or an array of `ty`): `Ring.Head`,
    /// `Devices[1].QueueLock`, each its own variable or lock instance.
    #[allow(clippy::too_many_arguments)]
    fn flatten(
        &mut self,
        at: &Ident,
        name: String,
        ty: &ast::FieldType,
        array: Option<u64>,
        paged: bool,
        line: u32,
        depth: usize,
        addr: &mut dyn FnMut(bool) -> u64,
    ) -> Vec<VarId> {
        let mut vars = vec![];
        if depth > 32 || self.prog.vars.len() + self.prog.locks.len() > 1_000_000 {
            self.record(self.err(at.span, "the aggregate is too large or nests too deeply"));
            return vars;
        }
        if let Some(n) = array {
            let (ev, el) = self.leaves(ty);
            self.prog.arrays.push(ArrayDecl {
                var: self.prog.vars.len() as u32,
                lock: self.prog.locks.len() as u32,
                len: n,
                vars: ev,
                locks: el,
            });
            for k in 0..n {
                vars.extend(self.flatten(
                    at,
                    format!("{name}[{k}]"),
                    ty,
                    None,
                    paged,
                    line,
                    depth + 1,
                    addr,
                ));
            }
            return vars;
        }
        let leaf = Ident {
            name: name.clone(),
            span: at.span,
        };
        let pointer = ScalarType::Ulong64;
        match ty {
            ast::FieldType::Scalar(_)
            | ast::FieldType::Pointer(_)
            | ast::FieldType::QueueHandle => {
                let t = match ty {
                    ast::FieldType::Scalar(t) => t,
                    _ => &pointer,
                };
                self.prog.vars.push(VarDecl {
                    name,
                    ty: *t,
                    init: 0,
                    paged,
                    guard: None,
                    address: addr(paged),
                });
                let v = self.prog.vars.len() as u32 - 1;
                vars.push(v);
                let r = self.define(&leaf, Global::Var(v));
                self.keep(r);
            }
            ast::FieldType::ListEntry => {
                for f in ["Flink", "Blink"] {
                    self.prog.vars.push(VarDecl {
                        name: format!("{name}.{f}"),
                        ty: ScalarType::Ulong64,
                        init: 0,
                        paged,
                        guard: None,
                        address: addr(paged),
                    });
                    let v = self.prog.vars.len() as u32 - 1;
                    vars.push(v);
                    let leaf = Ident {
                        name: format!("{name}.{f}"),
                        span: at.span,
                    };
                    let r = self.define(&leaf, Global::Var(v));
                    self.keep(r);
                }
            }
            ast::FieldType::KSpinLock | ast::FieldType::ExSpinLock => {
                self.prog.locks.push(LockDecl {
                    name,
                    kind: if *ty == ast::FieldType::KSpinLock {
                        LockKind::Spin
                    } else {
                        LockKind::Ex
                    },
                    paged,
                    address: addr(paged),
                    line,
                });
                let l = LockId(self.prog.locks.len() as u32 - 1);
                let r = self.define(&leaf, Global::Lock(l));
                self.keep(r);
            }
            ast::FieldType::Object(kind) => {
                let address = addr(paged);
                let v = self.declare_object(*kind, name, paged, address, None);
                let r = self.define(&leaf, Global::Var(v));
                self.keep(r);
            }
            ast::FieldType::Struct(s) => {
                let Some(def) = self.structs.get(s).cloned() else {
                    self.record(self.err(at.span, format!("unknown struct type `{s}`")));
                    return vars;
                };
                for f in &def.fields {
                    let fname = format!("{name}.{}", f.name.name);
                    let fvars =
                        self.flatten(at, fname, &f.ty, f.array, paged, line, depth + 1, addr);
                    if let Some(g) = &f.guarded_by {
                        // A lock field of this instance, else a global lock.
                        match self.globals.get(&format!("{name}.{}", g.name)) {
                            Some((Global::Lock(l), _)) => {
                                let l = *l;
                                for v in &fvars {
                                    self.prog.vars[*v as usize].guard = Some(l);
                                }
                            }
                            _ if def.fields.iter().any(|x| x.name.name == g.name) => {
                                self.record(
                                    self.err(g.span, format!("_Guarded_by_ needs a lock, but field `{}` is not one", g.name))
                                        .help("name a KSPIN_LOCK or EX_SPIN_LOCK field declared before it, or a global lock"),
                                );
                            }
                            _ => self.pending_guards.push((fvars.clone(), g.clone())),
                        }
                    }
                    vars.extend(fvars);
                }
            }
        }
        vars
    }

    /// Every `KEVENT` local declaration gets [`LOCAL_EVENTS`] events its
    /// activations take in turn (contract v2: locals may be KEVENTs).
    fn local_event_sites(&mut self, file: &ast::File, addr: &mut dyn FnMut(bool) -> u64) {
        let mut decls: Vec<(Ident, u32)> = vec![];
        for item in &file.items {
            let body = match item {
                Item::Routine(r) => &r.body,
                Item::Thread(t) => &t.body,
                _ => continue,
            };
            for st in &body.stmts {
                each_stmt(st, &mut |s| {
                    if let StmtKind::Decl { ty, vars } = &s.kind {
                        if ty.value == Type::Event {
                            for (id, _) in vars {
                                decls.push((id.clone(), 0));
                            }
                        }
                    }
                });
            }
        }
        for (id, _) in decls {
            let line = self.line(id.span);
            let mut events = Vec::with_capacity(LOCAL_EVENTS);
            for k in 0..LOCAL_EVENTS {
                let name = if k == 0 {
                    format!("{} (local, line {line})", id.name)
                } else {
                    format!("{} (local, line {line}, activation {k})", id.name)
                };
                self.declare_object(ast::ObjKind::Event, name, false, addr(false), None);
                events.push(self.prog.objects.len() as u32 - 1);
            }
            self.local_event_of
                .insert(id.span.offset, self.prog.local_events.len() as u32);
            self.prog.local_events.push(events);
        }
    }

    /// The system cancel spin lock, declared when a routine of the file
    /// calls a cancel routine (`IoAcquireCancelSpinLock`,
    /// `IoReleaseCancelSpinLock`, `IoCancelIrp`).
    fn cancel_lock(&mut self, file: &ast::File) {
        let mut used = false;
        for item in &file.items {
            let body = match item {
                Item::Routine(r) => &r.body,
                Item::Thread(t) => &t.body,
                _ => continue,
            };
            for s in &body.stmts {
                walk_stmt(s, &mut |e| {
                    if let ExprKind::Call { callee, .. } = &e.kind {
                        used |= matches!(
                            callee.name.as_str(),
                            "IoAcquireCancelSpinLock" | "IoReleaseCancelSpinLock" | "IoCancelIrp"
                        );
                    }
                });
            }
        }
        if !used {
            return;
        }
        self.prog.locks.push(LockDecl {
            name: "IoCancelSpinLock".into(),
            kind: LockKind::Spin,
            paged: false,
            address: 0xFFFF_F800_0012_3400,
            line: 0,
        });
        self.prog.cancel_lock = Some(LockId(self.prog.locks.len() as u32 - 1));
    }

    /// Declare a kernel object: its hidden leaf variable (returned; a
    /// reference to it is the object's address) and its entry in
    /// `objects` (a KDPC also gets its DPC entry, uninitialized unless
    /// `dpc` names one already).
    fn declare_object(
        &mut self,
        kind: ast::ObjKind,
        name: String,
        paged: bool,
        address: u64,
        dpc: Option<u32>,
    ) -> VarId {
        self.prog.vars.push(VarDecl {
            name: name.clone(),
            ty: ScalarType::Ulong64,
            init: 0,
            paged,
            guard: None,
            address,
        });
        let leaf = self.prog.vars.len() as u32 - 1;
        // A global KDPC's `&D` is its leaf alone; an object in an aggregate
        // carries the lock base of where it sits, as `&Agg.Field` does.
        let reference = match dpc {
            Some(_) => make_ref(leaf, 0),
            None => make_ref(leaf, self.prog.locks.len() as u32),
        };
        // An IRP's object leaf is its hidden first field: name the IRP.
        let name = match kind {
            ast::ObjKind::Irp => name
                .strip_suffix(".Type")
                .map(str::to_string)
                .unwrap_or(name),
            _ => name,
        };
        let index = if kind == ast::ObjKind::Dpc {
            match dpc {
                Some(d) => d,
                None => {
                    self.prog.dpcs.push(DpcDecl {
                        name: name.clone(),
                        routine: 0,
                        paged,
                        address,
                        initialized: false,
                        context: 0,
                        leaf: Some(leaf),
                        reference,
                    });
                    self.prog.dpcs.len() as u32 - 1
                }
            }
        } else {
            self.prog.objects.len() as u32
        };
        self.prog
            .object_of
            .insert(leaf, self.prog.objects.len() as u32);
        self.prog.objects.push(ObjectDecl {
            kind,
            name,
            paged,
            address,
            leaf,
            reference,
            index,
        });
        leaf
    }

    /// Variables and locks in one element of type `t`.
    fn leaves(&self, t: &ast::FieldType) -> (u32, u32) {
        match t {
            ast::FieldType::Scalar(_)
            | ast::FieldType::Pointer(_)
            | ast::FieldType::QueueHandle => (1, 0),
            ast::FieldType::ListEntry => (2, 0),
            ast::FieldType::Object(_) => (1, 0),
            ast::FieldType::KSpinLock | ast::FieldType::ExSpinLock => (0, 1),
            ast::FieldType::Struct(s) => {
                let mut n = (0u32, 0u32);
                if let Some(def) = self.structs.get(s) {
                    for f in &def.fields {
                        let (v, l) = self.leaves(&f.ty);
                        let k = f.array.unwrap_or(1) as u32;
                        n = (n.0 + v * k, n.1 + l * k);
                    }
                }
                n
            }
        }
    }

    /// The leaves of a local of struct type `s` named `prefix`: one local
    /// each (`P.Length`, `P.Data[3]`), with its type (`None`: a queue
    /// handle) and, for a pointer to a struct, that struct. `Err` names
    /// what a local cannot hold.
    #[allow(clippy::type_complexity)]
    fn local_leaves(
        &self,
        s: &str,
        prefix: &str,
        out: &mut Vec<(String, Option<ScalarType>, Option<String>)>,
        depth: usize,
    ) -> Result<(), String> {
        let Some(def) = self.structs.get(s) else {
            return Err(format!("an unknown type `{s}`"));
        };
        if depth > 16 || out.len() > 4096 {
            return Err("that many fields".to_string());
        }
        for f in &def.fields {
            let n = f.array.unwrap_or(1);
            for k in 0..n {
                let name = match f.array {
                    Some(_) => format!("{prefix}.{}[{k}]", f.name.name),
                    None => format!("{prefix}.{}", f.name.name),
                };
                match &f.ty {
                    ast::FieldType::Scalar(t) => out.push((name, Some(*t), None)),
                    ast::FieldType::Pointer(p) => out.push((
                        name,
                        Some(ScalarType::Ulong64),
                        self.pointers.get(p).cloned(),
                    )),
                    ast::FieldType::QueueHandle => out.push((name, None, None)),
                    ast::FieldType::Struct(t) => self.local_leaves(t, &name, out, depth + 1)?,
                    ast::FieldType::ListEntry => return Err("a LIST_ENTRY".to_string()),
                    ast::FieldType::Object(k) => return Err(k.with_article()),
                    ast::FieldType::KSpinLock | ast::FieldType::ExSpinLock => {
                        return Err("a spin lock".to_string())
                    }
                }
            }
        }
        Ok(())
    }

    /// Field `f` of struct `s`: its declaration and the (variable, lock)
    /// offset of its leaves in an instance.
    fn field_of(&self, s: &str, f: &str) -> Option<(ast::FieldDecl, u32, u32)> {
        let def = self.structs.get(s)?;
        let (mut v, mut l) = (0u32, 0u32);
        for fd in &def.fields {
            if fd.name.name == f {
                return Some((fd.clone(), v, l));
            }
            let (dv, dl) = self.leaves(&fd.ty);
            let k = fd.array.unwrap_or(1) as u32;
            v += dv * k;
            l += dl * k;
        }
        None
    }

    /// Make the blocks of every `ExAllocatePoolWithTag(Type, sizeof(T),
    /// Tag)` call site: [`POOL_BLOCKS`] instances of `T` each, paged when
    /// the pool type is the constant `PagedPool`.
    fn pool_sites(&mut self, file: &ast::File, addr: &mut dyn FnMut(bool) -> u64) {
        let mut calls: Vec<(Ident, Vec<Expr>)> = vec![];
        for item in &file.items {
            let body = match item {
                Item::Routine(r) => &r.body,
                Item::Thread(t) => &t.body,
                _ => continue,
            };
            for s in &body.stmts {
                walk_stmt(s, &mut |e| {
                    if let ExprKind::Call { callee, args } = &e.kind {
                        if callee.name == "ExAllocatePoolWithTag" && args.len() == 3 {
                            calls.push((callee.clone(), args.clone()));
                        }
                    }
                });
            }
        }
        for (callee, args) in calls {
            let ExprKind::SizeOf(ty, _) = &args[1].kind else {
                continue;
            };
            // Blocks of a struct, a kernel object (a KEVENT from pool) or a
            // scalar type.
            let block_type = if self.structs.contains_key(&ty.name) {
                ast::FieldType::Struct(ty.name.clone())
            } else if let Some(k) = [
                ast::ObjKind::Event,
                ast::ObjKind::Timer,
                ast::ObjKind::Dpc,
                ast::ObjKind::WorkItem,
            ]
            .into_iter()
            .find(|k| k.name() == ty.name)
            {
                ast::FieldType::Object(k)
            } else if let Some(t) = crate::parser::scalar_type(&ty.name) {
                ast::FieldType::Scalar(t)
            } else {
                continue;
            };
            let paged = self.const_eval(&args[0]).ok() == Some(1);
            let line = self.line(callee.span);
            let mut blocks = vec![];
            for k in 0..POOL_BLOCKS {
                let (v0, l0) = (self.prog.vars.len() as u32, self.prog.locks.len() as u32);
                self.flatten(
                    &callee,
                    format!("(pool block {k} of line {line})"),
                    &block_type,
                    None,
                    paged,
                    line,
                    0,
                    addr,
                );
                let (v1, l1) = (self.prog.vars.len() as u32, self.prog.locks.len() as u32);
                blocks.push((make_ref(v0, l0), v0..v1, l0..l1));
            }
            self.pool_site_of
                .insert(callee.span.offset, self.prog.pool_sites.len() as u32);
            self.prog.pool_sites.push(PoolSite {
                ty: ty.name.clone(),
                line,
                blocks,
            });
        }
    }

    fn resolve_globals(&mut self, file: &ast::File) {
        // A global LIST_ENTRY declared alone is also an initialized, empty
        // head for the entry routines: Flink and Blink point at itself. Its
        // two leaves come after every other variable (version 1 files keep
        // their variable numbers).
        for item in &file.items {
            let Item::Global(g) = item else { continue };
            if g.ty != ast::GlobalType::ListEntry {
                continue;
            }
            let Some((Global::List(l), _)) = self.globals.get(&g.name.name) else {
                continue;
            };
            let l = *l;
            let address = self.prog.lists[l as usize].address;
            let v = self.prog.vars.len() as u32;
            self.prog.lists[l as usize].entry_head = Some(v);
            let head = make_ref(v, 0);
            for (i, f) in ["Flink", "Blink"].iter().enumerate() {
                self.prog.vars.push(VarDecl {
                    name: format!("{}.{f}", g.name.name),
                    ty: ScalarType::Ulong64,
                    init: head,
                    paged: g.paged,
                    guard: None,
                    address: address + 8 * i as u64,
                });
            }
            self.aggregates
                .insert(g.name.name.clone(), (ast::FieldType::ListEntry, None, v, 0));
        }
        // A global `KDPC D(Routine)` gets its hidden leaf after every other
        // variable too, so `&D` is a value (a PKDPC) like any object's.
        for d in 0..self.prog.dpcs.len() {
            if !self.prog.dpcs[d].initialized || self.prog.dpcs[d].leaf.is_some() {
                continue;
            }
            let (name, paged, address) = {
                let x = &self.prog.dpcs[d];
                (x.name.clone(), x.paged, x.address)
            };
            let v = self.declare_object(ast::ObjKind::Dpc, name, paged, address, Some(d as u32));
            self.prog.dpcs[d].leaf = Some(v);
            self.prog.dpcs[d].reference = make_ref(v, 0);
        }
        for (vars, g) in std::mem::take(&mut self.pending_guards) {
            let lock = match self.lookup_global(&g) {
                Ok(Global::Lock(l)) => l,
                Ok(Global::Interrupt(i)) => self.prog.interrupts[i as usize].lock,
                Ok(_) => {
                    self.record(
                        self.err(g.span, format!("_Guarded_by_ needs a lock, but `{}` is not one", g.name))
                            .help("name a lock field of the same struct, a KSPIN_LOCK, an EX_SPIN_LOCK or a KINTERRUPT"),
                    );
                    continue;
                }
                Err(e) => {
                    self.record(e);
                    continue;
                }
            };
            for v in vars {
                self.prog.vars[v as usize].guard = Some(lock);
            }
        }
        for item in &file.items {
            let Item::Global(g) = item else { continue };
            let r = self.resolve_global(g);
            self.keep(r);
        }
    }

    /// Guard, initial value, ISR and DPC routine of one global.
    fn resolve_global(&mut self, g: &ast::GlobalDecl) -> R<()> {
        if let ast::GlobalType::Aggregate { .. } | ast::GlobalType::ListEntry = g.ty {
            if let Some(guard) = &g.guarded_by {
                // Every leaf of a struct, array, pointer or list head (a
                // field's own `_Guarded_by_` stays).
                let lock = self.guard_lock(guard)?;
                let vars = match self.aggregates.get(&g.name.name) {
                    Some((t, n, v, _)) => {
                        let k = self.leaves(t).0 as u64 * n.unwrap_or(1);
                        *v..*v + k as u32
                    }
                    None => 0..0,
                };
                for v in vars {
                    self.prog.vars[v as usize].guard.get_or_insert(lock);
                }
            }
        }
        if let ast::GlobalType::Aggregate { .. } = g.ty {
            if let Some(init) = &g.init {
                return Err(self.err(init.span, "only scalar data can have an initial value"));
            }
            return Ok(());
        }
        {
            let global = self.lookup_global(&g.name)?;
            if let Some(guard) = g
                .guarded_by
                .as_ref()
                .filter(|_| !matches!(global, Global::List(_)))
            {
                let lock = self.guard_lock(guard)?;
                match global {
                    Global::Var(v) => self.prog.vars[v as usize].guard = Some(lock),
                    _ => {
                        return Err(self.err(
                            g.name.span,
                            "_Guarded_by_ applies to data (ULONG, LONG, BOOLEAN, KIRQL)",
                        ))
                    }
                }
            }
            if let Some(init) = &g.init {
                let Global::Var(v) = global else {
                    return Err(self.err(init.span, "only data can have an initial value"));
                };
                let value = self.const_eval(init)?;
                let ty = self.prog.vars[v as usize].ty;
                self.prog.vars[v as usize].init = truncate(ty, value);
            }
            match &g.ty {
                ast::GlobalType::KInterrupt {
                    isr,
                    irql,
                    sync_irql,
                    spin_lock,
                } => {
                    let Global::Interrupt(i) = global else {
                        return Ok(());
                    };
                    let isr_id = self.routine_ref(isr, "an interrupt's service routine")?;
                    let l = self.const_eval(irql)?;
                    if !(3..=12).contains(&l) {
                        return Err(self
                            .err(
                                irql.span,
                                format!("interrupt IRQL {l} is not a device IRQL"),
                            )
                            .help("device IRQLs are 3 to 12"));
                    }
                    let s = match sync_irql {
                        Some(e) => {
                            let s = self.const_eval(e)?;
                            if !(l..=15).contains(&s) {
                                return Err(self.err(e.span, format!("SynchronizeIrql {s} is below the interrupt's IRQL {l}")).help("SynchronizeIrql must be at least the interrupt's IRQL (at most 15)"));
                            }
                            s
                        }
                        None => l,
                    };
                    // Sharers of one interrupt spin lock run their ISRs at
                    // one SynchronizeIrql (at least each one's Irql).
                    let lock = self.prog.interrupts[i as usize].lock;
                    let other = self.prog.interrupts[..i as usize]
                        .iter()
                        .find(|d| d.lock == lock && d.sync_irql != 0);
                    if let (Some(o), Some(e), Some(sl)) = (other, sync_irql, spin_lock) {
                        if o.sync_irql as i64 != s {
                            return Err(self
                                .err(
                                    e.span,
                                    format!(
                                        "`{}` shares interrupt spin lock `{}` with `{}`, whose SynchronizeIrql is {}, but its own is {s}",
                                        g.name.name, sl.name, o.name, o.sync_irql
                                    ),
                                )
                                .label("another SynchronizeIrql")
                                .help(format!(
                                    "interrupts sharing a spin lock need one SynchronizeIrql, at least the highest of their Irqls: give {} the same one",
                                    self.sharers(lock)
                                )));
                        }
                    }
                    let d = &mut self.prog.interrupts[i as usize];
                    d.isr = isr_id;
                    d.irql = l as u8;
                    d.sync_irql = s as u8;
                }
                ast::GlobalType::KDpc { routine, context } => {
                    let Global::Dpc(d) = global else {
                        return Ok(());
                    };
                    self.prog.dpcs[d as usize].routine =
                        self.routine_ref(routine, "a DPC's routine")?;
                    if let Some(c) = context {
                        self.prog.dpcs[d as usize].context = self.static_address(c)?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The lock `_Guarded_by_(guard)` names on a global.
    fn guard_lock(&self, guard: &Ident) -> R<LockId> {
        match self.lookup_global(guard)? {
            Global::Lock(l) => Ok(l),
            Global::Interrupt(i) => Ok(self.prog.interrupts[i as usize].lock),
            other => Err(self
                .err(
                    guard.span,
                    format!(
                        "_Guarded_by_ needs a lock, but `{}` is {}",
                        guard.name,
                        kind_name(other, &self.prog)
                    ),
                )
                .help("name a KSPIN_LOCK, an EX_SPIN_LOCK or a KINTERRUPT")),
        }
    }

    /// A value known before the run: a constant, `&Global` of data or an
    /// object (its reference), or a routine's name (its address) — a
    /// DPC's DeferredContext.
    fn static_address(&self, e: &Expr) -> R<i64> {
        let id = match &e.kind {
            ExprKind::AddrOf(id) => id,
            ExprKind::Name(id) if self.constant(&id.name).is_none() => {
                if let Some((Global::Routine(r), _)) = self.globals.get(&id.name) {
                    return Ok(self.prog.routines[*r as usize].address as i64);
                }
                return self.const_eval(e);
            }
            _ => return self.const_eval(e),
        };
        if let Some(a) = self.aggregates.get(&id.name) {
            return Ok(make_ref(a.2, a.3));
        }
        match self.lookup_global(id)? {
            Global::Var(v) => Ok(make_ref(v, 0)),
            Global::Lock(l) => Ok(make_ref(0, l.0)),
            Global::Dpc(d) => Ok(self.prog.dpcs[d as usize].reference),
            g => Err(self
                .err(
                    e.span,
                    format!(
                        "a DeferredContext cannot be `&{}`, which is {}",
                        id.name,
                        kind_name(g, &self.prog)
                    ),
                )
                .help("pass the address of a global variable, struct or array, or NULL")),
        }
    }

    fn const_eval(&self, e: &Expr) -> R<i64> {
        Ok(self.const_eval_typed(e)?.0)
    }

    /// A constant expression's value and arithmetic type.
    fn const_eval_typed(&self, e: &Expr) -> R<(i64, Arith)> {
        Ok(match &e.kind {
            ExprKind::Int(v) => (*v, decimal_type(*v)),
            ExprKind::Typed(v, t) => (truncate(*t, *v), Arith::of(*t)),
            ExprKind::SizeOf(_, n) => (*n as i64, Arith::U64),
            ExprKind::Name(id) => match self.constant(&id.name) {
                Some(v) => (v, Arith::I32),
                None => match self.globals.get(&id.name) {
                    Some(_) => {
                        return Err(self
                            .err(e.span, format!("`{}` is not a constant", id.name))
                            .help("use a number or a constant such as DISPATCH_LEVEL"))
                    }
                    None => return Err(self.unknown(id, &[])),
                },
            },
            ExprKind::Unary(op, a) => {
                let (v, t) = self.const_eval_typed(a)?;
                let t = if *op == ast::UnOp::Not { Arith::I32 } else { t };
                (eval_unary(*op, t, v), t)
            }
            ExprKind::Binary(op, a, b) => {
                let ((x, l), (y, r)) = (self.const_eval_typed(a)?, self.const_eval_typed(b)?);
                let v = eval_binary(*op, operand_type(*op, l, r), x, y)
                    .ok_or_else(|| self.err(e.span, "division by zero in a constant"))?;
                (v, binary_type(*op, l, r))
            }
            ExprKind::Cast(t, a) => (truncate(*t, self.const_eval(a)?), Arith::of(*t)),
            ExprKind::Cond(c, a, b) => {
                let (x, l) = self.const_eval_typed(a)?;
                let (y, r) = self.const_eval_typed(b)?;
                let t = Arith::common(l, r);
                if self.const_eval(c)? != 0 {
                    (to_arith(t, x), t)
                } else {
                    (to_arith(t, y), t)
                }
            }
            _ => return Err(self.err(e.span, "expected a constant expression")),
        })
    }

    // ----- workload ---------------------------------------------------------

    fn cpu(&self, n: &ast::Spanned<u64>) -> R<u32> {
        if self.prog.cpus == 0 {
            // `cpus` was rejected: there is no count to compare with.
            if n.value >= 64 {
                return Err(self
                    .err(
                        n.span,
                        format!(
                            "cpu {} does not exist: a scenario has at most 64 processors",
                            n.value
                        ),
                    )
                    .help("use a cpu from 0 to 63, below the header's `cpus`"));
            }
            return Ok(n.value as u32);
        }
        if n.value >= self.prog.cpus as u64 {
            let last = self.prog.cpus - 1;
            return Err(self
                .err(
                    n.span,
                    format!(
                        "cpu {} does not exist: the scenario has {} processor{}",
                        n.value,
                        self.prog.cpus,
                        if self.prog.cpus == 1 { "" } else { "s" }
                    ),
                )
                .help(format!(
                    "use a cpu from 0 to {last}, or raise `cpus` in the header"
                )));
        }
        Ok(n.value as u32)
    }

    fn thread(&mut self, t: &ast::ThreadDecl) -> R<()> {
        if !self.thread_names.insert(t.name.name.clone()) {
            return Err(self.err(
                t.name.span,
                format!("a thread named `{}` is already declared", t.name.name),
            ));
        }
        let cpu = t.cpu.as_ref().map(|c| self.cpu(c)).transpose()?;
        let repeat = match &t.repeat {
            Some(r) if r.value == 0 || r.value > 1024 => {
                return Err(self.err(r.span, "`repeat` takes 1 to 1024 copies"));
            }
            Some(r) => r.value as u32,
            None => 1,
        };
        let routine = ast::Routine {
            paged: false,
            ret: ast::Spanned {
                value: Type::Void,
                span: t.name.span,
            },
            name: t.name.clone(),
            params: vec![],
            body: t.body.clone(),
            span: t.span,
        };
        let errors_before = self.error_count();
        let mut code = self.compile_routine(&routine);
        if self.error_count() > errors_before {
            // Reported; the thread still counts as declared.
            return Ok(());
        }
        code.address = CODE_BASE + 0x80_0000 + 0x100 * (self.prog.threads.len() as u64 + 1);
        self.prog.routines.push(code);
        let id = self.prog.routines.len() as u32 - 1;
        self.prog.threads.push(ThreadSpec {
            name: t.name.name.clone(),
            cpu,
            repeat,
            routine: id,
        });
        Ok(())
    }

    fn interrupt_line(&mut self, i: &ast::InterruptLine) -> R<()> {
        let idx = match self.lookup_global(&i.interrupt)? {
            Global::Interrupt(x) => x,
            g => {
                return Err(self
                    .err(
                        i.interrupt.span,
                        format!(
                            "`{}` is {}, not a KINTERRUPT",
                            i.interrupt.name,
                            kind_name(g, &self.prog)
                        ),
                    )
                    .help("declare it as `KINTERRUPT I(Isr, Irql);`"))
            }
        };
        let cpu = self.cpu(&i.cpu)?;
        if let Some(e) = &i.every {
            if e.value < MIN_INTERRUPT_PERIOD_NS {
                return Err(self
                    .err(e.span, "`every` is shorter than a device can interrupt")
                    .help("the shortest period is 1us"));
            }
        }
        let count = match (&i.count, &i.every) {
            (Some(c), _) => Some(c.value),
            (None, Some(_)) => None,
            (None, None) => Some(1),
        };
        self.interrupt_line_warnings(i);
        self.prog.interrupt_lines.push(InterruptLineSpec {
            interrupt: idx,
            cpu,
            at: i.at.as_ref().map_or(0, |a| a.value),
            every: i.every.as_ref().map(|e| e.value),
            count,
        });
        Ok(())
    }

    /// Warnings for an interrupt line that is accepted but probably not
    /// what was meant.
    fn interrupt_line_warnings(&mut self, i: &ast::InterruptLine) {
        let name = &i.interrupt.name;
        if i.at.is_none() {
            let help = match &i.every {
                Some(_) => format!(
                    "write `at 0us` if the device interrupts as the run starts, or the time of its first interrupt (`interrupt {name} on cpu {} at 10us every ...`)",
                    i.cpu.value
                ),
                None => format!(
                    "write `at 0us` if the device interrupts as the run starts, or when it does (`interrupt {name} on cpu {} at 10us;`)",
                    i.cpu.value
                ),
            };
            let w = self
                .err(
                    i.interrupt.span,
                    format!("interrupt line `{name}` has no `at`: it first fires at time 0, before any thread has run"),
                )
                .label("fires at 0us")
                .help(help);
            self.prog.warnings.push(w);
        }
        if let (Some(c), None) = (&i.count, &i.every) {
            if c.value > 1 {
                let w = self
                    .err(
                        c.span,
                        format!(
                            "`count {}` without `every`: the interrupt arrives once",
                            c.value
                        ),
                    )
                    .label("only the first arrival happens")
                    .help("add `every D` for arrivals D apart");
                self.prog.warnings.push(w);
            }
        }
    }

    // ----- routines ---------------------------------------------------------

    /// Compile one routine; its errors are recorded (the code is then
    /// never run).
    fn compile_routine(&self, r: &ast::Routine) -> Code {
        let mut f = Fn {
            c: self,
            scopes: vec![vec![]],
            slots: vec![],
            ops: vec![],
            loops: vec![],
            tries: 0,
            returns: r.ret.value != Type::Void,
            ret: match r.ret.value {
                Type::Scalar(t) => Some(t),
                _ => None,
            },
            ptr_slots: HashMap::new(),
            ptr_types: HashMap::new(),
            struct_locals: HashMap::new(),
            event_locals: HashMap::new(),
        };
        for p in &r.params {
            let slot_ty = match &p.ty.value {
                Type::Scalar(t) => Some(*t),
                Type::Pointer(_) | Type::Event => Some(ScalarType::Ulong64),
                Type::QueueHandle => None,
                Type::Struct(s) => {
                    self.record(
                        self.err(p.ty.span, format!("a `{s}` cannot be passed by value"))
                            .help(format!("pass a pointer: `P{s}` or `{s} *`")),
                    );
                    Some(ScalarType::Ulong)
                }
                Type::Void => {
                    self.record(self.err(p.ty.span, "a parameter cannot be VOID"));
                    Some(ScalarType::Ulong)
                }
            };
            match f.declare_local(&p.name, slot_ty) {
                Ok(slot) => {
                    if let Type::Pointer(pn) = &p.ty.value {
                        if let Some(s) = self.pointers.get(pn) {
                            f.ptr_slots.insert(slot, s.clone());
                        }
                        f.ptr_types.insert(slot, pn.clone());
                    }
                }
                Err(e) => self.record(e),
            }
        }
        let params = f.slots.len() as u16;
        f.block(&r.body);
        if f.returns {
            f.ops.push(Op::Push(0));
        }
        f.ops.push(Op::Return(f.returns));
        Code {
            name: r.name.name.clone(),
            file: self.src.file_index(r.span.offset) as u32,
            params,
            slots: f.slots,
            ops: f.ops,
            paged: r.paged,
            returns: f.returns,
            ret: f.ret,
            address: 0,
            line: self.line(r.span),
        }
    }
}

/// Store a value into a variable of type `t` (shared with the engine):
/// C's conversion, keeping the low bits (64-bit unsigned values are kept as
/// their bits in an `i64`).
pub fn truncate(t: ScalarType, v: i64) -> i64 {
    match t {
        ScalarType::Ulong => v as u32 as i64,
        ScalarType::Long => v as i32 as i64,
        ScalarType::Boolean | ScalarType::Kirql | ScalarType::Uchar => v as u8 as i64,
        ScalarType::Char => v as i8 as i64,
        ScalarType::Ushort => v as u16 as i64,
        ScalarType::Ulong64 | ScalarType::Long64 => v,
    }
}

/// Convert a value to the arithmetic type `a`.
pub fn to_arith(a: Arith, v: i64) -> i64 {
    truncate(a.scalar(), v)
}

/// Apply a unary operator in the arithmetic type `a` (shared with the engine).
pub fn eval_unary(op: ast::UnOp, a: Arith, v: i64) -> i64 {
    let v = to_arith(a, v);
    match op {
        ast::UnOp::Neg => to_arith(a, v.wrapping_neg()),
        ast::UnOp::Not => (v == 0) as i64,
        ast::UnOp::BitNot => to_arith(a, !v),
    }
}

/// The arithmetic type of a binary operator's result given its operands'
/// promoted types: shifts take the left operand's, comparisons and logical
/// operators give `int`, the rest the usual arithmetic conversions.
pub fn binary_type(op: BinOp, l: Arith, r: Arith) -> Arith {
    match op {
        BinOp::Shl | BinOp::Shr => l,
        BinOp::Lt
        | BinOp::Le
        | BinOp::Gt
        | BinOp::Ge
        | BinOp::Eq
        | BinOp::Ne
        | BinOp::And
        | BinOp::Or => Arith::I32,
        _ => Arith::common(l, r),
    }
}

/// The type the operands of `op` are converted to before it applies.
pub fn operand_type(op: BinOp, l: Arith, r: Arith) -> Arith {
    match op {
        BinOp::Shl | BinOp::Shr => l,
        _ => Arith::common(l, r),
    }
}

/// Apply a binary operator whose operands are converted to `t` (see
/// [`operand_type`]), shared with the engine; `None` on division by zero.
/// A shift count is taken modulo the operand's width (x64).
pub fn eval_binary(op: BinOp, t: Arith, a: i64, b: i64) -> Option<i64> {
    let a = to_arith(t, a);
    let wide = matches!(t, Arith::I64 | Arith::U64);
    let unsigned = matches!(t, Arith::U32 | Arith::U64);
    let b = if matches!(op, BinOp::Shl | BinOp::Shr) {
        b & if wide { 63 } else { 31 }
    } else {
        to_arith(t, b)
    };
    // Unsigned comparisons: a 64-bit unsigned value is its bits in an i64;
    // 32-bit unsigned values are already non-negative.
    let cmp = |x: i64, y: i64| {
        if unsigned {
            (x as u64).cmp(&(y as u64))
        } else {
            x.cmp(&y)
        }
    };
    use std::cmp::Ordering::*;
    let r = match op {
        BinOp::Add => a.wrapping_add(b),
        BinOp::Sub => a.wrapping_sub(b),
        BinOp::Mul => a.wrapping_mul(b),
        BinOp::Div | BinOp::Rem => {
            if b == 0 {
                return None;
            }
            let div = op == BinOp::Div;
            match t {
                Arith::U64 => {
                    let (x, y) = (a as u64, b as u64);
                    (if div { x / y } else { x % y }) as i64
                }
                _ if div => a.wrapping_div(b),
                _ => a.wrapping_rem(b),
            }
        }
        BinOp::Shl => a.wrapping_shl(b as u32),
        BinOp::Shr => {
            if unsigned {
                ((a as u64) >> (b as u32)) as i64
            } else {
                a >> (b as u32)
            }
        }
        BinOp::Lt => return Some((cmp(a, b) == Less) as i64),
        BinOp::Le => return Some((cmp(a, b) != Greater) as i64),
        BinOp::Gt => return Some((cmp(a, b) == Greater) as i64),
        BinOp::Ge => return Some((cmp(a, b) != Less) as i64),
        BinOp::Eq => return Some((a == b) as i64),
        BinOp::Ne => return Some((a != b) as i64),
        BinOp::BitAnd => a & b,
        BinOp::BitOr => a | b,
        BinOp::BitXor => a ^ b,
        BinOp::And => return Some((a != 0 && b != 0) as i64),
        BinOp::Or => return Some((a != 0 || b != 0) as i64),
    };
    Some(to_arith(t, r))
}

/// Blocks each `ExAllocatePoolWithTag` call site can hand out.
pub const POOL_BLOCKS: u32 = 16;

/// Call `fs` on a statement and every statement inside it, and `f` on
/// every expression of them, outermost first and in source order.
fn walk(s: &Stmt, fs: &mut dyn FnMut(&Stmt), f: &mut dyn FnMut(&Expr)) {
    fs(s);
    match &s.kind {
        StmtKind::Decl { vars, .. } => {
            for (_, e) in vars {
                if let Some(e) = e {
                    walk_expr(e, f);
                }
            }
        }
        StmtKind::Assign { value, .. } => walk_expr(value, f),
        StmtKind::AssignPlace { target, value, .. } => {
            walk_expr(target, f);
            walk_expr(value, f);
        }
        StmtKind::IncDecPlace { target, .. } => walk_expr(target, f),
        StmtKind::If { cond, then, els } => {
            walk_expr(cond, f);
            walk(then, fs, f);
            if let Some(e) = els {
                walk(e, fs, f);
            }
        }
        StmtKind::While { cond, body } | StmtKind::DoWhile { body, cond } => {
            walk_expr(cond, f);
            walk(body, fs, f);
        }
        StmtKind::For {
            init,
            cond,
            step,
            body,
        } => {
            if let Some(i) = init {
                walk(i, fs, f);
            }
            if let Some(c) = cond {
                walk_expr(c, f);
            }
            if let Some(st) = step {
                walk(st, fs, f);
            }
            walk(body, fs, f);
        }
        StmtKind::Switch { value, arms } => {
            walk_expr(value, f);
            for a in arms {
                for st in &a.stmts {
                    walk(st, fs, f);
                }
            }
        }
        StmtKind::Return(Some(e)) | StmtKind::Expr(e) => walk_expr(e, f),
        StmtKind::Block(b) => {
            for st in &b.stmts {
                walk(st, fs, f);
            }
        }
        StmtKind::Try { body, handler, .. } => {
            for st in body.stmts.iter().chain(&handler.stmts) {
                walk(st, fs, f);
            }
        }
        _ => {}
    }
}

/// Call `f` on every expression of a statement, outermost first.
fn walk_stmt(s: &Stmt, f: &mut dyn FnMut(&Expr)) {
    walk(s, &mut |_| {}, f);
}

/// Call `f` on a statement and every statement inside it.
fn each_stmt(s: &Stmt, f: &mut dyn FnMut(&Stmt)) {
    walk(s, f, &mut |_| {});
}

/// Call `f` on an expression and every expression inside it.
fn walk_expr(e: &Expr, f: &mut dyn FnMut(&Expr)) {
    f(e);
    match &e.kind {
        ExprKind::Unary(_, a)
        | ExprKind::Cast(_, a)
        | ExprKind::AddrOfPlace(a)
        | ExprKind::Deref(a) => walk_expr(a, f),
        ExprKind::Binary(_, a, b) | ExprKind::Index(a, b) => {
            walk_expr(a, f);
            walk_expr(b, f);
        }
        ExprKind::Cond(c, a, b) => {
            walk_expr(c, f);
            walk_expr(a, f);
            walk_expr(b, f);
        }
        ExprKind::Member { base, .. } => walk_expr(base, f),
        ExprKind::Call { args, .. } => {
            for a in args {
                walk_expr(a, f);
            }
        }
        _ => {}
    }
}

/// The type of an unsuffixed decimal literal: `LONG`, else `LONG64`.
fn decimal_type(v: i64) -> Arith {
    if i32::try_from(v).is_ok() {
        Arith::I32
    } else {
        Arith::I64
    }
}

/// Compiles one routine body.
struct Fn<'c, 'a> {
    c: &'c Checker<'a>,
    /// Name → (slot, type; None = queue handle), innermost scope last.
    scopes: Vec<Vec<(String, u16, Option<ScalarType>)>>,
    slots: Vec<Option<ScalarType>>,
    ops: Vec<Op>,
    /// Per enclosing loop: (continue target or pending patches, break patches, try depth).
    loops: Vec<Loop>,
    tries: u32,
    returns: bool,
    /// The declared return type, when a scalar (C converts the value).
    ret: Option<ScalarType>,
    /// Local slots holding a pointer to a struct: the struct's name.
    ptr_slots: HashMap<u16, String>,
    /// Local slots declared with a pointer type: the type as written.
    ptr_types: HashMap<u16, String>,
    /// Struct locals (one local per leaf): their struct type, by name.
    struct_locals: HashMap<String, String>,
    /// `KEVENT` locals: the slot holding their event's reference.
    event_locals: HashMap<String, u16>,
}

struct Loop {
    breaks: Vec<usize>,
    continues: Vec<usize>,
    tries: u32,
    /// A `switch`: `break` leaves it, `continue` belongs to a loop outside.
    switch: bool,
}

enum Lvalue {
    Local(u16, ScalarType),
    Var(VarId),
}

impl Fn<'_, '_> {
    fn err(&self, span: Span, msg: impl Into<String>) -> SimError {
        self.c.err(span, msg)
    }

    fn here(&self) -> u32 {
        self.ops.len() as u32
    }

    fn patch(&mut self, at: usize, target: u32) {
        match &mut self.ops[at] {
            Op::Jump(t) | Op::JumpIfFalse(t) | Op::TryEnter(t) => *t = target,
            _ => unreachable!("patching a non-jump"),
        }
    }

    fn local(&self, name: &str) -> Option<(u16, Option<ScalarType>)> {
        self.scopes
            .iter()
            .rev()
            .flat_map(|s| s.iter().rev())
            .find(|(n, _, _)| n == name)
            .map(|(_, s, t)| (*s, *t))
    }

    fn local_names(&self) -> Vec<&str> {
        self.scopes
            .iter()
            .flat_map(|s| s.iter().map(|(n, _, _)| n.as_str()))
            .collect()
    }

    fn declare_local(&mut self, id: &Ident, ty: Option<ScalarType>) -> R<u16> {
        if self
            .scopes
            .last()
            .is_some_and(|s| s.iter().any(|(n, _, _)| *n == id.name))
        {
            return Err(self.err(
                id.span,
                format!("`{}` is already declared in this block", id.name),
            ));
        }
        if self.c.constant(&id.name).is_some() || kernel::lookup(&id.name).is_some() {
            return Err(self.err(
                id.span,
                format!("`{}` is a kernel name and cannot be a local", id.name),
            ));
        }
        if self.slots.len() >= MAX_SLOTS {
            return Err(self.err(id.span, "too many locals in one routine"));
        }
        let slot = self.slots.len() as u16;
        self.slots.push(ty);
        if let Some(scope) = self.scopes.last_mut() {
            scope.push((id.name.clone(), slot, ty));
        }
        Ok(slot)
    }

    fn unknown(&self, id: &Ident) -> SimError {
        self.c.unknown(id, &self.local_names())
    }

    fn stmt_boundary(&mut self, span: Span) {
        let line = self.c.line(span);
        self.ops.push(Op::Stmt(line));
    }

    /// Compile a block; an error in a statement is recorded and the next
    /// statement is compiled as if it had not happened.
    fn block(&mut self, b: &ast::Block) {
        self.scopes.push(vec![]);
        for s in &b.stmts {
            let (scopes, loops, tries) = (self.scopes.len(), self.loops.len(), self.tries);
            if let Err(e) = self.stmt(s) {
                self.c.record(e);
                // Undo what the abandoned statement left open.
                self.scopes.truncate(scopes);
                self.loops.truncate(loops);
                self.tries = tries;
                self.declare_after_error(s);
            }
        }
        self.scopes.pop();
    }

    /// After a declaration failed, declare the names it did not get to, so
    /// their uses are not reported as undeclared too.
    fn declare_after_error(&mut self, s: &Stmt) {
        let StmtKind::Decl { ty, vars } = &s.kind else {
            return;
        };
        let slot_ty = match &ty.value {
            Type::Scalar(t) => Some(*t),
            Type::QueueHandle => None,
            _ => Some(ScalarType::Ulong),
        };
        for (id, _) in vars {
            let declared_here = self
                .scopes
                .last()
                .is_some_and(|s| s.iter().any(|(n, _, _)| *n == id.name));
            if !declared_here {
                let _ = self.declare_local(id, slot_ty);
            }
        }
    }

    /// The struct type an expression designates (a struct local, a global
    /// or element of struct type, `p->Inner`, `*p`), if it is one.
    fn struct_type_of(&self, e: &Expr) -> Option<String> {
        match &e.kind {
            ExprKind::Name(id) if self.local(&id.name).is_none() => {
                if let Some(s) = self.struct_locals.get(&id.name) {
                    return Some(s.clone());
                }
            }
            ExprKind::Member {
                base,
                field,
                arrow: false,
            } if self.struct_type_of(base).is_some() => {
                let s = self.struct_type_of(base)?;
                return match self.c.field_of(&s, &field.name)? {
                    (
                        ast::FieldDecl {
                            ty: ast::FieldType::Struct(t),
                            array: None,
                            ..
                        },
                        _,
                        _,
                    ) => Some(t),
                    _ => None,
                };
            }
            _ => {}
        }
        match self.static_type(e)? {
            (ast::FieldType::Struct(s), None) => Some(s),
            _ => None,
        }
    }

    /// C's struct copy `dst = src` of struct type `s`: every scalar and
    /// pointer leaf, in field order, in one statement. A struct holding a
    /// lock, list entry, queue handle or kernel object cannot be copied
    /// (contract v2: copying a live kernel object is a bug).
    fn struct_copy(&mut self, s: &str, dst: &Expr, src: &Expr) -> R<()> {
        match self.struct_type_of(src) {
            Some(t) if t == s => {}
            Some(t) => {
                return Err(self
                    .err(src.span, format!("a `{t}` cannot be assigned to a `{s}`"))
                    .label("other struct type"))
            }
            None => {
                return Err(self
                    .err(src.span, format!("expected a `{s}` to copy"))
                    .help("a struct is assigned from a struct of the same type: `Copy = *p;`, `Copy = Devices[1];`"))
            }
        }
        let mut pairs = vec![];
        if let Err(what) = self.copy_leaves(s, dst, src, &mut pairs, 0) {
            return Err(self
                .err(dst.span.to(src.span), format!("a `{s}` holds {what} and cannot be copied"))
                .label("copies a live kernel object")
                .help("copy the data fields one by one; a lock, list entry or kernel object has one place"));
        }
        for (d, v) in pairs {
            if let Some(id) = self.local_element(&d) {
                let lv = self.lvalue(&id)?;
                self.expr(&v)?;
                self.store_lvalue(&lv);
            } else {
                self.scalar_place(&d)?;
                self.expr(&v)?;
                self.ops.push(Op::StoreRef);
            }
        }
        Ok(())
    }

    /// The (destination, source) leaf expressions of a copy of struct `s`;
    /// `Err` names what cannot be copied.
    fn copy_leaves(
        &self,
        s: &str,
        dst: &Expr,
        src: &Expr,
        out: &mut Vec<(Expr, Expr)>,
        depth: usize,
    ) -> Result<(), String> {
        let def = self
            .c
            .structs
            .get(s)
            .ok_or_else(|| format!("an unknown type `{s}`"))?;
        if depth > 16 || out.len() > 4096 {
            return Err("that many fields".into());
        }
        let member = |base: &Expr, f: &ast::FieldDecl, k: Option<u64>| {
            let m = Expr {
                kind: ExprKind::Member {
                    base: Box::new(base.clone()),
                    field: f.name.clone(),
                    arrow: false,
                },
                span: base.span,
            };
            match k {
                None => m,
                Some(k) => Expr {
                    kind: ExprKind::Index(
                        Box::new(m),
                        Box::new(Expr {
                            kind: ExprKind::Int(k as i64),
                            span: base.span,
                        }),
                    ),
                    span: base.span,
                },
            }
        };
        for f in &def.fields {
            let ks: Vec<Option<u64>> = match f.array {
                Some(n) => (0..n).map(Some).collect(),
                None => vec![None],
            };
            for k in ks {
                let (d, v) = (member(dst, f, k), member(src, f, k));
                match &f.ty {
                    ast::FieldType::Scalar(_) | ast::FieldType::Pointer(_) => out.push((d, v)),
                    ast::FieldType::Struct(t) => self.copy_leaves(t, &d, &v, out, depth + 1)?,
                    ast::FieldType::KSpinLock => return Err("a KSPIN_LOCK".into()),
                    ast::FieldType::ExSpinLock => return Err("an EX_SPIN_LOCK".into()),
                    ast::FieldType::ListEntry => return Err("a LIST_ENTRY".into()),
                    ast::FieldType::QueueHandle => return Err("a KLOCK_QUEUE_HANDLE".into()),
                    ast::FieldType::Object(o) => return Err(o.with_article()),
                }
            }
        }
        Ok(())
    }

    fn stmt(&mut self, s: &Stmt) -> R<()> {
        match &s.kind {
            StmtKind::Empty => {}
            StmtKind::Block(b) => self.block(b),
            StmtKind::Decl { ty, vars } if matches!(ty.value, Type::Struct(_)) => {
                let Type::Struct(sname) = &ty.value else {
                    unreachable!("matched above");
                };
                self.stmt_boundary(s.span);
                for (id, init) in vars {
                    let mut leaves = vec![];
                    if let Err(what) = self.c.local_leaves(sname, &id.name, &mut leaves, 0) {
                        return Err(self
                            .err(ty.span, format!("a local struct cannot hold {what}"))
                            .help("declare it at file scope, or use a pointer to a global"));
                    }
                    for (name, t, pointee) in leaves {
                        let leaf = Ident {
                            name,
                            span: id.span,
                        };
                        let slot = self.declare_local(&leaf, t)?;
                        if let Some(p) = pointee {
                            self.ptr_slots.insert(slot, p);
                        }
                        if let Some(t) = t {
                            self.ops.push(Op::Push(0));
                            self.ops.push(Op::Store(slot, t));
                        }
                    }
                    self.struct_locals.insert(id.name.clone(), sname.clone());
                    if let Some(e) = init {
                        // `DEV Copy = *p;`: C's struct copy.
                        let dst = Expr {
                            kind: ExprKind::Name(id.clone()),
                            span: id.span,
                        };
                        self.struct_copy(sname, &dst, e)?;
                    }
                }
            }
            StmtKind::Decl { ty, vars } if ty.value == Type::Event => {
                self.stmt_boundary(s.span);
                for (id, init) in vars {
                    if let Some(e) = init {
                        return Err(self
                            .err(e.span, "a KEVENT cannot be initialized with `=`")
                            .help("call KeInitializeEvent(&Event, NotificationEvent, FALSE)"));
                    }
                    let Some(&site) = self.c.local_event_of.get(&id.span.offset) else {
                        return Err(self.err(id.span, "this KEVENT local was not prepared"));
                    };
                    // The local holds the reference of this activation's event.
                    let slot = self.declare_local(id, Some(ScalarType::Ulong64))?;
                    self.event_locals.insert(id.name.clone(), slot);
                    self.ops.push(Op::AllocLocalEvent { site, slot });
                }
            }
            StmtKind::Decl { ty, vars } => {
                let slot_ty = match &ty.value {
                    Type::Scalar(t) => Some(*t),
                    Type::QueueHandle => None,
                    Type::Event => unreachable!("handled above"),
                    Type::Void => return Err(self.err(ty.span, "a local cannot be VOID")),
                    Type::Struct(_) => unreachable!("handled above"),
                    Type::Pointer(_) => Some(ScalarType::Ulong64),
                };
                let pointee = match &ty.value {
                    Type::Pointer(p) => self.c.pointers.get(p).cloned(),
                    _ => None,
                };
                let ptr_type = match &ty.value {
                    Type::Pointer(p) => Some(p.clone()),
                    _ => None,
                };
                self.stmt_boundary(s.span);
                for (id, init) in vars {
                    // The initializer sees the outer names, as in C it sees the new one
                    // only for self-reference, which is meaningless here.
                    match (init, slot_ty) {
                        (Some(e), None) => {
                            return Err(
                                self.err(e.span, "a KLOCK_QUEUE_HANDLE cannot be initialized")
                            )
                        }
                        (Some(e), Some(t)) => {
                            self.expr(e)?;
                            let slot = self.declare_local(id, slot_ty)?;
                            if let Some(s) = &pointee {
                                self.ptr_slots.insert(slot, s.clone());
                            }
                            if let Some(p) = &ptr_type {
                                self.ptr_types.insert(slot, p.clone());
                            }
                            self.ops.push(Op::Store(slot, t));
                        }
                        (None, Some(t)) => {
                            let slot = self.declare_local(id, slot_ty)?;
                            if let Some(s) = &pointee {
                                self.ptr_slots.insert(slot, s.clone());
                            }
                            if let Some(p) = &ptr_type {
                                self.ptr_types.insert(slot, p.clone());
                            }
                            self.ops.push(Op::Push(0));
                            self.ops.push(Op::Store(slot, t));
                        }
                        (None, None) => {
                            self.declare_local(id, None)?;
                        }
                    }
                }
            }
            StmtKind::Assign {
                target,
                op: ast::AssignOp::Set,
                value,
            } if self
                .struct_type_of(&Expr {
                    kind: ExprKind::Name(target.clone()),
                    span: target.span,
                })
                .is_some() =>
            {
                self.stmt_boundary(s.span);
                let dst = Expr {
                    kind: ExprKind::Name(target.clone()),
                    span: target.span,
                };
                let sname = self.struct_type_of(&dst).expect("checked");
                self.struct_copy(&sname, &dst, value)?;
            }
            StmtKind::Assign { target, op, value } => {
                self.stmt_boundary(s.span);
                let lv = self.lvalue(target)?;
                match op {
                    ast::AssignOp::Set => {
                        self.expr(value)?;
                    }
                    ast::AssignOp::Compound(bin) => {
                        let l = self.load_lvalue(&lv);
                        let r = self.expr(value)?;
                        self.ops.push(Op::Binary(*bin, operand_type(*bin, l, r)));
                    }
                }
                self.store_lvalue(&lv);
            }
            StmtKind::IncDec { target, increment } => {
                self.stmt_boundary(s.span);
                self.incdec(target, *increment)?;
            }
            StmtKind::AssignPlace { target, op, value } if self.local_element(target).is_some() => {
                let target = self.local_element(target).expect("checked");
                return self.stmt(&Stmt {
                    kind: StmtKind::Assign {
                        target,
                        op: *op,
                        value: value.clone(),
                    },
                    span: s.span,
                });
            }
            StmtKind::IncDecPlace { target, increment } if self.local_element(target).is_some() => {
                let target = self.local_element(target).expect("checked");
                return self.stmt(&Stmt {
                    kind: StmtKind::IncDec {
                        target,
                        increment: *increment,
                    },
                    span: s.span,
                });
            }
            StmtKind::AssignPlace {
                target,
                op: ast::AssignOp::Set,
                value,
            } if self.struct_type_of(target).is_some() => {
                self.stmt_boundary(s.span);
                let sname = self.struct_type_of(target).expect("checked");
                self.struct_copy(&sname, target, value)?;
            }
            StmtKind::AssignPlace { target, op, value } => {
                self.stmt_boundary(s.span);
                let t = self.scalar_place(target)?;
                match op {
                    ast::AssignOp::Set => {
                        self.expr(value)?;
                    }
                    ast::AssignOp::Compound(bin) => {
                        self.ops.push(Op::Dup);
                        self.ops.push(Op::LoadRef);
                        let l = Arith::of(t);
                        let r = self.expr(value)?;
                        self.ops.push(Op::Binary(*bin, operand_type(*bin, l, r)));
                    }
                }
                self.ops.push(Op::StoreRef);
            }
            StmtKind::IncDecPlace { target, increment } => {
                self.stmt_boundary(s.span);
                let t = self.scalar_place(target)?;
                self.ops.push(Op::Dup);
                self.ops.push(Op::LoadRef);
                self.ops.push(Op::Push(1));
                self.ops.push(Op::Binary(
                    if *increment { BinOp::Add } else { BinOp::Sub },
                    Arith::of(t),
                ));
                self.ops.push(Op::StoreRef);
            }
            StmtKind::If { cond, then, els } => {
                self.stmt_boundary(s.span);
                self.expr(cond)?;
                let jf = self.ops.len();
                self.ops.push(Op::JumpIfFalse(0));
                self.scoped_stmt(then)?;
                match els {
                    Some(e) => {
                        let j = self.ops.len();
                        self.ops.push(Op::Jump(0));
                        let h = self.here();
                        self.patch(jf, h);
                        self.scoped_stmt(e)?;
                        let h = self.here();
                        self.patch(j, h);
                    }
                    None => {
                        let h = self.here();
                        self.patch(jf, h);
                    }
                }
            }
            StmtKind::DoWhile { body, cond } => {
                // body; boundary; cond; if true jump to the body. `continue`
                // goes to the condition.
                let top = self.here();
                self.loops.push(Loop {
                    breaks: vec![],
                    continues: vec![],
                    tries: self.tries,
                    switch: false,
                });
                let r = self.scoped_stmt(body);
                let lp = self.loops.pop().expect("loop pushed above");
                r?;
                let cont = self.here();
                self.stmt_boundary(cond.span);
                self.expr(cond)?;
                self.ops.push(Op::Unary(ast::UnOp::Not, Arith::I32));
                self.ops.push(Op::JumpIfFalse(top));
                let end = self.here();
                for b in lp.breaks {
                    self.patch(b, end);
                }
                for c in lp.continues {
                    self.patch(c, cont);
                }
            }
            StmtKind::Switch { value, arms } => self.switch(s, value, arms)?,
            StmtKind::While { cond, body } => {
                let top = self.here();
                self.stmt_boundary(s.span);
                self.expr(cond)?;
                let jf = self.ops.len();
                self.ops.push(Op::JumpIfFalse(0));
                self.loop_body(body, top, jf)?;
            }
            StmtKind::For {
                init,
                cond,
                step,
                body,
            } => {
                self.scopes.push(vec![]);
                if let Some(i) = init {
                    self.stmt(i)?;
                }
                let top = self.here();
                self.stmt_boundary(s.span);
                let jf = match cond {
                    Some(c) => {
                        self.expr(c)?;
                        self.ops.push(Op::JumpIfFalse(0));
                        Some(self.ops.len() - 1)
                    }
                    None => None,
                };
                self.loops.push(Loop {
                    breaks: vec![],
                    continues: vec![],
                    tries: self.tries,
                    switch: false,
                });
                self.scoped_stmt(body)?;
                let lp = self.loops.pop().expect("loop pushed above");
                let cont = self.here();
                if let Some(st) = step {
                    self.simple_stmt_no_boundary(st)?;
                }
                self.ops.push(Op::Jump(top));
                let end = self.here();
                if let Some(jf) = jf {
                    self.patch(jf, end);
                }
                for b in lp.breaks {
                    self.patch(b, end);
                }
                for c in lp.continues {
                    self.patch(c, cont);
                }
                self.scopes.pop();
            }
            StmtKind::Break | StmtKind::Continue => {
                let is_break = matches!(s.kind, StmtKind::Break);
                let Some(idx) = self.loops.iter().rposition(|l| is_break || !l.switch) else {
                    return Err(if is_break {
                        self.err(s.span, "`break` outside a loop")
                    } else {
                        self.err(s.span, "`continue` outside a loop")
                    });
                };
                for _ in self.loops[idx].tries..self.tries {
                    self.ops.push(Op::TryExit);
                }
                let at = self.ops.len();
                self.ops.push(Op::Jump(0));
                let lp = &mut self.loops[idx];
                if is_break {
                    lp.breaks.push(at);
                } else {
                    lp.continues.push(at);
                }
            }
            StmtKind::Return(value) => {
                self.stmt_boundary(s.span);
                match (value, self.returns) {
                    (Some(v), true) => {
                        self.expr(v)?;
                    }
                    (None, false) => {}
                    (Some(v), false) => {
                        return Err(self.err(v.span, "a VOID routine cannot return a value"))
                    }
                    (None, true) => {
                        return Err(self
                            .err(s.span, "this routine must return a value")
                            .help("write `return value;`"))
                    }
                }
                self.ops.push(Op::Return(self.returns));
            }
            StmtKind::Expr(e) => {
                self.stmt_boundary(s.span);
                match &e.kind {
                    ExprKind::Call { callee, args } => {
                        self.call(callee, args, e.span, false)?;
                    }
                    _ => {
                        self.expr(e)?;
                        self.ops.push(Op::Pop);
                    }
                }
            }
            StmtKind::Try {
                body,
                filter,
                handler,
            } => {
                self.stmt_boundary(s.span);
                let f = self.c.const_eval(filter)?;
                match f {
                    1 => {
                        let enter = self.ops.len();
                        self.ops.push(Op::TryEnter(0));
                        self.tries += 1;
                        self.block(body);
                        self.tries -= 1;
                        self.ops.push(Op::TryExit);
                        let j = self.ops.len();
                        self.ops.push(Op::Jump(0));
                        let h = self.here();
                        self.patch(enter, h);
                        self.block(handler);
                        let end = self.here();
                        self.patch(j, end);
                    }
                    0 => self.block(body),
                    _ => {
                        return Err(self
                            .err(filter.span, "only EXCEPTION_EXECUTE_HANDLER and EXCEPTION_CONTINUE_SEARCH filters are supported"))
                    }
                }
            }
        }
        Ok(())
    }

    /// `switch (value) { ... }`: the value in a hidden local, a test per
    /// label jumping to its arm, the arms in order (C fall-through).
    fn switch(&mut self, s: &Stmt, value: &Expr, arms: &[ast::SwitchArm]) -> R<()> {
        self.stmt_boundary(s.span);
        let t = self.expr(value)?;
        self.scopes.push(vec![]);
        let slot = self.slots.len() as u16;
        self.slots.push(Some(t.scalar()));
        self.ops.push(Op::Store(slot, t.scalar()));
        let mut seen: Vec<(i64, Span)> = vec![];
        let mut default: Option<usize> = None;
        // (jump to patch, arm index)
        let mut tests: Vec<(usize, usize)> = vec![];
        for (i, arm) in arms.iter().enumerate() {
            for (label, span) in &arm.labels {
                match label {
                    None => {
                        if default.is_some() {
                            self.scopes.pop();
                            return Err(self
                                .err(*span, "a second `default` label in one `switch`")
                                .label("repeated"));
                        }
                        default = Some(i);
                    }
                    Some(e) => {
                        let (v, _) = match self.c.const_eval_typed(e) {
                            Ok(v) => v,
                            Err(err) => {
                                self.scopes.pop();
                                return Err(
                                    err.help("a `case` label is an integer constant expression")
                                );
                            }
                        };
                        let v = to_arith(t, v);
                        if let Some((_, first)) = seen.iter().find(|(x, _)| *x == v) {
                            let line = self.c.line(*first);
                            self.scopes.pop();
                            return Err(self
                                .err(e.span, format!("duplicate `case` value {v}"))
                                .label("already a label")
                                .help(format!("the first one is on line {line}")));
                        }
                        seen.push((v, e.span));
                        self.ops.push(Op::Load(slot));
                        self.ops.push(Op::Push(v));
                        self.ops.push(Op::Binary(BinOp::Ne, t));
                        tests.push((self.ops.len(), i));
                        self.ops.push(Op::JumpIfFalse(0));
                    }
                }
            }
        }
        let to_default = self.ops.len();
        self.ops.push(Op::Jump(0));
        self.loops.push(Loop {
            breaks: vec![],
            continues: vec![],
            tries: self.tries,
            switch: true,
        });
        let mut starts = vec![];
        let mut result = Ok(());
        for arm in arms {
            starts.push(self.here());
            for st in &arm.stmts {
                if let Err(e) = self.stmt(st) {
                    result = Err(e);
                    break;
                }
            }
            if result.is_err() {
                break;
            }
        }
        let lp = self.loops.pop().expect("pushed above");
        self.scopes.pop();
        result?;
        let end = self.here();
        for (at, arm) in tests {
            self.patch(at, starts[arm]);
        }
        self.patch(to_default, default.map_or(end, |d| starts[d]));
        for b in lp.breaks {
            self.patch(b, end);
        }
        for c in lp.continues {
            // `continue` inside a switch belongs to an outer loop; the
            // search above never picks a switch for it.
            self.patch(c, end);
        }
        Ok(())
    }

    /// A loop body with break/continue patching; `top` is the condition.
    fn loop_body(&mut self, body: &Stmt, top: u32, jf: usize) -> R<()> {
        self.loops.push(Loop {
            breaks: vec![],
            continues: vec![],
            tries: self.tries,
            switch: false,
        });
        self.scoped_stmt(body)?;
        let lp = self.loops.pop().expect("loop pushed above");
        self.ops.push(Op::Jump(top));
        let end = self.here();
        self.patch(jf, end);
        for b in lp.breaks {
            self.patch(b, end);
        }
        for c in lp.continues {
            self.patch(c, top);
        }
        Ok(())
    }

    fn scoped_stmt(&mut self, s: &Stmt) -> R<()> {
        self.scopes.push(vec![]);
        let r = self.stmt(s);
        self.scopes.pop();
        r
    }

    /// A for-loop step: the loop head's boundary already paid for it.
    fn simple_stmt_no_boundary(&mut self, s: &Stmt) -> R<()> {
        let before = self.ops.len();
        self.stmt(s)?;
        if matches!(self.ops.get(before), Some(Op::Stmt(_))) {
            self.ops.remove(before);
        }
        Ok(())
    }

    fn incdec(&mut self, target: &Ident, inc: bool) -> R<()> {
        let lv = self.lvalue(target)?;
        let t = self.load_lvalue(&lv);
        self.ops.push(Op::Push(1));
        self.ops
            .push(Op::Binary(if inc { BinOp::Add } else { BinOp::Sub }, t));
        self.store_lvalue(&lv);
        Ok(())
    }

    fn lvalue(&self, id: &Ident) -> R<Lvalue> {
        if let Some((slot, ty)) = self.local(&id.name) {
            return match ty {
                Some(t) => Ok(Lvalue::Local(slot, t)),
                None => Err(self.err(
                    id.span,
                    format!(
                        "`{}` is a KLOCK_QUEUE_HANDLE; it cannot be assigned",
                        id.name
                    ),
                )),
            };
        }
        if self.c.constant(&id.name).is_some() {
            return Err(self.err(
                id.span,
                format!("`{}` is a constant and cannot be assigned", id.name),
            ));
        }
        match self.c.globals.get(&id.name) {
            Some((Global::Var(v), _)) => Ok(Lvalue::Var(*v)),
            Some((g, _)) => Err(self.err(
                id.span,
                format!(
                    "`{}` is {}, not a variable",
                    id.name,
                    kind_name(*g, &self.c.prog)
                ),
            )),
            None => Err(self.unknown(id)),
        }
    }

    /// Compile a place (a global aggregate, field, element or `p->f`):
    /// code that pushes its reference; the type of what it designates.
    fn place(&mut self, e: &Expr) -> R<(ast::FieldType, Option<u64>)> {
        if let ExprKind::Member {
            base,
            field,
            arrow: false,
        } = &e.kind
        {
            if let ExprKind::Name(_) | ExprKind::Member { .. } | ExprKind::Index(..) = base.kind {
                // `Head.Flink` / `Entry.Blink` of a LIST_ENTRY.
                if self.is_list_entry_place(base) {
                    self.place(base)?;
                    let off = match field.name.as_str() {
                        "Flink" => 0,
                        "Blink" => 1,
                        _ => {
                            return Err(self
                                .err(
                                    field.span,
                                    format!("LIST_ENTRY has no field `{}`", field.name),
                                )
                                .help("its fields are Flink and Blink"))
                        }
                    };
                    if off != 0 {
                        self.ops.push(Op::AddRef {
                            offset: ref_offset(off, 0),
                            deref: false,
                        });
                    }
                    return Ok((ast::FieldType::Scalar(ScalarType::Ulong64), None));
                }
            }
        }
        match &e.kind {
            ExprKind::Name(id) => {
                if self.local(&id.name).is_some() {
                    return Err(self
                        .err(
                            id.span,
                            format!("`{}` is a local, not a struct or array", id.name),
                        )
                        .help("fields and elements are reached through globals or pointers"));
                }
                if let Some((t, n, v, l)) = self.c.aggregates.get(&id.name).cloned() {
                    self.ops.push(Op::Push(make_ref(v, l)));
                    return Ok((t, n));
                }
                match self.c.globals.get(&id.name) {
                    Some((Global::Var(v), _)) => {
                        let t = self.c.prog.vars[*v as usize].ty;
                        self.ops.push(Op::Push(make_ref(*v, 0)));
                        Ok((ast::FieldType::Scalar(t), None))
                    }
                    Some((Global::Lock(l), _)) => {
                        let t = match self.c.prog.locks[l.0 as usize].kind {
                            LockKind::Ex => ast::FieldType::ExSpinLock,
                            _ => ast::FieldType::KSpinLock,
                        };
                        self.ops.push(Op::Push(make_ref(0, l.0)));
                        Ok((t, None))
                    }
                    Some((g, _)) => Err(self.err(
                        id.span,
                        format!(
                            "`{}` is {}, not a struct or array",
                            id.name,
                            kind_name(*g, &self.c.prog)
                        ),
                    )),
                    None => Err(self.unknown(id)),
                }
            }
            ExprKind::Member { base, field, arrow } => {
                let s = if *arrow {
                    self.pointer(base)?
                } else {
                    match self.place(base)? {
                        (ast::FieldType::Struct(s), None) => s,
                        _ => {
                            return Err(self
                                .err(base.span, "`.` needs a struct")
                                .help("index an array first, or use `->` on a pointer"))
                        }
                    }
                };
                let Some((fd, v, l)) = self.c.field_of(&s, &field.name) else {
                    let names: Vec<String> = self
                        .c
                        .structs
                        .get(&s)
                        .map(|d| d.fields.iter().map(|f| f.name.name.clone()).collect())
                        .unwrap_or_default();
                    let mut err = self
                        .err(field.span, format!("`{s}` has no field `{}`", field.name))
                        .label("unknown field");
                    if let Some(h) = did_you_mean(&field.name, names.iter().map(String::as_str)) {
                        err = err.help(h);
                    }
                    return Err(err);
                };
                if v != 0 || l != 0 || *arrow {
                    self.ops.push(Op::AddRef {
                        offset: ref_offset(v, l),
                        deref: *arrow,
                    });
                }
                Ok((fd.ty, fd.array))
            }
            ExprKind::Deref(inner) => {
                let Some(p) = self.ptr_name(inner) else {
                    return Err(self
                        .err(inner.span, "`*` needs a pointer")
                        .label("not a typed pointer")
                        .help("dereference a pointer variable, field or routine result (`*p`); a PVOID must be assigned to a typed pointer first"));
                };
                let Some(t) = self.pointee(&p) else {
                    return Err(self
                        .err(inner.span, format!("a `{p}` cannot be dereferenced"))
                        .help("assign it to a pointer to a struct or scalar first (`PX p = Context;`)"));
                };
                self.expr(inner)?;
                self.ops.push(Op::AddRef {
                    offset: 0,
                    deref: true,
                });
                Ok((t, None))
            }
            ExprKind::Index(base, index)
                if !matches!(self.static_type(base), Some((_, Some(_))))
                    && self.local_element(base).is_none()
                    && self.ptr_name(base).and_then(|p| self.pointee(&p)).is_some() =>
            {
                // `p[i]` on a pointer: the i-th element after the one it
                // points to, within the same array.
                let t = self
                    .ptr_name(base)
                    .and_then(|p| self.pointee(&p))
                    .expect("matched above");
                self.expr(base)?;
                self.ops.push(Op::AddRef {
                    offset: 0,
                    deref: true,
                });
                self.expr(index)?;
                let (vars, locks) = self.c.leaves(&t);
                self.ops.push(Op::IndexPtr { vars, locks });
                Ok((t, None))
            }
            ExprKind::Index(base, index) => {
                let (t, n) = self.place(base)?;
                let Some(n) = n else {
                    return Err(self
                        .err(base.span, "only an array can be indexed")
                        .help("pointer arithmetic and indexing a pointer are not supported"));
                };
                self.expr(index)?;
                let (v, l) = self.c.leaves(&t);
                self.ops.push(Op::Index {
                    len: n,
                    stride: ref_offset(v, l),
                });
                Ok((t, None))
            }
            _ => Err(self
                .err(e.span, "expected a variable, field or array element")
                .label("not a place")),
        }
    }

    /// Does this place designate a LIST_ENTRY (decided without code)?
    fn is_list_entry_place(&self, e: &Expr) -> bool {
        self.static_type(e) == Some((ast::FieldType::ListEntry, None))
    }

    /// The type a place designates, computed without emitting code.
    fn static_type(&self, e: &Expr) -> Option<(ast::FieldType, Option<u64>)> {
        match &e.kind {
            ExprKind::Name(id) => {
                if self.local(&id.name).is_some() {
                    return None;
                }
                self.c.aggregates.get(&id.name).map(|a| (a.0.clone(), a.1))
            }
            ExprKind::Member { base, field, arrow } => {
                let s = if *arrow {
                    match self.pointee(&self.ptr_name(base)?)? {
                        ast::FieldType::Struct(s) => s,
                        _ => return None,
                    }
                } else {
                    match self.static_type(base)? {
                        (ast::FieldType::Struct(s), None) => s,
                        _ => return None,
                    }
                };
                let (fd, _, _) = self.c.field_of(&s, &field.name)?;
                Some((fd.ty, fd.array))
            }
            ExprKind::Index(base, _) => match self.static_type(base) {
                Some((t, Some(_))) => Some((t, None)),
                // `p[i]` on a pointer.
                _ => Some((self.pointee(&self.ptr_name(base)?)?, None)),
            },
            ExprKind::Deref(inner) => Some((self.pointee(&self.ptr_name(inner)?)?, None)),
            _ => None,
        }
    }

    /// What a pointer type points to: a struct or a scalar (`None` for
    /// `PVOID`, routine and object pointers).
    fn pointee(&self, p: &str) -> Option<ast::FieldType> {
        if let Some(s) = self.c.pointers.get(p) {
            return Some(ast::FieldType::Struct(s.clone()));
        }
        if let Some(t) = crate::parser::scalar_pointer(p) {
            return Some(ast::FieldType::Scalar(t));
        }
        let t = crate::parser::scalar_type(p.strip_suffix(" *")?)?;
        Some(ast::FieldType::Scalar(t))
    }

    /// The pointer type (as written: `PDEV`, `DEV *`, `ULONG *`) of an
    /// expression whose value is a pointer, decided without code; `None`
    /// when it is not a typed pointer.
    /// Is `e` a pointer as written (a pointer variable, field, `&x`, a
    /// routine returning one) rather than an integer? A cast makes it an
    /// integer.
    fn typed_pointer(&self, e: &Expr) -> bool {
        !matches!(e.kind, ExprKind::Cast(..)) && self.ptr_name(e).is_some()
    }

    fn ptr_name(&self, e: &Expr) -> Option<String> {
        let addr_of = |t: Option<(ast::FieldType, Option<u64>)>| match t? {
            (ast::FieldType::Struct(s), None) => Some(format!("{s} *")),
            (ast::FieldType::Scalar(t), None) => Some(format!("{} *", t.name())),
            _ => None,
        };
        match &e.kind {
            ExprKind::Name(id) => {
                if let Some((slot, _)) = self.local(&id.name) {
                    return self
                        .ptr_types
                        .get(&slot)
                        .cloned()
                        .or_else(|| self.ptr_slots.get(&slot).map(|s| format!("{s} *")));
                }
                match self.c.aggregates.get(&id.name) {
                    Some((ast::FieldType::Pointer(p), None, _, _)) => Some(p.clone()),
                    _ => None,
                }
            }
            ExprKind::Member { .. } | ExprKind::Index(..) => {
                if let Some(id) = self.local_element(e) {
                    let (slot, _) = self.local(&id.name)?;
                    return self.ptr_slots.get(&slot).map(|s| format!("{s} *"));
                }
                match self.static_type(e)? {
                    (ast::FieldType::Pointer(p), None) => Some(p),
                    _ => None,
                }
            }
            ExprKind::Call { callee, args } => {
                if self.local(&callee.name).is_some() {
                    return None;
                }
                match callee.name.as_str() {
                    "CONTAINING_RECORD" => match &args.get(1)?.kind {
                        ExprKind::Name(t) => Some(format!("{} *", t.name)),
                        _ => None,
                    },
                    "RemoveHeadList" | "RemoveTailList" => Some("PLIST_ENTRY".into()),
                    _ => self.c.proto_of(&callee.name)?.ret_ptr.clone(),
                }
            }
            ExprKind::AddrOf(id) => {
                if self.local(&id.name).is_some() {
                    return None;
                }
                if let Some(t) = self.static_type(&Expr {
                    kind: ExprKind::Name(id.clone()),
                    span: id.span,
                }) {
                    return addr_of(Some(t));
                }
                match self.c.globals.get(&id.name) {
                    Some((Global::Var(v), _)) => addr_of(Some((
                        ast::FieldType::Scalar(self.c.prog.vars[*v as usize].ty),
                        None,
                    ))),
                    _ => None,
                }
            }
            ExprKind::AddrOfPlace(p) => addr_of(self.static_type(p)),
            ExprKind::Cond(_, a, b) => self.ptr_name(a).or_else(|| self.ptr_name(b)),
            _ => None,
        }
    }

    /// `CONTAINING_RECORD(Address, T, Field)`: the `T *` whose field
    /// (a name or a path `A.B.C`) is at `Address`.
    fn containing_record(&mut self, args: &[Expr], span: Span, want_value: bool) -> R<Arith> {
        if args.len() != 3 {
            return Err(self
                .err(span, "`CONTAINING_RECORD` takes 3 arguments")
                .help("CONTAINING_RECORD(Address, TYPE, Field)"));
        }
        let ExprKind::Name(ty) = &args[1].kind else {
            return Err(self.err(args[1].span, "expected a struct type name"));
        };
        if !self.c.structs.contains_key(&ty.name) {
            return Err(self
                .err(ty.span, format!("`{}` is not a struct type", ty.name))
                .help("CONTAINING_RECORD(Address, TYPE, Field)"));
        }
        // The field path, outermost first.
        let mut path = vec![];
        let mut f = &args[2];
        loop {
            match &f.kind {
                ExprKind::Name(id) => {
                    path.push(id.clone());
                    break;
                }
                ExprKind::Member {
                    base,
                    field,
                    arrow: false,
                } => {
                    path.push(field.clone());
                    f = base;
                }
                _ => return Err(self.err(args[2].span, "expected a field name or path")),
            }
        }
        path.reverse();
        let (mut s, mut v, mut l) = (ty.name.clone(), 0u32, 0u32);
        for (i, id) in path.iter().enumerate() {
            let Some((fd, dv, dl)) = self.c.field_of(&s, &id.name) else {
                return Err(self
                    .err(id.span, format!("`{s}` has no field `{}`", id.name))
                    .label("unknown field"));
            };
            v += dv;
            l += dl;
            match (&fd.ty, i + 1 < path.len()) {
                (ast::FieldType::Struct(n), true) => s = n.clone(),
                (_, true) => {
                    return Err(self.err(id.span, format!("`{}` is not a struct", id.name)))
                }
                _ => {}
            }
        }
        self.expr(&args[0])?;
        self.ops.push(Op::AddRef {
            offset: ref_offset(v, l).wrapping_neg(),
            deref: true,
        });
        if !want_value {
            self.ops.push(Op::Pop);
        }
        Ok(Arith::U64)
    }

    /// `a[K]` of a local array (one local per element): that element's
    /// name, when `K` is a constant.
    fn local_element(&self, e: &Expr) -> Option<Ident> {
        let name = self.local_path(e)?;
        if matches!(e.kind, ExprKind::Name(_)) {
            return None;
        }
        self.local(&name)?;
        Some(Ident { name, span: e.span })
    }

    /// The static path of a local's element or field (`H[1]`, `P.Data[2]`).
    fn local_path(&self, e: &Expr) -> Option<String> {
        match &e.kind {
            ExprKind::Name(id) => Some(id.name.clone()),
            ExprKind::Member {
                base,
                field,
                arrow: false,
            } => Some(format!("{}.{}", self.local_path(base)?, field.name)),
            ExprKind::Index(base, index) => Some(format!(
                "{}[{}]",
                self.local_path(base)?,
                crate::parser::fold(index)?
            )),
            _ => None,
        }
    }

    /// A place holding one scalar: its reference pushed; its type.
    fn scalar_place(&mut self, e: &Expr) -> R<ScalarType> {
        match self.place(e)? {
            (ast::FieldType::Scalar(t), None) => Ok(t),
            (ast::FieldType::Pointer(_), None) => Ok(ScalarType::Ulong64),
            (_, Some(_)) => Err(self
                .err(e.span, "an array is not a value")
                .help("index it: `a[i]`")),
            (ast::FieldType::Struct(s), None) => Err(self
                .err(e.span, format!("a `{s}` is not a value"))
                .help("use one of its fields")),
            _ => Err(self
                .err(e.span, "a lock is not a value")
                .help("kernel routines take its address: `&...`")),
        }
    }

    /// An expression whose value is a pointer to a struct: its value
    /// pushed; the struct's name.
    fn pointer(&mut self, e: &Expr) -> R<String> {
        if let Some(id) = self.local_element(e) {
            // A pointer field of a struct local, or a pointer array element.
            let (slot, _) = self.local(&id.name).expect("local_element found it");
            if let Some(s) = self.ptr_slots.get(&slot).cloned() {
                self.ops.push(Op::Load(slot));
                return Ok(s);
            }
        }
        if !matches!(e.kind, ExprKind::AddrOf(_) | ExprKind::AddrOfPlace(_)) {
            if let Some(p) = self.ptr_name(e) {
                // A global pointer, a routine's result, `*pp`, ...
                let Some(ast::FieldType::Struct(s)) = self.pointee(&p) else {
                    return Err(self
                        .err(e.span, format!("a `{p}` does not point to a struct"))
                        .help("`->` follows a pointer to a struct"));
                };
                self.expr(e)?;
                return Ok(s);
            }
        }
        match &e.kind {
            ExprKind::Name(id) => {
                if let Some((slot, _)) = self.local(&id.name) {
                    if let Some(s) = self.ptr_slots.get(&slot).cloned() {
                        self.ops.push(Op::Load(slot));
                        return Ok(s);
                    }
                }
                Err(self
                    .err(
                        id.span,
                        format!("`{}` is not a pointer to a struct", id.name),
                    )
                    .help("`->` follows a pointer parameter or local; use `.` on a struct"))
            }
            ExprKind::Member { .. } | ExprKind::Index(..)
                if matches!(
                    self.static_type(e),
                    Some((ast::FieldType::Pointer(_), None))
                ) =>
            {
                let Some((ast::FieldType::Pointer(p), None)) = self.static_type(e) else {
                    unreachable!("matched above");
                };
                let Some(s) = self.c.pointers.get(&p).cloned() else {
                    return Err(self
                        .err(e.span, format!("a `{p}` does not point to a struct"))
                        .help("`->` follows a pointer to a struct"));
                };
                self.scalar_place(e)?;
                self.ops.push(Op::LoadRef);
                Ok(s)
            }
            ExprKind::AddrOf(_) | ExprKind::AddrOfPlace(_) => {
                let inner = match &e.kind {
                    ExprKind::AddrOfPlace(p) => (**p).clone(),
                    ExprKind::AddrOf(id) => Expr {
                        kind: ExprKind::Name(id.clone()),
                        span: id.span,
                    },
                    _ => unreachable!("matched above"),
                };
                match self.place(&inner)? {
                    (ast::FieldType::Struct(s), None) => Ok(s),
                    _ => Err(self.err(e.span, "expected the address of a struct")),
                }
            }
            _ => Err(self
                .err(e.span, "expected a pointer to a struct")
                .help("pass `&Global`, `&Array[i]` or a pointer variable")),
        }
    }

    /// Load an lvalue's value; its promoted arithmetic type.
    fn load_lvalue(&mut self, lv: &Lvalue) -> Arith {
        match lv {
            Lvalue::Local(s, t) => {
                self.ops.push(Op::Load(*s));
                Arith::of(*t)
            }
            Lvalue::Var(v) => {
                self.ops.push(Op::LoadVar(*v));
                Arith::of(self.c.prog.vars[*v as usize].ty)
            }
        }
    }

    fn store_lvalue(&mut self, lv: &Lvalue) {
        self.ops.push(match lv {
            Lvalue::Local(s, t) => Op::Store(*s, *t),
            Lvalue::Var(v) => Op::StoreVar(*v),
        });
    }

    /// Compile an expression; its (promoted) arithmetic type.
    fn expr(&mut self, e: &Expr) -> R<Arith> {
        Ok(match &e.kind {
            ExprKind::Int(v) => {
                self.ops.push(Op::Push(*v));
                decimal_type(*v)
            }
            ExprKind::Typed(v, t) => {
                self.ops.push(Op::Push(truncate(*t, *v)));
                Arith::of(*t)
            }
            ExprKind::SizeOf(_, n) => {
                self.ops.push(Op::Push(*n as i64));
                Arith::U64
            }
            ExprKind::Str(_) => {
                return Err(self.err(e.span, "a string can only be DbgPrint's format"))
            }
            ExprKind::Name(id) => {
                if let Some((slot, ty)) = self.local(&id.name) {
                    if ty.is_none() {
                        return Err(self
                            .err(
                                id.span,
                                format!("`{}` is a KLOCK_QUEUE_HANDLE, not a value", id.name),
                            )
                            .help(format!("pass it as `&{}`", id.name)));
                    }
                    self.ops.push(Op::Load(slot));
                    if self.ptr_slots.contains_key(&slot) {
                        Arith::U64
                    } else {
                        Arith::of(ty.unwrap_or(ScalarType::Long))
                    }
                } else if let Some(v) = self.c.constant(&id.name) {
                    self.ops.push(Op::Push(v));
                    Arith::I32
                } else {
                    match self.c.globals.get(&id.name) {
                        Some((Global::Var(v), _)) => {
                            self.ops.push(Op::LoadVar(*v));
                            Arith::of(self.c.prog.vars[*v as usize].ty)
                        }
                        Some((Global::Routine(r), _)) => {
                            // A routine pointer (PDRIVER_CANCEL, ...): its address.
                            let a = self.c.prog.routines[*r as usize].address;
                            self.ops.push(Op::Push(a as i64));
                            Arith::U64
                        }
                        Some((g, _)) => {
                            return Err(self
                                .err(
                                    id.span,
                                    format!(
                                        "`{}` is {}, not a value",
                                        id.name,
                                        kind_name(*g, &self.c.prog)
                                    ),
                                )
                                .help(format!("kernel routines take its address: `&{}`", id.name)))
                        }
                        None => return Err(self.unknown(id)),
                    }
                }
            }
            ExprKind::AddrOf(id) if self.c.aggregates.contains_key(&id.name) => {
                self.place(&Expr {
                    kind: ExprKind::Name(id.clone()),
                    span: id.span,
                })?;
                Arith::U64
            }
            ExprKind::AddrOf(id)
                if self.local(&id.name).is_some() && self.event_locals.contains_key(&id.name) =>
            {
                // `&Event` of a KEVENT local: the reference it holds.
                let (slot, _) = self.local(&id.name).expect("checked");
                self.ops.push(Op::Load(slot));
                Arith::U64
            }
            ExprKind::AddrOf(id)
                if self.local(&id.name).is_none()
                    && matches!(self.c.globals.get(&id.name), Some((Global::Var(_), _))) =>
            {
                // `&Count`: a pointer to a global scalar (a PVOID context).
                let Some((Global::Var(v), _)) = self.c.globals.get(&id.name) else {
                    unreachable!("matched above");
                };
                self.ops.push(Op::Push(make_ref(*v, 0)));
                Arith::U64
            }
            ExprKind::AddrOf(id)
                if self.local(&id.name).is_none()
                    && matches!(self.c.globals.get(&id.name), Some((Global::Dpc(_), _))) =>
            {
                let Some((Global::Dpc(d), _)) = self.c.globals.get(&id.name) else {
                    unreachable!("matched above");
                };
                self.ops
                    .push(Op::Push(self.c.prog.dpcs[*d as usize].reference));
                Arith::U64
            }
            ExprKind::AddrOf(id) => {
                return Err(self
                    .err(
                        e.span,
                        format!("`&{}` can only be an argument of a kernel routine", id.name),
                    )
                    .help("scenario routines take values; pass addresses only to Ke/Ex routines"))
            }
            ExprKind::AddrOfPlace(p) => {
                self.place(p)?;
                Arith::U64
            }
            ExprKind::Index(..) | ExprKind::Member { .. } if self.local_element(e).is_some() => {
                let id = self.local_element(e).expect("checked");
                return self.expr(&Expr {
                    kind: ExprKind::Name(id),
                    span: e.span,
                });
            }
            ExprKind::Member { .. } | ExprKind::Index(..) | ExprKind::Deref(_) => {
                let t = self.scalar_place(e)?;
                self.ops.push(Op::LoadRef);
                Arith::of(t)
            }
            ExprKind::Unary(op, a) => {
                let t = self.expr(a)?;
                self.ops.push(Op::Unary(*op, t));
                if *op == ast::UnOp::Not {
                    Arith::I32
                } else {
                    t
                }
            }
            ExprKind::Binary(BinOp::And, a, b) | ExprKind::Binary(BinOp::Or, a, b) => {
                let is_and = matches!(e.kind, ExprKind::Binary(BinOp::And, ..));
                let t = self.expr(a)?;
                if !is_and {
                    self.ops.push(Op::Unary(ast::UnOp::Not, t));
                }
                let jf = self.ops.len();
                self.ops.push(Op::JumpIfFalse(0));
                self.expr(b)?;
                self.ops.push(Op::Bool);
                let j = self.ops.len();
                self.ops.push(Op::Jump(0));
                let short = self.here();
                self.patch(jf, short);
                self.ops.push(Op::Push(if is_and { 0 } else { 1 }));
                let end = self.here();
                self.patch(j, end);
                Arith::I32
            }
            ExprKind::Binary(op, a, b)
                if !matches!(
                    op,
                    BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge
                ) && (self.typed_pointer(a) || self.typed_pointer(b)) =>
            {
                let p = if self.typed_pointer(a) { a } else { b };
                return Err(self
                    .err(p.span, "pointer arithmetic is not supported")
                    .label("a pointer")
                    .help("index the array instead (`&Arr[i + 1]`, `p[1]`), or convert the value explicitly with a cast such as `(ULONG_PTR)p`"));
            }
            ExprKind::Binary(op, a, b) => {
                let l = self.expr(a)?;
                let r = self.expr(b)?;
                self.ops.push(Op::Binary(*op, operand_type(*op, l, r)));
                binary_type(*op, l, r)
            }
            ExprKind::Cond(c, a, b) => {
                self.expr(c)?;
                let jf = self.ops.len();
                self.ops.push(Op::JumpIfFalse(0));
                let l = self.expr(a)?;
                let j = self.ops.len();
                self.ops.push(Op::Jump(0));
                let h = self.here();
                self.patch(jf, h);
                let r = self.expr(b)?;
                let t = Arith::common(l, r);
                let h = self.here();
                self.patch(j, h);
                if l != r {
                    // Both branches meet here: convert to the common type.
                    self.ops.push(Op::Cast(t.scalar()));
                }
                t
            }
            ExprKind::Cast(t, a) => {
                self.expr(a)?;
                self.ops.push(Op::Cast(*t));
                Arith::of(*t)
            }
            ExprKind::Call { callee, args } => self.call(callee, args, e.span, true)?,
        })
    }

    /// Compile a call; the arithmetic type of its value (`int` when none).
    fn call(&mut self, callee: &Ident, args: &[Expr], span: Span, want_value: bool) -> R<Arith> {
        if callee.name == "NT_SUCCESS" && self.local(&callee.name).is_none() {
            // NT_SUCCESS(s): ((NTSTATUS)(s) >= 0).
            if args.len() != 1 {
                return Err(self
                    .err(span, "`NT_SUCCESS` takes 1 argument")
                    .help("NT_SUCCESS(Status)"));
            }
            self.expr(&args[0])?;
            self.ops.push(Op::Cast(ScalarType::Long));
            self.ops.push(Op::Push(0));
            self.ops.push(Op::Binary(BinOp::Ge, Arith::I32));
            if !want_value {
                self.ops.push(Op::Pop);
            }
            return Ok(Arith::I32);
        }
        if callee.name == "CONTAINING_RECORD" && self.local(&callee.name).is_none() {
            return self.containing_record(args, span, want_value);
        }
        if callee.name == "ExAllocatePoolWithTag" && args.len() == 3 {
            let Some(&site) = self.c.pool_site_of.get(&callee.span.offset) else {
                return Err(self
                    .err(args[1].span, "`NumberOfBytes` must be written `sizeof(T)` of a struct, scalar or kernel-object type")
                    .label("not sizeof(T)")
                    .help("the block holds one zeroed T: ExAllocatePoolWithTag(NonPagedPoolNx, sizeof(T), Tag)"));
            };
            let sig = kernel::lookup(&callee.name).expect("in the table");
            self.kernel_call(sig, callee, args, span, want_value)?;
            if let Some(Op::Kernel(k)) = self.ops.last_mut() {
                k.places = vec![Place::PoolSite(site)];
            }
            return Ok(Arith::U64);
        }
        if let Some(sig) = kernel::lookup(&callee.name) {
            self.kernel_call(sig, callee, args, span, want_value)?;
            return Ok(match sig.kr {
                Kr::RemoveHeadList | Kr::RemoveTailList => Arith::U64,
                _ => Arith::I32,
            });
        }
        let id = match self.c.globals.get(&callee.name) {
            Some((Global::Routine(r), _)) => *r,
            Some((g, _)) => {
                return Err(self.err(
                    callee.span,
                    format!(
                        "`{}` is {}, not a routine",
                        callee.name,
                        kind_name(*g, &self.c.prog)
                    ),
                ))
            }
            None => {
                let mut cands: Vec<&str> = self.c.globals.keys().map(|s| s.as_str()).collect();
                cands.extend(kernel::ROUTINES.iter().map(|s| s.name));
                let mut e = self
                    .err(
                        callee.span,
                        format!("`{}` is not a known routine", callee.name),
                    )
                    .label("unknown routine");
                if let Some(h) = did_you_mean(&callee.name, cands) {
                    e = e.help(h);
                }
                return Err(e);
            }
        };
        let code = &self.c.prog.routines[id as usize];
        let (returns, name) = (code.returns, code.name.as_str());
        let expected = self.c.protos[id as usize].params.len();
        if args.len() != expected {
            return Err(self
                .err(
                    span,
                    format!(
                        "`{name}` takes {expected} argument{}, but {} {} given",
                        plural(expected),
                        args.len(),
                        if args.len() == 1 { "was" } else { "were" }
                    ),
                )
                .label("wrong number of arguments"));
        }
        if want_value && !returns {
            return Err(self.err(span, format!("`{name}` returns VOID; it has no value")));
        }
        // Arguments convert to the parameter types when the frame is made.
        let ret = self.c.protos[id as usize].ret;
        for a in args {
            self.expr(a)?;
        }
        self.ops.push(Op::Call {
            routine: id,
            args: args.len() as u8,
            push_result: want_value,
        });
        if self.c.protos[id as usize].ret_ptr.is_some() {
            return Ok(Arith::U64);
        }
        Ok(Arith::of(ret.unwrap_or(ScalarType::Long)))
    }

    /// The source span of bytes `offset..offset + len` of a string
    /// literal's value (escapes in the source taken into account).
    fn string_span(&self, literal: Span, offset: usize, len: usize) -> Span {
        let raw = self
            .c
            .src
            .text
            .get(literal.offset..literal.offset + literal.len)
            .unwrap_or("");
        let (mut value, mut at) = (0usize, 1usize); // after the opening quote
        let mut start = None;
        let bytes = raw.as_bytes();
        while at < raw.len() {
            if value == offset && start.is_none() {
                start = Some(at);
            }
            if value == offset + len {
                break;
            }
            let step = if bytes[at] == b'\\' { 2 } else { 1 };
            let ch_len = raw[at..].chars().next().map_or(1, char::len_utf8);
            at += if step == 2 { 2 } else { ch_len };
            value += if step == 2 { 1 } else { ch_len };
        }
        match start {
            Some(s) => Span::new(literal.offset + s, at - s),
            None => literal,
        }
    }

    fn kernel_call(
        &mut self,
        sig: &Sig,
        callee: &Ident,
        args: &[Expr],
        span: Span,
        want_value: bool,
    ) -> R<()> {
        let variadic = sig.params == [P::Format];
        let arity_ok = if variadic {
            !args.is_empty()
        } else {
            args.len() == sig.params.len()
        };
        if !arity_ok {
            let n = sig.params.len();
            let msg = if variadic {
                format!("`{}` takes a format string and its values", sig.name)
            } else {
                format!(
                    "`{}` takes {n} argument{}, but {} {} given",
                    sig.name,
                    plural(n),
                    args.len(),
                    if args.len() == 1 { "was" } else { "were" }
                )
            };
            return Err(self
                .err(span, msg)
                .label("wrong number of arguments")
                .help(signature_help(sig)));
        }
        if want_value && !sig.returns {
            return Err(self.err(
                callee.span,
                format!("`{}` returns VOID; it has no value", sig.name),
            ));
        }
        let mut places = vec![];
        if sig.kr == Kr::KeSetEvent && self.c.const_eval(&args[2]).is_ok_and(|v| v != 0) {
            return Err(self
                .err(args[2].span, "KeSetEvent's Wait must be FALSE in this version")
                .label("Wait = TRUE")
                .help("pass FALSE; a KeSetEvent with Wait = TRUE must be followed at once by a KeWaitXxx call, which scenarios do not model"));
        }
        if sig.kr == Kr::ExInitializeWorkItem {
            if let ExprKind::Name(id) = &args[1].kind {
                if self.c.routine_arity(&id.name) > 1 {
                    return Err(self
                        .err(
                            args[1].span,
                            format!(
                                "`{}` takes {} parameters, but a work-item routine takes one",
                                id.name,
                                self.c.routine_arity(&id.name)
                            ),
                        )
                        .label("not a PWORKER_THREAD_ROUTINE")
                        .help("declare it `VOID Routine(PVOID Parameter)`"));
                }
            }
        }
        self.list_form(sig, args)?;
        let mut deferred: Vec<(P, Expr)> = vec![];

        let mut values = 0u8;
        let mut text = None;
        // DbgPrint: the format's conversions, and the text each string
        // literal argument becomes (substituted into the format here).
        let mut specs: Vec<dbgprint::Spec> = vec![];
        let mut literal: Vec<Option<String>> = vec![];
        for (i, a) in args.iter().enumerate() {
            let p = if variadic {
                if i == 0 {
                    P::Format
                } else {
                    P::Value
                }
            } else {
                sig.params[i]
            };
            match p {
                P::Value if variadic => {
                    let spec = &specs[i - 1];
                    match (&a.kind, spec.conv) {
                        (ExprKind::Str(v), 's') => {
                            literal[i - 1] = Some(dbgprint::convert(spec, dbgprint::Arg::Str(v)));
                        }
                        (_, 's') => {
                            return Err(self.err(a.span, "`%s` takes a string literal").help(
                                "write the text in quotes, or use %d / %u / %x for a number",
                            ))
                        }
                        (ExprKind::Str(_), c) => {
                            return Err(self
                                .err(
                                    a.span,
                                    format!("a string literal goes with `%s`, not `%{c}`"),
                                )
                                .help("use %s for this argument"))
                        }
                        _ => {
                            self.expr(a)?;
                            values += 1;
                        }
                    }
                }
                P::Value => {
                    self.expr(a)?;
                    values += 1;
                }
                P::Event | P::Timer | P::Waitable | P::WorkItem | P::Irp | P::DpcOrNull => {
                    self.object_arg_check(sig, p, a)?;
                    places.push(Place::Obj {
                        kind: object_param_kind(p),
                        nullable: p == P::DpcOrNull,
                    });
                    deferred.push((p, a.clone()));
                }
                P::Dpc if !self.is_global_dpc_address(a) => {
                    self.object_arg_check(sig, p, a)?;
                    places.push(Place::Obj {
                        kind: ast::ObjKind::Dpc,
                        nullable: false,
                    });
                    deferred.push((p, a.clone()));
                }
                P::Timeout => {
                    values += 2;
                    let quad = |base: Expr, arrow: bool| Expr {
                        span: base.span,
                        kind: ExprKind::Member {
                            base: Box::new(base),
                            field: Ident {
                                name: "QuadPart".into(),
                                span: a.span,
                            },
                            arrow,
                        },
                    };
                    if is_null_literal(a) {
                        self.ops.push(Op::Push(0));
                        self.ops.push(Op::Push(0));
                    } else {
                        self.ops.push(Op::Push(1));
                        let q = match &a.kind {
                            ExprKind::AddrOf(id) => quad(
                                Expr {
                                    kind: ExprKind::Name(id.clone()),
                                    span: id.span,
                                },
                                false,
                            ),
                            ExprKind::AddrOfPlace(pl) => quad((**pl).clone(), false),
                            _ => quad(a.clone(), true),
                        };
                        self.expr(&q).map_err(|e| {
                            e.help("a timeout is NULL or the address of a LARGE_INTEGER: `LARGE_INTEGER T; T.QuadPart = -10 * 1000; ... &T`")
                        })?;
                    }
                }
                P::LargeInt => {
                    values += 1;
                    let is_large = match &a.kind {
                        ExprKind::Name(id) => {
                            self.local(&format!("{}.QuadPart", id.name)).is_some()
                                || matches!(self.c.aggregates.get(&id.name), Some((ast::FieldType::Struct(s), None, _, _)) if s == "LARGE_INTEGER")
                        }
                        _ => {
                            matches!(self.static_type(a), Some((ast::FieldType::Struct(s), None)) if s == "LARGE_INTEGER")
                        }
                    };
                    if is_large {
                        self.expr(&Expr {
                            span: a.span,
                            kind: ExprKind::Member {
                                base: Box::new(a.clone()),
                                field: Ident {
                                    name: "QuadPart".into(),
                                    span: a.span,
                                },
                                arrow: false,
                            },
                        })?;
                    } else {
                        self.expr(a)?;
                    }
                }
                P::RoutineValue => {
                    values += 1;
                    self.expr(a)?;
                }
                P::Format => {
                    match &a.kind {
                        ExprKind::Str(s) => {
                            specs = match dbgprint::parse(s) {
                                Ok(specs) => specs,
                                Err(e) => {
                                    let at = self.string_span(a.span, e.offset, e.len);
                                    return Err(self
                                        .err(at, e.message)
                                        .label("not supported")
                                        .help(dbgprint::SUPPORTED));
                                }
                            };
                            let wanted = specs.len();
                            if wanted != args.len() - 1 {
                                return Err(self.err(a.span, format!("the format has {wanted} conversion{} but {} value{} follow{}", plural(wanted), args.len() - 1, plural(args.len() - 1), if args.len() == 2 { "s" } else { "" })));
                            }
                            literal = vec![None; wanted];
                            text = Some(s.clone());
                        }
                        _ => {
                            return Err(self
                                .err(a.span, "DbgPrint's first argument must be a format string"))
                        }
                    }
                }
                _ => match &a.kind {
                    ExprKind::AddrOfPlace(pl) if self.local_element(pl).is_some() => {
                        let id = self.local_element(pl).expect("checked");
                        let e = Expr {
                            kind: ExprKind::AddrOf(id),
                            span: a.span,
                        };
                        places.push(self.place_arg(sig, p, &e)?);
                    }
                    ExprKind::AddrOfPlace(pl) => {
                        places.push(Place::Ref(!matches!(
                            p,
                            P::Data | P::OutIrql | P::List | P::Handle
                        )));
                        deferred.push((p, (**pl).clone()));
                    }
                    _ => places.push(self.place_arg(sig, p, a)?),
                },
            }
        }
        // Places reached at run time: their references go on the stack
        // after the values, in argument order.
        for (p, pl) in &deferred {
            if matches!(
                p,
                P::Event | P::Timer | P::Waitable | P::WorkItem | P::Irp | P::DpcOrNull | P::Dpc
            ) {
                self.expr(pl)?;
                continue;
            }
            let (t, n) = self.place(pl)?;
            let ok = n.is_none()
                && match p {
                    P::SpinLock => t == ast::FieldType::KSpinLock,
                    P::ExLock => t == ast::FieldType::ExSpinLock,
                    P::Data | P::OutIrql => matches!(t, ast::FieldType::Scalar(_)),
                    P::List => t == ast::FieldType::ListEntry,
                    P::Handle => t == ast::FieldType::QueueHandle,
                    _ => false,
                };
            if !ok {
                let what = match p {
                    P::SpinLock => "a KSPIN_LOCK",
                    P::ExLock => "an EX_SPIN_LOCK",
                    P::Data => "a ULONG or LONG variable",
                    P::OutIrql => "a KIRQL variable",
                    _ => {
                        "a global object (this version reaches only locks and data through fields)"
                    }
                };
                return Err(self
                    .err(pl.span, format!("`{}` expects {what} here", sig.name))
                    .label("wrong kind of object"));
            }
        }
        if let Some(fmt) = text
            .as_mut()
            .filter(|_| literal.iter().any(Option::is_some))
        {
            let mut out = String::with_capacity(fmt.len());
            let mut copied = 0;
            for (spec, lit) in specs.iter().zip(&literal) {
                if let Some(lit) = lit {
                    out.push_str(&fmt[copied..spec.offset]);
                    out.push_str(&dbgprint::escape(lit));
                    copied = spec.offset + spec.len;
                }
            }
            out.push_str(&fmt[copied..]);
            *fmt = out;
        }
        if sig.kr == Kr::Assert {
            let slice = self
                .c
                .src
                .text
                .get(args[0].span.offset..args[0].span.offset + args[0].span.len)
                .unwrap_or("expression");
            text = Some(slice.to_string());
        }
        self.ops.push(Op::Kernel(Box::new(KernelCall {
            kr: sig.kr,
            places,
            values,
            text,
            push_result: want_value,
        })));
        Ok(())
    }

    /// A global list head is used with integers (version 1: the value of
    /// an ExInterlocked insert is not an address) or with entries (an
    /// entry's address, or an inline list routine); both on one head is a
    /// check error (contract v2, "Intrusive lists").
    fn list_form(&self, sig: &Sig, args: &[Expr]) -> R<()> {
        let head = |e: &Expr| match &e.kind {
            ExprKind::AddrOf(id) if self.local(&id.name).is_none() => {
                match self.c.globals.get(&id.name) {
                    Some((Global::List(l), _)) => Some(*l),
                    _ => None,
                }
            }
            _ => None,
        };
        let (l, entries, at) = match sig.kr {
            Kr::ExInterlockedInsertTailList | Kr::ExInterlockedInsertHeadList => {
                let Some(l) = args.first().and_then(head) else {
                    return Ok(());
                };
                let v = &args[1];
                let entry = matches!(v.kind, ExprKind::AddrOf(_) | ExprKind::AddrOfPlace(_))
                    || self.typed_pointer(v);
                (l, entry, v.span)
            }
            Kr::InsertTailList
            | Kr::InsertHeadList
            | Kr::RemoveHeadList
            | Kr::RemoveTailList
            | Kr::InitializeListHead => {
                let Some(l) = args.first().and_then(head) else {
                    return Ok(());
                };
                (l, true, args[0].span)
            }
            _ => return Ok(()),
        };
        let mut forms = self.c.list_forms.borrow_mut();
        match forms.get(&l) {
            Some(&(was, first)) if was != entries => {
                let line = self.c.line(first);
                let (now, before) = if entries {
                    ("LIST_ENTRY entries", "integers (version 1)")
                } else {
                    ("integers (version 1)", "LIST_ENTRY entries")
                };
                let name = self.c.prog.lists[l as usize].name.clone();
                drop(forms);
                Err(self
                    .err(at, format!("list head `{name}` is used with {now} here, but with {before} at line {line}"))
                    .label("another form")
                    .help("a head holds either integers (ExInterlocked routines with values) or LIST_ENTRY entries; use two heads"))
            }
            Some(_) => Ok(()),
            None => {
                forms.insert(l, (entries, at));
                Ok(())
            }
        }
    }

    /// Is `a` `&D` of a global `KDPC D(Routine)` (resolved before the run)?
    fn is_global_dpc_address(&self, a: &Expr) -> bool {
        matches!(&a.kind, ExprKind::AddrOf(id)
            if self.local(&id.name).is_none()
                && matches!(self.c.globals.get(&id.name), Some((Global::Dpc(_), _))))
    }

    /// A kernel-object argument whose type is known before the run must be
    /// the object the routine takes (a pointer's object is checked at run
    /// time).
    fn object_arg_check(&self, sig: &Sig, p: P, a: &Expr) -> R<()> {
        if p == P::DpcOrNull && is_null_literal(a) {
            return Ok(());
        }
        let inner = match &a.kind {
            ExprKind::AddrOf(id) => Expr {
                kind: ExprKind::Name(id.clone()),
                span: id.span,
            },
            ExprKind::AddrOfPlace(pl) => (**pl).clone(),
            ExprKind::Name(id) if self.local(&id.name).is_some() => return Ok(()),
            // A global pointer variable (`PKEVENT P;`): its object is found
            // at run time, like a parameter's.
            ExprKind::Name(id)
                if matches!(
                    self.c.aggregates.get(&id.name),
                    Some((ast::FieldType::Pointer(_), None, _, _))
                ) || (matches!(self.c.globals.get(&id.name), Some((Global::Var(_), _)))
                    && !self.c.aggregates.contains_key(&id.name)) =>
            {
                return Ok(())
            }
            ExprKind::Name(id) if self.c.globals.contains_key(&id.name) => {
                return Err(self
                    .err(
                        a.span,
                        format!("`{}` expects the address of an object here", sig.name),
                    )
                    .help(format!("write `&{}`", id.name)))
            }
            _ => return Ok(()),
        };
        let want = object_param_kind(p);
        let ok = match self.static_type(&inner) {
            Some((ast::FieldType::Object(k), None)) => {
                k == want || (p == P::Waitable && k == ast::ObjKind::Timer)
            }
            Some((ast::FieldType::Struct(s), None)) => want == ast::ObjKind::Irp && s == "IRP",
            None => match &inner.kind {
                ExprKind::Name(id) => match self.c.globals.get(&id.name) {
                    Some((Global::Dpc(_), _)) => want == ast::ObjKind::Dpc,
                    Some(_) => false,
                    None => true,
                },
                _ => true,
            },
            Some(_) => false,
        };
        if ok {
            return Ok(());
        }
        let what = if p == P::Waitable {
            "a KEVENT or KTIMER".to_string()
        } else {
            want.with_article()
        };
        Err(self
            .err(a.span, format!("`{}` expects {what} here", sig.name))
            .label("wrong kind of object")
            .help(signature_help(sig)))
    }

    fn place_arg(&self, sig: &Sig, p: P, a: &Expr) -> R<Place> {
        let what = match p {
            P::SpinLock => "a KSPIN_LOCK",
            P::ExLock => "an EX_SPIN_LOCK",
            P::Interrupt => "a KINTERRUPT",
            P::Dpc => "a KDPC",
            P::List => "a LIST_ENTRY",
            P::OutIrql => "a KIRQL variable",
            P::Handle => "a KLOCK_QUEUE_HANDLE",
            P::Data => "a ULONG or LONG variable",
            P::Routine => "a routine",
            _ => "an object",
        };
        let id = match &a.kind {
            ExprKind::AddrOf(id) => id,
            ExprKind::Name(id) if p == P::Routine => id,
            ExprKind::Name(id) => {
                return Err(self
                    .err(
                        a.span,
                        format!("`{}` expects the address of {what} here", sig.name),
                    )
                    .help(format!("write `&{}`", id.name)))
            }
            _ => {
                return Err(self.err(
                    a.span,
                    format!("`{}` expects the address of {what} here", sig.name),
                ))
            }
        };
        if let Some((slot, ty)) = self.local(&id.name) {
            return match (p, ty) {
                (P::Handle, None) | (P::OutIrql, Some(_)) | (P::Data, Some(_)) => {
                    Ok(Place::Local(slot))
                }
                _ => Err(self.err(
                    a.span,
                    format!(
                        "`{}` expects {what}, but `{}` is a local {}",
                        sig.name,
                        id.name,
                        if ty.is_none() {
                            "KLOCK_QUEUE_HANDLE"
                        } else {
                            "value"
                        }
                    ),
                )),
            };
        }
        let g = match self.c.globals.get(&id.name) {
            Some((g, _)) => *g,
            None => return Err(self.unknown(id)),
        };
        let prog = &self.c.prog;
        if let Global::Lock(l) = g {
            // A KSPIN_LOCK shared by KINTERRUPTs is only their interrupt
            // lock (KeInitializeSpinLock aside).
            if let LockKind::Interrupt(first) = prog.locks[l.0 as usize].kind {
                if sig.kr == Kr::KeInitializeSpinLock {
                    return Ok(Place::Lock(l));
                }
                let sharers = sharer_list(prog, l);
                let first = &prog.interrupts[first as usize].name;
                return Err(self
                    .err(
                        a.span,
                        format!(
                            "`{}` is the interrupt spin lock of {}: it is used only as their interrupt lock, not with `{}`",
                            id.name, sharers, sig.name
                        ),
                    )
                    .label("shared interrupt spin lock")
                    .help(format!("take it through an interrupt that shares it: KeAcquireInterruptSpinLock(&{first}) / KeReleaseInterruptSpinLock, or KeSynchronizeExecution(&{first}, ...)")));
            }
        }
        let place = match (p, g) {
            (P::SpinLock, Global::Lock(l)) if prog.locks[l.0 as usize].kind == LockKind::Spin => {
                Some(Place::Lock(l))
            }
            (P::ExLock, Global::Lock(l)) if prog.locks[l.0 as usize].kind == LockKind::Ex => {
                Some(Place::Lock(l))
            }
            (P::Interrupt, Global::Interrupt(i)) => Some(Place::Interrupt(i)),
            (P::Dpc, Global::Dpc(d)) => Some(Place::Dpc(d)),
            (P::List, Global::List(l)) => Some(Place::List(l)),
            (P::OutIrql, Global::Var(v)) | (P::Data, Global::Var(v)) => Some(Place::Var(v)),
            (P::Routine, Global::Routine(r)) => Some(Place::Routine(r)),
            (P::Handle, Global::Handle(h)) => Some(Place::GlobalHandle(h)),
            _ => None,
        };
        place.ok_or_else(|| {
            let mut e = self
                .err(
                    a.span,
                    format!(
                        "`{}` expects {what}, but `{}` is {}",
                        sig.name,
                        id.name,
                        kind_name(g, prog)
                    ),
                )
                .label("wrong kind of object");
            if let Some(h) = family_hint(sig, g, prog) {
                e = e.help(h);
            }
            e
        })
    }
}

impl Checker<'_> {
    /// Number of declared parameters of a routine (0 for a name that is
    /// not one).
    fn routine_arity(&self, name: &str) -> usize {
        self.proto_of(name).map_or(0, |p| p.params.len())
    }

    /// A routine's prototype, by its name.
    fn proto_of(&self, name: &str) -> Option<&Proto> {
        match self.globals.get(name) {
            Some((Global::Routine(id), _)) => self.protos.get(*id as usize),
            _ => None,
        }
    }
}

/// A routine's declared return type (`None`: VOID or a pointer), parameter
/// types (`None`: a pointer or handle) and, when it returns a pointer, the
/// pointer type as written (`PDEV`): for C's conversions, argument counts
/// and `F()->Field`.
struct Proto {
    ret: Option<ScalarType>,
    params: Vec<Option<ScalarType>>,
    ret_ptr: Option<String>,
}

/// The object kind a kernel-object parameter takes (a wait's object may
/// also be a KTIMER: the engine checks).
fn object_param_kind(p: P) -> ast::ObjKind {
    match p {
        P::Timer => ast::ObjKind::Timer,
        P::WorkItem => ast::ObjKind::WorkItem,
        P::Irp => ast::ObjKind::Irp,
        P::Dpc | P::DpcOrNull => ast::ObjKind::Dpc,
        _ => ast::ObjKind::Event,
    }
}

/// `NULL` or `0` as written.
fn is_null_literal(a: &Expr) -> bool {
    match &a.kind {
        ExprKind::Name(id) => id.name == "NULL",
        ExprKind::Int(0) => true,
        _ => false,
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn signature_help(sig: &Sig) -> String {
    let params: Vec<&str> = sig
        .params
        .iter()
        .map(|p| match p {
            P::SpinLock => "&SpinLock",
            P::ExLock => "&ExSpinLock",
            P::Interrupt => "&Interrupt",
            P::Dpc => "&Dpc",
            P::List => "&ListHead",
            P::OutIrql => "&OldIrql",
            P::Handle => "&LockHandle",
            P::Data => "&Variable",
            P::Routine => "Routine",
            P::Value => "Value",
            P::Format => "\"format\", ...",
            P::Event => "&Event",
            P::Timer => "&Timer",
            P::Waitable => "&Object",
            P::WorkItem => "&WorkItem",
            P::Irp => "Irp",
            P::DpcOrNull => "Dpc",
            P::Timeout => "&Timeout",
            P::LargeInt => "DueTime",
            P::RoutineValue => "Routine",
        })
        .collect();
    format!("usage: {}({})", sig.name, params.join(", "))
}

/// Point a Ke/Ex mix-up at the right family.
fn family_hint(sig: &Sig, g: Global, prog: &Program) -> Option<String> {
    let Global::Lock(l) = g else { return None };
    match prog.locks[l.0 as usize].kind {
        LockKind::Ex if sig.name.starts_with("Ke") => Some(
            "an EX_SPIN_LOCK is taken with ExAcquireSpinLockExclusive / ExAcquireSpinLockShared and released with the matching ExRelease routine".into(),
        ),
        LockKind::Spin if sig.name.starts_with("Ex") => Some(
            "a KSPIN_LOCK is taken with KeAcquireSpinLock (or KeAcquireInStackQueuedSpinLock) and released with the matching KeRelease routine".into(),
        ),
        _ => None,
    }
}

/// Number of `%` conversions in a DbgPrint format (`%%` is none; an
/// unsupported conversion counts as one).
pub fn count_conversions(fmt: &str) -> usize {
    match dbgprint::parse(fmt) {
        Ok(specs) => specs.len(),
        Err(_) => fmt.matches('%').count() - 2 * fmt.matches("%%").count(),
    }
}
