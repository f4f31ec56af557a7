//! The writer task of a log: group commit, segment rolls and retention.

use std::{rc::Rc, task::Poll};

use futures::stream::{FuturesUnordered, Stream, StreamExt};

use glommio::io::DmaBuffer;

use super::{
    state::{tail_of, Segment},
    unit::PendingUnit,
    Shared,
};
use crate::{
    disk::DiskFile,
    error::{IoFailure, LogError},
    gate::Permit,
};

/// Runs until the log closes: takes everything queued and writes it as one
/// group. Syncing is the syncer's job (`syncer.rs`), so the next group is
/// written while the previous one is being fdatasynced.
pub(crate) async fn run(shared: Rc<Shared>) {
    loop {
        let work = shared.work.listen();
        let (units, closing, failed) = take_pending(&shared);
        // Once the log has failed nothing more is written; the waiters of
        // what was queued were answered when it failed.
        if failed || units.is_empty() {
            if closing {
                break;
            }
            work.await;
            continue;
        }
        for unit in units {
            if shared.state.borrow().failed.is_some() {
                break; // the syncer failed the log meanwhile
            }
            if let Err(err) = write_unit(&shared, unit).await {
                on_write_error(&shared, err).await;
                break;
            }
        }
        super::spare::maybe_start(&shared);
        shared.sync_work.notify(usize::MAX);
        shared.progress.notify(usize::MAX);
    }
    finish(&shared).await;
}

/// Everything queued, whether the log is closing, and whether it failed.
fn take_pending(shared: &Shared) -> (Vec<PendingUnit>, bool, bool) {
    let mut state = shared.state.borrow_mut();
    (state.take_pending(), state.closing, state.failed.is_some())
}

/// Writes one unit: rolls to its segment first if it starts a new one.
async fn write_unit(shared: &Shared, mut unit: PendingUnit) -> Result<(), IoFailure> {
    if let Some(header) = unit.new_segment {
        let started = std::time::Instant::now();
        super::roll::roll(shared, unit.segment_base, header, unit.producers.take()).await?;
        let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        shared.count(|s| {
            s.rolls += 1;
            s.roll_us_total = s.roll_us_total.saturating_add(took);
        });
    }
    let (file, sync_follows) = {
        let state = shared.state.borrow();
        let seg = state.segments.last().ok_or_else(closed_failure)?;
        assert_eq!(
            seg.base_offset, unit.segment_base,
            "a unit goes to the active segment"
        );
        assert_eq!(seg.size, unit.start_pos, "units are written in order");
        // Someone waits for this unit to be durable: the syncer will
        // fdatasync once it is written.
        let sync_follows = state
            .durable_waiters
            .front()
            .is_some_and(|(end, _)| *end <= unit.end_offset);
        (seg.file.clone().ok_or_else(closed_failure)?, sync_follows)
    };
    let end_pos = unit.end_pos();
    let written_at = super::tail_cache::Seek {
        segment_base: unit.segment_base,
        pos: unit.start_pos,
    };
    let tail = tail_of(&unit.slices(), end_pos);
    let (batch_bytes, end_offset, max_ts) =
        (unit.batch_bytes, unit.end_offset, unit.max_timestamp_ms);
    let index = std::mem::take(&mut unit.index);
    // Copied only if the cache can hold it; one it cannot ends what the
    // cache holds (it keeps no gaps).
    let cached = if shared.tail.borrow().fits(batch_bytes) {
        Some(unit.copy_batches())
    } else {
        shared.tail.borrow_mut().clear();
        None
    };
    let writes = unit.into_writes(&mut shared.pool.borrow_mut());
    let raised_barrier = write_all(shared, &file, writes, sync_follows).await?;
    shared.count(|s| {
        s.flushes += 1;
        s.bytes_written += batch_bytes as u64;
    });

    let mut state = shared.state.borrow_mut();
    let state = &mut *state;
    if state.failed.is_some() {
        // The syncer failed the log while this write was in flight; its
        // waiters have their answer and nothing more is acknowledged.
        return Ok(());
    }
    let seg = state.segments.last_mut().ok_or_else(closed_failure)?;
    seg.size = end_pos;
    seg.next_offset = end_offset;
    seg.max_timestamp_ms = seg.max_timestamp_ms.max(max_ts);
    seg.tail = tail;
    for entry in index {
        seg.index.maybe_add(0, entry);
    }
    if let Some(bytes) = cached {
        // Units are written in offset order: this one starts where the
        // last ended.
        let first = state.written_offset;
        shared
            .tail
            .borrow_mut()
            .push(first, end_offset, written_at, bytes);
    }
    state.written_offset = end_offset;
    state.pending_bytes -= batch_bytes;
    state.complete_written();
    if raised_barrier {
        // The other flows' writes wait for this fdatasync: ask for it now,
        // not after the rest of the group.
        shared.sync_work.notify(usize::MAX);
    }
    Ok(())
}

