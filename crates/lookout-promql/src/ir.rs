//! The query as the evaluator runs it: promql-parser's syntax tree translated into a smaller
//! tree in which every selector carries its index into the caller's fetched data, every function
//! is one Lookout implements, and everything else (subqueries, experimental syntax, functions
//! not implemented) has already been refused with a `bad_data` error naming it — so an
//! unsupported query never evaluates to a wrong number.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::token::{self, TokenType};
use promql_parser::parser::{
    AggregateExpr, AtModifier, BinaryExpr, Call, Expr, LabelModifier, Offset,
    VectorMatchCardinality, VectorSelector,
};

use crate::calendar::DatePart;
use crate::error::Error;
use crate::matcher::{MatchOp, Matcher};
use crate::Downsampled;

/// An `@` modifier: a fixed time, or the query's start or end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum At {
    Start,
    End,
    Ms(i64),
}

/// A subquery around a selector: its offset, range and `@`, which widen what must be fetched.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Enclosing {
    pub offset_ms: i64,
    pub range_ms: i64,
    pub at: Option<At>,
}

/// `expr[range:step] offset o @ t`: the inner expression evaluated on its own step grid.
#[derive(Debug, Clone)]
pub(crate) struct Sub {
    pub expr: Node,
    pub range_ms: i64,
    /// `None`: the default step ([`crate::Limits::subquery_step_ms`]).
    pub step_ms: Option<i64>,
    pub offset_ms: i64,
    pub at: Option<At>,
}

impl Sub {
    /// The subquery seen as the range selector a range function reads (over its own points).
    pub fn as_sel(&self) -> Sel {
        Sel {
            idx: usize::MAX,
            matchers: Vec::new(),
            offset_ms: self.offset_ms,
            at: self.at,
            range_ms: Some(self.range_ms),
            enclosing: Vec::new(),
            downsampled: Downsampled::Auto,
        }
    }
}

/// What lowering collects on the way: the selectors in order, and the subqueries around the
/// current point.
#[derive(Debug, Default)]
pub(crate) struct Lowering {
    pub sels: Vec<Sel>,
    /// Regular expressions the query compiles (matchers and label_replace() calls).
    pub regexes: usize,
    enclosing: Vec<Enclosing>,
}

/// A vector or matrix selector, numbered in the order `selections()` lists them.
#[derive(Debug, Clone)]
pub(crate) struct Sel {
    pub idx: usize,
    pub matchers: Vec<Matcher>,
    pub offset_ms: i64,
    pub at: Option<At>,
    /// `Some(range)` for a matrix selector `x[5m]`.
    pub range_ms: Option<i64>,
    /// The subqueries this selector is inside, outermost first.
    pub enclosing: Vec<Enclosing>,
    /// The bucket aggregate its range function wants from a downsampled tier.
    pub downsampled: Downsampled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    And,
    Or,
    Unless,
}

