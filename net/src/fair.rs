//! Deficit round robin over the connections that have requests waiting for
//! budget (docs/FLOW_CONTROL.md, "Fairness"). Pure state: which connection
//! is next and how much each may take; the requests, their sizes, the
//! weights and the budget are the caller's, seen through [`Backlog`].
//!
//! Each visit of a connection adds `quantum × weight` to its deficit; it
//! then admits its waiting requests, oldest first, while the deficit covers
//! the next one and the budget has room. A request larger than its
//! connection's deficit waits for later rounds (the deficit accumulates),
//! so it gets through eventually. A connection with nothing left waiting
//! leaves the round, and its deficit with it.
//!
//! When the budget has no room for the request whose turn it is, the round
//! stops there and resumes at that same connection, without a new quantum,
//! when budget frees: the budget is the scarce resource, and who gets its
//! next bytes is decided by the round, not by who asks first.

use std::{
    collections::{HashSet, VecDeque},
    hash::Hash,
};

/// What the round robin schedules over: connections (`K`) with queues of
/// waiting requests, and the budget they are admitted into.
pub(crate) trait Backlog<K> {
    /// Bytes of `k`'s oldest waiting request; `None` when nothing waits
    /// (or `k` is gone).
    fn head_bytes(&self, k: &K) -> Option<usize>;
    /// `k`'s share relative to the others (0 counts as 1).
    fn weight(&self, k: &K) -> u32;
    /// True if the budget can take `bytes` now.
    fn fits(&self, bytes: usize) -> bool;
    /// Admits `k`'s oldest waiting request: the budget takes its bytes.
    /// Called only after `head_bytes` and `fits` agreed.
    fn admit(&mut self, k: &K);
    /// `k` offers more than its share (`true`): a visit of it ended with
    /// requests still waiting because its deficit ran out. It is `false`
    /// again once `k` leaves the round with nothing waiting. Told on each
    /// change only, and not when `k` is gone ([`Fair::leave`]: its
    /// connection closed, and whatever kept the flag went with it). A
    /// sparse connection, whose waiting requests fit in one visit, is never
    /// over its share.
    fn over_share(&mut self, k: &K, over: bool);
}

/// One connection in the round.
#[derive(Debug)]
struct Entry<K> {
    key: K,
    deficit_bytes: u64,
    /// Joined and not yet visited: it goes ahead of the old ones.
    fresh: bool,
    /// A visit ended with requests still waiting (see
    /// [`Backlog::over_share`]).
    over_share: bool,
}

/// The round robin's state. Bounded by the connections of the endpoint:
/// each appears at most once.
#[derive(Debug)]
pub(crate) struct Fair<K> {
    order: VecDeque<Entry<K>>,
    members: HashSet<K>,
    quantum_bytes: u64,
    /// True once the front connection got its quantum for this visit (its
    /// visit was cut short by the budget and resumes where it stopped).
    visiting: bool,
}

impl<K: Copy + Eq + Hash> Fair<K> {
    pub(crate) fn new(quantum_bytes: usize) -> Self {
        Fair {
            order: VecDeque::new(),
            members: HashSet::new(),
            quantum_bytes: quantum_bytes.max(1) as u64,
            visiting: false,
        }
    }

    /// True when no connection has a request waiting (as far as the round
    /// knows).
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// `k` has a request waiting and was not in the round: it goes next,
    /// ahead of the connections that stayed backlogged (FQ-CoDel's new
    /// flows). A sparse connection, one request at a time, then waits for
    /// at most the visit in progress rather than a whole round of the
    /// busy ones; a busy one that keeps requests waiting stays in the
    /// round and takes its turn with the others.
    pub(crate) fn join(&mut self, k: K) {
        if !self.members.insert(k) {
            return;
        }
        // After the visit in progress and the other new ones, before the
        // connections that stayed backlogged.
        let start = usize::from(self.visiting && !self.order.is_empty());
        let at = self
            .order
            .iter()
            .skip(start)
            .position(|e| !e.fresh)
            .map_or(self.order.len(), |i| i + start);
        self.order.insert(
            at,
            Entry {
                key: k,
                deficit_bytes: 0,
                fresh: true,
                over_share: false,
            },
        );
    }

    /// `k` is gone (its connection closed): it leaves the round.
    pub(crate) fn leave(&mut self, k: K) {
        if !self.members.remove(&k) {
            return;
        }
        if self.order.front().is_some_and(|e| e.key == k) {
            self.visiting = false;
        }
        self.order.retain(|e| e.key != k);
    }

