//! Unit tests: one rule of SEMANTICS.md §5 each.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::recovery::{Checkpoint, NotInWindow, ReplayError, RestoreError};
use super::*;
use crate::subscription::ack_id::{AckIdError, ACK_ID_LEN};
use crate::subscription::DEADLINE_MAX_MS;

const PARTITION: u32 = 3;

fn config() -> WindowConfig {
    WindowConfig {
        window_max: 16,
        outstanding_max: 8,
        ack_deadline_ms: 1_000,
        backoff_min_ms: 100,
        backoff_max_ms: 1_000,
        ..WindowConfig::default()
    }
}

fn window(config: WindowConfig) -> Window {
    Window::new(PARTITION, config, 0).unwrap()
}

/// A window with offsets `0..count` admitted, keyless, to be delivered.
fn admitted(config: WindowConfig, count: u64) -> Window {
    let mut w = window(config);
    for offset in 0..count {
        w.admit(offset, Meta::deliver()).unwrap();
    }
    w
}

fn delivered_offsets(w: &mut Window, now_ms: i64) -> Vec<u64> {
    std::iter::from_fn(|| w.next(now_ms))
        .map(|d| d.offset)
        .collect()
}

#[test]
fn default_config_matches_semantics() {
    let config = WindowConfig::default();
    assert_eq!(config.window_max, 65_536);
    assert_eq!(config.outstanding_max, 10_000);
    assert_eq!(config.ack_deadline_ms, 30_000);
    assert_eq!(
        (config.backoff_min_ms, config.backoff_max_ms),
        (1_000, 60_000)
    );
    assert_eq!(config.max_deliveries, None);
    assert_eq!(config.validate(), Ok(()));
}

#[test]
fn invalid_config_is_refused() {
    let cases = [
        (
            WindowConfig {
                window_max: 0,
                ..config()
            },
            ConfigError::WindowMaxZero,
        ),
        (
            WindowConfig {
                outstanding_max: 0,
                ..config()
            },
            ConfigError::OutstandingMaxZero,
        ),
        (
            WindowConfig {
                ack_deadline_ms: 0,
                ..config()
            },
            ConfigError::AckDeadline(0),
        ),
        (
            WindowConfig {
                ack_deadline_ms: DEADLINE_MAX_MS + 1,
                ..config()
            },
            ConfigError::AckDeadline(DEADLINE_MAX_MS + 1),
        ),
        (
            WindowConfig {
                backoff_min_ms: 2,
                backoff_max_ms: 1,
                ..config()
            },
            ConfigError::Backoff { min: 2, max: 1 },
        ),
        (
            WindowConfig {
                max_deliveries: Some(0),
                ..config()
            },
            ConfigError::MaxDeliveriesZero,
        ),
    ];
    for (config, error) in cases {
        assert_eq!(Window::new(PARTITION, config, 0).err(), Some(error));
    }
}

#[test]
fn ack_advances_floor_over_handled_offsets() {
    let mut w = admitted(config(), 3);
    let d: Vec<Delivery> = std::iter::from_fn(|| w.next(0)).collect();
    assert_eq!(d.len(), 3);
    assert_eq!(w.ack(d[1].ack_id, 10).unwrap().floor, 0);
    assert_eq!(w.ack(d[0].ack_id, 10).unwrap().floor, 2);
    assert_eq!(w.ack(d[2].ack_id, 10).unwrap().floor, 3);
    assert_eq!((w.floor(), w.cursor(), w.unhandled()), (3, 3, 0));
    w.assert_invariants();
}

