//! Disks: I/O scheduler and write cache of the data directory's block
//! devices (every NVMe namespace when the device is not known).
//!
//! Reads `<sys>/block/DEV/queue/{scheduler,rotational,write_cache}`.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use crate::error::TuneError;
use crate::finding::{Finding, Severity};
use crate::host::{unknown, Host};
use crate::Expectations;

/// The whole-disk block device (a name under `<sys>/block`) holding
/// `path`, or the nearest existing ancestor of it. `None` when sysfs does
/// not know the device (overlayfs, tmpfs, device-mapper without a
/// `dev/block` entry).
pub fn block_device_of(host: &Host, path: &Path) -> Result<Option<String>, TuneError> {
    let existing = path.ancestors().find(|p| p.exists()).unwrap_or(path);
    let dev = std::fs::metadata(existing)
        .map_err(|source| TuneError::Read {
            path: existing.to_path_buf(),
            source,
        })?
        .dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let link = host.sys_path(&format!("dev/block/{major}:{minor}"));
    // `dev/block/M:m` links into the device tree, where a partition's
    // directory sits inside its disk's.
    let Ok(dir) = std::fs::canonicalize(&link) else {
        return Ok(None);
    };
    let disk = if dir.join("partition").exists() {
        dir.parent().unwrap_or(&dir)
    } else {
        &dir
    };
    Ok(disk.file_name().and_then(|n| n.to_str()).map(str::to_owned))
}

/// The devices to check: the data devices, else every NVMe namespace.
pub(crate) fn devices(host: &Host, expect: &Expectations) -> Result<Vec<String>, TuneError> {
    if !expect.data_devices.is_empty() {
        return Ok(expect.data_devices.clone());
    }
    Ok(host
        .list_sys("block")?
        .into_iter()
        .filter(|d| d.starts_with("nvme"))
        .collect())
}

/// A device's `queue/scheduler`: the selected one and the choices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scheduler {
    pub selected: String,
    pub available: Vec<String>,
}

/// Parses `none [mq-deadline] kyber` (a device without a scheduler
/// prints just `none`).
pub(crate) fn parse_scheduler(text: &str) -> Option<Scheduler> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let strip = |w: &str| w.trim_start_matches('[').trim_end_matches(']').to_owned();
    let selected = match words.as_slice() {
        [only] => Some(strip(only)),
        _ => words.iter().find(|w| w.starts_with('[')).map(|w| strip(w)),
    }?;
    Some(Scheduler {
        selected,
        available: words.iter().map(|w| strip(w)).collect(),
    })
}

/// The scheduler tidegate wants on `dev`: `none` on flash, whose own
/// queues do better than any reordering, `mq-deadline` on a spinning disk.
pub(crate) fn wanted_scheduler(host: &Host, dev: &str) -> Result<&'static str, TuneError> {
    let rotational = host.read_sys(&format!("block/{dev}/queue/rotational"))?;
    Ok(if rotational.as_deref() == Some("1") {
        "mq-deadline"
    } else {
        "none"
    })
}

pub(crate) fn check(host: &Host, expect: &Expectations) -> Vec<Finding> {
    match devices(host, expect) {
        Ok(devs) => devs
            .iter()
            .flat_map(|dev| [scheduler(host, dev), write_cache(host, dev)])
            .collect(),
        Err(e) => vec![Finding::new(
            "disk",
            "block devices",
            unknown(&e),
            "",
            Severity::Ok,
            "",
        )],
    }
}

fn scheduler(host: &Host, dev: &str) -> Finding {
    let text = host.read_sys(&format!("block/{dev}/queue/scheduler"));
    let want = wanted_scheduler(host, dev).unwrap_or("none");
    let (current, severity) = match text {
        Err(e) => (unknown(&e), Severity::Ok),
        Ok(None) => ("unknown (no such device)".to_owned(), Severity::Ok),
        Ok(Some(t)) => match parse_scheduler(&t) {
            None => (format!("unknown ({t:?})"), Severity::Ok),
            Some(s) if s.selected == want => (s.selected, Severity::Ok),
            Some(s) => (s.selected, Severity::Warning),
        },
    };
    Finding::new(
        format!("disk.scheduler.{dev}"),
        format!("I/O scheduler of {dev}"),
        current,
        want,
        severity,
        "the partition log writes large sequential O_DIRECT chunks and keeps its own \
         bounded queue; a scheduler in between only adds latency and CPU on flash",
    )
}

fn write_cache(host: &Host, dev: &str) -> Finding {
    let (current, severity) = match host.read_sys(&format!("block/{dev}/queue/write_cache")) {
        Err(e) => (unknown(&e), Severity::Ok),
        Ok(None) => ("unknown".to_owned(), Severity::Ok),
        // A volatile cache is correct (tidegate flushes before it
        // acknowledges) but every flush waits for the cache to drain.
        Ok(Some(v)) if v == "write back" => ("write back (volatile)".to_owned(), Severity::Warning),
        Ok(Some(v)) => (v, Severity::Ok),
    };
    Finding::new(
        format!("disk.write_cache.{dev}"),
        format!("volatile write cache of {dev}"),
        current,
        "write through (a drive with power-loss protection)",
        severity,
        "a durable acknowledgement waits for fdatasync, which on a volatile write cache is \
         a full cache flush: expect milliseconds per flush; never set `write through` on a \
         drive without power-loss protection, that loses acknowledged data on power loss",
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn scheduler_line_gives_selected_and_choices() {
        let s = parse_scheduler("none [mq-deadline] kyber\n").unwrap();
        assert_eq!(s.selected, "mq-deadline");
        assert_eq!(s.available, ["none", "mq-deadline", "kyber"]);
        assert_eq!(parse_scheduler("none").unwrap().selected, "none");
        assert_eq!(parse_scheduler(""), None);
    }
}
