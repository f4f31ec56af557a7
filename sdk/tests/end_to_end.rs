//! The SDK's whole path against the real server: several producers and a
//! consumer at once, every receipt checked against what the consumer reads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use tidegate_client::{Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, Start};

const PRODUCERS: u32 = 4;
const PER_PRODUCER: u32 = 25_000;
const PARTITIONS: u32 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_messages_from_four_producers_match_their_receipts() {
    let server = support::start();
    let admin = support::connect(&server).await;
    admin.create_topic("e2e", PARTITIONS).await.unwrap();
    let consumer_client = support::connect(&server).await;
    let config = ConsumerConfig {
        start: Start::Earliest,
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::new(consumer_client, "e2e", config).await.unwrap();

    let producers = (0..PRODUCERS).map(|p| {
        let server_addr = server.addr;
        let ca = server.ca_file();
        tokio::spawn(async move {
            let client =
                tidegate_client::Client::connect(server_addr, tidegate_client::Tls::ca_file(ca))
                    .await
                    .unwrap();
            let producer = Producer::new(client, ProducerConfig::default());
            let mut receipts = Vec::with_capacity(PER_PRODUCER as usize);
            for i in 0..PER_PRODUCER {
                let record =
                    ProducerRecord::new(format!("{p}:{i}")).with_key(format!("k{}", i % 11));
                receipts.push(producer.send("e2e", record).await.unwrap());
            }
            let mut delivered = Vec::with_capacity(receipts.len());
            for (i, receipt) in (0..PER_PRODUCER).zip(receipts) {
                let d = receipt.await.unwrap();
                delivered.push(((d.partition, d.offset.unwrap()), format!("{p}:{i}")));
            }
            producer.close().await;
            delivered
        })
    });
    let mut by_position: HashMap<(u32, u64), String> = HashMap::new();
    for task in producers {
        for (position, value) in task.await.unwrap() {
            assert!(
                by_position.insert(position, value).is_none(),
                "two receipts for {position:?}"
            );
        }
    }
    let total = (PRODUCERS * PER_PRODUCER) as usize;
    assert_eq!(by_position.len(), total);

    // The consumer ran beside the producers; it reads each message at the
    // offset its receipt named, each producer's messages per key in order.
    let mut seen = 0;
    let mut last: HashMap<(u32, String), u32> = HashMap::new();
    while seen < total {
        let message = tokio::time::timeout(Duration::from_secs(30), consumer.next())
            .await
            .expect("the consumer stalled")
            .unwrap()
            .expect("the consumer stopped");
        let value = std::str::from_utf8(message.value().unwrap())
            .unwrap()
            .to_owned();
        let position = (message.partition(), message.offset());
        assert_eq!(by_position.get(&position), Some(&value), "at {position:?}");
        let (producer, i) = value.split_once(':').unwrap();
        let i: u32 = i.parse().unwrap();
        let key = (i % 11, producer.to_owned());
        if let Some(previous) = last.insert(key, i) {
            assert!(previous < i, "{value} after {producer}:{previous}");
        }
        seen += 1;
    }
    consumer.close().await;
}
