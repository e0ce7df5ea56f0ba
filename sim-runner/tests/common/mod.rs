//! Helpers shared by the CLI tests: the built binary with logging off, a
//! scratch directory per test, and the output as text.

#![allow(dead_code)] // each test file uses a different subset

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The built `sim-runner`, with `RUST_LOG` unset and colours off.
pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sim-runner"));
    cmd.env_remove("RUST_LOG").env("NO_COLOR", "1");
    cmd
}

/// The built `sim-runner`, run from the repository root.
pub fn bin_in_repo() -> Command {
    let mut cmd = bin();
    cmd.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    cmd
}

/// A fresh, empty directory `group/name` under cargo's target tmp dir.
pub fn scratch(group: &str, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(group)
        .join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