    /// Admits waiting requests in round-robin order until the budget has
    /// no room for the one whose turn it is, or nothing waits.
    pub(crate) fn run(&mut self, backlog: &mut impl Backlog<K>) {
        // Visits in a row that admitted nothing: once every connection had
        // one, the rounds that would admit nothing are skipped at once.
        let mut idle_visits = 0usize;
        while let Some(front) = self.order.front_mut() {
            let key = front.key;
            if !self.visiting {
                let weight = u64::from(backlog.weight(&key).max(1));
                let quantum = self.quantum_bytes.saturating_mul(weight);
                front.deficit_bytes = front.deficit_bytes.saturating_add(quantum);
                front.fresh = false;
                self.visiting = true;
            }
            let mut admitted = false;
            loop {
                let Some(bytes) = backlog.head_bytes(&key) else {
                    // Nothing left waiting: out of the round, deficit reset.
                    if front.over_share {
                        backlog.over_share(&key, false);
                    }
                    self.order.pop_front();
                    self.members.remove(&key);
                    self.visiting = false;
                    break;
                };
                if bytes as u64 > front.deficit_bytes {
                    if !front.over_share {
                        front.over_share = true;
                        backlog.over_share(&key, true);
                    }
                    self.visiting = false;
                    self.order.rotate_left(1);
                    idle_visits = if admitted { 0 } else { idle_visits + 1 };
                    break;
                }
                if !backlog.fits(bytes) {
                    return; // this visit resumes when budget frees
                }
                backlog.admit(&key);
                front.deficit_bytes -= bytes as u64;
                admitted = true;
            }
            if idle_visits > 0 && idle_visits >= self.order.len() {
                self.skip_idle_rounds(backlog);
                idle_visits = 0;
            }
        }
    }

