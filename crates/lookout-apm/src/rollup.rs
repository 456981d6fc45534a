//! RED aggregates: what one rollup row holds (count, errors, sum, min, max and a sketch of
//! durations in milliseconds), and the figures every page derives from merged rows.
//!
//! Rollup rows are keyed by an error flag among other things, so a [`Red`] merged from rows
//! also knows the distribution of the successful requests alone — which Apdex needs, since a
//! failed request is "frustrated" whatever its duration.

use crate::sketch::{CorruptSketch, Sketch};

/// Rollup tiers: minute rows are merged into hour and day rows as they are written.
pub const TIERS: [(i64, i64); 3] = [(0, 60_000), (1, 3_600_000), (2, 86_400_000)];

/// The bucket start of `ms` in a tier of `width` milliseconds.
pub fn bucket(ms: i64, width: i64) -> i64 {
    ms.div_euclid(width) * width
}

/// One rollup cell's values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Agg {
    /// Spans.
    pub count: u64,
    /// Failed spans.
    pub errors: u64,
    /// Sum of durations, ms.
    pub sum: f64,
    /// Shortest duration, ms.
    pub min: f64,
    /// Longest duration, ms.
    pub max: f64,
    /// Distribution of durations, ms.
    pub sketch: Sketch,
}

impl Agg {
    /// Records one span.
    pub fn add(&mut self, duration_ms: f64, error: bool) {
        if self.count == 0 || duration_ms < self.min {
            self.min = duration_ms;
        }
        if self.count == 0 || duration_ms > self.max {
            self.max = duration_ms;
        }
        self.count += 1;
        self.errors += u64::from(error);
        self.sum += duration_ms;
        self.sketch.add(duration_ms);
    }

    /// Adds another cell's values (exact).
    pub fn merge(&mut self, o: &Agg) {
        if o.count == 0 {
            return;
        }
        if self.count == 0 || o.min < self.min {
            self.min = o.min;
        }
        if self.count == 0 || o.max > self.max {
            self.max = o.max;
        }
        self.count += o.count;
        self.errors += o.errors;
        self.sum += o.sum;
        self.sketch.merge(&o.sketch);
    }
}

/// Figures over any set of rollup rows.
#[derive(Debug, Clone, Default)]
pub struct Red {
    /// Every span.
    pub all: Agg,
    /// Durations of the spans that did not fail.
    pub ok: Sketch,
}

impl Red {
    /// Adds a stored row (its sketch still encoded).
    #[allow(clippy::too_many_arguments)]
    pub fn add_row(
        &mut self,
        error: bool,
        count: i64,
        errors: i64,
        sum: f64,
        min: f64,
        max: f64,
        sketch: &[u8],
    ) -> Result<(), CorruptSketch> {
        // Decoded straight into the sums (no sketch built per row: queries fold hundreds of
        // thousands of rows, and the allocation was a large part of each). A corrupt sketch is
        // an error before the counts are added; bins read before the corruption stay merged.
        self.all.sketch.decode_into(sketch)?;
        if !error {
            self.ok.decode_into(sketch)?;
        }
        let count = count.max(0) as u64;
        if count > 0 {
            self.all.min = if self.all.count == 0 {
                min
            } else {
                self.all.min.min(min)
            };
            self.all.max = if self.all.count == 0 {
                max
            } else {
                self.all.max.max(max)
            };
        }
        self.all.count += count;
        self.all.errors += errors.max(0) as u64;
        self.all.sum += sum;
        Ok(())
    }

    /// Adds another set of rows' figures.
    pub fn merge(&mut self, o: &Red) {
        self.all.merge(&o.all);
        self.ok.merge(&o.ok);
    }

    /// Spans.
    pub fn count(&self) -> u64 {
        self.all.count
    }

    /// Failed share, 0..1 (0 with no spans).
    pub fn error_rate(&self) -> f64 {
        if self.all.count == 0 {
            0.0
        } else {
            self.all.errors as f64 / self.all.count as f64
        }
    }

    /// Mean duration, ms.
    pub fn avg(&self) -> Option<f64> {
        (self.all.count > 0).then(|| self.all.sum / self.all.count as f64)
    }

