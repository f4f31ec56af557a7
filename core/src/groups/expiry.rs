//! Expiry of committed offsets (docs/SEMANTICS.md §4): a group's offset
//! in a partition is deleted once it is older than
//! `groups.offsets_retention` and the group has no members, as Kafka
//! expires an empty group's offsets. Without it a partition that once held
//! offsets of 10,000 groups would refuse every new one for good.
//!
//! Runs on each shard over the journals of the partitions it owns, with
//! log retention. Membership is the coordinator's, asked once per group
//! and pass; a commit that lands while the question is out keeps the
//! offset (the age is checked again before the delete).

use std::collections::HashMap;

use crate::{
    router::Router,
    shard::{Op, OpResult},
};

/// Deletes the expired offsets of this shard's partitions; returns how
/// many (group, partition) offsets went.
pub(crate) async fn expire_offsets(router: &Router, now_ms: i64, retention_ms: u64) -> usize {
    let retention = i64::try_from(retention_ms).unwrap_or(i64::MAX);
    let old = |committed_ms: i64| committed_ms.saturating_add(retention) <= now_ms;
    // Per group: true when the coordinator says it has no members.
    let mut empty: HashMap<String, bool> = HashMap::new();
    let mut expired = 0;
    for journal in router.shard.partitions.journals() {
        for (group, committed) in journal.groups() {
            if !old(committed.committed_ms) {
                continue;
            }
            let is_empty = match empty.get(&group) {
                Some(known) => *known,
                None => {
                    let op = Op::DescribeGroup {
                        group: group.clone(),
                    };
                    let coordinator = router.shard.coordinator(&group);
                    // Anything but "no members" (members, a failure) keeps it.
                    let known = matches!(router.call(coordinator, op).await, OpResult::Group(None));
                    empty.insert(group.clone(), known);
                    known
                }
            };
            if !is_empty
                || !journal
                    .committed(&group)
                    .is_some_and(|c| old(c.committed_ms))
            {
                continue;
            }
            match journal.delete(&group).await {
                Ok(()) => {
                    expired += 1;
                    tracing::info!(
                        group,
                        journal = %journal.log().dir().display(),
                        "committed offset expired (empty group, groups.offsets_retention)"
                    );
                }
                Err(e) => tracing::warn!(group, error = %e, "expiring a committed offset"),
            }
        }
    }
    expired
}
