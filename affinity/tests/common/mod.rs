//! Fixture sysfs trees in temporary directories.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::Path;

use tempfile::TempDir;

/// A sysfs tree under construction; `root()` is what `from_sysfs` takes.
pub struct Sysfs {
    dir: TempDir,
}

impl Sysfs {
    pub fn new(online: &str) -> Self {
        let sysfs = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        sysfs.write("devices/system/cpu/online", online);
        sysfs
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, relative: &str, content: &str) {
        let path = self.root().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    /// One CPU's topology files, newline-terminated like the kernel's.
    pub fn cpu(&self, id: usize, siblings: &str, core_id: i64, package_id: i64) {
        let dir = format!("devices/system/cpu/cpu{id}/topology");
        self.write(
            &format!("{dir}/thread_siblings_list"),
            &format!("{siblings}\n"),
        );
        self.write(&format!("{dir}/core_id"), &format!("{core_id}\n"));
        self.write(
            &format!("{dir}/physical_package_id"),
            &format!("{package_id}\n"),
        );
    }

    pub fn node(&self, node: usize, cpulist: &str) {
        self.write(
            &format!("devices/system/node/node{node}/cpulist"),
            &format!("{cpulist}\n"),
        );
    }
}

/// (a) A small VM: 2 CPUs, no SMT, no `node` directory.
pub fn two_cpus_no_smt() -> Sysfs {
    let sysfs = Sysfs::new("0-1\n");
    sysfs.cpu(0, "0", 0, 0);
    sysfs.cpu(1, "1", 1, 0);
    sysfs
}

/// (b) Two sockets, 2 cores × 2 threads each, one NUMA node per socket,
/// numbered the way Intel hosts are: thread siblings `n` and `n + 4`,
/// even CPUs on node 0 and odd ones on node 1. `core_id` repeats across
/// packages, as it does on real hosts. Node 2 is memory-only.
pub fn eight_cpus_smt_two_nodes() -> Sysfs {
    let sysfs = Sysfs::new("0-7\n");
    for cpu in 0..8usize {
        let first = cpu % 4;
        let package = (first % 2) as i64;
        let core = (first / 2) as i64;
        sysfs.cpu(cpu, &format!("{},{}", first, first + 4), core, package);
    }
    sysfs.node(0, "0,2,4,6");
    sysfs.node(1, "1,3,5,7");
    sysfs.node(2, "");
    for file in ["online", "possible", "has_cpu", "has_memory"] {
        sysfs.write(&format!("devices/system/node/{file}"), "0-2\n");
    }
    sysfs
}

/// (c) CPUs 2 and 3 offline: their directories exist without topology,
/// as the kernel leaves them.
pub fn offline_cpus_in_the_middle() -> Sysfs {
    let sysfs = Sysfs::new("0-1,4-5\n");
    for cpu in [0usize, 1, 4, 5] {
        sysfs.cpu(cpu, &cpu.to_string(), cpu as i64, 0);
    }
    for cpu in [2, 3] {
        sysfs.write(&format!("devices/system/cpu/cpu{cpu}/online"), "0\n");
    }
    sysfs.node(0, "0-1,4-5");
    sysfs
}
