//! Model test: random operations on a window, checked step by step against
//! a plain map of offsets to states, with crashes that restore from the
//! last checkpoint plus the journal written since.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::recovery::Checkpoint;
use super::*;
use crate::subscription::DEADLINE_MAX_MS;

const PARTITION: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ModelState {
    Handled,
    Ready,
    Leased { deadline_ms: i64 },
    Retry { due_ms: i64 },
    DeadLetter,
}

#[derive(Clone, Copy, Debug)]
struct Message {
    meta: Meta,
    state: ModelState,
    attempts: u32,
}

/// A journal event, as the caller would write it.
#[derive(Clone, Copy, Debug)]
enum Event {
    Ack(u64, u64),
    Attempt(u64, u32),
}

#[derive(Clone, Debug)]
enum Op {
    Admit {
        gap: u64,
        key: Option<u64>,
        priority: u8,
        disposition: Disposition,
    },
    Next,
    Ack(Pick),
    Nack(Pick),
    Modify(Pick, u32),
    Advance(u32),
    Expire,
    DeadLettered(usize),
    Checkpoint,
    Crash,
}

/// Which ack id an operation uses.
#[derive(Clone, Copy, Debug)]
enum Pick {
    /// One of the outstanding leases.
    Outstanding(usize),
    /// The previous attempt of an outstanding lease.
    Stale(usize),
    /// Anything at all.
    Bogus {
        partition_off: bool,
        offset: u64,
        attempt: u32,
    },
}

struct Harness {
    config: WindowConfig,
    window: Window,
    /// Every offset admitted (the log), with its model state.
    log: BTreeMap<u64, Message>,
    cursor: u64,
    now_ms: i64,
    deliveries: u64,
    checkpoint: Checkpoint,
    journal: Vec<Event>,
}

impl Harness {
    fn new(config: WindowConfig, start: u64) -> Harness {
        let window = Window::new(PARTITION, config, start).unwrap();
        let checkpoint = window.checkpoint();
        Harness {
            config,
            window,
            log: BTreeMap::new(),
            cursor: start,
            now_ms: 0,
            deliveries: 0,
            checkpoint,
            journal: Vec::new(),
        }
    }

    fn floor(&self) -> u64 {
        let mut unhandled = self
            .log
            .iter()
            .filter(|(_, m)| m.state != ModelState::Handled);
        unhandled.next().map_or(self.cursor, |(&offset, _)| offset)
    }

