//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;

/// Load generator and benchmark harness for tidegate: produces and
/// consumes at once, measures throughput and latency, and verifies every
/// message.
#[derive(Debug, Parser)]
#[command(
    name = "tidegate-loadgen",
    version,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show two `--json` reports side by side, with ratios B/A.
    Compare {
        a: PathBuf,
        b: PathBuf,
        /// Also plot both runs' latency spectra into this SVG.
        #[arg(long)]
        plot: Option<PathBuf>,
    },
    /// Flood a server's QUIC front door with handshakes that never
    /// complete (client Initials at a paced rate), to watch its Retry and
    /// handshake bounds at work (docs/SECURITY.md). Loopback only unless
    /// --allow-remote; bounded in rate and time.
    ///
    /// Example:
    ///   tidegate-loadgen flood --server 127.0.0.1:7441 --rate 20000 --duration 10s
    #[command(verbatim_doc_comment)]
    Flood {
        /// The server's QUIC address.
        #[arg(long, value_name = "ADDR")]
        server: SocketAddr,
        /// Initials per second (at most 100000).
        #[arg(long, default_value_t = 20_000)]
        rate: u32,
        /// How long (at most 300s).
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        duration: std::time::Duration,
        /// Allow a target that is not a loopback address.
        #[arg(long)]
        allow_remote: bool,
    },
}

/// How consumers read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Each consumer fetches its share of the partitions (offsets).
    Stream,
    /// Every consumer pulls from one subscription and acks each message
    /// (leases, durable acks; docs/SEMANTICS.md §5).
    Subscription,
    /// As `subscription`, but each consumer has the server push to it on
    /// one open stream (StreamingPull), giving credits back as its acks
    /// are answered.
    Push,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AckArg {
    None,
    Written,
    Durable,
}

impl From<AckArg> for tidegate_client::Ack {
    fn from(ack: AckArg) -> Self {
        match ack {
            AckArg::None => tidegate_client::Ack::None,
            AckArg::Written => tidegate_client::Ack::Written,
            AckArg::Durable => tidegate_client::Ack::Durable,
        }
    }
}

