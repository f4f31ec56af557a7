//! The batching producer against the real server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tidegate_client::{
    Client, Delivered, Error, ErrorCode, Producer, ProducerConfig, ProducerRecord, Receipt, Tls,
};
use tidegate_proto::partitioner::key_to_partition;

/// Long enough that only a full batch, a flush or a close sends.
const LINGER_FOREVER: Duration = Duration::from_secs(600);
/// Generous bound on anything that should happen promptly.
const PROMPT: Duration = Duration::from_secs(30);

fn config(linger: Duration) -> ProducerConfig {
    ProducerConfig {
        linger,
        ..ProducerConfig::default()
    }
}

/// The receipt's outcome if it is resolved already. (Unconstrained:
/// tokio's cooperative budget would make a resolved receipt look pending
/// after many polls in one go.)
fn ready(receipt: &mut Receipt) -> Option<Result<Delivered, Error>> {
    let receipt = pin!(tokio::task::unconstrained(receipt));
    match receipt.poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(result) => Some(result),
        Poll::Pending => None,
    }
}

async fn resolve(receipt: Receipt) -> Result<Delivered, Error> {
    tokio::time::timeout(PROMPT, receipt)
        .await
        .expect("receipt resolves")
}

/// Every message of a partition, as `(offset, key, value)`.
async fn fetch_all(client: &Client, topic: &str, partition: u32) -> Vec<(u64, Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let fetched = client
            .fetch(topic, partition, offset, 1 << 20, Duration::ZERO)
            .await
            .unwrap();
        for message in fetched.messages() {
            let m = message.unwrap();
            out.push((
                m.offset(),
                m.key().unwrap_or_default().to_vec(),
                m.value().unwrap().to_vec(),
            ));
        }
        offset = fetched.next_offset();
        if offset >= fetched.high_watermark {
            return out;
        }
    }
}

#[tokio::test]
async fn keyed_messages_arrive_in_order_at_the_offsets_of_their_receipts() {
    let server = support::start();
    let client = support::connect(&server).await;
    client.create_topic("orders", 4).await.unwrap();
    let producer = Producer::new(client.clone(), ProducerConfig::default());

    let mut receipts = Vec::new();
    for i in 0..10_000u32 {
        let record = ProducerRecord::new(i.to_string()).with_key(format!("k{}", i % 37));
        receipts.push(producer.send("orders", record).await.unwrap());
    }
    let mut sent: HashMap<(u32, u64), (String, String)> = HashMap::new();
    for (i, receipt) in (0..10_000u32).zip(receipts) {
        let delivered = resolve(receipt).await.unwrap();
        let key = format!("k{}", i % 37);
        assert_eq!(
            Some(delivered.partition),
            key_to_partition(key.as_bytes(), 4)
        );
        sent.insert(
            (delivered.partition, delivered.offset.unwrap()),
            (key, i.to_string()),
        );
    }
    assert_eq!(sent.len(), 10_000, "every receipt has its own offset");
    producer.close().await;

    let mut total = 0;
    for partition in 0..4 {
        let stored = fetch_all(&client, "orders", partition).await;
        let mut last_value = None;
        for (offset, key, value) in stored {
            let (sent_key, sent_value) = &sent[&(partition, offset)];
            assert_eq!(
                (sent_key.as_bytes(), sent_value.as_bytes()),
                (&key[..], &value[..])
            );
            let value: u32 = sent_value.parse().unwrap();
            assert!(
                last_value < Some(value),
                "partition {partition} out of order"
            );
            last_value = Some(value);
            total += 1;
        }
    }
    assert_eq!(total, 10_000);
}

#[tokio::test]
async fn a_lone_message_is_sent_after_linger() {
    let server = support::start();
    let client = support::connect(&server).await;
    client.create_topic("t", 1).await.unwrap();
    let producer = Producer::new(client, config(Duration::from_millis(20)));
    let receipt = producer.send("t", ProducerRecord::new("x")).await.unwrap();
    // No flush, no full batch: only the linger timer can send it.
    let delivered = resolve(receipt).await.unwrap();
    assert_eq!((delivered.partition, delivered.offset), (0, Some(0)));
}

#[tokio::test]
async fn flush_waits_for_every_receipt() {
    let server = support::start();
    let client = support::connect(&server).await;
    client.create_topic("t", 3).await.unwrap();
    let producer = Producer::new(client, config(LINGER_FOREVER));
    let mut receipts = Vec::new();
    for i in 0..300u32 {
        let record = ProducerRecord::new("v").with_partition(i % 3);
        receipts.push(producer.send("t", record).await.unwrap());
    }
    tokio::time::timeout(PROMPT, producer.flush())
        .await
        .unwrap();
    for receipt in &mut receipts {
        let delivered = ready(receipt).expect("resolved by flush").unwrap();
        assert!(delivered.offset.unwrap() < 100);
    }
}

