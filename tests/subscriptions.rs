//! Subscriptions against the real server over real QUIC
//! (docs/SEMANTICS.md §5): fan-out with filters, leases that expire and
//! come back, nacks, dead letters, ordering keys, and acks that survive
//! kill -9, each on one shard and on two.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{collections::BTreeMap, path::Path};

use support::{
    admin_addr, connect, decode, metrics_until, runtime, start, start_env, Client, Server,
};
use tidegate_proto::{
    batch::{BatchBuilder, BatchIter, Record},
    protocol::{
        AckLevel, AckRequest, ErrorCode, PullRequest, Request, Response, StartPosition,
        SubscriptionConfig, ACK_ID_BYTES,
    },
};

/// A message to produce: partition, key, value, headers.
type Outgoing<'a> = (u32, Option<&'a str>, String, Vec<(&'a str, &'a str)>);

/// A pulled message, owned.
#[derive(Debug, Clone)]
struct Message {
    ack_id: [u8; ACK_ID_BYTES],
    attempt: u32,
    partition: u32,
    offset: u64,
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
}

fn header<'a>(m: &'a Message, name: &str) -> Option<&'a [u8]> {
    m.headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_slice())
}

async fn create(
    client: &Client,
    config: SubscriptionConfig<'_>,
) -> Result<(), (ErrorCode, String)> {
    let response = client.call(&Request::CreateSubscription(config)).await;
    match decode(&response) {
        Response::CreateSubscription => Ok(()),
        Response::Error(e) => Err((e.code, e.message.to_owned())),
        other => panic!("create answered {other:?}"),
    }
}

async fn pull(client: &Client, sub: &str, max_messages: u32, max_wait_ms: u32) -> Vec<Message> {
    let response = client
        .call(&Request::Pull(PullRequest {
            subscription: sub,
            max_messages,
            max_bytes: 8 << 20,
            max_wait_ms,
        }))
        .await;
    match decode(&response) {
        Response::Pull(messages) => messages
            .into_iter()
            .map(|m| Message {
                ack_id: m.ack_id,
                attempt: m.attempt,
                partition: m.partition,
                offset: m.offset,
                key: m.key.map(<[u8]>::to_vec),
                value: m.value.unwrap_or_default().to_vec(),
                headers: m
                    .headers
                    .iter()
                    .map(|(n, v)| ((*n).to_owned(), v.to_vec()))
                    .collect(),
            })
            .collect(),
        other => panic!("pull answered {other:?}"),
    }
}

/// Pulls until `n` messages came or a pull waited `wait_ms` in vain.
async fn pull_n(client: &Client, sub: &str, n: usize, wait_ms: u32) -> Vec<Message> {
    let mut all = Vec::new();
    while all.len() < n {
        let got = pull(client, sub, 1000, wait_ms).await;
        if got.is_empty() {
            break;
        }
        all.extend(got);
    }
    all
}

async fn ack(
    client: &Client,
    sub: &str,
    messages: &[Message],
    deadline_ms: Option<u32>,
) -> Vec<ErrorCode> {
    let request = AckRequest {
        subscription: sub,
        ack_ids: messages.iter().map(|m| m.ack_id).collect(),
    };
    let request = match deadline_ms {
        None => Request::Ack(request),
        Some(deadline_ms) => Request::ModifyDeadline {
            ack: request,
            deadline_ms,
        },
    };
    match decode(&client.call(&request).await) {
        Response::Ack(codes) | Response::ModifyDeadline(codes) => codes,
        other => panic!("ack answered {other:?}"),
    }
}

