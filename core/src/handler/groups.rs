//! Consumer group requests: the heartbeat goes to the group's coordinator;
//! commits are checked there, then journaled on each partition's shard;
//! fetches of committed offsets go to the partitions' shards.

use bytes::Bytes;
use futures::future::join_all;
use tidegate_proto::protocol::{
    CommitOffsetsRequest, CommittedOffset, ErrorCode, FetchOffsetsRequest, GroupDescription,
    GroupHeartbeatRequest, GroupHeartbeatResponse, GroupSummary, MemberInfo, Response,
};

use super::{encode, failure_of};
use crate::{
    router::Router,
    shard::{Failure, Op, OpResult},
};

pub(super) async fn heartbeat(
    router: &Router,
    h: GroupHeartbeatRequest<'_>,
) -> Result<Vec<Bytes>, Failure> {
    let meta = router.shard.topic(h.topic)?;
    let op = Op::GroupHeartbeat {
        group: h.group.to_owned(),
        topic: meta.name.clone(),
        partitions: meta.partitions,
        member_id: h.member_id.to_owned(),
        owned: h.owned,
        session_timeout_ms: h.session_timeout_ms,
        leave: h.leave,
    };
    match router.call(router.shard.coordinator(h.group), op).await {
        OpResult::Heartbeat(reply) => {
            Ok(encode(&Response::GroupHeartbeat(GroupHeartbeatResponse {
                member_id: &reply.member_id,
                generation: reply.generation,
                assigned: reply.assigned,
                heartbeat_interval_ms: reply.heartbeat_interval_ms,
            })))
        }
        other => Err(failure_of(other)),
    }
}

pub(super) async fn commit(
    router: &Router,
    c: CommitOffsetsRequest<'_>,
) -> Result<Vec<Bytes>, Failure> {
    let shard = &router.shard;
    let meta = shard.topic(c.topic)?;
    let partitions: Vec<u32> = c.offsets.iter().map(|o| o.partition).collect();
    let op = Op::MayCommit {
        group: c.group.to_owned(),
        member_id: c.member_id.to_owned(),
        topic: meta.name.clone(),
        partitions: partitions.clone(),
    };
    let allowed = match router.call(shard.coordinator(c.group), op).await {
        OpResult::MayCommit(allowed) => allowed,
        other => return Err(failure_of(other)),
    };
    let commits = c.offsets.iter().zip(allowed).map(|(o, allowed)| {
        let meta = &meta;
        async move {
            if o.partition >= meta.partitions {
                return (o.partition, ErrorCode::UnknownPartition);
            }
            if !allowed {
                return (o.partition, ErrorCode::NotAssigned);
            }
            let op = Op::CommitOffset {
                topic: meta.name.clone(),
                partition: o.partition,
                group: c.group.to_owned(),
                offset: o.offset,
                metadata: o.metadata.to_vec(),
            };
            match router.call(shard.owner(&meta.name, o.partition), op).await {
                OpResult::Done => (o.partition, ErrorCode::Ok),
                other => {
                    let f = failure_of(other);
                    tracing::debug!(group = c.group, partition = o.partition, error = %f.message, "commit failed");
                    (o.partition, f.code)
                }
            }
        }
    });
    let results = join_all(commits).await;
    Ok(encode(&Response::CommitOffsets(results)))
}

pub(super) async fn fetch(
    router: &Router,
    f: FetchOffsetsRequest<'_>,
) -> Result<Vec<Bytes>, Failure> {
    let shard = &router.shard;
    let meta = shard.topic(f.topic)?;
    let partitions: Vec<u32> = if f.partitions.is_empty() {
        (0..meta.partitions).collect()
    } else {
        f.partitions
    };
    if let Some(p) = partitions.iter().find(|p| **p >= meta.partitions) {
        return Err(Failure::new(
            ErrorCode::UnknownPartition,
            format!("topic {:?} has no partition {p}", meta.name),
        ));
    }
    let fetches = partitions.iter().map(|&partition| {
        let op = Op::FetchOffset {
            topic: meta.name.clone(),
            partition,
            group: f.group.to_owned(),
        };
        router.call(shard.owner(&meta.name, partition), op)
    });
    let mut committed = Vec::with_capacity(partitions.len());
    for (partition, result) in partitions.iter().zip(join_all(fetches).await) {
        match result {
            OpResult::Committed(c) => committed.push((*partition, c)),
            other => return Err(failure_of(other)),
        }
    }
    let offsets: Vec<CommittedOffset<'_>> = committed
        .iter()
        .map(|(partition, c)| CommittedOffset {
            partition: *partition,
            offset: c.as_ref().map(|(o, _)| *o),
            metadata: c.as_ref().map_or(&[][..], |(_, m)| m.as_slice()),
        })
        .collect();
    Ok(encode(&Response::FetchOffsets(offsets)))
}

pub(super) async fn describe(router: &Router, group: &str) -> Result<Vec<Bytes>, Failure> {
    let op = Op::DescribeGroup {
        group: group.to_owned(),
    };
    let state = match router.call(router.shard.coordinator(group), op).await {
        OpResult::Group(state) => state,
        other => return Err(failure_of(other)),
    };
    let description = match &state {
        Some(s) => GroupDescription {
            topic: &s.topic,
            generation: s.generation,
            members: s
                .members
                .iter()
                .map(|(id, partitions)| MemberInfo {
                    member_id: id,
                    partitions: partitions.clone(),
                })
                .collect(),
        },
        None => GroupDescription {
            topic: "",
            generation: 0,
            members: Vec::new(),
        },
    };
    Ok(encode(&Response::DescribeGroup(description)))
}

/// Every shard's groups with members; only those whose topic the
/// principal `sees` (like ListTopics).
pub(super) async fn list(
    router: &Router,
    sees: impl Fn(&str) -> bool,
) -> Result<Vec<Bytes>, Failure> {
    let shards = router.shard.shards.get();
    let lists = join_all((0..shards).map(|to| router.call(to, Op::ListGroups))).await;
    let mut all = Vec::new();
    for result in lists {
        match result {
            OpResult::Groups(groups) => all.extend(groups),
            other => return Err(failure_of(other)),
        }
    }
    all.sort();
    let groups: Vec<GroupSummary<'_>> = all
        .iter()
        .filter(|(_, topic, _)| sees(topic))
        .map(|(group, topic, members)| GroupSummary {
            group,
            topic,
            members: *members,
        })
        .collect();
    Ok(encode(&Response::ListGroups(groups)))
}
