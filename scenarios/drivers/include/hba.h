// hba.h: a storage host adapter model with one command queue per channel,
// shared by channel-steal-order-bad.sim and channel-steal-order-fixed.sim
// (no scenario header here).
//
// The adapter has HBA_CHANNELS channels. Each CHANNEL (the per-channel part
// of the device extension) keeps its own queue of pool-allocated SCSI-like
// commands under its own spin lock, so the channels never contend with each
// other on the fast path. Reports name each lock instance by its element:
// `Channels[0].Lock`, `Channels[1].Lock`.

#define HBA_CHANNELS      2
#define HBA_TAG           'abHk'
#define BURST             6

typedef struct _HBA_COMMAND {
    LIST_ENTRY Link;
    ULONG Tag;              // the command's tag
    ULONG Channel;          // the channel that issued it
} HBA_COMMAND, *PHBA_COMMAND;

typedef struct _CHANNEL {
    ULONG Index;
    KSPIN_LOCK Lock;
    _Guarded_by_(Lock) LIST_ENTRY CommandQueue;
    _Guarded_by_(Lock) ULONG QueueDepth;
    _Guarded_by_(Lock) ULONG Completed;
    _Guarded_by_(Lock) ULONG Stolen;
} CHANNEL, *PCHANNEL;

CHANNEL Channels[HBA_CHANNELS];
volatile LONG BurstsIssued;
volatile LONG WorkersDone;

NTSTATUS DriverEntry(VOID) {
    ULONG i;
    for (i = 0; i < HBA_CHANNELS; i++) {
        Channels[i].Index = i;
        KeInitializeSpinLock(&Channels[i].Lock);
        InitializeListHead(&Channels[i].CommandQueue);
    }
    return STATUS_SUCCESS;
}

// Start a command on a channel: queue it until the channel's service routine runs.
VOID IssueCommand(PCHANNEL Channel, ULONG Tag) {
    KIRQL OldIrql;
    PHBA_COMMAND Command = ExAllocatePoolWithTag(NonPagedPoolNx, sizeof(HBA_COMMAND), HBA_TAG);
    Command->Tag = Tag;
    Command->Channel = Channel->Index;
    KeAcquireSpinLock(&Channel->Lock, &OldIrql);
    InsertTailList(&Channel->CommandQueue, &Command->Link);
    Channel->QueueDepth++;
    KeReleaseSpinLock(&Channel->Lock, OldIrql);
}

// Complete every command queued on the channel. Called at PASSIVE_LEVEL.
VOID ServiceChannel(PCHANNEL Channel) {
    KIRQL OldIrql;
    PLIST_ENTRY Entry;
    PHBA_COMMAND Command;
    KeAcquireSpinLock(&Channel->Lock, &OldIrql);
    while (!IsListEmpty(&Channel->CommandQueue)) {
        Entry = RemoveHeadList(&Channel->CommandQueue);
        Channel->QueueDepth--;
        Channel->Completed++;
        Command = CONTAINING_RECORD(Entry, HBA_COMMAND, Link);
        ExFreePoolWithTag(Command, HBA_TAG);
    }
    KeReleaseSpinLock(&Channel->Lock, OldIrql);
}

// Move commands from the tail of Victim's backlog to Thief until the two
// depths differ by at most one. The caller holds both channels' locks.
VOID MoveBacklog(PCHANNEL Thief, PCHANNEL Victim) {
    PLIST_ENTRY Entry;
    while (Victim->QueueDepth > Thief->QueueDepth + 1) {
        Entry = RemoveTailList(&Victim->CommandQueue);
        Victim->QueueDepth--;
        InsertTailList(&Thief->CommandQueue, Entry);
        Thief->QueueDepth++;
        Thief->Stolen++;
    }
}

VOID BalanceChannels(PCHANNEL Thief, PCHANNEL Victim);   // in each scenario file

// A channel's service thread: issue this channel's burst of commands, wait
// until every channel has issued its burst, even out the backlog with the
// partner channel, then complete what this channel holds.
VOID ChannelWorker(PCHANNEL Self, PCHANNEL Partner, ULONG Commands) {
    ULONG i;
    for (i = 0; i < Commands; i++) {
        IssueCommand(Self, Self->Index * 100 + i);
    }
    InterlockedIncrement(&BurstsIssued);
    while (BurstsIssued < HBA_CHANNELS) { }
    BalanceChannels(Self, Partner);
    ServiceChannel(Self);
    InterlockedIncrement(&WorkersDone);
}

// Once both workers are done: every command was completed by one channel.
VOID CheckChannels(ULONG Issued) {
    KIRQL OldIrql;
    ULONG i;
    ULONG Total = 0;
    while (WorkersDone < HBA_CHANNELS) { }
    for (i = 0; i < HBA_CHANNELS; i++) {
        KeAcquireSpinLock(&Channels[i].Lock, &OldIrql);
        ASSERT(Channels[i].QueueDepth == 0);
        DbgPrint("channel %u: completed %u, stole %u\n", i, Channels[i].Completed, Channels[i].Stolen);
        Total += Channels[i].Completed;
        KeReleaseSpinLock(&Channels[i].Lock, OldIrql);
    }
    ASSERT(Total == Issued);
}