/// Produces one message per `(partition, key, value, headers)`, durably.
async fn produce(client: &Client, topic: &str, messages: &[Outgoing<'_>]) {
    produce_at(client, topic, 1_700_000_000_000, messages).await;
}

/// [`produce`] with this publish time.
async fn produce_at(client: &Client, topic: &str, timestamp_ms: i64, messages: &[Outgoing<'_>]) {
    for (partition, key, value, headers) in messages {
        let headers: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
        let mut b = BatchBuilder::new();
        b.push(Record {
            timestamp_ms,
            key: key.map(str::as_bytes),
            value: Some(value.as_bytes()),
            headers: &headers,
        })
        .unwrap();
        let results = client
            .produce(topic, *partition, AckLevel::Durable, &b.finish().unwrap())
            .await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
    }
}

/// The sum of the series of `name` whose line also holds `with`.
fn sum(page: &str, name: &str, with: &str) -> u64 {
    page.lines()
        .filter(|l| l.starts_with(name) && l.contains(with))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn values(messages: &[Message]) -> Vec<String> {
    let mut v: Vec<String> = messages
        .iter()
        .map(|m| String::from_utf8(m.value.clone()).unwrap())
        .collect();
    v.sort();
    v
}

/// Kills the server (-9), starts it again on `data`, and checks that `sub`
/// has nothing to deliver.
fn nothing_left_after_kill_9(server: Server, data: &Path, cores: &str, sub: &str) {
    server.kill();
    let server = start(data, cores);
    runtime().block_on(async {
        let client = connect(&server).await;
        assert!(pull(&client, sub, 10, 500).await.is_empty(), "{sub}");
    });
    server.stop();
}

fn on_shards(test: impl Fn(&Path, &str)) {
    for cores in ["0", "0,1"] {
        let dir = tempfile::tempdir().unwrap();
        test(dir.path(), cores);
    }
}

#[test]
fn every_subscription_gets_what_its_filter_passes_and_acks_survive_kill_9() {
    on_shards(|data, cores| {
        let server = start(data, cores);
        let messages: Vec<Outgoing<'_>> = (0..90)
            .map(|i| {
                let region = ["eu", "us", "apac"][i % 3];
                (
                    i as u32 % 3,
                    None,
                    format!("m{i:02}"),
                    vec![("region", region)],
                )
            })
            .collect();
        let eu: Vec<String> = (0..90)
            .filter(|i| i % 3 == 0)
            .map(|i| format!("m{i:02}"))
            .collect();
        let not_us: Vec<String> = (0..90)
            .filter(|i| i % 3 != 1)
            .map(|i| format!("m{i:02}"))
            .collect();
        runtime().block_on(async {
            let client = connect(&server).await;
            client.create_topic("orders", 3).await;
            create(
                &client,
                SubscriptionConfig {
                    filter: "region = \"eu\"",
                    ..SubscriptionConfig::new("eu", "orders")
                },
            )
            .await
            .unwrap();
            create(
                &client,
                SubscriptionConfig {
                    filter: "NOT region = \"us\"",
                    ..SubscriptionConfig::new("not-us", "orders")
                },
            )
            .await
            .unwrap();
            create(&client, SubscriptionConfig::new("all", "orders"))
                .await
                .unwrap();
            produce(&client, "orders", &messages).await;

            let got = pull_n(&client, "eu", eu.len(), 2000).await;
            assert_eq!(values(&got), eu);
            assert!(got
                .iter()
                .all(|m| m.attempt == 1 && header(m, "region") == Some(b"eu")));
            assert!(ack(&client, "eu", &got, None)
                .await
                .iter()
                .all(|c| c.is_ok()));
            let got = pull_n(&client, "not-us", not_us.len(), 2000).await;
            assert_eq!(values(&got), not_us);
            assert!(ack(&client, "not-us", &got, None)
                .await
                .iter()
                .all(|c| c.is_ok()));
            // `all` acks only the first half of what it gets.
            let got = pull_n(&client, "all", 90, 2000).await;
            assert_eq!(got.len(), 90);
            let (acked, _) = got.split_at(45);
            assert!(ack(&client, "all", acked, None)
                .await
                .iter()
                .all(|c| c.is_ok()));
            // An ack sent again changes nothing and is no error.
            assert!(ack(&client, "all", &acked[..1], None)
                .await
                .iter()
                .all(|c| c.is_ok()));
            // Nothing more for the filtered ones.
            assert!(pull(&client, "eu", 100, 300).await.is_empty());
        });
        server.kill();

        let server = start(data, cores);
        runtime().block_on(async {
            let client = connect(&server).await;
            assert!(pull(&client, "eu", 100, 300).await.is_empty());
            assert!(pull(&client, "not-us", 100, 300).await.is_empty());
            // The unacked half comes back, and only it.
            let again = pull_n(&client, "all", 45, 2000).await;
            assert_eq!(again.len(), 45, "{:?}", values(&again));
            let mut all_values: Vec<String> = (0..90).map(|i| format!("m{i:02}")).collect();
            all_values.sort();
            assert!(values(&again).iter().all(|v| all_values.contains(v)));
            assert!(ack(&client, "all", &again, None)
                .await
                .iter()
                .all(|c| c.is_ok()));
            assert!(pull(&client, "all", 100, 300).await.is_empty());
        });
        server.stop();
    });
}

#[test]
fn expired_leases_come_back_and_nacked_messages_go_to_the_dead_letter_topic() {
    on_shards(|data, cores| {
        let server = start(data, cores);
        runtime().block_on(async {
            let client = connect(&server).await;
            client.create_topic("jobs", 2).await;
            client.create_topic("jobs.dlq", 1).await;
            create(
                &client,
                SubscriptionConfig {
                    ack_deadline_ms: 1000,
                    max_deliveries: 2,
                    dead_letter_topic: "jobs.dlq",
                    backoff_min_ms: 0,
                    backoff_max_ms: 0,
                    ..SubscriptionConfig::new("workers", "jobs")
                },
            )
            .await
            .unwrap();
            produce(
                &client,
                "jobs",
                &[(1, Some("k"), "job-1".into(), vec![("trace", "t1")])],
            )
            .await;

            let first = pull(&client, "workers", 10, 2000).await;
            assert_eq!(first.len(), 1);
            assert_eq!((first[0].attempt, first[0].partition), (1, 1));
            // Not acked: the lease runs out and the message comes back.
            let second = pull(&client, "workers", 10, 5000).await;
            assert_eq!(second.len(), 1);
            assert_eq!((second[0].attempt, second[0].offset), (2, first[0].offset));
            assert_eq!(
                ack(&client, "workers", &first, None).await,
                vec![ErrorCode::LeaseExpired]
            );
            // Its second nack reaches max_deliveries: dead-lettered.
            assert_eq!(
                ack(&client, "workers", &second, Some(0)).await,
                vec![ErrorCode::Ok]
            );
            assert!(pull(&client, "workers", 10, 500).await.is_empty());
            let (_, bytes) = client.fetch("jobs.dlq", 0, 0, 5000).await;
            let batch = BatchIter::new(&bytes).next().unwrap().unwrap();
            let record = batch.records().next().unwrap();
            assert_eq!(record.value(), Some(&b"job-1"[..]));
            assert_eq!(record.key(), Some(&b"k"[..]));
            let headers: BTreeMap<&str, &[u8]> = record.headers().collect();
            assert_eq!(headers["trace"], b"t1");
            assert_eq!(headers["tg-dlq-topic"], b"jobs");
            assert_eq!(headers["tg-dlq-partition"], b"1");
            assert_eq!(
                headers["tg-dlq-offset"],
                first[0].offset.to_string().as_bytes()
            );
            assert_eq!(headers["tg-dlq-subscription"], b"workers");
            assert_eq!(headers["tg-dlq-attempts"], b"2");
        });
        let page = metrics_until(admin_addr(&server), "a dead letter counted", |page| {
            sum(
                page,
                "tidegate_subscription_messages_total{shard",
                "dead_lettered",
            ) == 1
        });
        assert_eq!(
            sum(
                &page,
                "tidegate_subscription_messages_total{shard",
                "redelivered"
            ),
            1
        );
        assert_eq!(
            sum(&page, "tidegate_subscription_backlog_messages{", "workers"),
            0
        );
        // Dead-lettered is handled: not delivered again after a restart.
        nothing_left_after_kill_9(server, data, cores, "workers");
    });
}

#[test]
fn ordering_keys_deliver_one_message_per_key_at_a_time_in_order() {
    on_shards(|data, cores| {
        let server = start(data, cores);
        runtime().block_on(async {
            let client = connect(&server).await;
            client.create_topic("events", 1).await;
            create(
                &client,
                SubscriptionConfig {
                    ordering: true,
                    ..SubscriptionConfig::new("ordered", "events")
                },
            )
            .await
            .unwrap();
            let keys = ["a", "b", "c"];
            let messages: Vec<_> = (0..30)
                .map(|i| {
                    (
                        0,
                        Some(keys[i % 3]),
                        format!("{}-{:02}", keys[i % 3], i / 3),
                        vec![],
                    )
                })
                .collect();
            produce(&client, "events", &messages).await;
            let mut seen: BTreeMap<Vec<u8>, Vec<String>> = BTreeMap::new();
            for _ in 0..10 {
                let got = pull(&client, "ordered", 100, 2000).await;
                // One outstanding message per key.
                assert_eq!(got.len(), 3, "{got:?}");
                for m in &got {
                    seen.entry(m.key.clone().unwrap())
                        .or_default()
                        .push(String::from_utf8(m.value.clone()).unwrap());
                }
                assert!(ack(&client, "ordered", &got, None)
                    .await
                    .iter()
                    .all(|c| c.is_ok()));
            }
            for key in keys {
                let expected: Vec<String> = (0..10).map(|i| format!("{key}-{i:02}")).collect();
                assert_eq!(seen[key.as_bytes()], expected);
            }
        });
        server.stop();
    });
}

/// One round of two subscribers pulling at once: neither sees a key the
/// other holds, and each key has at most one message out.
async fn parallel_round(a: &Client, b: &Client, sub: &str) -> (Vec<Message>, Vec<Message>) {
    let (got_a, got_b) = tokio::join!(pull(a, sub, 3, 2000), pull(b, sub, 3, 2000));
    let mut keys: Vec<&[u8]> = got_a
        .iter()
        .chain(&got_b)
        .map(|m| m.key.as_deref().unwrap())
        .collect();
    let all = keys.len();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), all, "a key out twice: {got_a:?} {got_b:?}");
    (got_a, got_b)
}

#[test]
fn ordering_keys_hold_across_parallel_subscribers_and_kill_9() {
    const KEYS: [&str; 6] = ["a", "b", "c", "d", "e", "f"];
    on_shards(|data, cores| {
        let server = start(data, cores);
        let mut acked: BTreeMap<Vec<u8>, Vec<String>> = BTreeMap::new();
        let mut record = |messages: &[Message]| {
            for m in messages {
                let value = String::from_utf8(m.value.clone()).unwrap();
                acked.entry(m.key.clone().unwrap()).or_default().push(value);
            }
        };
        let leased = runtime().block_on(async {
            let (a, b) = (connect(&server).await, connect(&server).await);
            a.create_topic("events", 1).await;
            let config = SubscriptionConfig {
                ordering: true,
                ..SubscriptionConfig::new("ordered", "events")
            };
            create(&a, config).await.unwrap();
            let messages: Vec<_> = (0..60)
                .map(|i| {
                    (
                        0,
                        Some(KEYS[i % 6]),
                        format!("{}-{:02}", KEYS[i % 6], i / 6),
                        vec![],
                    )
                })
                .collect();
            produce(&a, "events", &messages).await;
            for _ in 0..4 {
                let (got_a, got_b) = parallel_round(&a, &b, "ordered").await;
                assert_eq!(got_a.len() + got_b.len(), 6, "{got_a:?} {got_b:?}");
                for (client, got) in [(&a, &got_a), (&b, &got_b)] {
                    let codes = ack(client, "ordered", got, None).await;
                    assert!(codes.iter().all(|c| c.is_ok()), "{codes:?}");
                    record(got);
                }
            }
            // Leased to both when the server dies.
            let (got_a, got_b) = parallel_round(&a, &b, "ordered").await;
            let mut leased: Vec<u64> = got_a.iter().chain(&got_b).map(|m| m.offset).collect();
            leased.sort_unstable();
            leased
        });
        server.kill();

        let server = start(data, cores);
        runtime().block_on(async {
            let (a, b) = (connect(&server).await, connect(&server).await);
            // The leases died with the server: the same messages come
            // first, one per key, and nothing acked comes again.
            let (got_a, got_b) = parallel_round(&a, &b, "ordered").await;
            let mut again: Vec<u64> = got_a.iter().chain(&got_b).map(|m| m.offset).collect();
            again.sort_unstable();
            assert_eq!(again, leased);
            let mut round = (got_a, got_b);
            loop {
                let (got_a, got_b) = &round;
                if got_a.is_empty() && got_b.is_empty() {
                    break;
                }
                for (client, got) in [(&a, got_a), (&b, got_b)] {
                    let codes = ack(client, "ordered", got, None).await;
                    assert!(codes.iter().all(|c| c.is_ok()), "{codes:?}");
                    record(got);
                }
                round = parallel_round(&a, &b, "ordered").await;
            }
        });
        for key in KEYS {
            let expected: Vec<String> = (0..10).map(|i| format!("{key}-{i:02}")).collect();
            assert_eq!(acked[key.as_bytes()], expected, "key {key}");
        }
        server.stop();
    });
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn delayed_messages_wait_for_their_time_without_holding_others_and_survive_kill_9() {
    on_shards(|data, cores| {
        let server = start(data, cores);
        let much_later_at = runtime().block_on(async {
            let client = connect(&server).await;
            client.create_topic("later", 1).await;
            let config = SubscriptionConfig {
                ack_deadline_ms: 5_000,
                backoff_min_ms: 100,
                backoff_max_ms: 100,
                ..SubscriptionConfig::new("s", "later")
            };
            create(&client, config).await.unwrap();
            let now = unix_ms();
            let (soon_at, much_later_at) = (now + 1_500, now + 600_000);
            let (soon, much_later) = (soon_at.to_string(), much_later_at.to_string());
            produce(
                &client,
                "later",
                &[
                    (0, None, "soon".into(), vec![("tg-deliver-after", &soon)]),
                    (0, None, "now".into(), vec![]),
                    (
                        0,
                        None,
                        "much-later".into(),
                        vec![("tg-deliver-after", &much_later)],
                    ),
                ],
            )
            .await;
            // Not held back by the delayed message before it.
            let first = pull(&client, "s", 10, 1_000).await;
            assert_eq!(values(&first), ["now"]);
            assert!(ack(&client, "s", &first, None).await[0].is_ok());
            // The long poll wakes when the delay is over, not before.
            let soon = pull(&client, "s", 10, 5_000).await;
            assert_eq!(values(&soon), ["soon"]);
            assert!(unix_ms() >= soon_at, "delivered before its time");
            assert_eq!(soon[0].attempt, 1);
            // Nacked: again after the backoff, as a second attempt.
            assert!(ack(&client, "s", &soon, Some(0)).await[0].is_ok());
            let again = pull(&client, "s", 10, 2_000).await;
            assert_eq!(values(&again), ["soon"]);
            assert_eq!(again[0].attempt, 2);
            // Both are in the delayed set, "soon" leased.
            let sub = "subscription=\"s\"";
            metrics_until(admin_addr(&server), "two delayed, one leased", |page| {
                sum(page, "tidegate_subscription_delayed_messages{", sub) == 2
                    && sum(page, "tidegate_subscription_outstanding_messages{", sub) == 1
            });
            much_later_at
        });
        // Killed with "soon" leased and "much-later" waiting.
        server.kill();
        let server = start(data, cores);
        runtime().block_on(async {
            let client = connect(&server).await;
            let soon = pull(&client, "s", 10, 2_000).await;
            assert_eq!(values(&soon), ["soon"], "the lease died with the server");
            assert!(soon[0].attempt >= 2);
            assert!(ack(&client, "s", &soon, None).await[0].is_ok());
            // "now" was acked and "much-later" is not due.
            assert!(pull(&client, "s", 10, 1_000).await.is_empty());
            metrics_until(admin_addr(&server), "one delayed", |page| {
                sum(
                    page,
                    "tidegate_subscription_delayed_messages{",
                    "subscription=\"s\"",
                ) == 1
            });
            assert!(unix_ms() < much_later_at);
        });
        // Acked before the second crash: never again.
        nothing_left_after_kill_9(server, data, cores, "s");
    });
}

#[test]
fn a_delivery_delay_holds_each_message_until_its_time_and_no_longer() {
    on_shards(|data, cores| {
        let server = start(data, cores);
        runtime().block_on(async {
            let client = connect(&server).await;
            client.create_topic("jobs", 1).await;
            let delayed = SubscriptionConfig {
                delivery_delay_ms: 1_500,
                start: StartPosition::Earliest,
                ..SubscriptionConfig::new("delayed", "jobs")
            };
            let plain = SubscriptionConfig {
                start: StartPosition::Earliest,
                ..SubscriptionConfig::new("plain", "jobs")
            };
            create(&client, delayed).await.unwrap();
            create(&client, plain).await.unwrap();
            // Published long ago: due at once.
            produce(&client, "jobs", &[(0, None, "old".into(), vec![])]).await;
            let published = unix_ms();
            produce_at(
                &client,
                "jobs",
                published,
                &[(0, None, "new".into(), vec![])],
            )
            .await;
            assert_eq!(values(&pull(&client, "delayed", 10, 500).await), ["old"]);
            assert_eq!(
                values(&pull_n(&client, "plain", 2, 500).await),
                ["new", "old"]
            );
            let due = pull(&client, "delayed", 10, 5_000).await;
            assert_eq!(values(&due), ["new"]);
            assert!(unix_ms() >= published + 1_500, "delivered before its delay");
            // A timestamp a day ahead holds it the delay from when it was
            // read, not a day.
            let sent = unix_ms();
            let ahead = sent + 86_400_000;
            produce_at(&client, "jobs", ahead, &[(0, None, "ahead".into(), vec![])]).await;
            let due = pull_n(&client, "delayed", 1, 5_000).await;
            assert_eq!(values(&due), ["ahead"]);
            assert!(unix_ms() >= sent + 1_500, "delivered before its delay");
        });
        server.stop();
    });
}

/// The messages of `topic`'s partition 0 as (value, headers).
async fn read_with_headers(client: &Client, topic: &str) -> Vec<(String, Vec<(String, String)>)> {
    let (_, bytes) = client.fetch(topic, 0, 0, 0).await;
    let mut out = Vec::new();
    for batch in BatchIter::new(&bytes) {
        for r in batch.unwrap().records() {
            let headers = r
                .headers()
                .map(|(n, v)| (n.to_owned(), String::from_utf8_lossy(v).into_owned()))
                .collect();
            out.push((
                String::from_utf8_lossy(r.value().unwrap()).into_owned(),
                headers,
            ));
        }
    }
    out
}

#[test]
fn expired_messages_go_to_the_dead_letter_topic_when_the_subscription_asks() {
    on_shards(|data, cores| {
        let server = start(data, cores);
        runtime().block_on(async {
            let client = connect(&server).await;
            client.create_topic("jobs", 1).await;
            client.create_topic("jobs.dlq", 1).await;
            for (name, dead_letter_expired) in [("keeps", true), ("drops", false)] {
                let config = SubscriptionConfig {
                    max_deliveries: 5,
                    dead_letter_topic: "jobs.dlq",
                    dead_letter_expired,
                    start: StartPosition::Earliest,
                    ..SubscriptionConfig::new(name, "jobs")
                };
                create(&client, config).await.unwrap();
            }
            let past = (unix_ms() - 1).to_string();
            let later = (unix_ms() + 600_000).to_string();
            produce(
                &client,
                "jobs",
                &[
                    (0, None, "stale".into(), vec![("tg-expires-at", &past)]),
                    (0, None, "fresh".into(), vec![("tg-expires-at", &later)]),
                ],
            )
            .await;
            for name in ["keeps", "drops"] {
                let got = pull(&client, name, 10, 1_000).await;
                assert_eq!(values(&got), ["fresh"], "{name}");
                assert!(ack(&client, name, &got, None).await[0].is_ok());
            }
            // Only the subscription that asked dead-letters it, durably
            // before it counts as handled.
            let admin = admin_addr(&server);
            metrics_until(admin, "the expired one dead-lettered", |page| {
                sum(
                    page,
                    "tidegate_subscription_messages_total{",
                    "outcome=\"dead_lettered\"",
                ) == 1
            });
            let dlq = read_with_headers(&client, "jobs.dlq").await;
            assert_eq!(dlq.len(), 1, "{dlq:?}");
            let (value, headers) = &dlq[0];
            assert_eq!(value, "stale");
            let header = |n: &str| {
                headers
                    .iter()
                    .find(|(h, _)| h == n)
                    .map(|(_, v)| v.as_str())
            };
            assert_eq!(header("tg-dlq-subscription"), Some("keeps"));
            assert_eq!(header("tg-dlq-offset"), Some("0"));
            for name in ["keeps", "drops"] {
                assert!(pull(&client, name, 10, 300).await.is_empty(), "{name}");
            }
        });
        server.stop();
    });
}

#[test]
fn redeliveries_count_their_size_against_a_pulls_max_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "0");
    runtime().block_on(async {
        let client = connect(&server).await;
        client.create_topic("big", 1).await;
        let config = SubscriptionConfig {
            backoff_min_ms: 0,
            backoff_max_ms: 0,
            ..SubscriptionConfig::new("s", "big")
        };
        create(&client, config).await.unwrap();
        let value = |i: usize| format!("{i}{}", "x".repeat(100_000));
        let messages: Vec<Outgoing<'_>> = (0..5).map(|i| (0, None, value(i), vec![])).collect();
        produce(&client, "big", &messages).await;
        let first = pull_n(&client, "s", 5, 2_000).await;
        assert_eq!(first.len(), 5);
        let nacked = ack(&client, "s", &first, Some(0)).await;
        assert!(nacked.iter().all(|c| c.is_ok()), "{nacked:?}");
        // Read from the log again, they still count: 100 kB then 200 kB
        // passes 150 kB.
        let request = Request::Pull(PullRequest {
            subscription: "s",
            max_messages: 100,
            max_bytes: 150_000,
            max_wait_ms: 2_000,
        });
        let again = match decode(&client.call(&request).await) {
            Response::Pull(messages) => messages.len(),
            other => panic!("pull answered {other:?}"),
        };
        assert_eq!(again, 2);
        assert_eq!(
            pull_n(&client, "s", 3, 1_000).await.len(),
            3,
            "the rest next time"
        );
    });
    server.stop();
}

