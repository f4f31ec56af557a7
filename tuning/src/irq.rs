//! IRQ affinity of NIC and NVMe queues against the shard cores.
//!
//! A device's IRQs are the names in `<sys>/class/{net,nvme}/X/device/msi_irqs`
//! and each IRQ's CPUs are `<proc>/irq/N/smp_affinity_list`.

use tidegate_affinity::{format_cpu_list, parse_cpu_list};

use crate::cpu::CpuContext;
use crate::error::TuneError;
use crate::finding::{Finding, Severity};
use crate::host::{unknown, Host};
use crate::net::nics;

/// One device's MSI IRQs and the CPUs each may run on.
struct DeviceIrqs {
    irqs: Vec<u32>,
    /// Union of the CPUs of all its IRQs, ascending.
    cpus: Vec<usize>,
}

pub(crate) fn check(host: &Host, cpus: &CpuContext) -> Vec<Finding> {
    if cpus.online.is_empty() {
        return Vec::new();
    }
    let mut findings = Vec::new();
    match nics(host) {
        Ok(list) => {
            for nic in list {
                let irqs = device_irqs(host, &format!("class/net/{nic}/device"));
                findings.push(nic_irqs(&nic, irqs, cpus));
            }
        }
        Err(e) => findings.push(unreadable("irq.nic", "NIC IRQ affinity", &e)),
    }
    match host.list_sys("class/nvme") {
        Ok(list) => {
            for ctrl in list {
                let irqs = device_irqs(host, &format!("class/nvme/{ctrl}/device"));
                findings.push(nvme_irqs(&ctrl, irqs, cpus));
            }
        }
        Err(e) => findings.push(unreadable("irq.nvme", "NVMe IRQ affinity", &e)),
    }
    findings
}

fn unreadable(id: &str, what: &str, e: &TuneError) -> Finding {
    Finding::new(id, what, unknown(e), "", Severity::Ok, "")
}

fn device_irqs(host: &Host, device: &str) -> Result<DeviceIrqs, TuneError> {
    let mut irqs: Vec<u32> = host
        .list_sys(&format!("{device}/msi_irqs"))?
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect();
    irqs.sort_unstable();
    let mut cpus = Vec::new();
    for irq in &irqs {
        let text = host.read_proc(&format!("irq/{irq}/smp_affinity_list"))?;
        // An unparsable list is left out rather than guessed at.
        if let Some(list) = text.and_then(|t| parse_cpu_list(&t).ok()) {
            cpus.extend(list);
        }
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(DeviceIrqs { irqs, cpus })
}

fn nic_irqs(nic: &str, irqs: Result<DeviceIrqs, TuneError>, cpus: &CpuContext) -> Finding {
    let id = format!("irq.nic.{nic}");
    let what = format!("IRQ affinity of NIC {nic}");
    let why = "packet interrupts and their softirq work on a shard core steal time from that \
               shard's requests at random moments; with spare cores, steer them there";
    let spare = cpus.spare();
    let recommended = if spare.is_empty() {
        "any (no CPU is free of shards)".to_owned()
    } else {
        format!("CPU {}", format_cpu_list(&spare))
    };
    let (current, severity) = match irqs {
        Err(e) => (unknown(&e), Severity::Ok),
        Ok(d) if d.irqs.is_empty() => ("unknown (no MSI IRQs listed)".to_owned(), Severity::Ok),
        Ok(d) => {
            let on_shards = intersect(&d.cpus, &cpus.shard_cores);
            let severity = if !spare.is_empty() && !on_shards.is_empty() {
                Severity::Warning
            } else {
                Severity::Ok
            };
            (irq_summary(&d), severity)
        }
    };
    Finding::new(id, what, current, recommended, severity, why)
}

fn nvme_irqs(ctrl: &str, irqs: Result<DeviceIrqs, TuneError>, cpus: &CpuContext) -> Finding {
    let id = format!("irq.nvme.{ctrl}");
    let what = format!("IRQ affinity of NVMe {ctrl} queues");
    let why = "the kernel gives each CPU (group) an NVMe queue whose IRQ completes I/O on the \
               submitting CPU; a shard core no queue IRQ covers gets its completions from \
               another core, adding latency to every log write";
    let recommended = format!(
        "queue IRQs covering shard CPU {}",
        format_cpu_list(&cpus.shard_cores)
    );
    let (current, severity) = match irqs {
        Err(e) => (unknown(&e), Severity::Ok),
        Ok(d) if d.irqs.is_empty() => ("unknown (no MSI IRQs listed)".to_owned(), Severity::Ok),
        Ok(d) => {
            let uncovered: Vec<usize> = cpus
                .shard_cores
                .iter()
                .copied()
                .filter(|c| d.cpus.binary_search(c).is_err())
                .collect();
            let severity = if uncovered.is_empty() {
                Severity::Ok
            } else {
                Severity::Warning
            };
            (irq_summary(&d), severity)
        }
    };
    Finding::new(id, what, current, recommended, severity, why)
}

fn irq_summary(d: &DeviceIrqs) -> String {
    format!("{} IRQs on CPU {}", d.irqs.len(), format_cpu_list(&d.cpus))
}

/// Elements of ascending `a` also in ascending `b`.
fn intersect(a: &[usize], b: &[usize]) -> Vec<usize> {
    a.iter()
        .copied()
        .filter(|x| b.binary_search(x).is_ok())
        .collect()
}
