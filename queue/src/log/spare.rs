//! The next segment, prepared in the background while the active one
//! fills (`LogConfig::prepare_segments`).
//!
//! A preallocated block is an unwritten extent to the filesystem: the
//! first write into it converts the extent, and the fdatasync after that
//! write has to make the conversion durable too, a metadata write on every
//! durable append. Writing zeros over the whole next segment ahead of time
//! turns its blocks into written ones, so appends overwrite data and their
//! fdatasyncs write data only (measured in docs/BENCHMARKS.md). The price
//! is every segment byte written twice, and one more segment of disk per
//! partition while a spare waits; hence a setting. In `Auto` the zeros use
//! only the disk's spare time: a chunk is written only after a round of
//! appends none of which waited at the shard's write gate, so on a disk
//! whose bandwidth is the limit the appends keep nearly all of it and the
//! roll takes an unprepared segment. Each zero write is then an eighth of
//! what the gate lets the disk hold, so an append arriving behind one
//! waits for little of the disk's time.
//! At most [`BACKGROUND_MAX`] logs of a shard prepare at once, which
//! bounds the zero buffers' memory. `Auto` also prepares only for a log
//! that, at the rate it has grown since its last roll, fills its active
//! segment within [`AUTO_FILL_HORIZON`]: a slow partition gains little
//! from a spare, and holding one for hours would double its disk use.
//!
//! The spare is a temporary file (`.tmp`), which recovery removes, so a
//! crash can leave nothing a reader would mistake for a segment. A roll
//! takes it only once it is whole and synced, writes and syncs the header
//! into it, and only then renames it to the segment's name (`roll.rs`), as
//! for a new file.

use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::Shared;
use crate::config::PrepareSegments;
use crate::disk::{align_down, align_up, DiskFile, BLOCK};
use crate::error::IoFailure;
#[cfg(doc)]
use crate::gate::BACKGROUND_MAX;

/// The spare's file name in the partition's directory.
const SPARE_NAME: &str = "next-segment.spare.tmp";
/// Zeros written at a time, at most: large enough to cost little per
/// write on a fast disk.
const ZERO_CHUNK: usize = 256 << 10;
/// In `Auto`, a zero write is at most this share of the bytes the shard's
/// write gate lets the disk hold (its measured throughput times
/// `flow.disk_queue_target`): an append that arrives behind one waits for
/// an eighth of the target, not for 256 KiB. On a 50 MiB/s disk 256 KiB
/// took 5 ms and tripled a light producer's p99 (docs/BENCHMARKS.md).
const ZERO_CHUNK_SHARE: u64 = 8;
/// Zeros written ahead of the pace (see [`allowance`]).
const ZERO_LEAD: u64 = 4 << 20;

/// `Auto` prepares only for a log whose active segment fills within this,
/// at the rate it has grown since the last roll.
pub const AUTO_FILL_HORIZON: Duration = Duration::from_secs(60);

/// The spare of one log: ready, being prepared, or neither.
#[derive(Default)]
pub(crate) struct Spare {
    ready: Option<DiskFile>,
    task: Option<glommio::task::JoinHandle<()>>,
    /// Preparing failed, or the disk filled, since the last roll: not
    /// tried again until then.
    failed: bool,
    /// `Auto`: when the active segment was first looked at, and its size
    /// then (after the last roll, or the first write after open): how fast
    /// it fills.
    seen: Option<(Instant, u64)>,
}

impl Spare {
    /// Takes the ready spare, if there is one, for a roll; the next one
    /// may be prepared from then on.
    pub(crate) fn take(&mut self) -> Option<DiskFile> {
        self.failed = false;
        self.seen = None;
        self.ready.take()
    }

    /// Prepares no spare until the next roll (the disk is full).
    pub(crate) fn hold_off(&mut self) {
        self.failed = true;
    }
}

