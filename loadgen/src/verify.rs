//! Verification while measuring: which messages were acknowledged, which
//! were consumed, and whether any came twice or out of order.
//!
//! Sequence numbers of a producer are dense from 0, so a bit per message
//! is enough: a minute at two million messages per second is 15 MB.

use std::collections::HashMap;

/// A growable set of sequence numbers.
#[derive(Debug, Clone, Default)]
pub struct SeqSet {
    words: Vec<u64>,
    len: u64,
}

impl SeqSet {
    /// Adds `seq`; false if it was already there.
    pub fn insert(&mut self, seq: u64) -> bool {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let mask = 1u64 << bit;
        let new = self.words[word] & mask == 0;
        self.words[word] |= mask;
        self.len += u64::from(new);
        new
    }

    /// Adds `start..end`.
    pub fn insert_range(&mut self, start: u64, end: u64) {
        for seq in start..end {
            self.insert(seq);
        }
    }

    #[cfg(test)]
    pub fn contains(&self, seq: u64) -> bool {
        self.words
            .get((seq / 64) as usize)
            .is_some_and(|w| w & (1 << (seq % 64)) != 0)
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    /// Members of `self` missing from `other`.
    pub fn missing_from(&self, other: &SeqSet) -> u64 {
        self.words
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let theirs = other.words.get(i).copied().unwrap_or(0);
                u64::from((w & !theirs).count_ones())
            })
            .sum()
    }

    /// Adds every member of `other`; returns how many were already here.
    pub fn union(&mut self, other: &SeqSet) -> u64 {
        if other.words.len() > self.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        let mut overlap = 0u64;
        let mut added = 0u64;
        for (mine, theirs) in self.words.iter_mut().zip(&other.words) {
            overlap += u64::from((*mine & theirs).count_ones());
            added += u64::from((theirs & !*mine).count_ones());
            *mine |= theirs;
        }
        self.len += added;
        overlap
    }
}

/// What one consumer saw. Producers and partitions are small dense
/// numbers, so plain vectors index them (no hashing per message).
#[derive(Debug, Clone, Default)]
pub struct ConsumerTally {
    /// Per producer: the sequence numbers consumed.
    pub seen: Vec<SeqSet>,
    /// Per producer, per partition: one past the highest sequence consumed
    /// (0: none yet).
    last: Vec<Vec<u64>>,
    pub duplicated: u64,
    pub out_of_order: u64,
    pub foreign: u64,
}

/// What became of one consumed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    New,
    Duplicate,
    /// New, but after a later message of its producer and partition.
    OutOfOrder,
}

impl ConsumerTally {
    pub fn record(&mut self, producer: u32, partition: u32, seq: u64) -> Seen {
        let (p, part) = (producer as usize, partition as usize);
        if p >= self.seen.len() {
            self.seen.resize_with(p + 1, SeqSet::default);
            self.last.resize_with(p + 1, Vec::new);
        }
        if !self.seen[p].insert(seq) {
            self.duplicated += 1;
            return Seen::Duplicate;
        }
        let last = &mut self.last[p];
        if part >= last.len() {
            last.resize(part + 1, 0);
        }
        if seq + 1 < last[part] {
            self.out_of_order += 1;
            return Seen::OutOfOrder;
        }
        last[part] = seq + 1;
        Seen::New
    }
}

/// The whole run's verdict from the producers' acknowledged sets and every
/// consumer's tally.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Verdict {
    pub consumed: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    pub foreign: u64,
}

pub fn verdict(acked: &HashMap<u32, SeqSet>, tallies: &[ConsumerTally]) -> Verdict {
    let mut seen: HashMap<u32, SeqSet> = HashMap::new();
    let mut v = Verdict::default();
    for tally in tallies {
        v.duplicated += tally.duplicated;
        v.out_of_order += tally.out_of_order;
        v.foreign += tally.foreign;
        for (producer, set) in tally.seen.iter().enumerate() {
            // A message two consumers both saw is a duplicate too.
            v.duplicated += seen.entry(producer as u32).or_default().union(set);
        }
    }
    v.consumed = seen.values().map(SeqSet::len).sum();
    let empty = SeqSet::default();
    v.lost = acked
        .iter()
        .map(|(producer, set)| set.missing_from(seen.get(producer).unwrap_or(&empty)))
        .sum();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_counts_and_compares() {
        let mut a = SeqSet::default();
        a.insert_range(0, 130);
        assert_eq!(a.len(), 130);
        assert!(!a.insert(5));
        let mut b = SeqSet::default();
        b.insert_range(0, 100);
        assert_eq!(a.missing_from(&b), 30);
        assert_eq!(b.missing_from(&a), 0);
        assert_eq!(b.union(&a), 100);
        assert_eq!(b.len(), 130);
        assert!(b.contains(129) && !b.contains(130));
    }

    #[test]
    fn tally_finds_duplicates_and_reordering() {
        let mut t = ConsumerTally::default();
        assert_eq!(t.record(1, 0, 0), Seen::New);
        assert_eq!(t.record(1, 0, 2), Seen::New);
        assert_eq!(t.record(1, 0, 1), Seen::OutOfOrder);
        assert_eq!(t.record(1, 0, 2), Seen::Duplicate);
        // Another partition has its own order.
        assert_eq!(t.record(1, 1, 3), Seen::New);
        assert_eq!((t.duplicated, t.out_of_order), (1, 1));
    }

    #[test]
    fn verdict_counts_lost_and_cross_consumer_duplicates() {
        let mut acked = HashMap::new();
        let mut set = SeqSet::default();
        set.insert_range(0, 10);
        acked.insert(7, set);
        let mut a = ConsumerTally::default();
        let mut b = ConsumerTally::default();
        for seq in 0..6 {
            a.record(7, 0, seq);
        }
        for seq in 5..8 {
            b.record(7, 1, seq);
        }
        let v = verdict(&acked, &[a, b]);
        assert_eq!(v.consumed, 8);
        assert_eq!(v.duplicated, 1); // 5
        assert_eq!(v.lost, 2); // 8 and 9
    }
}
