//! The parsed form of a filter, and its canonical printing.
//!
//! The tree keeps what the text says, minus redundant parentheses: AND and
//! OR are n-ary and never directly contain themselves, `!=` stays `!=`.
//! Printing adds parentheses only where precedence needs them, so the
//! canonical text is never nested deeper than its source and always
//! parses back to an equal tree.

use std::fmt::{self, Display, Formatter, Write as _};

use super::lexer::{is_bare_name, Keyword};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Expr {
    Predicate(Predicate),
    Not(Box<Expr>),
    /// Two or more operands, none of them an `And`.
    And(Vec<Expr>),
    /// Two or more operands, none of them an `Or`.
    Or(Vec<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Predicate {
    pub(super) name: String,
    pub(super) test: Test,
}

/// What a predicate asks of the values of the headers it names.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Test {
    Eq(Value),
    Ne(Value),
    Compare(Comparison, f64),
    /// Inclusive at both ends.
    Between(f64, f64),
    /// One or more values.
    In(Vec<Value>),
    Exists,
    Prefix(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Comparison {
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    Str(String),
    /// Always finite.
    Number(f64),
}

impl Expr {
    /// The AND of `operands`, flattened: `a AND (b AND c)` is one AND of
    /// three. One operand is itself.
    pub(super) fn all(operands: Vec<Expr>) -> Expr {
        Self::flatten(operands, Expr::And, |e| match e {
            Expr::And(inner) => Ok(inner),
            other => Err(other),
        })
    }

    /// The OR of `operands`, flattened like [`Expr::all`].
    pub(super) fn any(operands: Vec<Expr>) -> Expr {
        Self::flatten(operands, Expr::Or, |e| match e {
            Expr::Or(inner) => Ok(inner),
            other => Err(other),
        })
    }

    fn flatten(
        operands: Vec<Expr>,
        join: fn(Vec<Expr>) -> Expr,
        split: fn(Expr) -> Result<Vec<Expr>, Expr>,
    ) -> Expr {
        let mut flat = Vec::with_capacity(operands.len());
        for operand in operands {
            match split(operand) {
                Ok(inner) => flat.extend(inner),
                Err(other) => flat.push(other),
            }
        }
        if flat.len() == 1 {
            if let Some(only) = flat.pop() {
                return only;
            }
        }
        join(flat)
    }

    /// Number of predicate nodes (an IN list is one).
    pub(super) fn predicate_nodes(&self) -> usize {
        match self {
            Expr::Predicate(_) => 1,
            Expr::Not(inner) => inner.predicate_nodes(),
            Expr::And(operands) | Expr::Or(operands) => {
                operands.iter().map(Expr::predicate_nodes).sum()
            }
        }
    }
}

/// Where an expression is printed, for deciding on parentheses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Inside {
    Top,
    Or,
    And,
    Not,
}

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write_expr(f, self, Inside::Top)
    }
}

fn write_expr(f: &mut Formatter<'_>, expr: &Expr, inside: Inside) -> fmt::Result {
    let (operands, separator, this) = match expr {
        Expr::Predicate(p) => return p.fmt(f),
        Expr::Not(inner) => {
            f.write_str("NOT ")?;
            return write_expr(f, inner, Inside::Not);
        }
        Expr::And(operands) => (operands, " AND ", Inside::And),
        Expr::Or(operands) => (operands, " OR ", Inside::Or),
    };
    // OR binds loosest, so it needs parentheses anywhere but at the top or
    // in another OR; AND only under NOT. Same-operator nesting cannot come
    // out of the parser, but is kept visible rather than printed wrongly.
    let parens = match this {
        Inside::Or => inside != Inside::Top,
        _ => matches!(inside, Inside::Not | Inside::And),
    };
    if parens {
        f.write_char('(')?;
    }
    for (i, operand) in operands.iter().enumerate() {
        if i > 0 {
            f.write_str(separator)?;
        }
        write_expr(f, operand, this)?;
    }
    if parens {
        f.write_char(')')?;
    }
    Ok(())
}

impl Display for Predicate {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let name = Name(&self.name);
        match &self.test {
            Test::Eq(v) => write!(f, "{name} = {v}"),
            Test::Ne(v) => write!(f, "{name} != {v}"),
            Test::Compare(op, n) => write!(f, "{name} {} {n}", op.as_str()),
            Test::Between(low, high) => write!(f, "{name} BETWEEN {low} AND {high}"),
            Test::In(values) => {
                write!(f, "{name} IN (")?;
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    v.fmt(f)?;
                }
                f.write_char(')')
            }
            Test::Exists => write!(f, "{}({name})", Keyword::Exists.as_str()),
            Test::Prefix(p) => write!(f, "{}({name}, {})", Keyword::Prefix.as_str(), Quoted(p)),
        }
    }
}

impl Comparison {
    fn as_str(self) -> &'static str {
        match self {
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
        }
    }
}

impl Display for Value {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            // `f64`'s Display never uses an exponent and prints the
            // shortest digits that read back to the same value.
            Value::Number(n) => write!(f, "{n}"),
            Value::Str(s) => Quoted(s).fmt(f),
        }
    }
}

/// A header name: bare when it can be, quoted otherwise.
struct Name<'a>(&'a str);

impl Display for Name<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if is_bare_name(self.0) {
            f.write_str(self.0)
        } else {
            Quoted(self.0).fmt(f)
        }
    }
}

/// A string literal, with `"` and `\` escaped.
struct Quoted<'a>(&'a str);

impl Display for Quoted<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        for c in self.0.chars() {
            if matches!(c, '"' | '\\') {
                f.write_char('\\')?;
            }
            f.write_char(c)?;
        }
        f.write_char('"')
    }
}
