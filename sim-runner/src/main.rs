//! `sim-runner`: the command line of the emulator.
fn main() {}
