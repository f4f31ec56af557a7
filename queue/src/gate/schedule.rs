//! The write gate's state, without I/O or wakers: which waiting write goes
//! next, and how many bytes the disk may hold.
//!
//! Waiting operations are ordered by start-time fair queueing (Goyal, Vin
//! and Cheng, 1996), with one flow per [`GateFlow`](super::GateFlow) (the
//! shard gives each topic one; a log opened alone is its own) and an operation's
//! cost (a write's bytes, 1 for an fdatasync) as its length. A flow that
//! has used no more than its share (its last finish tag is not past the
//! virtual time) starts at the virtual time, and it goes before the
//! operations waiting at that same tag, as FQ-CoDel's new flows do: a
//! sparse flow waits for the disk's short queue, not for a round of the
//! busy flows, whose tags ran ahead by what they wrote.
//!
//! On a disk that serves its queue in order, a write's fdatasync also
//! waits for every write queued after that write and before the sync. A
//! sparse flow's write that an fdatasync will follow, let through while
//! other flows wait, therefore raises a *barrier*: the other flows' writes
//! wait until that flow's fdatasync may start, so it need not wait for the
//! queue twice. (Writes let through then can still reach the disk first
//! if the fdatasync's way there is the slower: on the FUSE test disk,
//! `docs/BENCHMARKS.md`.) One barrier at a time, and at most one per
//! `target`, so sparse flows cannot keep the busy ones from the disk.

use std::time::{Duration, Instant};

use super::estimate::Estimator;

/// A flow's place in the order: its name and the finish tag of its last
/// write.
#[derive(Debug)]
pub(crate) struct FlowTag {
    id: FlowId,
    finish: u64,
}

/// Names a flow; unique within a gate.
pub(crate) type FlowId = u64;

impl FlowTag {
    pub(crate) fn new(id: FlowId) -> Self {
        FlowTag { id, finish: 0 }
    }
}

/// Names one waiting write.
pub(crate) type Ticket = u64;

/// An operation let through: what its completion must report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Grant {
    /// Bytes in flight when it went, its own included.
    pub(crate) depth: u64,
    pub(crate) at: Instant,
    /// It raised a barrier, which its flow's fdatasync (or giving the write
    /// up) releases.
    pub(crate) barrier: bool,
}

#[derive(Debug)]
struct Waiting<T> {
    ticket: Ticket,
    flow: FlowId,
    start: u64,
    /// The flow had used no more than its share when this arrived.
    new: bool,
    bytes: u64,
    /// Its flow will fdatasync once it is written.
    sync_follows: bool,
    /// Set once a `grant` left it waiting (for the limit or a barrier).
    held: bool,
    payload: T,
}

/// Counters of one schedule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LaneStats {
    /// What may be in flight now (`u64::MAX`: no limit).
    pub(crate) limit: u64,
    /// What is in flight now.
    pub(crate) in_flight: u64,
    /// Operations let through.
    pub(crate) granted_total: u64,
    /// Of those, the ones that waited for the limit or a barrier.
    pub(crate) waited_total: u64,
    /// Barriers raised.
    pub(crate) barriers_total: u64,
}

/// See the module documentation. `T` is what a waiter needs to be woken.
#[derive(Debug)]
pub(crate) struct Schedule<T> {
    estimator: Option<Estimator>,
    limit: u64,
    in_flight: u64,
    /// The start tag of the last write let through.
    virtual_time: u64,
    /// One per log writer at most, so a short list.
    waiting: Vec<Waiting<T>>,
    /// The flow whose fdatasync the other flows' writes wait for.
    barrier: Option<FlowId>,
    /// The least time from one barrier to the next; `None`: no barriers.
    barrier_gap: Option<Duration>,
    last_barrier: Option<Instant>,
    next_ticket: Ticket,
    stats: LaneStats,
}

impl<T> Schedule<T> {
    /// A schedule of writes that keeps the disk's queue near `target`
    /// (re-estimated every `interval`); with no target it never holds a
    /// write back. Barriers are at least `barrier_gap` apart; `None`
    /// raises none.
    pub(crate) fn adaptive(
        target: Option<Duration>,
        interval: Duration,
        barrier_gap: Option<Duration>,
        now: Instant,
    ) -> Self {
        // Nothing is held back until the disk has been measured.
        let mut s = Schedule::fixed(u64::MAX);
        s.estimator = target.map(|t| Estimator::new(t, interval, now));
        s.barrier_gap = barrier_gap;
        s
    }

    /// A schedule with a fixed limit, in whatever unit its operations
    /// count in.
    pub(crate) fn fixed(limit: u64) -> Self {
        Schedule {
            estimator: None,
            limit,
            in_flight: 0,
            virtual_time: 0,
            waiting: Vec::new(),
            barrier: None,
            barrier_gap: None,
            last_barrier: None,
            next_ticket: 0,
            stats: LaneStats {
                limit,
                ..LaneStats::default()
            },
        }
    }

