//! The atomics shim: `core`'s atomics normally, loom's under `--cfg loom`.
//!
//! Every atomic, spin hint and thread-local used by the real locks comes
//! through here, so the loom test suite (`tests/loom.rs`) model-checks the
//! very code that ships. Under loom, `spin_loop` yields to loom's scheduler,
//! which is what lets it explore (and bound) spin-wait loops.

#[cfg(loom)]
pub(crate) use loom::{
    hint::spin_loop,
    sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicUsize, Ordering},
};

#[cfg(not(loom))]
pub(crate) use core::{
    hint::spin_loop,
    sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicUsize, Ordering},
};

/// Defines a constructor that is `const fn` normally and a plain `fn` under
/// loom (loom's atomics have no `const` constructors).
macro_rules! const_fn_unless_loom {
    (
        $(#[$attr:meta])*
        $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty $body:block
    ) => {
        #[cfg(not(loom))]
        $(#[$attr])*
        $vis const fn $name($($arg: $ty),*) -> $ret $body

        #[cfg(loom)]
        $(#[$attr])*
        $vis fn $name($($arg: $ty),*) -> $ret $body
    };
}
pub(crate) use const_fn_unless_loom;

/// A per-thread tag for "who owns this lock" words: never 0, always odd
/// (bit 0 doubles as the "held" bit), and unique for the life of the process
/// (tags come from a counter and are never reused).
///
/// Costs one thread-local read after the first call on a thread.
#[inline]
pub(crate) fn current_thread_tag() -> usize {
    use core::cell::Cell;

    #[cfg(loom)]
    loom::thread_local! {
        static TAG: Cell<usize> = Cell::new(0);
    }
    #[cfg(not(loom))]
    std::thread_local! {
        static TAG: Cell<usize> = const { Cell::new(0) };
    }

    TAG.try_with(|tag| {
        let t = tag.get();
        if t != 0 {
            t
        } else {
            let t = fresh_tag();
            tag.set(t);
            t
        }
    })
    // During thread-local destruction: an anonymous owner. ANONYMOUS_TAG
    // never matches "already owned by me", so such code can still lock.
    .unwrap_or(ANONYMOUS_TAG)
}

/// Tag used when the thread-local is gone (thread teardown). Ownership
/// checks are skipped for it.
pub(crate) const ANONYMOUS_TAG: usize = 1;

#[cold]
fn fresh_tag() -> usize {
    // Deliberately std's atomic even under loom: it only hands out distinct
    // numbers and is not part of any lock protocol.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    (id << 1) | 1
}
