//! `check`, `plan` and `apply` against fixture `/proc` and `/sys` trees: a
//! healthy host, a badly set up one, and an empty one (a bare container).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use tempfile::TempDir;
use tidegate_tuning::{
    apply, block_device_of, check, plan, require_root, Expectations, Finding, Host, Probes,
    Severity, Summary, TuneError,
};

/// A fixture tree with `proc/` and `sys/` in a temporary directory.
struct Fixture {
    dir: TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("proc")).unwrap();
        std::fs::create_dir_all(dir.path().join("sys")).unwrap();
        Fixture { dir }
    }

    fn host(&self) -> Host {
        Host::new(self.dir.path().join("proc"), self.dir.path().join("sys"))
    }

    /// Writes `text` at `rel` (under the fixture root), making parents.
    fn file(&self, rel: &str, text: &str) -> &Self {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    fn dir(&self, rel: &str) -> &Self {
        std::fs::create_dir_all(self.dir.path().join(rel)).unwrap();
        self
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(rel)).unwrap()
    }

    fn cpus(&self, siblings: &[&str], governor: &str, isolated: &str) {
        let online = format!("0-{}", siblings.len() - 1);
        self.file("sys/devices/system/cpu/online", &online);
        self.file("sys/devices/system/cpu/isolated", isolated);
        for (cpu, list) in siblings.iter().enumerate() {
            let base = format!("sys/devices/system/cpu/cpu{cpu}");
            self.file(&format!("{base}/topology/thread_siblings_list"), list);
            self.file(&format!("{base}/cpufreq/scaling_governor"), governor);
        }
    }

    fn device_irqs(&self, device: &str, irqs: &[(u32, &str)]) {
        for (irq, cpus) in irqs {
            self.dir(&format!("sys/{device}/msi_irqs/{irq}"));
            self.file(&format!("proc/irq/{irq}/smp_affinity_list"), cpus);
        }
    }

    fn nic(&self, name: &str, rx_queues: usize, irqs: &[(u32, &str)]) {
        for q in 0..rx_queues {
            self.dir(&format!("sys/class/net/{name}/queues/rx-{q}"));
            self.dir(&format!("sys/class/net/{name}/queues/tx-{q}"));
        }
        self.device_irqs(&format!("class/net/{name}/device"), irqs);
    }

    fn block(&self, dev: &str, scheduler: &str, write_cache: &str) {
        let q = format!("sys/block/{dev}/queue");
        self.file(&format!("{q}/scheduler"), scheduler);
        self.file(&format!("{q}/rotational"), "0\n");
        self.file(&format!("{q}/write_cache"), write_cache);
    }

    fn sysctls(&self, pairs: &[(&str, &str)]) {
        for (key, value) in pairs {
            self.file(&format!("proc/sys/{}", key.replace('.', "/")), value);
        }
    }

    fn limits(&self, memlock: &str, nofile: &str) {
        self.file(
            "proc/self/limits",
            &format!(
                "Limit                     Soft Limit           Hard Limit           Units     \n\
                 Max open files            {nofile:<20} 1048576              files     \n\
                 Max locked memory         {memlock:<20} unlimited            bytes     \n"
            ),
        );
    }
}

const SWAPS_HEADER: &str = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";

/// 4 CPUs without SMT, shards on 1-3 (isolated), IRQs on CPU 0, every
/// setting as tidegate wants it.
fn healthy() -> (Fixture, Expectations) {
    let f = Fixture::new();
    f.cpus(&["0", "1", "2", "3"], "performance\n", "1-3\n");
    f.nic("eth0", 4, &[(40, "0"), (41, "0"), (42, "0")]);
    f.dir("sys/class/net/lo/queues/rx-0");
    f.device_irqs(
        "class/nvme/nvme0/device",
        &[(50, "0"), (51, "1"), (52, "2"), (53, "3")],
    );
    f.block("nvme0n1", "[none] mq-deadline kyber\n", "write through\n");
    f.sysctls(&[
        ("kernel.io_uring_disabled", "0\n"),
        ("net.core.rmem_max", "16777216\n"),
        ("net.core.wmem_max", "16777216\n"),
        ("net.core.rmem_default", "8388608\n"),
        ("net.core.wmem_default", "8388608\n"),
        ("vm.swappiness", "1\n"),
    ]);
    f.limits("unlimited", "1048576");
    f.file("proc/swaps", SWAPS_HEADER);
    f.file(
        "sys/kernel/mm/transparent_hugepage/enabled",
        "always [madvise] never\n",
    );
    let expect = Expectations {
        shard_cores: Some(vec![1, 2, 3]),
        ..Expectations::default()
    };
    (f, expect)
}

