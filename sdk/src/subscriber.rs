//! The subscriber: pulls a subscription's messages in batches, hands them
//! out one at a time as [`LeasedMessage`]s, and keeps their leases alive
//! while the application holds them (docs/SEMANTICS.md §5), as the Google
//! Pub/Sub clients do.
//!
//! Lease extension runs in a background task (the *lease keeper*), not
//! from inside [`Subscriber::next`] as [`GroupConsumer`](crate::GroupConsumer)
//! heartbeats: a lease needs extending exactly while the application is
//! busy with a message, which is when it is not calling `next`. The keeper
//! drives a plain state machine, [`Leases`] (`received`, `poll_work(now)`,
//! `poll_timeout()`, …, no I/O, tested with a virtual clock), sleeps until
//! its next due extension or until the subscriber or a message handle
//! wakes it, and sends one ModifyDeadline per batch of due leases. It
//! holds one entry per message pulled and not yet acked, nacked or
//! dropped, so its memory is bounded by the messages the application (and
//! the subscriber's buffer) hold; and it ends by itself once the
//! [`Subscriber`] is dropped and every message is settled.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tidegate_proto::protocol::{
    MAX_ACK_IDS, MAX_PULL_MESSAGES, MAX_PULL_WAIT_MS, MAX_PUSH_CREDIT_BYTES,
    MAX_PUSH_CREDIT_MESSAGES,
};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::push::{Feed, Outstanding};
use crate::subscription::{deadline_ms, AckId, ReceivedMessage, PULL_MAX_BYTES};
use crate::ErrorCode;

/// How often a pull that failed with a retriable error is tried again
/// before [`Subscriber::next`] returns the error (backoff from 10 ms to
/// 1 s: about 4 s in all, plus a reconnect attempt per try).
const PULL_RETRIES: u32 = 10;
/// First wait between pull retries; doubles on each retry.
const PULL_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// Longest wait between pull retries.
const PULL_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Shortest time between two pulls that came back empty, so a server that
/// answers empty at once (or a `max_wait` of zero) is not polled in a
/// tight loop.
const EMPTY_PULL_PAUSE: Duration = Duration::from_millis(100);
/// Wait before a lease extension that failed with a retriable error (the
/// connection was lost) is tried again.
const EXTEND_RETRY: Duration = Duration::from_secs(1);

/// How a [`Subscriber`] pulls and extends leases.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tidegate_client::SubscriberConfig;
///
/// let config = SubscriberConfig::default();
/// assert!(config.streaming);
/// assert_eq!(config.max_messages, 1_000);
/// assert_eq!(config.max_bytes, 4 << 20);
/// assert_eq!(config.max_wait, Duration::from_secs(5));
/// assert_eq!(config.max_lease_extension, Duration::from_secs(600));
/// assert_eq!(config.ack_deadline, None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberConfig {
    /// Streaming push (the default): the server pushes messages on one
    /// open stream as they come, within the subscriber's credits
    /// (`max_messages`, `max_bytes`), each given back when its message is
    /// settled. Off: the subscriber long-polls with Pull whenever its
    /// buffer is empty.
    pub streaming: bool,
    /// Push: most messages out with this subscriber and not settled
    /// (acked, nacked or dropped), in its buffer or held by the
    /// application, as Pub/Sub's max outstanding messages; more come as
    /// these are settled. Pull: what one pull asks for, the buffer's size.
    /// Default 1,000 (Pub/Sub's default), at most 10,000. In push mode it
    /// bounds throughput to this many per acknowledgement round trip.
    pub max_messages: u32,
    /// Push: about the most bytes (keys, values, headers) of those
    /// (default 4 MiB, at most 8 MiB). Pull asks for at most 4 MiB.
    pub max_bytes: u32,
    /// How long one pull waits on the server for a first message (default
    /// 5 s, at most 60 s).
    pub max_wait: Duration,
    /// How long after it was pulled a message's lease is still extended
    /// while it is held (default 10 min). After that the lease runs out
    /// and the message is delivered again, unless acked first.
    pub max_lease_extension: Duration,
    /// The subscription's ack deadline, if known: leases are extended at
    /// 80% of it. `None` (the default) asks the server once, in
    /// [`Subscriber::new`]. A hint longer than the real deadline lets
    /// leases expire before they are extended.
    pub ack_deadline: Option<Duration>,
}

