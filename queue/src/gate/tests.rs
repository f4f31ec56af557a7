#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    rc::Rc,
    time::{Duration, Instant},
};

use super::schedule::{FlowTag, Grant, Schedule};
use super::{GateFlow, WriteGate};

const MS: Duration = Duration::from_millis(1);

/// A gate with `target`, one fdatasync at a time, and barriers.
fn config(target: Duration) -> super::GateConfig {
    super::GateConfig {
        target: Some(target),
        interval: 100 * MS,
        syncs: 1,
        sync_barriers: true,
    }
}

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
    let mut s = Schedule::adaptive(Some(2 * MS), 100 * MS, Some(2 * MS), now);
    s.set_limit(limit);
    s
}

#[test]
fn the_schedule_is_holding_once_a_grant_leaves_a_write_waiting() {
    let t0 = Instant::now();
    let mut s = limited(100, t0);
    let mut a = FlowTag::new(1);
    s.enqueue(&mut a, 80, false, "a1");
    s.enqueue(&mut a, 80, false, "a2");
    assert!(!s.holding(), "not granted yet: nothing was held");
    let first = grant(&mut s, t0);
    assert_eq!(names(&first), ["a1"]);
    assert!(s.holding());
    s.complete(first[0].1, 80, Some(t0 + MS));
    assert_eq!(names(&grant(&mut s, t0 + MS)), ["a2"]);
    assert!(!s.holding());
}

#[test]
fn nothing_is_held_back_before_the_disk_was_measured() {
    let t0 = Instant::now();
    let mut s = Schedule::adaptive(Some(2 * MS), 100 * MS, Some(2 * MS), t0);
    let mut a = FlowTag::new(1);
    for name in ["a1", "a2", "a3"] {
        s.enqueue(&mut a, 1 << 20, false, name);
    }
    assert_eq!(names(&grant(&mut s, t0)), ["a1", "a2", "a3"]);
    assert_eq!(s.stats().in_flight, 3 << 20);
}

#[test]
fn a_sparse_flow_goes_before_the_backlog_of_busy_ones() {
    let t0 = Instant::now();
    let mut s = limited(130, t0);
    let (mut h1, mut h2, mut light) = (FlowTag::new(1), FlowTag::new(2), FlowTag::new(3));
    s.enqueue(&mut h1, 60, false, "h1-a");
    s.enqueue(&mut h2, 60, false, "h2-a");
    let first = grant(&mut s, t0);
    assert_eq!(names(&first), ["h1-a", "h2-a"]);
    // The busy flows queue their next writes behind the limit...
    s.enqueue(&mut h2, 60, false, "h2-b");
    s.enqueue(&mut h1, 60, false, "h1-b");
    assert!(grant(&mut s, t0).is_empty());
    // ...and the sparse one, arriving last, goes first when room frees.
    s.enqueue(&mut light, 1, false, "light");
    s.complete(first[0].1, 60, Some(t0 + MS));
    assert_eq!(names(&grant(&mut s, t0 + MS)), ["light", "h2-b"]);
    assert_eq!(s.stats().waited_total, 1, "h2-b waited; light did not");
}

#[test]
fn busy_flows_take_turns_by_bytes() {
    let t0 = Instant::now();
    let mut s = limited(1, t0);
    let (mut a, mut b) = (FlowTag::new(1), FlowTag::new(2));
    let mut order = Vec::new();
    // Each flow keeps one write waiting, as a log's writer does: a writes
    // 2 units at a time, b 1.
    s.enqueue(&mut a, 2, false, "a");
    s.enqueue(&mut b, 1, false, "b");
    for _ in 0..9 {
        let g = grant(&mut s, t0);
        assert_eq!(g.len(), 1, "one at a time under a limit of 1 byte");
        let (name, grant) = g[0];
        order.push(name);
        let bytes = if name == "a" { 2 } else { 1 };
        s.complete(grant, bytes, None);
        let flow = if name == "a" { &mut a } else { &mut b };
        s.enqueue(flow, bytes, false, name);
    }
    let bytes_of =
        |n: &str| order.iter().filter(|o| **o == n).count() * if n == "a" { 2 } else { 1 };
    assert!(bytes_of("a").abs_diff(bytes_of("b")) <= 2, "{order:?}");
}

