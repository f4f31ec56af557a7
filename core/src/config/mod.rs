//! The configuration of `tidegate serve`: one TOML file, `TIDEGATE_*`
//! environment variables and three command-line flags, merged in that
//! order of increasing precedence over documented defaults and, for the
//! write size and concurrency, the data directory's `disk.toml` written by
//! `tidegate tune disk`.
//!
//! [`ServeConfig::load`] is pure: the file path, the environment and the
//! flags are passed in, so every rule is testable without a process
//! environment. `docs/CONFIG.md` documents every key.
//!
//! ```
//! use std::collections::HashMap;
//! use tidegate_core::config::{Overrides, ServeConfig};
//!
//! let env = HashMap::from([("TIDEGATE_STORAGE__SEGMENT_BYTES".to_string(), "1GiB".to_string())]);
//! let config = ServeConfig::load(None, &env, &Overrides::default()).unwrap();
//! assert_eq!(config.storage.segment_bytes.bytes(), 1 << 30);
//! assert_eq!(config.listen.to_string(), "127.0.0.1:7441");
//! ```

mod disk;
mod error;
mod keys;
mod load;
mod prepare;
mod units;
mod validate;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tidegate_affinity::CoreSpec;
use tidegate_queue::{LogConfig, PrepareSegments};

/// `[auth]`: defined with the rules it configures, in `tidegate-auth`.
pub use tidegate_auth::AuthConfig;

pub use disk::DISK_FILE_NAME;
pub use error::{ConfigError, Origin};
pub use keys::{env_var_name, KeyKind, IGNORED_ENV_VARS, KEYS};
pub use load::Overrides;
pub use units::{Duration, Size, UnitError};

/// Default QUIC listen address.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7441));
/// Default admin HTTP listen address (health and metrics).
pub const DEFAULT_ADMIN_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7442));

/// Everything `tidegate serve` is configured with. Every field has a
/// documented default, so an empty file (or none) is a valid configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// Where topics, partition logs and metadata live. Default
    /// `./tidegate-data` (the systemd unit uses `/var/lib/tidegate`).
    pub data_dir: PathBuf,
    /// UDP address of the QUIC listener. Default `127.0.0.1:7441`.
    pub listen: SocketAddr,
    /// TCP address of the admin HTTP server (`/healthz`, `/readyz`,
    /// `/metrics`). Default `127.0.0.1:7442`.
    pub admin_listen: SocketAddr,
    /// Which CPUs run a shard: `all` or a CPU list such as `0-3,6`.
    pub cores: Cores,
    /// Log line format: `text` or `json`.
    pub log_format: LogFormat,
    /// Per-shard executor settings.
    pub shard: ShardConfig,
    /// TLS certificate and key.
    pub tls: TlsConfig,
    /// Partition log settings, the defaults of every topic.
    pub storage: StorageConfig,
    /// QUIC transport bounds.
    pub quic: QuicConfig,
    /// Memory and request bounds per shard.
    pub limits: LimitsConfig,
    /// Adaptive flow control (`docs/FLOW_CONTROL.md`).
    pub flow: FlowConfig,
    /// Idempotent producers (`docs/SEMANTICS.md` §2).
    pub producers: ProducersConfig,
    /// The bounds of each subscription's state per partition
    /// (`docs/SEMANTICS.md` §5).
    pub subscriptions: SubscriptionsConfig,
    /// Consumer groups' committed offsets (`docs/SEMANTICS.md` §4).
    pub groups: GroupsConfig,
    /// Authentication and access rules (`docs/SECURITY.md`).
    pub auth: AuthConfig,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            data_dir: PathBuf::from(crate::DEFAULT_DATA_DIR),
            listen: DEFAULT_LISTEN,
            admin_listen: DEFAULT_ADMIN_LISTEN,
            cores: Cores::default(),
            log_format: LogFormat::default(),
            shard: ShardConfig::default(),
            tls: TlsConfig::default(),
            storage: StorageConfig::default(),
            quic: QuicConfig::default(),
            limits: LimitsConfig::default(),
            flow: FlowConfig::default(),
            producers: ProducersConfig::default(),
            subscriptions: SubscriptionsConfig::default(),
            groups: GroupsConfig::default(),
            auth: AuthConfig::default(),
        }
    }
}

