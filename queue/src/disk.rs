//! The one narrow interface through which the log touches the disk.
//!
//! Everything the log does to files (DMA reads and writes, fdatasync,
//! preallocation, truncation, directory sync, small metadata files) goes
//! through here, so that a [`FaultPlan`](crate::fault::FaultPlan) can break
//! any of it reproducibly, and so that glommio's quirks are handled in one
//! place:
//! - `DmaFile::create` opens write-only, so files are opened with
//!   `OpenOptions` read + write.
//! - O_DIRECT needs aligned positions and lengths; we align to [`BLOCK`].
//! - glommio probes polled I/O by reading the first DMA file a thread opens
//!   on a device; an empty file makes the probe wrongly succeed and later
//!   reads fail with EOPNOTSUPP. [`Disk::prepare`] opens a non-empty file
//!   first.
//! - glommio opens paths with `openat(-1, path)`: a relative path fails with
//!   EBADF. Every path is made absolute here first ([`absolute`]).

use std::{
    cell::RefCell,
    collections::HashSet,
    path::{Path, PathBuf},
    rc::Rc,
};

use glommio::io::{DmaBuffer, DmaFile, OpenOptions, ReadResult};

use crate::{
    error::IoFailure,
    fault::{FaultPlan, FaultState, WriteFault},
};

/// Alignment of every write position and length. 4 KiB satisfies both
/// 512-byte and 4 KiB logical-block devices.
pub(crate) const BLOCK: usize = 4096;

/// `path` made absolute against the working directory, for glommio (see
/// the module documentation). Unchanged if it already is, or if the working
/// directory cannot be read.
pub(crate) fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

pub(crate) fn align_down(v: u64) -> u64 {
    v - v % BLOCK as u64
}

pub(crate) fn align_up(v: u64) -> u64 {
    v.div_ceil(BLOCK as u64) * BLOCK as u64
}

thread_local! {
    /// Devices (st_dev) on which this thread has already run glommio's probe.
    static PROBED: RefCell<HashSet<u64>> = RefCell::new(HashSet::new());
}

type Faults = Rc<RefCell<FaultState>>;

/// The disk under one log.
#[derive(Clone)]
pub(crate) struct Disk {
    faults: Faults,
}

impl Disk {
    pub(crate) fn new() -> Self {
        Disk {
            faults: Rc::new(RefCell::new(FaultState::new(FaultPlan::default()))),
        }
    }

    pub(crate) fn heal(&self) {
        self.faults.borrow_mut().heal();
    }

    /// Replaces the fault plan; its counts start again from zero.
    pub(crate) fn inject(&self, plan: FaultPlan) {
        *self.faults.borrow_mut() = FaultState::new(plan);
    }

    /// Makes sure glommio's polled-I/O probe on this thread reads a
    /// non-empty file of `dir`'s device before any segment is opened.
    pub(crate) async fn prepare(&self, dir: &Path) -> Result<(), IoFailure> {
        use std::os::unix::fs::MetadataExt;
        let dev = std::fs::metadata(dir)
            .map_err(|e| IoFailure::new("stat", dir, e))?
            .dev();
        if PROBED.with(|p| p.borrow().contains(&dev)) {
            return Ok(());
        }
        let path = temporary_name(&dir.join(".dma-probe"));
        std::fs::write(&path, [0xA5u8; BLOCK]).map_err(|e| IoFailure::new("write", &path, e))?;
        let file = DmaFile::open(absolute(&path))
            .await
            .map_err(|e| glommio_failure("open", &path, e))?;
        let _ = file.close().await;
        std::fs::remove_file(&path).map_err(|e| IoFailure::new("remove", &path, e))?;
        PROBED.with(|p| p.borrow_mut().insert(dev));
        Ok(())
    }

