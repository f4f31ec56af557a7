//! A segment roll: seal the active segment, start the next one.
//!
//! Each step of a roll waits for the disk, and on a disk that serves one
//! queue in order each wait is the whole queue: ten of them in a row held a
//! light producer's partition for 60–77 ms on the 50 MiB/s test disk
//! (docs/BENCHMARKS.md). So what can be written at once is, and only what
//! the crash rules order is ordered. At once:
//!
//! - **Seal:** the old segment is cut to its end and fdatasynced.
//! - **Its index checkpoint**, written and synced under a temporary name.
//!   In place, it tells recovery that what lies below it is acknowledged
//!   data, so it is renamed into place only after the seal.
//! - **The producer snapshot** of the new segment's base, likewise staged.
//! - **The new segment**, staged under a temporary name: header,
//!   preallocation, fdatasync. From the prepared spare when there is one.
//!
//! Temporary names end in `.tmp`, which recovery removes. Once all four are
//! done, the index, the snapshot and then the segment are renamed into
//! place, and one directory sync makes the three renames durable. So a
//! segment that exists on disk always has a durable predecessor, and its
//! snapshot and its predecessor's index unless the disk lost a rename;
//! recovery does without either (it verifies a sealed segment without a
//! matching index, and replays producers from further back).

use std::{path::Path, rc::Rc};

use super::{
    state::Segment,
    writer::{check_not_failed, closed_failure},
    Shared,
};
use crate::{
    disk::{Disk, DiskFile, Staged},
    error::{IoFailure, LogError},
    index::SparseIndex,
    segment,
};

