//! The front door against real clients over loopback: client certificates
//! (mTLS), the peer of each request, certificate reload, stateless Retry,
//! the per-address and handshake bounds, the handshake timeout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    net::{SocketAddr, UdpSocket as StdUdpSocket},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use bytes::Bytes;
use common::{
    call, client, client_config, client_config_with, echoed, frame, observed, spawn, tokio_rt,
    EchoServer, WHO_AM_I,
};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tidegate_net::{load_or_generate, server_crypto, ClientAuth, QuicSettings, ALPN};

/// A test CA that signs client certificates.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// A client certificate for `name`, valid now unless `expired`: its
    /// chain (leaf first) and key.
    fn client(
        &self,
        name: &str,
        expired: bool,
    ) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (vec![cert.der().clone()], key)
    }
}

/// Connects with `config` and makes one request: the reply, or why the
/// connection or the request failed. (A TLS 1.3 client finishes its side of
/// the handshake before the server has checked its certificate, so a
/// refused certificate may show only on the first request.)
fn connect_and_call(
    server: &EchoServer,
    config: quinn::ClientConfig,
    request: &[u8],
) -> Result<Vec<u8>, String> {
    tokio_rt().block_on(async {
        let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        let conn = endpoint
            .connect_with(config, server.addr, "localhost")
            .unwrap()
            .await
            .map_err(|e| e.to_string())?;
        call(&conn, request)
            .await
            .map_err(|e| match conn.close_reason() {
                Some(reason) => format!("{e}: {reason}"),
                None => e,
            })
    })
}

#[test]
fn required_client_certificate_from_the_ca_connects_and_the_peer_carries_it() {
    let ca = Ca::new("tidegate test CA");
    let auth = ClientAuth::Required(vec![ca.der()]);
    let (server, probe) = observed(QuicSettings::default(), auth);
    let (chain, key) = ca.client("client-1", false);
    let leaf = chain[0].clone();
    let config = client_config_with(&server.cert, ALPN, Some((chain, key)));
    let hello = frame(b"hello");
    assert_eq!(
        connect_and_call(&server, config.clone(), &hello).unwrap(),
        echoed(&hello)
    );
    let seen = connect_and_call(&server, config, &frame(WHO_AM_I)).unwrap();
    assert_eq!(seen, leaf.to_vec(), "the server sees the client's leaf");
    assert!(probe.stats().requests_total >= 1);
}

#[test]
fn required_client_certificate_refuses_other_ca_expired_and_missing_certificates() {
    let ca = Ca::new("tidegate test CA");
    let other = Ca::new("someone else's CA");
    let auth = ClientAuth::Required(vec![ca.der()]);
    let (server, probe) = observed(QuicSettings::default(), auth);
    let hello = frame(b"hello");
    let cases = [
        ("UnknownIssuer", Some(other.client("intruder", false))),
        ("certificate expired", Some(ca.client("late", true))),
        ("peer sent no certificates", None),
    ];
    for (why, identity) in cases {
        let config = client_config_with(&server.cert, ALPN, identity);
        let err = connect_and_call(&server, config, &hello).expect_err(why);
        assert!(err.contains(why), "refused for {why}: {err}");
    }
    assert_eq!(probe.stats().requests_total, 0, "no request got through");
    // A good certificate still gets in.
    let config = client_config_with(&server.cert, ALPN, Some(ca.client("client-1", false)));
    assert_eq!(
        connect_and_call(&server, config, &hello).unwrap(),
        echoed(&hello)
    );
}

#[test]
fn optional_client_certificate_lets_clients_without_one_in_with_no_certificates() {
    let ca = Ca::new("tidegate test CA");
    let auth = ClientAuth::Optional(vec![ca.der()]);
    let (server, _probe) = observed(QuicSettings::default(), auth);
    let anonymous = client_config(&server.cert, ALPN);
    let seen = connect_and_call(&server, anonymous, &frame(WHO_AM_I)).unwrap();
    assert!(seen.is_empty(), "no certificate: the peer has none");
    let (chain, key) = ca.client("client-1", false);
    let leaf = chain[0].clone();
    let config = client_config_with(&server.cert, ALPN, Some((chain, key)));
    let seen = connect_and_call(&server, config, &frame(WHO_AM_I)).unwrap();
    assert_eq!(seen, leaf.to_vec());
    // Optional still checks a certificate that is shown.
    let other = Ca::new("someone else's CA");
    let config = client_config_with(&server.cert, ALPN, Some(other.client("intruder", false)));
    let err = connect_and_call(&server, config, &frame(WHO_AM_I)).unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");
}