impl Default for SubscriberConfig {
    fn default() -> Self {
        SubscriberConfig {
            streaming: true,
            max_messages: 1_000,
            max_bytes: PULL_MAX_BYTES,
            max_wait: Duration::from_secs(5),
            max_lease_extension: Duration::from_secs(10 * 60),
            ack_deadline: None,
        }
    }
}

/// Receives a subscription's messages, leases kept alive while they are
/// held.
///
/// [`next`](Subscriber::next) returns one [`LeasedMessage`] at a time from
/// a buffer of pulled messages, pulling the next batch when it is empty.
/// Settle each message with [`ack`](LeasedMessage::ack) (done: never
/// delivered again) or [`nack`](LeasedMessage::nack) (deliver it again
/// after the subscription's backoff). Until then the subscriber extends
/// its lease at 80% of the ack deadline, for up to
/// [`max_lease_extension`](SubscriberConfig::max_lease_extension) after
/// it was pulled; the same holds for messages waiting in the buffer.
///
/// Delivery is at least once: a message whose lease runs out (not settled
/// within `max_lease_extension`, or a lost connection for longer than a
/// lease) is delivered again, to this subscriber or another.
///
/// [`close`](Subscriber::close) (or dropping the subscriber, in the
/// background) nacks the messages still in its buffer; messages the
/// application still holds keep their leases extended until they are
/// settled or dropped.
///
/// # Example
///
/// ```no_run
/// use tidegate_client::{Client, Subscriber, SubscriberConfig};
///
/// # async fn run(client: Client) -> Result<(), tidegate_client::Error> {
/// let mut subscriber = Subscriber::new(client, "billing", SubscriberConfig::default()).await?;
/// loop {
///     let message = subscriber.next().await?;
///     println!("{}@{}: {:?}", message.partition, message.offset, message.value);
///     message.ack().await?;
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct Subscriber {
    client: Client,
    subscription: Arc<str>,
    config: SubscriberConfig,
    /// Pulled, not handed out yet; leased from the moment they arrived.
    buffer: VecDeque<ReceivedMessage>,
    /// The pull under way, kept here so that a cancelled `next` leaves it
    /// to the next call instead of dropping its messages.
    pull: Option<JoinHandle<Result<Pulled>>>,
    /// The push stream's feed (streaming mode), started by `next`.
    feed: Option<Feed>,
    /// Shared with the lease keeper and every message handed out.
    leases: Arc<LeaseShared>,
}

/// What a pull task gives back.
#[derive(Debug)]
struct Pulled {
    /// When the answer arrived: the leases started about then.
    at: Instant,
    messages: Vec<ReceivedMessage>,
}

impl Subscriber {
    /// A subscriber of `subscription`. Asks the server for the
    /// subscription's ack deadline unless
    /// [`SubscriberConfig::ack_deadline`] gives it, and starts the lease
    /// keeper (so it needs a tokio runtime).
    ///
    /// # Errors
    ///
    /// [`Error::Server`] with [`ErrorCode::UnknownSubscription`];
    /// [`Error::InvalidRequest`] for a `max_messages` outside
    /// `1..=10_000`, a `max_wait` over 60 s or an ack deadline of zero.
    pub async fn new(
        client: Client,
        subscription: &str,
        config: SubscriberConfig,
    ) -> Result<Subscriber> {
        check_config(&config)?;
        let ack_deadline = match config.ack_deadline {
            Some(deadline) => deadline,
            None => {
                client
                    .describe_subscription(subscription)
                    .await?
                    .subscription
                    .ack_deadline
            }
        };
        if ack_deadline.is_zero() {
            return Err(Error::InvalidRequest("ack deadline of zero".into()));
        }
        let subscription: Arc<str> = subscription.into();
        let leases = Arc::new(LeaseShared {
            leases: Mutex::new(Leases::new(ack_deadline, config.max_lease_extension)),
            wake: Notify::new(),
        });
        tokio::spawn(keep_leases(
            client.clone(),
            subscription.clone(),
            leases.clone(),
        ));
        Ok(Subscriber {
            client,
            subscription,
            config,
            buffer: VecDeque::new(),
            pull: None,
            feed: None,
            leases,
        })
    }

