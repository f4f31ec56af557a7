//! The shard's write gate (`WriteGate`): logs that share one gate, alone or
//! several to a flow, still get every batch written, in order, when it lets
//! only one write at a time reach the disk.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{batch, decode, run, small_config, view};
use tidegate_queue::{Ack, GateFlow, Log, WriteGate};

#[test]
fn logs_sharing_a_tight_gate_write_everything_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        // A target of 1 ns makes the limit about zero bytes once the first
        // interval (1 ms) is measured: one write at the disk at a time,
        // while each log has two in flight (`small_config`) and group
        // commits of several chunks.
        let gate = WriteGate::new(Some(Duration::from_nanos(1)), Duration::from_millis(1), 1);
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
