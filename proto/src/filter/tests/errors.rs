//! Every error kind, at its exact byte position, and every limit.

use super::*;
use crate::filter::{
    MAX_FILTER_BYTES, MAX_FILTER_DEPTH, MAX_FILTER_PREDICATES, MAX_FILTER_STRING_BYTES,
};
use FilterErrorKind as K;

fn token(expected: &'static str, found: &'static str) -> FilterErrorKind {
    K::UnexpectedToken { expected, found }
}

fn end(expected: &'static str) -> FilterErrorKind {
    K::UnexpectedEnd { expected }
}

#[test]
fn empty_and_blank_filters_are_rejected() {
    assert_error("", 0, K::Empty);
    assert_error(" \t\n ", 0, K::Empty);
}

#[test]
fn text_over_the_byte_limit_is_rejected_before_lexing() {
    let ok = format!("a = 1{}", " ".repeat(MAX_FILTER_BYTES - 5));
    assert_eq!(ok.len(), MAX_FILTER_BYTES);
    parse(&ok);
    let long = format!("{ok} ");
    assert_error(&long, MAX_FILTER_BYTES, K::TooLong { len: 4097 });
    let garbage = "\u{0}".repeat(100_000);
    assert_error(&garbage, MAX_FILTER_BYTES, K::TooLong { len: 100_000 });
}

#[test]
fn parentheses_deeper_than_the_limit_are_rejected_at_the_one_over() {
    let at_limit = format!("{}a = 1{}", "(".repeat(32), ")".repeat(32));
    assert!(parse(&at_limit).matches([("a", &b"1"[..])]));
    let over = format!("{}a = 1{}", "(".repeat(33), ")".repeat(33));
    assert_error(&over, MAX_FILTER_DEPTH, K::TooDeep);
}

#[test]
fn ten_thousand_open_parentheses_are_a_typed_error() {
    let text = "(".repeat(10_000);
    let e = Filter::parse(&text[..MAX_FILTER_BYTES]);
    assert_eq!(
        e,
        Err(FilterError {
            position: 32,
            kind: K::TooDeep
        })
    );
    assert_error(&text, MAX_FILTER_BYTES, K::TooLong { len: 10_000 });
}

#[test]
fn not_chains_deeper_than_the_limit_are_rejected_at_the_one_over() {
    let at_limit = format!("{}a = 1", "NOT ".repeat(32));
    assert!(
        parse(&at_limit).matches([("a", &b"1"[..])]),
        "an even count cancels"
    );
    let over = format!("{}a = 1", "NOT ".repeat(33));
    assert_error(&over, 32 * 4, K::TooDeep);
    let huge = "NOT ".repeat(10_000);
    assert_error(&huge[..MAX_FILTER_BYTES], 32 * 4, K::TooDeep);
    assert_error(&huge, MAX_FILTER_BYTES, K::TooLong { len: 40_000 });
}

#[test]
fn parentheses_and_nots_count_toward_the_same_depth() {
    let at_limit = format!("{}a = 1{}", "NOT (".repeat(16), ")".repeat(16));
    parse(&at_limit);
    let over = format!("{}NOT a = 1{}", "NOT (".repeat(16), ")".repeat(16));
    assert_error(&over, 16 * 5, K::TooDeep);
}

#[test]
fn depth_is_released_when_a_group_closes() {
    let group = format!("{}a = 1{}", "(".repeat(32), ")".repeat(32));
    parse(&format!("{group} AND {group} OR NOT {}", "b = 1"));
}

#[test]
fn predicates_over_the_limit_are_rejected_at_the_one_over() {
    let at_limit = vec!["a = 1"; MAX_FILTER_PREDICATES].join(" OR ");
    parse(&at_limit);
    let over = vec!["a = 1"; MAX_FILTER_PREDICATES + 1].join(" OR ");
    assert_error(&over, 64 * 9, K::TooManyPredicates);
}

#[test]
fn in_values_count_as_predicates() {
    let values = |n: usize| vec!["1"; n].join(",");
    parse(&format!("a IN ({})", values(64)));
    assert_error(
        &format!("a IN ({})", values(65)),
        6 + 64 * 2,
        K::TooManyPredicates,
    );
    assert_error(
        &format!("b = 1 OR a IN ({})", values(64)),
        15 + 63 * 2,
        K::TooManyPredicates,
    );
}

#[test]
fn functions_count_as_predicates() {
    let over = format!("{} OR exists(b)", vec!["a = 1"; 64].join(" OR "));
    assert_error(&over, 64 * 9, K::TooManyPredicates);
}

