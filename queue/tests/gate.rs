//! The shard's write gate (`WriteGate`): logs that share one gate, alone or
//! several to a flow, still get every batch written, in order, when it lets
//! only one write at a time reach the disk.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{cell::Cell, rc::Rc, time::Duration};

use support::{batch, decode, run, small_config, view};
use tidegate_queue::{Ack, GateConfig, GateFlow, Log, WriteGate};

/// A target of 1 ns makes the limit about zero bytes once the first
/// interval (1 ms) is measured: one write at the disk at a time. Barriers
/// may follow each other at once (the gap is the target).
fn tight() -> GateConfig {
    GateConfig {
        target: Some(Duration::from_nanos(1)),
        interval: Duration::from_millis(1),
        syncs: 1,
        sync_barriers: true,
    }
}

#[test]
fn logs_sharing_a_tight_gate_write_everything_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        // One write at the disk at a time, while each log has two in
        // flight (`small_config`) and group commits of several chunks.
        let gate = WriteGate::new(tight());
        let a = Log::open_gated(path.join("a"), small_config(), GateFlow::new(gate.clone()))
            .await
            .unwrap();
        // Two logs of one flow, as a topic's partitions are.
        let flow = GateFlow::new(gate.clone());
        let b = Log::open_gated(path.join("b"), small_config(), flow.clone())
            .await
            .unwrap();
        let c = Log::open_gated(path.join("c"), small_config(), flow)
            .await
            .unwrap();
        let logs = [&a, &b, &c];
        let bytes: Vec<Vec<u8>> = (0..60u64).map(|tag| batch(tag, 20, 400, 0)).collect();
        let views: Vec<_> = bytes.iter().map(|b| view(b)).collect();
        let appends = views
            .iter()
            .enumerate()
            .map(|(i, v)| logs[i % 3].append(v, Ack::Durable));
        for appended in futures::future::join_all(appends).await {
            appended.unwrap();
        }
        let stats = gate.stats();
        assert!(stats.enabled);
        assert!(stats.limit_bytes < 16 << 10, "limit {}", stats.limit_bytes);
        assert!(stats.writes_waited_total > 0, "{stats:?}");
        assert_eq!(stats.in_flight_bytes, 0);
        assert!(stats.syncs_total > 0, "{stats:?}");
        assert_eq!(stats.syncs_in_flight, 0);

        for (n, log) in logs.iter().enumerate() {
            let wanted: Vec<u64> = (0..60).filter(|t| t % 3 == n as u64).collect();
            let read = log.read(0, 16 << 20).await.unwrap();
            let tags: Vec<u64> = decode(read.as_bytes()).iter().map(|r| r.1).collect();
            let mut seen = tags.clone();
            seen.dedup();
            assert_eq!(seen, wanted);
            assert_eq!(tags.len(), wanted.len() * 20);
        }
        for log in [a, b, c] {
            log.close().await.unwrap();
        }
    });
}

#[test]
fn a_sparse_log_holds_a_busy_flow_back_for_its_fdatasyncs_and_both_finish() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let gate = WriteGate::new(tight());
        let busy = GateFlow::new(gate.clone());
        let h1 = Rc::new(
            Log::open_gated(path.join("h1"), small_config(), busy.clone())
                .await
                .unwrap(),
        );
        let h2 = Rc::new(
            Log::open_gated(path.join("h2"), small_config(), busy)
                .await
                .unwrap(),
        );
        let light = Log::open_gated(
            path.join("light"),
            small_config(),
            GateFlow::new(gate.clone()),
        )
        .await
        .unwrap();
        let done = Rc::new(Cell::new(false));
        // The busy flow keeps eight durable appends going until the light
        // log is through.
        let heavy = {
            let (h1, h2, done) = (h1.clone(), h2.clone(), done.clone());
            glommio::spawn_local(async move {
                let mut tag = 0u64;
                while !done.get() {
                    let bytes: Vec<Vec<u8>> =
                        (tag..tag + 8).map(|t| batch(t, 20, 400, 0)).collect();
                    let views: Vec<_> = bytes.iter().map(|b| view(b)).collect();
                    let appends = views
                        .iter()
                        .enumerate()
                        .map(|(i, v)| [&h1, &h2][i % 2].append(v, Ack::Durable));
                    for appended in futures::future::join_all(appends).await {
                        appended.unwrap();
                    }
                    tag += 8;
                }
                tag
            })
            .detach()
        };
        // The light log appends one small batch at a time, each durable.
        let mut barriers = 0;
        for tag in 0..40u64 {
            let b = batch(tag, 1, 100, 0);
            light.append(&view(&b), Ack::Durable).await.unwrap();
            barriers = gate.stats().sync_barriers_total;
        }
        done.set(true);
        let heavy_tags = heavy.await.unwrap();
        assert!(barriers > 0, "{:?}", gate.stats());
        let stats = gate.stats();
        assert_eq!(
            (stats.in_flight_bytes, stats.syncs_in_flight),
            (0, 0),
            "{stats:?}"
        );

        let read = light.read(0, 16 << 20).await.unwrap();
        let tags: Vec<u64> = decode(read.as_bytes()).iter().map(|r| r.1).collect();
        assert_eq!(tags, (0..40).collect::<Vec<_>>());
        for (n, log) in [&h1, &h2].into_iter().enumerate() {
            let wanted: Vec<u64> = (0..heavy_tags).filter(|t| t % 2 == n as u64).collect();
            let read = log.read(0, 64 << 20).await.unwrap();
            let mut tags: Vec<u64> = decode(read.as_bytes()).iter().map(|r| r.1).collect();
            tags.dedup();
            assert_eq!(tags, wanted);
        }
        light.close().await.unwrap();
        for log in [h1, h2] {
            Rc::try_unwrap(log).ok().unwrap().close().await.unwrap();
        }
    });
}
