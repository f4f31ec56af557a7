//! Error codes: wire values are stable and unique, unknown values survive,
//! and the retry rule is the documented one.

use super::*;

#[test]
fn every_known_code_round_trips_through_its_wire_value() {
    let mut seen = std::collections::HashSet::new();
    for &code in ErrorCode::ALL {
        assert!(seen.insert(code.as_u16()), "{code} is not unique");
        assert_eq!(ErrorCode::from_u16(code.as_u16()), code);
        assert_ne!(code.name(), "unknown");
    }
    assert_eq!(ErrorCode::ALL.len(), 29);
}

#[test]
fn unknown_codes_decode_as_unknown_and_are_not_retriable() {
    for value in [6, 19, 42, 1000, u16::MAX] {
        let code = ErrorCode::from_u16(value);
        assert_eq!(code, ErrorCode::Unknown(value));
        assert_eq!(code.as_u16(), value);
        assert!(!code.is_retriable());
        assert_eq!(code.to_string(), format!("unknown error code {value}"));
    }
}

#[test]
fn wire_values_are_the_documented_ones() {
    let expected = [
        (ErrorCode::Ok, 0),
        (ErrorCode::MalformedFrame, 1),
        (ErrorCode::UnsupportedVersion, 2),
        (ErrorCode::UnsupportedKind, 3),
        (ErrorCode::FrameTooLarge, 4),
        (ErrorCode::InvalidRequest, 5),
        (ErrorCode::UnknownTopic, 10),
        (ErrorCode::UnknownPartition, 11),
        (ErrorCode::TopicExists, 12),
        (ErrorCode::InvalidTopicName, 13),
        (ErrorCode::BatchTooLarge, 20),
        (ErrorCode::CorruptBatch, 21),
        (ErrorCode::OffsetOutOfRange, 22),
        (ErrorCode::OutOfOrderSequence, 23),
        (ErrorCode::ProducerFenced, 24),
        (ErrorCode::Busy, 30),
        (ErrorCode::Timeout, 31),
        (ErrorCode::ShuttingDown, 32),
        (ErrorCode::NoSpace, 33),
        (ErrorCode::StorageFailed, 34),
        (ErrorCode::Internal, 35),
        (ErrorCode::NotAuthenticated, 40),
        (ErrorCode::NotAuthorized, 41),
        (ErrorCode::UnknownMember, 50),
        (ErrorCode::NotAssigned, 51),
        (ErrorCode::LeaseExpired, 52),
        (ErrorCode::UnknownSubscription, 53),
        (ErrorCode::SubscriptionExists, 54),
        (ErrorCode::InvalidFilter, 55),
    ];
    for (code, value) in expected {
        assert_eq!(code.as_u16(), value, "{code}");
    }
}

#[test]
fn only_transient_server_states_are_retriable() {
    let retriable: Vec<_> = ErrorCode::ALL
        .iter()
        .copied()
        .filter(|c| c.is_retriable())
        .collect();
    assert_eq!(
        retriable,
        [
            ErrorCode::Busy,
            ErrorCode::Timeout,
            ErrorCode::ShuttingDown,
            ErrorCode::NoSpace
        ]
    );
    assert!(ErrorCode::Ok.is_ok());
    assert!(!ErrorCode::Internal.is_ok());
}

#[test]
fn every_code_appears_in_the_protocol_doc() {
    let doc = include_str!("../../../../docs/PROTOCOL.md");
    for &code in ErrorCode::ALL {
        let row = format!(
            "| {} | `{}` | {} |",
            code.as_u16(),
            code.name(),
            if code.is_retriable() { "yes" } else { "no" }
        );
        assert!(doc.contains(&row), "docs/PROTOCOL.md lacks the row {row:?}");
    }
    for code in AppErrorCode::ALL {
        let row = format!("| `{:#x}` | `{}` |", code.as_u64(), code.name());
        assert!(doc.contains(&row), "docs/PROTOCOL.md lacks the row {row:?}");
    }
}

#[test]
fn app_error_codes_round_trip() {
    for code in AppErrorCode::ALL {
        assert_eq!(AppErrorCode::from_u64(code.as_u64()), Some(code));
        assert_eq!(code.to_string(), code.name());
    }
    assert_eq!(AppErrorCode::from_u64(0x6), None);
    assert_eq!(AppErrorCode::ProtocolViolation.as_u64(), 0x1);
    assert_eq!(AppErrorCode::FrameTooLarge.as_u64(), 0x2);
}
