//! k6 thresholds: `metric{tag:value}` keys, `p(95)<500`-style expressions, their parsing (caught
//! before the run, with what was expected) and their evaluation against a metric's aggregate.
//!
//! The grammar is k6's (`using-k6/thresholds.md`); written by hand because it is tiny and the
//! error messages are ours.

use std::time::Duration;

use serde::Deserialize;

/// What a metric records, which decides the aggregations a threshold may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A running total: `count`, `rate` (per second).
    Counter,
    /// A current value: `value` (also min and max in the summary).
    Gauge,
    /// A share of non-zero samples: `rate`.
    Rate,
    /// A distribution, in milliseconds for times: `avg`, `min`, `med`, `max`, `p(N)`.
    Trend,
}

/// The built-in metrics and their kinds (k6's names; Lookout has no custom metrics).
pub const METRICS: &[(&str, MetricKind)] = &[
    ("http_reqs", MetricKind::Counter),
    ("http_req_duration", MetricKind::Trend),
    ("http_req_blocked", MetricKind::Trend),
    ("http_req_connecting", MetricKind::Trend),
    ("http_req_tls_handshaking", MetricKind::Trend),
    ("http_req_sending", MetricKind::Trend),
    ("http_req_waiting", MetricKind::Trend),
    ("http_req_receiving", MetricKind::Trend),
    ("http_req_failed", MetricKind::Rate),
    ("iterations", MetricKind::Counter),
    ("iteration_duration", MetricKind::Trend),
    ("dropped_iterations", MetricKind::Counter),
    ("data_sent", MetricKind::Counter),
    ("data_received", MetricKind::Counter),
    ("checks", MetricKind::Rate),
    ("vus", MetricKind::Gauge),
    ("vus_max", MetricKind::Gauge),
];

/// The kind of a built-in metric.
pub fn kind_of(metric: &str) -> Option<MetricKind> {
    METRICS.iter().find(|(n, _)| *n == metric).map(|(_, k)| *k)
}

/// A metric, or a sub-metric selected by tags (`http_req_duration{scenario:api}`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MetricRef {
    /// The built-in metric.
    pub metric: String,
    /// Tag filters, all of which must match, sorted by key.
    pub tags: Vec<(String, String)>,
}

impl MetricRef {
    /// Parses `name` or `name{tag:value,...}`.
    pub fn parse(key: &str) -> Result<Self, String> {
        let key = key.trim();
        let (name, tags) = match key.find('{') {
            None => (key, Vec::new()),
            Some(open) => {
                let inner = key[open + 1..]
                    .strip_suffix('}')
                    .ok_or_else(|| format!("`{key}`: a tag filter must end with `}}`"))?;
                let mut tags = Vec::new();
                for pair in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once(':').ok_or_else(|| {
                        format!("`{key}`: tag filter `{pair}` must look like `tag:value`")
                    })?;
                    tags.push((k.trim().to_string(), v.trim().to_string()));
                }
                if tags.is_empty() {
                    return Err(format!("`{key}`: empty tag filter"));
                }
                tags.sort();
                (key[..open].trim(), tags)
            }
        };
        if kind_of(name).is_none() {
            let known: Vec<&str> = METRICS.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "unknown metric `{name}` (known: {})",
                known.join(", ")
            ));
        }
        Ok(MetricRef {
            metric: name.to_string(),
            tags,
        })
    }

    /// The metric's kind.
    pub fn kind(&self) -> MetricKind {
        kind_of(&self.metric).unwrap_or(MetricKind::Counter)
    }

    /// The value of tag `key` this sub-metric requires, if any.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl std::fmt::Display for MetricRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.metric)?;
        if !self.tags.is_empty() {
            let tags: Vec<String> = self.tags.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            write!(f, "{{{}}}", tags.join(","))?;
        }
        Ok(())
    }
}

/// An aggregation a threshold compares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Agg {
    Count,
    Rate,
    Value,
    Avg,
    Min,
    Max,
    Med,
    /// Percentile, 0..=100.
    P(f64),
}

