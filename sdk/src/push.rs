//! Streaming push on the client (docs/SEMANTICS.md §5): a StreamingPull
//! stream read frame by frame ([`PushStream`]), credits granted back with
//! PushCredit ([`PushCredit::grant`]), and the feed a push-mode
//! [`Subscriber`](crate::Subscriber) reads from ([`Feed`]): a task that
//! keeps one push stream open (reopening it after a lost connection) and
//! hands its frames over, while the subscriber gives credits back as the
//! application takes messages.
//!
//! Credits are the subscriber's outstanding messages, as Pub/Sub's flow
//! control counts them: the server pushes at most `max_messages` messages
//! and about `max_bytes` bytes (keys, values, header names and values, as
//! the server counts them) that are not settled yet, in the subscriber's
//! buffer or with the application; a message gives its credit back when
//! it is acked, nacked or dropped. So the feed's memory, and the leases
//! one subscriber holds, are bounded by them.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tidegate_proto::protocol::{
    decode_header, PushCreditRequest, Request, Response, StreamingPullRequest, FRAME_HEADER_LEN,
    MAX_FRAME_BODY_BYTES, MAX_PUSH_CREDIT_BYTES, MAX_PUSH_CREDIT_MESSAGES,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::{decode_response, unexpected, Client};
use crate::error::{Error, Result};
use crate::subscription::ReceivedMessage;
use crate::ErrorCode;

/// How often a push stream that failed with a retriable error is opened
/// again before the feed reports the error (as for pulls: backoff from
/// 10 ms to 1 s). A frame received resets the count.
const OPEN_RETRIES: u32 = 10;
const OPEN_BACKOFF_MIN: Duration = Duration::from_millis(10);
const OPEN_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// An open StreamingPull: frames of leased messages as the server pushes
/// them. Dropping it stops the stream (the server then stops pushing;
/// messages pushed but not read run out their leases).
#[derive(Debug)]
pub struct PushStream {
    recv: quinn::RecvStream,
    credit: PushCredit,
}

/// Grants credits to one push stream, on the connection the stream was
/// opened on (stream ids are per connection: after a reconnect the same
/// id may name another stream). Cheap to clone.
#[derive(Debug, Clone)]
pub struct PushCredit {
    client: Client,
    conn: quinn::Connection,
    stream: u64,
}

impl PushCredit {
    /// The push stream's id.
    pub fn stream(&self) -> u64 {
        self.stream
    }

    /// Gives the stream credits for `messages` more messages and `bytes`
    /// more bytes; the server holds at most 100,000 and 8 MiB, and one
    /// grant carries at most that ([`MAX_PUSH_CREDIT_MESSAGES`],
    /// [`MAX_PUSH_CREDIT_BYTES`]): more is sent as that much. (A frame may
    /// overdraw its byte credits by its last message, so what settling a
    /// frame gives back can exceed one grant.)
    ///
    /// # Errors
    ///
    /// [`Error::Server`] with `invalid_request` when the stream has ended;
    /// a transport error when its connection is gone (the stream with it).
    pub async fn grant(&self, messages: u32, bytes: u32) -> Result<()> {
        let request = Request::PushCredit(PushCreditRequest {
            stream: self.stream,
            messages: messages.min(MAX_PUSH_CREDIT_MESSAGES),
            bytes: bytes.min(MAX_PUSH_CREDIT_BYTES),
        });
        let frame = self.client.call_on(&self.conn, &request).await?;
        match decode_response(&frame)? {
            Response::PushCredit => Ok(()),
            other => Err(unexpected("PushCredit", &other)),
        }
    }
}

impl PushStream {
    /// The stream's id.
    pub fn id(&self) -> u64 {
        self.credit.stream
    }

    /// What grants this stream credits.
    pub fn credit(&self) -> PushCredit {
        self.credit.clone()
    }

    /// The next frame's messages; `Ok(None)` when the server ended the
    /// stream (it is shutting down: open another). Not cancel-safe: a
    /// call dropped half way through a frame leaves the stream unusable
    /// (drop it and open another).
    ///
    /// # Errors
    ///
    /// The error frame that ended the stream ([`Error::Server`], say
    /// `unknown_subscription` after a delete), a transport error, or
    /// [`Error::Protocol`] for a frame that does not decode.
    pub async fn next_frame(&mut self) -> Result<Option<Vec<ReceivedMessage>>> {
        let mut frame = vec![0; FRAME_HEADER_LEN];
        match self.recv.read_exact(&mut frame).await {
            Ok(()) => {}
            Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
            Err(quinn::ReadExactError::FinishedEarly(n)) => {
                return Err(Error::Protocol(format!(
                    "push stream ended {n} bytes into a frame header"
                )))
            }
            Err(quinn::ReadExactError::ReadError(e)) => return Err(Error::transport(e)),
        }
        let header = decode_header(&frame, MAX_FRAME_BODY_BYTES)
            .map_err(|e| Error::Protocol(e.to_string()))?
            .ok_or_else(|| Error::Protocol("short frame header".into()))?;
        // Bounded by the header check: at most MAX_FRAME_BODY_BYTES.
        frame.resize(FRAME_HEADER_LEN + header.body_len as usize, 0);
        self.recv
            .read_exact(&mut frame[FRAME_HEADER_LEN..])
            .await
            .map_err(|e| match e {
                quinn::ReadExactError::FinishedEarly(_) => {
                    Error::Protocol("push stream ended inside a frame".into())
                }
                quinn::ReadExactError::ReadError(e) => Error::transport(e),
            })?;
        pushed_messages(Bytes::from(frame)).map(Some)
    }
}

