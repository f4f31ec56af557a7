//! A message as a subscription delivers it: an owned copy of a log record,
//! and what the window needs to know of it (its `Meta`).

use std::hash::{Hash, Hasher};

use bytes::Bytes;

use tidegate_proto::{batch::RecordView, filter::Filter};

use crate::catalog::SubscriptionMeta;
use crate::subscription::{Disposition, Meta, PRIORITY_MAX};

/// Header with the message's priority level, `0..=9` (SEMANTICS.md §5).
pub(crate) const HEADER_PRIORITY: &str = "tg-priority";
/// Header with the message's expiry, Unix ms.
pub(crate) const HEADER_EXPIRES_AT: &str = "tg-expires-at";
/// Header with the time a message becomes deliverable, Unix ms.
pub(crate) const HEADER_DELIVER_AFTER: &str = "tg-deliver-after";
/// The longest delay honoured: a later `tg-deliver-after` counts as this
/// far ahead of when the message was read.
pub(crate) const DELAY_MAX_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// Header a redriven message carries: the one subscription it is for.
pub(crate) const HEADER_REDRIVE_FOR: &str = "tg-redrive-for";

/// A record out of the log: its bytes are slices of one copy of the read
/// that held it (`chunk`), so a read of thousands of records is copied
/// once, not allocated record by record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OwnedRecord {
    pub(crate) offset: u64,
    pub(crate) timestamp_ms: i64,
    pub(crate) key: Option<Bytes>,
    pub(crate) value: Option<Bytes>,
    pub(crate) headers: Vec<(String, Bytes)>,
}

impl OwnedRecord {
    /// `record`, whose bytes lie inside `chunk`.
    pub(crate) fn of(record: &RecordView<'_>, chunk: &Bytes) -> OwnedRecord {
        let slice = |b: &[u8]| slice_of(chunk, b);
        OwnedRecord {
            offset: record.offset(),
            timestamp_ms: record.timestamp_ms(),
            key: record.key().map(slice),
            value: record.value().map(slice),
            headers: record
                .headers()
                .map(|(n, v)| (n.to_owned(), slice(v)))
                .collect(),
        }
    }

    /// Copies its bytes out of the read they slice, which can then go.
    pub(crate) fn detach(&mut self) {
        let copy = |b: &mut Bytes| *b = Bytes::copy_from_slice(b);
        self.key.iter_mut().for_each(copy);
        self.value.iter_mut().for_each(copy);
        self.headers.iter_mut().for_each(|(_, v)| copy(v));
    }

    /// Bytes it holds (what counts against a pull's `max_bytes` and the
    /// window's read-ahead budget).
    pub(crate) fn len(&self) -> usize {
        let headers: usize = self.headers.iter().map(|(n, v)| n.len() + v.len()).sum();
        self.key.as_ref().map_or(0, Bytes::len)
            + self.value.as_ref().map_or(0, Bytes::len)
            + headers
    }

    pub(crate) fn header(&self, name: &str) -> Option<&[u8]> {
        header_of(
            self.headers.iter().map(|(n, v)| (n.as_str(), v.as_ref())),
            name,
        )
    }

    /// True when the message's `tg-expires-at`, or its timestamp plus the
    /// topic's `ttl_ms`, has passed.
    pub(crate) fn expired(&self, now_ms: i64, ttl_ms: Option<u64>) -> bool {
        let header = self.header(HEADER_EXPIRES_AT);
        expiry(header, self.timestamp_ms, ttl_ms).is_some_and(|at| at <= now_ms)
    }
}

/// `part` as a slice of `chunk` when it lies inside it (no copy), else
/// copied.
fn slice_of(chunk: &Bytes, part: &[u8]) -> Bytes {
    let inside = chunk.as_ptr_range();
    let range = part.as_ptr_range();
    if part.is_empty() || inside.start > range.start || range.end > inside.end {
        return Bytes::copy_from_slice(part);
    }
    chunk.slice_ref(part)
}

/// The first header named `name`.
fn header_of<'h>(
    mut headers: impl Iterator<Item = (&'h str, &'h [u8])>,
    name: &str,
) -> Option<&'h [u8]> {
    headers.find(|(n, _)| *n == name).map(|(_, v)| v)
}

