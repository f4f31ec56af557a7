//! The FrameReader: any chunking gives the same frame, memory is bounded
//! by the declared length, and errors come as early as the bytes allow.

use super::*;

fn produce_wire(batch: &[u8]) -> Vec<u8> {
    encode_request(&Request::Produce(ProduceRequest {
        topic: "orders",
        target: ProduceTarget::Partition(1),
        ack: AckLevel::Durable,
        batches: batch,
    }))
}

#[test]
fn byte_by_byte_gives_the_frame() {
    let batch = sample_batch();
    let wire = produce_wire(&batch);
    let mut reader = FrameReader::new(MAX_FRAME_BODY_BYTES);
    for (i, byte) in wire.iter().enumerate() {
        assert!(!reader.is_complete());
        assert_eq!(reader.wanted(), if i < 8 { 8 - i } else { wire.len() - i });
        must(reader.push(std::slice::from_ref(byte)));
        assert_eq!(reader.header().is_some(), i >= 7);
    }
    assert!(reader.is_complete());
    assert_eq!(reader.wanted(), 0);
    let (header, body) = must(reader.finish());
    assert_eq!(Some((header, body)), reader.frame());
    assert_eq!(
        must(Request::decode(header, body)),
        must(decode_request(&wire))
    );
}

#[test]
fn body_buffer_never_exceeds_the_declared_length() {
    let batch = vec![7u8; 1000];
    let wire = produce_wire(&batch);
    let declared = wire.len() - FRAME_HEADER_LEN;
    let mut reader = FrameReader::new(MAX_FRAME_BODY_BYTES);
    for byte in &wire {
        must(reader.push(std::slice::from_ref(byte)));
        assert!(reader.body_capacity() <= declared);
    }
    assert!(reader.is_complete());
}

#[test]
fn a_large_declared_body_costs_nothing_until_it_arrives() {
    let ceiling = must(u32::try_from(MAX_FRAME_BODY_BYTES));
    let mut reader = FrameReader::new(MAX_FRAME_BODY_BYTES);
    must(reader.push(&FrameHeader::new(0x05, ceiling).encode()));
    assert_eq!(reader.body_capacity(), 0);
    assert_eq!(reader.wanted(), MAX_FRAME_BODY_BYTES);
    must(reader.push(&[0; 100]));
    assert!(reader.body_capacity() < 1024);
}

#[test]
fn oversized_declared_length_is_rejected_before_buffering() {
    let mut reader = FrameReader::new(1024);
    let mut chunk = FrameHeader::new(0x05, 1025).encode().to_vec();
    chunk.extend_from_slice(&[0; 1025]);
    assert_eq!(
        reader.push(&chunk),
        Err(ProtocolError::FrameTooLarge {
            kind: 0x05,
            body_len: 1025,
            max: 1024
        })
    );
    assert_eq!(reader.body_capacity(), 0);
    assert_eq!(reader.header(), None);
    assert_eq!(
        FrameReader::new(usize::MAX).max_body(),
        MAX_FRAME_BODY_BYTES
    );
}

#[test]
fn bad_magic_fails_on_the_second_byte() {
    let mut reader = FrameReader::new(MAX_FRAME_BODY_BYTES);
    must(reader.push(b"G"));
    assert_eq!(
        reader.push(b"E"),
        Err(ProtocolError::BadMagic { found: 0x4547 })
    );
    assert!(reader.push(b"T / HTTP/1.1").is_err()); // stays failed
}

#[test]
fn bytes_after_the_frame_are_a_violation() {
    let wire = encode_request(&Request::ListTopics);
    let mut reader = FrameReader::new(MAX_FRAME_BODY_BYTES);
    let two = [wire.as_slice(), wire.as_slice()].concat();
    assert_eq!(
        reader.push(&two),
        Err(ProtocolError::BytesAfterFrame { count: 8 })
    );
    let err = ProtocolError::BytesAfterFrame { count: 8 };
    assert_eq!(err.app_error_code(), AppErrorCode::ProtocolViolation);

    let mut reader = FrameReader::new(MAX_FRAME_BODY_BYTES);
    must(reader.push(&wire));
    must(reader.push(&[])); // an empty chunk (a bare FIN) is fine
    assert_eq!(
        reader.push(&[1]),
        Err(ProtocolError::BytesAfterFrame { count: 1 })
    );
}

#[test]
fn stream_ending_early_is_truncated() {
    let batch = sample_batch();
    let wire = produce_wire(&batch);
    for cut in 0..wire.len() {
        let mut reader = FrameReader::new(MAX_FRAME_BODY_BYTES);
        must(reader.push(wire.get(..cut).unwrap_or_default()));
        assert!(reader.frame().is_none());
        assert!(matches!(
            reader.finish(),
            Err(ProtocolError::Truncated { .. })
        ));
    }
}

#[test]
fn reset_readies_the_reader_for_the_next_stream() {
    let batch = sample_batch();
    let first = produce_wire(&batch);
    let second = encode_request(&Request::DescribeTopic { name: "x" });
    let mut reader = FrameReader::new(MAX_FRAME_BODY_BYTES);
    must(reader.push(&first));
    reader.reset();
    assert_eq!(reader.wanted(), FRAME_HEADER_LEN);
    must(reader.push(&second));
    let (header, body) = must(reader.finish());
    assert_eq!(
        must(Request::decode(header, body)),
        Request::DescribeTopic { name: "x" }
    );
    let Some((_, owned)) = reader.into_parts() else {
        panic!("frame is complete");
    };
    assert_eq!(owned, body_of_describe());
}

fn body_of_describe() -> Vec<u8> {
    vec![1, 0, b'x']
}

#[test]
fn empty_body_frame_completes_with_its_header() {
    let mut reader = FrameReader::new(0);
    must(reader.push(&encode_request(&Request::ListTopics)));
    assert!(reader.is_complete());
    let (header, body) = must(reader.finish());
    assert_eq!(must(Request::decode(header, body)), Request::ListTopics);
}