impl std::fmt::Display for Agg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Agg::Count => f.write_str("count"),
            Agg::Rate => f.write_str("rate"),
            Agg::Value => f.write_str("value"),
            Agg::Avg => f.write_str("avg"),
            Agg::Min => f.write_str("min"),
            Agg::Max => f.write_str("max"),
            Agg::Med => f.write_str("med"),
            Agg::P(p) => write!(f, "p({p})"),
        }
    }
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Op::Lt => left < right,
            Op::Le => left <= right,
            Op::Gt => left > right,
            Op::Ge => left >= right,
            Op::Eq => left == right,
            Op::Ne => left != right,
        }
    }
}

/// `<aggregation> <op> <value>`, e.g. `p(95)<500`.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// As written, for reports (`p(95)<500`).
    pub source: String,
    pub agg: Agg,
    pub op: Op,
    pub value: f64,
}

impl Expr {
    /// Parses an expression and checks the aggregation suits `kind`.
    pub fn parse(text: &str, kind: MetricKind) -> Result<Self, String> {
        let source = text.trim().to_string();
        let ops = [
            ("===", Op::Eq),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("<", Op::Lt),
            (">", Op::Gt),
        ];
        let (at, op_text, op) = ops
            .iter()
            .filter_map(|(t, op)| source.find(t).map(|at| (at, *t, *op)))
            .min_by_key(|(at, t, _)| (*at, std::cmp::Reverse(t.len())))
            .ok_or_else(|| {
                format!("`{source}`: expected `<aggregation> <op> <value>` like `p(95)<500`")
            })?;
        let agg_text = source[..at].trim();
        let value_text = source[at + op_text.len()..].trim();
        let agg = parse_agg(agg_text).map_err(|e| format!("`{source}`: {e}"))?;
        let allowed: &[&str] = match kind {
            MetricKind::Counter => &["count", "rate"],
            MetricKind::Gauge => &["value"],
            MetricKind::Rate => &["rate"],
            MetricKind::Trend => &["avg", "min", "max", "med", "p(N)"],
        };
        let fits = matches!(
            (kind, agg),
            (MetricKind::Counter, Agg::Count | Agg::Rate)
                | (MetricKind::Gauge, Agg::Value)
                | (MetricKind::Rate, Agg::Rate)
                | (
                    MetricKind::Trend,
                    Agg::Avg | Agg::Min | Agg::Max | Agg::Med | Agg::P(_)
                )
        );
        if !fits {
            return Err(format!(
                "`{source}`: `{agg_text}` does not apply to this metric (use {})",
                allowed.join(", ")
            ));
        }
        let value: f64 = value_text
            .parse()
            .map_err(|_| format!("`{source}`: `{value_text}` is not a number"))?;
        Ok(Expr {
            source,
            agg,
            op,
            value,
        })
    }

    /// Whether the threshold holds for `observed` (the aggregation's value).
    pub fn holds(&self, observed: f64) -> bool {
        self.op.holds(observed, self.value)
    }
}

fn parse_agg(text: &str) -> Result<Agg, String> {
    Ok(match text {
        "count" => Agg::Count,
        "rate" => Agg::Rate,
        "value" => Agg::Value,
        "avg" => Agg::Avg,
        "min" => Agg::Min,
        "max" => Agg::Max,
        "med" => Agg::Med,
        t if t.starts_with("p(") && t.ends_with(')') => {
            let p: f64 = t[2..t.len() - 1]
                .trim()
                .parse()
                .map_err(|_| format!("`{t}`: the percentile must be a number"))?;
            if !(0.0..=100.0).contains(&p) {
                return Err(format!("`{t}`: the percentile must be between 0 and 100"));
            }
            Agg::P(p)
        }
        "" => return Err("the aggregation is missing".into()),
        t => {
            return Err(format!(
                "unknown aggregation `{t}` (count, rate, value, avg, min, max, med, p(N))"
            ))
        }
    })
}