#[test]
fn a_topic_message_ttl_expires_old_messages_for_every_subscription() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "0,1");
    runtime().block_on(async {
        let client = connect(&server).await;
        let created = client.create_topic_with_ttl("jobs", 2, Some(60_000)).await;
        assert!(
            matches!(decode(&created), Response::CreateTopic),
            "{:?}",
            decode(&created)
        );
        client.create_topic("jobs.dlq", 1).await;
        for (name, dead_letter_expired) in [("keeps", true), ("drops", false)] {
            let config = SubscriptionConfig {
                max_deliveries: 5,
                dead_letter_topic: "jobs.dlq",
                dead_letter_expired,
                start: StartPosition::Earliest,
                ..SubscriptionConfig::new(name, "jobs")
            };
            create(&client, config).await.unwrap();
        }
        // Published long ago (the helper's fixed 2023 timestamp): past the
        // topic's one minute.
        produce(
            &client,
            "jobs",
            &[
                (0, None, "stale".into(), vec![]),
                (1, None, "stale".into(), vec![]),
            ],
        )
        .await;
        let now = unix_ms();
        produce_at(&client, "jobs", now, &[(0, None, "fresh".into(), vec![])]).await;
        for name in ["keeps", "drops"] {
            let got = pull_n(&client, name, 1, 1_000).await;
            assert_eq!(values(&got), ["fresh"], "{name}");
            assert!(ack(&client, name, &got, None).await[0].is_ok());
            assert!(pull(&client, name, 10, 300).await.is_empty(), "{name}");
        }
        let admin = admin_addr(&server);
        metrics_until(admin, "both stale ones dead-lettered", |page| {
            sum(
                page,
                "tidegate_subscription_messages_total{",
                "outcome=\"dead_lettered\"",
            ) == 2
        });
        let dlq = read_with_headers(&client, "jobs.dlq").await;
        assert_eq!(dlq.len(), 2, "{dlq:?}");
        assert!(dlq.iter().all(|(v, _)| v == "stale"), "{dlq:?}");
        // A TTL of zero is refused.
        let zero = client.create_topic_with_ttl("never", 1, Some(0)).await;
        match decode(&zero) {
            Response::Error(e) => assert!(e.message.contains("message_ttl_ms"), "{}", e.message),
            other => panic!("a zero TTL was taken: {other:?}"),
        }
    });
    server.stop();
}

