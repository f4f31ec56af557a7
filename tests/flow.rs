//! Flow control, first version: producers offering far more than the shard
//! may hold are slowed through QUIC credit, and the server's memory stays
//! within its configured bounds. Nothing is dropped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use support::{batch_of, connect, decode, runtime, start_env};
use tidegate_proto::protocol::{AckLevel, Response};

/// Resident memory of a process, in bytes.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

#[test]
fn producers_faster_than_the_shard_stay_within_the_memory_bound() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("TIDEGATE_LIMITS__SHARD_INFLIGHT_BYTES_MAX", "8MiB"),
        ("TIDEGATE_LIMITS__MAX_REQUEST_BYTES", "2MiB"),
        ("TIDEGATE_QUIC__MAX_CONCURRENT_STREAMS", "4"),
        ("TIDEGATE_QUIC__STREAM_RECEIVE_WINDOW", "1MiB"),
        // 4 streams x 1 MiB: every stream can fill its window.
        ("TIDEGATE_QUIC__CONNECTION_RECEIVE_WINDOW", "4MiB"),
        ("TIDEGATE_STORAGE__PENDING_BYTES_MAX", "4MiB"),
        // A deliberately slow disk path: small writes, one at a time.
        ("TIDEGATE_STORAGE__WRITE_CHUNK_BYTES", "16KiB"),
        ("TIDEGATE_STORAGE__WRITE_CONCURRENCY", "1"),
    ];
    let server = start_env(&dir.path().join("data"), "0", &env);
    let pid = server.child.id();
    let baseline = rss_bytes(pid);
    let peak = Arc::new(AtomicU64::new(baseline));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_bytes(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    const CONNECTIONS: usize = 6;
    const IN_FLIGHT: usize = 64;
    const REQUESTS: usize = 80;
    let one_mib = batch_of(&[vec![0x42u8; 1 << 20]]);
    let offered = CONNECTIONS * REQUESTS * one_mib.len();
    runtime().block_on(async {
        let admin = connect(&server).await;
        assert_eq!(
            decode(&admin.create_topic("flood", 1).await),
            Response::CreateTopic
        );
        let mut clients = Vec::new();
        for _ in 0..CONNECTIONS {
            clients.push(connect(&server).await);
        }
        let producers = clients.iter().map(|client| {
            let one_mib = &one_mib;
            async move {
                let mut acked = 0;
                for wave in 0..REQUESTS.div_ceil(IN_FLIGHT) {
                    let n = IN_FLIGHT.min(REQUESTS - wave * IN_FLIGHT);
                    let calls =
                        (0..n).map(|_| client.produce("flood", 0, AckLevel::Written, one_mib));
                    for results in futures::future::join_all(calls).await {
                        assert!(results[0].is_ok(), "{results:?}");
                        acked += 1;
                    }
                }
                acked
            }
        });
        let acked: usize = futures::future::join_all(producers).await.into_iter().sum();
        assert_eq!(acked, CONNECTIONS * REQUESTS, "nothing is dropped");
        assert_eq!(
            admin.latest("flood", 0).await,
            (CONNECTIONS * REQUESTS) as u64
        );
    });
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let growth = peak.load(Ordering::Relaxed).saturating_sub(baseline);
    // Bounds in play: 8 MiB of admitted requests, 4 MiB queued for the log,
    // 6 x 4 MiB of unread data QUIC may buffer, 8 MiB of pooled DMA
    // buffers, plus allocator slack. Asked for at once: 6 x 64 x 1 MiB
    // (each connection has 4 streams open; the rest wait at the client).
    let bound = 160u64 << 20;
    eprintln!(
        "offered {} MiB, {} MiB asked for at once; server RSS grew {} MiB",
        offered >> 20,
        CONNECTIONS * IN_FLIGHT,
        growth >> 20
    );
    assert!(
        growth < bound,
        "server RSS grew {growth} bytes, over {bound}"
    );
    assert!(server.stop().success());
}
