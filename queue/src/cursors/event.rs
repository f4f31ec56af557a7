//! The events of a cursor journal, one per record: the record's key names
//! the cursor, its value says what happened.
//!
//! ```text
//! key   "g:" + group name (UTF-8, 1..=255 bytes)
//! value 1 byte kind, then by kind (little-endian):
//!       1 = commit: 8 offset (u64), 8 committed at, Unix ms (i64),
//!                   then the metadata (0..=4096 bytes)
//!       2 = delete: nothing more (the group's offset is forgotten)
//!
//! key   "s:" + subscription id (u64, 8 bytes)
//! value 1 byte kind, then by kind:
//!       3 = ack: 8 first, 8 last (an inclusive range of handled offsets)
//!       4 = attempts: 8 first, 8 last, 4 attempts (at least 1): each
//!           offset of the inclusive range was delivered that often
//!       5 = checkpoint: 8 floor, 8 cursor, 4 n, n x (8 first, 8 last)
//!           handled ranges, 4 m, m x (8 offset, 4 attempts), then
//!           when the delayed set is not empty 4 k (at least 1), k x
//!           (8 offset, 8 visible at, Unix ms (i64), 4 attempts)
//!       6 = delete: nothing more (the subscription is gone)
//!       7 = defer: 8 offset, 8 visible at, Unix ms (i64), 4 attempts:
//!           the offset waits in the delayed set until then
//! ```
//!
//! Decoding checks every field, so any record gives an event or an
//! [`EventError`], never a panic.

/// Longest group name.
pub const GROUP_NAME_MAX: usize = 255;
/// Longest metadata a commit carries.
pub const METADATA_MAX: usize = 4096;

const GROUP_PREFIX: &[u8] = b"g:";
const SUB_PREFIX: &[u8] = b"s:";
const KIND_COMMIT: u8 = 1;
const KIND_DELETE: u8 = 2;
const KIND_ACK: u8 = 3;
const KIND_ATTEMPT: u8 = 4;
const KIND_CHECKPOINT: u8 = 5;
const KIND_SUB_DELETE: u8 = 6;
const KIND_DEFER: u8 = 7;

/// The whole durable state of one (subscription, partition) window
/// (docs/SEMANTICS.md §5): what a `Checkpoint` event holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubCheckpoint {
    /// Every offset below it is handled.
    pub floor: u64,
    /// The next offset to read into the window.
    pub cursor: u64,
    /// Handled offsets of `[floor, cursor)` as inclusive `(first, last)`
    /// ranges, ascending and disjoint.
    pub handled_above_floor: Vec<(u64, u64)>,
    /// `(offset, attempts)` of unhandled offsets delivered at least once,
    /// ascending.
    pub attempts: Vec<(u64, u32)>,
    /// `(offset, visible at (Unix ms), attempts)` of the delayed set,
    /// ascending by offset. Handled as far as the window is concerned.
    pub delayed: Vec<(u64, i64, u32)>,
}

/// What happened to a subscription's window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubEvent {
    /// Offsets `first..=last` are handled (acked, filtered out, expired,
    /// dead-lettered).
    Ack {
        /// First handled offset.
        first: u64,
        /// Last handled offset.
        last: u64,
    },
    /// Offsets `first..=last` have each been delivered `attempts` times
    /// (a pull's first deliveries are one such range).
    Attempt {
        /// First offset.
        first: u64,
        /// Last offset.
        last: u64,
        /// Deliveries so far, at least 1.
        attempts: u32,
    },
    /// The whole state: later events apply on top of it.
    Checkpoint(SubCheckpoint),
    /// `offset` waits in the delayed set until `visible_at_ms`, after
    /// `attempts` deliveries; for the window it is handled.
    Defer {
        /// The offset.
        offset: u64,
        /// When it becomes deliverable, Unix ms.
        visible_at_ms: i64,
        /// Deliveries so far.
        attempts: u32,
    },
}

/// A consumer group's committed position in a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The next offset the group will consume.
    pub offset: u64,
    /// When it was committed, Unix ms.
    pub committed_ms: i64,
    /// What the committer attached (at most [`METADATA_MAX`] bytes).
    pub metadata: Vec<u8>,
}

/// One event of the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A group committed an offset.
    Commit {
        /// The group.
        group: String,
        /// What it committed.
        committed: Committed,
    },
    /// A group's offset was deleted.
    Delete {
        /// The group.
        group: String,
    },
    /// A subscription's window changed.
    Sub {
        /// The subscription's id.
        id: u64,
        /// What changed.
        event: SubEvent,
    },
    /// A subscription was deleted: its state is forgotten.
    SubDelete {
        /// The subscription's id.
        id: u64,
    },
}

