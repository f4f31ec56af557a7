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
    collections::{BTreeSet, HashMap, VecDeque},
    rc::Rc,
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
#[derive(Debug)]
pub(crate) struct Budget {
    pub(crate) used: usize,
    pub(crate) max: usize,
    /// Times a request waited unread because the budget was spent.
    pub(crate) stalls: u64,
}

impl Budget {
    pub(crate) fn new(max: usize) -> Self {
        Budget {
            used: 0,
            max: max.max(1),
            stalls: 0,
        }
    }

    /// Takes `bytes` if they fit, or if nothing is held (a request larger
    /// than the whole budget still goes through, alone).
    fn try_take(&mut self, bytes: usize) -> bool {
        if self.used == 0 || self.used + bytes <= self.max {
            self.used += bytes;
            true
        } else {
            false
        }
    }

    /// Gives back bytes taken earlier (an accounting slip shows as a debug
    /// assertion, not as an endpoint that stalls forever).
    pub(crate) fn release(&mut self, bytes: usize) {
        debug_assert!(bytes <= self.used, "budget released more than it held");
        self.used = self.used.saturating_sub(bytes);
    }
}

/// A request being received.
#[derive(Debug, Default)]
struct Receiving {
    buf: Vec<u8>,
    /// Bytes reserved for the whole request, once its header was read.
    reserved: Option<usize>,
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
    /// Streams whose request waits for budget, in stream order.
    deferred: BTreeSet<StreamId>,
    /// Complete requests handed to the application, waiting for their
    /// response: the bytes each holds of the budget.
    awaiting: HashMap<StreamId, usize>,
    /// Responses not yet fully written: the bytes still to write.
    sending: HashMap<StreamId, VecDeque<Bytes>>,
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
            deferred: BTreeSet::new(),
            awaiting: HashMap::new(),
            sending: HashMap::new(),
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
                Event::ConnectionLost { .. } => return Lifecycle::Lost,
                Event::Stream(StreamEvent::Opened { dir: Dir::Bi }) => {
                    while let Some(id) = self.conn.streams().accept(Dir::Bi) {
                        self.receiving.insert(id, Receiving::default());
                        self.read(id, budget, requests);
                    }
                }
                // A waiting request is read when budget frees (`resume`).
                Event::Stream(StreamEvent::Readable { id }) if !self.deferred.contains(&id) => {
                    self.read(id, budget, requests)
                }
                Event::Stream(StreamEvent::Writable { id }) => self.flush(id),
                Event::Stream(StreamEvent::Stopped { id, .. }) => {
                    self.sending.remove(&id);
                    self.finishing.remove(&id);
                }
                Event::Stream(StreamEvent::Finished { id }) => {
                    self.finishing.remove(&id);
                }
                _ => {}
            }
        }
        Lifecycle::Open
    }

    /// Gives waiting requests another try, oldest stream first.
    pub(crate) fn resume(&mut self, budget: &mut Budget, requests: &mut Vec<(StreamId, Vec<u8>)>) {
        while let Some(&id) = self.deferred.first() {
            self.deferred.remove(&id);
            self.read(id, budget, requests);
            if self.deferred.contains(&id) {
                break; // still no room
            }
        }
    }

    pub(crate) fn has_deferred(&self) -> bool {
        !self.deferred.is_empty()
    }

    /// Reads what has arrived on `id`: the frame header first, then, once
    /// the whole request is reserved, its body; a finished stream completes
    /// the request.
    fn read(&mut self, id: StreamId, budget: &mut Budget, requests: &mut Vec<(StreamId, Vec<u8>)>) {
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
                        if !budget.try_take(need) {
                            budget.stalls += 1;
                            outcome = Some(Outcome::Wait);
                            break;
                        }
                        rx.reserved = Some(need);
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
                        budget.used += r.buf.len();
                        r.buf.len()
                    });
                    self.awaiting.insert(id, held);
                    requests.push((id, r.buf));
                }
            }
            Some(Outcome::Wait) => {
                self.deferred.insert(id);
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
            let parts = parts.into_iter().filter(|p| !p.is_empty()).collect();
            self.sending.insert(id, parts);
            self.flush(id);
        }
    }

    fn flush(&mut self, id: StreamId) {
        let Some(pending) = self.sending.get_mut(&id) else {
            return;
        };
        let mut send = self.conn.send_stream(id);
        while !pending.is_empty() {
            // The parts go to quinn-proto as they are (`Bytes`, no copy); a
            // part written in part is advanced in place.
            match send.write_chunks(pending.make_contiguous()) {
                Ok(written) => {
                    pending.drain(..written.chunks);
                    if pending.front().is_some_and(|p| !p.is_empty()) {
                        return; // flow control: the rest when writable
                    }
                    while pending.front().is_some_and(Bytes::is_empty) {
                        pending.pop_front();
                    }
                }
                Err(WriteError::Blocked) => return,
                Err(WriteError::Stopped(_) | WriteError::ClosedStream) => {
                    self.sending.remove(&id);
                    return;
                }
            }
        }
        // Everything written: finish the stream (its FIN ends the response).
        if send.finish().is_ok() {
            self.finishing.insert(id);
        }
        self.sending.remove(&id);
    }
}

enum Outcome {
    Complete,
    Wait,
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
