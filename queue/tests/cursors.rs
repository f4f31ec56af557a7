//! The cursor journal on a real disk: commits are durable and replayed,
//! snapshots keep it small, and its bounds hold.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::rc::Rc;

use futures::future::join_all;
use support::run;
use tidegate_queue::{
    cursors::{CursorError, CursorJournal, EventError, JournalConfig, SubCheckpoint, SubEvent},
    Ack,
};

#[test]
fn commits_are_replayed_on_reopen_and_the_last_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cursors");
    run(move || async move {
        {
            let j = CursorJournal::open(&path, JournalConfig::default())
                .await
                .unwrap();
            assert_eq!(j.committed("billing"), None);
            j.commit("billing", 10, b"m1", 1).await.unwrap();
            j.commit("billing", 25, b"m2", 2).await.unwrap();
            j.commit("audit", 7, b"", 3).await.unwrap();
            j.commit("gone", 1, b"", 4).await.unwrap();
            j.delete("gone").await.unwrap();
            let c = j.committed("billing").unwrap();
            assert_eq!((c.offset, c.metadata.as_slice()), (25, &b"m2"[..]));
            j.shutdown().await.unwrap();
        }
        let j = CursorJournal::open(&path, JournalConfig::default())
            .await
            .unwrap();
        let groups: Vec<(String, u64)> =
            j.groups().into_iter().map(|(g, c)| (g, c.offset)).collect();
        assert_eq!(groups, vec![("audit".into(), 7), ("billing".into(), 25)]);
        assert_eq!(j.committed("billing").unwrap().committed_ms, 2);
        assert_eq!(j.skipped(), 0);
        j.shutdown().await.unwrap();
    });
}

#[test]
fn concurrent_commits_apply_in_log_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cursors");
    run(move || async move {
        let j = Rc::new(
            CursorJournal::open(&path, JournalConfig::default())
                .await
                .unwrap(),
        );
        let commits = (0..50u64).map(|i| {
            let j = j.clone();
            async move { j.commit("g", i, b"", 0).await.unwrap() }
        });
        join_all(commits).await;
        assert_eq!(j.committed("g").unwrap().offset, 49);
        j.shutdown().await.unwrap();
        drop(j);
        let j = CursorJournal::open(&path, JournalConfig::default())
            .await
            .unwrap();
        assert_eq!(j.committed("g").unwrap().offset, 49);
        j.shutdown().await.unwrap();
    });
}

#[test]
fn snapshots_keep_the_journal_small_and_replay_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cursors");
    run(move || async move {
        {
            let j = Rc::new(
                CursorJournal::open(&path, JournalConfig::default())
                    .await
                    .unwrap(),
            );
            // ~4 KiB per commit: 6,000 commits are ~24 MiB of events.
            let metadata = vec![b'x'; 4000];
            for round in 0..60u64 {
                let commits = (0..100u64).map(|g| {
                    let (j, metadata) = (j.clone(), metadata.clone());
                    async move {
                        let group = format!("group-{g}");
                        j.commit(&group, round * 1000 + g, &metadata, 0)
                            .await
                            .unwrap();
                    }
                });
                join_all(commits).await;
            }
            assert!(
                j.log().size_bytes() < 16 << 20,
                "journal is {} bytes",
                j.log().size_bytes()
            );
            j.shutdown().await.unwrap();
        }
        let j = CursorJournal::open(&path, JournalConfig::default())
            .await
            .unwrap();
        assert_eq!(j.groups().len(), 100);
        for (group, c) in j.groups() {
            let g: u64 = group.strip_prefix("group-").unwrap().parse().unwrap();
            assert_eq!(c.offset, 59 * 1000 + g, "{group}");
        }
        j.shutdown().await.unwrap();
    });
}

