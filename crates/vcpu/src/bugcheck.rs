//! Bugcheck records: Windows' stop codes, their names, and what each
//! parameter means, so reports read like `!analyze -v`.

use serde::Serialize;

/// Stop codes the emulator raises (Windows' own values).
pub mod code {
    pub const IRQL_NOT_LESS_OR_EQUAL: u32 = 0xA;
    pub const SPIN_LOCK_ALREADY_OWNED: u32 = 0xF;
    pub const SPIN_LOCK_NOT_OWNED: u32 = 0x10;
    pub const KMODE_EXCEPTION_NOT_HANDLED: u32 = 0x1E;
    pub const SYSTEM_THREAD_EXCEPTION_NOT_HANDLED: u32 = 0x7E;
    pub const UNEXPECTED_KERNEL_MODE_TRAP: u32 = 0x7F;
    pub const ATTEMPTED_SWITCH_FROM_DPC: u32 = 0xB8;
    pub const DRIVER_VERIFIER_DETECTED_VIOLATION: u32 = 0xC4;
    pub const IRQL_UNEXPECTED_VALUE: u32 = 0xC8;
    pub const DRIVER_IRQL_NOT_LESS_OR_EQUAL: u32 = 0xD1;
    pub const WORKER_THREAD_RETURNED_AT_BAD_IRQL: u32 = 0xE1;
    pub const DPC_WATCHDOG_VIOLATION: u32 = 0x133;
    /// The pool's own checks: a free with a wrong tag (P1 = 0x0A), and in a
    /// retail kernel a bad IRQL, a double free or a bad address.
    pub const BAD_POOL_CALLER: u32 = 0xC2;
    /// A list routine found broken links (P1 = 3, a corrupt LIST_ENTRY).
    pub const KERNEL_SECURITY_CHECK_FAILURE: u32 = 0x139;
    /// IoCompleteRequest of an IRP already completed (P1 = the IRP).
    pub const MULTIPLE_IRP_COMPLETE_REQUESTS: u32 = 0x44;
    /// A cancel routine returned holding the cancel spin lock (P1 = the
    /// IRP, P2 = the routine).
    pub const DRIVER_RETURNED_HOLDING_CANCEL_LOCK: u32 = 0x11B;
}

/// Driver Verifier subcodes (P1 of 0xC4).
pub mod c4 {
    pub const RAISE_TO_LOWER: u64 = 0x30;
    pub const LOWER_TO_HIGHER: u64 = 0x31;
    pub const RELEASE_NOT_AT_DISPATCH: u64 = 0x32;
    pub const ACQUIRE_AT_DPC_BELOW_DISPATCH: u64 = 0x40;
    pub const RELEASE_FROM_DPC_BELOW_DISPATCH: u64 = 0x41;
    pub const ACQUIRE_ABOVE_DISPATCH: u64 = 0x42;
    pub const ISR_RETURNED_AT_OTHER_IRQL: u64 = 0x111;
    pub const SELF_DEADLOCK: u64 = 0x1000;
    pub const LOCK_HIERARCHY_VIOLATION: u64 = 0x1001;
    pub const RELEASED_OUT_OF_ORDER: u64 = 0x1003;
    /// 0x1004: a lock released by another thread than its owner (windows-facts, DV subcodes).
    pub const RELEASED_BY_WRONG_THREAD: u64 = 0x1004;
    /// 0x1007: a lock released that nobody owns.
    pub const RELEASED_BEFORE_ACQUIRED: u64 = 0x1007;
    /// 0xE1: a lock or kernel object in pageable storage (Force IRQL checking).
    pub const PAGEABLE_OBJECT: u64 = 0xE1;
    /// 0x20015: DDI compliance rule IrqlKeReleaseSpinLock.
    pub const DDI_IRQL_KE_RELEASE_SPIN_LOCK: u64 = 0x20015;
    pub const MIXED_ACQUIRE_API: u64 = 0x1008;
    pub const RELEASE_WRONG_MODE: u64 = 0x1009;
    pub const THREAD_OWNS_LOCK: u64 = 0x100A;
    /// 0x13: a pool block freed twice (automatic checks; windows-facts "Pool").
    pub const POOL_FREE_TWICE: u64 = 0x13;
    /// 0x36: IoReleaseCancelSpinLock at an IRQL other than DISPATCH_LEVEL.
    pub const CANCEL_LOCK_RELEASE_NOT_AT_DISPATCH: u64 = 0x36;
    /// 0x120: KeWaitForSingleObject above DISPATCH_LEVEL.
    pub const WAIT_ABOVE_DISPATCH: u64 = 0x120;
    /// 0x121: a wait at DISPATCH_LEVEL with no timeout.
    pub const WAIT_AT_DISPATCH_NO_TIMEOUT: u64 = 0x121;
    /// 0x122: a wait at DISPATCH_LEVEL with a non-zero timeout.
    pub const WAIT_AT_DISPATCH_WITH_TIMEOUT: u64 = 0x122;
    /// 0x20016: DDI compliance rule IrqlKeSetEvent.
    pub const DDI_IRQL_KE_SET_EVENT: u64 = 0x20016;
    /// 0x20011: DDI compliance rule IrqlKeDispatchLte.
    pub const DDI_IRQL_KE_DISPATCH_LTE: u64 = 0x20011;
}

