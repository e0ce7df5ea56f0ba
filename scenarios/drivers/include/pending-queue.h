// pending-queue.h: a driver that holds read IRPs pending in its own queue and
// completes them later from a timer DPC, shared by the scenarios
// scenarios/drivers/pending-queue-*.sim (no scenario header here). Each
// scenario adds the completion DPC, PqCompletionDpc, and the workload.
//
// The queue is the one of Microsoft's "Synchronizing IRP cancellation" example:
// a KSPIN_LOCK of the driver's own (QueueLock) guards a LIST_ENTRY of pending
// IRPs, linked through Irp->Tail.Overlay.ListEntry. The system cancel spin lock
// is held only where IoCancelIrp calls the cancel routine, which drops it at
// once (IoReleaseCancelSpinLock(Irp->CancelIrql)) and then works under
// QueueLock alone.
//
// Who completes an IRP is decided by one atomic swap, IoSetCancelRoutine:
// - PqDispatchRead sets the cancel routine (IoSetCancelRoutine(Irp, PqCancel))
//   and queues the IRP, marked pending (IoMarkIrpPending, STATUS_PENDING);
// - IoCancelIrp swaps the routine with NULL and, if it got one, calls it:
//   from then on the cancel routine owns the IRP;
// - the completion path swaps the routine with NULL too
//   (IoSetCancelRoutine(Irp, NULL)): a non-NULL result means it won and owns
//   the IRP; NULL means IoCancelIrp won, the cancel routine is running or about
//   to run, and it will complete the IRP.
// Exactly one of them may call IoCompleteRequest; a second call is
// MULTIPLE_IRP_COMPLETE_REQUESTS (0x44).

#define PQ_IRPS        4
#define PQ_TICK        (-10 * 100)      // 100 us, relative, in 100 ns units: one tick of `clock 100us;`

// The IRPs the I/O manager sends. Declared before the extension: with a
// KSPIN_LOCK declared before them, the emulator (d8fcf30) passes the cancel
// routine a pointer that is not &Irps[i] (reported to the lead).
IRP Irps[PQ_IRPS];

typedef struct _PQ_EXTENSION {
    KSPIN_LOCK QueueLock;
    _Guarded_by_(QueueLock) LIST_ENTRY PendingIrps;
    KTIMER CompletionTimer;             // one IRP is completed per expiry
    KEVENT AllCompleted;                // notification: no IRP outstanding
    volatile LONG Outstanding;          // IRPs not completed yet
    volatile LONG CompletedOk;
    volatile LONG CompletedCancelled;
} PQ_EXTENSION, *PPQ_EXTENSION;

PQ_EXTENSION Pq;
KDPC PqCompletionDpcObject(PqCompletionDpc, &Pq);

NTSTATUS DriverEntry(VOID) {
    KeInitializeSpinLock(&Pq.QueueLock);
    InitializeListHead(&Pq.PendingIrps);
    KeInitializeTimer(&Pq.CompletionTimer);
    KeInitializeEvent(&Pq.AllCompleted, NotificationEvent, FALSE);
    return STATUS_SUCCESS;
}

// Complete an IRP that the caller owns. The IRP is not touched after
// IoCompleteRequest: on Windows it goes back to its sender, who may free it.
VOID PqCompleteIrp(PPQ_EXTENSION X, PIRP Irp, NTSTATUS Status) {
    Irp->IoStatus.Status = Status;
    Irp->IoStatus.Information = 0;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    if (Status == STATUS_CANCELLED) {
        InterlockedIncrement(&X->CompletedCancelled);
    } else {
        InterlockedIncrement(&X->CompletedOk);
    }
    if (InterlockedDecrement(&X->Outstanding) == 0) {
        KeSetEvent(&X->AllCompleted, IO_NO_INCREMENT, FALSE);
    }
}

// The cancel routine. IoCancelIrp calls it at DISPATCH_LEVEL holding the
// cancel spin lock, after it swapped the IRP's cancel routine with NULL: it now
// owns the IRP. The completion DPC may have dequeued the IRP already; then it
// made the IRP's list entry point at itself, and RemoveEntryList is harmless.
VOID PqCancel(PDEVICE_OBJECT DeviceObject, PIRP Irp) {
    KIRQL OldIrql;
    IoReleaseCancelSpinLock(Irp->CancelIrql);           // first: never hold it longer
    KeAcquireSpinLock(&Pq.QueueLock, &OldIrql);
    RemoveEntryList(&Irp->Tail.Overlay.ListEntry);
    KeReleaseSpinLock(&Pq.QueueLock, OldIrql);
    PqCompleteIrp(&Pq, Irp, STATUS_CANCELLED);
}

// IRP_MJ_READ: hold the IRP pending in the queue; the timer DPC completes it.
NTSTATUS PqDispatchRead(PDEVICE_OBJECT DeviceObject, PIRP Irp) {
    KIRQL OldIrql;
    LARGE_INTEGER Due;
    PDRIVER_CANCEL OldCancel;
    InterlockedIncrement(&Pq.Outstanding);
    IoMarkIrpPending(Irp);
    KeAcquireSpinLock(&Pq.QueueLock, &OldIrql);
    if (IsListEmpty(&Pq.PendingIrps)) {
        Due.QuadPart = PQ_TICK;
        KeSetTimer(&Pq.CompletionTimer, Due, &PqCompletionDpcObject);
    }
    InsertTailList(&Pq.PendingIrps, &Irp->Tail.Overlay.ListEntry);
    IoSetCancelRoutine(Irp, PqCancel);
    if (Irp->Cancel) {
        // Cancelled before the routine was set: take it back. NULL means
        // IoCancelIrp took it in the meantime and PqCancel completes the IRP.
        OldCancel = IoSetCancelRoutine(Irp, NULL);
        if (OldCancel != NULL) {
            RemoveEntryList(&Irp->Tail.Overlay.ListEntry);
            KeReleaseSpinLock(&Pq.QueueLock, OldIrql);
            PqCompleteIrp(&Pq, Irp, STATUS_CANCELLED);
            return STATUS_PENDING;
        }
    }
    KeReleaseSpinLock(&Pq.QueueLock, OldIrql);
    return STATUS_PENDING;
}

// Re-arm the completion timer while IRPs wait (caller holds QueueLock).
VOID PqRearmLocked(PPQ_EXTENSION X) {
    LARGE_INTEGER Due;
    if (!IsListEmpty(&X->PendingIrps)) {
        Due.QuadPart = PQ_TICK;
        KeSetTimer(&X->CompletionTimer, Due, &PqCompletionDpcObject);
    }
}
