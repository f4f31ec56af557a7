//! The prefetching consumer against the real server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use tidegate_client::{
    Client, ConsumedMessage, Consumer, ConsumerConfig, Error, ErrorCode, Producer, ProducerConfig,
    ProducerRecord, Start,
};

/// Generous bound on anything that should happen promptly.
const PROMPT: Duration = Duration::from_secs(30);
const T0: i64 = 1_700_000_000_000;

/// Produces `values[i]` to `partitions[i]` (timestamp `T0 + i`, a header)
/// and waits until every message is stored.
async fn produce(client: &Client, topic: &str, messages: &[(u32, String)]) {
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let mut receipts = Vec::new();
    for (i, (partition, value)) in messages.iter().enumerate() {
        let record = ProducerRecord::new(value.clone().into_bytes())
            .with_key(format!("k{i}").into_bytes())
            .with_header("n", i.to_string().into_bytes())
            .with_partition(*partition)
            .with_timestamp_ms(T0 + i as i64);
        receipts.push(producer.send(topic, record).await.unwrap());
    }
    producer.flush().await;
    for receipt in receipts {
        tokio::time::timeout(PROMPT, receipt)
            .await
            .expect("receipt resolves")
            .unwrap();
    }
    producer.close().await;
}

async fn next(consumer: &mut Consumer) -> ConsumedMessage {
    tokio::time::timeout(PROMPT, consumer.next())
        .await
        .expect("a message arrives")
        .unwrap()
        .expect("the consumer is running")
}

fn config(start: Start) -> ConsumerConfig {
    ConsumerConfig {
        start,
        ..ConsumerConfig::default()
    }
}

fn value(m: &ConsumedMessage) -> String {
    String::from_utf8(m.value().unwrap().to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn earliest_reads_every_message_of_every_partition_in_offset_order() {
    let server = support::start();
    let client = support::connect(&server).await;
    client.create_topic("events", 3).await.unwrap();
    let sent: Vec<(u32, String)> = (0..5_000u32).map(|i| (i % 3, format!("m{i}"))).collect();
    produce(&client, "events", &sent).await;

    // Small fetches, so each partition takes many prefetched responses.
    let config = ConsumerConfig {
        max_bytes: 16 << 10,
        ..config(Start::Earliest)
    };
    let mut consumer = Consumer::new(client, "events", config).await.unwrap();
    assert_eq!(consumer.partitions().collect::<Vec<_>>(), [0, 1, 2]);
    let mut seen: BTreeMap<u32, Vec<(u64, String)>> = BTreeMap::new();
    for _ in 0..sent.len() {
        let m = next(&mut consumer).await;
        let i: usize = value(&m)[1..].parse().unwrap();
        assert_eq!(m.key().unwrap(), format!("k{i}").as_bytes());
        assert_eq!(m.timestamp_ms(), T0 + i as i64);
        let headers: Vec<_> = m
            .headers()
            .map(|(n, v)| (n.to_owned(), v.to_vec()))
            .collect();
        assert_eq!(headers, [("n".to_owned(), i.to_string().into_bytes())]);
        seen.entry(m.partition())
            .or_default()
            .push((m.offset(), value(&m)));
    }
    for partition in 0..3u32 {
        let expected: Vec<(u64, String)> = sent
            .iter()
            .filter(|(p, _)| *p == partition)
            .enumerate()
            .map(|(offset, (_, v))| (offset as u64, v.clone()))
            .collect();
        assert_eq!(seen[&partition], expected, "partition {partition}");
        assert_eq!(
            consumer.position(partition),
            Some(expected.len() as u64),
            "partition {partition}"
        );
    }
    consumer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_reads_only_messages_produced_after_new() {
    let server = support::start();
    let client = support::connect(&server).await;
    client.create_topic("events", 2).await.unwrap();
    let old: Vec<(u32, String)> = (0..10u32).map(|i| (i % 2, format!("old{i}"))).collect();
    produce(&client, "events", &old).await;

    let mut consumer = Consumer::new(client.clone(), "events", config(Start::Latest))
        .await
        .unwrap();
    assert_eq!(consumer.position(0), Some(5));
    assert_eq!(consumer.position(1), Some(5));
    let new: Vec<(u32, String)> = (0..6u32).map(|i| (i % 2, format!("new{i}"))).collect();
    produce(&client, "events", &new).await;

    let mut got = Vec::new();
    for _ in 0..new.len() {
        let m = next(&mut consumer).await;
        assert!(m.offset() >= 5, "{m:?}");
        got.push(value(&m));
    }
    got.sort();
    let mut expected: Vec<String> = new.into_iter().map(|(_, v)| v).collect();
    expected.sort();
    assert_eq!(got, expected);
    assert_eq!(consumer.position(0), Some(8));
    assert_eq!(consumer.position(1), Some(8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_start_on_one_partition_reads_from_that_offset() {
    let server = support::start();
    let client = support::connect(&server).await;
    client.create_topic("events", 2).await.unwrap();
    let sent: Vec<(u32, String)> = (0..20u32).map(|i| (i % 2, format!("m{i}"))).collect();
    produce(&client, "events", &sent).await;

    let config = ConsumerConfig {
        partitions: Some(vec![1]),
        ..config(Start::Offset(4))
    };
    let mut consumer = Consumer::new(client, "events", config).await.unwrap();
    assert_eq!(consumer.position(1), Some(4));
    assert_eq!(consumer.position(0), None);
    for offset in 4..10u64 {
        let m = next(&mut consumer).await;
        assert_eq!((m.partition(), m.offset()), (1, offset));
        assert_eq!(value(&m), format!("m{}", offset * 2 + 1));
    }
    assert_eq!(consumer.position(1), Some(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamp_start_reads_from_the_first_message_at_or_after_it() {
    let server = support::start();
    let client = support::connect(&server).await;
    client.create_topic("events", 1).await.unwrap();
    let sent: Vec<(u32, String)> = (0..10u32).map(|i| (0, format!("m{i}"))).collect();
    produce(&client, "events", &sent).await;

    let mut consumer = Consumer::new(client, "events", config(Start::Timestamp(T0 + 7)))
        .await
        .unwrap();
    assert_eq!(consumer.position(0), Some(7));
    let m = next(&mut consumer).await;
    assert_eq!((m.offset(), value(&m)), (7, "m7".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_topic_or_partition_fails_in_new() {
    let server = support::start();
    let client = support::connect(&server).await;
    let err = Consumer::new(client.clone(), "missing", config(Start::Earliest))
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

    client.create_topic("events", 2).await.unwrap();
    let config = ConsumerConfig {
        partitions: Some(vec![0, 5]),
        ..config(Start::Earliest)
    };
    let err = Consumer::new(client, "events", config).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::UnknownPartition), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_error_surfaces_through_next() {
    let server = support::start();
    let client = support::connect(&server).await;
    client.create_topic("events", 1).await.unwrap();
    let mut consumer = Consumer::new(client.clone(), "events", config(Start::Earliest))
        .await
        .unwrap();
    client.delete_topic("events").await.unwrap();
    let result = tokio::time::timeout(PROMPT, consumer.next())
        .await
        .expect("the error arrives");
    let err = result.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::UnknownTopic), "{err:?}");
    // The only partition has stopped.
    assert!(consumer.next().await.unwrap().is_none());
}
