//! `tidegate tune disk`: an iotune-like probe of the data directory's disk.
//!
//! It measures what the partition log does: O_DIRECT sequential writes
//! into a preallocated file through glommio (the server's I/O path), across
//! write sizes and writes in flight, and the latency of the fdatasync a
//! durable append waits for. The result picks `storage.write_chunk_bytes`
//! and `storage.write_concurrency`, which [`write_disk_toml`] stores as the
//! `[disk]` section of `DATA_DIR/disk.toml` for `tidegate serve`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt as _};
use glommio::io::{DmaFile, OpenOptions};
use glommio::{LocalExecutorBuilder, Placement};
use serde::Serialize;

use crate::error::TuneError;

/// Write sizes tried by default: the range the log's chunk size is sensible
/// in (below 64 KiB the per-write overhead dominates on any SSD; above
/// 1 MiB a chunk only adds latency to the batches that wait for it).
pub const BLOCK_SIZES_DEFAULT: [usize; 5] = [64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20];
/// Writes in flight tried by default.
pub const DEPTHS_DEFAULT: [usize; 5] = [1, 2, 4, 8, 16];
/// fdatasync rounds by default: enough for a p99 that means something,
/// few enough to take about a second on a drive with a volatile cache.
pub const SYNC_SAMPLES_DEFAULT: usize = 200;
/// Size of the write before each measured fdatasync, the log's default
/// chunk halved: a typical group commit under light load.
pub const SYNC_WRITE_BYTES: usize = 128 << 10;
/// A pair within this share of the best bandwidth counts as the best.
const GOOD_ENOUGH: f64 = 0.95;
/// O_DIRECT alignment, as in the log (covers 512 B and 4 KiB devices).
const BLOCK_ALIGN: usize = 4096;
/// glommio's registered I/O memory for the probe's executor; larger
/// buffers come from the heap, as in a server with the default setting.
const IO_MEMORY_BYTES: usize = 1 << 20;

/// What to measure, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeConfig {
    /// Directory on the disk to probe; the probe's file is created in it
    /// and removed afterwards.
    pub dir: PathBuf,
    /// Bytes written per (block size, depth) cell.
    pub size_bytes: u64,
    /// Write sizes, each a power-of-two multiple of 4 KiB.
    pub block_sizes: Vec<usize>,
    /// Writes in flight, each at least 1.
    pub depths: Vec<usize>,
    /// fdatasync rounds, at least 1.
    pub sync_samples: usize,
}

impl ProbeConfig {
    /// The default grid and sample count for `dir` and `size_bytes`.
    pub fn new(dir: impl Into<PathBuf>, size_bytes: u64) -> Self {
        ProbeConfig {
            dir: dir.into(),
            size_bytes,
            block_sizes: BLOCK_SIZES_DEFAULT.to_vec(),
            depths: DEPTHS_DEFAULT.to_vec(),
            sync_samples: SYNC_SAMPLES_DEFAULT,
        }
    }

    fn check(&self) -> Result<(), TuneError> {
        let bad = |message: String| {
            Err(TuneError::ProbeConfig {
                dir: self.dir.clone(),
                message,
            })
        };
        if self.block_sizes.is_empty() || self.depths.is_empty() || self.sync_samples == 0 {
            return bad("needs at least one block size, one depth and one fdatasync sample".into());
        }
        if let Some(b) = self
            .block_sizes
            .iter()
            .find(|&&b| b == 0 || b % BLOCK_ALIGN != 0 || !(b / BLOCK_ALIGN).is_power_of_two())
        {
            return bad(format!(
                "block size {b} B is not a power-of-two multiple of 4KiB"
            ));
        }
        if self.depths.contains(&0) {
            return bad("a depth of 0 writes nothing".into());
        }
        let largest = self.block_sizes.iter().max().copied().unwrap_or(0) as u64;
        if self.size_bytes < largest {
            return bad(format!(
                "size {} is below the largest block size {}",
                format_size(self.size_bytes),
                format_size(largest)
            ));
        }
        Ok(())
    }
}

