//! The partition logs a shard owns, opened and closed as the catalog says.

use std::{cell::RefCell, collections::HashMap, path::Path, rc::Rc};

use tidegate_proto::protocol::ErrorCode;
use tidegate_queue::{
    cursors::{CursorJournal, JournalConfig},
    GateFlow, Log, LogConfig, WriteGate,
};

use super::Failure;
use crate::catalog::{partition_dir, TopicMeta};

/// Open logs by (topic id, partition).
#[derive(Default)]
pub(crate) struct Partitions {
    logs: RefCell<HashMap<(u64, u32), Rc<Log>>>,
    /// Cursor journals, opened on first use (docs/SEMANTICS.md §3).
    journals: RefCell<HashMap<(u64, u32), Rc<CursorJournal>>>,
    /// One journal opening at a time, so two first uses open it once.
    opening: futures::lock::Mutex<()>,
    /// Each topic's flow at the shard's write gate: its partitions share
    /// one place in the fair order, so a producer spread over many
    /// partitions counts once against a light topic
    /// (`docs/FLOW_CONTROL.md`, "The disk's queue").
    flows: RefCell<HashMap<u64, GateFlow>>,
}

impl Partitions {
    pub(crate) fn get(&self, topic_id: u64, partition: u32) -> Option<Rc<Log>> {
        self.logs.borrow().get(&(topic_id, partition)).cloned()
    }

    /// The cursor journal of a partition this shard owns: opened when it
    /// exists on disk, created when `create` (a first commit); `None` when
    /// it does not exist and `create` is false.
    pub(crate) async fn journal(
        &self,
        data_dir: &Path,
        topic: &TopicMeta,
        partition: u32,
        create: bool,
    ) -> Result<Option<Rc<CursorJournal>>, Failure> {
        let key = (topic.id, partition);
        if let Some(j) = self.journals.borrow().get(&key) {
            return Ok(Some(j.clone()));
        }
        let _one = self.opening.lock().await;
        if let Some(j) = self.journals.borrow().get(&key) {
            return Ok(Some(j.clone()));
        }
        if self.get(topic.id, partition).is_none() {
            return Err(Failure::new(
                ErrorCode::Internal,
                format!("partition {}/{partition} is not open here", topic.name),
            ));
        }
        let dir = partition_dir(data_dir, topic, partition).join("cursors");
        if !create && !dir.exists() {
            return Ok(None);
        }
        let journal = CursorJournal::open(&dir, JournalConfig::default())
            .await
            .map_err(|e| {
                Failure::new(
                    ErrorCode::StorageFailed,
                    format!("opening {}: {e}", dir.display()),
                )
            })?;
        let journal = Rc::new(journal);
        if self.get(topic.id, partition).is_none() {
            // The partition closed (deleted, or shutting down) while the
            // journal opened: close it too instead of keeping it.
            let _ = journal.shutdown().await;
            return Err(Failure::new(
                ErrorCode::ShuttingDown,
                format!("partition {}/{partition} closed", topic.name),
            ));
        }
        self.journals.borrow_mut().insert(key, journal.clone());
        Ok(Some(journal))
    }

    /// The cursor journal of a partition, if it is open.
    pub(crate) fn open_journal(&self, topic_id: u64, partition: u32) -> Option<Rc<CursorJournal>> {
        self.journals.borrow().get(&(topic_id, partition)).cloned()
    }

    /// Every open cursor journal.
    pub(crate) fn journals(&self) -> Vec<Rc<CursorJournal>> {
        self.journals.borrow().values().cloned().collect()
    }

    pub(crate) fn all(&self) -> Vec<((u64, u32), Rc<Log>)> {
        self.logs
            .borrow()
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }

