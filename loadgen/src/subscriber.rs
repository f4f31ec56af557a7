//! A subscriber (`--mode subscription`, or `--mode push`): pulls leased
//! messages from one subscription shared by every subscriber (or has the
//! server push them on one stream), checks each against the
//! producers' sequence numbers, times it end to end, and acks it. A
//! message counts as consumed when its ack is answered (acks are durable
//! on the server), so the consume rate is the acked rate.

use std::sync::Arc;
use std::time::Duration;

use tidegate_client::{AckId, Client, PushStream, ReceivedMessage};
use tokio::{sync::watch, task::JoinSet};

use crate::clock::Clock;
use crate::payload;
use crate::stats::{Latency, Shared};
use crate::verify::{ConsumerTally, Seen};

/// Messages one pull asks for.
const PULL_MAX: u32 = 1000;
/// How long a pull waits for a first message.
const PULL_WAIT: Duration = Duration::from_millis(100);
/// Ack requests one subscriber keeps in flight while it pulls on.
const ACKS_IN_FLIGHT: usize = 4;
/// A push stream's credits: what a subscriber pulls and acks at most at
/// once in pull mode.
const PUSH_CREDIT_MESSAGES: u32 = PULL_MAX * (ACKS_IN_FLIGHT as u32 + 1);
const PUSH_CREDIT_BYTES: u32 = 8 << 20;

/// The subscription every subscriber of a run pulls from.
pub fn subscription_name(topic: &str) -> String {
    format!("{topic}.loadgen")
}

/// Pulls, checks and acks until `stop` turns true; returns what it saw.
pub async fn run(
    client: Client,
    subscription: String,
    push: bool,
    clock: Clock,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<ConsumerTally> {
    let mut tally = ConsumerTally::default();
    let mut local = Latency::new();
    let warm = clock.warm_ns();
    let mut acks: JoinSet<anyhow::Result<(u64, u64)>> = JoinSet::new();
    let mut stream = if push {
        let s = client.streaming_pull(&subscription, PUSH_CREDIT_MESSAGES, PUSH_CREDIT_BYTES);
        Some(s.await?)
    } else {
        None
    };
    let stopped = stop.wait_for(|stop| *stop);
    tokio::pin!(stopped);
    loop {
        // A push frame cut short by the stop is abandoned with its stream.
        let messages = tokio::select! {
            biased;
            messages = next_batch(&client, &subscription, stream.as_mut()) => messages?,
            _ = &mut stopped => break,
        };
        let credit = (
            messages.len() as u32,
            messages.iter().map(ReceivedMessage::size).sum::<usize>() as u32,
        );
        let grant = stream.as_ref().map(PushStream::credit);
        // Acks answered since the last pull count now, not at the next
        // full ack queue: an idle subscriber must not hold its counts back.
        while let Some(done) = acks.try_join_next() {
            let (m, b) = done??;
            shared.consumed(clock.now_ns(), m, b);
        }
        let now = clock.now_ns();
        let mut ids: Vec<AckId> = Vec::with_capacity(messages.len());
        let (mut msgs, mut bytes) = (0u64, 0u64);
        for message in &messages {
            ids.push(message.ack_id);
            let Some(stamp) = message.value.as_deref().and_then(|v| payload::read(v).ok()) else {
                tally.foreign += 1;
                continue;
            };
            match tally.record(stamp.producer, message.partition, stamp.seq) {
                Seen::Duplicate => continue,
                Seen::New | Seen::OutOfOrder => {}
            }
            msgs += 1;
            bytes += message.value.as_ref().map_or(0, |v| v.len() as u64);
            if stamp.stamp_ns >= warm {
                local.record(now.saturating_sub(stamp.stamp_ns));
            }
        }
        Shared::merge(&shared.end_to_end, &mut local);
        while acks.len() >= ACKS_IN_FLIGHT {
            if let Some(done) = acks.join_next().await {
                let (m, b) = done??;
                shared.consumed(clock.now_ns(), m, b);
            }
        }
        if !ids.is_empty() {
            let (client, subscription) = (client.clone(), subscription.clone());
            acks.spawn(async move {
                let results = client.ack(&subscription, &ids).await?;
                if let Some(Err(code)) = results.into_iter().find(Result::is_err) {
                    anyhow::bail!("loadgen: the server refused an ack: {code}");
                }
                if let Some(grant) = grant {
                    grant.grant(credit.0, credit.1).await?;
                }
                Ok((msgs, bytes))
            });
        }
    }
    while let Some(done) = acks.join_next().await {
        let (m, b) = done??;
        shared.consumed(clock.now_ns(), m, b);
    }
    Ok(tally)
}

/// The next batch: a pull's answer, or the push stream's next frame.
async fn next_batch(
    client: &Client,
    subscription: &str,
    stream: Option<&mut PushStream>,
) -> anyhow::Result<Vec<ReceivedMessage>> {
    match stream {
        None => Ok(client.pull(subscription, PULL_MAX, PULL_WAIT).await?),
        Some(stream) => stream
            .next_frame()
            .await?
            .ok_or_else(|| anyhow::anyhow!("loadgen: the server ended the push stream")),
    }
}
