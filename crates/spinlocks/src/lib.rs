//! The four Windows spin lock families.
//!
//! * [`model`]: each family as a two-phase state machine (`begin` takes the
//!   lock or registers a waiter; `poll` advances a waiter one step). The
//!   emulator's deterministic engine drives these; they keep Windows' word
//!   layouts and algorithms (test-and-set word, MCS queue with WAIT/OWNER
//!   bits, the EX_SPIN_LOCK exclusive/waiting bits and shared count) and know
//!   nothing about scenarios: an owner is an opaque number.

pub mod model;
