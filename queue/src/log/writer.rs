//! The writer task of a log: group commit, segment rolls and retention.

use std::rc::Rc;

use futures::stream::{FuturesUnordered, StreamExt};

use super::{
    state::{tail_of, PendingUnit, Segment},
    Shared,
};
use crate::{
    disk::{align_down, align_up, pieces, Disk, DiskFile},
    error::{IoFailure, LogError},
    index::SparseIndex,
    segment,
};

/// Runs until the log closes: takes everything queued and writes it as one
/// group. Syncing is the syncer's job (`syncer.rs`), so the next group is
/// written while the previous one is being fdatasynced.
pub(crate) async fn run(shared: Rc<Shared>) {
    loop {
        let work = shared.work.notified();
        let (units, closing) = take_pending(&shared);
        if units.is_empty() {
            if closing {
                break;
            }
            work.await;
            continue;
        }
        for unit in units {
            if let Err(err) = write_unit(&shared, unit).await {
                on_write_error(&shared, err).await;
                break;
            }
        }
        shared.sync_work.notify_all();
        shared.progress.notify_all();
    }
    finish(&shared).await;
}

/// Everything queued, and whether the log is closing.
fn take_pending(shared: &Shared) -> (Vec<PendingUnit>, bool) {
    let mut state = shared.state.borrow_mut();
    (state.pending.drain(..).collect(), state.closing)
}

/// Writes one unit: rolls to its segment first if it starts a new one.
async fn write_unit(shared: &Shared, unit: PendingUnit) -> Result<(), IoFailure> {
    let active_base = shared.state.borrow().segments.last().map(|s| s.base_offset);
    if active_base != Some(unit.segment_base) {
        roll(shared, unit.segment_base).await?;
    }
    let (file, prefix, size) = {
        let state = shared.state.borrow();
        let seg = state.segments.last().ok_or_else(closed_failure)?;
        assert_eq!(seg.size, unit.start_pos, "units are written in order");
        (seg.file.clone(), seg.tail.clone(), seg.size)
    };
    let start = align_down(size);
    let end_pos = size + unit.bytes.len() as u64;
    let tail = tail_of(&[&prefix, &unit.bytes], end_pos);
    write_chunks(shared, &file, start, [&prefix, &unit.bytes]).await?;
    shared.count(|s| {
        s.flushes += 1;
        s.bytes_written += unit.bytes.len() as u64;
    });

    let mut state = shared.state.borrow_mut();
    let state = &mut *state;
    let seg = state.segments.last_mut().ok_or_else(closed_failure)?;
    seg.size = end_pos;
    seg.next_offset = unit.end_offset;
    seg.max_timestamp_ms = seg.max_timestamp_ms.max(unit.max_timestamp_ms);
    seg.tail = tail;
    for entry in unit.index {
        seg.index.maybe_add(0, entry);
    }
    state.written_offset = unit.end_offset;
    state.pending_bytes -= unit.bytes.len();
    state.complete_written();
    Ok(())
}

/// Writes `parts`, back to back, at the aligned position `start`, padded
/// with zeros to a block. The bytes are copied straight into pooled DMA
/// buffers of power-of-two sizes (so they can be reused without trimming);
/// up to `write_concurrency` writes are in flight, and the next buffer is
/// filled while they are.
async fn write_chunks(
    shared: &Shared,
    file: &DiskFile,
    start: u64,
    parts: [&[u8]; 2],
) -> Result<(), IoFailure> {
    let total = parts[0].len() + parts[1].len();
    let padded = align_up(total as u64) as usize;
    let mut in_flight = FuturesUnordered::new();
    let mut failed = None;
    let mut at = 0;
    for len in pieces(padded, shared.config.write_chunk_bytes) {
        if in_flight.len() == shared.config.write_concurrency {
            if let Err(e) = recycle(shared, in_flight.next().await) {
                failed = Some(e);
                break;
            }
        }
        let mut buf = shared.pool.borrow_mut().take(file, len);
        let dst = buf.as_bytes_mut();
        let filled = copy_range(parts, at, dst);
        dst[filled..].fill(0);
        in_flight.push(file.write_at(buf, start + at as u64));
        at += len;
    }
    // Even after a failure, wait for every write already submitted: one that
    // landed after the caller truncated the file could leave stale batches
    // past the end.
    while let Some(done) = in_flight.next().await {
        if let Err(e) = recycle(shared, Some(done)) {
            failed.get_or_insert(e);
        }
    }
    failed.map_or(Ok(()), Err)
}

/// Returns a written buffer to the pool, or the write's error.
fn recycle(
    shared: &Shared,
    done: Option<Result<Option<glommio::io::DmaBuffer>, IoFailure>>,
) -> Result<(), IoFailure> {
    if let Some(buf) = done.transpose()?.flatten() {
        shared.pool.borrow_mut().give(buf);
    }
    Ok(())
}

/// Copies the bytes of `parts` (seen as one concatenation) from `from`
/// into `dst`; returns how many it copied.
fn copy_range(parts: [&[u8]; 2], mut from: usize, dst: &mut [u8]) -> usize {
    let mut filled = 0;
    for part in parts {
        if from >= part.len() {
            from -= part.len();
            continue;
        }
        let src = &part[from..];
        let n = src.len().min(dst.len() - filled);
        dst[filled..filled + n].copy_from_slice(&src[..n]);
        filled += n;
        from = 0;
        if filled == dst.len() {
            break;
        }
    }
    filled
}

