//! The kernel routines a scenario may call: names, parameter kinds and
//! return values. The checker uses this table for argument counts, lock-kind
//! and type checks; the engine dispatches on [`Kr`].

/// What an argument must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum P {
    /// `&L` of a `KSPIN_LOCK`.
    SpinLock,
    /// `&L` of an `EX_SPIN_LOCK`.
    ExLock,
    /// `&I` of a `KINTERRUPT`.
    Interrupt,
    /// `&D` of a `KDPC`.
    Dpc,
    /// `&Q` of a `LIST_ENTRY`.
    List,
    /// `&Old`: a KIRQL (or other scalar) variable to write.
    OutIrql,
    /// `&H`: a `KLOCK_QUEUE_HANDLE` local.
    Handle,
    /// `&X`: a ULONG/LONG global for the Interlocked routines.
    Data,
    /// A routine name (KeSynchronizeExecution).
    Routine,
    /// An integer value.
    Value,
    /// A format string followed by any number of values (DbgPrint).
    Format,
    /// A `KEVENT` (`&E`, `&Ext->Done`, a PKEVENT): a value whose object
    /// is found at run time (contract v2, "Kernel objects").
    Event,
    /// A `KTIMER`.
    Timer,
    /// A dispatcher object a thread can wait on: a `KEVENT` or `KTIMER`.
    Waitable,
    /// A `WORK_QUEUE_ITEM`.
    WorkItem,
    /// An `IRP`.
    Irp,
    /// A `KDPC` or NULL (KeSetTimer's Dpc).
    DpcOrNull,
    /// A `PLARGE_INTEGER` timeout: NULL (no timeout) or `&T`; two values
    /// (given, T.QuadPart).
    Timeout,
    /// A `LARGE_INTEGER` by value (its QuadPart), or an integer.
    LargeInt,
    /// A routine pointer value: a routine's name or NULL (a value).
    RoutineValue,
}

/// Every kernel routine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kr {
    KeGetCurrentIrql,
    KeRaiseIrql,
    KeLowerIrql,
    KeRaiseIrqlToDpcLevel,
    KeGetCurrentProcessorNumber,
    KeInitializeSpinLock,
    KeAcquireSpinLock,
    KeAcquireSpinLockRaiseToDpc,
    KeReleaseSpinLock,
    KeAcquireSpinLockAtDpcLevel,
    KeReleaseSpinLockFromDpcLevel,
    KeTryToAcquireSpinLockAtDpcLevel,
    KeTestSpinLock,
    KeAcquireInStackQueuedSpinLock,
    KeReleaseInStackQueuedSpinLock,
    KeAcquireInStackQueuedSpinLockAtDpcLevel,
    KeReleaseInStackQueuedSpinLockFromDpcLevel,
    ExAcquireSpinLockShared,
    ExAcquireSpinLockExclusive,
    ExReleaseSpinLockShared,
    ExReleaseSpinLockExclusive,
    ExAcquireSpinLockSharedAtDpcLevel,
    ExAcquireSpinLockExclusiveAtDpcLevel,
    ExReleaseSpinLockSharedFromDpcLevel,
    ExReleaseSpinLockExclusiveFromDpcLevel,
    ExTryConvertSharedSpinLockExclusive,
    KeAcquireInterruptSpinLock,
    KeReleaseInterruptSpinLock,
    KeSynchronizeExecution,
    KeInsertQueueDpc,
    KeRemoveQueueDpc,
    KeSetImportanceDpc,
    KeSetTargetProcessorDpc,
    KeAcquireSpinLockForDpc,
    KeReleaseSpinLockForDpc,
    KeAcquireInStackQueuedSpinLockForDpc,
    KeReleaseInStackQueuedSpinLockForDpc,
    KeFlushQueuedDpcs,
    ExInterlockedInsertTailList,
    ExInterlockedInsertHeadList,
    ExInterlockedRemoveHeadList,
    IsListEmpty,
    InitializeListHead,
    InsertHeadList,
    InsertTailList,
    RemoveHeadList,
    RemoveTailList,
    RemoveEntryList,
    InterlockedIncrement,
    InterlockedDecrement,
    InterlockedExchange,
    InterlockedCompareExchange,
    InterlockedOr,
    InterlockedAnd,
    InterlockedXor,
    InterlockedExchangeAdd,
    InterlockedAdd,
    ExAllocatePoolWithTag,
    ExFreePoolWithTag,
    KeStallExecutionProcessor,
    ExRaiseStatus,
    DbgPrint,
    Assert,
    PagedCode,
    SimFireInterrupt,
    KeInitializeDpc,
    KeInitializeEvent,
    KeSetEvent,
    KeClearEvent,
    KeResetEvent,
    KeReadStateEvent,
    KeWaitForSingleObject,
    KeInitializeTimer,
    KeInitializeTimerEx,
    KeSetTimer,
    KeSetTimerEx,
    KeCancelTimer,
    KeReadStateTimer,
    KeQueryInterruptTime,
    ExInitializeWorkItem,
    ExQueueWorkItem,
    IoAcquireCancelSpinLock,
    IoReleaseCancelSpinLock,
    IoSetCancelRoutine,
    IoMarkIrpPending,
    IoCompleteRequest,
    IoCancelIrp,
}

