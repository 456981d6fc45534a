//! The syntax tree of a query, and its canonical text (`Display`): keywords in capitals, clauses
//! in the documented order, strings single-quoted, names backquoted when they need it.

use std::fmt::{self, Display, Formatter};

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Query {
    /// `SELECT` items (`*` is [`Expr::Star`]).
    pub select: Vec<SelectItem>,
    /// `FROM` event types.
    pub from: Vec<String>,
    /// `WHERE` condition.
    pub filter: Option<Expr>,
    /// `FACET`.
    pub facet: Option<Facet>,
    /// `ORDER BY` (row queries): expression, descending.
    pub order_by: Option<(Expr, bool)>,
    /// `LIMIT`.
    pub limit: Option<Limit>,
    /// `OFFSET`.
    pub offset: Option<u64>,
    /// `SINCE`.
    pub since: Option<Time>,
    /// `UNTIL`.
    pub until: Option<Time>,
    /// `COMPARE WITH n unit AGO`.
    pub compare_with: Option<Interval>,
    /// `TIMESERIES`.
    pub timeseries: Option<Timeseries>,
    /// `WITH TIMEZONE 'Area/City'`.
    pub timezone: Option<String>,
}

/// One `SELECT` item.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectItem {
    /// The expression.
    pub expr: Expr,
    /// `AS 'label'`.
    pub alias: Option<String>,
}

/// An expression: a value, an attribute, a function or aggregator call, or an operator.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `*` (in `SELECT *` and `count(*)`).
    Star,
    /// An attribute.
    Attr(String),
    /// A number.
    Number(f64),
    /// A string.
    Str(String),
    /// `true` / `false`.
    Bool(bool),
    /// `NULL`.
    Null,
    /// A duration (`1 minute`), in `rate()` and `TIMESERIES`.
    Interval(Interval),
    /// `name(args…)`.
    Call {
        /// The function's name as written.
        name: String,
        /// Its arguments.
        args: Vec<Arg>,
    },
    /// A binary operator.
    Binary {
        /// Which.
        op: BinOp,
        /// Left operand.
        left: Box<Expr>,
        /// Right operand.
        right: Box<Expr>,
    },
    /// `NOT e`.
    Not(Box<Expr>),
    /// `-e`.
    Neg(Box<Expr>),
    /// `e [NOT] IN (list)`.
    In {
        /// Tested value.
        expr: Box<Expr>,
        /// Candidates.
        list: Vec<Expr>,
        /// `NOT IN`.
        negated: bool,
    },
    /// `e [NOT] LIKE 'pattern'` (`%` any run, `_` one character); `RLIKE` when `regex`.
    Like {
        /// Tested value.
        expr: Box<Expr>,
        /// The pattern.
        pattern: String,
        /// `NOT LIKE`.
        negated: bool,
        /// `RLIKE` (a regular expression matching the whole value).
        regex: bool,
    },
    /// `e IS [NOT] NULL`.
    IsNull {
        /// Tested value.
        expr: Box<Expr>,
        /// `IS NOT NULL`.
        negated: bool,
    },
    /// `e IS [NOT] TRUE|FALSE`.
    IsBool {
        /// Tested value.
        expr: Box<Expr>,
        /// TRUE or FALSE.
        value: bool,
        /// `IS NOT`.
        negated: bool,
    },
}

/// A function argument.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// A positional value.
    Expr(Expr),
    /// `WHERE cond` (in `filter()` and `percentage()`).
    Where(Expr),
    /// `name: value` (`apdex(duration, t: 0.5)`).
    Named(String, Expr),
}

/// Binary operators, loosest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `OR`.
    Or,
    /// `AND`.
    And,
    /// `=`.
    Eq,
    /// `!=` (also written `<>`).
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `+`.
    Add,
    /// `-`.
    Sub,
    /// `*`.
    Mul,
    /// `/`.
    Div,
}

impl BinOp {
    /// Binding strength: higher binds tighter.
    pub fn precedence(self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And => 2,
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => 4,
            BinOp::Add | BinOp::Sub => 5,
            BinOp::Mul | BinOp::Div => 6,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            BinOp::Or => "OR",
            BinOp::And => "AND",
            BinOp::Eq => "=",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
        }
    }
}

/// `FACET`.
#[derive(Debug, Clone, PartialEq)]
pub enum Facet {
    /// `FACET a, b AS 'x'` (up to 5).
    Items(Vec<SelectItem>),
    /// `FACET CASES (WHERE c AS 'label', …) [OR attr]`.
    Cases {
        /// The cases: condition and label.
        cases: Vec<(Expr, Option<String>)>,
        /// `OR attr`: facet what matched no case by this attribute.
        otherwise: Option<Expr>,
    },
}

/// `LIMIT n` or `LIMIT MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// A number.
    Count(u64),
    /// `MAX`.
    Max,
}