/// Sequential write bandwidth of one (block size, depth) cell.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BandwidthCell {
    /// Bytes per write.
    pub block_bytes: usize,
    /// Writes in flight.
    pub depth: usize,
    /// Decimal megabytes (10^6 B) per second, the final fdatasync included.
    pub mb_per_s: f64,
}

/// fdatasync latency after a [`SYNC_WRITE_BYTES`] write, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SyncLatency {
    /// Rounds measured.
    pub samples: usize,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Slowest round.
    pub max_us: u64,
}

/// Everything the probe measured and what it chose.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeReport {
    /// Bytes written per cell.
    pub size_bytes: u64,
    /// One cell per (block size, depth), block sizes outer, both ascending
    /// in the order given.
    pub cells: Vec<BandwidthCell>,
    /// fdatasync latency.
    pub fdatasync: SyncLatency,
    /// The chosen cell: see [`choose`].
    pub best: BandwidthCell,
}

/// Runs the probe on its own glommio executor thread (the calling thread
/// may be anything, even another executor's).
pub fn probe(config: &ProbeConfig) -> Result<ProbeReport, TuneError> {
    config.check()?;
    let config = ProbeConfig {
        // glommio opens with `openat(-1, path)`: relative paths fail.
        dir: std::path::absolute(&config.dir).map_err(|source| TuneError::Read {
            path: config.dir.clone(),
            source,
        })?,
        ..config.clone()
    };
    let dir = config.dir.clone();
    let failed = |message: String| TuneError::Probe {
        path: dir.clone(),
        op: "executor",
        message,
    };
    let handle = LocalExecutorBuilder::new(Placement::Unbound)
        .name("tune-disk")
        .io_memory(IO_MEMORY_BYTES)
        .spawn(move || async move { run(&config).await })
        .map_err(|e| failed(format!("starting: {e}")))?;
    handle.join().map_err(|e| failed(e.to_string()))?
}

/// Removes the probe's file when dropped, so an error or a panic halfway
/// leaves nothing behind.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn run(config: &ProbeConfig) -> Result<ProbeReport, TuneError> {
    // The pid keeps two probes of one directory apart.
    let path = config
        .dir
        .join(format!(".tidegate-disk-probe-{}.tmp", std::process::id()));
    let _guard = RemoveOnDrop(path.clone());
    let mut cells = Vec::with_capacity(config.block_sizes.len() * config.depths.len());
    for &block_bytes in &config.block_sizes {
        for &depth in &config.depths {
            let elapsed = write_cell(&path, config.size_bytes, block_bytes, depth).await?;
            let written = config.size_bytes / block_bytes as u64 * block_bytes as u64;
            cells.push(BandwidthCell {
                block_bytes,
                depth,
                mb_per_s: written as f64 / 1e6 / elapsed.as_secs_f64().max(1e-9),
            });
        }
    }
    let fdatasync = sync_latency(&path, config.sync_samples).await?;
    let best = choose(&cells).ok_or_else(|| TuneError::Probe {
        path: path.clone(),
        op: "choose",
        message: "no cell was measured".into(),
    })?;
    Ok(ProbeReport {
        size_bytes: config.size_bytes,
        cells,
        fdatasync,
        best,
    })
}

/// The cell to configure: among those within 5% of the highest bandwidth,
/// the one with the fewest bytes in flight (block × depth), then the
/// smaller block. Smaller chunks and fewer writes in flight cost less DMA
/// memory per partition and less latency for the batches waiting on a
/// chunk; 5% is within run-to-run noise of most drives.
pub fn choose(cells: &[BandwidthCell]) -> Option<BandwidthCell> {
    let top = cells.iter().map(|c| c.mb_per_s).fold(f64::NAN, f64::max);
    cells
        .iter()
        .filter(|c| c.mb_per_s >= top * GOOD_ENOUGH)
        .min_by_key(|c| (c.block_bytes * c.depth, c.block_bytes, c.depth))
        .copied()
}

