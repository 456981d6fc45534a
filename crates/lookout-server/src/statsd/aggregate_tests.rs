//! Tests of the StatsD aggregator: sample rates, gauge deltas, set counts, budgets, naming.

use super::*;

fn value(b: &Batch, name: &str, extra: &[(&str, &str)]) -> Option<f64> {
    b.series
        .iter()
        .find(|s| {
            s.name() == name
                && extra
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v))
        })
        .and_then(|s| s.samples.last())
        .map(|p| p.1)
}

#[test]
fn counters_divide_by_their_rate_and_keep_running() {
    let mut a = Aggregator::new(Settings::default());
    let o = a.add_packet(b"api.hits:1|c|@0.1|#env:prod\napi.hits:2|c|#env:prod\napi.hits:5|c");
    assert_eq!(o.taken, 3);
    let b = a.flush(1000);
    assert_eq!(value(&b, "api_hits_total", &[("env", "prod")]), Some(12.0));
    assert_eq!(
        b.series
            .iter()
            .filter(|s| s.name() == "api_hits_total")
            .count(),
        2
    );
    a.add_packet(b"api.hits:3|c|#env:prod");
    let b = a.flush(2000);
    // Monotonic: the running sum, so rate() sees the increase of 3.
    assert_eq!(value(&b, "api_hits_total", &[("env", "prod")]), Some(15.0));
    let prod = b
        .series
        .iter()
        .find(|s| s.labels.iter().any(|(k, v)| k == "env" && v == "prod"))
        .unwrap();
    assert_eq!(prod.samples, vec![(2000, 15.0)]);
}

#[test]
fn a_new_counter_starts_from_a_zero_so_increase_counts_its_first_increments() {
    let mut a = Aggregator::new(Settings::default());
    a.flush(1000);
    a.add_packet(b"jobs:3|c\njob.time:250|ms\nload:7|g");
    let b = a.flush(11_000);
    let samples = |name: &str| {
        b.series
            .iter()
            .find(|s| s.name() == name)
            .map(|s| s.samples.clone())
            .unwrap()
    };
    assert_eq!(samples("jobs_total"), vec![(1000, 0.0), (11_000, 3.0)]);
    assert_eq!(
        samples("job_time_seconds_count"),
        vec![(1000, 0.0), (11_000, 1.0)]
    );
    assert_eq!(
        samples("job_time_seconds_sum"),
        vec![(1000, 0.0), (11_000, 0.25)]
    );
    // A gauge is not a total: no 0 in front.
    assert_eq!(samples("load"), vec![(11_000, 7.0)]);
    // Only the first write has it.
    a.add_packet(b"jobs:1|c");
    let b = a.flush(21_000);
    let s = b.series.iter().find(|s| s.name() == "jobs_total").unwrap();
    assert_eq!(s.samples, vec![(21_000, 4.0)]);
    // The first flush after start puts the 0 just before it.
    let mut a = Aggregator::new(Settings::default());
    a.add_packet(b"jobs:3|c");
    let b = a.flush(5000);
    assert_eq!(b.series[0].samples, vec![(4999, 0.0), (5000, 3.0)]);
}

#[test]
fn gauges_are_set_and_moved_by_deltas() {
    let mut a = Aggregator::new(Settings::default());
    a.add_packet(b"q:10|g\nq:+5|g\nq:-3|g\nfresh:-2|g");
    let b = a.flush(1);
    assert_eq!(value(&b, "q", &[]), Some(12.0));
    assert_eq!(value(&b, "fresh", &[]), Some(-2.0));
    a.add_packet(b"q:+1|g");
    assert_eq!(value(&a.flush(2), "q", &[]), Some(13.0));
    // Unchanged gauges keep their value in the next flush.
    assert_eq!(value(&a.flush(3), "q", &[]), Some(13.0));
}

#[test]
fn sets_count_distinct_members_per_interval() {
    let mut a = Aggregator::new(Settings::default());
    a.add_packet(b"users:alice|s\nusers:bob|s\nusers:alice|s\nusers:carol:bob|s");
    assert_eq!(value(&a.flush(1), "users", &[]), Some(3.0));
    assert_eq!(value(&a.flush(2), "users", &[]), Some(0.0));
}

