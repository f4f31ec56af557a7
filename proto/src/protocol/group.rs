//! Consumer group requests and responses: GroupHeartbeat (join, stay,
//! leave; the server assigns partitions), CommitOffsets and FetchOffsets
//! (docs/PROTOCOL.md, docs/SEMANTICS.md §4).

use super::error_code::ErrorCode;
use super::limits::{check_partition, check_range, validate_topic_name, MAX_PARTITIONS};
use super::wire::{len_u32, put_bytes16, put_opt_u64, put_u16, put_u32, put_u64, put_u8, Reader};
use super::ProtocolError;

/// Longest consumer group name, in bytes of UTF-8 (at least 1).
pub const MAX_GROUP_NAME_BYTES: usize = 255;
/// Longest member id the server hands out, in bytes.
pub const MAX_MEMBER_ID_BYTES: usize = 64;
/// Longest metadata a committed offset carries.
pub const MAX_COMMIT_METADATA_BYTES: usize = 4096;
/// Shortest session timeout a member may ask for.
pub const MIN_SESSION_TIMEOUT_MS: u32 = 1_000;
/// Longest session timeout a member may ask for.
pub const MAX_SESSION_TIMEOUT_MS: u32 = 300_000;

/// GroupHeartbeat: join a group (empty `member_id`), report what the member
/// holds and learn what it should hold, or leave.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupHeartbeatRequest<'a> {
    /// The group.
    pub group: &'a str,
    /// The topic the member consumes (every member of a group the same).
    pub topic: &'a str,
    /// The id the server gave the member; empty to join.
    pub member_id: &'a str,
    /// Partitions the member holds now (consumes from).
    pub owned: Vec<u32>,
    /// The member is gone when no heartbeat came for this long,
    /// `MIN_SESSION_TIMEOUT_MS..=MAX_SESSION_TIMEOUT_MS`.
    pub session_timeout_ms: u32,
    /// Leave the group (its partitions go to the others at once).
    pub leave: bool,
}

/// The answer to a GroupHeartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupHeartbeatResponse<'a> {
    /// The member's id (new after a join).
    pub member_id: &'a str,
    /// The group's generation: bumped by every change of membership.
    pub generation: u64,
    /// The partitions the member should hold now. Partitions it holds and
    /// that are not listed were taken away: it stops consuming them
    /// (committing first) and no longer reports them.
    pub assigned: Vec<u32>,
    /// When to send the next heartbeat.
    pub heartbeat_interval_ms: u32,
}

/// One offset to commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OffsetCommit<'a> {
    /// The partition.
    pub partition: u32,
    /// The next offset the group will consume from it.
    pub offset: u64,
    /// Free-form, at most [`MAX_COMMIT_METADATA_BYTES`].
    pub metadata: &'a [u8],
}

/// CommitOffsets: store a group's positions, durably.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CommitOffsetsRequest<'a> {
    /// The group.
    pub group: &'a str,
    /// The committing member; empty for a commit outside membership
    /// (allowed only while the group has no members, e.g. to reset it).
    pub member_id: &'a str,
    /// The topic.
    pub topic: &'a str,
    /// The offsets, at most one per partition, at most [`MAX_PARTITIONS`].
    pub offsets: Vec<OffsetCommit<'a>>,
}

/// A committed offset, as FetchOffsets returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CommittedOffset<'a> {
    /// The partition.
    pub partition: u32,
    /// The committed offset; `None` when the group never committed one.
    pub offset: Option<u64>,
    /// Its metadata.
    pub metadata: &'a [u8],
}

/// FetchOffsets: a group's committed offsets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FetchOffsetsRequest<'a> {
    /// The group.
    pub group: &'a str,
    /// The topic.
    pub topic: &'a str,
    /// The partitions; empty for all of the topic's.
    pub partitions: Vec<u32>,
}

/// Checks a group name: 1..=255 bytes.
pub fn validate_group_name(group: &str) -> Result<(), ProtocolError> {
    check_range(
        "group name",
        group.len() as u64,
        1,
        MAX_GROUP_NAME_BYTES as u64,
    )
}

/// The group, topic and member id fields a member's request carries.
fn check_member(group: &str, topic: &str, member_id: &str) -> Result<(), ProtocolError> {
    validate_group_name(group)?;
    validate_topic_name(topic)?;
    check_range(
        "member id",
        member_id.len() as u64,
        0,
        MAX_MEMBER_ID_BYTES as u64,
    )
}

fn check_unique_partitions(partitions: impl Iterator<Item = u32>) -> Result<(), ProtocolError> {
    let mut seen = std::collections::BTreeSet::new();
    for p in partitions {
        check_partition(p)?;
        if !seen.insert(p) {
            return Err(ProtocolError::InvalidValue {
                field: "partition",
                reason: "listed twice",
            });
        }
    }
    Ok(())
}

fn read_partitions(r: &mut Reader<'_>, field: &'static str) -> Result<Vec<u32>, ProtocolError> {
    let n = r.count(field, MAX_PARTITIONS, 4)?;
    (0..n).map(|_| r.u32(field)).collect()
}