impl BinOp {
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Lt | BinOp::Ge | BinOp::Le
        )
    }
    pub fn is_set(self) -> bool {
        matches!(self, BinOp::And | BinOp::Or | BinOp::Unless)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Card {
    OneToOne,
    ManyToOne,
    OneToMany,
    ManyToMany,
}

#[derive(Debug, Clone)]
pub(crate) struct Bin {
    pub op: BinOp,
    pub lhs: Node,
    pub rhs: Node,
    pub return_bool: bool,
    /// `on(...)` when true, `ignoring(...)` (the default, with no labels) when false.
    pub on: bool,
    pub labels: Vec<String>,
    pub card: Card,
    /// The `group_left(...)`/`group_right(...)` labels copied from the "one" side.
    pub include: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AggOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Group,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    Quantile,
    CountValues,
}

#[derive(Debug, Clone)]
pub(crate) enum Grouping {
    All,
    By(Vec<String>),
    Without(Vec<String>),
}

#[derive(Debug, Clone)]
pub(crate) struct Agg {
    pub op: AggOp,
    pub param: Option<Node>,
    pub grouping: Grouping,
    pub expr: Node,
}

/// Functions over a range vector, evaluated per series per step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeFn {
    Rate,
    Irate,
    Increase,
    Delta,
    Idelta,
    Deriv,
    PredictLinear,
    AvgOverTime,
    MinOverTime,
    MaxOverTime,
    SumOverTime,
    CountOverTime,
    LastOverTime,
    StddevOverTime,
    StdvarOverTime,
    QuantileOverTime,
    PresentOverTime,
    Changes,
    Resets,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Func {
    Range(RangeFn),
    AbsentOverTime,
    /// A function of one value that drops the metric name (abs, ceil, ln, ...).
    Math(fn(f64) -> f64),
    Round,
    Clamp,
    ClampMin,
    ClampMax,
    Time,
    Pi,
    Vector,
    Scalar,
    Absent,
    LabelReplace,
    LabelJoin,
    Sort,
    SortDesc,
    HistogramQuantile,
    Date(crate::calendar::DatePart),
    Timestamp,
}

#[derive(Debug, Clone)]
pub(crate) enum Node {
    Num(f64),
    Str(String),
    Sel(Sel),
    Call(Func, Vec<Node>),
    Agg(Box<Agg>),
    Neg(Box<Node>),
    Bin(Box<Bin>),
    Sub(Box<Sub>),
}

/// Translates a parsed expression, numbering selectors into `sels`.
pub(crate) fn lower(expr: &Expr, sels: &mut Lowering) -> Result<Node, Error> {
    Ok(match expr {
        Expr::NumberLiteral(n) => Node::Num(n.val),
        Expr::StringLiteral(s) => Node::Str(s.val.clone()),
        Expr::Paren(p) => lower(&p.expr, sels)?,
        Expr::Unary(u) => Node::Neg(Box::new(lower(&u.expr, sels)?)),
        Expr::VectorSelector(vs) => Node::Sel(selector(vs, None, sels)?),
        Expr::MatrixSelector(ms) => {
            Node::Sel(selector(&ms.vs, Some(duration_ms(&ms.range)), sels)?)
        }
        Expr::Subquery(sq) => {
            let offset_ms = offset_ms(&sq.offset);
            let at = sq.at.as_ref().map(at_of);
            let range_ms = duration_ms(&sq.range);
            let step_ms = sq.step.as_ref().map(duration_ms).filter(|s| *s > 0);
            sels.enclosing.push(Enclosing {
                offset_ms,
                range_ms,
                at,
            });
            let inner = lower(&sq.expr, sels);
            sels.enclosing.pop();
            Node::Sub(Box::new(Sub {
                expr: inner?,
                range_ms,
                step_ms,
                offset_ms,
                at,
            }))
        }
        Expr::Extension(_) => return Err(Error::unsupported("an extension expression")),
        Expr::Call(c) => call(c, sels)?,
        Expr::Aggregate(a) => Node::Agg(Box::new(aggregate(a, sels)?)),
        Expr::Binary(b) => Node::Bin(Box::new(binary(b, sels)?)),
    })
}

fn duration_ms(d: &Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

fn selector(vs: &VectorSelector, range_ms: Option<i64>, sels: &mut Lowering) -> Result<Sel, Error> {
    if !vs.matchers.or_matchers.is_empty() {
        return Err(Error::unsupported("`or` inside a selector's braces"));
    }
    let mut matchers = Vec::with_capacity(vs.matchers.matchers.len() + 1);
    if let Some(name) = &vs.name {
        matchers.push(Matcher::new("__name__", MatchOp::Eq, name)?);
    }
    for m in &vs.matchers.matchers {
        let op = match m.op {
            PMatchOp::Equal => MatchOp::Eq,
            PMatchOp::NotEqual => MatchOp::Ne,
            PMatchOp::Re(_) => MatchOp::Re,
            PMatchOp::NotRe(_) => MatchOp::Nre,
        };
        if matches!(op, MatchOp::Re | MatchOp::Nre) {
            sels.regexes += 1;
        }
        matchers.push(Matcher::new(&m.name, op, &m.value)?);
    }
    if matchers.iter().all(|m| m.matches("")) {
        return Err(Error::bad_data(
            "vector selector must contain at least one non-empty matcher",
        ));
    }
    let sel = Sel {
        idx: sels.sels.len(),
        matchers,
        offset_ms: offset_ms(&vs.offset),
        at: vs.at.as_ref().map(at_of),
        range_ms,
        enclosing: sels.enclosing.clone(),
        downsampled: Downsampled::Auto,
    };
    sels.sels.push(sel.clone());
    Ok(sel)
}

fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => duration_ms(d),
        Some(Offset::Neg(d)) => -duration_ms(d),
    }
}

fn at_of(a: &AtModifier) -> At {
    match a {
        AtModifier::Start => At::Start,
        AtModifier::End => At::End,
        AtModifier::At(t) => At::Ms(system_time_ms(t)),
    }
}

fn system_time_ms(t: &SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => duration_ms(&d),
        Err(e) => -duration_ms(&e.duration()),
    }
}