/// Seals the active segment and starts a new one at `base`, durably, before
/// any batch goes into it.
pub(crate) async fn roll(
    shared: &Shared,
    base: u64,
    header: [u8; segment::HEADER_LEN],
    producers: Option<Vec<u8>>,
) -> Result<(), IoFailure> {
    let (file, checkpoint, index_path, dir) = {
        let state = shared.state.borrow();
        let seg = state.segments.last().ok_or_else(closed_failure)?;
        (
            seg.file.clone().ok_or_else(closed_failure)?,
            seg.checkpoint(),
            seg.index_path(),
            state.dir.clone(),
        )
    };
    let spare = shared.spare.borrow_mut().take();
    let index = checkpoint.encode();
    let snapshot = async {
        match producers {
            Some(snapshot) => stage_snapshot(&segment::producers_path(&dir, base), &snapshot)
                .await
                .map(Some),
            None => Ok(None),
        }
    };
    let (sealed, index, snapshot, staged) = futures::join!(
        seal(shared, &file, checkpoint.end_pos),
        shared.disk.stage_atomic(&index_path, &index),
        snapshot,
        stage(&shared.disk, &dir, base, header, &shared.config, spare),
    );
    // The sealed file's last use here: the LRU of open files takes it below.
    drop(file);
    let (index, snapshot, staged) = match (sealed, index, snapshot, staged) {
        (Ok(()), Ok(index), Ok(snapshot), Ok(staged)) => (index, snapshot, staged),
        (sealed, index, snapshot, staged) => {
            // The seal's failure first: it is the one that fails the log.
            let mut first = sealed.err();
            for staged in [index.map(Some), snapshot] {
                match staged {
                    Ok(staged) => staged.into_iter().for_each(Staged::discard),
                    Err(e) => {
                        first.get_or_insert(e);
                    }
                }
            }
            match staged {
                Ok(staged) => staged.discard(&shared.disk).await,
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
            // One of the four failed to get here; the fallback is never used.
            return Err(first.unwrap_or_else(closed_failure));
        }
    };
    let placed = match (index.place(), snapshot) {
        (Ok(()), Some(snapshot)) => snapshot.place(),
        (placed, snapshot) => {
            snapshot.into_iter().for_each(Staged::discard);
            placed
        }
    };
    if let Err(e) = placed {
        staged.discard(&shared.disk).await;
        return Err(e);
    }
    let (seg, prepared) = place(&shared.disk, &dir, base, staged).await?;
    if prepared {
        shared.count(|s| s.rolls_prepared += 1);
    }
    let sealed = {
        let mut state = shared.state.borrow_mut();
        let sealed = state.segments.last_mut().and_then(|old| {
            old.sealed = true;
            old.tail = Vec::new();
            Some((old.base_offset, old.file.take()?))
        });
        state.segments.push(seg);
        sealed
    };
    // Readers just behind the tail read the sealed segment next.
    if let Some((base, file)) = sealed {
        super::files::keep(shared, base, file).await;
    }
    Ok(())
}

/// The old segment cut to its end and synced: what it holds is durable.
async fn seal(shared: &Shared, file: &DiskFile, end_pos: u64) -> Result<(), IoFailure> {
    // Give back the preallocated space the sealed segment will not use.
    file.truncate(end_pos).await?;
    // The syncer may have failed the log during the await: never fdatasync
    // a file again after a failed fdatasync.
    check_not_failed(shared)?;
    file.fdatasync().await?;
    let mut state = shared.state.borrow_mut();
    if let Some(failure) = &state.failed {
        return Err(failure.clone());
    }
    state.durable_offset = state.written_offset;
    state.complete_durable();
    Ok(())
}

/// The producers as of the new segment's base, staged.
async fn stage_snapshot(path: &Path, snapshot: &[u8]) -> Result<Staged, IoFailure> {
    crate::durable::stage(path, snapshot)
        .await
        .map_err(|e| match e {
            LogError::Io(f) | LogError::NoSpace(f) | LogError::Failed(f) => f,
            other => IoFailure {
                op: "write",
                path: path.to_path_buf(),
                errno: None,
                message: other.to_string(),
            },
        })
}

/// A new segment, whole and synced under a temporary name.
struct StagedSegment {
    file: DiskFile,
    header: [u8; segment::HEADER_LEN],
    /// Made from a prepared spare.
    prepared: bool,
}

impl StagedSegment {
    async fn discard(self, disk: &Disk) {
        let path = self.file.path().to_path_buf();
        self.file.close().await;
        let _ = disk.remove(&path);
    }
}

/// Creates segment `base` in `dir`, durably, and returns it empty: what
/// recovery does for a log with no segment left.
pub(crate) async fn create_segment(
    disk: &Disk,
    dir: &Path,
    base: u64,
    config: &crate::LogConfig,
) -> Result<Segment, IoFailure> {
    let header = segment::encode_header(base, super::writer::now_ms());
    let staged = stage(disk, dir, base, header, config, None).await?;
    Ok(place(disk, dir, base, staged).await?.0)
}

/// The new segment under a temporary name, header first. A
/// prepared spare is all zeros already, and stays as long; anything else
/// is a new file, preallocated.
async fn stage(
    disk: &Disk,
    dir: &Path,
    base: u64,
    header: [u8; segment::HEADER_LEN],
    config: &crate::LogConfig,
    spare: Option<DiskFile>,
) -> Result<StagedSegment, IoFailure> {
    let (file, prepared) = match spare {
        Some(spare) => (spare, true),
        None => {
            let mut tmp = segment::log_path(dir, base).into_os_string();
            tmp.push(".staged.tmp");
            (disk.open(Path::new(&tmp), true).await?, false)
        }
    };
    let mut buf = file.alloc(crate::disk::BLOCK);
    let dst = buf.as_bytes_mut();
    dst.fill(0);
    dst[..header.len()].copy_from_slice(&header);
    let result = async {
        if !prepared {
            file.truncate(0).await?;
        }
        file.write_at(buf, 0).await?;
        if config.preallocate && !prepared {
            file.preallocate(config.segment_bytes_max).await?;
        }
        file.fdatasync().await
    }
    .await;
    let staged = StagedSegment {
        file,
        header,
        prepared,
    };
    match result {
        Ok(()) => Ok(staged),
        Err(e) => {
            staged.discard(disk).await;
            Err(e)
        }
    }
}

/// Gives the staged file the segment's name and opens it there; the
/// directory sync makes that rename durable, with those done before it.
async fn place(
    disk: &Disk,
    dir: &Path,
    base: u64,
    staged: StagedSegment,
) -> Result<(Segment, bool), IoFailure> {
    let path = segment::log_path(dir, base);
    // Renamed open: reopening under the new name could fail (out of
    // descriptors) and leave a segment file the log does not hold.
    let mut file = staged.file;
    if let Err(e) = file.rename(&path) {
        let staged_path = file.path().to_path_buf();
        file.close().await;
        let _ = disk.remove(&staged_path);
        return Err(e);
    }
    if let Err(e) = disk.sync_dir(dir).await {
        // Not known to be durable under its name: the roll fails, and the
        // file must not stay as a segment the log does not hold.
        file.close().await;
        let _ = disk.remove(&path);
        return Err(e);
    }
    let seg = Segment {
        base_offset: base,
        path,
        file: Some(Rc::new(file)),
        size: segment::HEADER_LEN as u64,
        next_offset: base,
        max_timestamp_ms: i64::MIN,
        index: SparseIndex::default(),
        tail: staged.header.to_vec(),
        sealed: false,
        checkpointed_pos: segment::HEADER_LEN as u64,
    };
    Ok((seg, staged.prepared))
}