#[test]
fn a_write_larger_than_the_limit_goes_alone() {
    let t0 = Instant::now();
    let mut s = limited(10, t0);
    let mut a = FlowTag::new(1);
    s.enqueue(&mut a, 100, false, "big");
    s.enqueue(&mut a, 1, false, "small");
    let g = grant(&mut s, t0);
    assert_eq!(names(&g), ["big"]);
    s.complete(g[0].1, 100, Some(t0 + MS));
    assert_eq!(names(&grant(&mut s, t0 + MS)), ["small"]);
}

#[test]
fn a_cancelled_write_no_longer_blocks_the_ones_behind() {
    let t0 = Instant::now();
    let mut s = limited(100, t0);
    let (mut a, mut b) = (FlowTag::new(1), FlowTag::new(2));
    s.enqueue(&mut a, 90, false, "a1");
    assert_eq!(names(&grant(&mut s, t0)), ["a1"]);
    // b1 is next in order and does not fit; a2 would, but waits behind it.
    let blocked = s.enqueue(&mut b, 20, false, "b1");
    s.enqueue(&mut a, 5, false, "a2");
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
    let mut s = Schedule::adaptive(Some(2 * MS), 100 * MS, Some(2 * MS), t0);
    let mut flows: Vec<FlowTag> = (0..4).map(FlowTag::new).collect();
    let chunk = 64 * 1024u64;
    let rate = 50_000_000u64; // bytes per second
    let mut now = t0;
    let mut disk_free_at = t0;
    let mut in_disk: std::collections::VecDeque<(Instant, Grant)> = Default::default();
    for (i, f) in flows.iter_mut().enumerate() {
        s.enqueue(f, chunk, false, ["0", "1", "2", "3"][i]);
    }
    while now < t0 + Duration::from_millis(500) {
        for (name, g) in grant(&mut s, now) {
            disk_free_at =
                disk_free_at.max(now) + Duration::from_nanos(chunk * 1_000_000_000 / rate);
            in_disk.push_back((disk_free_at, g));
            let i: usize = name.parse().unwrap();
            s.enqueue(&mut flows[i], chunk, false, name);
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
fn the_async_gate_wakes_a_waiting_write_when_room_frees_and_says_while_it_holds_one() {
    run(|| async {
        let gate = WriteGate::new(config(2 * MS));
        gate.writes.schedule.borrow_mut().set_limit(10);
        let (a, b) = (GateFlow::new(gate.clone()), GateFlow::new(gate.clone()));
        let first = a.write(8, false);
        first.ready().await;
        assert!(!gate.holding_writes(), "one write fits the limit");
        let second = b.write(8, false);
        assert!(gate.holding_writes(), "the second waits for room");
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
        assert!(!gate.holding_writes(), "nothing waits any more");
        // A permit dropped while waiting gives its place up, and is no
        // longer held.
        let third = a.write(8, false);
        assert!(gate.holding_writes());
        drop(third);
        assert!(!gate.holding_writes());
        drop(second);
        assert_eq!(gate.stats().in_flight_bytes, 0);
        let fourth = b.write(8, false);
        fourth.ready().await;
        assert_eq!(gate.stats().writes_total, 3);
    });
}

#[test]
fn background_slots_are_bounded_per_gate_and_given_back_on_drop() {
    let gate = WriteGate::unlimited();
    let slots: Vec<_> = (0..super::BACKGROUND_MAX)
        .map(|_| gate.background().expect("a slot below the bound"))
        .collect();
    assert!(gate.background().is_none(), "no slot above the bound");
    drop(slots);
    let again: Vec<_> = (0..super::BACKGROUND_MAX)
        .filter_map(|_| gate.background())
        .collect();
    assert_eq!(again.len(), super::BACKGROUND_MAX, "all given back");
}

#[test]
fn a_sparse_flow_s_sync_goes_before_a_round_of_busy_ones() {
    // One sync at a time; three busy flows each sync again as soon as
    // their last one completed, as a log's syncer does under load.
    let t0 = Instant::now();
    let mut s = Schedule::fixed(1);
    let mut flows: Vec<FlowTag> = (0..4).map(FlowTag::new).collect();
    let busy = ["b0", "b1", "b2"];
    for (i, name) in busy.iter().enumerate() {
        s.enqueue(&mut flows[i], 1, false, *name);
    }
    let mut order = Vec::new();
    for step in 0..12 {
        if step == 7 {
            s.enqueue(&mut flows[3], 1, false, "sparse");
        }
        let g = grant(&mut s, t0);
        assert_eq!(g.len(), 1, "one sync at a time");
        let (name, grant) = g[0];
        order.push(name);
        s.complete(grant, 1, None);
        if let Some(i) = busy.iter().position(|b| *b == name) {
            s.enqueue(&mut flows[i], 1, false, name);
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
    run(|| async {
        let gate = WriteGate::new(config(2 * MS));
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
    });
}

/// Two busy flows with a write each at the disk and one each waiting under
/// a limit of 130 bytes.
fn busy(t0: Instant) -> (Schedule<&'static str>, Vec<(&'static str, Grant)>) {
    let mut s = limited(130, t0);
    let (mut h1, mut h2) = (FlowTag::new(1), FlowTag::new(2));
    s.enqueue(&mut h1, 60, true, "h1-a");
    s.enqueue(&mut h2, 60, true, "h2-a");
    let first = grant(&mut s, t0);
    s.enqueue(&mut h2, 60, true, "h2-b");
    s.enqueue(&mut h1, 60, true, "h1-b");
    assert!(grant(&mut s, t0).is_empty());
    (s, first)
}

#[test]
fn a_sparse_write_before_its_sync_holds_the_busy_flows_back_until_the_sync() {
    let t0 = Instant::now();
    let (mut s, first) = busy(t0);
    assert!(
        first.iter().all(|(_, g)| !g.barrier),
        "busy flows raise none"
    );
    let mut light = FlowTag::new(3);
    s.enqueue(&mut light, 1, true, "light");
    s.complete(first[0].1, 60, Some(t0 + MS));
    let g = grant(&mut s, t0 + MS);
    // h2-b would fit beside it, but its fdatasync would then wait for it.
    assert_eq!(names(&g), ["light"]);
    assert!(g[0].1.barrier);
    assert_eq!(s.stats().barriers_total, 1);
    // Another sparse flow still goes; the busy ones wait for the sync.
    let mut other = FlowTag::new(4);
    s.enqueue(&mut other, 1, false, "other");
    assert_eq!(names(&grant(&mut s, t0 + MS)), ["other"]);
    s.release_barrier(2); // not the barrier's flow: nothing changes
    assert!(grant(&mut s, t0 + MS).is_empty());
    s.release_barrier(3);
    assert_eq!(names(&grant(&mut s, t0 + MS)), ["h2-b"]);
}

#[test]
fn no_barrier_without_a_sync_or_another_flow_waiting() {
    let t0 = Instant::now();
    let mut s = limited(1000, t0);
    let (mut a, mut b) = (FlowTag::new(1), FlowTag::new(2));
    // Nothing else waits: the disk is not contended.
    s.enqueue(&mut a, 10, true, "a");
    assert!(!grant(&mut s, t0)[0].1.barrier);
    // No fdatasync follows.
    let (mut s, first) = busy(t0);
    s.enqueue(&mut b, 1, false, "b");
    s.complete(first[0].1, 60, Some(t0 + MS));
    let g = grant(&mut s, t0 + MS);
    assert_eq!(names(&g), ["b", "h2-b"]);
    assert!(g.iter().all(|(_, g)| !g.barrier));
    // A schedule without a target (the fdatasyncs') raises none.
    let mut fixed = Schedule::fixed(1);
    fixed.enqueue(&mut a, 1, true, "a");
    fixed.enqueue(&mut b, 1, true, "b");
    assert!(!grant(&mut fixed, t0)[0].1.barrier);
}

#[test]
fn barriers_are_at_least_the_target_apart() {
    let t0 = Instant::now();
    let mut s = limited(100, t0);
    let mut heavy = FlowTag::new(1);
    let [mut l1, mut l2, mut l3] = [2, 3, 4].map(FlowTag::new);
    s.enqueue(&mut heavy, 90, true, "h1");
    s.enqueue(&mut heavy, 90, true, "h2");
    assert_eq!(names(&grant(&mut s, t0)), ["h1"]);
    // h2 waits for the limit throughout; each light write fits beside h1.
    let light = |s: &mut Schedule<_>, flow: &mut FlowTag, at: Instant, name| {
        s.enqueue(flow, 1, true, name);
        let g = grant(s, at);
        assert_eq!(names(&g), [name]);
        (2..=4).for_each(|flow| s.release_barrier(flow));
        g[0].1.barrier
    };
    assert!(light(&mut s, &mut l1, t0, "l1"));
    // 1 ms later (the target is 2 ms) a sparse write raises none...
    assert!(!light(&mut s, &mut l2, t0 + MS, "l2"));
    // ...2 ms after the last one it does.
    assert!(light(&mut s, &mut l3, t0 + 2 * MS, "l3"));
    assert_eq!(s.stats().barriers_total, 2);
}

/// A gate of 20 bytes and one fdatasync, with a heavy flow's two writes of
/// 8 at the disk and a third waiting, and a light flow's write of 1 that
/// raised a barrier.
struct Barred {
    gate: Rc<WriteGate>,
    heavy: GateFlow,
    light: GateFlow,
    at_disk: [super::Permit; 2],
    waiting: super::Permit,
    sparse: super::Permit,
}

async fn barred() -> Barred {
    let gate = WriteGate::new(config(2 * MS));
    gate.writes.schedule.borrow_mut().set_limit(20);
    let (heavy, light) = (GateFlow::new(gate.clone()), GateFlow::new(gate.clone()));
    // The heavy flow has synced before, so its next fdatasync is not a
    // sparse flow's.
    let synced = heavy.sync();
    synced.ready().await;
    synced.done();
    drop(synced);
    let at_disk = [heavy.write(8, true), heavy.write(8, true)];
    let waiting = heavy.write(8, true);
    for p in &at_disk {
        p.ready().await;
    }
    let sparse = light.write(1, true);
    sparse.ready().await;
    assert!(sparse.raised_barrier());
    Barred {
        gate,
        heavy,
        light,
        at_disk,
        waiting,
        sparse,
    }
}

fn run<F: std::future::Future<Output = ()> + 'static>(f: impl FnOnce() -> F + Send + 'static) {
    glommio::LocalExecutorBuilder::default()
        .io_memory(1 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn the_async_gate_holds_busy_writes_and_syncs_until_the_sparse_flow_s_sync() {
    run(|| async {
        let b = barred().await;
        let [first, _second] = b.at_disk;
        let heavy_sync = b.heavy.sync();
        // Room frees for the waiting write, but the barrier holds it, and
        // the heavy flow's fdatasync too, though a slot is free.
        first.done();
        drop(first);
        let write = b.waiting.ready();
        let sync = heavy_sync.ready();
        futures::pin_mut!(write, sync);
        assert!(futures::poll!(write.as_mut()).is_pending());
        assert!(futures::poll!(sync.as_mut()).is_pending());
        b.sparse.done();
        drop(b.sparse);
        assert!(futures::poll!(write.as_mut()).is_pending());
        // The light flow's fdatasync may start: both go after it.
        let light_sync = b.light.sync();
        light_sync.ready().await;
        write.await;
        light_sync.done();
        drop(light_sync);
        sync.await;
        assert_eq!(b.gate.stats().sync_barriers_total, 1);
    });
}

#[test]
fn the_async_gate_releases_a_barrier_whose_write_is_given_up() {
    run(|| async {
        let b = barred().await;
        let [first, _second] = b.at_disk;
        drop(b.sparse);
        first.done();
        drop(first);
        b.waiting.ready().await;
        assert_eq!(b.gate.stats().in_flight_bytes, 16);
    });
}
