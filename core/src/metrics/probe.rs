//! Request counters on the data path: each shard thread counts into its own
//! thread-local `Cell`s (a shard is one thread, so these are the shard's and
//! nobody else's); the publisher copies them out once a second.
//!
//! Thread-local rather than a field of the shard: the request path reaches
//! them from `handler::handle` without threading a handle through the
//! router, and touching them costs no atomic, no lock, no shared cache line.

use std::{cell::Cell, time::Instant};

use bytes::Bytes;
use tidegate_proto::protocol::{
    decode_header, ErrorCode, Kind, Request, Response, FRAME_HEADER_LEN, MAX_FRAME_BODY_BYTES,
};

use super::{
    histogram::LocalHistogram,
    snapshot::{code_index, kind_index, RequestSnapshot, CODES, KINDS},
    HistogramSnapshot,
};

struct Counters {
    total: [Cell<u64>; KINDS],
    bytes_in: [Cell<u64>; KINDS],
    bytes_out: [Cell<u64>; KINDS],
    errors: [[Cell<u64>; CODES]; KINDS],
    produce_batch_errors: [Cell<u64>; CODES],
    produce_latency: LocalHistogram,
}

thread_local! {
    static COUNTERS: Counters = const {
        Counters {
            total: [const { Cell::new(0) }; KINDS],
            bytes_in: [const { Cell::new(0) }; KINDS],
            bytes_out: [const { Cell::new(0) }; KINDS],
            errors: [const { [const { Cell::new(0) }; CODES] }; KINDS],
            produce_batch_errors: [const { Cell::new(0) }; CODES],
            produce_latency: LocalHistogram::new(),
        }
    };
}

fn add(cell: &Cell<u64>, n: u64) {
    cell.set(cell.get().wrapping_add(n));
}

/// Counts one request: created when its bytes arrive, finished with its
/// response. Dropped unfinished, it was answered before it decoded (or its
/// task was cancelled); it then counts what the handler answered.
pub(crate) struct RequestProbe<'a> {
    data: &'a [u8],
    max_body: usize,
    kind: usize,
    started: Instant,
    finished: bool,
}

impl<'a> RequestProbe<'a> {
    /// A request of `data` bytes begins; `max_body` is the handler's limit.
    pub(crate) fn start(data: &'a [u8], max_body: usize) -> Self {
        RequestProbe {
            data,
            max_body,
            kind: kind_index(data.get(3).copied().unwrap_or(0)),
            started: Instant::now(),
            finished: false,
        }
    }

    /// Time since the request's bytes arrived.
    pub(crate) fn elapsed(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// The request is answered with `parts`, which are passed through.
    pub(crate) fn finish(mut self, parts: Vec<Bytes>) -> Vec<Bytes> {
        self.finished = true;
        let outcome = outcome_of(&parts);
        let bytes_out = parts.iter().map(|p| p.len() as u64).sum();
        self.record(outcome.error, bytes_out, &outcome.batch_errors);
        parts
    }

    fn record(&self, error: Option<ErrorCode>, bytes_out: u64, batch_errors: &[ErrorCode]) {
        let elapsed = self.started.elapsed();
        let kind = self.kind;
        let bytes_in = self.data.len() as u64;
        COUNTERS.with(|c| {
            add(&c.total[kind], 1);
            add(&c.bytes_in[kind], bytes_in);
            add(&c.bytes_out[kind], bytes_out);
            if let Some(code) = error {
                add(&c.errors[kind][code_index(code)], 1);
            }
            for code in batch_errors {
                add(&c.produce_batch_errors[code_index(*code)], 1);
            }
            if kind == kind_index(Kind::Produce.request_code()) {
                c.produce_latency.observe(elapsed);
            }
        });
    }
}

impl Drop for RequestProbe<'_> {
    fn drop(&mut self) {
        if !self.finished {
            // Rare: a frame the handler refused before decoding it.
            let error = refusal(self.data, self.max_body);
            self.record(error, 0, &[]);
        }
    }
}

/// Copies this thread's request counters.
pub(crate) fn snapshot() -> (RequestSnapshot, HistogramSnapshot) {
    COUNTERS.with(|c| {
        let get = |cells: &[Cell<u64>]| -> Vec<u64> { cells.iter().map(Cell::get).collect() };
        let mut s = RequestSnapshot::default();
        s.total.copy_from_slice(&get(&c.total));
        s.bytes_in.copy_from_slice(&get(&c.bytes_in));
        s.bytes_out.copy_from_slice(&get(&c.bytes_out));
        for (row, cells) in s.errors.iter_mut().zip(&c.errors) {
            row.copy_from_slice(&get(cells));
        }
        s.produce_batch_errors
            .copy_from_slice(&get(&c.produce_batch_errors));
        (s, c.produce_latency.snapshot())
    })
}

#[derive(Default)]
struct Outcome {
    error: Option<ErrorCode>,
    batch_errors: Vec<ErrorCode>,
}

