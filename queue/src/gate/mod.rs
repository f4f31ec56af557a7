//! The write gate: a shard's I/O scheduler for log writes, in the manner of
//! Seastar's.
//!
//! The shard's admission window (`docs/FLOW_CONTROL.md`) bounds the bytes
//! admitted and not yet answered, but once admitted they went straight to
//! the disk, whose queue is first in, first out: a light producer's batch
//! queued behind the heavy producers' whole window, and so did its
//! fdatasync. The gate keeps the disk's own queue short instead, near
//! `target` of the disk's measured throughput ([`estimate`]), and holds the
//! rest of the window in the shard, where it is ordered fairly between
//! flows ([`schedule`]): the batch of a flow that is written to now and
//! then goes before the backlog of the busy ones, and its fdatasync does
//! not wait for their writes let through after it (a barrier).
//!
//! One gate serves every log of a shard (one thread: `Rc`, no locks). A
//! flow of the fair order ([`GateFlow`]) may be one log or several: the
//! shard gives each topic one, so a producer that spreads over many
//! partitions counts once, and a light topic is the sparse flow it is.

mod estimate;
mod schedule;

use std::{
    cell::{Cell, RefCell},
    collections::HashMap,
    rc::Rc,
    task::{Poll, Waker},
    time::{Duration, Instant},
};

use schedule::{FlowId, FlowTag, Grant, LaneStats, Schedule, Ticket};

/// See the module documentation.
pub struct WriteGate {
    enabled: bool,
    /// Log writes, limited in bytes.
    writes: Lane,
    /// The logs' fdatasyncs, limited in number.
    syncs: Lane,
    next_flow: Cell<FlowId>,
    /// Background writers at work now (see [`WriteGate::background`]).
    background: Cell<usize>,
}

/// Background writers a gate lets work at once: each holds a buffer, so
/// this bounds their memory per shard, whatever the partition count.
pub const BACKGROUND_MAX: usize = 4;

/// The gate's figures, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GateStats {
    /// True when the gate holds operations back; false when it only counts.
    pub enabled: bool,
    /// Bytes of log writes the disk may hold now (`u64::MAX` before the
    /// disk was measured, or with the gate off).
    pub limit_bytes: u64,
    /// Bytes of log writes at the disk now.
    pub in_flight_bytes: u64,
    /// Log writes let through.
    pub writes_total: u64,
    /// Of those, the ones that waited for the limit (or a barrier).
    pub writes_waited_total: u64,
    /// fdatasyncs at the disk now.
    pub syncs_in_flight: u64,
    /// fdatasyncs let through.
    pub syncs_total: u64,
    /// Of those, the ones that waited for another to finish (or for a
    /// barrier).
    pub syncs_waited_total: u64,
    /// Sparse flows' writes that held the other flows' writes back until
    /// their fdatasync could start ([`schedule`]).
    pub sync_barriers_total: u64,
}

/// How a [`WriteGate`] holds operations back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateConfig {
    /// The queue of writes the disk may hold, in time at its measured
    /// throughput; `None` holds nothing back and only counts.
    pub target: Option<Duration>,
    /// How often the disk's throughput is estimated again.
    pub interval: Duration,
    /// fdatasyncs at the disk at once (at least 1).
    pub syncs: usize,
    /// Whether a sparse flow's write holds the others back until its
    /// fdatasync ([`schedule`]'s barriers).
    pub sync_barriers: bool,
}

impl WriteGate {
    /// A gate as `config` says.
    pub fn new(config: GateConfig) -> Rc<WriteGate> {
        let now = Instant::now();
        let target = config.target;
        let sync_limit = match target {
            Some(_) => config.syncs.max(1) as u64,
            None => u64::MAX,
        };
        let barrier_gap = target.filter(|_| config.sync_barriers);
        Rc::new(WriteGate {
            enabled: target.is_some(),
            writes: Lane::new(Schedule::adaptive(
                target,
                config.interval,
                barrier_gap,
                now,
            )),
            syncs: Lane::new(Schedule::fixed(sync_limit)),
            next_flow: Cell::new(0),
            background: Cell::new(0),
        })
    }

    /// A gate that holds nothing back: what a log opened on its own uses.
    pub fn unlimited() -> Rc<WriteGate> {
        WriteGate::new(GateConfig {
            target: None,
            interval: Duration::from_secs(1),
            syncs: 1,
            sync_barriers: false,
        })
    }

