//! Resource limits of this process from `<proc>/self/limits`: what a
//! server started the same way (same user, same shell or unit) would get.

use crate::finding::{Finding, Severity};
use crate::host::{format_bytes, unknown, Host};
use crate::Expectations;

/// One soft limit: `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Soft(Option<u64>);

pub(crate) fn check(host: &Host, expect: &Expectations) -> Vec<Finding> {
    let text = host.read_proc("self/limits");
    let soft = |name: &str| -> Result<Option<Soft>, String> {
        match &text {
            Ok(Some(text)) => Ok(soft_limit(text, name)),
            Ok(None) => Ok(None),
            Err(e) => Err(unknown(e)),
        }
    };
    vec![
        limit_finding(
            "limits.memlock",
            "locked memory limit (RLIMIT_MEMLOCK, soft)",
            soft("Max locked memory"),
            expect.memlock_bytes_min,
            format_bytes,
            "glommio registers each shard's I/O buffers with io_uring, which locks them; \
             below this the server fails at start-up (LimitMEMLOCK= in the systemd unit)",
        ),
        limit_finding(
            "limits.nofile",
            "open files limit (RLIMIT_NOFILE, soft)",
            soft("Max open files"),
            expect.nofile_min,
            |n| n.to_string(),
            "every partition keeps its active segment's file and up to \
             storage.open_segments_max sealed ones open; running out fails topic creation, \
             segment rolls and reads (LimitNOFILE= in the systemd unit)",
        ),
    ]
}

fn limit_finding(
    id: &str,
    what: &str,
    soft: Result<Option<Soft>, String>,
    min: u64,
    format: fn(u64) -> String,
    why: &str,
) -> Finding {
    let recommended = format!(">= {} (or unlimited)", format(min));
    let (current, severity) = match soft {
        Ok(Some(Soft(None))) => ("unlimited".to_owned(), Severity::Ok),
        Ok(Some(Soft(Some(n)))) if n >= min => (format(n), Severity::Ok),
        Ok(Some(Soft(Some(n)))) => (format(n), Severity::Warning),
        Ok(None) => ("unknown (no limits file)".to_owned(), Severity::Ok),
        Err(e) => (e, Severity::Ok),
    };
    Finding::new(id, what, current, recommended, severity, why)
}

/// The soft limit of row `name` in `/proc/<pid>/limits`, whose rows are
/// `Max open files            1024                 524288               files`.
fn soft_limit(text: &str, name: &str) -> Option<Soft> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    let value = line.get(name.len()..)?.split_whitespace().next()?;
    if value == "unlimited" {
        return Some(Soft(None));
    }
    value.parse().ok().map(|n| Soft(Some(n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: &str =
        "Limit                     Soft Limit           Hard Limit           Units     \n\
Max open files            1024                 524288               files     \n\
Max locked memory         unlimited            unlimited            bytes     \n";

    #[test]
    fn soft_limits_are_parsed_from_proc_limits() {
        assert_eq!(soft_limit(LIMITS, "Max open files"), Some(Soft(Some(1024))));
        assert_eq!(soft_limit(LIMITS, "Max locked memory"), Some(Soft(None)));
        assert_eq!(soft_limit(LIMITS, "Max processes"), None);
    }
}