    /// Opens (or creates) a file for DMA reads and writes.
    pub(crate) async fn open(&self, path: &Path, create: bool) -> Result<DiskFile, IoFailure> {
        if let Some(kind) = self.faults.borrow_mut().on_open() {
            return Err(injected("open", path, kind.errno()));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .dma_open(absolute(path))
            .await
            .map_err(|e| glommio_failure("open", path, e))?;
        Ok(DiskFile {
            file,
            path: path.to_path_buf(),
            faults: self.faults.clone(),
        })
    }

    /// fsyncs a directory, so that creates, renames and removes in it are
    /// durable.
    pub(crate) async fn sync_dir(&self, dir: &Path) -> Result<(), IoFailure> {
        let d = glommio::io::Directory::open(absolute(dir))
            .await
            .map_err(|e| glommio_failure("open dir", dir, e))?;
        d.sync()
            .await
            .map_err(|e| glommio_failure("fsync dir", dir, e))?;
        let _ = d.close().await;
        Ok(())
    }

    pub(crate) fn remove(&self, path: &Path) -> Result<(), IoFailure> {
        match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(IoFailure::new("remove", path, e)),
        }
    }

    /// Replaces `path` with `bytes` durably: write a temporary file, fsync
    /// it, rename it over `path`, fsync the directory. A reader sees the old
    /// file or the new one, never a mix. The file is padded to a block; the
    /// content must carry its own length.
    pub(crate) async fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), IoFailure> {
        let staged = self.stage_atomic(path, bytes).await?;
        self.commit(staged).await
    }

    /// The second half of [`Disk::write_atomic`]: `staged` renamed into
    /// place and its directory synced.
    pub(crate) async fn commit(&self, staged: Staged) -> Result<(), IoFailure> {
        let dir = staged.path.parent().unwrap_or(Path::new(".")).to_path_buf();
        staged.place()?;
        self.sync_dir(&dir).await
    }

    /// The first half of [`Disk::write_atomic`]: the bytes durable under a
    /// temporary name. [`Staged::place`] and a directory sync finish it;
    /// several files staged at once can share that one sync.
    pub(crate) async fn stage_atomic(
        &self,
        path: &Path,
        bytes: &[u8],
    ) -> Result<Staged, IoFailure> {
        let tmp = temporary_name(path);
        let file = self.open(&tmp, true).await?;
        let written = async {
            file.truncate(0).await?;
            let len = align_up(bytes.len() as u64).max(BLOCK as u64) as usize;
            let mut buf = file.alloc(len);
            let dst = buf.as_bytes_mut();
            dst.fill(0);
            dst[..bytes.len()].copy_from_slice(bytes);
            let _ = file.write_at(buf, 0).await?;
            file.fdatasync().await
        }
        .await;
        file.close().await;
        let staged = Staged {
            tmp,
            path: path.to_path_buf(),
        };
        match written {
            Ok(()) => Ok(staged),
            Err(e) => {
                staged.discard();
                Err(e)
            }
        }
    }
}

/// A small file written and synced under a temporary name (`.tmp`, which
/// recovery removes), not yet in place.
#[derive(Debug)]
pub(crate) struct Staged {
    tmp: PathBuf,
    path: PathBuf,
}

impl Staged {
    /// Renames it into place. It is durable there once the directory is
    /// synced.
    pub(crate) fn place(self) -> Result<(), IoFailure> {
        std::fs::rename(&self.tmp, &self.path).map_err(|e| IoFailure::new("rename", &self.tmp, e))
    }

