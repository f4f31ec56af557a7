//! Network: receive queues of each NIC and the UDP socket buffer sysctls.

use crate::cpu::CpuContext;
use crate::error::TuneError;
use crate::finding::{Finding, Severity};
use crate::host::{format_bytes, unknown, Host};
use crate::Expectations;

/// The socket buffer sysctls and the least value each should have. The
/// `*_max` keys cap what `SO_RCVBUF`/`SO_SNDBUF` may ask for; the
/// `*_default` keys are what a socket gets without asking, which is what
/// tidegate's UDP sockets get today.
pub(crate) fn udp_sysctls(expect: &Expectations) -> [(&'static str, u64); 4] {
    let want = expect.udp_buffer_bytes;
    [
        ("net.core.rmem_max", want),
        ("net.core.wmem_max", want),
        ("net.core.rmem_default", want),
        ("net.core.wmem_default", want),
    ]
}

/// Physical network interfaces: those under `<sys>/class/net` with a
/// `device` link (loopback, bridges and veths have none).
pub(crate) fn nics(host: &Host) -> Result<Vec<String>, TuneError> {
    Ok(host
        .list_sys("class/net")?
        .into_iter()
        .filter(|nic| host.sys_path(&format!("class/net/{nic}/device")).exists())
        .collect())
}

pub(crate) fn check(host: &Host, expect: &Expectations, cpus: &CpuContext) -> Vec<Finding> {
    let mut findings = Vec::new();
    match nics(host) {
        Ok(list) => {
            for nic in list {
                findings.push(queues(host, &nic, cpus.shard_cores.len()));
            }
        }
        Err(e) => findings.push(Finding::new(
            "net.queues",
            "NIC receive queues",
            unknown(&e),
            "",
            Severity::Ok,
            "",
        )),
    }
    for (key, min) in udp_sysctls(expect) {
        findings.push(buffer_sysctl(host, key, min));
    }
    findings
}

fn queues(host: &Host, nic: &str, shards: usize) -> Finding {
    let rx = host
        .list_sys(&format!("class/net/{nic}/queues"))
        .map(|names| names.iter().filter(|n| n.starts_with("rx-")).count());
    let (current, severity) = match rx {
        Err(e) => (unknown(&e), Severity::Ok),
        Ok(0) => ("unknown (no queues listed)".to_owned(), Severity::Ok),
        Ok(n) if n >= shards => (n.to_string(), Severity::Ok),
        Ok(n) => (n.to_string(), Severity::Warning),
    };
    Finding::new(
        format!("net.queues.{nic}"),
        format!("receive queues of NIC {nic}"),
        current,
        format!(">= {shards} (one per shard: ethtool -L {nic} combined {shards})"),
        severity,
        "RSS spreads QUIC flows over the receive queues; with fewer queues than shards, \
         a few CPUs take every packet interrupt and cap the packet rate",
    )
}

fn buffer_sysctl(host: &Host, key: &str, min: u64) -> Finding {
    let (current, severity) = match host.sysctl(key) {
        Err(e) => (unknown(&e), Severity::Ok),
        Ok(None) => ("unknown (no such sysctl)".to_owned(), Severity::Ok),
        Ok(Some(v)) => match v.parse::<u64>() {
            Ok(n) if n >= min => (format_bytes(n), Severity::Ok),
            Ok(n) => (format_bytes(n), Severity::Warning),
            Err(_) => (format!("unknown ({v:?})"), Severity::Ok),
        },
    };
    Finding::new(
        key,
        format!("UDP socket buffer sysctl {key}"),
        current,
        format!(">= {}", format_bytes(min)),
        severity,
        "a QUIC listener is one UDP socket per shard: when its buffer fills during a burst \
         the kernel drops datagrams, and QUIC reads the loss as congestion and slows down",
    )
}
