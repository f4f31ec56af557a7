//! What loadgen's end-to-end tests share: the binaries they run.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn loadgen() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tidegate-loadgen"))
}

/// The server binary beside loadgen's; built first when missing (a run of
/// only this package's tests does not build it).
pub fn server_bin() -> PathBuf {
    let bin = loadgen().with_file_name("tidegate");
    if !bin.exists() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "tidegate", "--bin", "tidegate"])
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
            .status()
            .unwrap();
        assert!(status.success());
    }
    bin
}