/// Why a journal record is not an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The key does not name a cursor this version knows.
    #[error("unknown cursor key")]
    UnknownKey,
    /// A group name that is empty, too long or not UTF-8.
    #[error("invalid group name")]
    BadGroup,
    /// The value is shorter than its kind needs, or has bytes left over.
    #[error("event value has the wrong length")]
    BadLength,
    /// A kind this version does not know.
    #[error("unknown event kind {0}")]
    UnknownKind(u8),
    /// Metadata over [`METADATA_MAX`].
    #[error("metadata over {METADATA_MAX} bytes")]
    MetadataTooLong,
    /// A subscription event whose ranges or attempts break their rules
    /// (empty or unordered ranges, zero attempts, a cursor below the
    /// floor).
    #[error("invalid subscription event: {0}")]
    BadSubscription(&'static str),
}

/// Checks a group name: 1..=255 bytes of UTF-8 (any characters).
pub fn check_group(group: &str) -> Result<(), EventError> {
    if group.is_empty() || group.len() > GROUP_NAME_MAX {
        return Err(EventError::BadGroup);
    }
    Ok(())
}

impl Event {
    /// The record key and value of this event.
    pub fn encode(&self) -> (Vec<u8>, Vec<u8>) {
        match self {
            Event::Commit { group, committed } => {
                let mut value = Vec::with_capacity(17 + committed.metadata.len());
                value.push(KIND_COMMIT);
                value.extend_from_slice(&committed.offset.to_le_bytes());
                value.extend_from_slice(&committed.committed_ms.to_le_bytes());
                value.extend_from_slice(&committed.metadata);
                (group_key(group), value)
            }
            Event::Delete { group } => (group_key(group), vec![KIND_DELETE]),
            Event::Sub { id, event } => (sub_key(*id), encode_sub(event)),
            Event::SubDelete { id } => (sub_key(*id), vec![KIND_SUB_DELETE]),
        }
    }

    /// The event a record's key and value hold.
    pub fn decode(key: &[u8], value: &[u8]) -> Result<Event, EventError> {
        if let Some(id) = key.strip_prefix(SUB_PREFIX) {
            let id = u64::from_le_bytes(id.try_into().map_err(|_| EventError::UnknownKey)?);
            return decode_sub(id, value);
        }
        let group = key
            .strip_prefix(GROUP_PREFIX)
            .ok_or(EventError::UnknownKey)?;
        let group = std::str::from_utf8(group).map_err(|_| EventError::BadGroup)?;
        check_group(group)?;
        let group = group.to_owned();
        let (&kind, rest) = value.split_first().ok_or(EventError::BadLength)?;
        match kind {
            KIND_COMMIT => {
                let (offset, rest) = rest.split_first_chunk::<8>().ok_or(EventError::BadLength)?;
                let (at, metadata) = rest.split_first_chunk::<8>().ok_or(EventError::BadLength)?;
                if metadata.len() > METADATA_MAX {
                    return Err(EventError::MetadataTooLong);
                }
                Ok(Event::Commit {
                    group,
                    committed: Committed {
                        offset: u64::from_le_bytes(*offset),
                        committed_ms: i64::from_le_bytes(*at),
                        metadata: metadata.to_vec(),
                    },
                })
            }
            KIND_DELETE if rest.is_empty() => Ok(Event::Delete { group }),
            KIND_DELETE => Err(EventError::BadLength),
            other => Err(EventError::UnknownKind(other)),
        }
    }
}

fn sub_key(id: u64) -> Vec<u8> {
    let mut key = SUB_PREFIX.to_vec();
    key.extend_from_slice(&id.to_le_bytes());
    key
}