#[test]
fn skipped_and_not_delivered_offsets_are_handled_at_admission() {
    let mut w = window(config());
    let filtered = Meta::deliver().with_disposition(Disposition::Filtered);
    assert_eq!(
        w.admit(0, filtered).unwrap(),
        Admitted {
            handled: Some((0, 0)),
            floor: 1
        }
    );
    assert_eq!(
        w.admit(4, Meta::deliver()).unwrap(),
        Admitted {
            handled: Some((1, 3)),
            floor: 4
        }
    );
    let expired = Meta::deliver().with_disposition(Disposition::Expired);
    assert_eq!(
        w.admit(5, expired).unwrap(),
        Admitted {
            handled: Some((5, 5)),
            floor: 4
        }
    );
    let deferred = Meta::deliver().with_disposition(Disposition::Deferred);
    assert_eq!(w.admit(7, deferred).unwrap().handled, Some((6, 7)));
    assert_eq!(w.admit(8, Meta::deliver()).unwrap().handled, None);
    assert_eq!(delivered_offsets(&mut w, 0), [4, 8]);
    w.assert_invariants();
}

#[test]
fn admission_out_of_order_is_refused() {
    let mut w = admitted(config(), 3);
    let refused = w.admit(1, Meta::deliver());
    assert_eq!(
        refused,
        Err(AdmitError::OutOfOrder {
            offset: 1,
            cursor: 3
        })
    );
    assert_eq!(w.cursor(), 3);
    let mut at_end = Window::new(PARTITION, config(), u64::MAX).unwrap();
    assert_eq!(
        at_end.admit(u64::MAX, Meta::deliver()),
        Err(AdmitError::OffsetMax)
    );
}

#[test]
fn ack_at_or_after_deadline_is_lease_expired() {
    let mut w = admitted(config(), 2);
    let first = w.next(0).unwrap();
    let second = w.next(0).unwrap();
    assert_eq!(first.deadline_ms, 1_000);
    assert_eq!(w.ack(first.ack_id, 999).map(|a| a.offset), Ok(0));
    assert_eq!(
        w.ack(second.ack_id, 1_000),
        Err(AckError::LeaseExpired { offset: 1 })
    );
    assert_eq!(
        w.nack(second.ack_id, 1_000),
        Err(AckError::LeaseExpired { offset: 1 })
    );
    assert_eq!(w.floor(), 1, "an expired ack handles nothing");
}

#[test]
fn ack_of_an_earlier_attempt_after_redelivery_is_lease_expired() {
    let mut w = admitted(config(), 1);
    let first = w.next(0).unwrap();
    assert_eq!(w.expire(1_000).len(), 1);
    let second = w.next(1_100).unwrap();
    assert_eq!((second.offset, second.attempt), (0, 2));
    assert_eq!(
        w.ack(first.ack_id, 1_200),
        Err(AckError::LeaseExpired { offset: 0 })
    );
    assert_eq!(w.ack(second.ack_id, 1_200).map(|a| a.floor), Ok(1));
}

#[test]
fn ack_without_such_delivery_is_unknown() {
    let mut w = admitted(config(), 3);
    let d = w.next(0).unwrap();
    let id = |offset, attempt| AckId {
        partition: PARTITION,
        offset,
        attempt,
    };
    assert_eq!(
        w.ack(id(1, 1), 0),
        Err(AckError::Unknown { offset: 1 }),
        "never delivered"
    );
    assert_eq!(
        w.ack(id(0, 2), 0),
        Err(AckError::Unknown { offset: 0 }),
        "attempt not issued"
    );
    assert_eq!(
        w.ack(id(9, 1), 0),
        Err(AckError::Unknown { offset: 9 }),
        "past the cursor"
    );
    w.ack(d.ack_id, 0).unwrap();
    assert_eq!(
        w.ack(d.ack_id, 0),
        Err(AckError::Unknown { offset: 0 }),
        "already acked"
    );
    let other = AckId {
        partition: PARTITION + 1,
        ..d.ack_id
    };
    let wrong = AckError::WrongPartition {
        expected: PARTITION,
        got: PARTITION + 1,
    };
    assert_eq!(w.ack(other, 0), Err(wrong));
}