    /// The subscription's name.
    pub fn subscription(&self) -> &str {
        &self.subscription
    }

    /// The next message; pulls (long-polling, [`max_wait`] at a time) until
    /// there is one.
    ///
    /// Cancel-safe: dropping the future (a `select!`, a timeout) loses no
    /// message; a pull under way goes on and the next call takes its
    /// messages.
    ///
    /// # Errors
    ///
    /// A pull that failed for good: not retriable (an unknown
    /// subscription, a refused permission), or still failing after about
    /// 4 s of retries. The subscriber stays usable: calling `next` again
    /// pulls again.
    ///
    /// [`max_wait`]: SubscriberConfig::max_wait
    pub async fn next(&mut self) -> Result<LeasedMessage> {
        loop {
            if let Some(message) = self.buffer.pop_front() {
                let outstanding = self.feed.as_ref().map(Feed::outstanding);
                return Ok(LeasedMessage {
                    message,
                    lease: Lease {
                        client: self.client.clone(),
                        subscription: self.subscription.clone(),
                        leases: self.leases.clone(),
                        settled: false,
                        outstanding,
                    },
                });
            }
            if self.config.streaming {
                let feed = self.feed.get_or_insert_with(|| {
                    let leases = self.leases.clone();
                    Feed::start(
                        self.client.clone(),
                        self.subscription.clone(),
                        self.config.max_messages,
                        self.config.max_bytes,
                        move |at, messages| {
                            let ids: Vec<AckId> = messages.iter().map(|m| m.ack_id).collect();
                            leases.lock().received(at, &ids);
                            leases.wake.notify_one();
                        },
                    )
                });
                match feed.next().await {
                    Some(Ok(frame)) => self.buffer.extend(frame.messages),
                    Some(Err(e)) => {
                        self.feed = None;
                        return Err(e);
                    }
                    // The feed's task is gone without a word: start again.
                    None => self.feed = None,
                }
                continue;
            }
            let pull = self.pull.get_or_insert_with(|| {
                tokio::spawn(pull_with_retries(
                    self.client.clone(),
                    self.subscription.clone(),
                    self.config.max_messages,
                    self.config.max_wait,
                ))
            });
            let joined = pull.await;
            self.pull = None;
            let pulled = joined.map_err(Error::transport)??;
            let ids: Vec<AckId> = pulled.messages.iter().map(|m| m.ack_id).collect();
            self.leases.lock().received(pulled.at, &ids);
            self.leases.wake.notify_one();
            self.buffer.extend(pulled.messages);
        }
    }

    /// Stops: nacks the messages pulled but not handed out (they are
    /// delivered again after the backoff) and waits for the answer.
    /// Messages the application still holds keep their leases extended
    /// until they are settled or dropped. Dropping the subscriber does the
    /// same in the background, which a [`Client::close`] right after can
    /// cut short (those leases then run out instead).
    ///
    /// # Errors
    ///
    /// The nack's; the subscriber is gone either way.
    pub async fn close(mut self) -> Result<()> {
        if let Some(pull) = self.pull.take() {
            pull.abort();
        }
        if let Some(feed) = self.feed.take() {
            self.buffer.extend(feed.stop());
        }
        let ids: Vec<AckId> = self.buffer.drain(..).map(|m| m.ack_id).collect();
        {
            let mut leases = self.leases.lock();
            for id in &ids {
                leases.settled(*id);
            }
        }
        if ids.is_empty() {
            return Ok(());
        }
        self.client.nack(&self.subscription, &ids).await.map(drop)
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        if let Some(pull) = self.pull.take() {
            // Its messages, if any arrive, are left to their leases.
            pull.abort();
        }
        if let Some(feed) = self.feed.take() {
            self.buffer.extend(feed.stop());
        }
        let mut leases = self.leases.lock();
        for message in self.buffer.drain(..) {
            leases.dropped(message.ack_id);
        }
        leases.close();
        drop(leases);
        self.leases.wake.notify_one();
    }
}

