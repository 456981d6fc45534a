//! The report's sections over the APM rollups: each service's golden figures against the
//! previous period and its 7-day baseline, the slowest and most time-consuming transactions,
//! capacity (requests per day, throughput growth, database sizes), and every SLO's budget.
//! All of it goes through `lookout_store::apm::query::fold`, as the service pages do, so a
//! report and the page it links to agree.

use std::collections::BTreeMap;

use lookout_apm::rollup::Red;
use lookout_store::alerting::{self as astore, SpecTable};
use lookout_store::apm::query::{self, Filter};
use lookout_store::reports::facts;
use lookout_store::Result;

use super::model::*;
use super::sections::Ctx;
use super::slo::{self, Indicator, SloSpec, Source};

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;

/// Relative p95 change, and at least this many ms, that counts as moved.
const P95_MOVE: f64 = 0.20;
const P95_MOVE_MS: f64 = 5.0;
/// Error-rate change that counts as moved: at least 1 point, and half the baseline.
const ERROR_MOVE_POINTS: f64 = 0.01;
const ERROR_MOVE: f64 = 0.5;
/// Fewer requests than this in either window say nothing about a move.
const MIN_REQUESTS: u64 = 20;

fn figures(red: Option<&Red>, apdex_t_ms: f64, minutes: f64) -> Figures {
    let Some(r) = red.filter(|r| r.count() > 0) else {
        return Figures::default();
    };
    Figures {
        requests: r.count(),
        throughput_rpm: r.count() as f64 / minutes,
        p95_ms: r.quantile(0.95),
        error_rate: Some(r.error_rate()),
        apdex: r.apdex(apdex_t_ms),
    }
}

/// What moved between `base` and `cur`, in words.
pub(super) fn moved(cur: &Figures, base: &Figures) -> Vec<String> {
    let mut out = Vec::new();
    if cur.requests < MIN_REQUESTS || base.requests < MIN_REQUESTS {
        return out;
    }
    if let (Some(c), Some(b)) = (cur.p95_ms, base.p95_ms) {
        if b > 0.0 && (c - b).abs() >= P95_MOVE_MS && ((c - b) / b).abs() >= P95_MOVE {
            out.push(format!(
                "p95 {c:.0} ms vs {b:.0} ms baseline ({:+.0} %)",
                100.0 * (c - b) / b
            ));
        }
    }
    if let (Some(c), Some(b)) = (cur.error_rate, base.error_rate) {
        let d = c - b;
        if d.abs() >= ERROR_MOVE_POINTS && (b == 0.0 || (d / b).abs() >= ERROR_MOVE) {
            out.push(format!(
                "error rate {:.1} % vs {:.1} % baseline",
                100.0 * c,
                100.0 * b
            ));
        }
    }
    out
}