/// A decimal header value; `None` when absent or not a number.
fn decimal(value: Option<&[u8]>) -> Option<i64> {
    std::str::from_utf8(value?).ok()?.trim().parse().ok()
}

/// When a message expires: the earlier of its `tg-expires-at` header and
/// its timestamp plus the topic's TTL.
fn expiry(header: Option<&[u8]>, timestamp_ms: i64, ttl_ms: Option<u64>) -> Option<i64> {
    let by_ttl =
        ttl_ms.map(|ttl| timestamp_ms.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)));
    decimal(header).into_iter().chain(by_ttl).min()
}

/// When `record` becomes deliverable, if that is after `now_ms` (at most
/// [`DELAY_MAX_MS`] after it).
pub(crate) fn deliver_after(record: &RecordView<'_>, now_ms: i64) -> Option<i64> {
    let at = decimal(header_of(record.headers(), HEADER_DELIVER_AFTER))?;
    (at > now_ms).then(|| at.min(now_ms.saturating_add(DELAY_MAX_MS)))
}

/// How subscription `sub` with `filter`, of a topic whose messages live
/// `ttl_ms`, treats `record` when it reads it at `now_ms`: filtered out,
/// expired, deferred, or to be delivered with
/// its key hash (for ordering) and priority. A subscription that
/// dead-letters expired messages takes an expired one in to be delivered:
/// the delivery finds it expired and dead-letters it.
pub(crate) fn meta_of(
    record: &RecordView<'_>,
    filter: Option<&Filter>,
    sub: &SubscriptionMeta,
    ttl_ms: Option<u64>,
    now_ms: i64,
) -> Meta {
    let name = sub.name.as_str();
    let mut meta = Meta::deliver();
    if let Some(level) = decimal(header_of(record.headers(), HEADER_PRIORITY)) {
        meta = meta.with_priority(level.clamp(0, i64::from(PRIORITY_MAX)) as u8);
    }
    if let Some(key) = record.key() {
        meta = meta.with_key(key_hash(key));
    }
    let redriven_for_another = header_of(record.headers(), HEADER_REDRIVE_FOR)
        .is_some_and(|for_sub| for_sub != name.as_bytes());
    // A duplicate marker stands for a message stored once already.
    let duplicate = tidegate_queue::dedup::is_marker(record);
    let filtered = filter.is_some_and(|f| !f.matches_record(record));
    let disposition = if redriven_for_another || duplicate || filtered {
        Disposition::Filtered
    } else if !sub.dead_letter_expired
        && expiry(
            header_of(record.headers(), HEADER_EXPIRES_AT),
            record.timestamp_ms(),
            ttl_ms,
        )
        .is_some_and(|at| at <= now_ms)
    {
        Disposition::Expired
    } else if deliver_after(record, now_ms).is_some() {
        Disposition::Deferred
    } else {
        Disposition::Deliver
    };
    meta.with_disposition(disposition)
}

