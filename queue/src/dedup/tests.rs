use super::*;

fn must<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("unexpected error: {e}"))
}

/// A batch of (key, value, message id) records, timestamps 100, 101, ...
fn batch(records: &[(Option<&str>, &str, Option<&str>)]) -> Vec<u8> {
    let mut b = BatchBuilder::new().producer(7, 1, 40);
    for (i, (key, value, id)) in records.iter().enumerate() {
        let mut headers: Vec<(&str, &[u8])> = vec![("other", b"x")];
        if let Some(id) = id {
            headers.push((MESSAGE_ID_HEADER, id.as_bytes()));
        }
        must(b.push(Record {
            timestamp_ms: 100 + i as i64,
            key: key.map(str::as_bytes),
            value: Some(value.as_bytes()),
            headers: &headers,
        }));
    }
    must(b.finish())
}

#[test]
fn a_batch_without_known_ids_is_stored_as_it_came_and_its_ids_remembered_after() {
    let table = DedupTable::new(60_000, 10);
    let bytes = batch(&[
        (None, "a", Some("id-1")),
        (Some("k"), "b", None),
        (None, "c", Some("id-2")),
    ]);
    let view = must(BatchView::parse(&bytes));
    let plan = must(plan(&view, 500, &table, 1_000));
    assert_eq!(plan.rewritten, None);
    assert_eq!(plan.duplicates, 0);
    assert_eq!(
        plan.new_ids,
        [(id_hash(b"id-1"), 500), (id_hash(b"id-2"), 502)]
    );
    // The plan changed nothing: the caller remembers ids once enqueued.
    assert!(table.is_empty());
}

#[test]
fn duplicates_become_markers_in_place_keeping_offsets_identity_and_the_rest() {
    let mut table = DedupTable::new(60_000, 10);
    table.insert(id_hash(b"seen"), 42, 1_000, 1_000);
    let bytes = batch(&[
        (Some("k1"), "new", Some("fresh")),
        (None, "again", Some("seen")),
        (Some("k3"), "plain", None),
        (None, "twice in one batch", Some("fresh")),
    ]);
    let view = must(BatchView::parse(&bytes));
    let plan = must(plan(&view, 500, &table, 2_000));
    assert_eq!(plan.duplicates, 2);
    assert_eq!(plan.new_ids, [(id_hash(b"fresh"), 500)]);
    let rewritten = plan.rewritten.unwrap_or_default();
    let out = must(BatchView::parse(&rewritten));
    let (h, old) = (out.header(), view.header());
    // Same record count and producer identity: offsets and sequences hold.
    assert_eq!(
        (
            h.record_count,
            h.producer_id,
            h.producer_epoch,
            h.base_sequence
        ),
        (4, 7, 1, 40)
    );
    assert_eq!(
        (h.first_timestamp_ms, h.max_timestamp_ms),
        (old.first_timestamp_ms, old.max_timestamp_ms)
    );
    assert!(rewritten.len() < bytes.len());
    let records: Vec<_> = out.records().collect();
    assert_eq!(records[0].value(), Some(&b"new"[..]));
    assert_eq!(records[0].key(), Some(&b"k1"[..]));
    assert!(!is_marker(&records[0]));
    assert!(is_marker(&records[1]));
    assert_eq!(
        records[1].headers().collect::<Vec<_>>(),
        [(DUPLICATE_OF_HEADER, &b"42"[..])]
    );
    assert_eq!(records[1].timestamp_ms(), 101);
    assert_eq!(records[2].value(), Some(&b"plain"[..]));
    assert_eq!(
        records[2].headers().collect::<Vec<_>>(),
        [("other", &b"x"[..])]
    );
    assert!(is_marker(&records[3]));
    assert_eq!(
        records[3].headers().collect::<Vec<_>>(),
        [(DUPLICATE_OF_HEADER, &b"500"[..])]
    );
}

#[test]
fn ids_leave_the_window_and_the_oldest_go_first_at_the_cap() {
    let mut table = DedupTable::new(1_000, 2);
    table.insert(id_hash(b"a"), 1, 0, 0);
    assert_eq!(table.lookup(id_hash(b"a"), 999), Some(1));
    assert_eq!(table.lookup(id_hash(b"a"), 1_000), None, "window over");
    table.insert(id_hash(b"b"), 2, 500, 500);
    table.insert(id_hash(b"c"), 3, 600, 600);
    assert_eq!(table.evicted(), 1, "a was evicted at the cap of 2");
    assert_eq!(table.lookup(id_hash(b"a"), 600), None);
    assert_eq!(table.lookup(id_hash(b"b"), 600), Some(2));
    // Past b's window, inserting expires it rather than evicting c.
    table.insert(id_hash(b"d"), 4, 1_550, 1_550);
    assert_eq!(table.evicted(), 1);
    assert_eq!(table.len(), 2);
    assert_eq!(table.lookup(id_hash(b"c"), 1_550), Some(3));
    assert_eq!(table.lookup(id_hash(b"d"), 1_550), Some(4));
}

/// A record's key, value and headers, and whether it is a marker.
type MarkerCase<'a> = (
    Option<&'a [u8]>,
    Option<&'a [u8]>,
    &'a [(&'a str, &'a [u8])],
    bool,
);

#[test]
fn a_marker_needs_no_key_no_value_and_the_header() {
    let cases: [MarkerCase<'_>; 4] = [
        (None, None, &[(DUPLICATE_OF_HEADER, b"3")], true),
        // A tombstone without the header.
        (None, None, &[("other", b"3")], false),
        // The header on a message with a value, or with a key.
        (None, Some(b"v"), &[(DUPLICATE_OF_HEADER, b"3")], false),
        (Some(b"k"), None, &[(DUPLICATE_OF_HEADER, b"3")], false),
    ];
    for (key, value, headers, marker) in cases {
        let mut b = BatchBuilder::new();
        must(b.push(Record {
            timestamp_ms: 1,
            key,
            value,
            headers,
        }));
        let bytes = must(b.finish());
        let view = must(BatchView::parse(&bytes));
        let record = view.records().next().unwrap_or_else(|| panic!("a record"));
        assert_eq!(is_marker(&record), marker, "{key:?} {value:?} {headers:?}");
    }
}

#[test]
fn the_fuzz_entry_takes_every_prefix_and_garbage_without_panicking() {
    let bytes = batch(&[
        (None, "x", Some("a")),
        (None, "y", Some("z")),
        (None, "w", Some("z")),
    ]);
    for end in 0..=bytes.len() {
        crate::fuzzing::dedup_plan(&bytes[..end]);
    }
    let mut garbage = bytes.clone();
    for b in garbage.iter_mut().skip(64) {
        *b ^= 0x5a;
    }
    crate::fuzzing::dedup_plan(&garbage);
    crate::fuzzing::dedup_plan(&[0xff; 300]);
}

#[test]
fn an_empty_message_id_names_nothing() {
    let mut table = DedupTable::new(60_000, 10);
    table.insert(id_hash(b""), 1, 0, 0);
    let bytes = batch(&[(None, "a", Some("")), (None, "b", Some(""))]);
    let view = must(BatchView::parse(&bytes));
    let plan = must(plan(&view, 5, &table, 10));
    assert_eq!(plan, Plan::default());
}
