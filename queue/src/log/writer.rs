//! The writer task of a log: group commit, segment rolls and retention.

use std::rc::Rc;

use futures::future::join_all;

use super::{
    state::{tail_of, PendingUnit, Segment, State},
    RetentionReport, Shared,
};
use crate::{
    disk::{align_down, align_up, Disk, DiskFile},
    error::{IoFailure, LogError},
    index::SparseIndex,
    segment,
};

/// Runs until the log closes: takes everything queued, writes it, syncs it
/// when someone asked for durability, and answers the waiters.
pub(crate) async fn run(shared: Rc<Shared>) {
    loop {
        let work = shared.work.notified();
        let units: Vec<PendingUnit> = {
            let mut state = shared.state.borrow_mut();
            if state.pending.is_empty() {
                let sync_due = state.durable_waiters.front().is_some()
                    && state.failed.is_none()
                    && state.durable_offset < state.written_offset;
                if !sync_due {
                    if state.closing {
                        break;
                    }
                    drop(state);
                    work.await;
                    continue;
                }
                Vec::new()
            } else {
                state.pending.drain(..).collect()
            }
        };
        for unit in units {
            if let Err(err) = write_unit(&shared, unit).await {
                on_write_error(&shared, err).await;
                break;
            }
        }
        sync_if_asked(&shared).await;
        shared.progress.notify_all();
    }
    finish(&shared).await;
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
/// with zeros to a block, in chunks of which `write_concurrency` are in
/// flight at once. The parts are copied straight into the DMA buffers.
async fn write_chunks(
    shared: &Shared,
    file: &DiskFile,
    start: u64,
    parts: [&[u8]; 2],
) -> Result<(), IoFailure> {
    let chunk = shared.config.write_chunk_bytes;
    let total = parts[0].len() + parts[1].len();
    let padded = align_up(total as u64) as usize;
    let mut writes = Vec::with_capacity(shared.config.write_concurrency);
    let mut at = 0;
    while at < padded {
        let len = chunk.min(padded - at);
        let mut buf = file.alloc(len);
        let filled = copy_range(parts, at, &mut buf.as_bytes_mut()[..len]);
        buf.as_bytes_mut()[filled..].fill(0);
        buf.trim_to_size(len);
        writes.push(file.write_at(buf, start + at as u64));
        at += len;
        if writes.len() == shared.config.write_concurrency || at >= padded {
            for result in join_all(writes.drain(..)).await {
                result?;
            }
        }
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
        file.truncate(0).await?;
        if config.preallocate {
            file.preallocate(config.segment_bytes_max).await?;
        }
        file.write_at(buf, 0).await?;
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

/// One fdatasync for everyone who asked for durability since the last one.
async fn sync_if_asked(shared: &Shared) {
    let (file, target) = {
        let state = shared.state.borrow();
        let due = state.failed.is_none()
            && state
                .durable_waiters
                .front()
                .is_some_and(|(end, _)| *end <= state.written_offset);
        match (due, state.segments.last()) {
            (true, Some(seg)) => (seg.file.clone(), state.written_offset),
            _ => return,
        }
    };
    shared.count(|s| s.syncs += 1);
    match file.fdatasync().await {
        Ok(()) => {
            let mut state = shared.state.borrow_mut();
            state.durable_offset = state.durable_offset.max(target);
            state.complete_durable();
        }
        Err(failure) => {
            // Never retry an fdatasync: after a failure the kernel may have
            // dropped the dirty data and a retry would report success.
            tracing::error!(%failure, "fdatasync failed; partition log is now read-only");
            let mut state = shared.state.borrow_mut();
            let err = LogError::Failed(failure.clone());
            state.failed = Some(failure);
            state.fail_waiters(&err);
            state.rewind_to_written(&err);
        }
    }
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
    let recovered = failure.is_no_space() && file.truncate(size).await.is_ok();
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
            active.map(|s| s.checkpoint()),
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

/// Deletes sealed segments past the retention limits, oldest first.
pub(crate) async fn enforce_retention(
    shared: &Shared,
    now_ms: i64,
) -> Result<RetentionReport, LogError> {
    let mut report = RetentionReport::default();
    loop {
        let victim = {
            let state = shared.state.borrow();
            pick_expired(&state, &shared.config, now_ms)
        };
        let Some(base) = victim else { break };
        let seg = {
            let mut state = shared.state.borrow_mut();
            state.segments.remove(0)
        };
        debug_assert_eq!(seg.base_offset, base);
        report.segments_deleted += 1;
        report.bytes_deleted += seg.size;
        let index_path = seg.index_path();
        let log_path = seg.file.path().to_path_buf();
        seg.file.close().await;
        shared.disk.remove(&log_path).map_err(LogError::io)?;
        shared.disk.remove(&index_path).map_err(LogError::io)?;
    }
    let dir = shared.state.borrow().dir.clone();
    if report.segments_deleted > 0 {
        shared.disk.sync_dir(&dir).await.map_err(LogError::io)?;
    }
    report.earliest = shared.state.borrow().offsets().earliest;
    Ok(report)
}

/// The oldest segment to delete, if any: never the active one.
fn pick_expired(state: &State, config: &crate::LogConfig, now_ms: i64) -> Option<u64> {
    let oldest = state.segments.first()?;
    if state.segments.len() < 2 || !oldest.sealed {
        return None;
    }
    let too_old = config.retention_ms.is_some_and(|ms| {
        oldest.max_timestamp_ms != i64::MIN
            && oldest.max_timestamp_ms < now_ms.saturating_sub(ms as i64)
    });
    let too_big = config
        .retention_bytes
        .is_some_and(|max| state.size_bytes() > max);
    (too_old || too_big).then_some(oldest.base_offset)
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