fn encode_sub(event: &SubEvent) -> Vec<u8> {
    let mut value = Vec::new();
    match event {
        SubEvent::Ack { first, last } => {
            value.push(KIND_ACK);
            value.extend_from_slice(&first.to_le_bytes());
            value.extend_from_slice(&last.to_le_bytes());
        }
        SubEvent::Attempt {
            first,
            last,
            attempts,
        } => {
            value.push(KIND_ATTEMPT);
            value.extend_from_slice(&first.to_le_bytes());
            value.extend_from_slice(&last.to_le_bytes());
            value.extend_from_slice(&attempts.to_le_bytes());
        }
        SubEvent::Checkpoint(c) => {
            value.reserve(25 + c.handled_above_floor.len() * 16 + c.attempts.len() * 12);
            value.push(KIND_CHECKPOINT);
            value.extend_from_slice(&c.floor.to_le_bytes());
            value.extend_from_slice(&c.cursor.to_le_bytes());
            // A window holds at most u32::MAX offsets (`window_max` is far
            // below), so the counts fit.
            let n = u32::try_from(c.handled_above_floor.len()).unwrap_or(u32::MAX);
            value.extend_from_slice(&n.to_le_bytes());
            for (first, last) in &c.handled_above_floor {
                value.extend_from_slice(&first.to_le_bytes());
                value.extend_from_slice(&last.to_le_bytes());
            }
            let m = u32::try_from(c.attempts.len()).unwrap_or(u32::MAX);
            value.extend_from_slice(&m.to_le_bytes());
            for (offset, attempts) in &c.attempts {
                value.extend_from_slice(&offset.to_le_bytes());
                value.extend_from_slice(&attempts.to_le_bytes());
            }
            // Written only when there is one, so a checkpoint has one
            // encoding whether or not it comes from before delayed
            // delivery. Bounded by `delayed_max`, far below u32::MAX.
            if !c.delayed.is_empty() {
                let k = u32::try_from(c.delayed.len()).unwrap_or(u32::MAX);
                value.extend_from_slice(&k.to_le_bytes());
            }
            for (offset, visible_at_ms, attempts) in &c.delayed {
                value.extend_from_slice(&offset.to_le_bytes());
                value.extend_from_slice(&visible_at_ms.to_le_bytes());
                value.extend_from_slice(&attempts.to_le_bytes());
            }
        }
        SubEvent::Defer {
            offset,
            visible_at_ms,
            attempts,
        } => {
            value.push(KIND_DEFER);
            value.extend_from_slice(&offset.to_le_bytes());
            value.extend_from_slice(&visible_at_ms.to_le_bytes());
            value.extend_from_slice(&attempts.to_le_bytes());
        }
    }
    value
}

/// Reads little-endian fields off the front of a value.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn u64(&mut self) -> Result<u64, EventError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<8>()
            .ok_or(EventError::BadLength)?;
        self.0 = rest;
        Ok(u64::from_le_bytes(*head))
    }

    fn u32(&mut self) -> Result<u32, EventError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<4>()
            .ok_or(EventError::BadLength)?;
        self.0 = rest;
        Ok(u32::from_le_bytes(*head))
    }

    /// A count of elements of `size` bytes each, checked against the bytes
    /// left before anything is reserved for it.
    fn count(&mut self, size: usize) -> Result<usize, EventError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(size) > self.0.len() {
            return Err(EventError::BadLength);
        }
        Ok(n)
    }

    fn finish(self) -> Result<(), EventError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(EventError::BadLength)
        }
    }
}

fn decode_sub(id: u64, value: &[u8]) -> Result<Event, EventError> {
    let (&kind, rest) = value.split_first().ok_or(EventError::BadLength)?;
    let mut f = Fields(rest);
    let event = match kind {
        KIND_ACK => {
            let (first, last) = (f.u64()?, f.u64()?);
            if first > last {
                return Err(EventError::BadSubscription("empty ack range"));
            }
            SubEvent::Ack { first, last }
        }
        KIND_ATTEMPT => {
            let (first, last, attempts) = (f.u64()?, f.u64()?, f.u32()?);
            if attempts == 0 {
                return Err(EventError::BadSubscription("zero attempts"));
            }
            if first > last {
                return Err(EventError::BadSubscription("empty attempt range"));
            }
            SubEvent::Attempt {
                first,
                last,
                attempts,
            }
        }
        KIND_CHECKPOINT => SubEvent::Checkpoint(decode_checkpoint(&mut f)?),
        KIND_DEFER => SubEvent::Defer {
            offset: f.u64()?,
            visible_at_ms: f.u64()? as i64,
            attempts: f.u32()?,
        },
        KIND_SUB_DELETE => {
            f.finish()?;
            return Ok(Event::SubDelete { id });
        }
        other => return Err(EventError::UnknownKind(other)),
    };
    f.finish()?;
    Ok(Event::Sub { id, event })
}

