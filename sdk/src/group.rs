//! Consumer groups: the members of a group share a topic's partitions, the
//! server assigns them and stores the group's committed offsets
//! (docs/SEMANTICS.md §4).
//!
//! [`GroupConsumer`] is a member: it heartbeats from inside
//! [`next`](GroupConsumer::next), reads the partitions it is given from the
//! group's committed offsets, commits its positions (every
//! [`GroupConfig::auto_commit`], on [`commit`](GroupConsumer::commit), and
//! before it gives a partition up), and leaves on
//! [`close`](GroupConsumer::close). Delivery is at least once: after a
//! crash or a rebalance a partition resumes at its last commit.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tidegate_proto::protocol::{
    CommitOffsetsRequest, FetchOffsetsRequest, GroupHeartbeatRequest, OffsetCommit, Request,
    Response,
};
use tokio::time::Instant;

use crate::client::{decode_response, unexpected, Client};
use crate::consumer::{ConsumedMessage, Consumer, ConsumerConfig, Start};
use crate::error::{Error, Result};
use crate::{ErrorCode, OffsetSpec};

/// Wait before a heartbeat that failed with a retriable error is sent again.
const HEARTBEAT_RETRY: Duration = Duration::from_millis(500);

/// A member's place in its group, from [`Client::group_heartbeat`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The member's id.
    pub member_id: String,
    /// The group's generation.
    pub generation: u64,
    /// The partitions the member should hold now.
    pub assigned: Vec<u32>,
    /// When to heartbeat next.
    pub heartbeat_interval: Duration,
}

/// A group's members, from [`Client::describe_group`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    /// The topic the members consume; empty without members.
    pub topic: String,
    /// The generation; 0 without members.
    pub generation: u64,
    /// `(member id, partitions granted to it)`.
    pub members: Vec<(String, Vec<u32>)>,
}

/// A group with members, from [`Client::list_groups`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// The group.
    pub group: String,
    /// The topic its members consume.
    pub topic: String,
    /// How many members it has.
    pub members: u32,
}