/// One threshold as written in a scenario file: a string, or k6's object form.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawThreshold {
    Plain(String),
    Full(RawThresholdObject),
}

/// `{threshold, abortOnFail, delayAbortEval}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawThresholdObject {
    pub threshold: String,
    #[serde(default)]
    pub abort_on_fail: bool,
    #[serde(default)]
    pub delay_abort_eval: Option<String>,
}

/// A parsed threshold.
#[derive(Debug, Clone)]
pub struct Threshold {
    pub metric: MetricRef,
    pub expr: Expr,
    /// Stop the whole run as soon as this fails.
    pub abort_on_fail: bool,
    /// Hold off the abort check this long after the start.
    pub delay_abort_eval: Duration,
}

impl Threshold {
    /// Parses one entry of `thresholds`.
    pub fn parse(metric: &MetricRef, raw: &RawThreshold) -> Result<Self, String> {
        let (text, abort, delay) = match raw {
            RawThreshold::Plain(t) => (t.as_str(), false, None),
            RawThreshold::Full(o) => (
                o.threshold.as_str(),
                o.abort_on_fail,
                o.delay_abort_eval.as_deref(),
            ),
        };
        let expr = Expr::parse(text, metric.kind())?;
        let delay_abort_eval = match delay {
            Some(d) => crate::duration::parse(d).map_err(|e| format!("delayAbortEval: {e}"))?,
            None => Duration::ZERO,
        };
        Ok(Threshold {
            metric: metric.clone(),
            expr,
            abort_on_fail: abort,
            delay_abort_eval,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k6_expressions_parse_and_evaluate() {
        let e = Expr::parse("p(95)<500", MetricKind::Trend).unwrap();
        assert_eq!(e.agg, Agg::P(95.0));
        assert!(e.holds(499.9) && !e.holds(500.0));
        let e = Expr::parse("p(99.9) <= 1.5", MetricKind::Trend).unwrap();
        assert_eq!(e.agg, Agg::P(99.9));
        assert!(e.holds(1.5));
        let e = Expr::parse("rate<0.01", MetricKind::Rate).unwrap();
        assert!(e.holds(0.0) && !e.holds(0.02));
        let e = Expr::parse("count>=500", MetricKind::Counter).unwrap();
        assert!(e.holds(500.0));
        assert!(Expr::parse("value==3", MetricKind::Gauge)
            .unwrap()
            .holds(3.0));
        assert!(Expr::parse("avg!=3", MetricKind::Trend).unwrap().holds(2.0));
    }

    #[test]
    fn bad_expressions_say_what_was_expected() {
        assert!(Expr::parse("p(101)<5", MetricKind::Trend)
            .unwrap_err()
            .contains("between 0 and 100"));
        assert!(Expr::parse("p(95)", MetricKind::Trend)
            .unwrap_err()
            .contains("expected"));
        assert!(Expr::parse("avg<5", MetricKind::Rate)
            .unwrap_err()
            .contains("use rate"));
        assert!(Expr::parse("p95<5", MetricKind::Trend)
            .unwrap_err()
            .contains("unknown aggregation"));
        assert!(Expr::parse("rate<abc", MetricKind::Rate)
            .unwrap_err()
            .contains("not a number"));
    }

    #[test]
    fn sub_metric_keys_parse() {
        let m =
            MetricRef::parse("http_req_duration{ scenario:api, expected_response:true }").unwrap();
        assert_eq!(m.metric, "http_req_duration");
        assert_eq!(m.tag("scenario"), Some("api"));
        assert_eq!(m.tag("expected_response"), Some("true"));
        assert_eq!(
            m.to_string(),
            "http_req_duration{expected_response:true,scenario:api}"
        );
        assert!(MetricRef::parse("http_req_durations")
            .unwrap_err()
            .contains("unknown metric"));
        assert!(MetricRef::parse("http_reqs{scenario}").is_err());
        let g = MetricRef::parse("checks{group:::login}").unwrap();
        assert_eq!(g.tag("group"), Some("::login"));
    }
}