#[test]
fn timers_are_summaries_in_seconds() {
    let mut a = Aggregator::new(Settings::default());
    let mut p = String::new();
    for i in 1..=100 {
        p.push_str(&format!("db.query:{i}|ms|#db:main\n"));
    }
    p.push_str("resp:1000|h|@0.5\n");
    a.add_packet(p.as_bytes());
    let b = a.flush(1);
    let sum = value(&b, "db_query_seconds_sum", &[("db", "main")]).unwrap();
    assert!((sum - 5.05).abs() < 1e-9, "{sum}");
    assert_eq!(value(&b, "db_query_seconds_count", &[]), Some(100.0));
    assert_eq!(
        value(&b, "db_query_seconds", &[("quantile", "0.5")]),
        Some(0.05)
    );
    assert_eq!(
        value(&b, "db_query_seconds", &[("quantile", "0.99")]),
        Some(0.099)
    );
    // Sampled at 0.5: one value stands for two.
    assert_eq!(value(&b, "resp_count", &[]), Some(2.0));
    assert_eq!(value(&b, "resp_sum", &[]), Some(2000.0));
    let kinds: Vec<_> = b
        .metadata
        .iter()
        .map(|m| (m.metric.as_str(), m.kind))
        .collect();
    assert!(kinds.contains(&("db_query_seconds", MetricType::Summary)));
    // An interval without values writes no quantiles but keeps the totals.
    let b = a.flush(2);
    assert_eq!(value(&b, "db_query_seconds", &[("quantile", "0.5")]), None);
    assert_eq!(value(&b, "db_query_seconds_count", &[]), Some(100.0));
}

#[test]
fn the_series_budget_refuses_new_series_only() {
    let mut a = Aggregator::new(Settings {
        max_series: 2,
        ..Settings::default()
    });
    let o = a.add_packet(b"a:1|c\nb:1|g\nc:1|c\na:1|c\nb:+1|g|#x:y");
    assert_eq!((o.taken, o.over_budget), (3, 2));
    assert_eq!(a.len(), 2);
    let b = a.flush(1);
    assert_eq!(value(&b, "a_total", &[]), Some(2.0));
    assert_eq!(value(&b, "c_total", &[]), None);
}

#[test]
fn unknown_dogstatsd_fields_keep_the_line() {
    let mut a = Aggregator::new(Settings::default());
    let o = a.add_packet(b"hits:2|c|#env:prod|e:it-false,cn-web|card:orchestrator");
    assert_eq!((o.taken, o.malformed, o.unknown_fields), (1, 0, 2));
    assert_eq!(
        value(&a.flush(1), "hits_total", &[("env", "prod")]),
        Some(2.0)
    );
}

#[test]
fn bad_lines_are_counted_and_good_ones_kept() {
    let mut a = Aggregator::new(Settings::default());
    let o = a.add_packet(b"ok:1|c\ngarbage\nx:1|zz\n_e{1,1}:a|b\n_sc|c|0\nok:+1|g\nok:1|c");
    assert_eq!((o.taken, o.malformed, o.ignored), (3, 2, 2));
    assert!(o.example.unwrap().contains("garbage"));
    // The gauge `ok` and the counter `ok_total` are different series.
    let b = a.flush(1);
    assert_eq!(value(&b, "ok_total", &[]), Some(2.0));
    assert_eq!(value(&b, "ok", &[]), Some(1.0));
    // A counter never goes down.
    let o = a.add_packet(b"ok:-1|c");
    assert_eq!((o.taken, o.malformed, o.negative), (0, 0, 1));
    // A gauge line for what is a set: refused, counted.
    a.add_packet(b"u:a|s");
    let o = a.add_packet(b"u:1|g");
    assert_eq!(o.malformed, 1);
    assert!(o.example.unwrap().contains("already a set"));
}

