//! Tests of the filter language through [`Filter`], plus property tests
//! against a reference evaluator written straight from the semantics.

mod canonical;
mod errors;
mod props;
mod semantics;

use super::{Filter, FilterError, FilterErrorKind};

fn parse(text: &str) -> Filter {
    Filter::parse(text).unwrap_or_else(|e| panic!("{text:?} does not parse: {e}"))
}

fn parse_err(text: &str) -> FilterError {
    match Filter::parse(text) {
        Ok(f) => panic!("{text:?} parsed as {f}, expected an error"),
        Err(e) => e,
    }
}

/// Asserts that `text` fails with `kind` at byte `position`.
#[track_caller]
fn assert_error(text: &str, position: usize, kind: FilterErrorKind) {
    assert_eq!(
        parse_err(text),
        FilterError { position, kind },
        "filter {text:?}"
    );
}

/// Whether `filter` matches headers given as text.
fn matches(filter: &str, headers: &[(&str, &str)]) -> bool {
    parse(filter).matches(headers.iter().map(|(n, v)| (*n, v.as_bytes())))
}
