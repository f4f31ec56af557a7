//! Messages read into a window and not delivered yet, in offset order.
//!
//! They come in increasing offset order (the window admits in order) and
//! mostly leave from the front (first deliveries go lowest offset first),
//! so a deque with a slot per message does the work of an ordered map
//! without a tree operation, and without an allocation, per message. A
//! message taken out of the middle (priority, ordering keys) leaves an
//! empty slot until the ones before it are gone. Every slot is an offset
//! of the window, so there are at most `window_max` of them.

use std::collections::VecDeque;

use super::record::OwnedRecord;

#[derive(Debug, Default)]
pub(super) struct ReadAhead {
    /// Increasing offsets; `None` once taken. The front is never `None`.
    slots: VecDeque<(u64, Option<OwnedRecord>)>,
    /// Bytes of the records held (`OwnedRecord::len`).
    bytes: usize,
}

impl ReadAhead {
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Adds a record past every offset held; a record at or below the
    /// last one is refused (the caller's window would have refused it).
    pub(super) fn push(&mut self, record: OwnedRecord) -> bool {
        if self
            .slots
            .back()
            .is_some_and(|&(last, _)| last >= record.offset)
        {
            return false;
        }
        self.bytes += record.len();
        self.slots.push_back((record.offset, Some(record)));
        true
    }

    /// Takes out the record at `offset`, if held.
    pub(super) fn take(&mut self, offset: u64) -> Option<OwnedRecord> {
        // First deliveries take the front: no search (a binary search
        // over thousands of 112-byte slots misses the cache at each step).
        let at = match self.slots.front() {
            Some(&(front, _)) if front == offset => 0,
            _ => self.slots.partition_point(|&(o, _)| o < offset),
        };
        let record = match self.slots.get_mut(at) {
            Some((o, slot)) if *o == offset => slot.take()?,
            _ => return None,
        };
        self.bytes -= record.len();
        while self.slots.front().is_some_and(|(_, slot)| slot.is_none()) {
            self.slots.pop_front();
        }
        Some(record)
    }

    pub(super) fn clear(&mut self) {
        self.slots.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn record(offset: u64, value: &'static [u8]) -> OwnedRecord {
        OwnedRecord {
            offset,
            timestamp_ms: 0,
            key: None,
            value: Some(Bytes::from_static(value)),
            headers: Vec::new(),
        }
    }

    #[test]
    fn records_come_out_by_offset_in_any_order_and_bytes_follow() {
        let mut r = ReadAhead::default();
        for (offset, value) in [(3, &b"abc"[..]), (5, b"de"), (9, b"f")] {
            assert!(r.push(record(offset, value)));
        }
        assert!(!r.push(record(9, b"again")), "offsets only grow");
        assert!(!r.push(record(4, b"x")));
        assert_eq!(r.bytes(), 6);
        assert_eq!(r.take(5).map(|m| m.offset), Some(5));
        assert_eq!(r.take(5), None, "taken once");
        assert_eq!(r.take(4), None, "never held");
        assert_eq!(r.slots.len(), 3, "a hole waits behind offset 3");
        assert_eq!(r.take(3).map(|m| m.offset), Some(3));
        assert_eq!(r.slots.len(), 1, "the front is never a hole");
        assert_eq!(r.bytes(), 1);
        assert_eq!(r.take(9).map(|m| m.offset), Some(9));
        assert_eq!((r.slots.len(), r.bytes()), (0, 0));
        assert!(r.push(record(10, b"g")));
        r.clear();
        assert_eq!((r.take(10), r.bytes()), (None, 0));
    }
}