/// Units of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Second.
    Second,
    /// Minute.
    Minute,
    /// Hour.
    Hour,
    /// Day.
    Day,
    /// Week.
    Week,
    /// Month (30 days).
    Month,
    /// Quarter (91 days).
    Quarter,
    /// Year (365 days).
    Year,
}

impl Unit {
    /// Length in milliseconds (months, quarters and years as NRQL counts them).
    pub fn ms(self) -> i64 {
        const DAY: i64 = 86_400_000;
        match self {
            Unit::Second => 1_000,
            Unit::Minute => 60_000,
            Unit::Hour => 3_600_000,
            Unit::Day => DAY,
            Unit::Week => 7 * DAY,
            Unit::Month => 30 * DAY,
            Unit::Quarter => 91 * DAY,
            Unit::Year => 365 * DAY,
        }
    }

    /// The unit a word names (singular or plural, any case).
    pub fn from_word(w: &str) -> Option<Unit> {
        let w = w.to_ascii_lowercase();
        let w = w.strip_suffix('s').unwrap_or(&w);
        Some(match w {
            "second" | "sec" => Unit::Second,
            "minute" | "min" => Unit::Minute,
            "hour" => Unit::Hour,
            "day" => Unit::Day,
            "week" => Unit::Week,
            "month" => Unit::Month,
            "quarter" => Unit::Quarter,
            "year" => Unit::Year,
            _ => return None,
        })
    }

    fn word(self) -> &'static str {
        match self {
            Unit::Second => "second",
            Unit::Minute => "minute",
            Unit::Hour => "hour",
            Unit::Day => "day",
            Unit::Week => "week",
            Unit::Month => "month",
            Unit::Quarter => "quarter",
            Unit::Year => "year",
        }
    }
}

/// `n unit`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// How many.
    pub n: f64,
    /// Of what.
    pub unit: Unit,
}

impl Interval {
    /// Length in milliseconds.
    pub fn ms(&self) -> i64 {
        (self.n * self.unit.ms() as f64) as i64
    }
}

/// A point in time in `SINCE` / `UNTIL`.
#[derive(Debug, Clone, PartialEq)]
pub enum Time {
    /// `n unit AGO`.
    Ago(Interval),
    /// `NOW`.
    Now,
    /// Epoch milliseconds.
    Epoch(i64),
    /// A quoted date-time (`'2023-12-17T18:34'`, `'2023-12-17 18:34:00 -06:00'`).
    DateTime(String),
    /// `TODAY`, `YESTERDAY`, a weekday, `THIS|LAST hour|day|week|month|quarter|year`, each
    /// optionally `AT 'HH:MM[:SS]'`.
    Calendar {
        /// The words, lower-case (`today`, `monday`, `last week`).
        name: String,
        /// `AT` time of day.
        at: Option<String>,
    },
}

/// `TIMESERIES`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Timeseries {
    /// `TIMESERIES` or `TIMESERIES AUTO`: the bucket width follows the window.
    Auto,
    /// `TIMESERIES MAX`: as many buckets as allowed (366).
    Max,
    /// `TIMESERIES n unit`.
    Every(Interval),
}

/// Whether `name` can be printed bare (else it is backquoted).
fn bare(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '$' | '@'))
        && !crate::parser::is_reserved(name)
}

fn name(f: &mut Formatter<'_>, n: &str) -> fmt::Result {
    if bare(n) {
        f.write_str(n)
    } else {
        write!(f, "`{}`", n.replace('\\', "\\\\").replace('`', "``"))
    }
}