/// Exception codes raised by the interpreter itself.
pub mod status {
    pub const INTEGER_DIVIDE_BY_ZERO: u64 = 0xC000_0094;
    /// A NULL pointer dereferenced below DISPATCH_LEVEL.
    pub const ACCESS_VIOLATION: u64 = 0xC000_0005;
}

/// One bugcheck: stop code and its four parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Bugcheck {
    pub code: u32,
    pub params: [u64; 4],
}

impl Bugcheck {
    pub fn new(code: u32, params: [u64; 4]) -> Self {
        Bugcheck { code, params }
    }

    /// A Driver Verifier violation (0xC4) with its subcode.
    pub fn verifier(subcode: u64, p2: u64, p3: u64, p4: u64) -> Self {
        Bugcheck::new(
            code::DRIVER_VERIFIER_DETECTED_VIOLATION,
            [subcode, p2, p3, p4],
        )
    }

    /// Windows' symbolic name of the stop code.
    pub fn name(&self) -> &'static str {
        code_name(self.code).unwrap_or("UNKNOWN_BUGCHECK")
    }

    /// What each of the four parameters means for this code (and subcode).
    pub fn param_meanings(&self) -> [&'static str; 4] {
        use code::*;
        match self.code {
            SPIN_LOCK_ALREADY_OWNED | SPIN_LOCK_NOT_OWNED => [
                "address of the spin lock",
                "reserved",
                "reserved",
                "reserved",
            ],
            KMODE_EXCEPTION_NOT_HANDLED => [
                "exception code",
                "address where the exception occurred",
                "exception parameter 0",
                "exception parameter 1",
            ],
            SYSTEM_THREAD_EXCEPTION_NOT_HANDLED => [
                "exception code",
                "address where the exception occurred",
                "exception record address",
                "context record address",
            ],
            UNEXPECTED_KERNEL_MODE_TRAP => [
                "trap number (8: double fault, kernel stack overflow)",
                "reserved",
                "reserved",
                "reserved",
            ],
            DRIVER_IRQL_NOT_LESS_OR_EQUAL => [
                "memory referenced",
                "IRQL at the time of the reference",
                "0 read, 1 write, 8 execute",
                "address of the instruction that referenced memory",
            ],
            IRQL_UNEXPECTED_VALUE => [
                "(IRQL at return << 16) | (IRQL expected << 8) | 0",
                "address of the DPC routine",
                "address of the KDPC",
                "reserved",
            ],
            ATTEMPTED_SWITCH_FROM_DPC => [
                "original thread (the one the DPC interrupted; an idle thread if none)",
                "new thread (0: none chosen)",
                "stack address of the original thread (0: not modelled)",
                "reserved",
            ],
            WORKER_THREAD_RETURNED_AT_BAD_IRQL => [
                "address of the thread routine",
                "IRQL at return",
                "reserved",
                "reserved",
            ],
            DPC_WATCHDOG_VIOLATION => match self.params[0] {
                0 => [
                    "0: a single DPC or ISR exceeded its time allotment",
                    "time it ran (clock ticks)",
                    "allotment (clock ticks)",
                    "reserved",
                ],
                _ => [
                    "1: the processor stayed at DISPATCH_LEVEL or above too long",
                    "cumulative allotment (clock ticks)",
                    "reserved",
                    "reserved",
                ],
            },
            DRIVER_VERIFIER_DETECTED_VIOLATION => c4_meanings(self.params[0]),
            BAD_POOL_CALLER => match self.params[0] {
                0x0A => [
                    "0x0A: a block freed with another tag than its allocation's",
                    "address of the block",
                    "tag given to the free",
                    "tag of the allocation",
                ],
                0x07 => [
                    "0x07: a block freed twice",
                    "reserved",
                    "reserved",
                    "address of the block",
                ],
                0x08 | 0x09 => [
                    "0x08/0x09: an allocation (0x08) or free (0x09) at a bad IRQL",
                    "current IRQL",
                    "pool type",
                    "address of the block",
                ],
                _ => [
                    "0x46: a free of an address no allocation returned",
                    "the address",
                    "reserved",
                    "reserved",
                ],
            },
            MULTIPLE_IRP_COMPLETE_REQUESTS => {
                ["address of the IRP", "reserved", "reserved", "reserved"]
            }
            DRIVER_RETURNED_HOLDING_CANCEL_LOCK => [
                "address of the IRP",
                "address of the cancel routine",
                "reserved",
                "reserved",
            ],
            KERNEL_SECURITY_CHECK_FAILURE => [
                "3: a LIST_ENTRY was corrupted (its neighbours do not point back)",
                "address of the trap frame",
                "address of the exception record",
                "reserved",
            ],
            _ => ["", "", "", ""],
        }
    }

    /// One line saying which rule was broken.
    pub fn summary(&self) -> &'static str {
        use code::*;
        match self.code {
            SPIN_LOCK_ALREADY_OWNED => "a spin lock was acquired by a processor that already holds it: recursive acquisition spins forever",
            SPIN_LOCK_NOT_OWNED => "a spin lock was released by a processor that does not hold it",
            KMODE_EXCEPTION_NOT_HANDLED => "an exception raised in a DPC or an ISR, at IRQL >= DISPATCH_LEVEL or holding a spin lock was not handled by any __try of that context",
            SYSTEM_THREAD_EXCEPTION_NOT_HANDLED => "a system thread raised an exception that no __try/__except handled",
            UNEXPECTED_KERNEL_MODE_TRAP => "the kernel stack overflowed (runaway recursion): a double fault",
            DRIVER_IRQL_NOT_LESS_OR_EQUAL => "pageable memory (data or code) was touched at IRQL >= DISPATCH_LEVEL, where a page fault cannot be serviced",
            IRQL_UNEXPECTED_VALUE => "a DPC routine returned at an IRQL other than DISPATCH_LEVEL",
            ATTEMPTED_SWITCH_FROM_DPC => "a DPC routine waited (a blocking wait, or KeFlushQueuedDpcs): a thread switch was attempted while a DPC routine was active",
            WORKER_THREAD_RETURNED_AT_BAD_IRQL => "a system thread returned at an IRQL above PASSIVE_LEVEL",
            DPC_WATCHDOG_VIOLATION => "a processor stayed at DISPATCH_LEVEL or above too long: spin-lock deadlock or an over-long DPC/ISR",
            DRIVER_VERIFIER_DETECTED_VIOLATION => c4_summary(self.params[0]),
            BAD_POOL_CALLER => "the pool was called wrongly: a free with another tag than the allocation's, or (without Driver Verifier) a bad IRQL, a double free or an address the pool never returned",
            MULTIPLE_IRP_COMPLETE_REQUESTS => "IoCompleteRequest was called for an IRP that was already completed",
            DRIVER_RETURNED_HOLDING_CANCEL_LOCK => "a cancel routine returned still holding the cancel spin lock",
            KERNEL_SECURITY_CHECK_FAILURE => "a list routine found a LIST_ENTRY whose neighbours do not point back (double remove, or an entry never inserted)",
            _ => "unknown stop code",
        }
    }
}

