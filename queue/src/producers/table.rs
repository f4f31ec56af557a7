//! The producer table of one partition: per producer, its epoch and the
//! last few batches it appended.

use std::collections::{BTreeSet, HashMap, VecDeque};

use super::sequence::{advance, distance, Identity, SEQUENCE_MODULUS};

/// Batches remembered per producer. A client may pipeline this many
/// batches to one partition and still have any of them answered as a
/// duplicate when it retries.
pub const RECENT_BATCHES: usize = 8;

/// How far ahead of the expected sequence a batch may be and still wait
/// for the batches before it: half the sequence space. Further "ahead" is
/// read as behind (an old batch).
const AHEAD_MAX: i64 = SEQUENCE_MODULUS / 2;

/// What to do with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The batch names no producer: append it without checks.
    Unchecked,
    /// The next batch of its producer (or a new producer or epoch): append.
    Append,
    /// Appended before, at these offsets: answer with them, write nothing.
    Duplicate {
        /// The original batch's first offset.
        base_offset: u64,
        /// The original batch's last offset.
        last_offset: u64,
    },
    /// A producer the partition does not know (new, or evicted), starting
    /// past sequence 0: it may wait for a batch that starts the producer
    /// (pipelined batches can arrive in any order); after the wait it is
    /// appended as the producer's start.
    Unknown,
    /// Batches before it are missing: it may wait for them.
    Ahead {
        /// The sequence the partition expects next.
        expected: i32,
    },
    /// An older epoch than the partition has seen.
    Fenced {
        /// The epoch the partition has seen.
        current: i16,
    },
    /// Neither next, nor a remembered duplicate, nor ahead.
    OutOfOrder {
        /// The sequence the partition expects next.
        expected: i32,
    },
}

/// One appended batch of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sequenced {
    pub(crate) first_sequence: i32,
    pub(crate) last_sequence: i32,
    pub(crate) base_offset: u64,
    pub(crate) last_offset: u64,
}

/// What the partition knows of one producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Producer {
    pub(crate) epoch: i16,
    /// Oldest first, at most [`RECENT_BATCHES`].
    pub(crate) recent: VecDeque<Sequenced>,
    /// When it last appended (wall clock, ms), for expiry.
    pub(crate) last_seen_ms: i64,
    /// Order of last use, for eviction at the cap.
    touch: u64,
}

impl Producer {
    fn expected(&self) -> Option<i32> {
        self.recent.back().map(|b| advance(b.last_sequence, 1))
    }
}

/// Every producer a partition knows, at most `max` (least recently used
/// evicted first).
#[derive(Debug, Clone)]
pub struct ProducerTable {
    producers: HashMap<i64, Producer>,
    by_use: BTreeSet<(u64, i64)>,
    clock: u64,
    max: usize,
    evicted: u64,
}

impl PartialEq for ProducerTable {
    fn eq(&self, other: &Self) -> bool {
        // Use order is bookkeeping; the state is who and what.
        self.producers.len() == other.producers.len()
            && self.producers.iter().all(|(id, p)| {
                other.producers.get(id).is_some_and(|q| {
                    p.epoch == q.epoch && p.recent == q.recent && p.last_seen_ms == q.last_seen_ms
                })
            })
    }
}

impl ProducerTable {
    /// An empty table holding at most `max` producers (at least 1).
    pub fn new(max: usize) -> ProducerTable {
        ProducerTable {
            producers: HashMap::new(),
            by_use: BTreeSet::new(),
            clock: 0,
            max: max.max(1),
            evicted: 0,
        }
    }

    /// Producers known.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// True when no producer is known.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Producers evicted at the cap or by expiry since the table was made.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// The most producers the table holds.
    pub fn max(&self) -> usize {
        self.max
    }

    /// What to do with a batch of `id` (`None`: a batch without a producer).
    pub fn check(&self, id: Option<&Identity>) -> Verdict {
        let Some(id) = id else {
            return Verdict::Unchecked;
        };
        let Some(known) = self.producers.get(&id.producer_id) else {
            return if id.base_sequence == 0 {
                Verdict::Append
            } else {
                Verdict::Unknown
            };
        };
        if id.epoch < known.epoch {
            return Verdict::Fenced {
                current: known.epoch,
            };
        }
        if id.epoch > known.epoch {
            return if id.base_sequence == 0 {
                Verdict::Append
            } else {
                Verdict::Ahead { expected: 0 }
            };
        }
        let last = id.last_sequence();
        if let Some(dup) = known
            .recent
            .iter()
            .find(|b| b.first_sequence == id.base_sequence && b.last_sequence == last)
        {
            return Verdict::Duplicate {
                base_offset: dup.base_offset,
                last_offset: dup.last_offset,
            };
        }
        let Some(expected) = known.expected() else {
            // Known epoch, nothing remembered (rewound): any start goes.
            return Verdict::Append;
        };
        match distance(expected, id.base_sequence) {
            0 => Verdict::Append,
            d if d < AHEAD_MAX => Verdict::Ahead { expected },
            _ => Verdict::OutOfOrder { expected },
        }
    }

