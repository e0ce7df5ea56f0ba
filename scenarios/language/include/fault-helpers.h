// Helpers of include-fault-location.sim: the lock is taken and the fault
// happens here, so the report names this file and its lines.
VOID TakeStats(VOID) {
    KIRQL Old;
    KeAcquireSpinLock(&StatsLock, &Old);
    Stats++;
}

VOID TakeStatsAgain(VOID) {
    KIRQL Old;
    KeAcquireSpinLock(&StatsLock, &Old);   // BUG: already held by this thread
}
