//! Lookout's PromQL evaluator, independent of any store.
//!
//! Evaluation runs in two phases so an async store can feed a synchronous evaluator:
//!
//! 1. [`Query::parse`] checks the text (with promql-parser) and refuses anything Lookout does
//!    not implement with a `bad_data` error naming it.
//! 2. [`Query::selections`] lists, for each selector in the query, its label matchers and the
//!    time span (offset, `@` and lookback or range applied) whose samples the caller must fetch.
//! 3. [`eval_instant`] / [`eval_range`] evaluate over the fetched series, one `Vec<Series>` per
//!    selection in the same order, and return a [`Value`] whose
//!    [`to_prometheus_json`](Value::to_prometheus_json) is the `data` of Prometheus's HTTP API.
//!    A selection's [`Selection::downsampled`] says what its values must be: for
//!    [`Downsampled::Count`] (a selector under `count_over_time`) each sample's weight, so a
//!    caller answering from raw samples passes them through [`Selection::weigh_raw`] (else
//!    `count_over_time` sums the raw values).
//!
//! Semantics follow Prometheus 2 (Debian's 2.42, which the comparison test runs): a vector
//! selector sees the latest sample in `[t - lookback, t]`, a range selector the samples in
//! `[t - range, t]` (both ends closed; Prometheus 3 opened the left end), staleness markers end
//! a series, and rate/increase/delta extrapolate exactly as Prometheus's `extrapolatedRate`.
//! Every query is bounded: samples and points held ([`Limits::max_samples`], which is also the
//! caller's fetch budget), steps of a range query ([`Limits::max_steps`]), subquery steps,
//! regular expressions and wall time ([`Limits::timeout`]).
//!
//! Evaluation is synchronous CPU work (seconds for a large query): async callers run
//! [`eval_instant`] / [`eval_range`] (and [`Query::parse`], which parses on a thread of its
//! own) inside `tokio::task::spawn_blocking`, never on a runtime worker. A large aggregation
//! may add threads of its own; those come from one process-wide pool of one less than the
//! number of cores, so concurrent queries never oversubscribe the machine.

mod aggregate;
mod binary;
mod calendar;
mod error;
mod eval;
mod functions;
mod ir;
mod matcher;
mod relabel;
mod sliding;
mod text;
mod value;
mod window;

use std::time::Duration;

pub use error::{Error, ErrorKind};
pub use matcher::{MatchOp, Matcher};
pub use text::{is_label_name, is_metric_name, quote, selector};
pub use value::{
    format_value, is_stale_nan, Labels, RangeSeries, Sample, Series, Value, STALE_NAN_BITS,
};

/// Prometheus's default lookback (`--query.lookback-delta`): 5 minutes.
pub const DEFAULT_LOOKBACK_MS: i64 = 5 * 60 * 1000;

/// Budgets of one query. Exceeding one answers a clear error instead of exhausting the process.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Samples loaded plus points materialised, summed over the whole query (Prometheus's
    /// `--query.max-samples`, 50,000,000 there; 25,000,000 here, about 400 MB at worst).
    ///
    /// It is also the caller's fetch budget: the evaluator can only count samples once they
    /// are fetched, so the caller must stop loading the [`Query::selections`] once the
    /// samples it holds for this query (summed over all selections) exceed it, and answer
    /// [`Error::too_many_samples`] instead of evaluating.
    pub max_samples: usize,
    /// Intervals of a range query, `(end - start) / step` (Prometheus refuses more than 11,000,
    /// so 11,001 points are allowed).
    pub max_steps: usize,
    /// Wall time of one evaluation.
    pub timeout: Duration,
    /// How far back a vector selector looks for a sample.
    pub lookback_ms: i64,
    /// The step of a subquery written without one (`x[1h:]`): Prometheus uses its global
    /// `evaluation_interval`, 1 minute by default.
    pub subquery_step_ms: i64,
    /// Steps of all subquery grids of one evaluation together (100 range queries' worth):
    /// `x[6h:1ms]` is refused before its 21.6 M-step grid is allocated.
    pub max_subquery_steps: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_samples: 25_000_000,
            max_steps: 11_000,
            timeout: Duration::from_secs(120),
            lookback_ms: DEFAULT_LOOKBACK_MS,
            subquery_step_ms: 60_000,
            max_subquery_steps: 11_000 * 100,
        }
    }
}