    /// Removes it, for a caller that will not place it.
    pub(crate) fn discard(self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// Reused DMA buffers, one free list per power-of-two size from one block
/// up to the write chunk, holding at most `bytes_max` in all. Fresh buffers
/// beyond glommio's registered area come from the heap, and touching new
/// pages cost about a quarter of the writer's time in the append benchmark;
/// reusing them removes that.
pub(crate) struct BufferPool {
    classes: Vec<Vec<DmaBuffer>>,
    bytes: usize,
    bytes_max: usize,
}

impl BufferPool {
    pub(crate) fn new(chunk_bytes: usize, bytes_max: usize) -> Self {
        let classes = (chunk_bytes / BLOCK).max(1).ilog2() as usize + 1;
        BufferPool {
            classes: (0..classes).map(|_| Vec::new()).collect(),
            bytes: 0,
            bytes_max,
        }
    }

    fn class(len: usize) -> Option<usize> {
        let blocks = len / BLOCK;
        (len % BLOCK == 0 && blocks.is_power_of_two()).then(|| blocks.ilog2() as usize)
    }

    /// A buffer of exactly `len` bytes (a power-of-two number of blocks).
    pub(crate) fn take(&mut self, len: usize) -> DmaBuffer {
        let reused = Self::class(len)
            .and_then(|c| self.classes.get_mut(c))
            .and_then(Vec::pop);
        match reused {
            Some(buf) => {
                self.bytes -= buf.len();
                buf
            }
            None => glommio::allocate_dma_buffer(len.max(BLOCK)),
        }
    }

    pub(crate) fn give(&mut self, buf: DmaBuffer) {
        if self.bytes + buf.len() > self.bytes_max {
            return;
        }
        if let Some(list) = Self::class(buf.len()).and_then(|c| self.classes.get_mut(c)) {
            self.bytes += buf.len();
            list.push(buf);
        }
    }
}

/// Splits `len` bytes (a multiple of [`BLOCK`]) into pieces of at most
/// `chunk` bytes, each a power-of-two number of blocks, largest first.
pub(crate) fn pieces(len: usize, chunk: usize) -> impl Iterator<Item = usize> {
    let full = len / chunk;
    let rest = len % chunk;
    let bits = (0..usize::BITS)
        .rev()
        .map(|b| 1usize << b)
        .filter(move |bit| rest & bit != 0);
    std::iter::repeat_n(chunk, full).chain(bits)
}

/// A temporary name beside `path` that no other write shares (two writes
/// of different files must never meet in one temporary file). Recovery
/// removes leftovers by their `.tmp` suffix.
fn temporary_name(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.{n}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// An I/O failure from glommio, with its errno. glommio's conversion to
/// `io::Error` keeps the kind but drops the errno, and the log tells a full
/// disk (ENOSPC) and a process out of descriptors (EMFILE) from a failed
/// device by it.
fn glommio_failure(op: &'static str, path: &Path, e: glommio::GlommioError<()>) -> IoFailure {
    IoFailure {
        op,
        path: path.to_path_buf(),
        errno: e.raw_os_error(),
        message: e.to_string(),
    }
}

/// The failure an injected fault reports.
fn injected(op: &'static str, path: &Path, errno: i32) -> IoFailure {
    IoFailure {
        op,
        path: path.to_path_buf(),
        errno: Some(errno),
        message: format!(
            "injected fault: {}",
            std::io::Error::from_raw_os_error(errno)
        ),
    }
}

/// One file opened for DMA I/O.
pub(crate) struct DiskFile {
    file: DmaFile,
    path: PathBuf,
    faults: Faults,
}

impl DiskFile {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Gives the file a new name (in the same directory). The descriptor
    /// stays open, so nothing is left to fail once the name has moved.
    pub(crate) fn rename(&mut self, to: &Path) -> Result<(), IoFailure> {
        std::fs::rename(&self.path, to).map_err(|e| IoFailure::new("rename", &self.path, e))?;
        self.path = to.to_path_buf();
        Ok(())
    }

    pub(crate) fn alloc(&self, len: usize) -> DmaBuffer {
        self.file.alloc_dma_buffer(len.max(BLOCK))
    }

    /// Writes the whole buffer at `pos` (both aligned) and hands the buffer
    /// back for reuse. A short write is reported as ENOSPC, which is what it
    /// means for a regular file.
    pub(crate) async fn write_at(
        &self,
        mut buf: DmaBuffer,
        pos: u64,
    ) -> Result<Option<DmaBuffer>, IoFailure> {
        debug_assert_eq!(pos % BLOCK as u64, 0);
        debug_assert_eq!(buf.len() % BLOCK, 0);
        let fault = self.faults.borrow_mut().on_write();
        let mut tear_error = false;
        match fault {
            WriteFault::None => {}
            WriteFault::Fail(kind) => return Err(self.injected("write", kind.errno())),
            WriteFault::Tear { blocks } => {
                let keep = (blocks * BLOCK).min(buf.len());
                if keep == 0 {
                    return Err(self.injected("write", libc::EIO));
                }
                buf.trim_to_size(keep);
                tear_error = true;
            }
        }
        let want = buf.len();
        let buf = Rc::new(buf);
        let done = self
            .file
            .write_rc_at(buf.clone(), pos)
            .await
            .map_err(|e| glommio_failure("write", &self.path, e))?;
        if tear_error {
            return Err(self.injected("write", libc::EIO));
        }
        if done != want {
            return Err(IoFailure {
                op: "write",
                path: self.path.clone(),
                errno: Some(libc::ENOSPC),
                message: format!("short write: {done} of {want} bytes"),
            });
        }
        Ok(Rc::try_unwrap(buf).ok())
    }

    /// Reads `len` bytes at any `pos`; fewer at the end of the file.
    pub(crate) async fn read_at(&self, pos: u64, len: usize) -> Result<ReadResult, IoFailure> {
        self.file
            .read_at(pos, len)
            .await
            .map_err(|e| glommio_failure("read", &self.path, e))
    }

    pub(crate) async fn fdatasync(&self) -> Result<(), IoFailure> {
        let fault = self.faults.borrow_mut().on_sync();
        if let Some(kind) = fault {
            return Err(self.injected("fdatasync", kind.errno()));
        }
        self.file
            .fdatasync()
            .await
            .map_err(|e| glommio_failure("fdatasync", &self.path, e))
    }

    pub(crate) async fn truncate(&self, len: u64) -> Result<(), IoFailure> {
        self.file
            .truncate(len)
            .await
            .map_err(|e| glommio_failure("truncate", &self.path, e))
    }

    /// Reserves the file's blocks up to `len` and extends it to that size
    /// (zeros). Not keeping the size matters: O_DIRECT writes past the end
    /// of a file need a metadata update each and ext4 punts them to
    /// io_uring's worker threads; measured here, fio sequential writes drop
    /// from about 1.95 to 1.4 GB/s with `--fallocate=keep`. The log finds
    /// its end by scanning to zeros instead.
    pub(crate) async fn preallocate(&self, len: u64) -> Result<(), IoFailure> {
        self.file
            .pre_allocate(len, false)
            .await
            .map_err(|e| glommio_failure("fallocate", &self.path, e))
    }

    pub(crate) async fn size(&self) -> Result<u64, IoFailure> {
        self.file
            .file_size()
            .await
            .map_err(|e| glommio_failure("stat", &self.path, e))
    }

    /// Closes the file now. Errors on close of an O_DIRECT file carry no
    /// lost data: every byte that matters was fdatasynced before it was
    /// acknowledged.
    pub(crate) async fn close(self) {
        let _ = self.file.close().await;
    }

    /// Closes a shared file if this is its last holder; otherwise the last
    /// holder (a read in flight, say) closes it when it drops it (glommio
    /// then closes the descriptor at its next I/O cycle).
    pub(crate) async fn close_shared(file: Rc<DiskFile>) {
        if let Ok(file) = Rc::try_unwrap(file) {
            file.close().await;
        }
    }

    fn injected(&self, op: &'static str, errno: i32) -> IoFailure {
        injected(op, &self.path, errno)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_length_in_power_of_two_blocks() {
        let chunk = 64 * BLOCK;
        for blocks in 0..300 {
            let len = blocks * BLOCK;
            let p: Vec<usize> = pieces(len, chunk).collect();
            assert_eq!(p.iter().sum::<usize>(), len);
            assert!(p
                .iter()
                .all(|&x| x <= chunk && (x / BLOCK).is_power_of_two()));
            assert!(p.windows(2).all(|w| w[0] >= w[1]));
        }
    }
}
