//! One consumer group as its coordinator sees it: members, their target
//! and granted partitions, and the cooperative hand-over that keeps a
//! partition from ever being held by two members (docs/SEMANTICS.md §4).
//!
//! Pure state: time comes in as `now_ms`.

use std::collections::{BTreeMap, BTreeSet};

use super::assign::assign;

/// Why a heartbeat or commit was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GroupError {
    /// No member with this id (never joined, left, or timed out).
    UnknownMember,
    /// The group consumes another topic.
    OtherTopic(String),
    /// The group has its maximum of members.
    Full(usize),
    /// A commit outside membership while the group has members.
    HasMembers,
}

/// A member of the group.
#[derive(Debug, Clone)]
struct Member {
    /// What the member said it holds in its last heartbeat.
    owned: BTreeSet<u32>,
    /// What the assignor wants it to hold.
    target: BTreeSet<u32>,
    /// What it may hold and commit now: its target minus what others still
    /// hold, plus what it still holds of its earlier grant.
    granted: BTreeSet<u32>,
    session_timeout_ms: u32,
    deadline_ms: i64,
}

/// One heartbeat, as the coordinator receives it.
#[derive(Debug, Clone)]
pub(crate) struct Heartbeat<'a> {
    pub(crate) member_id: &'a str,
    pub(crate) topic: &'a str,
    /// The topic's partition count now.
    pub(crate) partitions: u32,
    pub(crate) owned: &'a [u32],
    pub(crate) session_timeout_ms: u32,
    pub(crate) leave: bool,
    pub(crate) now_ms: i64,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) member_id: String,
    pub(crate) generation: u64,
    pub(crate) assigned: Vec<u32>,
    pub(crate) heartbeat_interval_ms: u32,
}

/// A group and its members.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    topic: String,
    partitions: u32,
    generation: u64,
    members: BTreeMap<String, Member>,
    members_max: usize,
}

