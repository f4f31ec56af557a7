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
//! then goes before the backlog of the busy ones.
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

use schedule::{FlowTag, Grant, LaneStats, Schedule, Ticket};

/// See the module documentation.
pub struct WriteGate {
    enabled: bool,
    /// Log writes, limited in bytes.
    writes: Lane,
    /// The logs' fdatasyncs, limited in number.
    syncs: Lane,
}

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
    /// Of those, the ones that waited for the limit.
    pub writes_waited_total: u64,
    /// fdatasyncs at the disk now.
    pub syncs_in_flight: u64,
    /// fdatasyncs let through.
    pub syncs_total: u64,
    /// Of those, the ones that waited for another to finish.
    pub syncs_waited_total: u64,
}

impl WriteGate {
    /// A gate that keeps the disk's queue of writes near `target`,
    /// re-estimating the disk's throughput every `interval`, and lets at
    /// most `syncs` fdatasyncs at the disk at once. With `target` `None` it
    /// holds nothing back and only counts.
    pub fn new(target: Option<Duration>, interval: Duration, syncs: usize) -> Rc<WriteGate> {
        let now = Instant::now();
        let sync_limit = match target {
            Some(_) => syncs.max(1) as u64,
            None => u64::MAX,
        };
        Rc::new(WriteGate {
            enabled: target.is_some(),
            writes: Lane::new(Schedule::adaptive(target, interval, now)),
            syncs: Lane::new(Schedule::fixed(sync_limit)),
        })
    }

    /// A gate that holds nothing back: what a log opened on its own uses.
    pub fn unlimited() -> Rc<WriteGate> {
        WriteGate::new(None, Duration::from_secs(1), 1)
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

/// A flow's place in its gate's order, shared by the logs that are one
/// flow (clones are the same flow).
#[derive(Clone)]
pub struct GateFlow {
    gate: Rc<WriteGate>,
    tags: Rc<Tags>,
}

#[derive(Default)]
struct Tags {
    write: RefCell<FlowTag>,
    sync: RefCell<FlowTag>,
}

impl GateFlow {
    /// A new flow through `gate`.
    pub fn new(gate: Rc<WriteGate>) -> Self {
        GateFlow {
            gate,
            tags: Rc::default(),
        }
    }

    /// Asks to write `bytes`; the write may start once the permit is
    /// [`Permit::poll_ready`], and its bytes count as at the disk until the
    /// permit is dropped.
    pub(crate) fn write(&self, bytes: usize) -> Permit {
        self.permit(Kind::Write, &self.tags.write, bytes as u64)
    }

    /// Asks to fdatasync, as [`GateFlow::write`] asks to write.
    pub(crate) fn sync(&self) -> Permit {
        self.permit(Kind::Sync, &self.tags.sync, 1)
    }

    fn permit(&self, kind: Kind, tag: &RefCell<FlowTag>, cost: u64) -> Permit {
        let lane = self.gate.lane(kind);
        let ticket = lane
            .schedule
            .borrow_mut()
            .enqueue(&mut tag.borrow_mut(), cost, ());
        lane.grant();
        Permit {
            gate: self.gate.clone(),
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
}

/// An operation's place at the disk: waiting for it, then holding it.
pub(crate) struct Permit {
    gate: Rc<WriteGate>,
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

    /// Ready when the operation may start.
    pub(crate) fn poll_ready(&self, cx: &mut std::task::Context<'_>) -> Poll<()> {
        if self.grant.get().is_some() {
            return Poll::Ready(());
        }
        let lane = self.gate.lane(self.kind);
        if let Some(grant) = lane.granted.borrow_mut().remove(&self.ticket) {
            self.grant.set(Some(grant));
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
                lane.schedule
                    .borrow_mut()
                    .complete(grant, self.cost, self.done.get());
            }
            None => {
                lane.schedule.borrow_mut().cancel(self.ticket);
            }
        }
        lane.grant();
    }
}

#[cfg(test)]
mod tests;