/// A routine's signature.
#[derive(Clone, Copy, Debug)]
pub struct Sig {
    pub name: &'static str,
    pub kr: Kr,
    pub params: &'static [P],
    /// True if it returns a value.
    pub returns: bool,
}

macro_rules! sig {
    ($kr:ident, [$($p:ident),*], $ret:expr) => {
        Sig { name: stringify!($kr), kr: Kr::$kr, params: &[$(P::$p),*], returns: $ret }
    };
    ($name:literal, $kr:ident, [$($p:ident),*], $ret:expr) => {
        Sig { name: $name, kr: Kr::$kr, params: &[$(P::$p),*], returns: $ret }
    };
}

/// The table of kernel routines.
impl Kr {
    /// The routine's WDK name (`KeAcquireSpinLock`, `ASSERT`, ...), from
    /// [`ROUTINES`]; looked up in a table built once.
    pub fn name(self) -> &'static str {
        static NAMES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
        let names = NAMES.get_or_init(|| {
            let mut v: Vec<(usize, &'static str)> =
                ROUTINES.iter().map(|s| (s.kr as usize, s.name)).collect();
            v.sort_by_key(|x| x.0);
            let mut names = vec!["?"; v.last().map_or(0, |x| x.0 + 1)];
            for (i, n) in v {
                names[i] = n;
            }
            names
        });
        names.get(self as usize).copied().unwrap_or("?")
    }
}