/// Starts preparing a spare if the log prepares segments, has none, and
/// its active segment is half full (so only logs that are filling hold a
/// spare).
pub(crate) fn maybe_start(shared: &Rc<Shared>) {
    let auto = match shared.config.prepare_segments {
        PrepareSegments::Off => return,
        PrepareSegments::On => false,
        PrepareSegments::Auto => true,
    };
    if auto {
        let gate = shared.gate.gate();
        // Without a target the gate cannot tell the disk's spare time.
        if !gate.stats().enabled || gate.holding_writes() {
            return; // no time to spare (now); asked again later
        }
    }
    {
        let mut spare = shared.spare.borrow_mut();
        if spare.ready.is_some() || spare.task.is_some() || spare.failed {
            return;
        }
        let state = shared.state.borrow();
        let Some(size) = state.segments.last().map(|s| s.size) else {
            return;
        };
        // `Auto` judges the fill rate from the first look at the segment
        // on, so it looks before the segment is half full too.
        let looked = auto.then(|| {
            let now = (Instant::now(), size);
            (*spare.seen.get_or_insert(now), now)
        });
        let max = shared.config.segment_bytes_max;
        let half_full = size.saturating_mul(2) >= max;
        if !half_full || state.closing || state.failed.is_some() {
            return;
        }
        if looked.is_some_and(|(seen, now)| !fills_within(seen, now, max, AUTO_FILL_HORIZON)) {
            return;
        }
    }
    let Some(slot) = shared.gate.gate().background() else {
        return; // other logs of the shard are preparing; asked again later
    };
    let task = glommio::spawn_local(prepare(shared.clone(), slot)).detach();
    shared.spare.borrow_mut().task = Some(task);
}

/// Stops a preparation under way and removes the spare's file (at close).
pub(crate) async fn discard(shared: &Shared) {
    let (task, ready, dir) = {
        let mut spare = shared.spare.borrow_mut();
        (
            spare.task.take(),
            spare.ready.take(),
            shared.state.borrow().dir.clone(),
        )
    };
    if let Some(task) = task {
        task.cancel();
        let _ = task.await;
    }
    if let Some(file) = ready {
        file.close().await;
    }
    let _ = shared.disk.remove(&dir.join(SPARE_NAME));
}

/// Creates the spare: reserved, zeroed and synced; then hands it over and
/// gives the background slot back.
async fn prepare(shared: Rc<Shared>, slot: crate::gate::Background) {
    let path = shared.state.borrow().dir.join(SPARE_NAME);
    let result = zero_filled(&shared, &path).await;
    drop(slot);
    let mut spare = shared.spare.borrow_mut();
    spare.task = None;
    match result {
        Ok(Some(file)) => spare.ready = Some(file),
        Ok(None) => {
            let _ = shared.disk.remove(&path);
        }
        Err(failure) => {
            // The log goes on without: the next roll creates its segment
            // as if preparing were off.
            tracing::warn!(%failure, "preparing the next segment failed");
            spare.failed = true;
            let _ = shared.disk.remove(&path);
        }
    }
    if spare.ready.is_some() {
        shared.count(|s| s.segments_prepared += 1);
    }
}

/// The zero-filled file at `path`, or `None` when the log closed or
/// failed meanwhile.
async fn zero_filled(shared: &Shared, path: &Path) -> Result<Option<DiskFile>, IoFailure> {
    let len = align_up(shared.config.segment_bytes_max);
    let file = shared.disk.open(path, true).await?;
    let result = async {
        file.truncate(0).await?;
        // Reserved first, so a full disk shows before any zero is written.
        file.preallocate(len).await?;
        let zeros = || {
            let mut buf = file.alloc(ZERO_CHUNK);
            buf.as_bytes_mut().fill(0);
            buf
        };
        let mut buf = zeros();
        let mut pos = 0;
        let mut waited = gate_waits(shared);
        while pos < len {
            // Paced by the appends: zeros in bursts would sit in the
            // device's cache and make the appends' fdatasyncs flush them.
            // In `Auto`, only after a round of appends none of which
            // waited at the gate: a disk that is the limit now and then
            // gives the zeros none of its time.
            while (pos >= allowance(shared, len) || appends_waited(shared, &mut waited))
                && !stopped(shared)
            {
                shared.progress.listen().await;
            }
            if stopped(shared) {
                return Ok(false);
            }
            let n = (len - pos).min(chunk_bytes(shared)) as usize;
            if buf.len() < n {
                buf = zeros(); // trimmed for a smaller chunk before
            }
            if n < buf.len() {
                // `len` and the chunk are block-aligned, so `n` is too.
                buf.trim_to_size(n);
            }
            // The buffer comes back unless the write kept it.
            buf = file.write_at(buf, pos).await?.unwrap_or_else(zeros);
            pos += n as u64;
        }
        file.fdatasync().await?;
        Ok(!stopped(shared))
    }
    .await;
    match result {
        Ok(true) => Ok(Some(file)),
        Ok(false) => {
            file.close().await;
            Ok(None)
        }
        Err(e) => {
            file.close().await;
            Err(e)
        }
    }
}

