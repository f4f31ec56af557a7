//! A shard's publisher: copies the shard's counters and its partitions'
//! log figures into a snapshot and stores it in the shard's hub slot.
//! Runs on the shard's own executor, once a second, off the request path.

use std::{collections::HashMap, sync::Arc, time::Instant};

use tidegate_net::QuicServer;

use super::{probe, FdatasyncHistogram, MetricsHub, PartitionSnapshot, ShardSnapshot};
use crate::{router::Router, shard::Shard};

/// How often each shard publishes its snapshot.
pub const PUBLISH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Publishes one shard's snapshots into its slot of the hub.
pub(crate) struct Publisher {
    shard: usize,
    hub: Arc<MetricsHub>,
}

impl Publisher {
    pub(crate) fn new(shard: usize, hub: Arc<MetricsHub>) -> Publisher {
        assert!(shard < hub.shards(), "shard {shard} has no metrics slot");
        Publisher { shard, hub }
    }

    /// Takes and publishes a snapshot now.
    pub(crate) fn publish(&self, router: &Router, quic: &QuicServer, serving: bool) {
        let shard: &Shard = &router.shard;
        let flow = &router.flow;
        debug_assert_eq!(shard.id, self.shard);
        let (push_streams, push_streams_max, pushed) = router.pushes.stats();
        let (requests, produce_latency) = probe::snapshot();
        self.hub.publish(ShardSnapshot {
            shard: self.shard,
            published: Some(Instant::now()),
            serving,
            requests,
            produce_latency,
            quic: quic.stats().into(),
            auth: super::auth::snapshot(),
            flow: flow.stats(),
            write_gate: shard.write_gate.stats(),
            admitted_by_principal: quic.admitted_by_principal(),
            partitions: partitions(shard),
            subscription_messages: shard.subscriptions.counters.snapshot(),
            subscription_windows: shard.subscriptions.snapshot(&shard.catalog.borrow()),
            push_streams,
            push_streams_max,
            pushed_messages_total: pushed,
        });
    }

    /// Publishes every [`PUBLISH_INTERVAL`] until dropped; `serving` says
    /// whether the shard still takes requests.
    pub(crate) async fn every_interval(
        &self,
        router: &Router,
        quic: &QuicServer,
        serving: impl Fn() -> bool,
    ) {
        loop {
            glommio::timer::sleep(PUBLISH_INTERVAL).await;
            self.publish(router, quic, serving());
        }
    }
}

/// The figures of every partition the shard owns, by topic and partition.
fn partitions(shard: &Shard) -> Vec<PartitionSnapshot> {
    let names: HashMap<u64, String> = shard
        .catalog
        .borrow()
        .list()
        .map(|t| (t.id, t.name.clone()))
        .collect();
    let mut out: Vec<PartitionSnapshot> = shard
        .partitions
        .all()
        .into_iter()
        .filter_map(|((topic_id, partition), log)| {
            let journal = shard.partitions.open_journal(topic_id, partition);
            // A log whose topic left the catalog is being closed.
            let topic = names.get(&topic_id)?.clone();
            let offsets = log.offsets();
            let stats = log.stats();
            let (producers, producers_evicted) = log.producers();
            let group_lag = journal.map_or_else(Vec::new, |j| {
                let lag =
                    |(group, offset): (String, u64)| (group, offsets.latest.saturating_sub(offset));
                j.group_offsets().into_iter().map(lag).collect()
            });
            Some(PartitionSnapshot {
                topic,
                partition,
                log_start_offset: offsets.earliest,
                high_watermark: offsets.latest,
                durable_watermark: offsets.durable,
                next_offset: offsets.next,
                messages_written_total: offsets.latest.saturating_sub(log.recovery().next_offset),
                bytes_written_total: stats.bytes_written,
                batches_appended_total: stats.batches_appended,
                flushes_total: stats.flushes,
                fdatasyncs_total: stats.syncs,
                fdatasync_seconds_total: stats.sync_us_total as f64 / 1e6,
                fdatasync_latency: FdatasyncHistogram {
                    counts: stats.syncs_by_latency,
                    sum_ns: stats.sync_us_total.saturating_mul(1_000),
                },
                read_messages_total: stats.records_read,
                read_bytes_total: stats.bytes_read,
                size_bytes: log.size_bytes(),
                read_cache_bytes: log.read_cache_bytes() as u64,
                segments: log.segment_count() as u64,
                failed: log.is_failed(),
                producers: producers as u64,
                producers_evicted_total: producers_evicted,
                duplicate_batches_total: stats.duplicates,
                dedup_markers_total: stats.dedup_markers,
                dedup_evicted_total: stats.dedup_evicted,
                segments_prepared_total: stats.rolls_prepared,
                rolls_total: stats.rolls,
                roll_seconds_total: stats.roll_us_total as f64 / 1e6,
                reads_cached_total: stats.reads_cached,
                segments_open: stats.segments_open,
                segment_opens_total: stats.segment_opens,
                group_lag,
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    out
}
