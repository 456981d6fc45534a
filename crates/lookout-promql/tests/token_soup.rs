//! A stable-Rust stand-in for the fuzz target (which needs nightly): 8,000 queries, half token
//! soup, half generated well-typed PromQL (so most reach the evaluator), with extreme numbers,
//! durations, offsets and `@` times, parsed and evaluated with debug overflow checks on.
//! Errors are fine; a panic fails the test. The seed is fixed, so a failure reproduces.

use lookout_promql::{eval_instant, eval_range, ErrorKind, Limits, Query, Series, STALE_NAN_BITS};

const TOKENS: &[&str] = &[
    "up",
    "m_total",
    "h_bucket",
    "{job=\"a\"}",
    "{job=~\"a|b\"}",
    "{le!=\"\"}",
    "[5m]",
    "[1s]",
    "[100y]",
    "[5m:1m]",
    "[1h:]",
    "[3m:7s]",
    " offset 5m",
    " offset -1h",
    " offset 100y",
    " @ 0",
    " @ 1e12",
    " @ -1e12",
    " @ start()",
    " @ end()",
    "(",
    ")",
    "(",
    ")",
    ",",
    "+",
    "-",
    "*",
    "/",
    "%",
    "^",
    " and ",
    " or ",
    " unless ",
    " atan2 ",
    "==",
    "!=",
    ">",
    "<",
    ">=",
    " bool ",
    " on(job) ",
    " ignoring(le) ",
    " group_left ",
    " group_right(job) ",
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "stddev",
    "topk(",
    "bottomk(",
    "quantile(",
    "count_values(",
    " by (job) ",
    " without (le) ",
    "rate(",
    "irate(",
    "increase(",
    "delta(",
    "deriv(",
    "predict_linear(",
    "avg_over_time(",
    "quantile_over_time(",
    "changes(",
    "resets(",
    "absent(",
    "absent_over_time(",
    "label_replace(",
    "label_join(",
    "histogram_quantile(",
    "round(",
    "clamp(",
    "clamp_min(",
    "abs(",
    "sqrt(",
    "ln(",
    "timestamp(",
    "day_of_week(",
    "days_in_month(",
    "scalar(",
    "vector(",
    "time()",
    "sort(",
    "sort_desc(",
    "0",
    "1",
    "-1",
    "0.5",
    "1e308",
    "-1e308",
    "NaN",
    "Inf",
    "-Inf",
    "9223372036854775807",
    "\"job\"",
    "\"$1\"",
    "\"(.*)\"",
    "\"le\"",
    "\"\"",
];

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
        samples.push((42 * 15_000, f64::INFINITY));
        out.push(Series { labels, samples });
    }
    out
}

/// A random well-typed query (instant vector), so most reach the evaluator.
fn vector_expr(r: &mut dyn FnMut() -> u64, depth: u32) -> String {
    let pick =
        |r: &mut dyn FnMut() -> u64, xs: &[&str]| xs[(r() % xs.len() as u64) as usize].to_string();
    // A selector with an optional range (`[5m]`, put before the modifiers as PromQL wants).
    let selector_with = |r: &mut dyn FnMut() -> u64, range: &str| {
        let mut s = pick(
            r,
            &[
                "up",
                "m_total",
                "h_bucket",
                "{job=~\"a|b\"}",
                "up{job!=\"a\"}",
            ],
        );
        s += range;
        s += &pick(
            r,
            &[
                "",
                "",
                " offset 1m",
                " offset -2m",
                " @ 300",
                " @ end()",
                " offset 100y",
                " @ -1e12",
            ],
        );
        s
    };
    let selector = |r: &mut dyn FnMut() -> u64| selector_with(r, "");
    let range_selector = |r: &mut dyn FnMut() -> u64| {
        let range = pick(r, &["[1m]", "[5m]", "[15s]", "[10m]", "[2m:1m]"]);
        selector_with(r, &range)
    };
    if depth == 0 {
        return selector(r);
    }
    let sub = |r: &mut dyn FnMut() -> u64| vector_expr(r, depth - 1);
    match r() % 12 {
        0 => selector(r),
        1 => {
            let f = pick(
                r,
                &[
                    "rate",
                    "irate",
                    "increase",
                    "delta",
                    "deriv",
                    "changes",
                    "resets",
                    "max_over_time",
                    "stddev_over_time",
                    "last_over_time",
                    "present_over_time",
                ],
            );
            if r().is_multiple_of(3) {
                format!("{f}(({})[5m:{}])", sub(r), pick(r, &["1m", "30s", "7s"]))
            } else {
                format!("{f}({})", range_selector(r))
            }
        }
        2 => format!(
            "quantile_over_time({}, {})",
            pick(r, &["0.5", "2", "-1", "NaN"]),
            range_selector(r)
        ),
        3 => {
            let op = pick(
                r,
                &[
                    "sum", "avg", "min", "max", "count", "group", "stddev", "stdvar",
                ],
            );
            format!(
                "{op} {}({})",
                pick(r, &["", "by (job) ", "without (le) ", "by () "]),
                sub(r)
            )
        }
        4 => {
            let op = pick(r, &["topk", "bottomk", "quantile"]);
            format!(
                "{op}({}, {})",
                pick(r, &["1", "2", "0.5", "NaN", "1e9", "-3"]),
                sub(r)
            )
        }
        5 => format!("count_values(\"v\", {})", sub(r)),
        6 => {
            let op = pick(
                r,
                &[
                    "+", "-", "*", "/", "%", "^", "atan2", "==", "!=", ">", "<=", "> bool", "and",
                    "or", "unless",
                ],
            );
            let m = pick(
                r,
                &[
                    "",
                    "",
                    " on(job)",
                    " ignoring(le)",
                    // `group_left (x)` would read `(x)` as its label list.
                    " on(job) group_left()",
                    " on(job) group_right(le)",
                    " on()",
                ],
            );
            // group_left/right: for arithmetic and comparisons, never for set operators.
            let m = if !matches!(op.as_str(), "and" | "or" | "unless") {
                m
            } else {
                m.replace(" group_left()", "")
                    .replace(" group_right(le)", "")
            };
            format!("({}) {op}{m} ({})", sub(r), sub(r))
        }
        7 => format!(
            "({}) {} {}",
            sub(r),
            pick(r, &["+", "*", ">", "< bool", "/"]),
            pick(
                r,
                &["0", "1", "NaN", "-Inf", "1e308", "scalar(up)", "time()"]
            )
        ),
        8 => format!(
            "histogram_quantile({}, {})",
            pick(r, &["0.9", "0", "1", "NaN", "-1"]),
            sub(r)
        ),
        9 => format!(
            "label_replace({}, \"x\", \"$1-$2\", \"job\", \"(.)(.*)\")",
            sub(r)
        ),
        10 => format!(
            "{}({})",
            pick(
                r,
                &[
                    "abs",
                    "round",
                    "ceil",
                    "timestamp",
                    "day_of_week",
                    "days_in_month",
                    "sort_desc",
                    "absent",
                    "exp",
                    "sqrt",
                    "ln"
                ]
            ),
            sub(r)
        ),
        // absent_over_time() of a subquery is refused as unsupported: selectors only.
        _ => {
            let range = pick(r, &["[1m]", "[5m]", "[15s]"]);
            format!("absent_over_time({})", selector_with(r, &range))
        }
    }
}

