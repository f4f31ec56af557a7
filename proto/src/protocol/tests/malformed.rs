//! Malformed frames give typed errors, never panics: truncation, trailing
//! bytes, unknown kinds and versions, bad tags, names and ranges.

use super::*;

/// `wire` with its body cut or extended, and the header's length fixed to
/// match, so the body decoder (not the length check) meets the damage.
fn with_body(wire: &[u8], body: &[u8]) -> Vec<u8> {
    let kind = wire.get(3).copied().unwrap_or_default();
    frame(kind, body)
}

fn body_of(wire: &[u8]) -> &[u8] {
    wire.get(FRAME_HEADER_LEN..).unwrap_or_default()
}

/// `wire` with byte `at` replaced.
fn patched(wire: &[u8], at: usize, value: u8) -> Vec<u8> {
    let mut out = wire.to_vec();
    if let Some(b) = out.get_mut(at) {
        *b = value;
    }
    out
}

#[test]
fn truncated_requests_fail_at_every_length() {
    let batch = sample_batch();
    for request in all_requests(&batch) {
        let wire = encode_request(&request);
        for cut in 0..wire.len() {
            assert!(decode_request(wire.get(..cut).unwrap_or_default()).is_err());
        }
        let body = body_of(&wire);
        for cut in 0..body.len() {
            let short = with_body(&wire, body.get(..cut).unwrap_or_default());
            let err = decode_request(&short);
            // CreateTopic's TTL and dedup window are optional at the end
            // of the body: cut before either, the body is an older
            // client's whole request; cut inside the window, what is left
            // of it is trailing bytes.
            if let Request::CreateTopic(c) = &request {
                let tail = 8
                    * (usize::from(c.message_ttl_ms.is_some() || c.dedup_window_ms.is_some())
                        + usize::from(c.dedup_window_ms.is_some()));
                let fixed = body.len() - tail;
                match &err {
                    Ok(Request::CreateTopic(old)) => {
                        assert!(
                            cut == fixed || (cut == fixed + 8 && c.dedup_window_ms.is_some()),
                            "{request:?} cut at {cut}"
                        );
                        assert_eq!((old.name, old.partitions), (c.name, c.partitions));
                        assert_eq!(old.dedup_window_ms, None);
                        continue;
                    }
                    Err(ProtocolError::TrailingBytes { .. })
                        if c.dedup_window_ms.is_some() && cut > fixed + 8 =>
                    {
                        continue
                    }
                    _ => {}
                }
            }
            assert!(
                matches!(err, Err(ProtocolError::Truncated { .. })),
                "{request:?} cut at {cut}: {err:?}"
            );
        }
    }
}

#[test]
fn truncated_responses_fail_at_every_length() {
    let batch = sample_batch();
    for response in all_responses(&batch) {
        let wire = encode_response(&response);
        for cut in 0..wire.len() {
            assert!(decode_response(wire.get(..cut).unwrap_or_default()).is_err());
        }
        let body = body_of(&wire);
        // DescribeTopic's settings are optional at the end of the body.
        let settings_len = match &response {
            Response::DescribeTopic(d) if d.settings.is_some() => {
                let mut without = Vec::new();
                Response::DescribeTopic(TopicDescription {
                    settings: None,
                    ..d.clone()
                })
                .encode(&mut without);
                Some(wire.len() - without.len())
            }
            _ => None,
        };
        for cut in 0..body.len() {
            let short = with_body(&wire, body.get(..cut).unwrap_or_default());
            let err = decode_response(&short);
            if let Some(len) = settings_len {
                let fixed = body.len() - len;
                match &err {
                    Ok(Response::DescribeTopic(d)) if cut == fixed && d.settings.is_none() => {
                        continue
                    }
                    Err(ProtocolError::TrailingBytes { .. }) if cut > fixed && cut < fixed + 5 => {
                        continue
                    }
                    _ => {}
                }
            }
            assert!(
                matches!(err, Err(ProtocolError::Truncated { .. })),
                "{response:?} cut at {cut}: {err:?}"
            );
        }
    }
}

