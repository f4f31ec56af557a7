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
    let mut child = Command::new(tidegate_bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(&data_dir)
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
    Server {
        child,
        addr,
        data_dir,
        log,
        _dir: dir,
    }
}

/// Connects with the server's development CA.
pub async fn connect(server: &Server) -> tidegate_client::Client {
    tidegate_client::Client::connect(server.addr, tidegate_client::Tls::ca_file(server.ca_file()))
        .await
        .unwrap()
}