#[test]
fn names_and_tags_are_mapped_to_prometheus() {
    assert_eq!(
        metric_name("api.request-time", Kind::Gauge),
        "api_request_time"
    );
    assert_eq!(metric_name("9lives", Kind::Counter), "_9lives_total");
    assert_eq!(metric_name("done_total", Kind::Counter), "done_total");
    assert_eq!(metric_name("rt", Kind::Timer), "rt_seconds");
    assert_eq!(
        labels(&[
            ("env", Some("prod")),
            ("canary", None),
            ("__name__", Some("x")),
            ("a.b", Some("1")),
            ("quantile", Some("p99")),
        ]),
        vec![
            ("a_b".to_string(), "1".to_string()),
            ("canary".into(), "true".into()),
            ("env".into(), "prod".into()),
            ("tag__name__".into(), "x".into()),
            ("tag_quantile".into(), "p99".into()),
        ]
    );
}

#[test]
fn series_the_store_refused_are_left_out_and_the_others_kept() {
    let mut a = Aggregator::new(Settings {
        idle_flushes: 3,
        ..Settings::default()
    });
    a.add_packet(b"old:1|c\nnew:1|c");
    let b = a.flush(1);
    let new = b
        .series
        .iter()
        .find(|s| s.name() == "new_total")
        .unwrap()
        .labels
        .clone();
    a.refuse([new]);
    a.add_packet(b"old:1|c\nnew:1|c");
    let b = a.flush(2);
    assert_eq!(value(&b, "old_total", &[]), Some(2.0));
    assert_eq!(value(&b, "new_total", &[]), None);
    assert_eq!(a.take_refused_samples(), 1);
    assert_eq!(a.take_refused_samples(), 0);
    // Tried again once the refusal is older than the idle limit.
    a.flush(3);
    assert_eq!(value(&a.flush(4), "new_total", &[]), None);
    let b = a.flush(5);
    assert_eq!(value(&b, "new_total", &[]), Some(2.0));
}

#[test]
fn one_budget_bounds_values_members_and_labels_across_series() {
    let mut a = Aggregator::new(Settings {
        max_values: 3,
        max_members: 2,
        max_label_bytes: 40,
        ..Settings::default()
    });
    // Values across two timers share one budget; sum and count stay exact.
    let o = a.add_packet(b"t1:1:2|h\nt2:3:4|h");
    assert_eq!((o.taken, o.values_dropped), (2, 1));
    // Members across two sets; a member already counted costs nothing.
    let o = a.add_packet(b"s1:a|s\ns1:a|s\ns2:b|s\ns2:c|s");
    assert_eq!((o.taken, o.values_dropped), (4, 1));
    let b = a.flush(1);
    assert_eq!(value(&b, "t2_count", &[]), Some(2.0));
    assert_eq!(value(&b, "t2_sum", &[]), Some(7.0));
    assert_eq!(value(&b, "t2", &[("quantile", "0.5")]), Some(3.0));
    assert_eq!(value(&b, "s2", &[]), Some(1.0));
    // The budgets are per interval: the next one has room again.
    let o = a.add_packet(b"t2:5|h\ns2:d|s");
    assert_eq!(o.values_dropped, 0);
    // Label bytes: 4 series of ~10 bytes held; a long new one is refused.
    let o = a.add_packet(b"long.name.here:1|c|#env:production");
    assert_eq!(o.over_budget, 1);
}

#[test]
fn a_flush_stays_within_its_byte_budget_and_counts_what_it_left_out() {
    let mut a = Aggregator::new(Settings {
        max_flush_bytes: 300,
        ..Settings::default()
    });
    let mut p = String::new();
    for i in 0..10 {
        p.push_str(&format!("c{i}:1|c\n"));
    }
    a.add_packet(p.as_bytes());
    let b = a.flush(1);
    assert!(batch_bytes(&b) <= 300, "{}", batch_bytes(&b));
    assert!(!b.series.is_empty());
    assert_eq!(
        b.series.len() as u64 + a.take_over_flush_samples(),
        10,
        "every series either written or counted"
    );
}