#[test]
fn nack_backoff_doubles_and_caps() {
    let config = WindowConfig {
        backoff_min_ms: 100,
        backoff_max_ms: 500,
        ..config()
    };
    let mut w = admitted(config, 1);
    let mut now_ms = 0;
    for expected_ms in [100, 200, 400, 500, 500] {
        let d = w.next(now_ms).unwrap();
        let ended = w.nack(d.ack_id, now_ms).unwrap();
        assert_eq!(
            ended.after,
            AfterLease::RetryAt {
                due_ms: now_ms + expected_ms
            }
        );
        assert_eq!(w.next_due(now_ms), Some(now_ms + expected_ms));
        assert_eq!(
            w.next(now_ms + expected_ms - 1),
            None,
            "not before its backoff"
        );
        now_ms += expected_ms;
    }
    assert_eq!(w.next(now_ms).map(|d| d.attempt), Some(6));
}

#[test]
fn modify_deadline_extends_the_lease() {
    let mut w = admitted(config(), 2);
    let d = w.next(0).unwrap();
    let extended = w.modify_deadline(d.ack_id, 5_000, 500).unwrap();
    assert_eq!(extended, DeadlineChange::Extended { deadline_ms: 5_500 });
    assert!(
        w.expire(1_000).is_empty(),
        "the original deadline no longer applies"
    );
    assert_eq!(w.ack(d.ack_id, 5_499).map(|a| a.offset), Ok(0));

    let d = w.next(0).unwrap();
    let capped = w.modify_deadline(d.ack_id, u32::MAX, 0).unwrap();
    let max = i64::from(DEADLINE_MAX_MS);
    assert_eq!(capped, DeadlineChange::Extended { deadline_ms: max });
}

#[test]
fn modify_deadline_to_zero_is_a_nack() {
    let mut w = admitted(config(), 1);
    let d = w.next(0).unwrap();
    let ended = w.modify_deadline(d.ack_id, 0, 50).unwrap();
    let retry = AfterLease::RetryAt { due_ms: 150 };
    assert_eq!(
        ended,
        DeadlineChange::Ended(LeaseEnded {
            offset: 0,
            attempts: 1,
            after: retry
        })
    );
    assert_eq!(w.outstanding(), 0);
    assert_eq!(
        w.ack(d.ack_id, 60),
        Err(AckError::LeaseExpired { offset: 0 })
    );
}

#[test]
fn expired_lease_is_retried_after_backoff() {
    let mut w = admitted(config(), 2);
    let d = w.next(0).unwrap();
    assert_eq!(w.next_due(0), Some(1_000));
    assert!(w.expire(999).is_empty());
    let ended = w.expire(1_000);
    let retry = AfterLease::RetryAt { due_ms: 1_100 };
    assert_eq!(
        ended,
        [LeaseEnded {
            offset: d.offset,
            attempts: 1,
            after: retry
        }]
    );
    assert_eq!(w.outstanding(), 0);
    assert_eq!(delivered_offsets(&mut w, 1_099), [1]);
    let again = w.next(1_100).unwrap();
    assert_eq!((again.offset, again.attempt), (0, 2));
    w.assert_invariants();
}

#[test]
fn max_deliveries_dead_letters_and_dead_lettered_advances_floor() {
    let config = WindowConfig {
        max_deliveries: Some(2),
        ..config()
    };
    let mut w = admitted(config, 2);
    w.next(0).unwrap();
    w.expire(1_000);
    assert_eq!(
        w.dead_lettered(0),
        Err(NotDeadLetter { offset: 0 }),
        "not a dead letter yet"
    );
    let second = w.next(1_100).unwrap();
    assert_eq!(second.offset, 0);
    let ended = w.expire(2_100);
    let dead = LeaseEnded {
        offset: 0,
        attempts: 2,
        after: AfterLease::DeadLetter,
    };
    assert_eq!(ended, [dead]);
    assert_eq!(w.floor(), 0, "held until the dead letter is published");
    assert_eq!(
        delivered_offsets(&mut w, 1_000_000),
        [1],
        "a dead letter is not redelivered"
    );
    assert_eq!(w.dead_lettered(0).unwrap().floor, 1);
    assert_eq!(w.dead_lettered(0), Err(NotDeadLetter { offset: 0 }));
    w.assert_invariants();
}

