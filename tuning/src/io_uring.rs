//! io_uring: the `kernel.io_uring_disabled` sysctl and a real
//! `io_uring_setup`. glommio, and so every shard and the partition log, run
//! on io_uring: without it tidegate does not start.

use crate::finding::{Finding, Severity};
use crate::host::{unknown, Host};
use crate::Probes;

const WHY: &str = "every shard's executor and the partition log submit all disk and \
                   network I/O through io_uring; without it tidegate cannot start";

/// Sets up (and drops) a two-entry ring in this process: the kernel's own
/// answer, including what seccomp filters and `io_uring_disabled` say.
pub fn probe_io_uring() -> Result<(), String> {
    io_uring::IoUring::new(2)
        .map(drop)
        .map_err(|e| format!("io_uring_setup failed: {e}"))
}

pub(crate) fn check(host: &Host, probes: &Probes) -> Vec<Finding> {
    vec![disabled_sysctl(host), setup_probe(probes)]
}

/// `kernel.io_uring_disabled` (Linux 6.6+): 0 all, 1 only members of
/// `kernel.io_uring_group` (and root), 2 nobody.
fn disabled_sysctl(host: &Host) -> Finding {
    let key = "kernel.io_uring_disabled";
    let (current, severity) = match host.sysctl(key) {
        Ok(None) => (
            "absent (kernel before 6.6: enabled)".to_owned(),
            Severity::Ok,
        ),
        Ok(Some(v)) => {
            let severity = match v.as_str() {
                "0" => Severity::Ok,
                // Works only if tidegate's user is in io_uring_group.
                "1" => Severity::Warning,
                _ => Severity::Critical,
            };
            (v, severity)
        }
        Err(e) => (unknown(&e), Severity::Ok),
    };
    Finding::new(
        key,
        "io_uring allowed by sysctl",
        current,
        "0",
        severity,
        WHY,
    )
}

fn setup_probe(probes: &Probes) -> Finding {
    let (current, severity) = match &probes.io_uring {
        Ok(()) => ("works".to_owned(), Severity::Ok),
        Err(e) => (e.clone(), Severity::Critical),
    };
    Finding::new(
        "io_uring.setup",
        "io_uring_setup in this process",
        current,
        "works",
        severity,
        format!("{WHY}; a container's seccomp profile or an old kernel can block it too"),
    )
}
