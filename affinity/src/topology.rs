//! CPU topology from sysfs: online CPUs, SMT siblings, packages and NUMA
//! nodes.
//!
//! [`Topology::from_sysfs`] takes the sysfs root as a parameter so tests
//! build fixture trees in a temporary directory; [`Topology::detect`] reads
//! the real `/sys`. Only these files are read (`N` is an online CPU id):
//!
//! - `devices/system/cpu/online` (required);
//! - `devices/system/cpu/cpuN/topology/thread_siblings_list`, `core_id`,
//!   `physical_package_id` (each optional: some VMs and sandboxes lack
//!   them; a missing file means "its own core, package 0");
//! - `devices/system/node/nodeM/cpulist` (optional: no `node` directory
//!   means one NUMA node, 0).
//!
//! A file that exists but holds garbage is an error, never a guess.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use crate::cpulist::{parse_cpu_list, MAX_CPUS};
use crate::error::AffinityError;

/// Sysfs files are at most a page; anything longer than this is not sysfs.
const SYSFS_FILE_BYTES_MAX: u64 = 64 * 1024;

/// NUMA node ids must be below this (Linux's `MAX_NUMNODES` is at most
/// 1024), so a directory named `node99999999` cannot cost memory.
const NUMA_NODES_MAX: usize = 1024;

/// One online logical CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cpu {
    /// The kernel's logical CPU id (what `taskset` and `sched_setaffinity`
    /// use).
    pub id: usize,
    /// `topology/core_id`: the physical core within its package. Only
    /// meaningful together with `package_id`; `-1` on some platforms.
    pub core_id: i64,
    /// `topology/physical_package_id`: the socket. `-1` on some platforms.
    pub package_id: i64,
    /// The NUMA node whose `cpulist` names this CPU (0 if none does).
    pub numa_node: usize,
    /// The online hardware threads of this CPU's physical core, this CPU
    /// included, ascending. One element when the core has no SMT.
    pub siblings: Vec<usize>,
}

/// The online CPUs of a host, ascending by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Online CPUs, ascending by [`Cpu::id`], ids unique.
    pub cpus: Vec<Cpu>,
}

impl Topology {
    /// Reads the topology of this host from `/sys`.
    pub fn detect() -> Result<Self, AffinityError> {
        Self::from_sysfs(Path::new("/sys"))
    }

    /// Reads the topology from a sysfs tree rooted at `root` (the directory
    /// that holds `devices/`).
    pub fn from_sysfs(root: &Path) -> Result<Self, AffinityError> {
        let cpu_dir = root.join("devices/system/cpu");
        let online_path = cpu_dir.join("online");
        let online = read_cpu_list(&online_path)?;
        if online.is_empty() {
            return Err(AffinityError::NoOnlineCpu { path: online_path });
        }
        let node_of = read_numa_nodes(&root.join("devices/system/node"))?;
        let mut cpus = Vec::with_capacity(online.len());
        for &id in &online {
            let mut cpu = read_cpu(&cpu_dir.join(format!("cpu{id}/topology")), id)?;
            cpu.siblings.retain(|s| online.binary_search(s).is_ok());
            if let Err(at) = cpu.siblings.binary_search(&id) {
                cpu.siblings.insert(at, id);
            }
            cpu.numa_node = node_of.get(id).copied().flatten().unwrap_or(0);
            cpus.push(cpu);
        }
        Ok(Self { cpus })
    }

    /// The CPU with this id, if online.
    pub fn cpu(&self, id: usize) -> Option<&Cpu> {
        self.cpus
            .binary_search_by_key(&id, |c| c.id)
            .ok()
            .and_then(|at| self.cpus.get(at))
    }

    /// The online CPU ids, ascending.
    pub fn online(&self) -> Vec<usize> {
        self.cpus.iter().map(|c| c.id).collect()
    }

    /// Whether any physical core runs more than one online hardware thread.
    pub fn has_smt(&self) -> bool {
        self.cpus.iter().any(|c| c.siblings.len() > 1)
    }

    /// The NUMA nodes that hold at least one online CPU, ascending.
    pub fn numa_nodes(&self) -> Vec<usize> {
        let mut nodes: Vec<usize> = self.cpus.iter().map(|c| c.numa_node).collect();
        nodes.sort_unstable();
        nodes.dedup();
        nodes
    }
}

