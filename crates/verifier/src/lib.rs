//! The verifier: an observer of the engine's event stream.
