//! Consumer groups against the real server over real QUIC: members share a
//! topic's partitions without ever holding one together, committed offsets
//! survive kill -9, members rejoin after a restart, a silent member's
//! partitions move after its session, and commits are fenced
//! (docs/SEMANTICS.md §4).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use support::{admin_addr, fill_topic, metrics_until, runtime, sdk_client, start, Server};
use tidegate_client::{
    Client, ErrorCode, GroupConfig, GroupConsumer, Producer, ProducerConfig, ProducerRecord, Start,
};

const PARTITIONS: u32 = 6;
const PER_PARTITION: u32 = 100;

async fn fill(client: &Client) {
    fill_topic(client, "g", PARTITIONS, PER_PARTITION, None).await;
}

/// `fut`, or a panic naming `what` after 20 s: a hang fails the test
/// where it happens.
async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(20), fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what} did not finish within 20 s"),
    }
}

fn config(group: &str) -> GroupConfig {
    GroupConfig {
        session_timeout: Duration::from_secs(3),
        reset: Start::Earliest,
        auto_commit: None,
        ..GroupConfig::new(group)
    }
}

/// Reads `count` messages from `member`, returning their (partition, offset).
async fn read(member: &mut GroupConsumer, count: usize) -> Vec<(u32, u64)> {
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let m = tokio::time::timeout(Duration::from_secs(20), member.next())
            .await
            .expect("a message within 20 s")
            .unwrap()
            .unwrap();
        let value = std::str::from_utf8(m.value().unwrap()).unwrap().to_owned();
        assert_eq!(value, format!("{}:{}", m.partition(), m.offset()));
        out.push((m.partition(), m.offset()));
    }
    out
}

fn group_survives_members_coming_and_going_and_a_crash(cores: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let rt = runtime();
    let server = start(&data, cores);
    let mut seen: BTreeSet<(u32, u64)> = BTreeSet::new();
    rt.block_on(async {
        let client = sdk_client(&server).await;
        fill(&client).await;
        // One member alone holds everything.
        let mut a = within(
            "join",
            GroupConsumer::join(client.clone(), "g", config("billing")),
        )
        .await
        .unwrap();
        assert_eq!(a.assignment(), (0..PARTITIONS).collect::<Vec<_>>());
        seen.extend(read(&mut a, 150).await);
        within("a.commit", a.commit()).await.unwrap();
        // A second joins: it gets half, but only once `a` lets go of them.
        let mut b = within(
            "join",
            GroupConsumer::join(client.clone(), "g", config("billing")),
        )
        .await
        .unwrap();
        assert!(b.assignment().is_empty(), "a still holds everything");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while b.assignment().len() < 3 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "b never got its share"
            );
            // Both keep reading (and heartbeating).
            seen.extend(read(&mut a, 1).await);
            let got = tokio::time::timeout(Duration::from_millis(200), b.next()).await;
            if let Ok(m) = got {
                let m = m.unwrap().unwrap();
                seen.insert((m.partition(), m.offset()));
            }
            let (ha, hb): (BTreeSet<u32>, BTreeSet<u32>) = (
                a.assignment().into_iter().collect(),
                b.assignment().into_iter().collect(),
            );
            assert!(ha.is_disjoint(&hb), "held by both: a {ha:?} b {hb:?}");
        }
        assert_eq!(a.assignment().len(), 3);
        let listed = client.list_groups().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (
                listed[0].group.as_str(),
                listed[0].topic.as_str(),
                listed[0].members
            ),
            ("billing", "g", 2)
        );
        let described = client.describe_group("billing").await.unwrap();
        assert_eq!(described.topic, "g");
        let mut ids: Vec<&str> = described
            .members
            .iter()
            .map(|(id, _)| id.as_str())
            .collect();
        ids.sort_unstable();
        let mut expected = vec![a.member_id(), b.member_id()];
        expected.sort_unstable();
        assert_eq!(ids, expected);
        let held: usize = described.members.iter().map(|(_, ps)| ps.len()).sum();
        assert_eq!(held, PARTITIONS as usize);
        within("a.commit", a.commit()).await.unwrap();
        within("b.commit", b.commit()).await.unwrap();
        // Committing a partition it does not hold is refused.
        let theirs = b.assignment()[0];
        let refused = client
            .commit_offsets("billing", a.member_id(), "g", &[(theirs, 1)])
            .await
            .unwrap();
        assert_eq!(refused, vec![(theirs, ErrorCode::NotAssigned)]);
        let stranger = client
            .commit_offsets("billing", "nobody", "g", &[(0, 1)])
            .await
            .unwrap_err();
        assert_eq!(stranger.code(), Some(ErrorCode::UnknownMember));
        // `a` leaves: `b` takes everything, from a's commits.
        within("a.close", a.close()).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while b.assignment().len() < PARTITIONS as usize {
            assert!(
                tokio::time::Instant::now() < deadline,
                "b never got a's share"
            );
            let got = tokio::time::timeout(Duration::from_millis(200), b.next()).await;
            if let Ok(m) = got {
                let m = m.unwrap().unwrap();
                seen.insert((m.partition(), m.offset()));
            }
        }
        seen.extend(read(&mut b, 100).await);
        within("b.commit at the end", b.commit()).await.unwrap();
    });

    // kill -9: the offsets are durable; the member rejoins by itself.
    let committed = rt.block_on(async {
        let client = sdk_client(&server).await;
        client.fetch_offsets("billing", "g", &[]).await.unwrap()
    });
    server.kill();
    let server = start(&data, cores);
    // Before any member or request touches the group, its lag per
    // partition is in the metrics: high watermark minus commit.
    let lags = |page: &str| -> BTreeMap<String, u64> {
        page.lines()
            .filter(|l| {
                l.starts_with("tidegate_group_lag_messages{") && l.contains("group=\"billing\"")
            })
            .map(|l| {
                let (labels, value) = l.rsplit_once(' ').unwrap();
                let partition = labels.split("partition=\"").nth(1).unwrap();
                let partition = partition.split('"').next().unwrap().to_owned();
                (partition, value.parse().unwrap())
            })
            .collect()
    };
    let expected: BTreeMap<String, u64> = committed
        .iter()
        .filter_map(|(p, o)| Some((p.to_string(), u64::from(PER_PARTITION) - (*o)?)))
        .collect();
    assert!(!expected.is_empty());
    metrics_until(admin_addr(&server), "the group's lag", |page| {
        lags(page) == expected
    });
    rt.block_on(async {
        let client = sdk_client(&server).await;
        assert_eq!(
            client.fetch_offsets("billing", "g", &[]).await.unwrap(),
            committed
        );
        let mut c = within(
            "join",
            GroupConsumer::join(client.clone(), "g", config("billing")),
        )
        .await
        .unwrap();
        let total = (PARTITIONS * PER_PARTITION) as usize;
        let left: usize = committed
            .iter()
            .map(|(_, o)| (u64::from(PER_PARTITION) - o.unwrap_or(0)) as usize)
            .sum();
        let rest = read(&mut c, left).await;
        // Resumed exactly at the commits: nothing below them again.
        for (p, o) in &rest {
            let from = committed[*p as usize].1.unwrap_or(0);
            assert!(
                *o >= from,
                "partition {p} offset {o} is below its commit {from}"
            );
        }
        seen.extend(rest);
        assert_eq!(seen.len(), total, "every message consumed");
        within("c.close", c.close()).await.unwrap();
    });
    assert!(server.stop().success());
}

