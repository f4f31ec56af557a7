//! Subscriptions (docs/SEMANTICS.md §5): the pure state of one
//! (subscription, partition) delivery window.
//!
//! [`Window`] is a state machine in the manner of quinn-proto: no I/O, no
//! clock, no tasks. The shard's driver reads the log into it
//! ([`Window::admit`]), takes deliveries out of it ([`Window::next`]), feeds
//! it acks, nacks and the time ([`Window::expire`], [`Window::next_due`]),
//! and journals what it reports: handled offsets, attempts, checkpoints.
//! Publishing dead letters, evaluating filters, TTLs and delays are the
//! driver's; the window only records their outcome.

mod ack_id;
mod config;
mod delayed;
mod lease;
pub(crate) mod served;
mod window;

pub use ack_id::{AckId, AckIdError, ACK_ID_LEN};
pub use config::{ConfigError, WindowConfig, DEADLINE_MAX_MS};
pub use delayed::{DelayedEntry, DelayedFull, DelayedSet};
pub use window::recovery::{Checkpoint, NotInWindow, ReplayError, RestoreError};
pub use window::{
    AckError, Acked, AdmitError, Admitted, AfterLease, DeadlineChange, Delivery, Disposition,
    LeaseEnded, Meta, NotDeadLetter, Window, PRIORITY_DEFAULT, PRIORITY_MAX,
};
