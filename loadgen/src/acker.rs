//! A subscriber's acks: the ids it has checked go back to the server
//! in few large acks, and a push stream gets its credits back as they are
//! answered.

use tidegate_client::{AckId, Client, PushCredit};
use tokio::task::JoinSet;

use crate::clock::Clock;
use crate::stats::Shared;

/// Ack requests one subscriber keeps in flight while it pulls on.
const ACKS_IN_FLIGHT: usize = 4;
/// Ids that wait for an ack slot before the subscriber waits too.
const ACK_WAITING_MAX: usize = 1000;

/// What an ack settles: the verified messages and bytes it counts as
/// consumed, and the push credits it gives back.
#[derive(Debug, Default, Clone, Copy)]
pub struct Settled {
    pub msgs: u64,
    pub bytes: u64,
    pub credit: (u64, u64),
}

/// Acks in flight, and the ids waiting for one. Ids wait while
/// [`ACKS_IN_FLIGHT`] acks are out (up to [`ACK_WAITING_MAX`] of them), so small
/// push frames make few large acks rather than many small ones; and
/// credits go back to a push stream once half of them are returned, as
/// the SDK's Subscriber does (small grants would make small frames).
pub struct Acker {
    client: Client,
    subscription: String,
    in_flight: JoinSet<anyhow::Result<Settled>>,
    ids: Vec<AckId>,
    waiting: Settled,
    push: Option<PushCredit>,
    credit_max: (u64, u64),
    returned: (u64, u64),
    grants: JoinSet<Result<(), tidegate_client::Error>>,
}

impl Acker {
    /// Acks for `subscription`; `push`: the push stream's credit handle
    /// and its credits (messages, bytes).
    pub fn new(
        client: Client,
        subscription: String,
        push: Option<(PushCredit, (u64, u64))>,
    ) -> Acker {
        let (push, credit_max) = match push {
            Some((credit, credits)) => (Some(credit), credits),
            None => (None, (0, 0)),
        };
        Acker {
            client,
            subscription,
            in_flight: JoinSet::new(),
            ids: Vec::new(),
            waiting: Settled::default(),
            push,
            credit_max,
            returned: (0, 0),
            grants: JoinSet::new(),
        }
    }

    pub fn add(&mut self, mut ids: Vec<AckId>, settled: Settled) {
        if self.ids.is_empty() {
            self.ids = ids; // the usual case: no copy
        } else {
            self.ids.append(&mut ids);
        }
        let w = &mut self.waiting;
        w.msgs += settled.msgs;
        w.bytes += settled.bytes;
        w.credit.0 += settled.credit.0;
        w.credit.1 += settled.credit.1;
    }

    /// Sends the waiting ids when an ack may go out; waits for one to be
    /// answered while a full ack's worth waits.
    pub async fn send(&mut self, shared: &Shared, clock: &Clock) -> anyhow::Result<()> {
        while self.in_flight.len() >= ACKS_IN_FLIGHT && self.ids.len() >= ACK_WAITING_MAX {
            let done = self.next_done().await;
            self.settled(done, shared, clock)?;
        }
        self.flush();
        Ok(())
    }

    /// Sends the waiting ids if an ack may go out now.
    fn flush(&mut self) {
        if self.in_flight.len() < ACKS_IN_FLIGHT && !self.ids.is_empty() {
            let ids = std::mem::take(&mut self.ids);
            let settled = std::mem::take(&mut self.waiting);
            let (client, subscription) = (self.client.clone(), self.subscription.clone());
            self.in_flight.spawn(async move {
                let results = client.ack(&subscription, &ids).await?;
                if let Some(Err(code)) = results.into_iter().find(Result::is_err) {
                    anyhow::bail!("loadgen: the server refused an ack: {code}");
                }
                Ok(settled)
            });
        }
    }

    /// The next ack answered (pending forever when none is out).
    pub async fn next_done(&mut self) -> anyhow::Result<Settled> {
        match self.in_flight.join_next().await {
            Some(done) => done?,
            None => std::future::pending().await,
        }
    }

    /// Counts an answered ack, returns its credits, and sends the ids
    /// that waited for it.
    pub fn settled(
        &mut self,
        done: anyhow::Result<Settled>,
        shared: &Shared,
        clock: &Clock,
    ) -> anyhow::Result<()> {
        let settled = done?;
        shared.consumed(clock.now_ns(), settled.msgs, settled.bytes, 0);
        while let Some(grant) = self.grants.try_join_next() {
            grant??;
        }
        if let Some(push) = &self.push {
            self.returned.0 += settled.credit.0;
            self.returned.1 += settled.credit.1;
            let (m, b) = self.returned;
            if m * 2 >= self.credit_max.0 || b * 2 >= self.credit_max.1 {
                let push = push.clone();
                // `grant` caps what one grant carries.
                let (m, b) = (clamp_u32(m), clamp_u32(b));
                self.returned = (0, 0);
                self.grants.spawn(async move { push.grant(m, b).await });
            }
        }
        self.flush();
        Ok(())
    }

    /// Counts the acks answered already, without waiting.
    pub fn settle_ready(&mut self, shared: &Shared, clock: &Clock) -> anyhow::Result<()> {
        while let Some(done) = self.in_flight.try_join_next() {
            self.settled(
                done.map_err(anyhow::Error::from).and_then(|d| d),
                shared,
                clock,
            )?;
        }
        Ok(())
    }

    /// Sends what waits and counts every ack as it is answered.
    pub async fn finish(&mut self, shared: &Shared, clock: &Clock) -> anyhow::Result<()> {
        self.send(shared, clock).await?;
        while !self.in_flight.is_empty() {
            let done = self.next_done().await;
            self.settled(done, shared, clock)?;
        }
        Ok(())
    }
}

fn clamp_u32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
