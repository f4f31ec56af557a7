//! The worked example of docs/PROTOCOL.md, byte for byte: a Produce of the
//! batch of docs/FORMAT.md's worked example, and its response.

use super::*;

/// The Produce request as printed in docs/PROTOCOL.md, 16 bytes a line.
const REQUEST_HEX: &str = "\
54 47 01 05 64 00 00 00 06 00 6f 72 64 65 72 73
00 02 00 00 00 02 52 00 00 00 00 00 00 00 00 00
00 00 61 cb dc e2 52 00 00 00 54 47 42 31 01 00
00 00 01 00 00 00 00 00 00 00 00 68 e5 cf 8b 01
00 00 00 68 e5 cf 8b 01 00 00 07 00 00 00 00 00
00 00 00 00 00 00 00 00 00 00 11 00 00 00 02 6b
04 68 69 01 02 63 74 04 6a 73 6f 6e";

/// Its response as printed in docs/PROTOCOL.md.
const RESPONSE_HEX: &str = "\
54 47 01 85 16 00 00 00 00 00 00 00 00 00 00 00
01 00 00 00 00 00 05 00 00 00 00 00 00 00";

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

/// The batch of docs/FORMAT.md's worked example, as the producer sends it
/// (base offset 0; the server writes 5 on append).
fn format_doc_batch() -> Vec<u8> {
    let mut b = BatchBuilder::new().producer(7, 0, 0);
    let headers: &[(&str, &[u8])] = &[("ct", b"json")];
    must(b.push(Record {
        timestamp_ms: 1_700_000_000_000,
        key: Some(b"k"),
        value: Some(b"hi"),
        headers,
    }));
    must(b.finish())
}

#[test]
fn worked_example_matches_protocol_doc() {
    let batch = format_doc_batch();
    let request = Request::Produce(ProduceRequest {
        topic: "orders",
        target: ProduceTarget::Partition(2),
        ack: AckLevel::Durable,
        batches: &batch,
    });
    let wire = encode_request(&request);
    assert_eq!(to_hex(&wire), REQUEST_HEX);
    assert_eq!(must(decode_request(&wire)), request);

    let response = Response::Produce(ProduceResponse {
        throttle_ms: 0,
        results: vec![Ok(5)],
    });
    let wire = encode_response(&response);
    assert_eq!(to_hex(&wire), RESPONSE_HEX);
    assert_eq!(must(decode_response(&wire)), response);
}

#[test]
fn protocol_doc_contains_the_worked_example() {
    let doc = include_str!("../../../../docs/PROTOCOL.md");
    assert!(
        doc.contains(REQUEST_HEX),
        "docs/PROTOCOL.md must show REQUEST_HEX verbatim"
    );
    assert!(
        doc.contains(RESPONSE_HEX),
        "docs/PROTOCOL.md must show RESPONSE_HEX verbatim"
    );
}
