//! Which CPUs run shards: the `cores` setting and the choice it leads to.
//!
//! Pure functions over a [`Topology`] and the allowed CPU set, so every
//! rule is testable without a machine of that shape.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use crate::cpulist::{format_cpu_list, parse_cpu_list};
use crate::error::AffinityError;
use crate::topology::Topology;

/// The `cores` setting: which CPUs get a shard.
///
/// Written `"all"` or as a CPU list (`"0-3,6"`). A bare number such as
/// `"2"` is a list naming CPU 2, never a count of cores; a one-CPU list
/// therefore yields a [`CoreWarning::SingleCpu`] so the mix-up shows in the
/// log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreSpec {
    /// One shard per physical core among the online, allowed CPUs.
    All,
    /// Exactly these CPUs, ascending and unique when parsed.
    List(Vec<usize>),
}

impl CoreSpec {
    /// Parses a `cores` value: `"all"` or a non-empty CPU list. Leading and
    /// trailing whitespace is ignored.
    ///
    /// ```
    /// use tidegate_affinity::CoreSpec;
    /// assert_eq!(CoreSpec::parse("all").ok(), Some(CoreSpec::All));
    /// assert_eq!(CoreSpec::parse("0-2,6").ok(), Some(CoreSpec::List(vec![0, 1, 2, 6])));
    /// assert!(CoreSpec::parse("4 cores").is_err());
    /// ```
    pub fn parse(input: &str) -> Result<Self, AffinityError> {
        let trimmed = input.trim_ascii();
        if trimmed == "all" {
            return Ok(Self::All);
        }
        let cpus = parse_cpu_list(trimmed).map_err(|source| AffinityError::CoreSpec {
            input: input.to_owned(),
            source,
        })?;
        if cpus.is_empty() {
            return Err(AffinityError::EmptyCoreList {
                input: input.to_owned(),
            });
        }
        Ok(Self::List(cpus))
    }
}

impl FromStr for CoreSpec {
    type Err = AffinityError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Self::parse(input)
    }
}

impl fmt::Display for CoreSpec {
    /// Formats as the config value it parses from: `all` or a CPU list.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("all"),
            Self::List(cpus) => f.write_str(&format_cpu_list(cpus)),
        }
    }
}

/// Something about the chosen cores the operator should know, though the
/// server can run with it. The server logs each one at `warn`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CoreWarning {
    /// Listed CPUs are hardware threads of one physical core: their shards
    /// will compete for that core's execution units and caches.
    SmtSiblingsShareCore {
        /// The listed CPUs on that core, ascending.
        cpus: Vec<usize>,
    },
    /// `cores = "all"` skipped online CPUs that the process may not run on
    /// (taskset, a container's cpuset).
    RestrictedByAffinity {
        /// The online CPUs left out, ascending.
        excluded: Vec<usize>,
    },
    /// The list names one CPU, so the server runs one shard. Written as a
    /// warning because `cores = "2"` looks like a count but is CPU 2.
    SingleCpu {
        /// The CPU.
        cpu: usize,
    },
}

impl fmt::Display for CoreWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SmtSiblingsShareCore { cpus } => write!(
                f,
                "cores lists CPUs {} which are SMT siblings of one physical core; their shards will share it",
                format_cpu_list(cpus)
            ),
            Self::RestrictedByAffinity { excluded } => write!(
                f,
                "online CPUs {} are outside this process's allowed CPUs (taskset or cpuset) and get no shard",
                format_cpu_list(excluded)
            ),
            Self::SingleCpu { cpu } => write!(
                f,
                "cores names only CPU {cpu}, so one shard runs; a number in cores is a CPU id, not a count (use e.g. \"0-3\")"
            ),
        }
    }
}

/// The outcome of [`choose_shard_cores`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreChoice {
    /// One CPU per shard: shard `i` is pinned to `cores[i]`. Ordered by
    /// NUMA node, then CPU id, so shards of one node are adjacent.
    pub cores: Vec<usize>,
    /// Things to log; empty when all is well.
    pub warnings: Vec<CoreWarning>,
}

