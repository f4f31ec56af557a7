//! Expiry of committed offsets (docs/SEMANTICS.md §4): a group's offset
//! in a partition is deleted once the group has had no members for
//! `groups.offsets_retention` and the offset is at least that old, as
//! Kafka expires an empty group's offsets (KIP-211). Without it a
//! partition that once held offsets of 10,000 groups would refuse every
//! new one for good.
//!
//! Runs on each shard over the journals of the partitions it owns, with
//! log retention. How long a group has been empty is its coordinator's
//! answer (`Groups::empty_since`), asked again right before each delete, so
//! a member that joins during a pass keeps every offset the pass has not
//! deleted yet; the offset's age is checked again too, so a commit that
//! lands meanwhile keeps it.

use std::collections::HashSet;

use crate::{
    router::Router,
    shard::{Op, OpResult},
};

/// Deletes the expired offsets of this shard's partitions; returns how
/// many (group, partition) offsets went.
pub(crate) async fn expire_offsets(router: &Router, now_ms: i64, retention_ms: u64) -> usize {
    let retention = i64::try_from(retention_ms).unwrap_or(i64::MAX);
    let old = |since_ms: i64| since_ms.saturating_add(retention) <= now_ms;
    // Groups with members (or whose coordinator did not answer) this pass.
    let mut kept: HashSet<String> = HashSet::new();
    let mut expired = 0;
    for journal in router.shard.partitions.journals() {
        for (group, committed) in journal.groups() {
            if !old(committed.committed_ms) || kept.contains(&group) {
                continue;
            }
            let op = Op::GroupEmptySince {
                group: group.clone(),
            };
            let empty_since = match router.call(router.shard.coordinator(&group), op).await {
                OpResult::EmptySince(since) => since,
                _ => None,
            };
            let Some(since) = empty_since.filter(|since| old(*since)) else {
                kept.insert(group);
                continue;
            };
            if !journal
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
                        empty_since_ms = since,
                        journal = %journal.log().dir().display(),
                        "committed offset expired (group empty for groups.offsets_retention)"
                    );
                }
                Err(e) => tracing::warn!(group, error = %e, "expiring a committed offset"),
            }
        }
    }
    expired
}
