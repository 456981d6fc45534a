//! Running NRQL queries ([`lookout_nrql`]) over the APM rollups ([`rollup`]): `FROM Transaction`
//! with the aggregates the rollups hold exactly (counts, sums, extremes, percentiles from the
//! sketches, Apdex, rates, `filter` and `percentage`), `WHERE` and `FACET` on service,
//! transaction name and error, and `TIMESERIES`. Because the service pages read the same rows, a dashboard and a
//! service page agree to the digit. Shapes the rollups cannot answer (raw attributes, other
//! event types, other aggregators, raw rows, `COMPARE WITH`) run over the raw events in
//! [`memory`], read by [`events`] and folded row by row ([`fold`]). Every query runs within the
//! limits of [`limits`]: a slot, a timeout, a memory budget and a cap on its answer's rows.

mod eval;
pub mod events;
mod fold;
pub mod limits;
mod memory;
mod rollup;

use lookout_nrql::ast::Query;
use lookout_nrql::time::{window, Window};
use lookout_store::Store;
use serde::Serialize;
use serde_json::Value;

/// A result column.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Column {
    /// Name: the alias, or the expression as written canonically.
    pub name: String,
    /// `string`, `number`, `boolean` or `timestamp` (epoch ms).
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// A query's answer.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct QueryResult {
    /// Facet columns, then `begin_time` for a time series, then the `SELECT` items.
    pub columns: Vec<Column>,
    /// One row per facet value (and bucket).
    pub rows: Vec<Vec<Value>>,
    /// What the caller should know (unknown attributes, for instance).
    pub warnings: Vec<String>,
}

/// Why a query could not run.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The text does not parse (message with line, column and caret).
    #[error("{0}")]
    Parse(String),
    /// The query is valid NRQL that Lookout does not answer (yet), or its times are impossible.
    #[error("{0}")]
    Invalid(String),
    /// The query ran out of time (`query.timeout_seconds`): answered 503 with `Retry-After`.
    #[error("the query ran longer than {} s (query.timeout_seconds); narrow it with SINCE/UNTIL or WHERE, or retry later", .0.as_secs_f64())]
    Timeout(std::time::Duration),
    /// Every query slot stayed taken (`query.max_concurrent`): answered 503 with `Retry-After`.
    #[error(
        "{0} queries are already running (query.max_concurrent); retry after the Retry-After delay"
    )]
    Busy(usize),
    /// The query would keep too much memory or answer too many rows (`query.max_memory_bytes`,
    /// `query.max_answer_rows`): answered 422, as it would fail again.
    #[error("{0}")]
    TooLarge(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] lookout_store::StoreError),
}

fn invalid(msg: impl Into<String>) -> QueryError {
    QueryError::Invalid(msg.into())
}

/// SQL `LIKE`: `%` any run, `_` one character, the rest literal. Dynamic programming over
/// (text, pattern) prefixes, so a pattern full of `%` stays linear in each.
pub(crate) fn like(text: &str, pattern: &str) -> bool {
    let t: Vec<char> = text.chars().collect();
    // matched[i]: the pattern so far matches the first i characters of the text.
    let mut matched = vec![false; t.len() + 1];
    matched[0] = true;
    for pc in pattern.chars() {
        let mut next = vec![false; t.len() + 1];
        match pc {
            '%' => {
                let mut any = false;
                for i in 0..=t.len() {
                    any |= matched[i];
                    next[i] = any;
                }
            }
            _ => {
                for i in 1..=t.len() {
                    next[i] = matched[i - 1] && (pc == '_' || t[i - 1] == pc);
                }
            }
        }
        matched = next;
    }
    matched[t.len()]
}

/// Runs `nrql` over the rollups of `projects` at `now_ms`, as a viewer (see [`limits`]).
pub async fn run(
    store: &Store,
    projects: &[i64],
    nrql: &str,
    now_ms: i64,
) -> Result<QueryResult, QueryError> {
    Ok(run_cached(store, projects, nrql, now_ms).await?.0)
}

/// [`run`], also saying whether the answer came from the shared cache
/// ([`crate::shared::cache`]).
pub async fn run_cached(
    store: &Store,
    projects: &[i64],
    nrql: &str,
    now_ms: i64,
) -> Result<(QueryResult, bool), QueryError> {
    let q: Query = lookout_nrql::parse(nrql).map_err(|e| QueryError::Parse(e.render(nrql)))?;
    let w: Window = window(&q, now_ms).map_err(|e| invalid(e.0))?;
    execute_cached(store, projects, &q, w, now_ms).await
}

/// Runs a parsed query over the window `w` (its `SINCE`, `UNTIL` and `TIMESERIES` already
/// resolved into `w`) as a viewer (dashboards): the rollups answer whenever the query's shape
/// allows, the raw events otherwise.
pub async fn execute(
    store: &Store,
    projects: &[i64],
    q: &Query,
    w: Window,
) -> Result<QueryResult, QueryError> {
    let now = lookout_core::time::now_ms();
    Ok(execute_cached(store, projects, q, w, now).await?.0)
}

/// [`execute`] through the shared cache when Redis is configured: `(answer, from the cache)`.
/// Alert conditions never read the cache: they must see the data as of their evaluation.
async fn execute_cached(
    store: &Store,
    projects: &[i64],
    q: &Query,
    w: Window,
    now: i64,
) -> Result<(QueryResult, bool), QueryError> {
    let shared = crate::shared::get();
    let key = shared
        .configured()
        .then(|| crate::shared::cache::key(projects, q, &w, now));
    if let Some(key) = &key {
        if let Some(r) = shared.cached_answer(key).await {
            return Ok((r, true));
        }
    }
    let r = limits::run(limits::Lane::Viewer, |mut budget| async move {
        answer(store, projects, q, w, false, &mut budget).await
    })
    .await?;
    if let Some(key) = &key {
        shared.keep_answer(key, &r).await;
    }
    Ok((r, false))
}

/// Runs a parsed query for an alert condition: on the alert slots (see [`limits`]), over the
/// raw events only when `raw` (windows the minute rollups cannot cut, such as 30 seconds).
pub async fn execute_alert(
    store: &Store,
    projects: &[i64],
    q: &Query,
    w: Window,
    raw: bool,
) -> Result<QueryResult, QueryError> {
    limits::run(limits::Lane::Alert, |mut budget| async move {
        answer(store, projects, q, w, raw, &mut budget).await
    })
    .await
}

async fn answer(
    store: &Store,
    projects: &[i64],
    q: &Query,
    w: Window,
    raw: bool,
    budget: &mut limits::Budget,
) -> Result<QueryResult, QueryError> {
    if !raw {
        match rollup::rollups(store, projects, q, w, budget).await {
            Err(QueryError::Invalid(_)) => {}
            answered => return answered,
        }
    }
    memory::execute(store, projects, q, w, budget).await
}

#[cfg(test)]
mod tests {
    use super::like;

    #[test]
    fn like_matches_sql_patterns() {
        assert!(like("GET /api/users", "GET %"));
        assert!(like("GET /api/users", "%users"));
        assert!(like("abc", "a_c"));
        assert!(!like("abc", "a_"));
        assert!(like("", "%"));
        assert!(!like("GET /x", "POST %"));
    }
}