#[test]
fn strings_over_the_limit_are_rejected_at_their_opening_quote() {
    let max = MAX_FILTER_STRING_BYTES;
    parse(&format!(r#"a = "{}""#, "x".repeat(max)));
    parse(&format!(r#"a = "{}""#, r#"\""#.repeat(max)));
    assert_error(
        &format!(r#"a = "{}""#, "x".repeat(max + 1)),
        4,
        K::StringTooLong,
    );
    assert_error(
        &format!(r#"a = "{}x""#, r#"\\"#.repeat(max)),
        4,
        K::StringTooLong,
    );
    assert_error(
        &format!(r#""{}" = 1"#, "n".repeat(max + 1)),
        0,
        K::StringTooLong,
    );
    assert_error(
        &format!(r#"a = "{}"#, "x".repeat(max + 1)),
        4,
        K::StringTooLong,
    );
}

#[test]
fn unterminated_strings_are_reported_at_their_opening_quote() {
    assert_error(r#"a = "abc"#, 4, K::UnterminatedString);
    assert_error(r#"a = "abc\"#, 4, K::UnterminatedString);
    assert_error(r#"a = "abc\""#, 4, K::UnterminatedString);
    assert_error(r#"a = 1 OR "b"#, 9, K::UnterminatedString);
}

#[test]
fn only_quote_and_backslash_escapes_exist() {
    assert_error(r#"a = "x\n""#, 6, K::BadEscape);
    assert_error(r#"a = "\u0041""#, 5, K::BadEscape);
    assert_error(r#"a = "\'""#, 5, K::BadEscape);
}

#[test]
fn malformed_numbers_are_reported_at_their_first_byte() {
    for bad in ["1.", "-", "-x", "-.5", "12px", "1.2.3", "1-2", "1_000"] {
        assert_error(&format!("a = {bad}"), 4, K::BadNumber);
    }
    assert_error(&format!("a < 1{}", "0".repeat(400)), 4, K::BadNumber);
    assert_error("a BETWEEN 1 AND 2x", 16, K::BadNumber);
    assert_error("a=1AND b=2", 2, K::BadNumber);
}

#[test]
fn characters_that_start_no_token_are_reported() {
    assert_error("a = 'x'", 4, K::UnexpectedChar('\''));
    assert_error("a ! b", 2, K::UnexpectedChar('!'));
    assert_error("a = .5", 4, K::UnexpectedChar('.'));
    assert_error("a = 1 && b = 2", 6, K::UnexpectedChar('&'));
    assert_error("a = 1\r\n", 5, K::UnexpectedChar('\r'));
    assert_error("\u{e9}t\u{e9} = 1", 0, K::UnexpectedChar('\u{e9}'));
    assert_error("a = 1 OR \u{1F30A}", 9, K::UnexpectedChar('\u{1F30A}'));
}

#[test]
fn garbage_bytes_are_rejected_at_the_first_one() {
    for garbage in [
        &[0u8, 1, 2][..],
        &[0xff, 0xfe],
        &[0x7f],
        b"\x1b[31m",
        b"{}[]",
    ] {
        let text = String::from_utf8_lossy(garbage);
        let e = parse_err(&text);
        assert_eq!(e.position, 0, "{text:?}");
        assert!(matches!(e.kind, K::UnexpectedChar(_)), "{text:?}: {e}");
    }
}

#[test]
fn a_doubled_equals_sign_is_reported_at_the_second_one() {
    assert_error("a == 1", 3, token(r#"a value after "=""#, r#""=""#));
}

#[test]
fn tokens_out_of_place_name_what_was_expected() {
    assert_error(r#"a < "x""#, 4, token(r#"a number after "<""#, "a string"));
    assert_error("a >= b", 5, token(r#"a number after ">=""#, "a name"));
    assert_error(
        "a x",
        2,
        token("=, !=, <, <=, >, >=, BETWEEN or IN after a name", "a name"),
    );
    assert_error(
        "a = 1 AND OR b = 1",
        10,
        token(r#"a predicate, "(" or NOT"#, "OR"),
    );
    assert_error("()", 1, token(r#"a predicate, "(" or NOT"#, r#"")""#));
    assert_error("(a = 1 b = 2)", 7, token(r#"AND, OR or ")""#, "a name"));
    assert_error("a IN 1", 5, token(r#""(" after IN"#, "a number"));
    assert_error("a IN ()", 6, token("a value in the IN list", r#"")""#));
    assert_error(
        "a IN (1 2)",
        8,
        token(r#""," or ")" in the IN list"#, "a number"),
    );
    assert_error("a IN (1,)", 8, token("a value in the IN list", r#"")""#));
    assert_error(
        "a BETWEEN 1 OR 2",
        12,
        token("AND after BETWEEN's lower bound", "OR"),
    );
    assert_error(
        r#"a BETWEEN "1" AND 2"#,
        10,
        token("a number after BETWEEN", "a string"),
    );
    assert_error("exists a", 7, token(r#""(" after exists"#, "a name"));
    assert_error("exists(1)", 7, token("a header name", "a number"));
    assert_error("exists(a, b)", 8, token(r#"")""#, r#"",""#));
    assert_error(
        r#"prefix(a "x")"#,
        9,
        token(r#""," after the header name"#, "a string"),
    );
    assert_error(
        "prefix(a, 1)",
        10,
        token("a string (the prefix)", "a number"),
    );
    assert_error("1 = a", 0, token(r#"a predicate, "(" or NOT"#, "a number"));
}

#[test]
fn truncated_filters_report_the_end_and_what_was_expected() {
    assert_error("a = ", 4, end(r#"a value after "=""#));
    assert_error(
        "a",
        1,
        end("=, !=, <, <=, >, >=, BETWEEN or IN after a name"),
    );
    assert_error("(a = 1", 6, end(r#"AND, OR or ")""#));
    assert_error("a IN (1,", 8, end("a value in the IN list"));
    assert_error("a IN (1", 7, end(r#""," or ")" in the IN list"#));
    assert_error("NOT", 3, end(r#"a predicate, "(" or NOT"#));
    assert_error("a = 1 AND ", 10, end(r#"a predicate, "(" or NOT"#));
    assert_error("a BETWEEN 1", 11, end("AND after BETWEEN's lower bound"));
    assert_error("a BETWEEN 1 AND", 15, end("a number after BETWEEN ... AND"));
    assert_error("exists(", 7, end("a header name"));
    assert_error("prefix(a, \"p\"", 13, end(r#"")""#));
}

#[test]
fn every_prefix_of_a_valid_filter_fails_cleanly_or_parses() {
    let text = "NOT (a = \"x\\\"y\" OR b IN (1, -2.5)) AND c BETWEEN 1 AND 2 OR prefix(\"d e\", \"\u{e9}\") AND NOT exists(f) AND g != 3";
    parse(text);
    for (cut, _) in text.char_indices() {
        if let Err(e) = Filter::parse(&text[..cut]) {
            assert!(e.position <= cut, "{e} for {:?}", &text[..cut]);
        }
    }
}

#[test]
fn text_after_a_complete_filter_is_rejected() {
    assert_error("a = 1 b = 2", 6, K::TrailingInput { found: "a name" });
    assert_error("a = 1)", 5, K::TrailingInput { found: r#"")""# });
    assert_error("a = 1 NOT b = 2", 6, K::TrailingInput { found: "NOT" });
}

#[test]
fn keywords_where_names_belong_ask_for_quotes() {
    let kw = |keyword| K::KeywordAsName { keyword };
    assert_error("and = 1", 0, kw("AND"));
    assert_error("Not = 1", 0, kw("NOT"));
    assert_error("NOT IN (1)", 0, kw("NOT"));
    assert_error("in IN (1)", 0, kw("IN"));
    assert_error("exists = 1", 0, kw("exists"));
    assert_error("prefix != \"x\"", 0, kw("prefix"));
    assert_error("a = 1 AND between < 2", 10, kw("BETWEEN"));
    assert_error("exists(or)", 7, kw("OR"));
    assert_error("prefix(AND, \"x\")", 7, kw("AND"));
}

#[test]
fn the_first_error_in_text_order_wins() {
    assert_error("a = 1 \"unterminated", 6, K::UnterminatedString);
    assert_error("a == \"x\\q\"", 3, token(r#"a value after "=""#, r#""=""#));
}

#[test]
fn errors_display_their_position_and_cause() {
    let cases = [
        (
            "a = ",
            r#"at byte 4: expected a value after "=", found the end of the filter"#,
        ),
        ("", "at byte 0: empty filter"),
        (
            "a >",
            r#"at byte 3: expected a number after ">", found the end of the filter"#,
        ),
        (
            "and = 1",
            r#"at byte 0: AND is a keyword: quote it ("AND") to use it as a header name"#,
        ),
        (
            "a = 1 )",
            r#"at byte 6: expected AND, OR or the end of the filter, found ")""#,
        ),
        (
            "or = 1",
            r#"at byte 0: OR is a keyword: quote it ("OR") to use it as a header name"#,
        ),
        (
            "a = \"\\n\"",
            r#"at byte 5: bad escape: only \" and \\ are allowed in a string"#,
        ),
        ("a = 1 & b", "at byte 6: unexpected character '&'"),
    ];
    for (text, message) in cases {
        assert_eq!(parse_err(text).to_string(), message);
    }
}