/// What to fetch for one selector: series matching all `matchers`, samples with
/// `from_ms <= t <= to_ms` (stale markers included).
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// Conditions a series' labels must all meet (`__name__` for the metric name).
    pub matchers: Vec<Matcher>,
    /// First sample time needed, inclusive.
    pub from_ms: i64,
    /// Last sample time needed, inclusive.
    pub to_ms: i64,
    /// Which value of a downsampled bucket stands for it, from the range function directly
    /// around the selector.
    pub downsampled: Downsampled,
}

/// Which aggregate of a downsampled bucket a selection wants where its range reaches into a
/// tier, so `max_over_time` sees each bucket's maximum rather than its mean, as Thanos reads
/// its aggregates. A caller without tiers answers every selection from raw samples, except
/// [`Downsampled::Count`] (see [`Selection::weigh_raw`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Downsampled {
    /// The caller's default: the counter for counters, the bucket's mean for the rest.
    #[default]
    Auto,
    /// Each bucket's minimum (`min_over_time`).
    Min,
    /// Each bucket's maximum (`max_over_time`).
    Max,
    /// Each bucket's sum (`sum_over_time`).
    Sum,
    /// Weights: each bucket's sample count, and 1 for each raw sample, summed by
    /// `count_over_time` (a bucket is one point but stands for many samples).
    Count,
}

impl Selection {
    /// Turns raw samples into what this selection asks for: for [`Downsampled::Count`] each
    /// sample (stale markers aside) weighs 1; the others take raw values as they are.
    pub fn weigh_raw(&self, samples: &mut [(i64, f64)]) {
        if self.downsampled == Downsampled::Count {
            for (_, v) in samples.iter_mut().filter(|(_, v)| !is_stale_nan(*v)) {
                *v = 1.0;
            }
        }
    }
}

/// A parsed, checked query.
#[derive(Debug, Clone)]
pub struct Query {
    text: String,
    root: ir::Node,
    sels: Vec<ir::Sel>,
    limits: Limits,
}

impl Query {
    /// Parses and checks a query; syntax errors and unsupported features are `bad_data`.
    pub fn parse(text: &str) -> Result<Query, Error> {
        // The parser is a generated LR parser: bound the text so a huge query cannot make it
        // work for long (Prometheus's own limit is the HTTP form size).
        if text.len() > 64 * 1024 {
            return Err(Error::bad_data("query text is longer than 65,536 bytes"));
        }
        // The parser, the translation and the evaluation all recurse once per level of the
        // syntax tree, and 64 KiB of `((((` or `1+1+1` would overflow the stack (an abort, not
        // an error). Bound an over-estimate of the depth before parsing.
        let depth = depth_estimate(text);
        if depth > MAX_DEPTH {
            return Err(Error::bad_data(format!(
                "query is too complex: {depth} operators and nested brackets, the limit is {MAX_DEPTH}"
            )));
        }
        // The parser compiles every matcher's regular expression with the regex crate's
        // default limits (10 MiB each): count and size them first.
        check_regex_literals(text)?;
        let (root, lowering) = parse_on_a_large_stack(text)?;
        Ok(Query {
            text: text.to_string(),
            root,
            sels: lowering.sels,
            limits: Limits::default(),
        })
    }

    /// The same query with other budgets.
    pub fn with_limits(mut self, limits: Limits) -> Query {
        self.limits = limits;
        self
    }

