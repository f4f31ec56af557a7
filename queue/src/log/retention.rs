//! Retention: deleting whole sealed segments by age and by total size, or
//! below an offset the log's owner no longer needs.

use super::{state::State, RetentionReport, Shared};
use crate::error::LogError;

/// Deletes sealed segments past the retention limits, oldest first.
pub(crate) async fn enforce_retention(
    shared: &Shared,
    now_ms: i64,
    below: Option<u64>,
) -> Result<RetentionReport, LogError> {
    let mut report = RetentionReport::default();
    loop {
        let victim = {
            let state = shared.state.borrow();
            pick_expired(&state, &shared.config, now_ms, below)
        };
        let Some(base) = victim else { break };
        let seg = {
            let mut state = shared.state.borrow_mut();
            state.segments.remove(0)
        };
        debug_assert_eq!(seg.base_offset, base);
        report.segments_deleted += 1;
        report.bytes_deleted += seg.size;
        let index_path = seg.index_path();
        // A sealed segment's file is open only if it is among those kept
        // for reads; a read in flight still holds it, and reads to its end.
        super::files::forget(shared, base).await;
        let log_path = seg.path.clone();
        shared.disk.remove(&log_path).map_err(LogError::io)?;
        shared.disk.remove(&index_path).map_err(LogError::io)?;
        let dir = shared.state.borrow().dir.clone();
        let snapshot = crate::segment::producers_path(&dir, base);
        shared.disk.remove(&snapshot).map_err(LogError::io)?;
    }
    let dir = shared.state.borrow().dir.clone();
    if report.segments_deleted > 0 {
        shared.disk.sync_dir(&dir).await.map_err(LogError::io)?;
    }
    report.earliest = shared.state.borrow().offsets().earliest;
    Ok(report)
}

/// The oldest segment to delete, if any: never the active one.
fn pick_expired(
    state: &State,
    config: &crate::LogConfig,
    now_ms: i64,
    below: Option<u64>,
) -> Option<u64> {
    let oldest = state.segments.first()?;
    if state.segments.len() < 2 || !oldest.sealed {
        return None;
    }
    let too_old = config.retention_ms.is_some_and(|ms| {
        oldest.max_timestamp_ms != i64::MIN
            && oldest.max_timestamp_ms
                < now_ms.saturating_sub(i64::try_from(ms).unwrap_or(i64::MAX))
    });
    let too_big = config
        .retention_bytes
        .is_some_and(|max| state.size_bytes() > max);
    let replaced = below.is_some_and(|below| oldest.next_offset <= below);
    (too_old || too_big || replaced).then_some(oldest.base_offset)
}
