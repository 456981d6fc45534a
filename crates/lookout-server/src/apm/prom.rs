//! OTLP metrics into the Prometheus metric store as well as the APM tables, translated as
//! Prometheus's OTLP receiver translates them (`lookout_apm::prom`), so PromQL and NRQL's
//! `FROM Metric` see them under the names a Prometheus would give them (docs/metrics.md,
//! "OTLP metrics").

use lookout_protocol::remote_write::{Batch, Metadata, MetricType, Series};
use lookout_store::prom::{self, IngestError};

use super::otlp::{from_store, Refusal};
use crate::state::AppState;

/// Writes a translated export for `project`. `Err` (outer) is a storage failure the exporter
/// should retry; `Ok(Err(message))` is a permanent refusal of these series (the series limit,
/// a hash collision), reported as a partial success.
pub(super) async fn ingest(
    state: &AppState,
    project: i64,
    translated: lookout_apm::prom::Translated,
) -> Result<Result<(), String>, Refusal> {
    if translated.skipped > 0 {
        metrics::counter!("lookout_otlp_prometheus_points_skipped_total")
            .increment(translated.skipped);
    }
    let batch = to_batch(translated, lookout_core::time::now_ms());
    if batch.series.is_empty() {
        return Ok(Ok(()));
    }
    match prom::ingest_limited(
        state.store(),
        state.writes(),
        project,
        &batch,
        crate::prometheus::write::max_series(),
    )
    .await
    {
        Ok(w) => {
            metrics::counter!("lookout_prometheus_samples_written_total")
                .increment(w.samples as u64);
            Ok(Ok(()))
        }
        Err(IngestError::Store(e)) => Err(from_store(e)),
        Err(e) => {
            tracing::warn!(project, error = %e, "OTLP metrics not written to the Prometheus store.");
            Ok(Err(format!("not queryable with PromQL: {e}")))
        }
    }
}

/// Groups samples by series, keeping only those inside the store's bounds (retention, and at
/// most 10 minutes ahead), as remote write does.
fn to_batch(t: lookout_apm::prom::Translated, now: i64) -> Batch {
    let oldest = now - crate::prometheus::retention_ms();
    let newest = now + crate::prometheus::write::FUTURE_MS;
    let mut index: std::collections::HashMap<Vec<(String, String)>, usize> =
        std::collections::HashMap::new();
    let mut series: Vec<Series> = Vec::new();
    for s in t.samples {
        if !(oldest..=newest).contains(&s.t) {
            continue;
        }
        match index.get(&s.labels) {
            Some(&i) => {
                if let Some(x) = series.get_mut(i) {
                    x.samples.push((s.t, s.v));
                }
            }
            None => {
                index.insert(s.labels.clone(), series.len());
                series.push(Series {
                    labels: s.labels,
                    samples: vec![(s.t, s.v)],
                });
            }
        }
    }
    for s in &mut series {
        s.samples.sort_by_key(|p| p.0);
        s.samples.dedup_by_key(|p| p.0);
    }
    let metadata = t
        .families
        .into_iter()
        .map(|f| Metadata {
            metric: f.name,
            kind: MetricType::parse(f.kind),
            help: f.help,
            unit: f.unit,
        })
        .collect();
    Batch {
        series,
        metadata,
        ..Batch::default()
    }
}