#[test]
fn trailing_bytes_after_the_last_field_are_rejected() {
    let batch = sample_batch();
    for request in all_requests(&batch) {
        let wire = encode_request(&request);
        let long = with_body(&wire, &[body_of(&wire), &[0]].concat());
        assert_eq!(
            decode_request(&long),
            Err(ProtocolError::TrailingBytes { count: 1 }),
            "{request:?}"
        );
    }
    for response in all_responses(&batch) {
        let wire = encode_response(&response);
        let long = with_body(&wire, &[body_of(&wire), &[0, 0]].concat());
        assert_eq!(
            decode_response(&long),
            Err(ProtocolError::TrailingBytes { count: 2 }),
            "{response:?}"
        );
    }
}

#[test]
fn body_must_be_as_long_as_the_header_says() {
    let wire = encode_request(&Request::DescribeTopic { name: "t" });
    let (header, body) = must(split_frame(&wire));
    let longer = [body, &[0]].concat();
    assert_eq!(
        Request::decode(header, &longer),
        Err(ProtocolError::LengthMismatch {
            declared: 3,
            actual: 4
        })
    );
    assert!(matches!(
        Response::decode(FrameHeader::new(0x81, 9), &[0; 4]),
        Err(ProtocolError::LengthMismatch { .. })
    ));
}

#[test]
fn unknown_request_kinds_are_unsupported() {
    for kind in 0..=u8::MAX {
        if Kind::from_request_code(kind).is_some() {
            continue;
        }
        assert_eq!(
            decode_request(&frame(kind, &[])),
            Err(ProtocolError::UnsupportedKind { kind })
        );
    }
    let err = ProtocolError::UnsupportedKind { kind: 9 };
    assert_eq!(err.error_code(), ErrorCode::UnsupportedKind);
}

#[test]
fn ok_response_of_an_unknown_kind_is_unsupported_but_its_failure_decodes() {
    let ok_status = [0u8, 0, 0, 0];
    assert_eq!(
        decode_response(&frame(0xA0, &ok_status)),
        Err(ProtocolError::UnsupportedKind { kind: 0xA0 })
    );
    let failed = [3u8, 0, 0, 0]; // unsupported_kind, empty message
    assert_eq!(
        must(decode_response(&frame(0xA0, &failed))),
        Response::Error(ErrorResponse {
            request_kind: 0x20,
            code: ErrorCode::UnsupportedKind,
            message: ""
        })
    );
}

#[test]
fn unknown_version_is_rejected_naming_the_kind() {
    let wire = patched(&encode_request(&Request::ListTopics), 2, 2);
    assert_eq!(
        decode_header(&wire, MAX_FRAME_BODY_BYTES),
        Err(ProtocolError::UnsupportedVersion {
            version: 2,
            kind: 0x03
        })
    );
    let header = FrameHeader {
        version: 0,
        kind: 0x03,
        body_len: 0,
    };
    assert!(matches!(
        Request::decode(header, &[]),
        Err(ProtocolError::UnsupportedVersion { version: 0, .. })
    ));
    assert!(matches!(
        Response::decode(header, &[]),
        Err(ProtocolError::UnsupportedVersion { version: 0, .. })
    ));
    let err = ProtocolError::UnsupportedVersion {
        version: 2,
        kind: 3,
    };
    assert_eq!(err.error_code(), ErrorCode::UnsupportedVersion);
    assert!(!err.closes_connection());
}

#[test]
fn bad_magic_fails_after_two_bytes_and_closes_the_connection() {
    assert_eq!(decode_header(b"T", MAX_FRAME_BODY_BYTES), Ok(None));
    let err = decode_header(b"GE", MAX_FRAME_BODY_BYTES);
    assert_eq!(err, Err(ProtocolError::BadMagic { found: 0x4547 }));
    let err = ProtocolError::BadMagic { found: 0 };
    assert!(err.closes_connection());
    assert_eq!(err.app_error_code(), AppErrorCode::ProtocolViolation);
    assert_eq!(err.error_code(), ErrorCode::MalformedFrame);
}

