//! Walking the batches of a segment on disk, checking each one.

use tidegate_proto::batch::{self, BatchHeader, BatchView, HEADER_LEN};

use crate::{disk::DiskFile, error::LogError, index::IndexEntry};

/// How much of a segment one scan read fetches.
const WINDOW: usize = 1 << 20;

/// Where a scan ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stop {
    /// At zeros (never written) or at the end of the file.
    Clean,
    /// At bytes that are not the next valid batch.
    Invalid { pos: u64, reason: String },
}

#[derive(Debug)]
pub(crate) struct Scanned {
    pub(crate) end_pos: u64,
    pub(crate) next_offset: u64,
    pub(crate) max_timestamp_ms: i64,
    pub(crate) stop: Stop,
}

/// Scans from `pos` (a batch boundary holding `next_offset`) to `file_end`,
/// verifying every batch (bounds, CRC, records, offset continuity) and
/// handing each one's index entry to `on_batch`.
pub(crate) async fn scan(
    file: &DiskFile,
    mut pos: u64,
    file_end: u64,
    mut next_offset: u64,
    mut max_ts: i64,
    mut on_batch: impl FnMut(IndexEntry, &BatchHeader),
    segment_base: u64,
) -> Result<Scanned, LogError> {
    let done = |pos, next_offset, max_ts, stop| Scanned {
        end_pos: pos,
        next_offset,
        max_timestamp_ms: max_ts,
        stop,
    };
    'window: loop {
        if pos >= file_end {
            return Ok(done(pos, next_offset, max_ts, Stop::Clean));
        }
        let want = WINDOW.min((file_end - pos) as usize);
        let buf = file.read_at(pos, want).await.map_err(LogError::io)?;
        let mut at = 0usize;
        loop {
            let rest = buf.get(at..).unwrap_or_default();
            let here = pos + at as u64;
            if rest.is_empty() && here >= file_end {
                return Ok(done(here, next_offset, max_ts, Stop::Clean));
            }
            if rest.len() < HEADER_LEN {
                if here + rest.len() as u64 >= file_end {
                    let stop = if rest.iter().all(|&b| b == 0) {
                        Stop::Clean
                    } else {
                        invalid(here, "truncated batch header")
                    };
                    return Ok(done(here, next_offset, max_ts, stop));
                }
                break; // read the next window from `here`
            }
            if rest[..HEADER_LEN].iter().all(|&b| b == 0) {
                return Ok(done(here, next_offset, max_ts, Stop::Clean));
            }
            let header = match batch::peek_header(rest) {
                Ok(h) => h,
                Err(e) => return Ok(done(here, next_offset, max_ts, invalid(here, e))),
            };
            let len = header.length as usize;
            if rest.len() < len {
                if here + len as u64 > file_end {
                    let stop = invalid(here, "batch runs past the end of the file");
                    return Ok(done(here, next_offset, max_ts, stop));
                }
                if at == 0 {
                    // One batch larger than the window: read exactly it.
                    let whole = file.read_at(here, len).await.map_err(LogError::io)?;
                    if let Err(stop) = check(&whole, next_offset, here) {
                        return Ok(done(here, next_offset, max_ts, stop));
                    }
                    on_batch(entry(&header, segment_base, here, max_ts), &header);
                    max_ts = max_ts.max(header.max_timestamp_ms);
                    next_offset = header.next_offset();
                    pos = here + len as u64;
                    continue 'window;
                }
                break;
            }
            if let Err(stop) = check(&rest[..len], next_offset, here) {
                return Ok(done(here, next_offset, max_ts, stop));
            }
            on_batch(entry(&header, segment_base, here, max_ts), &header);
            max_ts = max_ts.max(header.max_timestamp_ms);
            next_offset = header.next_offset();
            at += len;
        }
        pos += at as u64;
    }
}

fn entry(header: &BatchHeader, segment_base: u64, pos: u64, ts_before: i64) -> IndexEntry {
    IndexEntry {
        rel_offset: (header.base_offset - segment_base) as u32,
        pos: pos as u32,
        ts_before,
    }
}

/// Full validation of one stored batch, and that it is the one expected.
/// A batch read back from the log: its header and CRC (its records were
/// validated before it was written, and the CRC says these are the same
/// bytes), and its place.
pub(crate) fn check(bytes: &[u8], expected_offset: u64, pos: u64) -> Result<(), Stop> {
    let view = BatchView::parse_stored(bytes).map_err(|e| invalid(pos, e))?;
    if view.header().base_offset != expected_offset {
        return Err(invalid(
            pos,
            format!(
                "batch has base offset {} where {expected_offset} was expected",
                view.header().base_offset
            ),
        ));
    }
    Ok(())
}

fn invalid(pos: u64, reason: impl ToString) -> Stop {
    Stop::Invalid {
        pos,
        reason: reason.to_string(),
    }
}
