//! The mesh between shards: for every ordered pair of shards, one bounded
//! SPSC ring from `tidegate_queue::ring` carrying the messages, and one
//! doorbell (a glommio shared channel of capacity one, carrying nothing)
//! that wakes the receiving executor. What crosses cores is visible in one
//! type, [`Envelope`].
//!
//! No lost wake-ups: the sender rings after every push; the receiver drains
//! the ring completely after every ring it hears, so an item pushed while it
//! drains is either seen by that drain or announced by the next ring.

use std::{
    cell::{Cell, RefCell},
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    rc::Rc,
    time::Duration,
};

use bytes::BytesMut;

use futures::{channel::oneshot, future::join_all};
use glommio::channels::shared_channel::{self, ConnectedReceiver, ConnectedSender};
use tidegate_queue::ring::spsc::{self, Consumer, Producer};

use crate::shard::{Op, OpResult};

/// Messages in flight between two shards, per direction.
const RING_CAPACITY: usize = 1024;

/// What crosses from one shard to another.
#[derive(Debug)]
pub(crate) enum Envelope {
    Request {
        from: usize,
        id: u64,
        op: Op,
    },
    Reply {
        id: u64,
        result: OpResult,
    },
    /// A QUIC datagram that reached the sender's socket but belongs to a
    /// connection of the receiver (its connection ID names the receiver).
    Datagram {
        from: SocketAddr,
        data: BytesMut,
    },
    /// The sender is stopping: it answers nothing more. Said explicitly
    /// because its ring's closing is not enough: the peer's tasks parked
    /// on it at exit keep it, and so the ring, alive.
    Goodbye,
}

type OutEnd = (Producer<Envelope>, shared_channel::SharedSender<()>);
type InEnd = (Consumer<Envelope>, shared_channel::SharedReceiver<()>);

/// One shard's ends of the mesh, before its executor connects them.
pub(crate) struct MeshEnds {
    pub(crate) id: usize,
    outbound: Vec<Option<OutEnd>>,
    inbound: Vec<Option<InEnd>>,
}

/// Builds the ends of a full mesh of `n` shards.
pub(crate) fn build(n: usize) -> Vec<MeshEnds> {
    let mut ends: Vec<MeshEnds> = (0..n)
        .map(|id| MeshEnds {
            id,
            outbound: (0..n).map(|_| None).collect(),
            inbound: (0..n).map(|_| None).collect(),
        })
        .collect();
    for from in 0..n {
        for to in 0..n {
            if from == to {
                continue;
            }
            // Capacity is a power of two and non-zero: cannot fail.
            let Ok((tx, rx)) = spsc::channel(RING_CAPACITY) else {
                continue;
            };
            let (bell_tx, bell_rx) = shared_channel::new_bounded(1);
            ends[from].outbound[to] = Some((tx, bell_tx));
            ends[to].inbound[from] = Some((rx, bell_rx));
        }
    }
    ends
}

/// The sending end of a link to one peer: its ring, its doorbell, and the
/// envelopes waiting (in order) for room in the ring.
struct Link {
    ring: RefCell<Producer<Envelope>>,
    bell: ConnectedSender<()>,
    waiting: RefCell<VecDeque<Envelope>>,
    /// Envelopes ever put in `waiting`, and ever moved from it to the ring:
    /// the envelope queued as number `n` has left once `moved > n`.
    queued: Cell<u64>,
    moved: Cell<u64>,
}

impl Link {
    /// Moves waiting envelopes into the ring, oldest first, while it has
    /// room.
    fn drain(&self) {
        let mut waiting = self.waiting.borrow_mut();
        let mut ring = self.ring.borrow_mut();
        while let Some(envelope) = waiting.pop_front() {
            match ring.try_push(envelope) {
                Ok(()) => self.moved.set(self.moved.get() + 1),
                Err(back) => {
                    waiting.push_front(back);
                    return;
                }
            }
        }
    }
}

/// A shard's connected mesh: send to any peer, and the calls waiting for
/// their replies.
pub(crate) struct Mesh {
    pub(crate) id: usize,
    outbound: Vec<Option<Link>>,
    /// Calls waiting for a reply: the shard called, and where the reply
    /// goes.
    pending: RefCell<HashMap<u64, (usize, oneshot::Sender<OpResult>)>>,
    next_id: Cell<u64>,
    /// Peers whose executor stopped (their ring to us closed): nothing
    /// sent to them is answered any more.
    gone: RefCell<Vec<bool>>,
}

/// The receiving side, one per peer, drained by its own task.
pub(crate) struct Inbound {
    pub(crate) from: usize,
    ring: Consumer<Envelope>,
    bell: ConnectedReceiver<()>,
}

