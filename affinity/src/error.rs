//! The crate's error type.

use std::path::PathBuf;

use crate::cpulist::CpuListError;

/// Everything that can go wrong while discovering the topology, choosing
/// cores or pinning a thread. Each variant names the file, value or CPU at
/// fault so the server can print it as is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AffinityError {
    /// A sysfs file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A sysfs file holds a malformed CPU list.
    #[error("malformed CPU list in {path}: {source}")]
    SysfsCpuList {
        /// The file.
        path: PathBuf,
        /// What is wrong with its content.
        source: CpuListError,
    },
    /// A sysfs file that should hold one integer holds something else.
    #[error("malformed integer in {path}: {content:?}")]
    SysfsInteger {
        /// The file.
        path: PathBuf,
        /// The content, trimmed and cut to 64 bytes.
        content: String,
    },
    /// A CPU is listed by two NUMA nodes.
    #[error("CPU {cpu} is listed by NUMA node {first} and node {second}")]
    CpuInTwoNodes {
        /// The CPU.
        cpu: usize,
        /// The first node listing it.
        first: usize,
        /// The second node listing it.
        second: usize,
    },
    /// The sysfs tree lists no online CPU.
    #[error("no online CPU in {path}")]
    NoOnlineCpu {
        /// The `online` file.
        path: PathBuf,
    },
    /// The `cores` configuration value is neither `all` nor a CPU list.
    #[error(
        "invalid cores value {input:?}: {source} (expected \"all\" or a CPU list like \"0-3,6\")"
    )]
    CoreSpec {
        /// The value as given.
        input: String,
        /// What is wrong with it.
        source: CpuListError,
    },
    /// The `cores` list is empty.
    #[error("invalid cores value {input:?}: the CPU list is empty (expected \"all\" or a CPU list like \"0-3,6\")")]
    EmptyCoreList {
        /// The value as given.
        input: String,
    },
    /// A CPU named in the `cores` list is listed twice.
    #[error("CPU {cpu} is listed twice in cores")]
    DuplicateCore {
        /// The CPU.
        cpu: usize,
    },
    /// A CPU named in the `cores` list is offline or does not exist.
    #[error("CPU {cpu} in cores is offline or does not exist (online: {online})")]
    CpuOffline {
        /// The CPU.
        cpu: usize,
        /// The online CPUs, in CPU list syntax.
        online: String,
    },
    /// A CPU named in the `cores` list is outside the process's affinity
    /// mask (taskset, a container's cpuset).
    #[error("CPU {cpu} in cores is not in this process's allowed CPUs ({allowed}); check taskset or the container's cpuset")]
    CpuNotAllowed {
        /// The CPU.
        cpu: usize,
        /// The allowed CPUs, in CPU list syntax.
        allowed: String,
    },
    /// `cores = "all"` found no CPU that is both online and allowed.
    #[error("no CPU is both online ({online}) and allowed ({allowed})")]
    NoUsableCpu {
        /// The online CPUs, in CPU list syntax.
        online: String,
        /// The allowed CPUs, in CPU list syntax.
        allowed: String,
    },
    /// A CPU id is at or above [`crate::MAX_CPUS`], so it cannot be pinned.
    #[error("CPU {cpu} is out of range (at most {max} CPUs are supported)")]
    CpuOutOfRange {
        /// The CPU.
        cpu: usize,
        /// [`crate::MAX_CPUS`].
        max: usize,
    },
    /// An affinity syscall failed.
    #[error("{call} failed: {source}")]
    Syscall {
        /// The syscall (`sched_setaffinity`, `sched_getaffinity`).
        call: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}
