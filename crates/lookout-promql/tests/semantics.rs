//! Behaviour a user of the evaluator notices without a Prometheus to compare with: staleness,
//! the 5-minute lookback, selections for offset and `@`, refusals naming what is unsupported,
//! and the budgets' errors.

use lookout_promql::{
    eval_instant, eval_range, Downsampled, ErrorKind, Limits, Query, Series, Value, STALE_NAN_BITS,
};

fn series(name: &str, job: &str, samples: &[(i64, f64)]) -> Series {
    Series {
        labels: vec![("__name__".into(), name.into()), ("job".into(), job.into())],
        samples: samples.to_vec(),
    }
}

fn instant(q: &str, t: i64, data: &[Series]) -> Result<Value, lookout_promql::Error> {
    let query = Query::parse(q)?;
    let fetched: Vec<Vec<Series>> = query
        .selections(t, t, 1)?
        .iter()
        .map(|sel| {
            let mut data = data.to_vec();
            data.iter_mut().for_each(|s| sel.weigh_raw(&mut s.samples));
            data
        })
        .collect();
    eval_instant(&query, t, &fetched)
}

fn values(v: &Value) -> Vec<f64> {
    match v {
        Value::Vector(s) => s.iter().map(|s| s.v).collect(),
        Value::Scalar { v, .. } => vec![*v],
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_stale_marker_ends_a_series_and_lookback_is_five_minutes() {
    let stale = f64::from_bits(STALE_NAN_BITS);
    let data = [series(
        "m",
        "a",
        &[(0, 1.0), (10_000, 2.0), (20_000, stale)],
    )];
    assert_eq!(values(&instant("m", 15_000, &data).unwrap()), vec![2.0]);
    assert!(
        values(&instant("m", 25_000, &data).unwrap()).is_empty(),
        "stale"
    );
    let gone = [series("m", "a", &[(0, 1.0)])];
    assert_eq!(
        values(&instant("m", 300_000, &gone).unwrap()),
        vec![1.0],
        "lookback closed"
    );
    assert!(
        values(&instant("m", 300_001, &gone).unwrap()).is_empty(),
        "past lookback"
    );
    // A plain NaN is a value, not a marker.
    let nan = [series("m", "a", &[(0, f64::NAN)])];
    assert!(values(&instant("m", 1, &nan).unwrap())[0].is_nan());
}

#[test]
fn range_functions_never_see_staleness_markers() {
    // A series that went stale and came back: the marker is no sample of any window, so the
    // window holds the four real samples and rate equals that of the series without it.
    let stale = f64::from_bits(STALE_NAN_BITS);
    let with = [series(
        "c",
        "a",
        &[
            (0, 1.0),
            (10_000, 2.0),
            (20_000, stale),
            (30_000, 3.0),
            (40_000, 4.0),
        ],
    )];
    let without = [series(
        "c",
        "a",
        &[(0, 1.0), (10_000, 2.0), (30_000, 3.0), (40_000, 4.0)],
    )];
    assert_eq!(
        values(&instant("count_over_time(c[1m])", 40_000, &with).unwrap()),
        vec![4.0]
    );
    for q in ["rate(c[1m])", "increase(c[1m])", "delta(c[1m])"] {
        let a = values(&instant(q, 40_000, &with).unwrap());
        let b = values(&instant(q, 40_000, &without).unwrap());
        assert!(a[0].is_finite(), "{q}: {a:?}");
        assert_eq!(a, b, "{q}");
    }
}

#[test]
fn rate_extrapolates_as_prometheus_does() {
    // A counter growing 1/s sampled every 10 s: rate over 1 min is exactly 1.
    let samples: Vec<(i64, f64)> = (0..=12).map(|i| (i * 10_000, i as f64 * 10.0)).collect();
    let data = [series("c", "a", &samples)];
    let v = values(&instant("rate(c[1m])", 120_000, &data).unwrap());
    assert!((v[0] - 1.0).abs() < 1e-12, "{v:?}");
    // A reset is counted as a continuation.
    let reset = [series(
        "c",
        "a",
        &[(0, 10.0), (10_000, 20.0), (20_000, 5.0), (30_000, 15.0)],
    )];
    let v = values(&instant("increase(c[30s])", 30_000, &reset).unwrap());
    assert!((v[0] - 25.0).abs() < 1e-9, "{v:?}"); // +10, +5 after the reset, +10
}

#[test]
fn selections_apply_offset_at_and_range() {
    let q = Query::parse(r#"rate(x{job=~"a.*"}[5m] offset 1m) + y @ 100"#).unwrap();
    let s = q.selections(1_000_000, 2_000_000, 10_000).unwrap();
    assert_eq!(s.len(), 2);
    assert_eq!(
        (s[0].from_ms, s[0].to_ms),
        (1_000_000 - 60_000 - 300_000, 2_000_000 - 60_000)
    );
    assert!(s[0]
        .matchers
        .iter()
        .any(|m| m.name == "job" && m.matches("api")));
    assert_eq!((s[1].from_ms, s[1].to_ms), (100_000 - 300_000, 100_000));
}

/// Over a downsampled tier a bucket is one point standing for many samples: the function
/// directly around a matrix selector says which of its aggregates to read, and
/// `count_over_time` sums weights so a bucket counts all its samples.
#[test]
fn range_functions_ask_for_the_bucket_aggregate_they_need() {
    for (text, want) in [
        ("min_over_time(x[1h])", Downsampled::Min),
        ("max_over_time(x[1h])", Downsampled::Max),
        ("sum by (a) (sum_over_time(x[1h]))", Downsampled::Sum),
        ("count_over_time(x[1h] offset 1d)", Downsampled::Count),
        ("avg_over_time(x[1h])", Downsampled::Auto),
        ("rate(x[1h])", Downsampled::Auto),
        ("x", Downsampled::Auto),
        // A subquery's points are evaluated values, not buckets.
        ("max_over_time(x[1h:5m])", Downsampled::Auto),
    ] {
        let s = Query::parse(text).unwrap().selections(0, 0, 1).unwrap();
        assert_eq!(s[0].downsampled, want, "{text}");
    }
    // A caller with tiers answers count_over_time with weights: a 1-hour bucket of 240 samples
    // and two raw samples after it count 242, not 3.
    let q = Query::parse("count_over_time(x[2h])").unwrap();
    let t = 7_200_000;
    let weights = vec![vec![series(
        "x",
        "a",
        &[(3_599_999, 240.0), (3_615_000, 1.0), (3_630_000, 1.0)],
    )]];
    assert_eq!(values(&eval_instant(&q, t, &weights).unwrap()), vec![242.0]);
    // From raw samples the selection's own weighing gives a plain count, markers left out.
    let sel = &q.selections(t, t, 1).unwrap()[0];
    let mut raw = vec![
        (1_000, 7.5),
        (2_000, f64::from_bits(STALE_NAN_BITS)),
        (3_000, 9.0),
    ];
    sel.weigh_raw(&mut raw);
    let raw = vec![vec![series("x", "a", &raw)]];
    assert_eq!(values(&eval_instant(&q, t, &raw).unwrap()), vec![2.0]);
}

#[test]
fn unsupported_features_are_refused_by_name() {
    for (q, name) in [
        ("holt_winters(x[5m], 0.5, 0.5)", "holt_winters"),
        ("histogram_count(x)", "histogram_count"),
        ("absent_over_time(x[5m:1m])", "subquery"),
    ] {
        let e = Query::parse(q).unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadData);
        assert!(e.message.contains(name), "{q}: {}", e.message);
        assert_eq!(e.to_prometheus_json()["errorType"], "bad_data");
    }
    assert_eq!(Query::parse("sum(").unwrap_err().kind, ErrorKind::BadData);
    assert_eq!(
        Query::parse(r#"{job=~".*"}"#).unwrap_err().kind,
        ErrorKind::BadData
    );
}

#[test]
fn budgets_answer_clear_errors() {
    let q = Query::parse("m").unwrap();
    let e = q.selections(0, 11_001, 1).unwrap_err();
    assert!(
        e.message.contains("11000") || e.message.contains("maximum resolution"),
        "{e}"
    );
    let q = Query::parse("m").unwrap().with_limits(Limits {
        max_samples: 10,
        ..Limits::default()
    });
    let data = vec![vec![series(
        "m",
        "a",
        &(0..20).map(|i| (i * 1000, 1.0)).collect::<Vec<_>>(),
    )]];
    let e = eval_range(&q, 0, 20_000, 1_000, &data).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Execution);
    assert!(e.message.contains("too many samples"), "{e}");
}

#[test]
fn many_to_many_matching_is_an_error_not_a_number() {
    let data = [series("a", "x", &[(0, 1.0)]), series("a", "y", &[(0, 2.0)])];
    let e = instant("a + on() a", 0, &data).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Execution);
    assert!(e.message.contains("many-to-many"), "{e}");
}

#[test]
fn range_results_are_sorted_matrices_with_prometheus_json() {
    let data = vec![vec![
        series("m", "b", &[(0, 1.0)]),
        series("m", "a", &[(0, 2.0)]),
    ]];
    let q = Query::parse("m").unwrap();
    let v = eval_range(&q, 0, 2_000, 1_000, &data).unwrap();
    let json = v.to_prometheus_json();
    assert_eq!(json["resultType"], "matrix");
    assert_eq!(json["result"][0]["metric"]["job"], "a");
    assert_eq!(json["result"][0]["values"][2][1], "2");
}

#[test]
fn range_answers_of_rate_equal_instant_answers_at_each_step() {
    // A graph (range query) and a table (instant query) of the same rate must show the same
    // numbers: range evaluation carries work from step to step and series to series, an
    // instant query starts afresh. Counters here reset, go stale, vanish for longer than the
    // range and come back, are scraped at jittered intervals, and one is born near zero.
    let stale = f64::from_bits(STALE_NAN_BITS);
    let mut a = Vec::new();
    let mut v = 100.0;
    for k in 0..120i64 {
        v = if k % 37 == 0 { 1.0 } else { v + (k % 4) as f64 };
        a.push((k * 15_000 + (k * 7919 % 5) * 1000, v));
    }
    a.push((120 * 15_000, stale));
    for k in 150..200i64 {
        a.push((k * 15_000, k as f64));
    }
    let b: Vec<(i64, f64)> = (0..200i64)
        .map(|k| (k * 15_000, 0.5 + 3.0 * k as f64))
        .collect();
    let c: Vec<(i64, f64)> = (0..200i64)
        .map(|k| (k * 15_000, 1e9 - (k % 10) as f64))
        .collect();
    let data = [
        series("m", "a", &a),
        series("m", "b", &b),
        series("m", "c", &c),
    ];
    for text in [
        "rate(m[1m])",
        "increase(m[5m])",
        "delta(m[2m])",
        "sum(rate(m[1m]))",
    ] {
        let q = Query::parse(text).unwrap();
        let (start, end, step) = (0, 3_000_000, 20_000);
        let fetched: Vec<Vec<Series>> = q
            .selections(start, end, step)
            .unwrap()
            .iter()
            .map(|_| data.to_vec())
            .collect();
        let Value::Matrix(range) = eval_range(&q, start, end, step, &fetched).unwrap() else {
            panic!("a matrix expected")
        };
        let mut points = 0;
        for t in (start..=end).step_by(step as usize) {
            let Value::Vector(at) = instant(text, t, &data).unwrap() else {
                panic!("a vector expected")
            };
            for s in &at {
                let r = range.iter().find(|r| r.labels == s.labels).expect("series");
                let p = r.points.iter().find(|p| p.0 == t).expect("point");
                assert_eq!(
                    p.1.to_bits(),
                    s.v.to_bits(),
                    "{text} at {t}: {} vs {}",
                    p.1,
                    s.v
                );
                points += 1;
            }
            // No step has a point in the range answer that the instant answer lacks.
            let in_range = range
                .iter()
                .filter(|r| r.points.iter().any(|p| p.0 == t))
                .count();
            assert_eq!(in_range, at.len(), "{text} at {t}");
        }
        assert!(points > 100, "{text}: {points} points compared");
    }
}

#[test]
fn the_parallel_aggregation_agrees_with_the_sequential_one() {
    // 3,000 series take the threaded path of `sum by (x) (rate(...))`; `rate(...) * 1` makes
    // the same sum walk a materialised vector on one thread.
    let data: Vec<Series> = (0..3_000i64)
        .map(|i| Series {
            labels: vec![
                ("__name__".into(), "m".into()),
                ("i".into(), i.to_string()),
                ("x".into(), format!("g{}", i % 7)),
            ],
            samples: (0..40i64)
                .map(|k| (k * 15_000 + (i % 15) * 1000, (k * (i % 5 + 1)) as f64))
                .collect(),
        })
        .collect();
    let run = |text: &str, op: &str| {
        let q = Query::parse(&format!("{op} by (x) ({text})")).unwrap();
        let fetched: Vec<Vec<Series>> = q
            .selections(0, 600_000, 30_000)
            .unwrap()
            .iter()
            .map(|_| data.clone())
            .collect();
        eval_range(&q, 0, 600_000, 30_000, &fetched).unwrap()
    };
    for op in ["sum", "count", "min", "max", "group"] {
        let (Value::Matrix(a), Value::Matrix(b)) =
            (run("rate(m[1m])", op), run("rate(m[1m]) * 1", op))
        else {
            panic!("matrices expected")
        };
        assert_eq!(a.len(), 7, "{op}");
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.labels, y.labels);
            assert_eq!(x.points.len(), y.points.len());
            for (p, q) in x.points.iter().zip(&y.points) {
                assert_eq!(p.0, q.0);
                assert!(
                    (p.1 - q.1).abs() <= 1e-9 * p.1.abs().max(q.1.abs()),
                    "{op}: {p:?} vs {q:?}"
                );
            }
        }
    }
}