#[test]
fn group_survives_members_coming_and_going_and_a_crash_one_shard() {
    group_survives_members_coming_and_going_and_a_crash("0");
}

#[test]
fn group_survives_members_coming_and_going_and_a_crash_two_shards() {
    group_survives_members_coming_and_going_and_a_crash("0-1");
}

#[test]
fn a_silent_member_loses_its_partitions_after_its_session() {
    let dir = tempfile::tempdir().unwrap();
    let server: Server = start(&dir.path().join("data"), "0");
    runtime().block_on(async {
        let client = sdk_client(&server).await;
        fill(&client).await;
        // A raw member joins and then never heartbeats again.
        let silent = client
            .group_heartbeat("ops", "g", "", &[], Duration::from_secs(1), false)
            .await
            .unwrap();
        assert_eq!(silent.assigned.len(), PARTITIONS as usize);
        let held = silent.assigned.clone();
        client
            .group_heartbeat(
                "ops",
                "g",
                &silent.member_id,
                &held,
                Duration::from_secs(1),
                false,
            )
            .await
            .unwrap();
        let mut live = GroupConsumer::join(client.clone(), "g", config("ops"))
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut early = Vec::new();
        while live.assignment().len() < PARTITIONS as usize {
            assert!(tokio::time::Instant::now() < deadline);
            if let Ok(m) = tokio::time::timeout(Duration::from_millis(100), live.next()).await {
                let m = m.unwrap().unwrap();
                early.push((m.partition(), m.offset()));
            }
        }
        // Not before the silent member's session (1 s) ended.
        assert!(started.elapsed() >= Duration::from_millis(900));
        let late = client
            .group_heartbeat(
                "ops",
                "g",
                &silent.member_id,
                &held,
                Duration::from_secs(1),
                false,
            )
            .await
            .unwrap_err();
        assert_eq!(late.code(), Some(ErrorCode::UnknownMember));
        let mut got = read(&mut live, 600 - early.len()).await;
        got.extend(early);
        let all: BTreeMap<u32, usize> = got.into_iter().fold(BTreeMap::new(), |mut m, (p, _)| {
            *m.entry(p).or_default() += 1;
            m
        });
        assert_eq!(all.len(), PARTITIONS as usize);
        assert!(
            all.values().all(|&n| n == PER_PARTITION as usize),
            "{all:?}"
        );
        within("live.close", live.close()).await.unwrap();
    });
    assert!(server.stop().success());
}