/// A fresh file preallocated to `len` (size set, as the log does: writes
/// past the end of a file would each need a metadata update).
async fn create_preallocated(path: &Path, len: u64) -> Result<Rc<DmaFile>, TuneError> {
    let io = |op: &'static str| {
        move |e: glommio::GlommioError<()>| TuneError::Probe {
            path: path.to_path_buf(),
            op,
            message: e.to_string(),
        }
    };
    let _ = std::fs::remove_file(path);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .dma_open(path)
        .await
        .map_err(io("open (O_DIRECT)"))?;
    file.pre_allocate(len, false)
        .await
        .map_err(io("fallocate"))?;
    Ok(Rc::new(file))
}

fn write_error(path: &Path, op: &'static str) -> impl Fn(glommio::GlommioError<()>) -> TuneError {
    let path = path.to_path_buf();
    move |e| TuneError::Probe {
        path: path.clone(),
        op,
        message: e.to_string(),
    }
}

/// Writes `size_bytes` (rounded down to whole blocks) sequentially with
/// `depth` writes in flight, then fdatasyncs: the time of it all. The sync
/// is timed too, so a volatile write cache cannot flatter a cell with
/// bytes it has not stored yet.
async fn write_cell(
    path: &Path,
    size_bytes: u64,
    block_bytes: usize,
    depth: usize,
) -> Result<Duration, TuneError> {
    let blocks = size_bytes / block_bytes as u64;
    // A fresh file per cell, so every cell writes into unwritten extents
    // as a new segment does, not over blocks an earlier cell wrote.
    let file = create_preallocated(path, blocks * block_bytes as u64).await?;
    let mut buf = file.alloc_dma_buffer(block_bytes);
    // Not zeros, in case a device compresses or skips zero blocks.
    buf.as_bytes_mut().fill(0x5a);
    // Every write sends the same buffer: the kernel only reads it.
    let buf = Rc::new(buf);
    let started = Instant::now();
    let mut in_flight = FuturesUnordered::new();
    let mut next = 0u64;
    let mut done = 0u64;
    while done < blocks {
        while next < blocks && in_flight.len() < depth {
            let (file, buf) = (file.clone(), buf.clone());
            let pos = next * block_bytes as u64;
            in_flight.push(async move { file.write_rc_at(buf, pos).await });
            next += 1;
        }
        match in_flight.next().await {
            Some(Ok(n)) if n == block_bytes => done += 1,
            Some(Ok(n)) => {
                return Err(TuneError::Probe {
                    path: path.to_path_buf(),
                    op: "write",
                    message: format!("short write: {n} of {block_bytes} bytes (disk full?)"),
                })
            }
            Some(Err(e)) => return Err(write_error(path, "write")(e)),
            None => break,
        }
    }
    file.fdatasync()
        .await
        .map_err(write_error(path, "fdatasync"))?;
    let elapsed = started.elapsed();
    let _ = file.close_rc().await;
    Ok(elapsed)
}