impl ServeConfig {
    /// The partition log configuration these settings give, before any
    /// per-topic override.
    pub fn log_config(&self) -> LogConfig {
        let s = &self.storage;
        LogConfig {
            segment_bytes_max: s.segment_bytes.bytes(),
            prepare_segments: s.prepare_segments,
            index_interval_bytes: s.index_interval_bytes.bytes(),
            write_chunk_bytes: s.write_chunk_bytes.bytes_usize(),
            write_concurrency: usize::try_from(s.write_concurrency).unwrap_or(usize::MAX),
            pending_bytes_max: s.pending_bytes_max.bytes_usize(),
            buffer_pool_bytes_max: s.buffer_pool_bytes_max.bytes_usize(),
            read_cache_bytes: s.read_cache_bytes.bytes_usize(),
            open_segments_max: usize::try_from(s.open_segments_max).unwrap_or(usize::MAX),
            retention_ms: s.retention.map(Duration::as_millis_u64),
            retention_bytes: s.retention_bytes.map(Size::bytes),
            producers_max: usize::try_from(self.producers.max_per_partition).unwrap_or(usize::MAX),
            producer_expiry_ms: self.producers.expiry.as_millis_u64(),
            reorder_wait: self.producers.reorder_wait.get(),
            ..LogConfig::default()
        }
    }

    /// The bounds of every subscription window; a subscription's own
    /// settings fill in the rest.
    pub fn window_defaults(&self) -> crate::subscription::WindowConfig {
        let s = &self.subscriptions;
        let usize_of = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
        crate::subscription::WindowConfig {
            window_max: u64::from(s.window_max),
            outstanding_max: usize_of(s.outstanding_max),
            delayed_max: usize_of(s.delayed_max),
            ..crate::subscription::WindowConfig::default()
        }
    }

    /// The effective configuration as TOML, for `tidegate serve
    /// --print-config`. Parsing the output gives an equal configuration.
    pub fn to_toml_string(&self) -> Result<String, ConfigError> {
        toml::to_string(self).map_err(|e| ConfigError::Print {
            message: e.to_string(),
        })
    }
}

/// The `cores` setting, kept as the string it is written as and validated
/// through [`CoreSpec`]: `all`, or a CPU list such as `0-3,6` (a bare `2`
/// is CPU 2, not two cores).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cores(CoreSpec);

impl Cores {
    /// The parsed setting.
    pub fn spec(&self) -> &CoreSpec {
        &self.0
    }
}

impl Default for Cores {
    fn default() -> Self {
        Cores(CoreSpec::All)
    }
}

impl FromStr for Cores {
    type Err = String;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        CoreSpec::parse(input)
            .map(Cores)
            .map_err(|e| format!("`{input}` is not `all` or a CPU list such as `0-3,6`: {e}"))
    }
}

impl TryFrom<String> for Cores {
    type Error = String;

    fn try_from(input: String) -> Result<Self, Self::Error> {
        input.parse()
    }
}

impl From<Cores> for String {
    fn from(cores: Cores) -> String {
        cores.to_string()
    }
}

impl fmt::Display for Cores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object per line, for journald and log shippers.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "`{other}` is not a log format: use `text` or `json`"
            )),
        }
    }
}

/// `[shard]`: settings of each shard's glommio executor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShardConfig {
    /// DMA memory glommio preallocates and registers with io_uring per
    /// shard. glommio registers it on three rings, so each shard locks three
    /// times this much against `RLIMIT_MEMLOCK` (8 MiB for a non-root user):
    /// the 1 MiB default fits any host. Raise it where `LimitMEMLOCK` allows
    /// (see `deploy/`): with 32 MiB, writes skip per-write page pinning, and
    /// docs/BENCHMARKS.md measured about +20% durable append throughput with
    /// 64 batches in flight.
    pub io_memory: Size,
}

