//! The lock families as two-phase state machines for the deterministic engine.
//!
//! Each acquire is split in two: `begin` either takes the lock or registers a
//! waiter, and `poll` advances a waiting acquirer by one step (one spin
//! iteration). The engine calls `poll` once per scheduling step of a spinning
//! processor, so the order in which waiters win is decided by the engine's
//! seeded schedule, never by this crate. Owners are opaque numbers (the
//! engine uses processor indices); the models know nothing about scenarios.
//!
//! The state mirrors Windows' own layouts: the ordinary lock word holds
//! `owner tag | 1`, the queued lock is an MCS queue whose nodes carry the
//! `LOCK_QUEUE_WAIT`/`LOCK_QUEUE_OWNER` bits, and the reader/writer word keeps
//! bit 31 (held exclusive), bit 30 (exclusive acquirer waiting) and the shared
//! count in the low bits.

mod ex;
mod ordinary;
mod queued;

pub use ex::{ExLockModel, ExReleaseError};
pub use ordinary::SpinLockModel;
pub use queued::{NodeId, QueuedLockModel};

/// An opaque owner (the engine passes a processor index).
pub type Owner = u32;

/// Result of one acquire step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll {
    /// The caller now holds the lock.
    Acquired,
    /// The caller must spin: poll again later.
    Spinning,
}
