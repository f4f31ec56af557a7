//! One connection's streams: requests accumulate until their stream
//! finishes; responses are written as flow control allows, then finished.
//! Pure bookkeeping over a `quinn_proto::Connection` — no sockets, no clock.
//!
//! Memory: a request is admitted whole. Its first bytes are the protocol
//! frame header, which declares the body's length; the request then
//! reserves that many bytes of the endpoint's [`Budget`] before its body is
//! read, and gives them back when its response is handed over. A request
//! that does not fit waits unread: quinn-proto then grants the client no
//! more credit for it (MAX_STREAM_DATA / MAX_DATA), so the producer waits,
//! nothing is dropped, and the shard holds at most the budget (or one
//! request, when a single request is larger). Admitting whole requests
//! matters: a byte budget spread over many half-read requests would fill
//! with partial requests that can never complete.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    rc::Rc,
    sync::Arc,
    time::Instant,
};

use bytes::Bytes;
use quinn_proto::{Connection, Dir, Event, ReadError, StreamEvent, StreamId, VarInt, WriteError};
use tidegate_proto::protocol::{decode_header, FRAME_HEADER_LEN};

use crate::{codes, Peer};

/// What happened to a connection while its events were drained.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Lifecycle {
    Open,
    Lost,
}

/// Request bytes an endpoint may hold at once, and how many it holds.
///
/// `max` may change at any time (`QuicServer::set_max_inflight_bytes`).
/// Lowering it drops nothing: what is held stays held, and new requests
/// wait until `used` is back under the new `max`.
#[derive(Debug)]
pub(crate) struct Budget {
    pub(crate) used: usize,
    pub(crate) max: usize,
    /// Times a request waited unread because the budget was spent (or
    /// other requests were already waiting for it).
    pub(crate) stalls: u64,
    /// Streams waiting unread for budget, all connections: while any
    /// waits, a new request queues behind them and the round robin
    /// (`fair.rs`) decides who goes next.
    pub(crate) waiting: usize,
    /// Bytes above `max` that connections holding nothing may take
    /// (all such connections together), rather than wait for the round:
    /// see [`Budget::try_take_sparse`].
    sparse_overdraw: usize,
    /// Of the reservations, those taken that way.
    pub(crate) admitted_sparse_requests: u64,
    /// Reservations that succeeded, and their bytes.
    pub(crate) admitted_requests: u64,
    pub(crate) admitted_bytes: u64,
    /// Share of each principal in the round robin (missing or 0: 1).
    weights: HashMap<Arc<str>, u32>,
    /// Bytes admitted per principal, for the principals in `weights` only
    /// (so bounded by its size).
    admitted_by_principal: HashMap<Arc<str>, u64>,
}

impl Budget {
    pub(crate) fn new(max: usize, sparse_overdraw: usize) -> Self {
        Budget {
            used: 0,
            max: max.max(1),
            stalls: 0,
            waiting: 0,
            sparse_overdraw,
            admitted_sparse_requests: 0,
            admitted_requests: 0,
            admitted_bytes: 0,
            weights: HashMap::new(),
            admitted_by_principal: HashMap::new(),
        }
    }

    /// True if `bytes` fit now, or nothing is held (a request larger than
    /// the whole budget still goes through, alone).
    pub(crate) fn fits(&self, bytes: usize) -> bool {
        self.used == 0 || self.used.saturating_add(bytes) <= self.max
    }

    /// Takes `bytes` for a request of `peer` if they [`fit`](Self::fits).
    fn try_take(&mut self, bytes: usize, peer: &Peer) -> bool {
        if !self.fits(bytes) {
            return false;
        }
        self.take(bytes, peer);
        true
    }