impl Default for ShardConfig {
    fn default() -> Self {
        ShardConfig {
            io_memory: Size::mib(1),
        }
    }
}

/// `[tls]`: the server's certificate chain and private key, PEM files. Set
/// both or neither; with neither, a self-signed development certificate is
/// generated into the data directory.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain (PEM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

/// `[storage]`: the partition log, mirroring [`LogConfig`]; the defaults of
/// every topic, which a topic's own settings may override.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Largest segment file, at least 1MiB and below 4GiB. Default 256MiB.
    pub segment_bytes: Size,
    /// Zero-fill the next segment in the background while the active one
    /// fills, so durable appends do not convert preallocated blocks:
    /// `auto` (the default) with the disk's spare time only, `on`, `off`.
    #[serde(with = "prepare")]
    pub prepare_segments: PrepareSegments,
    /// One sparse index entry per this many bytes of batches. Default 4KiB.
    pub index_interval_bytes: Size,
    /// Size of each write of a group commit; a power-of-two multiple of
    /// 4KiB (O_DIRECT). Default 256KiB.
    pub write_chunk_bytes: Size,
    /// Writes of one log in flight at once. Default 8.
    pub write_concurrency: u32,
    /// Bytes accepted by one log but not yet written; appends wait above
    /// it. Default 64MiB.
    pub pending_bytes_max: Size,
    /// DMA buffers one log keeps for reuse. Default 8MiB.
    pub buffer_pool_bytes_max: Size,
    /// The newest written batches each partition keeps in memory, so that
    /// consumers at the tail are answered without a disk read; 0 turns it
    /// off. Default 4MiB.
    pub read_cache_bytes: Size,
    /// Sealed segment files each partition keeps open for reads, the most
    /// recently read; others are opened when read. The active segment's
    /// file is always open. 0 opens one for each read. Default 4.
    pub open_segments_max: u32,
    /// Delete sealed segments whose newest message is older than this.
    /// Default: none (keep forever).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<Duration>,
    /// Delete the oldest sealed segments while a partition is larger than
    /// this. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_bytes: Option<Size>,
    /// How often each shard applies retention. Default 30s.
    pub retention_check_interval: Duration,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            segment_bytes: Size::mib(256),
            prepare_segments: PrepareSegments::Auto,
            index_interval_bytes: Size::kib(4),
            write_chunk_bytes: Size::kib(256),
            write_concurrency: 8,
            pending_bytes_max: Size::mib(64),
            buffer_pool_bytes_max: Size::mib(8),
            read_cache_bytes: Size::mib(4),
            open_segments_max: 4,
            retention: None,
            retention_bytes: None,
            retention_check_interval: Duration::secs(30),
        }
    }
}

