//! PromQL out: `/prometheus/api/v1/query` and `/prometheus/api/v1/query_range` with
//! Prometheus's parameters and JSON shapes, and [`evaluate`], the one path that joins the
//! evaluator (`lookout-promql`) and the metric store, which the API, the metrics explorer and
//! dashboard widgets all call.
//!
//! A query runs in three bounded steps: parse (and refuse what Lookout does not implement,
//! naming it); fetch each selector's series and samples from the store, all selections
//! together within [`Limits::max_samples`] (one sample more is Prometheus's "too many samples"
//! error, never a partial answer); evaluate on the blocking pool. The whole request has one
//! deadline (`timeout`, at most [`MAX_TIMEOUT`]), and at most [`MAX_CONCURRENT`] queries run
//! at once; a query that cannot get a slot before its deadline is answered 503 with
//! `Retry-After`.
//!
//! Status codes are Prometheus's: 400 `bad_data` (the query or a parameter is wrong), 422
//! `execution` (valid, but over a budget or ambiguous), 503 `timeout`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use lookout_promql::{Downsampled, ErrorKind, Limits, Query, Selection, Series, Value};
use lookout_store::prom::query::{select_downsampled_within, Budget, ReadError};
use lookout_store::prom::tiers;
use lookout_store::prom::tiers::Aggregate;
use lookout_store::prom::{MatchOp, Matcher};
use lookout_store::Store;
use serde_json::json;
use tokio::sync::Semaphore;

use super::read::{begin, time, Params, PromRequest};
use super::PromError;
use crate::state::AppState;

/// Longest a query may run (Prometheus's `--query.timeout` default); `timeout=` may only
/// shorten it.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(120);
/// Queries evaluated at once: evaluation is CPU work on the blocking pool, and more at once
/// than a few per core only makes each slower.
pub const MAX_CONCURRENT: usize = 8;

/// When to evaluate: at one instant, or over a range at a step (all in ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// `/query`: one instant.
    Instant(i64),
    /// `/query_range`: start, end, step.
    Range {
        /// First evaluation time.
        start: i64,
        /// Last evaluation time (inclusive when on the grid).
        end: i64,
        /// Step between evaluation times, above zero.
        step: i64,
    },
}

/// Why a query did not answer.
#[derive(Debug)]
pub enum QueryError {
    /// The evaluator's error (`bad_data` or `execution`), shown as it is.
    Query(lookout_promql::Error),
    /// The deadline passed.
    Timeout,
    /// Every query slot stayed busy until the deadline.
    Busy,
    /// Storage failed.
    Store(lookout_store::StoreError),
}

impl QueryError {
    /// A message meant for the person who wrote the query (storage details are logged, not
    /// shown).
    pub fn message(&self) -> String {
        match self {
            QueryError::Query(e) => e.message.clone(),
            QueryError::Timeout => "query timed out in expression evaluation".into(),
            QueryError::Busy => "too many queries are running; retry later".into(),
            QueryError::Store(_) => "storage unavailable; retry later".into(),
        }
    }
}

impl From<QueryError> for PromError {
    fn from(e: QueryError) -> Self {
        let message = e.message();
        match e {
            QueryError::Query(q) => match q.kind {
                ErrorKind::BadData => PromError::bad_data(message),
                ErrorKind::Execution => {
                    PromError::new(StatusCode::UNPROCESSABLE_ENTITY, "execution", message)
                }
            },
            QueryError::Timeout => {
                PromError::new(StatusCode::SERVICE_UNAVAILABLE, "timeout", message)
            }
            QueryError::Busy => PromError::busy(message),
            QueryError::Store(s) => s.into(),
        }
    }
}

/// Requests that may wait for a query slot; one more is answered 503 at once rather than
/// queued (each waiter holds a connection and its parsed parameters).
pub const MAX_WAITING: usize = 32;

/// Default samples one query may load when `LOOKOUT_PROMETHEUS_QUERY_MAX_SAMPLES` is unset.
/// A fetched sample lives in a `BTreeMap<i64, u64>` during the read (~20-30 bytes with the
/// tree's overhead) and then in the evaluator's vectors, so 5,000,000 is ~150 MB per query and
/// ~1.2 GB with all [`MAX_CONCURRENT`] slots busy (Prometheus's 50,000,000 would be ~12 GB).
pub const DEFAULT_MAX_SAMPLES: usize = 5_000_000;