impl Client {
    /// The members `group` has now, and what they hold (its committed
    /// offsets are [`fetch_offsets`](Client::fetch_offsets)').
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRequest`] for a bad group name; the request's errors.
    pub async fn describe_group(&self, group: &str) -> Result<GroupInfo> {
        let request = Request::DescribeGroup { group };
        // `call` checks the request and authenticates again if it must.
        let frame = self.call(&request).await?;
        match decode_response(&frame)? {
            Response::DescribeGroup(d) => Ok(GroupInfo {
                topic: d.topic.to_owned(),
                generation: d.generation,
                members: d
                    .members
                    .into_iter()
                    .map(|m| (m.member_id.to_owned(), m.partitions))
                    .collect(),
            }),
            other => Err(unexpected("DescribeGroup", &other)),
        }
    }

    /// The groups that have members now (on every shard), by name.
    ///
    /// # Errors
    ///
    /// The request's errors.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        let request = Request::ListGroups;
        let frame = self.call(&request).await?;
        match decode_response(&frame)? {
            Response::ListGroups(groups) => Ok(groups
                .iter()
                .map(|g| GroupListing {
                    group: g.group.to_owned(),
                    topic: g.topic.to_owned(),
                    members: g.members,
                })
                .collect()),
            other => Err(unexpected("ListGroups", &other)),
        }
    }

    /// One heartbeat of a group member: joins when `member_id` is empty,
    /// reports the partitions it holds, and learns what it should hold.
    /// [`GroupConsumer`] does this itself.
    ///
    /// # Errors
    ///
    /// [`Error::Server`] with [`ErrorCode::UnknownMember`] when the group
    /// forgot the member (join again); [`Error::InvalidRequest`] for values
    /// the protocol refuses.
    pub async fn group_heartbeat(
        &self,
        group: &str,
        topic: &str,
        member_id: &str,
        owned: &[u32],
        session_timeout: Duration,
        leave: bool,
    ) -> Result<Membership> {
        let request = Request::GroupHeartbeat(GroupHeartbeatRequest {
            group,
            topic,
            member_id,
            owned: owned.to_vec(),
            session_timeout_ms: u32::try_from(session_timeout.as_millis()).unwrap_or(u32::MAX),
            leave,
        });
        // `call` checks the request and authenticates again if it must.
        let frame = self.call(&request).await?;
        match decode_response(&frame)? {
            Response::GroupHeartbeat(h) => Ok(Membership {
                member_id: h.member_id.to_owned(),
                generation: h.generation,
                assigned: h.assigned,
                heartbeat_interval: Duration::from_millis(h.heartbeat_interval_ms.into()),
            }),
            other => Err(unexpected("GroupHeartbeat", &other)),
        }
    }

    /// Commits `group`'s offsets of `topic` durably: `(partition, next
    /// offset to consume)`. `member_id` empty commits outside membership,
    /// which a group without members allows (to reset its offsets).
    /// Returns per partition whether it was committed.
    ///
    /// # Errors
    ///
    /// [`Error::Server`] with [`ErrorCode::UnknownMember`] for a member the
    /// group does not know; per partition, [`ErrorCode::NotAssigned`] for a
    /// partition the member does not hold.
    pub async fn commit_offsets(
        &self,
        group: &str,
        member_id: &str,
        topic: &str,
        offsets: &[(u32, u64)],
    ) -> Result<Vec<(u32, ErrorCode)>> {
        let request = Request::CommitOffsets(CommitOffsetsRequest {
            group,
            member_id,
            topic,
            offsets: offsets
                .iter()
                .map(|&(partition, offset)| OffsetCommit {
                    partition,
                    offset,
                    metadata: &[],
                })
                .collect(),
        });
        // `call` checks the request and authenticates again if it must.
        let frame = self.call(&request).await?;
        match decode_response(&frame)? {
            Response::CommitOffsets(results) => Ok(results),
            other => Err(unexpected("CommitOffsets", &other)),
        }
    }

    /// `group`'s committed offsets of `topic`: `(partition, offset)` for
    /// the partitions asked for (every partition for an empty list), `None`
    /// where it never committed.
    ///
    /// # Errors
    ///
    /// [`Error::Server`] with [`ErrorCode::UnknownTopic`] or
    /// [`ErrorCode::UnknownPartition`].
    pub async fn fetch_offsets(
        &self,
        group: &str,
        topic: &str,
        partitions: &[u32],
    ) -> Result<Vec<(u32, Option<u64>)>> {
        let request = Request::FetchOffsets(FetchOffsetsRequest {
            group,
            topic,
            partitions: partitions.to_vec(),
        });
        // `call` checks the request and authenticates again if it must.
        let frame = self.call(&request).await?;
        match decode_response(&frame)? {
            Response::FetchOffsets(offsets) => {
                Ok(offsets.iter().map(|o| (o.partition, o.offset)).collect())
            }
            other => Err(unexpected("FetchOffsets", &other)),
        }
    }
}

/// How a [`GroupConsumer`] joins, reads and commits.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tidegate_client::{GroupConfig, Start};
///
/// let config = GroupConfig::new("billing");
/// assert_eq!(config.session_timeout, Duration::from_secs(10));
/// assert_eq!(config.reset, Start::Latest);
/// assert_eq!(config.auto_commit, Some(Duration::from_secs(5)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// The group's name (1 to 255 bytes).
    pub group: String,
    /// The group forgets the member when it has not heartbeated for this
    /// long (1 s to 300 s; default 10 s). Call
    /// [`next`](GroupConsumer::next) more often than that: it heartbeats.
    pub session_timeout: Duration,
    /// Where to start in a partition the group never committed:
    /// [`Start::Earliest`] or [`Start::Latest`] (the default, as in
    /// Kafka); other values read as `Latest`.
    pub reset: Start,
    /// Commit the positions this often from inside `next` (default 5 s);
    /// `None` commits only on [`commit`](GroupConsumer::commit) and when a
    /// partition is given up.
    pub auto_commit: Option<Duration>,
    /// Fetch sizes and prefetch (its `start` and `partitions` are not used).
    pub consumer: ConsumerConfig,
}