/// An error a well-typed query may answer on the test's data.
fn acceptable(e: &lookout_promql::Error) -> bool {
    e.kind == ErrorKind::Execution
        && [
            "many-to-many matching not allowed",
            "multiple matches for labels",
            "same labelset",
            "too many samples",
        ]
        .iter()
        .any(|m| e.message.contains(m))
}

#[test]
fn token_soup_never_panics() {
    let all = data();
    let limits = Limits {
        max_samples: 200_000,
        max_steps: 100,
        ..Limits::default()
    };
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut parsed, mut evaluated) = (0, 0);
    let mut wrong = Vec::new();
    for i in 0..8_000 {
        let generated = i % 2 == 1;
        let text: String = if !generated {
            let len = 1 + next() % 12;
            (0..len)
                .map(|_| TOKENS[(next() % TOKENS.len() as u64) as usize])
                .collect()
        } else {
            let depth = 1 + (next() % 4) as u32;
            vector_expr(&mut next, depth)
        };
        let q = match Query::parse(&text) {
            Ok(q) => q,
            Err(e) => {
                // A generated query is well-typed PromQL: it must parse.
                if generated {
                    wrong.push(format!("{text}: {e}"));
                }
                continue;
            }
        };
        parsed += 1;
        let q = q.with_limits(limits);
        let (start, end, step) = (0, 600_000, 30_000);
        let sels = match q.selections(start, end, step) {
            Ok(s) => s,
            Err(e) => {
                if generated {
                    wrong.push(format!("{text}: selections: {e}"));
                }
                continue;
            }
        };
        let fetched: Vec<Vec<Series>> = sels
            .iter()
            .map(|s| {
                all.iter()
                    .filter(|x| s.matchers.iter().all(|m| m.matches_labels(&x.labels)))
                    .map(|x| {
                        let mut x = x.clone();
                        s.weigh_raw(&mut x.samples);
                        x
                    })
                    .collect()
            })
            .collect();
        for (what, r) in [
            ("instant", eval_instant(&q, 300_000, &fetched)),
            ("range", eval_range(&q, start, end, step, &fetched)),
        ] {
            match r {
                Ok(v) => {
                    evaluated += usize::from(what == "instant");
                    let _ = v.to_prometheus_json();
                }
                // Only the errors well-typed PromQL can meet on this data, which Prometheus
                // answers too: ambiguous matching and the budget.
                Err(e) if generated && !acceptable(&e) => {
                    wrong.push(format!("{text}: {what}: {e}"))
                }
                Err(_) => {}
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} generated queries failed:\n{}",
        wrong.len(),
        wrong[..wrong.len().min(30)].join("\n")
    );
    eprintln!("{parsed} queries parsed, {evaluated} evaluated");
    assert!(
        parsed > 2_000 && evaluated > 1_800,
        "the soup should reach the evaluator: {parsed} / {evaluated}"
    );
}
