//! Interrupt request levels with their x64 values.

use serde::Serialize;
use std::fmt;

/// An IRQL (x64 numbering: 0..=15).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Irql(pub u8);

impl Irql {
    pub const PASSIVE: Irql = Irql(0);
    pub const APC: Irql = Irql(1);
    pub const DISPATCH: Irql = Irql(2);
    pub const SYNCH: Irql = Irql(12);
    pub const CLOCK: Irql = Irql(13);
    pub const IPI: Irql = Irql(14);
    pub const HIGH: Irql = Irql(15);

    /// The symbolic name, or `DIRQL n` for device levels.
    pub fn name(self) -> String {
        match self.0 {
            0 => "PASSIVE_LEVEL".into(),
            1 => "APC_LEVEL".into(),
            2 => "DISPATCH_LEVEL".into(),
            12 => "SYNCH_LEVEL".into(),
            13 => "CLOCK_LEVEL".into(),
            14 => "IPI_LEVEL".into(),
            15 => "HIGH_LEVEL".into(),
            n => format!("DIRQL {n}"),
        }
    }

    /// True at DISPATCH_LEVEL or above, where nothing but higher interrupts preempts.
    pub fn is_raised(self) -> bool {
        self >= Irql::DISPATCH
    }
}

impl fmt::Display for Irql {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.0, self.name())
    }
}
