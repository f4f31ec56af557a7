//! `CoreSpec` parsing and `choose_shard_cores` over fixture topologies.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{eight_cpus_smt_two_nodes, offline_cpus_in_the_middle, two_cpus_no_smt};
use tidegate_affinity::{
    allowed_cpus, choose_shard_cores, AffinityError, CoreSpec, CoreWarning, CpuListError, Topology,
};

fn eight() -> Topology {
    Topology::from_sysfs(eight_cpus_smt_two_nodes().root()).unwrap()
}

fn all_eight() -> Vec<usize> {
    (0..8).collect()
}

#[test]
fn spec_parses_all_and_lists() {
    assert_eq!(CoreSpec::parse("all").unwrap(), CoreSpec::All);
    assert_eq!(CoreSpec::parse(" all\n").unwrap(), CoreSpec::All);
    assert_eq!(
        CoreSpec::parse("0-3,6").unwrap(),
        CoreSpec::List(vec![0, 1, 2, 3, 6])
    );
    assert_eq!(
        "6,1".parse::<CoreSpec>().unwrap(),
        CoreSpec::List(vec![1, 6])
    );
}

#[test]
fn spec_bare_number_is_a_cpu_not_a_count() {
    assert_eq!(CoreSpec::parse("2").unwrap(), CoreSpec::List(vec![2]));
}

#[test]
fn spec_errors_name_the_bad_part() {
    for (input, bad) in [("four", "four"), ("count:2", "count:2"), ("0-3,ALL", "ALL")] {
        let err = CoreSpec::parse(input).unwrap_err();
        assert!(
            matches!(&err, AffinityError::CoreSpec { source: CpuListError::InvalidItem { item }, .. } if item == bad),
            "{input}: {err:?}"
        );
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
    }
    assert!(matches!(
        CoreSpec::parse("0-3,3"),
        Err(AffinityError::CoreSpec {
            source: CpuListError::Duplicate { cpu: 3 },
            ..
        })
    ));
    assert!(matches!(
        CoreSpec::parse(" "),
        Err(AffinityError::EmptyCoreList { .. })
    ));
}

#[test]
fn spec_displays_as_its_config_value() {
    for input in ["all", "0-3,6"] {
        assert_eq!(CoreSpec::parse(input).unwrap().to_string(), input);
    }
}

#[test]
fn all_without_smt_takes_every_cpu() {
    let topology = Topology::from_sysfs(two_cpus_no_smt().root()).unwrap();
    let choice = choose_shard_cores(&topology, &CoreSpec::All, &[0, 1]).unwrap();
    assert_eq!(choice.cores, vec![0, 1]);
    assert!(choice.warnings.is_empty());
}

#[test]
fn all_with_smt_takes_one_thread_per_core_ordered_by_node() {
    let choice = choose_shard_cores(&eight(), &CoreSpec::All, &all_eight()).unwrap();
    // Node 0 holds cores {0,4} and {2,6}; node 1 holds {1,5} and {3,7}.
    assert_eq!(choice.cores, vec![0, 2, 1, 3]);
    assert!(choice.warnings.is_empty());
}

#[test]
fn all_respects_the_allowed_set() {
    let choice = choose_shard_cores(&eight(), &CoreSpec::All, &[4, 5, 6, 7]).unwrap();
    // Only the second thread of each core is allowed: it stands in.
    assert_eq!(choice.cores, vec![4, 6, 5, 7]);
    assert_eq!(
        choice.warnings,
        vec![CoreWarning::RestrictedByAffinity {
            excluded: vec![0, 1, 2, 3]
        }]
    );
}

#[test]
fn all_skips_offline_cpus_and_ignores_offline_allowed_ids() {
    let topology = Topology::from_sysfs(offline_cpus_in_the_middle().root()).unwrap();
    let choice = choose_shard_cores(&topology, &CoreSpec::All, &[0, 1, 2, 3, 4, 5]).unwrap();
    assert_eq!(choice.cores, vec![0, 1, 4, 5]);
    assert!(choice.warnings.is_empty());
}

#[test]
fn all_with_nothing_allowed_is_an_error() {
    let err = choose_shard_cores(&eight(), &CoreSpec::All, &[9]).unwrap_err();
    assert!(matches!(err, AffinityError::NoUsableCpu { .. }), "{err:?}");
}

#[test]
fn list_takes_exactly_the_listed_cpus() {
    let spec = CoreSpec::parse("0-3").unwrap();
    let choice = choose_shard_cores(&eight(), &spec, &all_eight()).unwrap();
    assert_eq!(choice.cores, vec![0, 2, 1, 3]);
    assert!(choice.warnings.is_empty());
}

#[test]
fn list_of_smt_siblings_warns() {
    let spec = CoreSpec::parse("0,4,1").unwrap();
    let choice = choose_shard_cores(&eight(), &spec, &all_eight()).unwrap();
    assert_eq!(choice.cores, vec![0, 4, 1]);
    assert_eq!(
        choice.warnings,
        vec![CoreWarning::SmtSiblingsShareCore { cpus: vec![0, 4] }]
    );
    assert!(choice.warnings[0].to_string().contains("0,4"));
}

#[test]
fn list_of_one_cpu_warns_that_it_is_not_a_count() {
    let spec = CoreSpec::parse("1").unwrap();
    let topology = Topology::from_sysfs(two_cpus_no_smt().root()).unwrap();
    let choice = choose_shard_cores(&topology, &spec, &[0, 1]).unwrap();
    assert_eq!(choice.cores, vec![1]);
    assert_eq!(choice.warnings, vec![CoreWarning::SingleCpu { cpu: 1 }]);
}

#[test]
fn list_with_offline_cpu_is_rejected() {
    let topology = Topology::from_sysfs(offline_cpus_in_the_middle().root()).unwrap();
    let spec = CoreSpec::parse("1-2").unwrap();
    let err = choose_shard_cores(&topology, &spec, &[0, 1, 2, 3, 4, 5]).unwrap_err();
    assert!(
        matches!(&err, AffinityError::CpuOffline { cpu: 2, online } if online == "0-1,4-5"),
        "{err:?}"
    );
}

#[test]
fn list_with_disallowed_cpu_is_rejected() {
    let spec = CoreSpec::parse("3,5").unwrap();
    let err = choose_shard_cores(&eight(), &spec, &[0, 1, 2, 3]).unwrap_err();
    assert!(
        matches!(&err, AffinityError::CpuNotAllowed { cpu: 5, allowed } if allowed == "0-3"),
        "{err:?}"
    );
}

#[test]
fn hand_built_list_with_duplicates_is_rejected() {
    let err = choose_shard_cores(&eight(), &CoreSpec::List(vec![1, 1]), &all_eight()).unwrap_err();
    assert!(
        matches!(err, AffinityError::DuplicateCore { cpu: 1 }),
        "{err:?}"
    );
    let err = choose_shard_cores(&eight(), &CoreSpec::List(vec![]), &all_eight()).unwrap_err();
    assert!(
        matches!(err, AffinityError::EmptyCoreList { .. }),
        "{err:?}"
    );
}

#[test]
fn all_on_this_host_gives_allowed_cpus() {
    let topology = Topology::detect().unwrap();
    let allowed = allowed_cpus().unwrap();
    let choice = choose_shard_cores(&topology, &CoreSpec::All, &allowed).unwrap();
    assert!(!choice.cores.is_empty());
    assert!(choice.cores.iter().all(|c| allowed.contains(c)));
}