/// One run.
#[derive(Debug, Clone, Args, Serialize)]
pub struct RunArgs {
    /// The server (ignored with --spawn-server).
    #[arg(long, env = "TIDEGATE_SERVER", default_value = "127.0.0.1:7441")]
    pub server: SocketAddr,
    /// Verify the server's certificate against this CA (PEM).
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    pub ca: Option<PathBuf>,
    /// Trust any server certificate (development only).
    #[arg(long)]
    pub insecure: bool,
    /// Present this client certificate (PEM, with any intermediates) to a
    /// server that requires mutual TLS; needs --cert-key.
    #[arg(long, value_name = "FILE", requires = "cert_key")]
    pub cert: Option<PathBuf>,
    /// The private key of --cert (PEM).
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub cert_key: Option<PathBuf>,
    /// Authenticate every connection with this bearer token (a static
    /// token or a JWT). Never written to the report.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "TIDEGATE_TOKEN",
        hide_env_values = true
    )]
    #[serde(skip)]
    pub token: Option<tidegate_client::Credentials>,
    /// Start a local `tidegate serve` on a temporary data dir for the run
    /// and stop it afterwards. The server inherits TIDEGATE_* variables
    /// (e.g. TIDEGATE_CORES).
    #[arg(long)]
    pub spawn_server: bool,
    /// The `tidegate` binary for --spawn-server (default: next to this one).
    #[arg(long, value_name = "FILE")]
    pub server_bin: Option<PathBuf>,
    /// Where --spawn-server makes its temporary data dir (default: $TMPDIR).
    #[arg(long, value_name = "DIR")]
    pub spawn_dir: Option<PathBuf>,

    #[arg(long, default_value = "loadgen")]
    pub topic: String,
    /// Partitions of the topic (created if missing).
    #[arg(long, default_value_t = 1)]
    pub partitions: u32,
    #[arg(long, default_value_t = 1)]
    pub producers: u32,
    /// Consumers split the partitions between them (stream mode) or share
    /// one subscription (subscription mode); 0 measures produce only.
    #[arg(long, default_value_t = 1)]
    pub consumers: u32,
    /// How consumers read: fetching offsets, or pulling and acking from a
    /// subscription (created for the run, removed after it).
    #[arg(long, value_enum, default_value = "stream")]
    pub mode: Mode,
    /// QUIC connections the producers share (default: one each). Each
    /// consumer has its own.
    #[arg(long)]
    pub connections: Option<u32>,
    /// Payload bytes per message (at least 24: producer, sequence, time).
    #[arg(long, default_value_t = 100)]
    pub msg_size: usize,
    /// Messages per batch (per produce request).
    #[arg(long, default_value_t = 1000)]
    pub batch: u32,
    /// Open loop: how long a batch waits to fill before it is sent.
    #[arg(long, default_value = "1ms", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde_compat")]
    pub linger: Duration,
    /// Produce requests each producer keeps in flight, at most one per
    /// partition (so that each partition keeps the order batches were made);
    /// with `--idempotent`, up to 5 per partition, as the SDK's Producer
    /// (the server stores them in sequence order).
    #[arg(long, default_value_t = 4)]
    pub in_flight: u32,
    #[arg(long, value_enum, default_value = "durable")]
    pub ack: AckArg,
    /// Idempotent producers, as the SDK's Producer is by default: each
    /// producer gets an identity from the server and numbers its batches
    /// per partition, and the server checks every batch (docs/SEMANTICS.md
    /// §2). Off by default so that figures stay comparable with earlier
    /// runs.
    #[arg(long)]
    #[serde(default)]
    pub idempotent: bool,
    /// Open loop at this many messages per second in total; without it,
    /// closed loop (as fast as acknowledgements come back).
    #[arg(long, value_name = "MSGS_PER_S")]
    pub rate: Option<f64>,
    /// Measured time, after the warmup.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde_compat")]
    pub duration: Duration,
    /// Time before measuring starts (still verified).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde_compat")]
    pub warmup: Duration,
    /// How long consumers may take after the last acknowledgement to read
    /// everything (without progress) before the rest counts as lost.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde_compat")]
    pub drain_timeout: Duration,
    /// Pulls each subscriber keeps in flight (`--mode subscription`), as
    /// the stream consumer keeps a fetch in flight per partition.
    #[arg(long, default_value_t = 4)]
    pub pulls: u32,
    /// In `--mode subscription` and `--mode push`, also read the whole
    /// topic with one stream consumer in the same run, so that both
    /// consume rates come from one run (`stream_beside` in the report).
    #[arg(long)]
    #[serde(default)]
    pub with_stream: bool,
    /// Message credits of each subscriber's push stream (`--mode push`),
    /// given back as its acks are answered: what it has pushed and not
    /// yet acked, at most 100,000 (byte credits are 8 MiB).
    #[arg(long, default_value_t = 40_000)]
    pub push_credits: u32,
    /// Bytes a consumer asks for per fetch.
    #[arg(long, default_value_t = 1 << 20)]
    pub fetch_bytes: u32,
    /// Worker threads of loadgen's runtime (producers' pacing threads are
    /// extra).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Pin loadgen's threads to these CPUs (a list such as `1` or `2-3`),
    /// e.g. to keep them off a server's shard cores on the same host.
    #[arg(long, value_name = "LIST", value_parser = parse_cpus)]
    pub cpus: Option<CpuList>,
    /// Watch CPUs for platform hiccups: a thread on each sleeps 1 ms at a
    /// time and records how late it wakes, so the latency tail can be read
    /// beside the platform's own stalls. `all` (every CPU loadgen may run
    /// on, a spawned server's included), `none`, or a list such as `0-1`.
    #[arg(long, value_name = "all|none|LIST", default_value = "all", value_parser = parse_hiccups)]
    pub hiccups: HiccupCpus,
    /// Write the report as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Plot the latency percentile spectrum (SVG).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Plot the run over time (SVG): the acknowledged rate and the
    /// produce-to-ack p99 of each second.
    #[arg(long, value_name = "FILE")]
    pub plot_timeline: Option<PathBuf>,
}

/// A parsed `--cpus` list (a newtype: clap would take a bare `Vec` for a
/// repeated option).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct CpuList(pub Vec<usize>);

/// `--hiccups`: which CPUs to watch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HiccupCpus {
    All,
    None,
    List(CpuList),
}

impl HiccupCpus {
    /// The CPUs to watch (`All`: the ones this process may run on).
    pub fn resolve(&self) -> Result<Vec<usize>, tidegate_affinity::AffinityError> {
        match self {
            HiccupCpus::All => tidegate_affinity::allowed_cpus(),
            HiccupCpus::None => Ok(Vec::new()),
            HiccupCpus::List(list) => Ok(list.0.clone()),
        }
    }
}

fn parse_hiccups(value: &str) -> Result<HiccupCpus, String> {
    match value {
        "all" => Ok(HiccupCpus::All),
        "none" => Ok(HiccupCpus::None),
        list => parse_cpus(list).map(HiccupCpus::List),
    }
}

