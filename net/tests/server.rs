//! The QUIC endpoint on glommio against a real quinn client over loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{net::UdpSocket as StdUdpSocket, sync::mpsc};

use bytes::Bytes;
use common::{call, client, client_config, echoed, frame, spawn, start, tokio_rt};
use tidegate_net::{codes, QuicSettings, ALPN};

#[test]
fn handshake_with_alpn_and_pipelined_requests_get_their_own_responses() {
    let server = start(QuicSettings::default());
    tokio_rt().block_on(async {
        let endpoint = client(&server.cert);
        let conn = endpoint
            .connect(server.addr, "localhost")
            .unwrap()
            .await
            .unwrap();
        let alpn = conn
            .handshake_data()
            .unwrap()
            .downcast::<quinn::crypto::rustls::HandshakeData>()
            .unwrap()
            .protocol;
        assert_eq!(alpn.as_deref(), Some(ALPN));
        // 200 requests in flight at once on one connection.
        let calls = (0..200u32).map(|i| {
            let conn = conn.clone();
            async move {
                let request = frame(format!("request-{i}").as_bytes());
                let got = call(&conn, &request).await.unwrap();
                assert_eq!(got, echoed(&request), "request {i}");
            }
        });
        futures::future::join_all(calls).await;
        // A response bigger than the stream window goes out in pieces.
        let big = frame(&vec![7u8; 3 << 20]);
        let got = call(&conn, &big).await.unwrap();
        assert_eq!(got.len(), big.len() + 3);
    });
}

#[test]
fn oversized_request_is_refused_and_the_connection_keeps_working() {
    let settings = QuicSettings {
        max_request_bytes: 64 << 10,
        ..QuicSettings::default()
    };
    let server = start(settings);
    tokio_rt().block_on(async {
        let endpoint = client(&server.cert);
        let conn = endpoint
            .connect(server.addr, "localhost")
            .unwrap()
            .await
            .unwrap();
        let err = call(&conn, &frame(&vec![1u8; 200 << 10]))
            .await
            .unwrap_err();
        assert!(
            err.contains(&codes::REQUEST_TOO_LARGE.to_string()),
            "stream should be stopped/reset with REQUEST_TOO_LARGE: {err}"
        );
        let ok = frame(b"ok");
        assert_eq!(call(&conn, &ok).await.unwrap(), echoed(&ok));
        // A body longer than its header declares is refused too.
        let mut liar = frame(b"short");
        liar.extend_from_slice(b"and then some");
        assert!(call(&conn, &liar).await.is_err());
        // A request that is not a frame at all still reaches the
        // application (which answers it with a typed error).
        assert_eq!(call(&conn, b"junk").await.unwrap(), echoed(b"junk"));
    });
}

#[test]
fn garbage_datagrams_do_not_disturb_the_server() {
    let server = start(QuicSettings::default());
    let junk = StdUdpSocket::bind("127.0.0.1:0").unwrap();
    let mut seed = 0x1234_5678_9abc_def0u64;
    for len in [0usize, 1, 7, 20, 1200, 1500, 9000] {
        let datagram: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        junk.send_to(&datagram, server.addr).unwrap();
        // A long-header Initial-looking prefix with nonsense after it.
        let mut initial = vec![0xC3, 0, 0, 0, 1, 8];
        initial.extend_from_slice(&datagram);
        initial.resize(1200.max(initial.len()), 0);
        junk.send_to(&initial, server.addr).unwrap();
    }
    tokio_rt().block_on(async {
        let endpoint = client(&server.cert);
        let conn = endpoint
            .connect(server.addr, "localhost")
            .unwrap()
            .await
            .unwrap();
        let abc = frame(b"abc");
        assert_eq!(call(&conn, &abc).await.unwrap(), echoed(&abc));
    });
}

#[test]
fn wrong_alpn_is_refused_in_the_handshake() {
    let server = start(QuicSettings::default());
    tokio_rt().block_on(async {
        let config = client_config(&server.cert, b"h3");
        let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        let result = endpoint
            .connect_with(config, server.addr, "localhost")
            .unwrap()
            .await;
        assert!(
            result.is_err(),
            "a client without tidegate/1 must not connect"
        );
    });
}

#[test]
fn requests_beyond_the_inflight_budget_wait_for_credit_and_all_complete() {
    let settings = QuicSettings {
        max_inflight_bytes: 128 << 10,
        max_request_bytes: 64 << 10,
        ..QuicSettings::default()
    };
    let (stats_tx, stats_rx) = mpsc::channel();
    let server = spawn(settings, |server| async move {
        let server = std::rc::Rc::new(server);
        let mut peak = 0;
        let mut answered = 0;
        // A slow application: each answer takes a timer tick.
        while let Some(req) = server.next_request().await {
            peak = peak.max(server.stats().inflight_bytes);
            let responder = server.responder();
            glommio::spawn_local(async move {
                glommio::timer::sleep(std::time::Duration::from_millis(2)).await;
                let n = req.data.len().to_le_bytes().to_vec();
                responder.respond(req.conn, req.stream, vec![Bytes::from(n)]);
            })
            .detach();
            answered += 1;
            if answered == 60 {
                stats_tx.send((peak, server.stats())).unwrap();
            }
        }
    });
    let (addr, cert) = (server.addr, server.cert.clone());
    tokio_rt().block_on(async {
        let endpoint = client(&cert);
        let conn = endpoint.connect(addr, "localhost").unwrap().await.unwrap();
        let calls = (0..60).map(|_| {
            let conn = conn.clone();
            async move { call(&conn, &frame(&vec![5u8; 50 << 10])).await.unwrap() }
        });
        for reply in futures::future::join_all(calls).await {
            assert_eq!(reply, ((50usize << 10) + 8).to_le_bytes());
        }
    });
    let (peak, stats) = stats_rx.recv().unwrap();
    // 60 requests of 50 KiB went through a 128 KiB budget: the endpoint held
    // back credit instead of buffering them all.
    assert!(stats.credit_stalls_total > 0, "{stats:?}");
    // Whole requests are admitted: never more than the budget is held.
    assert!(peak <= 128 << 10, "peak held {peak} bytes");
}

/// Large responses go out in GSO batches (several datagrams per send) and
/// arrive whole; the same without GSO.
#[test]
fn large_responses_arrive_whole_with_and_without_gso() {
    for gso in [true, false] {
        let settings = QuicSettings {
            gso,
            ..QuicSettings::default()
        };
        let server = spawn(settings, |server| async move {
            while let Some(req) = server.next_request().await {
                // 2 MiB of a pattern seeded by the request's last byte.
                let seed = *req.data.last().unwrap();
                let body: Vec<u8> = (0..2u32 << 20).map(|i| (i as u8) ^ seed).collect();
                server.respond(req.conn, req.stream, vec![Bytes::from(body)]);
            }
        });
        let (addr, cert) = (server.addr, server.cert.clone());
        tokio_rt().block_on(async {
            let endpoint = client(&cert);
            let conn = endpoint.connect(addr, "localhost").unwrap().await.unwrap();
            for seed in [1u8, 2, 3] {
                let reply = call(&conn, &frame(&[seed])).await.unwrap();
                assert_eq!(reply.len(), 2 << 20, "gso {gso}");
                assert!(
                    reply
                        .iter()
                        .enumerate()
                        .all(|(i, b)| *b == (i as u8) ^ seed),
                    "gso {gso}: corrupt response"
                );
            }
        });
    }
}