fn put_partitions(out: &mut Vec<u8>, partitions: &[u32]) {
    put_u32(out, len_u32(partitions.len()));
    for p in partitions {
        put_u32(out, *p);
    }
}

impl<'a> GroupHeartbeatRequest<'a> {
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        put_bytes16(out, self.group.as_bytes());
        put_bytes16(out, self.topic.as_bytes());
        put_bytes16(out, self.member_id.as_bytes());
        put_partitions(out, &self.owned);
        put_u32(out, self.session_timeout_ms);
        put_u8(out, u8::from(self.leave));
    }

    pub(crate) fn read(r: &mut Reader<'a>) -> Result<Self, ProtocolError> {
        let request = Self {
            group: r.str16("group name", MAX_GROUP_NAME_BYTES)?,
            topic: r.topic("topic name")?,
            member_id: r.str16("member id", MAX_MEMBER_ID_BYTES)?,
            owned: read_partitions(r, "owned")?,
            session_timeout_ms: r.u32("session_timeout_ms")?,
            leave: match r.u8("leave")? {
                0 => false,
                1 => true,
                tag => {
                    return Err(ProtocolError::InvalidTag {
                        field: "leave",
                        tag,
                    })
                }
            },
        };
        request.validate()?;
        Ok(request)
    }

    pub(crate) fn validate(&self) -> Result<(), ProtocolError> {
        check_member(self.group, self.topic, self.member_id)?;
        check_unique_partitions(self.owned.iter().copied())?;
        check_range(
            "session_timeout_ms",
            self.session_timeout_ms.into(),
            MIN_SESSION_TIMEOUT_MS.into(),
            MAX_SESSION_TIMEOUT_MS.into(),
        )
    }
}

impl<'a> GroupHeartbeatResponse<'a> {
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        put_bytes16(out, self.member_id.as_bytes());
        put_u64(out, self.generation);
        put_partitions(out, &self.assigned);
        put_u32(out, self.heartbeat_interval_ms);
    }

    pub(crate) fn read(r: &mut Reader<'a>) -> Result<Self, ProtocolError> {
        let response = Self {
            member_id: r.str16("member id", MAX_MEMBER_ID_BYTES)?,
            generation: r.u64("generation")?,
            assigned: read_partitions(r, "assigned")?,
            heartbeat_interval_ms: r.u32("heartbeat_interval_ms")?,
        };
        check_unique_partitions(response.assigned.iter().copied())?;
        Ok(response)
    }
}

impl<'a> CommitOffsetsRequest<'a> {
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        put_bytes16(out, self.group.as_bytes());
        put_bytes16(out, self.member_id.as_bytes());
        put_bytes16(out, self.topic.as_bytes());
        put_u32(out, len_u32(self.offsets.len()));
        for o in &self.offsets {
            put_u32(out, o.partition);
            put_u64(out, o.offset);
            put_bytes16(out, o.metadata);
        }
    }

    pub(crate) fn read(r: &mut Reader<'a>) -> Result<Self, ProtocolError> {
        let group = r.str16("group name", MAX_GROUP_NAME_BYTES)?;
        let member_id = r.str16("member id", MAX_MEMBER_ID_BYTES)?;
        let topic = r.topic("topic name")?;
        let n = r.count("offsets", MAX_PARTITIONS, 14)?;
        let mut offsets = Vec::with_capacity(n);
        for _ in 0..n {
            offsets.push(OffsetCommit {
                partition: r.u32("partition")?,
                offset: r.u64("offset")?,
                metadata: r.bytes16("metadata")?,
            });
        }
        let request = Self {
            group,
            member_id,
            topic,
            offsets,
        };
        request.validate()?;
        Ok(request)
    }

    pub(crate) fn validate(&self) -> Result<(), ProtocolError> {
        check_member(self.group, self.topic, self.member_id)?;
        if self.offsets.is_empty() {
            return Err(ProtocolError::InvalidValue {
                field: "offsets",
                reason: "empty",
            });
        }
        for o in &self.offsets {
            check_range(
                "metadata",
                o.metadata.len() as u64,
                0,
                MAX_COMMIT_METADATA_BYTES as u64,
            )?;
        }
        check_unique_partitions(self.offsets.iter().map(|o| o.partition))
    }
}

impl<'a> FetchOffsetsRequest<'a> {
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        put_bytes16(out, self.group.as_bytes());
        put_bytes16(out, self.topic.as_bytes());
        put_partitions(out, &self.partitions);
    }

    pub(crate) fn read(r: &mut Reader<'a>) -> Result<Self, ProtocolError> {
        let request = Self {
            group: r.str16("group name", MAX_GROUP_NAME_BYTES)?,
            topic: r.topic("topic name")?,
            partitions: read_partitions(r, "partitions")?,
        };
        request.validate()?;
        Ok(request)
    }

    pub(crate) fn validate(&self) -> Result<(), ProtocolError> {
        validate_group_name(self.group)?;
        validate_topic_name(self.topic)?;
        check_unique_partitions(self.partitions.iter().copied())
    }
}