    /// The budgets this query runs under.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The query text as given.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The data to fetch, one [`Selection`] per selector in query order, for a range query
    /// from `start_ms` to `end_ms` (equal for an instant query). Vector selectors reach back
    /// by the query's own [`Limits::lookback_ms`], the one it evaluates with. The caller
    /// enforces the fetch budget ([`Limits::max_samples`]) while loading them.
    pub fn selections(
        &self,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<Vec<Selection>, Error> {
        check_range(start_ms, end_ms, step_ms, &self.limits)?;
        let lookback_ms = self.limits.lookback_ms;
        Ok(self
            .sels
            .iter()
            .map(|s| {
                let window = s.range_ms.unwrap_or(lookback_ms);
                // Each subquery around the selector moves its evaluation span back by its
                // offset and widens it by its range (or pins it with `@`).
                let mut span = (start_ms, end_ms);
                for e in &s.enclosing {
                    if let Some(at) = e.at {
                        let t = eval::at_ms(at, start_ms, end_ms);
                        span = (t, t);
                    }
                    span = (
                        span.0
                            .saturating_sub(e.offset_ms)
                            .saturating_sub(e.range_ms),
                        span.1.saturating_sub(e.offset_ms),
                    );
                }
                let (first, last) = match s.at {
                    Some(at) => {
                        let t = eval::at_ms(at, start_ms, end_ms);
                        (t, t)
                    }
                    None => span,
                };
                Selection {
                    matchers: s.matchers.clone(),
                    from_ms: first.saturating_sub(s.offset_ms).saturating_sub(window),
                    to_ms: last.saturating_sub(s.offset_ms),
                    downsampled: s.downsampled,
                }
            })
            .collect())
    }
}

/// Parses, measures and lowers `text` on a thread of its own with a large stack: the parser
/// (and the parser's syntax tree when it is dropped) recurse once per level, and no estimate
/// made before parsing can be trusted to catch every deep text. The depth of the parsed tree
/// is measured without recursion and refused past [`MAX_DEPTH`] before anything recursive
/// (lowering, evaluation) walks it; the tree is dropped on the large stack.
fn parse_on_a_large_stack(text: &str) -> Result<(ir::Node, ir::Lowering), Error> {
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("promql-parse".into())
            .stack_size(PARSE_STACK_BYTES)
            .spawn_scoped(scope, || {
                let expr = promql_parser::parser::parse(text).map_err(Error::bad_data)?;
                let depth = tree_depth(&expr);
                if depth > MAX_DEPTH {
                    return Err(Error::bad_data(format!(
                        "query is too complex: {depth} levels of nested operators, calls and brackets, the limit is {MAX_DEPTH}"
                    )));
                }
                let mut lowering = ir::Lowering::default();
                let root = ir::lower(&expr, &mut lowering)?;
                if lowering.regexes > matcher::MAX_REGEXES {
                    return Err(too_many_regexes(lowering.regexes));
                }
                Ok((root, lowering))
            })
            .map_err(|e| Error::execution(format!("cannot start the query parser: {e}")))?;
        worker
            .join()
            .unwrap_or_else(|_| Err(Error::execution("the query parser failed")))
    })
}

/// The stack of the parsing thread: 64 MiB of address space, touched only as deep as a
/// query's nesting goes.
const PARSE_STACK_BYTES: usize = 64 * 1024 * 1024;

/// The depth of a parsed syntax tree (leaves count 0, each operator, call, bracket,
/// aggregation or subquery above them 1), walked with an explicit stack.
fn tree_depth(expr: &promql_parser::parser::Expr) -> usize {
    use promql_parser::parser::Expr;
    let mut max = 0;
    let mut todo: Vec<(&Expr, usize)> = vec![(expr, 0)];
    while let Some((e, d)) = todo.pop() {
        max = max.max(d);
        match e {
            Expr::Aggregate(a) => {
                todo.push((&a.expr, d + 1));
                if let Some(p) = &a.param {
                    todo.push((p, d + 1));
                }
            }
            Expr::Unary(u) => todo.push((&u.expr, d + 1)),
            Expr::Binary(b) => {
                todo.push((&b.lhs, d + 1));
                todo.push((&b.rhs, d + 1));
            }
            Expr::Paren(p) => todo.push((&p.expr, d + 1)),
            Expr::Subquery(s) => todo.push((&s.expr, d + 1)),
            Expr::Call(c) => todo.extend(c.args.args.iter().map(|a| (&**a, d + 1))),
            Expr::NumberLiteral(_)
            | Expr::StringLiteral(_)
            | Expr::VectorSelector(_)
            | Expr::MatrixSelector(_)
            | Expr::Extension(_) => {}
        }
    }
    max
}