#[test]
fn declared_body_over_the_limit_is_rejected_from_the_header_alone() {
    let header = FrameHeader::new(0x05, 1025).encode();
    assert_eq!(
        decode_header(&header, 1024),
        Err(ProtocolError::FrameTooLarge {
            kind: 0x05,
            body_len: 1025,
            max: 1024
        })
    );
    assert!(matches!(decode_header(&header, 1025), Ok(Some(_))));
    // A caller's limit above the protocol ceiling is capped.
    let huge = FrameHeader::new(0x05, u32::MAX).encode();
    assert_eq!(
        decode_header(&huge, usize::MAX),
        Err(ProtocolError::FrameTooLarge {
            kind: 0x05,
            body_len: u32::MAX,
            max: MAX_FRAME_BODY_BYTES
        })
    );
    let ceiling = must(u32::try_from(MAX_FRAME_BODY_BYTES));
    let at_ceiling = FrameHeader::new(0x05, ceiling).encode();
    assert!(matches!(
        decode_header(&at_ceiling, usize::MAX),
        Ok(Some(_))
    ));
    let err = ProtocolError::FrameTooLarge {
        kind: 5,
        body_len: 2,
        max: 1,
    };
    assert_eq!(err.error_code(), ErrorCode::FrameTooLarge);
    assert_eq!(err.app_error_code(), AppErrorCode::FrameTooLarge);
}

#[test]
fn bad_topic_names_are_rejected_by_validate_and_decode() {
    let long = "a".repeat(MAX_TOPIC_NAME_BYTES + 1);
    for name in [
        "",
        ".",
        "..",
        "a/b",
        "a b",
        "ä",
        "topic\0",
        "t*",
        long.as_str(),
    ] {
        let request = Request::CreateTopic(CreateTopicRequest {
            name,
            partitions: 1,
            retention_ms: None,
            retention_bytes: None,
            segment_bytes: None,
            message_ttl_ms: None,
            dedup_window_ms: None,
        });
        let err = request.validate();
        assert!(
            matches!(err, Err(ProtocolError::InvalidTopicName { .. })),
            "{name:?}"
        );
        assert_eq!(decode_request(&encode_request(&request)).map(|_| ()), err);
        assert_eq!(
            err.map_err(|e| e.error_code()),
            Err(ErrorCode::InvalidTopicName)
        );
    }
    let longest = "Z".repeat(MAX_TOPIC_NAME_BYTES);
    for name in ["a", "...", "a.b-c_D9", "-", longest.as_str()] {
        assert_eq!(validate_topic_name(name), Ok(()), "{name:?}");
    }
}

#[test]
fn topic_names_in_responses_are_checked_too() {
    let wire = encode_response(&Response::ListTopics(vec![TopicSummary {
        name: "bad/name",
        partitions: 1,
    }]));
    assert!(matches!(
        decode_response(&wire),
        Err(ProtocolError::InvalidTopicName { .. })
    ));
}

