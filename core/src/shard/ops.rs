//! The operations a shard runs on the partitions it owns, and the messages
//! that carry them from another shard (`Op` in, `OpResult` back).
//!
//! A request for a partition this shard owns calls these directly with
//! borrowed bytes; one for another shard's partition crosses the mesh as an
//! `Op` with owned bytes and runs the same functions there.

use std::{rc::Rc, time::Duration};

use futures::future::{join_all, select, Either};
use tidegate_proto::{
    batch::BatchIter,
    protocol::{AckLevel, ErrorCode, OffsetSpec, PartitionInfo, MAX_BATCHES_PER_PRODUCE},
};
use tidegate_queue::{cursors::CursorError, Ack, Log};

use super::{Failure, Shard};
use crate::catalog::{Catalog, TopicSettings};

/// Work for the shard that owns the partition (or, for admin, shard 0).
#[derive(Debug)]
pub(crate) enum Op {
    Produce {
        topic: String,
        partition: u32,
        ack: AckLevel,
        batches: Vec<u8>,
    },
    Fetch {
        topic: String,
        partition: u32,
        offset: u64,
        max_bytes: u32,
        max_wait_ms: u32,
    },
    ListOffsets {
        topic: String,
        partition: u32,
        spec: OffsetSpec,
    },
    Describe {
        topic: String,
        partition: u32,
    },
    CreateTopic {
        name: String,
        partitions: u32,
        settings: TopicSettings,
    },
    DeleteTopic {
        name: String,
    },
    /// Shard 0 to the others: the catalog changed; open and close
    /// partitions to match, then answer.
    ApplyCatalog(Vec<u8>),
    /// Shard 0: a producer identity (an empty name for an unnamed one).
    InitProducer {
        name: String,
    },
    /// The group's coordinator: a member's heartbeat.
    GroupHeartbeat {
        group: String,
        topic: String,
        partitions: u32,
        member_id: String,
        owned: Vec<u32>,
        session_timeout_ms: u32,
        leave: bool,
    },
    /// The group's coordinator: may `member_id` commit these partitions?
    MayCommit {
        group: String,
        member_id: String,
        topic: String,
        partitions: Vec<u32>,
    },
    /// The partition's owner: journal a group's offset.
    CommitOffset {
        topic: String,
        partition: u32,
        group: String,
        offset: u64,
        metadata: Vec<u8>,
    },
    /// The group's coordinator: its members.
    DescribeGroup {
        group: String,
    },
    /// Every shard: the groups it coordinates that have members.
    ListGroups,
    /// The group's coordinator: since when the group has had no members
    /// (`None`: it has some now).
    GroupEmptySince {
        group: String,
    },
    /// The partition's owner: a group's committed offset.
    FetchOffset {
        topic: String,
        partition: u32,
        group: String,
    },
    /// Shard 0: add a subscription to the catalog (its id and creation
    /// time are given there).
    CreateSubscription(Box<crate::catalog::SubscriptionMeta>),
    /// Shard 0: remove a subscription from the catalog.
    DeleteSubscription {
        name: String,
    },
    /// The partition's owner: open the subscription's window, which fixes
    /// its start durably.
    SubOpen {
        sub: String,
        partition: u32,
    },
    /// The partition's owner: lease messages.
    SubTake {
        sub: String,
        partition: u32,
        max_messages: u32,
        max_bytes: u32,
    },
    /// The partition's owner: wait until something may be deliverable.
    SubWait {
        sub: String,
        partition: u32,
        wait_ms: u32,
    },
    /// The partition's owner: ack (`deadline_ms` `None`) or change
    /// deadlines.
    SubAck {
        sub: String,
        partition: u32,
        ids: Vec<crate::subscription::AckId>,
        deadline_ms: Option<u32>,
    },
    /// The partition's owner: the window's state.
    SubDescribe {
        sub: String,
        partition: u32,
    },
}

/// What an `Op` produced.
#[derive(Debug)]
pub(crate) enum OpResult {
    Produced(Vec<Result<u64, ErrorCode>>),
    Fetched {
        high_watermark: u64,
        batches: bytes::Bytes,
    },
    Offset(u64),
    Producer {
        producer_id: i64,
        epoch: i16,
    },
    Heartbeat(crate::groups::Reply),
    MayCommit(Vec<bool>),
    Committed(Option<(u64, Vec<u8>)>),
    Group(Option<crate::groups::GroupState>),
    Groups(Vec<(String, String, u32)>),
    EmptySince(Option<i64>),
    Described(PartitionInfo),
    Pulled(Vec<crate::subscription::served::Pulled>),
    AckResults(Vec<ErrorCode>),
    SubPartition(tidegate_proto::protocol::SubscriptionPartition),
    Done,
    Failed(Failure),
}