fn service_url(name: &str) -> String {
    format!("/performance/services/{}", urlencode(name))
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Services with requests in the period or its baseline. Daily: those that moved only.
pub(super) async fn services(c: &Ctx<'_>) -> Result<Services> {
    let (p, prev) = (c.period, c.previous);
    let base = (p.start - 7 * DAY, p.start);
    let minutes = |a: i64, b: i64| ((b - a) as f64 / 60_000.0).max(1.0);
    let mut services = Vec::new();
    let request = Filter {
        projects: c.projects,
        category: Some("request"),
        ..Filter::default()
    };
    let svc = |cell: &query::Cell<'_>| Some(cell.service.to_string());
    let cur = query::fold(c.store, &request, p.start, p.end, svc).await?;
    let before = query::fold(c.store, &request, prev.start, prev.end, svc).await?;
    let baseline = query::fold(c.store, &request, base.0, base.1, svc).await?;
    let known = query::services(c.store, c.projects, base.0.min(prev.start)).await?;
    for s in &known {
        if !cur.contains_key(&s.name) && !baseline.contains_key(&s.name) {
            continue;
        }
        let line = ServiceLine {
            current: figures(cur.get(&s.name), s.apdex_t_ms, minutes(p.start, p.end)),
            previous: figures(
                before.get(&s.name),
                s.apdex_t_ms,
                minutes(prev.start, prev.end),
            ),
            baseline: figures(baseline.get(&s.name), s.apdex_t_ms, minutes(base.0, base.1)),
            moved: Vec::new(),
            name: s.name.clone(),
            project_id: s.project_id,
            url: service_url(&s.name),
        };
        let moved = moved(&line.current, &line.baseline);
        if c.kind == Kind::Daily && moved.is_empty() {
            continue;
        }
        services.push(ServiceLine { moved, ..line });
    }
    let (mut slowest, mut most_time) = (Vec::new(), Vec::new());
    if c.kind != Kind::Daily {
        let tx = query::fold(c.store, &request, p.start, p.end, |cell| {
            Some((cell.service.to_string(), cell.operation.to_string()))
        })
        .await?;
        let mut per_service: BTreeMap<&str, f64> = BTreeMap::new();
        for ((s, _), r) in &tx {
            *per_service.entry(s.as_str()).or_default() += r.all.sum;
        }
        let lines: Vec<TransactionLine> = tx
            .iter()
            .map(|((s, name), r)| TransactionLine {
                service: s.clone(),
                name: name.clone(),
                requests: r.count(),
                p95_ms: r.quantile(0.95),
                avg_ms: r.avg(),
                total_ms: r.all.sum,
                share: match per_service.get(s.as_str()) {
                    Some(&t) if t > 0.0 => r.all.sum / t,
                    _ => 0.0,
                },
                url: format!("{}/transaction?name={}", service_url(s), urlencode(name)),
            })
            .collect();
        slowest = lines.clone();
        slowest.sort_by(|a, b| {
            b.p95_ms
                .unwrap_or(0.0)
                .total_cmp(&a.p95_ms.unwrap_or(0.0))
                .then(a.name.cmp(&b.name))
        });
        slowest.truncate(10);
        most_time = lines;
        most_time.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms).then(a.name.cmp(&b.name)));
        most_time.truncate(10);
    }
    Ok(Services {
        services,
        slowest,
        most_time,
    })
}

/// Requests per (UTC) day and throughput growth, and database sizes over the period.
pub(super) async fn capacity(c: &Ctx<'_>) -> Result<Capacity> {
    let p = c.period;
    let request = Filter {
        projects: c.projects,
        category: Some("request"),
        ..Filter::default()
    };
    let per_day = query::fold(c.store, &request, p.start, p.end, |cell| {
        Some(cell.bucket.div_euclid(DAY) * DAY)
    })
    .await?;
    let mut weeks = [0u64; 2];
    for (i, (a, b)) in [(p.start, p.start + 7 * DAY), (p.end - 7 * DAY, p.end)]
        .into_iter()
        .enumerate()
    {
        let m = query::fold(c.store, &request, a, b, |_| Some(())).await?;
        weeks[i] = m.get(&()).map_or(0, Red::count);
    }
    let [first, last] = weeks;
    let mut databases = Vec::new();
    for t in lookout_store::dbhealth::list(c.store, c.projects).await? {
        let (a, b) = facts::db_checks_span(c.store, t.id, p.start, p.end).await?;
        let size = |r: &Option<lookout_store::dbhealth::CheckRow>| {
            r.as_ref()
                .and_then(|r| Some((r.started_at, r.report.as_ref()?["size_bytes"].as_i64()?)))
        };
        if let (Some(a), Some(b)) = (size(&a), size(&b)) {
            databases.push(DatabaseSize {
                target: t.name.clone(),
                first_at: a.0,
                first_bytes: a.1,
                last_at: b.0,
                last_bytes: b.1,
            });
        }
    }
    Ok(Capacity {
        requests_per_day: per_day.into_iter().map(|(d, r)| (d, r.count())).collect(),
        first_week_requests: first,
        last_week_requests: last,
        throughput_growth: (first > 0).then(|| last as f64 / first as f64 - 1.0),
        databases,
    })
}

/// `availability (requests)`, `latency p95 ≤ 300 ms`.
pub fn objective(s: &SloSpec) -> String {
    match (s.indicator, s.source) {
        (Indicator::Availability, Source::Requests) => "availability (requests)".into(),
        (Indicator::Availability, Source::Uptime) => "availability (uptime)".into(),
        (Indicator::Latency, _) => format!(
            "latency p{} ≤ {} ms",
            s.percentile.unwrap_or(95),
            s.threshold_ms.unwrap_or_default()
        ),
    }
}

