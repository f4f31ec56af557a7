//! CPU: frequency governor, SMT siblings and isolation of the shard cores.

use tidegate_affinity::{format_cpu_list, parse_cpu_list, Topology};

use crate::finding::{Finding, Severity};
use crate::host::{unknown, Host};
use crate::Expectations;

/// The CPU facts the CPU, IRQ and network checks share.
#[derive(Debug, Clone)]
pub(crate) struct CpuContext {
    /// The topology, or why it could not be read.
    pub topology: Result<Topology, String>,
    /// Online CPUs, ascending; empty when unknown.
    pub online: Vec<usize>,
    /// Shard cores, ascending; empty when unknown.
    pub shard_cores: Vec<usize>,
}

impl CpuContext {
    pub(crate) fn read(host: &Host, expect: &Expectations) -> Self {
        let topology = Topology::from_sysfs(host.sys_root()).map_err(|e| e.to_string());
        let online = topology.as_ref().map(Topology::online).unwrap_or_default();
        let mut shard_cores = expect.shard_cores.clone().unwrap_or_else(|| online.clone());
        shard_cores.sort_unstable();
        shard_cores.dedup();
        CpuContext {
            topology,
            online,
            shard_cores,
        }
    }

    /// Online CPUs that run no shard: where IRQs and housekeeping belong.
    pub(crate) fn spare(&self) -> Vec<usize> {
        self.online
            .iter()
            .copied()
            .filter(|c| self.shard_cores.binary_search(c).is_err())
            .collect()
    }
}

pub(crate) fn check(host: &Host, cpus: &CpuContext) -> Vec<Finding> {
    let mut findings = Vec::new();
    if let Err(e) = &cpus.topology {
        findings.push(Finding::new(
            "cpu.topology",
            "CPU topology",
            format!("unknown ({e})"),
            "readable",
            Severity::Ok,
            "the SMT, governor and IRQ checks need the CPU topology; they are skipped",
        ));
        return findings;
    }
    findings.push(governor(host, &cpus.shard_cores));
    findings.push(smt(cpus));
    findings.push(isolated(host, cpus));
    findings
}

fn governor(host: &Host, shard_cores: &[usize]) -> Finding {
    let why = "a shard core that clocks down between bursts adds wake-up and ramp-up time \
               to every request's latency";
    let mut slow: Vec<(String, usize)> = Vec::new();
    let mut seen = 0;
    for &cpu in shard_cores {
        match host.read_sys(&format!(
            "devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor"
        )) {
            Ok(Some(g)) => {
                seen += 1;
                if g != "performance" {
                    slow.push((g, cpu));
                }
            }
            Ok(None) => {}
            Err(e) => slow.push((unknown(&e), cpu)),
        }
    }
    let (current, severity) = if seen == 0 && slow.is_empty() {
        (
            "unknown (no cpufreq: a VM or fixed frequency)".to_owned(),
            Severity::Ok,
        )
    } else if slow.is_empty() {
        ("performance".to_owned(), Severity::Ok)
    } else {
        let mut by_governor: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
        for (g, cpu) in &slow {
            by_governor.entry(g.as_str()).or_default().push(*cpu);
        }
        let parts: Vec<String> = by_governor
            .iter()
            .map(|(g, cpus)| format!("{g} on CPU {}", format_cpu_list(cpus)))
            .collect();
        (parts.join(", "), Severity::Warning)
    };
    Finding::new(
        "cpu.governor",
        "CPU frequency governor of shard cores",
        current,
        "performance",
        severity,
        why,
    )
}

fn smt(cpus: &CpuContext) -> Finding {
    let Ok(topology) = &cpus.topology else {
        return Finding::new("cpu.smt", "SMT", "unknown", "", Severity::Ok, "");
    };
    let mut shared: Vec<usize> = Vec::new();
    for &id in &cpus.shard_cores {
        let Some(cpu) = topology.cpu(id) else {
            continue;
        };
        if cpu
            .siblings
            .iter()
            .any(|s| *s != id && cpus.shard_cores.binary_search(s).is_ok())
        {
            shared.push(id);
        }
    }
    let (current, severity) = if !shared.is_empty() {
        (
            format!(
                "shard cores {} share physical cores",
                format_cpu_list(&shared)
            ),
            Severity::Warning,
        )
    } else if topology.has_smt() {
        (
            "SMT on; each shard has its own physical core".to_owned(),
            Severity::Ok,
        )
    } else {
        ("no SMT".to_owned(), Severity::Ok)
    };
    Finding::new(
        "cpu.smt",
        "SMT siblings among shard cores",
        current,
        "one shard per physical core (cores = one sibling of each)",
        severity,
        "two shards on one physical core share its execution units and caches, so each \
         gets roughly 60% of a core while the configuration counts it as a whole one",
    )
}

fn isolated(host: &Host, cpus: &CpuContext) -> Finding {
    let why = "an isolated core (isolcpus=, nohz_full=) runs no other tasks or timer ticks, \
               so a shard's tail latency is its own";
    let isolated = match host.read_sys("devices/system/cpu/isolated") {
        Ok(text) => text
            .as_deref()
            .map(|t| parse_cpu_list(t).map_err(|e| e.to_string()))
            .transpose(),
        Err(e) => Err(unknown(&e)),
    };
    let (current, recommended, severity) = match isolated {
        Err(e) => (e, String::new(), Severity::Ok),
        Ok(None) => ("unknown".to_owned(), String::new(), Severity::Ok),
        Ok(Some(list)) if list.is_empty() => (
            "none".to_owned(),
            "optional: isolate the shard cores".to_owned(),
            Severity::Ok,
        ),
        Ok(Some(list)) => {
            let outside: Vec<usize> = cpus
                .shard_cores
                .iter()
                .copied()
                .filter(|c| list.binary_search(c).is_err())
                .collect();
            let severity = if outside.is_empty() {
                Severity::Ok
            } else {
                // Isolated CPUs exist but shards run elsewhere: the
                // isolation is wasted and the shards share cores.
                Severity::Warning
            };
            (
                format_cpu_list(&list),
                format!("shard cores {}", format_cpu_list(&cpus.shard_cores)),
                severity,
            )
        }
    };
    Finding::new(
        "cpu.isolated",
        "isolated CPUs",
        current,
        recommended,
        severity,
        why,
    )
}
