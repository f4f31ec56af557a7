//! A consumer: reads its partitions with the SDK's prefetching
//! [`Consumer`](tidegate_client::Consumer), checks every message against
//! the producers' sequence numbers and times it end to end.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tidegate_client::{Client, Consumer, ConsumerConfig, Start};
use tokio::sync::watch;

use crate::clock::Clock;
use crate::payload;
use crate::stats::{Latency, Shared};
use crate::verify::{ConsumerTally, Seen};

/// Time between merges of the local histogram into the shared one: a merge
/// walks every bucket (tens of microseconds), so it is done by time, a few
/// times a second, not by message count.
const MERGE_EVERY_NS: u64 = 200_000_000;
/// Messages counted between updates of the shared counters (also updated
/// whenever the consumer waits).
const PUBLISH_EVERY: u64 = 64;
/// Messages taken in a row before the consumer lets other tasks run.
const YIELD_EVERY: u32 = 256;
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
    let mut merged_at = clock.now_ns();
    let mut since_yield = 0u32;
    // Messages and bytes counted but not yet added to the shared counters,
    // and the longest end-to-end latency among them (for the timeline).
    let mut pending = (0u64, 0u64, 0u64);
    let warm = clock.warm_ns();
    // One stop future for the whole run: making one per message costs more
    // than the message.
    let stopped = stop.wait_for(|stop| *stop);
    tokio::pin!(stopped);
    let mut now = clock.now_ns();
    let mut until_clock = 0u32;
    loop {
        // A message that is ready is taken at once. Only when none is does
        // the loop publish its counts (the drain waits on them) and look at
        // the stop (it comes after the drain, when the consumer has caught
        // up). `Consumer::next` is cancel-safe.
        // Taken without yielding, a 1 MiB response is ~10,000 messages in
        // one go: the producer's sends and acks on the same core would wait
        // for all of them. Yield now and then.
        since_yield += 1;
        if since_yield >= YIELD_EVERY {
            since_yield = 0;
            tokio::task::yield_now().await;
            until_clock = 0; // time passed while others ran
        }
        let message = match consumer.next().now_or_never() {
            Some(message) => message,
            None => {
                let (msgs, bytes, longest) = std::mem::take(&mut pending);
                shared.consumed(clock.now_ns(), msgs, bytes, longest);
                until_clock = 0; // read the clock after the wait
                tokio::select! {
                    biased;
                    message = consumer.next() => message,
                    _ = &mut stopped => break,
                }
            }
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
        let latency = now.saturating_sub(stamp.stamp_ns);
        pending.0 += 1;
        pending.1 += value.len() as u64;
        pending.2 = pending.2.max(latency);
        if stamp.stamp_ns >= warm {
            local.record(latency);
        }
        if pending.0 >= PUBLISH_EVERY {
            let (msgs, bytes, longest) = std::mem::take(&mut pending);
            shared.consumed(now, msgs, bytes, longest);
        }
        if until_clock == 0 && now.saturating_sub(merged_at) >= MERGE_EVERY_NS {
            merged_at = now;
            Shared::merge(&shared.end_to_end, &mut local);
        }
    }
    shared.consumed(clock.now_ns(), pending.0, pending.1, pending.2);
    Shared::merge(&shared.end_to_end, &mut local);
    consumer.close().await;
    Ok(tally)
}
