//! The events of a cursor journal, one per record: the record's key names
//! the cursor, its value says what happened.
//!
//! ```text
//! key   "g:" + group name (UTF-8, 1..=255 bytes)
//! value 1 byte kind, then by kind (little-endian):
//!       1 = commit: 8 offset (u64), 8 committed at, Unix ms (i64),
//!                   then the metadata (0..=4096 bytes)
//!       2 = delete: nothing more (the group's offset is forgotten)
//! ```
//!
//! Decoding checks every field, so any record gives an event or an
//! [`EventError`], never a panic.

/// Longest group name.
pub const GROUP_NAME_MAX: usize = 255;
/// Longest metadata a commit carries.
pub const METADATA_MAX: usize = 4096;

const GROUP_PREFIX: &[u8] = b"g:";
const KIND_COMMIT: u8 = 1;
const KIND_DELETE: u8 = 2;

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
        }
    }

    /// The event a record's key and value hold.
    pub fn decode(key: &[u8], value: &[u8]) -> Result<Event, EventError> {
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
        ] {
            let (key, value) = event.encode();
            assert_eq!(Event::decode(&key, &value), Ok(event));
        }
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