fn too_many_regexes(n: usize) -> Error {
    Error::bad_data(format!(
        "query has {n} regular expressions, the limit is {}",
        matcher::MAX_REGEXES
    ))
}

/// Refuses, before parsing, a query with more regex matchers (`=~`/`!~` followed by a string)
/// than [`matcher::MAX_REGEXES`] or with one whose compiled program is too big. The string's
/// escapes are undone roughly (`\\` and escaped quotes), which does not change the size of
/// what compiles.
fn check_regex_literals(text: &str) -> Result<(), Error> {
    let chars: Vec<char> = text.chars().collect();
    let (mut count, mut i) = (0usize, 0usize);
    let mut prev: [char; 2] = [' ', ' '];
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '"' | '\'' | '`' => {
                let mut lit = String::new();
                while i < chars.len() && chars[i] != c {
                    if chars[i] == '\\' && c != '`' && i + 1 < chars.len() {
                        let e = chars[i + 1];
                        if !matches!(e, '\\' | '"' | '\'') {
                            lit.push('\\');
                        }
                        lit.push(e);
                        i += 2;
                        continue;
                    }
                    lit.push(chars[i]);
                    i += 1;
                }
                i += 1;
                if matches!(prev, ['=' | '!', '~']) {
                    count += 1;
                    if count > matcher::MAX_REGEXES {
                        return Err(too_many_regexes(count));
                    }
                    if matcher::too_big(&lit) {
                        return Err(Error::bad_data(format!(
                            "regular expression {lit:?} compiles past the size limit"
                        )));
                    }
                }
                prev = [' ', c];
            }
            c if c.is_whitespace() => {}
            c => prev = [prev[1], c],
        }
    }
    Ok(())
}

/// The most operators plus bracket nesting a query may have (hand-written and Grafana queries
/// stay far below; the stack holds several times more).
const MAX_DEPTH: usize = 128;

/// An upper bound of the syntax tree's depth: every operator character or keyword outside
/// string literals and comments, plus the deepest bracket nesting. A cheap first refusal; the
/// parsed tree's own depth is the check that counts ([`tree_depth`]).
fn depth_estimate(text: &str) -> usize {
    let (mut ops, mut depth, mut max_depth) = (0usize, 0usize, 0usize);
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut word = String::new();
    let mut comment = false;
    for c in text.chars() {
        if comment {
            comment = c != '\n';
            continue;
        }
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' && q != '`' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        // Keywords are case-insensitive in PromQL (`up OR up`).
        if ["and", "or", "unless", "atan2"]
            .iter()
            .any(|k| word.eq_ignore_ascii_case(k))
        {
            ops += 1;
        }
        word.clear();
        match c {
            // A comment runs to the end of the line; quotes inside it start no string.
            '#' => comment = true,
            '"' | '\'' | '`' => quote = Some(c),
            '(' | '[' | '{' => {
                depth += 1;
                max_depth = max_depth.max(depth);
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            '+' | '-' | '*' | '/' | '%' | '^' | '=' | '!' | '<' | '>' => ops += 1,
            _ => {}
        }
    }
    ops + max_depth
}

