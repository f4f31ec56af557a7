//! The syncer task of a log: one fdatasync at a time, each covering every
//! byte written before it started, answering the durable waiters it covers.
//!
//! Running it beside the writer lets the next group be written while the
//! previous one is being synced, so neither the disk nor the producers wait
//! on the other.

use std::rc::Rc;

use super::Shared;
use crate::{disk::DiskFile, error::LogError};

pub(crate) async fn run(shared: Rc<Shared>) {
    loop {
        let work = shared.sync_work.notified();
        match next(&shared) {
            Next::Sync(file, target) => sync(&shared, &file, target).await,
            Next::Wait => work.await,
            Next::Stop => break,
        }
    }
}

enum Next {
    Sync(Rc<DiskFile>, u64),
    Wait,
    Stop,
}

fn next(shared: &Shared) -> Next {
    let state = shared.state.borrow();
    if state.closing || state.failed.is_some() {
        // On close the writer's last step syncs whatever is left.
        return Next::Stop;
    }
    let due = state.durable_offset < state.written_offset
        && state
            .durable_waiters
            .front()
            .is_some_and(|(end, _)| *end <= state.written_offset);
    match (due, state.segments.last()) {
        // Earlier segments were synced when they were sealed, so syncing the
        // active one makes everything written so far durable.
        (true, Some(seg)) => Next::Sync(seg.file.clone(), state.written_offset),
        _ => Next::Wait,
    }
}

async fn sync(shared: &Shared, file: &DiskFile, target: u64) {
    shared.count(|s| s.syncs += 1);
    match file.fdatasync().await {
        Ok(()) => {
            let mut state = shared.state.borrow_mut();
            state.durable_offset = state.durable_offset.max(target);
            state.complete_durable();
        }
        Err(failure) => {
            // Never retry an fdatasync: after a failure the kernel may have
            // dropped the dirty pages, and a retry would report success.
            tracing::error!(%failure, "fdatasync failed; partition log is now read-only");
            let mut state = shared.state.borrow_mut();
            let err = LogError::Failed(failure.clone());
            state.failed = Some(failure);
            state.fail_waiters(&err);
            state.rewind_to_written(&err);
        }
    }
    shared.progress.notify_all();
}