    /// Records a batch appended at `base_offset`, after
    /// [`check`](Self::check) said [`Verdict::Append`].
    pub fn record(&mut self, id: &Identity, base_offset: u64, now_ms: i64) {
        self.clock += 1;
        let touch = self.clock;
        let batch = Sequenced {
            first_sequence: id.base_sequence,
            last_sequence: id.last_sequence(),
            base_offset,
            last_offset: base_offset + u64::from(id.record_count) - 1,
        };
        match self.producers.get_mut(&id.producer_id) {
            Some(known) => {
                self.by_use.remove(&(known.touch, id.producer_id));
                if id.epoch != known.epoch {
                    known.epoch = id.epoch;
                    known.recent.clear();
                }
                if known.recent.len() == RECENT_BATCHES {
                    known.recent.pop_front();
                }
                known.recent.push_back(batch);
                known.last_seen_ms = now_ms;
                known.touch = touch;
            }
            None => {
                if self.producers.len() >= self.max {
                    self.evict_least_used();
                }
                self.producers.insert(
                    id.producer_id,
                    Producer {
                        epoch: id.epoch,
                        recent: VecDeque::from([batch]),
                        last_seen_ms: now_ms,
                        touch,
                    },
                );
            }
        }
        self.by_use.insert((touch, id.producer_id));
    }

    /// Forgets batches at or after `offset`: they were queued but never
    /// written (a failed write rewinds the log to its written mark).
    pub fn rewind(&mut self, offset: u64) {
        for producer in self.producers.values_mut() {
            while producer
                .recent
                .back()
                .is_some_and(|b| b.base_offset >= offset)
            {
                producer.recent.pop_back();
            }
        }
    }

    /// Evicts producers idle since before `now_ms - expiry_ms`; returns how
    /// many.
    pub fn expire(&mut self, now_ms: i64, expiry_ms: u64) -> usize {
        let cutoff = now_ms.saturating_sub(i64::try_from(expiry_ms).unwrap_or(i64::MAX));
        let stale: Vec<(u64, i64)> = self
            .producers
            .iter()
            .filter(|(_, p)| p.last_seen_ms < cutoff)
            .map(|(id, p)| (p.touch, *id))
            .collect();
        for (touch, id) in &stale {
            self.producers.remove(id);
            self.by_use.remove(&(*touch, *id));
        }
        self.evicted += stale.len() as u64;
        stale.len()
    }

    fn evict_least_used(&mut self) {
        if let Some((touch, id)) = self.by_use.pop_first() {
            self.producers.remove(&id);
            self.evicted += 1;
            debug_assert!(touch <= self.clock);
        }
    }

    /// Every producer, for the snapshot, in id order (so equal tables
    /// encode equally).
    pub(crate) fn entries(&self) -> Vec<(i64, &Producer)> {
        let mut all: Vec<(i64, &Producer)> = self.producers.iter().map(|(k, v)| (*k, v)).collect();
        all.sort_unstable_by_key(|(id, _)| *id);
        all
    }