    fn leases(&self) -> Vec<(u64, Message)> {
        let leased = |m: &Message| matches!(m.state, ModelState::Leased { .. });
        self.log
            .iter()
            .filter(|(_, m)| leased(m))
            .map(|(&o, &m)| (o, m))
            .collect()
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::Admit {
                gap,
                key,
                priority,
                disposition,
            } => {
                let meta = Meta {
                    key_hash: key,
                    priority,
                    disposition,
                };
                self.admit(self.cursor + gap, meta);
            }
            Op::Next => self.next(),
            Op::Ack(pick) => self.ack(pick),
            Op::Nack(pick) => self.nack(pick, None),
            Op::Modify(pick, extend_ms) => self.nack(pick, Some(extend_ms)),
            Op::Advance(ms) => self.now_ms += i64::from(ms),
            Op::Expire => self.expire(),
            Op::DeadLettered(index) => self.dead_lettered(index),
            Op::Checkpoint => {
                self.checkpoint = self.window.checkpoint();
                self.journal.clear();
            }
            Op::Crash => self.crash(),
        }
        self.check();
    }

    fn admit(&mut self, offset: u64, meta: Meta) {
        let result = self.window.admit(offset, meta);
        if offset - self.floor() >= self.config.window_max {
            assert!(matches!(result, Err(AdmitError::Full { .. })), "{result:?}");
            return;
        }
        let admitted = result.unwrap();
        let deliver = meta.disposition == Disposition::Deliver;
        let handled_end = if deliver { offset } else { offset + 1 };
        let expected = (self.cursor < handled_end).then(|| (self.cursor, handled_end - 1));
        assert_eq!(admitted.handled, expected);
        if let Some((first, last)) = admitted.handled {
            self.journal.push(Event::Ack(first, last));
        }
        let state = if deliver {
            ModelState::Ready
        } else {
            ModelState::Handled
        };
        self.log.insert(
            offset,
            Message {
                meta,
                state,
                attempts: 0,
            },
        );
        self.cursor = offset + 1;
        assert_eq!(admitted.floor, self.floor());
    }

    /// What `next` must deliver: promotes due retries, then applies the
    /// selection rules to the model.
    fn expected_next(&mut self) -> Option<u64> {
        for message in self.log.values_mut() {
            if matches!(message.state, ModelState::Retry { due_ms } if due_ms <= self.now_ms) {
                message.state = ModelState::Ready;
            }
        }
        if self.leases().len() >= self.config.outstanding_max {
            return None;
        }
        let mut deliverable = Vec::new();
        let mut keys_seen = std::collections::BTreeSet::new();
        for (&offset, message) in &self.log {
            if message.state == ModelState::Handled {
                continue;
            }
            let key = message.meta.key_hash.filter(|_| self.config.ordering);
            let first_of_key = key.is_none_or(|key| keys_seen.insert(key));
            if message.state == ModelState::Ready && first_of_key {
                deliverable.push((offset, message.meta.priority.min(PRIORITY_MAX)));
            }
        }
        let oldest = deliverable.first().map(|&(offset, _)| offset);
        if !self.config.priority || self.deliveries % 8 == 7 {
            return oldest;
        }
        let top = deliverable.iter().map(|&(_, level)| level).max()?;
        deliverable
            .iter()
            .find(|&&(_, level)| level == top)
            .map(|&(offset, _)| offset)
    }

    fn next(&mut self) {
        let expected = self.expected_next();
        let delivery = self.window.next(self.now_ms);
        assert_eq!(delivery.map(|d| d.offset), expected);
        let Some(delivery) = delivery else { return };
        let message = self.log.get_mut(&delivery.offset).unwrap();
        assert_ne!(
            message.state,
            ModelState::Handled,
            "a handled offset is never delivered"
        );
        message.attempts += 1;
        let deadline_ms = self.now_ms + i64::from(self.config.ack_deadline_ms);
        message.state = ModelState::Leased { deadline_ms };
        assert_eq!(delivery.attempt, message.attempts);
        assert_eq!(delivery.deadline_ms, deadline_ms);
        let ack_id = AckId {
            partition: PARTITION,
            offset: delivery.offset,
            attempt: delivery.attempt,
        };
        assert_eq!(delivery.ack_id, ack_id);
        self.deliveries += 1;
        self.journal
            .push(Event::Attempt(delivery.offset, delivery.attempt));
    }

    fn ack_id(&self, pick: Pick) -> AckId {
        let leases = self.leases();
        let lease = |i: usize| leases.get(i % leases.len().max(1));
        match pick {
            Pick::Outstanding(i) | Pick::Stale(i) if lease(i).is_some() => {
                let (offset, message) = *lease(i).unwrap();
                let stale = u32::from(matches!(pick, Pick::Stale(_)));
                AckId {
                    partition: PARTITION,
                    offset,
                    attempt: message.attempts - stale,
                }
            }
            Pick::Bogus {
                partition_off,
                offset,
                attempt,
            } => AckId {
                partition: PARTITION + u32::from(partition_off),
                offset: offset % (self.cursor + 3),
                attempt,
            },
            _ => AckId {
                partition: PARTITION,
                offset: self.cursor,
                attempt: 1,
            },
        }
    }

    /// The answer the rules of SEMANTICS.md §5 give to an ack id.
    fn expected_lease(&self, id: AckId) -> Result<(), AckError> {
        let offset = id.offset;
        if id.partition != PARTITION {
            return Err(AckError::WrongPartition {
                expected: PARTITION,
                got: id.partition,
            });
        }
        let message = match self.log.get(&offset) {
            Some(m) if m.state != ModelState::Handled => m,
            _ => return Err(AckError::Unknown { offset }),
        };
        if id.attempt == 0 || id.attempt > message.attempts {
            return Err(AckError::Unknown { offset });
        }
        match message.state {
            ModelState::Leased { deadline_ms }
                if id.attempt == message.attempts && self.now_ms < deadline_ms =>
            {
                Ok(())
            }
            _ => Err(AckError::LeaseExpired { offset }),
        }
    }

    fn ack(&mut self, pick: Pick) {
        let id = self.ack_id(pick);
        let expected = self.expected_lease(id);
        let result = self.window.ack(id, self.now_ms);
        assert_eq!(result.map(|_| ()), expected);
        if let Ok(acked) = result {
            self.log.get_mut(&id.offset).unwrap().state = ModelState::Handled;
            self.journal.push(Event::Ack(id.offset, id.offset));
            assert_eq!(acked.floor, self.floor());
        }
    }

    /// A nack, or with `extend_ms` a deadline change.
    fn nack(&mut self, pick: Pick, extend_ms: Option<u32>) {
        let id = self.ack_id(pick);
        let expected = self.expected_lease(id);
        let ended = match extend_ms {
            None => self.window.nack(id, self.now_ms),
            Some(extend_ms) => match self.window.modify_deadline(id, extend_ms, self.now_ms) {
                Ok(DeadlineChange::Extended { deadline_ms }) => {
                    assert_eq!(expected, Ok(()));
                    let deadline = self.now_ms + i64::from(extend_ms.min(DEADLINE_MAX_MS));
                    assert_eq!(deadline_ms, deadline);
                    self.log.get_mut(&id.offset).unwrap().state =
                        ModelState::Leased { deadline_ms };
                    return;
                }
                Ok(DeadlineChange::Ended(ended)) => Ok(ended),
                Err(e) => Err(e),
            },
        };
        assert_eq!(ended.map(|_| ()), expected);
        if let Ok(ended) = ended {
            assert_eq!(ended, self.end_lease(ended.offset));
        }
    }

    /// The model's side of a lease ending now.
    fn end_lease(&mut self, offset: u64) -> LeaseEnded {
        let config = self.config;
        let now_ms = self.now_ms;
        let message = self.log.get_mut(&offset).unwrap();
        let attempts = message.attempts;
        let after = if config.max_deliveries.is_some_and(|max| attempts >= max) {
            message.state = ModelState::DeadLetter;
            AfterLease::DeadLetter
        } else {
            let doubled = u64::from(config.backoff_min_ms) << (attempts - 1).min(32);
            let backoff_ms = doubled.min(u64::from(config.backoff_max_ms));
            let due_ms = now_ms + i64::try_from(backoff_ms).unwrap();
            message.state = ModelState::Retry { due_ms };
            AfterLease::RetryAt { due_ms }
        };
        LeaseEnded {
            offset,
            attempts,
            after,
        }
    }

    fn expire(&mut self) {
        let mut due: Vec<(i64, u64)> = self
            .leases()
            .into_iter()
            .filter_map(|(offset, m)| match m.state {
                ModelState::Leased { deadline_ms } if deadline_ms <= self.now_ms => {
                    Some((deadline_ms, offset))
                }
                _ => None,
            })
            .collect();
        due.sort_unstable();
        let expected: Vec<LeaseEnded> = due
            .iter()
            .map(|&(_, offset)| self.end_lease(offset))
            .collect();
        assert_eq!(self.window.expire(self.now_ms), expected);
    }

    fn dead_lettered(&mut self, index: usize) {
        let dead: Vec<u64> = self
            .log
            .iter()
            .filter(|(_, m)| m.state == ModelState::DeadLetter)
            .map(|(&offset, _)| offset)
            .collect();
        let Some(&offset) = dead.get(index % dead.len().max(1)) else {
            let offset = index as u64 % (self.cursor + 1);
            assert_eq!(
                self.window.dead_lettered(offset),
                Err(NotDeadLetter { offset })
            );
            return;
        };
        let acked = self.window.dead_lettered(offset).unwrap();
        self.log.get_mut(&offset).unwrap().state = ModelState::Handled;
        self.journal.push(Event::Ack(offset, offset));
        assert_eq!(acked.floor, self.floor());
    }

    /// A restart: restore from the last checkpoint, replay the journal,
    /// re-read the log. Leases end; nothing handled comes back.
    fn crash(&mut self) {
        let mut window = Window::restore(PARTITION, self.config, &self.checkpoint).unwrap();
        for event in &self.journal {
            match *event {
                Event::Ack(first, last) => window.apply_ack_range(first, last).map(|_| ()),
                Event::Attempt(offset, attempts) => window.apply_attempt(offset, attempts),
            }
            .unwrap();
        }
        if window.awaiting_meta() > 0 {
            assert_eq!(
                window.clone().next(self.now_ms),
                None,
                "keys are not known yet"
            );
        }
        self.reread(&mut window);
        self.window = window;
        self.deliveries = 0;
        for message in self.log.values_mut() {
            if message.state != ModelState::Handled {
                message.state = ModelState::Ready;
            }
        }
        self.check_all_deliverable();
    }

    /// Re-reads the log from the floor: reattach below the restored
    /// cursor (handling what the log lacks), admit from it.
    fn reread(&mut self, window: &mut Window) {
        let restored_cursor = window.cursor();
        let mut expected = window.floor();
        for (&offset, message) in self.log.range(window.floor()..restored_cursor) {
            if offset > expected {
                window.apply_ack_range(expected, offset - 1).unwrap();
            }
            assert_eq!(window.reattach(offset, message.meta).unwrap().handled, None);
            expected = offset + 1;
        }
        if expected < restored_cursor {
            window
                .apply_ack_range(expected, restored_cursor - 1)
                .unwrap();
        }
        assert_eq!(window.awaiting_meta(), 0);
        for (&offset, message) in self.log.range(restored_cursor..) {
            let admitted = window.admit(offset, message.meta).unwrap();
            if let Some((first, last)) = admitted.handled {
                self.journal.push(Event::Ack(first, last));
            }
        }
        assert_eq!(window.cursor(), self.cursor);
    }

    /// After a restart every unhandled offset is delivered again, and
    /// nothing else: drain a copy, acking as it goes.
    fn check_all_deliverable(&self) {
        let mut window = self.window.clone();
        let mut delivered = Vec::new();
        while let Some(d) = window.next(self.now_ms) {
            delivered.push(d.offset);
            window.ack(d.ack_id, self.now_ms).unwrap();
        }
        delivered.sort_unstable();
        let unhandled: Vec<u64> = self
            .log
            .iter()
            .filter(|(_, m)| m.state != ModelState::Handled)
            .map(|(&offset, _)| offset)
            .collect();
        assert_eq!(delivered, unhandled);
    }

    fn check(&self) {
        let w = &self.window;
        w.assert_invariants();
        assert_eq!(w.cursor(), self.cursor);
        assert_eq!(w.floor(), self.floor());
        assert!(w.cursor() - w.floor() <= self.config.window_max);
        let leases = self.leases();
        assert_eq!(w.outstanding(), leases.len());
        assert!(w.outstanding() <= self.config.outstanding_max);
        let unhandled = self
            .log
            .values()
            .filter(|m| m.state != ModelState::Handled)
            .count();
        assert_eq!(w.unhandled(), unhandled);
        if self.config.ordering {
            let mut keys = std::collections::BTreeSet::new();
            for key in leases.iter().filter_map(|(_, m)| m.meta.key_hash) {
                assert!(keys.insert(key), "two leases of one key");
            }
        }
        let due = self.log.values().filter_map(|m| match m.state {
            ModelState::Leased { deadline_ms } => Some(deadline_ms),
            ModelState::Retry { due_ms } => Some(due_ms),
            _ => None,
        });
        assert_eq!(
            w.next_due(self.now_ms),
            due.min().map(|d| d.max(self.now_ms))
        );
    }
}

