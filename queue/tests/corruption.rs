//! Damaged files: a torn tail is cut off, any other damage is reported as
//! corruption, and nothing ever panics or returns an invalid batch.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    fs::OpenOptions,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use rand::{rngs::StdRng, Rng, SeedableRng};
use support::{batch, decode, run, small_config, view};
use tidegate_proto::batch::BatchIter;
use tidegate_queue::{Ack, Log, LogError};

/// Builds a log of several segments in `dir`: `batches` batches of 2 records.
fn build(dir: &Path, batches: u64) {
    let dir = dir.to_path_buf();
    run(move || async move {
        let log = Log::open(&dir, small_config()).await.unwrap();
        for i in 0..batches {
            log.append(&view(&batch(i, 2, 900, i as i64)), Ack::Written)
                .await
                .unwrap();
        }
        log.close().await.unwrap();
    });
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

/// What opening and reading everything gives: the high watermark, the
/// bytes recovery truncated and the records read; or the first error.
type ReadAll = (u64, usize, Vec<(u64, u64, u32)>);

fn open_and_read_all(dir: &Path) -> Result<ReadAll, LogError> {
    let dir = dir.to_path_buf();
    run(move || async move {
        let log = Log::open(&dir, small_config()).await?;
        let latest = log.offsets().latest;
        let truncated = log.recovery().truncated_bytes as usize;
        let mut records = Vec::new();
        let mut next = log.offsets().earliest;
        while next < latest {
            let r = log.read(next, 1 << 16).await?;
            // Whatever the log returns is valid, whole batches.
            for b in BatchIter::new(r.as_bytes()) {
                assert!(b.is_ok(), "read returned an invalid batch: {b:?}");
            }
            records.extend(decode(r.as_bytes()));
            next = r.next_offset;
        }
        log.close().await?;
        Ok((latest, truncated, records))
    })
}

#[test]
fn torn_tail_is_truncated_on_open() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), 10);
    let active = files(dir.path(), "log").pop().unwrap();
    let (latest, _, before) = open_and_read_all(dir.path()).unwrap();
    // Half of a valid batch after the last one: a write torn by a crash.
    let len = std::fs::metadata(&active).unwrap().len();
    let tail_end = {
        // the logical end is the last byte that is not padding
        let bytes = std::fs::read(&active).unwrap();
        bytes.iter().rposition(|&b| b != 0).unwrap() as u64 + 1
    };
    let extra = batch(99, 3, 900, 0);
    let f = OpenOptions::new().write(true).open(&active).unwrap();
    f.write_all_at(&extra[..extra.len() / 2], tail_end).unwrap();
    drop(f);
    assert!(std::fs::metadata(&active).unwrap().len() >= len);
    let (latest2, truncated, after) = open_and_read_all(dir.path()).unwrap();
    assert_eq!(latest2, latest);
    assert!(truncated > 0);
    assert_eq!(after, before);
}

#[test]
fn flipped_bytes_are_truncated_or_reported_and_never_panic() {
    let template = tempfile::tempdir().unwrap();
    build(template.path(), 120);
    let (latest, _, all) = open_and_read_all(template.path()).unwrap();
    assert_eq!(latest, 240);
    let seed: u64 = rand::random();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut outcomes = [0usize; 3]; // clean, truncated, corrupt
    for round in 0..40 {
        let dir = tempfile::tempdir().unwrap();
        for f in std::fs::read_dir(template.path()).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, dir.path().join(f.file_name().unwrap())).unwrap();
        }
        let mut targets = files(dir.path(), "log");
        targets.extend(files(dir.path(), "index"));
        let target = &targets[rng.random_range(0..targets.len())];
        let len = std::fs::metadata(target).unwrap().len();
        let pos = rng.random_range(0..len);
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(target)
            .unwrap();
        let mut byte = [0u8];
        f.read_exact_at(&mut byte, pos).unwrap();
        f.write_all_at(&[byte[0] ^ (1 << rng.random_range(0..8))], pos)
            .unwrap();
        drop(f);
        match open_and_read_all(dir.path()) {
            Ok((latest, truncated, records)) => {
                // Whatever survives is a prefix of what was written.
                assert_eq!(
                    records[..],
                    all[..records.len()],
                    "seed {seed} round {round}"
                );
                assert_eq!(records.len() as u64, latest);
                outcomes[if truncated > 0 { 1 } else { 0 }] += 1;
            }
            Err(LogError::Corrupt { .. }) => outcomes[2] += 1,
            Err(e) => panic!("seed {seed} round {round}: unexpected error {e}"),
        }
    }
    eprintln!("seed {seed}: clean/truncated/corrupt = {outcomes:?}");
    assert!(
        outcomes[2] > 0,
        "no flip was reported as corruption (seed {seed})"
    );
}