fn check_config(config: &SubscriberConfig) -> Result<()> {
    if config.max_wait > Duration::from_millis(MAX_PULL_WAIT_MS.into()) {
        return Err(Error::InvalidRequest(format!(
            "max_wait of {:?} is over {MAX_PULL_WAIT_MS} ms",
            config.max_wait
        )));
    }
    if !(1..=MAX_PUSH_CREDIT_BYTES).contains(&config.max_bytes) {
        return Err(Error::InvalidRequest(format!(
            "max_bytes of {} is outside 1..={MAX_PUSH_CREDIT_BYTES}",
            config.max_bytes
        )));
    }
    if !(1..=MAX_PULL_MESSAGES.min(MAX_PUSH_CREDIT_MESSAGES)).contains(&config.max_messages) {
        return Err(Error::InvalidRequest(format!(
            "max_messages of {} is outside 1..={MAX_PULL_MESSAGES}",
            config.max_messages
        )));
    }
    Ok(())
}

/// One pull, retried while it fails with a retriable error; an empty
/// answer that came back early is followed by a pause, and the pull is
/// sent again.
async fn pull_with_retries(
    client: Client,
    subscription: Arc<str>,
    max_messages: u32,
    max_wait: Duration,
) -> Result<Pulled> {
    let mut retries = 0;
    let mut backoff = PULL_BACKOFF_MIN;
    loop {
        let sent = Instant::now();
        match client.pull(&subscription, max_messages, max_wait).await {
            Ok(messages) if messages.is_empty() => {
                tokio::time::sleep_until(sent + EMPTY_PULL_PAUSE).await;
            }
            Ok(messages) => {
                return Ok(Pulled {
                    at: Instant::now(),
                    messages,
                })
            }
            Err(e) if e.is_retriable() && retries < PULL_RETRIES => {
                tracing::debug!(%subscription, "pull failed, retrying in {backoff:?}: {e}");
                retries += 1;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(PULL_BACKOFF_MAX);
            }
            Err(e) => return Err(e),
        }
    }
}

/// A message from [`Subscriber::next`], leased to this subscriber until
/// it is settled. Its fields are the [`ReceivedMessage`]'s (it derefs to
/// it).
///
/// While it is held, the subscriber extends its lease (see
/// [`Subscriber`]). Settle it with [`ack`](Self::ack) or
/// [`nack`](Self::nack). **Dropping it unsettled is a nack**, sent in the
/// background: the message is delivered again after the subscription's
/// backoff, rather than waiting for its lease to run out; if the
/// connection is gone by then, the lease runs out instead, with the same
/// outcome a little later.
#[derive(Debug)]
pub struct LeasedMessage {
    message: ReceivedMessage,
    lease: Lease,
}

/// The handle's side of its lease.
#[derive(Debug)]
struct Lease {
    client: Client,
    subscription: Arc<str>,
    leases: Arc<LeaseShared>,
    /// Acked or nacked (or being): nothing to do on drop.
    settled: bool,
    /// Push: where its credit goes back once settled.
    outstanding: Option<Arc<Outstanding>>,
}

impl Lease {
    /// Gives the message's push credit back (once).
    fn release(&mut self, bytes: usize) {
        if let Some(outstanding) = self.outstanding.take() {
            outstanding.settled(bytes);
        }
    }
}

impl std::ops::Deref for LeasedMessage {
    type Target = ReceivedMessage;

    fn deref(&self) -> &ReceivedMessage {
        &self.message
    }
}

impl LeasedMessage {
    /// The message.
    pub fn message(&self) -> &ReceivedMessage {
        &self.message
    }

    /// Acknowledges the message: it is never delivered again. Returns once
    /// the server has made the ack durable.
    ///
    /// # Errors
    ///
    /// [`Error::Server`] with [`ErrorCode::LeaseExpired`] when the lease
    /// ran out first (the message will be, or was, delivered again);
    /// the request's errors (after a [`Error::Transport`] the ack may or
    /// may not have been stored; if not, the message comes again).
    pub async fn ack(mut self) -> Result<()> {
        self.settle(None).await
    }

