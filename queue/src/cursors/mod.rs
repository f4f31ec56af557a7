//! Cursor journals: the durable positions kept beside a partition's log
//! (consumer groups' committed offsets now; subscriptions' acknowledgement
//! state next), as events in a small log of their own
//! (docs/SEMANTICS.md §3).

mod event;
mod journal;

pub use event::{
    check_group, Committed, Event, EventError, SubCheckpoint, SubEvent, GROUP_NAME_MAX,
    METADATA_MAX,
};
pub use journal::{CursorError, CursorJournal, JournalConfig, SubState};
