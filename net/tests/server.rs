//! The QUIC endpoint on glommio against a real quinn client over loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    net::{SocketAddr, UdpSocket as StdUdpSocket},
    sync::{mpsc, Arc},
    thread,
};

use bytes::Bytes;
use glommio::LocalExecutorBuilder;
use quinn::crypto::rustls::QuicClientConfig;
use rustls::pki_types::CertificateDer;
use tidegate_net::{codes, load_or_generate, server_crypto, QuicServer, QuicSettings, ALPN};

/// A server whose application answers every request with `b"re:"` and the
/// request's bytes reversed; it runs on its own glommio thread until the
/// returned sender is dropped... or the test process ends.
struct EchoServer {
    addr: SocketAddr,
    cert: CertificateDer<'static>,
    _dir: tempfile::TempDir,
}

fn start(settings: QuicSettings) -> EchoServer {
    spawn(settings, |server| async move {
        while let Some(req) = server.next_request().await {
            let mut body: Vec<u8> = req.data.clone();
            body.reverse();
            let parts = vec![Bytes::from_static(b"re:"), Bytes::from(body)];
            server.respond(req.conn, req.stream, parts);
        }
    })
}

/// A server with a development certificate on its own glommio thread,
/// running `app` over it.
fn spawn<F, Fut>(settings: QuicSettings, app: F) -> EchoServer
where
    F: FnOnce(QuicServer) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let dir = tempfile::tempdir().unwrap();
    let tls = load_or_generate(None, None, dir.path()).unwrap();
    assert!(tls.generated);
    let cert = tls.certs[0].clone();
    let crypto = server_crypto(&tls).unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        LocalExecutorBuilder::default()
            .io_memory(1 << 20)
            .make()
            .unwrap()
            .run(async move {
                let server =
                    QuicServer::bind("127.0.0.1:0".parse().unwrap(), crypto, settings).unwrap();
                tx.send(server.local_addr()).unwrap();
                app(server).await;
            });
    });
    let addr = rx.recv().unwrap();
    EchoServer {
        addr,
        cert,
        _dir: dir,
    }
}

fn client(cert: &CertificateDer<'static>) -> quinn::Endpoint {
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(client_config(cert, ALPN));
    endpoint
}

/// A TLS 1.3 client configuration trusting `cert`, offering `alpn`.
fn client_config(cert: &CertificateDer<'static>, alpn: &[u8]) -> quinn::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![alpn.to_vec()];
    quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls).unwrap()))
}

/// `body` in a protocol v1 frame header (the endpoint reads the header to
/// reserve the request's bytes before its body).
fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = vec![0x54, 0x47, 1, 0x05];
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// What the echo server answers to `request`.
fn echoed(request: &[u8]) -> Vec<u8> {
    let mut want = b"re:".to_vec();
    want.extend(request.iter().rev());
    want
}

async fn call(conn: &quinn::Connection, request: &[u8]) -> Result<Vec<u8>, String> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    send.write_all(request).await.map_err(|e| e.to_string())?;
    send.finish().map_err(|e| e.to_string())?;
    recv.read_to_end(64 << 20).await.map_err(|e| e.to_string())
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

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