    /// Inserts a producer read from a snapshot; `false` when the id is
    /// already there or the table is full.
    pub(crate) fn restore(
        &mut self,
        producer_id: i64,
        epoch: i16,
        recent: VecDeque<Sequenced>,
        last_seen_ms: i64,
    ) -> bool {
        if self.producers.len() >= self.max || self.producers.contains_key(&producer_id) {
            return false;
        }
        self.clock += 1;
        self.producers.insert(
            producer_id,
            Producer {
                epoch,
                recent,
                last_seen_ms,
                touch: self.clock,
            },
        );
        self.by_use.insert((self.clock, producer_id));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(producer_id: i64, epoch: i16, base_sequence: i32, record_count: u32) -> Identity {
        Identity {
            producer_id,
            epoch,
            base_sequence,
            record_count,
        }
    }

    /// Checks then records, as the log does; returns the verdict.
    fn offer(t: &mut ProducerTable, i: Identity, next_offset: &mut u64) -> Verdict {
        let v = t.check(Some(&i));
        if v == Verdict::Append {
            t.record(&i, *next_offset, 0);
            *next_offset += u64::from(i.record_count);
        }
        v
    }

    #[test]
    fn a_retried_batch_is_a_duplicate_with_its_original_offsets() {
        let mut t = ProducerTable::new(10);
        let mut next = 100;
        assert_eq!(offer(&mut t, id(7, 0, 0, 10), &mut next), Verdict::Append);
        assert_eq!(offer(&mut t, id(7, 0, 10, 5), &mut next), Verdict::Append);
        assert_eq!(
            t.check(Some(&id(7, 0, 0, 10))),
            Verdict::Duplicate {
                base_offset: 100,
                last_offset: 109
            }
        );
        assert_eq!(
            t.check(Some(&id(7, 0, 10, 5))),
            Verdict::Duplicate {
                base_offset: 110,
                last_offset: 114
            }
        );
        assert_eq!(t.check(None), Verdict::Unchecked);
    }

    #[test]
    fn eight_batches_are_remembered_and_the_ninth_back_is_out_of_order() {
        let mut t = ProducerTable::new(10);
        let mut next = 0;
        for b in 0..9 {
            assert_eq!(offer(&mut t, id(1, 0, b, 1), &mut next), Verdict::Append);
        }
        assert!(matches!(
            t.check(Some(&id(1, 0, 1, 1))),
            Verdict::Duplicate { base_offset: 1, .. }
        ));
        assert_eq!(
            t.check(Some(&id(1, 0, 0, 1))),
            Verdict::OutOfOrder { expected: 9 }
        );
    }

    #[test]
    fn a_batch_ahead_waits_and_a_partial_overlap_is_out_of_order() {
        let mut t = ProducerTable::new(10);
        let mut next = 0;
        offer(&mut t, id(1, 0, 0, 10), &mut next);
        assert_eq!(
            t.check(Some(&id(1, 0, 20, 10))),
            Verdict::Ahead { expected: 10 }
        );
        assert_eq!(
            t.check(Some(&id(1, 0, 5, 10))),
            Verdict::OutOfOrder { expected: 10 }
        );
    }

    #[test]
    fn an_older_epoch_is_fenced_and_a_new_epoch_starts_at_zero() {
        let mut t = ProducerTable::new(10);
        let mut next = 0;
        offer(&mut t, id(3, 1, 0, 2), &mut next);
        assert_eq!(
            t.check(Some(&id(3, 0, 2, 1))),
            Verdict::Fenced { current: 1 }
        );
        assert_eq!(
            t.check(Some(&id(3, 2, 5, 1))),
            Verdict::Ahead { expected: 0 }
        );
        assert_eq!(offer(&mut t, id(3, 2, 0, 1), &mut next), Verdict::Append);
        assert_eq!(
            t.check(Some(&id(3, 1, 2, 1))),
            Verdict::Fenced { current: 2 }
        );
        // The old epoch's batches are forgotten with it.
        assert_eq!(
            t.check(Some(&id(3, 2, 0, 1))),
            Verdict::Duplicate {
                base_offset: 2,
                last_offset: 2
            }
        );
    }

    #[test]
    fn sequences_continue_across_the_wrap() {
        let mut t = ProducerTable::new(10);
        let mut next = 0;
        // Past 0 for an unknown producer: the log waits, then records it.
        assert_eq!(t.check(Some(&id(1, 0, i32::MAX - 1, 3))), Verdict::Unknown);
        t.record(&id(1, 0, i32::MAX - 1, 3), 0, 0);
        next += 3;
        assert_eq!(offer(&mut t, id(1, 0, 1, 1), &mut next), Verdict::Append);
    }

    #[test]
    fn at_the_cap_the_least_recently_used_producer_goes() {
        let mut t = ProducerTable::new(2);
        let mut next = 0;
        offer(&mut t, id(1, 0, 0, 1), &mut next);
        offer(&mut t, id(2, 0, 0, 1), &mut next);
        offer(&mut t, id(1, 0, 1, 1), &mut next); // 1 used again
        offer(&mut t, id(3, 0, 0, 1), &mut next); // evicts 2
        assert_eq!(t.len(), 2);
        assert_eq!(t.evicted(), 1);
        assert_eq!(t.check(Some(&id(2, 0, 0, 1))), Verdict::Append);
        assert!(matches!(
            t.check(Some(&id(1, 0, 1, 1))),
            Verdict::Duplicate { .. }
        ));
    }

    #[test]
    fn rewind_forgets_batches_that_were_never_written() {
        let mut t = ProducerTable::new(10);
        let mut next = 0;
        offer(&mut t, id(1, 0, 0, 5), &mut next); // 0..5
        offer(&mut t, id(1, 0, 5, 5), &mut next); // 5..10
        t.rewind(5);
        assert_eq!(t.check(Some(&id(1, 0, 5, 5))), Verdict::Append);
        t.rewind(0);
        assert_eq!(t.check(Some(&id(1, 0, 77, 1))), Verdict::Append);
    }

    #[test]
    fn idle_producers_expire() {
        let mut t = ProducerTable::new(10);
        t.record(&id(1, 0, 0, 1), 0, 1_000);
        t.record(&id(2, 0, 0, 1), 1, 5_000);
        assert_eq!(t.expire(6_000, 2_000), 1);
        assert_eq!(t.len(), 1);
        assert_eq!(t.check(Some(&id(1, 0, 9, 1))), Verdict::Unknown);
        assert_eq!(t.check(Some(&id(1, 0, 0, 1))), Verdict::Append);
    }
}
