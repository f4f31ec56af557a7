//! Host checks, safe fixes and the disk probe behind `tidegate tune`.
//!
//! Everything reads the host through a [`Host`], whose `/proc` and `/sys`
//! roots are injectable, so the checks run against fixture trees in tests.
//! The two inputs that cannot come from files are passed in explicitly:
//! what the server configuration asks for ([`Expectations`]) and the result
//! of live probes such as `io_uring_setup` ([`Probes`]).
//!
//! - [`check`] gives one [`Finding`] per item, never an error: a missing
//!   file (a container without `/sys/class/net`, a host without NVMe) is an
//!   `ok`/"unknown" finding.
//! - [`plan`] gives the safe changes (sysctls, the block I/O scheduler) as
//!   [`Change`]s; [`apply`] writes them. Both are idempotent: a value that
//!   is already right gives no change.
//! - [`probe`] measures the data directory's disk (`tune disk`) and
//!   [`disk_toml`] / [`write_disk_toml`] store what it chose for the server.

#![warn(missing_docs)]

mod cpu;
mod disk;
mod error;
mod finding;
mod host;
mod io_uring;
mod irq;
mod limits;
mod memory;
mod net;
mod plan;
mod probe;

pub use disk::block_device_of;
pub use error::TuneError;
pub use finding::{Finding, Severity, Summary};
pub use host::Host;
pub use io_uring::probe_io_uring;
pub use plan::{apply, effective_uid, plan, require_root, Change};
pub use probe::{
    bandwidth_table, choose, disk_toml, format_size, now_rfc3339, probe, write_disk_toml,
    BandwidthCell, ProbeConfig, ProbeReport, SyncLatency, BLOCK_SIZES_DEFAULT, DEPTHS_DEFAULT,
    SYNC_SAMPLES_DEFAULT, SYNC_WRITE_BYTES,
};

/// What the server configuration asks of the host. A plain struct so the
/// CLI can fill it from a config file or from the documented defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectations {
    /// The CPUs that run a shard; `None` means every online CPU (the
    /// server's `cores = "all"`).
    pub shard_cores: Option<Vec<usize>>,
    /// The UDP socket buffer the QUIC listener asks for, in bytes (the
    /// larger of `quic.socket_receive_buffer` and `socket_send_buffer`).
    /// Default [`UDP_BUFFER_BYTES_DEFAULT`], the server's default.
    pub udp_buffer_bytes: u64,
    /// Block devices (names under `/sys/block`, e.g. `nvme0n1`) holding the
    /// data directory; empty means "every NVMe namespace".
    pub data_devices: Vec<String>,
    /// Smallest acceptable `RLIMIT_MEMLOCK` soft limit, in bytes.
    pub memlock_bytes_min: u64,
    /// Smallest acceptable `RLIMIT_NOFILE` soft limit.
    pub nofile_min: u64,
}

/// 8 MiB: enough to absorb a burst of a few thousand full-size QUIC
/// datagrams while a shard is busy, the size quinn and quic-go document.
pub const UDP_BUFFER_BYTES_DEFAULT: u64 = 8 << 20;
/// 64 MiB: glommio registers each shard's `io_memory` (1 MiB by default)
/// and, on kernels before 5.12, the io_uring rings against `RLIMIT_MEMLOCK`.
pub const MEMLOCK_BYTES_MIN_DEFAULT: u64 = 64 << 20;
/// Segment and index files of every partition, plus sockets and the admin
/// server, stay open for the life of the server.
pub const NOFILE_MIN_DEFAULT: u64 = 65_536;

impl Default for Expectations {
    fn default() -> Self {
        Expectations {
            shard_cores: None,
            udp_buffer_bytes: UDP_BUFFER_BYTES_DEFAULT,
            data_devices: Vec::new(),
            memlock_bytes_min: MEMLOCK_BYTES_MIN_DEFAULT,
            nofile_min: NOFILE_MIN_DEFAULT,
        }
    }
}

/// The shard cores of a server `cores` setting: `None` for `all`, else
/// the CPU list (`0-3,6`).
pub fn shard_cores_from_spec(spec: &str) -> Result<Option<Vec<usize>>, TuneError> {
    match tidegate_affinity::CoreSpec::parse(spec) {
        Ok(tidegate_affinity::CoreSpec::All) => Ok(None),
        Ok(tidegate_affinity::CoreSpec::List(cpus)) => Ok(Some(cpus)),
        Err(e) => Err(TuneError::Cores {
            spec: spec.to_owned(),
            message: e.to_string(),
        }),
    }
}

/// Results of live probes, which cannot be read from a fixture tree: tests
/// pass fixed values, the CLI passes [`Probes::run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probes {
    /// Whether `io_uring_setup` succeeded in this process; the error text
    /// when it did not.
    pub io_uring: Result<(), String>,
}

impl Probes {
    /// Runs every probe on this host.
    pub fn run() -> Self {
        Probes {
            io_uring: probe_io_uring(),
        }
    }
}

/// Checks the host against what tidegate needs: one finding per item, in a
/// stable order (io_uring, limits, CPU, IRQs, network, disks, memory).
pub fn check(host: &Host, expect: &Expectations, probes: &Probes) -> Vec<Finding> {
    let mut findings = Vec::new();
    findings.extend(io_uring::check(host, probes));
    findings.extend(limits::check(host, expect));
    let cpus = cpu::CpuContext::read(host, expect);
    findings.extend(cpu::check(host, &cpus));
    findings.extend(irq::check(host, &cpus));
    findings.extend(net::check(host, expect, &cpus));
    findings.extend(disk::check(host, expect));
    findings.extend(memory::check(host));
    findings
}