impl MeshEnds {
    /// Connects the doorbells on the current executor. Each connect waits
    /// for the peer to connect its end, so all of them run at once (one by
    /// one, two shards would wait on each other forever).
    pub(crate) async fn connect(self) -> (Rc<Mesh>, Vec<Inbound>) {
        let outbound = join_all(self.outbound.into_iter().map(|end| async move {
            match end {
                Some((ring, bell)) => Some(Link {
                    ring: RefCell::new(ring),
                    bell: bell.connect().await,
                    waiting: RefCell::new(VecDeque::new()),
                    queued: Cell::new(0),
                    moved: Cell::new(0),
                }),
                None => None,
            }
        }));
        let inbound = join_all(
            self.inbound
                .into_iter()
                .enumerate()
                .filter_map(|(from, end)| end.map(|e| (from, e)))
                .map(|(from, (ring, bell))| async move {
                    Inbound {
                        from,
                        ring,
                        bell: bell.connect().await,
                    }
                }),
        );
        let (outbound, inbound) = futures::join!(outbound, inbound);
        let n = outbound.len();
        let mesh = Rc::new(Mesh {
            id: self.id,
            outbound,
            pending: RefCell::new(HashMap::new()),
            next_id: Cell::new(0),
            gone: RefCell::new(vec![false; n]),
        });
        (mesh, inbound)
    }
}

impl Mesh {
    /// Sends `op` to shard `to` and waits for its result.
    pub(crate) async fn call(&self, to: usize, op: Op) -> OpResult {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        if self.is_gone(to) {
            return stopped(to);
        }
        let (tx, rx) = oneshot::channel();
        self.pending.borrow_mut().insert(id, (to, tx));
        self.send(
            to,
            Envelope::Request {
                from: self.id,
                id,
                op,
            },
        )
        .await;
        rx.await.unwrap_or_else(|_| stopped(to))
    }

    /// Pushes one envelope to `to`, waiting while its ring is full (the
    /// ring's capacity is the bound on work in flight between two shards).
    ///
    /// Envelopes leave in the order `send` was called: when the ring is
    /// full they queue behind each other, and a later call never slips into
    /// room an earlier one is waiting for. A connection's requests for a
    /// partition on another shard thus reach it in the order they came.
    /// The queue is bounded by the requests a shard runs at once.
    pub(crate) async fn send(&self, to: usize, envelope: Envelope) {
        let Some(Some(link)) = self.outbound.get(to) else {
            tracing::error!(to, "no mesh link to that shard");
            return;
        };
        if self.is_gone(to) {
            return; // nobody reads it: its caller is answered by `peer_gone`
        }
        let envelope = if link.waiting.borrow().is_empty() {
            match link.ring.borrow_mut().try_push(envelope) {
                Ok(()) => {
                    // Full means a ring is already pending: the receiver
                    // will drain.
                    let _ = link.bell.try_send(());
                    return;
                }
                Err(back) => back,
            }
        } else {
            envelope
        };
        let ticket = link.queued.get();
        link.queued.set(ticket + 1);
        link.waiting.borrow_mut().push_back(envelope);
        loop {
            link.drain();
            let _ = link.bell.try_send(());
            // A stopped peer never makes room: `peer_gone` dropped what
            // waits (and answered its callers).
            if link.moved.get() > ticket || self.is_gone(to) {
                return;
            }
            glommio::timer::sleep(Duration::from_micros(50)).await;
        }
    }

    /// Tells every peer this shard is stopping (the last thing it
    /// does): their calls to it are answered as stopped from then on.
    pub(crate) async fn goodbye(&self) {
        for peer in (0..self.outbound.len()).filter(|&p| p != self.id) {
            self.send(peer, Envelope::Goodbye).await;
        }
    }

    fn is_gone(&self, peer: usize) -> bool {
        self.gone.borrow().get(peer).copied().unwrap_or(true)
    }

    /// `peer` stopped: the calls waiting for it are answered as stopped
    /// (their replies will never come), and so is every later call.
    pub(crate) fn peer_gone(&self, peer: usize) {
        if let Some(gone) = self.gone.borrow_mut().get_mut(peer) {
            *gone = true;
        }
        // Nothing waiting for its ring will be read.
        if let Some(Some(link)) = self.outbound.get(peer) {
            link.waiting.borrow_mut().clear();
        }
        // Dropping a reply's sender answers its call `ShuttingDown`.
        self.pending.borrow_mut().retain(|_, (to, _)| *to != peer);
    }

    /// Pushes one envelope to `to` if its ring has room; `false` if not
    /// (for datagrams, which UDP lets us drop rather than wait for).
    pub(crate) fn try_send(&self, to: usize, envelope: Envelope) -> bool {
        let Some(Some(link)) = self.outbound.get(to) else {
            return false;
        };
        let pushed = link.ring.borrow_mut().try_push(envelope).is_ok();
        let _ = link.bell.try_send(());
        pushed
    }

    /// A reply arrived for one of this shard's calls.
    fn complete(&self, id: u64, result: OpResult) {
        if let Some((_, tx)) = self.pending.borrow_mut().remove(&id) {
            let _ = tx.send(result);
        }
    }
}

/// The answer to a call whose shard stopped.
fn stopped(shard: usize) -> OpResult {
    OpResult::Failed(crate::shard::Failure::new(
        tidegate_proto::protocol::ErrorCode::ShuttingDown,
        format!("shard {shard} stopped"),
    ))
}