fn decode_checkpoint(f: &mut Fields<'_>) -> Result<SubCheckpoint, EventError> {
    let bad = EventError::BadSubscription;
    let floor = f.u64()?;
    let cursor = f.u64()?;
    if cursor < floor {
        return Err(bad("cursor below floor"));
    }
    let n = f.count(16)?;
    let mut handled_above_floor = Vec::with_capacity(n);
    let mut next = floor;
    for _ in 0..n {
        let (first, last) = (f.u64()?, f.u64()?);
        if first < next || first > last || last >= cursor {
            return Err(bad("handled ranges out of order or outside the window"));
        }
        handled_above_floor.push((first, last));
        next = last.saturating_add(1);
    }
    let m = f.count(12)?;
    let mut attempts = Vec::with_capacity(m);
    let mut next = floor;
    for _ in 0..m {
        let (offset, count) = (f.u64()?, f.u32()?);
        if offset < next || offset >= cursor || count == 0 {
            return Err(bad("attempts out of order, outside the window, or zero"));
        }
        attempts.push((offset, count));
        next = offset.saturating_add(1);
    }
    Ok(SubCheckpoint {
        floor,
        cursor,
        handled_above_floor,
        attempts,
        delayed: decode_delayed(f)?,
    })
}

/// The checkpoint's delayed set; none when the checkpoint ends before it
/// (written before delayed delivery).
fn decode_delayed(f: &mut Fields<'_>) -> Result<Vec<(u64, i64, u32)>, EventError> {
    if f.0.is_empty() {
        return Ok(Vec::new());
    }
    let k = f.count(20)?;
    if k == 0 {
        // An empty set is written as nothing at all.
        return Err(EventError::BadSubscription(
            "an empty delayed set written out",
        ));
    }
    let mut delayed = Vec::with_capacity(k);
    let mut next = 0;
    for _ in 0..k {
        let (offset, visible_at_ms, attempts) = (f.u64()?, f.u64()? as i64, f.u32()?);
        if offset < next {
            return Err(EventError::BadSubscription("delayed offsets out of order"));
        }
        delayed.push((offset, visible_at_ms, attempts));
        next = offset.saturating_add(1);
    }
    Ok(delayed)
}