#[test]
fn offsets_can_be_reset_only_while_the_group_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(Path::new(&dir.path().join("data")), "0");
    runtime().block_on(async {
        let client = sdk_client(&server).await;
        fill(&client).await;
        // Partition 2's offset is past its end (as after a crash cut an
        // unsynced tail): the member starts at the end, not stuck.
        let reset = client
            .commit_offsets("audit", "", "g", &[(0, 90), (1, 95), (2, 5000)])
            .await
            .unwrap();
        assert_eq!(
            reset,
            vec![(0, ErrorCode::Ok), (1, ErrorCode::Ok), (2, ErrorCode::Ok)]
        );
        let committed = client
            .fetch_offsets("audit", "g", &[0, 1, 2, 3])
            .await
            .unwrap();
        assert_eq!(
            committed,
            vec![(0, Some(90)), (1, Some(95)), (2, Some(5000)), (3, None)]
        );
        let mut member = GroupConsumer::join(client.clone(), "g", config("audit"))
            .await
            .unwrap();
        let got = read(&mut member, 15 + 3 * 100).await;
        assert!(got.iter().filter(|(p, _)| *p == 0).all(|(_, o)| *o >= 90));
        assert!(got.iter().all(|(p, _)| *p != 2));
        let producer = Producer::new(client.clone(), ProducerConfig::default());
        let sent = producer.send("g", ProducerRecord::new("2:100").with_partition(2));
        sent.await.unwrap().await.unwrap();
        producer.close().await;
        assert_eq!(read(&mut member, 1).await, vec![(2, 100)]);
        let busy = client
            .commit_offsets("audit", "", "g", &[(0, 0)])
            .await
            .unwrap_err();
        assert_eq!(busy.code(), Some(ErrorCode::UnknownMember));
        assert!(client
            .describe_group("nobody")
            .await
            .unwrap()
            .members
            .is_empty());
        within("member.close", member.close()).await.unwrap();
    });
    assert!(server.stop().success());
}

/// The committed offsets of `group` in partitions 0 and 1 of "g".
async fn offsets(client: &Client, group: &str) -> Vec<Option<u64>> {
    let got = client.fetch_offsets(group, "g", &[0, 1]).await.unwrap();
    got.into_iter().map(|(_, o)| o).collect()
}

/// Polls (heartbeating `member` of "live" meanwhile) until `group`'s
/// offsets are gone.
async fn until_expired(client: &Client, group: &str, member: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while offsets(client, group).await != [None, None] {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{group}'s offsets never expired"
        );
        if !member.is_empty() {
            client
                .group_heartbeat("live", "g", member, &[0, 1], Duration::from_secs(3), false)
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn an_empty_groups_old_offsets_expire_and_a_groups_with_members_stay() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("TIDEGATE_GROUPS__OFFSETS_RETENTION", "1s"),
        ("TIDEGATE_STORAGE__RETENTION_CHECK_INTERVAL", "100ms"),
    ];
    let server = support::start_env(&dir.path().join("data"), "0,1", &env);
    runtime().block_on(async {
        let client = sdk_client(&server).await;
        fill_topic(&client, "g", 2, 10, None).await;
        // "gone" commits without members (a reset), then never again.
        let done = client
            .commit_offsets("gone", "", "g", &[(0, 5), (1, 7)])
            .await
            .unwrap();
        assert!(done.iter().all(|(_, code)| code.is_ok()), "{done:?}");
        // "live" has a member that holds both partitions and commits once.
        let member = client
            .group_heartbeat("live", "g", "", &[], Duration::from_secs(3), false)
            .await
            .unwrap();
        assert_eq!(member.assigned, [0, 1]);
        let id = member.member_id.clone();
        client
            .group_heartbeat("live", "g", &id, &[0, 1], Duration::from_secs(3), false)
            .await
            .unwrap();
        let done = client
            .commit_offsets("live", &id, "g", &[(0, 3), (1, 4)])
            .await
            .unwrap();
        assert!(done.iter().all(|(_, code)| code.is_ok()), "{done:?}");
        // "later" commits after "live": once its offsets are gone, a pass
        // has seen "live"'s older ones too and kept them for its member.
        client
            .commit_offsets("later", "", "g", &[(0, 1), (1, 1)])
            .await
            .unwrap();
        until_expired(&client, "gone", &id).await;
        until_expired(&client, "later", &id).await;
        assert_eq!(offsets(&client, "live").await, [Some(3), Some(4)]);
        // Once the member leaves, they go too.
        client
            .group_heartbeat("live", "g", &id, &[0, 1], Duration::from_secs(3), true)
            .await
            .unwrap();
        until_expired(&client, "live", "").await;
    });
    assert!(server.stop().success());
}