fn string(f: &mut Formatter<'_>, s: &str) -> fmt::Result {
    write!(f, "'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

fn number(f: &mut Formatter<'_>, n: f64) -> fmt::Result {
    // `{}` prints the shortest text that reads back as the same f64.
    write!(f, "{n}")
}

impl Display for Interval {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        number(f, self.n)?;
        write!(f, " {}", self.unit.word())
    }
}

/// Prints `e`, parenthesised when it is an operator itself: always right, never pretty, and
/// the parse of the output is the same tree.
fn operand(f: &mut Formatter<'_>, e: &Expr) -> fmt::Result {
    match e {
        Expr::Binary { .. }
        | Expr::Not(_)
        | Expr::Neg(_)
        | Expr::In { .. }
        | Expr::Like { .. }
        | Expr::IsNull { .. }
        | Expr::IsBool { .. } => write!(f, "({e})"),
        _ => write!(f, "{e}"),
    }
}

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Star => f.write_str("*"),
            Expr::Attr(a) => name(f, a),
            Expr::Number(n) => number(f, *n),
            Expr::Str(s) => string(f, s),
            Expr::Bool(b) => f.write_str(if *b { "true" } else { "false" }),
            Expr::Null => f.write_str("NULL"),
            Expr::Interval(i) => write!(f, "{i}"),
            Expr::Call { name: n, args } => {
                name(f, n)?;
                f.write_str("(")?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    match a {
                        Arg::Expr(e) => write!(f, "{e}")?,
                        Arg::Where(e) => write!(f, "WHERE {e}")?,
                        Arg::Named(k, e) => {
                            name(f, k)?;
                            write!(f, ": {e}")?;
                        }
                    }
                }
                f.write_str(")")
            }
            Expr::Binary { op, left, right } => {
                operand(f, left)?;
                write!(f, " {} ", op.symbol())?;
                operand(f, right)
            }
            Expr::Not(e) => {
                f.write_str("NOT ")?;
                operand(f, e)
            }
            Expr::Neg(e) => {
                f.write_str("-")?;
                operand(f, e)
            }
            Expr::In {
                expr,
                list,
                negated,
            } => {
                operand(f, expr)?;
                f.write_str(if *negated { " NOT IN (" } else { " IN (" })?;
                for (i, e) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    operand(f, e)?;
                }
                f.write_str(")")
            }
            Expr::Like {
                expr,
                pattern,
                negated,
                regex,
            } => {
                operand(f, expr)?;
                f.write_str(match (negated, regex) {
                    (false, false) => " LIKE ",
                    (true, false) => " NOT LIKE ",
                    (false, true) => " RLIKE ",
                    (true, true) => " NOT RLIKE ",
                })?;
                string(f, pattern)
            }
            Expr::IsNull { expr, negated } => {
                operand(f, expr)?;
                f.write_str(if *negated { " IS NOT NULL" } else { " IS NULL" })
            }
            Expr::IsBool {
                expr,
                value,
                negated,
            } => {
                operand(f, expr)?;
                f.write_str(if *negated { " IS NOT " } else { " IS " })?;
                f.write_str(if *value { "TRUE" } else { "FALSE" })
            }
        }
    }
}

impl Display for SelectItem {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.expr)?;
        if let Some(a) = &self.alias {
            f.write_str(" AS ")?;
            string(f, a)?;
        }
        Ok(())
    }
}

impl Display for Time {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Time::Ago(i) => write!(f, "{i} AGO"),
            Time::Now => f.write_str("NOW"),
            Time::Epoch(ms) => write!(f, "{ms}"),
            Time::DateTime(s) => string(f, s),
            Time::Calendar { name: n, at } => {
                f.write_str(&n.to_ascii_uppercase())?;
                if let Some(at) = at {
                    f.write_str(" AT ")?;
                    string(f, at)?;
                }
                Ok(())
            }
        }
    }
}

impl Display for Query {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("SELECT ")?;
        for (i, s) in self.select.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{s}")?;
        }
        f.write_str(" FROM ")?;
        for (i, t) in self.from.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            name(f, t)?;
        }
        if let Some(w) = &self.filter {
            write!(f, " WHERE {w}")?;
        }
        match &self.facet {
            Some(Facet::Items(items)) => {
                f.write_str(" FACET ")?;
                for (i, s) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    // Facet attributes are terms (a comparison would read as the next clause's).
                    operand(f, &s.expr)?;
                    if let Some(a) = &s.alias {
                        f.write_str(" AS ")?;
                        string(f, a)?;
                    }
                }
            }
            Some(Facet::Cases { cases, otherwise }) => {
                f.write_str(" FACET CASES (")?;
                for (i, (c, label)) in cases.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "WHERE {c}")?;
                    if let Some(l) = label {
                        f.write_str(" AS ")?;
                        string(f, l)?;
                    }
                }
                f.write_str(")")?;
                if let Some(o) = otherwise {
                    write!(f, " OR {o}")?;
                }
            }
            None => {}
        }
        if let Some((e, desc)) = &self.order_by {
            write!(f, " ORDER BY {e} {}", if *desc { "DESC" } else { "ASC" })?;
        }
        match self.limit {
            Some(Limit::Count(n)) => write!(f, " LIMIT {n}")?,
            Some(Limit::Max) => f.write_str(" LIMIT MAX")?,
            None => {}
        }
        if let Some(o) = self.offset {
            write!(f, " OFFSET {o}")?;
        }
        if let Some(t) = &self.since {
            write!(f, " SINCE {t}")?;
        }
        if let Some(t) = &self.until {
            write!(f, " UNTIL {t}")?;
        }
        if let Some(i) = &self.compare_with {
            write!(f, " COMPARE WITH {i} AGO")?;
        }
        match self.timeseries {
            Some(Timeseries::Auto) => f.write_str(" TIMESERIES AUTO")?,
            Some(Timeseries::Max) => f.write_str(" TIMESERIES MAX")?,
            Some(Timeseries::Every(i)) => write!(f, " TIMESERIES {i}")?,
            None => {}
        }
        if let Some(z) = &self.timezone {
            f.write_str(" WITH TIMEZONE ")?;
            string(f, z)?;
        }
        Ok(())
    }
}