    /// Gives the message back: it is delivered again after the
    /// subscription's backoff.
    ///
    /// # Errors
    ///
    /// As [`ack`](Self::ack); a refused nack changes nothing, since the
    /// message is delivered again anyway.
    pub async fn nack(mut self) -> Result<()> {
        self.settle(Some(Duration::ZERO)).await
    }

    /// Sets the lease to end `deadline` from now (at most 12 h), say
    /// before a long step of work. The subscriber goes on extending it
    /// from there, at 80% of `deadline`, until
    /// [`max_lease_extension`](SubscriberConfig::max_lease_extension)
    /// after the message was pulled.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRequest`] for a zero `deadline` (that is a
    /// [`nack`](Self::nack)) or one over 12 h; as [`ack`](Self::ack).
    pub async fn extend(&mut self, deadline: Duration) -> Result<()> {
        if deadline.is_zero() {
            return Err(Error::InvalidRequest(
                "an extension of zero is a nack: call nack()".into(),
            ));
        }
        let id = self.message.ack_id;
        let results = self
            .lease
            .client
            .modify_deadline(&self.lease.subscription, &[id], deadline)
            .await?;
        one_result(&results, id, "extension")?;
        self.lease
            .leases
            .lock()
            .extended(Instant::now(), id, deadline);
        self.lease.leases.wake.notify_one();
        Ok(())
    }

    /// Ack (`None`) or nack; the lease keeper forgets the message first,
    /// so it is not extended while the answer is awaited.
    async fn settle(&mut self, deadline: Option<Duration>) -> Result<()> {
        let id = self.message.ack_id;
        self.lease.settled = true;
        self.lease.leases.lock().settled(id);
        let (client, subscription) = (&self.lease.client, &*self.lease.subscription);
        let results = match deadline {
            None => client.ack(subscription, &[id]).await,
            Some(deadline) => client.modify_deadline(subscription, &[id], deadline).await,
        };
        // Its push credit goes back once the server has the answer, so the
        // server never counts more than `max_messages` out at once. (A
        // cancelled settle gives it back on drop.)
        self.lease.release(self.message.size());
        let what = if deadline.is_none() { "ack" } else { "nack" };
        one_result(&results?, id, what)
    }
}

impl Drop for LeasedMessage {
    fn drop(&mut self) {
        self.lease.release(self.message.size());
        if self.lease.settled {
            return;
        }
        self.lease.leases.lock().dropped(self.message.ack_id);
        self.lease.leases.wake.notify_one();
    }
}

/// The result of one id's settlement as an error for the caller.
fn one_result(results: &[std::result::Result<(), ErrorCode>], id: AckId, what: &str) -> Result<()> {
    match results {
        [Ok(())] => Ok(()),
        [Err(code)] => Err(Error::server(*code, format!("{what} of {id} refused"))),
        other => Err(Error::Protocol(format!(
            "{} results for one ack id",
            other.len()
        ))),
    }
}

/// The lease state shared by the subscriber, its messages and the keeper.
#[derive(Debug)]
struct LeaseShared {
    /// Held only to read or change the state, never across an `.await`.
    leases: Mutex<Leases>,
    /// Wakes the keeper: leases received, a message dropped, the
    /// subscriber gone. A permit is kept if the keeper is not waiting, so
    /// no wake-up is lost.
    wake: Notify,
}

impl LeaseShared {
    fn lock(&self) -> MutexGuard<'_, Leases> {
        // Nothing panics while the lock is held; a poisoned state is whole.
        self.leases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The lease keeper: sends what [`Leases`] says is due, sleeps until the
/// next due time or a wake-up, and ends when the subscriber is gone and
/// no message is held, or the client is closed.
async fn keep_leases(client: Client, subscription: Arc<str>, shared: Arc<LeaseShared>) {
    loop {
        let (work, wake_at) = {
            let mut leases = shared.lock();
            if leases.is_finished() {
                return;
            }
            (leases.poll_work(Instant::now()), leases.poll_timeout())
        };
        if !work.is_empty() {
            if send_work(&client, &subscription, &shared, work)
                .await
                .is_err()
            {
                return;
            }
            continue;
        }
        match wake_at {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = shared.wake.notified() => {}
                }
            }
            None => shared.wake.notified().await,
        }
    }
}

