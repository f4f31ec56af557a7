//! Runs the real `tidegate` binary and talks to it over real QUIC.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use quinn::crypto::rustls::QuicClientConfig;
use rustls::pki_types::{pem::PemObject, CertificateDer};
use tidegate_proto::{
    batch::{BatchBuilder, BatchIter, Record},
    protocol::{
        decode_header, AckLevel, CreateTopicRequest, FetchRequest, ListOffsetsRequest, OffsetSpec,
        ProduceRequest, ProduceTarget, Request, Response, ALPN, FRAME_HEADER_LEN,
    },
};

/// A running `tidegate serve`.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub cert: CertificateDer<'static>,
    pub log: Arc<Mutex<Vec<String>>>,
    pub notify: Option<UnixDatagram>,
}

/// Starts the server on `data_dir` with `cores` shard CPUs ("0" or "0-1"),
/// and waits for its "listening" line (readiness, not a sleep).
pub fn start(data_dir: &Path, cores: &str) -> Server {
    start_with(data_dir, cores, false)
}

pub fn start_with(data_dir: &Path, cores: &str, systemd: bool) -> Server {
    start_full(data_dir, cores, systemd, &[])
}

/// Starts the server with extra `TIDEGATE_*` settings.
pub fn start_env(data_dir: &Path, cores: &str, env: &[(&str, &str)]) -> Server {
    start_full(data_dir, cores, false, env)
}

/// Starts the server the way the README's quick start does: no data
/// directory given (the default `./tidegate-data`) in working directory
/// `cwd`.
pub fn start_default_in(cwd: &Path, cores: &str) -> Server {
    start_cmd(&cwd.join("tidegate-data"), cores, false, &[], Some(cwd))
}

/// [`start_config`] on a given QUIC address (a restart on the same port).
pub fn start_config_at(data_dir: &Path, cores: &str, config: &Path, listen: SocketAddr) -> Server {
    let config = config.display().to_string();
    let listen = listen.to_string();
    start_cmd_args(
        data_dir,
        cores,
        false,
        &[],
        None,
        &["--config", &config, "--listen", &listen],
    )
}

/// Starts the server with a configuration file (`--config FILE`).
pub fn start_config(data_dir: &Path, cores: &str, config: &Path) -> Server {
    start_cmd_args(
        data_dir,
        cores,
        false,
        &[],
        None,
        &["--config", &config.display().to_string()],
    )
}

fn start_full(data_dir: &Path, cores: &str, systemd: bool, env: &[(&str, &str)]) -> Server {
    start_cmd(data_dir, cores, systemd, env, None)
}

fn start_cmd(
    data_dir: &Path,
    cores: &str,
    systemd: bool,
    env: &[(&str, &str)],
    cwd: Option<&Path>,
) -> Server {
    start_cmd_args(data_dir, cores, systemd, env, cwd, &[])
}

fn start_cmd_args(
    data_dir: &Path,
    cores: &str,
    systemd: bool,
    env: &[(&str, &str)],
    cwd: Option<&Path>,
    args: &[&str],
) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tidegate"));
    cmd.envs(env.iter().copied());
    cmd.args(["serve", "--admin-listen", "127.0.0.1:0"]);
    if !args.contains(&"--listen") {
        cmd.args(["--listen", "127.0.0.1:0"]);
    }
    cmd.args(args);
    match cwd {
        // The default data directory, relative to the working directory.
        Some(cwd) => cmd.current_dir(cwd),
        None => cmd.arg("--data-dir").arg(data_dir),
    };
    cmd.env("TIDEGATE_CORES", cores)
        .env("TIDEGATE_SHARD__IO_MEMORY", "1MiB")
        .env("TIDEGATE_LOG", "info")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let notify = systemd.then(|| {
        let path = data_dir.with_extension("notify");
        let _ = std::fs::remove_file(&path);
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        cmd.env("NOTIFY_SOCKET", &path);
        sock
    });
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("tidegate listening on quic://") {
                let addr: SocketAddr = rest.split_whitespace().next().unwrap().parse().unwrap();
                let _ = tx.send(addr);
            }
            sink.lock().unwrap().push(line);
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("server did not start: {:?}", log.lock().unwrap()));
    // With a configured certificate there is no development one: tests
    // of that case connect with `connect_trusting`.
    let cert = match std::fs::read(data_dir.join("tls/dev-cert.pem")) {
        Ok(pem) => CertificateDer::from_pem_slice(&pem).unwrap(),
        Err(_) => CertificateDer::from(Vec::new()),
    };
    Server {
        child,
        addr,
        data_dir: data_dir.to_path_buf(),
        cert,
        log,
        notify,
    }
}

impl Server {
    /// SIGHUP: reload `[auth]` and the TLS files.
    pub fn reload(&self) {
        unsafe_kill(self.child.id(), "-HUP");
    }

