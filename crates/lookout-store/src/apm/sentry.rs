//! Sentry transactions into APM: follows `ingest_items` (kind `transaction`) by cursor and stores
//! each transaction's spans in `apm_spans`, in the transaction that advances the cursor — so
//! each is converted once, and the rollup consumer then counts it like any OTLP span. A
//! transaction without a `service` tag belongs to the service named after its project.

use std::collections::HashMap;
use std::time::Duration;

use lookout_apm::sentry::{resource_of, spans_from_transaction};
use sqlx::Row;

use super::span_writes;
use crate::{cursor, writer, Result, Store, Write};

/// The consumer's cursor name.
pub const CURSOR: &str = "apm.sentry_transactions";

/// Converts Sentry transactions into spans; one replica at a time holds the cursor.
pub struct TransactionProcessor {
    store: Store,
    owner: String,
}

impl TransactionProcessor {
    /// A processor identified as `owner` (unique per replica).
    pub fn new(store: Store, owner: &str) -> Self {
        TransactionProcessor {
            store,
            owner: owner.to_string(),
        }
    }

    /// Converts the next batch if this replica holds the cursor; returns the items read.
    pub async fn poll_once(&self) -> Result<usize> {
        let Some(position) = cursor::lease(&self.store, CURSOR, &self.owner, 10_000).await? else {
            return Ok(0);
        };
        let rows = sqlx::query(
            "SELECT seq, project_id, kind, payload FROM ingest_items WHERE seq > $1 ORDER BY seq LIMIT 500",
        )
        .bind(position)
        .fetch_all(self.store.pool())
        .await?;
        let Some(last) = rows
            .last()
            .map(|r| r.try_get::<i64, _>("seq"))
            .transpose()?
        else {
            return Ok(0);
        };
        let mut slugs: HashMap<i64, String> = HashMap::new();
        for r in sqlx::query("SELECT id, slug FROM projects")
            .fetch_all(self.store.pool())
            .await?
        {
            slugs.insert(r.try_get("id")?, r.try_get("slug")?);
        }
        let mut writes: Vec<Write> = Vec::new();
        for r in &rows {
            let kind: &str = r.try_get("kind")?;
            if kind != "transaction" {
                continue;
            }
            let project: i64 = r.try_get("project_id")?;
            let payload: &str = r.try_get("payload")?;
            let Ok(ev) = serde_json::from_str::<serde_json::Value>(payload) else {
                continue;
            };
            let service = slugs
                .get(&project)
                .map_or("unknown_service", String::as_str);
            let spans = spans_from_transaction(&ev, service);
            // Every span of a transaction shares its service, hence one resource.
            let resources: Vec<(String, String)> = spans
                .first()
                .map(|s| vec![resource_of(&s.service)])
                .unwrap_or_default();
            writes.extend(span_writes(project, spans, &resources));
        }
        let _turn = self.store.write_gate().await;
        let mut tx = self.store.begin_write().await?;
        let refs: Vec<&Write> = writes.iter().collect();
        if !refs.is_empty() {
            // Through the writer's apply: the rollup parts are a stream, inserted under the
            // publish lock.
            writer::apply(&self.store, &mut tx, &refs).await?;
        }
        if !cursor::finish(tx, CURSOR, &self.owner, position, last).await? {
            return Ok(0);
        }
        metrics::counter!("lookout_apm_sentry_spans_total").increment(writes.len() as u64);
        Ok(rows.len())
    }

    /// Converts until `stop` resolves, polling every `idle` when there is nothing new.
    pub async fn run(self, idle: Duration, stop: impl std::future::Future<Output = ()>) {
        cursor::poll_until(
            || async { Ok(self.poll_once().await? > 0) },
            idle,
            Some(self.store.wake().waiter("ingest_items")),
            CURSOR,
            stop,
        )
        .await;
    }
}