#[test]
fn subqueries_evaluate_on_their_own_aligned_grid() {
    // A gauge equal to its time in minutes; `[10m:]` uses the default 1-minute step, so the
    // window at 30 min holds the inner points of minutes 20..=30.
    let data: Vec<Series> = vec![series(
        "g",
        "a",
        &(0..=40).map(|m| (m * 60_000, m as f64)).collect::<Vec<_>>(),
    )];
    let t = 30 * 60_000;
    assert_eq!(
        values(&instant("count_over_time(g[10m:])", t, &data).unwrap()),
        vec![11.0]
    );
    assert_eq!(
        values(&instant("min_over_time(g[10m:2m] offset 4m)", t, &data).unwrap()),
        vec![16.0]
    );
    let q = Query::parse("max_over_time(rate(g[5m])[1h:5m] offset 1m)").unwrap();
    let s = q.selections(3_600_000, 7_200_000, 60_000).unwrap();
    assert_eq!(
        (s[0].from_ms, s[0].to_ms),
        (3_600_000 - 60_000 - 3_600_000 - 300_000, 7_200_000 - 60_000)
    );
}

#[test]
fn deeply_nested_queries_are_refused_before_they_can_overflow_the_stack() {
    for text in [
        format!("{}1{}", "(".repeat(20_000), ")".repeat(20_000)),
        vec!["1"; 20_000].join("+"),
        format!("{}x", "-".repeat(20_000)),
        format!("{}x{}", "abs(".repeat(5_000), ")".repeat(5_000)),
        vec!["x"; 5_000].join(" and "),
        // Upper-case keywords are keywords too.
        vec!["up"; 5_000].join(" OR "),
        vec!["up"; 5_000].join(" Unless "),
        // A quote inside a comment starts no string.
        format!("# \"\n{}1{}", "(".repeat(20_000), ")".repeat(20_000)),
        format!("x # it's\n{}", "+x".repeat(20_000)),
    ] {
        let e = Query::parse(&text).unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadData);
        assert!(e.message.contains("too complex"), "{}", e.message);
    }
    // A long but ordinary query is fine, and operators inside strings do not count.
    let ok = format!(
        r#"sum by (job) (rate(x{{path=~"{}"}}[5m])) / 2"#,
        "a-b+".repeat(2_000)
    );
    Query::parse(&ok).unwrap();
}