    /// Takes `bytes` for a request of a connection that holds nothing of
    /// the budget, if they fit under `max` plus the sparse overdraw. Such a
    /// connection goes before the round, as FQ-CoDel's sparse flows do:
    /// otherwise it waits for the window to turn over however little it
    /// sends. The overdraw is shared, so memory stays bounded by
    /// `max + sparse_overdraw`, and a busy connection never holds it (it
    /// holds what it was admitted, so it is not sparse).
    /// With no overdraw every request waits its turn.
    fn try_take_sparse(&mut self, bytes: usize, peer: &Peer) -> bool {
        if self.sparse_overdraw == 0
            || self.used.saturating_add(bytes) > self.max.saturating_add(self.sparse_overdraw)
        {
            return false;
        }
        self.take(bytes, peer);
        self.admitted_sparse_requests += 1;
        true
    }

    /// Takes `bytes` whether they fit or not, and counts them admitted.
    fn take(&mut self, bytes: usize, peer: &Peer) {
        self.used += bytes;
        self.admitted_requests += 1;
        self.admitted_bytes += bytes as u64;
        if self.admitted_by_principal.is_empty() {
            return;
        }
        // The application may be writing the principal; if so, this
        // admission goes uncounted rather than panicking.
        let Ok(auth) = peer.authenticated.try_borrow() else {
            return;
        };
        if let Some(n) = auth
            .as_ref()
            .and_then(|a| self.admitted_by_principal.get_mut(&a.principal))
        {
            *n += bytes as u64;
        }
    }

    /// Gives back bytes taken earlier (an accounting slip shows as a debug
    /// assertion, not as an endpoint that stalls forever).
    pub(crate) fn release(&mut self, bytes: usize) {
        debug_assert!(bytes <= self.used, "budget released more than it held");
        self.used = self.used.saturating_sub(bytes);
    }

    /// Sets the principals' weights; admitted bytes are tracked from now
    /// on for these principals (the counts of those kept are kept).
    pub(crate) fn set_weights(&mut self, weights: HashMap<Arc<str>, u32>) {
        self.admitted_by_principal
            .retain(|p, _| weights.contains_key(p));
        for p in weights.keys() {
            self.admitted_by_principal.entry(p.clone()).or_insert(0);
        }
        self.weights = weights;
    }

    /// The round-robin weight of `peer`'s connection: its principal's, or
    /// 1 without one; never 0.
    pub(crate) fn weight_of(&self, peer: &Peer) -> u32 {
        let Ok(auth) = peer.authenticated.try_borrow() else {
            return 1;
        };
        auth.as_ref()
            .and_then(|a| self.weights.get(&a.principal))
            .copied()
            .unwrap_or(1)
            .max(1)
    }

    /// Bytes admitted per weighted principal.
    pub(crate) fn admitted_by_principal(&self) -> Vec<(Arc<str>, u64)> {
        let mut all: Vec<_> = self
            .admitted_by_principal
            .iter()
            .map(|(p, n)| (p.clone(), *n))
            .collect();
        all.sort();
        all
    }
}

/// A request being received.
#[derive(Debug, Default)]
struct Receiving {
    buf: Vec<u8>,
    /// Bytes reserved for the whole request, once its header was read.
    reserved: Option<usize>,
    /// When the reservation was made: the request must arrive whole
    /// within `QuicSettings::request_timeout` of it.
    admitted_at: Option<Instant>,
}