    /// Whether the gate holds a log write back now: the disk's queue is
    /// at its target and appends wait for it. Background writes (zeros
    /// for a spare segment) wait while it is, so that they only use time
    /// the appends leave.
    pub fn holding_writes(&self) -> bool {
        self.writes.schedule.borrow().holding()
    }

    /// A slot for a background writer, or `None` while
    /// [`BACKGROUND_MAX`] are at work; the slot is given back on drop.
    pub(crate) fn background(self: &Rc<Self>) -> Option<Background> {
        let n = self.background.get();
        if n >= BACKGROUND_MAX {
            return None;
        }
        self.background.set(n + 1);
        Some(Background { gate: self.clone() })
    }

    pub fn stats(&self) -> GateStats {
        let (w, s) = (self.writes.stats(), self.syncs.stats());
        GateStats {
            enabled: self.enabled,
            limit_bytes: w.limit,
            in_flight_bytes: w.in_flight,
            writes_total: w.granted_total,
            writes_waited_total: w.waited_total,
            syncs_in_flight: s.in_flight,
            syncs_total: s.granted_total,
            syncs_waited_total: s.waited_total,
            sync_barriers_total: w.barriers_total,
        }
    }
}

/// One kind of operation: its schedule and its waiters.
struct Lane {
    schedule: RefCell<Schedule<()>>,
    /// The wakers of the waiting operations, by ticket.
    wakers: RefCell<HashMap<Ticket, Waker>>,
    /// The grants not yet taken by their permits, by ticket.
    granted: RefCell<HashMap<Ticket, Grant>>,
}

impl Lane {
    fn new(schedule: Schedule<()>) -> Self {
        Lane {
            schedule: RefCell::new(schedule),
            wakers: RefCell::default(),
            granted: RefCell::default(),
        }
    }

    fn stats(&self) -> LaneStats {
        self.schedule.borrow().stats()
    }

    /// Lets through what fits and wakes it.
    fn grant(&self) {
        let now = Instant::now();
        let mut woken = Vec::new();
        self.schedule.borrow_mut().grant(now, |ticket, (), grant| {
            self.granted.borrow_mut().insert(ticket, grant);
            woken.extend(self.wakers.borrow_mut().remove(&ticket));
        });
        woken.into_iter().for_each(Waker::wake);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Write,
    Sync,
}

/// A background writer's slot at its gate ([`WriteGate::background`]).
pub(crate) struct Background {
    gate: Rc<WriteGate>,
}

impl Drop for Background {
    fn drop(&mut self) {
        let n = self.gate.background.get();
        self.gate.background.set(n.saturating_sub(1));
    }
}

/// A flow's place in its gate's order, shared by the logs that are one
/// flow (clones are the same flow).
#[derive(Clone)]
pub struct GateFlow {
    gate: Rc<WriteGate>,
    tags: Rc<Tags>,
}

struct Tags {
    id: FlowId,
    write: RefCell<FlowTag>,
    sync: RefCell<FlowTag>,
}

impl GateFlow {
    /// Whether `self` and `other` are the same flow (clones of one).
    pub fn same_as(&self, other: &GateFlow) -> bool {
        Rc::ptr_eq(&self.tags, &other.tags)
    }

    /// The gate this flow goes through.
    pub(crate) fn gate(&self) -> &Rc<WriteGate> {
        &self.gate
    }

    /// A new flow through `gate`.
    pub fn new(gate: Rc<WriteGate>) -> Self {
        let id = gate.next_flow.get();
        gate.next_flow.set(id.wrapping_add(1));
        GateFlow {
            gate,
            tags: Rc::new(Tags {
                id,
                write: RefCell::new(FlowTag::new(id)),
                sync: RefCell::new(FlowTag::new(id)),
            }),
        }
    }

    /// Asks to write `bytes`, which this flow will fdatasync once written
    /// if `sync_follows`; the write may start once the permit is
    /// [`Permit::poll_ready`], and its bytes count as at the disk until the
    /// permit is dropped.
    pub(crate) fn write(&self, bytes: usize, sync_follows: bool) -> Permit {
        self.permit(Kind::Write, &self.tags.write, bytes as u64, sync_follows)
    }

    /// Asks to fdatasync, as [`GateFlow::write`] asks to write. Once it may
    /// start, it releases the barrier this flow's write raised, if any.
    pub(crate) fn sync(&self) -> Permit {
        self.permit(Kind::Sync, &self.tags.sync, 1, false)
    }