fn c4_meanings(sub: u64) -> [&'static str; 4] {
    use c4::*;
    match sub {
        RAISE_TO_LOWER => [
            "0x30: KeRaiseIrql to a lower IRQL",
            "current IRQL",
            "requested IRQL",
            "reserved",
        ],
        LOWER_TO_HIGHER => [
            "0x31: KeLowerIrql to a higher IRQL (P4 = 1: a DPC routine lowered below DISPATCH_LEVEL)",
            "current IRQL",
            "requested IRQL",
            "1 when a DPC routine lowered IRQL below DISPATCH_LEVEL, else 0",
        ],
        RELEASE_NOT_AT_DISPATCH => [
            "0x32: spin lock released at an IRQL other than DISPATCH_LEVEL",
            "current IRQL",
            "address of the spin lock",
            "reserved",
        ],
        ACQUIRE_AT_DPC_BELOW_DISPATCH => [
            "0x40: AtDpcLevel acquire below DISPATCH_LEVEL",
            "current IRQL",
            "address of the spin lock",
            "reserved",
        ],
        RELEASE_FROM_DPC_BELOW_DISPATCH => [
            "0x41: FromDpcLevel release below DISPATCH_LEVEL",
            "current IRQL",
            "address of the spin lock",
            "reserved",
        ],
        ACQUIRE_ABOVE_DISPATCH => [
            "0x42: spin lock acquired above DISPATCH_LEVEL",
            "current IRQL",
            "address of the spin lock",
            "reserved",
        ],
        ISR_RETURNED_AT_OTHER_IRQL => [
            "0x111: ISR returned at another IRQL",
            "address of the ISR",
            "IRQL at entry",
            "IRQL at return",
        ],
        SELF_DEADLOCK => [
            "0x1000: self-deadlock, re-acquire of a held lock",
            "address of the lock",
            "reserved",
            "reserved",
        ],
        LOCK_HIERARCHY_VIOLATION => [
            "0x1001: deadlock detected (lock hierarchy violation)",
            "address of the lock that closed the cycle",
            "address of a lock it conflicts with",
            "reserved",
        ],
        RELEASED_OUT_OF_ORDER => [
            "0x1003: lock released in the wrong order",
            "address of the lock released",
            "address of the lock still held",
            "reserved",
        ],
        RELEASED_BY_WRONG_THREAD => [
            "0x1004: lock released by a thread that does not own it",
            "address of the lock",
            "the owning thread",
            "the releasing thread",
        ],
        RELEASED_BEFORE_ACQUIRED => [
            "0x1007: lock released that nobody owns",
            "address of the lock",
            "reserved",
            "reserved",
        ],
        PAGEABLE_OBJECT => [
            "0xE1: a lock or kernel object in pageable storage",
            "address of the object",
            "reserved",
            "reserved",
        ],
        DDI_IRQL_KE_RELEASE_SPIN_LOCK => [
            "0x20015: DDI compliance rule IrqlKeReleaseSpinLock",
            "address of the lock",
            "IRQL the acquire saved",
            "IRQL the release asked for",
        ],
        MIXED_ACQUIRE_API => [
            "0x1008: acquire API does not match the lock's type",
            "address of the lock",
            "reserved",
            "reserved",
        ],
        RELEASE_WRONG_MODE => [
            "0x1009: release API does not match the acquire",
            "address of the lock",
            "reserved",
            "reserved",
        ],
        THREAD_OWNS_LOCK => [
            "0x100A: a thread terminated owning a lock",
            "the owning thread",
            "address of the lock",
            "reserved",
        ],
        0x01 | 0x02 | 0x11 | 0x12 => [
            "pool subcode: allocation or free at a bad IRQL",
            "current IRQL",
            "pool type",
            "number of bytes or the block",
        ],
        0x10 | POOL_FREE_TWICE => [
            "pool subcode: a free of a bad or already freed address",
            "the address freed",
            "reserved",
            "reserved",
        ],
        CANCEL_LOCK_RELEASE_NOT_AT_DISPATCH => [
            "0x36: IoReleaseCancelSpinLock called at an IRQL other than DISPATCH_LEVEL",
            "current IRQL",
            "IRQL to restore",
            "reserved",
        ],
        WAIT_ABOVE_DISPATCH | WAIT_AT_DISPATCH_NO_TIMEOUT | WAIT_AT_DISPATCH_WITH_TIMEOUT => [
            "0x120: a wait above DISPATCH_LEVEL; 0x121: at DISPATCH_LEVEL without a timeout; 0x122: at DISPATCH_LEVEL with a non-zero timeout",
            "current IRQL",
            "address of the object waited on",
            "address of the timeout (0: none)",
        ],
        DDI_IRQL_KE_SET_EVENT => [
            "0x20016: DDI compliance rule IrqlKeSetEvent",
            "current IRQL",
            "address of the event",
            "reserved",
        ],
        DDI_IRQL_KE_DISPATCH_LTE => [
            "0x20011: DDI compliance rule IrqlKeDispatchLte",
            "current IRQL",
            "address of the object",
            "reserved",
        ],
        _ => ["Driver Verifier subcode", "", "", ""],
    }
}

