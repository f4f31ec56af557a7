//! The limits of one (subscription, partition) window.

use thiserror::Error;

/// Longest lease: an ack deadline or an extension is at most 12 hours.
pub const DEADLINE_MAX_MS: u32 = 12 * 60 * 60 * 1000;

/// A subscription's delivery settings as one window needs them; the
/// defaults are SEMANTICS.md §5's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowConfig {
    /// Widest `cursor - floor`, in offsets.
    pub window_max: u64,
    /// Most leases outstanding at once.
    pub outstanding_max: usize,
    /// A lease's length.
    pub ack_deadline_ms: u32,
    /// Backoff after the first failed delivery; it doubles with each attempt.
    pub backoff_min_ms: u32,
    /// Cap of the backoff.
    pub backoff_max_ms: u32,
    /// Deliveries after which a nack or expiry dead-letters the message;
    /// `None` retries for ever.
    pub max_deliveries: Option<u32>,
    /// At most one message per key outstanding, in offset order.
    pub ordering: bool,
    /// Higher priority levels are delivered first.
    pub priority: bool,
    /// Most messages in the delayed set (read before their
    /// `tg-deliver-after`, not acked yet).
    pub delayed_max: usize,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            window_max: 65_536,
            outstanding_max: 10_000,
            ack_deadline_ms: 30_000,
            backoff_min_ms: 1_000,
            backoff_max_ms: 60_000,
            max_deliveries: None,
            ordering: false,
            priority: false,
            delayed_max: 100_000,
        }
    }
}

/// A setting no window can work with.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("window_max must be at least 1")]
    WindowMaxZero,
    #[error("outstanding_max must be at least 1")]
    OutstandingMaxZero,
    #[error("ack_deadline_ms must be in 1..={DEADLINE_MAX_MS}, got {0}")]
    AckDeadline(u32),
    #[error("backoff_min_ms {min} is above backoff_max_ms {max}")]
    Backoff { min: u32, max: u32 },
    #[error("max_deliveries must be at least 1")]
    MaxDeliveriesZero,
    #[error("delayed_max must be at least 1")]
    DelayedMaxZero,
}

impl WindowConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.window_max == 0 {
            return Err(ConfigError::WindowMaxZero);
        }
        if self.outstanding_max == 0 {
            return Err(ConfigError::OutstandingMaxZero);
        }
        if !(1..=DEADLINE_MAX_MS).contains(&self.ack_deadline_ms) {
            return Err(ConfigError::AckDeadline(self.ack_deadline_ms));
        }
        if self.backoff_min_ms > self.backoff_max_ms {
            return Err(ConfigError::Backoff {
                min: self.backoff_min_ms,
                max: self.backoff_max_ms,
            });
        }
        if self.max_deliveries == Some(0) {
            return Err(ConfigError::MaxDeliveriesZero);
        }
        if self.delayed_max == 0 {
            return Err(ConfigError::DelayedMaxZero);
        }
        Ok(())
    }

    /// The backoff after `attempts` failed deliveries:
    /// `min(backoff_max, backoff_min × 2^(attempts-1))`.
    pub fn backoff_ms(&self, attempts: u32) -> i64 {
        // Below 2^32 shifted by at most 32: fits in a u64, and from 32
        // doublings on any non-zero minimum is above the u32 maximum.
        let doublings = attempts.saturating_sub(1).min(32);
        let doubled = u64::from(self.backoff_min_ms) << doublings;
        let max = self.backoff_max_ms;
        i64::from(u32::try_from(doubled).map_or(max, |doubled| doubled.min(max)))
    }
}