/// Sends the nacks and extensions of `work`; feeds the outcomes back.
/// `Err` when the client is closed: the keeper then stops.
async fn send_work(
    client: &Client,
    subscription: &str,
    shared: &LeaseShared,
    work: Work,
) -> std::result::Result<(), ()> {
    for ids in work.nacks.chunks(MAX_ACK_IDS as usize) {
        match client.nack(subscription, ids).await {
            Ok(_) => {}
            Err(Error::Closed) => return Err(()),
            // The leases run out instead: the same outcome, later.
            Err(e) => tracing::debug!(%subscription, "nack of dropped messages failed: {e}"),
        }
    }
    for (deadline_ms, ids) in work.extensions {
        let deadline = Duration::from_millis(deadline_ms.into());
        for ids in ids.chunks(MAX_ACK_IDS as usize) {
            let outcome = client.modify_deadline(subscription, ids, deadline).await;
            let mut leases = shared.lock();
            match outcome {
                Ok(results) => {
                    let refused = ids
                        .iter()
                        .zip(&results)
                        .filter(|(_, r)| r.is_err())
                        .map(|(id, _)| *id);
                    leases.forget(refused);
                }
                Err(Error::Closed) => return Err(()),
                Err(e) if e.is_retriable() => {
                    tracing::debug!(%subscription, "lease extension failed, retrying: {e}");
                    leases.retry_later(Instant::now(), ids);
                }
                Err(e) => {
                    tracing::warn!(%subscription, "lease extension refused, leases will run out: {e}");
                    leases.forget(ids.iter().copied());
                }
            }
        }
    }
    Ok(())
}

/// What the keeper is to send now.
#[derive(Debug, Default, PartialEq, Eq)]
struct Work {
    /// Messages dropped unsettled.
    nacks: Vec<AckId>,
    /// `(deadline in ms, leases to extend by it)`.
    extensions: Vec<(u32, Vec<AckId>)>,
}

impl Work {
    fn is_empty(&self) -> bool {
        self.nacks.is_empty() && self.extensions.is_empty()
    }
}

/// One held message's lease, as this side believes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LeaseEntry {
    /// When it was pulled: extensions stop `max_extension` after.
    received: Instant,
    /// When the extension is due: at 80% of the current lease.
    extend_at: Instant,
    /// From when it may be extended early, with others due a little
    /// sooner, in one request: at 70% of the current lease.
    due_from: Instant,
    /// When the current lease ends.
    expires: Instant,
}

impl LeaseEntry {
    /// A lease of `length` from `now`.
    fn new(received: Instant, now: Instant, length: Duration) -> LeaseEntry {
        LeaseEntry {
            received,
            extend_at: now + length * 4 / 5,
            due_from: now + length * 7 / 10,
            expires: now + length,
        }
    }
}

/// The leases of the messages a subscriber holds: when each is due for
/// extension, by how much, and when extension stops. A state machine
/// without I/O or a clock of its own: events in (`received`, `settled`,
/// `dropped`, `extended`, `close`, and the outcomes `forget` and
/// `retry_later`), `poll_work(now)` and `poll_timeout()` out.
#[derive(Debug)]
struct Leases {
    /// The subscription's ack deadline: the length of each extension.
    deadline: Duration,
    /// No extension past `received + max_extension`.
    max_extension: Duration,
    entries: HashMap<AckId, LeaseEntry>,
    /// Dropped unsettled, to be nacked.
    nacks: Vec<AckId>,
    /// The subscriber is gone: stop once nothing is held.
    closed: bool,
}

impl Leases {
    fn new(deadline: Duration, max_extension: Duration) -> Leases {
        assert!(!deadline.is_zero(), "an ack deadline of zero");
        Leases {
            deadline,
            max_extension,
            entries: HashMap::new(),
            nacks: Vec::new(),
            closed: false,
        }
    }

    /// Messages pulled at `now`, leased for the subscription's deadline.
    fn received(&mut self, now: Instant, ids: &[AckId]) {
        for id in ids {
            let entry = LeaseEntry::new(now, now, self.deadline);
            self.entries.insert(*id, entry);
        }
    }

