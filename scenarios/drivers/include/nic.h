// nic.h: the device extension of a small NIC driver model, shared by the
// scenarios in scenarios/drivers (no scenario header here).
//
// Each device has a receive queue of pool-allocated requests under its own
// queue lock, statistics under a reader/writer lock, and a cancel flag a
// request carries instead of a cancel routine.

#define NIC_DEVICES   2
#define NIC_TAG       'ciNk'
#define RX_BATCH      4

typedef struct _REQUEST {
    LIST_ENTRY Link;
    ULONG Length;
    BOOLEAN Cancelled;
} REQUEST, *PREQUEST;

typedef struct _STATS {
    ULONG64 Packets;
    ULONG64 Bytes;
    ULONG Dropped;
} STATS;

typedef struct _NIC {
    KSPIN_LOCK QueueLock;
    _Guarded_by_(QueueLock) LIST_ENTRY Pending;
    _Guarded_by_(QueueLock) ULONG Depth;
    EX_SPIN_LOCK StatsLock;
    _Guarded_by_(StatsLock) STATS Stats;
} NIC, *PNIC;

NIC Nics[NIC_DEVICES];

NTSTATUS DriverEntry(VOID) {
    ULONG i;
    for (i = 0; i < NIC_DEVICES; i++) {
        KeInitializeSpinLock(&Nics[i].QueueLock);
        InitializeListHead(&Nics[i].Pending);
    }
    return STATUS_SUCCESS;
}

// Queue a receive request (any IRQL <= DISPATCH_LEVEL).
VOID QueueRequest(PNIC Nic, ULONG Length) {
    KIRQL OldIrql;
    PREQUEST R = ExAllocatePoolWithTag(NonPagedPoolNx, sizeof(REQUEST), NIC_TAG);
    R->Length = Length;
    KeAcquireSpinLock(&Nic->QueueLock, &OldIrql);
    InsertTailList(&Nic->Pending, &R->Link);
    Nic->Depth++;
    KeReleaseSpinLock(&Nic->QueueLock, OldIrql);
}
