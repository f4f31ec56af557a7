//! The lease rules the window and the delayed set share (SEMANTICS.md §5,
//! "Leases, acks, redelivery"): when an ack id names a live lease, and how
//! long a lease lasts. Both keep their own state; the rules live here once.

use super::ack_id::AckId;
use super::config::{WindowConfig, DEADLINE_MAX_MS};
use super::window::AckError;

/// The ack id's partition is `partition`'s.
pub(crate) fn check_partition(ack_id: AckId, partition: u32) -> Result<(), AckError> {
    if ack_id.partition == partition {
        return Ok(());
    }
    Err(AckError::WrongPartition {
        expected: partition,
        got: ack_id.partition,
    })
}

/// The deadline of the live lease `ack_id` names, for a message delivered
/// `attempts` times and leased until `leased_until` (`None` when not
/// leased). An attempt never made is unknown; an older attempt, or a lease
/// that ended or ran out, has expired.
pub(crate) fn live_deadline(
    ack_id: AckId,
    attempts: u32,
    leased_until: Option<i64>,
    now_ms: i64,
) -> Result<i64, AckError> {
    let offset = ack_id.offset;
    if ack_id.attempt == 0 || ack_id.attempt > attempts {
        return Err(AckError::Unknown { offset });
    }
    match leased_until {
        Some(deadline_ms) if ack_id.attempt == attempts && now_ms < deadline_ms => Ok(deadline_ms),
        _ => Err(AckError::LeaseExpired { offset }),
    }
}

impl WindowConfig {
    /// When a lease made at `now_ms` ends.
    pub(crate) fn lease_deadline_ms(&self, now_ms: i64) -> i64 {
        now_ms.saturating_add(i64::from(self.ack_deadline_ms))
    }

    /// A message whose lease ended after `attempts` deliveries goes to the
    /// dead-letter topic.
    pub(crate) fn dead_after(&self, attempts: u32) -> bool {
        self.max_deliveries.is_some_and(|max| attempts >= max)
    }
}

/// The deadline `modify_deadline(extend_ms)` at `now_ms` sets: at most
/// `DEADLINE_MAX_MS` ahead.
pub(crate) fn extended_deadline_ms(now_ms: i64, extend_ms: u32) -> i64 {
    now_ms.saturating_add(i64::from(extend_ms.min(DEADLINE_MAX_MS)))
}