pub(crate) struct ConnState {
    pub(crate) conn: Connection,
    /// Who is on the other end; every request of the connection shares it.
    pub(crate) peer: Rc<Peer>,
    /// True until the handshake ends (completed, failed or timed out).
    pub(crate) handshaking: bool,
    /// When the connection was accepted (its handshake deadline counts
    /// from here).
    pub(crate) accepted_at: Instant,
    /// True once the connection holds a slot of its address at the front
    /// door (its address is proven: validated, or handshake completed).
    pub(crate) holds_address: bool,
    receiving: HashMap<StreamId, Receiving>,
    /// Streams whose request waits for budget, in stream order, with the
    /// bytes each declared (its header was read).
    deferred: BTreeMap<StreamId, usize>,
    /// Complete requests handed to the application, waiting for their
    /// response: the bytes each holds of the budget.
    awaiting: HashMap<StreamId, usize>,
    /// Responses not yet fully written: the bytes still to write.
    sending: HashMap<StreamId, Sending>,
    /// Streams whose response stays open: the application writes to them
    /// frame by frame ([`send`](Self::send)) until it finishes them or
    /// the peer stops them.
    open: std::collections::HashSet<StreamId>,
    /// Open streams the peer stopped (or that failed) since the driver
    /// last looked: their writers are told.
    closed: Vec<StreamId>,
    /// Open streams whose queued bytes went to quinn-proto since the
    /// driver last looked: writers waiting for room are told.
    progressed: Vec<StreamId>,
    /// Responses written and finished but not yet acknowledged by the peer.
    finishing: std::collections::HashSet<StreamId>,
    max_request_bytes: usize,
}

impl ConnState {
    pub(crate) fn new(
        conn: Connection,
        max_request_bytes: usize,
        peer: Rc<Peer>,
        accepted_at: Instant,
    ) -> Self {
        ConnState {
            conn,
            peer,
            handshaking: true,
            accepted_at,
            holds_address: false,
            receiving: HashMap::new(),
            deferred: BTreeMap::new(),
            awaiting: HashMap::new(),
            sending: HashMap::new(),
            open: std::collections::HashSet::new(),
            closed: Vec::new(),
            progressed: Vec::new(),
            finishing: std::collections::HashSet::new(),
            max_request_bytes,
        }
    }

    /// True while a response handed over is not yet delivered: bytes to
    /// write, or finished streams not yet acknowledged. (Requests still
    /// waiting for the application do not count: at shutdown the
    /// application has stopped taking them.)
    pub(crate) fn has_unfinished_responses(&self) -> bool {
        !self.sending.is_empty() || !self.finishing.is_empty()
    }

    /// Bytes this connection holds of the budget.
    pub(crate) fn held_bytes(&self) -> usize {
        let receiving: usize = self.receiving.values().filter_map(|r| r.reserved).sum();
        receiving + self.awaiting.values().sum::<usize>()
    }

    /// Drains the connection's application events; complete requests are
    /// pushed to `requests`. How many can be in flight is bounded by QUIC
    /// (`max_concurrent_streams`), how many bytes by `budget`.
    pub(crate) fn drive(
        &mut self,
        budget: &mut Budget,
        requests: &mut Vec<(StreamId, Vec<u8>)>,
    ) -> Lifecycle {
        while let Some(event) = self.conn.poll() {
            match event {
                Event::ConnectionLost { .. } => {
                    // Nothing more can be written: the open responses'
                    // writers are told now, not when the connection drains.
                    let open: Vec<StreamId> = self.open.drain().collect();
                    self.closed.extend(open);
                    return Lifecycle::Lost;
                }
                Event::Stream(StreamEvent::Opened { dir: Dir::Bi }) => {
                    while let Some(id) = self.conn.streams().accept(Dir::Bi) {
                        self.receiving.insert(id, Receiving::default());
                        self.read(id, budget, requests);
                    }
                }
                // A waiting request is read when budget frees (`resume`).
                Event::Stream(StreamEvent::Readable { id }) if !self.deferred.contains_key(&id) => {
                    self.read(id, budget, requests)
                }
                Event::Stream(StreamEvent::Writable { id }) => self.flush(id),
                // The client gave up on the response (a cancelled request):
                // answer STOP_SENDING with RESET_STREAM (RFC 9000 §3.5), or
                // the stream never closes and its slot of
                // `max_concurrent_streams` is never granted again.
                Event::Stream(StreamEvent::Stopped { id, .. }) => {
                    self.sending.remove(&id);
                    self.close_open(id);
                    // Stopped before the application answered: its answer
                    // (or an open) finds nothing, and the bytes go now.
                    if let Some(held) = self.awaiting.remove(&id) {
                        budget.release(held);
                    }
                    self.finishing.remove(&id);
                    let _ = self
                        .conn
                        .send_stream(id)
                        .reset(VarInt::from_u32(codes::CANCELLED));
                }
                Event::Stream(StreamEvent::Finished { id }) => {
                    self.finishing.remove(&id);
                }
                _ => {}
            }
        }
        Lifecycle::Open
    }

