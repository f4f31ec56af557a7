//! Persistence of a window: what a `Checkpoint` event holds, and how a
//! window is rebuilt from it and the journal after a restart.
//!
//! Recovery, in the caller's order:
//! 1. [`Window::restore`] from the cursor's latest checkpoint. Leases do not
//!    survive (at-least-once): every unhandled offset is ready again, with
//!    its attempt count, but without its key and priority, which are not
//!    checkpointed.
//! 2. Replay the journal's later events: `Ack` ranges (and `Defer`s, as
//!    one-offset ranges) with [`Window::apply_ack_range`], `Attempt`s with
//!    [`Window::apply_attempt`]. Events for offsets at or past the cursor
//!    move the cursor up to them; the offsets they skip wait for meta too.
//! 3. Re-read the log from the floor to the cursor and hand each message to
//!    [`Window::reattach`]. Offsets the log no longer holds are handled with
//!    `apply_ack_range`: the window cannot tell a missing offset from one
//!    the reader has not come to yet.
//! 4. Carry on admitting from the cursor.
//!
//! Nothing is delivered until step 3 is complete (`awaiting_meta() == 0`),
//! so ordering and priority hold across a restart.
//!
//! Replay stays within `window_max` as long as the caller journals every
//! handled range, including the ones [`Window::admit`] reports, in the
//! order they happened: each event then fits the window it was written
//! from, whose floor replay has reached too.

use std::ops::Range;

use thiserror::Error;

use super::{Attached, Disposition, Meta, State, Window};
use crate::subscription::config::{ConfigError, WindowConfig};

/// The whole state of a window that survives a restart: the cursor
/// journal's checkpoint event, so the two cannot drift apart.
pub use tidegate_queue::cursors::SubCheckpoint as Checkpoint;

/// A checkpoint no window could have written; nothing was built.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum RestoreError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cursor {cursor} is below floor {floor}")]
    CursorBelowFloor { floor: u64, cursor: u64 },
    #[error("window [{floor}, {cursor}) is wider than window_max {window_max}")]
    TooWide {
        floor: u64,
        cursor: u64,
        window_max: u64,
    },
    #[error("handled range ({first}, {last}) is empty, out of order, or outside the window")]
    BadRange { first: u64, last: u64 },
    #[error(
        "attempts of offset {offset}: zero, repeated, or not an unhandled offset of the window"
    )]
    BadAttempts { offset: u64 },
}

/// A journal event that does not fit the window; nothing changed.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum ReplayError {
    #[error("range ({first}, {last}) is empty")]
    EmptyRange { first: u64, last: u64 },
    #[error("offset {offset} is window_max {window_max} or more above the floor {floor}")]
    BeyondWindow {
        offset: u64,
        floor: u64,
        window_max: u64,
    },
    #[error("offset u64::MAX cannot be in a window: the cursor would overflow")]
    OffsetMax,
}

/// [`Window::reattach`] of an offset the window has not admitted.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
#[error("offset {offset} is not below the cursor {cursor}: admit it")]
pub struct NotInWindow {
    pub offset: u64,
    pub cursor: u64,
}

impl Window {
    /// The state to journal as a `Checkpoint` event. Its size is bounded by
    /// the window's: at most one range and one attempt per unhandled offset.
    pub fn checkpoint(&self) -> Checkpoint {
        let floor = self.floor();
        let mut handled_above_floor = Vec::new();
        let mut handled_from = floor;
        for (offset, _) in self.slots.iter() {
            if handled_from < offset {
                handled_above_floor.push((handled_from, offset - 1));
            }
            // An entry is below the cursor, so this does not overflow.
            handled_from = offset + 1;
        }
        if handled_from < self.cursor {
            handled_above_floor.push((handled_from, self.cursor - 1));
        }
        let attempts = self
            .slots
            .iter()
            .filter(|(_, slot)| slot.attempts > 0)
            .map(|(offset, slot)| (offset, slot.attempts))
            .collect();
        Checkpoint {
            floor,
            cursor: self.cursor,
            handled_above_floor,
            attempts,
            // The delayed set is the driver's; it fills this in.
            delayed: Vec::new(),
        }
    }

