//! `tune apply`: the safe subset of fixes, planned from the same reads as
//! the checks. Safe means reversible at run time and harmless to other
//! programs on a dedicated host: the UDP buffer sysctls, `vm.swappiness`
//! and the block I/O scheduler. IRQ affinity, the CPU governor, THP and
//! the write cache are left to the operator (they outlive tidegate's
//! purpose or, for the write cache, can lose data).

use std::path::PathBuf;

use serde::Serialize;

use crate::disk::{devices, parse_scheduler, wanted_scheduler};
use crate::error::TuneError;
use crate::host::Host;
use crate::memory::SWAPPINESS_MAX;
use crate::net::udp_sysctls;
use crate::Expectations;

/// One planned write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// What changes: a sysctl key (`net.core.rmem_max`) or a sysfs item
    /// (`block/nvme0n1/queue/scheduler`).
    pub key: String,
    /// The file written.
    pub path: PathBuf,
    /// The value now.
    pub old: String,
    /// The value written.
    pub new: String,
}

/// The changes that would bring the host to what tidegate wants. Values
/// already right (or better: a larger buffer) give no change, so planning
/// after [`apply`] gives nothing.
pub fn plan(host: &Host, expect: &Expectations) -> Result<Vec<Change>, TuneError> {
    let mut changes = Vec::new();
    for (key, min) in udp_sysctls(expect) {
        if let Some(old) = host.sysctl(key)? {
            if old.parse::<u64>().is_ok_and(|n| n < min) {
                changes.push(sysctl_change(host, key, old, min.to_string()));
            }
        }
    }
    let key = "vm.swappiness";
    if let Some(old) = host.sysctl(key)? {
        if old.parse::<u64>().is_ok_and(|n| n > SWAPPINESS_MAX) {
            changes.push(sysctl_change(host, key, old, SWAPPINESS_MAX.to_string()));
        }
    }
    for dev in devices(host, expect)? {
        changes.extend(scheduler_change(host, &dev)?);
    }
    Ok(changes)
}

fn sysctl_change(host: &Host, key: &str, old: String, new: String) -> Change {
    Change {
        key: key.to_owned(),
        path: host.sysctl_path(key),
        old,
        new,
    }
}

fn scheduler_change(host: &Host, dev: &str) -> Result<Option<Change>, TuneError> {
    let rel = format!("block/{dev}/queue/scheduler");
    let Some(scheduler) = host.read_sys(&rel)?.as_deref().and_then(parse_scheduler) else {
        return Ok(None);
    };
    let want = wanted_scheduler(host, dev)?;
    // A kernel without the wanted scheduler built in rejects the write.
    if scheduler.selected == want || !scheduler.available.iter().any(|s| s == want) {
        return Ok(None);
    }
    Ok(Some(Change {
        path: host.sys_path(&rel),
        key: rel,
        old: scheduler.selected,
        new: want.to_owned(),
    }))
}

/// Writes `changes` in order; stops at the first failure (the changes
/// before it stay applied, and a rerun plans only what is left).
pub fn apply(changes: &[Change]) -> Result<(), TuneError> {
    for change in changes {
        std::fs::write(&change.path, &change.new).map_err(|source| TuneError::Write {
            path: change.path.clone(),
            source,
        })?;
    }
    Ok(())
}

/// Refuses unless `euid` is root. Takes the uid as a parameter so tests
/// check the refusal without dropping privileges.
pub fn require_root(euid: u32) -> Result<(), TuneError> {
    if euid == 0 {
        Ok(())
    } else {
        Err(TuneError::NotRoot { euid })
    }
}

/// The effective uid of this process.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}
