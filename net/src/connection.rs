//! One connection's streams: requests accumulate until their stream
//! finishes; responses are written as flow control allows, then finished.
//! Pure bookkeeping over a `quinn_proto::Connection` — no sockets, no clock.

use std::collections::{HashMap, HashSet, VecDeque};

use bytes::Bytes;
use quinn_proto::{Connection, Dir, Event, ReadError, StreamEvent, StreamId, VarInt, WriteError};

use crate::codes;

/// What happened to a connection while its events were drained.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Lifecycle {
    Open,
    Lost,
}

pub(crate) struct ConnState {
    pub(crate) conn: Connection,
    /// Requests being received, by stream.
    receiving: HashMap<StreamId, Vec<u8>>,
    /// Streams whose request is complete and handed to the application,
    /// waiting for its response.
    awaiting: HashSet<StreamId>,
    /// Responses not yet fully written: the bytes still to write.
    sending: HashMap<StreamId, VecDeque<Bytes>>,
    max_request_bytes: usize,
}

impl ConnState {
    pub(crate) fn new(conn: Connection, max_request_bytes: usize) -> Self {
        ConnState {
            conn,
            receiving: HashMap::new(),
            awaiting: HashSet::new(),
            sending: HashMap::new(),
            max_request_bytes,
        }
    }

    /// Drains the connection's application events; complete requests are
    /// pushed to `requests`. How many can be in flight is bounded by QUIC
    /// itself: `max_concurrent_streams` per connection.
    pub(crate) fn drive(&mut self, requests: &mut Vec<(StreamId, Vec<u8>)>) -> Lifecycle {
        while let Some(event) = self.conn.poll() {
            match event {
                Event::ConnectionLost { .. } => return Lifecycle::Lost,
                Event::Stream(StreamEvent::Opened { dir: Dir::Bi }) => {
                    while let Some(id) = self.conn.streams().accept(Dir::Bi) {
                        self.receiving.insert(id, Vec::new());
                        self.read(id, requests);
                    }
                }
                Event::Stream(StreamEvent::Readable { id }) => self.read(id, requests),
                Event::Stream(StreamEvent::Writable { id }) => self.flush(id),
                Event::Stream(StreamEvent::Stopped { id, .. }) => {
                    self.sending.remove(&id);
                }
                _ => {}
            }
        }
        Lifecycle::Open
    }

    /// Reads what has arrived on `id`; a finished stream completes its
    /// request. A request over the limit is refused: its stream is stopped
    /// and reset with `REQUEST_TOO_LARGE`.
    fn read(&mut self, id: StreamId, requests: &mut Vec<(StreamId, Vec<u8>)>) {
        let Some(buf) = self.receiving.get_mut(&id) else {
            return;
        };
        let mut recv = self.conn.recv_stream(id);
        let Ok(mut chunks) = recv.read(true) else {
            self.receiving.remove(&id);
            return;
        };
        let mut outcome = None;
        loop {
            match chunks.next(usize::MAX) {
                Ok(Some(chunk)) => {
                    if buf.len() + chunk.bytes.len() > self.max_request_bytes {
                        outcome = Some(false);
                        break;
                    }
                    buf.extend_from_slice(&chunk.bytes);
                }
                Ok(None) => {
                    outcome = Some(true);
                    break;
                }
                Err(ReadError::Blocked) => break,
                Err(ReadError::Reset(_)) => {
                    outcome = Some(false);
                    break;
                }
            }
        }
        let _ = chunks.finalize();
        match outcome {
            Some(true) => {
                if let Some(request) = self.receiving.remove(&id) {
                    self.awaiting.insert(id);
                    requests.push((id, request));
                }
            }
            Some(false) => {
                self.receiving.remove(&id);
                let code = VarInt::from_u32(codes::REQUEST_TOO_LARGE);
                let _ = self.conn.recv_stream(id).stop(code);
                let _ = self.conn.send_stream(id).reset(code);
            }
            None => {}
        }
    }

    /// Queues a response on `id` and writes what flow control allows. A
    /// stream that has no request waiting (unknown, or stopped by the
    /// client) drops the response.
    pub(crate) fn respond(&mut self, id: StreamId, parts: Vec<Bytes>) {
        if self.awaiting.remove(&id) {
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
        while let Some(front) = pending.front_mut() {
            match send.write(front) {
                Ok(n) if n == front.len() => {
                    pending.pop_front();
                }
                Ok(n) => {
                    let _ = front.split_to(n);
                    return;
                }
                Err(WriteError::Blocked) => return,
                Err(WriteError::Stopped(_) | WriteError::ClosedStream) => {
                    self.sending.remove(&id);
                    return;
                }
            }
        }
        // Everything written: finish the stream (its FIN ends the response).
        let _ = send.finish();
        self.sending.remove(&id);
    }
}