/// Batches fetched from a local log: the stored bytes, not copied.
pub(crate) struct Fetched {
    pub(crate) high_watermark: u64,
    pub(crate) batches: tidegate_queue::ReadBatches,
}

impl Shard {
    /// Appends each batch of a produce request, in order, and answers per
    /// batch. All are queued before any is waited for, so one request's
    /// batches share a group commit.
    pub(crate) async fn produce(
        &self,
        topic: &str,
        partition: u32,
        ack: AckLevel,
        batches: &[u8],
    ) -> Result<Vec<Result<u64, ErrorCode>>, Failure> {
        let meta = self.topic(topic)?;
        let log = self.log(&meta, partition)?;
        let ack = match ack {
            AckLevel::None => Ack::None,
            AckLevel::Written => Ack::Written,
            AckLevel::Durable => Ack::Durable,
        };
        let mut views = Vec::new();
        let mut tail_error = None;
        for batch in BatchIter::new(batches) {
            match batch {
                Ok(view) => views.push(view),
                Err(e) => {
                    tracing::debug!(error = %e, "produce with an invalid batch");
                    tail_error = Some(ErrorCode::CorruptBatch);
                    break;
                }
            }
        }
        if views.len() > MAX_BATCHES_PER_PRODUCE as usize {
            return Err(Failure::new(
                ErrorCode::InvalidRequest,
                format!(
                    "{} batches in one produce; at most {MAX_BATCHES_PER_PRODUCE}",
                    views.len()
                ),
            ));
        }
        let appends = views.iter().map(|view| {
            let log = log.clone();
            async move {
                log.append(view, ack)
                    .await
                    .map(|a| a.base_offset)
                    .map_err(|e| Failure::from(&e).code)
            }
        });
        let mut results = join_all(appends).await;
        results.extend(tail_error.map(Err));
        Ok(results)
    }