    /// Queues a write of `bytes` for `flow`, which an fdatasync of the flow
    /// will follow if `sync_follows`. Call [`Schedule::grant`] next.
    pub(crate) fn enqueue(
        &mut self,
        flow: &mut FlowTag,
        bytes: u64,
        sync_follows: bool,
        payload: T,
    ) -> Ticket {
        let new = flow.finish <= self.virtual_time;
        let start = self.virtual_time.max(flow.finish);
        flow.finish = start.saturating_add(bytes);
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.waiting.push(Waiting {
            ticket,
            flow: flow.id,
            start,
            new,
            bytes,
            sync_follows,
            held: false,
            payload,
        });
        ticket
    }

    /// Lets through, in order, the waiting writes that fit: while the next
    /// one fits under the limit, or nothing is in flight (a write larger
    /// than the limit still goes, alone). The next write in order blocks
    /// the ones after it, so no flow is passed over for being large; a
    /// barrier holds back all but its own flow's and the sparse flows'.
    pub(crate) fn grant(&mut self, now: Instant, mut granted: impl FnMut(Ticket, T, Grant)) {
        while let Some(i) = self.next() {
            let bytes = self.waiting[i].bytes;
            if self.in_flight > 0 && self.in_flight.saturating_add(bytes) > self.limit {
                break;
            }
            let w = self.waiting.swap_remove(i);
            self.in_flight += w.bytes;
            self.virtual_time = w.start;
            self.stats.granted_total += 1;
            self.stats.waited_total += u64::from(w.held);
            let barrier = self.may_raise_barrier(&w, now);
            if barrier {
                self.barrier = Some(w.flow);
                self.last_barrier = Some(now);
                self.stats.barriers_total += 1;
            }
            granted(
                w.ticket,
                w.payload,
                Grant {
                    depth: self.in_flight,
                    at: now,
                    barrier,
                },
            );
        }
        // What is left waited, for the limit or a barrier.
        self.waiting.iter_mut().for_each(|w| w.held = true);
        self.stats.in_flight = self.in_flight;
    }

    /// A granted write of `bytes` left the disk: completed at `done`, which
    /// makes it one sample of the disk's speed, or never started (`None`).
    /// Call `grant` next.
    pub(crate) fn complete(&mut self, grant: Grant, bytes: u64, done: Option<Instant>) {
        self.in_flight = self.in_flight.saturating_sub(bytes);
        self.stats.in_flight = self.in_flight;
        let Some(now) = done else {
            return;
        };
        let latency = now.saturating_duration_since(grant.at);
        if let Some(limit) = self
            .estimator
            .as_mut()
            .and_then(|e| e.sample(grant.depth, latency, now))
        {
            self.limit = limit;
            self.stats.limit = limit;
        }
    }

    /// A waiting write that will not go after all. Call `grant` next: it
    /// may have been the one the others waited behind.
    pub(crate) fn cancel(&mut self, ticket: Ticket) -> Option<T> {
        let i = self.waiting.iter().position(|w| w.ticket == ticket)?;
        Some(self.waiting.swap_remove(i).payload)
    }

    /// `flow`'s fdatasync may start, or none follows: the other
    /// flows' writes go on. Call `grant` next.
    pub(crate) fn release_barrier(&mut self, flow: FlowId) {
        if self.barrier == Some(flow) {
            self.barrier = None;
        }
    }

    /// The flow whose barrier holds the others back, if any.
    pub(crate) fn barrier(&self) -> Option<FlowId> {
        self.barrier
    }

    /// Holds back all but `flow`'s and the sparse flows' operations, for a
    /// barrier raised in another schedule (`None` lifts it). Call `grant`
    /// next.
    pub(crate) fn follow_barrier(&mut self, flow: Option<FlowId>) {
        self.barrier = flow;
    }

    pub(crate) fn stats(&self) -> LaneStats {
        self.stats
    }

    /// Whether an operation is waiting that a grant left waiting (for the
    /// limit or a barrier): the disk's queue is full now.
    pub(crate) fn holding(&self) -> bool {
        self.waiting.iter().any(|w| w.held)
    }

    /// Whether `w`, just let through, raises a barrier: a sparse flow's
    /// write that an fdatasync follows, while the limit holds another
    /// flow's write back (the disk's queue is full: that write would go
    /// right behind this one), and no barrier was raised within the gap.
    fn may_raise_barrier(&self, w: &Waiting<T>, now: Instant) -> bool {
        let Some(gap) = self.barrier_gap else {
            return false;
        };
        w.sync_follows
            && w.new
            && self.barrier.is_none()
            && self
                .last_barrier
                .is_none_or(|last| now.saturating_duration_since(last) >= gap)
            && self.waiting.iter().any(|o| {
                o.flow != w.flow && (o.held || self.in_flight.saturating_add(o.bytes) > self.limit)
            })
    }

    #[cfg(test)]
    pub(crate) fn set_limit(&mut self, limit: u64) {
        self.limit = limit;
        self.stats.limit = limit;
    }

    /// The waiting operation that goes next: the smallest start tag, then
    /// a new flow's, then the one that came first; under a barrier, of the
    /// barrier's flow and the sparse flows only.
    fn next(&self) -> Option<usize> {
        self.waiting
            .iter()
            .enumerate()
            .filter(|(_, w)| self.barrier.is_none_or(|f| f == w.flow || w.new))
            .min_by_key(|(_, w)| (w.start, !w.new, w.ticket))
            .map(|(i, _)| i)
    }
}
