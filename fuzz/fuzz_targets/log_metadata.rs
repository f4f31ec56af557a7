//! The partition log's own on-disk metadata decoders (segment header, index
//! checkpoint, producer snapshot) on arbitrary bytes: never a panic, and a
//! checkpoint or snapshot that decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tidegate_queue::fuzzing::segment_header(data);
    let _ = tidegate_queue::fuzzing::durable_file(data);
    tidegate_queue::fuzzing::index_checkpoint(data);
    tidegate_queue::fuzzing::producer_snapshot(data);
    tidegate_queue::fuzzing::cursor_event(data);
});
