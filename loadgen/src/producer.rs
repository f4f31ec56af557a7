//! A producer: a thread that builds batches on time and hands each to the
//! async runtime, which sends it and records its acknowledgement.
//!
//! One sender task per producer starts the sends one after another
//! (`Client::start_produce`), so a producer's batches for a partition are
//! stored in the order they were made even with several in flight; the
//! answers are awaited concurrently.
//!
//! The pacing runs on its own thread, not as a task, because tokio's timer
//! ticks in milliseconds and open-loop latencies are often well under one:
//! `thread::sleep` wakes within tens of microseconds. The in-flight window
//! is a channel of tokens, so a slow server makes the pacer wait, and in
//! open loop that wait counts in every delayed message's latency.
//!
//! A produce response's throttle hint holds its partition back (see
//! [`throttle`](crate::throttle)): the partition comes back to the pacer
//! with the time before which it may not send, and the pacer sends to the
//! other free partitions meanwhile. In open loop that wait, too, counts in
//! the latency of the messages it delays.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tidegate_client::{
    Ack, Client, ErrorCode, ProducerIdentity, Target, MAX_IN_FLIGHT_PER_PARTITION,
};
use tidegate_proto::batch::{next_sequence, BatchBuilder, Record};

use crate::clock::Clock;
use crate::payload::{self, Stamp};
use crate::schedule::Schedule;
use crate::stats::{ProducerStats, Shared};
use crate::throttle::{self, Gate};
use crate::verify::SeqSet;

/// Byte the payload after the header is filled with.
const FILLER: u8 = b'x';
/// Retries of a batch that failed or timed out.
const RETRIES: u32 = 5;
/// How long one produce may wait for its answer before it counts as failed
/// (the SDK has no deadline of its own, and a stalled server would
/// otherwise hold the run forever).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
const RETRY_BACKOFF: Duration = Duration::from_millis(20);

/// What a producer needs; one per producer.
pub struct Producer {
    pub id: u32,
    pub client: Client,
    pub runtime: tokio::runtime::Handle,
    pub topic: Arc<str>,
    /// The partitions this producer cycles through, one batch each.
    pub partitions: Vec<u32>,
    pub ack: Ack,
    /// An idempotent producer's identity (`--idempotent`).
    pub identity: Option<ProducerIdentity>,
    pub msg_size: usize,
    pub batch: u32,
    pub linger: Duration,
    pub in_flight: u32,
    /// Open loop: this producer's share of the rate.
    pub schedule: Option<Schedule>,
    pub clock: Clock,
    pub shared: Arc<Shared>,
    pub stop: Arc<AtomicBool>,
}

/// What a producer leaves behind: the sequence numbers the server
/// acknowledged.
pub struct Outcome {
    pub id: u32,
    pub acked: SeqSet,
    pub failed: u64,
    /// Open loop: due before the end of the run but never sent.
    pub unsent: u64,
}

/// State the producer's in-flight sends share.
struct Acks {
    acked: Mutex<SeqSet>,
    failed: std::sync::atomic::AtomicU64,
}

