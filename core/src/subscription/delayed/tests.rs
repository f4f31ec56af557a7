//! Unit tests of the delayed set: one rule each.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

const PARTITION: u32 = 2;

fn config() -> WindowConfig {
    WindowConfig {
        outstanding_max: 2,
        ack_deadline_ms: 1_000,
        backoff_min_ms: 100,
        backoff_max_ms: 400,
        delayed_max: 3,
        ..WindowConfig::default()
    }
}

fn set(config: WindowConfig) -> DelayedSet {
    DelayedSet::new(PARTITION, config)
}

#[test]
fn a_message_is_delivered_at_its_time_not_before() {
    let mut d = set(config());
    d.defer(10, 5_000, 0).unwrap();
    d.defer(7, 6_000, 0).unwrap();
    assert_eq!(d.next(4_999), None);
    assert!(!d.has_due(4_999));
    assert_eq!(d.next_due(0), Some(5_000));
    let first = d.next(5_000).unwrap();
    assert_eq!((first.offset, first.attempt), (10, 1));
    assert_eq!(first.deadline_ms, 6_000);
    assert_eq!(d.next(5_999), None, "offset 7 is due at 6,000");
    assert_eq!(d.next(6_000).map(|x| x.offset), Some(7));
    d.assert_invariants();
}

#[test]
fn acked_messages_are_forgotten_and_an_ack_after_the_deadline_is_refused() {
    let mut d = set(config());
    d.defer(1, 0, 0).unwrap();
    d.defer(2, 0, 0).unwrap();
    let a = d.next(0).unwrap();
    let b = d.next(0).unwrap();
    assert_eq!(d.ack(a.ack_id, 999), Ok(1));
    assert!(!d.contains(1));
    assert_eq!(d.ack(a.ack_id, 999), Err(AckError::Unknown { offset: 1 }));
    assert_eq!(
        d.ack(b.ack_id, 1_000),
        Err(AckError::LeaseExpired { offset: 2 })
    );
    let wrong = AckId {
        partition: 9,
        ..b.ack_id
    };
    assert!(matches!(
        d.ack(wrong, 0),
        Err(AckError::WrongPartition { .. })
    ));
    d.assert_invariants();
}

#[test]
fn a_nack_or_expiry_waits_the_doubling_backoff_then_comes_again() {
    let mut d = set(config());
    d.defer(5, 0, 0).unwrap();
    let first = d.next(0).unwrap();
    let ended = d.nack(first.ack_id, 10).unwrap();
    assert_eq!(ended.after, AfterLease::RetryAt { due_ms: 110 });
    assert_eq!(d.next(109), None);
    let second = d.next(110).unwrap();
    assert_eq!(second.attempt, 2);
    // Expired: the second backoff is 200 ms after the deadline passed.
    assert_eq!(d.expire(second.deadline_ms - 1), vec![]);
    let expired = d.expire(second.deadline_ms);
    let due_ms = second.deadline_ms + 200;
    assert_eq!(expired[0].after, AfterLease::RetryAt { due_ms });
    assert_eq!(d.next(due_ms).map(|x| x.attempt), Some(3));
    d.assert_invariants();
}

#[test]
fn max_deliveries_reports_a_dead_letter_until_it_is_published() {
    let mut d = set(WindowConfig {
        max_deliveries: Some(1),
        ..config()
    });
    d.defer(4, 0, 0).unwrap();
    let delivery = d.next(0).unwrap();
    let ended = d.nack(delivery.ack_id, 1).unwrap();
    assert_eq!(ended.after, AfterLease::DeadLetter);
    assert_eq!(d.next(1_000_000), None, "not delivered again");
    assert!(d.contains(4), "held until published");
    assert_eq!(d.dead_lettered(5), Err(NotDeadLetter { offset: 5 }));
    assert_eq!(d.dead_lettered(4), Ok(()));
    assert!(d.is_empty());
    d.assert_invariants();
}

#[test]
fn modify_deadline_extends_a_lease_and_zero_is_a_nack() {
    let mut d = set(config());
    d.defer(3, 0, 0).unwrap();
    let delivery = d.next(0).unwrap();
    let extended = d.modify_deadline(delivery.ack_id, 5_000, 500).unwrap();
    assert_eq!(extended, DeadlineChange::Extended { deadline_ms: 5_500 });
    assert!(d.expire(5_499).is_empty());
    let ended = d.modify_deadline(delivery.ack_id, 0, 600).unwrap();
    assert!(matches!(ended, DeadlineChange::Ended(_)));
    assert_eq!(d.outstanding(), 0);
    d.assert_invariants();
}

#[test]
fn the_set_and_its_leases_are_bounded() {
    let mut d = set(config());
    for offset in 0..3 {
        d.defer(offset, 0, 0).unwrap();
    }
    assert!(d.is_full());
    assert_eq!(d.defer(9, 0, 0), Err(DelayedFull { max: 3 }));
    assert_eq!(d.defer(1, 50, 0), Ok(()), "one held may wait again");
    assert!(d.next(100).is_some() && d.next(100).is_some());
    assert_eq!(d.next(100), None, "outstanding_max leases are out");
    assert!(!d.has_due(100));
    // Nothing to do before a lease ends, though a message is due.
    assert_eq!(d.next_due(100), Some(1_100), "the first lease deadline");
    d.assert_invariants();
}

#[test]
fn replay_rebuilds_the_set_from_entries_acks_and_attempts() {
    let mut d = set(config());
    d.defer(8, 100, 0).unwrap();
    d.defer(9, 200, 0).unwrap();
    let leased = d.next(150).unwrap();
    let entries = d.entries();
    assert_eq!(entries, vec![(8, 100, 1), (9, 200, 0)]);

    let mut r = set(config());
    for &(offset, visible_at, attempts) in &entries {
        r.replay_defer(offset, visible_at, attempts);
    }
    // The lease ended with the restart: due at once, as a second delivery.
    let again = r.next(150).unwrap();
    assert_eq!((again.offset, again.attempt), (leased.offset, 2));
    r.apply_attempt(9, 4);
    assert_eq!(r.apply_ack_range(0, 8), 1);
    assert_eq!(r.apply_ack_range(10, u64::MAX), 0);
    assert_eq!(r.entries(), vec![(9, 200, 4)]);
    r.assert_invariants();
}
