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

use std::{collections::VecDeque, path::PathBuf, rc::Rc};

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

/// The file to read through: opened and kept, closing the file read
/// longest ago, when it was not open.
pub(crate) async fn for_read(
    shared: &Shared,
    source: Source,
    requested: u64,
) -> Result<Rc<DiskFile>, LogError> {
    let (base, path) = match source {
        Source::Open(file) => return Ok(file),
        Source::Closed { base, path } => (base, path),
    };
    if let Some(file) = shared.open.borrow_mut().get(base) {
        return Ok(file);
    }
    let file = match shared.disk.open(&path, false).await {
        Ok(file) => Rc::new(file),
        Err(failure) => return Err(gone_or(shared, base, requested, failure)),
    };
    shared.count(|s| s.segment_opens += 1);
    // Another read may have opened it meanwhile; retention may have
    // deleted the segment (its file stays readable while open).
    let still_held = shared
        .state
        .borrow()
        .segments
        .iter()
        .any(|s| s.base_offset == base && s.sealed);
    if !still_held || shared.config.open_segments_max == 0 {
        return Ok(file);
    }
    let closing = {
        let mut open = shared.open.borrow_mut();
        let closing = open.insert(base, file.clone());
        let held = open.len() as u64;
        shared.count(|s| s.segments_open = held);
        closing
    };
    for old in closing {
        DiskFile::close_shared(old).await;
    }
    Ok(file)
}

/// Keeps the file of a segment that was just sealed open, as the most
/// recently read: readers that fell just behind the tail read it next.
pub(crate) async fn keep_sealed(shared: &Shared, base: u64, file: Rc<DiskFile>) {
    let closing = if shared.config.open_segments_max == 0 {
        vec![file]
    } else {
        let mut open = shared.open.borrow_mut();
        let closing = open.insert(base, file);
        let held = open.len() as u64;
        shared.count(|s| s.segments_open = held);
        closing
    };
    for old in closing {
        DiskFile::close_shared(old).await;
    }
}

/// Closes segment `base`'s file if it is kept open (the segment is being
/// deleted).
pub(crate) async fn forget(shared: &Shared, base: u64) {
    let file = {
        let mut open = shared.open.borrow_mut();
        let file = open.remove(base);
        let held = open.len() as u64;
        shared.count(|s| s.segments_open = held);
        file
    };
    if let Some(file) = file {
        DiskFile::close_shared(file).await;
    }
}

/// A sealed segment's file that would not open: if retention deleted the
/// segment meanwhile, the read asked for an offset no longer stored.
fn gone_or(shared: &Shared, base: u64, requested: u64, failure: IoFailure) -> LogError {
    let state = shared.state.borrow();
    if state.segments.iter().any(|s| s.base_offset == base) {
        return LogError::io(failure);
    }
    let offsets = state.offsets();
    LogError::OffsetOutOfRange {
        requested,
        earliest: offsets.earliest,
        latest: offsets.latest,
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
