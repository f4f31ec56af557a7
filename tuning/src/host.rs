//! Reading `/proc` and `/sys` under injectable roots.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use crate::error::TuneError;

/// `/proc/interrupts` on a large host is the biggest file read; anything
/// beyond this is not a procfs or sysfs file.
const FILE_BYTES_MAX: u64 = 4 << 20;

/// Directory listings are bounded too (a host has at most a few thousand
/// IRQs, block devices or network interfaces).
const DIR_ENTRIES_MAX: usize = 65_536;

/// The host as seen through its `/proc` and `/sys` trees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    proc_root: PathBuf,
    sys_root: PathBuf,
}

impl Default for Host {
    fn default() -> Self {
        Host::new("/proc", "/sys")
    }
}

impl Host {
    /// A host whose procfs is at `proc_root` and sysfs at `sys_root`.
    pub fn new(proc_root: impl Into<PathBuf>, sys_root: impl Into<PathBuf>) -> Self {
        Host {
            proc_root: proc_root.into(),
            sys_root: sys_root.into(),
        }
    }

    /// The root of procfs (`/proc` on a real host).
    pub fn proc_root(&self) -> &Path {
        &self.proc_root
    }

    /// The root of sysfs (`/sys` on a real host).
    pub fn sys_root(&self) -> &Path {
        &self.sys_root
    }

    /// `rel` under the procfs root.
    pub fn proc_path(&self, rel: &str) -> PathBuf {
        self.proc_root.join(rel)
    }

    /// `rel` under the sysfs root.
    pub fn sys_path(&self, rel: &str) -> PathBuf {
        self.sys_root.join(rel)
    }

    /// The file behind sysctl `key` (`net.core.rmem_max` →
    /// `<proc>/sys/net/core/rmem_max`).
    pub fn sysctl_path(&self, key: &str) -> PathBuf {
        self.proc_root.join("sys").join(key.replace('.', "/"))
    }

    /// Sysctl `key`, trimmed; `None` when this kernel has no such key.
    pub fn sysctl(&self, key: &str) -> Result<Option<String>, TuneError> {
        Ok(read_optional(&self.sysctl_path(key))?.map(|s| s.trim().to_owned()))
    }

    /// A procfs file; `None` when it does not exist.
    pub fn read_proc(&self, rel: &str) -> Result<Option<String>, TuneError> {
        read_optional(&self.proc_path(rel))
    }

    /// A sysfs file, trimmed; `None` when it does not exist.
    pub fn read_sys(&self, rel: &str) -> Result<Option<String>, TuneError> {
        Ok(read_optional(&self.sys_path(rel))?.map(|s| s.trim().to_owned()))
    }

    /// The names in sysfs directory `rel`, sorted; empty when it does not
    /// exist.
    pub fn list_sys(&self, rel: &str) -> Result<Vec<String>, TuneError> {
        list_dir(&self.sys_path(rel))
    }
}

/// Reads a whole (small) file; `None` when it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<String>, TuneError> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(TuneError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let mut text = String::new();
    file.take(FILE_BYTES_MAX)
        .read_to_string(&mut text)
        .map_err(|source| TuneError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(Some(text))
}

/// The entry names of a directory, sorted; empty when it does not exist.
pub(crate) fn list_dir(path: &Path) -> Result<Vec<String>, TuneError> {
    let read_error = |source| TuneError::Read {
        path: path.to_path_buf(),
        source,
    };
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(read_error(e)),
    };
    let mut names = Vec::new();
    for entry in entries.take(DIR_ENTRIES_MAX) {
        let entry = entry.map_err(read_error)?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// The text of an unreadable item in a finding's `current` column.
pub(crate) fn unknown(e: &TuneError) -> String {
    format!("unknown ({e})")
}

/// Human size: `8388608` → `8MiB`, `212992` → `208KiB`.
pub(crate) fn format_bytes(bytes: u64) -> String {
    const UNITS: [(&str, u32); 3] = [("GiB", 30), ("MiB", 20), ("KiB", 10)];
    for (unit, shift) in UNITS {
        if bytes >= 1 << shift && bytes % (1 << shift) == 0 {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes}B")
}
