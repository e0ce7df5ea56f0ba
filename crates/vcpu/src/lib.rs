//! Virtual processors: the machine-level vocabulary every other crate shares.
//!
//! This crate owns what a Windows processor looks like to the emulator and
//! nothing about scenarios: IRQL values ([`irql`]), bugcheck records with
//! Windows' codes ([`bugcheck`]), the engine's single event stream that the
//! verifier and reports consume ([`event`]), and the per-processor state —
//! context stack, DPC queue, pending interrupts, virtual clock
//! ([`processor`]).
//!
//! Architecture invariant: the bottom of the stack with `spinlocks`; it
//! never imports `scenario`, `machine`, `verifier` or the CLI.

pub mod bugcheck;
pub mod event;
pub mod irql;
pub mod processor;

pub use bugcheck::Bugcheck;
pub use event::{AcquireKind, ContextKind, Event, EventKind, LockFamily, LockId, LockMode, Nanos};
pub use irql::Irql;
pub use processor::{DpcQueue, Importance, Processor};

/// Index of a virtual processor (0-based).
pub type CpuId = u32;