    /// Opens what `wanted` lists and is not open; closes and deletes what is
    /// open and not wanted (a deleted topic: its id is gone for good).
    pub(crate) async fn reconcile(
        &self,
        data_dir: &Path,
        base: &LogConfig,
        gate: &Rc<WriteGate>,
        wanted: &[(TopicMeta, u32)],
    ) -> Result<(), Failure> {
        let keep: std::collections::HashSet<(u64, u32)> =
            wanted.iter().map(|(t, p)| (t.id, *p)).collect();
        let gone: Vec<(u64, u32)> = self
            .logs
            .borrow()
            .keys()
            .filter(|k| !keep.contains(k))
            .copied()
            .collect();
        for key in gone {
            let journal = self.journals.borrow_mut().remove(&key);
            if let Some(journal) = journal {
                let _ = journal.shutdown().await;
            }
            let log = self.logs.borrow_mut().remove(&key);
            if let Some(log) = log {
                let dir = log.dir().to_path_buf();
                let _ = log.shutdown().await;
                remove_dir(&dir);
            }
        }
        let topics: std::collections::HashSet<u64> = keep.iter().map(|(t, _)| *t).collect();
        self.flows.borrow_mut().retain(|t, _| topics.contains(t));
        for (topic, partition) in wanted {
            if self.get(topic.id, *partition).is_some() {
                continue;
            }
            let dir = partition_dir(data_dir, topic, *partition);
            let flow = self
                .flows
                .borrow_mut()
                .entry(topic.id)
                .or_insert_with(|| GateFlow::new(gate.clone()))
                .clone();
            let log = Log::open_gated(&dir, topic_config(base, topic), flow)
                .await
                .map_err(|e| {
                    Failure::new(
                        ErrorCode::StorageFailed,
                        format!("opening {}: {e}", dir.display()),
                    )
                })?;
            if log.recovery().truncated_bytes > 0 {
                tracing::error!(
                    topic = %topic.name,
                    partition,
                    bytes = log.recovery().truncated_bytes,
                    "partition recovery cut its tail"
                );
            }
            self.logs
                .borrow_mut()
                .insert((topic.id, *partition), Rc::new(log));
            // A journal on disk opens with its log, so that its groups'
            // lag is in the metrics from the start, not only once a member
            // comes back. One that fails to open is this partition's
            // groups' and subscriptions' problem (their requests report
            // it), not the shard's.
            if let Err(f) = self.journal(data_dir, topic, *partition, false).await {
                tracing::error!(topic = %topic.name, partition, error = %f.message, "opening a cursor journal");
            }
        }
        Ok(())
    }

    /// Closes every log (flush, fdatasync, checkpoint), including logs a
    /// request still holds (a long poll ends with `shutting_down`).
    pub(crate) async fn close_all(&self) {
        let journals: Vec<Rc<CursorJournal>> =
            self.journals.borrow_mut().drain().map(|(_, j)| j).collect();
        for journal in journals {
            if let Err(e) = journal.shutdown().await {
                tracing::error!(dir = %journal.log().dir().display(), error = %e, "closing a cursor journal");
            }
        }
        let logs: Vec<Rc<Log>> = self.logs.borrow_mut().drain().map(|(_, l)| l).collect();
        for log in logs {
            if let Err(e) = log.shutdown().await {
                tracing::error!(dir = %log.dir().display(), error = %e, "closing a partition log");
            }
        }
    }
}

/// The log configuration of one topic: the server's, with the topic's own
/// settings on top.
fn topic_config(base: &LogConfig, topic: &TopicMeta) -> LogConfig {
    let mut config = base.clone();
    if let Some(bytes) = topic.segment_bytes {
        config.segment_bytes_max = bytes;
    }
    if topic.retention_ms.is_some() {
        config.retention_ms = topic.retention_ms;
    }
    if topic.retention_bytes.is_some() {
        config.retention_bytes = topic.retention_bytes;
    }
    config.dedup_window_ms = topic.dedup_window_ms;
    config
}

fn remove_dir(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(dir = %dir.display(), error = %e, "removing a deleted partition");
        }
    }
    // The topic directory goes when its last partition has gone.
    if let Some(parent) = dir.parent() {
        let _ = std::fs::remove_dir(parent);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn topic(id: u64, partitions: u32) -> TopicMeta {
        TopicMeta {
            id,
            name: format!("t{id}"),
            partitions,
            retention_ms: None,
            retention_bytes: None,
            segment_bytes: Some(1 << 20),
            message_ttl_ms: None,
            dedup_window_ms: None,
            created_ms: 0,
        }
    }

    #[test]
    fn a_topic_s_partitions_share_one_flow_which_goes_with_the_topic() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_path_buf();
        glommio::LocalExecutorBuilder::default()
            .io_memory(1 << 20)
            .spawn(move || async move {
                let base = LogConfig::default();
                let gate = WriteGate::unlimited();
                let (a, b) = (topic(1, 2), topic(2, 1));
                let parts = Partitions::default();
                let wanted = [(a.clone(), 0), (a.clone(), 1), (b.clone(), 0)];
                parts.reconcile(&data, &base, &gate, &wanted).await.unwrap();
                let flow = |t: u64, p: u32| parts.get(t, p).unwrap().gate_flow().clone();
                assert!(flow(1, 0).same_as(&flow(1, 1)), "a topic is one flow");
                assert!(
                    !flow(1, 0).same_as(&flow(2, 0)),
                    "topics are flows of their own"
                );
                // Deleting topic a drops its flow; b keeps its own.
                let b_flow = flow(2, 0);
                parts
                    .reconcile(&data, &base, &gate, &wanted[2..])
                    .await
                    .unwrap();
                assert!(parts.get(1, 0).is_none());
                assert_eq!(parts.flows.borrow().len(), 1);
                assert!(parts.flows.borrow()[&2].same_as(&b_flow));
                parts.close_all().await;
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