/// 4 CPUs as 2 SMT cores (0+2, 1+3), shards on 0-2, and every setting
/// wrong.
fn bad() -> (Fixture, Expectations) {
    let f = Fixture::new();
    f.cpus(&["0,2", "1,3", "0,2", "1,3"], "powersave\n", "3\n");
    f.nic("eth0", 1, &[(40, "0-3")]);
    f.device_irqs("class/nvme/nvme0/device", &[(50, "0"), (51, "3")]);
    f.block("nvme0n1", "none [mq-deadline] kyber\n", "write back\n");
    f.sysctls(&[
        ("kernel.io_uring_disabled", "2\n"),
        ("net.core.rmem_max", "212992\n"),
        ("net.core.wmem_max", "212992\n"),
        ("net.core.rmem_default", "212992\n"),
        ("net.core.wmem_default", "212992\n"),
        ("vm.swappiness", "60\n"),
    ]);
    f.limits("65536", "1024");
    f.file(
        "proc/swaps",
        &format!("{SWAPS_HEADER}/dev/sda2  partition\t8388604\t\t0\t\t-2\n"),
    );
    f.file(
        "sys/kernel/mm/transparent_hugepage/enabled",
        "[always] madvise never\n",
    );
    let expect = Expectations {
        shard_cores: Some(vec![0, 1, 2]),
        ..Expectations::default()
    };
    (f, expect)
}

fn works() -> Probes {
    Probes { io_uring: Ok(()) }
}

fn finding<'a>(findings: &'a [Finding], id: &str) -> &'a Finding {
    findings
        .iter()
        .find(|f| f.id == id)
        .unwrap_or_else(|| panic!("no finding {id} in {findings:#?}"))
}

#[test]
fn healthy_host_has_only_ok_findings() {
    let (f, expect) = healthy();
    let findings = check(&f.host(), &expect, &works());
    let not_ok: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.severity != Severity::Ok)
        .collect();
    assert!(not_ok.is_empty(), "{not_ok:#?}");
    let summary = Summary::of(&findings);
    assert_eq!(summary.worst.exit_code(), 0);
    // Every area of the issue is covered by a finding.
    for id in [
        "kernel.io_uring_disabled",
        "io_uring.setup",
        "limits.memlock",
        "limits.nofile",
        "cpu.governor",
        "cpu.smt",
        "cpu.isolated",
        "irq.nic.eth0",
        "irq.nvme.nvme0",
        "net.queues.eth0",
        "net.core.rmem_max",
        "net.core.wmem_max",
        "net.core.rmem_default",
        "net.core.wmem_default",
        "disk.scheduler.nvme0n1",
        "disk.write_cache.nvme0n1",
        "memory.thp",
        "memory.swap",
        "vm.swappiness",
    ] {
        finding(&findings, id);
    }
    assert_eq!(finding(&findings, "net.core.rmem_max").current, "16MiB");
    assert_eq!(
        finding(&findings, "irq.nic.eth0").current,
        "3 IRQs on CPU 0"
    );
    // Loopback has no device: it is no NIC.
    assert!(findings.iter().all(|f| !f.id.ends_with(".lo")));
}