    /// No fdatasync of this flow follows now after all (nothing was due, or
    /// the log stopped): releases the barrier its write raised, if any.
    pub(crate) fn release_barrier(&self) {
        self.gate.release_barrier(self.tags.id);
    }

    fn permit(&self, kind: Kind, tag: &RefCell<FlowTag>, cost: u64, sync_follows: bool) -> Permit {
        let lane = self.gate.lane(kind);
        let ticket =
            lane.schedule
                .borrow_mut()
                .enqueue(&mut tag.borrow_mut(), cost, sync_follows, ());
        self.gate.grant(kind);
        Permit {
            gate: self.gate.clone(),
            flow: self.tags.id,
            kind,
            ticket,
            cost,
            grant: Cell::new(None),
            done: Cell::new(None),
        }
    }
}

impl WriteGate {
    fn lane(&self, kind: Kind) -> &Lane {
        match kind {
            Kind::Write => &self.writes,
            Kind::Sync => &self.syncs,
        }
    }

    fn release_barrier(&self, flow: FlowId) {
        self.writes.schedule.borrow_mut().release_barrier(flow);
        self.grant(Kind::Write);
    }

    /// Lets through what fits of `kind`. A barrier raised by the writes
    /// holds the busy flows' fdatasyncs back too: let through meanwhile,
    /// they would reach the disk before the sparse flow's own.
    fn grant(&self, kind: Kind) {
        self.lane(kind).grant();
        let barrier = self.writes.schedule.borrow().barrier();
        let changed = {
            let mut syncs = self.syncs.schedule.borrow_mut();
            let changed = syncs.barrier() != barrier;
            syncs.follow_barrier(barrier);
            changed
        };
        if changed {
            self.syncs.grant();
        }
    }
}

/// An operation's place at the disk: waiting for it, then holding it.
pub(crate) struct Permit {
    gate: Rc<WriteGate>,
    flow: FlowId,
    kind: Kind,
    ticket: Ticket,
    cost: u64,
    grant: Cell<Option<Grant>>,
    /// When the operation completed, if it ran.
    done: Cell<Option<Instant>>,
}

impl Permit {
    /// The operation completed: a measure of the disk. A permit dropped
    /// without it (the operation never ran) gives its place back and
    /// measures nothing.
    pub(crate) fn done(&self) {
        self.done.set(Some(Instant::now()));
    }

    /// Whether this write raised a barrier (see [`schedule`]): the caller
    /// should have its fdatasync asked for soon after the write.
    pub(crate) fn raised_barrier(&self) -> bool {
        self.grant.get().is_some_and(|g| g.barrier)
    }

    /// Ready when the operation may start.
    pub(crate) fn poll_ready(&self, cx: &mut std::task::Context<'_>) -> Poll<()> {
        if self.grant.get().is_some() {
            return Poll::Ready(());
        }
        let lane = self.gate.lane(self.kind);
        let granted = lane.granted.borrow_mut().remove(&self.ticket);
        if let Some(grant) = granted {
            self.grant.set(Some(grant));
            if self.kind == Kind::Sync {
                // The caller starts the fdatasync now, before the writes
                // this lets through are submitted.
                self.gate.release_barrier(self.flow);
            }
            return Poll::Ready(());
        }
        lane.wakers
            .borrow_mut()
            .insert(self.ticket, cx.waker().clone());
        Poll::Pending
    }

    pub(crate) async fn ready(&self) {
        std::future::poll_fn(|cx| self.poll_ready(cx)).await;
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let lane = self.gate.lane(self.kind);
        lane.wakers.borrow_mut().remove(&self.ticket);
        let grant = self
            .grant
            .get()
            .or_else(|| lane.granted.borrow_mut().remove(&self.ticket));
        match grant {
            Some(grant) => {
                // A write that never ran has no fdatasync to wait for.
                if grant.barrier && self.done.get().is_none() {
                    lane.schedule.borrow_mut().release_barrier(self.flow);
                }
                lane.schedule
                    .borrow_mut()
                    .complete(grant, self.cost, self.done.get());
            }
            None => {
                lane.schedule.borrow_mut().cancel(self.ticket);
            }
        }
        self.gate.grant(self.kind);
    }
}

#[cfg(test)]
mod tests;
