//! Memory: transparent hugepages, swap and `vm.swappiness`.

use crate::finding::{Finding, Severity};
use crate::host::{unknown, Host};

/// Highest `vm.swappiness` wanted: 1 keeps swap for emergencies only.
pub(crate) const SWAPPINESS_MAX: u64 = 1;

pub(crate) fn check(host: &Host) -> Vec<Finding> {
    let swap = swap(host);
    let swap_on = swap.severity != Severity::Ok;
    vec![thp(host), swap, swappiness(host, swap_on)]
}

fn thp(host: &Host) -> Finding {
    let text = host.read_sys("kernel/mm/transparent_hugepage/enabled");
    let (current, severity) = match text {
        Err(e) => (unknown(&e), Severity::Ok),
        Ok(None) => ("unknown (no THP support)".to_owned(), Severity::Ok),
        Ok(Some(t)) => match bracketed(&t) {
            Some("always") => ("always".to_owned(), Severity::Warning),
            Some(mode) => (mode.to_owned(), Severity::Ok),
            None => (format!("unknown ({t:?})"), Severity::Ok),
        },
    };
    Finding::new(
        "memory.thp",
        "transparent hugepages",
        current,
        "madvise or never",
        severity,
        "with `always`, page faults may stop a shard to compact memory and khugepaged \
         competes for its core: multi-millisecond stalls in the latency tail",
    )
}

fn swap(host: &Host) -> Finding {
    let (current, severity) = match host.read_proc("swaps") {
        Err(e) => (unknown(&e), Severity::Ok),
        Ok(None) => ("unknown".to_owned(), Severity::Ok),
        Ok(Some(t)) => {
            // The first line is the column header.
            let devices: Vec<&str> = t
                .lines()
                .skip(1)
                .filter_map(|l| l.split_whitespace().next())
                .collect();
            if devices.is_empty() {
                ("off".to_owned(), Severity::Ok)
            } else {
                (format!("on ({})", devices.join(", ")), Severity::Warning)
            }
        }
    };
    Finding::new(
        "memory.swap",
        "swap",
        current,
        "off (or vm.swappiness = 1)",
        severity,
        "a shard whose memory is swapped out stalls on a disk read in the middle of a \
         request; the queue's data lives in the page cache and on disk already",
    )
}

/// Only matters while swap is on: without swap there is nothing to swap to.
fn swappiness(host: &Host, swap_on: bool) -> Finding {
    let key = "vm.swappiness";
    let (current, severity) = match host.sysctl(key) {
        Err(e) => (unknown(&e), Severity::Ok),
        Ok(None) => ("unknown".to_owned(), Severity::Ok),
        Ok(Some(v)) => match v.parse::<u64>() {
            Ok(n) if n <= SWAPPINESS_MAX => (v, Severity::Ok),
            Ok(_) if swap_on => (v, Severity::Warning),
            Ok(_) => (format!("{v} (no swap)"), Severity::Ok),
            Err(_) => (format!("unknown ({v:?})"), Severity::Ok),
        },
    };
    Finding::new(
        key,
        "swappiness",
        current,
        format!("<= {SWAPPINESS_MAX}"),
        severity,
        "a high swappiness swaps out idle server memory to keep page cache, which the \
         next request then waits to read back",
    )
}

/// The `[selected]` word of a sysfs choice list such as
/// `always [madvise] never`.
fn bracketed(text: &str) -> Option<&str> {
    text.split_whitespace()
        .find(|w| w.starts_with('['))
        .map(|w| w.trim_start_matches('[').trim_end_matches(']'))
}