#[test]
fn bad_host_findings_name_each_problem_with_its_severity() {
    let (f, expect) = bad();
    let probes = Probes {
        io_uring: Err("io_uring_setup failed: Operation not permitted".into()),
    };
    let findings = check(&f.host(), &expect, &probes);
    let expected = [
        ("kernel.io_uring_disabled", Severity::Critical, "2"),
        (
            "io_uring.setup",
            Severity::Critical,
            "io_uring_setup failed: Operation not permitted",
        ),
        ("limits.memlock", Severity::Warning, "64KiB"),
        ("limits.nofile", Severity::Warning, "1024"),
        ("cpu.governor", Severity::Warning, "powersave on CPU 0-2"),
        (
            "cpu.smt",
            Severity::Warning,
            "shard cores 0,2 share physical cores",
        ),
        ("cpu.isolated", Severity::Warning, "3"),
        ("irq.nic.eth0", Severity::Warning, "1 IRQs on CPU 0-3"),
        ("irq.nvme.nvme0", Severity::Warning, "2 IRQs on CPU 0,3"),
        ("net.queues.eth0", Severity::Warning, "1"),
        ("net.core.rmem_max", Severity::Warning, "208KiB"),
        ("net.core.wmem_default", Severity::Warning, "208KiB"),
        ("disk.scheduler.nvme0n1", Severity::Warning, "mq-deadline"),
        (
            "disk.write_cache.nvme0n1",
            Severity::Warning,
            "write back (volatile)",
        ),
        ("memory.thp", Severity::Warning, "always"),
        ("memory.swap", Severity::Warning, "on (/dev/sda2)"),
        ("vm.swappiness", Severity::Warning, "60"),
    ];
    for (id, severity, current) in expected {
        let found = finding(&findings, id);
        assert_eq!(
            (found.severity, found.current.as_str()),
            (severity, current),
            "{id}"
        );
        assert!(!found.why.is_empty(), "{id} says why");
    }
    let summary = Summary::of(&findings);
    assert_eq!(summary.critical, 2);
    assert_eq!(summary.worst.exit_code(), 2);
}

#[test]
fn io_uring_group_only_is_a_warning_and_missing_sysctl_is_ok() {
    let (f, expect) = healthy();
    f.sysctls(&[("kernel.io_uring_disabled", "1\n")]);
    let findings = check(&f.host(), &expect, &works());
    assert_eq!(
        finding(&findings, "kernel.io_uring_disabled").severity,
        Severity::Warning
    );
    std::fs::remove_file(f.host().sysctl_path("kernel.io_uring_disabled")).unwrap();
    let findings = check(&f.host(), &expect, &works());
    assert_eq!(
        finding(&findings, "kernel.io_uring_disabled").severity,
        Severity::Ok
    );
}

#[test]
fn empty_host_gives_unknown_ok_findings_without_panicking() {
    let f = Fixture::new();
    let findings = check(&f.host(), &Expectations::default(), &works());
    assert!(
        findings.iter().all(|f| f.severity == Severity::Ok),
        "{findings:#?}"
    );
    assert!(finding(&findings, "cpu.topology")
        .current
        .starts_with("unknown"));
    assert!(finding(&findings, "net.core.rmem_max")
        .current
        .starts_with("unknown"));
    assert!(plan(&f.host(), &Expectations::default())
        .unwrap()
        .is_empty());
}

#[test]
fn irqs_on_shard_cores_are_fine_when_no_core_is_spare() {
    let (f, _) = bad();
    let expect = Expectations {
        shard_cores: None,
        ..Expectations::default()
    };
    let findings = check(&f.host(), &expect, &works());
    assert_eq!(finding(&findings, "irq.nic.eth0").severity, Severity::Ok);
}

#[test]
fn plan_on_bad_host_lists_safe_changes_with_old_and_new_values() {
    let (f, expect) = bad();
    let changes = plan(&f.host(), &expect).unwrap();
    let got: Vec<(&str, &str, &str)> = changes
        .iter()
        .map(|c| (c.key.as_str(), c.old.as_str(), c.new.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("net.core.rmem_max", "212992", "8388608"),
            ("net.core.wmem_max", "212992", "8388608"),
            ("net.core.rmem_default", "212992", "8388608"),
            ("net.core.wmem_default", "212992", "8388608"),
            ("vm.swappiness", "60", "1"),
            ("block/nvme0n1/queue/scheduler", "mq-deadline", "none"),
        ]
    );
    assert!(changes[0].path.ends_with("proc/sys/net/core/rmem_max"));
}

