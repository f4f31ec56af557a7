//! Property tests: parsing never panics; a random tree printed
//! canonically parses back to itself and the compiled filter agrees with a
//! reference evaluator written from the semantics; De Morgan holds.

use proptest::collection::vec;
use proptest::prelude::*;

use super::*;
use crate::filter::ast::{Comparison, Expr, Predicate, Test, Value};
use crate::filter::{MAX_FILTER_BYTES, MAX_FILTER_PREDICATES};

type Headers = Vec<(String, Vec<u8>)>;

// Small pools, shared by filters and headers, so predicates often meet
// headers they name; some names need quoting, some values are numbers.
const NAMES: &[&str] = &["a", "b", "x-y.z", "and", "with space", "q\"uote\\", ""];
const STRINGS: &[&str] = &[
    "",
    "x",
    "xy",
    "1",
    "1.0",
    "-2.5",
    "a\"b",
    "\\",
    "\u{e9}t\u{e9}",
];

fn name() -> impl Strategy<Value = String> {
    prop::sample::select(NAMES).prop_map(str::to_owned)
}

fn string() -> impl Strategy<Value = String> {
    prop::sample::select(STRINGS).prop_map(str::to_owned)
}

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => (-8i32..8).prop_map(|n| f64::from(n) / 2.0),
        1 => any::<f64>().prop_filter("finite", |n| n.is_finite()),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        string().prop_map(Value::Str),
        number().prop_map(Value::Number)
    ]
}

fn comparison() -> impl Strategy<Value = Comparison> {
    prop::sample::select(
        &[
            Comparison::Lt,
            Comparison::Le,
            Comparison::Gt,
            Comparison::Ge,
        ][..],
    )
}

fn test() -> impl Strategy<Value = Test> {
    prop_oneof![
        value().prop_map(Test::Eq),
        value().prop_map(Test::Ne),
        (comparison(), number()).prop_map(|(op, n)| Test::Compare(op, n)),
        (number(), number()).prop_map(|(low, high)| Test::Between(low, high)),
        vec(value(), 1..4).prop_map(Test::In),
        Just(Test::Exists),
        string().prop_map(Test::Prefix),
    ]
}

fn expr() -> impl Strategy<Value = Expr> {
    let leaf = (name(), test()).prop_map(|(name, test)| Expr::Predicate(Predicate { name, test }));
    leaf.prop_recursive(5, 24, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
            vec(inner.clone(), 2..4).prop_map(Expr::all),
            vec(inner, 2..4).prop_map(Expr::any),
        ]
    })
}

fn headers() -> impl Strategy<Value = Headers> {
    let header_value = prop_oneof![
        3 => string().prop_map(String::into_bytes),
        2 => (-8i32..8).prop_map(|n| (f64::from(n) / 2.0).to_string().into_bytes()),
        1 => vec(any::<u8>(), 0..4),
    ];
    vec((name(), header_value), 0..6)
}

fn as_pairs(headers: &Headers) -> impl Iterator<Item = (&str, &[u8])> + Clone {
    headers.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
}

/// Predicates as the limit counts them.
fn predicate_count(expr: &Expr) -> usize {
    match expr {
        Expr::Predicate(Predicate {
            test: Test::In(values),
            ..
        }) => values.len(),
        Expr::Predicate(_) => 1,
        Expr::Not(inner) => predicate_count(inner),
        Expr::And(operands) | Expr::Or(operands) => operands.iter().map(predicate_count).sum(),
    }
}

/// The semantics of docs/FILTERS.md, evaluated the obvious way.
fn reference(expr: &Expr, headers: &Headers) -> bool {
    match expr {
        Expr::Predicate(p) => reference_predicate(p, headers),
        Expr::Not(inner) => !reference(inner, headers),
        Expr::And(operands) => operands.iter().all(|e| reference(e, headers)),
        Expr::Or(operands) => operands.iter().any(|e| reference(e, headers)),
    }
}

fn reference_predicate(p: &Predicate, headers: &Headers) -> bool {
    let values = || {
        headers
            .iter()
            .filter(|(n, _)| *n == p.name)
            .map(|(_, v)| v.as_slice())
    };
    let numbers = || values().filter_map(reference_number);
    match &p.test {
        Test::Eq(v) => values().any(|x| reference_equals(v, x)),
        Test::Ne(v) => !values().any(|x| reference_equals(v, x)),
        Test::Compare(Comparison::Lt, n) => numbers().any(|x| x < *n),
        Test::Compare(Comparison::Le, n) => numbers().any(|x| x <= *n),
        Test::Compare(Comparison::Gt, n) => numbers().any(|x| x > *n),
        Test::Compare(Comparison::Ge, n) => numbers().any(|x| x >= *n),
        Test::Between(low, high) => numbers().any(|x| *low <= x && x <= *high),
        Test::In(vs) => vs.iter().any(|v| values().any(|x| reference_equals(v, x))),
        Test::Exists => values().next().is_some(),
        Test::Prefix(prefix) => values().any(|x| x.starts_with(prefix.as_bytes())),
    }
}

