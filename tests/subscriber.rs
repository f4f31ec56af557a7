//! The SDK's `Subscriber` against the real server over real QUIC
//! (docs/SEMANTICS.md §5, sdk/README.md "Subscriptions"): every message
//! once and acks that hold, leases kept alive while the application is
//! busy (and not past `max_lease_extension`), a dropped message nacked,
//! and a `next()` that loses nothing when cancelled; each on one shard
//! and on two.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use support::{runtime, sdk_client, send_durably, start, Server};
use tidegate_client::{
    Client, ErrorCode, LeasedMessage, ProducerRecord, StartPosition, Subscriber, SubscriberConfig,
    SubscriptionConfig,
};
use tokio::time::{timeout, Instant};

/// The tests that hang on lease timing run one at a time, so that a
/// neighbour's server start-up and build of load do not eat their margins
/// on a small machine.
static TIMING: Mutex<()> = Mutex::new(());

fn on_shards(test: impl Fn(&Path, &str)) {
    for cores in ["0", "0,1"] {
        let dir = tempfile::tempdir().unwrap();
        test(&dir.path().join("data"), cores);
    }
}

/// A generous bound on anything that should happen "promptly".
const PROMPTLY: Duration = Duration::from_secs(20);

/// Produces `values`, `partition_of(i)` for the i-th, durably, through
/// the SDK's producer.
async fn produce(client: &Client, topic: &str, values: &[String], partitions: u32) {
    let records = values
        .iter()
        .enumerate()
        .map(|(i, v)| ProducerRecord::new(v.clone()).with_partition(i as u32 % partitions));
    send_durably(client, topic, records, Duration::ZERO).await;
}

/// Creates `topic` with `partitions` and a subscription `sub` on it from
/// the earliest offset with `ack_deadline_ms` and no backoff.
async fn topic_and_sub(client: &Client, topic: &str, partitions: u32, sub: &str, ack_ms: u32) {
    client.create_topic(topic, partitions).await.unwrap();
    client
        .create_subscription(&SubscriptionConfig {
            ack_deadline_ms: ack_ms,
            backoff_min_ms: 0,
            backoff_max_ms: 0,
            start: StartPosition::Earliest,
            ..SubscriptionConfig::new(sub, topic)
        })
        .await
        .unwrap();
}

async fn next(subscriber: &mut Subscriber) -> LeasedMessage {
    timeout(PROMPTLY, subscriber.next())
        .await
        .expect("a message within 20 s")
        .unwrap()
}

fn value(m: &LeasedMessage) -> String {
    String::from_utf8(m.value.clone().unwrap().to_vec()).unwrap()
}

#[test]
fn a_subscriber_gets_every_message_of_every_partition_once_and_acked_ones_never_again() {
    on_shards(|data, cores| {
        let server = start(data, cores);
        runtime().block_on(async {
            let client = sdk_client(&server).await;
            // A short deadline: an ack that did not hold would show as a
            // redelivery within the final pull's wait.
            topic_and_sub(&client, "orders", 3, "billing", 1000).await;
            let values: Vec<String> = (0..60).map(|i| format!("m{i:02}")).collect();
            produce(&client, "orders", &values, 3).await;

            let config = SubscriberConfig {
                max_messages: 7,
                max_wait: Duration::from_secs(2),
                ..SubscriberConfig::default()
            };
            let mut subscriber = Subscriber::new(client.clone(), "billing", config)
                .await
                .unwrap();
            assert_eq!(subscriber.subscription(), "billing");
            let mut seen = BTreeSet::new();
            let mut partitions = BTreeSet::new();
            while seen.len() < values.len() {
                let m = next(&mut subscriber).await;
                assert_eq!(m.attempt, 1, "{m:?}");
                assert!(seen.insert(value(&m)), "{} twice", value(&m));
                // Value i went to partition i % 3.
                let i: u32 = value(&m)[1..].parse().unwrap();
                assert_eq!(m.partition, i % 3);
                partitions.insert(m.partition);
                m.ack().await.unwrap();
            }
            assert_eq!(seen, values.iter().cloned().collect::<BTreeSet<_>>());
            assert_eq!(partitions, BTreeSet::from([0, 1, 2]));
            subscriber.close().await.unwrap();

            // Past two deadlines: nothing comes back.
            let again = client
                .pull("billing", 100, Duration::from_millis(2500))
                .await
                .unwrap();
            assert!(again.is_empty(), "delivered again: {again:?}");
            let d = client.describe_subscription("billing").await.unwrap();
            assert_eq!(d.total_backlog(), 0, "{d:?}");
            assert!(d.partitions.iter().all(|p| p.outstanding == 0), "{d:?}");
        });
        server.stop();
    });
}

/// The application holds the one message of a subscription with a 1 s
/// deadline for 3 s while a second client pulls with a 2.5 s wait: what
/// the second client gets.
async fn held_for_3s_while_another_pulls(
    server: &Server,
    max_lease_extension: Duration,
) -> (LeasedMessage, Vec<tidegate_client::ReceivedMessage>) {
    let client = sdk_client(server).await;
    topic_and_sub(&client, "jobs", 2, "workers", 1000).await;
    let config = SubscriberConfig {
        // Pull: a push stream would take the redelivery itself (its
        // credit came back when the message was handed out), racing the
        // other client this test watches. The lease keeper is the same
        // in both modes.
        streaming: false,
        max_messages: 1,
        max_wait: Duration::from_secs(2),
        max_lease_extension,
        ..SubscriberConfig::default()
    };
    let mut subscriber = Subscriber::new(client.clone(), "workers", config)
        .await
        .unwrap();
    produce(&client, "jobs", &["job".to_owned()], 2).await;
    let held = next(&mut subscriber).await;
    assert_eq!(held.attempt, 1);
    let other = sdk_client(server).await;
    let (_, got) = tokio::join!(
        // The application is busy with the message (not synchronisation:
        // the lease keeper has to work while the application sleeps).
        tokio::time::sleep(Duration::from_secs(3)),
        other.pull("workers", 10, Duration::from_millis(2500)),
    );
    (held, got.unwrap())
}