#[test]
fn nack_at_max_deliveries_is_reported_as_dead_letter() {
    let config = WindowConfig {
        max_deliveries: Some(1),
        ..config()
    };
    let mut w = admitted(config, 1);
    let d = w.next(0).unwrap();
    assert_eq!(w.nack(d.ack_id, 10).unwrap().after, AfterLease::DeadLetter);
    assert_eq!(w.next_due(10), None);
    assert_eq!(w.dead_lettered(0).unwrap().floor, 1);
}

#[test]
fn full_window_refuses_admission_and_resumes_after_ack() {
    let config = WindowConfig {
        window_max: 4,
        ..config()
    };
    let mut w = admitted(config, 4);
    assert!(w.is_full());
    let full = AdmitError::Full {
        offset: 4,
        floor: 0,
        window_max: 4,
    };
    assert_eq!(w.admit(4, Meta::deliver()), Err(full));
    assert_eq!((w.cursor(), w.unhandled()), (4, 4), "nothing changed");
    let d = w.next(0).unwrap();
    assert_eq!(d.offset, 0);
    w.ack(d.ack_id, 0).unwrap();
    assert!(!w.is_full());
    assert!(w.admit(4, Meta::deliver()).is_ok());
    let gap = w.admit(6, Meta::deliver());
    assert!(matches!(
        gap,
        Err(AdmitError::Full {
            offset: 6,
            floor: 1,
            ..
        })
    ));
}

#[test]
fn outstanding_max_is_respected() {
    let config = WindowConfig {
        outstanding_max: 2,
        ..config()
    };
    let mut w = admitted(config, 4);
    let d = delivered_offsets(&mut w, 0);
    assert_eq!(d, [0, 1]);
    assert_eq!(w.outstanding(), 2);
    w.ack(
        AckId {
            partition: PARTITION,
            offset: 1,
            attempt: 1,
        },
        0,
    )
    .unwrap();
    assert_eq!(delivered_offsets(&mut w, 0), [2]);
}

#[test]
fn ordering_keeps_one_message_per_key_outstanding() {
    let config = WindowConfig {
        ordering: true,
        ..config()
    };
    let mut w = window(config);
    for (offset, key) in [
        (0, Some(7)),
        (1, Some(7)),
        (2, Some(8)),
        (3, None),
        (4, None),
    ] {
        let meta = Meta {
            key_hash: key,
            ..Meta::deliver()
        };
        w.admit(offset, meta).unwrap();
    }
    assert_eq!(
        delivered_offsets(&mut w, 0),
        [0, 2, 3, 4],
        "keyless messages are unordered"
    );
    w.ack(
        AckId {
            partition: PARTITION,
            offset: 0,
            attempt: 1,
        },
        0,
    )
    .unwrap();
    assert_eq!(delivered_offsets(&mut w, 0), [1]);
    w.assert_invariants();
}

#[test]
fn ordering_nack_holds_back_only_its_key() {
    let config = WindowConfig {
        ordering: true,
        ..config()
    };
    let mut w = window(config);
    for (offset, key) in [(0, 7), (1, 7), (2, 8), (3, 8)] {
        w.admit(offset, Meta::deliver().with_key(key)).unwrap();
    }
    let first = w.next(0).unwrap();
    let other = w.next(0).unwrap();
    assert_eq!((first.offset, other.offset), (0, 2));
    w.nack(first.ack_id, 0).unwrap();
    assert_eq!(
        w.next(0),
        None,
        "key 7 waits for its retry, key 8 for its ack"
    );
    w.ack(other.ack_id, 0).unwrap();
    assert_eq!(delivered_offsets(&mut w, 50), [3], "key 8 goes on");
    let retried = w.next(100).unwrap();
    assert_eq!((retried.offset, retried.attempt), (0, 2), "not offset 1");
    w.assert_invariants();
}