#[test]
fn requests_of_one_connection_share_one_peer_with_the_client_address() {
    let server = spawn(QuicSettings::default(), |server| async move {
        let mut first: Option<std::rc::Rc<tidegate_net::Peer>> = None;
        while let Some(req) = server.next_request().await {
            let first = first.get_or_insert_with(|| req.peer.clone());
            let same = std::rc::Rc::ptr_eq(first, &req.peer);
            let answer = format!("{}|{same}", req.peer.remote);
            server.respond(req.conn, req.stream, vec![Bytes::from(answer)]);
        }
    });
    tokio_rt().block_on(async {
        let endpoint = client(&server.cert);
        let local = endpoint.local_addr().unwrap();
        let conn = endpoint
            .connect(server.addr, "localhost")
            .unwrap()
            .await
            .unwrap();
        for _ in 0..3 {
            let got = String::from_utf8(call(&conn, &frame(b"x")).await.unwrap()).unwrap();
            assert_eq!(got, format!("127.0.0.1:{}|true", local.port()));
        }
    });
}

#[test]
fn reloaded_certificate_serves_new_connections_and_established_ones_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let next = load_or_generate(None, None, dir.path()).unwrap();
    let next_cert = next.certs[0].clone();
    let next_crypto = server_crypto(&next, &ClientAuth::None).unwrap();
    let server = spawn(QuicSettings::default(), move |server| async move {
        let mut next_crypto = Some(next_crypto);
        while let Some(req) = server.next_request().await {
            if req.data == frame(b"reload") {
                if let Some(crypto) = next_crypto.take() {
                    server.set_crypto(crypto);
                }
            }
            server.respond(req.conn, req.stream, vec![Bytes::from_static(b"ok")]);
        }
    });
    tokio_rt().block_on(async {
        let old = client(&server.cert);
        let established = old
            .connect(server.addr, "localhost")
            .unwrap()
            .await
            .unwrap();
        assert_eq!(call(&established, &frame(b"reload")).await.unwrap(), b"ok");
        // A client that trusts only the new certificate gets in...
        let fresh = client(&next_cert);
        let conn = fresh
            .connect(server.addr, "localhost")
            .unwrap()
            .await
            .unwrap();
        assert_eq!(call(&conn, &frame(b"a")).await.unwrap(), b"ok");
        // ...one that trusts only the old one no longer does...
        let stale = old.connect(server.addr, "localhost").unwrap().await;
        assert!(stale.is_err(), "the old certificate is no longer served");
        // ...and the connection made before the reload is untouched.
        assert_eq!(call(&established, &frame(b"b")).await.unwrap(), b"ok");
    });
}

#[test]
fn zero_retry_rate_sends_every_new_client_through_retry_and_it_still_connects() {
    let settings = QuicSettings {
        retry_handshakes_per_s: 0,
        ..QuicSettings::default()
    };
    let (server, probe) = observed(settings, ClientAuth::None);
    let hello = frame(b"hello");
    let config = client_config(&server.cert, ALPN);
    assert_eq!(
        connect_and_call(&server, config, &hello).unwrap(),
        echoed(&hello)
    );
    let stats = probe.wait_for("a request", |s| s.requests_total >= 1);
    assert!(stats.retries_sent_total >= 1, "{stats:?}");
    assert_eq!(stats.accepted_total, 1, "{stats:?}");
}

