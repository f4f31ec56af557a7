//! Errors of reading and changing the host.

use std::path::PathBuf;

/// An error of [`crate::plan`], [`crate::apply`] or the disk probe. The checks never fail:
/// they turn what they cannot read into an "unknown" finding.
#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    /// A file exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A `cores` setting that is neither `all` nor a CPU list.
    #[error("cores = {spec:?}: {message}")]
    Cores {
        /// The setting.
        spec: String,
        /// What is wrong with it.
        message: String,
    },
    /// The disk probe's settings cannot be measured.
    #[error("disk probe of {dir}: {message}")]
    ProbeConfig {
        /// The directory to probe.
        dir: PathBuf,
        /// What is wrong with the settings.
        message: String,
    },
    /// An operation of the disk probe failed.
    #[error("disk probe: {op} {path}: {message}")]
    Probe {
        /// The probe's file or directory.
        path: PathBuf,
        /// What was being done: `open (O_DIRECT)`, `write`, `fdatasync`, ...
        op: &'static str,
        /// The cause.
        message: String,
    },
    /// Changing the host needs root.
    #[error(
        "`tidegate tune apply` changes sysctls and block device settings and must run as root \
         (effective uid is {euid}); rerun with sudo, or pass --dry-run to see the changes"
    )]
    NotRoot {
        /// The effective uid of this process.
        euid: u32,
    },
}
