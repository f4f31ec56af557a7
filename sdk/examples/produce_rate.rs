//! Measures how fast one `Producer` stores 100-byte messages durably on
//! one partition, with a given number of batches in flight per partition
//! (`ProducerConfig::max_in_flight_per_partition`): the figure behind the
//! pipelining A/B in docs/BENCHMARKS.md.
//!
//! ```text
//! TIDEGATE_ADDR=127.0.0.1:7441 \
//!     cargo run --release -p tidegate-client --example produce_rate -- 5 10
//! ```
//!
//! Arguments: `[IN_FLIGHT_PER_PARTITION] [SECONDS]` (default 5 and 10).
//! It creates a fresh one-partition topic and trusts any certificate
//! (development only).

use std::collections::VecDeque;
use std::error::Error as StdError;
use std::time::{Duration, Instant};

use tidegate_client::{Client, Producer, ProducerConfig, ProducerRecord, Tls};

/// Receipts awaited only once this many are outstanding, so that the
/// producer's own bound (its memory budget) is what paces the sends.
const RECEIPTS_HELD: usize = 200_000;

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> Result<(), Box<dyn StdError>> {
    let mut args = std::env::args().skip(1);
    let per_partition: usize = args.next().map_or(Ok(5), |n| n.parse())?;
    let seconds: u64 = args.next().map_or(Ok(10), |n| n.parse())?;
    let addr = std::env::var("TIDEGATE_ADDR").unwrap_or_else(|_| "127.0.0.1:7441".into());
    let client = Client::connect(addr.parse()?, Tls::insecure_dev()).await?;
    let topic = format!("rate-{}-{}", per_partition, std::process::id());
    client.create_topic(&topic, 1).await?;
    let config = ProducerConfig {
        batch_max_records: 1000,
        max_in_flight_per_partition: per_partition,
        ..ProducerConfig::default()
    };
    let producer = Producer::new(client, config);
    let value = vec![b'x'; 100];
    let (start, run) = (Instant::now(), Duration::from_secs(seconds));
    let mut sent = 0u64;
    let mut receipts = VecDeque::new();
    while start.elapsed() < run {
        for _ in 0..1000 {
            let record = ProducerRecord::new(value.clone());
            receipts.push_back(producer.send(&topic, record).await?);
            sent += 1;
        }
        while receipts.len() > RECEIPTS_HELD {
            if let Some(receipt) = receipts.pop_front() {
                receipt.await?;
            }
        }
    }
    for receipt in receipts {
        receipt.await?;
    }
    let rate = sent as f64 / start.elapsed().as_secs_f64();
    println!(
        "{per_partition} in flight per partition: {rate:.0} msg/s stored durably on one partition"
    );
    Ok(())
}
