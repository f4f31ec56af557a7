//! The worked example of docs/FORMAT.md, byte for byte.

use super::*;
use crate::batch::set_base_offset;

/// The batch as printed in docs/FORMAT.md, 16 bytes a line.
const EXPECTED_HEX: &str = "\
05 00 00 00 00 00 00 00 61 cb dc e2 52 00 00 00
54 47 42 31 01 00 00 00 01 00 00 00 00 00 00 00
00 68 e5 cf 8b 01 00 00 00 68 e5 cf 8b 01 00 00
07 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
11 00 00 00 02 6b 04 68 69 01 02 63 74 04 6a 73
6f 6e";

fn to_hex(bytes: &[u8]) -> String {
    let lines: Vec<String> = bytes
        .chunks(16)
        .map(|line| {
            line.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    lines.join("\n")
}

#[test]
fn worked_example_matches_format_doc() {
    let mut b = BatchBuilder::new().producer(7, 0, 0);
    let headers: &[(&str, &[u8])] = &[("ct", b"json")];
    push(
        &mut b,
        Record {
            timestamp_ms: 1_700_000_000_000,
            key: Some(b"k"),
            value: Some(b"hi"),
            headers,
        },
    );
    let mut bytes = finish(b);
    set_base_offset(&mut bytes, 5).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(to_hex(&bytes), EXPECTED_HEX);
}

#[test]
fn format_doc_contains_the_worked_example() {
    let doc = include_str!("../../../../docs/FORMAT.md");
    assert!(
        doc.contains(EXPECTED_HEX),
        "docs/FORMAT.md must show EXPECTED_HEX verbatim"
    );
}
