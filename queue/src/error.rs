//! The typed errors of the log.

use std::path::PathBuf;

use tidegate_proto::batch::BatchError;

/// An I/O operation that failed, with enough context to act on it.
///
/// Kept `Clone` (the source error is flattened to its errno and message) so
/// that one failed group-commit write can be reported to every appender that
/// was waiting on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{op} {path}: {message}")]
pub struct IoFailure {
    /// What was being done (`"write"`, `"fdatasync"`, ...).
    pub op: &'static str,
    /// The file or directory it was done to.
    pub path: PathBuf,
    /// The OS error number, when there is one.
    pub errno: Option<i32>,
    /// The OS error's message.
    pub message: String,
}

impl IoFailure {
    pub(crate) fn new(op: &'static str, path: impl Into<PathBuf>, err: std::io::Error) -> Self {
        IoFailure {
            op,
            path: path.into(),
            errno: err.raw_os_error(),
            message: err.to_string(),
        }
    }

    /// True when the device is out of space (ENOSPC, or a short write).
    pub fn is_no_space(&self) -> bool {
        self.errno == Some(libc::ENOSPC)
    }

    /// True when the process or the system is out of file descriptors
    /// (EMFILE, ENFILE): only opening a file fails so.
    pub fn is_out_of_files(&self) -> bool {
        matches!(self.errno, Some(libc::EMFILE | libc::ENFILE))
    }
}

/// Why a log operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The disk is full. Nothing of the failed append was acknowledged; the
    /// log keeps serving and appends succeed again once space returns.
    #[error("no space left on device: {0}")]
    NoSpace(IoFailure),
    /// Any other I/O error.
    #[error("i/o error: {0}")]
    Io(IoFailure),
    /// An earlier write or fdatasync failed, so the log no longer knows what
    /// is on disk: it refuses appends (reads keep working) until it is
    /// reopened, which runs recovery. fsync is never retried after a failure.
    #[error("partition log is failed and read-only after: {0}")]
    Failed(IoFailure),
    /// Stored data is corrupt somewhere other than a torn tail.
    #[error("corrupt log: {path} at byte {position}: {reason}")]
    Corrupt {
        /// The segment or index file.
        path: PathBuf,
        /// Byte position of the bad data in that file.
        position: u64,
        /// What was wrong.
        reason: String,
    },
    /// The batch handed to `append` cannot be stored.
    #[error("invalid batch: {0}")]
    InvalidBatch(#[from] BatchError),
    /// The batch is larger than a segment can hold.
    #[error("batch of {len} bytes exceeds the segment limit of {max} bytes")]
    BatchTooLarge {
        /// Length of the batch.
        len: usize,
        /// Largest batch a segment can take.
        max: usize,
    },
    /// The requested offset is outside `[earliest, latest]`.
    #[error("offset {requested} out of range [{earliest}, {latest}]")]
    OffsetOutOfRange {
        /// What was asked for.
        requested: u64,
        /// The log start offset.
        earliest: u64,
        /// The high watermark.
        latest: u64,
    },
    /// The configuration is unusable.
    #[error("invalid log configuration: {0}")]
    Config(String),
    /// The log was closed.
    #[error("partition log is closed")]
    Closed,
    /// An idempotent producer's batch carries an epoch older than one the
    /// partition has seen. Nothing was written.
    #[error(
        "producer {producer_id} epoch {epoch} is fenced: the partition has seen epoch {current}"
    )]
    ProducerFenced {
        /// The producer.
        producer_id: i64,
        /// The batch's epoch.
        epoch: i16,
        /// The newer epoch the partition has seen.
        current: i16,
    },
    /// An idempotent producer's batch does not follow its previous one.
    /// Nothing was written.
    #[error("producer {producer_id} sent sequence {got} where {expected} was expected")]
    OutOfOrderSequence {
        /// The producer.
        producer_id: i64,
        /// The batch's base sequence.
        got: i32,
        /// The sequence the partition expects next.
        expected: i32,
    },
}

impl LogError {
    /// Classifies an I/O failure: ENOSPC is its own kind.
    pub(crate) fn io(failure: IoFailure) -> Self {
        if failure.is_no_space() {
            LogError::NoSpace(failure)
        } else {
            LogError::Io(failure)
        }
    }
}
