//! Idempotent producers against the real server over real QUIC: a batch
//! sent again is answered with its original offsets and stored once, also
//! after kill -9 and restart; pipelined batches land in sequence order;
//! a named producer's newer instance fences the older; and the SDK's
//! producer is idempotent by default (docs/SEMANTICS.md §2).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;

use support::{
    admin_addr, metrics_until, runtime, sdk_client, start_config, start_config_at, start_env,
    Server,
};
use tidegate_client::{
    Ack, Client, ErrorCode, Producer, ProducerConfig, ProducerIdentity, ProducerRecord, Target,
};
use tidegate_proto::batch::{BatchBuilder, BatchIter, Record};

const RECORDS: u32 = 100;
/// Batches per partition: with 400-byte values, more than a 1 MiB segment,
/// so recovery reads a producer snapshot and replays after it.
const BATCHES: i32 = 30;

fn start(data: &Path, cores: &str) -> Server {
    start_env(data, cores, &[("TIDEGATE_STORAGE__SEGMENT_BYTES", "1MiB")])
}

/// Batch `n` of producer `id` on one partition: sequence `n * RECORDS`.
fn batch(id: ProducerIdentity, n: i32) -> Vec<u8> {
    let mut b = BatchBuilder::new().producer(id.producer_id, id.epoch, n * RECORDS as i32);
    for i in 0..RECORDS {
        let mut value = vec![b'.'; 400];
        value[..8].copy_from_slice(&(n as u32).to_le_bytes().repeat(2));
        b.push(Record {
            timestamp_ms: 1_700_000_000_000 + i64::from(i),
            key: None,
            value: Some(&value),
            headers: &[],
        })
        .unwrap();
    }
    b.finish().unwrap()
}

async fn produce(client: &Client, partition: u32, bytes: &[u8]) -> Result<u64, ErrorCode> {
    match client
        .produce_batch("ids", Target::Partition(partition), Ack::Durable, bytes)
        .await
    {
        Ok(p) => Ok(p.base_offset.unwrap()),
        Err(e) => Err(e.code().unwrap_or(ErrorCode::Internal)),
    }
}

