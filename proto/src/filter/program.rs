//! The compiled form of a filter: a flat list of header checks, each
//! naming where to go when it holds and when it does not ("jumping code").
//!
//! Evaluation is one loop over that list: no recursion, no allocation,
//! every check run at most once, AND and OR short-circuiting. NOT costs
//! nothing at run time: it swaps the two exits of what it negates, and so
//! does `!=`, which compiles to `=` with its exits swapped.

use super::ast::{Comparison, Expr, Predicate, Test, Value};
use super::number::parse_decimal;

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Program {
    /// Never empty; every [`Next::Step`] points forward, so evaluation
    /// ends after at most `steps.len()` checks.
    steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
struct Step {
    /// The header name the check reads.
    name: Box<str>,
    check: Check,
    on_true: Next,
    on_false: Next,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Step(usize),
    Accept,
    Reject,
}

/// Holds when at least one value of the named header passes.
#[derive(Debug, Clone, PartialEq)]
enum Check {
    Exists,
    Equals(Box<[u8]>),
    Number(NumberTest),
    OneOf {
        bytes: Box<[Box<[u8]>]>,
        numbers: Box<[f64]>,
    },
    StartsWith(Box<[u8]>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum NumberTest {
    Eq(f64),
    Compare(Comparison, f64),
    Between(f64, f64),
}

impl Program {
    pub(super) fn compile(expr: &Expr) -> Self {
        let mut steps = Vec::with_capacity(expr.predicate_nodes());
        emit(expr, Next::Accept, Next::Reject, &mut steps);
        let program = Self { steps };
        program.assert_jumps_forward();
        program
    }

    /// Our invariant, not the input's: checked in release builds too, once
    /// per parse, because evaluation indexes by these jumps.
    fn assert_jumps_forward(&self) {
        assert!(!self.steps.is_empty(), "a filter compiles to no checks");
        for (at, step) in self.steps.iter().enumerate() {
            for next in [step.on_true, step.on_false] {
                if let Next::Step(to) = next {
                    assert!(at < to && to < self.steps.len(), "bad jump {at} -> {to}");
                }
            }
        }
    }

    pub(super) fn matches<'h, I>(&self, headers: I) -> bool
    where
        I: Iterator<Item = (&'h str, &'h [u8])> + Clone,
    {
        let mut at = 0;
        loop {
            let step = &self.steps[at];
            let values = headers
                .clone()
                .filter(|(name, _)| *name == &*step.name)
                .map(|(_, value)| value);
            let next = if step.check.holds_for_any(values) {
                step.on_true
            } else {
                step.on_false
            };
            match next {
                Next::Step(to) => at = to,
                Next::Accept => return true,
                Next::Reject => return false,
            }
        }
    }
}

/// Appends the steps of `expr`, whose outcome continues at `on_true` or
/// `on_false`. Recursion follows the tree, which the parser's depth limit
/// bounds.
fn emit(expr: &Expr, on_true: Next, on_false: Next, steps: &mut Vec<Step>) {
    match expr {
        Expr::Predicate(p) => steps.push(Step::new(p, on_true, on_false)),
        Expr::Not(inner) => emit(inner, on_false, on_true, steps),
        Expr::And(operands) => {
            // Each operand but the last goes on to the next when it holds.
            let mut rest = operands.iter().peekable();
            while let Some(operand) = rest.next() {
                let next = match rest.peek() {
                    Some(_) => Next::Step(steps.len() + operand.predicate_nodes()),
                    None => on_true,
                };
                emit(operand, next, on_false, steps);
            }
        }
        Expr::Or(operands) => {
            // Each operand but the last goes on to the next when it fails.
            let mut rest = operands.iter().peekable();
            while let Some(operand) = rest.next() {
                let next = match rest.peek() {
                    Some(_) => Next::Step(steps.len() + operand.predicate_nodes()),
                    None => on_false,
                };
                emit(operand, on_true, next, steps);
            }
        }
    }
}

impl Step {
    fn new(predicate: &Predicate, on_true: Next, on_false: Next) -> Self {
        let (check, on_true, on_false) = match &predicate.test {
            Test::Eq(v) => (Check::equals(v), on_true, on_false),
            Test::Ne(v) => (Check::equals(v), on_false, on_true),
            Test::Compare(op, n) => (
                Check::Number(NumberTest::Compare(*op, *n)),
                on_true,
                on_false,
            ),
            Test::Between(low, high) => (
                Check::Number(NumberTest::Between(*low, *high)),
                on_true,
                on_false,
            ),
            Test::In(values) => (Check::one_of(values), on_true, on_false),
            Test::Exists => (Check::Exists, on_true, on_false),
            Test::Prefix(p) => (Check::StartsWith(p.as_bytes().into()), on_true, on_false),
        };
        Self {
            name: predicate.name.as_str().into(),
            check,
            on_true,
            on_false,
        }
    }
}

impl Check {
    fn equals(value: &Value) -> Self {
        match value {
            Value::Str(s) => Self::Equals(s.as_bytes().into()),
            Value::Number(n) => Self::Number(NumberTest::Eq(*n)),
        }
    }

    fn one_of(values: &[Value]) -> Self {
        let mut bytes = Vec::new();
        let mut numbers = Vec::new();
        for v in values {
            match v {
                Value::Str(s) => bytes.push(s.as_bytes().into()),
                Value::Number(n) => numbers.push(*n),
            }
        }
        Self::OneOf {
            bytes: bytes.into(),
            numbers: numbers.into(),
        }
    }

    fn holds_for_any<'h>(&self, mut values: impl Iterator<Item = &'h [u8]>) -> bool {
        match self {
            Self::Exists => values.next().is_some(),
            Self::Equals(expected) => values.any(|v| v == &**expected),
            Self::Number(test) => values.any(|v| parse_decimal(v).is_some_and(|n| test.holds(n))),
            Self::OneOf { bytes, numbers } => values.any(|v| {
                bytes.iter().any(|b| **b == *v)
                    || (!numbers.is_empty()
                        && parse_decimal(v).is_some_and(|n| numbers.contains(&n)))
            }),
            Self::StartsWith(prefix) => values.any(|v| v.starts_with(prefix)),
        }
    }
}

impl NumberTest {
    fn holds(self, n: f64) -> bool {
        match self {
            Self::Eq(x) => n == x,
            Self::Compare(Comparison::Lt, x) => n < x,
            Self::Compare(Comparison::Le, x) => n <= x,
            Self::Compare(Comparison::Gt, x) => n > x,
            Self::Compare(Comparison::Ge, x) => n >= x,
            Self::Between(low, high) => low <= n && n <= high,
        }
    }
}