    /// Adds at once the quanta of the rounds in which no connection's
    /// deficit would yet cover its next request: the same outcome as
    /// running them, without a loop as long as the largest request over
    /// the quantum. Call only between visits.
    fn skip_idle_rounds(&mut self, backlog: &impl Backlog<K>) {
        debug_assert!(!self.visiting);
        let quantum = self.quantum_bytes;
        let step = |e: &Entry<K>| quantum.saturating_mul(u64::from(backlog.weight(&e.key).max(1)));
        let rounds = self
            .order
            .iter()
            .filter_map(|e| {
                let missing = (backlog.head_bytes(&e.key)? as u64).checked_sub(e.deficit_bytes)?;
                Some(missing.div_ceil(step(e)))
            })
            .min()
            .unwrap_or(0);
        // The round that covers someone is run, not skipped.
        let skipped = rounds.saturating_sub(1);
        if skipped == 0 {
            return;
        }
        for e in self.order.iter_mut() {
            let add = step(e).saturating_mul(skipped);
            e.deficit_bytes = e.deficit_bytes.saturating_add(add);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, VecDeque};

    use super::*;

    /// Connections with queues of request sizes, and a budget of bytes
    /// that requests hold until the test releases them.
    #[derive(Default)]
    struct Sim {
        queues: HashMap<u32, VecDeque<usize>>,
        weights: HashMap<u32, u32>,
        used: usize,
        max: usize,
        /// Admissions in order: (connection, bytes).
        admitted: Vec<(u32, usize)>,
        /// Connections over their share, as the round last told.
        over: std::collections::HashSet<u32>,
    }

    impl Sim {
        fn new(max: usize) -> Self {
            Sim {
                max,
                ..Sim::default()
            }
        }

        fn push(&mut self, fair: &mut Fair<u32>, k: u32, sizes: &[usize]) {
            self.queues.entry(k).or_default().extend(sizes);
            fair.join(k);
        }

        fn bytes_of(&self, k: u32) -> usize {
            self.admitted
                .iter()
                .filter(|(c, _)| *c == k)
                .map(|(_, b)| b)
                .sum()
        }

        /// Every admitted request is answered: the budget is empty.
        fn release_all(&mut self) {
            self.used = 0;
        }
    }

    impl Backlog<u32> for Sim {
        fn head_bytes(&self, k: &u32) -> Option<usize> {
            self.queues.get(k)?.front().copied()
        }
        fn weight(&self, k: &u32) -> u32 {
            self.weights.get(k).copied().unwrap_or(1)
        }
        fn fits(&self, bytes: usize) -> bool {
            self.used == 0 || self.used + bytes <= self.max
        }
        fn admit(&mut self, k: &u32) {
            let bytes = self
                .queues
                .get_mut(k)
                .and_then(VecDeque::pop_front)
                .unwrap_or_else(|| panic!("admit without a head for {k}"));
            assert!(self.fits(bytes), "admit beyond the budget");
            self.used += bytes;
            self.admitted.push((*k, bytes));
        }
        fn over_share(&mut self, k: &u32, over: bool) {
            let changed = if over {
                self.over.insert(*k)
            } else {
                self.over.remove(k)
            };
            assert!(changed, "told {k} over={over} twice");
        }
    }

    const KIB: usize = 1 << 10;

    #[test]
    fn a_sparse_connection_goes_ahead_of_the_backlogged_ones() {
        let mut fair = Fair::new(64 * KIB);
        let mut sim = Sim::new(64 * KIB);
        // Nine busy connections, each always backlogged.
        for k in 1..=9 {
            sim.push(&mut fair, k, &[64 * KIB; 100]);
        }
        // Every busy one has had its first visit (new ones go in order).
        for _ in 0..12 {
            fair.run(&mut sim);
            sim.release_all();
        }
        // A light one with a single request: it is admitted at the next
        // free budget, not after the nine busy ones.
        sim.push(&mut fair, 10, &[16 * KIB]);
        fair.run(&mut sim);
        sim.release_all();
        fair.run(&mut sim);
        let last: Vec<u32> = sim.admitted.iter().rev().take(2).map(|(k, _)| *k).collect();
        assert!(last.contains(&10), "{:?}", sim.admitted);
        // And it does not take more than its share when it stays busy.
        sim.push(&mut fair, 10, &[64 * KIB; 100]);
        let before = sim.admitted.len();
        for _ in 0..40 {
            sim.release_all();
            fair.run(&mut sim);
        }
        let tenth = sim.admitted[before..]
            .iter()
            .filter(|(k, _)| *k == 10)
            .count();
        assert!((3..=5).contains(&tenth), "{tenth} of 40");
    }

    #[test]
    fn only_a_connection_that_keeps_more_than_its_quantum_waiting_is_over_its_share() {
        let mut fair = Fair::new(64 * KIB);
        let mut sim = Sim::new(128 * KIB);
        sim.push(&mut fair, 1, &[64 * KIB; 10]); // heavy
        for _ in 0..4 {
            fair.run(&mut sim);
            sim.release_all();
        }
        assert!(
            sim.over.contains(&1),
            "the heavy one keeps requests waiting"
        );
        // A light one whose few small requests fit in one visit: waiting
        // for budget behind the heavy one does not make it over its share.
        for _ in 0..5 {
            sim.push(&mut fair, 2, &[4 * KIB, 4 * KIB]);
            fair.run(&mut sim);
            sim.release_all();
            fair.run(&mut sim);
            assert!(!sim.over.contains(&2), "{:?}", sim.admitted);
        }
        // Once the heavy one has nothing left waiting it is not over.
        for _ in 0..10 {
            fair.run(&mut sim);
            sim.release_all();
        }
        assert!(sim.queues[&1].is_empty());
        assert!(sim.over.is_empty(), "{:?}", sim.over);
    }

    #[test]
    fn a_heavy_and_a_light_connection_share_equally_per_round() {
        let mut fair = Fair::new(64 * KIB);
        let mut sim = Sim::new(256 * KIB);
        sim.push(&mut fair, 1, &[64 * KIB; 100]);
        sim.push(&mut fair, 2, &[64 * KIB; 100]);
        for _ in 0..20 {
            fair.run(&mut sim);
            sim.release_all();
        }
        // 20 budgets of 4 requests: 80 requests, half each.
        assert_eq!(sim.admitted.len(), 80);
        assert_eq!(sim.bytes_of(1), sim.bytes_of(2));
        // Alternating, one request (one quantum) at a time.
        let order: Vec<u32> = sim.admitted.iter().map(|(k, _)| *k).take(6).collect();
        assert_eq!(order, [1, 2, 1, 2, 1, 2]);
    }

    #[test]
    fn many_small_requests_do_not_outweigh_few_large_ones() {
        let mut fair = Fair::new(64 * KIB);
        let mut sim = Sim::new(512 * KIB);
        sim.push(&mut fair, 1, &[4 * KIB; 2000]);
        sim.push(&mut fair, 2, &[64 * KIB; 100]);
        for _ in 0..10 {
            fair.run(&mut sim);
            sim.release_all();
        }
        let (a, b) = (sim.bytes_of(1), sim.bytes_of(2));
        let skew = a.abs_diff(b) as f64 / a.max(b) as f64;
        assert!(skew < 0.05, "bytes {a} vs {b}");
    }

    #[test]
    fn weights_set_the_shares() {
        let mut fair = Fair::new(16 * KIB);
        let mut sim = Sim::new(96 * KIB);
        sim.weights.insert(1, 2);
        sim.weights.insert(3, 0); // counts as 1
        sim.push(&mut fair, 1, &[16 * KIB; 1000]);
        sim.push(&mut fair, 2, &[16 * KIB; 1000]);
        sim.push(&mut fair, 3, &[16 * KIB; 1000]);
        for _ in 0..100 {
            fair.run(&mut sim);
            sim.release_all();
        }
        let (a, b, c) = (sim.bytes_of(1), sim.bytes_of(2), sim.bytes_of(3));
        assert_eq!(a, 2 * b, "{a} {b} {c}");
        assert_eq!(b, c);
    }

    #[test]
    fn a_request_larger_than_the_quantum_gets_through() {
        let mut fair = Fair::new(KIB);
        let mut sim = Sim::new(8 * KIB);
        sim.push(&mut fair, 1, &[KIB; 10_000]);
        sim.push(&mut fair, 2, &[5 * KIB]);
        for _ in 0..10 {
            fair.run(&mut sim);
            sim.release_all();
        }
        // Connection 2's deficit reached 5 KiB in its fifth round, after
        // connection 1's fifth request.
        assert_eq!(sim.bytes_of(2), 5 * KIB);
        let at = sim.admitted.iter().position(|(k, _)| *k == 2);
        assert_eq!(at, Some(5), "{:?}", &sim.admitted[..8]);
    }

    #[test]
    fn a_request_larger_than_the_budget_goes_alone_when_its_turn_comes() {
        let mut fair = Fair::new(KIB);
        let mut sim = Sim::new(8 * KIB);
        sim.push(&mut fair, 1, &[KIB; 3]);
        sim.push(&mut fair, 2, &[1 << 30]);
        sim.used = 4 * KIB; // held from before
        fair.run(&mut sim);
        // Once connection 1 has nothing left, the rounds until the big
        // request's deficit covers it are skipped (not looped over, a
        // million of them); then it waits for an empty budget.
        assert_eq!(sim.admitted, [(1, KIB); 3]);
        let small_before = sim.admitted.len();
        fair.run(&mut sim);
        assert_eq!(
            sim.admitted.len(),
            small_before,
            "its turn holds the budget"
        );
        sim.release_all();
        fair.run(&mut sim);
        assert_eq!(sim.admitted.last(), Some(&(2, 1 << 30)));
    }

    #[test]
    fn a_visit_cut_short_by_the_budget_resumes_without_a_new_quantum() {
        let mut fair = Fair::new(3 * KIB);
        let mut sim = Sim::new(2 * KIB);
        sim.push(&mut fair, 1, &[KIB; 10]);
        sim.push(&mut fair, 2, &[KIB; 10]);
        fair.run(&mut sim); // 1 takes 2 KiB of its 3
        assert_eq!(sim.admitted, [(1, KIB), (1, KIB)]);
        sim.release_all();
        fair.run(&mut sim); // 1 takes its third, then 2 begins
        assert_eq!(&sim.admitted[2..], [(1, KIB), (2, KIB)]);
    }

    #[test]
    fn a_connection_with_nothing_left_leaves_and_its_deficit_is_reset() {
        let mut fair = Fair::new(10 * KIB);
        let mut sim = Sim::new(100 * KIB);
        sim.push(&mut fair, 1, &[KIB]);
        fair.run(&mut sim);
        assert!(fair.is_empty());
        // Back with a request of the quantum and a bit: its 9 KiB of
        // unused deficit are gone, so it needs two rounds, and the other
        // connection goes first.
        sim.release_all();
        sim.push(&mut fair, 1, &[11 * KIB]);
        sim.push(&mut fair, 2, &[10 * KIB]);
        fair.run(&mut sim);
        assert_eq!(&sim.admitted[1..], [(2, 10 * KIB), (1, 11 * KIB)]);
    }

    #[test]
    fn a_connection_that_leaves_is_forgotten() {
        let mut fair = Fair::new(KIB);
        let mut sim = Sim::new(KIB);
        sim.push(&mut fair, 1, &[KIB; 3]);
        sim.push(&mut fair, 2, &[KIB; 3]);
        fair.run(&mut sim);
        assert_eq!(sim.admitted, [(1, KIB)]);
        fair.leave(2);
        sim.queues.remove(&2);
        sim.release_all();
        fair.run(&mut sim);
        sim.release_all();
        fair.run(&mut sim);
        assert_eq!(sim.admitted, [(1, KIB); 3]);
        fair.leave(1);
        assert!(fair.is_empty());
    }
}