#[test]
fn connections_over_the_per_address_bound_are_refused_and_the_others_keep_working() {
    let settings = QuicSettings {
        max_connections_per_address: 2,
        ..QuicSettings::default()
    };
    let (server, probe) = observed(settings, ClientAuth::None);
    tokio_rt().block_on(async {
        let endpoint = client(&server.cert);
        let connect = || async {
            endpoint
                .connect(server.addr, "localhost")
                .unwrap()
                .await
                .map_err(|e| e.to_string())
        };
        let first = connect().await.unwrap();
        let second = connect().await.unwrap();
        // A round trip each: the server has seen both handshakes complete
        // (which proves the address and charges it), not only the client.
        for conn in [&first, &second] {
            let hi = frame(b"hi");
            assert_eq!(call(conn, &hi).await.unwrap(), echoed(&hi));
        }
        let third = connect().await;
        let err = third.expect_err("a third connection from 127.0.0.1 is refused");
        assert!(err.to_lowercase().contains("refused"), "{err}");
        for conn in [&first, &second] {
            let ok = frame(b"ok");
            assert_eq!(call(conn, &ok).await.unwrap(), echoed(&ok));
        }
    });
    let stats = probe.wait_for("the refusal", |s| s.refused_per_address_total >= 1);
    assert_eq!(stats.refused_per_address_total, 1, "{stats:?}");
    assert_eq!(stats.refused_total, 1, "{stats:?}");
    assert_eq!(stats.accepted_total, 2, "{stats:?}");
}