/// The messages of one push frame, sliced from it.
fn pushed_messages(frame: Bytes) -> Result<Vec<ReceivedMessage>> {
    match decode_response(&frame)? {
        Response::StreamingPull(messages) => Ok(messages
            .iter()
            .map(|m| ReceivedMessage::from_pulled(&frame, m))
            .collect()),
        other => Err(unexpected("StreamingPull", &other)),
    }
}

impl Client {
    /// Opens a push stream of `subscription`'s leased messages with
    /// credits for `max_messages` messages and about `max_bytes` bytes
    /// (1 to 100,000 and 1 B to 8 MiB; frames carry at most 10,000). Grant more with
    /// [`PushStream::credit`] as messages are handled; settle each with
    /// [`ack`](Self::ack) or [`nack`](Self::nack).
    /// [`Subscriber`](crate::Subscriber) does all of this for you.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRequest`] for credits out of range; a transport
    /// error. Refusals (an unknown subscription, no permission, too many
    /// push streams on the server) come as the stream's first frame, from
    /// [`PushStream::next_frame`].
    pub async fn streaming_pull(
        &self,
        subscription: &str,
        max_messages: u32,
        max_bytes: u32,
    ) -> Result<PushStream> {
        let request = Request::StreamingPull(StreamingPullRequest {
            subscription,
            max_messages,
            max_bytes,
        });
        let (conn, recv) = self.start_on_connection(&request).await?;
        let stream = quinn::VarInt::from(recv.id()).into_inner();
        Ok(PushStream {
            recv,
            credit: PushCredit {
                client: self.clone(),
                conn,
                stream,
            },
        })
    }
}

/// A frame the feed received (its leases started when it arrived).
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) messages: Vec<ReceivedMessage>,
}

/// Credits given back and not yet granted, and what the feed has received
/// that is not settled yet.
#[derive(Debug, Default)]
struct Credit {
    /// What grants credits to the push stream open now.
    stream: Option<PushCredit>,
    held_messages: u64,
    held_bytes: u64,
    returned_messages: u64,
    returned_bytes: u64,
}

/// A push stream kept open for a subscriber, with its frames on a channel.
#[derive(Debug)]
pub(crate) struct Feed {
    frames: mpsc::UnboundedReceiver<Result<Frame>>,
    task: JoinHandle<()>,
    /// Shared by every message the feed hands out.
    outstanding: Arc<Outstanding>,
}

impl Feed {
    /// Starts the feed's task; `on_frame` runs in it for every frame as it
    /// arrives (the subscriber starts the leases there).
    pub(crate) fn start(
        client: Client,
        subscription: Arc<str>,
        max_messages: u32,
        max_bytes: u32,
        on_frame: impl Fn(Instant, &[ReceivedMessage]) + Send + Sync + 'static,
    ) -> Feed {
        let (tx, frames) = mpsc::unbounded_channel();
        let credit = Arc::new(Mutex::new(Credit::default()));
        let task = tokio::spawn(run(
            client,
            subscription,
            (max_messages, max_bytes),
            credit.clone(),
            tx,
            on_frame,
        ));
        Feed {
            frames,
            task,
            outstanding: Arc::new(Outstanding {
                credit,
                max_messages,
                max_bytes,
            }),
        }
    }

    /// The next frame, or the error that stopped the feed (`None`: the
    /// feed's task is gone). Cancel-safe.
    pub(crate) async fn next(&mut self) -> Option<Result<Frame>> {
        self.frames.recv().await
    }

    /// What a message handed out from this feed gives its credits back
    /// through when it is settled.
    pub(crate) fn outstanding(&self) -> Arc<Outstanding> {
        self.outstanding.clone()
    }

    /// Stops the feed and returns the messages received but not taken.
    pub(crate) fn stop(mut self) -> Vec<ReceivedMessage> {
        self.task.abort();
        let mut left = Vec::new();
        while let Ok(frame) = self.frames.try_recv() {
            if let Ok(frame) = frame {
                left.extend(frame.messages);
            }
        }
        left
    }
}

