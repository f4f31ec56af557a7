//! Shared helpers for the criterion benchmarks in `benches/benches/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;

use glommio::{ExecutorJoinHandle, LocalExecutorBuilder};
use tidegate_proto::batch::{BatchBuilder, Record};

/// One batch of `records` records with `value_bytes`-byte values (no key,
/// no headers), as a producer would send it.
pub fn batch_bytes(records: u32, value_bytes: usize) -> Vec<u8> {
    let value = vec![0x5Au8; value_bytes];
    let mut builder = BatchBuilder::new();
    for i in 0..records {
        builder
            .push(Record {
                timestamp_ms: 1_700_000_000_000 + i64::from(i),
                key: None,
                value: Some(&value),
                headers: &[],
            })
            .unwrap();
    }
    builder.finish().unwrap()
}

/// Where the benchmarks' logs live: on the repository's filesystem
/// (`target/bench-log/`, not a possibly-tmpfs /tmp), or under
/// `$TIDEGATE_BENCH_DIR`.
pub fn data_root() -> PathBuf {
    let root = std::env::var_os("TIDEGATE_BENCH_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-log"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&root).unwrap();
    root
}

/// glommio's registered I/O memory for a benchmark's executor: 1 MiB (the
/// memlock limit is 8 MiB for non-root users and glommio charges it thrice,
/// see queue/tests/support), or `$TIDEGATE_BENCH_IO_MEMORY` bytes.
fn io_memory() -> usize {
    std::env::var("TIDEGATE_BENCH_IO_MEMORY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 20)
}

/// A glommio executor on its own thread, in a fresh directory under
/// [`data_root`], timing work for criterion's `iter_custom`: `serve` gets
/// the directory, receives iteration counts and answers each with the time
/// they took, until the requests end; what it returns comes back from
/// [`finish`](Self::finish).
pub struct Shard<T: Send + 'static> {
    requests: Sender<u64>,
    replies: Receiver<Duration>,
    executor: ExecutorJoinHandle<T>,
    // Removed after the executor is done with it.
    _root: tempfile::TempDir,
}

impl<T: Send + 'static> Shard<T> {
    pub fn spawn<S, F>(name: &str, serve: S) -> Shard<T>
    where
        S: FnOnce(PathBuf, Receiver<u64>, Sender<Duration>) -> F + Send + 'static,
        F: Future<Output = T> + 'static,
    {
        let root = tempfile::Builder::new()
            .prefix(name)
            .tempdir_in(data_root())
            .unwrap();
        let (requests, requests_rx) = mpsc::channel();
        let (replies_tx, replies) = mpsc::channel();
        let dir = root.path().to_path_buf();
        let executor = LocalExecutorBuilder::default()
            .io_memory(io_memory())
            .name(name)
            .spawn(move || serve(dir, requests_rx, replies_tx))
            .unwrap();
        Shard {
            requests,
            replies,
            executor,
            _root: root,
        }
    }

    /// Runs `iters` iterations on the executor; the time they took.
    pub fn time(&self, iters: u64) -> Duration {
        self.requests.send(iters).unwrap();
        self.replies.recv().unwrap()
    }

    /// Ends the requests and returns what `serve` returned.
    pub fn finish(self) -> T {
        drop(self.requests);
        self.executor.join().unwrap()
    }
}