#[tokio::test]
async fn an_unknown_topic_fails_the_receipt_without_retrying() {
    let server = support::start();
    let client = support::connect(&server).await;
    let producer = Producer::new(client, config(Duration::from_millis(1)));
    let keyed = ProducerRecord::new("v").with_key("k");
    let explicit = ProducerRecord::new("v").with_partition(0);
    for record in [keyed, explicit, ProducerRecord::new("keyless")] {
        let receipt = producer.send("missing", record).await.unwrap();
        // Retries would take 5 backoffs; an unretried failure is quick.
        let result = tokio::time::timeout(Duration::from_secs(5), receipt)
            .await
            .unwrap();
        assert!(
            matches!(
                result,
                Err(Error::Server {
                    code: ErrorCode::UnknownTopic,
                    ..
                })
            ),
            "{result:?}"
        );
    }
}

#[tokio::test]
async fn send_waits_while_the_buffer_is_full_then_succeeds() {
    let server = support::start();
    let client = support::connect(&server).await;
    client.create_topic("t", 1).await.unwrap();
    let producer = Producer::new(
        client,
        ProducerConfig {
            buffer_max_bytes: 1000,
            ..config(LINGER_FOREVER)
        },
    );
    let value = vec![b'x'; 300];
    // Two messages of 300 bytes fit in 1000 bytes, three do not.
    let first = producer
        .send("t", ProducerRecord::new(value.clone()))
        .await
        .unwrap();
    let second = producer
        .send("t", ProducerRecord::new(value.clone()))
        .await
        .unwrap();
    let mut third = pin!(producer.send("t", ProducerRecord::new(value.clone())));
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut third)
            .await
            .is_err(),
        "send must wait while the buffer is full"
    );
    // Acknowledging the first two frees the buffer.
    let (third, ()) = tokio::join!(third, producer.flush());
    let third = third.unwrap();
    producer.flush().await;
    let offsets = [
        resolve(first).await.unwrap().offset,
        resolve(second).await.unwrap().offset,
        resolve(third).await.unwrap().offset,
    ];
    assert_eq!(offsets, [Some(0), Some(1), Some(2)]);
}

#[tokio::test]
async fn keyless_messages_stick_to_a_partition_per_batch() {
    let server = support::start();
    let client = support::connect(&server).await;
    client.create_topic("t", 4).await.unwrap();
    let producer = Producer::new(
        client,
        ProducerConfig {
            batch_max_records: 10,
            ..config(LINGER_FOREVER)
        },
    );
    let mut receipts = Vec::new();
    for _ in 0..80 {
        receipts.push(producer.send("t", ProducerRecord::new("v")).await.unwrap());
    }
    let mut partitions = Vec::new();
    for receipt in receipts {
        partitions.push(resolve(receipt).await.unwrap().partition);
    }
    for batch in partitions.chunks(10) {
        assert!(batch.iter().all(|p| *p == batch[0]), "{partitions:?}");
    }
    let mut used = partitions.clone();
    used.sort_unstable();
    used.dedup();
    assert_eq!(used, [0, 1, 2, 3]);
}

#[tokio::test]
async fn close_sends_what_is_left_and_drop_fails_pending_receipts() {
    let server = support::start();
    let client = support::connect(&server).await;
    client.create_topic("t", 1).await.unwrap();

    let producer = Producer::new(client.clone(), config(LINGER_FOREVER));
    let mut kept = producer
        .send("t", ProducerRecord::new("kept"))
        .await
        .unwrap();
    tokio::time::timeout(PROMPT, producer.close())
        .await
        .unwrap();
    assert_eq!(ready(&mut kept).unwrap().unwrap().offset, Some(0));

    let producer = Producer::new(client, config(LINGER_FOREVER));
    let dropped = producer
        .send("t", ProducerRecord::new("lost"))
        .await
        .unwrap();
    drop(producer);
    assert!(matches!(resolve(dropped).await, Err(Error::Closed)));
}

#[tokio::test]
async fn a_message_larger_than_a_batch_is_refused_by_send() {
    let server = support::start();
    let client = support::connect(&server).await;
    let producer = Producer::new(
        client,
        ProducerConfig {
            batch_max_bytes: 1024,
            ..ProducerConfig::default()
        },
    );
    let result = producer
        .send("t", ProducerRecord::new(vec![0u8; 2048]))
        .await;
    assert!(
        matches!(result, Err(Error::InvalidRequest(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn retries_are_bounded_and_every_receipt_of_the_batch_gets_the_error() {
    // Every call fails with a retriable transport error: the stand-in
    // server resets each stream.
    let server = support::start_resetting_server();
    let client = Client::connect(server.addr, Tls::ca_file(&server.ca_file))
        .await
        .unwrap();
    let producer = Producer::new(
        client.clone(),
        ProducerConfig {
            retries: 3,
            retry_backoff_min: Duration::from_millis(100),
            ..config(LINGER_FOREVER)
        },
    );
    let started = std::time::Instant::now();
    let mut receipts = Vec::new();
    for i in 0..3 {
        let record = ProducerRecord::new(format!("v{i}")).with_partition(0);
        receipts.push(producer.send("t", record).await.unwrap());
    }
    tokio::time::timeout(PROMPT, producer.flush())
        .await
        .unwrap();
    for receipt in &mut receipts {
        let result = ready(receipt).expect("resolved by flush");
        assert!(
            matches!(&result, Err(e @ Error::Transport(_)) if e.is_retriable()),
            "{result:?}"
        );
    }
    // Three retries, each after at least half its backoff (100, 200, 400 ms).
    assert!(started.elapsed() >= Duration::from_millis(350));
}