fn group_key(group: &str) -> Vec<u8> {
    let mut key = GROUP_PREFIX.to_vec();
    key.extend_from_slice(group.as_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(group: &str, offset: u64, metadata: &[u8]) -> Event {
        Event::Commit {
            group: group.into(),
            committed: Committed {
                offset,
                committed_ms: 1_700_000_000_000,
                metadata: metadata.to_vec(),
            },
        }
    }

    #[test]
    fn events_round_trip() {
        for event in [
            commit("billing", 42, b""),
            commit("ü-group", u64::MAX, &[7; METADATA_MAX]),
            Event::Delete {
                group: "billing".into(),
            },
            Event::Sub {
                id: 7,
                event: SubEvent::Ack { first: 3, last: 3 },
            },
            Event::Sub {
                id: u64::MAX,
                event: SubEvent::Attempt {
                    first: 9,
                    last: 12,
                    attempts: u32::MAX,
                },
            },
            Event::Sub {
                id: 1,
                event: SubEvent::Checkpoint(SubCheckpoint::default()),
            },
            Event::Sub {
                id: 1,
                event: SubEvent::Checkpoint(SubCheckpoint {
                    floor: 10,
                    cursor: 20,
                    handled_above_floor: vec![(11, 12), (15, 19)],
                    attempts: vec![(10, 1), (13, 4)],
                    delayed: vec![(2, -5, 0), (16, i64::MAX, 3)],
                }),
            },
            Event::Sub {
                id: 3,
                event: SubEvent::Defer {
                    offset: 77,
                    visible_at_ms: 1_700_000_000_000,
                    attempts: 2,
                },
            },
            Event::SubDelete { id: 0 },
        ] {
            let (key, value) = event.encode();
            assert_eq!(Event::decode(&key, &value), Ok(event));
        }
    }

    #[test]
    fn a_checkpoint_written_before_delayed_delivery_has_no_delayed_set() {
        let c = SubCheckpoint {
            floor: 1,
            cursor: 9,
            attempts: vec![(3, 2)],
            delayed: vec![(20, 5, 1)],
            ..SubCheckpoint::default()
        };
        let value = encode_sub(&SubEvent::Checkpoint(c.clone()));
        // The old layout ends where the delayed count starts.
        let old = &value[..value.len() - 4 - 20];
        let decoded = Event::decode(&sub_key(4), old);
        let without = SubCheckpoint {
            delayed: vec![],
            ..c
        };
        let expected = Event::Sub {
            id: 4,
            event: SubEvent::Checkpoint(without),
        };
        assert_eq!(decoded, Ok(expected.clone()));
        // One encoding: an empty set is written as the old layout, and an
        // empty set written out is refused.
        let (_, again) = expected.encode();
        assert_eq!(again, old);
        let mut explicit = old.to_vec();
        explicit.extend_from_slice(&0u32.to_le_bytes());
        assert!(matches!(
            Event::decode(&sub_key(4), &explicit),
            Err(EventError::BadSubscription(_))
        ));
        // A count with fewer entries than it says is cut short.
        let short = &value[..value.len() - 1];
        assert_eq!(
            Event::decode(&sub_key(4), short),
            Err(EventError::BadLength)
        );
    }

    #[test]
    fn truncated_oversized_and_garbage_records_are_typed_errors() {
        let (key, value) = commit("g", 1, b"meta").encode();
        for len in 0..17 {
            assert_eq!(
                Event::decode(&key, &value[..len]),
                Err(EventError::BadLength),
                "{len}"
            );
        }
        let mut long = value.clone();
        long.extend_from_slice(&[0; METADATA_MAX]);
        assert_eq!(Event::decode(&key, &long), Err(EventError::MetadataTooLong));
        assert_eq!(Event::decode(b"x:g", &value), Err(EventError::UnknownKey));
        assert_eq!(Event::decode(b"g:", &value), Err(EventError::BadGroup));
        assert_eq!(Event::decode(b"g:\xff", &value), Err(EventError::BadGroup));
        let long_name = [b"g:".as_slice(), &[b'a'; 256]].concat();
        assert_eq!(Event::decode(&long_name, &value), Err(EventError::BadGroup));
        assert_eq!(Event::decode(&key, &[9]), Err(EventError::UnknownKind(9)));
        assert_eq!(Event::decode(&key, &[2, 0]), Err(EventError::BadLength));
    }

    #[test]
    fn subscription_events_that_break_their_rules_are_typed_errors() {
        let key = sub_key(5);
        let checkpoint = |c: SubCheckpoint| encode_sub(&SubEvent::Checkpoint(c));
        let bad = [
            encode_sub(&SubEvent::Ack { first: 2, last: 1 }),
            encode_sub(&SubEvent::Attempt {
                first: 1,
                last: 1,
                attempts: 0,
            }),
            encode_sub(&SubEvent::Attempt {
                first: 2,
                last: 1,
                attempts: 1,
            }),
            checkpoint(SubCheckpoint {
                floor: 5,
                cursor: 4,
                ..SubCheckpoint::default()
            }),
            checkpoint(SubCheckpoint {
                floor: 0,
                cursor: 10,
                handled_above_floor: vec![(3, 4), (4, 5)],
                ..SubCheckpoint::default()
            }),
            checkpoint(SubCheckpoint {
                floor: 0,
                cursor: 10,
                handled_above_floor: vec![(3, 10)],
                ..SubCheckpoint::default()
            }),
            checkpoint(SubCheckpoint {
                floor: 0,
                cursor: 10,
                attempts: vec![(4, 1), (2, 1)],
                ..SubCheckpoint::default()
            }),
            checkpoint(SubCheckpoint {
                floor: 0,
                cursor: 10,
                delayed: vec![(40, 0, 0), (12, 0, 0)],
                ..SubCheckpoint::default()
            }),
        ];
        for value in bad {
            assert!(
                matches!(
                    Event::decode(&key, &value),
                    Err(EventError::BadSubscription(_))
                ),
                "{value:?}"
            );
        }
        // A count larger than the bytes behind it reserves nothing.
        let mut huge = vec![KIND_CHECKPOINT];
        huge.extend_from_slice(&[0; 16]);
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Event::decode(&key, &huge), Err(EventError::BadLength));
        let valid = encode_sub(&SubEvent::Ack { first: 1, last: 2 });
        for len in 0..valid.len() {
            assert_eq!(
                Event::decode(&key, &valid[..len]),
                Err(EventError::BadLength)
            );
        }
        assert_eq!(
            Event::decode(b"s:1234567", &valid),
            Err(EventError::UnknownKey)
        );
        assert_eq!(
            Event::decode(&key, &[KIND_SUB_DELETE, 0]),
            Err(EventError::BadLength)
        );
    }

    proptest::proptest! {
        #[test]
        fn any_record_decodes_or_fails_cleanly(
            key in proptest::collection::vec(proptest::num::u8::ANY, 0..40),
            value in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        ) {
            if let Ok(event) = Event::decode(&key, &value) {
                proptest::prop_assert_eq!(event.encode(), (key, value));
            }
        }
    }
}
