//! Runs the real `tidegate` binary for the SDK's tests.
//!
//! The binary is `<target dir>/debug/tidegate`, where the target dir is
//! `CARGO_TARGET_DIR` if set (relative to the workspace root when
//! relative), else `<workspace>/target`. This crate cannot use
//! `env!("CARGO_BIN_EXE_tidegate")` (only the root package's own tests
//! get it), so when the binary is missing it is built first with
//! `cargo build -p tidegate --bin tidegate`. A binary that exists is used
//! as it is: run `cargo build -p tidegate` first after changing the
//! server (`cargo nextest run --workspace` builds it anyway). Under plain
//! `cargo test`, cargo holds the build lock, so build the binary first.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

/// A running `tidegate serve`, killed on drop.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Server {
    /// The development CA certificate the server wrote (PEM).
    pub fn ca_file(&self) -> PathBuf {
        self.data_dir.join("tls/dev-cert.pem")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `tidegate` binary, built if missing (once per test process).
pub fn tidegate_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = workspace_root();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .map(|dir| {
                if dir.is_relative() {
                    root.join(dir)
                } else {
                    dir
                }
            })
            .unwrap_or_else(|| root.join("target"));
        let bin = target.join("debug/tidegate");
        if !bin.exists() {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "-p", "tidegate", "--bin", "tidegate"])
                .current_dir(&root)
                .status()
                .expect("run cargo build");
            assert!(status.success(), "cargo build -p tidegate failed");
        }
        assert!(bin.exists(), "no tidegate binary at {}", bin.display());
        bin
    })
    .clone()
}

/// Starts `tidegate serve` on a fresh data dir (one shard, core 0) and
/// waits for its "listening" line (readiness, not a sleep).
pub fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let (child, addr, log) = spawn(&data_dir, "127.0.0.1:0".parse().unwrap());
    Server {
        child,
        addr,
        data_dir,
        log,
        _dir: dir,
    }
}

impl Server {
    /// Stops the server with SIGTERM (a graceful stop: its connections are
    /// closed) and waits for the process to exit.
    pub fn stop(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        // The server bounds its graceful stop (10 s for requests in flight).
        let exit = self.child.wait().unwrap();
        assert!(exit.success(), "server exited with {exit}");
    }

    /// Starts the server again on the same data dir and the same port, and
    /// waits until it listens. Call [`stop`](Server::stop) first.
    pub fn start_again(&mut self) {
        let (child, addr, log) = spawn(&self.data_dir, self.addr);
        assert_eq!(addr, self.addr);
        self.child = child;
        self.log = log;
    }
}

/// Spawns `tidegate serve` on `data_dir` and `listen` and waits for its
/// "listening" line, which gives the address it bound.
fn spawn(data_dir: &Path, listen: SocketAddr) -> (Child, SocketAddr, Arc<Mutex<Vec<String>>>) {
    let mut child = Command::new(tidegate_bin())
        .arg("serve")
        .arg("--listen")
        .arg(listen.to_string())
        .args(["--admin-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data_dir)
        .env("TIDEGATE_CORES", "0")
        .env("TIDEGATE_SHARD__IO_MEMORY", "1MiB")
        .env("TIDEGATE_LOG", "info")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
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
    (child, addr, log)
}

/// Connects with the server's development CA.
pub async fn connect(server: &Server) -> tidegate_client::Client {
    tidegate_client::Client::connect(server.addr, tidegate_client::Tls::ca_file(server.ca_file()))
        .await
        .unwrap()
}

/// A stand-in server that completes the QUIC and TLS handshake and then
/// resets every stream it is given: each call fails with a retriable
/// transport error while the connection stays up. Stops on drop.
pub struct ResettingServer {
    pub addr: SocketAddr,
    pub ca_file: PathBuf,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for ResettingServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a [`ResettingServer`] on an ephemeral local port.
pub fn start_resetting_server() -> ResettingServer {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, cert.cert.pem()).unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key.into())
        .unwrap();
    tls.alpn_protocols = vec![tidegate_proto::protocol::ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap();
    let config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = endpoint.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Some(incoming) = endpoint.accept().await {
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    let code = quinn::VarInt::from_u32(1);
                    let _ = send.reset(code);
                    let _ = recv.stop(code);
                }
            });
        }
    });
    ResettingServer {
        addr,
        ca_file,
        task,
        _dir: dir,
    }
}