    /// Reads from `offset`, waiting up to `max_wait_ms` for data at the
    /// high watermark (long poll).
    pub(crate) async fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_bytes: u32,
        max_wait_ms: u32,
    ) -> Result<Fetched, Failure> {
        let meta = self.topic(topic)?;
        let log = self.log(&meta, partition)?;
        let max_bytes = max_bytes as usize;
        let read = log.read(offset, max_bytes).await?;
        if !read.is_empty() || max_wait_ms == 0 {
            return Ok(Fetched {
                high_watermark: read.high_watermark,
                batches: read,
            });
        }
        let wait = Duration::from_millis(max_wait_ms.into());
        let stop = std::pin::pin!(self.stopped());
        let data = std::pin::pin!(wait_for_data(&log, offset, wait));
        let _ = select(data, stop).await;
        let read = log.read(offset, max_bytes).await?;
        Ok(Fetched {
            high_watermark: read.high_watermark,
            batches: read,
        })
    }

    pub(crate) async fn list_offsets(
        &self,
        topic: &str,
        partition: u32,
        spec: OffsetSpec,
    ) -> Result<u64, Failure> {
        let meta = self.topic(topic)?;
        let log = self.log(&meta, partition)?;
        let offsets = log.offsets();
        Ok(match spec {
            OffsetSpec::Earliest => offsets.earliest,
            OffsetSpec::Latest => offsets.latest,
            OffsetSpec::Timestamp(ts) => log
                .offset_for_timestamp(ts)
                .await?
                .unwrap_or(offsets.latest),
        })
    }

    /// Journals `group`'s offset in the partition's cursor journal,
    /// durably.
    pub(crate) async fn commit_offset(
        &self,
        topic: &str,
        partition: u32,
        group: &str,
        offset: u64,
        metadata: &[u8],
    ) -> Result<(), Failure> {
        let meta = self.topic(topic)?;
        self.log(&meta, partition)?;
        let journal = self
            .partitions
            .journal(&self.data_dir, &meta, partition, true)
            .await?
            .ok_or_else(|| Failure::new(ErrorCode::Internal, "journal not created"))?;
        journal
            .commit(group, offset, metadata, crate::router::now_ms())
            .await
            .map_err(|e| cursor_failure(&e))
    }

    /// `group`'s committed offset in the partition, with its metadata.
    pub(crate) async fn fetch_offset(
        &self,
        topic: &str,
        partition: u32,
        group: &str,
    ) -> Result<Option<(u64, Vec<u8>)>, Failure> {
        let meta = self.topic(topic)?;
        self.log(&meta, partition)?;
        let journal = self
            .partitions
            .journal(&self.data_dir, &meta, partition, false)
            .await?;
        Ok(journal
            .and_then(|j| j.committed(group))
            .map(|c| (c.offset, c.metadata)))
    }

    pub(crate) fn describe(&self, topic: &str, partition: u32) -> Result<PartitionInfo, Failure> {
        let meta = self.topic(topic)?;
        let offsets = self.log(&meta, partition)?.offsets();
        Ok(PartitionInfo {
            partition,
            earliest: offsets.earliest,
            latest: offsets.latest,
            durable: offsets.durable,
        })
    }

    /// Runs an `Op` that came from another shard.
    pub(crate) async fn execute(&self, op: Op) -> OpResult {
        let result = match op {
            Op::Produce {
                topic,
                partition,
                ack,
                batches,
            } => self
                .produce(&topic, partition, ack, &batches)
                .await
                .map(OpResult::Produced),
            Op::Fetch {
                topic,
                partition,
                offset,
                max_bytes,
                max_wait_ms,
            } => self
                .fetch(&topic, partition, offset, max_bytes, max_wait_ms)
                .await
                .map(|f| OpResult::Fetched {
                    high_watermark: f.high_watermark,
                    // Crossing to another thread: shared from the tail
                    // cache, or copied once from a disk read.
                    batches: f.batches.into_bytes(),
                }),
            Op::ListOffsets {
                topic,
                partition,
                spec,
            } => self
                .list_offsets(&topic, partition, spec)
                .await
                .map(OpResult::Offset),
            Op::Describe { topic, partition } => {
                self.describe(&topic, partition).map(OpResult::Described)
            }
            Op::ApplyCatalog(bytes) => match Catalog::from_bytes(&bytes) {
                Ok(catalog) => self
                    .apply_catalog(Rc::new(catalog))
                    .await
                    .map(|()| OpResult::Done),
                Err(e) => Err(Failure::from(e)),
            },
            Op::InitProducer { name } => self
                .producers
                .init(&name)
                .await
                .map(|(producer_id, epoch)| OpResult::Producer { producer_id, epoch }),
            Op::GroupHeartbeat {
                group,
                topic,
                partitions,
                member_id,
                owned,
                session_timeout_ms,
                leave,
            } => {
                let hb = crate::groups::Heartbeat {
                    member_id: &member_id,
                    topic: &topic,
                    partitions,
                    owned: &owned,
                    session_timeout_ms,
                    leave,
                    now_ms: crate::router::now_ms(),
                };
                self.groups.heartbeat(&group, &hb).map(OpResult::Heartbeat)
            }
            Op::MayCommit {
                group,
                member_id,
                topic,
                partitions,
            } => self
                .groups
                .may_commit(
                    &group,
                    &member_id,
                    &topic,
                    &partitions,
                    crate::router::now_ms(),
                )
                .map(OpResult::MayCommit),
            Op::CommitOffset {
                topic,
                partition,
                group,
                offset,
                metadata,
            } => self
                .commit_offset(&topic, partition, &group, offset, &metadata)
                .await
                .map(|()| OpResult::Done),
            Op::DescribeGroup { group } => Ok(OpResult::Group(
                self.groups.describe(&group, crate::router::now_ms()),
            )),
            Op::ListGroups => Ok(OpResult::Groups(self.groups.list(crate::router::now_ms()))),
            Op::GroupEmptySince { group } => Ok(OpResult::EmptySince(
                self.groups.empty_since(&group, crate::router::now_ms()),
            )),
            Op::FetchOffset {
                topic,
                partition,
                group,
            } => self
                .fetch_offset(&topic, partition, &group)
                .await
                .map(OpResult::Committed),
            Op::CreateTopic { .. }
            | Op::DeleteTopic { .. }
            | Op::CreateSubscription(_)
            | Op::DeleteSubscription { .. }
            | Op::SubOpen { .. }
            | Op::SubTake { .. }
            | Op::SubWait { .. }
            | Op::SubAck { .. }
            | Op::SubDescribe { .. } => Err(Failure::new(
                ErrorCode::Internal,
                "admin and subscription operations run through the router",
            )),
        };
        result.unwrap_or_else(OpResult::Failed)
    }
}

/// Waits until `log` has a record at `offset`, or `wait` has passed.
async fn wait_for_data(log: &Log, offset: u64, wait: Duration) {
    let data = std::pin::pin!(log.wait_for(offset));
    let timer = std::pin::pin!(glommio::timer::sleep(wait));
    match select(data, timer).await {
        Either::Left(_) | Either::Right(_) => {}
    }
}

/// The answer to a failed cursor journal operation.
pub(crate) fn cursor_failure(e: &CursorError) -> Failure {
    match e {
        CursorError::Log(e) => Failure::from(e),
        CursorError::Invalid(e) => Failure::new(ErrorCode::InvalidRequest, e.to_string()),
        // Not `busy`: waiting does not make room.
        CursorError::TooManyGroups { .. } | CursorError::TooManySubscriptions { .. } => {
            Failure::new(ErrorCode::InvalidRequest, e.to_string())
        }
    }
}