/// `samples` rounds of "write one block, fdatasync", timing the fdatasync.
async fn sync_latency(path: &Path, samples: usize) -> Result<SyncLatency, TuneError> {
    let len = (samples * SYNC_WRITE_BYTES) as u64;
    let file = create_preallocated(path, len).await?;
    let mut buf = file.alloc_dma_buffer(SYNC_WRITE_BYTES);
    buf.as_bytes_mut().fill(0x5a);
    let buf = Rc::new(buf);
    let mut us = Vec::with_capacity(samples);
    for i in 0..samples {
        let pos = (i * SYNC_WRITE_BYTES) as u64;
        file.write_rc_at(buf.clone(), pos)
            .await
            .map_err(write_error(path, "write"))?;
        let started = Instant::now();
        file.fdatasync()
            .await
            .map_err(write_error(path, "fdatasync"))?;
        us.push(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
    }
    let _ = file.close_rc().await;
    Ok(percentiles(us))
}

/// Nearest-rank percentiles of a few hundred samples: sorting them is
/// simpler than a histogram and exact.
fn percentiles(mut us: Vec<u64>) -> SyncLatency {
    us.sort_unstable();
    let at = |p: f64| {
        let rank = (p * us.len() as f64).ceil() as usize;
        us.get(rank.saturating_sub(1)).copied().unwrap_or(0)
    };
    SyncLatency {
        samples: us.len(),
        p50_us: at(0.50),
        p90_us: at(0.90),
        p99_us: at(0.99),
        max_us: us.last().copied().unwrap_or(0),
    }
}

/// A size the way the server configuration writes it: the largest binary
/// unit that divides it exactly (`256KiB`, `1MiB`, `4096B`).
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
        (1, "B"),
    ];
    let (factor, unit) = UNITS
        .iter()
        .copied()
        .find(|(f, _)| bytes != 0 && bytes % f == 0)
        .unwrap_or((1, "B"));
    format!("{}{unit}", bytes / factor)
}

/// The table of MB/s by block size (rows) and depth (columns), each line
/// prefixed with `prefix` (`# ` inside disk.toml).
pub fn bandwidth_table(report: &ProbeReport, prefix: &str) -> String {
    // Rows and columns in the order measured.
    let (mut blocks, mut depths) = (Vec::new(), Vec::new());
    for c in &report.cells {
        if !blocks.contains(&c.block_bytes) {
            blocks.push(c.block_bytes);
        }
        if !depths.contains(&c.depth) {
            depths.push(c.depth);
        }
    }
    let mut out = format!("{prefix}{:<14}", "block \\ depth");
    for d in &depths {
        out += &format!("{d:>8}");
    }
    out.push('\n');
    for b in blocks {
        out += &format!("{prefix}{:<14}", format_size(b as u64));
        for &d in &depths {
            let cell = report
                .cells
                .iter()
                .find(|c| c.block_bytes == b && c.depth == d);
            match cell {
                Some(c) => out += &format!("{:>8.0}", c.mb_per_s),
                None => out += &format!("{:>8}", "-"),
            }
        }
        out.push('\n');
    }
    out
}

/// The text of `disk.toml`: comments with the measurements and the date
/// (`now`, RFC 3339), then the `[disk]` section `tidegate serve` reads.
pub fn disk_toml(report: &ProbeReport, now: &str) -> String {
    let s = &report.fdatasync;
    let b = &report.best;
    format!(
        "# Written by `tidegate tune disk` on {now}. `tidegate serve` reads this file\n\
         # from its data directory; storage.write_chunk_bytes and\n\
         # storage.write_concurrency set in the config file, a TIDEGATE_* variable\n\
         # or a flag win over it. Rerun the probe after changing the disk.\n\
         #\n\
         # O_DIRECT sequential writes, MB/s, {size} per cell (final fdatasync included):\n\
         {table}\
         # fdatasync after a {sync} write, {n} samples: p50 {p50} us, p90 {p90} us, \
         p99 {p99} us, max {max} us\n\
         # Chosen: the fewest bytes in flight within 5% of the best ({mb:.0} MB/s).\n\
         \n\
         [disk]\n\
         write_chunk_bytes = \"{chunk}\"\n\
         write_concurrency = {depth}\n",
        size = format_size(report.size_bytes),
        table = bandwidth_table(report, "#   "),
        sync = format_size(SYNC_WRITE_BYTES as u64),
        n = s.samples,
        p50 = s.p50_us,
        p90 = s.p90_us,
        p99 = s.p99_us,
        max = s.max_us,
        mb = b.mb_per_s,
        chunk = format_size(b.block_bytes as u64),
        depth = b.depth,
    )
}