#[test]
fn healthy_host_plans_no_change_and_larger_buffers_are_kept() {
    let (f, expect) = healthy();
    // 16MiB rmem_max is above the 8MiB wanted: never lowered.
    assert!(plan(&f.host(), &expect).unwrap().is_empty());
}

#[test]
fn apply_then_plan_again_is_empty_and_fixes_the_findings() {
    let (f, expect) = bad();
    let host = f.host();
    apply(&plan(&host, &expect).unwrap()).unwrap();
    assert_eq!(f.read("proc/sys/net/core/rmem_max"), "8388608");
    assert_eq!(f.read("sys/block/nvme0n1/queue/scheduler"), "none");
    assert!(plan(&host, &expect).unwrap().is_empty());
    let findings = check(&host, &expect, &works());
    for id in [
        "net.core.rmem_max",
        "disk.scheduler.nvme0n1",
        "vm.swappiness",
    ] {
        assert_eq!(finding(&findings, id).severity, Severity::Ok, "{id}");
    }
}

#[test]
fn scheduler_not_built_in_is_not_planned() {
    let (f, expect) = bad();
    f.block("nvme0n1", "[mq-deadline] kyber\n", "write through\n");
    let changes = plan(&f.host(), &expect).unwrap();
    assert!(changes.iter().all(|c| !c.key.contains("scheduler")));
}

#[test]
fn apply_refuses_without_root_with_a_clear_message() {
    let err = require_root(1000).unwrap_err();
    assert!(matches!(err, TuneError::NotRoot { euid: 1000 }));
    let message = err.to_string();
    assert!(message.contains("must run as root"), "{message}");
    assert!(message.contains("--dry-run"), "{message}");
    assert!(require_root(0).is_ok());
}

#[test]
fn data_dir_on_a_partition_maps_to_its_whole_disk() {
    let f = Fixture::new();
    let data = f.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let dev = std::fs::metadata(&data).unwrap().dev();
    let (major, minor) = (libc_major(dev), libc_minor(dev));
    f.file(
        "sys/devices/pci0/nvme/nvme0/nvme0n1/nvme0n1p2/partition",
        "2\n",
    );
    f.dir("sys/dev/block");
    std::os::unix::fs::symlink(
        f.dir
            .path()
            .join("sys/devices/pci0/nvme/nvme0/nvme0n1/nvme0n1p2"),
        f.dir.path().join(format!("sys/dev/block/{major}:{minor}")),
    )
    .unwrap();
    let host = f.host();
    assert_eq!(
        block_device_of(&host, &data.join("not/yet/created"))
            .unwrap()
            .as_deref(),
        Some("nvme0n1")
    );
    let bare = Fixture::new();
    assert_eq!(block_device_of(&bare.host(), &data).unwrap(), None);
}

/// Linux's `dev_t` split (glibc's `gnu_dev_major`/`gnu_dev_minor`).
fn libc_major(dev: u64) -> u64 {
    ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff)
}

fn libc_minor(dev: u64) -> u64 {
    ((dev >> 12) & 0xffff_ff00) | (dev & 0xff)
}

#[test]
fn host_reads_sysctls_under_the_proc_root() {
    let f = Fixture::new();
    f.sysctls(&[("net.core.rmem_max", " 4096\n")]);
    let host = f.host();
    assert_eq!(
        host.sysctl("net.core.rmem_max").unwrap().as_deref(),
        Some("4096")
    );
    assert_eq!(host.sysctl("net.core.nope").unwrap(), None);
    assert!(Path::new(&host.sysctl_path("a.b")).ends_with("proc/sys/a/b"));
}