/// Submits the writes, at most `write_concurrency` in flight and each when
/// the shard's write gate lets it through, and returns their buffers to the
/// pool. `sync_follows` tells the gate an fdatasync follows the writes;
/// the result is whether that raised a barrier at the gate.
async fn write_all(
    shared: &Shared,
    file: &DiskFile,
    writes: Vec<(DmaBuffer, u64)>,
    sync_follows: bool,
) -> Result<bool, IoFailure> {
    let mut in_flight = FuturesUnordered::new();
    let mut failed = None;
    let mut raised_barrier = false;
    for (i, (buf, pos)) in writes.into_iter().enumerate() {
        if in_flight.len() == shared.config.write_concurrency {
            if let Err(e) = recycle(shared, in_flight.next().await) {
                failed = Some(e);
                break;
            }
        }
        // The first write tells: whether the flow is sparse is judged by
        // it (the unit's later writes follow it in the flow's tag), and a
        // barrier it raises lets the flow's own later writes through.
        let permit = shared.gate.write(buf.len(), sync_follows && i == 0);
        if let Err(e) = wait_for_gate(shared, &permit, &mut in_flight).await {
            failed = Some(e);
            break;
        }
        raised_barrier |= permit.raised_barrier();
        in_flight.push(async move {
            let done = file.write_at(buf, pos).await;
            permit.done();
            done
        });
    }
    // Even after a failure, wait for every write already submitted: one that
    // landed after the caller truncated the file could leave stale batches
    // past the end.
    while let Some(done) = in_flight.next().await {
        if let Err(e) = recycle(shared, Some(done)) {
            failed.get_or_insert(e);
        }
    }
    failed.map_or(Ok(raised_barrier), Err)
}

/// Waits until the gate lets `permit`'s write through, driving the writes
/// already in flight meanwhile: their permits leave the gate's count only
/// once they are polled to completion, and they may be what it waits for.
async fn wait_for_gate<S>(
    shared: &Shared,
    permit: &Permit,
    in_flight: &mut S,
) -> Result<(), IoFailure>
where
    S: Stream<Item = Result<Option<DmaBuffer>, IoFailure>> + Unpin,
{
    std::future::poll_fn(|cx| loop {
        if permit.poll_ready(cx).is_ready() {
            return Poll::Ready(Ok(()));
        }
        match in_flight.poll_next_unpin(cx) {
            Poll::Ready(Some(done)) => recycle(shared, Some(done))?,
            Poll::Ready(None) | Poll::Pending => return Poll::Pending,
        }
    })
    .await
}

/// Returns a written buffer to the pool, or the write's error.
fn recycle(
    shared: &Shared,
    done: Option<Result<Option<DmaBuffer>, IoFailure>>,
) -> Result<(), IoFailure> {
    if let Some(buf) = done.transpose()?.flatten() {
        shared.pool.borrow_mut().give(buf);
    }
    Ok(())
}