#[test]
fn every_series_names_its_replica() {
    let mut a = Aggregator::new(Settings {
        instance: "web-1".into(),
        ..Settings::default()
    });
    a.add_packet(b"hits:1|c|#env:prod,instance:theirs");
    let b = a.flush(1);
    let s = b.series.iter().find(|s| s.name() == "hits_total").unwrap();
    assert_eq!(
        s.labels,
        vec![
            ("__name__".to_string(), "hits_total".to_string()),
            ("env".into(), "prod".into()),
            ("exported_instance".into(), "theirs".into()),
            ("instance".into(), "web-1".into()),
        ]
    );
}

#[test]
fn totals_never_become_infinite() {
    let mut a = Aggregator::new(Settings::default());
    a.add_packet(b"c:1|c\nt:1|h");
    // 1e308 at a rate of 0.001 stands for 1e311: not finite, refused.
    let o = a.add_packet(b"c:1e308|c|@0.001\nt:1e308|h|@0.001\ng:1e308|g\ng:+1e308|g");
    assert_eq!((o.taken, o.malformed), (1, 3), "{:?}", o.example);
    assert!(o.example.unwrap().contains("not finite"));
    let b = a.flush(1);
    assert!(b
        .series
        .iter()
        .all(|s| s.samples.iter().all(|p| p.1.is_finite())));
    assert_eq!(value(&b, "c_total", &[]), Some(1.0));
}

#[test]
fn a_gauge_named_like_a_summary_output_is_a_type_clash() {
    let mut a = Aggregator::new(Settings::default());
    let o = a.add_packet(b"x:1|h\nx.count:5|g\nx_sum:1|g");
    assert_eq!((o.taken, o.malformed), (1, 2), "{:?}", o.example);
    let mut a = Aggregator::new(Settings::default());
    let o = a.add_packet(b"w_seconds.count:5|g\nw:1|ms\nv:1|ms\nv_seconds_sum:1|g");
    assert_eq!((o.taken, o.malformed), (2, 2), "{:?}", o.example);
    let b = a.flush(1);
    assert_eq!(value(&b, "w_seconds_count", &[]), Some(5.0));
    assert_eq!(value(&b, "v_seconds_count", &[]), Some(1.0));
    // A tag named quantile does not clash with the summary's own label.
    let mut a = Aggregator::new(Settings::default());
    a.add_packet(b"z:1|h|#quantile:mine");
    let b = a.flush(1);
    assert!(b
        .series
        .iter()
        .all(|s| s.labels.iter().filter(|(k, _)| k == "quantile").count() <= 1));
}

#[test]
fn idle_series_are_forgotten() {
    let mut a = Aggregator::new(Settings {
        idle_flushes: 2,
        ..Settings::default()
    });
    a.add_packet(b"x:1|c");
    a.flush(1);
    a.flush(2);
    assert_eq!(a.len(), 1);
    a.flush(3);
    assert!(a.is_empty());
}

/// A flush is taken under the aggregator's lock and built after letting go of it: lines that
/// arrive while it is built belong to the next flush, and none is lost or counted twice.
#[test]
fn lines_arriving_while_a_flush_is_built_go_to_the_next_one() {
    let mut a = Aggregator::new(Settings::default());
    a.add_packet(b"hits:2|c\nlat:100|ms\nusers:ann|s");
    let taken = a.take(1000);
    a.add_packet(b"hits:3|c\nlat:300|ms\nusers:bob|s\nusers:cid|s");
    let b = taken.build().batch;
    assert_eq!(value(&b, "hits_total", &[]), Some(2.0));
    assert_eq!(value(&b, "lat_seconds", &[("quantile", "0.5")]), Some(0.1));
    assert_eq!(value(&b, "lat_seconds_count", &[]), Some(1.0));
    assert_eq!(value(&b, "users", &[]), Some(1.0));
    let b = a.flush(2000);
    assert_eq!(value(&b, "hits_total", &[]), Some(5.0));
    assert_eq!(value(&b, "lat_seconds", &[("quantile", "0.5")]), Some(0.3));
    assert_eq!(value(&b, "lat_seconds_count", &[]), Some(2.0));
    assert_eq!(value(&b, "users", &[]), Some(2.0));
}
