//! A subscriber (`--mode subscription`, or `--mode push`): pulls leased
//! messages from one subscription shared by every subscriber (or has the
//! server push them on one stream), checks each against the
//! producers' sequence numbers, times it end to end, and acks it. A
//! message counts as consumed when its ack is answered (acks are durable
//! on the server), so the consume rate is the acked rate.

use std::sync::Arc;
use std::time::Duration;

use tidegate_client::{AckId, Client, PushCredit, PushStream, ReceivedMessage};
use tokio::{
    sync::{mpsc, watch},
    task::JoinSet,
};

use crate::acker::{Acker, Settled};
use crate::clock::Clock;
use crate::payload;
use crate::stats::{Latency, Shared};
use crate::verify::{ConsumerTally, Seen};

/// Messages one pull asks for.
const PULL_MAX: u32 = 1000;
/// How long a pull waits for a first message.
const PULL_WAIT: Duration = Duration::from_millis(100);
/// A push stream's byte credits: the most the server allows.
const PUSH_CREDIT_BYTES: u32 = tidegate_client::MAX_PUSH_CREDIT_BYTES;

/// The subscription every subscriber of a run pulls from.
pub fn subscription_name(topic: &str) -> String {
    format!("{topic}.loadgen")
}

/// Pulls, checks and acks until `stop` turns true; returns what it saw.
pub async fn run(
    client: Client,
    subscription: String,
    source: SourceKind,
    clock: Clock,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<ConsumerTally> {
    let mut tally = ConsumerTally::default();
    let mut local = Latency::new();
    let warm = clock.warm_ns();
    let mut source = Source::open(&client, &subscription, source).await?;
    let mut acker = Acker::new(client, subscription, source.push_credit());
    let stopped = stop.wait_for(|stop| *stop);
    tokio::pin!(stopped);
    loop {
        // A push frame cut short by the stop is abandoned with its stream.
        let messages = tokio::select! {
            biased;
            messages = source.next_batch() => messages?,
            done = acker.next_done() => {
                acker.settled(done, &shared, &clock)?;
                continue;
            }
            _ = &mut stopped => break,
        };
        // Acks answered since the last batch count now: an idle
        // subscriber must not hold its counts back.
        acker.settle_ready(&shared, &clock)?;
        let now = clock.now_ns();
        let mut ids: Vec<AckId> = Vec::with_capacity(messages.len());
        let (mut msgs, mut bytes, mut size) = (0u64, 0u64, 0usize);
        for message in &messages {
            ids.push(message.ack_id);
            size += message.size();
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
        acker.add(
            ids,
            Settled {
                msgs,
                bytes,
                credit: (messages.len() as u64, size as u64),
            },
        );
        acker.send(&shared, &clock).await?;
    }
    acker.finish(&shared, &clock).await?;
    Ok(tally)
}

/// Where a subscriber's messages come from.
#[derive(Debug, Clone, Copy)]
pub enum SourceKind {
    /// Pulls, this many in flight.
    Pull(u32),
    /// One push stream with this many message credits.
    Push(u32),
}

enum Source {
    Pull {
        client: Client,
        subscription: String,
        depth: usize,
        pulls: JoinSet<Result<Vec<ReceivedMessage>, tidegate_client::Error>>,
    },
    Push {
        /// Frames read by their own task: a frame read cannot be cut
        /// short by an ack answered first.
        frames: mpsc::Receiver<anyhow::Result<Vec<ReceivedMessage>>>,
        reader: tokio::task::JoinHandle<()>,
        credit: PushCredit,
        /// The stream's credits: messages, bytes.
        credits: (u64, u64),
    },
}

impl Source {
    async fn open(client: &Client, subscription: &str, kind: SourceKind) -> anyhow::Result<Source> {
        Ok(match kind {
            SourceKind::Pull(depth) => Source::Pull {
                client: client.clone(),
                subscription: subscription.to_owned(),
                depth: depth.max(1) as usize,
                pulls: JoinSet::new(),
            },
            SourceKind::Push(messages) => {
                let stream = client.streaming_pull(subscription, messages, PUSH_CREDIT_BYTES);
                let stream = stream.await?;
                let credit = stream.credit();
                let (tx, frames) = mpsc::channel(4);
                let reader = tokio::spawn(read_frames(stream, tx));
                Source::Push {
                    frames,
                    reader,
                    credit,
                    credits: (u64::from(messages), u64::from(PUSH_CREDIT_BYTES)),
                }
            }
        })
    }

    /// The next batch: the first pull to answer (with the pulls topped up
    /// to their depth first), or the push stream's next frame.
    async fn next_batch(&mut self) -> anyhow::Result<Vec<ReceivedMessage>> {
        match self {
            Source::Pull {
                client,
                subscription,
                depth,
                pulls,
            } => {
                while pulls.len() < *depth {
                    let (client, subscription) = (client.clone(), subscription.clone());
                    pulls.spawn(
                        async move { client.pull(&subscription, PULL_MAX, PULL_WAIT).await },
                    );
                }
                match pulls.join_next().await {
                    Some(done) => Ok(done??),
                    None => anyhow::bail!("loadgen: no pull in flight"),
                }
            }
            Source::Push { frames, .. } => match frames.recv().await {
                Some(frame) => frame,
                None => anyhow::bail!("loadgen: the push stream's reader stopped"),
            },
        }
    }
}

impl Source {
    /// The push stream's credit handle and credits.
    fn push_credit(&self) -> Option<(PushCredit, (u64, u64))> {
        match self {
            Source::Push {
                credit, credits, ..
            } => Some((credit.clone(), *credits)),
            Source::Pull { .. } => None,
        }
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        if let Source::Push { reader, .. } = self {
            reader.abort();
        }
    }
}

/// Reads `stream`'s frames into `frames` until either ends.
async fn read_frames(
    mut stream: PushStream,
    frames: mpsc::Sender<anyhow::Result<Vec<ReceivedMessage>>>,
) {
    loop {
        let frame = match stream.next_frame().await {
            Ok(Some(frame)) => Ok(frame),
            Ok(None) => Err(anyhow::anyhow!("loadgen: the server ended the push stream")),
            Err(e) => Err(e.into()),
        };
        let last = frame.is_err();
        if frames.send(frame).await.is_err() || last {
            return;
        }
    }
}
