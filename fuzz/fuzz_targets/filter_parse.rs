//! Feeds arbitrary text to the subscription filter parser. Parsing must
//! never panic and must point inside the text when it fails; a filter that
//! parses must evaluate against any headers, and its canonical printing
//! must parse back to a filter that prints the same and matches the same
//! headers.
//!
//! Run: `cargo fuzz run filter_parse` (nightly, or `RUSTC_BOOTSTRAP=1`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tidegate_proto::filter::{Filter, FilterErrorKind};

/// Headers with repeats, numbers, non-UTF-8 bytes, escapes and empty names.
const HEADER_SETS: &[&[(&str, &[u8])]] = &[
    &[],
    &[("a", b"1"), ("b", b"x")],
    &[("a", b"-2.5"), ("a", b"1.0"), ("type", b"order"), ("", b"")],
    &[("b", b"x\"y\\"), ("c", b"sensors/t"), ("and", b"\xff"), ("a", b"10")],
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let filter = match Filter::parse(text) {
        Ok(filter) => filter,
        Err(e) => {
            assert!(e.position <= text.len(), "{e} for a text of {} bytes", text.len());
            return;
        }
    };
    let canonical = filter.to_string();
    match Filter::parse(&canonical) {
        Ok(again) => {
            assert_eq!(again.to_string(), canonical);
            for headers in HEADER_SETS {
                let want = filter.matches(headers.iter().copied());
                assert_eq!(again.matches(headers.iter().copied()), want, "{canonical:?}");
            }
        }
        // Normalised spacing can make the canonical text longer than a
        // terse source; nothing else may fail.
        Err(e) => assert!(
            matches!(e.kind, FilterErrorKind::TooLong { .. }),
            "{canonical:?} does not parse: {e}"
        ),
    }
});
