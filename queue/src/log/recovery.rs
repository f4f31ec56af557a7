//! Opening a log: find the segments, trust what was checkpointed, verify
//! what was not, truncate a torn tail, rebuild missing indexes.
//!
//! The rule for damage: in the active segment, bytes past the last index
//! checkpoint were never known to be complete, so an invalid batch there is
//! a torn tail and is cut off. Damage anywhere else (a sealed segment, or
//! before the checkpoint) is corruption of data that was acknowledged, and
//! opening fails with [`LogError::Corrupt`] instead of skipping it.

use std::{path::Path, rc::Rc, time::Instant};

use super::{
    roll::create_segment,
    scan::{scan, Stop},
    state::{tail_of, Segment, State},
};
use crate::{
    config::LogConfig,
    disk::{align_down, Disk, DiskFile},
    error::{IoFailure, LogError},
    index::{Checkpoint, SparseIndex},
    segment,
};

/// What recovery found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments found on disk.
    pub segments: usize,
    /// Segments whose index was rebuilt by scanning.
    pub indexes_rebuilt: usize,
    /// Bytes cut off a torn tail.
    pub truncated_bytes: u64,
    /// Why the tail was cut, when it was.
    pub truncation_reason: Option<String>,
    /// Bytes verified batch by batch.
    pub bytes_scanned: u64,
    /// The next offset after recovery.
    pub next_offset: u64,
    /// How long recovery took, in microseconds.
    pub elapsed_us: u64,
    /// Idempotent producers known after recovery.
    pub producers: usize,
    /// Bytes of batches whose headers were replayed into the producer
    /// table (those after its newest snapshot).
    pub producer_bytes_replayed: u64,
}

pub(crate) async fn recover(
    dir: &Path,
    config: &LogConfig,
    disk: &Disk,
) -> Result<(State, RecoveryReport), LogError> {
    let started = Instant::now();
    std::fs::create_dir_all(dir).map_err(|e| LogError::io(IoFailure::new("mkdir", dir, e)))?;
    disk.prepare(dir).await.map_err(LogError::io)?;
    let bases = list_segments(dir, disk)?;
    let mut report = RecoveryReport {
        segments: bases.len(),
        ..RecoveryReport::default()
    };
    let mut segments: Vec<Segment> = Vec::with_capacity(bases.len());
    for (i, &base) in bases.iter().enumerate() {
        let next_base = bases.get(i + 1).copied();
        let expected = segments.last().map(|s: &Segment| s.next_offset);
        if let Some(expected) = expected {
            if expected != base {
                return Err(corrupt(
                    &segment::log_path(dir, base),
                    0,
                    format!(
                        "segment starts at offset {base} but the previous one ends at {expected}"
                    ),
                ));
            }
        }
        // `None`: an empty, half-created last segment, removed.
        if let Some(seg) = open_segment(dir, base, next_base, config, disk, &mut report).await? {
            segments.push(seg);
        }
    }
    if segments.is_empty() {
        let base = bases.first().copied().unwrap_or(0);
        let seg = create_segment(disk, dir, base, config)
            .await
            .map_err(LogError::io)?;
        segments.push(seg);
    }
    if let Some(active) = segments.last_mut() {
        make_active(active, config, disk).await?;
    }
    let now = super::writer::now_ms();
    let (producers, walked) =
        super::producer_recovery::rebuild(dir, disk, &segments, config, now).await?;
    report.producers = producers.len();
    report.producer_bytes_replayed = walked;
    let state = State::new(dir.to_path_buf(), segments, producers)?;
    report.next_offset = state.next_offset;
    report.elapsed_us = started.elapsed().as_micros() as u64;
    if report.truncated_bytes > 0 {
        // Loud on purpose: a crash during a write explains it, but so would
        // a disk that damaged data acknowledged after the last checkpoint.
        tracing::error!(
            dir = %dir.display(),
            bytes = report.truncated_bytes,
            next_offset = report.next_offset,
            reason = report.truncation_reason.as_deref().unwrap_or(""),
            "recovery cut the log's tail: an unfinished write, or damage after the last checkpoint"
        );
    }
    Ok((state, report))
}

