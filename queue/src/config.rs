//! Log configuration, with the bounds the log enforces.

use std::time::Duration;

use crate::LogError;

/// How one partition log behaves. Every size is in bytes.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Largest segment file; a batch that would overflow it starts a new one.
    pub segment_bytes_max: u64,
    /// Preallocate each new segment to `segment_bytes_max` (fallocate), so
    /// appends do not allocate extents one write at a time.
    pub preallocate: bool,
    /// Whether to prepare the next segment in the background while the
    /// active one fills: write zeros over it, so appends to it overwrite
    /// written blocks instead of converting preallocated ones (a metadata
    /// write in each fdatasync). Costs a second write of every segment byte
    /// and a segment of disk per filling partition.
    pub prepare_segments: PrepareSegments,
    /// One sparse index entry per this many bytes of batches.
    pub index_interval_bytes: u64,
    /// Size of the writes one group commit is split into.
    pub write_chunk_bytes: usize,
    /// How many of those writes are in flight at once.
    pub write_concurrency: usize,
    /// Bytes accepted but not yet written; `append` waits above it.
    pub pending_bytes_max: usize,
    /// DMA buffers kept for reuse after their write completes.
    pub buffer_pool_bytes_max: usize,
    /// Checkpoint the active segment's index each time this many more bytes
    /// are durable. Recovery trusts data below the last checkpoint and
    /// reports damage there as corruption; past it, damage reads as an
    /// unfinished write and is cut. Smaller means less data in that window,
    /// at the cost of a small atomic file write (two fsyncs) each time.
    pub checkpoint_interval_bytes: u64,
    /// Delete sealed segments whose newest message is older than this.
    pub retention_ms: Option<u64>,
    /// Delete the oldest sealed segments while the log is larger than this.
    pub retention_bytes: Option<u64>,
    /// Verify each batch's CRC when it is read back from disk.
    pub verify_reads: bool,
    /// The newest written batches kept in memory, so that readers at the
    /// tail are answered without a disk read (0 turns it off). Each
    /// partition holds up to this much.
    pub read_cache_bytes: usize,
    /// Sealed segment files kept open for reads, the most recently read;
    /// a read of another opens its file and closes the one read longest
    /// ago. The active segment's file is always open, so between rolls a
    /// log holds this many descriptors plus two (the active segment and a
    /// prepared one), plus one for each read in flight in a segment that
    /// is not kept. 0 opens a sealed segment's file for each read.
    pub open_segments_max: usize,
    /// Idempotent producers the partition remembers; at the cap the one
    /// idle longest is forgotten (docs/SEMANTICS.md §2).
    pub producers_max: usize,
    /// A producer idle this long is forgotten at the next segment roll.
    pub producer_expiry_ms: u64,
    /// How long a producer's batch that arrives ahead of its predecessors
    /// waits for them before it is refused as out of order.
    pub reorder_wait: Duration,
    /// Message-id deduplication (docs/SEMANTICS.md §6): a record whose
    /// `tg-msg-id` was seen within this many milliseconds is stored as a
    /// duplicate marker. `None` (the default) turns it off.
    pub dedup_window_ms: Option<u64>,
    /// Most message ids the partition remembers; at the cap the oldest
    /// goes first.
    pub dedup_ids_max: usize,
}

/// When a log zero-fills its next segment ([`LogConfig::prepare_segments`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PrepareSegments {
    /// Never: each new segment is only preallocated.
    #[default]
    Off,
    /// Always, whatever else the disk is doing.
    On,
    /// With the time the appends leave the disk, for logs that fill their
    /// segment within a minute: a chunk of zeros is written only after a
    /// round of appends none of which waited at the shard's write gate (the
    /// disk's queue was never at its target). On a disk whose bandwidth is
    /// the limit the zeros wait and the roll takes an unprepared segment;
    /// on one with room to spare they are written, as with `On`. A gate
    /// without a target cannot tell spare time, and `Auto` prepares
    /// nothing behind one.
    Auto,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes_max: 256 << 20,
            preallocate: true,
            prepare_segments: PrepareSegments::Off,
            index_interval_bytes: 4096,
            write_chunk_bytes: 256 << 10,
            write_concurrency: 8,
            pending_bytes_max: 64 << 20,
            buffer_pool_bytes_max: 8 << 20,
            checkpoint_interval_bytes: 64 << 20,
            retention_ms: None,
            retention_bytes: None,
            verify_reads: true,
            read_cache_bytes: 4 << 20,
            open_segments_max: 4,
            producers_max: 10_000,
            producer_expiry_ms: 24 * 3600 * 1000,
            reorder_wait: Duration::from_secs(1),
            dedup_window_ms: None,
            dedup_ids_max: 100_000,
        }
    }
}

impl LogConfig {
    /// Rejects values the log cannot work with.
    pub fn validate(&self) -> Result<(), LogError> {
        let min_segment = crate::segment::HEADER_LEN as u64 + 4096;
        if self.segment_bytes_max < min_segment || self.segment_bytes_max > u32::MAX as u64 {
            return Err(LogError::Config(format!(
                "segment_bytes_max must be in [{min_segment}, {}], got {}",
                u32::MAX,
                self.segment_bytes_max
            )));
        }
        if self.index_interval_bytes == 0 || self.index_interval_bytes > 1 << 20 {
            return Err(LogError::Config(format!(
                "index_interval_bytes must be in [1, 1MiB], got {}",
                self.index_interval_bytes
            )));
        }
        if self.checkpoint_interval_bytes == 0 {
            return Err(LogError::Config(
                "checkpoint_interval_bytes must be > 0".into(),
            ));
        }
        let block = crate::disk::BLOCK;
        let chunk_blocks = self.write_chunk_bytes / block;
        if self.write_chunk_bytes % block != 0 || !chunk_blocks.is_power_of_two() {
            return Err(LogError::Config(format!(
                "write_chunk_bytes must be a power-of-two multiple of {block}, got {}",
                self.write_chunk_bytes
            )));
        }
        if self.write_concurrency == 0 {
            return Err(LogError::Config("write_concurrency must be > 0".into()));
        }
        if self.producers_max == 0 {
            return Err(LogError::Config("producers_max must be > 0".into()));
        }
        if self.dedup_window_ms == Some(0) || self.dedup_ids_max == 0 {
            return Err(LogError::Config(
                "dedup_window_ms and dedup_ids_max must be > 0".into(),
            ));
        }
        if self.pending_bytes_max == 0 {
            return Err(LogError::Config("pending_bytes_max must be > 0".into()));
        }
        Ok(())
    }

    /// The largest batch a segment can hold.
    pub fn batch_bytes_max(&self) -> usize {
        let room = self.segment_bytes_max as usize - crate::segment::HEADER_LEN;
        room.min(tidegate_proto::batch::MAX_BATCH_BYTES)
    }
}