#[test]
fn bad_commits_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cursors");
    run(move || async move {
        let j = CursorJournal::open(
            &path,
            JournalConfig {
                groups_max: 2,
                ..JournalConfig::default()
            },
        )
        .await
        .unwrap();
        j.commit("a", 1, b"", 0).await.unwrap();
        j.commit("b", 1, b"", 0).await.unwrap();
        assert_eq!(
            j.commit("c", 1, b"", 0).await,
            Err(CursorError::TooManyGroups { max: 2 })
        );
        // A group already there may still commit.
        j.commit("a", 2, b"", 0).await.unwrap();
        assert_eq!(
            j.commit("", 1, b"", 0).await,
            Err(CursorError::Invalid(EventError::BadGroup))
        );
        assert_eq!(
            j.commit(&"n".repeat(256), 1, b"", 0).await,
            Err(CursorError::Invalid(EventError::BadGroup))
        );
        assert_eq!(
            j.commit("a", 3, &[0; 4097], 0).await,
            Err(CursorError::Invalid(EventError::MetadataTooLong))
        );
        assert_eq!(j.committed("a").unwrap().offset, 2);
        assert_eq!(j.groups().len(), 2);
        j.shutdown().await.unwrap();
    });
}

#[test]
fn subscription_events_replay_from_the_latest_checkpoint_and_survive_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cursors");
    let checkpoint = SubCheckpoint {
        floor: 100,
        cursor: 110,
        handled_above_floor: vec![(101, 104)],
        attempts: vec![(100, 2)],
        delayed: vec![(95, 1_700_000_000_000, 1)],
    };
    let expected = checkpoint.clone();
    run(move || async move {
        {
            let j = CursorJournal::open(&path, JournalConfig::default())
                .await
                .unwrap();
            // Events before the checkpoint are superseded by it.
            let before = [SubEvent::Ack { first: 0, last: 99 }];
            j.record(1, &before, Ack::Durable).await.unwrap();
            j.record(1, &[SubEvent::Checkpoint(checkpoint)], Ack::Durable)
                .await
                .unwrap();
            let after = [
                SubEvent::Attempt {
                    first: 105,
                    last: 106,
                    attempts: 1,
                },
                SubEvent::Ack {
                    first: 100,
                    last: 100,
                },
            ];
            j.record(1, &after[..1], Ack::None).await.unwrap();
            j.record(1, &after[1..], Ack::Durable).await.unwrap();
            j.record(2, &before, Ack::Durable).await.unwrap();
            j.delete_subscription(2).await.unwrap();
            assert_eq!(j.subscription_ids(), vec![1]);
            // Group commits large enough to force snapshots: the
            // subscription's state is carried over each of them.
            let metadata = vec![b'x'; 4000];
            for i in 0..3000u64 {
                j.commit("g", i, &metadata, 0).await.unwrap();
            }
            assert!(j.log().size_bytes() < 16 << 20);
            j.shutdown().await.unwrap();
        }
        let j = CursorJournal::open(&path, JournalConfig::default())
            .await
            .unwrap();
        assert_eq!(j.subscription_ids(), vec![1]);
        let state = j.subscription(1).unwrap();
        assert_eq!(state.checkpoint, Some(expected));
        assert_eq!(
            state.events,
            vec![
                SubEvent::Attempt {
                    first: 105,
                    last: 106,
                    attempts: 1
                },
                SubEvent::Ack {
                    first: 100,
                    last: 100
                },
            ]
        );
        assert!(!j.checkpoint_due(1));
        j.shutdown().await.unwrap();
    });
}

#[test]
fn a_long_tail_asks_for_a_checkpoint_and_subscriptions_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cursors");
    run(move || async move {
        let config = JournalConfig {
            subscriptions_max: 2,
            ..JournalConfig::default()
        };
        let j = CursorJournal::open(&path, config).await.unwrap();
        let acks: Vec<SubEvent> = (0..20_000u64)
            .map(|o| SubEvent::Ack { first: o, last: o })
            .collect();
        j.record(7, &acks, Ack::Written).await.unwrap();
        assert!(j.checkpoint_due(7));
        let checkpoint = SubCheckpoint {
            floor: 20_000,
            cursor: 20_000,
            ..SubCheckpoint::default()
        };
        j.record(7, &[SubEvent::Checkpoint(checkpoint)], Ack::Durable)
            .await
            .unwrap();
        assert!(!j.checkpoint_due(7));
        assert!(j.subscription(7).unwrap().events.is_empty());
        j.record(8, &acks[..1], Ack::Durable).await.unwrap();
        assert_eq!(
            j.record(9, &acks[..1], Ack::Durable).await,
            Err(CursorError::TooManySubscriptions { max: 2 })
        );
        j.shutdown().await.unwrap();
    });
}