fn reference_equals(v: &Value, x: &[u8]) -> bool {
    match v {
        Value::Str(s) => s.as_bytes() == x,
        Value::Number(n) => reference_number(x) == Some(*n),
    }
}

fn reference_number(x: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(x).ok()?;
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = match unsigned.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (unsigned, None),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || frac.is_some_and(|f| !digits(f)) {
        return None;
    }
    text.parse().ok().filter(|n: &f64| n.is_finite())
}

/// The canonical text of a random filter with a few tokens inserted or
/// bytes removed, so parsing gets deep before it fails (or succeeds).
fn mutated_filter() -> impl Strategy<Value = String> {
    let token = prop::sample::select(
        &[
            "(",
            ")",
            " NOT ",
            " AND ",
            " OR ",
            "a",
            "\"b c\"",
            "=",
            "!=",
            "<",
            ">=",
            "1",
            "-2.5",
            " IN ",
            " BETWEEN ",
            ",",
            "exists",
            "prefix",
            "\"",
            "\\",
            "!",
            "1.",
            "",
            "",
        ][..],
    );
    let edit = (any::<prop::sample::Index>(), token, prop::bool::ANY);
    (expr(), vec(edit, 0..3)).prop_map(|(expr, edits)| {
        let mut text = expr.to_string();
        for (at, token, delete) in edits {
            let boundaries: Vec<usize> = text
                .char_indices()
                .map(|(i, _)| i)
                .chain([text.len()])
                .collect();
            let i = boundaries[at.index(boundaries.len())];
            if delete && i < text.len() {
                text.remove(i);
            } else {
                text.insert_str(i, token);
            }
        }
        text
    })
}

/// Whatever parses prints canonically to text that parses to the same
/// tree and filters the same; whatever fails points inside the text.
fn check_any_text(text: &str, headers: &Headers) -> Result<(), TestCaseError> {
    match Filter::parse(text) {
        Ok(filter) => {
            let printed = filter.to_string();
            let reparsed = Filter::parse(&printed)
                .map_err(|e| TestCaseError::fail(format!("{printed:?}: {e}")))?;
            prop_assert_eq!(&reparsed.expr, &filter.expr);
            let want = reference(&filter.expr, headers);
            prop_assert_eq!(filter.matches(as_pairs(headers)), want);
            prop_assert_eq!(reparsed.matches(as_pairs(headers)), want);
        }
        Err(e) if text.len() > MAX_FILTER_BYTES => prop_assert_eq!(e.position, MAX_FILTER_BYTES),
        Err(e) => prop_assert!(e.position <= text.len(), "{} for {:?}", e, text),
    }
    Ok(())
}

proptest! {
    #[test]
    fn parse_never_panics_on_arbitrary_text(text in any::<String>(), headers in headers()) {
        check_any_text(&text, &headers)?;
    }

    #[test]
    fn parse_never_panics_on_mutated_filters(text in mutated_filter(), headers in headers()) {
        check_any_text(&text, &headers)?;
    }

    #[test]
    fn canonical_text_parses_back_to_the_same_tree(expr in expr(), headers in headers()) {
        let text = expr.to_string();
        prop_assume!(predicate_count(&expr) <= MAX_FILTER_PREDICATES);
        prop_assume!(text.len() <= MAX_FILTER_BYTES);
        let filter = Filter::parse(&text)
            .map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
        prop_assert_eq!(&filter.expr, &expr);
        prop_assert_eq!(filter.to_string(), text);
        prop_assert_eq!(filter.matches(as_pairs(&headers)), reference(&expr, &headers));
    }

    #[test]
    fn not_of_and_is_or_of_nots(a in expr(), b in expr(), headers in headers()) {
        let both = format!("NOT (({a}) AND ({b}))");
        let either = format!("NOT ({a}) OR NOT ({b})");
        prop_assume!(predicate_count(&a) + predicate_count(&b) <= MAX_FILTER_PREDICATES);
        prop_assume!(either.len() <= MAX_FILTER_BYTES);
        let both = Filter::parse(&both).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let either = Filter::parse(&either).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let want = !(reference(&a, &headers) && reference(&b, &headers));
        prop_assert_eq!(both.matches(as_pairs(&headers)), want);
        prop_assert_eq!(either.matches(as_pairs(&headers)), want);
    }
}
