//! Sends `COUNT` keyed messages to a topic and prints where they were
//! stored.
//!
//! Start a development server in one terminal:
//!
//! ```text
//! cargo run --release -- serve
//! ```
//!
//! then, in another (the topic is created with 3 partitions if missing):
//!
//! ```text
//! TIDEGATE_CA=tidegate-data/tls/dev-cert.pem \
//!     cargo run -p tidegate-client --example produce -- orders 1000
//! ```
//!
//! Arguments: `[TOPIC] [COUNT]` (default `orders` and 100). Environment:
//! `TIDEGATE_ADDR` (default `127.0.0.1:7441`) and `TIDEGATE_CA`, the PEM
//! file of the CA to trust (the dev certificate `tidegate serve` writes
//! into its data dir); without it the example trusts any certificate,
//! which is for development only.

use std::collections::BTreeMap;
use std::error::Error as StdError;

use tidegate_client::{Client, Error, ErrorCode, Producer, ProducerConfig, ProducerRecord, Tls};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn StdError>> {
    let mut args = std::env::args().skip(1);
    let topic = args.next().unwrap_or_else(|| "orders".to_owned());
    let count: u32 = args.next().map_or(Ok(100), |n| n.parse())?;

    let client = connect().await?;
    match client.create_topic(&topic, 3).await {
        Ok(()) => println!("created topic {topic} with 3 partitions"),
        Err(Error::Server {
            code: ErrorCode::TopicExists,
            ..
        }) => {}
        Err(e) => return Err(e.into()),
    }

    // The producer batches messages per partition and retries retriable
    // errors, reconnecting if the server restarts.
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let mut receipts = Vec::with_capacity(count as usize);
    for i in 0..count {
        // Messages with the same key go to the same partition, in order.
        let record = ProducerRecord::new(format!("order {i}"))
            .with_key(format!("customer-{}", i % 10))
            .with_header("source", "example");
        // `send` returns at once with a receipt; await it later.
        receipts.push(producer.send(&topic, record).await?);
    }

    // Per partition: how many messages, and the offsets they got.
    let mut stored: BTreeMap<u32, (u64, u64, u64)> = BTreeMap::new();
    let mut failed = 0;
    for receipt in receipts {
        match receipt.await {
            Ok(delivered) => {
                let offset = delivered.offset.unwrap_or_default();
                let entry = stored
                    .entry(delivered.partition)
                    .or_insert((0, offset, offset));
                *entry = (entry.0 + 1, entry.1.min(offset), entry.2.max(offset));
            }
            Err(e) => {
                failed += 1;
                eprintln!("not stored: {e}");
            }
        }
    }
    producer.close().await;
    client.close().await;

    for (partition, (messages, first, last)) in &stored {
        println!("partition {partition}: {messages} messages at offsets {first}..={last}");
    }
    println!("{} stored, {failed} failed", count - failed);
    Ok(())
}

/// Connects to `TIDEGATE_ADDR`, trusting `TIDEGATE_CA` if set.
async fn connect() -> Result<Client, Box<dyn StdError>> {
    let addr = std::env::var("TIDEGATE_ADDR").unwrap_or_else(|_| "127.0.0.1:7441".to_owned());
    let tls = match std::env::var_os("TIDEGATE_CA") {
        Some(path) => Tls::ca_file(path),
        None => Tls::insecure_dev(),
    };
    Ok(Client::connect(addr.parse()?, tls).await?)
}
