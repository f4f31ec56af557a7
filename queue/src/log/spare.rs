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
//! partition while a spare waits; hence a setting, off by default.
//!
//! The spare is a temporary file (`.tmp`), which recovery removes, so a
//! crash can leave nothing a reader would mistake for a segment. A roll
//! takes it only once it is whole and synced, renames it to the segment's
//! name and then writes and syncs the header before any batch, as for a
//! new file: a crash after the rename leaves an all-zero last segment,
//! which recovery removes as half-created.

use std::path::Path;
use std::rc::Rc;

use super::Shared;
use crate::disk::{align_up, DiskFile};
use crate::error::IoFailure;

/// The spare's file name in the partition's directory.
const SPARE_NAME: &str = "next-segment.spare.tmp";
/// Zeros written at a time: large enough to cost little per write, small
/// enough that one write never holds the device long before an append's.
const ZERO_CHUNK: usize = 256 << 10;
/// Zeros written ahead of the pace (see [`allowance`]).
const ZERO_LEAD: u64 = 4 << 20;

/// The spare of one log: ready, being prepared, or neither.
#[derive(Default)]
pub(crate) struct Spare {
    ready: Option<DiskFile>,
    task: Option<glommio::task::JoinHandle<()>>,
    /// Preparing failed, or the disk filled, since the last roll: not
    /// tried again until then.
    failed: bool,
}

impl Spare {
    /// Takes the ready spare, if there is one, for a roll; the next one
    /// may be prepared from then on.
    pub(crate) fn take(&mut self) -> Option<DiskFile> {
        self.failed = false;
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
    if !shared.config.prepare_segments {
        return;
    }
    {
        let spare = shared.spare.borrow();
        if spare.ready.is_some() || spare.task.is_some() || spare.failed {
            return;
        }
        let state = shared.state.borrow();
        let half_full = state
            .segments
            .last()
            .is_some_and(|s| s.size * 2 >= shared.config.segment_bytes_max);
        if !half_full || state.closing || state.failed.is_some() {
            return;
        }
    }
    let task = glommio::spawn_local(prepare(shared.clone())).detach();
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

/// Creates the spare: reserved, zeroed and synced; then hands it over.
async fn prepare(shared: Rc<Shared>) {
    let path = shared.state.borrow().dir.join(SPARE_NAME);
    let result = zero_filled(&shared, &path).await;
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
        while pos < len {
            // Paced by the appends: zeros in bursts would sit in the
            // device's cache and make the appends' fdatasyncs flush them.
            while pos >= allowance(shared, len) && !stopped(shared) {
                shared.progress.listen().await;
            }
            if stopped(shared) {
                return Ok(false);
            }
            let n = (len - pos).min(ZERO_CHUNK as u64) as usize;
            if n < buf.len() {
                // `len` is block-aligned, so `n` is too.
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

fn stopped(shared: &Shared) -> bool {
    let state = shared.state.borrow();
    state.closing || state.failed.is_some()
}
