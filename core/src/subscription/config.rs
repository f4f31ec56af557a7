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
        Ok(())
    }
}