impl GroupConfig {
    /// The defaults, for `group`.
    pub fn new(group: impl Into<String>) -> GroupConfig {
        GroupConfig {
            group: group.into(),
            session_timeout: Duration::from_secs(10),
            reset: Start::Latest,
            auto_commit: Some(Duration::from_secs(5)),
            consumer: ConsumerConfig::default(),
        }
    }
}

/// A member of a consumer group, reading the partitions the server gives
/// it. See the [module documentation](self).
///
/// # Example
///
/// ```no_run
/// use tidegate_client::{Client, GroupConfig, GroupConsumer};
///
/// # async fn run(client: Client) -> Result<(), tidegate_client::Error> {
/// let mut member = GroupConsumer::join(client, "orders", GroupConfig::new("billing")).await?;
/// while let Some(message) = member.next().await? {
///     println!("{}@{}", message.partition(), message.offset());
/// }
/// member.close().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct GroupConsumer {
    client: Client,
    topic: String,
    config: GroupConfig,
    member_id: String,
    generation: u64,
    /// Reads the partitions held now (`None` while there are none).
    consumer: Option<Consumer>,
    /// The partitions held, with where reading them started; where each
    /// is now is the consumer's `position` ([`Self::position`]).
    held: BTreeMap<u32, u64>,
    next_heartbeat: Instant,
    next_commit: Option<Instant>,
    /// Positions last committed, so unchanged ones are not sent again.
    committed: BTreeMap<u32, u64>,
}

impl GroupConsumer {
    /// Joins `config.group` as a member reading `topic`.
    ///
    /// # Errors
    ///
    /// Any error of the first heartbeat or of the offset lookups (an
    /// unknown topic, a group that reads another topic, a refused value).
    pub async fn join(client: Client, topic: &str, config: GroupConfig) -> Result<GroupConsumer> {
        let mut member = GroupConsumer {
            client,
            topic: topic.to_owned(),
            next_commit: config.auto_commit.map(|every| Instant::now() + every),
            config,
            member_id: String::new(),
            generation: 0,
            consumer: None,
            held: BTreeMap::new(),
            next_heartbeat: Instant::now(),
            committed: BTreeMap::new(),
        };
        member.heartbeat().await?;
        Ok(member)
    }

    /// The next message of a held partition; heartbeats and auto-commits
    /// on the way. Waits while there is none. `Ok(None)` only when every
    /// held partition's fetch loop stopped.
    ///
    /// Cancel-safe: dropping the future (a `select!`, a timeout) loses no
    /// message and leaves the member consistent; the next call goes on.
    ///
    /// # Errors
    ///
    /// A heartbeat, commit or fetch that failed for good.
    pub async fn next(&mut self) -> Result<Option<ConsumedMessage>> {
        loop {
            if Instant::now() >= self.next_heartbeat {
                if let Err(e) = self.heartbeat().await {
                    // A lost connection or a busy server: try again soon
                    // (the client reconnects); the session allows several.
                    if !e.is_retriable() {
                        return Err(e);
                    }
                    tracing::warn!(group = %self.config.group, "heartbeat failed, retrying: {e}");
                    self.next_heartbeat = Instant::now() + HEARTBEAT_RETRY;
                }
            }
            if self.next_commit.is_some_and(|at| Instant::now() >= at) {
                match self.commit().await {
                    Ok(()) => {}
                    // The group forgot this member (a restart, a missed
                    // session): rejoin at once; the partitions it held
                    // resume from their last commit wherever they go.
                    Err(e) if e.code() == Some(ErrorCode::UnknownMember) => {
                        tracing::info!(group = %self.config.group, "rejoining: {e}");
                        self.member_id.clear();
                        self.let_go_all();
                        self.next_heartbeat = Instant::now();
                    }
                    Err(e) if e.is_retriable() => {
                        tracing::warn!(group = %self.config.group, "auto-commit failed, retrying at the next: {e}");
                    }
                    Err(e) => return Err(e),
                }
            }
            let until = self
                .next_commit
                .map_or(self.next_heartbeat, |c| c.min(self.next_heartbeat));
            let Some(consumer) = self.consumer.as_mut() else {
                tokio::time::sleep_until(until).await;
                continue;
            };
            match tokio::time::timeout_at(until, consumer.next()).await {
                Err(_elapsed) => continue,
                Ok(Ok(Some(message))) => return Ok(Some(message)),
                Ok(other) => return other,
            }
        }
    }