pub const ROUTINES: &[Sig] = &[
    sig!(KeGetCurrentIrql, [], true),
    sig!(KeRaiseIrql, [Value, OutIrql], false),
    sig!(KeLowerIrql, [Value], false),
    sig!(KeRaiseIrqlToDpcLevel, [], true),
    sig!(KeGetCurrentProcessorNumber, [], true),
    sig!(KeInitializeSpinLock, [SpinLock], false),
    sig!(KeAcquireSpinLock, [SpinLock, OutIrql], false),
    sig!(KeAcquireSpinLockRaiseToDpc, [SpinLock], true),
    sig!(KeReleaseSpinLock, [SpinLock, Value], false),
    sig!(KeAcquireSpinLockAtDpcLevel, [SpinLock], false),
    sig!(KeReleaseSpinLockFromDpcLevel, [SpinLock], false),
    sig!(KeTryToAcquireSpinLockAtDpcLevel, [SpinLock], true),
    sig!(KeTestSpinLock, [SpinLock], true),
    sig!(KeAcquireInStackQueuedSpinLock, [SpinLock, Handle], false),
    sig!(KeReleaseInStackQueuedSpinLock, [Handle], false),
    sig!(
        KeAcquireInStackQueuedSpinLockAtDpcLevel,
        [SpinLock, Handle],
        false
    ),
    sig!(KeReleaseInStackQueuedSpinLockFromDpcLevel, [Handle], false),
    sig!(ExAcquireSpinLockShared, [ExLock], true),
    sig!(ExAcquireSpinLockExclusive, [ExLock], true),
    sig!(ExReleaseSpinLockShared, [ExLock, Value], false),
    sig!(ExReleaseSpinLockExclusive, [ExLock, Value], false),
    sig!(ExAcquireSpinLockSharedAtDpcLevel, [ExLock], false),
    sig!(ExAcquireSpinLockExclusiveAtDpcLevel, [ExLock], false),
    sig!(ExReleaseSpinLockSharedFromDpcLevel, [ExLock], false),
    sig!(ExReleaseSpinLockExclusiveFromDpcLevel, [ExLock], false),
    sig!(ExTryConvertSharedSpinLockExclusive, [ExLock], true),
    sig!(KeAcquireInterruptSpinLock, [Interrupt], true),
    sig!(KeReleaseInterruptSpinLock, [Interrupt, Value], false),
    sig!(KeSynchronizeExecution, [Interrupt, Routine, Value], true),
    sig!(KeInsertQueueDpc, [Dpc, Value, Value], true),
    sig!(KeRemoveQueueDpc, [Dpc], true),
    sig!(KeSetImportanceDpc, [Dpc, Value], false),
    sig!(KeSetTargetProcessorDpc, [Dpc, Value], false),
    sig!(KeAcquireSpinLockForDpc, [SpinLock], true),
    sig!(KeReleaseSpinLockForDpc, [SpinLock, Value], false),
    sig!(
        KeAcquireInStackQueuedSpinLockForDpc,
        [SpinLock, Handle],
        false
    ),
    sig!(KeReleaseInStackQueuedSpinLockForDpc, [Handle], false),
    sig!(KeFlushQueuedDpcs, [], false),
    sig!(ExInterlockedInsertTailList, [List, Value, SpinLock], true),
    sig!(ExInterlockedInsertHeadList, [List, Value, SpinLock], true),
    sig!(ExInterlockedRemoveHeadList, [List, SpinLock], true),
    sig!(IsListEmpty, [List], true),
    sig!(InitializeListHead, [Value], false),
    sig!(InsertHeadList, [Value, Value], false),
    sig!(InsertTailList, [Value, Value], false),
    sig!(RemoveHeadList, [Value], true),
    sig!(RemoveTailList, [Value], true),
    sig!(RemoveEntryList, [Value], true),
    sig!(InterlockedIncrement, [Data], true),
    sig!(InterlockedDecrement, [Data], true),
    sig!(InterlockedExchange, [Data, Value], true),
    sig!(InterlockedCompareExchange, [Data, Value, Value], true),
    sig!(InterlockedOr, [Data, Value], true),
    sig!(InterlockedAnd, [Data, Value], true),
    sig!(InterlockedXor, [Data, Value], true),
    sig!(InterlockedExchangeAdd, [Data, Value], true),
    sig!(InterlockedAdd, [Data, Value], true),
    sig!(ExAllocatePoolWithTag, [Value, Value, Value], true),
    sig!(ExFreePoolWithTag, [Value, Value], false),
    sig!(KeStallExecutionProcessor, [Value], false),
    sig!(ExRaiseStatus, [Value], false),
    sig!(DbgPrint, [Format], false),
    sig!("ASSERT", Assert, [Value], false),
    sig!("PAGED_CODE", PagedCode, [], false),
    sig!(SimFireInterrupt, [Interrupt, Value], false),
    sig!(KeInitializeDpc, [Dpc, Routine, Value], false),
    sig!(KeInitializeEvent, [Event, Value, Value], false),
    sig!(KeSetEvent, [Event, Value, Value], true),
    sig!(KeClearEvent, [Event], false),
    sig!(KeResetEvent, [Event], true),
    sig!(KeReadStateEvent, [Event], true),
    sig!(
        KeWaitForSingleObject,
        [Waitable, Value, Value, Value, Timeout],
        true
    ),
    sig!(KeInitializeTimer, [Timer], false),
    sig!(KeInitializeTimerEx, [Timer, Value], false),
    sig!(KeSetTimer, [Timer, LargeInt, DpcOrNull], true),
    sig!(KeSetTimerEx, [Timer, LargeInt, Value, DpcOrNull], true),
    sig!(KeCancelTimer, [Timer], true),
    sig!(KeReadStateTimer, [Timer], true),
    sig!(KeQueryInterruptTime, [], true),
    sig!(ExInitializeWorkItem, [WorkItem, Routine, Value], false),
    sig!(ExQueueWorkItem, [WorkItem, Value], false),
    sig!(IoAcquireCancelSpinLock, [OutIrql], false),
    sig!(IoReleaseCancelSpinLock, [Value], false),
    sig!(IoSetCancelRoutine, [Irp, RoutineValue], true),
    sig!(IoMarkIrpPending, [Irp], false),
    sig!(IoCompleteRequest, [Irp, Value], false),
    sig!(IoCancelIrp, [Irp], true),
];