impl Producer {
    /// Runs until the clock's end (or `stop`), then waits for the batches
    /// in flight. Blocking: call on its own thread.
    pub fn run(self) -> Outcome {
        // The pacer sleeps until each batch is due; the kernel may wake a
        // sleeper up to its timer slack late (50 us by default), and open
        // loop would count that lateness in every message. 1 us instead.
        if let Err(e) = nix::sys::prctl::set_timerslack(1_000) {
            tracing::debug!("cannot lower the timer slack: {e}");
        }
        let (token_tx, token_rx) = sync_channel::<()>(self.in_flight as usize);
        for _ in 0..self.in_flight {
            let _ = token_tx.send(());
        }
        // One batch per partition in flight (`partition_depth`, more for an
        // idempotent producer). The next batch goes to whichever partition
        // is free first, so one slow answer does not hold up batches that
        // other partitions could take. A partition comes back with the time
        // it may send again (a throttle hint).
        let depth = self.partition_depth();
        let (free_tx, free_rx) = sync_channel::<(usize, u64)>(self.partitions.len() * depth);
        let mut gate = Gate::new(self.partitions.len(), depth);
        let acks = Arc::new(Acks {
            acked: Mutex::new(SeqSet::default()),
            failed: Default::default(),
        });
        let (batch_tx, batch_rx) = tokio::sync::mpsc::channel(self.in_flight as usize);
        self.runtime.spawn(sender(batch_rx));
        let mut value = vec![FILLER; self.msg_size];
        let mut seq = 0u64;
        // The next producer sequence of each partition slot (idempotent).
        let mut sequences = vec![0i32; self.partitions.len()];
        let end_ns = self.clock.end_ns();
        while !self.stop.load(Ordering::Relaxed) {
            let count = match &self.schedule {
                None => self.batch,
                Some(schedule) => {
                    let send_at = schedule
                        .send_at_ns(seq, self.batch, self.linger)
                        .min(end_ns);
                    self.clock.sleep_until(send_at);
                    let now = self.clock.now_ns();
                    let due = schedule.due_by(now.min(end_ns));
                    if due <= seq {
                        if now >= end_ns {
                            break; // nothing more is due before the end
                        }
                        continue; // woke a rounding step early
                    }
                    (due - seq).min(u64::from(self.batch)) as u32
                }
            };
            if take(&token_rx, &self.stop).is_none() {
                break;
            }
            let Some(slot) = take_slot(&mut gate, &free_rx, &self.clock, &self.stop) else {
                let _ = token_tx.send(());
                break;
            };
            // Waiting for a slot let more messages fall due: take them too.
            let count = match &self.schedule {
                Some(schedule) => {
                    let due = schedule.due_by(self.clock.now_ns().min(end_ns));
                    (due - seq).min(u64::from(self.batch)) as u32
                }
                None => count,
            };
            let now = self.clock.now_ns();
            if now >= end_ns && self.schedule.is_none() {
                let _ = token_tx.send(());
                break;
            }
            let stamp_of = |i: u64| match &self.schedule {
                Some(s) => s.due_ns(seq + i),
                None => now,
            };
            let sequence = &mut sequences[slot];
            let Some(batch) = self.build(&mut value, seq, count, stamp_of, sequence) else {
                let _ = token_tx.send(());
                break;
            };
            Shared::add(&self.shared.sent, u64::from(count));
            if let Ok(mut timeline) = self.shared.timeline.lock() {
                let msgs = u64::from(count);
                // Open loop: in the second they were due (all before the
                // end), so a producer that fell behind still has every
                // message it sent in the timeline.
                timeline.sent(stamp_of(0), msgs, msgs * self.msg_size as u64);
            }
            let send = Send {
                producer: self.id as usize,
                client: self.client.clone(),
                topic: self.topic.clone(),
                partition: self.partitions[slot],
                ack: self.ack,
                seq,
                count,
                closed_stamp: self.schedule.is_none().then_some(now),
                schedule: self.schedule,
                msg_size: self.msg_size as u64,
                clock: self.clock,
                shared: self.shared.clone(),
                acks: acks.clone(),
                stop: self.stop.clone(),
                pipelined: depth > 1,
                slot: Slot {
                    token: token_tx.clone(),
                    free: free_tx.clone(),
                    slot,
                    not_before_ns: 0,
                },
            };
            if batch_tx.blocking_send((send, batch)).is_err() {
                break; // the runtime is gone; the send's slot went back
            }
            seq += u64::from(count);
        }
        drop(batch_tx);
        // Open loop: messages that fell due before the end but were never
        // sent (the run was stopped while the server lagged). They are
        // counted, not hidden.
        let unsent = match &self.schedule {
            Some(schedule) => schedule.due_by(end_ns).saturating_sub(seq),
            None => 0,
        };
        // Every send holds a sender of the token channel until it is done
        // (its `Slot`), panicked or not: once ours is dropped too, the
        // channel reports closed after the last one.
        drop(token_tx);
        while token_rx.recv().is_ok() {}
        let acked = acks.acked.lock().map(|s| s.clone()).unwrap_or_default();
        Outcome {
            id: self.id,
            acked,
            failed: acks.failed.load(Ordering::Relaxed),
            unsent,
        }
    }

    /// Batches one partition may have in flight. Without idempotence, one:
    /// with two, the server may store them in either order (it takes a
    /// connection's requests as they finish arriving). An idempotent
    /// producer's batches carry sequence numbers and the server stores them
    /// in that order, so it pipelines as the SDK's `Producer` does, up to
    /// [`MAX_IN_FLIGHT_PER_PARTITION`] (and never more than `in_flight`).
    fn partition_depth(&self) -> usize {
        match self.identity {
            Some(_) => (self.in_flight as usize).clamp(1, MAX_IN_FLIGHT_PER_PARTITION),
            None => 1,
        }
    }

    /// Builds a batch of `count` messages from `seq`.
    fn build(
        &self,
        value: &mut [u8],
        seq: u64,
        count: u32,
        stamp_of: impl Fn(u64) -> u64,
        sequence: &mut i32,
    ) -> Option<Vec<u8>> {
        let mut builder = match self.identity {
            Some(id) => {
                let first = *sequence;
                *sequence = next_sequence(first, i64::from(count));
                BatchBuilder::new().producer(id.producer_id, id.epoch, first)
            }
            None => BatchBuilder::new(),
        };
        let timestamp_ms = self.clock.wall_ms();
        for i in 0..u64::from(count) {
            let stamp = Stamp {
                producer: self.id,
                seq: seq + i,
                stamp_ns: stamp_of(i),
            };
            payload::write(value, stamp).ok()?;
            let record = Record {
                timestamp_ms,
                key: None,
                value: Some(value),
                headers: &[],
            };
            if let Err(e) = builder.push(record) {
                tracing::error!("cannot build a batch: {e}");
                return None;
            }
        }
        match builder.finish() {
            Ok(batch) => Some(batch),
            Err(e) => {
                tracing::error!("cannot build a batch: {e}");
                None
            }
        }
    }
}