/// How much of a spare of `len` bytes may be zeroed by now: three times
/// what the active segment has grown past its half, plus a lead. The
/// zeros go out at three times the append rate, so the spare is done when
/// the active segment is about five sixths full, with time to spare
/// before the roll.
fn allowance(shared: &Shared, len: u64) -> u64 {
    let state = shared.state.borrow();
    let grown = state.segments.last().map_or(0, |s| {
        s.size.saturating_sub(shared.config.segment_bytes_max / 2)
    });
    grown.saturating_mul(3).saturating_add(ZERO_LEAD).min(len)
}

/// Bytes of the next zero write: [`ZERO_CHUNK`], or in `Auto` less, as
/// the shard's write gate measures the disk now.
fn chunk_bytes(shared: &Shared) -> u64 {
    let limit = match shared.config.prepare_segments {
        PrepareSegments::Auto => shared.gate.gate().stats().limit_bytes,
        PrepareSegments::On | PrepareSegments::Off => u64::MAX,
    };
    zero_chunk(limit)
}

/// A zero write's size under a gate that lets the disk hold `limit`
/// bytes: a [`ZERO_CHUNK_SHARE`] of it, block-aligned, from one block to
/// [`ZERO_CHUNK`].
fn zero_chunk(limit: u64) -> u64 {
    align_down(limit / ZERO_CHUNK_SHARE).clamp(BLOCK as u64, ZERO_CHUNK as u64)
}

/// Whether a segment of `max` bytes, seen at `then` and at `now` as
/// `(time, size)`, fills within `horizon` at the rate it grew between.
fn fills_within(then: (Instant, u64), now: (Instant, u64), max: u64, horizon: Duration) -> bool {
    let grown = now.1.saturating_sub(then.1);
    if grown == 0 {
        return false;
    }
    let elapsed = now.0.saturating_duration_since(then.0).as_secs_f64();
    let rest = max.saturating_sub(now.1) as f64;
    elapsed * rest / grown as f64 <= horizon.as_secs_f64()
}

/// Appends that waited at the shard's gate so far.
fn gate_waits(shared: &Shared) -> u64 {
    shared.gate.gate().stats().writes_waited_total
}

/// `Auto`, and an append waited at the gate since `seen` was read, or
/// waits now: the disk's queue was full. Reads the count again.
fn appends_waited(shared: &Shared, seen: &mut u64) -> bool {
    if shared.config.prepare_segments != PrepareSegments::Auto {
        return false;
    }
    let now = gate_waits(shared);
    let waited = now != *seen || shared.gate.gate().holding_writes();
    *seen = now;
    waited
}

fn stopped(shared: &Shared) -> bool {
    let state = shared.state.borrow();
    state.closing || state.failed.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_write_is_an_eighth_of_the_gates_limit_within_bounds() {
        // A 50 MiB/s disk at a 5 ms target: about 260 KB at the disk.
        assert_eq!(zero_chunk(262_144), 32 << 10);
        assert_eq!(zero_chunk(204_971), 24 << 10, "block-aligned down");
        // Before the disk is measured, or a fast one: the largest.
        assert_eq!(zero_chunk(u64::MAX), ZERO_CHUNK as u64);
        assert_eq!(zero_chunk(64 << 20), ZERO_CHUNK as u64);
        // A crawling disk still writes a block at a time.
        assert_eq!(zero_chunk(0), BLOCK as u64);
        assert_eq!(zero_chunk(20_000), BLOCK as u64);
    }

    #[test]
    fn a_segment_fills_within_the_horizon_only_at_a_rate_that_gets_there() {
        let t0 = Instant::now();
        let s = |secs: u64| t0 + Duration::from_secs(secs);
        let horizon = Duration::from_secs(60);
        // 60 of 100 bytes in 10 s: the 40 left take about 7 s.
        assert!(fills_within((t0, 0), (s(10), 60), 100, horizon));
        // 60 in 200 s: the rest takes 133 s.
        assert!(!fills_within((t0, 0), (s(200), 60), 100, horizon));
        // Exactly at the horizon counts.
        assert!(fills_within((t0, 0), (s(60), 50), 100, horizon));
        // No growth seen yet (just opened, or idle): no estimate, no spare.
        assert!(!fills_within((t0, 60), (s(10), 60), 100, horizon));
        // Seen twice at once: all growth in no time fills at once.
        assert!(fills_within((t0, 0), (t0, 60), 100, horizon));
        // A full segment has nothing left to fill.
        assert!(fills_within((t0, 0), (s(1_000), 100), 100, horizon));
    }
}
