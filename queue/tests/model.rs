//! Model test: random appends, reads, timestamp lookups, retention and
//! reopens (clean and abrupt) against a plain in-memory model of the log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use proptest::prelude::*;
use support::{batch, decode, run, view};
use tidegate_queue::{Ack, Log, LogConfig, LogError};

#[derive(Debug, Clone)]
enum Op {
    Append {
        records: u32,
        value_len: usize,
        durable: bool,
    },
    Read {
        at: f64,
        max_bytes: usize,
    },
    Lookup {
        at: f64,
    },
    Retain {
        bytes: u64,
    },
    Reopen {
        clean: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u32..20, 12usize..2500, any::<bool>())
            .prop_map(|(records, value_len, durable)| Op::Append { records, value_len, durable }),
        3 => (0.0..1.0f64, 1usize..40_000).prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        1 => (0.0..1.0f64).prop_map(|at| Op::Lookup { at }),
        1 => (0u64..200_000).prop_map(|bytes| Op::Retain { bytes }),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ]
}

/// One record of the model: (batch tag, index in batch, timestamp).
type Rec = (u64, u32, i64);

struct Model {
    records: Vec<Rec>, // by offset
    earliest: u64,
    batch_bases: Vec<u64>,
}

fn config(retention_bytes: Option<u64>) -> LogConfig {
    LogConfig {
        segment_bytes_max: 32 << 10,
        index_interval_bytes: 1500,
        write_chunk_bytes: 8 << 10,
        write_concurrency: 3,
        retention_bytes,
        ..LogConfig::default()
    }
}

async fn check_read(log: &Log, model: &Model, offset: u64, max_bytes: usize) {
    let latest = model.records.len() as u64;
    let r = log.read(offset, max_bytes).await.unwrap();
    if offset == latest {
        assert!(r.is_empty());
        return;
    }
    assert!(r.first_offset <= offset && offset < r.next_offset);
    assert!(model.batch_bases.contains(&r.first_offset));
    let got = decode(r.as_bytes());
    assert_eq!(got.len() as u64, r.next_offset - r.first_offset);
    for (o, tag, i) in got {
        let (mtag, mi, _) = model.records[o as usize];
        assert_eq!((tag, i), (mtag, mi), "offset {o}");
    }
}

fn run_ops(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let mut log = Log::open(&path, config(None)).await.unwrap();
        let mut model = Model {
            records: Vec::new(),
            earliest: 0,
            batch_bases: Vec::new(),
        };
        let mut ts = 0i64;
        for (n, op) in ops.into_iter().enumerate() {
            let latest = model.records.len() as u64;
            match op {
                Op::Append {
                    records,
                    value_len,
                    durable,
                } => {
                    let tag = n as u64;
                    ts += 10;
                    let bytes = batch(tag, records, value_len, ts);
                    let ack = if durable { Ack::Durable } else { Ack::Written };
                    let result = log.append(&view(&bytes), ack).await;
                    if bytes.len() > config(None).batch_bytes_max() {
                        assert!(matches!(result, Err(LogError::BatchTooLarge { .. })));
                        continue;
                    }
                    let a = result.unwrap();
                    assert_eq!(a.base_offset, latest);
                    model.batch_bases.push(latest);
                    for i in 0..records {
                        model.records.push((tag, i, ts + i as i64));
                    }
                }
                Op::Read { at, max_bytes } => {
                    let span = latest - model.earliest;
                    let offset = model.earliest + (span as f64 * at) as u64;
                    check_read(&log, &model, offset, max_bytes).await;
                }
                Op::Lookup { at } => {
                    let target = (ts as f64 * at) as i64;
                    let expect = model.records[model.earliest as usize..]
                        .iter()
                        .position(|r| r.2 >= target)
                        .map(|p| p as u64 + model.earliest);
                    assert_eq!(log.offset_for_timestamp(target).await.unwrap(), expect);
                }
                Op::Retain { bytes } => {
                    log.close().await.unwrap();
                    log = Log::open(&path, config(Some(bytes))).await.unwrap();
                    let report = log.enforce_retention(0).await.unwrap();
                    assert!(report.earliest >= model.earliest && report.earliest <= latest);
                    assert!(
                        model.batch_bases.contains(&report.earliest) || report.earliest == latest
                    );
                    assert!(log.size_bytes() <= bytes || log.segment_count() == 1);
                    model.earliest = report.earliest;
                    log.close().await.unwrap();
                    log = Log::open(&path, config(None)).await.unwrap();
                }
                Op::Reopen { clean } => {
                    if clean {
                        log.close().await.unwrap();
                    } else {
                        drop(log);
                    }
                    log = Log::open(&path, config(None)).await.unwrap();
                    assert_eq!(log.recovery().truncated_bytes, 0);
                }
            }
            let o = log.offsets();
            assert_eq!(
                (o.earliest, o.latest),
                (model.earliest, model.records.len() as u64)
            );
        }
        // Everything the model holds reads back, from earliest to latest.
        let mut next = model.earliest;
        while next < model.records.len() as u64 {
            check_read(&log, &model, next, 10_000).await;
            next = log.read(next, 10_000).await.unwrap().next_offset;
        }
        log.close().await.unwrap();
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        run_ops(ops);
    }
}