#[test]
fn numbers_out_of_range_are_invalid_requests() {
    let create = |partitions| {
        Request::CreateTopic(CreateTopicRequest {
            name: "t",
            partitions,
            retention_ms: None,
            retention_bytes: None,
            segment_bytes: None,
            message_ttl_ms: None,
            dedup_window_ms: None,
        })
    };
    let fetch = |partition, max_bytes, max_wait_ms| {
        Request::Fetch(FetchRequest {
            topic: "t",
            partition,
            offset: 0,
            max_bytes,
            max_wait_ms,
        })
    };
    let bad = [
        create(0),
        create(MAX_PARTITIONS + 1),
        fetch(MAX_PARTITIONS, 1, 0),
        fetch(0, 0, 0),
        fetch(0, MAX_FETCH_BYTES + 1, 0),
        fetch(0, 1, MAX_FETCH_WAIT_MS + 1),
        Request::ListOffsets(ListOffsetsRequest {
            topic: "t",
            partition: u32::MAX,
            spec: OffsetSpec::Latest,
        }),
        Request::Produce(ProduceRequest {
            topic: "t",
            target: ProduceTarget::Partition(MAX_PARTITIONS),
            ack: AckLevel::Written,
            batches: b"x",
        }),
    ];
    for request in bad {
        let err = request.validate();
        assert!(
            matches!(err, Err(ProtocolError::OutOfRange { .. })),
            "{request:?}: {err:?}"
        );
        assert_eq!(decode_request(&encode_request(&request)).map(|_| ()), err);
        assert_eq!(
            err.map_err(|e| e.error_code()),
            Err(ErrorCode::InvalidRequest)
        );
    }
    assert!(create(MAX_PARTITIONS).validate().is_ok());
}

#[test]
fn produce_without_batches_is_invalid() {
    let request = Request::Produce(ProduceRequest {
        topic: "t",
        target: ProduceTarget::Partition(0),
        ack: AckLevel::Written,
        batches: &[],
    });
    let err = Err(ProtocolError::InvalidValue {
        field: "batches",
        reason: "a produce carries at least one batch",
    });
    assert_eq!(request.validate(), err);
    assert_eq!(decode_request(&encode_request(&request)).map(|_| ()), err);
}

#[test]
fn routing_key_over_its_limit_fails_validation() {
    let key = vec![0u8; MAX_ROUTING_KEY_BYTES + 1];
    let request = Request::Produce(ProduceRequest {
        topic: "t",
        target: ProduceTarget::Key(&key),
        ack: AckLevel::Written,
        batches: b"x",
    });
    assert!(matches!(
        request.validate(),
        Err(ProtocolError::OutOfRange { field: "key", .. })
    ));
}

#[test]
fn unknown_tags_are_rejected() {
    let produce = encode_request(&Request::Produce(ProduceRequest {
        topic: "t",
        target: ProduceTarget::Partition(0),
        ack: AckLevel::Written,
        batches: b"x",
    }));
    // Body: topic (2 + 1) | target tag | partition (4) | ack | batches.
    assert_eq!(
        decode_request(&patched(&produce, 8 + 3, 2)),
        Err(ProtocolError::InvalidTag {
            field: "target",
            tag: 2
        })
    );
    assert_eq!(
        decode_request(&patched(&produce, 8 + 8, 3)),
        Err(ProtocolError::InvalidTag {
            field: "ack",
            tag: 3
        })
    );
    let create = encode_request(&Request::CreateTopic(CreateTopicRequest {
        name: "t",
        partitions: 1,
        retention_ms: None,
        retention_bytes: None,
        segment_bytes: None,
        message_ttl_ms: None,
        dedup_window_ms: None,
    }));
    // Body: name (2 + 1) | partitions (4) | retention_ms presence ...
    assert_eq!(
        decode_request(&patched(&create, 8 + 7, 2)),
        Err(ProtocolError::InvalidTag {
            field: "retention_ms",
            tag: 2
        })
    );
    let list = encode_request(&Request::ListOffsets(ListOffsetsRequest {
        topic: "t",
        partition: 0,
        spec: OffsetSpec::Earliest,
    }));
    assert_eq!(
        decode_request(&patched(&list, 8 + 7, 9)),
        Err(ProtocolError::InvalidTag {
            field: "spec",
            tag: 9
        })
    );
    let err = ProtocolError::InvalidTag { field: "x", tag: 1 };
    assert_eq!(err.error_code(), ErrorCode::MalformedFrame);
}