fn parse_cpus(list: &str) -> Result<CpuList, String> {
    tidegate_affinity::parse_cpu_list(list)
        .map(CpuList)
        .map_err(|e| e.to_string())
}

/// Durations as humantime strings ("10s") in the report's config.
mod humantime_serde_compat {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

/// The payload header every message carries; `--msg-size` must hold it.
pub const MIN_MSG_SIZE: usize = crate::payload::HEADER_LEN;

impl RunArgs {
    /// Checks what clap cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.msg_size < MIN_MSG_SIZE {
            return Err(format!("--msg-size must be at least {MIN_MSG_SIZE}"));
        }
        if self.partitions == 0 || self.producers == 0 || self.batch == 0 || self.in_flight == 0 {
            return Err(
                "--partitions, --producers, --batch and --in-flight must be positive".into(),
            );
        }
        if self.pulls == 0 {
            return Err("--pulls must be positive".into());
        }
        if !(1..=tidegate_client::MAX_PUSH_CREDIT_MESSAGES).contains(&self.push_credits) {
            return Err(format!(
                "--push-credits must be within 1..={}",
                tidegate_client::MAX_PUSH_CREDIT_MESSAGES
            ));
        }
        if self.connections == Some(0) {
            return Err("--connections must be positive".into());
        }
        if self.threads == 0 {
            return Err("--threads must be positive".into());
        }
        if let Some(rate) = self.rate {
            if !(rate.is_finite() && rate > 0.0) {
                return Err("--rate must be a positive number".into());
            }
        }
        if self.duration.is_zero() {
            return Err("--duration must be positive".into());
        }
        Ok(())
    }

    /// `tls` with the client certificate of `--cert`/`--cert-key`, if given.
    pub fn client_tls(&self, tls: tidegate_client::Tls) -> tidegate_client::Tls {
        match (&self.cert, &self.cert_key) {
            (Some(cert), Some(key)) => tls.client_cert(cert, key),
            _ => tls,
        }
    }

    /// The credentials of `--token` / `TIDEGATE_TOKEN`; an empty token
    /// counts as none.
    pub fn credentials(&self) -> Option<tidegate_client::Credentials> {
        self.token.clone().filter(|token| !token.is_empty())
    }

    /// QUIC connections for the producers: one each unless
    /// `--connections` says fewer.
    pub fn connections(&self) -> u32 {
        self.connections
            .unwrap_or(self.producers)
            .clamp(1, self.producers.max(1))
    }

    /// The connection producer `id` sends on: producers are dealt over
    /// the connections in turn.
    pub fn connection_of(&self, id: u32) -> u32 {
        id % self.connections()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use clap::Parser;

    use super::Cli;

    fn args(line: &[&str]) -> super::RunArgs {
        let cli =
            Cli::try_parse_from(std::iter::once("tidegate-loadgen").chain(line.iter().copied()));
        cli.unwrap().run
    }

    #[test]
    fn each_producer_has_its_own_connection_by_default() {
        let a = args(&["--producers", "2"]);
        assert_eq!(a.connections(), 2);
        assert_eq!((a.connection_of(0), a.connection_of(1)), (0, 1));
    }

    #[test]
    fn producers_are_dealt_over_fewer_connections() {
        let a = args(&["--producers", "3", "--connections", "2"]);
        assert_eq!(a.connections(), 2);
        let of: Vec<u32> = (0..3).map(|id| a.connection_of(id)).collect();
        assert_eq!(of, [0, 1, 0]);
        // More connections than producers would leave some idle.
        let a = args(&["--producers", "2", "--connections", "8"]);
        assert_eq!(a.connections(), 2);
    }

    #[test]
    fn hiccups_watch_every_cpu_by_default_none_or_a_list() {
        use super::{CpuList, HiccupCpus};
        assert_eq!(args(&[]).hiccups, HiccupCpus::All);
        assert_eq!(args(&["--hiccups", "none"]).hiccups, HiccupCpus::None);
        assert_eq!(
            args(&["--hiccups", "0,2-3"]).hiccups,
            HiccupCpus::List(CpuList(vec![0, 2, 3]))
        );
        assert!(HiccupCpus::None.resolve().unwrap().is_empty());
        assert!(!HiccupCpus::All.resolve().unwrap().is_empty());
        let bad = Cli::try_parse_from(["tidegate-loadgen", "--hiccups", "some"]);
        assert!(bad.is_err());
    }
}
