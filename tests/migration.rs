//! A client whose address changes (NAT rebinding, migration) keeps its
//! connection with two shards: its packets may now reach the other shard's
//! socket, which forwards them to the owner by the shard named in the
//! connection ID.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use support::{admin_addr, batch_of, connect, decode, http_get, runtime, start};
use tidegate_proto::protocol::{AckLevel, Response};

/// The sum of a counter over its series in a /metrics page.
fn counter_sum(page: &str, name: &str) -> u64 {
    page.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[test]
fn a_client_that_changes_address_keeps_its_connection_across_shards() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), "0-1");
    let admin = admin_addr(&server);
    let forwarded = || {
        let (_, page) = http_get(admin, "/metrics");
        counter_sum(&page, "tidegate_quic_datagrams_forwarded_total")
    };
    runtime().block_on(async {
        let client = connect(&server).await;
        assert_eq!(
            decode(&client.create_topic("m", 2).await),
            Response::CreateTopic
        );
        // Each new source port lands on either shard's socket; after a
        // few, the connection has certainly been served through the other
        // one (64 tries: a miss would be a 2^-64 event).
        let mut produced = 0u64;
        for _ in 0..64 {
            let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            client.endpoint.rebind(socket).unwrap();
            let results = client
                .produce(
                    "m",
                    (produced % 2) as u32,
                    AckLevel::Written,
                    &batch_of(&[b"x".to_vec()]),
                )
                .await;
            assert!(results[0].is_ok(), "request after rebind {produced}");
            produced += 1;
            if produced % 8 == 0 && forwarded() > 0 {
                break;
            }
        }
        let stored: usize = [client.read_all("m", 0).await, client.read_all("m", 1).await]
            .iter()
            .map(Vec::len)
            .sum();
        assert_eq!(stored as u64, produced);
    });
    // Metrics are published once a second.
    let deadline = Instant::now() + Duration::from_secs(5);
    while forwarded() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(forwarded() > 0, "no datagram was forwarded between shards");
    assert!(server.stop().success());
}