fn call(c: &Call, sels: &mut Lowering) -> Result<Node, Error> {
    use RangeFn::*;
    let name = c.func.name;
    if name == "label_replace" {
        sels.regexes += 1;
    }
    let func = match name {
        "rate" => Func::Range(Rate),
        "irate" => Func::Range(Irate),
        "increase" => Func::Range(Increase),
        "delta" => Func::Range(Delta),
        "idelta" => Func::Range(Idelta),
        "deriv" => Func::Range(Deriv),
        "predict_linear" => Func::Range(PredictLinear),
        "avg_over_time" => Func::Range(AvgOverTime),
        "min_over_time" => Func::Range(MinOverTime),
        "max_over_time" => Func::Range(MaxOverTime),
        "sum_over_time" => Func::Range(SumOverTime),
        "count_over_time" => Func::Range(CountOverTime),
        "last_over_time" => Func::Range(LastOverTime),
        "stddev_over_time" => Func::Range(StddevOverTime),
        "stdvar_over_time" => Func::Range(StdvarOverTime),
        "quantile_over_time" => Func::Range(QuantileOverTime),
        "present_over_time" => Func::Range(PresentOverTime),
        "changes" => Func::Range(Changes),
        "resets" => Func::Range(Resets),
        "absent_over_time" => Func::AbsentOverTime,
        "abs" => Func::Math(f64::abs),
        "ceil" => Func::Math(f64::ceil),
        "floor" => Func::Math(f64::floor),
        "exp" => Func::Math(f64::exp),
        "sqrt" => Func::Math(f64::sqrt),
        "ln" => Func::Math(f64::ln),
        "log2" => Func::Math(f64::log2),
        "log10" => Func::Math(f64::log10),
        "sgn" => Func::Math(sgn),
        "sin" => Func::Math(f64::sin),
        "cos" => Func::Math(f64::cos),
        "tan" => Func::Math(f64::tan),
        "asin" => Func::Math(f64::asin),
        "acos" => Func::Math(f64::acos),
        "atan" => Func::Math(f64::atan),
        "sinh" => Func::Math(f64::sinh),
        "cosh" => Func::Math(f64::cosh),
        "tanh" => Func::Math(f64::tanh),
        "asinh" => Func::Math(f64::asinh),
        "acosh" => Func::Math(f64::acosh),
        "atanh" => Func::Math(f64::atanh),
        "deg" => Func::Math(f64::to_degrees),
        "rad" => Func::Math(f64::to_radians),
        "round" => Func::Round,
        "clamp" => Func::Clamp,
        "clamp_min" => Func::ClampMin,
        "clamp_max" => Func::ClampMax,
        "time" => Func::Time,
        "pi" => Func::Pi,
        "vector" => Func::Vector,
        "scalar" => Func::Scalar,
        "absent" => Func::Absent,
        "label_replace" => Func::LabelReplace,
        "label_join" => Func::LabelJoin,
        "sort" => Func::Sort,
        "sort_desc" => Func::SortDesc,
        "histogram_quantile" => Func::HistogramQuantile,
        "year" => Func::Date(DatePart::Year),
        "month" => Func::Date(DatePart::Month),
        "day_of_month" => Func::Date(DatePart::DayOfMonth),
        "day_of_week" => Func::Date(DatePart::DayOfWeek),
        "day_of_year" => Func::Date(DatePart::DayOfYear),
        "days_in_month" => Func::Date(DatePart::DaysInMonth),
        "hour" => Func::Date(DatePart::Hour),
        "minute" => Func::Date(DatePart::Minute),
        "timestamp" => Func::Timestamp,
        other => return Err(Error::unsupported(format!("function \"{other}\""))),
    };
    let mut args = Vec::with_capacity(c.args.args.len());
    for a in &c.args.args {
        args.push(lower(a, sels)?);
    }
    // A range function needs a matrix selector or a subquery where its range argument is;
    // promql-parser checks types, this keeps the evaluator from ever seeing anything else.
    if let Func::Range(f) = func {
        let pos = usize::from(f == QuantileOverTime);
        if !matches!(args.get(pos), Some(Node::Sel(s)) if s.range_ms.is_some())
            && !matches!(args.get(pos), Some(Node::Sub(_)))
        {
            return Err(Error::bad_data(format!(
                "{name}() needs a range vector selector"
            )));
        }
    }
    let func = match func {
        Func::Range(f) => Func::Range(ask_for_aggregate(f, &mut args, sels)),
        other => other,
    };
    if matches!(func, Func::AbsentOverTime) && !matches!(args.first(), Some(Node::Sel(_))) {
        return Err(Error::unsupported("absent_over_time() of a subquery"));
    }
    Ok(Node::Call(func, args))
}

