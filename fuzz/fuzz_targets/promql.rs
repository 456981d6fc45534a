//! Fuzzes the PromQL evaluator with arbitrary query text over a small fixed data set: parsing
//! may refuse, evaluation may answer an error, nothing may panic. Instant and range evaluation
//! both run, with budgets small enough that a hostile query ends quickly.
//!
//! Run: `fuzz/run.sh promql` from the repository root (stable toolchain; see docs/operations.md).
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use lookout_promql::{eval_instant, eval_range, Limits, Query, Series, STALE_NAN_BITS};

fn data() -> Vec<Series> {
    let mut out = Vec::new();
    for (name, job, le) in [
        ("up", "a", None),
        ("up", "b", None),
        ("m_total", "a", None),
        ("h_bucket", "a", Some("0.5")),
        ("h_bucket", "a", Some("+Inf")),
    ] {
        let mut labels = vec![
            ("__name__".to_string(), name.to_string()),
            ("job".to_string(), job.to_string()),
        ];
        if let Some(le) = le {
            labels.push(("le".to_string(), le.to_string()));
        }
        labels.sort();
        let mut samples: Vec<(i64, f64)> =
            (0..40).map(|i| (i * 15_000, (i * 7 % 11) as f64)).collect();
        samples.push((40 * 15_000, f64::from_bits(STALE_NAN_BITS)));
        samples.push((41 * 15_000, f64::NAN));
        out.push(Series { labels, samples });
    }
    out
}

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let Ok(query) = Query::parse(text) else {
        return;
    };
    let limits = Limits {
        max_samples: 200_000,
        max_steps: 100,
        timeout: Duration::from_secs(2),
        ..Limits::default()
    };
    let query = query.with_limits(limits);
    let all = data();
    let (start, end, step) = (0, 600_000, 30_000);
    let Ok(sels) = query.selections(start, end, step) else {
        return;
    };
    let fetched: Vec<Vec<Series>> = sels
        .iter()
        .map(|s| {
            all.iter()
                .filter(|x| s.matchers.iter().all(|m| m.matches_labels(&x.labels)))
                .map(|x| {
                    // Raw samples answered as the selection asks (count_over_time sums weights).
                    let mut x = x.clone();
                    s.weigh_raw(&mut x.samples);
                    x
                })
                .collect()
        })
        .collect();
    if let Ok(v) = eval_instant(&query, 300_000, &fetched) {
        let _ = v.to_prometheus_json();
    }
    if let Ok(v) = eval_range(&query, start, end, step, &fetched) {
        let _ = v.to_prometheus_json();
    }
});