/// An SLO's budget over its window ending at `end`.
pub async fn evaluate(
    store: &lookout_store::Store,
    projects: &[i64],
    s: &SloSpec,
    end: i64,
) -> Result<slo::Budget> {
    let start = end - i64::from(s.window_days) * DAY;
    let f = Filter {
        projects,
        service: Some(&s.service),
        category: Some("request"),
        ..Filter::default()
    };
    let (good, total) = match (s.indicator, s.source) {
        (Indicator::Availability, Source::Uptime) => {
            let (up, down) =
                facts::check_counts(store, s.monitor_id.unwrap_or_default(), start, end).await?;
            (up as f64, (up + down) as f64)
        }
        (Indicator::Availability, Source::Requests) => {
            let m = query::fold(store, &f, start, end, |_| Some(())).await?;
            let r = m.get(&()).cloned().unwrap_or_default();
            ((r.all.count - r.all.errors) as f64, r.all.count as f64)
        }
        (Indicator::Latency, _) => {
            // Whole hours of the window, read from the hour rollups.
            let (h0, h1) = (
                (start + HOUR - 1).div_euclid(HOUR) * HOUR,
                end.div_euclid(HOUR) * HOUR,
            );
            let hours = query::fold_ranges(store, &f, &[(1, h0, h1)], |c| Some(c.bucket)).await?;
            let q = f64::from(s.percentile.unwrap_or(95)) / 100.0;
            let limit = s.threshold_ms.unwrap_or(f64::MAX);
            let counted: Vec<bool> = hours
                .values()
                .filter(|r| r.count() > 0)
                .map(|r| r.quantile(q).is_some_and(|v| v <= limit))
                .collect();
            (
                counted.iter().filter(|g| **g).count() as f64,
                counted.len() as f64,
            )
        }
    };
    Ok(slo::budget(good, total, s.target))
}

/// Every SLO of the organization with its budget at the period's end (and its spec, which the
/// uptime section reads for monitor targets).
pub(super) async fn slo_lines(c: &Ctx<'_>) -> Result<Vec<(SloLine, SloSpec)>> {
    let mut out = Vec::new();
    for row in astore::spec_list(c.store, SpecTable::Slos, c.org_id).await? {
        let Ok(spec) = serde_json::from_value::<SloSpec>(row.spec.clone()) else {
            tracing::warn!(slo = row.id, "Skipping an unreadable SLO.");
            continue;
        };
        let budget = evaluate(c.store, c.projects, &spec, c.period.end).await?;
        // The service's page once it has sent spans; until then the services list.
        let url = match spec.source {
            Source::Uptime => format!("/uptime/monitors/{}", spec.monitor_id.unwrap_or_default()),
            Source::Requests => match query::service(c.store, c.projects, &spec.service).await? {
                Some(_) => service_url(&spec.service),
                None => "/performance".into(),
            },
        };
        out.push((
            SloLine {
                id: row.id,
                name: row.name,
                service: spec.service.clone(),
                objective: objective(&spec),
                window_days: spec.window_days,
                budget,
                url,
            },
            spec,
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(requests: u64, p95: f64, err: f64) -> Figures {
        Figures {
            requests,
            throughput_rpm: 0.0,
            p95_ms: Some(p95),
            error_rate: Some(err),
            apdex: None,
        }
    }

    #[test]
    fn moves_need_size_and_enough_requests() {
        assert_eq!(
            moved(&f(100, 240.0, 0.0), &f(100, 180.0, 0.0)),
            vec!["p95 240 ms vs 180 ms baseline (+33 %)".to_string()]
        );
        // 10 % is noise.
        assert!(moved(&f(100, 198.0, 0.0), &f(100, 180.0, 0.0)).is_empty());
        // 3 ms on 10 ms is 30 % but too small to matter.
        assert!(moved(&f(100, 13.0, 0.0), &f(100, 10.0, 0.0)).is_empty());
        assert_eq!(
            moved(&f(100, 10.0, 0.05), &f(100, 10.0, 0.01)),
            vec!["error rate 5.0 % vs 1.0 % baseline".to_string()]
        );
        assert!(moved(&f(10, 900.0, 0.5), &f(100, 10.0, 0.0)).is_empty());
    }
}
