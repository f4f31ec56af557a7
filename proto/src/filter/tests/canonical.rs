//! The canonical printing: normalised, minimal parentheses, parses back.

use super::*;

fn canonical(text: &str) -> String {
    parse(text).to_string()
}

#[test]
fn canonical_form_normalises_spacing_case_and_numbers() {
    assert_eq!(
        canonical("a=1.50 and b!=\"x\"OR c<=-0.0"),
        r#"a = 1.5 AND b != "x" OR c <= -0"#
    );
    assert_eq!(
        canonical("n between 007 and 1000000  OR  m In(1,\"two\")"),
        r#"n BETWEEN 7 AND 1000000 OR m IN (1, "two")"#
    );
    assert_eq!(
        canonical("EXISTS ( a ) and not Prefix(b,\"p\")"),
        r#"exists(a) AND NOT prefix(b, "p")"#
    );
}

#[test]
fn the_documented_example_prints_as_documented() {
    assert_eq!(
        canonical(r#"(a=1.50 and b!="x") or not (C In(1,"two") OR exists("and"))"#),
        r#"a = 1.5 AND b != "x" OR NOT (C IN (1, "two") OR exists("and"))"#
    );
}

#[test]
fn canonical_form_keeps_only_the_parentheses_precedence_needs() {
    assert_eq!(canonical("((a = 1))"), "a = 1");
    assert_eq!(
        canonical("(a = 1 AND b = 1) OR c = 1"),
        "a = 1 AND b = 1 OR c = 1"
    );
    assert_eq!(
        canonical("(a = 1 OR b = 1) AND c = 1"),
        "(a = 1 OR b = 1) AND c = 1"
    );
    assert_eq!(canonical("NOT (a = 1 AND b = 1)"), "NOT (a = 1 AND b = 1)");
    assert_eq!(canonical("NOT (NOT (a = 1))"), "NOT NOT a = 1");
    assert_eq!(
        canonical("a = 1 AND (b = 1 AND (c = 1 AND d = 1))"),
        "a = 1 AND b = 1 AND c = 1 AND d = 1"
    );
    assert_eq!(
        canonical("a = 1 OR (b = 1 OR c = 1)"),
        "a = 1 OR b = 1 OR c = 1"
    );
}

#[test]
fn canonical_form_quotes_names_that_need_it_and_escapes_strings() {
    assert_eq!(
        canonical(r#""and" = "say \"hi\" \\" AND "x y" = 1 AND "ok_name" = 2"#),
        r#""and" = "say \"hi\" \\" AND "x y" = 1 AND ok_name = 2"#
    );
    assert_eq!(
        canonical(r#""" = 1 AND "1a" = 2"#),
        r#""" = 1 AND "1a" = 2"#
    );
}

#[test]
fn canonical_form_is_a_fixed_point() {
    let texts = [
        "a = 1 OR b = 2 AND NOT (c = 3 OR d IN (\"x\", 4))",
        "NOT NOT (exists(a) OR prefix(\"b c\", \"\\\\\")) AND e BETWEEN -1 AND 0.001",
        "(((x > 1)))",
    ];
    for text in texts {
        let once = canonical(text);
        let filter = parse(&once);
        assert_eq!(filter.to_string(), once);
        assert_eq!(filter.expr, parse(text).expr);
    }
}

#[test]
fn canonical_form_is_never_deeper_than_its_source() {
    // Alternating AND/OR needs a parenthesis per OR-in-AND only; printing
    // every group would double the depth and break the limit.
    let mut text = String::from("z = 1");
    for _ in 0..16 {
        text = format!("a = 1 OR b = 1 AND ({text})");
    }
    let source = format!("NOT ({text})");
    let printed = canonical(&source);
    assert_eq!(parse(&printed).expr, parse(&source).expr);
}

#[test]
fn extreme_numbers_print_without_exponent() {
    let tiny = format!("0.{}5", "0".repeat(322));
    let f = parse(&format!("n >= {tiny}"));
    assert_eq!(parse(&f.to_string()).expr, f.expr);
    let huge = format!("1{}", "0".repeat(300));
    let f = parse(&format!("n <= {huge}"));
    assert_eq!(f.to_string(), format!("n <= {huge}"));
}