fn check_range(start_ms: i64, end_ms: i64, step_ms: i64, limits: &Limits) -> Result<usize, Error> {
    if end_ms < start_ms {
        return Err(Error::bad_data(
            "end timestamp must not be before start time",
        ));
    }
    if step_ms <= 0 {
        return Err(Error::bad_data(
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    // Prometheus compares the intervals, not the points: (end - start) / step = 11,000 is
    // allowed (11,001 points), one more is refused. This is the only place the limit is checked.
    let intervals = ((i128::from(end_ms) - i128::from(start_ms)) / i128::from(step_ms)) as u128;
    if intervals > limits.max_steps as u128 {
        return Err(Error::bad_data(format!(
            "exceeded maximum resolution of {} points per timeseries. Try decreasing the query resolution (?step=XX)",
            grouped(limits.max_steps)
        )));
    }
    Ok(intervals as usize + 1)
}

/// `11000` as Prometheus writes it in its message: `11,000`.
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A duration parameter as Prometheus's HTTP API reads one (`step`, `timeout`): seconds as a
/// float (`15`, `0.5`) or a duration (`1m30s`, `5m`, `1d`), in milliseconds. `None` for
/// anything else, a negative or non-finite number, or one past `i64` milliseconds.
pub fn parse_duration_ms(text: &str) -> Option<i64> {
    if let Ok(secs) = text.parse::<f64>() {
        let ms = secs * 1000.0;
        // Checked before converting: `Duration::from_secs_f64` panics on these.
        return (ms.is_finite() && ms >= 0.0 && ms < i64::MAX as f64).then(|| ms.round() as i64);
    }
    let d = promql_parser::util::parse_duration(text).ok()?;
    i64::try_from(d.as_millis()).ok()
}

/// Evaluates the query at one instant over the fetched series (one `Vec` per selection, each
/// answered as its [`Selection::downsampled`] asks: raw samples through
/// [`Selection::weigh_raw`]).
pub fn eval_instant(query: &Query, t_ms: i64, fetched: &[Vec<Series>]) -> Result<Value, Error> {
    eval::run(query, t_ms, t_ms, 1, true, fetched)
}

/// Evaluates the query at every step from `start_ms` to `end_ms`; the result is a matrix sorted
/// by labels, as Prometheus's `/api/v1/query_range` answers.
pub fn eval_range(
    query: &Query,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
    fetched: &[Vec<Series>],
) -> Result<Value, Error> {
    check_range(start_ms, end_ms, step_ms, &query.limits)?;
    eval::run(query, start_ms, end_ms, step_ms, false, fetched)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_resolution_allows_11000_intervals_as_prometheus_does() {
        let limits = Limits::default();
        // 11,000 intervals: 11,001 points, allowed.
        assert_eq!(check_range(0, 11_000_000, 1_000, &limits).unwrap(), 11_001);
        // One interval more is refused with Prometheus's message.
        let e = check_range(0, 11_001_000, 1_000, &limits).unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadData);
        assert!(
            e.message
                .contains("exceeded maximum resolution of 11,000 points per timeseries"),
            "{}",
            e.message
        );
        // A partial last interval does not count.
        assert!(check_range(0, 11_000_999, 1_000, &limits).is_ok());
    }

    #[test]
    fn durations_are_read_as_prometheus_reads_them() {
        assert_eq!(parse_duration_ms("15"), Some(15_000));
        assert_eq!(parse_duration_ms("0.5"), Some(500));
        assert_eq!(parse_duration_ms("1m30s"), Some(90_000));
        assert_eq!(parse_duration_ms("1d"), Some(86_400_000));
        assert_eq!(parse_duration_ms("250ms"), Some(250));
        for bad in ["", "-1", "NaN", "inf", "1e300", "5 minutes", "m"] {
            assert_eq!(parse_duration_ms(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_parsed_tree_is_measured_even_when_the_estimate_is_bypassed() {
        // Without the estimate in front: the parser runs on its own large stack and the
        // parsed tree's depth refuses the query.
        for text in [
            format!("{}1{}", "(".repeat(20_000), ")".repeat(20_000)),
            vec!["up"; 5_000].join(" OR "),
        ] {
            let e = parse_on_a_large_stack(&text).unwrap_err();
            assert!(e.message.contains("too complex"), "{}", e.message);
        }
        let (_, lowering) = parse_on_a_large_stack("sum(rate(x[5m])) or y").unwrap();
        assert_eq!(lowering.sels.len(), 2);
    }
}
