//! A short-lived cache of NRQL answers in Redis, shared by every replica: a dashboard open on
//! ten screens behind a load balancer, or a query a team reloads, is computed once per
//! [`ttl`] instead of once per request per replica.
//!
//! The key is the query with its time window made relative: a window that ends "now" (within
//! the TTL) is keyed by its length, bucket and shift, so `SINCE 1 hour ago` asked twice a second
//! apart hits; a window with fixed ends is keyed by those ends. An answer may therefore be up to
//! one TTL old, which is what the short TTL buys (default 5 s, `LOOKOUT_QUERY_CACHE_TTL_MS`,
//! 0 turns it off). Answers over [`MAX_ENTRY_BYTES`] are not cached. Keys carry the version, so
//! replicas of two versions during an upgrade never read each other's answers.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Shared;
use crate::query::nrql::{Column, QueryResult};
use lookout_nrql::ast::Query;
use lookout_nrql::time::Window;

/// Largest answer kept (bytes of JSON): big answers are rare and cheap to recompute relative to
/// what they would cost Redis's memory.
const MAX_ENTRY_BYTES: usize = 512 * 1024;

static TTL_MS: OnceLock<u64> = OnceLock::new();

/// How long an answer is reused, ms (0: never).
pub fn ttl() -> u64 {
    *TTL_MS.get_or_init(|| {
        std::env::var("LOOKOUT_QUERY_CACHE_TTL_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5_000)
    })
}

/// An answer as kept in Redis (`QueryResult`'s column types are static strings).
#[derive(Serialize, Deserialize)]
struct Kept {
    columns: Vec<(String, String)>,
    rows: Vec<Vec<Value>>,
    warnings: Vec<String>,
}

/// The cache key of `q` over `w` for `projects`, asked at `now`.
pub fn key(projects: &[i64], q: &Query, w: &Window, now: i64) -> String {
    use sha2::Digest;
    let mut shape = q.clone();
    shape.since = None;
    shape.until = None;
    let ttl = ttl() as i64;
    let span = if (now - w.until).abs() <= ttl {
        // Ends now: keyed by its shape, so the next ask within the TTL hits.
        format!(
            "live:{}:{:?}:{:?}",
            w.until - w.since,
            w.bucket,
            w.compare.map(|(s, _)| w.since - s)
        )
    } else {
        format!(
            "fixed:{}:{}:{:?}:{:?}",
            w.since, w.until, w.bucket, w.compare
        )
    };
    let mut h = sha2::Sha256::new();
    h.update(format!("{projects:?}|{shape:?}|{span}"));
    format!(
        "lookout:nrql:{}:{}",
        env!("CARGO_PKG_VERSION"),
        hex::encode(&h.finalize()[..20])
    )
}

impl Shared {
    /// The cached answer under `key`, if Redis has one.
    pub async fn cached_answer(&self, key: &str) -> Option<QueryResult> {
        if ttl() == 0 {
            return None;
        }
        let key = key.to_string();
        let raw: Option<Vec<u8>> = self
            .run("cache_get", |mut c| async move {
                redis::cmd("GET").arg(key).query_async(&mut c).await
            })
            .await?;
        let kept: Kept = serde_json::from_slice(&raw?).ok()?;
        let columns = kept
            .columns
            .into_iter()
            .map(|(name, kind)| Column {
                name,
                kind: match kind.as_str() {
                    "number" => "number",
                    "boolean" => "boolean",
                    "timestamp" => "timestamp",
                    _ => "string",
                },
            })
            .collect();
        metrics::counter!("lookout_query_cache_hits_total").increment(1);
        Some(QueryResult {
            columns,
            rows: kept.rows,
            warnings: kept.warnings,
        })
    }

    /// Keeps `r` under `key` for the TTL (skipped when too large or Redis cannot answer).
    pub async fn keep_answer(&self, key: &str, r: &QueryResult) {
        let ttl = ttl();
        if ttl == 0 || !self.configured() {
            return;
        }
        metrics::counter!("lookout_query_cache_misses_total").increment(1);
        let kept = Kept {
            columns: r
                .columns
                .iter()
                .map(|c| (c.name.clone(), c.kind.to_string()))
                .collect(),
            rows: r.rows.clone(),
            warnings: r.warnings.clone(),
        };
        let Ok(bytes) = serde_json::to_vec(&kept) else {
            return;
        };
        if bytes.len() > MAX_ENTRY_BYTES {
            return;
        }
        let key = key.to_string();
        self.run("cache_set", |mut c| async move {
            redis::cmd("SET")
                .arg(key)
                .arg(bytes)
                .arg("PX")
                .arg(ttl)
                .query_async::<()>(&mut c)
                .await
        })
        .await;
    }
}