    /// Waits (bounded) until a log line contains `needle` `count` times.
    pub fn wait_for_log(&self, needle: &str, count: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let seen = self
                .log
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains(needle))
                .count();
            if seen >= count {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no log line with {needle:?}: {:?}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, then the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        unsafe_kill(self.child.id(), libc_sigterm());
        self.child.wait().unwrap()
    }

    /// SIGKILL: a crash.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// The next systemd notification, e.g. "READY=1".
    pub fn next_notification(&self) -> String {
        let mut buf = [0u8; 512];
        let n = self.notify.as_ref().unwrap().recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn libc_sigterm() -> &'static str {
    "-TERM"
}

fn unsafe_kill(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(signal)
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// A client connection, with a small async API over protocol v1.
pub struct Client {
    pub endpoint: quinn::Endpoint,
    pub conn: quinn::Connection,
}

pub async fn connect(server: &Server) -> Client {
    handshake(server, None).await.unwrap()
}

/// A client certificate chain and its key.
pub type Identity = (
    Vec<CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
);

/// Connects presenting `identity` as client certificate (mTLS); the error
/// is the handshake's.
/// A round trip (ListTopics) follows the handshake: with TLS 1.3 the server
/// checks the client's certificate after the client considers the
/// handshake done, and a refusal arrives as a close.
pub async fn connect_as(server: &Server, identity: Option<Identity>) -> Result<Client, String> {
    let client = handshake(server, identity).await?;
    let mut ping = Vec::new();
    Request::ListTopics.encode(&mut ping);
    client.raw(&ping).await?;
    Ok(client)
}

async fn handshake(server: &Server, identity: Option<Identity>) -> Result<Client, String> {
    connect_trusting(server, server.cert.clone(), identity).await
}

/// Connects trusting only `cert` (and presenting `identity`); the error is
/// the handshake's.
pub async fn connect_trusting(
    server: &Server,
    cert: CertificateDer<'static>,
    identity: Option<Identity>,
) -> Result<Client, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots);
    let mut tls = match identity {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).unwrap(),
        None => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let mut config = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls).unwrap()));
    let mut transport = quinn::TransportConfig::default();
    transport.max_concurrent_bidi_streams(0u32.into());
    // As the SDK: whole requests in stream order (docs/FLOW_CONTROL.md).
    transport.send_fairness(false);
    config.transport_config(Arc::new(transport));
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(config);
    let conn = endpoint
        .connect(server.addr, "localhost")
        .unwrap()
        .await
        .map_err(|e| e.to_string())?;
    Ok(Client { endpoint, conn })
}

impl Client {
    /// Sends raw bytes as one request and returns the raw response.
    pub async fn raw(&self, bytes: &[u8]) -> Result<Vec<u8>, String> {
        let (mut send, mut recv) = self.conn.open_bi().await.map_err(|e| e.to_string())?;
        send.write_all(bytes).await.map_err(|e| e.to_string())?;
        send.finish().map_err(|e| e.to_string())?;
        recv.read_to_end(64 << 20).await.map_err(|e| e.to_string())
    }

    pub async fn call(&self, request: &Request<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        request.encode(&mut out);
        self.raw(&out).await.unwrap()
    }

    pub async fn create_topic(&self, name: &str, partitions: u32) -> Vec<u8> {
        self.create_topic_with_ttl(name, partitions, None).await
    }

    pub async fn create_topic_with_ttl(
        &self,
        name: &str,
        partitions: u32,
        message_ttl_ms: Option<u64>,
    ) -> Vec<u8> {
        self.call(&Request::CreateTopic(CreateTopicRequest {
            name,
            partitions,
            retention_ms: None,
            retention_bytes: None,
            segment_bytes: None,
            message_ttl_ms,
            dedup_window_ms: None,
        }))
        .await
    }

    /// Produces `batches` to one partition; per-batch base offsets.
    pub async fn produce(
        &self,
        topic: &str,
        partition: u32,
        ack: AckLevel,
        batches: &[u8],
    ) -> Vec<Result<u64, tidegate_proto::protocol::ErrorCode>> {
        let response = self
            .call(&Request::Produce(ProduceRequest {
                topic,
                target: ProduceTarget::Partition(partition),
                ack,
                batches,
            }))
            .await;
        match decode(&response) {
            Response::Produce(p) => p.results,
            other => panic!("produce answered {other:?}"),
        }
    }

