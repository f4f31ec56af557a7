//! Small files replaced atomically and durably: topic metadata, committed
//! offsets, checkpoints — state that is rewritten whole, rarely, and must
//! never be seen half-written.
//!
//! `write` puts the bytes in a temporary file, fdatasyncs it, renames it over
//! the target and fsyncs the directory, so a reader (or a crash) sees the old
//! content or the new, never a mix. On disk the content is framed:
//!
//! ```text
//! 0   8  magic "TGDURAB1"
//! 8   8  content length (u64 LE)
//! 16  4  CRC32C of the content (u32 LE)
//! 20  4  reserved, zero
//! 24  .. content, then zero padding to a 4 KiB block (O_DIRECT)
//! ```
//!
//! `read` checks all of it and returns a typed error for anything damaged.
//! Both run on a glommio executor (DMA files on io_uring), like the log.

use std::path::Path;

use crate::{
    disk::{Disk, Staged},
    error::LogError,
};

const MAGIC: [u8; 8] = *b"TGDURAB1";
const HEADER_LEN: usize = 24;
/// Largest content `write` accepts and `read` believes: these files hold
/// metadata, not data.
pub const MAX_CONTENT_BYTES: usize = 64 << 20;

/// Replaces `path` with `content`, durably and atomically.
pub async fn write(path: &Path, content: &[u8]) -> Result<(), LogError> {
    let staged = stage(path, content).await?;
    Disk::new().commit(staged).await.map_err(LogError::io)
}

/// The first half of [`write`]: `content` framed, durable under a temporary
/// name in `path`'s directory, not yet in place.
pub(crate) async fn stage(path: &Path, content: &[u8]) -> Result<Staged, LogError> {
    if content.len() > MAX_CONTENT_BYTES {
        return Err(LogError::Config(format!(
            "durable file content of {} bytes exceeds {MAX_CONTENT_BYTES}",
            content.len()
        )));
    }
    let mut framed = Vec::with_capacity(HEADER_LEN + content.len());
    framed.extend_from_slice(&MAGIC);
    framed.extend_from_slice(&(content.len() as u64).to_le_bytes());
    framed.extend_from_slice(&crc32c::crc32c(content).to_le_bytes());
    framed.extend_from_slice(&[0u8; 4]);
    framed.extend_from_slice(content);
    let disk = Disk::new();
    if let Some(dir) = path.parent() {
        create_dir(&disk, dir).await?;
        disk.prepare(dir).await.map_err(LogError::io)?;
    }
    disk.stage_atomic(path, &framed).await.map_err(LogError::io)
}

/// Creates `dir` if it is missing, and makes its entry durable (fsync of
/// its parent), so a file written into a new directory survives a crash.
async fn create_dir(disk: &Disk, dir: &Path) -> Result<(), LogError> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| LogError::io(crate::IoFailure::new("mkdir", dir, e)))?;
    match dir.parent() {
        Some(parent) => disk.sync_dir(parent).await.map_err(LogError::io),
        None => Ok(()),
    }
}

/// Reads what `write` wrote; `Ok(None)` when the file does not exist.
pub async fn read(path: &Path) -> Result<Option<Vec<u8>>, LogError> {
    if !path.exists() {
        return Ok(None);
    }
    let disk = Disk::new();
    if let Some(dir) = path.parent() {
        disk.prepare(dir).await.map_err(LogError::io)?;
    }
    let file = disk.open(path, false).await.map_err(LogError::io)?;
    let size = file.size().await.map_err(LogError::io)?;
    let wanted = (size as usize).min(HEADER_LEN + MAX_CONTENT_BYTES);
    let bytes = file.read_at(0, wanted).await.map_err(LogError::io);
    file.close().await;
    decode(&bytes?)
        .map(|c| Some(c.to_vec()))
        .map_err(|reason| LogError::Corrupt {
            path: path.to_path_buf(),
            position: 0,
            reason: reason.into(),
        })
}

/// Checks the framing and returns the content.
pub(crate) fn decode(bytes: &[u8]) -> Result<&[u8], &'static str> {
    let header = bytes.get(..HEADER_LEN).ok_or("truncated header")?;
    if header[..8] != MAGIC {
        return Err("bad magic");
    }
    if header[20..24] != [0u8; 4] {
        return Err("reserved bytes are not zero");
    }
    let len = u64::from_le_bytes(header[8..16].try_into().map_err(|_| "bad length")?);
    if len > MAX_CONTENT_BYTES as u64 {
        return Err("length exceeds the limit");
    }
    let content = bytes
        .get(HEADER_LEN..HEADER_LEN + len as usize)
        .ok_or("content truncated")?;
    let crc = u32::from_le_bytes(header[16..20].try_into().map_err(|_| "bad crc")?);
    if crc != crc32c::crc32c(content) {
        return Err("checksum mismatch");
    }
    Ok(content)
}
