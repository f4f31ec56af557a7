//! Property tests: arbitrary values round-trip, arbitrary bytes never
//! panic, any chunking of a stream gives the same frame, and `validate`
//! agrees with the decoder.

use proptest::collection::vec;
use proptest::prelude::*;

use super::*;

// Values borrow their strings and bytes; the strategies leak small owned
// buffers to get `'static` borrows (a few KiB per test run).
fn leak_str(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn leak_bytes(v: Vec<u8>) -> &'static [u8] {
    Box::leak(v.into_boxed_slice())
}

fn topic() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        4 => "[a-zA-Z0-9._-]{1,20}",
        1 => "[a-z]{249}",
    ]
    .prop_filter("reserved name", |s| s != "." && s != "..")
    .prop_map(leak_str)
}

fn bytes(min: usize, max: usize) -> impl Strategy<Value = &'static [u8]> {
    vec(any::<u8>(), min..max).prop_map(leak_bytes)
}

fn partition() -> impl Strategy<Value = u32> {
    0..MAX_PARTITIONS
}

fn failure_code() -> impl Strategy<Value = ErrorCode> {
    (1..=u16::MAX).prop_map(ErrorCode::from_u16)
}

fn create() -> impl Strategy<Value = Request<'static>> {
    (
        topic(),
        1..=MAX_PARTITIONS,
        any::<Option<u64>>(),
        any::<Option<u64>>(),
        any::<Option<u64>>(),
        any::<Option<u64>>(),
        any::<Option<u64>>(),
    )
        .prop_map(
            |(name, partitions, retention_ms, retention_bytes, segment_bytes, ttl, dedup)| {
                Request::CreateTopic(CreateTopicRequest {
                    name,
                    partitions,
                    retention_ms,
                    retention_bytes,
                    segment_bytes,
                    // 0 is no valid TTL: it stands for none before a window.
                    message_ttl_ms: ttl.map(|t| t.max(1)),
                    dedup_window_ms: dedup,
                })
            },
        )
}

fn produce() -> impl Strategy<Value = Request<'static>> {
    let target = prop_oneof![
        partition().prop_map(ProduceTarget::Partition),
        bytes(0, 40).prop_map(ProduceTarget::Key),
    ];
    let ack = prop_oneof![
        Just(AckLevel::None),
        Just(AckLevel::Written),
        Just(AckLevel::Durable)
    ];
    (topic(), target, ack, bytes(1, 300)).prop_map(|(topic, target, ack, batches)| {
        Request::Produce(ProduceRequest {
            topic,
            target,
            ack,
            batches,
        })
    })
}

fn fetch() -> impl Strategy<Value = Request<'static>> {
    (
        topic(),
        partition(),
        any::<u64>(),
        1..=MAX_FETCH_BYTES,
        0..=MAX_FETCH_WAIT_MS,
    )
        .prop_map(|(topic, partition, offset, max_bytes, max_wait_ms)| {
            Request::Fetch(FetchRequest {
                topic,
                partition,
                offset,
                max_bytes,
                max_wait_ms,
            })
        })
}

fn list_offsets() -> impl Strategy<Value = Request<'static>> {
    let spec = prop_oneof![
        Just(OffsetSpec::Earliest),
        Just(OffsetSpec::Latest),
        any::<i64>().prop_map(OffsetSpec::Timestamp),
    ];
    (topic(), partition(), spec).prop_map(|(topic, partition, spec)| {
        Request::ListOffsets(ListOffsetsRequest {
            topic,
            partition,
            spec,
        })
    })
}

fn request() -> impl Strategy<Value = Request<'static>> {
    prop_oneof![
        create(),
        topic().prop_map(|name| Request::DeleteTopic { name }),
        Just(Request::ListTopics),
        topic().prop_map(|name| Request::DescribeTopic { name }),
        produce(),
        fetch(),
        list_offsets(),
    ]
}

fn describe() -> impl Strategy<Value = Response<'static>> {
    let info = (partition(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
        |(partition, earliest, latest, durable)| PartitionInfo {
            partition,
            earliest,
            latest,
            durable,
        },
    );
    let settings = (
        any::<Option<u64>>(),
        any::<Option<u64>>(),
        any::<Option<u64>>(),
        any::<Option<u64>>(),
        any::<Option<u64>>(),
    )
        .prop_map(|(a, b, c, d, e)| TopicOverrides {
            retention_ms: a,
            retention_bytes: b,
            segment_bytes: c,
            message_ttl_ms: d,
            dedup_window_ms: e,
        });
    (topic(), vec(info, 0..20), proptest::option::of(settings)).prop_map(
        |(name, partitions, settings)| {
            Response::DescribeTopic(TopicDescription {
                name,
                partitions,
                settings,
            })
        },
    )
}

fn produce_response() -> impl Strategy<Value = Response<'static>> {
    let result = prop_oneof![any::<u64>().prop_map(Ok), failure_code().prop_map(Err)];
    (any::<u32>(), vec(result, 0..40)).prop_map(|(throttle_ms, results)| {
        Response::Produce(ProduceResponse {
            throttle_ms,
            results,
        })
    })
}