/// The sum of a metric's series in a /metrics page.
fn sum(page: &str, name: &str) -> u64 {
    page.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

async fn latest(client: &Client, partition: u32) -> u64 {
    let d = client.describe_topic("ids").await.unwrap();
    d.partitions[partition as usize].latest
}

fn retries_are_written_once_across_kill_and_restart(cores: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let rt = runtime();
    let server = start(&data, cores);
    let (id, named, offsets) = rt.block_on(async {
        let client = sdk_client(&server).await;
        client.create_topic("ids", 2).await.unwrap();
        let id = client.init_producer(None).await.unwrap();
        let other = client.init_producer(None).await.unwrap();
        assert_ne!(id.producer_id, other.producer_id);
        assert_eq!((id.epoch, other.epoch), (0, 0));
        let named = client.init_producer(Some("writer")).await.unwrap();
        let mut offsets = vec![Vec::new(), Vec::new()];
        for partition in 0..2u32 {
            for n in 0..BATCHES {
                let first = produce(&client, partition, &batch(id, n)).await.unwrap();
                // Sent again at once: the same offsets, nothing written.
                assert_eq!(produce(&client, partition, &batch(id, n)).await, Ok(first));
                offsets[partition as usize].push(first);
            }
            let end = latest(&client, partition).await;
            assert_eq!(end, (BATCHES as u32 * RECORDS) as u64);
        }
        (id, named, offsets)
    });

    // kill -9: the partitions rebuild their producer tables on open.
    server.kill();
    let server = start(&data, cores);
    rt.block_on(async {
        let client = sdk_client(&server).await;
        for partition in 0..2u32 {
            let end = latest(&client, partition).await;
            for n in BATCHES - 8..BATCHES {
                assert_eq!(
                    produce(&client, partition, &batch(id, n)).await,
                    Ok(offsets[partition as usize][n as usize]),
                    "partition {partition} batch {n} after the crash"
                );
            }
            assert_eq!(
                latest(&client, partition).await,
                end,
                "nothing written twice"
            );
            // Older than the eight remembered: refused, not written.
            assert_eq!(
                produce(&client, partition, &batch(id, 0)).await,
                Err(ErrorCode::OutOfOrderSequence)
            );
            // The producer goes on where it left off.
            assert_eq!(
                produce(&client, partition, &batch(id, BATCHES)).await,
                Ok(end)
            );
        }
        let page = metrics_until(admin_addr(&server), "duplicates counted", |page| {
            sum(page, "tidegate_partition_duplicate_batches_total") >= 16
        });
        assert_eq!(sum(&page, "tidegate_partition_duplicate_batches_total"), 16);
        assert_eq!(sum(&page, "tidegate_partition_producers{"), 2);

        // Five batches in flight at once on separate streams: the server
        // may take them in any order (a later one that completes first
        // waits for the earlier), and all land in sequence order.
        let start = latest(&client, 0).await;
        let mut pending = Vec::new();
        for n in BATCHES + 1..BATCHES + 6 {
            let bytes = batch(id, n);
            let p = client
                .start_produce("ids", Target::Partition(0), Ack::Durable, bytes)
                .await
                .unwrap();
            pending.push((n, p));
        }
        let mut landed = Vec::new();
        for (n, p) in pending {
            landed.push((n, p.response().await.unwrap().base_offset.unwrap()));
        }
        landed.sort();
        for (i, (_, offset)) in landed.iter().enumerate() {
            assert_eq!(*offset, start + i as u64 * u64::from(RECORDS));
        }

        // A named producer's epoch survives the restart; the newer one
        // fences the older.
        let newer = client.init_producer(Some("writer")).await.unwrap();
        assert_eq!(newer.producer_id, named.producer_id);
        assert_eq!(newer.epoch, named.epoch + 1);
        let fresh = client.init_producer(None).await.unwrap();
        assert!(fresh.producer_id > id.producer_id, "ids are never reused");
        assert!(produce(&client, 1, &batch(newer, 0)).await.is_ok());
        assert_eq!(
            produce(&client, 1, &batch(named, 0)).await,
            Err(ErrorCode::ProducerFenced)
        );
    });
    assert!(server.stop().success());
}

#[test]
fn retries_are_written_once_across_kill_and_restart_one_shard() {
    retries_are_written_once_across_kill_and_restart("0");
}

#[test]
fn retries_are_written_once_across_kill_and_restart_two_shards() {
    retries_are_written_once_across_kill_and_restart("0-1");
}

#[test]
fn the_sdk_producer_is_idempotent_by_default_and_a_named_one_is_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), "0");
    runtime().block_on(async {
        let client = sdk_client(&server).await;
        client.create_topic("ids", 2).await.unwrap();
        let producer = Producer::new(client.clone(), ProducerConfig::default());
        let mut receipts = Vec::new();
        for i in 0..2_000u32 {
            let record = ProducerRecord::new(i.to_le_bytes().to_vec()).with_partition(i % 2);
            receipts.push(producer.send("ids", record).await.unwrap());
        }
        for r in receipts {
            r.await.unwrap();
        }
        producer.close().await;
        // Every stored batch carries the producer's identity, with
        // sequences that continue from batch to batch.
        for partition in 0..2u32 {
            let fetched = client
                .fetch("ids", partition, 0, 32 << 20, std::time::Duration::ZERO)
                .await
                .unwrap();
            let mut next = 0i32;
            let mut ids = std::collections::BTreeSet::new();
            for b in BatchIter::new(&fetched.batches) {
                let h = *b.unwrap().header();
                ids.insert((h.producer_id, h.producer_epoch));
                assert_eq!(h.base_sequence, next);
                next += h.record_count as i32;
            }
            assert_eq!(next, 1_000);
            assert_eq!(ids.len(), 1);
            assert!(ids.iter().all(|(id, epoch)| *id >= 0 && *epoch == 0));
        }

        let named = || ProducerConfig {
            name: Some("ledger".into()),
            ..ProducerConfig::default()
        };
        let first = Producer::new(client.clone(), named());
        let sent = first.send("ids", ProducerRecord::new("a").with_partition(0));
        sent.await.unwrap().await.unwrap();
        let second = Producer::new(client.clone(), named());
        let sent = second.send("ids", ProducerRecord::new("b").with_partition(0));
        sent.await.unwrap().await.unwrap();
        let fenced = first.send("ids", ProducerRecord::new("c").with_partition(0));
        let err = fenced.await.unwrap().await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::ProducerFenced), "{err}");
        // Fenced for good: later sends fail the same way.
        let again = first.send("ids", ProducerRecord::new("d").with_partition(1));
        let err = again.await.unwrap().await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::ProducerFenced), "{err}");
    });
    assert!(server.stop().success());
}

/// Sends 10,000 messages durably to one partition of `topic` in batches of
/// 50 with `per_partition` batches in flight, and checks they are stored
/// once each, in send order, at their receipts' offsets.
async fn send_in_order(client: &Client, topic: &str, per_partition: usize) {
    client.create_topic(topic, 1).await.unwrap();
    let config = ProducerConfig {
        // Batches close full, so there are exactly 200.
        batch_max_records: 50,
        linger: std::time::Duration::from_secs(600),
        max_in_flight_per_partition: per_partition,
        ..ProducerConfig::default()
    };
    let producer = Producer::new(client.clone(), config);
    let mut receipts = Vec::new();
    for i in 0..10_000u32 {
        let record = ProducerRecord::new(i.to_le_bytes().to_vec());
        receipts.push(producer.send(topic, record).await.unwrap());
    }
    for (i, r) in (0u64..).zip(receipts) {
        let delivered = r.await.unwrap();
        assert_eq!(delivered.offset, Some(i), "receipt of message {i}");
    }
    producer.close().await;
    assert_stored_in_order(client, topic, 10_000).await;
}

