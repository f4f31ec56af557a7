//! Produce, fetch and list offsets against the real server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use tidegate_client::{Ack, Error, ErrorCode, OffsetSpec, Target};
use tidegate_proto::batch::{BatchBuilder, Record};
use tidegate_proto::partitioner::key_to_partition;

const T0: i64 = 1_700_000_000_000;

/// One batch: record i has value `values[i]`, key `k{i}`, a header, and
/// timestamp `T0 + i`.
fn batch(values: &[&str]) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    for (i, v) in values.iter().enumerate() {
        let key = format!("k{i}");
        b.push(Record {
            timestamp_ms: T0 + i as i64,
            key: Some(key.as_bytes()),
            value: Some(v.as_bytes()),
            headers: &[("trace", b"abc")],
        })
        .unwrap();
    }
    b.finish().unwrap()
}

#[tokio::test]
async fn produce_to_a_partition_then_fetch_returns_the_messages() {
    let server = support::start();
    let client = support::connect(&server).await;
    client.create_topic("events", 2).await.unwrap();

    let first = client
        .produce_batch(
            "events",
            Target::Partition(1),
            Ack::Durable,
            batch(&["a", "b"]),
        )
        .await
        .unwrap();
    assert_eq!(first.base_offset, Some(0));
    let second = client
        .produce_batch("events", Target::Partition(1), Ack::Written, batch(&["c"]))
        .await
        .unwrap();
    assert_eq!(second.base_offset, Some(2));

    let fetched = client
        .fetch("events", 1, 0, 1 << 20, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(fetched.high_watermark, 3);
    assert_eq!(fetched.next_offset(), 3);
    let messages: Vec<_> = fetched.messages().map(Result::unwrap).collect();
    let seen: Vec<_> = messages
        .iter()
        .map(|m| (m.offset(), m.value().unwrap(), m.key().unwrap()))
        .collect();
    assert_eq!(
        seen,
        [
            (0, &b"a"[..], &b"k0"[..]),
            (1, b"b", b"k1"),
            (2, b"c", b"k0")
        ]
    );
    assert_eq!(messages[1].timestamp_ms(), T0 + 1);
    assert_eq!(messages[0].partition(), 1);
    let headers: Vec<_> = messages[0].headers().collect();
    assert_eq!(headers, [("trace", &b"abc"[..])]);
    // Values are read in place from the response buffer.
    let range = fetched.batches.as_ptr_range();
    assert!(range.contains(&messages[2].value().unwrap().as_ptr()));

    let other = client
        .fetch("events", 0, 0, 1 << 20, Duration::ZERO)
        .await
        .unwrap();
    assert!(other.is_empty());
    assert_eq!(other.messages().count(), 0);
}

#[tokio::test]
async fn fetch_from_inside_a_batch_skips_the_earlier_messages() {
    let server = support::start();
    let client = support::connect(&server).await;
    client.create_topic("mid", 1).await.unwrap();
    client
        .produce_batch(
            "mid",
            Target::Partition(0),
            Ack::Durable,
            batch(&["a", "b", "c"]),
        )
        .await
        .unwrap();

    let fetched = client
        .fetch("mid", 0, 1, 1 << 20, Duration::ZERO)
        .await
        .unwrap();
    let offsets: Vec<u64> = fetched.messages().map(|m| m.unwrap().offset()).collect();
    assert_eq!(offsets, [1, 2]);
}

#[tokio::test]
async fn produce_by_key_lands_on_the_key_partition() {
    let server = support::start();
    let client = support::connect(&server).await;
    let partitions = 8;
    client.create_topic("keyed", partitions).await.unwrap();

    for key in ["customer-7", "customer-8", "order:1001"] {
        let expected = key_to_partition(key.as_bytes(), partitions).unwrap();
        let before = client
            .list_offsets("keyed", expected, OffsetSpec::Latest)
            .await
            .unwrap();
        client
            .produce_batch(
                "keyed",
                Target::Key(key.as_bytes().to_vec()),
                Ack::Durable,
                batch(&[key]),
            )
            .await
            .unwrap();
        let fetched = client
            .fetch("keyed", expected, before, 1 << 20, Duration::ZERO)
            .await
            .unwrap();
        let values: Vec<_> = fetched
            .messages()
            .map(|m| m.unwrap().value().unwrap().to_vec())
            .collect();
        assert_eq!(values, [key.as_bytes().to_vec()], "key {key}");
    }
    let total: u64 = client
        .describe_topic("keyed")
        .await
        .unwrap()
        .partitions
        .iter()
        .map(|p| p.latest)
        .sum();
    assert_eq!(total, 3);
}

#[tokio::test]
async fn list_offsets_gives_earliest_latest_and_by_timestamp() {
    let server = support::start();
    let client = support::connect(&server).await;
    client.create_topic("offsets", 1).await.unwrap();
    client
        .produce_batch(
            "offsets",
            Target::Partition(0),
            Ack::Durable,
            batch(&["a", "b", "c"]),
        )
        .await
        .unwrap();

    let at = |spec| client.list_offsets("offsets", 0, spec);
    assert_eq!(at(OffsetSpec::Earliest).await.unwrap(), 0);
    assert_eq!(at(OffsetSpec::Latest).await.unwrap(), 3);
    assert_eq!(at(OffsetSpec::Timestamp(T0 + 2)).await.unwrap(), 2);
}

#[tokio::test]
async fn ack_none_produce_succeeds() {
    let server = support::start();
    let client = support::connect(&server).await;
    client.create_topic("fire", 1).await.unwrap();
    let produced = client
        .produce_batch("fire", Target::Partition(0), Ack::None, batch(&["x"]))
        .await
        .unwrap();
    // The protocol allows no offset here; this server sends one.
    assert!(
        matches!(produced.base_offset, None | Some(0)),
        "{produced:?}"
    );
}

#[tokio::test]
async fn produce_and_fetch_on_an_unknown_topic_are_unknown_topic() {
    let server = support::start();
    let client = support::connect(&server).await;
    let err = client
        .produce_batch("ghost", Target::Partition(0), Ack::Durable, batch(&["x"]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Server {
                code: ErrorCode::UnknownTopic,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_retriable());
    let err = client
        .fetch("ghost", 0, 0, 1024, Duration::ZERO)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::UnknownTopic), "{err:?}");
}

#[tokio::test]
async fn two_batches_in_one_produce_are_refused_before_sending() {
    let server = support::start();
    let client = support::connect(&server).await;
    let mut two = batch(&["a"]);
    two.extend(batch(&["b"]));
    let err = client
        .produce_batch("any", Target::Partition(0), Ack::Durable, two)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidRequest(_)), "{err:?}");
}
