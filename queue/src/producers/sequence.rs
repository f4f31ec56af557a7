//! Sequence numbers: non-negative `i32`s that wrap from `i32::MAX` to 0.

use tidegate_proto::batch::BatchHeader;

pub use tidegate_proto::batch::SEQUENCE_MODULUS;

pub(crate) use tidegate_proto::batch::next_sequence as advance;

/// The idempotence fields of one batch's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch.
    pub epoch: i16,
    /// The sequence of the batch's first record.
    pub base_sequence: i32,
    /// Records in the batch (at least 1).
    pub record_count: u32,
}

impl Identity {
    /// The identity a batch header carries, if it carries one: id, epoch
    /// and base sequence all set (not negative). A batch with any of them
    /// negative is not idempotent and is appended unchecked.
    pub fn of(header: &BatchHeader) -> Option<Identity> {
        (header.producer_id >= 0 && header.producer_epoch >= 0 && header.base_sequence >= 0)
            .then_some(Identity {
                producer_id: header.producer_id,
                epoch: header.producer_epoch,
                base_sequence: header.base_sequence,
                record_count: header.record_count.max(1),
            })
    }

    /// The sequence of the batch's last record.
    pub fn last_sequence(&self) -> i32 {
        advance(self.base_sequence, i64::from(self.record_count) - 1)
    }
}

/// How far `to` is ahead of `from`, in `0..SEQUENCE_MODULUS`.
pub(crate) fn distance(from: i32, to: i32) -> i64 {
    (i64::from(to) - i64::from(from)).rem_euclid(SEQUENCE_MODULUS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_wrap_from_the_largest_to_zero() {
        assert_eq!(distance(i32::MAX, 0), 1);
        assert_eq!(distance(3, 3), 0);
        assert_eq!(distance(4, 3), SEQUENCE_MODULUS - 1);
        let id = Identity {
            producer_id: 1,
            epoch: 0,
            base_sequence: i32::MAX,
            record_count: 2,
        };
        assert_eq!(id.last_sequence(), 0);
    }
}
