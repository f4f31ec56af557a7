//! `Topology::from_sysfs` against fixture trees.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{eight_cpus_smt_two_nodes, offline_cpus_in_the_middle, two_cpus_no_smt, Sysfs};
use tidegate_affinity::{AffinityError, Cpu, CpuListError, Topology};

#[test]
fn two_cpus_without_smt_or_numa_dir_are_one_node() {
    let sysfs = two_cpus_no_smt();
    let topology = Topology::from_sysfs(sysfs.root()).unwrap();
    assert_eq!(
        topology.cpus,
        vec![
            Cpu {
                id: 0,
                core_id: 0,
                package_id: 0,
                numa_node: 0,
                siblings: vec![0]
            },
            Cpu {
                id: 1,
                core_id: 1,
                package_id: 0,
                numa_node: 0,
                siblings: vec![1]
            },
        ]
    );
    assert!(!topology.has_smt());
    assert_eq!(topology.numa_nodes(), vec![0]);
}

#[test]
fn smt_pairs_and_two_numa_nodes_are_read() {
    let sysfs = eight_cpus_smt_two_nodes();
    let topology = Topology::from_sysfs(sysfs.root()).unwrap();
    assert_eq!(topology.online(), (0..8).collect::<Vec<_>>());
    assert!(topology.has_smt());
    // The memory-only node 2 holds no CPU.
    assert_eq!(topology.numa_nodes(), vec![0, 1]);
    let cpu5 = topology.cpu(5).unwrap();
    assert_eq!(cpu5.siblings, vec![1, 5]);
    assert_eq!(cpu5.numa_node, 1);
    assert_eq!((cpu5.package_id, cpu5.core_id), (1, 0));
    assert_eq!(topology.cpu(6).unwrap().numa_node, 0);
}

#[test]
fn offline_cpus_are_left_out() {
    let sysfs = offline_cpus_in_the_middle();
    let topology = Topology::from_sysfs(sysfs.root()).unwrap();
    assert_eq!(topology.online(), vec![0, 1, 4, 5]);
    assert!(topology.cpu(2).is_none());
}

#[test]
fn offline_siblings_are_dropped_from_sibling_lists() {
    let sysfs = Sysfs::new("0\n");
    sysfs.cpu(0, "0-1", 0, 0);
    let topology = Topology::from_sysfs(sysfs.root()).unwrap();
    assert_eq!(topology.cpus[0].siblings, vec![0]);
}

#[test]
fn missing_topology_files_mean_own_core_in_package_zero() {
    let sysfs = Sysfs::new("0-2\n");
    let topology = Topology::from_sysfs(sysfs.root()).unwrap();
    let cpu2 = topology.cpu(2).unwrap();
    assert_eq!(cpu2.siblings, vec![2]);
    assert_eq!((cpu2.core_id, cpu2.package_id, cpu2.numa_node), (2, 0, 0));
}

#[test]
fn negative_package_id_is_kept() {
    let sysfs = Sysfs::new("0\n");
    sysfs.cpu(0, "0", -1, -1);
    let topology = Topology::from_sysfs(sysfs.root()).unwrap();
    assert_eq!(topology.cpus[0].package_id, -1);
}

#[test]
fn garbage_online_list_is_a_typed_error_naming_the_file() {
    let sysfs = Sysfs::new("0-1,x\n");
    let err = Topology::from_sysfs(sysfs.root()).unwrap_err();
    match &err {
        AffinityError::SysfsCpuList { path, source } => {
            assert!(path.ends_with("devices/system/cpu/online"));
            assert_eq!(source, &CpuListError::InvalidItem { item: "x".into() });
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("online"), "{err}");
}

#[test]
fn garbage_sibling_list_is_a_typed_error() {
    let sysfs = two_cpus_no_smt();
    sysfs.write(
        "devices/system/cpu/cpu1/topology/thread_siblings_list",
        "1-\n",
    );
    let err = Topology::from_sysfs(sysfs.root()).unwrap_err();
    assert!(
        matches!(&err, AffinityError::SysfsCpuList { path, .. } if path.ends_with("cpu1/topology/thread_siblings_list")),
        "{err:?}"
    );
}

#[test]
fn garbage_core_id_is_a_typed_error() {
    let sysfs = two_cpus_no_smt();
    sysfs.write("devices/system/cpu/cpu0/topology/core_id", "zero\n");
    let err = Topology::from_sysfs(sysfs.root()).unwrap_err();
    assert!(
        matches!(&err, AffinityError::SysfsInteger { content, .. } if content == "zero"),
        "{err:?}"
    );
}

#[test]
fn reversed_node_cpulist_is_a_typed_error() {
    let sysfs = two_cpus_no_smt();
    sysfs.node(0, "1-0");
    let err = Topology::from_sysfs(sysfs.root()).unwrap_err();
    assert!(
        matches!(
            &err,
            AffinityError::SysfsCpuList {
                source: CpuListError::ReversedRange { start: 1, end: 0 },
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn cpu_in_two_nodes_is_rejected() {
    let sysfs = two_cpus_no_smt();
    sysfs.node(0, "0-1");
    sysfs.node(1, "1");
    let err = Topology::from_sysfs(sysfs.root()).unwrap_err();
    assert!(
        matches!(
            err,
            AffinityError::CpuInTwoNodes {
                cpu: 1,
                first: 0,
                second: 1
            }
        ),
        "{err:?}"
    );
}

#[test]
fn empty_online_list_is_rejected() {
    let sysfs = Sysfs::new("\n");
    let err = Topology::from_sysfs(sysfs.root()).unwrap_err();
    assert!(matches!(err, AffinityError::NoOnlineCpu { .. }), "{err:?}");
}

#[test]
fn missing_online_file_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = Topology::from_sysfs(dir.path()).unwrap_err();
    assert!(
        matches!(&err, AffinityError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
        "{err:?}"
    );
}

#[test]
fn oversized_file_is_refused() {
    let sysfs = Sysfs::new(&"0,".repeat(40_000));
    let err = Topology::from_sysfs(sysfs.root()).unwrap_err();
    assert!(
        matches!(&err, AffinityError::Io { source, .. } if source.kind() == std::io::ErrorKind::InvalidData),
        "{err:?}"
    );
}

#[test]
fn oversized_cpu_id_is_refused() {
    let sysfs = Sysfs::new("0-99999\n");
    let err = Topology::from_sysfs(sysfs.root()).unwrap_err();
    assert!(
        matches!(
            &err,
            AffinityError::SysfsCpuList {
                source: CpuListError::TooLarge { .. },
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn detect_reads_this_host() {
    let topology = Topology::detect().unwrap();
    assert!(!topology.cpus.is_empty());
    for cpu in &topology.cpus {
        assert!(cpu.siblings.contains(&cpu.id));
    }
}