#[test]
fn a_held_message_keeps_its_lease_while_the_application_is_busy() {
    let _serial = TIMING.lock().unwrap_or_else(|e| e.into_inner());
    on_shards(|data, cores| {
        let server = start(data, cores);
        runtime().block_on(async {
            let (held, got) =
                held_for_3s_while_another_pulls(&server, Duration::from_secs(600)).await;
            // Its 1 s lease was extended twice or more meanwhile.
            assert!(
                got.is_empty(),
                "the held message was delivered again: {got:?}"
            );
            held.ack().await.unwrap();
            let client = sdk_client(&server).await;
            let after = client
                .pull("workers", 10, Duration::from_millis(1500))
                .await
                .unwrap();
            assert!(after.is_empty(), "delivered after its ack: {after:?}");
        });
        server.stop();
    });
}

#[test]
fn a_lease_is_not_extended_past_max_lease_extension() {
    let _serial = TIMING.lock().unwrap_or_else(|e| e.into_inner());
    on_shards(|data, cores| {
        let server = start(data, cores);
        runtime().block_on(async {
            let (held, got) =
                held_for_3s_while_another_pulls(&server, Duration::from_millis(1)).await;
            assert_eq!(got.len(), 1, "not delivered again: {got:?}");
            assert_eq!(
                (got[0].attempt, got[0].partition, got[0].offset),
                (2, held.partition, held.offset)
            );
            // The first delivery's lease is over: its ack is refused.
            let refused = held.ack().await.unwrap_err();
            assert_eq!(refused.code(), Some(ErrorCode::LeaseExpired), "{refused}");
        });
        server.stop();
    });
}

#[test]
fn a_leased_message_dropped_unsettled_is_delivered_again_at_once() {
    on_shards(|data, cores| {
        let server = start(data, cores);
        runtime().block_on(async {
            let client = sdk_client(&server).await;
            // A 60 s deadline: only the nack can bring it back in time.
            topic_and_sub(&client, "jobs", 2, "workers", 60_000).await;
            produce(&client, "jobs", &["a".to_owned(), "b".to_owned()], 2).await;
            let mut subscriber = Subscriber::new(
                client.clone(),
                "workers",
                SubscriberConfig {
                    max_messages: 1,
                    max_wait: Duration::from_secs(2),
                    ..SubscriberConfig::default()
                },
            )
            .await
            .unwrap();
            let first = next(&mut subscriber).await;
            assert_eq!(first.attempt, 1);
            let (partition, offset, dropped) = (first.partition, first.offset, value(&first));
            drop(first);
            let started = Instant::now();
            let mut others = Vec::new();
            let again = loop {
                let m = next(&mut subscriber).await;
                if (m.partition, m.offset) == (partition, offset) {
                    break m;
                }
                others.push(value(&m));
                m.ack().await.unwrap();
            };
            assert!(started.elapsed() < PROMPTLY);
            assert_eq!((again.attempt, value(&again)), (2, dropped.clone()));
            again.ack().await.unwrap();
            // The other message came once, in between or after.
            if others.is_empty() {
                let m = next(&mut subscriber).await;
                assert_eq!(m.attempt, 1);
                others.push(value(&m));
                m.ack().await.unwrap();
            }
            assert_eq!(others.len(), 1);
            assert_ne!(others[0], dropped);
            subscriber.close().await.unwrap();
            let left = client
                .pull("workers", 10, Duration::from_millis(500))
                .await
                .unwrap();
            assert!(left.is_empty(), "{left:?}");
        });
        server.stop();
    });
}

#[test]
fn a_cancelled_next_loses_no_message_and_delivers_it_once() {
    on_shards(|data, cores| {
        let server = start(data, cores);
        runtime().block_on(async {
            let client = sdk_client(&server).await;
            // A 60 s deadline: a message leased by a pull that a cancelled
            // `next` dropped would not come back within the test.
            topic_and_sub(&client, "events", 2, "tail", 60_000).await;
            let mut subscriber = Subscriber::new(
                client.clone(),
                "tail",
                SubscriberConfig {
                    // Longer than each `next` is allowed: the pulls span
                    // several cancellations.
                    max_wait: Duration::from_secs(2),
                    ..SubscriberConfig::default()
                },
            )
            .await
            .unwrap();
            let slice = Duration::from_millis(150);
            for _ in 0..6 {
                assert!(
                    timeout(slice, subscriber.next()).await.is_err(),
                    "a message out of an empty subscription"
                );
            }
            produce(&client, "events", &["only".to_owned()], 2).await;
            let deadline = Instant::now() + PROMPTLY;
            let mut got = Vec::new();
            let mut timeouts_after = 0;
            // Until the message came and then a few more cancelled calls.
            while got.is_empty() || timeouts_after < 6 {
                assert!(Instant::now() < deadline, "never delivered");
                match timeout(slice, subscriber.next()).await {
                    Ok(m) => {
                        let m = m.unwrap();
                        got.push((value(&m), m.attempt));
                        m.ack().await.unwrap();
                    }
                    Err(_) if !got.is_empty() => timeouts_after += 1,
                    Err(_) => {}
                }
            }
            assert_eq!(got, vec![("only".to_owned(), 1)]);
            subscriber.close().await.unwrap();
            let d = client.describe_subscription("tail").await.unwrap();
            assert_eq!(d.total_backlog(), 0, "{d:?}");
        });
        server.stop();
    });
}