    /// The partitions this member holds now, ascending.
    pub fn assignment(&self) -> Vec<u32> {
        self.held.keys().copied().collect()
    }

    /// The member's id in the group.
    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    /// The group's generation at the last heartbeat.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Commits the position of every held partition (the offset after the
    /// last message [`next`](Self::next) returned), durably.
    ///
    /// # Errors
    ///
    /// [`Error::Server`] with the first refusal ([`ErrorCode::NotAssigned`]
    /// when a partition was taken away meanwhile), or the request's error.
    pub async fn commit(&mut self) -> Result<()> {
        if let Some(every) = self.config.auto_commit {
            self.next_commit = Some(Instant::now() + every);
        }
        let partitions: Vec<u32> = self.held.keys().copied().collect();
        self.commit_partitions(&partitions).await
    }

    /// Commits, leaves the group (its partitions go to the others at once)
    /// and stops reading.
    ///
    /// # Errors
    ///
    /// The commit's or the leave's error; the member is gone either way.
    pub async fn close(mut self) -> Result<()> {
        let committed = self.commit().await;
        if let Some(consumer) = self.consumer.take() {
            consumer.close().await;
        }
        let left = self
            .client
            .group_heartbeat(
                &self.config.group,
                &self.topic,
                &self.member_id,
                &[],
                self.config.session_timeout,
                true,
            )
            .await;
        committed.and(left.map(|_| ()))
    }

    async fn commit_partitions(&mut self, partitions: &[u32]) -> Result<()> {
        let offsets: Vec<(u32, u64)> = partitions
            .iter()
            .filter_map(|p| Some((*p, self.position(*p)?)))
            .filter(|(p, o)| self.committed.get(p) != Some(o))
            .collect();
        if offsets.is_empty() || self.member_id.is_empty() {
            return Ok(());
        }
        let results = self
            .client
            .commit_offsets(&self.config.group, &self.member_id, &self.topic, &offsets)
            .await?;
        let mut refused = None;
        for ((partition, offset), (_, code)) in offsets.iter().zip(&results) {
            if code.is_ok() {
                self.committed.insert(*partition, *offset);
            } else if refused.is_none() {
                refused = Some(Error::Server {
                    code: *code,
                    message: format!("commit of partition {partition} refused"),
                });
            }
        }
        refused.map_or(Ok(()), Err)
    }