#[test]
fn the_deepest_accepted_queries_parse_and_evaluate_on_a_small_stack() {
    // Test threads have 2 MiB stacks, as tokio's workers do: the limit must fit in them.
    let data = [series("x", "a", &[(0, 1.0)])];
    let n = 127; // one bracket around 127 operators, or 128 nested calls: the limit
    for text in [
        format!("{}x{}", "(".repeat(n), ")".repeat(n)),
        vec!["x"; n].join("+"),
        format!("{}x", "-".repeat(n)),
        format!("{}x{}", "abs(".repeat(n), ")".repeat(n)),
        format!("{}x{}", "sum(".repeat(n), ")".repeat(n)),
        format!("{}x{}", "abs(".repeat(n + 1), ")".repeat(n + 1)),
        vec!["x"; n / 2].join(" and on() "),
    ] {
        let v = instant(&text, 0, &data).unwrap_or_else(|e| panic!("{}: {e}", &text[..40]));
        assert!(!values(&v).is_empty());
    }
}

#[test]
fn range_functions_that_collide_once_the_name_is_dropped_are_an_error() {
    let a = series("a_total", "x", &[(0, 1.0), (10_000, 2.0)]);
    let b = series("b_total", "x", &[(0, 1.0), (10_000, 3.0)]);
    let both = [a, b];
    let e = instant(r#"rate({__name__=~"a_total|b_total"}[1m])"#, 10_000, &both).unwrap_err();
    assert!(e.message.contains("same labelset"), "{e}");
    // Aggregating them is fine, as in Prometheus.
    let v = instant(
        r#"sum(increase({__name__=~"a_total|b_total"}[1m]))"#,
        10_000,
        &both,
    )
    .unwrap();
    assert_eq!(values(&v).len(), 1);
}

#[test]
fn relabelling_refuses_huge_label_values_and_counts_label_bytes() {
    let data = [series("x", "abcdefgh", &[(0, 1.0)])];
    // label_join: 30 KiB separator between 2,000 sources.
    let sep = "s".repeat(30 * 1024);
    let srcs = vec![r#""job""#; 2_000].join(",");
    let e = instant(&format!(r#"label_join(x, "d", "{sep}", {srcs})"#), 0, &data).unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadData);
    assert!(
        e.message.contains("label_join") && e.message.contains("16384"),
        "{e}"
    );
    // label_replace: `$1` repeated until the value is far past the cap.
    let repl = "$1".repeat(20_000);
    let e = instant(
        &format!(r#"label_replace(x, "d", "{repl}", "job", "(.*)")"#),
        0,
        &data,
    )
    .unwrap_err();
    assert!(e.message.contains("label_replace"), "{e}");
    // `$$` escapes and named groups still expand as a whole replacement does.
    let v = instant(
        r#"label_replace(x, "d", "$$1-${1}x-$1", "job", "(abc).*")"#,
        0,
        &data,
    )
    .unwrap();
    let Value::Vector(s) = v else { panic!() };
    assert!(
        s[0].labels.contains(&("d".into(), "$1-abcx-abc".into())),
        "{:?}",
        s[0].labels
    );
    // Values under the cap are fine, but their bytes count against the sample budget.
    let ok = r#"label_join(x, "d", "-", "job", "job", "job")"#;
    assert!(instant(ok, 0, &data).is_ok());
    let q = Query::parse(&format!(
        r#"label_join(x, "d", "{}", "job", "job")"#,
        "s".repeat(8_000)
    ))
    .unwrap()
    .with_limits(Limits {
        max_samples: 100,
        ..Limits::default()
    });
    let e = eval_instant(&q, 0, &[data.to_vec()]).unwrap_err();
    assert!(e.message.contains("too many samples"), "{e}");
}

#[test]
fn aggregations_of_range_functions_of_subqueries_evaluate() {
    let data = [
        series("x", "a", &[(0, 1.0), (60_000, 2.0), (120_000, 4.0)]),
        series("x", "b", &[(0, 1.0), (60_000, 3.0), (120_000, 9.0)]),
    ];
    for (q, want) in [
        ("max(max_over_time(x[2m:]))", 9.0),
        ("sum(max_over_time(x[2m:1m]))", 13.0),
        ("count(rate(x[2m:1m]))", 2.0),
        ("min(max_over_time(x[2m:1m]))", 4.0),
        ("group(max_over_time(x[2m:1m]))", 1.0),
    ] {
        let v = instant(q, 120_000, &data).unwrap_or_else(|e| panic!("{q}: {e}"));
        assert_eq!(values(&v), vec![want], "{q}");
    }
}

/// Runs `q` at `t` over `data` with a 1 ms timeout: long loops must notice it.
fn with_short_timeout(q: &str, start: i64, end: i64, data: &[Series]) -> lookout_promql::Error {
    let query = Query::parse(q).unwrap().with_limits(Limits {
        timeout: std::time::Duration::from_millis(1),
        ..Limits::default()
    });
    let fetched = vec![data.to_vec(); query.selections(start, end, 60_000).unwrap().len()];
    eval_range(&query, start, end, 60_000, &fetched).unwrap_err()
}

#[test]
fn absent_over_time_checks_the_timeout_inside_its_loop() {
    // 300 series over 10,000 steps.
    let long: Vec<Series> = (0..300)
        .map(|i| series("x", &format!("j{i}"), &[(0, 1.0)]))
        .collect();
    let e = with_short_timeout("absent_over_time(x[1m])", 0, 9_999 * 60_000, &long);
    assert!(e.message.contains("timed out"), "{e}");
}

#[test]
fn count_values_counts_every_nan_as_one_value() {
    let data = [
        series("x", "a", &[(0, f64::NAN)]),
        series("x", "b", &[(0, f64::from_bits(0x7ff8_0000_0000_0001))]),
        series("x", "c", &[(0, 2.0)]),
        series("x", "d", &[(0, 2.0)]),
        series("x", "e", &[(0, 3.0)]),
    ];
    let Value::Vector(s) = instant(r#"count_values("v", x)"#, 0, &data).unwrap() else {
        panic!()
    };
    let mut got: Vec<(String, f64)> = s.iter().map(|s| (s.labels[0].1.clone(), s.v)).collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        vec![("2".into(), 2.0), ("3".into(), 1.0), ("NaN".into(), 2.0)]
    );
}

#[test]
fn subquery_grids_are_bounded_before_they_are_allocated() {
    // 6 hours at 1 ms: 21.6 M steps, under the sample budget but far over the step cap.
    let e = instant("sum(x)[6h:1ms]", 6 * 3_600_000, &[]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadData);
    assert!(e.message.contains("subqueries would evaluate"), "{e}");
    let e = instant(
        "max_over_time(x[1h:5ms]) + max_over_time(x[1h:5ms])",
        3_600_000,
        &[],
    )
    .unwrap_err();
    assert!(e.message.contains("the limit is 1100000"), "{e}");
    assert!(instant("max_over_time(x[1h:10s])", 3_600_000, &[]).is_ok());
}

#[test]
fn aggregation_groups_count_all_the_memory_they_hold() {
    // 10 series of one sample over 100 steps: 10 samples loaded, 10 x 100 points selected,
    // 10 groups of three 100-point vectors (value, mean, count): 4,010.
    let data: Vec<Series> = (0..10)
        .map(|i| series("x", &format!("j{i}"), &[(0, 1.0)]))
        .collect();
    let run = |max_samples| {
        let q = Query::parse("sum by (job) (x)")
            .unwrap()
            .with_limits(Limits {
                max_samples,
                ..Limits::default()
            });
        eval_range(&q, 0, 99_000, 1_000, std::slice::from_ref(&data))
    };
    assert!(run(4_010).is_ok());
    let e = run(3_000).unwrap_err();
    assert_eq!(e, lookout_promql::Error::too_many_samples(3_000));
}

#[test]
fn regular_expressions_have_a_per_query_budget() {
    // Each regex is small, but 65 of them are past the query's budget.
    let selector = |n: usize| {
        let matchers: Vec<String> = (0..n).map(|i| format!(r#"l{i}=~"a{i}|b""#)).collect();
        format!("x{{{}}}", matchers.join(","))
    };
    let many = selector(65);
    let e = Query::parse(&many).unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadData);
    assert!(e.message.contains("regular expressions"), "{e}");
    Query::parse(&selector(64)).unwrap();
    // One whose compiled program is huge is refused before the parser compiles it.
    let e = Query::parse(r#"x{job=~"(a{1000}){1000}"}"#).unwrap_err();
    assert!(e.message.contains("size limit"), "{e}");
    // label_replace() regexes count too.
    let lr = format!(
        "{}x{}",
        r#"label_replace("#.repeat(65),
        r#", "d", "$1", "job", "(.*)")"#.repeat(65)
    );
    let e = Query::parse(&lr).unwrap_err();
    assert!(e.message.contains("regular expressions"), "{e}");
}

fn bucket(name: &str, le: &str, samples: &[(i64, f64)]) -> Series {
    Series {
        labels: vec![
            ("__name__".into(), name.into()),
            ("job".into(), "a".into()),
            ("le".into(), le.into()),
        ],
        samples: samples.to_vec(),
    }
}

#[test]
fn histogram_quantile_groups_buckets_by_name_too() {
    let data = [
        bucket("a_bucket", "1", &[(0, 10.0)]),
        bucket("a_bucket", "+Inf", &[(0, 10.0)]),
        bucket("b_bucket", "10", &[(600_000, 10.0)]),
        bucket("b_bucket", "+Inf", &[(600_000, 10.0)]),
    ];
    // Present at different times: two histograms whose answers share one output series.
    let q = Query::parse(r#"histogram_quantile(0.5, {__name__=~"a_bucket|b_bucket"})"#).unwrap();
    let Value::Matrix(m) = eval_range(&q, 0, 600_000, 600_000, &[data.to_vec()]).unwrap() else {
        panic!()
    };
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].labels, vec![("job".to_string(), "a".to_string())]);
    assert_eq!(m[0].points, vec![(0, 0.5), (600_000, 5.0)]);
    // Present together: never one histogram mixing both names' buckets.
    let both = [
        bucket("a_bucket", "1", &[(0, 10.0)]),
        bucket("a_bucket", "+Inf", &[(0, 10.0)]),
        bucket("b_bucket", "10", &[(0, 10.0)]),
        bucket("b_bucket", "+Inf", &[(0, 10.0)]),
    ];
    let e = instant(
        r#"histogram_quantile(0.5, {__name__=~"a_bucket|b_bucket"})"#,
        0,
        &both,
    )
    .unwrap_err();
    assert!(e.message.contains("same labelset"), "{e}");
}

#[test]
fn predict_linear_with_at_extrapolates_from_the_evaluation_time() {
    // x grows by 1 a second from 0 to 100 s.
    let samples: Vec<(i64, f64)> = (0..=10)
        .map(|i| (i * 10_000, f64::from(i as i32 * 10)))
        .collect();
    let data = [series("x", "a", &samples)];
    // Window pinned at 100 s, evaluated at 1,000 s: predicts x at 1,000 s (+ 0 s).
    let v = instant("predict_linear(x[100s] @ 100, 0)", 1_000_000, &data).unwrap();
    assert!((values(&v)[0] - 1_000.0).abs() < 1e-6, "{v:?}");
    // A range query extrapolates from each step's time (Prometheus 2.42 moves the pinned
    // window with the step there; see docs/promql.md).
    let run = |q: &str| {
        let q = Query::parse(q).unwrap();
        let Value::Matrix(m) =
            eval_range(&q, 500_000, 1_000_000, 500_000, &[data.to_vec()]).unwrap()
        else {
            panic!()
        };
        m[0].points.iter().map(|p| p.1.round()).collect::<Vec<_>>()
    };
    assert_eq!(
        run("predict_linear(x[100s] @ 100, 0)"),
        vec![500.0, 1_000.0]
    );
    assert_eq!(
        run("predict_linear(x[100s] @ 100, time() * 0)"),
        vec![500.0, 1_000.0]
    );
}

#[test]
fn label_values_containing_the_separator_character_do_not_collide() {
    let s = |a: &str, b: &str| Series {
        labels: vec![
            ("__name__".into(), "x".into()),
            ("a".into(), a.into()),
            ("b".into(), b.into()),
        ],
        samples: vec![(0, 1.0)],
    };
    // {a="pÿbÿq"} and {a="p", b="q"} once shared the signature "aÿpÿbÿqÿ".
    let left = s("p\u{ff}b\u{ff}q", "");
    let right = s("p", "q");
    let v = instant("x{b=\"\"} * on(a, b) x{b=\"q\"}", 0, &[left, right]).unwrap();
    assert!(values(&v).is_empty(), "{v:?}");
}

#[test]
fn absent_drops_labels_that_a_non_equality_matcher_constrains() {
    let labels = |q: &str| {
        let Value::Vector(s) = instant(q, 0, &[]).unwrap() else {
            panic!()
        };
        s[0].labels.clone()
    };
    let l = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(labels(r#"absent(x{job="a",job!="b"})"#), l(&[]));
    assert_eq!(
        labels(r#"absent(x{job="a",job=~"a.*",env="p"})"#),
        l(&[("env", "p")])
    );
    assert_eq!(labels(r#"absent(x{job="a",job="a"})"#), l(&[]));
    // As Prometheus, in the matchers' order: a later `=` sets what an earlier one could not.
    assert_eq!(labels(r#"absent(x{job!="b",job="a"})"#), l(&[("job", "a")]));
    assert_eq!(
        labels(r#"absent_over_time(x{job="a",job!="b"}[5m])"#),
        l(&[])
    );
}

#[test]
fn selections_reach_back_by_the_query_own_lookback() {
    let q = Query::parse("x").unwrap().with_limits(Limits {
        lookback_ms: 60_000,
        ..Limits::default()
    });
    let s = q.selections(1_000_000, 1_000_000, 1).unwrap();
    assert_eq!((s[0].from_ms, s[0].to_ms), (940_000, 1_000_000));
}

#[test]
fn signalling_nan_inputs_never_turn_into_absent_steps() {
    // The sign-flipped absence marker: `-x` and `abs(x)` flip the sign bit of what they get.
    let data = [series(
        "x",
        "a",
        &[(0, f64::from_bits(0xfff4_0000_dead_beef))],
    )];
    for q in ["-x", "abs(x)", "x"] {
        let v = instant(q, 0, &data).unwrap();
        assert_eq!(values(&v).len(), 1, "{q}: {v:?}");
        assert!(values(&v)[0].is_nan(), "{q}");
    }
    // The staleness marker is still one.
    let stale = [series(
        "x",
        "a",
        &[(0, 1.0), (1_000, f64::from_bits(STALE_NAN_BITS))],
    )];
    assert!(values(&instant("-x", 2_000, &stale).unwrap()).is_empty());
}
