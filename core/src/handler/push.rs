//! Streaming push (docs/SEMANTICS.md §5): a StreamingPull keeps its
//! response stream open, and a task on the connection's shard pushes the
//! subscription's messages on it, one frame per take, within the credits
//! the subscriber granted (in the request, then by PushCredit requests on
//! their own streams).
//!
//! Each push takes from the partitions exactly as a Pull does (same
//! `take`, same leases), so several subscribers on one subscription,
//! pulling or pushed to, share its messages. Memory: a stream holds at
//! most its credits (at most [`MAX_PUSH_CREDIT_BYTES`] plus one message)
//! of messages its client has not handled, and no frame is taken while
//! more than that waits unsent (a client that grants credits and never
//! reads); a shard has at most `subscriptions.push_streams_max` streams.

use std::{
    cell::{Cell, RefCell},
    collections::HashMap,
    rc::Rc,
    time::Duration,
};

use bytes::Bytes;
use event_listener::Event;
use futures::future::{select, Either};
use tidegate_auth::Operation;
use tidegate_net::{Peer, RequestIn, Responder, ResponseStream};
use tidegate_proto::protocol::{
    ErrorCode, Kind, PushCreditRequest, Request, Response, StreamingPullRequest, MAX_PULL_MESSAGES,
    MAX_PUSH_CREDIT_BYTES, MAX_PUSH_CREDIT_MESSAGES,
};

use super::{
    encode, error,
    subscriptions::{subscription, take_round, wait_any, Taken},
};
use crate::{
    catalog::TopicMeta,
    router::{now_ms, Router},
    shard::{Failure, Op},
    subscription::AckId,
};

/// How long a push stream with credits waits for a message before it
/// checks again that its subscription exists and that its principal may
/// still read it.
const IDLE_RECHECK_MS: u32 = 2_000;

/// The push streams of one shard's connections, with their credits.
pub(crate) struct Pushes {
    /// By connection (the address of its [`Peer`], which every
    /// registration keeps alive, so no other connection can have it) and
    /// stream id.
    streams: RefCell<HashMap<(usize, u64), Rc<Credits>>>,
    max: usize,
    /// Messages pushed since start.
    pushed: Cell<u64>,
}

impl Pushes {
    pub(crate) fn new(max: u32) -> Self {
        Pushes {
            streams: RefCell::default(),
            max: usize::try_from(max).unwrap_or(usize::MAX),
            pushed: Cell::new(0),
        }
    }

    /// (Push streams open now, their bound, messages pushed since start.)
    pub(crate) fn stats(&self) -> (u64, u64, u64) {
        let open = self.streams.borrow().len();
        (open as u64, self.max as u64, self.pushed.get())
    }
}

/// What a push stream may still send.
struct Credits {
    messages: Cell<u32>,
    /// Signed: a frame may overdraw by its last message.
    bytes: Cell<i64>,
    granted: Event,
}

impl Credits {
    fn new(messages: u32, bytes: u32) -> Self {
        Credits {
            messages: Cell::new(messages.min(MAX_PUSH_CREDIT_MESSAGES)),
            bytes: Cell::new(i64::from(bytes.min(MAX_PUSH_CREDIT_BYTES))),
            granted: Event::new(),
        }
    }

    /// Adds credits, capped at what one stream may hold.
    fn grant(&self, messages: u32, bytes: u32) {
        let m = self.messages.get().saturating_add(messages);
        self.messages.set(m.min(MAX_PUSH_CREDIT_MESSAGES));
        let b = self.bytes.get().saturating_add(i64::from(bytes));
        self.bytes.set(b.min(i64::from(MAX_PUSH_CREDIT_BYTES)));
        self.granted.notify(usize::MAX);
    }

    fn spend(&self, messages: usize, bytes: usize) {
        let m = u32::try_from(messages).unwrap_or(u32::MAX);
        self.messages.set(self.messages.get().saturating_sub(m));
        let b = i64::try_from(bytes).unwrap_or(i64::MAX);
        self.bytes.set(self.bytes.get().saturating_sub(b));
    }

    /// (messages, bytes) the next frame may carry, if any: a frame holds
    /// at most what one Pull answer may (a stream may hold more credits).
    fn available(&self) -> Option<(usize, usize)> {
        let (m, b) = (self.messages.get(), self.bytes.get());
        let m = m.min(MAX_PULL_MESSAGES);
        (m > 0 && b > 0).then(|| (m as usize, usize::try_from(b).unwrap_or(0)))
    }

    /// Resolves once credits are available.
    async fn wait(&self) {
        loop {
            let listener = self.granted.listen();
            if self.available().is_some() {
                return;
            }
            listener.await;
        }
    }
}

/// A push stream's place in [`Pushes`], given up on drop.
struct Registered<'a> {
    pushes: &'a Pushes,
    key: (usize, u64),
    credits: Rc<Credits>,
    /// Keeps the peer, whose address is half the key, alive.
    _peer: Rc<Peer>,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.pushes.streams.borrow_mut().remove(&self.key);
    }
}