/// A write failed. Out of space, or out of descriptors (a roll could not
/// open its files), is recoverable: drop what was not written, cut the file
/// back to the written size (so no half-written bytes can look like batches
/// later), and keep serving. Anything else fails the log.
async fn on_write_error(shared: &Shared, failure: IoFailure) {
    // A failed fdatasync (in a roll) is never recoverable; see `syncer.rs`.
    let transient = failure.is_no_space() || failure.is_out_of_files();
    let recoverable = transient && failure.op != "fdatasync";
    let err = match (recoverable, failure.is_no_space()) {
        (false, _) => LogError::Failed(failure.clone()),
        (true, true) => LogError::NoSpace(failure.clone()),
        (true, false) => LogError::Io(failure.clone()),
    };
    if recoverable && failure.is_no_space() {
        // Out of space: give back the prepared segment's reservation.
        super::spare::discard(shared).await;
        shared.spare.borrow_mut().hold_off();
    }
    if recoverable && failure.is_out_of_files() {
        // Give back what this log holds beyond its active segment.
        super::files::close_all(shared).await;
    }
    let (file, size) = {
        let mut state = shared.state.borrow_mut();
        state.rewind_to_written(&err);
        if !recoverable {
            state.fail_waiters(&err);
            state.failed = Some(failure.clone());
        }
        match state.segments.last() {
            Some(Segment {
                file: Some(file),
                size,
                ..
            }) => (file.clone(), *size),
            _ => return,
        }
    };
    // Cut back, reserve again, and sync: after a power loss the bytes of
    // the refused appends must not come back at offsets handed out again.
    let recovered = recoverable
        && file.truncate(size).await.is_ok()
        && (!shared.config.preallocate
            || file
                .preallocate(shared.config.segment_bytes_max)
                .await
                .is_ok())
        && file.fdatasync().await.is_ok();
    if recovered {
        tracing::warn!(%failure, "append failed; will accept appends again");
    } else {
        tracing::error!(%failure, "write failed; partition log is now read-only");
        let mut state = shared.state.borrow_mut();
        let failed = LogError::Failed(failure.clone());
        // Appends queued while the file was being cut back are refused too.
        state.rewind_to_written(&failed);
        state.fail_waiters(&failed);
        state.failed = Some(failure);
    }
    shared.progress.notify(usize::MAX);
}

/// Last work before the writer stops: sync what was written, checkpoint the
/// active segment's index, close every file.
async fn finish(shared: &Shared) {
    super::spare::discard(shared).await;
    let (active, checkpoint, index_path, needs_sync) = {
        let state = shared.state.borrow();
        let active = state.segments.last();
        (
            active.and_then(|s| s.file.clone()),
            active.map(Segment::checkpoint),
            active.map(|s| s.index_path()),
            state.failed.is_none() && state.durable_offset < state.written_offset,
        )
    };
    let failed = shared.state.borrow().failed.is_some();
    let mut result = Ok(());
    if let (false, Some(active)) = (failed, &active) {
        if needs_sync {
            result = active.fdatasync().await;
        }
        if let (Ok(()), Some(cp), Some(path)) = (&result, checkpoint, index_path) {
            result = shared.disk.write_atomic(&path, &cp.encode()).await;
        }
    }
    {
        let mut state = shared.state.borrow_mut();
        match result {
            Ok(()) => {
                state.durable_offset = state.written_offset;
                state.complete_durable();
            }
            Err(failure) => state.close_error = Some(LogError::io(failure)),
        }
        state.fail_waiters(&LogError::Closed);
    }
    // Reads may go on after a shutdown: a sealed segment's file they hold
    // closes when the last of them drops it.
    super::files::close_all(shared).await;
    if let Some(file) = active {
        DiskFile::close_shared(file).await;
    }
}

/// The failure that failed the log, if one did.
pub(super) fn check_not_failed(shared: &Shared) -> Result<(), IoFailure> {
    match &shared.state.borrow().failed {
        Some(failure) => Err(failure.clone()),
        None => Ok(()),
    }
}

pub(super) fn closed_failure() -> IoFailure {
    IoFailure {
        op: "write",
        path: Default::default(),
        errno: None,
        message: "log has no active segment".into(),
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
