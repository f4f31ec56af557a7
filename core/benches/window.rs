//! Cost per message of a subscription window's hot cycle, the way the
//! server drives it (`served/take.rs`): admit while fewer than
//! `READY_AHEAD` messages are ready and the window has room, lease up to
//! `PULL` with `next`, ack every lease, expire.
//!
//! Each iteration pushes `MESSAGES` offsets through one window with the
//! default config (`window_max` 65,536, `outstanding_max` 10,000), so
//! the indexes are at the scale a busy subscription sees. Criterion
//! reports the iteration time; divide by `MESSAGES` for the time per
//! message (the throughput line gives the reciprocal). Variants:
//! - `keyless`: no ordering, no priority, the common case;
//! - `ordered_1k_keys`: ordering on, `KEYS` distinct key hashes;
//! - `priority`: priority on, levels spread over `0..=9`.
//!
//! Run with `cargo bench -p tidegate-core --bench window`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tidegate_core::subscription::{AckId, Meta, Window, WindowConfig, PRIORITY_MAX};

/// Offsets pushed through the window per iteration.
const MESSAGES: u64 = 100_000;
/// The server stops reading ahead at this many ready messages.
const READY_AHEAD: usize = 4_096;
/// Largest pull.
const PULL: usize = 1_000;
/// Distinct ordering keys of the keyed variant.
const KEYS: u64 = 1_000;

#[derive(Clone, Copy)]
enum Variant {
    Keyless,
    Ordered,
    Priority,
}

impl Variant {
    fn config(self) -> WindowConfig {
        WindowConfig {
            ordering: matches!(self, Variant::Ordered),
            priority: matches!(self, Variant::Priority),
            ..WindowConfig::default()
        }
    }

    fn meta(self, offset: u64) -> Meta {
        match self {
            Variant::Keyless => Meta::deliver(),
            // A multiplicative hash, so keys are not in offset order.
            Variant::Ordered => Meta::deliver().with_key((offset % KEYS).wrapping_mul(0x9E37_79B9)),
            Variant::Priority => {
                let level = (offset.wrapping_mul(7) % (u64::from(PRIORITY_MAX) + 1)) as u8;
                Meta::deliver().with_priority(level)
            }
        }
    }
}

/// Pushes `MESSAGES` offsets through a fresh window; returns the acks.
fn run(variant: Variant) -> u64 {
    let mut window = Window::new(0, variant.config(), 0).unwrap();
    let mut leased: Vec<AckId> = Vec::with_capacity(PULL);
    let mut acked = 0;
    let mut now_ms = 0;
    while acked < MESSAGES {
        while window.cursor() < MESSAGES && window.ready() < READY_AHEAD && !window.is_full() {
            let offset = window.cursor();
            window.admit(offset, variant.meta(offset)).unwrap();
        }
        while leased.len() < PULL {
            let Some(delivery) = window.next(now_ms) else {
                break;
            };
            leased.push(delivery.ack_id);
        }
        for ack_id in leased.drain(..) {
            window.ack(ack_id, now_ms).unwrap();
            acked += 1;
        }
        assert!(window.expire(now_ms).is_empty());
        now_ms += 1;
    }
    assert_eq!(window.unhandled(), 0);
    acked
}

fn window_cycle(c: &mut Criterion) {
    let mut group = c.benchmark_group("window_cycle");
    group.throughput(Throughput::Elements(MESSAGES));
    group.sample_size(10);
    let variants = [
        ("keyless", Variant::Keyless),
        ("ordered_1k_keys", Variant::Ordered),
        ("priority", Variant::Priority),
    ];
    for (name, variant) in variants {
        group.bench_function(name, |b| b.iter(|| black_box(run(black_box(variant)))));
    }
    group.finish();
}

criterion_group!(benches, window_cycle);
criterion_main!(benches);
