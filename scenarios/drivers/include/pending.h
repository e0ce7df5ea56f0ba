// pending.h: the device extension of a small block-device driver model with
// a driver-managed queue of pending read requests, shared by
// pending-queue-peek-race.sim and pending-queue-peek-fixed.sim (no scenario
// header here).
//
// DispatchRead queues each request (pool-allocated, linked into the device
// extension's PendingQueue by its ListEntry) and returns STATUS_PENDING.
// The device works on the whole queue once the driver rings its doorbell;
// when it is done it interrupts, the ISR queues the completion DPC, and the
// DPC completes every request still queued. The application may give up on
// its oldest read first: CancelOldestRequest, in each scenario file, which
// also holds the workload (the device and the application threads).

#define PENDING_TAG        'dPvK'
#define READS              4
#define DEVICE_LATENCY_US  20

typedef struct _PENDING_REQUEST {
    LIST_ENTRY ListEntry;
    ULONG Id;
    ULONG Length;
    NTSTATUS Status;
} PENDING_REQUEST, *PPENDING_REQUEST;

typedef struct _DEVICE_EXTENSION {
    KSPIN_LOCK QueueLock;
    _Guarded_by_(QueueLock) LIST_ENTRY PendingQueue;
    _Guarded_by_(QueueLock) ULONG PendingCount;
    volatile LONG Doorbell;         // the device's start register
    volatile LONG Completed;        // requests completed, by status
    volatile LONG Cancelled;
} DEVICE_EXTENSION, *PDEVICE_EXTENSION;

DEVICE_EXTENSION DeviceExtension;

VOID CancelOldestRequest(PDEVICE_EXTENSION DevExt);     // in each scenario file
KINTERRUPT DeviceInterrupt(DeviceIsr, 5);
KDPC CompletionDpc(CompletionDpcRoutine);

NTSTATUS DriverEntry(VOID) {
    KeInitializeSpinLock(&DeviceExtension.QueueLock);
    InitializeListHead(&DeviceExtension.PendingQueue);
    return STATUS_SUCCESS;
}

NTSTATUS DispatchRead(PDEVICE_EXTENSION DevExt, ULONG Id, ULONG Length) {
    KIRQL OldIrql;
    PPENDING_REQUEST Request;
    Request = ExAllocatePoolWithTag(NonPagedPoolNx, sizeof(PENDING_REQUEST), PENDING_TAG);
    Request->Id = Id;
    Request->Length = Length;
    Request->Status = STATUS_PENDING;
    KeAcquireSpinLock(&DevExt->QueueLock, &OldIrql);
    InsertTailList(&DevExt->PendingQueue, &Request->ListEntry);
    DevExt->PendingCount++;
    KeReleaseSpinLock(&DevExt->QueueLock, OldIrql);
    return STATUS_PENDING;
}

// Complete a request that is no longer queued: outside the queue lock, as
// completion calls back into other drivers. The request's memory goes back
// to the pool.
VOID CompleteRequest(PDEVICE_EXTENSION DevExt, PPENDING_REQUEST Request, NTSTATUS Status) {
    Request->Status = Status;
    if (NT_SUCCESS(Status)) {
        InterlockedIncrement(&DevExt->Completed);
    } else {
        InterlockedIncrement(&DevExt->Cancelled);
    }
    ExFreePoolWithTag(Request, PENDING_TAG);
}

BOOLEAN DeviceIsr(PKINTERRUPT Interrupt, PVOID ServiceContext) {
    KeInsertQueueDpc(&CompletionDpc, NULL, NULL);
    return TRUE;
}

// Complete every request still queued: unlink one under the lock, complete
// it without the lock, and so on until the queue is empty.
VOID CompletionDpcRoutine(PKDPC Dpc, PVOID DeferredContext, PVOID SystemArgument1, PVOID SystemArgument2) {
    PDEVICE_EXTENSION DevExt = &DeviceExtension;
    PLIST_ENTRY Entry;
    for (;;) {
        KeAcquireSpinLockAtDpcLevel(&DevExt->QueueLock);
        if (IsListEmpty(&DevExt->PendingQueue)) {
            KeReleaseSpinLockFromDpcLevel(&DevExt->QueueLock);
            break;
        }
        Entry = RemoveHeadList(&DevExt->PendingQueue);
        DevExt->PendingCount--;
        KeReleaseSpinLockFromDpcLevel(&DevExt->QueueLock);
        CompleteRequest(DevExt, CONTAINING_RECORD(Entry, PENDING_REQUEST, ListEntry), STATUS_SUCCESS);
    }
}