#[test]
fn without_ordering_keys_do_not_hold_back() {
    let mut w = window(config());
    for offset in 0..3 {
        w.admit(offset, Meta::deliver().with_key(7)).unwrap();
    }
    assert_eq!(delivered_offsets(&mut w, 0), [0, 1, 2]);
}

#[test]
fn priority_delivers_higher_levels_first() {
    let config = WindowConfig {
        priority: true,
        ..config()
    };
    let mut w = window(config);
    for (offset, priority) in [(0, 1), (1, 5), (2, 9), (3, 5), (4, 200)] {
        w.admit(offset, Meta::deliver().with_priority(priority))
            .unwrap();
    }
    assert_eq!(
        delivered_offsets(&mut w, 0),
        [2, 4, 1, 3, 0],
        "200 counts as 9"
    );
}

#[test]
fn without_priority_lowest_offset_goes_first() {
    let mut w = window(config());
    for (offset, priority) in [(0, 1), (1, 9), (2, 5)] {
        w.admit(offset, Meta::deliver().with_priority(priority))
            .unwrap();
    }
    assert_eq!(delivered_offsets(&mut w, 0), [0, 1, 2]);
}

#[test]
fn priority_gives_every_eighth_delivery_to_the_oldest() {
    let config = WindowConfig {
        priority: true,
        outstanding_max: 100,
        window_max: 64,
        ..config()
    };
    let mut w = window(config);
    w.admit(0, Meta::deliver().with_priority(0)).unwrap();
    w.admit(1, Meta::deliver().with_priority(0)).unwrap();
    for offset in 2..40 {
        w.admit(offset, Meta::deliver().with_priority(9)).unwrap();
    }
    let order = delivered_offsets(&mut w, 0);
    assert_eq!(order[..8], [2, 3, 4, 5, 6, 7, 8, 0]);
    assert_eq!(order[8..16], [9, 10, 11, 12, 13, 14, 15, 1]);
}

#[test]
fn next_due_is_the_earliest_deadline_or_retry() {
    let mut w = admitted(config(), 2);
    assert_eq!(w.next_due(0), None);
    let first = w.next(0).unwrap();
    w.next(300).unwrap();
    assert_eq!(w.next_due(0), Some(1_000));
    w.nack(first.ack_id, 200).unwrap();
    assert_eq!(w.next_due(0), Some(300), "retry at 200 + 100");
    assert_eq!(w.next_due(5_000), Some(5_000), "overdue work is due now");
}

#[test]
fn checkpoint_and_restore_keep_acks_and_attempts_and_drop_leases() {
    let config = WindowConfig {
        ordering: true,
        ..config()
    };
    let mut w = window(config);
    for offset in 0..5 {
        w.admit(offset, Meta::deliver().with_key(offset % 2))
            .unwrap();
    }
    let d: Vec<Delivery> = std::iter::from_fn(|| w.next(0)).collect();
    assert_eq!(d.iter().map(|d| d.offset).collect::<Vec<_>>(), [0, 1]);
    w.ack(d[1].ack_id, 0).unwrap();
    let checkpoint = w.checkpoint();
    let expected = Checkpoint {
        floor: 0,
        cursor: 5,
        handled_above_floor: vec![(1, 1)],
        attempts: vec![(0, 1)],
        delayed: vec![],
    };
    assert_eq!(checkpoint, expected);

    let mut r = Window::restore(PARTITION, config, &checkpoint).unwrap();
    assert_eq!(
        (r.floor(), r.cursor(), r.outstanding(), r.unhandled()),
        (0, 5, 0, 4)
    );
    assert_eq!(r.awaiting_meta(), 4);
    assert_eq!(r.next(0), None, "nothing goes out before its key is known");
    assert_eq!(
        r.ack(d[0].ack_id, 0),
        Err(AckError::LeaseExpired { offset: 0 })
    );
    for offset in 0..5 {
        r.reattach(offset, Meta::deliver().with_key(offset % 2))
            .unwrap();
    }
    r.assert_invariants();
    let again: Vec<(u64, u32)> = std::iter::from_fn(|| r.next(0))
        .map(|d| (d.offset, d.attempt))
        .collect();
    assert_eq!(
        again,
        [(0, 2), (3, 1)],
        "offset 1 stays acked; key order holds"
    );
}