/// Chooses the CPU of every shard.
///
/// - [`CoreSpec::All`]: every online CPU in `allowed`, keeping only the
///   lowest-numbered allowed hardware thread of each physical core, so SMT
///   siblings never host two shards.
/// - [`CoreSpec::List`]: exactly the listed CPUs; each must be online and
///   in `allowed`, and none may repeat.
///
/// `allowed` is the process's affinity mask ([`crate::allowed_cpus`]); ids
/// in it that are not online are ignored.
pub fn choose_shard_cores(
    topology: &Topology,
    spec: &CoreSpec,
    allowed: &[usize],
) -> Result<CoreChoice, AffinityError> {
    let mut allowed = allowed.to_vec();
    allowed.sort_unstable();
    allowed.dedup();
    let mut choice = match spec {
        CoreSpec::All => choose_all(topology, &allowed)?,
        CoreSpec::List(cpus) => choose_list(topology, cpus, &allowed)?,
    };
    choice
        .cores
        .sort_by_key(|&cpu| (topology.cpu(cpu).map_or(0, |c| c.numa_node), cpu));
    Ok(choice)
}

/// `cores = "all"`: the first allowed hardware thread of each physical core.
/// `allowed` is sorted and unique.
fn choose_all(topology: &Topology, allowed: &[usize]) -> Result<CoreChoice, AffinityError> {
    let mut cores = Vec::new();
    let mut excluded = Vec::new();
    let mut taken_core_keys = BTreeSet::new();
    for cpu in &topology.cpus {
        if allowed.binary_search(&cpu.id).is_err() {
            excluded.push(cpu.id);
            continue;
        }
        if taken_core_keys.insert(core_key(topology, cpu.id)) {
            cores.push(cpu.id);
        }
    }
    if cores.is_empty() {
        return Err(AffinityError::NoUsableCpu {
            online: format_cpu_list(&topology.online()),
            allowed: format_cpu_list(allowed),
        });
    }
    let mut warnings = Vec::new();
    if !excluded.is_empty() {
        warnings.push(CoreWarning::RestrictedByAffinity { excluded });
    }
    Ok(CoreChoice { cores, warnings })
}

/// `cores = "<list>"`: exactly the listed CPUs, checked. `allowed` is sorted
/// and unique.
fn choose_list(
    topology: &Topology,
    cpus: &[usize],
    allowed: &[usize],
) -> Result<CoreChoice, AffinityError> {
    let mut cores: Vec<usize> = Vec::with_capacity(cpus.len());
    for &cpu in cpus {
        if topology.cpu(cpu).is_none() {
            return Err(AffinityError::CpuOffline {
                cpu,
                online: format_cpu_list(&topology.online()),
            });
        }
        if allowed.binary_search(&cpu).is_err() {
            return Err(AffinityError::CpuNotAllowed {
                cpu,
                allowed: format_cpu_list(allowed),
            });
        }
        if cores.contains(&cpu) {
            return Err(AffinityError::DuplicateCore { cpu });
        }
        cores.push(cpu);
    }
    let mut warnings = Vec::new();
    match cores.as_slice() {
        [] => {
            return Err(AffinityError::EmptyCoreList {
                input: String::new(),
            })
        }
        [cpu] => warnings.push(CoreWarning::SingleCpu { cpu: *cpu }),
        _ => {}
    }
    let mut by_core: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for &cpu in &cores {
        by_core
            .entry(core_key(topology, cpu))
            .or_default()
            .push(cpu);
    }
    for mut shared in by_core.into_values().filter(|cpus| cpus.len() > 1) {
        shared.sort_unstable();
        warnings.push(CoreWarning::SmtSiblingsShareCore { cpus: shared });
    }
    Ok(CoreChoice { cores, warnings })
}

/// Identifies a CPU's physical core by its lowest-numbered online sibling;
/// sibling lists are what the kernel uses to define a core, and unlike
/// `core_id` they are unique across packages and dies.
fn core_key(topology: &Topology, cpu: usize) -> usize {
    topology
        .cpu(cpu)
        .and_then(|c| c.siblings.iter().copied().min())
        .map_or(cpu, |lowest| lowest.min(cpu))
}