/// The credits of a feed's messages that are out with the application
/// (Pub/Sub's outstanding messages): each gives its credit back once it is
/// settled (acked, nacked, or dropped), and the credits go to the server
/// once half of either kind has come back.
#[derive(Debug)]
pub(crate) struct Outstanding {
    credit: Arc<Mutex<Credit>>,
    max_messages: u32,
    max_bytes: u32,
}

impl Outstanding {
    /// A message of `bytes` (as [`ReceivedMessage::size`]) was settled.
    pub(crate) fn settled(&self, bytes: usize) {
        let bytes = bytes as u64;
        let grant = {
            let mut c = lock(&self.credit);
            c.held_messages = c.held_messages.saturating_sub(1);
            c.held_bytes = c.held_bytes.saturating_sub(bytes);
            c.returned_messages += 1;
            c.returned_bytes += bytes;
            let due = c.returned_messages * 2 >= u64::from(self.max_messages)
                || c.returned_bytes * 2 >= u64::from(self.max_bytes);
            match &c.stream {
                Some(credit) if due => {
                    let credit = credit.clone();
                    let m = std::mem::take(&mut c.returned_messages);
                    let b = std::mem::take(&mut c.returned_bytes);
                    Some((credit, m, b))
                }
                _ => None,
            }
        };
        let Some((credit, m, b)) = grant else {
            return;
        };
        let (m, b) = (clamp_u32(m), clamp_u32(b));
        // Settled outside a runtime (a handle dropped at exit): the
        // stream is going away anyway.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            // A refusal means the stream ended: the feed reopens it with
            // fresh credits.
            if let Err(e) = credit.grant(m, b).await {
                tracing::debug!(stream = credit.stream(), "push credit refused: {e}");
            }
        });
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(credit: &Mutex<Credit>) -> MutexGuard<'_, Credit> {
    credit
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn clamp_u32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The feed's task: opens a push stream with the credits the feed does
/// not hold, forwards its frames, and opens another when it ends or
/// fails retriably; stops after an error that is not retriable (or too
/// many retries), which it forwards.
async fn run(
    client: Client,
    subscription: Arc<str>,
    (max_messages, max_bytes): (u32, u32),
    credit: Arc<Mutex<Credit>>,
    tx: mpsc::UnboundedSender<Result<Frame>>,
    on_frame: impl Fn(Instant, &[ReceivedMessage]) + Sync,
) {
    let mut retries = 0;
    let mut backoff = OPEN_BACKOFF_MIN;
    loop {
        let received = std::sync::atomic::AtomicBool::new(false);
        let once = || {
            stream_once(
                &client,
                &subscription,
                (max_messages, max_bytes),
                &credit,
                &tx,
                &on_frame,
                &received,
            )
        };
        let error = match client.with_reauthentication(once).await {
            Ok(()) => return, // the subscriber is gone
            Err(e) => e,
        };
        if received.load(std::sync::atomic::Ordering::Relaxed) {
            retries = 0;
            backoff = OPEN_BACKOFF_MIN;
        }
        if error.is_retriable() && retries < OPEN_RETRIES {
            tracing::debug!(%subscription, "push stream failed, reopening in {backoff:?}: {error}");
            retries += 1;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(OPEN_BACKOFF_MAX);
            continue;
        }
        let _ = tx.send(Err(error));
        return;
    }
}

/// Opens one push stream with the credits the feed does not hold and
/// forwards its frames until it ends: `Ok` once the subscriber is gone,
/// else why the stream ended (`shutting_down` when the server finished
/// it). Sets `received` when a frame came.
async fn stream_once(
    client: &Client,
    subscription: &str,
    (max_messages, max_bytes): (u32, u32),
    credit: &Mutex<Credit>,
    tx: &mpsc::UnboundedSender<Result<Frame>>,
    on_frame: &impl Fn(Instant, &[ReceivedMessage]),
    received: &std::sync::atomic::AtomicBool,
) -> Result<()> {
    let (messages, bytes) = {
        let mut c = lock(credit);
        c.stream = None;
        c.returned_messages = 0;
        c.returned_bytes = 0;
        // What the feed already holds counts against the new stream.
        let m = u64::from(max_messages).saturating_sub(c.held_messages);
        let b = u64::from(max_bytes).saturating_sub(c.held_bytes);
        (clamp_u32(m).max(1), clamp_u32(b).max(1))
    };
    let mut stream = client.streaming_pull(subscription, messages, bytes).await?;
    lock(credit).stream = Some(stream.credit());
    while let Some(messages) = stream.next_frame().await? {
        let at = Instant::now();
        on_frame(at, &messages);
        {
            let mut c = lock(credit);
            c.held_messages += messages.len() as u64;
            c.held_bytes += messages.iter().map(|m| m.size() as u64).sum::<u64>();
        }
        received.store(true, std::sync::atomic::Ordering::Relaxed);
        if tx.send(Ok(Frame { messages })).is_err() {
            return Ok(());
        }
    }
    Err(Error::server(
        ErrorCode::ShuttingDown,
        "the server ended the push stream",
    ))
}