fn connection_key(peer: &Peer) -> usize {
    std::ptr::from_ref(peer) as usize
}

/// Answers PushCredit: adds credits to a push stream of the same
/// connection.
pub(super) fn credit(
    router: &Router,
    peer: &Peer,
    request: PushCreditRequest,
) -> Result<Vec<Bytes>, Failure> {
    let key = (connection_key(peer), request.stream);
    let credits = router.pushes.streams.borrow().get(&key).cloned();
    let Some(credits) = credits else {
        return Err(Failure::new(
            ErrorCode::InvalidRequest,
            format!(
                "no push stream {} on this connection (it ended)",
                request.stream
            ),
        ));
    };
    credits.grant(request.messages, request.bytes);
    Ok(encode(&Response::PushCredit))
}

/// Serves a StreamingPull until the client stops the stream, the
/// connection is lost, the shard stops, or the subscription fails (an
/// error frame ends the stream then). A request refused before the
/// stream opens (malformed, unknown subscription, not authorized, too
/// many streams) is answered like any other.
pub(crate) async fn stream(
    router: Rc<Router>,
    request: RequestIn,
    responder: Responder,
    max_body: usize,
) {
    let (conn, id) = (request.conn, request.stream);
    let probe = crate::metrics::RequestProbe::start(&request.data, max_body);
    let kind = Kind::StreamingPull.request_code();
    let open = match super::decode(&request.data, max_body) {
        Ok(Request::StreamingPull(open)) => open,
        Ok(_) => {
            let parts = error(kind, ErrorCode::InvalidRequest, "not a StreamingPull");
            return responder.respond(conn, id, probe.finish(parts));
        }
        Err(parts) => return responder.respond(conn, id, parts),
    };
    if let Err(f) = authorized(&router, &request.peer, &open) {
        let parts = error(kind, f.code, &f.message);
        return responder.respond(conn, id, probe.finish(parts));
    }
    let stream_id = quinn_proto::VarInt::from(id).into_inner();
    let registered = {
        let mut streams = router.pushes.streams.borrow_mut();
        if streams.len() >= router.pushes.max {
            None
        } else {
            let credits = Rc::new(Credits::new(open.max_messages, open.max_bytes));
            let key = (connection_key(&request.peer), stream_id);
            streams.insert(key, credits.clone());
            Some(Registered {
                pushes: &router.pushes,
                key,
                credits,
                _peer: request.peer.clone(),
            })
        }
    };
    let Some(registered) = registered else {
        let message = format!(
            "this shard has subscriptions.push_streams_max ({}) push streams open",
            router.pushes.max
        );
        let parts = error(kind, ErrorCode::Busy, &message);
        return responder.respond(conn, id, probe.finish(parts));
    };
    let Some(out) = responder.open_stream(conn, id) else {
        return; // the client went away first
    };
    probe.finish(Vec::new());
    let last = push(&router, &request.peer, &open, &out, &registered.credits).await;
    if let Some(parts) = last {
        out.finish(parts);
    }
    drop(registered);
}

/// The subscription's check, as for Pull: it exists and the principal may
/// consume its topic.
fn authorized(
    router: &Router,
    peer: &Peer,
    open: &StreamingPullRequest<'_>,
) -> Result<crate::catalog::SubscriptionMeta, Failure> {
    let now = u64::try_from(now_ms()).unwrap_or(0);
    let allowed = router
        .access
        .check(peer, &Request::StreamingPull(*open), now)?;
    subscription(
        router,
        peer,
        &allowed,
        open.subscription,
        Operation::Consume,
    )
}