/// `[quic]`: bounds of the QUIC transport.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuicConfig {
    /// Connections the server accepts at once (all shards). Default 10000.
    pub max_connections: u32,
    /// Bidirectional streams, i.e. requests in flight, per connection.
    /// Times `stream_receive_window`, at most `connection_receive_window`.
    /// Default 16.
    pub max_concurrent_streams: u32,
    /// Bytes a peer may send on one stream before the server grants more.
    /// Default 1MiB.
    pub stream_receive_window: Size,
    /// Bytes a peer may send on one connection, all streams together,
    /// before the server grants more. Default 16MiB.
    pub connection_receive_window: Size,
    /// An admitted request must arrive whole within this; otherwise its
    /// stream is reset and its share of the window released, so a client
    /// that sends a header and never the body holds nothing. Default 10s.
    pub request_timeout: Duration,
    /// A connection with no traffic for this long is closed. Default 30s.
    pub idle_timeout: Duration,
    /// Ping interval that keeps an idle connection open; below
    /// `idle_timeout`. Default 5s.
    pub keep_alive: Duration,
    /// Send up to 32 datagrams per system call with UDP GSO when the kernel
    /// has it. Default true; false for comparison.
    pub gso: bool,
    /// Receive runs of datagrams per system call with UDP GRO when the
    /// kernel has it. Default true; false for comparison.
    pub gro: bool,
    /// UDP receive buffer each shard's socket asks for; the kernel caps it
    /// at `net.core.rmem_max`. Default 8MiB.
    pub socket_receive_buffer: Size,
    /// UDP send buffer each shard's socket asks for; capped at
    /// `net.core.wmem_max`. Default 8MiB.
    pub socket_send_buffer: Size,
    /// Connections (handshaking or open) from one source IP address, any
    /// port, server-wide; each shard takes ceil(value / shards), so with
    /// several shards one address may get up to shards - 1 more. More are
    /// refused. Default 100.
    pub max_connections_per_address: u32,
    /// Handshakes in flight (connections accepted, handshake not done),
    /// server-wide, each shard taking ceil(value / shards); more
    /// connections are refused. Default 1000.
    pub max_handshakes: u32,
    /// A connection still handshaking this long after it was accepted is
    /// closed. Default 10s.
    pub handshake_timeout: Duration,
    /// New handshakes per second each shard takes from client addresses not
    /// yet validated (burst: as many at once); beyond it they are answered
    /// with a stateless Retry, so a spoofed-source flood costs no state.
    /// 0 = always Retry. Default 200.
    pub retry_handshakes_per_s: u32,
}

impl Default for QuicConfig {
    fn default() -> Self {
        QuicConfig {
            max_connections: 10_000,
            max_concurrent_streams: 16,
            stream_receive_window: Size::mib(1),
            connection_receive_window: Size::mib(16),
            idle_timeout: Duration::secs(30),
            request_timeout: Duration::secs(10),
            keep_alive: Duration::secs(5),
            gso: true,
            gro: true,
            socket_receive_buffer: Size::mib(8),
            socket_send_buffer: Size::mib(8),
            max_connections_per_address: 100,
            max_handshakes: 1000,
            handshake_timeout: Duration::secs(10),
            retry_handshakes_per_s: 200,
        }
    }
}

/// `[flow]`: adaptive flow control (`docs/FLOW_CONTROL.md`): each shard
/// sizes its admission window so its produce latency stays near a target,
/// within `limits.shard_inflight_bytes_max`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlowConfig {
    /// Adapt the window; false keeps it at `limits.shard_inflight_bytes_max`
    /// (static limits, for comparison). Default true.
    pub enabled: bool,
    /// Produce latency at the shard (p90 of a control interval) the window
    /// is sized for. Below `control_interval`. Default 5ms.
    pub latency_target: Duration,
    /// How often each shard's controller adjusts the window. Default 100ms.
    pub control_interval: Duration,
    /// The queue of log writes each shard lets the disk hold, in time at
    /// the disk's measured throughput; the rest of the window waits in the
    /// shard, where a topic written to now and then goes first. `0s`
    /// lets every write through at once. Below `control_interval`.
    /// Default 5ms.
    pub disk_queue_target: Duration,
    /// fdatasyncs each shard lets the disk hold at once while the gate
    /// holds writes back; more wait in the shard, in fair order. Default 4.
    pub disk_syncs_max: u32,
    /// While the gate holds writes back, a topic written to now and then
    /// holds the others' writes back until its fdatasync may start,
    /// at most once per `disk_queue_target`: lower latency for sparse
    /// topics, at some throughput of the busy ones. Default false.
    pub disk_sync_barriers: bool,
    /// Smallest window: a shard always admits this much (and a request
    /// larger than the window alone). Default 128KiB: the bandwidth-delay
    /// product of a 25 MB/s disk at 5 ms.
    pub min_window: Size,
    /// Bytes each waiting connection may admit per round of the fair
    /// scheduler, times its weight. Default 256KiB.
    pub quantum: Size,
    /// Fetches a shard serves at once; more wait, so readers cannot take
    /// every request slot from producers. Default 256.
    pub max_fetches: u32,
    /// Fair-share weights by authenticated principal (`[flow.weights]`,
    /// `principal = 2`); others weigh 1.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub weights: std::collections::BTreeMap<String, u32>,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            enabled: true,
            latency_target: Duration::millis(5),
            control_interval: Duration::millis(100),
            disk_queue_target: Duration::millis(5),
            disk_syncs_max: 4,
            disk_sync_barriers: false,
            min_window: Size::kib(128),
            quantum: Size::kib(256),
            max_fetches: 256,
            weights: std::collections::BTreeMap::new(),
        }
    }
}

