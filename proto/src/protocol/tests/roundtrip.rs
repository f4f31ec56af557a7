//! Every request and response survives encode then decode, and the
//! zero-copy prefixes match the whole encoding.

use super::*;

#[test]
fn every_request_round_trips() {
    let batch = sample_batch();
    for request in all_requests(&batch) {
        let wire = encode_request(&request);
        assert_eq!(must(decode_request(&wire)), request);
        assert_eq!(request.validate(), Ok(()), "{request:?}");
    }
}

#[test]
fn every_response_round_trips() {
    let batch = sample_batch();
    for response in all_responses(&batch) {
        let wire = encode_response(&response);
        assert_eq!(must(decode_response(&wire)), response);
    }
}

#[test]
fn frame_kind_is_the_request_kind_and_the_response_sets_the_high_bit() {
    let batch = sample_batch();
    for request in all_requests(&batch) {
        let wire = encode_request(&request);
        let (header, body) = must(split_frame(&wire));
        assert_eq!(header.kind, request.kind().request_code());
        assert!(!header.is_response());
        assert_eq!(header.version, VERSION);
        assert_eq!(header.body_len as usize, body.len());
    }
    for kind in Kind::ALL {
        assert_eq!(kind.response_code(), kind.request_code() | RESPONSE_BIT);
        assert_eq!(Kind::from_request_code(kind.request_code()), Some(kind));
        assert_eq!(Kind::from_request_code(kind.response_code()), None);
    }
    let wire = encode_response(&Response::ListOffsets { offset: 1 });
    assert_eq!(wire.get(3), Some(&0x87));
}

#[test]
fn request_and_response_decoders_refuse_each_others_frames() {
    let batch = sample_batch();
    for request in all_requests(&batch) {
        let (header, body) = {
            let wire = encode_request(&request);
            let (h, b) = must(split_frame(&wire));
            (h, b.to_vec())
        };
        assert!(matches!(
            Response::decode(header, &body),
            Err(ProtocolError::UnsupportedKind { .. })
        ));
    }
    let wire = encode_response(&Response::CreateTopic);
    assert_eq!(
        decode_request(&wire),
        Err(ProtocolError::UnsupportedKind { kind: 0x81 })
    );
}

#[test]
fn produce_prefix_then_batches_is_the_whole_encoding() {
    let batch = sample_batch();
    let produce = ProduceRequest {
        topic: "orders",
        target: ProduceTarget::Key(b"k"),
        ack: AckLevel::Written,
        batches: &batch,
    };
    let mut prefix = Vec::new();
    ProduceRequest {
        batches: &[],
        ..produce
    }
    .encode_prefix(batch.len(), &mut prefix);
    prefix.extend_from_slice(&batch);
    assert_eq!(prefix, encode_request(&Request::Produce(produce)));
}

#[test]
fn fetch_prefix_then_batches_is_the_whole_encoding() {
    let stored = [sample_batch(), sample_batch()].concat();
    let fetch = FetchResponse {
        partition: 3,
        high_watermark: 77,
        batches: &stored,
    };
    let mut prefix = Vec::new();
    fetch.encode_prefix(stored.len(), &mut prefix);
    assert_eq!(prefix.len(), FetchResponse::PREFIX_LEN);
    prefix.extend_from_slice(&stored);
    let whole = encode_response(&Response::Fetch(fetch));
    assert_eq!(prefix, whole);
    assert_eq!(must(decode_response(&whole)), Response::Fetch(fetch));
}

#[test]
fn encode_appends_after_existing_bytes() {
    let mut out = b"earlier".to_vec();
    Request::ListTopics.encode(&mut out);
    assert_eq!(out.get(..7), Some(&b"earlier"[..]));
    assert_eq!(
        must(decode_request(out.get(7..).unwrap_or_default())),
        Request::ListTopics
    );
}

#[test]
fn produce_and_fetch_batches_iterate_the_batch_format() {
    let two = [sample_batch(), sample_batch()].concat();
    let produce = ProduceRequest {
        topic: "t",
        target: ProduceTarget::Partition(0),
        ack: AckLevel::Durable,
        batches: &two,
    };
    assert_eq!(produce.batches().filter(Result::is_ok).count(), 2);
    let corrupt = [two.as_slice(), &[0u8; 10]].concat();
    let fetch = FetchResponse {
        partition: 0,
        high_watermark: 2,
        batches: &corrupt,
    };
    let results: Vec<_> = fetch.batches().collect();
    assert_eq!(results.len(), 3);
    assert!(results.get(2).is_some_and(Result::is_err));
}

#[test]
fn long_message_is_cut_at_a_char_boundary() {
    let message = "é".repeat(MAX_MESSAGE_BYTES); // 2 bytes each
    let wire = encode_response(&Response::Error(ErrorResponse {
        request_kind: 1,
        code: ErrorCode::Internal,
        message: &message,
    }));
    let Response::Error(e) = must(decode_response(&wire)) else {
        panic!("not an error response");
    };
    assert_eq!(e.message.len(), MAX_MESSAGE_BYTES);
    assert!(message.starts_with(e.message));

    let odd = format!("x{}", "é".repeat(MAX_MESSAGE_BYTES));
    let wire = encode_response(&Response::Error(ErrorResponse {
        request_kind: 1,
        code: ErrorCode::Internal,
        message: &odd,
    }));
    let Response::Error(e) = must(decode_response(&wire)) else {
        panic!("not an error response");
    };
    assert_eq!(e.message.len(), MAX_MESSAGE_BYTES - 1);
}

#[test]
fn ok_code_in_an_error_slot_is_sent_as_internal() {
    let wire = encode_response(&Response::Error(ErrorResponse {
        request_kind: 5,
        code: ErrorCode::Ok,
        message: "oops",
    }));
    let Response::Error(e) = must(decode_response(&wire)) else {
        panic!("not an error response");
    };
    assert_eq!(e.code, ErrorCode::Internal);

    let wire = encode_response(&Response::Produce(ProduceResponse {
        throttle_ms: 0,
        results: vec![Err(ErrorCode::Ok)],
    }));
    let Response::Produce(p) = must(decode_response(&wire)) else {
        panic!("not a produce response");
    };
    assert_eq!(p.results, [Err(ErrorCode::Internal)]);
}

#[test]
fn error_response_answers_an_unknown_request_kind() {
    let wire = encode_response(&Response::Error(ErrorResponse {
        request_kind: 0x7f,
        code: ErrorCode::UnsupportedKind,
        message: "kind 0x7f",
    }));
    assert_eq!(wire.get(3), Some(&0xff));
    assert!(matches!(
        must(decode_response(&wire)),
        Response::Error(ErrorResponse {
            request_kind: 0x7f,
            ..
        })
    ));
}
