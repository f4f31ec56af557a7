//! The sticky assignor: spreads a topic's partitions over a group's
//! members as evenly as possible (counts differ by at most one) while
//! moving as few partitions as it can.

use std::collections::{BTreeMap, BTreeSet};

/// The target assignment of `partitions` over `members` (id → the target
/// it had before). Deterministic: the same input gives the same output.
pub(crate) fn assign(
    partitions: u32,
    members: &BTreeMap<String, BTreeSet<u32>>,
) -> BTreeMap<String, BTreeSet<u32>> {
    let mut out: BTreeMap<String, BTreeSet<u32>> = members
        .keys()
        .map(|id| (id.clone(), BTreeSet::new()))
        .collect();
    let count = members.len() as u64;
    if count == 0 {
        return out;
    }
    let base = u64::from(partitions) / count;
    let extra = u64::from(partitions) % count;
    // The members that keep the most get the extra slots, so fewer move.
    let mut by_kept: Vec<(&String, usize)> = members
        .iter()
        .map(|(id, previous)| (id, previous.range(..partitions).count()))
        .collect();
    by_kept.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let quota: BTreeMap<&String, u64> = by_kept
        .iter()
        .enumerate()
        .map(|(i, (id, _))| (*id, base + u64::from((i as u64) < extra)))
        .collect();
    let mut taken = BTreeSet::new();
    for (id, previous) in members {
        let room = quota.get(id).copied().unwrap_or(0);
        let keep = previous
            .range(..partitions)
            .filter(|p| !taken.contains(*p))
            .take(usize::try_from(room).unwrap_or(usize::MAX));
        let kept: Vec<u32> = keep.copied().collect();
        taken.extend(kept.iter().copied());
        if let Some(target) = out.get_mut(id) {
            target.extend(kept);
        }
    }
    let mut free = (0..partitions).filter(|p| !taken.contains(p));
    for (id, target) in out.iter_mut() {
        let room = quota.get(id).copied().unwrap_or(0);
        while (target.len() as u64) < room {
            match free.next() {
                Some(p) => {
                    target.insert(p);
                }
                None => break,
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn members(list: &[(&str, &[u32])]) -> BTreeMap<String, BTreeSet<u32>> {
        list.iter()
            .map(|(id, ps)| (id.to_string(), ps.iter().copied().collect()))
            .collect()
    }

    #[test]
    fn a_new_member_takes_only_what_balance_needs() {
        let before = members(&[("a", &[0, 1, 2, 3]), ("b", &[4, 5, 6, 7]), ("c", &[])]);
        let after = assign(8, &before);
        assert_eq!(after["a"].len() + after["b"].len() + after["c"].len(), 8);
        assert!(after["a"].is_subset(&before["a"]));
        assert!(after["b"].is_subset(&before["b"]));
        assert_eq!(after["c"].len(), 2);
    }

    #[test]
    fn a_leaving_member_spreads_its_partitions_and_nothing_else_moves() {
        let before = members(&[("a", &[0, 1]), ("b", &[2, 3]), ("c", &[4, 5])]);
        let mut remaining = before.clone();
        remaining.remove("b");
        let after = assign(6, &remaining);
        assert!(before["a"].is_subset(&after["a"]));
        assert!(before["c"].is_subset(&after["c"]));
        assert_eq!(after["a"].len() + after["c"].len(), 6);
    }

    #[test]
    fn more_members_than_partitions_leaves_some_idle() {
        let after = assign(2, &members(&[("a", &[]), ("b", &[]), ("c", &[])]));
        let sizes: Vec<usize> = after.values().map(BTreeSet::len).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 2);
        assert!(sizes.iter().all(|&s| s <= 1));
    }

    proptest! {
        #[test]
        fn every_partition_is_assigned_once_and_counts_differ_by_at_most_one(
            partitions in 0u32..64,
            previous in proptest::collection::btree_map(
                "[a-e]{1,3}",
                proptest::collection::btree_set(0u32..80, 0..20),
                0..8,
            ),
        ) {
            let after = assign(partitions, &previous);
            let mut seen = BTreeSet::new();
            for target in after.values() {
                for p in target {
                    prop_assert!(*p < partitions);
                    prop_assert!(seen.insert(*p), "partition {} twice", p);
                }
            }
            if !previous.is_empty() {
                prop_assert_eq!(seen.len() as u32, partitions);
                let sizes: Vec<usize> = after.values().map(BTreeSet::len).collect();
                let (min, max) = (sizes.iter().min(), sizes.iter().max());
                prop_assert!(max.zip(min).is_some_and(|(a, b)| a - b <= 1));
            }
            prop_assert_eq!(assign(partitions, &previous), after);
        }
    }
}