    /// The `q`-quantile of durations, ms, clamped to the exact min and max.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.all
            .sketch
            .quantile(q)
            .map(|v| v.clamp(self.all.min, self.all.max))
    }

    /// Apdex for target `t_ms`: satisfied (≤ T, no error) plus half the tolerating (≤ 4T, no
    /// error), over all; failed requests count as frustrated, as APM pages define it.
    pub fn apdex(&self, t_ms: f64) -> Option<f64> {
        if self.all.count == 0 {
            return None;
        }
        let satisfied = self.ok.count_at_most(t_ms) as f64;
        let tolerating = self.ok.count_at_most(4.0 * t_ms) as f64 - satisfied;
        Some((satisfied + tolerating / 2.0) / self.all.count as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apdex_counts_failures_as_frustrated() {
        let mut red = Red::default();
        let mut ok = Agg::default();
        for ms in [100.0, 200.0, 900.0, 5_000.0] {
            ok.add(ms, false);
        }
        let mut failed = Agg::default();
        failed.add(50.0, true);
        for (agg, err) in [(&ok, false), (&failed, true)] {
            red.add_row(
                err,
                agg.count as i64,
                agg.errors as i64,
                agg.sum,
                agg.min,
                agg.max,
                &agg.sketch.encode(),
            )
            .unwrap();
        }
        // T = 500 ms: 2 satisfied, 1 tolerating (900 ≤ 2000), 1 frustrated, 1 failed.
        assert_eq!(red.apdex(500.0), Some(2.5 / 5.0));
        assert_eq!(red.count(), 5);
        assert!((red.error_rate() - 0.2).abs() < 1e-12);
        assert_eq!(red.quantile(0.0), Some(50.0));
        assert_eq!(
            red.quantile(1.0).map(|v| (v - 5_000.0).abs() <= 50.0),
            Some(true)
        );
    }

    #[test]
    fn buckets_align_to_their_tier() {
        assert_eq!(bucket(3_599_999, 3_600_000), 0);
        assert_eq!(bucket(61_000, 60_000), 60_000);
    }
}

/// What one export adds to the rollups, computed where its spans are decoded and stored with
/// them in one transaction: the rollup consumer then folds one small row per export instead of
/// reading every span back.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Part {
    /// RED cells per minute.
    pub cells: Vec<PartCell>,
    /// Calls to databases and external hosts per minute.
    pub calls: Vec<PartCall>,
    /// Spans that may be one end of a call between services.
    pub links: Vec<Link>,
    /// Database statements by the transaction that issued them.
    #[serde(default)]
    pub statements: Vec<PartStatement>,
}

/// Calls of one normalised statement from one transaction in one minute: the request span of
/// the same trace and service, found in the same export (an SDK exports a request's spans
/// together unless a batch boundary falls between them; such calls are left out here).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PartStatement {
    /// Minute start, ms.
    pub minute: i64,
    /// Normalised statement.
    pub statement: String,
    /// Service.
    pub service: String,
    /// Transaction (the request span's operation).
    pub transaction: String,
    /// Calls.
    pub calls: i64,
    /// Sum of durations, ms.
    pub sum_ms: f64,
}

/// One minute's RED values for one key.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PartCell {
    /// Minute start, ms.
    pub minute: i64,
    /// Service.
    pub service: String,
    /// Category (`request`, `db`, `external`).
    pub category: String,
    /// Operation.
    pub operation: String,
    /// HTTP status class.
    pub status_class: String,
    /// Whether these spans failed.
    pub error: bool,
    /// Spans.
    pub count: u64,
    /// Sum of durations, ms.
    pub sum: f64,
    /// Shortest, ms.
    pub min: f64,
    /// Longest, ms.
    pub max: f64,
    /// Encoded sketch of durations (hex).
    pub sketch: String,
}

/// Calls from a service to a database or host in one minute.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PartCall {
    /// Minute start, ms.
    pub minute: i64,
    /// Calling service.
    pub source: String,
    /// Database system or host.
    pub target: String,
    /// `db` or `external`.
    pub kind: String,
    /// Calls.
    pub count: i64,
    /// Failed calls.
    pub errors: i64,
    /// Sum of durations, ms.
    pub sum_ms: f64,
}

/// A client span (a call out) or a request span with a parent (a call in).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Link {
    /// Trace.
    pub trace_id: String,
    /// Span.
    pub span_id: String,
    /// Parent span (request spans).
    pub parent: Option<String>,
    /// Service.
    pub service: String,
    /// True for a client span.
    pub client: bool,
    /// Start, ms.
    pub start_ms: i64,
    /// Duration, ms.
    pub duration_ms: f64,
    /// Failed.
    pub error: bool,
}

/// First byte of a packed part: JSON, zstd-compressed.
const PACKED: u8 = 1;

impl Part {
    /// The part as stored: its JSON compressed (about 6x smaller: a part repeats its field
    /// names and services in every cell, and parts were most of the bytes ingest wrote).
    pub fn pack(&self) -> Vec<u8> {
        let json = serde_json::to_vec(self).unwrap_or_default();
        let mut out = vec![PACKED];
        out.extend(crate::block::compress(&json));
        out
    }