#[test]
fn response_messages_must_be_bounded_utf8() {
    // Busy (30), message of 2 bytes that are not UTF-8.
    let bad_utf8 = frame(0x85, &[30, 0, 2, 0, 0xff, 0xfe]);
    assert_eq!(
        decode_response(&bad_utf8),
        Err(ProtocolError::InvalidUtf8 { field: "message" })
    );
    let mut long = vec![30, 0];
    long.extend_from_slice(&1025u16.to_le_bytes());
    long.extend(std::iter::repeat_n(b'x', 1025));
    assert!(matches!(
        decode_response(&frame(0x85, &long)),
        Err(ProtocolError::OutOfRange {
            field: "message",
            ..
        })
    ));
}

#[test]
fn ok_status_must_not_carry_a_message() {
    let body = [0, 0, 1, 0, b'x'];
    assert!(matches!(
        decode_response(&frame(0x81, &body)),
        Err(ProtocolError::InvalidValue {
            field: "message",
            ..
        })
    ));
}

#[test]
fn failed_batch_result_must_have_a_zero_offset() {
    let mut body = vec![0, 0, 0, 0]; // ok status
    body.extend_from_slice(&0u32.to_le_bytes()); // throttle
    body.extend_from_slice(&1u32.to_le_bytes()); // one result
    body.extend_from_slice(&21u16.to_le_bytes()); // corrupt_batch
    body.extend_from_slice(&7u64.to_le_bytes());
    assert!(matches!(
        decode_response(&frame(0x85, &body)),
        Err(ProtocolError::InvalidValue {
            field: "base offset",
            ..
        })
    ));
}

#[test]
fn list_counts_are_bounded_before_allocating() {
    let mut over = vec![0, 0, 0, 0];
    over.extend_from_slice(&0u32.to_le_bytes());
    over.extend_from_slice(&(MAX_BATCHES_PER_PRODUCE + 1).to_le_bytes());
    assert!(matches!(
        decode_response(&frame(0x85, &over)),
        Err(ProtocolError::OutOfRange {
            field: "result count",
            ..
        })
    ));
    // A count the remaining bytes cannot hold fails before reserving.
    let mut bogus = vec![0, 0, 0, 0];
    bogus.extend_from_slice(&MAX_LISTED_TOPICS.to_le_bytes());
    assert!(matches!(
        decode_response(&frame(0x83, &bogus)),
        Err(ProtocolError::Truncated {
            field: "topic count",
            ..
        })
    ));
}

