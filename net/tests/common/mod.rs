//! Helpers shared by the integration tests: a server on its own glommio
//! thread, a quinn (tokio) client, protocol v1 framing.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    net::SocketAddr,
    sync::{mpsc, Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use bytes::Bytes;
use glommio::LocalExecutorBuilder;
use quinn::crypto::rustls::QuicClientConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tidegate_net::{
    load_or_generate, server_crypto, ClientAuth, QuicServer, QuicSettings, ServerStats, ALPN,
};

/// A server whose application answers every request with `b"re:"` and the
/// request's bytes reversed; it runs on its own glommio thread until the
/// returned sender is dropped... or the test process ends.
pub struct EchoServer {
    pub addr: SocketAddr,
    pub cert: CertificateDer<'static>,
    _dir: tempfile::TempDir,
}

pub fn start(settings: QuicSettings) -> EchoServer {
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
pub fn spawn<F, Fut>(settings: QuicSettings, app: F) -> EchoServer
where
    F: FnOnce(QuicServer) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    spawn_with(settings, ClientAuth::None, app)
}

/// [`spawn`], with client certificates as `auth` says.
pub fn spawn_with<F, Fut>(settings: QuicSettings, auth: ClientAuth, app: F) -> EchoServer
where
    F: FnOnce(QuicServer) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let dir = tempfile::tempdir().unwrap();
    let tls = load_or_generate(None, None, dir.path()).unwrap();
    assert!(tls.generated);
    let cert = tls.certs[0].clone();
    let crypto = server_crypto(&tls, &auth).unwrap();
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

pub fn client(cert: &CertificateDer<'static>) -> quinn::Endpoint {
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(client_config(cert, ALPN));
    endpoint
}

/// A TLS 1.3 client configuration trusting `cert`, offering `alpn`.
pub fn client_config(cert: &CertificateDer<'static>, alpn: &[u8]) -> quinn::ClientConfig {
    client_config_with(cert, alpn, None)
}

/// [`client_config`], presenting `identity` (a chain, leaf first, and the
/// leaf's key) when given.
pub fn client_config_with(
    cert: &CertificateDer<'static>,
    alpn: &[u8],
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> quinn::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots);
    let mut tls = match identity {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).unwrap(),
        None => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![alpn.to_vec()];
    quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls).unwrap()))
}

/// `body` in a protocol v1 frame header (the endpoint reads the header to
/// reserve the request's bytes before its body).
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = vec![0x54, 0x47, 1, 0x05];
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// What the echo server answers to `request`.
pub fn echoed(request: &[u8]) -> Vec<u8> {
    let mut want = b"re:".to_vec();
    want.extend(request.iter().rev());
    want
}

pub async fn call(conn: &quinn::Connection, request: &[u8]) -> Result<Vec<u8>, String> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    send.write_all(request).await.map_err(|e| e.to_string())?;
    send.finish().map_err(|e| e.to_string())?;
    recv.read_to_end(64 << 20).await.map_err(|e| e.to_string())
}

pub fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The request the observed server answers with the peer's leaf
/// certificate (empty without one) instead of an echo.
pub const WHO_AM_I: &[u8] = b"who-am-i";

/// The server's counters as its own thread last saw them, and the most
/// handshakes it ever saw in flight.
#[derive(Clone, Default)]
pub struct Probe(Arc<Mutex<(ServerStats, usize)>>);

impl Probe {
    pub fn stats(&self) -> ServerStats {
        self.0.lock().unwrap().0
    }

    pub fn peak_handshakes(&self) -> usize {
        self.0.lock().unwrap().1
    }

    /// Waits (bounded) until the stats satisfy `done`; panics with them
    /// otherwise.
    pub fn wait_for(&self, what: &str, done: impl Fn(&ServerStats) -> bool) -> ServerStats {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let stats = self.stats();
            if done(&stats) {
                return stats;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {stats:?}"
            );
            thread::sleep(Duration::from_millis(2));
        }
    }
}

/// An echo server (answering [`WHO_AM_I`] with the peer's leaf
/// certificate) whose counters are published to the returned probe.
pub fn observed(settings: QuicSettings, auth: ClientAuth) -> (EchoServer, Probe) {
    let probe = Probe::default();
    let published = probe.clone();
    let server = spawn_with(settings, auth, move |server| async move {
        let server = std::rc::Rc::new(server);
        let watched = server.clone();
        glommio::spawn_local(async move {
            loop {
                let stats = watched.stats();
                {
                    let mut seen = published.0.lock().unwrap();
                    seen.1 = seen.1.max(stats.handshakes);
                    seen.0 = stats;
                }
                glommio::timer::sleep(Duration::from_millis(1)).await;
            }
        })
        .detach();
        while let Some(req) = server.next_request().await {
            let parts = if req.data == frame(WHO_AM_I) {
                let leaf = req.peer.certificates.first();
                vec![Bytes::from(leaf.map(|c| c.to_vec()).unwrap_or_default())]
            } else {
                let mut body = req.data.clone();
                body.reverse();
                vec![Bytes::from_static(b"re:"), Bytes::from(body)]
            };
            server.respond(req.conn, req.stream, parts);
        }
    });
    (server, probe)
}