/// Reads one CPU's `topology/` directory; missing files fall back to
/// "own core, package 0". `numa_node` is filled in by the caller.
fn read_cpu(topology_dir: &Path, id: usize) -> Result<Cpu, AffinityError> {
    let siblings_path = topology_dir.join("thread_siblings_list");
    let siblings = match read_optional(&siblings_path)? {
        Some(text) => parse_cpu_list(&text).map_err(|source| AffinityError::SysfsCpuList {
            path: siblings_path,
            source,
        })?,
        None => vec![id],
    };
    let core_id = read_optional_integer(&topology_dir.join("core_id"))?;
    let package_id = read_optional_integer(&topology_dir.join("physical_package_id"))?;
    Ok(Cpu {
        id,
        // CPU ids are below MAX_CPUS, so the conversion cannot fail.
        core_id: core_id.unwrap_or(i64::try_from(id).unwrap_or(i64::MAX)),
        package_id: package_id.unwrap_or(0),
        numa_node: 0,
        siblings,
    })
}

/// Maps CPU id → NUMA node from `node_dir/node*/cpulist`. An absent
/// `node_dir` maps nothing (every CPU falls back to node 0).
fn read_numa_nodes(node_dir: &Path) -> Result<Vec<Option<usize>>, AffinityError> {
    let mut node_of: Vec<Option<usize>> = vec![None; MAX_CPUS];
    let entries = match std::fs::read_dir(node_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(node_of),
        Err(source) => {
            return Err(AffinityError::Io {
                path: node_dir.to_path_buf(),
                source,
            })
        }
    };
    let mut nodes = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| AffinityError::Io {
            path: node_dir.to_path_buf(),
            source,
        })?;
        if let Some(node) = node_id(&entry.file_name().to_string_lossy()) {
            nodes.push(node);
        }
    }
    // Sorted so that a CPU listed twice is reported the same way every time.
    nodes.sort_unstable();
    for node in nodes {
        let path = node_dir.join(format!("node{node}/cpulist"));
        for cpu in read_cpu_list(&path)? {
            match node_of[cpu] {
                Some(first) => {
                    return Err(AffinityError::CpuInTwoNodes {
                        cpu,
                        first,
                        second: node,
                    })
                }
                None => node_of[cpu] = Some(node),
            }
        }
    }
    Ok(node_of)
}

/// `"node12"` → `Some(12)`; other names (`online`, `has_cpu`, `power`, or a
/// node id at or above [`NUMA_NODES_MAX`]) → `None`.
fn node_id(name: &str) -> Option<usize> {
    let digits = name.strip_prefix("node")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&n| n < NUMA_NODES_MAX)
}

/// Reads a required CPU list file.
fn read_cpu_list(path: &Path) -> Result<Vec<usize>, AffinityError> {
    let text = read_bounded(path)?;
    parse_cpu_list(&text).map_err(|source| AffinityError::SysfsCpuList {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads an optional file holding one decimal integer.
fn read_optional_integer(path: &Path) -> Result<Option<i64>, AffinityError> {
    let Some(text) = read_optional(path)? else {
        return Ok(None);
    };
    let trimmed = text.trim_ascii();
    trimmed
        .parse::<i64>()
        .map(Some)
        .map_err(|_| AffinityError::SysfsInteger {
            path: path.to_path_buf(),
            content: trimmed.chars().take(64).collect(),
        })
}

/// Reads a file that may be absent.
fn read_optional(path: &Path) -> Result<Option<String>, AffinityError> {
    match read_bounded(path) {
        Ok(text) => Ok(Some(text)),
        Err(AffinityError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Reads a whole file as UTF-8, refusing more than
/// [`SYSFS_FILE_BYTES_MAX`] bytes.
fn read_bounded(path: &Path) -> Result<String, AffinityError> {
    let io_error = |source| AffinityError::Io {
        path: PathBuf::from(path),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    let mut text = String::new();
    file.take(SYSFS_FILE_BYTES_MAX + 1)
        .read_to_string(&mut text)
        .map_err(io_error)?;
    if text.len() as u64 > SYSFS_FILE_BYTES_MAX {
        return Err(io_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("longer than {SYSFS_FILE_BYTES_MAX} bytes, not a sysfs file"),
        )));
    }
    Ok(text)
}
