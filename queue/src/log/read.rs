//! Reading batches back: by offset, and finding an offset by timestamp.

use std::rc::Rc;

use bytes::Bytes;
use glommio::io::ReadResult;
use tidegate_proto::batch::{self, BatchView, HEADER_LEN};

use super::{
    files::{self, Opened, Source},
    scan::check,
    tail_cache::Seek,
    Shared,
};
use crate::{disk::DiskFile, error::LogError, segment};

/// Bytes read ahead of the first wanted batch, beyond the caller's limit,
/// so that the batch is usually found in one read.
const READ_SLACK: usize = 64 << 10;

/// Whole batches read from the log, exactly as stored.
pub struct ReadBatches {
    bytes: Stored,
    /// Offset of the first record of the first batch (may be below the
    /// offset asked for: batches are returned whole).
    pub first_offset: u64,
    /// One past the last offset returned.
    pub next_offset: u64,
    /// The high watermark when the read was served.
    pub high_watermark: u64,
}

/// Where a read's bytes are: read from disk, or shared from the tail cache.
enum Stored {
    Nothing,
    Disk(ReadResult),
    Memory(Bytes),
}

impl ReadBatches {
    /// The batches, back to back.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.bytes {
            Stored::Nothing => &[],
            Stored::Disk(read) => read,
            Stored::Memory(bytes) => bytes,
        }
    }

    /// The batches as `Bytes`, which may leave the thread: shared when they
    /// came from the tail cache, copied once when they came from disk
    /// (glommio's read buffers belong to their executor).
    pub fn into_bytes(self) -> Bytes {
        match self.bytes {
            Stored::Nothing => Bytes::new(),
            Stored::Disk(read) => Bytes::copy_from_slice(&read),
            Stored::Memory(bytes) => bytes,
        }
    }

    /// True when the bytes came from the tail cache, not a disk read.
    pub fn from_memory(&self) -> bool {
        matches!(self.bytes, Stored::Memory(_))
    }

    /// True when nothing was read (the offset is at the high watermark).
    pub fn is_empty(&self) -> bool {
        self.as_bytes().is_empty()
    }

    fn empty(offset: u64, high_watermark: u64) -> Self {
        ReadBatches {
            bytes: Stored::Nothing,
            first_offset: offset,
            next_offset: offset,
            high_watermark,
        }
    }

    fn from_disk(bytes: Option<ReadResult>, first: u64, next: u64, high_watermark: u64) -> Self {
        ReadBatches {
            bytes: bytes.map_or(Stored::Nothing, Stored::Disk),
            first_offset: first,
            next_offset: next,
            high_watermark,
        }
    }
}

/// Where a read goes: a file, a start position and the readable end. Found
/// under the state's borrow with a [`Source`], whose file may have to be
/// opened first.
struct Target<F = Rc<DiskFile>> {
    file: F,
    pos: u64,
    end: u64,
    high_watermark: u64,
}

impl Target {
    /// Closes the file if the read was its last holder: a sealed segment's
    /// file that is not among those kept open (`files.rs`).
    async fn done(self) {
        DiskFile::close_shared(self.file).await;
    }
}

impl Target<Source> {
    /// The target with its file open; `None` if retention deleted the
    /// segment while its file was being opened.
    async fn open(self, shared: &Shared) -> Result<Option<Target>, LogError> {
        let file = match files::for_read(shared, self.file).await? {
            Opened::File(file) => file,
            Opened::Gone => return Ok(None),
        };
        Ok(Some(Target {
            file,
            pos: self.pos,
            end: self.end,
            high_watermark: self.high_watermark,
        }))
    }
}

pub(crate) async fn read(
    shared: &Shared,
    offset: u64,
    max_bytes: usize,
) -> Result<ReadBatches, LogError> {
    let read = read_batches(shared, offset, max_bytes).await?;
    let (records, bytes) = (read.next_offset - read.first_offset, read.as_bytes().len());
    shared.count(|s| {
        s.records_read += records;
        s.bytes_read += bytes as u64;
    });
    Ok(read)
}