/// The key's hash for ordering. It lives only in memory (a restart reads
/// the keys again), so any hash that is stable within a process will do.
fn key_hash(key: &[u8]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use tidegate_proto::batch::{BatchBuilder, BatchView, Record};

    use super::*;

    fn with_record<T>(
        headers: &[(&str, &[u8])],
        key: Option<&[u8]>,
        f: impl Fn(&RecordView<'_>) -> T,
    ) -> T {
        let mut b = BatchBuilder::new();
        b.push(Record {
            timestamp_ms: 5,
            key,
            value: Some(b"v"),
            headers,
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let bytes = b.finish().unwrap_or_else(|e| panic!("{e}"));
        let view = BatchView::parse(&bytes).unwrap_or_else(|e| panic!("{e}"));
        let record = view.records().next().unwrap_or_else(|| panic!("a record"));
        f(&record)
    }

    #[test]
    fn a_duplicate_marker_is_handled_and_never_delivered() {
        let config = tidegate_proto::protocol::SubscriptionConfig::new("s", "t");
        let sub = SubscriptionMeta::new(&config, 1, 0);
        let mut b = BatchBuilder::new();
        b.push(Record {
            timestamp_ms: 5,
            key: None,
            value: None,
            headers: &[("tg-dup-of", b"3")],
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let bytes = b.finish().unwrap_or_else(|e| panic!("{e}"));
        let view = BatchView::parse(&bytes).unwrap_or_else(|e| panic!("{e}"));
        let record = view.records().next().unwrap_or_else(|| panic!("a record"));
        let meta = meta_of(&record, None, &sub, None, 1_000);
        assert_eq!(meta.disposition, Disposition::Filtered);
        // The same header on a message with a value is only a header.
        let meta = with_record(&[("tg-dup-of", b"3")], None, |r| {
            meta_of(r, None, &sub, None, 1_000)
        });
        assert_eq!(meta.disposition, Disposition::Deliver);
    }

    #[test]
    fn headers_decide_priority_expiry_filtering_and_redrive() {
        let filter = Filter::parse("region = \"eu\"").unwrap_or_else(|e| panic!("{e}"));
        let config = tidegate_proto::protocol::SubscriptionConfig::new("s", "t");
        let sub = SubscriptionMeta::new(&config, 1, 0);
        let meta = |headers: &[(&str, &[u8])]| {
            with_record(headers, Some(b"k"), |r| {
                meta_of(r, Some(&filter), &sub, None, 1_000)
            })
        };
        let eu: (&str, &[u8]) = ("region", b"eu");
        assert_eq!(meta(&[eu]).disposition, Disposition::Deliver);
        assert!(meta(&[eu]).key_hash.is_some());
        assert_eq!(
            meta(&[("region", b"us")]).disposition,
            Disposition::Filtered
        );
        assert_eq!(meta(&[eu, ("tg-priority", b"7")]).priority, 7);
        assert_eq!(meta(&[eu, ("tg-priority", b"99")]).priority, PRIORITY_MAX);
        assert_eq!(meta(&[eu, ("tg-priority", b"x")]).priority, 4);
        assert_eq!(
            meta(&[eu, ("tg-expires-at", b"999")]).disposition,
            Disposition::Expired
        );
        assert_eq!(
            meta(&[eu, ("tg-expires-at", b"1001")]).disposition,
            Disposition::Deliver
        );
        let dead_letters = SubscriptionMeta {
            dead_letter_expired: true,
            ..sub.clone()
        };
        let expired = with_record(&[eu, ("tg-expires-at", b"999")], None, |r| {
            meta_of(r, Some(&filter), &dead_letters, None, 1_000)
        });
        assert_eq!(
            expired.disposition,
            Disposition::Deliver,
            "to be dead-lettered"
        );
        assert_eq!(
            meta(&[eu, ("tg-redrive-for", b"s")]).disposition,
            Disposition::Deliver
        );
        assert_eq!(
            meta(&[eu, ("tg-deliver-after", b"1001")]).disposition,
            Disposition::Deferred
        );
        assert_eq!(
            meta(&[eu, ("tg-deliver-after", b"1000")]).disposition,
            Disposition::Deliver,
            "due now"
        );
        let later = format!("{}", i64::MAX);
        let far = with_record(&[("tg-deliver-after", later.as_bytes())], None, |r| {
            deliver_after(r, 1_000)
        });
        assert_eq!(far, Some(1_000 + DELAY_MAX_MS), "at most 7 days");
        assert_eq!(
            meta(&[eu, ("tg-redrive-for", b"t")]).disposition,
            Disposition::Filtered
        );
        let owned = with_record(&[eu, ("tg-expires-at", b"10")], None, |r| {
            OwnedRecord::of(r, &Bytes::new())
        });
        assert!(owned.expired(10, None) && !owned.expired(9, None));
        // The topic's TTL counts from the timestamp (5): the earlier wins.
        assert!(owned.expired(8, Some(3)) && !owned.expired(7, Some(3)));
        assert!(owned.expired(10, Some(100)) && !owned.expired(9, Some(100)));
        assert_eq!(
            owned.len(),
            1 + "region".len() + 2 + "tg-expires-at".len() + 2
        );
    }
}