/// What a response says: its error code, or the codes of the batches a
/// Produce did not append.
fn outcome_of(parts: &[Bytes]) -> Outcome {
    // Only a successful Fetch answers in several parts (prefix, batches).
    let [frame] = parts else {
        return Outcome::default();
    };
    let decoded = decode_header(frame, MAX_FRAME_BODY_BYTES)
        .ok()
        .flatten()
        .and_then(|h| Response::decode(h, frame.get(FRAME_HEADER_LEN..)?).ok());
    match decoded {
        Some(Response::Error(e)) => Outcome {
            error: Some(e.code),
            batch_errors: Vec::new(),
        },
        Some(Response::Produce(p)) => Outcome {
            error: None,
            batch_errors: p.results.iter().filter_map(|r| r.err()).collect(),
        },
        Some(_) => Outcome::default(),
        None => {
            debug_assert!(false, "the server's own response does not decode");
            Outcome {
                error: Some(ErrorCode::Internal),
                batch_errors: Vec::new(),
            }
        }
    }
}

/// The error the handler answers a frame it cannot decode with (the same
/// checks, in its order), or `None` for a frame that decodes.
fn refusal(data: &[u8], max_body: usize) -> Option<ErrorCode> {
    let header = match decode_header(data, max_body) {
        Ok(Some(h)) => h,
        Ok(None) => return Some(ErrorCode::MalformedFrame),
        Err(e) => return Some(e.error_code()),
    };
    let body = data.get(FRAME_HEADER_LEN..).unwrap_or_default();
    if body.len() != header.body_len as usize {
        return Some(ErrorCode::MalformedFrame);
    }
    Request::decode(header, body).err().map(|e| e.error_code())
}

#[cfg(test)]
mod tests {
    use tidegate_proto::protocol::{ErrorResponse, ProduceResponse};

    use super::*;
    use crate::metrics::snapshot::code_index;

    fn encode(response: &Response<'_>) -> Vec<Bytes> {
        let mut out = Vec::new();
        response.encode(&mut out);
        vec![Bytes::from(out)]
    }

    fn request(kind: Kind) -> Vec<u8> {
        let mut out = Vec::new();
        let request = match kind {
            Kind::ListTopics => Request::ListTopics,
            _ => Request::DeleteTopic { name: "t" },
        };
        request.encode(&mut out);
        out
    }

    #[test]
    fn a_finished_request_counts_its_kind_bytes_and_error_code() {
        // Each test runs on its own thread: its counters start at zero.
        let data = request(Kind::DeleteTopic);
        let probe = RequestProbe::start(&data, 1 << 20);
        let parts = probe.finish(encode(&Response::Error(ErrorResponse {
            request_kind: Kind::DeleteTopic.request_code(),
            code: ErrorCode::UnknownTopic,
            message: "no topic",
        })));
        let (s, latency) = snapshot();
        let kind = kind_index(Kind::DeleteTopic.request_code());
        assert_eq!(s.total[kind], 1);
        assert_eq!(s.bytes_in[kind], data.len() as u64);
        assert_eq!(s.bytes_out[kind], parts[0].len() as u64);
        assert_eq!(s.errors[kind][code_index(ErrorCode::UnknownTopic)], 1);
        assert_eq!(latency.count(), 0, "only Produce is timed");
    }

    #[test]
    fn produce_batch_errors_and_latency_are_counted() {
        let mut data = request(Kind::DeleteTopic);
        data[3] = Kind::Produce.request_code();
        let probe = RequestProbe::start(&data, 1 << 20);
        probe.finish(encode(&Response::Produce(ProduceResponse {
            throttle_ms: 0,
            results: vec![Ok(0), Err(ErrorCode::CorruptBatch)],
        })));
        let (s, latency) = snapshot();
        let kind = kind_index(Kind::Produce.request_code());
        assert_eq!(s.total[kind], 1);
        assert_eq!(s.errors[kind].iter().sum::<u64>(), 0);
        assert_eq!(
            s.produce_batch_errors[code_index(ErrorCode::CorruptBatch)],
            1
        );
        assert_eq!(latency.count(), 1);
    }

    #[test]
    fn a_frame_refused_before_decoding_counts_the_handlers_code() {
        let garbage = b"GET / HTTP/1.1\r\n\r\n".to_vec();
        drop(RequestProbe::start(&garbage, 1 << 20));
        let mut truncated = request(Kind::ListTopics);
        truncated.truncate(5);
        drop(RequestProbe::start(&truncated, 1 << 20));
        let (s, _) = snapshot();
        let unknown = KINDS - 1;
        let bad_magic = refusal(&garbage, 1 << 20).map(code_index);
        assert_eq!(bad_magic.map(|c| s.errors[unknown][c]), Some(1));
        let list = kind_index(Kind::ListTopics.request_code());
        assert_eq!(s.errors[list][code_index(ErrorCode::MalformedFrame)], 1);
        assert_eq!(s.total.iter().sum::<u64>(), 2);
    }
}
