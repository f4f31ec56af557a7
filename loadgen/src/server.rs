//! `--spawn-server`: a local `tidegate serve` on a temporary data dir, for
//! the length of the run.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

/// How long the server may take to say where it listens.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Lines of the server's log kept to explain a failed start.
const LOG_TAIL_LINES: usize = 20;
/// How long it may take to drain after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// The running server; stopped (SIGTERM, then SIGKILL) on drop.
pub struct Spawned {
    child: Child,
    pub addr: SocketAddr,
    pub ca_file: PathBuf,
    _dir: tempfile::TempDir,
}

/// The `tidegate` binary: `explicit`, else the one beside this executable
/// (cargo builds both into the same directory).
pub fn locate(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    let me = std::env::current_exe().context("cannot find loadgen's own path")?;
    let sibling = me.with_file_name("tidegate");
    if sibling.exists() {
        Ok(sibling)
    } else {
        bail!(
            "no `tidegate` binary at {}; build it (`cargo build --release --bin tidegate`) or pass --server-bin",
            sibling.display()
        )
    }
}

impl Spawned {
    /// Starts the server and waits for its "listening" line.
    pub fn start(bin: &Path, parent: Option<&Path>) -> anyhow::Result<Spawned> {
        let builder = tempfile::Builder::new()
            .prefix("tidegate-loadgen-")
            .to_owned();
        let dir = match parent {
            Some(parent) => builder.tempdir_in(parent),
            None => builder.tempdir(),
        }
        .context("cannot make a temporary data dir")?;
        let data_dir = dir.path().join("data");
        let mut child = Command::new(bin)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(&data_dir)
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {}", bin.display()))?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| anyhow!("no stderr from the server"))?;
        let (tx, rx) = mpsc::channel();
        // Reads the server's log for its address, then keeps draining it
        // (a full pipe would stall the server); warnings pass through, and
        // the last lines are kept to explain a failed start.
        let tail = std::sync::Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
        let kept = tail.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("tidegate listening on quic://") {
                    let addr = rest.split_whitespace().next().map(str::parse::<SocketAddr>);
                    if let Some(Ok(addr)) = addr {
                        let _ = tx.send(addr);
                    }
                } else if line.contains("WARN") || line.contains("ERROR") {
                    eprintln!("server: {line}");
                }
                if let Ok(mut kept) = kept.lock() {
                    if kept.len() == LOG_TAIL_LINES {
                        kept.pop_front();
                    }
                    kept.push_back(line);
                }
            }
        });
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        let addr = loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(addr) => break addr,
                Err(mpsc::RecvTimeoutError::Timeout)
                    if std::time::Instant::now() < deadline
                        && matches!(child.try_wait(), Ok(None)) =>
                {
                    continue
                }
                Err(_) => {
                    let _ = child.kill();
                    let status = child.wait().ok();
                    // The pipe closes with the server: the reader then ends,
                    // having kept its last lines.
                    let _ = reader.join();
                    let log = tail
                        .lock()
                        .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
                        .unwrap_or_default();
                    bail!("the server did not start (exit: {status:?}); its last lines:\n{log}");
                }
            }
        };
        Ok(Spawned {
            child,
            addr,
            ca_file: data_dir.join("tls/dev-cert.pem"),
            _dir: dir,
        })
    }

    /// SIGTERM, then wait for the drain; SIGKILL if it takes too long.
    pub fn stop(mut self) -> anyhow::Result<()> {
        terminate(&self.child);
        let deadline = std::time::Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!("the server exited with {status}");
                }
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!("the server did not stop within {STOP_TIMEOUT:?}; killed");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// SIGTERM through kill(1): no unsafe code for one signal per run.
fn terminate(child: &Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
}