fn config_strategy() -> impl Strategy<Value = WindowConfig> {
    (
        1..=12u64,
        1..=4usize,
        1..=2_000u32,
        0..=300u32,
        0..=1_000u32,
    )
        .prop_flat_map(
            |(window_max, outstanding_max, ack_deadline_ms, min, spread)| {
                (prop::option::of(1..=3u32), any::<bool>(), any::<bool>()).prop_map(
                    move |(max_deliveries, ordering, priority)| WindowConfig {
                        window_max,
                        outstanding_max,
                        ack_deadline_ms,
                        backoff_min_ms: min,
                        backoff_max_ms: min + spread,
                        max_deliveries,
                        ordering,
                        priority,
                        ..WindowConfig::default()
                    },
                )
            },
        )
}

fn pick_strategy() -> impl Strategy<Value = Pick> {
    prop_oneof![
        6 => any::<usize>().prop_map(Pick::Outstanding),
        1 => any::<usize>().prop_map(Pick::Stale),
        1 => (any::<bool>(), any::<u64>(), 0..4u32)
            .prop_map(|(partition_off, offset, attempt)| Pick::Bogus { partition_off, offset, attempt }),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let disposition = prop_oneof![
        8 => Just(Disposition::Deliver),
        1 => Just(Disposition::Filtered),
        1 => Just(Disposition::Expired),
        1 => Just(Disposition::Deferred),
    ];
    let gap = prop_oneof![6 => Just(0u64), 1 => 1..4u64];
    let admit = (gap, prop::option::of(0..3u64), 0..=10u8, disposition).prop_map(
        |(gap, key, priority, disposition)| Op::Admit {
            gap,
            key,
            priority,
            disposition,
        },
    );
    prop_oneof![
        6 => admit,
        6 => Just(Op::Next),
        4 => pick_strategy().prop_map(Op::Ack),
        2 => pick_strategy().prop_map(Op::Nack),
        2 => (pick_strategy(), prop_oneof![Just(0u32), 1..5_000u32]).prop_map(|(p, ms)| Op::Modify(p, ms)),
        3 => (0..1_500u32).prop_map(Op::Advance),
        2 => Just(Op::Expire),
        1 => any::<usize>().prop_map(Op::DeadLettered),
        1 => Just(Op::Checkpoint),
        1 => Just(Op::Crash),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn window_matches_the_model(
        config in config_strategy(),
        start in prop_oneof![Just(0u64), any::<u64>().prop_map(|s| s % (1 << 40))],
        ops in prop::collection::vec(op_strategy(), 1..300),
    ) {
        let mut harness = Harness::new(config, start);
        for op in &ops {
            harness.step(op);
        }
        harness.step(&Op::Crash);
    }

    /// Whatever a checkpoint holds, restore builds a sound window or
    /// refuses it, and the window then survives any calls.
    #[test]
    fn arbitrary_input_never_panics(
        floor in 0..40u64,
        width in 0..34u64,
        ranges in prop::collection::vec((0..6u64, 0..3u64), 0..5),
        attempts in prop::collection::vec((0..34u64, 0..4u32), 0..2),
        calls in prop::collection::vec((0..8u8, any::<u64>(), any::<u32>(), any::<i64>()), 0..60),
    ) {
        let config = WindowConfig { window_max: 32, outstanding_max: 4, ordering: true, priority: true, ..WindowConfig::default() };
        let checkpoint = Checkpoint {
            floor,
            cursor: floor + width,
            handled_above_floor: ranges_from(floor, &ranges),
            attempts: attempts.iter().map(|&(offset, n)| (floor + offset, n)).collect(),
                    delayed: vec![],
};
        let Ok(mut w) = Window::restore(PARTITION, config, &checkpoint) else { return Ok(()) };
        w.assert_invariants();
        for (call, offset, small, now_ms) in calls {
            let id = AckId { partition: PARTITION, offset: offset % 80, attempt: small % 4 };
            let meta = Meta::deliver().with_key(offset % 3).with_priority(small as u8);
            match call {
                0 => drop(w.admit(offset % 100, meta)),
                1 => drop(w.next(now_ms)),
                2 => drop(w.ack(id, now_ms)),
                3 => drop(w.nack(id, now_ms)),
                4 => drop(w.modify_deadline(id, small, now_ms)),
                5 => drop(w.expire(now_ms)),
                6 => drop(w.apply_ack_range(offset % 100, offset % 100 + u64::from(small % 5))),
                _ => drop(w.reattach(offset % 80, meta)),
            }
            w.assert_invariants();
        }
    }

    #[test]
    fn any_bytes_decode_to_an_ack_id_or_an_error(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
        if let Ok(id) = AckId::from_bytes(&bytes) {
            prop_assert_eq!(&id.to_bytes()[..], &bytes[..]);
        }
    }
}

/// Ascending handled ranges from `(gap, length - 1)` steps.
fn ranges_from(floor: u64, steps: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut from = floor;
    let mut ranges = Vec::new();
    for &(gap, extra) in steps {
        let first = from + gap;
        ranges.push((first, first + extra));
        from = first + extra + 1;
    }
    ranges
}
