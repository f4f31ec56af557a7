//! Message-id deduplication's batch rewrite on arbitrary bytes: never a
//! panic, and a rewritten batch keeps its records' count and offsets.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tidegate_queue::fuzzing::dedup_plan(data);
});