    /// Gives up on admitted requests that did not arrive whole within
    /// `timeout` of their admission: a client that sends a header and never
    /// the body would otherwise hold its share of the shard's window for
    /// as long as its connection lives. Their streams are stopped and
    /// reset (`cancelled`), their bytes released. Returns how many.
    pub(crate) fn expire_stalled(
        &mut self,
        now: Instant,
        timeout: std::time::Duration,
        budget: &mut Budget,
    ) -> u64 {
        let stalled: Vec<StreamId> = self
            .receiving
            .iter()
            .filter(|(_, rx)| rx.admitted_at.is_some_and(|at| now >= at + timeout))
            .map(|(id, _)| *id)
            .collect();
        for id in &stalled {
            if let Some(rx) = self.receiving.remove(id) {
                budget.release(rx.reserved.unwrap_or(0));
            }
            let code = VarInt::from_u32(codes::CANCELLED);
            let _ = self.conn.recv_stream(*id).stop(code);
            let _ = self.conn.send_stream(*id).reset(code);
        }
        stalled.len() as u64
    }

    /// When the oldest admitted request still arriving runs out of time.
    pub(crate) fn next_request_deadline(&self, timeout: std::time::Duration) -> Option<Instant> {
        self.receiving
            .values()
            .filter_map(|rx| rx.admitted_at.and_then(|at| at.checked_add(timeout)))
            .min()
    }

    pub(crate) fn has_deferred(&self) -> bool {
        !self.deferred.is_empty()
    }

    /// Bytes of the oldest request waiting for budget.
    pub(crate) fn head_deferred(&self) -> Option<usize> {
        self.deferred.first_key_value().map(|(_, bytes)| *bytes)
    }

    /// Streams waiting for budget (they leave `Budget::waiting` with the
    /// connection).
    pub(crate) fn deferred_count(&self) -> usize {
        self.deferred.len()
    }

    /// Admits the oldest waiting request if the budget has room: its bytes
    /// are reserved and its body is read. Returns false if it had no room.
    pub(crate) fn admit_deferred(
        &mut self,
        budget: &mut Budget,
        requests: &mut Vec<(StreamId, Vec<u8>)>,
    ) -> bool {
        let Some((&id, &bytes)) = self.deferred.first_key_value() else {
            return false;
        };
        if !budget.fits(bytes) {
            return false;
        }
        self.deferred.remove(&id);
        budget.waiting = budget.waiting.saturating_sub(1);
        let Some(rx) = self.receiving.get_mut(&id) else {
            return true; // nothing to read any more; nothing reserved
        };
        budget.take(bytes, &self.peer);
        rx.reserved = Some(bytes);
        rx.admitted_at = Some(Instant::now());
        rx.buf.reserve_exact(bytes.saturating_sub(rx.buf.len()));
        self.read(id, budget, requests);
        true
    }