fn response() -> impl Strategy<Value = Response<'static>> {
    let summary =
        (topic(), any::<u32>()).prop_map(|(name, partitions)| TopicSummary { name, partitions });
    let fetch = (partition(), any::<u64>(), bytes(0, 300)).prop_map(
        |(partition, high_watermark, batches)| {
            Response::Fetch(FetchResponse {
                partition,
                high_watermark,
                batches,
            })
        },
    );
    let error = (0..0x80u8, failure_code(), ".{0,100}").prop_map(|(request_kind, code, m)| {
        Response::Error(ErrorResponse {
            request_kind,
            code,
            message: leak_str(m),
        })
    });
    prop_oneof![
        Just(Response::CreateTopic),
        Just(Response::DeleteTopic),
        vec(summary, 0..10).prop_map(Response::ListTopics),
        describe(),
        produce_response(),
        fetch,
        any::<u64>().prop_map(|offset| Response::ListOffsets { offset }),
        error,
    ]
}

/// Feeds `wire` to a reader in chunks of the given sizes (cycled).
fn read_in_chunks(wire: &[u8], sizes: &[usize]) -> Result<(FrameHeader, Vec<u8>), ProtocolError> {
    let mut reader = FrameReader::new(MAX_FRAME_BODY_BYTES);
    let mut rest = wire;
    for size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at((*size).min(rest.len()));
        reader.push(chunk)?;
        rest = tail;
    }
    let (header, body) = reader.finish()?;
    Ok((header, body.to_vec()))
}

proptest! {
    #[test]
    fn arbitrary_requests_round_trip(request in request()) {
        prop_assert_eq!(request.validate(), Ok(()));
        let wire = encode_request(&request);
        prop_assert_eq!(decode_request(&wire), Ok(request));
    }

    #[test]
    fn arbitrary_responses_round_trip(response in response()) {
        let wire = encode_response(&response);
        prop_assert_eq!(decode_response(&wire), Ok(response));
    }

    #[test]
    fn any_chunking_gives_the_same_frame(
        request in request(),
        sizes in vec(1usize..64, 1..8),
    ) {
        let wire = encode_request(&request);
        let (header, body) = read_in_chunks(&wire, &sizes)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(Request::decode(header, &body), Ok(request));
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in vec(any::<u8>(), 0..200)) {
        let _ = decode_header(&data, MAX_FRAME_BODY_BYTES);
        let _ = decode_request(&data);
        let _ = decode_response(&data);
        let mut reader = FrameReader::new(64);
        let _ = reader.push(&data);
        let _ = reader.finish();
    }

    #[test]
    fn arbitrary_bodies_never_panic_and_what_decodes_is_canonical(
        kind in any::<u8>(),
        body in vec(any::<u8>(), 0..200),
    ) {
        // Decoding is strict, so whatever decodes re-encodes to the same
        // bytes: each value has exactly one encoding.
        let wire = frame(kind, &body);
        if let Ok(request) = decode_request(&wire) {
            prop_assert_eq!(encode_request(&request), wire.clone());
        }
        if let Ok(response) = decode_response(&wire) {
            prop_assert_eq!(encode_response(&response), wire);
        }
    }

    #[test]
    fn mutated_frames_never_panic_and_what_decodes_is_canonical(
        request in request(),
        response in response(),
        at in any::<prop::sample::Index>(),
        value in any::<u8>(),
    ) {
        for wire in [encode_request(&request), encode_response(&response)] {
            let mut wire = wire;
            let i = at.index(wire.len());
            if let Some(b) = wire.get_mut(i) {
                *b = value;
            }
            if let Ok(r) = decode_request(&wire) {
                prop_assert_eq!(encode_request(&r), wire.clone());
            }
            if let Ok(r) = decode_response(&wire) {
                prop_assert_eq!(encode_response(&r), wire.clone());
            }
        }
    }

    #[test]
    fn validate_agrees_with_the_decoder(
        name in ".{0,12}",
        partitions in prop_oneof![Just(0u32), 1..=MAX_PARTITIONS, any::<u32>()],
        max_bytes in prop_oneof![Just(0u32), any::<u32>()],
        max_wait_ms in prop_oneof![0..=MAX_FETCH_WAIT_MS, any::<u32>()],
        batches in bytes(0, 3),
    ) {
        let name = leak_str(name);
        let requests = [
            Request::CreateTopic(CreateTopicRequest {
                name,
                partitions,
                retention_ms: None,
                retention_bytes: Some(1),
                segment_bytes: None,
                message_ttl_ms: None,
                dedup_window_ms: None,
            }),
            Request::Produce(ProduceRequest {
                topic: name,
                target: ProduceTarget::Partition(partitions),
                ack: AckLevel::Written,
                batches,
            }),
            Request::Fetch(FetchRequest {
                topic: name,
                partition: partitions,
                offset: 0,
                max_bytes,
                max_wait_ms,
            }),
            Request::ListOffsets(ListOffsetsRequest {
                topic: name,
                partition: partitions,
                spec: OffsetSpec::Latest,
            }),
        ];
        for request in requests {
            let decoded = decode_request(&encode_request(&request)).map(|_| ());
            prop_assert_eq!(request.validate(), decoded);
        }
    }
}