/// Partition 0 of `topic` holds exactly `count` messages, message `i`
/// (its value, little-endian) at offset `i`: each stored once, in order.
async fn assert_stored_in_order(client: &Client, topic: &str, count: u64) {
    let mut offset = 0;
    while offset < count {
        let fetched = client
            .fetch(topic, 0, offset, 1 << 20, std::time::Duration::ZERO)
            .await
            .unwrap();
        for m in fetched.messages() {
            let m = m.unwrap();
            let value = u32::from_le_bytes(m.value().unwrap().try_into().unwrap());
            assert_eq!((m.offset(), u64::from(value)), (offset, offset));
            offset += 1;
        }
    }
    let latest = client.describe_topic(topic).await.unwrap().partitions[0].latest;
    assert_eq!(latest, count, "stored once each");
}

/// The SDK producer pipelines an idempotent producer's batches to one
/// partition: stored in send order and once each, and, because several
/// arrive while one is being synced, in fewer fdatasyncs than batches.
/// With one in flight, every batch waits for its own (200; five in flight
/// gave 96 on one shard and 44 on two here).
#[test]
fn the_sdk_producer_pipelines_batches_to_a_partition_in_order() {
    for cores in ["0", "0,1"] {
        let dir = tempfile::tempdir().unwrap();
        let server = start(&dir.path().join("data"), cores);
        let admin = admin_addr(&server);
        runtime().block_on(async {
            let client = sdk_client(&server).await;
            send_in_order(&client, "one", 1).await;
            send_in_order(&client, "five", 5).await;
        });
        // Series of one topic, summed.
        let of = |page: &str, name: &str, topic: &str| {
            let (series, label) = (format!("{name}{{"), format!("topic=\"{topic}\""));
            page.lines()
                .filter(|l| l.starts_with(&series) && l.contains(&label))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>()
        };
        let batches = "tidegate_partition_appended_batches_total";
        let page = metrics_until(admin, "200 batches in each topic", |m| {
            of(m, batches, "one") == 200.0 && of(m, batches, "five") == 200.0
        });
        let syncs = "tidegate_partition_fdatasyncs_total";
        let (one, five) = (of(&page, syncs, "one"), of(&page, syncs, "five"));
        eprintln!("{cores}: fdatasyncs for 200 batches: {one} one in flight, {five} five");
        assert!(
            one >= 190.0,
            "one in flight: {one} fdatasyncs for 200 batches"
        );
        assert!(
            five < one * 0.9,
            "five in flight: {five} fdatasyncs, one: {one}"
        );
        assert!(server.stop().success());
    }
}

/// A pipelined producer through kill -9 and restart mid-stream: every
/// message is stored once, in send order, at its receipt's offset (batches
/// written before the crash but not answered are answered as duplicates
/// when retried; those lost with it are written by their retries, in
/// sequence order).
#[test]
fn a_pipelined_producer_keeps_order_and_stores_once_across_kill_9() {
    const MESSAGES: u32 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let (data, config) = (dir.path().join("data"), dir.path().join("tidegate.toml"));
    std::fs::write(&config, "").unwrap();
    let server = start_config(&data, "0", &config);
    let addr = server.addr;
    let server = runtime().block_on(async move {
        let client = sdk_client(&server).await;
        client.create_topic("crash", 1).await.unwrap();
        let config_retrying = ProducerConfig {
            batch_max_records: 50,
            linger: std::time::Duration::from_millis(1),
            // Enough to outlast the restart.
            retries: 200,
            retry_backoff_max: std::time::Duration::from_millis(100),
            ..ProducerConfig::default()
        };
        let producer = std::sync::Arc::new(Producer::new(client.clone(), config_retrying));
        let (halfway_tx, halfway_rx) = tokio::sync::oneshot::channel();
        let sender = producer.clone();
        let sending = tokio::spawn(async move {
            let mut receipts = Vec::new();
            let mut halfway = Some(halfway_tx);
            for i in 0..MESSAGES {
                let record = ProducerRecord::new(i.to_le_bytes().to_vec());
                receipts.push(sender.send("crash", record).await.unwrap());
                if i % 100 == 99 {
                    // Paced, so that the crash comes mid-stream.
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
                if i == MESSAGES / 2 {
                    let _ = halfway.take().map(|tx| tx.send(()));
                }
            }
            receipts
        });
        halfway_rx.await.unwrap();
        // kill -9 and a restart on the same port, off the runtime's thread
        // so that the producer goes on meanwhile.
        let server = tokio::task::spawn_blocking(move || {
            server.kill();
            start_config_at(&data, "0", &config, addr)
        })
        .await
        .unwrap();
        // Promptly: the restarted server answers the old connection with a
        // stateless reset the client accepts (the key is kept in the data
        // dir), so it reconnects at once instead of waiting out its 30 s
        // idle timeout.
        let resolved = async {
            let receipts = sending.await.unwrap();
            for (i, r) in (0u64..).zip(receipts) {
                let delivered = r.await.unwrap_or_else(|e| panic!("message {i}: {e}"));
                assert_eq!(delivered.offset, Some(i), "receipt of message {i}");
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(20), resolved)
            .await
            .expect("every receipt within 20 s of the restart");
        assert_stored_in_order(&client, "crash", u64::from(MESSAGES)).await;
        server
    });
    assert!(server.stop().success());
}