    /// The application set the lease of `id` to `length` from `now`.
    fn extended(&mut self, now: Instant, id: AckId, length: Duration) {
        if let Some(entry) = self.entries.get_mut(&id) {
            *entry = LeaseEntry::new(entry.received, now, length);
        }
    }

    /// Acked or nacked by the application: no longer extended.
    fn settled(&mut self, id: AckId) {
        self.entries.remove(&id);
    }

    /// Dropped unsettled: nacked, then forgotten.
    fn dropped(&mut self, id: AckId) {
        if self.entries.remove(&id).is_some() {
            self.nacks.push(id);
        }
    }

    /// Leases the server refused to extend (over already, or unknown to
    /// it): nothing more to do for them.
    fn forget(&mut self, ids: impl IntoIterator<Item = AckId>) {
        for id in ids {
            self.entries.remove(&id);
        }
    }

    /// An extension of `ids` may not have reached the server: try again
    /// soon. Where their leases end is unknown now, so any extension
    /// counts as outlasting them.
    fn retry_later(&mut self, now: Instant, ids: &[AckId]) {
        for id in ids {
            if let Some(entry) = self.entries.get_mut(id) {
                entry.extend_at = now + EXTEND_RETRY;
                entry.due_from = entry.extend_at;
                entry.expires = now;
            }
        }
    }

    /// The subscriber is gone.
    fn close(&mut self) {
        self.closed = true;
    }

    /// True when there is nothing left to do, ever.
    fn is_finished(&self) -> bool {
        self.closed && self.entries.is_empty() && self.nacks.is_empty()
    }

    /// What to send at `now`: every pending nack, and every lease in its
    /// extension window, grouped by the deadline to extend it by. A lease
    /// whose extension would not outlast what it has (its
    /// `max_extension` is reached) is forgotten and left to run out. Each
    /// lease extended is assumed to be so from `now`; an extension that
    /// fails is fed back through [`retry_later`](Self::retry_later) or
    /// [`forget`](Self::forget).
    fn poll_work(&mut self, now: Instant) -> Work {
        let nacks = std::mem::take(&mut self.nacks);
        let mut by_deadline: BTreeMap<u32, Vec<AckId>> = BTreeMap::new();
        let mut over = Vec::new();
        for (id, entry) in &mut self.entries {
            if now < entry.due_from {
                continue;
            }
            let limit = entry.received + self.max_extension;
            let length = self.deadline.min(limit.saturating_duration_since(now));
            if now + length <= entry.expires {
                over.push(*id);
                continue;
            }
            *entry = LeaseEntry::new(entry.received, now, length);
            by_deadline
                .entry(deadline_ms(length))
                .or_default()
                .push(*id);
        }
        self.forget(over);
        Work {
            nacks,
            extensions: by_deadline.into_iter().collect(),
        }
    }