/// Samples one query may load: `LOOKOUT_PROMETHEUS_QUERY_MAX_SAMPLES` (Prometheus's
/// `--query.max-samples`), else [`DEFAULT_MAX_SAMPLES`]; read once into the [`AppState`].
pub fn max_samples_setting() -> usize {
    std::env::var("LOOKOUT_PROMETHEUS_QUERY_MAX_SAMPLES")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_MAX_SAMPLES)
}

fn slots() -> &'static Arc<Semaphore> {
    static SLOTS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    SLOTS.get_or_init(|| Arc::new(Semaphore::new(MAX_CONCURRENT)))
}

/// Query slots reserved for rule evaluation, apart from the users' [`MAX_CONCURRENT`]: a burst
/// of dashboard queries must not make rules fail "busy" (and alerts miss evaluations). Rules
/// are already bounded by their shards (8 per cluster, one group at a time each).
pub const RULE_SLOTS: usize = 2;

fn rule_slots() -> &'static Arc<Semaphore> {
    static SLOTS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    SLOTS.get_or_init(|| Arc::new(Semaphore::new(RULE_SLOTS)))
}

/// Whose slots a query takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    /// The API's, Grafana's and the pages' queries: [`MAX_CONCURRENT`] slots, [`MAX_WAITING`]
    /// waiters.
    Users,
    /// The rule evaluator: its own [`RULE_SLOTS`].
    Rules,
}

/// Requests waiting for a slot now.
static WAITING: AtomicUsize = AtomicUsize::new(0);

/// Counts one waiter while alive.
struct Waiter;

impl Waiter {
    fn enter() -> Option<Waiter> {
        let n = WAITING.fetch_add(1, Ordering::SeqCst);
        if n >= MAX_WAITING {
            WAITING.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Waiter)
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        WAITING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Parses and evaluates `text` in `project` within `timeout` (capped at [`MAX_TIMEOUT`]): the
/// one path of every PromQL caller.
pub async fn evaluate(
    state: &AppState,
    project: i64,
    text: &str,
    when: When,
    timeout: Duration,
) -> Result<Value, QueryError> {
    evaluate_on(
        state.store(),
        state.promql_max_samples(),
        project,
        text,
        when,
        timeout,
        Pool::Users,
    )
    .await
}

/// [`evaluate`] for callers without the application state (the rule evaluator), with the
/// samples budget and the slots (`pool`) given; the same deadline.
pub async fn evaluate_on(
    store: &Store,
    max_samples: usize,
    project: i64,
    text: &str,
    when: When,
    timeout: Duration,
    pool: Pool,
) -> Result<Value, QueryError> {
    let timeout = timeout.min(MAX_TIMEOUT);
    let deadline = Instant::now() + timeout;
    // The slot is owned and moves into the evaluation below: a deadline firing here only stops
    // waiting for the answer, so the slot stays taken until the blocking work itself ends.
    let slot = match pool {
        Pool::Users => {
            let _waiter = Waiter::enter().ok_or(QueryError::Busy)?;
            tokio::time::timeout(timeout, slots().clone().acquire_owned())
                .await
                .map_err(|_| QueryError::Busy)?
                .map_err(|_| QueryError::Busy)?
        }
        Pool::Rules => tokio::time::timeout(timeout, rule_slots().clone().acquire_owned())
            .await
            .map_err(|_| QueryError::Busy)?
            .map_err(|_| QueryError::Busy)?,
    };
    // Parsing runs on a thread of its own (deep texts need a large stack): off the runtime.
    let owned = text.to_string();
    let mut query = tokio::task::spawn_blocking(move || Query::parse(&owned))
        .await
        .map_err(|_| internal("the query parser stopped"))?
        .map_err(QueryError::Query)?;
    let (start, end, step) = match when {
        When::Instant(t) => (t, t, 1),
        When::Range { start, end, step } => (start, end, step),
    };
    let mut selections = query
        .selections(start, end, step)
        .map_err(QueryError::Query)?;
    // A range reaching into a downsampled tier: selectors look back at least one bucket, as
    // Thanos raises its lookback delta to the resolution; else most steps between two bucket
    // ends find no sample. Twice at most: looking further back may reach the 1-hour tier.
    for _ in 0..2 {
        let earliest = selections.iter().map(|s| s.from_ms).min().unwrap_or(start);
        match tiers::resolution_before_raw(store, earliest)
            .await
            .map_err(QueryError::Store)?
        {
            Some(res) if res > query.limits().lookback_ms => {
                let wider = Limits {
                    lookback_ms: res,
                    ..query.limits()
                };
                query = query.with_limits(wider);
                selections = query
                    .selections(start, end, step)
                    .map_err(QueryError::Query)?;
            }
            _ => break,
        }
    }
    let limits = Limits {
        max_samples,
        ..query.limits()
    };
    let fetched = tokio::time::timeout_at(
        deadline.into(),
        fetch(store, project, &selections, limits.max_samples),
    )
    .await
    .map_err(|_| QueryError::Timeout)??;
    // The evaluator checks its own clock; give it what is left of the request's.
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(QueryError::Timeout);
    }
    let query = query.with_limits(Limits {
        timeout: left,
        ..limits
    });
    // The evaluator stops at its own deadline (`timeout: left`), so the detached work ends
    // soon after the request gives up; the slot is released only then.
    let evaluated = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        match when {
            When::Instant(t) => lookout_promql::eval_instant(&query, t, &fetched),
            When::Range { start, end, step } => {
                lookout_promql::eval_range(&query, start, end, step, &fetched)
            }
        }
    });
    match tokio::time::timeout_at(deadline.into(), evaluated).await {
        Err(_) => Err(QueryError::Timeout),
        Ok(Err(_)) => Err(internal("the evaluation stopped")),
        Ok(Ok(result)) => result.map_err(|e| {
            // The evaluator names its own deadline an execution error; the API calls it a
            // timeout, as Prometheus does.
            if Instant::now() >= deadline {
                QueryError::Timeout
            } else {
                QueryError::Query(e)
            }
        }),
    }
}

