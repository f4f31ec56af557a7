//! Feeds arbitrary bytes to the protocol decoders: as a stream through the
//! `FrameReader`, and as a body behind a valid header of every kind. The
//! decoders must never panic, and whatever decodes must re-encode to the
//! same bytes (the encoding is canonical) and decode to an equal value.
//!
//! Run: `cargo fuzz run request_decode` (nightly, or `RUSTC_BOOTSTRAP=1`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tidegate_proto::protocol::{
    decode_header, FrameHeader, FrameReader, Request, Response, FRAME_HEADER_LEN,
    MAX_FRAME_BODY_BYTES,
};

fuzz_target!(|data: &[u8]| {
    let _ = decode_header(data, MAX_FRAME_BODY_BYTES);

    // As a stream, in chunks whose size depends on the input.
    let mut reader = FrameReader::new(MAX_FRAME_BODY_BYTES);
    let chunk = data.len() % 7 + 1;
    let mut pushed = Ok(());
    for piece in data.chunks(chunk) {
        pushed = reader.push(piece);
        if pushed.is_err() {
            break;
        }
    }
    if pushed.is_ok() {
        if let Ok((header, body)) = reader.finish() {
            check(header, body);
        }
    }

    // As a body behind a valid header; the first byte picks the kind.
    if let Some((&kind, body)) = data.split_first() {
        if let Ok(len) = u32::try_from(body.len()) {
            check(FrameHeader::new(kind, len), body);
        }
    }
});

fn check(header: FrameHeader, body: &[u8]) {
    if let Ok(request) = Request::decode(header, body) {
        let mut wire = Vec::new();
        request.encode(&mut wire);
        assert_eq!(wire.get(FRAME_HEADER_LEN..), Some(body), "{request:?}");
        let (h, b) = split(&wire);
        assert_eq!(Request::decode(h, b).as_ref(), Ok(&request));
    }
    if let Ok(response) = Response::decode(header, body) {
        let mut wire = Vec::new();
        response.encode(&mut wire);
        assert_eq!(wire.get(FRAME_HEADER_LEN..), Some(body), "{response:?}");
        let (h, b) = split(&wire);
        assert_eq!(Response::decode(h, b).as_ref(), Ok(&response));
    }
}

/// The header and body of a frame this side just encoded.
fn split(wire: &[u8]) -> (FrameHeader, &[u8]) {
    match decode_header(wire, MAX_FRAME_BODY_BYTES) {
        Ok(Some(header)) => (header, wire.get(FRAME_HEADER_LEN..).unwrap_or_default()),
        other => panic!("an encoded frame does not decode: {other:?}"),
    }
}