#[test]
fn reattach_handles_what_is_no_longer_deliverable() {
    let mut w = admitted(config(), 3);
    let checkpoint = w.checkpoint();
    let mut r = Window::restore(PARTITION, config(), &checkpoint).unwrap();
    let expired = Meta::deliver().with_disposition(Disposition::Expired);
    assert_eq!(
        r.reattach(0, expired).unwrap(),
        Admitted {
            handled: Some((0, 0)),
            floor: 1
        }
    );
    r.reattach(1, Meta::deliver()).unwrap();
    assert_eq!(
        r.reattach(1, expired).unwrap().handled,
        None,
        "already reattached"
    );
    assert_eq!(r.apply_ack_range(2, 2), Ok(1), "not in the log any more");
    assert_eq!(
        r.reattach(3, Meta::deliver()),
        Err(NotInWindow {
            offset: 3,
            cursor: 3
        })
    );
    assert_eq!(delivered_offsets(&mut r, 0), [1]);
    assert_eq!(
        delivered_offsets(&mut w, 0),
        [0, 1, 2],
        "the original is untouched"
    );
}

#[test]
fn restore_rejects_impossible_checkpoints() {
    let valid = Checkpoint {
        floor: 10,
        cursor: 20,
        handled_above_floor: vec![(11, 12), (15, 15)],
        attempts: vec![(10, 2), (13, 1)],
        delayed: vec![],
    };
    assert!(Window::restore(PARTITION, config(), &valid).is_ok());
    let bad = |edit: fn(&mut Checkpoint)| {
        let mut checkpoint = valid.clone();
        edit(&mut checkpoint);
        Window::restore(PARTITION, config(), &checkpoint).err()
    };
    let too_wide = RestoreError::TooWide {
        floor: 0,
        cursor: 20,
        window_max: 16,
    };
    assert_eq!(bad(|c| c.floor = 0), Some(too_wide));
    let below = RestoreError::CursorBelowFloor {
        floor: 10,
        cursor: 9,
    };
    assert_eq!(bad(|c| c.cursor = 9), Some(below));
    let range = |first, last| Some(RestoreError::BadRange { first, last });
    assert_eq!(
        bad(|c| c.handled_above_floor = vec![(15, 15), (11, 12)]),
        range(11, 12)
    );
    assert_eq!(
        bad(|c| c.handled_above_floor = vec![(11, 12), (12, 13)]),
        range(12, 13)
    );
    assert_eq!(bad(|c| c.handled_above_floor = vec![(9, 9)]), range(9, 9));
    assert_eq!(
        bad(|c| c.handled_above_floor = vec![(19, 20)]),
        range(19, 20)
    );
    assert_eq!(
        bad(|c| c.handled_above_floor = vec![(13, 12)]),
        range(13, 12)
    );
    let attempts = |offset| Some(RestoreError::BadAttempts { offset });
    assert_eq!(bad(|c| c.attempts = vec![(11, 1)]), attempts(11), "handled");
    assert_eq!(bad(|c| c.attempts = vec![(20, 1)]), attempts(20), "outside");
    assert_eq!(
        bad(|c| c.attempts = vec![(10, 1), (10, 1)]),
        attempts(10),
        "repeated"
    );
    assert_eq!(bad(|c| c.attempts = vec![(10, 0)]), attempts(10), "zero");
    let config = WindowConfig {
        window_max: 0,
        ..config()
    };
    let refused = Window::restore(PARTITION, config, &valid).err();
    assert_eq!(
        refused,
        Some(RestoreError::Config(ConfigError::WindowMaxZero))
    );
}