/// Waits for an in-flight token or a free partition; `None` when told to
/// stop.
fn take<T>(from: &Receiver<T>, stop: &AtomicBool) -> Option<T> {
    loop {
        match from.recv_timeout(Duration::from_millis(100)) {
            Ok(t) => return Some(t),
            Err(RecvTimeoutError::Timeout) if !stop.load(Ordering::Relaxed) => continue,
            Err(_) => return None,
        }
    }
}

/// Waits for a partition that may send now: takes the ones freed since,
/// and waits out a throttled one's hint unless another is free first.
/// `None` when told to stop.
fn take_slot(
    gate: &mut Gate,
    freed: &Receiver<(usize, u64)>,
    clock: &Clock,
    stop: &AtomicBool,
) -> Option<usize> {
    const POLL: Duration = Duration::from_millis(100);
    loop {
        while let Ok((slot, not_before_ns)) = freed.try_recv() {
            gate.release(slot, not_before_ns);
        }
        let now = clock.now_ns();
        if let Some(slot) = gate.take_ready(now) {
            return Some(slot);
        }
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        let wait = match gate.next_ready_ns() {
            Some(at) => Duration::from_nanos(at.saturating_sub(now)).min(POLL),
            None => POLL,
        };
        match freed.recv_timeout(wait) {
            Ok((slot, not_before_ns)) => gate.release(slot, not_before_ns),
            Err(RecvTimeoutError::Timeout) => {}
            // Every send holds a sender; the pacer too, so this is the end.
            Err(RecvTimeoutError::Disconnected) => return None,
        }
    }
}

/// One batch on its way.
struct Send {
    /// The producer's id, its index in `Shared::producers`.
    producer: usize,
    client: Client,
    topic: Arc<str>,
    partition: u32,
    ack: Ack,
    seq: u64,
    count: u32,
    /// Closed loop: when the batch was made.
    closed_stamp: Option<u64>,
    schedule: Option<Schedule>,
    msg_size: u64,
    clock: Clock,
    shared: Arc<Shared>,
    acks: Arc<Acks>,
    stop: Arc<AtomicBool>,
    /// Other batches of the partition may be in flight (idempotent,
    /// pipelined).
    pipelined: bool,
    /// Given back when the send is dropped, however it ends.
    slot: Slot,
}

/// An in-flight token and a partition slot, returned on drop: a send that
/// fails, panics or is dropped unrun cannot leak them and hang the producer.
struct Slot {
    token: SyncSender<()>,
    free: SyncSender<(usize, u64)>,
    slot: usize,
    /// When the partition may send again (a throttle hint sets it).
    not_before_ns: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let _ = self.free.send((self.slot, self.not_before_ns));
        let _ = self.token.send(());
    }
}

/// Starts each batch's produce in the order the batches were made, and
/// leaves its answer to a task of its own.
async fn sender(mut batches: tokio::sync::mpsc::Receiver<(Send, Vec<u8>)>) {
    while let Some((send, batch)) = batches.recv().await {
        let target = Target::Partition(send.partition);
        let started = send
            .client
            .start_produce(&send.topic, target, send.ack, &batch)
            .await;
        tokio::spawn(send.finish(started, batch));
    }
}

/// A failed attempt: what went wrong, and whether trying again may help.
struct Failed {
    message: String,
    retriable: bool,
    /// Refused as out of sequence: retried when the partition pipelines.
    out_of_order: bool,
}

impl Failed {
    /// Whether another attempt may succeed. Pipelined, a predecessor's
    /// retry may come more than the server's reorder wait after this
    /// batch, which is then refused as out of order: that is retried like
    /// a lost answer, as the SDK's Producer does.
    fn worth_retrying(&self, pipelined: bool) -> bool {
        self.retriable || (pipelined && self.out_of_order)
    }
}

impl From<tidegate_client::Error> for Failed {
    fn from(e: tidegate_client::Error) -> Self {
        Failed {
            retriable: e.is_retriable(),
            out_of_order: e.code() == Some(ErrorCode::OutOfOrderSequence),
            message: e.to_string(),
        }
    }
}

