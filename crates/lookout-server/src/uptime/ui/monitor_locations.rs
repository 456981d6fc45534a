//! The monitor page's "Locations" panel, for a monitor checked from more than the replicas:
//! each location's own state (as the quorum sees it), its last check, latency and uptime over
//! the results kept (24 h), and one latency chart with a line per location, drawn by the same
//! chart code as the page's main chart.

use std::collections::BTreeMap;

use crate::charts;
use crate::ui::fmt::{self, When};
use crate::uptime::view::MonitorView;
use lookout_store::locations::{self as lstore, LocationSample};
use lookout_store::uptime::results::Bucket;
use lookout_store::{Result, Store};
use lookout_uptime::spec::LOCAL;

/// Most raw location results read for one page: a day of minute checks from 10 locations.
const MAX_SAMPLES: i64 = 20_000;

/// One location's line in the panel.
pub struct LocationLine {
    /// The location's name (`local`: the replicas).
    pub name: String,
    /// `up`, `down`, `pending`, `offline` or `unknown`.
    pub state: String,
    /// Its newest check.
    pub last_check: Option<When>,
    /// That check's latency, e.g. `12 ms`.
    pub latency: String,
    /// Passing checks over those kept (24 h), e.g. `99.9 %`; `–` before any.
    pub uptime: String,
}

/// The panel: its lines and chart; none for a monitor checked from the replicas alone.
pub struct LocationsPanel {
    /// One line per location, in the order the monitor names them.
    pub lines: Vec<LocationLine>,
    /// The latency chart (SVG), a line per location.
    pub chart: String,
}

/// Sums of one location's results.
#[derive(Default)]
struct Acc {
    ok: u64,
    total: u64,
    latency: BTreeMap<i64, (i64, i64)>,
}

/// Builds the panel for `v`: `local_buckets` are the replicas' own buckets of `bucket_ms`
/// (the main chart's), `local_day` their 24 h uptime.
pub async fn panel(
    store: &Store,
    v: &MonitorView,
    local_buckets: &[Bucket],
    local_day: Option<f64>,
    bucket_ms: i64,
    from: i64,
    now: i64,
) -> Result<Option<LocationsPanel>> {
    if v.locations.iter().all(|l| l.name == LOCAL) {
        return Ok(None);
    }
    let known = lstore::list_locations(store).await?;
    let samples = lstore::samples_since(store, v.id, now - 24 * 3_600_000, MAX_SAMPLES).await?;
    let sums = sum(&samples, bucket_ms, from);
    let mut lines = Vec::new();
    let mut series = Vec::new();
    for l in &v.locations {
        let (uptime, points) = if l.name == LOCAL {
            let points = local_buckets
                .iter()
                .filter_map(|b| Some((b.bucket, b.latency_avg_us? as f64 / 1000.0)))
                .collect();
            (local_day, points)
        } else {
            let acc = known
                .iter()
                .find(|k| k.name == l.name)
                .and_then(|k| sums.get(&k.id));
            match acc {
                Some(a) => (
                    (a.total > 0).then(|| 100.0 * a.ok as f64 / a.total as f64),
                    a.latency
                        .iter()
                        .map(|(b, (sum, n))| (*b, *sum as f64 / *n as f64 / 1000.0))
                        .collect(),
                ),
                None => (None, Vec::new()),
            }
        };
        series.push(charts::Series {
            name: l.name.clone(),
            points,
        });
        lines.push(LocationLine {
            name: l.name.clone(),
            state: l.state.clone(),
            last_check: When::parse(l.last_check_at.as_deref()),
            latency: l.latency_ms.map(fmt::duration_ms).unwrap_or_default(),
            uptime: uptime.map_or_else(|| "–".into(), fmt::percent),
        });
    }
    let chart = charts::time_series(
        "Response time of passing checks by location (ms, average)",
        &series,
        from,
        now,
    );
    Ok(Some(LocationsPanel { lines, chart }))
}

/// Per location: passing and total results, and latency sums of passing ones per bucket since
/// `from`.
fn sum(samples: &[LocationSample], bucket_ms: i64, from: i64) -> BTreeMap<i64, Acc> {
    let mut out: BTreeMap<i64, Acc> = BTreeMap::new();
    for s in samples {
        let a = out.entry(s.location_id).or_default();
        a.total += 1;
        if !s.ok {
            continue;
        }
        a.ok += 1;
        if let (Some(l), true) = (s.latency_us, s.at >= from) {
            let e = a
                .latency
                .entry(s.at - s.at.rem_euclid(bucket_ms))
                .or_default();
            e.0 += l;
            e.1 += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_counts_every_result_and_latency_only_passing_ones_in_the_window() {
        let s = |location_id, at, ok, latency_us| LocationSample {
            location_id,
            at,
            ok,
            latency_us,
        };
        let sums = sum(
            &[
                s(1, 10, true, Some(1_000)),
                s(1, 70_000, true, Some(3_000)),
                s(1, 80_000, true, Some(5_000)),
                s(1, 90_000, false, Some(9_000)),
                s(2, 90_000, false, None),
            ],
            60_000,
            60_000,
        );
        let a = &sums[&1];
        assert_eq!((a.ok, a.total), (3, 4));
        // The first result is before the chart's window; the failure has no latency point.
        assert_eq!(a.latency.get(&60_000), Some(&(8_000, 2)));
        assert_eq!(a.latency.len(), 1);
        assert_eq!((sums[&2].ok, sums[&2].total), (0, 1));
    }
}