/// `count` distinct client Initials, each the first datagram of a
/// handshake that will never go further.
fn initials(count: usize) -> Vec<Vec<u8>> {
    let mut roots = rustls::RootCertStore::empty();
    let ca = Ca::new("nobody");
    roots.add(ca.der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn_proto::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let config = quinn_proto::ClientConfig::new(Arc::new(crypto));
    let mut endpoint = quinn_proto::Endpoint::new(
        Arc::new(quinn_proto::EndpointConfig::default()),
        None,
        false,
        None,
    );
    // Any address: the datagrams are sent to the server by hand.
    let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let now = Instant::now();
    (0..count)
        .map(|_| {
            let (_, mut conn) = endpoint
                .connect(now, config.clone(), to, "localhost")
                .unwrap();
            let mut buf = Vec::new();
            let t = conn.poll_transmit(now, 1, &mut buf).unwrap();
            buf.truncate(t.size);
            buf
        })
        .collect()
}

/// Sends `datagrams` to `to` from a few sockets, over and over, about 20
/// thousand a second, until `stop` is set or `limit` passes. Returns how
/// many were sent.
fn flood(
    datagrams: Vec<Vec<u8>>,
    to: SocketAddr,
    stop: Arc<AtomicBool>,
    limit: Duration,
) -> thread::JoinHandle<usize> {
    thread::spawn(move || {
        let sockets: Vec<_> = (0..4)
            .map(|_| StdUdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let deadline = Instant::now() + limit;
        let mut sent = 0;
        for (i, datagram) in datagrams.iter().cycle().enumerate() {
            if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
                break;
            }
            // A full receive queue drops datagrams: that is the flood.
            let _ = sockets[i % sockets.len()].send_to(datagram, to);
            sent += 1;
            if sent % 100 == 0 {
                // Pacing, so the flood does not take the machine's cores.
                thread::sleep(Duration::from_millis(5));
            }
        }
        sent
    })
}

#[test]
fn a_flood_of_initials_gets_retries_and_a_real_client_still_connects() {
    let settings = QuicSettings {
        retry_handshakes_per_s: 16,
        max_handshakes: 64,
        handshake_timeout: Duration::from_secs(2),
        max_connections_per_address: 10_000,
        ..QuicSettings::default()
    };
    let max_handshakes = settings.max_handshakes;
    let (server, probe) = observed(settings, ClientAuth::None);
    let stop = Arc::new(AtomicBool::new(false));
    let flooding = flood(
        initials(2000),
        server.addr,
        stop.clone(),
        Duration::from_secs(5),
    );
    probe.wait_for("retries under the flood", |s| s.retries_sent_total >= 100);
    let hello = frame(b"hello");
    let config = client_config(&server.cert, ALPN);
    let reply = connect_and_call(&server, config, &hello);
    stop.store(true, Ordering::Relaxed);
    let sent = flooding.join().unwrap();
    assert_eq!(reply.unwrap(), echoed(&hello), "the real client is served");
    let stats = probe.stats();
    assert!(stats.retries_sent_total >= 100, "{stats:?}");
    assert!(
        probe.peak_handshakes() <= max_handshakes,
        "peak {} handshakes: {stats:?}",
        probe.peak_handshakes()
    );
    // The flood cost state only for the handshakes the rate let in.
    assert!(
        stats.accepted_total < 200,
        "{sent} datagrams sent: {stats:?}"
    );
}

#[test]
fn stalled_handshakes_are_bounded_and_closed_after_the_handshake_timeout() {
    let settings = QuicSettings {
        retry_handshakes_per_s: 100_000,
        max_handshakes: 16,
        handshake_timeout: Duration::from_millis(300),
        max_connections_per_address: 10_000,
        ..QuicSettings::default()
    };
    let (server, probe) = observed(settings, ClientAuth::None);
    let stop = Arc::new(AtomicBool::new(false));
    let flooding = flood(
        initials(200),
        server.addr,
        stop.clone(),
        Duration::from_secs(5),
    );
    // Unvalidated handshakes fill half of max_handshakes; beyond that they
    // get a Retry (never a refusal: their address may be spoofed).
    probe.wait_for("Retry at half of max_handshakes", |s| {
        s.retries_sent_total >= 1
    });
    stop.store(true, Ordering::Relaxed);
    flooding.join().unwrap();
    let stats = probe.wait_for("the handshakes to time out", |s| {
        s.handshake_timeouts_total >= 8 && s.handshakes == 0
    });
    assert!(probe.peak_handshakes() <= 8, "{stats:?}");
    assert_eq!(stats.refused_total, 0, "{stats:?}");
    // With the stalled handshakes gone, a real client gets in.
    let hello = frame(b"hello");
    let config = client_config(&server.cert, ALPN);
    assert_eq!(
        connect_and_call(&server, config, &hello).unwrap(),
        echoed(&hello)
    );
}

#[test]
fn validated_clients_get_in_while_spoofed_handshakes_hold_their_half() {
    let settings = QuicSettings {
        retry_handshakes_per_s: 100_000,
        max_handshakes: 16,
        handshake_timeout: Duration::from_secs(30),
        max_connections_per_address: 10_000,
        ..QuicSettings::default()
    };
    let (server, probe) = observed(settings, ClientAuth::None);
    let stop = Arc::new(AtomicBool::new(false));
    let flooding = flood(
        initials(200),
        server.addr,
        stop.clone(),
        Duration::from_secs(10),
    );
    probe.wait_for("stalled handshakes at half the bound", |s| {
        s.handshakes >= 8 && s.retries_sent_total >= 1
    });
    // The stalled half-open handshakes stay (30 s timeout), and a real
    // client, sent through Retry, still gets in on the validated half.
    let hello = frame(b"hello");
    let config = client_config(&server.cert, ALPN);
    let reply = connect_and_call(&server, config, &hello);
    stop.store(true, Ordering::Relaxed);
    flooding.join().unwrap();
    assert_eq!(reply.unwrap(), echoed(&hello));
    assert!(probe.peak_handshakes() <= 16, "{:?}", probe.stats());
}

#[test]
fn an_admitted_request_that_never_arrives_whole_is_reset_and_frees_the_window() {
    let settings = QuicSettings {
        max_inflight_bytes: 64 << 10,
        request_timeout: Duration::from_millis(300),
        ..QuicSettings::default()
    };
    let (server, probe) = observed(settings, ClientAuth::None);
    tokio_rt().block_on(async {
        let endpoint = client(&server.cert);
        let conn = endpoint
            .connect(server.addr, "localhost")
            .unwrap()
            .await
            .unwrap();
        // A request that declares the whole window and sends a sliver of
        // its body, then nothing: it is admitted and holds the window.
        let stalled = frame(&vec![7u8; 64 << 10]);
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(&stalled[..1024]).await.unwrap();
        // Wait on the condition without blocking this runtime, which has to
        // drive the client's connection meanwhile.
        let deadline = Instant::now() + Duration::from_secs(10);
        while probe.stats().admitted_requests_total < 1 {
            assert!(
                Instant::now() < deadline,
                "not admitted: {:?}",
                probe.stats()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Another request has to wait for it, until the timeout gives up
        // on the stalled one and resets its stream.
        let hello = frame(b"hello");
        assert_eq!(call(&conn, &hello).await.unwrap(), echoed(&hello));
        assert!(
            recv.read_to_end(1 << 20).await.is_err(),
            "the stalled stream is reset"
        );
    });
    // The probe samples: one sample may see the timeout while `hello`
    // still holds its bytes, so wait for both.
    let stats = probe.wait_for("the timeout, and the window empty", |s| {
        s.request_timeouts_total >= 1 && s.inflight_bytes == 0
    });
    assert_eq!(stats.request_timeouts_total, 1, "{stats:?}");
}