/// A produce's answer within [`RESPONSE_TIMEOUT`] (a timeout may be retried).
async fn timed<T>(
    answer: impl std::future::Future<Output = tidegate_client::Result<T>>,
) -> Result<T, Failed> {
    match tokio::time::timeout(RESPONSE_TIMEOUT, answer).await {
        Ok(answer) => answer.map_err(Failed::from),
        Err(_) => Err(Failed {
            message: format!("no answer within {RESPONSE_TIMEOUT:?}"),
            retriable: true,
            out_of_order: false,
        }),
    }
}

impl Send {
    /// Waits for the answer (sending again after a retriable failure) and
    /// records it.
    async fn finish(
        mut self,
        started: tidegate_client::Result<tidegate_client::PendingProduce>,
        batch: Vec<u8>,
    ) {
        let mut attempt = 0;
        let mut first = Some(started);
        let result = loop {
            let answer = match first.take() {
                Some(Ok(pending)) => timed(pending.response()).await,
                Some(Err(e)) => Err(Failed::from(e)),
                None => {
                    let target = Target::Partition(self.partition);
                    timed(
                        self.client
                            .produce_batch(&self.topic, target, self.ack, &batch),
                    )
                    .await
                }
            };
            match answer {
                Ok(produced) => break Ok(produced),
                Err(e)
                    if e.worth_retrying(self.pipelined)
                        && attempt < RETRIES
                        && !self.stop.load(Ordering::Relaxed) =>
                {
                    attempt += 1;
                    tracing::debug!("retrying a batch: {}", e.message);
                    tokio::time::sleep(RETRY_BACKOFF * attempt).await;
                }
                Err(e) => break Err(e.message),
            }
        };
        let ack_ns = self.clock.now_ns();
        let count = u64::from(self.count);
        match result {
            Ok(produced) => {
                if let Ok(mut acked) = self.acks.acked.lock() {
                    acked.insert_range(self.seq, self.seq + count);
                }
                Shared::add(&self.shared.acked, count);
                Shared::add(&self.shared.acked_bytes, count * self.msg_size);
                self.record_ack(ack_ns);
                self.honour(ack_ns, produced.throttle);
            }
            Err(e) => {
                tracing::warn!(
                    "a batch of {count} messages to partition {} failed: {e}",
                    self.partition
                );
                self.acks.failed.fetch_add(count, Ordering::Relaxed);
            }
        }
    }

    fn stats(&self) -> Option<&ProducerStats> {
        self.shared.producers.get(self.producer)
    }

    /// Holds the partition back for the hint of its answer at `ack_ns`,
    /// and counts the hint.
    fn honour(&mut self, ack_ns: u64, throttle: Duration) {
        let Some(hint) = throttle::hint(ack_ns, throttle) else {
            return;
        };
        self.slot.not_before_ns = hint.not_before_ns;
        if let Some(stats) = self.stats() {
            Shared::add(&stats.throttle_hints, 1);
            Shared::add(&stats.throttled_ms, hint.honoured_ms);
        }
        if let Ok(mut timeline) = self.shared.timeline.lock() {
            timeline.throttled(ack_ns, hint.honoured_ms);
        }
    }

    /// Counts the batch's acknowledgement at `ack_ns` and records the
    /// produce-to-ack latency of each message: in the producer's histogram
    /// when it falls in the measured window, and in the timeline's second
    /// of the ack (warmup included). One lock of each per batch.
    fn record_ack(&self, ack_ns: u64) {
        let Some(stats) = self.stats() else { return };
        let count = u64::from(self.count);
        if (self.clock.warm_ns()..self.clock.end_ns()).contains(&ack_ns) {
            Shared::add(&stats.acked_measured, count);
        }
        let warm = self.clock.warm_ns();
        let Ok(mut measured) = stats.produce_ack.lock() else {
            return;
        };
        let mut timeline = self.shared.timeline.lock().ok();
        let mut second = timeline.as_mut().and_then(|t| t.acked(ack_ns, count));
        let mut record = |start_ns: u64, n: u64| {
            let latency_ns = ack_ns.saturating_sub(start_ns);
            if start_ns >= warm {
                measured.record_n(latency_ns, n);
            }
            if let Some(second) = second.as_deref_mut() {
                second.record_n(latency_ns, n);
            }
        };
        match (self.closed_stamp, &self.schedule) {
            (Some(stamp), _) => record(stamp, count),
            (None, Some(schedule)) => {
                for i in 0..count {
                    record(schedule.due_ns(self.seq + i), 1);
                }
            }
            (None, None) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(retriable: bool, out_of_order: bool) -> Failed {
        Failed {
            message: String::new(),
            retriable,
            out_of_order,
        }
    }

    #[test]
    fn an_out_of_order_refusal_is_retried_only_when_the_partition_pipelines() {
        assert!(failed(true, false).worth_retrying(false));
        assert!(!failed(false, true).worth_retrying(false));
        assert!(failed(false, true).worth_retrying(true));
        assert!(!failed(false, false).worth_retrying(true));
    }
}