/// Marks a matrix selector directly inside `min`/`max`/`sum`/`count_over_time` with the bucket
/// aggregate those need from a downsampled tier, and returns the function to evaluate:
/// `count_over_time` of such a selector sums its weights (see [`Downsampled::Count`]).
/// A subquery's points are evaluated values, not buckets, so it keeps the default.
fn ask_for_aggregate(f: RangeFn, args: &mut [Node], sels: &mut Lowering) -> RangeFn {
    let want = match f {
        RangeFn::MinOverTime => Downsampled::Min,
        RangeFn::MaxOverTime => Downsampled::Max,
        RangeFn::SumOverTime => Downsampled::Sum,
        RangeFn::CountOverTime => Downsampled::Count,
        _ => return f,
    };
    let Some(Node::Sel(s)) = args.first_mut() else {
        return f;
    };
    s.downsampled = want;
    sels.sels[s.idx].downsampled = want;
    if want == Downsampled::Count {
        RangeFn::SumOverTime
    } else {
        f
    }
}

fn sgn(v: f64) -> f64 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        v // 0, -0 and NaN are their own sign, as in Prometheus
    }
}

fn label_list(m: &LabelModifier) -> Vec<String> {
    m.labels().labels.clone()
}

fn aggregate(a: &AggregateExpr, sels: &mut Lowering) -> Result<Agg, Error> {
    let op = match a.op.id() {
        token::T_SUM => AggOp::Sum,
        token::T_AVG => AggOp::Avg,
        token::T_MIN => AggOp::Min,
        token::T_MAX => AggOp::Max,
        token::T_COUNT => AggOp::Count,
        token::T_GROUP => AggOp::Group,
        token::T_STDDEV => AggOp::Stddev,
        token::T_STDVAR => AggOp::Stdvar,
        token::T_TOPK => AggOp::Topk,
        token::T_BOTTOMK => AggOp::Bottomk,
        token::T_QUANTILE => AggOp::Quantile,
        token::T_COUNT_VALUES => AggOp::CountValues,
        _ => return Err(Error::unsupported(format!("aggregation \"{}\"", a.op))),
    };
    let grouping = match &a.modifier {
        None => Grouping::All,
        Some(m @ LabelModifier::Include(_)) => Grouping::By(label_list(m)),
        Some(m @ LabelModifier::Exclude(_)) => Grouping::Without(label_list(m)),
    };
    // The parameter comes first in the text, so its selectors are numbered first.
    let param = match &a.param {
        Some(p) => Some(lower(p, sels)?),
        None => None,
    };
    let expr = lower(&a.expr, sels)?;
    Ok(Agg {
        op,
        param,
        grouping,
        expr,
    })
}

fn binary(b: &BinaryExpr, sels: &mut Lowering) -> Result<Bin, Error> {
    let op = bin_op(a_token(&b.op))?;
    let lhs = lower(&b.lhs, sels)?;
    let rhs = lower(&b.rhs, sels)?;
    let mut bin = Bin {
        op,
        lhs,
        rhs,
        return_bool: false,
        on: false,
        labels: Vec::new(),
        card: if op.is_set() {
            Card::ManyToMany
        } else {
            Card::OneToOne
        },
        include: Vec::new(),
    };
    if let Some(m) = &b.modifier {
        if m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some() {
            return Err(Error::unsupported("the `fill` modifier"));
        }
        bin.return_bool = m.return_bool;
        if let Some(matching) = &m.matching {
            bin.on = matching.is_include();
            bin.labels = label_list(matching);
        }
        bin.card = match &m.card {
            VectorMatchCardinality::OneToOne => Card::OneToOne,
            VectorMatchCardinality::ManyToMany => Card::ManyToMany,
            VectorMatchCardinality::ManyToOne(l) => {
                bin.include = l.labels.clone();
                Card::ManyToOne
            }
            VectorMatchCardinality::OneToMany(l) => {
                bin.include = l.labels.clone();
                Card::OneToMany
            }
        };
        if op.is_set() {
            bin.card = Card::ManyToMany;
        }
    }
    Ok(bin)
}

fn a_token(t: &TokenType) -> token::TokenId {
    t.id()
}

fn bin_op(id: token::TokenId) -> Result<BinOp, Error> {
    Ok(match id {
        token::T_ADD => BinOp::Add,
        token::T_SUB => BinOp::Sub,
        token::T_MUL => BinOp::Mul,
        token::T_DIV => BinOp::Div,
        token::T_MOD => BinOp::Mod,
        token::T_POW => BinOp::Pow,
        token::T_ATAN2 => BinOp::Atan2,
        token::T_EQLC => BinOp::Eq,
        token::T_NEQ => BinOp::Ne,
        token::T_GTR => BinOp::Gt,
        token::T_LSS => BinOp::Lt,
        token::T_GTE => BinOp::Ge,
        token::T_LTE => BinOp::Le,
        token::T_LAND => BinOp::And,
        token::T_LOR => BinOp::Or,
        token::T_LUNLESS => BinOp::Unless,
        _ => {
            let shown = TokenType::new(id).to_string();
            return Err(Error::unsupported(format!("binary operator \"{shown}\"")));
        }
    })
}