async fn read_batches(
    shared: &Shared,
    offset: u64,
    max_bytes: usize,
) -> Result<ReadBatches, LogError> {
    let target = {
        let state = shared.state.borrow();
        let offsets = state.offsets();
        if offset < offsets.earliest || offset > offsets.latest {
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                earliest: offsets.earliest,
                latest: offsets.latest,
            });
        }
        if offset == offsets.latest {
            return Ok(ReadBatches::empty(offset, offsets.latest));
        }
        let Some(seg) = state.segment_for(offset) else {
            return Ok(ReadBatches::empty(offset, offsets.latest));
        };
        // Where the batch holding `offset` is at or after, by the sparse
        // index: a disk read starts there, and so does the cache's walk.
        let pos = seg.index.seek_offset((offset - seg.base_offset) as u32);
        let seek = Seek {
            segment_base: seg.base_offset,
            pos,
        };
        if let Some(hit) = shared.tail.borrow().read(offset, max_bytes, seek) {
            shared.count(|s| s.reads_cached += 1);
            return Ok(ReadBatches {
                bytes: Stored::Memory(hit.bytes),
                first_offset: hit.first_offset,
                next_offset: hit.next_offset,
                high_watermark: offsets.latest,
            });
        }
        Target {
            file: seg.source(),
            pos,
            end: seg.size,
            high_watermark: offsets.latest,
        }
    };
    let Some(target) = target.open(shared).await? else {
        // Deleted by retention meanwhile: the offset is no longer stored.
        let offsets = shared.state.borrow().offsets();
        return Err(LogError::OffsetOutOfRange {
            requested: offset,
            earliest: offsets.earliest,
            latest: offsets.latest,
        });
    };
    let read = read_from(&target, offset, max_bytes, shared.config.verify_reads).await;
    target.done().await;
    read
}

async fn read_from(
    target: &Target,
    offset: u64,
    max_bytes: usize,
    verify: bool,
) -> Result<ReadBatches, LogError> {
    let mut pos = target.pos;
    loop {
        let want = (max_bytes.saturating_add(READ_SLACK) as u64).min(target.end - pos) as usize;
        let buf = target.file.read_at(pos, want).await.map_err(LogError::io)?;
        match select(&buf, pos, offset, max_bytes, verify, target.file.path())? {
            Selected::Range {
                start,
                len,
                first,
                next,
            } => {
                let bytes = ReadResult::slice(&buf, start, len);
                return Ok(ReadBatches::from_disk(
                    bytes,
                    first,
                    next,
                    target.high_watermark,
                ));
            }
            Selected::Skip(skip) => pos += skip as u64,
            Selected::Grow(len) => {
                let buf = target.file.read_at(pos, len).await.map_err(LogError::io)?;
                let view = BatchView::parse(&buf).map_err(|e| corrupt(target, pos, e))?;
                let h = view.header();
                let (first, next) = (h.base_offset, h.next_offset());
                return Ok(ReadBatches::from_disk(
                    Some(buf),
                    first,
                    next,
                    target.high_watermark,
                ));
            }
        }
        if pos >= target.end {
            return Ok(ReadBatches::empty(offset, target.high_watermark));
        }
    }
}

enum Selected {
    /// The batches to return: a range of the buffer.
    Range {
        start: usize,
        len: usize,
        first: u64,
        next: u64,
    },
    /// None of the buffer's complete batches hold the offset: move on.
    Skip(usize),
    /// The wanted batch starts the buffer but is longer: read this much.
    Grow(usize),
}