    /// Fetches from `offset`; returns (high watermark, the raw batches).
    pub async fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        wait_ms: u32,
    ) -> (u64, Vec<u8>) {
        let response = self
            .call(&Request::Fetch(FetchRequest {
                topic,
                partition,
                offset,
                max_bytes: 1 << 20,
                max_wait_ms: wait_ms,
            }))
            .await;
        match decode(&response) {
            Response::Fetch(f) => (f.high_watermark, f.batches.to_vec()),
            other => panic!("fetch answered {other:?}"),
        }
    }

    pub async fn latest(&self, topic: &str, partition: u32) -> u64 {
        let response = self
            .call(&Request::ListOffsets(ListOffsetsRequest {
                topic,
                partition,
                spec: OffsetSpec::Latest,
            }))
            .await;
        match decode(&response) {
            Response::ListOffsets { offset } => offset,
            other => panic!("list offsets answered {other:?}"),
        }
    }

    /// Reads a whole partition from offset 0 to its high watermark: every
    /// record's (offset, value).
    pub async fn read_all(&self, topic: &str, partition: u32) -> Vec<(u64, Vec<u8>)> {
        let latest = self.latest(topic, partition).await;
        let mut out = Vec::new();
        let mut next = 0;
        while next < latest {
            let (_, bytes) = self.fetch(topic, partition, next, 0).await;
            assert!(
                !bytes.is_empty(),
                "fetch at {next} of {latest} returned nothing"
            );
            for batch in BatchIter::new(&bytes) {
                let batch = batch.unwrap();
                for r in batch.records() {
                    if r.offset() >= next {
                        out.push((r.offset(), r.value().unwrap().to_vec()));
                    }
                }
                next = batch.header().next_offset();
            }
        }
        out
    }
}

pub fn decode(bytes: &[u8]) -> Response<'_> {
    let header = decode_header(bytes, 64 << 20).unwrap().unwrap();
    Response::decode(header, &bytes[FRAME_HEADER_LEN..]).unwrap()
}

/// A batch whose record values are `values`.
pub fn batch_of(values: &[Vec<u8>]) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    for v in values {
        b.push(Record {
            timestamp_ms: 1_700_000_000_000,
            key: None,
            value: Some(v),
            headers: &[],
        })
        .unwrap();
    }
    b.finish().unwrap()
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The admin HTTP address from the server's "  admin:       http://ADDR/metrics"
/// banner line (printed right after the "listening" line).
pub fn admin_addr(server: &Server) -> SocketAddr {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let found = server.log.lock().unwrap().iter().find_map(|line| {
            let rest = line.trim_start().strip_prefix("admin:")?.trim();
            let addr = rest.strip_prefix("http://")?.strip_suffix("/metrics")?;
            addr.parse::<SocketAddr>().ok()
        });
        if let Some(addr) = found {
            return addr;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no admin banner line: {:?}",
            server.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A plain HTTP/1.1 GET over a std `TcpStream`: (status code, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http_get_with(addr, path, "")
}

/// [`http_get`] with extra header lines (each ending in `\r\n`).
pub fn http_get_with(addr: SocketAddr, path: &str, headers: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {response:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, body.to_string())
}

/// Polls /metrics until `check` holds (shards publish once a second).
pub fn metrics_until(admin: SocketAddr, what: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (status, body) = http_get(admin, "/metrics");
        assert_eq!(status, 200);
        if check(&body) {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} never held:\n{body}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// An SDK client of `server`, trusting its development certificate.
pub async fn sdk_client(server: &Server) -> tidegate_client::Client {
    let tls = tidegate_client::Tls::ca_file(server.data_dir.join("tls/dev-cert.pem"));
    tidegate_client::Client::connect(server.addr, tls)
        .await
        .unwrap()
}

/// Creates `topic` with `partitions` partitions and fills each with
/// `per_partition` messages whose value is `partition:index`, durably,
/// through the SDK's producer. With `base_ms`, message `i` has timestamp
/// `base_ms + i * 1000`.
pub async fn fill_topic(
    client: &tidegate_client::Client,
    topic: &str,
    partitions: u32,
    per_partition: u32,
    base_ms: Option<i64>,
) {
    use tidegate_client::ProducerRecord;
    client.create_topic(topic, partitions).await.unwrap();
    let records = (0..partitions).flat_map(|p| {
        (0..per_partition).map(move |i| {
            let record = ProducerRecord::new(format!("{p}:{i}")).with_partition(p);
            match base_ms {
                Some(base) => record.with_timestamp_ms(base + i64::from(i) * 1000),
                None => record,
            }
        })
    });
    send_durably(client, topic, records, std::time::Duration::ZERO).await;
}

/// Sends `records` to `topic` through the SDK's producer with durable
/// acks (a batch waits up to `linger` to fill), and waits for every
/// receipt.
pub async fn send_durably(
    client: &tidegate_client::Client,
    topic: &str,
    records: impl IntoIterator<Item = tidegate_client::ProducerRecord>,
    linger: std::time::Duration,
) {
    use tidegate_client::{Ack, Producer, ProducerConfig};
    let config = ProducerConfig {
        ack: Ack::Durable,
        linger,
        ..ProducerConfig::default()
    };
    let producer = Producer::new(client.clone(), config);
    let mut receipts = Vec::new();
    for record in records {
        receipts.push(producer.send(topic, record).await.unwrap());
    }
    for r in receipts {
        r.await.unwrap();
    }
    producer.close().await;
}