/// Pushes until the stream ends; returns what to finish it with (nothing
/// when the client closed it).
async fn push(
    router: &Router,
    peer: &Peer,
    open: &StreamingPullRequest<'_>,
    out: &ResponseStream,
    credits: &Credits,
) -> Option<Vec<Bytes>> {
    let kind = Kind::StreamingPull.request_code();
    loop {
        if out.is_closed() {
            return None;
        }
        if router.shard.stopping.get() {
            return Some(Vec::new());
        }
        // Credits bound what the client has not handled; this bounds what
        // it has not read: a client that grants credits and never reads
        // holds at most its credits' worth here (plus one frame).
        if out.unsent_bytes() > MAX_PUSH_CREDIT_BYTES as usize {
            let room = out.writable(MAX_PUSH_CREDIT_BYTES as usize);
            until_closed_or_stopped(router, out, room).await;
            continue;
        }
        let Some((messages, bytes)) = credits.available() else {
            // Rechecked now and then even without credits, so a deleted
            // subscription or a revoked principal ends the stream.
            let recheck = std::pin::pin!(glommio::timer::sleep(Duration::from_millis(
                IDLE_RECHECK_MS.into()
            )));
            let wait = std::pin::pin!(credits.wait());
            until_closed_or_stopped(router, out, select(wait, recheck)).await;
            if credits.available().is_none() {
                if let Err(f) = authorized(router, peer, open) {
                    return Some(error(kind, f.code, &f.message));
                }
            }
            continue;
        };
        // Every frame is authorized anew: a token expires, a policy is
        // reloaded, a subscription is deleted while its stream is open.
        let taken = match take(router, peer, open, messages, bytes).await {
            Ok(Found::Some(taken)) => taken,
            Ok(Found::None(sub, topic)) => {
                // Only the wait races the stream's end: a take cut short
                // would lease messages that nobody gets.
                let wait = wait_any(router, &sub, &topic, IDLE_RECHECK_MS);
                match until_closed_or_stopped(router, out, wait).await {
                    Some(Err(f)) => return Some(error(kind, f.code, &f.message)),
                    Some(Ok(())) | None => continue,
                }
            }
            Err(f) => return Some(error(kind, f.code, &f.message)),
        };
        credits.spend(taken.messages.len(), taken.bytes);
        let count = taken.messages.len() as u64;
        let frame = encode(&Response::StreamingPull(taken.to_wire()));
        if !out.send(frame) {
            // They never left: give them back now rather than when their
            // leases run out.
            nack(router, open.subscription, &taken).await;
            return None;
        }
        let pushed = &router.pushes.pushed;
        pushed.set(pushed.get() + count);
    }
}

/// What one take found.
enum Found {
    Some(Taken),
    /// Nothing: the subscription's name and topic, to wait on.
    None(String, TopicMeta),
}

/// The messages of the next frame, after checking the subscription.
async fn take(
    router: &Router,
    peer: &Peer,
    open: &StreamingPullRequest<'_>,
    messages: usize,
    bytes: usize,
) -> Result<Found, Failure> {
    let sub = authorized(router, peer, open)?;
    let topic = router.shard.topic(&sub.topic)?;
    let mut taken = Taken::default();
    take_round(router, &sub.name, &topic, messages, bytes, &mut taken).await?;
    if taken.messages.is_empty() {
        return Ok(Found::None(sub.name, topic));
    }
    Ok(Found::Some(taken))
}

/// Runs `work` until it resolves (`Some` of its output), the stream
/// closes or the shard stops (`None`).
async fn until_closed_or_stopped<T>(
    router: &Router,
    out: &ResponseStream,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    let work = std::pin::pin!(work);
    let closed = std::pin::pin!(out.closed());
    let stopped = std::pin::pin!(router.shard.stopped());
    match select(work, select(closed, stopped)).await {
        Either::Left((done, _)) => Some(done),
        Either::Right(_) => None,
    }
}

/// Ends the leases of messages taken for a stream that closed before they
/// were sent (a nack: due again after the backoff).
async fn nack(router: &Router, subscription: &str, taken: &Taken) {
    let Ok(topic) = router
        .shard
        .catalog
        .borrow()
        .subscription(subscription)
        .map(|s| s.topic.clone())
        .ok_or(())
    else {
        return;
    };
    let Ok(topic) = router.shard.topic(&topic) else {
        return;
    };
    let mut by_partition: HashMap<u32, Vec<AckId>> = HashMap::new();
    for (partition, m) in &taken.messages {
        by_partition.entry(*partition).or_default().push(m.ack_id);
    }
    for (partition, ids) in by_partition {
        let op = Op::SubAck {
            sub: subscription.to_owned(),
            partition,
            ids,
            deadline_ms: Some(0),
        };
        let _ = router
            .call(router.shard.owner(&topic.name, partition), op)
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credits_are_capped_spent_and_may_be_overdrawn_by_the_last_message() {
        let c = Credits::new(u32::MAX, u32::MAX);
        assert_eq!(c.messages.get(), MAX_PUSH_CREDIT_MESSAGES, "capped");
        // A frame carries at most one Pull answer's worth of them.
        let frame = MAX_PULL_MESSAGES as usize;
        assert_eq!(c.available(), Some((frame, MAX_PUSH_CREDIT_BYTES as usize)));
        c.spend(frame, 0);
        assert_eq!(
            c.messages.get(),
            MAX_PUSH_CREDIT_MESSAGES - MAX_PULL_MESSAGES
        );
        assert_eq!(c.available().map(|(m, _)| m), Some(frame));
        let c = Credits::new(2, 100);
        c.spend(1, 150);
        assert_eq!(c.available(), None, "bytes overdrawn");
        c.grant(0, 40);
        assert_eq!(c.available(), None, "still 10 bytes in debt");
        c.grant(0, 20);
        assert_eq!(c.available(), Some((1, 10)));
        c.spend(1, 1);
        assert_eq!(c.available(), None, "no message credit left");
        c.grant(u32::MAX, u32::MAX);
        assert_eq!(c.messages.get(), MAX_PUSH_CREDIT_MESSAGES, "capped");
        assert_eq!(c.available(), Some((frame, MAX_PUSH_CREDIT_BYTES as usize)));
    }
}
