//! The data that goes in (fetched [`Series`]) and comes out ([`Value`]) of an evaluation, and
//! the JSON of Prometheus's HTTP API for results: values as strings formatted as Go's
//! `strconv.FormatFloat(v, 'f', -1, 64)` ("NaN", "+Inf", shortest round-trip decimals),
//! timestamps as seconds.

use serde_json::{json, Map, Value as Json};

/// Prometheus's staleness marker: a NaN with this exact bit pattern, written when a series
/// disappears from a scrape. A selector treats a series whose latest sample is stale as absent.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Whether a sample value is Prometheus's staleness marker (a plain NaN is a real value).
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// A sorted label set, `__name__` included.
pub type Labels = Vec<(String, String)>;

/// One fetched series: its labels (sorted by name, `__name__` included) and its samples
/// (millisecond timestamp, value), sorted by time; stale markers are kept as they were written.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Label pairs sorted by name.
    pub labels: Labels,
    /// (timestamp ms, value) sorted by timestamp.
    pub samples: Vec<(i64, f64)>,
}

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The element's labels, sorted.
    pub labels: Labels,
    /// Evaluation time in ms.
    pub t_ms: i64,
    /// The value.
    pub v: f64,
}

/// One series of a range result (or of a range vector selector in an instant query).
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    /// The series' labels, sorted.
    pub labels: Labels,
    /// (timestamp ms, value) sorted by time.
    pub points: Vec<(i64, f64)>,
}

/// The result of a query, one of Prometheus's four result types.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A single number at the evaluation time.
    Scalar {
        /// Evaluation time in ms.
        t_ms: i64,
        /// The number.
        v: f64,
    },
    /// A string literal at the evaluation time.
    String {
        /// Evaluation time in ms.
        t_ms: i64,
        /// The string.
        v: String,
    },
    /// An instant vector.
    Vector(Vec<Sample>),
    /// A range vector (range queries, or a matrix selector asked at one instant).
    Matrix(Vec<RangeSeries>),
}

impl Value {
    /// Prometheus's `resultType` for this value.
    pub fn result_type(&self) -> &'static str {
        match self {
            Value::Scalar { .. } => "scalar",
            Value::String { .. } => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }

    /// The `data` member of Prometheus's `/api/v1/query(_range)` answer.
    pub fn to_prometheus_json(&self) -> Json {
        let result = match self {
            Value::Scalar { t_ms, v } => json!([seconds(*t_ms), format_value(*v)]),
            Value::String { t_ms, v } => json!([seconds(*t_ms), v]),
            Value::Vector(samples) => Json::Array(
                samples
                    .iter()
                    .map(|s| {
                        json!({"metric": metric_json(&s.labels),
                               "value": [seconds(s.t_ms), format_value(s.v)]})
                    })
                    .collect(),
            ),
            Value::Matrix(series) => Json::Array(
                series
                    .iter()
                    .map(|s| {
                        let values: Vec<Json> = s
                            .points
                            .iter()
                            .map(|(t, v)| json!([seconds(*t), format_value(*v)]))
                            .collect();
                        json!({"metric": metric_json(&s.labels), "values": values})
                    })
                    .collect(),
            ),
        };
        json!({"resultType": self.result_type(), "result": result})
    }
}

fn metric_json(labels: &Labels) -> Json {
    let mut m = Map::new();
    for (k, v) in labels {
        m.insert(k.clone(), Json::String(v.clone()));
    }
    Json::Object(m)
}

/// A millisecond timestamp as the JSON number of seconds Prometheus writes.
fn seconds(t_ms: i64) -> Json {
    json!(t_ms as f64 / 1000.0)
}

/// A sample value formatted as Prometheus formats it (Go's `FormatFloat(v, 'f', -1, 64)`):
/// Rust's `Display` for `f64` is also the shortest round-trip digits without an exponent.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_formatted_as_prometheus_formats_them() {
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(1.0), "1");
        assert_eq!(format_value(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(format_value(1e21), "1000000000000000000000");
        assert_eq!(format_value(1e-7), "0.0000001");
        assert_eq!(format_value(-2.5), "-2.5");
        assert!(is_stale_nan(f64::from_bits(STALE_NAN_BITS)));
        assert!(!is_stale_nan(f64::NAN));
    }

    #[test]
    fn json_shapes_match_the_http_api() {
        let v = Value::Vector(vec![Sample {
            labels: vec![("__name__".into(), "up".into()), ("job".into(), "x".into())],
            t_ms: 1_500,
            v: 1.0,
        }]);
        assert_eq!(
            v.to_prometheus_json(),
            json!({"resultType": "vector",
                   "result": [{"metric": {"__name__": "up", "job": "x"}, "value": [1.5, "1"]}]})
        );
        let s = Value::Scalar {
            t_ms: 2_000,
            v: f64::NAN,
        };
        assert_eq!(
            s.to_prometheus_json(),
            json!({"resultType": "scalar", "result": [2.0, "NaN"]})
        );
    }
}