    /// Reads what has arrived on `id`: the frame header first, then, once
    /// the whole request is reserved, its body; a finished stream completes
    /// the request.
    fn read(&mut self, id: StreamId, budget: &mut Budget, requests: &mut Vec<(StreamId, Vec<u8>)>) {
        // Whether the connection holds no budget: asked only before the
        // request's header is read, the one time it matters, not for every
        // chunk of a body.
        let sparse = self
            .receiving
            .get(&id)
            .is_some_and(|r| r.reserved.is_none())
            && self.awaiting.is_empty()
            && self.deferred.is_empty()
            && self.receiving.values().all(|r| r.reserved.is_none());
        let Some(rx) = self.receiving.get_mut(&id) else {
            return;
        };
        let max_request = self.max_request_bytes;
        let mut recv = self.conn.recv_stream(id);
        let Ok(mut chunks) = recv.read(true) else {
            if let Some(r) = self.receiving.remove(&id) {
                budget.release(r.reserved.unwrap_or(0));
            }
            return;
        };
        let mut outcome = None;
        loop {
            let want = match rx.reserved {
                None => FRAME_HEADER_LEN - rx.buf.len(),
                // One byte past the reservation reveals a body longer than
                // declared.
                Some(reserved) => reserved + 1 - rx.buf.len(),
            };
            match chunks.next(want) {
                Ok(Some(chunk)) => {
                    rx.buf.extend_from_slice(&chunk.bytes);
                    if rx.reserved.is_some_and(|r| rx.buf.len() > r) {
                        outcome = Some(Outcome::Refuse);
                        break;
                    }
                    if rx.reserved.is_none() && rx.buf.len() == FRAME_HEADER_LEN {
                        let need = declared_len(&rx.buf, max_request);
                        if need > max_request {
                            outcome = Some(Outcome::Refuse);
                            break;
                        }
                        // Requests already waiting go first: the round robin
                        // decides, not who arrives when budget is free;
                        // only a connection that holds nothing goes ahead.
                        let admitted = (budget.waiting == 0 && budget.try_take(need, &self.peer))
                            || (sparse && budget.try_take_sparse(need, &self.peer));
                        if !admitted {
                            outcome = Some(Outcome::Wait(need));
                            break;
                        }
                        rx.reserved = Some(need);
                        rx.admitted_at = Some(Instant::now());
                        // The budget holds `need` bytes for it already: take
                        // them at once rather than grow (and copy) the
                        // buffer chunk by chunk.
                        rx.buf.reserve_exact(need.saturating_sub(rx.buf.len()));
                    }
                }
                Ok(None) => {
                    outcome = Some(Outcome::Complete);
                    break;
                }
                Err(ReadError::Blocked) => break,
                Err(ReadError::Reset(_)) => {
                    outcome = Some(Outcome::Refuse);
                    break;
                }
            }
        }
        let _ = chunks.finalize();
        match outcome {
            Some(Outcome::Complete) => {
                if let Some(r) = self.receiving.remove(&id) {
                    // A stream that ended before its header held no
                    // reservation; it costs its few bytes.
                    let held = r.reserved.unwrap_or_else(|| {
                        budget.take(r.buf.len(), &self.peer);
                        r.buf.len()
                    });
                    self.awaiting.insert(id, held);
                    requests.push((id, r.buf));
                }
            }
            Some(Outcome::Wait(need)) => {
                budget.stalls += 1;
                budget.waiting += 1;
                self.deferred.insert(id, need);
            }
            Some(Outcome::Refuse) => {
                if let Some(r) = self.receiving.remove(&id) {
                    budget.release(r.reserved.unwrap_or(0));
                }
                let code = VarInt::from_u32(codes::REQUEST_TOO_LARGE);
                let _ = self.conn.recv_stream(id).stop(code);
                let _ = self.conn.send_stream(id).reset(code);
            }
            None => {}
        }
    }

    /// Queues a response on `id` and writes what flow control allows; the
    /// request's bytes leave the budget. A stream that has no request
    /// waiting (unknown, or stopped by the client) drops the response.
    pub(crate) fn respond(&mut self, id: StreamId, parts: Vec<Bytes>, budget: &mut Budget) {
        if let Some(held) = self.awaiting.remove(&id) {
            budget.release(held);
            self.queue(id, parts, true);
        }
    }

    /// Keeps the response of `id` open: its request's bytes leave the
    /// budget, and the application writes the response with
    /// [`send`](Self::send). False if no request of `id` waits for its
    /// response.
    pub(crate) fn open_response(&mut self, id: StreamId, budget: &mut Budget) -> bool {
        let Some(held) = self.awaiting.remove(&id) else {
            return false;
        };
        budget.release(held);
        self.open.insert(id);
        true
    }

