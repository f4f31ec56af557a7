//! What each predicate and operator means, true and false.

use super::*;
use crate::batch::{BatchBuilder, BatchView, Record};

#[test]
fn string_equality_compares_value_bytes() {
    assert!(matches(r#"type = "order""#, &[("type", "order")]));
    assert!(!matches(r#"type = "order""#, &[("type", "Order")]));
    assert!(!matches(r#"type = "order""#, &[("type", "order ")]));
    assert!(!matches(r#"type = "order""#, &[("kind", "order")]));
    assert!(matches(r#"type = """#, &[("type", "")]));
}

#[test]
fn string_equality_does_not_read_numbers() {
    assert!(!matches(r#"n = "1""#, &[("n", "1.0")]));
    assert!(matches(r#"n = "1.0""#, &[("n", "1.0")]));
}

#[test]
fn number_equality_compares_as_decimals() {
    assert!(matches("n = 1", &[("n", "1.0")]));
    assert!(matches("n = 1.50", &[("n", "1.5")]));
    assert!(matches("n = 0", &[("n", "-0")]));
    assert!(matches("n = -3", &[("n", "-3")]));
    assert!(!matches("n = 1", &[("n", "2")]));
}

#[test]
fn header_values_outside_the_decimal_grammar_are_not_numbers() {
    for value in [
        "1e0", "+1", " 1", "1 ", "0x1", "inf", "NaN", "1.", ".5", "one", "",
    ] {
        assert!(!matches("n = 1", &[("n", value)]), "{value:?}");
        assert!(!matches("n >= -1000", &[("n", value)]), "{value:?}");
        assert!(
            !matches("n BETWEEN -1000 AND 1000", &[("n", value)]),
            "{value:?}"
        );
    }
    let huge = format!("1{}", "0".repeat(400));
    assert!(!matches("n > 0", &[("n", &huge)]), "overflows to infinity");
}

#[test]
fn non_utf8_values_are_not_numbers_but_compare_as_bytes() {
    let f = parse(r#"n > 0 OR p = "x""#);
    assert!(!f.matches([("n", &[0xff, b'1'][..])]));
    assert!(f.matches([("p", &b"x"[..])]));
    assert!(parse("prefix(b, \"\u{e9}\")").matches([("b", "\u{e9}t\u{e9}".as_bytes())]));
}

#[test]
fn comparisons_hold_on_their_side_of_the_bound() {
    let cases = [
        ("n < 5", [true, false, false]),
        ("n <= 5", [true, true, false]),
        ("n > 5", [false, false, true]),
        ("n >= 5", [false, true, true]),
    ];
    for (filter, expected) in cases {
        for (value, want) in ["4.99", "5", "5.01"].into_iter().zip(expected) {
            assert_eq!(
                matches(filter, &[("n", value)]),
                want,
                "{filter} with n = {value}"
            );
        }
    }
}

#[test]
fn between_is_inclusive_at_both_ends() {
    let f = "n BETWEEN -1.5 AND 10";
    assert!(matches(f, &[("n", "-1.5")]));
    assert!(matches(f, &[("n", "10")]));
    assert!(matches(f, &[("n", "3")]));
    assert!(!matches(f, &[("n", "-1.6")]));
    assert!(!matches(f, &[("n", "10.0001")]));
}

#[test]
fn between_with_bounds_reversed_matches_nothing() {
    assert!(!matches("n BETWEEN 10 AND 1", &[("n", "5")]));
}

#[test]
fn in_is_the_or_of_equalities() {
    let f = r#"region IN ("eu", "us", 7)"#;
    assert!(matches(f, &[("region", "eu")]));
    assert!(matches(f, &[("region", "us")]));
    assert!(matches(f, &[("region", "7.0")]));
    assert!(!matches(f, &[("region", "apac")]));
    assert!(!matches(f, &[]));
}

#[test]
fn exists_holds_for_any_value_even_empty() {
    assert!(matches("exists(trace)", &[("trace", "")]));
    assert!(!matches("exists(trace)", &[("Trace", "x")]));
    assert!(!matches("exists(trace)", &[]));
    assert!(matches("NOT exists(trace)", &[("other", "x")]));
    assert!(!matches("NOT exists(trace)", &[("trace", "x")]));
}

#[test]
fn prefix_compares_leading_bytes() {
    let f = r#"prefix(source, "sensors/")"#;
    assert!(matches(f, &[("source", "sensors/temp")]));
    assert!(matches(f, &[("source", "sensors/")]));
    assert!(!matches(f, &[("source", "sensors")]));
    assert!(!matches(f, &[("source", "x/sensors/")]));
    assert!(matches(r#"prefix(source, "")"#, &[("source", "anything")]));
    assert!(!matches(r#"prefix(source, "")"#, &[]));
}

#[test]
fn any_repeated_header_can_satisfy_a_predicate() {
    let headers = [("tag", "a"), ("tag", "b"), ("n", "x"), ("n", "7")];
    assert!(matches(r#"tag = "b""#, &headers));
    assert!(matches(r#"tag = "a" AND tag = "b""#, &headers));
    assert!(
        matches("n > 5", &headers),
        "the non-number value is skipped"
    );
    assert!(matches(r#"prefix(tag, "b")"#, &headers));
}

#[test]
fn not_equal_is_not_of_equal_even_with_repeats() {
    let headers = [("tag", "a"), ("tag", "b")];
    assert!(!matches(r#"tag != "a""#, &headers), "some tag is a");
    assert!(matches(r#"tag != "c""#, &headers));
    assert!(matches("n != 1", &[("n", "2")]));
    assert!(!matches("n != 1", &[("n", "1.0")]));
}

#[test]
fn not_equal_holds_when_the_header_is_absent() {
    assert!(matches(r#"type != "order""#, &[]));
    assert!(matches("n != 1", &[("m", "1")]));
}

#[test]
fn header_names_match_exactly_and_case_sensitively() {
    assert!(!matches(r#"Type = "x""#, &[("type", "x")]));
    assert!(!matches(r#"type = "x""#, &[("type ", "x")]));
    assert!(matches(r#""my header" = "x""#, &[("my header", "x")]));
}

#[test]
fn not_binds_tighter_than_and_which_binds_tighter_than_or() {
    // a OR (b AND (NOT c))
    let f = "a = 1 OR b = 1 AND NOT c = 1";
    assert!(matches(f, &[("a", "1"), ("c", "1")]));
    assert!(matches(f, &[("b", "1")]));
    assert!(!matches(f, &[("b", "1"), ("c", "1")]));
    assert!(!matches(f, &[]));
}

#[test]
fn parentheses_override_precedence() {
    let f = "(a = 1 OR b = 1) AND NOT (c = 1 AND d = 1)";
    assert!(!matches(f, &[("a", "1"), ("c", "1"), ("d", "1")]));
    assert!(matches(f, &[("a", "1"), ("c", "1")]));
    assert!(!matches(f, &[("c", "1")]));
    assert!(matches("NOT (a = 1) OR b = 1", &[]));
}

#[test]
fn and_or_chains_short_circuit_to_the_right_answer() {
    let f = "a = 1 AND b = 1 AND c = 1 OR d = 1 OR e = 1";
    assert!(matches(f, &[("a", "1"), ("b", "1"), ("c", "1")]));
    assert!(!matches(f, &[("a", "1"), ("b", "1")]));
    assert!(matches(f, &[("e", "1")]));
    assert!(matches(f, &[("a", "1"), ("d", "1")]));
}

#[test]
fn double_not_cancels() {
    assert!(matches("NOT NOT a = 1", &[("a", "1")]));
    assert!(!matches("NOT NOT a = 1", &[]));
}

#[test]
fn keywords_are_case_insensitive() {
    let f = r#"not a = 1 aNd b iN (1) Or c between 1 and 2 OR EXISTS(d) or PREFIX(e, "x")"#;
    assert!(matches(f, &[("b", "1")]));
    assert!(matches(f, &[("c", "1.5")]));
    assert!(matches(f, &[("d", "")]));
    assert!(matches(f, &[("e", "xy")]));
    assert!(!matches(f, &[("a", "1"), ("b", "1")]));
}

#[test]
fn quoted_names_allow_keywords_and_any_characters() {
    assert!(matches(r#""and" = 1"#, &[("and", "1")]));
    assert!(matches(r#"exists("exists")"#, &[("exists", "")]));
    assert!(matches(r#""x-y z\"" = "v""#, &[("x-y z\"", "v")]));
    assert!(matches(r#""" = "v""#, &[("", "v")]));
}

#[test]
fn bare_names_take_digits_dashes_dots_and_slashes() {
    assert!(matches("_a-b.c/d9 = 1", &[("_a-b.c/d9", "1")]));
}

#[test]
fn escapes_resolve_to_quote_and_backslash() {
    assert!(matches(
        r#"p = "say \"hi\" \\o/""#,
        &[("p", r#"say "hi" \o/"#)]
    ));
    assert!(matches(
        "p = \"line\nbreak\ttab \u{1F30A}\"",
        &[("p", "line\nbreak\ttab \u{1F30A}")]
    ));
}

#[test]
fn whitespace_is_optional_between_tokens_that_cannot_merge() {
    assert!(matches("(a=1)AND(b<=2)", &[("a", "1"), ("b", "2")]));
    assert!(matches("\ta\n!=\t\"x\"\n", &[]));
    assert!(matches("a IN(1,2)", &[("a", "2")]));
}

#[test]
fn a_record_is_matched_on_its_headers() {
    let mut builder = BatchBuilder::new();
    let headers: &[(&str, &[u8])] = &[("type", b"order"), ("amount", b"120")];
    let record = Record {
        timestamp_ms: 1,
        key: None,
        value: Some(b"v"),
        headers,
    };
    builder
        .push(record)
        .unwrap_or_else(|e| panic!("push failed: {e}"));
    let bytes = builder
        .finish()
        .unwrap_or_else(|e| panic!("finish failed: {e}"));
    let batch = BatchView::parse(&bytes).unwrap_or_else(|e| panic!("parse failed: {e}"));
    let mut records = batch.records();
    let Some(record) = records.next() else {
        panic!("the batch has no record");
    };
    assert!(parse(r#"type = "order" AND amount > 100"#).matches_record(&record));
    assert!(!parse("amount > 200").matches_record(&record));
}

#[test]
fn as_str_keeps_the_source_text() {
    let text = "  a=1 and b = \"x\" ";
    assert_eq!(parse(text).as_str(), text);
}

#[test]
fn from_str_is_parse() {
    let parsed: Filter = "a = 1"
        .parse()
        .unwrap_or_else(|e: FilterError| panic!("{e}"));
    assert_eq!(parsed, parse("a = 1"));
    assert!("a =".parse::<Filter>().is_err());
}