/// Look a routine up by name.
pub fn lookup(name: &str) -> Option<&'static Sig> {
    ROUTINES.iter().find(|s| s.name == name)
}

/// Built-in constants (IRQL names, booleans, DPC importance, ...).
pub const CONSTANTS: &[(&str, i64)] = &[
    ("TRUE", 1),
    ("FALSE", 0),
    ("NULL", 0),
    ("PASSIVE_LEVEL", 0),
    ("LOW_LEVEL", 0),
    ("APC_LEVEL", 1),
    ("DISPATCH_LEVEL", 2),
    ("SYNCH_LEVEL", 12),
    ("CLOCK_LEVEL", 13),
    ("IPI_LEVEL", 14),
    ("POWER_LEVEL", 14),
    ("PROFILE_LEVEL", 15),
    ("HIGH_LEVEL", 15),
    ("LowImportance", 0),
    ("MediumImportance", 1),
    ("HighImportance", 2),
    ("MediumHighImportance", 3),
    ("EXCEPTION_EXECUTE_HANDLER", 1),
    ("EXCEPTION_CONTINUE_SEARCH", 0),
    ("STATUS_SUCCESS", 0),
    ("STATUS_TIMEOUT", 0x102),
    ("STATUS_PENDING", 0x103),
    ("STATUS_DEVICE_BUSY", status(0x8000_0011)),
    ("STATUS_UNSUCCESSFUL", status(0xC000_0001)),
    ("STATUS_NOT_IMPLEMENTED", status(0xC000_0002)),
    ("STATUS_ACCESS_VIOLATION", status(0xC000_0005)),
    ("STATUS_INVALID_PARAMETER", status(0xC000_000D)),
    ("STATUS_INVALID_DEVICE_REQUEST", status(0xC000_0010)),
    ("STATUS_NO_MEMORY", status(0xC000_0017)),
    ("STATUS_BUFFER_TOO_SMALL", status(0xC000_0023)),
    ("STATUS_INTEGER_DIVIDE_BY_ZERO", status(0xC000_0094)),
    ("STATUS_INSUFFICIENT_RESOURCES", status(0xC000_009A)),
    ("STATUS_CANCELLED", status(0xC000_0120)),
    ("NonPagedPool", 0),
    ("PagedPool", 1),
    ("NonPagedPoolNx", 512),
    ("NotificationEvent", 0),
    ("SynchronizationEvent", 1),
    ("NotificationTimer", 0),
    ("SynchronizationTimer", 1),
    ("Executive", 0),
    ("KernelMode", 0),
    ("UserMode", 1),
    ("IO_NO_INCREMENT", 0),
    ("CriticalWorkQueue", 0),
    ("DelayedWorkQueue", 1),
];

/// An NTSTATUS code as the `LONG` it is (codes with the high bit set are
/// negative).
const fn status(code: u32) -> i64 {
    code as i32 as i64
}

/// The value of a built-in constant.
pub fn constant(name: &str) -> Option<i64> {
    CONSTANTS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        for (i, a) in ROUTINES.iter().enumerate() {
            for b in &ROUTINES[i + 1..] {
                assert_ne!(a.name, b.name);
            }
        }
        assert_eq!(lookup("KeAcquireSpinLock").map(|s| s.params.len()), Some(2));
        assert_eq!(constant("DISPATCH_LEVEL"), Some(2));
    }
}