/// Segment base offsets in `dir`, sorted; leftover temporary files removed.
fn list_segments(dir: &Path, disk: &Disk) -> Result<Vec<u64>, LogError> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| LogError::io(IoFailure::new("readdir", dir, e)))?;
    let mut bases = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io(IoFailure::new("readdir", dir, e)))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".tmp") {
            disk.remove(&entry.path()).map_err(LogError::io)?;
        } else if let Some(base) = segment::parse_log_name(name) {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// Opens one segment. `next_base` is the next segment's base (`None` for
/// the active, last segment).
async fn open_segment(
    dir: &Path,
    base: u64,
    next_base: Option<u64>,
    config: &LogConfig,
    disk: &Disk,
    report: &mut RecoveryReport,
) -> Result<Option<Segment>, LogError> {
    let path = segment::log_path(dir, base);
    let file = disk.open(&path, false).await.map_err(LogError::io)?;
    let file_end = file.size().await.map_err(LogError::io)?;
    let head = file
        .read_at(0, segment::HEADER_LEN)
        .await
        .map_err(LogError::io)?;
    match segment::decode_header(&head) {
        Ok(b) if b == base => {}
        Ok(b) => return Err(corrupt(&path, 0, format!("header says base offset {b}"))),
        Err(reason) if next_base.is_none() && head.iter().all(|&b| b == 0) => {
            // Crashed while creating the segment: it never held a batch.
            tracing::warn!(path = %path.display(), reason, "removing half-created segment");
            file.close().await;
            disk.remove(&path).map_err(LogError::io)?;
            disk.sync_dir(dir).await.map_err(LogError::io)?;
            return Ok(None);
        }
        Err(reason) => return Err(corrupt(&path, 0, reason)),
    }
    let index_path = segment::index_path(dir, base);
    let checkpoint = read_checkpoint(disk, &index_path, base, file_end).await;

    // A sealed segment whose checkpoint ends where the next one starts is
    // trusted as it is: it was fdatasynced before the checkpoint was written.
    if let (Some(next), Some(cp)) = (next_base, &checkpoint) {
        if cp.next_offset == next {
            file.close().await;
            return Ok(Some(sealed(path, cp.clone())));
        }
    }
    let (start_pos, start_offset, ts_before, mut index) = match &checkpoint {
        Some(cp) => resume_point(cp),
        None => {
            report.indexes_rebuilt += 1;
            (
                segment::HEADER_LEN as u64,
                base,
                i64::MIN,
                SparseIndex::default(),
            )
        }
    };
    let trusted_end = checkpoint
        .as_ref()
        .map_or(segment::HEADER_LEN as u64, |c| c.end_pos);
    let interval = config.index_interval_bytes;
    let scanned = scan(
        &file,
        start_pos,
        file_end,
        start_offset,
        ts_before,
        |entry, _| index.maybe_add(interval, entry),
        base,
    )
    .await?;
    report.bytes_scanned += scanned.end_pos - start_pos;
    let reason = match &scanned.stop {
        Stop::Invalid { pos, reason } if next_base.is_some() || *pos < trusted_end => {
            return Err(corrupt(&path, *pos, reason.clone()));
        }
        Stop::Clean if scanned.end_pos < trusted_end => {
            return Err(corrupt(
                &path,
                scanned.end_pos,
                "zeros inside data the index checkpoint covers",
            ));
        }
        Stop::Invalid { reason, .. } => Some(reason.clone()),
        Stop::Clean => None,
    };
    if next_base.is_none() {
        // Whatever is past the end is cut when the tail is reset; count
        // the bytes that were not zeros, to report the cut honestly.
        let cut = nonzero_extent(&file, scanned.end_pos, file_end).await?;
        if cut > 0 {
            // The checkpoint may cover the bytes being cut.
            disk.remove(&index_path).map_err(LogError::io)?;
            report.truncated_bytes += cut;
            report.truncation_reason = Some(
                reason.unwrap_or_else(|| "bytes after zeros past the last valid batch".to_string()),
            );
        }
    }
    if let Some(next) = next_base {
        if scanned.next_offset != next {
            return Err(corrupt(
                &path,
                scanned.end_pos,
                format!(
                    "segment ends at offset {} but the next starts at {next}",
                    scanned.next_offset
                ),
            ));
        }
    }
    // Only the active segment keeps its file open: a log of many segments
    // would otherwise hold a descriptor for each (`files.rs`).
    let (tail, file) = if next_base.is_none() {
        (
            read_tail(&file, scanned.end_pos).await?,
            Some(Rc::new(file)),
        )
    } else {
        file.close().await;
        (Vec::new(), None)
    };
    Ok(Some(Segment {
        base_offset: base,
        path,
        file,
        size: scanned.end_pos,
        next_offset: scanned.next_offset,
        max_timestamp_ms: scanned.max_timestamp_ms,
        index,
        tail,
        sealed: next_base.is_some(),
        checkpointed_pos: trusted_end.min(scanned.end_pos),
    }))
}

/// Where to resume verifying a checkpointed segment: its last index entry,
/// so the last checkpointed batches are verified again too.
fn resume_point(cp: &Checkpoint) -> (u64, u64, i64, SparseIndex) {
    let mut entries = cp.entries.clone();
    match entries.pop() {
        Some(last) => (
            last.pos as u64,
            cp.base_offset + last.rel_offset as u64,
            last.ts_before,
            SparseIndex::from_entries(entries),
        ),
        None => (
            segment::HEADER_LEN as u64,
            cp.base_offset,
            i64::MIN,
            SparseIndex::default(),
        ),
    }
}

fn sealed(path: std::path::PathBuf, cp: Checkpoint) -> Segment {
    Segment {
        checkpointed_pos: cp.end_pos,
        base_offset: cp.base_offset,
        path,
        file: None,
        size: cp.end_pos,
        next_offset: cp.next_offset,
        max_timestamp_ms: cp.max_timestamp_ms,
        index: SparseIndex::from_entries(cp.entries),
        tail: Vec::new(),
        sealed: true,
    }
}

/// Reads an index checkpoint; anything missing, damaged or inconsistent
/// with its segment is ignored (the index is then rebuilt).
async fn read_checkpoint(disk: &Disk, path: &Path, base: u64, file_end: u64) -> Option<Checkpoint> {
    if !path.exists() {
        return None;
    }
    let file = disk.open(path, false).await.ok()?;
    let size = file.size().await.ok()?;
    let bytes = file.read_at(0, size as usize).await.ok();
    file.close().await;
    let cp = Checkpoint::decode(&bytes?)?;
    let plausible = cp.base_offset == base
        && cp.end_pos >= segment::HEADER_LEN as u64
        && cp.end_pos <= file_end
        && cp.next_offset >= base
        && cp.entries.iter().all(|e| (e.pos as u64) < cp.end_pos);
    if !plausible {
        tracing::warn!(path = %path.display(), "ignoring inconsistent index checkpoint");
    }
    plausible.then_some(cp)
}

/// Readies the last segment for appends: a segment recovered as sealed
/// (its successor was a half-created file that recovery removed) is opened
/// again with its tail block; then everything after its end is zeroed
/// (truncate, preallocate again) and the file is fdatasynced, so the durable
/// mark the log starts with is true.
///
/// Zeroing matters: writes of one group are concurrent, so bytes of a write
/// that failed or was cut by a crash can sit behind zeros, and must never be
/// mistaken for batches once appends reach them.
async fn make_active(seg: &mut Segment, config: &LogConfig, disk: &Disk) -> Result<(), LogError> {
    let file = match &seg.file {
        Some(file) => file.clone(),
        None => Rc::new(disk.open(&seg.path, false).await.map_err(LogError::io)?),
    };
    seg.file = Some(file.clone());
    if seg.sealed || seg.tail.len() as u64 != seg.size - align_down(seg.size) {
        seg.sealed = false;
        seg.tail = read_tail(&file, seg.size).await?;
    }
    file.truncate(seg.size).await.map_err(LogError::io)?;
    if config.preallocate {
        file.preallocate(config.segment_bytes_max)
            .await
            .map_err(LogError::io)?;
    }
    file.fdatasync().await.map_err(LogError::io)
}

/// How many bytes after `from` reach the last non-zero byte, looking at
/// most [`CUT_LOOK_BYTES`] ahead (a preallocated segment is mostly zeros,
/// and one unfinished group write is far smaller than that).
async fn nonzero_extent(file: &DiskFile, from: u64, file_end: u64) -> Result<u64, LogError> {
    let end = file_end.min(from + CUT_LOOK_BYTES);
    let mut pos = from;
    let mut last_nonzero = None;
    while pos < end {
        let len = (end - pos).min(1 << 20) as usize;
        let buf = file.read_at(pos, len).await.map_err(LogError::io)?;
        if let Some(i) = buf.iter().rposition(|&b| b != 0) {
            last_nonzero = Some(pos + i as u64);
        }
        if buf.is_empty() {
            break;
        }
        pos += buf.len() as u64;
    }
    Ok(last_nonzero.map_or(0, |last| last + 1 - from))
}

/// How far past the end recovery looks for leftover bytes.
const CUT_LOOK_BYTES: u64 = 8 << 20;

/// The bytes of the last partial block before `end_pos`, which the next
/// write rewrites.
async fn read_tail(file: &DiskFile, end_pos: u64) -> Result<Vec<u8>, LogError> {
    let start = align_down(end_pos);
    let len = (end_pos - start) as usize;
    if len == 0 {
        return Ok(Vec::new());
    }
    let buf = file.read_at(start, len).await.map_err(LogError::io)?;
    if buf.len() != len {
        return Err(corrupt(file.path(), start, "short read of the last block"));
    }
    Ok(tail_of(&[&buf], end_pos))
}

fn corrupt(path: &Path, position: u64, reason: impl Into<String>) -> LogError {
    let reason = reason.into();
    tracing::error!(path = %path.display(), position, %reason, "log corruption detected");
    LogError::Corrupt {
        path: path.to_path_buf(),
        position,
        reason,
    }
}