/// The current time as RFC 3339 UTC to the second, for [`disk_toml`].
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Writes `dir/disk.toml` atomically (temporary file, fsync, rename,
/// directory fsync), creating `dir` if needed, so the server never reads
/// half a file. Returns the path written.
pub fn write_disk_toml(dir: &Path, text: &str) -> Result<PathBuf, TuneError> {
    let path = dir.join("disk.toml");
    let tmp = dir.join("disk.toml.tmp");
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TuneError::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(write_err(dir))?;
    let mut file = std::fs::File::create(&tmp).map_err(write_err(&tmp))?;
    file.write_all(text.as_bytes()).map_err(write_err(&tmp))?;
    file.sync_all().map_err(write_err(&tmp))?;
    drop(file);
    std::fs::rename(&tmp, &path).map_err(write_err(&path))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(write_err(dir))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn cell(block_kib: usize, depth: usize, mb_per_s: f64) -> BandwidthCell {
        BandwidthCell {
            block_bytes: block_kib << 10,
            depth,
            mb_per_s,
        }
    }

    #[test]
    fn choice_is_the_fewest_bytes_in_flight_within_five_percent_of_the_best() {
        let cells = [
            cell(64, 1, 500.0),
            cell(64, 4, 960.0),
            cell(256, 1, 955.0),
            cell(256, 4, 1000.0),
            cell(1024, 1, 990.0),
        ];
        // 64KiB×4 = 256KiB in flight ties 256KiB×1; the smaller block wins.
        assert_eq!(choose(&cells), Some(cells[1]));
        assert_eq!(choose(&[]), None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let s = percentiles((1..=100).rev().collect());
        assert_eq!((s.p50_us, s.p90_us, s.p99_us, s.max_us), (50, 90, 99, 100));
        assert_eq!(percentiles(vec![7]).p99_us, 7);
    }

    #[test]
    fn sizes_are_written_in_config_units() {
        assert_eq!(format_size(256 << 10), "256KiB");
        assert_eq!(format_size(1 << 20), "1MiB");
        assert_eq!(format_size(4097), "4097B");
    }

    #[test]
    fn probe_measures_every_cell_and_removes_its_file() {
        // Under target/, not /tmp: glommio needs O_DIRECT, which tmpfs
        // may refuse; the target dir is on the build's disk.
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tune-disk-test");
        std::fs::create_dir_all(&base).unwrap();
        let dir = tempfile::tempdir_in(&base).unwrap();
        let config = ProbeConfig {
            dir: dir.path().to_path_buf(),
            size_bytes: 4 << 20,
            block_sizes: vec![64 << 10, 256 << 10],
            depths: vec![1, 4],
            sync_samples: 5,
        };
        let report = probe(&config).unwrap();
        assert_eq!(report.cells.len(), 4);
        for c in &report.cells {
            assert!(c.mb_per_s > 0.0, "{c:?}");
        }
        assert!(report.cells.contains(&report.best));
        let s = report.fdatasync;
        assert_eq!(s.samples, 5);
        assert!(s.p50_us <= s.p90_us && s.p90_us <= s.p99_us && s.p99_us <= s.max_us);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "probe left {left:?}");

        let text = disk_toml(&report, "2026-01-01T00:00:00Z");
        let path = write_disk_toml(&dir.path().join("data"), &text).unwrap();
        assert_eq!(std::fs::read_to_string(path).unwrap(), text);
        assert!(text.contains(&format!(
            "write_chunk_bytes = \"{}\"",
            format_size(report.best.block_bytes as u64)
        )));
    }

    #[test]
    fn probe_refuses_a_grid_it_cannot_write() {
        let mut config = ProbeConfig::new("/nonexistent", 1 << 20);
        config.block_sizes = vec![100_000];
        assert!(matches!(probe(&config), Err(TuneError::ProbeConfig { .. })));
    }
}