/// Seals the active segment (fdatasync, index checkpoint) and starts a new
/// one at `base`: header written and synced, directory synced, before any
/// batch goes into it.
async fn roll(shared: &Shared, base: u64) -> Result<(), IoFailure> {
    let (file, checkpoint, index_path, dir) = {
        let state = shared.state.borrow();
        let seg = state.segments.last().ok_or_else(closed_failure)?;
        (
            seg.file.clone(),
            seg.checkpoint(),
            seg.index_path(),
            state.dir.clone(),
        )
    };
    // Give back the preallocated space the sealed segment will not use.
    file.truncate(checkpoint.end_pos).await?;
    file.fdatasync().await?;
    {
        let mut state = shared.state.borrow_mut();
        state.durable_offset = state.written_offset;
        state.complete_durable();
    }
    shared
        .disk
        .write_atomic(&index_path, &checkpoint.encode())
        .await?;
    let seg = create_segment(&shared.disk, &dir, base, &shared.config).await?;
    let mut state = shared.state.borrow_mut();
    if let Some(old) = state.segments.last_mut() {
        old.sealed = true;
        old.tail = Vec::new();
    }
    state.segments.push(seg);
    Ok(())
}

/// Creates segment `base` in `dir`, durably, and returns it empty.
pub(crate) async fn create_segment(
    disk: &Disk,
    dir: &std::path::Path,
    base: u64,
    config: &crate::LogConfig,
) -> Result<Segment, IoFailure> {
    let path = segment::log_path(dir, base);
    let file = disk.open(&path, true).await?;
    let header = segment::encode_header(base, now_ms());
    let mut buf = file.alloc(crate::disk::BLOCK);
    let dst = buf.as_bytes_mut();
    dst.fill(0);
    dst[..header.len()].copy_from_slice(&header);
    let result = async {
        // The header goes first: a segment file is either all zeros (a
        // crash before the header, removed on recovery) or starts valid.
        file.truncate(0).await?;
        file.write_at(buf, 0).await?;
        if config.preallocate {
            file.preallocate(config.segment_bytes_max).await?;
        }
        file.fdatasync().await?;
        disk.sync_dir(dir).await
    }
    .await;
    if let Err(e) = result {
        file.close().await;
        let _ = disk.remove(&path);
        return Err(e);
    }
    Ok(Segment {
        base_offset: base,
        file: Rc::new(file),
        size: segment::HEADER_LEN as u64,
        next_offset: base,
        max_timestamp_ms: i64::MIN,
        index: SparseIndex::default(),
        tail: header.to_vec(),
        sealed: false,
    })
}

/// A write failed. Out of space is recoverable: drop what was not written,
/// cut the file back to the written size (so no half-written bytes can look
/// like batches later), and keep serving. Anything else fails the log.
async fn on_write_error(shared: &Shared, failure: IoFailure) {
    let err = LogError::io(failure.clone());
    let (file, size) = {
        let mut state = shared.state.borrow_mut();
        state.rewind_to_written(&err);
        match state.segments.last() {
            Some(seg) => (seg.file.clone(), seg.size),
            None => return,
        }
    };
    // A failed fdatasync (in a roll) is never recoverable; see `syncer.rs`.
    let recovered = failure.is_no_space()
        && failure.op != "fdatasync"
        && file.truncate(size).await.is_ok()
        && (!shared.config.preallocate
            || file
                .preallocate(shared.config.segment_bytes_max)
                .await
                .is_ok());
    if recovered {
        tracing::warn!(%failure, "append failed: out of space; will accept appends again");
    } else {
        tracing::error!(%failure, "write failed; partition log is now read-only");
        let mut state = shared.state.borrow_mut();
        state.fail_waiters(&LogError::Failed(failure.clone()));
        state.failed = Some(failure);
    }
    shared.progress.notify_all();
}

/// Last work before the writer stops: sync what was written, checkpoint the
/// active segment's index, close every file.
async fn finish(shared: &Shared) {
    let (segments, checkpoint, index_path, needs_sync) = {
        let state = shared.state.borrow();
        let files: Vec<Rc<DiskFile>> = state.segments.iter().map(|s| s.file.clone()).collect();
        let active = state.segments.last();
        (
            files,
            active.map(Segment::checkpoint),
            active.map(|s| s.index_path()),
            state.failed.is_none() && state.durable_offset < state.written_offset,
        )
    };
    let failed = shared.state.borrow().failed.is_some();
    let mut result = Ok(());
    if let (false, Some(active)) = (failed, segments.last()) {
        if needs_sync {
            result = active.fdatasync().await;
        }
        if let (Ok(()), Some(cp), Some(path)) = (&result, checkpoint, index_path) {
            result = shared.disk.write_atomic(&path, &cp.encode()).await;
        }
    }
    {
        let mut state = shared.state.borrow_mut();
        match result {
            Ok(()) => {
                state.durable_offset = state.written_offset;
                state.complete_durable();
            }
            Err(failure) => state.close_error = Some(LogError::io(failure)),
        }
        state.fail_waiters(&LogError::Closed);
    }
    for file in segments {
        file.close().await;
    }
}

fn closed_failure() -> IoFailure {
    IoFailure {
        op: "write",
        path: Default::default(),
        errno: None,
        message: "log has no active segment".into(),
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