/// Writes CommitOffsets results: `(partition, code)` per offset.
pub(crate) fn write_commit_results(out: &mut Vec<u8>, results: &[(u32, ErrorCode)]) {
    put_u32(out, len_u32(results.len()));
    for (partition, code) in results {
        put_u32(out, *partition);
        put_u16(out, code.as_u16());
    }
}

pub(crate) fn read_commit_results(
    r: &mut Reader<'_>,
) -> Result<Vec<(u32, ErrorCode)>, ProtocolError> {
    let n = r.count("results", MAX_PARTITIONS, 6)?;
    let mut results = Vec::with_capacity(n);
    for _ in 0..n {
        let partition = r.u32("partition")?;
        check_partition(partition)?;
        results.push((partition, ErrorCode::from_u16(r.u16("error code")?)));
    }
    Ok(results)
}

pub(crate) fn write_committed(out: &mut Vec<u8>, offsets: &[CommittedOffset<'_>]) {
    put_u32(out, len_u32(offsets.len()));
    for o in offsets {
        put_u32(out, o.partition);
        put_opt_u64(out, o.offset);
        put_bytes16(out, o.metadata);
    }
}

pub(crate) fn read_committed<'a>(
    r: &mut Reader<'a>,
) -> Result<Vec<CommittedOffset<'a>>, ProtocolError> {
    let n = r.count("offsets", MAX_PARTITIONS, 7)?;
    let mut offsets = Vec::with_capacity(n);
    for _ in 0..n {
        let partition = r.u32("partition")?;
        check_partition(partition)?;
        let offset = r.opt_u64("offset")?;
        let metadata = r.bytes16("metadata")?;
        check_range(
            "metadata",
            metadata.len() as u64,
            0,
            MAX_COMMIT_METADATA_BYTES as u64,
        )?;
        offsets.push(CommittedOffset {
            partition,
            offset,
            metadata,
        });
    }
    Ok(offsets)
}

/// Most groups a ListGroups response carries.
pub const MAX_LISTED_GROUPS: u32 = 65_536;
/// Most members a DescribeGroup response carries.
pub const MAX_DESCRIBED_MEMBERS: u32 = 65_536;

/// A group with members, as ListGroups returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GroupSummary<'a> {
    /// The group.
    pub group: &'a str,
    /// The topic its members consume.
    pub topic: &'a str,
    /// How many members it has.
    pub members: u32,
}

/// A member and the partitions it holds, as DescribeGroup returns it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MemberInfo<'a> {
    /// The member's id.
    pub member_id: &'a str,
    /// The partitions granted to it.
    pub partitions: Vec<u32>,
}

/// DescribeGroup's answer: the group's members now (none when it has
/// none; its committed offsets are FetchOffsets').
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupDescription<'a> {
    /// The topic the members consume; empty without members.
    pub topic: &'a str,
    /// The generation; 0 without members.
    pub generation: u64,
    /// The members.
    pub members: Vec<MemberInfo<'a>>,
}

pub(crate) fn write_group_list(out: &mut Vec<u8>, groups: &[GroupSummary<'_>]) {
    put_u32(out, len_u32(groups.len()));
    for g in groups {
        put_bytes16(out, g.group.as_bytes());
        put_bytes16(out, g.topic.as_bytes());
        put_u32(out, g.members);
    }
}

pub(crate) fn read_group_list<'a>(
    r: &mut Reader<'a>,
) -> Result<Vec<GroupSummary<'a>>, ProtocolError> {
    let n = r.count("groups", MAX_LISTED_GROUPS, 8)?;
    let mut groups = Vec::with_capacity(n);
    for _ in 0..n {
        let group = r.str16("group name", MAX_GROUP_NAME_BYTES)?;
        validate_group_name(group)?;
        groups.push(GroupSummary {
            group,
            topic: r.topic("topic name")?,
            members: r.u32("members")?,
        });
    }
    Ok(groups)
}

impl<'a> GroupDescription<'a> {
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        put_bytes16(out, self.topic.as_bytes());
        put_u64(out, self.generation);
        put_u32(out, len_u32(self.members.len()));
        for m in &self.members {
            put_bytes16(out, m.member_id.as_bytes());
            put_partitions(out, &m.partitions);
        }
    }

    pub(crate) fn read(r: &mut Reader<'a>) -> Result<Self, ProtocolError> {
        let topic = r.str16("topic name", super::limits::MAX_TOPIC_NAME_BYTES)?;
        if !topic.is_empty() {
            validate_topic_name(topic)?;
        }
        let generation = r.u64("generation")?;
        let n = r.count("members", MAX_DESCRIBED_MEMBERS, 6)?;
        let mut members = Vec::with_capacity(n);
        for _ in 0..n {
            let member_id = r.str16("member id", MAX_MEMBER_ID_BYTES)?;
            let partitions = read_partitions(r, "partitions")?;
            check_unique_partitions(partitions.iter().copied())?;
            members.push(MemberInfo {
                member_id,
                partitions,
            });
        }
        Ok(Self {
            topic,
            generation,
            members,
        })
    }
}