#[test]
fn the_configured_window_bounds_hold_a_partition_behind_an_unacked_message() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("TIDEGATE_SUBSCRIPTIONS__WINDOW_MAX", "4"),
        ("TIDEGATE_SUBSCRIPTIONS__OUTSTANDING_MAX", "4"),
    ];
    let server = start_env(dir.path(), "0", &env);
    runtime().block_on(async {
        let client = connect(&server).await;
        client.create_topic("t", 1).await;
        let config = SubscriptionConfig {
            start: StartPosition::Earliest,
            ..SubscriptionConfig::new("s", "t")
        };
        create(&client, config).await.unwrap();
        let messages: Vec<Outgoing<'_>> = (0..10)
            .map(|i| (0, None, format!("m{i}"), vec![]))
            .collect();
        produce(&client, "t", &messages).await;
        let first = pull(&client, "s", 100, 1_000).await;
        assert_eq!(values(&first), ["m0", "m1", "m2", "m3"], "outstanding_max");
        // m0 stays leased: the window [0, 4) is full, nothing more enters.
        assert!(ack(&client, "s", &first[1..], None)
            .await
            .iter()
            .all(|c| c.is_ok()));
        assert!(pull(&client, "s", 100, 500).await.is_empty(), "window_max");
        metrics_until(admin_addr(&server), "the window full", |page| {
            sum(
                page,
                "tidegate_subscription_window_full{",
                "subscription=\"s\"",
            ) == 1
        });
        assert!(ack(&client, "s", &first[..1], None).await[0].is_ok());
        let next = pull(&client, "s", 100, 1_000).await;
        assert_eq!(values(&next), ["m4", "m5", "m6", "m7"]);
    });
    server.stop();
}