    /// Writes `parts` on the open response of `id`, and finishes it after
    /// them if `finish`. False if the stream is not open (stopped by the
    /// peer, finished, or never opened): nothing is written.
    pub(crate) fn send(&mut self, id: StreamId, parts: Vec<Bytes>, finish: bool) -> bool {
        if !self.open.contains(&id) {
            return false;
        }
        if finish {
            self.open.remove(&id);
        }
        self.queue(id, parts, finish);
        // Writing may have found the stream stopped or reset.
        finish || self.open.contains(&id)
    }

    /// Gives up on the open response of `id`: what is not written yet is
    /// dropped and the stream is reset (`cancelled`).
    pub(crate) fn reset_open(&mut self, id: StreamId) {
        if self.open.remove(&id) {
            self.sending.remove(&id);
            let _ = self
                .conn
                .send_stream(id)
                .reset(VarInt::from_u32(codes::CANCELLED));
        }
    }

    /// The open streams the peer stopped since the last call.
    pub(crate) fn take_closed(&mut self) -> Vec<StreamId> {
        std::mem::take(&mut self.closed)
    }

    /// The open streams whose queued bytes moved since the last call.
    pub(crate) fn take_progressed(&mut self) -> Vec<StreamId> {
        std::mem::take(&mut self.progressed)
    }

    /// Every stream whose response is open now.
    pub(crate) fn open_streams(&self) -> impl Iterator<Item = StreamId> + '_ {
        self.open.iter().copied()
    }

    /// Bytes queued on `id` that quinn-proto has not taken yet.
    pub(crate) fn unsent_bytes(&self, id: StreamId) -> usize {
        self.sending
            .get(&id)
            .map_or(0, |s| s.parts.iter().map(Bytes::len).sum())
    }

    fn close_open(&mut self, id: StreamId) {
        if self.open.remove(&id) {
            self.closed.push(id);
        }
    }

    /// Appends `parts` to what `id` has to write, then writes what flow
    /// control allows.
    fn queue(&mut self, id: StreamId, parts: Vec<Bytes>, finish: bool) {
        let sending = self.sending.entry(id).or_default();
        sending
            .parts
            .extend(parts.into_iter().filter(|p| !p.is_empty()));
        sending.finish |= finish;
        self.flush(id);
    }

    fn flush(&mut self, id: StreamId) {
        let Some(Sending {
            parts: pending,
            finish,
        }) = self.sending.get_mut(&id)
        else {
            return;
        };
        let finish = *finish;
        let mut send = self.conn.send_stream(id);
        while !pending.is_empty() {
            // The parts go to quinn-proto as they are (`Bytes`, no copy); a
            // part written in part is advanced in place.
            match send.write_chunks(pending.make_contiguous()) {
                Ok(written) => {
                    pending.drain(..written.chunks);
                    while pending.front().is_some_and(Bytes::is_empty) {
                        pending.pop_front();
                    }
                    if written.bytes == 0 {
                        return; // no progress: wait for `Writable`
                    }
                    if self.open.contains(&id) && !self.progressed.contains(&id) {
                        self.progressed.push(id);
                    }
                    // Written in part: write again rather than wait. quinn
                    // only promises a `Writable` event to a stream whose
                    // write came back `Blocked`; one cut short by the
                    // connection's window or send buffer would otherwise
                    // never be written again, and its response would hang.
                }
                // quinn-proto remembers the stream and reports it writable
                // when stream or connection credit (or send buffer) frees.
                Err(WriteError::Blocked) => return,
                Err(WriteError::Stopped(_) | WriteError::ClosedStream) => {
                    // Reset, as on the `Stopped` event, so the stream closes.
                    let _ = send.reset(VarInt::from_u32(codes::CANCELLED));
                    self.sending.remove(&id);
                    self.close_open(id);
                    return;
                }
            }
        }
        // Everything written. An open response waits for more; a whole
        // one is finished (its FIN ends the response).
        if finish && send.finish().is_ok() {
            self.finishing.insert(id);
        }
        self.sending.remove(&id);
    }
}

