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
    /// When each group seen since start was last found without members
    /// (for the expiry of its offsets; `expiry.rs`).
    emptied: RefCell<Emptied>,
    /// Makes member ids unique: this process's start time and a counter.
    started_ms: i64,
    next_member: std::cell::Cell<u64>,
}

impl Groups {
    pub(crate) fn new(shard: usize, started_ms: i64) -> Groups {
        Groups {
            shard,
            groups: RefCell::new(HashMap::new()),
            emptied: RefCell::new(Emptied::new(started_ms)),
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
                let mut emptied = self.emptied.borrow_mut();
                groups.retain(|name, g| {
                    g.expire(hb.now_ms);
                    let keep = !g.is_empty();
                    if !keep {
                        emptied.record(name, hb.now_ms);
                    }
                    keep
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
            self.emptied.borrow_mut().forget(group);
        }
        let Some(g) = groups.get_mut(group) else {
            return Err(failure(group, GroupError::UnknownMember));
        };
        let reply = g
            .heartbeat(hb, || self.new_member_id())
            .map_err(|e| failure(group, e));
        if g.is_empty() {
            groups.remove(group);
            self.emptied.borrow_mut().record(group, hb.now_ms);
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
            self.emptied.borrow_mut().record(group, now_ms);
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
        let mut emptied = self.emptied.borrow_mut();
        groups.retain(|name, g| {
            g.expire(now_ms);
            let keep = !g.is_empty();
            if !keep {
                emptied.record(name, now_ms);
            }
            keep
        });
        let mut out: Vec<(String, String, u32)> = groups
            .iter()
            .map(|(name, g)| (name.clone(), g.topic().to_owned(), g.members().len() as u32))
            .collect();
        out.sort();
        out
    }

    /// Since when `group` has had no members, as far as this process
    /// knows: when it was last found empty, or (never seen with members
    /// since start) when the process started. `None` while it has some.
    pub(crate) fn empty_since(&self, group: &str, now_ms: i64) -> Option<i64> {
        let mut groups = self.groups.borrow_mut();
        if let Some(g) = groups.get_mut(group) {
            g.expire(now_ms);
            if !g.is_empty() {
                return None;
            }
            groups.remove(group);
            self.emptied.borrow_mut().record(group, now_ms);
        }
        Some(self.emptied.borrow().since(group))
    }

    fn new_member_id(&self) -> String {
        let n = self.next_member.get();
        self.next_member.set(n + 1);
        format!("{}-{:x}-{n}", self.shard, self.started_ms)
    }
}

/// When groups were last found without members, bounded: past
/// [`EMPTIED_MAX`] entries the oldest are dropped, and a group no longer
/// listed counts as emptied at the newest time dropped (or at the start),
/// which is no earlier than when it really was: offsets then expire late,
/// never early.
struct Emptied {
    at: HashMap<String, i64>,
    floor: i64,
}

/// Most groups whose emptying a shard remembers.
const EMPTIED_MAX: usize = 100_000;

impl Emptied {
    fn new(started_ms: i64) -> Self {
        Emptied {
            at: HashMap::new(),
            floor: started_ms,
        }
    }

    fn record(&mut self, group: &str, now_ms: i64) {
        if self.at.len() >= EMPTIED_MAX && !self.at.contains_key(group) {
            // Drop the oldest tenth at once, so this is rare.
            let mut times: Vec<i64> = self.at.values().copied().collect();
            times.sort_unstable();
            let cut = times.get(EMPTIED_MAX / 10).copied().unwrap_or(i64::MIN);
            self.at.retain(|_, t| *t > cut);
            self.floor = self.floor.max(cut);
        }
        self.at.insert(group.to_owned(), now_ms);
    }

    fn forget(&mut self, group: &str) {
        self.at.remove(group);
    }

    fn since(&self, group: &str) -> i64 {
        self.at
            .get(group)
            .copied()
            .unwrap_or(self.floor)
            .max(self.floor)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn beat<'a>(member_id: &'a str, leave: bool, now_ms: i64) -> Heartbeat<'a> {
        Heartbeat {
            member_id,
            topic: "t",
            partitions: 2,
            owned: &[],
            session_timeout_ms: 1_000,
            leave,
            now_ms,
        }
    }

    #[test]
    fn a_group_is_empty_since_the_start_or_since_its_last_member_left_or_timed_out() {
        let groups = Groups::new(0, 1_000);
        assert_eq!(groups.empty_since("never", 5_000), Some(1_000));
        let joined = groups
            .heartbeat("g", &beat("", false, 2_000))
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(groups.empty_since("g", 2_500), None, "it has a member");
        groups
            .heartbeat("g", &beat(&joined.member_id, true, 2_800))
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(groups.empty_since("g", 9_000), Some(2_800), "since it left");
        // A member whose session ran out: empty from when that was noticed.
        let joined = groups
            .heartbeat("h", &beat("", false, 4_000))
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(!joined.member_id.is_empty());
        assert_eq!(groups.empty_since("h", 4_500), None);
        assert_eq!(groups.empty_since("h", 7_000), Some(7_000));
        assert_eq!(groups.empty_since("h", 8_000), Some(7_000));
    }

    #[test]
    fn forgotten_emptyings_count_from_no_earlier_than_what_was_dropped() {
        let mut e = Emptied::new(0);
        for i in 0..EMPTIED_MAX as i64 {
            e.record(&format!("g{i}"), i);
        }
        e.record("new", EMPTIED_MAX as i64);
        assert!(e.at.len() < EMPTIED_MAX);
        let floor = e.since("g0");
        assert!(floor >= (EMPTIED_MAX / 10) as i64, "{floor}");
        assert_eq!(e.since("new"), EMPTIED_MAX as i64);
    }
}
