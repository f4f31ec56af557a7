#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use super::schedule::{FlowTag, Grant, Schedule};
use super::{GateFlow, WriteGate};

const MS: Duration = Duration::from_millis(1);

/// Grants what fits and returns the payloads let through, in order.
fn grant(s: &mut Schedule<&'static str>, now: Instant) -> Vec<(&'static str, Grant)> {
    let mut out = Vec::new();
    s.grant(now, |_, name, g| out.push((name, g)));
    out
}

fn names(granted: &[(&'static str, Grant)]) -> Vec<&'static str> {
    granted.iter().map(|(n, _)| *n).collect()
}

fn limited(limit: u64, now: Instant) -> Schedule<&'static str> {
    let mut s = Schedule::adaptive(Some(2 * MS), 100 * MS, now);
    s.set_limit(limit);
    s
}

#[test]
fn nothing_is_held_back_before_the_disk_was_measured() {
    let t0 = Instant::now();
    let mut s = Schedule::adaptive(Some(2 * MS), 100 * MS, t0);
    let mut a = FlowTag::default();
    for name in ["a1", "a2", "a3"] {
        s.enqueue(&mut a, 1 << 20, name);
    }
    assert_eq!(names(&grant(&mut s, t0)), ["a1", "a2", "a3"]);
    assert_eq!(s.stats().in_flight, 3 << 20);
}

#[test]
fn a_sparse_partition_goes_before_the_backlog_of_busy_ones() {
    let t0 = Instant::now();
    let mut s = limited(130, t0);
    let (mut h1, mut h2, mut light) = Default::default();
    s.enqueue(&mut h1, 60, "h1-a");
    s.enqueue(&mut h2, 60, "h2-a");
    let first = grant(&mut s, t0);
    assert_eq!(names(&first), ["h1-a", "h2-a"]);
    // The busy partitions queue their next writes behind the limit...
    s.enqueue(&mut h2, 60, "h2-b");
    s.enqueue(&mut h1, 60, "h1-b");
    assert!(grant(&mut s, t0).is_empty());
    // ...and the sparse one, arriving last, goes first when room frees.
    s.enqueue(&mut light, 1, "light");
    s.complete(first[0].1, 60, Some(t0 + MS));
    assert_eq!(names(&grant(&mut s, t0 + MS)), ["light", "h2-b"]);
    assert_eq!(s.stats().waited_total, 1, "h2-b waited; light did not");
}

#[test]
fn busy_partitions_take_turns_by_bytes() {
    let t0 = Instant::now();
    let mut s = limited(1, t0);
    let (mut a, mut b) = (FlowTag::default(), FlowTag::default());
    let mut order = Vec::new();
    // Each flow keeps one write waiting, as a log's writer does: a writes
    // 2 units at a time, b 1.
    s.enqueue(&mut a, 2, "a");
    s.enqueue(&mut b, 1, "b");
    for _ in 0..9 {
        let g = grant(&mut s, t0);
        assert_eq!(g.len(), 1, "one at a time under a limit of 1 byte");
        let (name, grant) = g[0];
        order.push(name);
        let bytes = if name == "a" { 2 } else { 1 };
        s.complete(grant, bytes, None);
        let flow = if name == "a" { &mut a } else { &mut b };
        s.enqueue(flow, bytes, name);
    }
    let bytes_of =
        |n: &str| order.iter().filter(|o| **o == n).count() * if n == "a" { 2 } else { 1 };
    assert!(bytes_of("a").abs_diff(bytes_of("b")) <= 2, "{order:?}");
}

#[test]
fn a_write_larger_than_the_limit_goes_alone() {
    let t0 = Instant::now();
    let mut s = limited(10, t0);
    let mut a = FlowTag::default();
    s.enqueue(&mut a, 100, "big");
    s.enqueue(&mut a, 1, "small");
    let g = grant(&mut s, t0);
    assert_eq!(names(&g), ["big"]);
    s.complete(g[0].1, 100, Some(t0 + MS));
    assert_eq!(names(&grant(&mut s, t0 + MS)), ["small"]);
}

#[test]
fn a_cancelled_write_no_longer_blocks_the_ones_behind() {
    let t0 = Instant::now();
    let mut s = limited(100, t0);
    let (mut a, mut b) = (FlowTag::default(), FlowTag::default());
    s.enqueue(&mut a, 90, "a1");
    assert_eq!(names(&grant(&mut s, t0)), ["a1"]);
    // b1 is next in order and does not fit; a2 would, but waits behind it.
    let blocked = s.enqueue(&mut b, 20, "b1");
    s.enqueue(&mut a, 5, "a2");
    assert!(grant(&mut s, t0).is_empty());
    assert_eq!(s.cancel(blocked), Some("b1"));
    assert_eq!(names(&grant(&mut s, t0)), ["a2"]);
    assert_eq!(s.cancel(blocked), None);
}

#[test]
fn the_limit_follows_a_disk_that_serves_in_order() {
    // A model disk of 50 MB/s that serves one queue in order: a write
    // completes when everything before it and itself have drained.
    let t0 = Instant::now();
    let mut s = Schedule::adaptive(Some(2 * MS), 100 * MS, t0);
    let mut flows: Vec<FlowTag> = (0..4).map(|_| FlowTag::default()).collect();
    let chunk = 64 * 1024u64;
    let rate = 50_000_000u64; // bytes per second
    let mut now = t0;
    let mut disk_free_at = t0;
    let mut in_disk: std::collections::VecDeque<(Instant, Grant)> = Default::default();
    for (i, f) in flows.iter_mut().enumerate() {
        s.enqueue(f, chunk, ["0", "1", "2", "3"][i]);
    }
    while now < t0 + Duration::from_millis(500) {
        for (name, g) in grant(&mut s, now) {
            disk_free_at =
                disk_free_at.max(now) + Duration::from_nanos(chunk * 1_000_000_000 / rate);
            in_disk.push_back((disk_free_at, g));
            let i: usize = name.parse().unwrap();
            s.enqueue(&mut flows[i], chunk, name);
        }
        let (done_at, g) = in_disk.pop_front().expect("something is in flight");
        now = done_at;
        s.complete(g, chunk, Some(now));
    }
    // 2 ms of 50 MB/s is 100 kB: the limit lets one 64 KiB chunk queue
    // behind the one being written, not the whole backlog.
    let limit = s.stats().limit;
    assert!((80_000..=200_000).contains(&limit), "limit {limit}");
}

#[test]
fn the_async_gate_wakes_a_waiting_write_when_room_frees() {
    glommio::LocalExecutorBuilder::default()
        .io_memory(1 << 20)
        .spawn(|| async {
            let gate = WriteGate::new(Some(2 * MS), 100 * MS, 1);
            gate.writes.schedule.borrow_mut().set_limit(10);
            let (a, b) = (GateFlow::new(gate.clone()), GateFlow::new(gate.clone()));
            let first = a.write(8);
            first.ready().await;
            let second = b.write(8);
            let waiting = glommio::spawn_local(async move {
                second.ready().await;
                second
            })
            .detach();
            glommio::yield_if_needed().await;
            assert_eq!(gate.stats().in_flight_bytes, 8, "the second waits");
            first.done();
            drop(first);
            let second = waiting.await.unwrap();
            assert_eq!(gate.stats().in_flight_bytes, 8);
            // A permit dropped while waiting gives its place up.
            let third = a.write(8);
            drop(third);
            drop(second);
            assert_eq!(gate.stats().in_flight_bytes, 0);
            let fourth = b.write(8);
            fourth.ready().await;
            assert_eq!(gate.stats().writes_total, 3);
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn a_sparse_partition_s_sync_goes_before_a_round_of_busy_ones() {
    // One sync at a time; three busy partitions each sync again as soon as
    // their last one completed, as a log's syncer does under load.
    let t0 = Instant::now();
    let mut s = Schedule::fixed(1);
    let mut flows: Vec<FlowTag> = (0..4).map(|_| FlowTag::default()).collect();
    let busy = ["b0", "b1", "b2"];
    for (i, name) in busy.iter().enumerate() {
        s.enqueue(&mut flows[i], 1, *name);
    }
    let mut order = Vec::new();
    for step in 0..12 {
        if step == 7 {
            s.enqueue(&mut flows[3], 1, "sparse");
        }
        let g = grant(&mut s, t0);
        assert_eq!(g.len(), 1, "one sync at a time");
        let (name, grant) = g[0];
        order.push(name);
        s.complete(grant, 1, None);
        if let Some(i) = busy.iter().position(|b| *b == name) {
            s.enqueue(&mut flows[i], 1, name);
        }
    }
    assert_eq!(order[7], "sparse", "{order:?}");
    for name in busy {
        let served = order.iter().filter(|o| **o == name).count();
        assert!((3..=4).contains(&served), "{order:?}");
    }
}

#[test]
fn a_second_sync_waits_for_the_first() {
    glommio::LocalExecutorBuilder::default()
        .io_memory(1 << 20)
        .spawn(|| async {
            let gate = WriteGate::new(Some(2 * MS), 100 * MS, 1);
            let (a, b) = (GateFlow::new(gate.clone()), GateFlow::new(gate.clone()));
            let first = a.sync();
            first.ready().await;
            let second = b.sync();
            {
                let ready = second.ready();
                futures::pin_mut!(ready);
                assert!(futures::poll!(ready.as_mut()).is_pending());
                assert_eq!(gate.stats().syncs_in_flight, 1);
                first.done();
                drop(first);
                ready.await;
            }
            second.done();
            drop(second);
            let stats = gate.stats();
            assert_eq!((stats.syncs_total, stats.syncs_waited_total), (2, 1));
            assert_eq!(stats.syncs_in_flight, 0);
        })
        .unwrap()
        .join()
        .unwrap();
}