/// Picks whole batches out of `buf` (read at `pos`): the one holding
/// `offset` and those after it, up to `max_bytes` (at least one).
fn select(
    buf: &[u8],
    pos: u64,
    offset: u64,
    max_bytes: usize,
    verify: bool,
    path: &std::path::Path,
) -> Result<Selected, LogError> {
    let mut at = 0usize;
    let mut start: Option<(usize, u64)> = None;
    let mut next = 0u64;
    while let Some(rest) = buf.get(at..).filter(|r| r.len() >= HEADER_LEN) {
        let h = batch::peek_header(rest).map_err(|e| corrupt_at(path, pos + at as u64, e))?;
        let len = h.length as usize;
        let whole = rest.get(..len);
        match start {
            None if h.next_offset() <= offset => {
                // Skipped by its header alone, whole in the buffer or not.
                at += len;
                continue;
            }
            None => {
                let Some(bytes) = whole else {
                    return Ok(if at == 0 {
                        Selected::Grow(len)
                    } else {
                        Selected::Skip(at)
                    });
                };
                if verify {
                    check(bytes, h.base_offset, pos + at as u64)
                        .map_err(|stop| corrupt_at(path, pos + at as u64, format!("{stop:?}")))?;
                }
                start = Some((at, h.base_offset));
            }
            Some((s, _)) => {
                let Some(bytes) = whole.filter(|_| at + len - s <= max_bytes) else {
                    break;
                };
                if h.base_offset != next {
                    return Err(corrupt_at(
                        path,
                        pos + at as u64,
                        "offsets are not contiguous",
                    ));
                }
                if verify {
                    check(bytes, next, pos + at as u64)
                        .map_err(|stop| corrupt_at(path, pos + at as u64, format!("{stop:?}")))?;
                }
            }
        }
        next = h.next_offset();
        at += len;
    }
    Ok(match start {
        Some((s, first)) => Selected::Range {
            start: s,
            len: at - s,
            first,
            next,
        },
        None => Selected::Skip(at),
    })
}

pub(crate) async fn offset_for_timestamp(
    shared: &Shared,
    timestamp_ms: i64,
) -> Result<Option<u64>, LogError> {
    // Again if retention deleted the segment found while its file was
    // being opened: the search then finds a later one.
    let target = loop {
        let found = {
            let state = shared.state.borrow();
            let latest = state.written_offset;
            let Some(seg) = state.segments.iter().find(|s| {
                s.max_timestamp_ms >= timestamp_ms && s.size > segment::HEADER_LEN as u64
            }) else {
                return Ok(None);
            };
            Target {
                file: seg.source(),
                pos: seg.index.seek_time(timestamp_ms),
                end: seg.size,
                high_watermark: latest,
            }
        };
        if let Some(target) = found.open(shared).await? {
            break target;
        }
    };
    let found = find_time(&target, timestamp_ms).await;
    target.done().await;
    found
}

async fn find_time(target: &Target, timestamp_ms: i64) -> Result<Option<u64>, LogError> {
    let mut pos = target.pos;
    while pos < target.end {
        let head = target
            .file
            .read_at(pos, HEADER_LEN)
            .await
            .map_err(LogError::io)?;
        let h = batch::peek_header(&head).map_err(|e| corrupt(target, pos, e))?;
        if h.max_timestamp_ms >= timestamp_ms {
            let whole = target
                .file
                .read_at(pos, h.length as usize)
                .await
                .map_err(LogError::io)?;
            let view = BatchView::parse(&whole).map_err(|e| corrupt(target, pos, e))?;
            let found = view.records().find(|r| r.timestamp_ms() >= timestamp_ms);
            return Ok(found.map(|r| r.offset()));
        }
        pos += u64::from(h.length);
    }
    Ok(None)
}

fn corrupt(target: &Target, pos: u64, reason: impl ToString) -> LogError {
    corrupt_at(target.file.path(), pos, reason)
}

fn corrupt_at(path: &std::path::Path, position: u64, reason: impl ToString) -> LogError {
    let reason = reason.to_string();
    tracing::error!(path = %path.display(), position, %reason, "corrupt batch read from log");
    LogError::Corrupt {
        path: path.to_path_buf(),
        position,
        reason,
    }
}