/// `[producers]`: what each partition remembers of idempotent producers
/// (`docs/SEMANTICS.md` §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProducersConfig {
    /// Producers a partition remembers; at the cap the one idle longest is
    /// forgotten. Default 10000.
    pub max_per_partition: u32,
    /// A producer idle this long is forgotten at the next segment roll.
    /// Default 24h.
    pub expiry: Duration,
    /// How long a batch that overtook its producer's earlier batches waits
    /// for them. Default 1s.
    pub reorder_wait: Duration,
}

impl Default for ProducersConfig {
    fn default() -> Self {
        ProducersConfig {
            max_per_partition: 10_000,
            expiry: Duration::secs(24 * 3600),
            reorder_wait: Duration::secs(1),
        }
    }
}

/// `[subscriptions]`: how much state one subscription keeps per partition
/// (`docs/SEMANTICS.md` §5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubscriptionsConfig {
    /// Widest span of offsets between a window's floor and its cursor;
    /// an unacked message this far behind stops the partition's reading.
    /// Default 65536.
    pub window_max: u32,
    /// Messages leased at once (and as many again from the delayed set).
    /// Default 10000.
    pub outstanding_max: u32,
    /// Messages read before their `tg-deliver-after` and not acked yet.
    /// Default 100000.
    pub delayed_max: u32,
    /// Push streams (StreamingPull) a shard serves at once; each holds at
    /// most its credits (8 MiB) of messages. Default 256.
    pub push_streams_max: u32,
}

impl Default for SubscriptionsConfig {
    fn default() -> Self {
        let d = crate::subscription::WindowConfig::default();
        SubscriptionsConfig {
            window_max: u32::try_from(d.window_max).unwrap_or(u32::MAX),
            outstanding_max: u32::try_from(d.outstanding_max).unwrap_or(u32::MAX),
            delayed_max: u32::try_from(d.delayed_max).unwrap_or(u32::MAX),
            push_streams_max: 256,
        }
    }
}

/// `[groups]`: consumer groups' committed offsets (`docs/SEMANTICS.md` §4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GroupsConfig {
    /// A group's committed offset in a partition is deleted once it is
    /// this old and the group has no members (Kafka's
    /// `offsets.retention.minutes`); checked every
    /// `storage.retention_check_interval`. Default 7d.
    pub offsets_retention: Duration,
}

impl Default for GroupsConfig {
    fn default() -> Self {
        GroupsConfig {
            offsets_retention: Duration::secs(7 * 24 * 3600),
        }
    }
}

/// `[limits]`: what one request and one shard may hold in memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request frame. Default 32MiB.
    pub max_request_bytes: Size,
    /// Request bytes a shard holds at once; above it the shard stops
    /// granting QUIC credit. Default 256MiB.
    pub shard_inflight_bytes_max: Size,
    /// Requests a shard holds at once. Default 4096.
    pub shard_inflight_requests_max: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_request_bytes: Size::mib(32),
            shard_inflight_bytes_max: Size::mib(256),
            shard_inflight_requests_max: 4096,
        }
    }
}