    /// One heartbeat; applies a new assignment: commits and lets go of what
    /// was taken away, then reads what was added from the group's offsets.
    async fn heartbeat(&mut self) -> Result<()> {
        let owned: Vec<u32> = self.held.keys().copied().collect();
        let reply = self
            .client
            .group_heartbeat(
                &self.config.group,
                &self.topic,
                &self.member_id,
                &owned,
                self.config.session_timeout,
                false,
            )
            .await;
        let membership = match reply {
            Ok(m) => m,
            Err(e) if e.code() == Some(ErrorCode::UnknownMember) && !self.member_id.is_empty() => {
                // Forgotten (a restart, or a missed session): hold nothing
                // and join again; uncommitted progress is read again by
                // whoever gets the partitions.
                tracing::info!(group = %self.config.group, "rejoining: {e}");
                self.member_id.clear();
                self.let_go_all();
                return Box::pin(self.heartbeat()).await;
            }
            Err(e) => return Err(e),
        };
        self.member_id = membership.member_id;
        self.generation = membership.generation;
        self.next_heartbeat = Instant::now() + membership.heartbeat_interval;
        let wanted: BTreeSet<u32> = membership.assigned.into_iter().collect();
        let had: BTreeSet<u32> = self.held.keys().copied().collect();
        if wanted == had {
            return Ok(());
        }
        let revoked: Vec<u32> = had.difference(&wanted).copied().collect();
        if !revoked.is_empty() {
            // Commit before letting go: the next holder starts there.
            if let Err(e) = self.commit_partitions(&revoked).await {
                tracing::warn!(group = %self.config.group, "commit of revoked partitions failed: {e}");
            }
        }
        let added: Vec<u32> = wanted.difference(&had).copied().collect();
        let mut positions: BTreeMap<u32, u64> = self
            .held
            .keys()
            .filter(|p| wanted.contains(p))
            .filter_map(|p| Some((*p, self.position(*p)?)))
            .collect();
        if !added.is_empty() {
            for (partition, offset) in self.start_positions(&added).await? {
                positions.insert(partition, offset);
                self.committed.remove(&partition);
            }
        }
        // From here on nothing awaits, so a cancelled `next` never leaves
        // the member between two assignments. Dropping the old consumer
        // stops its fetch loops.
        drop(self.consumer.take());
        for p in &revoked {
            self.committed.remove(p);
        }
        self.held = positions;
        let list: Vec<(u32, u64)> = self.held.iter().map(|(p, o)| (*p, *o)).collect();
        self.consumer = (!list.is_empty()).then(|| {
            Consumer::at_positions(
                self.client.clone(),
                &self.topic,
                &list,
                &self.config.consumer,
            )
        });
        // Tell the group at once what we hold now, so partitions we let go
        // reach their next holder without waiting a heartbeat interval.
        if !revoked.is_empty() {
            self.next_heartbeat = Instant::now();
        }
        Ok(())
    }

    /// Where to read each of `partitions`: the group's committed offset, or
    /// the reset position.
    async fn start_positions(&self, partitions: &[u32]) -> Result<Vec<(u32, u64)>> {
        let committed = self
            .client
            .fetch_offsets(&self.config.group, &self.topic, partitions)
            .await?;
        let bounds = self.client.describe_topic(&self.topic).await?;
        let mut out = Vec::with_capacity(committed.len());
        for (partition, offset) in committed {
            let info = bounds.partitions.iter().find(|p| p.partition == partition);
            let offset = match (offset, info) {
                // A commit outside the log (retention removed it, or a
                // crash cut an unsynced tail) would stop the partition
                // with offset_out_of_range: start at the nearest end.
                (Some(offset), Some(info)) => offset.clamp(info.earliest, info.latest),
                (Some(offset), None) => offset,
                (None, _) => {
                    let spec = match self.config.reset {
                        Start::Earliest => OffsetSpec::Earliest,
                        _ => OffsetSpec::Latest,
                    };
                    self.client
                        .list_offsets(&self.topic, partition, spec)
                        .await?
                }
            };
            out.push((partition, offset));
        }
        Ok(out)
    }

    /// The offset after the last message `next` returned from `partition`
    /// (where reading it started, before any): what a commit stores.
    fn position(&self, partition: u32) -> Option<u64> {
        self.consumer
            .as_ref()
            .and_then(|c| c.position(partition))
            .or_else(|| self.held.get(&partition).copied())
    }

    fn let_go_all(&mut self) {
        drop(self.consumer.take());
        self.held.clear();
        self.committed.clear();
    }
}
