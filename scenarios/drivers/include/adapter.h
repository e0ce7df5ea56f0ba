// adapter.h: the statistics block of a network miniport adapter model,
// shared by stats-recursive-shared-bad.sim and stats-recursive-shared-fixed.sim
// (no scenario header here).
//
// The receive DPC is the only writer of the counters and takes the adapter's
// reader/writer spin lock exclusively; statistics queries (OID requests, at
// PASSIVE_LEVEL) only read them and take it shared, so several queries can
// run at once without holding up each other.

#define RX_INTERRUPTS   4
#define RX_PER_DPC      3
#define OID_QUERIES     3

typedef struct _RX_COUNTERS {
    ULONG64 Packets;
    ULONG64 Bytes;
    ULONG64 CrcErrors;
} RX_COUNTERS;

typedef struct _ADAPTER {
    EX_SPIN_LOCK StatsLock;
    _Guarded_by_(StatsLock) RX_COUNTERS Rx;
    _Guarded_by_(StatsLock) ULONG DpcCount;
} ADAPTER, *PADAPTER;

ADAPTER Adapter;
KINTERRUPT RxInterrupt(RxIsr, 5);
KDPC RxDpc(RxDpcRoutine);

BOOLEAN RxIsr(PKINTERRUPT Interrupt, PVOID ServiceContext) {
    KeInsertQueueDpc(&RxDpc, NULL, NULL);
    return TRUE;
}

// The receive DPC: count the frames the hardware delivered (every seventh
// one fails its CRC). The only writer: exclusive.
VOID RxDpcRoutine(PKDPC Dpc, PVOID DeferredContext, PVOID SystemArgument1, PVOID SystemArgument2) {
    ULONG i;
    ExAcquireSpinLockExclusiveAtDpcLevel(&Adapter.StatsLock);
    for (i = 0; i < RX_PER_DPC; i++) {
        Adapter.Rx.Packets++;
        Adapter.Rx.Bytes += 1514;
        if (Adapter.Rx.Packets % 7 == 0) {
            Adapter.Rx.CrcErrors++;
        }
    }
    Adapter.DpcCount++;
    ExReleaseSpinLockExclusiveFromDpcLevel(&Adapter.StatsLock);
}

// CRC errors per million packets, for a caller that already holds the
// statistics lock (shared or exclusive): the `...Locked` naming convention.
ULONG64 CrcErrorRatePpmLocked(PADAPTER A) {
    ULONG64 Rate = 0;
    if (A->Rx.Packets != 0) {
        Rate = A->Rx.CrcErrors * 1000000 / A->Rx.Packets;
    }
    return Rate;
}
