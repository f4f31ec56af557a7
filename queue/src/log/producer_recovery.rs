//! Rebuilding a partition's producer table on open: the newest snapshot
//! that reads back, then the headers of every batch after it.
//!
//! Snapshots only save time: the batch headers in the log are the truth.
//! A missing or damaged snapshot makes recovery start from an older one,
//! or from the first segment with an empty table.

use std::path::Path;

use tidegate_proto::batch::{peek_header, HEADER_LEN};

use super::state::Segment;
use crate::{
    config::LogConfig,
    disk::{Disk, DiskFile},
    error::LogError,
    producers::{snapshot, Identity, ProducerTable},
    segment,
};

/// Bytes of a segment one read fetches while walking headers.
const WINDOW: usize = 1 << 20;

/// The table as of the end of `segments` (all verified by recovery), and
/// the bytes of batches walked to build it.
pub(crate) async fn rebuild(
    dir: &Path,
    disk: &Disk,
    segments: &[Segment],
    config: &LogConfig,
    now_ms: i64,
) -> Result<(ProducerTable, u64), LogError> {
    let (mut table, start) = newest_snapshot(dir, segments, config).await;
    let mut walked = 0;
    for seg in segments.iter().skip(start) {
        walked += replay(disk, seg, &mut table, now_ms).await?;
    }
    Ok((table, walked))
}

/// The newest usable snapshot and the index of the segment it stands
/// before; an empty table and 0 when there is none.
async fn newest_snapshot(
    dir: &Path,
    segments: &[Segment],
    config: &LogConfig,
) -> (ProducerTable, usize) {
    for (i, seg) in segments.iter().enumerate().rev() {
        let path = segment::producers_path(dir, seg.base_offset);
        let decoded = match crate::durable::read(&path).await {
            Ok(None) => continue,
            Ok(Some(bytes)) => snapshot::decode(&bytes, config.producers_max)
                .map_err(|e| e.to_string())
                .and_then(|(table, base)| {
                    if base == seg.base_offset {
                        Ok(table)
                    } else {
                        Err(format!("it says it stands before offset {base}"))
                    }
                }),
            Err(e) => Err(e.to_string()),
        };
        match decoded {
            Ok(table) => return (table, i),
            Err(reason) => {
                tracing::warn!(path = %path.display(), reason, "producer snapshot unusable; replaying from an older one");
            }
        }
    }
    (ProducerTable::new(config.producers_max), 0)
}

/// Records every identified batch of `seg` in `table`; returns the bytes
/// walked. A sealed segment's file is opened for the walk only.
async fn replay(
    disk: &Disk,
    seg: &Segment,
    table: &mut ProducerTable,
    now_ms: i64,
) -> Result<u64, LogError> {
    match &seg.file {
        Some(file) => walk(seg, file, table, now_ms).await,
        None => {
            let file = disk.open(&seg.path, false).await.map_err(LogError::io)?;
            let walked = walk(seg, &file, table, now_ms).await;
            file.close().await;
            walked
        }
    }
}

async fn walk(
    seg: &Segment,
    file: &DiskFile,
    table: &mut ProducerTable,
    now_ms: i64,
) -> Result<u64, LogError> {
    let mut pos = segment::HEADER_LEN as u64;
    while pos < seg.size {
        let want = WINDOW.min((seg.size - pos) as usize);
        let buf = file.read_at(pos, want).await.map_err(LogError::io)?;
        let mut at = 0usize;
        while let Some(rest) = buf.get(at..).filter(|r| r.len() >= HEADER_LEN) {
            // Recovery verified every batch below `size`: a header that
            // does not read is a bug or damage since, and it ends the walk.
            let header = peek_header(rest).map_err(|e| LogError::Corrupt {
                path: seg.path.clone(),
                position: pos + at as u64,
                reason: format!("while rebuilding the producer table: {e}"),
            })?;
            if let Some(id) = Identity::of(&header) {
                // Each batch is in the log once, after the snapshot's
                // base: no check is needed, only the record.
                table.record(&id, header.base_offset, now_ms);
            }
            // May step past the window: the next read starts there.
            at += header.length as usize;
        }
        if at == 0 {
            return Err(LogError::Corrupt {
                path: seg.path.clone(),
                position: pos,
                reason: "a partial batch header ends the segment".into(),
            });
        }
        pos += at as u64;
    }
    Ok(pos.saturating_sub(segment::HEADER_LEN as u64))
}
