//! The sealed segments' open files: a log keeps at most
//! [`LogConfig::open_segments_max`](crate::LogConfig::open_segments_max) of
//! them open, the ones read most recently. A read of another segment opens
//! its file and closes the one read longest ago.
//!
//! Without a bound a log holds one descriptor per segment for as long as it
//! is open, so a partition that keeps a long history, or a shard of many
//! partitions, runs into the process's open-files limit (EMFILE), and then
//! no log can open or roll. Reads of old data are sequential (a consumer
//! catching up reads one segment to its end, then the next), so a few open
//! files serve them; readers at the tail are served by the active segment,
//! which stays open, and by the tail cache.

use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
    rc::Rc,
};

use super::Shared;
use crate::{
    disk::DiskFile,
    error::{IoFailure, LogError},
};

/// Open files of sealed segments, least recently read first. Generic only
/// so that its order can be tested without files.
pub(crate) struct OpenSegments<F = Rc<DiskFile>> {
    files: VecDeque<(u64, F)>,
    max: usize,
}

impl<F: Clone> OpenSegments<F> {
    pub(crate) fn new(max: usize) -> Self {
        OpenSegments {
            files: VecDeque::with_capacity(max.min(64)),
            max,
        }
    }

    /// The open file of sealed segment `base`, which becomes the most
    /// recently read.
    pub(crate) fn get(&mut self, base: u64) -> Option<F> {
        let at = self.files.iter().position(|(b, _)| *b == base)?;
        let entry = self.files.remove(at)?;
        let file = entry.1.clone();
        self.files.push_back(entry);
        Some(file)
    }

    /// Keeps `file` open as sealed segment `base`'s, the most recently read;
    /// returns the files that no longer fit, to be closed.
    pub(crate) fn insert(&mut self, base: u64, file: F) -> Vec<F> {
        let mut out: Vec<F> = self.remove(base).into_iter().collect();
        self.files.push_back((base, file));
        while self.files.len() > self.max {
            if let Some((_, old)) = self.files.pop_front() {
                out.push(old);
            }
        }
        out
    }

    /// Stops keeping segment `base`'s file (its segment was deleted).
    pub(crate) fn remove(&mut self, base: u64) -> Option<F> {
        let at = self.files.iter().position(|(b, _)| *b == base)?;
        self.files.remove(at).map(|(_, file)| file)
    }

    /// Every file kept, to be closed (the log is closing).
    pub(crate) fn take_all(&mut self) -> Vec<F> {
        self.files.drain(..).map(|(_, file)| file).collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.files.len()
    }
}

/// Where a read finds a segment's file.
pub(crate) enum Source {
    /// Open: the active segment's, or a sealed one kept open.
    Open(Rc<DiskFile>),
    /// A sealed segment whose file must be opened first.
    Closed { base: u64, path: PathBuf },
}

/// A read's file, or `Gone`: retention deleted the segment while its file
/// was being opened.
pub(crate) enum Opened {
    File(Rc<DiskFile>),
    Gone,
}

/// The file to read through; a sealed segment's that was not open is
/// opened and kept, closing the one read longest ago.
pub(crate) async fn for_read(shared: &Shared, source: Source) -> Result<Opened, LogError> {
    let (base, path) = match source {
        Source::Open(file) => return Ok(Opened::File(file)),
        Source::Closed { base, path } => (base, path),
    };
    if let Some(file) = shared.open.borrow_mut().get(base) {
        return Ok(Opened::File(file));
    }
    let file = match open_file(shared, &path).await {
        Ok(file) => Rc::new(file),
        Err(_) if !held(shared, base) => return Ok(Opened::Gone),
        Err(failure) => return Err(LogError::io(failure)),
    };
    shared.count(|s| s.segment_opens += 1);
    // Retention may have deleted the segment meanwhile: its file still
    // reads while open, for this read only, which closes it when done.
    // With a bound of 0 the LRU hands the file straight back, and the read
    // closes it when done.
    if held(shared, base) {
        keep(shared, base, file.clone()).await;
    }
    Ok(Opened::File(file))
}

/// Opens a sealed segment's file. Out of descriptors, it closes the files
/// this log keeps and tries once more: a read that can go on slower is
/// better than one that fails.
async fn open_file(shared: &Shared, path: &Path) -> Result<DiskFile, IoFailure> {
    match shared.disk.open(path, false).await {
        Err(failure) if failure.is_out_of_files() && shared.open.borrow().len() > 0 => {
            tracing::warn!(%failure, "out of file descriptors; closing the sealed segments kept open");
            close_all(shared).await;
            shared.disk.open(path, false).await
        }
        opened => opened,
    }
}

/// True while the log holds sealed segment `base`.
fn held(shared: &Shared, base: u64) -> bool {
    shared
        .state
        .borrow()
        .segments
        .iter()
        .any(|s| s.base_offset == base && s.sealed)
}

/// Keeps `file` as sealed segment `base`'s, the most recently read, and
/// closes what no longer fits (`file` itself with a bound of 0). A roll
/// keeps the segment it seals: readers just behind the tail read it next.
pub(crate) async fn keep(shared: &Shared, base: u64, file: Rc<DiskFile>) {
    let closing = shared.open.borrow_mut().insert(base, file);
    for old in closing {
        DiskFile::close_shared(old).await;
    }
}

/// Closes segment `base`'s file if it is kept open (the segment is being
/// deleted).
pub(crate) async fn forget(shared: &Shared, base: u64) {
    let file = shared.open.borrow_mut().remove(base);
    if let Some(file) = file {
        DiskFile::close_shared(file).await;
    }
}

/// Closes every kept file (the log is closing, or out of descriptors). A
/// read in flight holds its file until it is done.
pub(crate) async fn close_all(shared: &Shared) {
    let kept = shared.open.borrow_mut().take_all();
    for file in kept {
        DiskFile::close_shared(file).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bases(open: &OpenSegments<&'static str>) -> Vec<u64> {
        open.files.iter().map(|(b, _)| *b).collect()
    }

    #[test]
    fn keeps_the_most_recently_read_up_to_its_bound() {
        let mut open = OpenSegments::new(2);
        assert!(open.insert(0, "a").is_empty());
        assert!(open.insert(10, "b").is_empty());
        // Reading 0 makes 10 the one read longest ago.
        assert_eq!(open.get(0), Some("a"));
        assert_eq!(open.insert(20, "c"), vec!["b"]);
        assert_eq!(bases(&open), vec![0, 20]);
        assert_eq!(open.get(10), None);
        // A second file for one already kept replaces it; the old closes.
        assert_eq!(open.insert(20, "c2"), vec!["c"]);
        assert_eq!(bases(&open), vec![0, 20]);
        assert_eq!(open.remove(0), Some("a"));
        assert_eq!(open.remove(0), None);
        assert_eq!(open.take_all(), vec!["c2"]);
        assert_eq!(open.len(), 0);
    }

    #[test]
    fn a_bound_of_zero_keeps_nothing() {
        let mut open = OpenSegments::new(0);
        assert_eq!(open.insert(0, "a"), vec!["a"]);
        assert_eq!(open.len(), 0);
    }
}
