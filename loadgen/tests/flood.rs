//! The QUIC front door of the real server under `tidegate-loadgen flood`:
//! Retry turns on, the handshakes in flight stay within their bound, the
//! server's memory does not grow with the flood, and a well-behaved
//! client (a verified loadgen run) connects and produces during it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{loadgen, server_bin};

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    quic: SocketAddr,
    admin: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const MAX_HANDSHAKES: u64 = 64;

fn start(data: &Path) -> Server {
    let mut child = Command::new(server_bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data)
        .env("TIDEGATE_CORES", "0")
        .env("TIDEGATE_SHARD__IO_MEMORY", "1MiB")
        .env("TIDEGATE_QUIC__RETRY_HANDSHAKES_PER_S", "16")
        .env("TIDEGATE_QUIC__MAX_HANDSHAKES", MAX_HANDSHAKES.to_string())
        .env("TIDEGATE_QUIC__HANDSHAKE_TIMEOUT", "5s")
        .env("TIDEGATE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut quic, mut admin) = (None, None);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("tidegate listening on quic://") {
                quic = rest.split_whitespace().next().and_then(|a| a.parse().ok());
            }
            if let Some(rest) = line.trim_start().strip_prefix("admin:") {
                let addr = rest.trim().trim_start_matches("http://");
                admin = addr.trim_end_matches("/metrics").parse().ok();
            }
            if let (Some(q), Some(a)) = (quic, admin) {
                let _ = tx.send((q, a));
                quic = None;
            }
        }
    });
    let (quic, admin) = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the server starts");
    Server { child, quic, admin }
}

fn metrics(admin: SocketAddr) -> String {
    let mut stream = std::net::TcpStream::connect_timeout(&admin, Duration::from_secs(10)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")?
                .trim()
                .strip_suffix(" kB")?
                .parse()
                .ok()
        })
        .unwrap()
}

#[test]
fn a_handshake_flood_gets_retries_and_a_real_client_still_produces() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start(&data);
    let pid = server.child.id();
    let baseline = rss_kib(pid);

    let mut flood = Command::new(loadgen())
        .args([
            "flood",
            "--server",
            &server.quic.to_string(),
            "--rate",
            "5000",
            "--duration",
            "120s",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();

    // Retry turns on; handshakes in flight and memory stay bounded while
    // only the flood runs.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut peak_rss = baseline;
    let mut peak_handshakes = 0.0f64;
    loop {
        let text = metrics(server.admin);
        peak_handshakes = peak_handshakes.max(sample(&text, "tidegate_quic_handshakes"));
        peak_rss = peak_rss.max(rss_kib(pid));
        if sample(&text, "tidegate_quic_retries_sent_total") >= 500.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no Retry under the flood: {text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        peak_handshakes <= MAX_HANDSHAKES as f64,
        "{peak_handshakes} handshakes"
    );
    assert!(
        peak_rss < baseline + 16 * 1024,
        "RSS grew from {baseline} KiB to {peak_rss} KiB under the flood"
    );

    // During the flood, a real client connects, produces and consumes,
    // every message verified.
    let json = dir.path().join("run.json");
    let run = Command::new(loadgen())
        .args(["--server", &server.quic.to_string(), "--ca"])
        .arg(data.join("tls/dev-cert.pem"))
        .args([
            "--rate", "5000", "--batch", "100", "--linger", "2ms", "--warmup", "0s",
        ])
        .args(["--duration", "1s", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        flood.try_wait().unwrap().is_none(),
        "the run finished inside the flood"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["verify"]["lost"], 0);
    assert!(
        report["verify"]["acked"].as_u64().unwrap() > 1000,
        "{}",
        report["verify"]
    );

    flood.kill().unwrap();
    flood.wait().unwrap();
    let text = metrics(server.admin);
    assert!(sample(&text, "tidegate_quic_handshakes") <= MAX_HANDSHAKES as f64);
}