fn c4_summary(sub: u64) -> &'static str {
    use c4::*;
    match sub {
        RAISE_TO_LOWER => "KeRaiseIrql was asked for an IRQL lower than the current one",
        LOWER_TO_HIGHER => "KeLowerIrql was asked for an IRQL higher than the current one",
        RELEASE_NOT_AT_DISPATCH => "KeReleaseSpinLock must be called at DISPATCH_LEVEL, with the IRQL the acquire returned",
        ACQUIRE_AT_DPC_BELOW_DISPATCH => "an AtDpcLevel acquire requires the caller to be at DISPATCH_LEVEL or above already",
        RELEASE_FROM_DPC_BELOW_DISPATCH => "a FromDpcLevel release requires the caller to be at DISPATCH_LEVEL or above",
        ACQUIRE_ABOVE_DISPATCH => "KeAcquireSpinLock raises to DISPATCH_LEVEL, so it must not be called above it",
        ISR_RETURNED_AT_OTHER_IRQL => "an interrupt service routine must return at the IRQL it was called at",
        SELF_DEADLOCK => "a thread re-acquired a spin lock it already owns: it waits for itself",
        LOCK_HIERARCHY_VIOLATION => "locks are taken in an order that can deadlock (a cycle in the lock order)",
        RELEASED_BY_WRONG_THREAD => "a spin lock was released by a thread that does not own it",
        RELEASED_BEFORE_ACQUIRED => "a spin lock was released that no thread owns",
        PAGEABLE_OBJECT => "a spin lock or kernel object lives in pageable storage",
        DDI_IRQL_KE_RELEASE_SPIN_LOCK => "KeReleaseSpinLock was given another IRQL than the one its acquire saved",
        RELEASED_OUT_OF_ORDER => "a release dropped IRQL below DISPATCH_LEVEL while another spin lock was still held: locks released in the wrong order",
        MIXED_ACQUIRE_API => "one KSPIN_LOCK was used both as an ordinary and as an in-stack queued spin lock",
        RELEASE_WRONG_MODE => "a reader/writer spin lock was released in a mode it is not held in",
        THREAD_OWNS_LOCK => "a thread ended while still owning a spin lock",
        // Pool (automatic checks; windows-facts "Pool").
        0x01 => "paged pool was allocated above APC_LEVEL",
        0x02 => "nonpaged pool was allocated above DISPATCH_LEVEL",
        0x10 => "ExFreePoolWithTag was given an address no allocation returned",
        0x11 => "paged pool was freed above APC_LEVEL",
        0x12 => "nonpaged pool was freed above DISPATCH_LEVEL",
        POOL_FREE_TWICE => "a pool block was freed twice",
        CANCEL_LOCK_RELEASE_NOT_AT_DISPATCH => "IoReleaseCancelSpinLock must be called at DISPATCH_LEVEL",
        WAIT_ABOVE_DISPATCH => "KeWaitForSingleObject was called above DISPATCH_LEVEL",
        WAIT_AT_DISPATCH_NO_TIMEOUT => "KeWaitForSingleObject was called at DISPATCH_LEVEL without a timeout",
        WAIT_AT_DISPATCH_WITH_TIMEOUT => "KeWaitForSingleObject was called at DISPATCH_LEVEL with a non-zero timeout",
        DDI_IRQL_KE_SET_EVENT => "KeSetEvent was called above DISPATCH_LEVEL (DDI compliance rule IrqlKeSetEvent)",
        DDI_IRQL_KE_DISPATCH_LTE => "a routine that requires IRQL <= DISPATCH_LEVEL was called above it (DDI compliance rule IrqlKeDispatchLte)",
        _ => "Driver Verifier detected a violation",
    }
}