impl Group {
    pub(crate) fn new(topic: &str, partitions: u32, members_max: usize) -> Group {
        Group {
            topic: topic.to_owned(),
            partitions,
            generation: 0,
            members: BTreeMap::new(),
            members_max,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub(crate) fn topic(&self) -> &str {
        &self.topic
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// `(member id, granted partitions)` of every member.
    pub(crate) fn members(&self) -> Vec<(String, Vec<u32>)> {
        self.members
            .iter()
            .map(|(id, m)| (id.clone(), m.granted.iter().copied().collect()))
            .collect()
    }

    /// Handles a heartbeat: a join when `member_id` is empty (the new id
    /// comes from `new_id`), a leave, or a member staying.
    pub(crate) fn heartbeat(
        &mut self,
        hb: &Heartbeat<'_>,
        new_id: impl FnOnce() -> String,
    ) -> Result<Reply, GroupError> {
        self.expire(hb.now_ms);
        if hb.topic != self.topic {
            if self.members.is_empty() {
                // An idle group may switch topics.
                self.topic = hb.topic.to_owned();
            } else {
                return Err(GroupError::OtherTopic(self.topic.clone()));
            }
        }
        let mut changed = hb.partitions != self.partitions;
        self.partitions = hb.partitions;
        let member_id = if hb.member_id.is_empty() {
            if self.members.len() >= self.members_max {
                return Err(GroupError::Full(self.members_max));
            }
            let id = new_id();
            self.members.insert(
                id.clone(),
                Member {
                    owned: BTreeSet::new(),
                    target: BTreeSet::new(),
                    granted: BTreeSet::new(),
                    session_timeout_ms: hb.session_timeout_ms,
                    deadline_ms: 0,
                },
            );
            changed = true;
            id
        } else if self.members.contains_key(hb.member_id) {
            hb.member_id.to_owned()
        } else {
            return Err(GroupError::UnknownMember);
        };
        if hb.leave {
            self.members.remove(&member_id);
            self.rebalance();
            return Ok(Reply {
                member_id,
                generation: self.generation,
                assigned: Vec::new(),
                heartbeat_interval_ms: interval(hb.session_timeout_ms),
            });
        }
        let partitions = self.partitions;
        if let Some(m) = self.members.get_mut(&member_id) {
            m.owned = hb
                .owned
                .iter()
                .copied()
                .filter(|p| *p < partitions)
                .collect();
            m.session_timeout_ms = hb.session_timeout_ms;
            m.deadline_ms = hb.now_ms.saturating_add(i64::from(hb.session_timeout_ms));
        }
        if changed {
            self.rebalance();
        }
        let assigned = self.grant(&member_id);
        Ok(Reply {
            member_id,
            generation: self.generation,
            assigned,
            heartbeat_interval_ms: interval(hb.session_timeout_ms),
        })
    }

    /// Whether `member_id` may commit each of `partitions` (an empty id:
    /// a commit outside membership, allowed while the group is empty).
    pub(crate) fn may_commit(
        &mut self,
        member_id: &str,
        partitions: &[u32],
        now_ms: i64,
    ) -> Result<Vec<bool>, GroupError> {
        self.expire(now_ms);
        if member_id.is_empty() {
            return if self.members.is_empty() {
                Ok(vec![true; partitions.len()])
            } else {
                Err(GroupError::HasMembers)
            };
        }
        let member = self
            .members
            .get(member_id)
            .ok_or(GroupError::UnknownMember)?;
        Ok(partitions
            .iter()
            .map(|p| member.granted.contains(p))
            .collect())
    }

    /// Removes members whose session ended; their partitions go to the
    /// others. Returns how many left.
    pub(crate) fn expire(&mut self, now_ms: i64) -> usize {
        let before = self.members.len();
        self.members
            .retain(|_, m| m.deadline_ms == 0 || m.deadline_ms > now_ms);
        let gone = before - self.members.len();
        if gone > 0 {
            self.rebalance();
        }
        gone
    }

    /// New targets for everyone; a new generation.
    fn rebalance(&mut self) {
        let previous: BTreeMap<String, BTreeSet<u32>> = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.target.clone()))
            .collect();
        let targets = assign(self.partitions, &previous);
        for (id, target) in targets {
            if let Some(m) = self.members.get_mut(&id) {
                m.target = target;
            }
        }
        self.generation += 1;
    }

    /// What `member_id` may hold now: its target, except partitions
    /// another member still holds or was granted; plus what it still holds
    /// of its earlier grant (until it reports letting go, so it can commit
    /// them). Recorded as its grant.
    fn grant(&mut self, member_id: &str) -> Vec<u32> {
        let busy: BTreeSet<u32> = self
            .members
            .iter()
            .filter(|(id, _)| id.as_str() != member_id)
            .flat_map(|(_, m)| m.owned.iter().chain(m.granted.iter()).copied())
            .collect();
        let Some(m) = self.members.get_mut(member_id) else {
            return Vec::new();
        };
        let keep: BTreeSet<u32> = m.owned.intersection(&m.granted).copied().collect();
        let assigned: BTreeSet<u32> = m.target.difference(&busy).copied().collect();
        m.granted = assigned.union(&keep).copied().collect();
        assigned.into_iter().collect()
    }
}

/// Heartbeats every third of the session, so one lost heartbeat does not
/// end it.
fn interval(session_timeout_ms: u32) -> u32 {
    (session_timeout_ms / 3).max(1)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;

    const SESSION: u32 = 10_000;

    fn hb<'a>(member_id: &'a str, owned: &'a [u32], now_ms: i64) -> Heartbeat<'a> {
        Heartbeat {
            member_id,
            topic: "t",
            partitions: 4,
            owned,
            session_timeout_ms: SESSION,
            leave: false,
            now_ms,
        }
    }

    fn join(g: &mut Group, id: &str, now: i64) -> Reply {
        g.heartbeat(&hb("", &[], now), || id.to_owned()).unwrap()
    }

    #[test]
    fn a_moved_partition_reaches_its_new_member_only_after_the_old_one_lets_go() {
        let mut g = Group::new("t", 4, 100);
        let a = join(&mut g, "a", 0);
        assert_eq!(a.assigned, vec![0, 1, 2, 3]);
        // b joins: two partitions should move, but a still holds them.
        let b = join(&mut g, "b", 1);
        assert!(b.assigned.is_empty(), "{:?}", b.assigned);
        assert!(b.generation > a.generation);
        // a learns it keeps two; it may still commit the two it gives up.
        let a2 = g
            .heartbeat(&hb("a", &[0, 1, 2, 3], 2), String::new)
            .unwrap();
        assert_eq!(a2.assigned.len(), 2);
        let gone: Vec<u32> = (0..4).filter(|p| !a2.assigned.contains(p)).collect();
        assert_eq!(g.may_commit("a", &gone, 3).unwrap(), vec![true, true]);
        let b2 = g.heartbeat(&hb("b", &[], 4), String::new).unwrap();
        assert!(b2.assigned.is_empty(), "a has not let go yet");
        // a lets go; now b gets them, and a may no longer commit them.
        g.heartbeat(&hb("a", &a2.assigned, 5), String::new).unwrap();
        assert_eq!(g.may_commit("a", &gone, 6).unwrap(), vec![false, false]);
        let b3 = g.heartbeat(&hb("b", &[], 7), String::new).unwrap();
        assert_eq!(b3.assigned, gone);
        assert_eq!(g.may_commit("b", &gone, 8).unwrap(), vec![true, true]);
    }

    #[test]
    fn a_member_that_stops_heartbeating_is_removed_and_its_partitions_move() {
        let mut g = Group::new("t", 4, 100);
        join(&mut g, "a", 0);
        g.heartbeat(&hb("a", &[0, 1, 2, 3], 0), String::new)
            .unwrap();
        join(&mut g, "b", 100);
        // a never heartbeats again: after its session b gets everything.
        let b = g
            .heartbeat(&hb("b", &[], i64::from(SESSION) + 1), String::new)
            .unwrap();
        assert_eq!(b.assigned, vec![0, 1, 2, 3]);
        assert_eq!(
            g.heartbeat(&hb("a", &[], i64::from(SESSION) + 2), String::new),
            Err(GroupError::UnknownMember)
        );
        assert_eq!(
            g.may_commit("a", &[0], i64::from(SESSION) + 3),
            Err(GroupError::UnknownMember)
        );
    }

    #[test]
    fn leaving_frees_partitions_at_once_and_commits_outside_membership_need_an_empty_group() {
        let mut g = Group::new("t", 4, 100);
        join(&mut g, "a", 0);
        join(&mut g, "b", 0);
        let mut leave = hb("a", &[], 1);
        leave.leave = true;
        g.heartbeat(&leave, String::new).unwrap();
        assert_eq!(
            g.heartbeat(&hb("b", &[], 2), String::new).unwrap().assigned,
            vec![0, 1, 2, 3]
        );
        assert_eq!(g.may_commit("", &[0], 3), Err(GroupError::HasMembers));
        let mut leave = hb("b", &[0, 1, 2, 3], 4);
        leave.leave = true;
        g.heartbeat(&leave, String::new).unwrap();
        assert!(g.is_empty());
        assert_eq!(g.may_commit("", &[0, 1], 5), Ok(vec![true, true]));
    }

    #[test]
    fn one_topic_per_group_and_a_member_cap() {
        let mut g = Group::new("t", 4, 1);
        join(&mut g, "a", 0);
        let mut other = hb("", &[], 1);
        other.topic = "u";
        assert_eq!(
            g.heartbeat(&other, || "x".into()),
            Err(GroupError::OtherTopic("t".into()))
        );
        assert_eq!(
            g.heartbeat(&hb("", &[], 1), || "b".into()),
            Err(GroupError::Full(1))
        );
    }

    #[derive(Debug, Clone)]
    enum Step {
        Join,
        Beat(usize),
        Leave(usize),
        Wait(u32),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            Just(Step::Join),
            (0usize..6).prop_map(Step::Beat),
            (0usize..6).prop_map(Step::Beat),
            (0usize..6).prop_map(Step::Leave),
            (0u32..15_000).prop_map(Step::Wait),
        ]
    }