    /// When the next extension is due, after [`poll_work`](Self::poll_work)
    /// took what was due; `None` when nothing is held: wait for an event
    /// (a nack is an event, sent by the next `poll_work`).
    fn poll_timeout(&self) -> Option<Instant> {
        self.entries.values().map(|e| e.extend_at).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn id(n: u8) -> AckId {
        AckId::from([n; 16])
    }

    fn leases() -> Leases {
        // 30 s deadline, extended for up to 100 s.
        Leases::new(30 * SEC, 100 * SEC)
    }

    #[test]
    fn a_lease_is_extended_at_80_percent_of_the_deadline() {
        let t0 = Instant::now();
        let mut l = leases();
        l.received(t0, &[id(1)]);
        assert_eq!(l.poll_timeout(), Some(t0 + 24 * SEC));
        assert!(l.poll_work(t0 + 20 * SEC).is_empty());
        let work = l.poll_work(t0 + 24 * SEC);
        assert_eq!(work.extensions, [(30_000, vec![id(1)])]);
        // The next one at 80% of the new lease.
        assert_eq!(l.poll_timeout(), Some(t0 + 48 * SEC));
        assert!(l.poll_work(t0 + 25 * SEC).is_empty());
    }

    #[test]
    fn leases_due_close_together_go_in_one_request() {
        let t0 = Instant::now();
        let mut l = leases();
        l.received(t0, &[id(1), id(2)]);
        l.received(t0 + 2 * SEC, &[id(3)]);
        l.received(t0 + 10 * SEC, &[id(4)]);
        let work = l.poll_work(t0 + 24 * SEC);
        let [(30_000, ids)] = work.extensions.as_slice() else {
            panic!("{work:?}")
        };
        let mut ids = ids.clone();
        ids.sort();
        // id(3) is due at 26 s, within its window (from 23 s); id(4) is not.
        assert_eq!(ids, [id(1), id(2), id(3)]);
        assert_eq!(l.poll_timeout(), Some(t0 + 34 * SEC));
    }

    #[test]
    fn extension_stops_at_max_lease_extension() {
        let t0 = Instant::now();
        let mut l = leases();
        l.received(t0, &[id(1)]);
        let mut now = t0;
        let mut deadlines = Vec::new();
        while let Some(at) = l.poll_timeout() {
            now = at;
            for (deadline_ms, _) in l.poll_work(now).extensions {
                deadlines.push(deadline_ms);
            }
        }
        // At 24 s to 54 s, at 48 s to 78 s, at 72 s to 100 s (the cap);
        // at 94.4 s nothing more can be had.
        assert_eq!(deadlines, [30_000, 30_000, 28_000]);
        assert!(l.entries.is_empty(), "forgotten once it cannot outlast");
        assert!(now <= t0 + 100 * SEC);
        assert_eq!(l.poll_timeout(), None, "nothing held: no timer");
    }

    #[test]
    fn a_settled_message_is_not_extended_and_a_dropped_one_is_nacked_once() {
        let t0 = Instant::now();
        let mut l = leases();
        l.received(t0, &[id(1), id(2)]);
        l.settled(id(1));
        l.dropped(id(2));
        l.dropped(id(2));
        let work = l.poll_work(t0);
        assert_eq!(work.nacks, [id(2)]);
        assert!(work.extensions.is_empty());
        assert!(l.poll_work(t0 + 60 * SEC).is_empty());
        assert_eq!(l.poll_timeout(), None);
    }

    #[test]
    fn a_nack_is_sent_at_once_whatever_the_extension_schedule() {
        let t0 = Instant::now();
        let mut l = leases();
        l.received(t0, &[id(1), id(2)]);
        l.dropped(id(1));
        let work = l.poll_work(t0);
        assert_eq!((work.nacks, work.extensions), (vec![id(1)], vec![]));
        assert_eq!(l.poll_timeout(), Some(t0 + 24 * SEC));
    }

    #[test]
    fn a_failed_extension_is_retried_and_a_refused_one_forgotten() {
        let t0 = Instant::now();
        let mut l = leases();
        l.received(t0, &[id(1), id(2)]);
        let now = t0 + 24 * SEC;
        assert_eq!(l.poll_work(now).extensions.len(), 1);
        l.retry_later(now, &[id(1)]);
        l.forget([id(2)]);
        assert_eq!(l.poll_timeout(), Some(now + EXTEND_RETRY));
        let work = l.poll_work(now + EXTEND_RETRY);
        assert_eq!(work.extensions, [(30_000, vec![id(1)])]);
    }

    #[test]
    fn an_extension_by_the_application_moves_the_schedule() {
        let t0 = Instant::now();
        let mut l = leases();
        l.received(t0, &[id(1)]);
        l.extended(t0 + 5 * SEC, id(1), 10 * SEC);
        assert_eq!(l.poll_timeout(), Some(t0 + 13 * SEC));
        // Then by the subscription's deadline again.
        assert_eq!(
            l.poll_work(t0 + 13 * SEC).extensions,
            [(30_000, vec![id(1)])]
        );
    }

    #[test]
    fn keeper_finishes_only_when_closed_and_nothing_is_left() {
        let t0 = Instant::now();
        let mut l = leases();
        assert!(
            !l.is_finished(),
            "a live subscriber with nothing held waits"
        );
        l.received(t0, &[id(1), id(2)]);
        l.close();
        assert!(!l.is_finished(), "messages still held are extended");
        l.settled(id(1));
        l.dropped(id(2));
        assert!(!l.is_finished(), "a nack is still to send");
        assert_eq!(l.poll_work(t0).nacks, [id(2)]);
        assert!(l.is_finished());
    }
}