impl Inbound {
    /// Waits for the next ring of the doorbell and takes everything queued;
    /// `None` once the peer is gone.
    pub(crate) async fn next_batch(&mut self, out: &mut Vec<Envelope>) -> Option<()> {
        loop {
            while let Some(envelope) = self.ring.try_pop() {
                out.push(envelope);
            }
            if !out.is_empty() {
                return Some(());
            }
            self.bell.recv().await?;
        }
    }
}

/// Serves one peer's inbound ring: runs requests (each in its own task, so
/// a long poll does not hold up the ring) and completes replies.
pub(crate) async fn serve_inbound<F, Fut>(
    mesh: Rc<Mesh>,
    mut inbound: Inbound,
    run: F,
    inject: impl Fn(SocketAddr, BytesMut),
) where
    F: Fn(Op) -> Fut + 'static,
    Fut: std::future::Future<Output = OpResult> + 'static,
{
    let run = Rc::new(run);
    let mut batch = Vec::new();
    'serving: while inbound.next_batch(&mut batch).await.is_some() {
        for envelope in batch.drain(..) {
            match envelope {
                Envelope::Goodbye => break 'serving,
                Envelope::Reply { id, result } => mesh.complete(id, result),
                Envelope::Datagram { from, data } => inject(from, data),
                Envelope::Request { from, id, op } => {
                    let (mesh, run) = (mesh.clone(), run.clone());
                    glommio::spawn_local(async move {
                        let result = run(op).await;
                        mesh.send(from, Envelope::Reply { id, result }).await;
                    })
                    .detach();
                }
            }
        }
    }
    tracing::debug!(from = inbound.from, "mesh peer gone");
    mesh.peer_gone(inbound.from);
}

#[cfg(test)]
mod tests {
    use glommio::LocalExecutorBuilder;

    use super::*;

    fn wait_op() -> Op {
        Op::SubWait {
            sub: "s".into(),
            partition: 0,
            wait_ms: 60_000,
        }
    }

    fn shut_down(result: &OpResult) -> bool {
        matches!(result, OpResult::Failed(f) if f.code == tidegate_proto::protocol::ErrorCode::ShuttingDown)
    }

    /// Shard 0 calls shard 1, which takes the request off its ring and
    /// stops without answering: by dropping its mesh (`goodbye` false),
    /// or by saying goodbye while its mesh stays alive until shard 0 is
    /// done (as tasks parked at exit keep it). Returns whether that call
    /// and a later one were answered as stopped (`None`: no answer within
    /// 10 s, where a regression would otherwise hang).
    fn call_a_shard_that_stops(goodbye: bool) -> (Option<bool>, Option<bool>) {
        let mut ends = build(2);
        let (Some(one), Some(zero)) = (ends.pop(), ends.pop()) else {
            panic!("two ends");
        };
        let stopper = LocalExecutorBuilder::default()
            .io_memory(1 << 20)
            .spawn(move || async move {
                let (mesh, mut inbound) = one.connect().await;
                let mut from_zero = inbound.pop().unwrap_or_else(|| panic!("an inbound"));
                let mut batch = Vec::new();
                // The request arrived: shard 0's call is pending now.
                let _ = from_zero.next_batch(&mut batch).await;
                if goodbye {
                    mesh.goodbye().await;
                    // Alive until shard 0 drops its mesh.
                    while from_zero.next_batch(&mut batch).await.is_some() {
                        batch.clear();
                    }
                }
                drop((mesh, from_zero, batch));
            })
            .unwrap_or_else(|e| panic!("{e}"));
        let caller = LocalExecutorBuilder::default()
            .io_memory(1 << 20)
            .spawn(move || async move {
                let (mesh, mut inbound) = zero.connect().await;
                let from_one = inbound.pop().unwrap_or_else(|| panic!("an inbound"));
                let unanswered = |_: Op| async { panic!("shard 1 sends no requests") };
                let served = serve_inbound(mesh.clone(), from_one, unanswered, |_, _| {});
                glommio::spawn_local(served).detach();
                let bound = Duration::from_secs(10);
                let first =
                    glommio::timer::timeout(bound, async { Ok(mesh.call(1, wait_op()).await) })
                        .await;
                let later =
                    glommio::timer::timeout(bound, async { Ok(mesh.call(1, wait_op()).await) })
                        .await;
                (
                    first.map(|r| shut_down(&r)).ok(),
                    later.map(|r| shut_down(&r)).ok(),
                )
            })
            .unwrap_or_else(|e| panic!("{e}"));
        let answered = caller.join().unwrap_or_else(|e| panic!("{e:?}"));
        stopper.join().unwrap_or_else(|e| panic!("{e:?}"));
        answered
    }

    #[test]
    fn calls_to_a_shard_whose_mesh_dropped_are_answered_shutting_down() {
        assert_eq!(call_a_shard_that_stops(false), (Some(true), Some(true)));
    }

    #[test]
    fn calls_to_a_shard_that_said_goodbye_are_answered_shutting_down() {
        assert_eq!(call_a_shard_that_stops(true), (Some(true), Some(true)));
    }
}