/// Every stop code the emulator knows, with its Windows name.
pub const CODES: &[(u32, &str)] = &[
    (code::IRQL_NOT_LESS_OR_EQUAL, "IRQL_NOT_LESS_OR_EQUAL"),
    (code::SPIN_LOCK_ALREADY_OWNED, "SPIN_LOCK_ALREADY_OWNED"),
    (code::SPIN_LOCK_NOT_OWNED, "SPIN_LOCK_NOT_OWNED"),
    (
        code::KMODE_EXCEPTION_NOT_HANDLED,
        "KMODE_EXCEPTION_NOT_HANDLED",
    ),
    (
        code::SYSTEM_THREAD_EXCEPTION_NOT_HANDLED,
        "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED",
    ),
    (
        code::UNEXPECTED_KERNEL_MODE_TRAP,
        "UNEXPECTED_KERNEL_MODE_TRAP",
    ),
    (code::ATTEMPTED_SWITCH_FROM_DPC, "ATTEMPTED_SWITCH_FROM_DPC"),
    (code::BAD_POOL_CALLER, "BAD_POOL_CALLER"),
    (
        code::KERNEL_SECURITY_CHECK_FAILURE,
        "KERNEL_SECURITY_CHECK_FAILURE",
    ),
    (
        code::DRIVER_VERIFIER_DETECTED_VIOLATION,
        "DRIVER_VERIFIER_DETECTED_VIOLATION",
    ),
    (code::IRQL_UNEXPECTED_VALUE, "IRQL_UNEXPECTED_VALUE"),
    (
        code::DRIVER_IRQL_NOT_LESS_OR_EQUAL,
        "DRIVER_IRQL_NOT_LESS_OR_EQUAL",
    ),
    (
        code::WORKER_THREAD_RETURNED_AT_BAD_IRQL,
        "WORKER_THREAD_RETURNED_AT_BAD_IRQL",
    ),
    (code::DPC_WATCHDOG_VIOLATION, "DPC_WATCHDOG_VIOLATION"),
    (
        code::MULTIPLE_IRP_COMPLETE_REQUESTS,
        "MULTIPLE_IRP_COMPLETE_REQUESTS",
    ),
    (
        code::DRIVER_RETURNED_HOLDING_CANCEL_LOCK,
        "DRIVER_RETURNED_HOLDING_CANCEL_LOCK",
    ),
];

/// The name of a stop code.
pub fn code_name(code: u32) -> Option<&'static str> {
    CODES.iter().find(|(c, _)| *c == code).map(|(_, n)| *n)
}

/// The stop code of a name (`SPIN_LOCK_ALREADY_OWNED` → 0xF).
pub fn code_of_name(name: &str) -> Option<u32> {
    CODES.iter().find(|(_, n)| *n == name).map(|(c, _)| *c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for (c, n) in CODES {
            assert_eq!(code_of_name(n), Some(*c));
            assert_eq!(code_name(*c), Some(*n));
        }
    }

    #[test]
    fn verifier_subcode_meanings() {
        let b = Bugcheck::verifier(c4::LOCK_HIERARCHY_VIOLATION, 1, 2, 0);
        assert_eq!(b.name(), "DRIVER_VERIFIER_DETECTED_VIOLATION");
        assert!(b.param_meanings()[0].starts_with("0x1001"));
    }
}