/// What a stream has left to write.
#[derive(Debug, Default)]
struct Sending {
    parts: VecDeque<Bytes>,
    /// Finish the stream once `parts` are written.
    finish: bool,
}

enum Outcome {
    Complete,
    /// Unread until the budget takes the bytes it declared.
    Wait(usize),
    Refuse,
}

/// What a request whose header does not parse may still send: enough for
/// the application to see it and answer with a typed error.
const UNPARSED_RESERVE: usize = 64 << 10;

/// The bytes a request declares in its frame header (header included). A
/// header that does not parse (bad magic, unknown version) reserves a small
/// fixed amount: the request is read as it comes, up to that, and answered
/// with an error.
fn declared_len(header: &[u8], max_request: usize) -> usize {
    match decode_header(header, usize::MAX) {
        Ok(Some(h)) => FRAME_HEADER_LEN.saturating_add(h.body_len as usize),
        _ => max_request.min(UNPARSED_RESERVE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Authenticated;

    fn peer_of(principal: Option<&str>) -> Peer {
        let peer = Peer::new(([127, 0, 0, 1], 9).into());
        *peer.authenticated.borrow_mut() = principal.map(|p| Authenticated {
            principal: p.into(),
            expires_at_ms: None,
        });
        peer
    }

    #[test]
    fn lowering_the_window_keeps_what_is_held_and_holds_back_new_requests() {
        let peer = peer_of(None);
        let mut budget = Budget::new(100, 0);
        assert!(budget.try_take(60, &peer));
        assert!(budget.try_take(40, &peer));
        budget.max = 50;
        assert_eq!(budget.used, 100, "nothing held is dropped");
        assert!(!budget.try_take(1, &peer));
        budget.release(60);
        assert!(!budget.try_take(20, &peer), "40 + 20 is over the new 50");
        assert!(budget.try_take(10, &peer));
        assert_eq!((budget.admitted_requests, budget.admitted_bytes), (3, 110));
    }

    #[test]
    fn a_request_larger_than_the_window_goes_alone() {
        let peer = peer_of(None);
        let mut budget = Budget::new(100, 0);
        assert!(budget.try_take(10, &peer));
        assert!(!budget.try_take(500, &peer));
        budget.release(10);
        assert!(budget.try_take(500, &peer));
        assert!(!budget.try_take(1, &peer));
    }

    #[test]
    fn weights_and_admitted_bytes_follow_the_principal() {
        let mut budget = Budget::new(1 << 20, 0);
        budget.set_weights(HashMap::from([("a".into(), 3), ("zero".into(), 0)]));
        let (a, zero, other, none) = (
            peer_of(Some("a")),
            peer_of(Some("zero")),
            peer_of(Some("other")),
            peer_of(None),
        );
        assert_eq!(budget.weight_of(&a), 3);
        assert_eq!(budget.weight_of(&zero), 1);
        assert_eq!(budget.weight_of(&other), 1);
        assert_eq!(budget.weight_of(&none), 1);
        for (peer, bytes) in [(&a, 10), (&a, 5), (&zero, 7), (&other, 100), (&none, 1)] {
            assert!(budget.try_take(bytes, peer));
        }
        let by = |b: &Budget| -> Vec<(String, u64)> {
            b.admitted_by_principal()
                .into_iter()
                .map(|(p, n)| (p.to_string(), n))
                .collect()
        };
        assert_eq!(by(&budget), [("a".into(), 15), ("zero".into(), 7)]);
        // A new map keeps the counts of the principals it keeps.
        budget.set_weights(HashMap::from([("a".into(), 1), ("b".into(), 1)]));
        assert_eq!(by(&budget), [("a".into(), 15), ("b".into(), 0)]);
    }
}