#[test]
fn subscriptions_are_listed_described_refused_when_bad_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let server: Server = start(dir.path(), "0,1");
    runtime().block_on(async {
        let client = connect(&server).await;
        client.create_topic("t", 2).await;
        let bad = create(
            &client,
            SubscriptionConfig {
                filter: "region = ",
                ..SubscriptionConfig::new("bad", "t")
            },
        )
        .await
        .unwrap_err();
        assert_eq!(bad.0, ErrorCode::InvalidFilter);
        assert!(bad.1.contains("byte 9"), "{}", bad.1);
        let unknown = create(&client, SubscriptionConfig::new("s", "nope"))
            .await
            .unwrap_err();
        assert_eq!(unknown.0, ErrorCode::UnknownTopic);
        produce(&client, "t", &[(0, None, "before".into(), vec![])]).await;
        create(
            &client,
            SubscriptionConfig {
                start: StartPosition::Earliest,
                ..SubscriptionConfig::new("s", "t")
            },
        )
        .await
        .unwrap();
        let exists = create(&client, SubscriptionConfig::new("s", "t"))
            .await
            .unwrap_err();
        assert_eq!(exists.0, ErrorCode::SubscriptionExists);
        match decode(&client.call(&Request::ListSubscriptions { topic: "" }).await) {
            Response::ListSubscriptions(subs) => {
                assert_eq!(subs.len(), 1);
                assert_eq!((subs[0].name, subs[0].topic), ("s", "t"));
            }
            other => panic!("{other:?}"),
        }
        let got = pull(&client, "s", 10, 1000).await;
        assert_eq!(values(&got), vec!["before".to_owned()]);
        match decode(
            &client
                .call(&Request::DescribeSubscription { name: "s" })
                .await,
        ) {
            Response::DescribeSubscription(d) => {
                assert_eq!(d.config.start, StartPosition::Earliest);
                let p0 = d.partitions.iter().find(|p| p.partition == 0).unwrap();
                assert_eq!(
                    (p0.floor, p0.cursor, p0.latest, p0.outstanding),
                    (0, 1, 1, 1)
                );
            }
            other => panic!("{other:?}"),
        }
        match decode(
            &client
                .call(&Request::DeleteSubscription { name: "s" })
                .await,
        ) {
            Response::DeleteSubscription => {}
            other => panic!("{other:?}"),
        }
        match decode(
            &client
                .call(&Request::DescribeSubscription { name: "s" })
                .await,
        ) {
            Response::Error(e) => assert_eq!(e.code, ErrorCode::UnknownSubscription),
            other => panic!("{other:?}"),
        }
        // A new subscription of the same name starts afresh.
        create(&client, SubscriptionConfig::new("s", "t"))
            .await
            .unwrap();
        assert!(pull(&client, "s", 10, 300).await.is_empty());
    });
    server.stop();
}