    /// Rebuilds a window from a checkpoint, validating it first. Every
    /// unhandled offset is ready again with its attempts, and awaits its
    /// meta (see the module documentation).
    pub fn restore(
        partition: u32,
        config: WindowConfig,
        checkpoint: &Checkpoint,
    ) -> Result<Window, RestoreError> {
        config.validate()?;
        let Checkpoint { floor, cursor, .. } = *checkpoint;
        if cursor < floor {
            return Err(RestoreError::CursorBelowFloor { floor, cursor });
        }
        let window_max = config.window_max;
        if cursor - floor > window_max {
            return Err(RestoreError::TooWide {
                floor,
                cursor,
                window_max,
            });
        }
        // Offsets are appended from the floor, then the cursor is set.
        let mut window = Window::empty(partition, config, floor);
        let mut unhandled_from = floor;
        for &(first, last) in &checkpoint.handled_above_floor {
            if first < unhandled_from || first > last || last >= cursor {
                return Err(RestoreError::BadRange { first, last });
            }
            window.insert_awaiting(unhandled_from..first);
            unhandled_from = last + 1;
        }
        window.insert_awaiting(unhandled_from..cursor);
        window.cursor = cursor;
        for &(offset, attempts) in &checkpoint.attempts {
            match window.slots.get_mut(offset) {
                Some(slot) if slot.attempts == 0 && attempts > 0 => slot.attempts = attempts,
                _ => return Err(RestoreError::BadAttempts { offset }),
            }
        }
        Ok(window)
    }

    /// Gives a restored offset its meta back, as the caller re-reads the
    /// log. A disposition other than `Deliver` handles it (for instance,
    /// it expired while the gateway was down). An offset that is handled,
    /// below the floor, or already has its meta is left alone.
    pub fn reattach(&mut self, offset: u64, meta: Meta) -> Result<super::Admitted, NotInWindow> {
        if offset >= self.cursor {
            let cursor = self.cursor;
            return Err(NotInWindow { offset, cursor });
        }
        let mut handled = None;
        let awaiting = self.slots.get(offset).is_some_and(|s| s.meta().is_none());
        if awaiting {
            if meta.disposition == Disposition::Deliver {
                self.attach(offset, Attached::from(meta));
            } else {
                self.mark_handled(offset);
                handled = Some((offset, offset));
            }
        }
        Ok(super::Admitted {
            handled,
            floor: self.floor(),
        })
    }

    /// Replays a journaled `Ack` range (inclusive): its offsets are handled,
    /// whatever their state. Idempotent. A range reaching the cursor or
    /// past it moves the cursor to just after it; the offsets it skips
    /// await their meta. Returns the floor.
    pub fn apply_ack_range(&mut self, first: u64, last: u64) -> Result<u64, ReplayError> {
        if first > last {
            return Err(ReplayError::EmptyRange { first, last });
        }
        if last >= self.cursor {
            let awaiting = self.cursor..first.max(self.cursor);
            // Entries from `first` on are handled by this range.
            let floor_after = match self.slots.first().filter(|&floor| floor < first) {
                Some(offset) => offset,
                None if !awaiting.is_empty() => awaiting.start,
                None => last,
            };
            self.check_replay_fits(last, floor_after)?;
            self.insert_awaiting(awaiting);
            self.cursor = last + 1;
        }
        for offset in self.slots.unhandled_in(first, last) {
            self.mark_handled(offset);
        }
        Ok(self.floor())
    }

    /// Replays a journaled `Attempt`: an unhandled offset has been
    /// delivered at least `attempts` times. One at or past the cursor moves
    /// the cursor as in `apply_ack_range`; a handled one is left alone.
    pub fn apply_attempt(&mut self, offset: u64, attempts: u32) -> Result<(), ReplayError> {
        if offset >= self.cursor {
            self.check_replay_fits(offset, self.floor())?;
            self.insert_awaiting(self.cursor..offset + 1);
            self.cursor = offset + 1;
        }
        self.raise_attempts(offset, attempts);
        Ok(())
    }

    /// Replay may widen the window to `[floor, offset]` only within
    /// `window_max`.
    fn check_replay_fits(&self, offset: u64, floor: u64) -> Result<(), ReplayError> {
        if offset == u64::MAX {
            return Err(ReplayError::OffsetMax);
        }
        let window_max = self.config.window_max;
        if offset - floor >= window_max {
            return Err(ReplayError::BeyondWindow {
                offset,
                floor,
                window_max,
            });
        }
        Ok(())
    }

    fn raise_attempts(&mut self, offset: u64, attempts: u32) {
        let Some(slot) = self.slots.get_mut(offset) else {
            return;
        };
        if attempts <= slot.attempts {
            return;
        }
        slot.attempts = attempts;
        // A live lease's queue entry names the old attempt.
        if let Some(State::Leased { deadline_ms }) = slot.state() {
            self.reschedule(offset, deadline_ms);
        }
    }

    fn insert_awaiting(&mut self, offsets: Range<u64>) {
        for offset in offsets {
            self.insert_entry(offset, 0, None);
        }
    }
}