#[test]
fn apply_ack_range_is_idempotent_and_moves_the_cursor() {
    let mut w = admitted(config(), 4);
    let mut r = Window::restore(PARTITION, config(), &w.checkpoint()).unwrap();
    assert_eq!(r.apply_ack_range(1, 2), Ok(0));
    assert_eq!(r.apply_ack_range(0, 2), Ok(3));
    assert_eq!(r.apply_ack_range(0, 1), Ok(3), "already handled");
    assert_eq!(
        r.apply_ack_range(6, 7),
        Ok(3),
        "acked after the checkpoint was written"
    );
    assert_eq!(
        (r.cursor(), r.awaiting_meta()),
        (8, 3),
        "offsets 3, 4, 5 await their meta"
    );
    assert_eq!(
        r.apply_ack_range(5, 4),
        Err(ReplayError::EmptyRange { first: 5, last: 4 })
    );
    let beyond = ReplayError::BeyondWindow {
        offset: 19,
        floor: 3,
        window_max: 16,
    };
    assert_eq!(r.apply_ack_range(19, 19), Err(beyond));
    assert_eq!(r.cursor(), 8, "nothing changed");
    r.assert_invariants();
    assert_eq!(w.apply_ack_range(0, 3), Ok(4));
    assert_eq!(w.next(0), None);
}

#[test]
fn apply_attempt_keeps_the_highest_count() {
    let w = admitted(config(), 2);
    let mut r = Window::restore(PARTITION, config(), &w.checkpoint()).unwrap();
    r.apply_attempt(0, 3).unwrap();
    r.apply_attempt(0, 2).unwrap();
    r.apply_attempt(4, 1).unwrap();
    assert_eq!(r.cursor(), 5);
    assert_eq!(r.checkpoint().attempts, [(0, 3), (4, 1)]);
    let beyond = r.apply_attempt(16, 1);
    assert_eq!(
        beyond,
        Err(ReplayError::BeyondWindow {
            offset: 16,
            floor: 0,
            window_max: 16
        })
    );
    assert_eq!(r.apply_attempt(u64::MAX, 1), Err(ReplayError::OffsetMax));
    for offset in 0..5 {
        r.reattach(offset, Meta::deliver()).unwrap();
    }
    let d = r.next(0).unwrap();
    assert_eq!((d.offset, d.attempt), (0, 4));
}

#[test]
fn ack_id_bytes_round_trip() {
    let id = AckId {
        partition: 0x0102_0304,
        offset: 0x1122_3344_5566_7788,
        attempt: 9,
    };
    let bytes = id.to_bytes();
    assert_eq!(bytes[..4], [4, 3, 2, 1], "little-endian");
    assert_eq!(AckId::from_bytes(&bytes), Ok(id));
}

#[test]
fn bad_ack_id_bytes_are_errors() {
    let bytes = AckId {
        partition: 1,
        offset: 2,
        attempt: 3,
    }
    .to_bytes();
    assert_eq!(AckId::from_bytes(&bytes[..15]), Err(AckIdError::Length(15)));
    assert_eq!(AckId::from_bytes(&[]), Err(AckIdError::Length(0)));
    let mut long = bytes.to_vec();
    long.push(0);
    assert_eq!(
        AckId::from_bytes(&long),
        Err(AckIdError::Length(ACK_ID_LEN + 1))
    );
    assert_eq!(
        AckId::from_bytes(&[0; ACK_ID_LEN]),
        Err(AckIdError::ZeroAttempt)
    );
}