    proptest! {
        /// Members that follow the protocol (hold what they are granted,
        /// drop what is not) never hold a partition together, and once
        /// things settle every partition is held.
        #[test]
        fn no_partition_is_ever_held_by_two_members(steps in proptest::collection::vec(step(), 1..80)) {
            let mut g = Group::new("t", 5, 100);
            let mut now = 0i64;
            let mut next_id = 0;
            // What each live member believes it holds.
            let mut held: BTreeMap<String, Vec<u32>> = BTreeMap::new();
            for s in steps {
                match s {
                    Step::Join => {
                        let mut beat = hb("", &[], now);
                        beat.partitions = 5;
                        let id = format!("m{next_id}");
                        next_id += 1;
                        let r = g.heartbeat(&beat, || id.clone()).unwrap();
                        held.insert(r.member_id, r.assigned);
                    }
                    Step::Beat(i) | Step::Leave(i) => {
                        let Some(id) = held.keys().nth(i).cloned() else { continue };
                        let owned = held[&id].clone();
                        let mut beat = hb(&id, &owned, now);
                        beat.partitions = 5;
                        beat.leave = matches!(s, Step::Leave(_));
                        match g.heartbeat(&beat, String::new) {
                            Ok(r) if !beat.leave => { held.insert(id, r.assigned); }
                            _ => { held.remove(&id); }
                        }
                    }
                    Step::Wait(ms) => now += i64::from(ms),
                }
                // Members whose session ended are gone (a zombie would be
                // fenced from committing).
                held.retain(|id, _| g.members.contains_key(id));
                let mut seen = BTreeSet::new();
                for ps in held.values() {
                    for p in ps {
                        prop_assert!(seen.insert(*p), "partition {} held twice: {:?}", p, held);
                    }
                }
            }
            // Settle: everyone heartbeats three times at the same instant
            // (a hand-over takes the old holder two heartbeats, learning
            // and then reporting that it let go, and the new one a third).
            for _ in 0..3 {
                for id in held.keys().cloned().collect::<Vec<_>>() {
                    let owned = held[&id].clone();
                    let mut beat = hb(&id, &owned, now);
                    beat.partitions = 5;
                    // A member whose session ran out by now is gone.
                    match g.heartbeat(&beat, String::new) {
                        Ok(r) => { held.insert(id, r.assigned); }
                        Err(_) => { held.remove(&id); }
                    }
                }
            }
            if !held.is_empty() {
                let all: BTreeSet<u32> = held.values().flatten().copied().collect();
                prop_assert_eq!(all.len(), 5);
            }
        }
    }
}
