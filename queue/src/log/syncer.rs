//! The syncer task of a log: one fdatasync at a time, each covering every
//! byte written before it started, answering the durable waiters it covers.
//!
//! Running it beside the writer lets the next group be written while the
//! previous one is being synced, so neither the disk nor the producers wait
//! on the other.

use std::rc::Rc;

use super::Shared;
use crate::{disk::DiskFile, error::LogError, index::Checkpoint, segment};

pub(crate) async fn run(shared: Rc<Shared>) {
    loop {
        let work = shared.sync_work.listen();
        match next(&shared) {
            Next::Sync(file, target, checkpoint) => {
                sync(&shared, &file, target).await;
                if let Some(cp) = checkpoint {
                    write_checkpoint(&shared, cp).await;
                }
            }
            Next::Wait => {
                // No fdatasync is due, so none for a barrier to wait for.
                shared.gate.release_barrier();
                work.await;
            }
            Next::Stop => {
                shared.gate.release_barrier();
                break;
            }
        }
    }
}

enum Next {
    /// Sync this file, making offsets below the target durable; then write
    /// this index checkpoint, if one is due.
    Sync(Rc<DiskFile>, u64, Option<Checkpoint>),
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
    let active = state
        .segments
        .last()
        .and_then(|s| Some((s, s.file.clone()?)));
    match (due, active) {
        // Earlier segments were synced when they were sealed, so syncing the
        // active one makes everything written so far durable.
        (true, Some((seg, file))) => {
            let due = seg.size - seg.checkpointed_pos >= shared.config.checkpoint_interval_bytes;
            let checkpoint = due.then(|| seg.checkpoint());
            Next::Sync(file, state.written_offset, checkpoint)
        }
        _ => Next::Wait,
    }
}

async fn sync(shared: &Shared, file: &DiskFile, target: u64) {
    // Waiting for the gate here lets the writer go on adding to what this
    // sync will cover.
    let permit = shared.gate.sync();
    permit.ready().await;
    let started = std::time::Instant::now();
    let result = file.fdatasync().await;
    let took = started.elapsed();
    permit.done();
    drop(permit);
    shared.count(|s| s.record_sync(took));
    match result {
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
    shared.progress.notify(usize::MAX);
}

/// Writes the active segment's index checkpoint, which covers only what the
/// sync before it made durable, so recovery can tell damage of acknowledged
/// data (before it: reported) from an unfinished write (after it: cut).
async fn write_checkpoint(shared: &Shared, cp: Checkpoint) {
    let (path, current) = {
        let state = shared.state.borrow();
        let Some(seg) = state.segments.last() else {
            return;
        };
        let current = seg.base_offset == cp.base_offset
            && !seg.sealed
            && state.failed.is_none()
            && state.durable_offset >= cp.next_offset;
        (segment::index_path(&state.dir, cp.base_offset), current)
    };
    if !current {
        return; // sealed meanwhile (its roll wrote the final checkpoint), or failed
    }
    let end_pos = cp.end_pos;
    match shared.disk.write_atomic(&path, &cp.encode()).await {
        Ok(()) => {
            let mut state = shared.state.borrow_mut();
            if let Some(seg) = state.segments.last_mut() {
                if seg.base_offset == cp.base_offset {
                    seg.checkpointed_pos = seg.checkpointed_pos.max(end_pos);
                }
            }
        }
        // The data is durable either way; only recovery's knowledge of it
        // is older. The next checkpoint tries again.
        Err(failure) => tracing::warn!(%failure, "index checkpoint not written"),
    }
}