/// The memory bound of the module documentation: however operations
/// interleave, entries stay within `window_max` and every index within the
/// entries (`assert_invariants` checks both).
#[test]
fn state_stays_within_window_max() {
    let config = WindowConfig {
        window_max: 32,
        outstanding_max: 8,
        ordering: true,
        priority: true,
        ..config()
    };
    let mut w = window(config);
    let mut held = Vec::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for step in 0..20_000_i64 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let now_ms = step * 10;
        match seed % 6 {
            0 | 1 => {
                let meta = Meta::deliver()
                    .with_key(seed % 5)
                    .with_priority((seed % 10) as u8);
                let _ = w.admit(w.cursor(), meta);
            }
            2 => held.extend(w.next(now_ms).map(|d| d.ack_id)),
            3 if !held.is_empty() => {
                let id = held.swap_remove((seed as usize / 7) % held.len());
                let _ = w.ack(id, now_ms);
            }
            4 if !held.is_empty() => {
                let id = held.swap_remove((seed as usize / 7) % held.len());
                let _ = w.nack(id, now_ms);
            }
            _ => {
                w.expire(now_ms);
            }
        }
        w.assert_invariants();
        assert!(w.unhandled() <= 32 && w.outstanding() <= 8);
    }
    assert!(w.cursor() > 1_000, "the window kept moving");
}

/// Leases leave their queue from the front only; one that is never acked
/// must not keep every later, acked lease's entry alive behind it.
#[test]
fn lease_queue_stays_bounded_behind_a_long_lease() {
    let config = WindowConfig {
        window_max: 4_096,
        ..config()
    };
    let mut w = admitted(config, 1);
    let long = w.next(0).unwrap();
    for offset in 1..3_000 {
        w.admit(offset, Meta::deliver()).unwrap();
        let d = w.next(0).unwrap();
        w.ack(d.ack_id, 0).unwrap();
        w.assert_invariants();
    }
    assert_eq!((w.outstanding(), w.floor()), (1, 0));
    assert_eq!(w.next_due(0), Some(1_000));
    let ended = w.expire(1_000);
    assert_eq!(
        ended.iter().map(|e| e.offset).collect::<Vec<_>>(),
        [long.offset]
    );
    w.assert_invariants();
}

#[test]
fn expire_follows_deadlines_when_the_clock_goes_back() {
    let mut w = admitted(config(), 3);
    let later = w.next(500).unwrap();
    let earlier = w.next(0).unwrap();
    let latest = w.next(900).unwrap();
    w.assert_invariants();
    assert_eq!(w.next_due(0), Some(earlier.deadline_ms));
    let offsets = |ended: Vec<LeaseEnded>| ended.iter().map(|e| e.offset).collect::<Vec<_>>();
    assert_eq!(offsets(w.expire(1_000)), [earlier.offset]);
    assert_eq!(offsets(w.expire(2_000)), [later.offset, latest.offset]);
    w.assert_invariants();
}

/// Replay does not meet live leases, but if it did, a raised attempt
/// count must not lose the lease's deadline.
#[test]
fn apply_attempt_on_a_live_lease_keeps_it_expiring() {
    let mut w = admitted(config(), 2);
    let d = w.next(0).unwrap();
    w.apply_attempt(d.offset, 3).unwrap();
    w.assert_invariants();
    assert_eq!(
        w.ack(d.ack_id, 10),
        Err(AckError::LeaseExpired { offset: 0 })
    );
    let ended = w.expire(d.deadline_ms);
    let retry = AfterLease::RetryAt { due_ms: 1_400 };
    assert_eq!(
        ended,
        [LeaseEnded {
            offset: 0,
            attempts: 3,
            after: retry
        }]
    );
    w.assert_invariants();
}
