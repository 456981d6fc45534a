//! What the API and the Databases pages show of a target's statements over time: each
//! statement's trend between snapshots and the transactions that issued it. Written once for both.

use serde_json::{json, Value};

use crate::service::ServiceResult;
use crate::state::AppState;
use lookout_core::time::{iso, now_ms};
use lookout_store::dbhealth as dstore;

/// A statement's trend: its mean time per interval between snapshots (a stats reset starts over).
pub fn intervals(snaps: &[(i64, i64, f64)]) -> Vec<(i64, i64, f64)> {
    snaps
        .windows(2)
        .filter_map(|w| {
            let (calls, total) = if w[1].1 >= w[0].1 {
                (w[1].1 - w[0].1, w[1].2 - w[0].2)
            } else {
                (w[1].1, w[1].2)
            };
            (calls > 0).then(|| (w[1].0, calls, total / calls as f64))
        })
        .collect()
}

/// The statements of a target's history, by total time in the newest snapshot.
pub async fn trends(state: &AppState, id: i64, days: i64) -> ServiceResult<Vec<Value>> {
    let since = now_ms() - days.clamp(1, 30) * 86_400_000;
    let hist = dstore::query_history(state.store(), id, since).await?;
    let mut out: Vec<(f64, Value)> = hist
        .iter()
        .filter_map(|(qid, query, snaps)| {
            let last = snaps.last()?;
            let iv = intervals(snaps);
            let trend = match iv.split_last() {
                Some((newest, earlier)) if !earlier.is_empty() => {
                    let base = earlier.iter().map(|x| x.2 * x.1 as f64).sum::<f64>()
                        / earlier.iter().map(|x| x.1 as f64).sum::<f64>();
                    (base > 0.0).then(|| (newest.2 / base - 1.0) * 100.0)
                }
                _ => None,
            };
            Some((
                last.2,
                json!({"queryid": qid, "query": query, "calls": last.1, "total_ms": last.2,
                       "mean_ms": last.2 / last.1.max(1) as f64,
                       "intervals": iv.iter().map(|x| json!({"at": iso(x.0), "calls": x.1, "mean_ms": x.2})).collect::<Vec<_>>(),
                       "trend_percent": trend}),
            ))
        })
        .collect();
    out.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut items: Vec<Value> = out.into_iter().map(|x| x.1).take(100).collect();
    // The transactions that issued each statement, from the APM database spans of the last day:
    // pg_stat_statements and the spans normalise to the same text.
    let project = dstore::get(state.store(), id).await?.project_id;
    let normalized: Vec<String> = items
        .iter()
        .map(|v| lookout_apm::statement::normalize(v["query"].as_str().unwrap_or_default()))
        .collect();
    let callers = lookout_store::apm::query::statement_callers(
        state.store(),
        project,
        &normalized,
        now_ms() - 86_400_000,
    )
    .await?;
    for (item, key) in items.iter_mut().zip(&normalized) {
        item["callers"] = json!(callers.get(key).cloned().unwrap_or_default());
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::intervals;

    #[test]
    fn intervals_survive_a_stats_reset() {
        let snaps = [(0, 100, 1000.0), (60, 300, 5000.0), (120, 50, 100.0)];
        let iv = intervals(&snaps);
        assert_eq!(iv, vec![(60, 200, 20.0), (120, 50, 2.0)]);
    }
}