fn internal(what: &str) -> QueryError {
    tracing::error!(what, "PromQL query failed.");
    QueryError::Query(lookout_promql::Error {
        kind: ErrorKind::Execution,
        message: what.to_string(),
    })
}

/// Each selection's series, all of them within `max_samples` samples together.
async fn fetch(
    store: &Store,
    project: i64,
    selections: &[Selection],
    max_samples: usize,
) -> Result<Vec<Vec<Series>>, QueryError> {
    // One budget for every selector: series (their label bytes) and samples of all of them
    // count together, and at most MAX_SERIES series over the whole query.
    let mut budget = Budget::new(max_samples);
    let mut out = Vec::with_capacity(selections.len());
    for sel in selections {
        let matchers = sel
            .matchers
            .iter()
            .map(|m| {
                let op = match m.op {
                    lookout_promql::MatchOp::Eq => MatchOp::Eq,
                    lookout_promql::MatchOp::Ne => MatchOp::Ne,
                    lookout_promql::MatchOp::Re => MatchOp::Re,
                    lookout_promql::MatchOp::Nre => MatchOp::Nre,
                };
                Matcher::new(&m.name, op, &m.value).map_err(|e| {
                    QueryError::Query(lookout_promql::Error {
                        kind: ErrorKind::BadData,
                        message: e,
                    })
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        // The function around a matrix selector names the bucket aggregate it needs where the
        // range reaches into a downsampled tier (`max_over_time`: each bucket's maximum).
        let aggr = match sel.downsampled {
            Downsampled::Auto => Aggregate::Auto,
            Downsampled::Min => Aggregate::Min,
            Downsampled::Max => Aggregate::Max,
            Downsampled::Sum => Aggregate::Sum,
            Downsampled::Count => Aggregate::Count,
        };
        let series = select_downsampled_within(
            store,
            project,
            &matchers,
            (sel.from_ms, sel.to_ms),
            aggr,
            &mut budget,
        )
        .await
        .map_err(|e| match e {
            ReadError::TooManySamples(_) => {
                QueryError::Query(lookout_promql::Error::too_many_samples(max_samples))
            }
            ReadError::TooManySeries => QueryError::Query(lookout_promql::Error {
                kind: ErrorKind::Execution,
                message: e.to_string(),
            }),
            ReadError::Store(s) => QueryError::Store(s),
        })?;
        out.push(
            series
                .into_iter()
                .map(|s| Series {
                    labels: s.labels,
                    samples: s.samples,
                })
                .collect(),
        );
    }
    Ok(out)
}

/// The `timeout` parameter, capped at [`MAX_TIMEOUT`].
fn timeout(p: &Params) -> Result<Duration, PromError> {
    match p.one("timeout") {
        None => Ok(MAX_TIMEOUT),
        Some(v) => lookout_promql::parse_duration_ms(v)
            .filter(|ms| *ms > 0)
            .map(|ms| Duration::from_millis(ms.unsigned_abs()).min(MAX_TIMEOUT))
            .ok_or_else(|| {
                PromError::bad_data(format!(
                    "invalid parameter \"timeout\": cannot parse {v:?} to a valid duration"
                ))
            }),
    }
}

fn text(p: &Params) -> Result<String, PromError> {
    p.one("query").map(str::to_string).ok_or_else(|| {
        PromError::bad_data("invalid parameter \"query\": unknown position: parse error: no expression found in input")
    })
}

fn answer(v: &Value) -> Response {
    Json(json!({"status": "success", "data": v.to_prometheus_json()})).into_response()
}

/// `/prometheus/api/v1/query`: `query`, `time` (default now), `timeout`.
pub async fn instant(
    State(state): State<AppState>,
    req: PromRequest,
) -> Result<Response, PromError> {
    let (project, p) = begin(&state, req).await?;
    let text = text(&p)?;
    let t = match p.one("time") {
        Some(v) => time("time", v)?,
        None => lookout_core::time::now_ms(),
    };
    let timeout = timeout(&p)?;
    let v = evaluate(&state, project, &text, When::Instant(t), timeout).await?;
    Ok(answer(&v))
}

/// `/prometheus/api/v1/query_range`: `query`, `start`, `end`, `step` (all required),
/// `timeout`.
pub async fn range(State(state): State<AppState>, req: PromRequest) -> Result<Response, PromError> {
    let (project, p) = begin(&state, req).await?;
    let when = range_params(&p)?;
    let text = text(&p)?;
    let timeout = timeout(&p)?;
    let v = evaluate(&state, project, &text, when, timeout).await?;
    Ok(answer(&v))
}

/// `start`, `end` and `step` of a range query, checked as Prometheus checks them.
fn range_params(p: &Params) -> Result<When, PromError> {
    let required = |name: &str| {
        p.one(name).ok_or_else(|| {
            PromError::bad_data(format!(
                "invalid parameter \"{name}\": cannot parse \"\" to a valid {}",
                if name == "step" {
                    "duration"
                } else {
                    "timestamp"
                }
            ))
        })
    };
    let start = time("start", required("start")?)?;
    let end = time("end", required("end")?)?;
    if end < start {
        return Err(PromError::bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    let raw = required("step")?;
    let negative = raw.parse::<f64>().is_ok_and(|v| v < 0.0);
    let step = if negative {
        Some(0)
    } else {
        lookout_promql::parse_duration_ms(raw)
    };
    let step = step.ok_or_else(|| {
        PromError::bad_data(format!(
            "invalid parameter \"step\": cannot parse {raw:?} to a valid duration"
        ))
    })?;
    if step <= 0 {
        return Err(PromError::bad_data(
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    // The resolution limit (11,000 intervals) is checked once, by the evaluator's
    // `selections`, with Prometheus's message.
    Ok(When::Range { start, end, step })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every user slot taken (a Grafana burst): user queries are refused "busy", rule queries
    /// still run in their own slots.
    #[tokio::test]
    async fn rules_have_slots_users_cannot_take() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&Store::sqlite_url_for_dir(dir.path()))
            .await
            .unwrap();
        let held = slots()
            .clone()
            .acquire_many_owned(MAX_CONCURRENT as u32)
            .await
            .unwrap();
        let short = Duration::from_millis(200);
        let user = evaluate_on(&store, 1000, 1, "1+1", When::Instant(0), short, Pool::Users).await;
        assert!(matches!(user, Err(QueryError::Busy)), "{:?}", user.err());
        let rule = evaluate_on(
            &store,
            1000,
            1,
            "1+1",
            When::Instant(0),
            Duration::from_secs(10),
            Pool::Rules,
        )
        .await;
        drop(held);
        assert!(
            matches!(rule, Ok(Value::Scalar { v, .. }) if v == 2.0),
            "{:?}",
            rule.err()
        );
    }

    /// Months-old data lives in the 1-hour tier: a range query over it draws a point at every
    /// step (the lookback is raised to the bucket), `avg_over_time` is the raw average and
    /// `increase` sees the counter's resets.
    #[tokio::test]
    async fn queries_over_downsampled_data_answer_like_raw() {
        use lookout_protocol::remote_write::{Batch, Series as In};
        use lookout_store::prom::{self, compact};
        use lookout_store::writer::{Writer, WriterConfig};
        const DAY: i64 = 86_400_000;
        const HOUR: i64 = 3_600_000;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&Store::sqlite_url_for_dir(dir.path()))
            .await
            .unwrap();
        let org = lookout_store::tenancy::default_org(&store)
            .await
            .unwrap()
            .id;
        let p = lookout_store::tenancy::create_project(&store, org, "m", None, None)
            .await
            .unwrap()
            .id;
        let writer = Writer::start(store.clone(), WriterConfig::default());
        // A day of one sample a minute, 200 days before a fixed "now": a gauge cycling through
        // 0..59 within each hour, and a counter (+2 a minute) reset to 0 at noon.
        let now = 1_800_000_000_000 / DAY * DAY;
        let start = now - 200 * DAY;
        let minutes = |f: &dyn Fn(i64) -> f64| -> Vec<(i64, f64)> {
            (0..1440).map(|i| (start + i * 60_000, f(i))).collect()
        };
        let batch = Batch {
            series: vec![
                In {
                    labels: vec![("__name__".into(), "temp".into())],
                    samples: minutes(&|i| (i % 60) as f64),
                },
                In {
                    labels: vec![("__name__".into(), "jobs_total".into())],
                    samples: minutes(&|i| (2 * (i % 720)) as f64),
                },
            ],
            ..Batch::default()
        };
        prom::ingest(&store, &writer.queue(), p, &batch)
            .await
            .unwrap();
        writer.shutdown().await;
        compact::compact(&store, None, now, 0).await.unwrap();
        let keep = tiers::Retention {
            raw_ms: 15 * DAY,
            m5_ms: 90 * DAY,
            h1_ms: 365 * DAY,
        };
        tiers::downsample(&store, None, now, keep.raw_ms)
            .await
            .unwrap();
        tiers::enforce_retention(&store, now, &keep).await.unwrap();
        let range = |text: &str, step: i64| {
            let store = store.clone();
            let text = text.to_string();
            async move {
                let when = When::Range {
                    start: start + 2 * HOUR,
                    end: start + 22 * HOUR,
                    step,
                };
                let t = Duration::from_secs(30);
                match evaluate_on(&store, 1_000_000, p, &text, when, t, Pool::Users).await {
                    Ok(Value::Matrix(m)) => m,
                    other => panic!("{text}: {other:?}"),
                }
            }
        };
        // Every half hour, though buckets end once an hour.
        let m = range("temp", 30 * 60_000).await;
        assert_eq!(m[0].points.len(), 41);
        assert!(m[0].points.iter().all(|(_, v)| *v == 29.5));
        let m = range("avg_over_time(temp[3h])", HOUR).await;
        assert!(m[0].points.iter().all(|(_, v)| *v == 29.5));
        // 120 an hour, the reset at noon included: increase over 4 hours of buckets.
        let m = range("increase(jobs_total[4h])", HOUR).await;
        let (_, v) = m[0].points[10];
        let want = 120.0 * 3.0 * 4.0 / 3.0; // 3 hours between the window's bucket ends, extrapolated to 4
        assert!((v - want).abs() < 1e-6, "{v} against {want}");
    }
}
