//! Typed ids of the machine's tables: a processor, a DPC object, an
//! interrupt, a kernel object in data, an ExInterlocked list — each an
//! index into its table of the `Program` and of the machine's state, so one
//! cannot be passed where another is meant. `vcpu::LockId` is the model.
//! The compiled program (`scenario::program::Place`) and `vcpu` keep bare
//! `u32`s; the machine converts where it reads them (`kernel/mod.rs`'s
//! place accessors, arrivals, the processors' DPC queues).

macro_rules! ids {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub(super) struct $name(pub u32);

        impl $name {
            /// The index into its tables.
            pub(super) fn ix(self) -> usize {
                self.0 as usize
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}

ids! {
    /// A virtual processor (`Machine::cpus`, `Processor::id`).
    CpuId;
    /// A DPC object (`Program::dpcs`, `Shared::dpcs`).
    DpcId;
    /// An interrupt (`Program::interrupts`).
    InterruptId;
    /// A kernel object in data (`Program::objects`, `Shared::objects`).
    ObjectId;
    /// An ExInterlocked list (`Program::lists`, `Shared::lists`).
    ListId;
}