#[test]
fn every_protocol_error_maps_to_a_failure_code() {
    let errors = [
        ProtocolError::Truncated {
            field: "f",
            needed: 1,
            available: 0,
        },
        ProtocolError::TrailingBytes { count: 1 },
        ProtocolError::BytesAfterFrame { count: 1 },
        ProtocolError::LengthMismatch {
            declared: 1,
            actual: 0,
        },
        ProtocolError::InvalidUtf8 { field: "f" },
        ProtocolError::OutOfRange {
            field: "f",
            value: 0,
            min: 1,
            max: 1,
        },
        ProtocolError::InvalidValue {
            field: "f",
            reason: "r",
        },
    ];
    for err in errors {
        let code = ErrorCode::from(&err);
        assert!(!code.is_ok() && !code.is_retriable(), "{err}");
        assert!(!err.closes_connection());
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn authenticate_token_over_its_limit_is_out_of_range() {
    let token = "t".repeat(MAX_TOKEN_BYTES + 1);
    let mut body = Vec::new();
    body.extend_from_slice(&(token.len() as u16).to_le_bytes());
    body.extend_from_slice(token.as_bytes());
    assert!(matches!(
        decode_request(&frame(Kind::Authenticate.request_code(), &body)),
        Err(ProtocolError::OutOfRange { field: "token", .. })
    ));
    let bad_utf8 = [2u8, 0, 0xff, 0xfe];
    assert_eq!(
        decode_request(&frame(Kind::Authenticate.request_code(), &bad_utf8)),
        Err(ProtocolError::InvalidUtf8 { field: "token" })
    );
    let truncated = [9u8, 0, b'a'];
    assert!(decode_request(&frame(Kind::Authenticate.request_code(), &truncated)).is_err());
}

#[test]
fn init_producer_name_over_its_limit_is_out_of_range() {
    let name = "n".repeat(MAX_PRODUCER_NAME_BYTES + 1);
    let mut body = Vec::new();
    body.extend_from_slice(&(name.len() as u16).to_le_bytes());
    body.extend_from_slice(name.as_bytes());
    assert!(matches!(
        decode_request(&frame(Kind::InitProducer.request_code(), &body)),
        Err(ProtocolError::OutOfRange {
            field: "producer name",
            ..
        })
    ));
    let truncated = [9u8, 0, b'a'];
    assert!(decode_request(&frame(Kind::InitProducer.request_code(), &truncated)).is_err());
}

#[test]
fn init_producer_response_with_a_negative_id_or_epoch_is_refused() {
    for (id, epoch) in [(-1i64, 0i16), (5, -1)] {
        let mut body = vec![0, 0, 0, 0];
        body.extend_from_slice(&id.to_le_bytes());
        body.extend_from_slice(&epoch.to_le_bytes());
        assert!(matches!(
            decode_response(&frame(Kind::InitProducer.response_code(), &body)),
            Err(ProtocolError::InvalidValue { .. })
        ));
    }
}

#[test]
fn group_requests_that_break_a_rule_are_refused() {
    let heartbeat = |group: &'static str, owned: Vec<u32>, timeout: u32| {
        Request::GroupHeartbeat(GroupHeartbeatRequest {
            group,
            topic: "t",
            member_id: "",
            owned,
            session_timeout_ms: timeout,
            leave: false,
        })
    };
    for bad in [
        heartbeat("", vec![], 10_000),
        heartbeat("g", vec![1, 1], 10_000),
        heartbeat("g", vec![MAX_PARTITIONS], 10_000),
        heartbeat("g", vec![], MIN_SESSION_TIMEOUT_MS - 1),
        heartbeat("g", vec![], MAX_SESSION_TIMEOUT_MS + 1),
        Request::CommitOffsets(CommitOffsetsRequest {
            group: "g",
            member_id: "",
            topic: "t",
            offsets: vec![],
        }),
        Request::FetchOffsets(FetchOffsetsRequest {
            group: "g",
            topic: "t",
            partitions: vec![3, 3],
        }),
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
        let mut wire = Vec::new();
        bad.encode(&mut wire);
        assert!(decode_request(&wire).is_err(), "{bad:?}");
    }
    let metadata = [0u8; MAX_COMMIT_METADATA_BYTES + 1];
    let commit = Request::CommitOffsets(CommitOffsetsRequest {
        group: "g",
        member_id: "",
        topic: "t",
        offsets: vec![OffsetCommit {
            partition: 0,
            offset: 0,
            metadata: &metadata,
        }],
    });
    assert!(commit.validate().is_err());
    let mut wire = Vec::new();
    commit.encode(&mut wire);
    assert!(decode_request(&wire).is_err());
    // A huge declared count with no bytes behind it is refused before
    // anything is reserved.
    let mut body = Vec::new();
    for s in [&b"g"[..], b"t"] {
        body.extend_from_slice(&(s.len() as u16).to_le_bytes());
        body.extend_from_slice(s);
    }
    body.extend_from_slice(&[0, 0]);
    body.extend_from_slice(&4096u32.to_le_bytes());
    assert!(decode_request(&frame(Kind::GroupHeartbeat.request_code(), &body)).is_err());
}

#[test]
fn subscription_configs_that_break_a_rule_are_refused() {
    let base = SubscriptionConfig::new("s", "t");
    let with_dlq = SubscriptionConfig {
        max_deliveries: 3,
        dead_letter_topic: "t.dlq",
        ..base
    };
    for bad in [
        SubscriptionConfig {
            dead_letter_expired: true,
            ..base
        },
        SubscriptionConfig {
            delivery_delay_ms: MAX_DELIVERY_DELAY_MS + 1,
            ..base
        },
        SubscriptionConfig {
            dead_letter_topic: "t",
            ..with_dlq
        },
        SubscriptionConfig {
            max_deliveries: 0,
            ..with_dlq
        },
        SubscriptionConfig {
            backoff_min_ms: 2,
            backoff_max_ms: 1,
            ..base
        },
    ] {
        let request = Request::CreateSubscription(bad);
        assert!(request.validate().is_err(), "{bad:?}");
        let mut wire = Vec::new();
        request.encode(&mut wire);
        assert!(decode_request(&wire).is_err(), "{bad:?}");
    }
    let good = SubscriptionConfig {
        dead_letter_expired: true,
        delivery_delay_ms: MAX_DELIVERY_DELAY_MS,
        ..with_dlq
    };
    assert_eq!(Request::CreateSubscription(good).validate(), Ok(()));
}

#[test]
fn a_create_topic_from_an_older_client_has_no_message_ttl() {
    let with_ttl = CreateTopicRequest {
        name: "t",
        partitions: 2,
        retention_ms: Some(5),
        retention_bytes: None,
        segment_bytes: None,
        message_ttl_ms: Some(60_000),
        dedup_window_ms: None,
    };
    let wire = encode_request(&Request::CreateTopic(with_ttl));
    let body = body_of(&wire);
    // The older body ends where the TTL would start.
    let old = with_body(&wire, &body[..body.len() - 8]);
    let without = CreateTopicRequest {
        message_ttl_ms: None,
        dedup_window_ms: None,
        ..with_ttl
    };
    assert_eq!(decode_request(&old), Ok(Request::CreateTopic(without)));
    assert_eq!(
        old,
        encode_request(&Request::CreateTopic(without)),
        "one encoding"
    );
    // A dedup window after it: the TTL of 0 written before it is none.
    let dedup = CreateTopicRequest {
        message_ttl_ms: None,
        dedup_window_ms: Some(120_000),
        ..with_ttl
    };
    let dedup_wire = encode_request(&Request::CreateTopic(dedup));
    assert_eq!(body_of(&dedup_wire).len(), body.len() + 8);
    assert_eq!(decode_request(&dedup_wire), Ok(Request::CreateTopic(dedup)));
    // A TTL cut short is a truncated request.
    let short = with_body(&wire, &body[..body.len() - 3]);
    assert!(matches!(
        decode_request(&short),
        Err(ProtocolError::Truncated { .. })
    ));
}

#[test]
fn push_credits_out_of_range_are_invalid_requests() {
    let open = |max_messages, max_bytes| {
        Request::StreamingPull(StreamingPullRequest {
            subscription: "s",
            max_messages,
            max_bytes,
        })
    };
    let credit = |stream, messages, bytes| {
        Request::PushCredit(PushCreditRequest {
            stream,
            messages,
            bytes,
        })
    };
    let bad = [
        open(0, 1),
        open(1, 0),
        open(MAX_PUSH_CREDIT_MESSAGES + 1, 1),
        open(1, MAX_PUSH_CREDIT_BYTES + 1),
        credit(1 << 62, 1, 1),
        credit(0, MAX_PUSH_CREDIT_MESSAGES + 1, 0),
        credit(0, 0, MAX_PUSH_CREDIT_BYTES + 1),
    ];
    for request in bad {
        let err = request.validate();
        assert!(
            matches!(err, Err(ProtocolError::OutOfRange { .. })),
            "{request:?}: {err:?}"
        );
        assert_eq!(decode_request(&encode_request(&request)).map(|_| ()), err);
    }
    assert!(open(MAX_PUSH_CREDIT_MESSAGES, MAX_PUSH_CREDIT_BYTES)
        .validate()
        .is_ok());
    assert!(credit(0, 0, 0).validate().is_ok());
}
