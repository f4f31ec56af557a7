//! Shared helpers for the criterion benchmarks in `benches/benches/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

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
