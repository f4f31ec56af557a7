//! A consumer: reads its partitions with the SDK's prefetching
//! [`Consumer`](tidegate_client::Consumer), checks every message against
//! the producers' sequence numbers and times it end to end.

use std::sync::Arc;
use std::time::Duration;

use tidegate_client::{Client, Consumer, ConsumerConfig, Start};
use tokio::sync::watch;

use crate::clock::Clock;
use crate::payload;
use crate::stats::{Latency, Shared};
use crate::verify::{ConsumerTally, Seen};

/// Messages between merges of the local histogram into the shared one.
const MERGE_EVERY: u32 = 4096;
/// Messages between readings of the clock.
const CLOCK_EVERY: u32 = 8;

/// Opens a consumer on `partitions`, starting at their current end (the
/// topic may hold an earlier run's messages). Call before producing.
pub async fn open(
    client: Client,
    topic: &str,
    partitions: Vec<u32>,
    fetch_bytes: u32,
) -> tidegate_client::Result<Consumer> {
    let config = ConsumerConfig {
        start: Start::Latest,
        partitions: Some(partitions),
        max_bytes: fetch_bytes,
        max_wait: Duration::from_millis(100),
        ..ConsumerConfig::default()
    };
    Consumer::new(client, topic, config).await
}

/// Reads until `stop` turns true; returns what it saw.
pub async fn run(
    mut consumer: Consumer,
    clock: Clock,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<ConsumerTally> {
    let mut tally = ConsumerTally::default();
    let mut local = Latency::new();
    let mut since_merge = 0u32;
    let warm = clock.warm_ns();
    // One stop future for the whole run: making one per message costs more
    // than the message.
    let stopped = stop.wait_for(|stop| *stop);
    tokio::pin!(stopped);
    let mut now = clock.now_ns();
    let mut until_clock = 0u32;
    loop {
        // Messages first: the stop is looked at only when none is ready
        // (it comes after the drain, when the consumer has caught up).
        let message = tokio::select! {
            biased;
            message = consumer.next() => message,
            _ = &mut stopped => break,
        };
        let Some(message) = message? else { break };
        // Messages come a fetch response at a time, microseconds apart:
        // reading the clock every few of them is as exact and cheaper.
        if until_clock == 0 {
            now = clock.now_ns();
            until_clock = CLOCK_EVERY;
        }
        until_clock -= 1;
        let Some(value) = message.value() else {
            tally.foreign += 1;
            continue;
        };
        let stamp = match payload::read(value) {
            Ok(stamp) => stamp,
            Err(_) => {
                tally.foreign += 1;
                continue;
            }
        };
        match tally.record(stamp.producer, message.partition(), stamp.seq) {
            Seen::Duplicate => continue,
            Seen::New | Seen::OutOfOrder => {}
        }
        Shared::add(&shared.consumed, 1);
        Shared::add(&shared.consumed_bytes, value.len() as u64);
        if stamp.stamp_ns >= warm {
            local.record(now.saturating_sub(stamp.stamp_ns));
        }
        since_merge += 1;
        if since_merge >= MERGE_EVERY {
            Shared::merge(&shared.end_to_end, &mut local);
            since_merge = 0;
        }
    }
    Shared::merge(&shared.end_to_end, &mut local);
    consumer.close().await;
    Ok(tally)
}
