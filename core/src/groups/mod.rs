//! Consumer groups (docs/SEMANTICS.md §4): each group is coordinated by one
//! shard (`shard_for(group)`), which keeps its members in memory and
//! assigns the topic's partitions; committed offsets live in the
//! partitions' cursor journals, on the partitions' own shards.

mod assign;
pub(crate) mod expiry;
mod group;

use std::{cell::RefCell, collections::HashMap};

use tidegate_proto::protocol::ErrorCode;

pub(crate) use group::{Heartbeat, Reply};

use crate::shard::Failure;
use group::{Group, GroupError};

/// Most groups one shard coordinates at once.
pub const GROUPS_PER_SHARD_MAX: usize = 10_000;
/// Most members one group has.
pub const MEMBERS_PER_GROUP_MAX: usize = 1_000;

/// A group's members, as DescribeGroup shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupState {
    pub(crate) topic: String,
    pub(crate) generation: u64,
    /// `(member id, granted partitions)`.
    pub(crate) members: Vec<(String, Vec<u32>)>,
}

/// The groups this shard coordinates.
pub(crate) struct Groups {
    shard: usize,
    groups: RefCell<HashMap<String, Group>>,
    /// Makes member ids unique: this process's start time and a counter.
    started_ms: i64,
    next_member: std::cell::Cell<u64>,
}

impl Groups {
    pub(crate) fn new(shard: usize, started_ms: i64) -> Groups {
        Groups {
            shard,
            groups: RefCell::new(HashMap::new()),
            started_ms,
            next_member: std::cell::Cell::new(0),
        }
    }

    /// Handles a heartbeat for `group`.
    pub(crate) fn heartbeat(&self, group: &str, hb: &Heartbeat<'_>) -> Result<Reply, Failure> {
        let mut groups = self.groups.borrow_mut();
        if !groups.contains_key(group) {
            if !hb.member_id.is_empty() {
                return Err(failure(group, GroupError::UnknownMember));
            }
            if groups.len() >= GROUPS_PER_SHARD_MAX {
                // Make room from groups whose members all timed out.
                groups.retain(|_, g| {
                    g.expire(hb.now_ms);
                    !g.is_empty()
                });
            }
            if groups.len() >= GROUPS_PER_SHARD_MAX {
                return Err(Failure::new(
                    ErrorCode::Busy,
                    format!("this server coordinates {GROUPS_PER_SHARD_MAX} groups per shard, its limit"),
                ));
            }
            groups.insert(
                group.to_owned(),
                Group::new(hb.topic, hb.partitions, MEMBERS_PER_GROUP_MAX),
            );
        }
        let Some(g) = groups.get_mut(group) else {
            return Err(failure(group, GroupError::UnknownMember));
        };
        let reply = g
            .heartbeat(hb, || self.new_member_id())
            .map_err(|e| failure(group, e));
        if g.is_empty() {
            groups.remove(group);
        }
        reply
    }

    /// Whether `member_id` may commit each partition of `topic`.
    pub(crate) fn may_commit(
        &self,
        group: &str,
        member_id: &str,
        topic: &str,
        partitions: &[u32],
        now_ms: i64,
    ) -> Result<Vec<bool>, Failure> {
        let mut groups = self.groups.borrow_mut();
        let Some(g) = groups.get_mut(group) else {
            // No group in memory: nobody is a member.
            return if member_id.is_empty() {
                Ok(vec![true; partitions.len()])
            } else {
                Err(failure(group, GroupError::UnknownMember))
            };
        };
        if !member_id.is_empty() && g.topic() != topic {
            return Err(failure(group, GroupError::OtherTopic(g.topic().to_owned())));
        }
        g.may_commit(member_id, partitions, now_ms)
            .map_err(|e| failure(group, e))
    }

    /// `group`'s members now: `None` when it has none.
    pub(crate) fn describe(&self, group: &str, now_ms: i64) -> Option<GroupState> {
        let mut groups = self.groups.borrow_mut();
        let g = groups.get_mut(group)?;
        g.expire(now_ms);
        if g.is_empty() {
            groups.remove(group);
            return None;
        }
        Some(GroupState {
            topic: g.topic().to_owned(),
            generation: g.generation(),
            members: g.members(),
        })
    }

    /// Every group with members: `(group, topic, members)`.
    pub(crate) fn list(&self, now_ms: i64) -> Vec<(String, String, u32)> {
        let mut groups = self.groups.borrow_mut();
        groups.retain(|_, g| {
            g.expire(now_ms);
            !g.is_empty()
        });
        let mut out: Vec<(String, String, u32)> = groups
            .iter()
            .map(|(name, g)| (name.clone(), g.topic().to_owned(), g.members().len() as u32))
            .collect();
        out.sort();
        out
    }

    fn new_member_id(&self) -> String {
        let n = self.next_member.get();
        self.next_member.set(n + 1);
        format!("{}-{:x}-{n}", self.shard, self.started_ms)
    }
}

fn failure(group: &str, e: GroupError) -> Failure {
    match e {
        GroupError::UnknownMember => Failure::new(
            ErrorCode::UnknownMember,
            format!("group {group:?} has no such member; join again"),
        ),
        GroupError::OtherTopic(topic) => Failure::new(
            ErrorCode::InvalidRequest,
            format!("group {group:?} consumes topic {topic:?}"),
        ),
        GroupError::Full(max) => Failure::new(
            ErrorCode::Busy,
            format!("group {group:?} has {max} members, its limit"),
        ),
        GroupError::HasMembers => Failure::new(
            ErrorCode::UnknownMember,
            format!("group {group:?} has members: commit as one of them"),
        ),
    }
}