    /// A part packed by [`Part::pack`]; `None` when the bytes are not one.
    pub fn unpack(bytes: &[u8]) -> Option<Part> {
        let (&PACKED, body) = bytes.split_first()? else {
            return None;
        };
        // Parts hold at most a few thousand cells; 64 MiB bounds a corrupt row.
        let json = zstd::bulk::decompress(body, 64 << 20).ok()?;
        serde_json::from_slice(&json).ok()
    }

    /// The rollup contribution of `spans` (internal spans contribute nothing).
    pub fn of(spans: &[crate::span::Span]) -> Part {
        use crate::span::Category;
        use std::collections::BTreeMap;
        let mut cells: BTreeMap<(i64, &str, &str, &str, &str, bool), Agg> = BTreeMap::new();
        // (minute, source, target, kind) → (calls, failed, total ms).
        type CallKey<'a> = (i64, &'a str, String, &'static str);
        let mut calls: BTreeMap<CallKey, (i64, i64, f64)> = BTreeMap::new();
        let mut links = Vec::new();
        let transactions: std::collections::HashMap<(&str, &str), &str> = spans
            .iter()
            .filter(|s| s.category == Category::Request)
            .map(|s| {
                (
                    (s.trace_id.as_str(), s.service.as_str()),
                    s.operation.as_str(),
                )
            })
            .collect();
        // (minute, statement, service, transaction) → (calls, total ms).
        let mut statements: BTreeMap<(i64, &str, &str, &str), (i64, f64)> = BTreeMap::new();
        for s in spans {
            if s.category == Category::Internal {
                continue;
            }
            let start_ms = s.start_ns / 1_000_000;
            let minute = bucket(start_ms, 60_000);
            let ms = s.duration_ns as f64 / 1e6;
            cells
                .entry((
                    minute,
                    &s.service,
                    s.category.as_str(),
                    &s.operation,
                    &s.status_class,
                    s.error,
                ))
                .or_default()
                .add(ms, s.error);
            let call = match s.category {
                Category::Db => Some((
                    s.db_system.clone().unwrap_or_else(|| "database".into()),
                    "db",
                )),
                Category::External => Some((
                    s.peer.clone().unwrap_or_else(|| s.operation.clone()),
                    "external",
                )),
                _ => None,
            };
            if let (Category::Db, Some(statement)) = (s.category, &s.db_statement) {
                if let Some(t) = transactions.get(&(s.trace_id.as_str(), s.service.as_str())) {
                    let c = statements
                        .entry((minute, statement, &s.service, t))
                        .or_default();
                    c.0 += 1;
                    c.1 += ms;
                }
            }
            if let Some((target, kind)) = call {
                let c = calls.entry((minute, &s.service, target, kind)).or_default();
                c.0 += 1;
                c.1 += i64::from(s.error);
                c.2 += ms;
            }
            let client = s.category == Category::External;
            if client || (s.category == Category::Request && s.parent_span_id.is_some()) {
                links.push(Link {
                    trace_id: s.trace_id.clone(),
                    span_id: s.span_id.clone(),
                    parent: s.parent_span_id.clone(),
                    service: s.service.clone(),
                    client,
                    start_ms,
                    duration_ms: ms,
                    error: s.error,
                });
            }
        }
        Part {
            cells: cells
                .into_iter()
                .map(
                    |((minute, service, category, operation, status_class, error), a)| PartCell {
                        minute,
                        service: service.to_string(),
                        category: category.to_string(),
                        operation: operation.to_string(),
                        status_class: status_class.to_string(),
                        error,
                        count: a.count,
                        sum: a.sum,
                        min: a.min,
                        max: a.max,
                        sketch: crate::attrs::hex_id(&a.sketch.encode()),
                    },
                )
                .collect(),
            calls: calls
                .into_iter()
                .map(
                    |((minute, source, target, kind), (count, errors, sum_ms))| PartCall {
                        minute,
                        source: source.to_string(),
                        target,
                        kind: kind.to_string(),
                        count,
                        errors,
                        sum_ms,
                    },
                )
                .collect(),
            links,
            statements: statements
                .into_iter()
                .map(
                    |((minute, statement, service, transaction), (calls, sum_ms))| PartStatement {
                        minute,
                        statement: statement.to_string(),
                        service: service.to_string(),
                        transaction: transaction.to_string(),
                        calls,
                        sum_ms,
                    },
                )
                .collect(),
        }
    }
}

impl PartCell {
    /// The cell's values as an [`Agg`]; `None` if its sketch does not decode.
    pub fn agg(&self) -> Option<Agg> {
        let bytes = hex::decode(&self.sketch).ok()?;
        Some(Agg {
            count: self.count,
            errors: if self.error { self.count } else { 0 },
            sum: self.sum,
            min: self.min,
            max: self.max,
            sketch: Sketch::decode(&bytes).ok()?,
        })
    }
}
