//! Tests of the OTLP → Prometheus translation: names, labels, kinds and histogram buckets.
use super::*;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

#[test]
fn names_follow_prometheus_otlp_translation() {
    assert_eq!(
        metric_name("http.server.request.duration", "s", Shape::Other),
        "http_server_request_duration_seconds"
    );
    assert_eq!(
        metric_name("http.server.requests", "{request}", Shape::Counter),
        "http_server_requests_total"
    );
    assert_eq!(
        metric_name("sent", "By", Shape::Counter),
        "sent_bytes_total"
    );
    assert_eq!(
        metric_name("cpu.utilization", "1", Shape::Gauge),
        "cpu_utilization_ratio"
    );
    assert_eq!(
        metric_name("io", "By/s", Shape::Gauge),
        "io_bytes_per_second"
    );
    assert_eq!(metric_name("x_seconds", "s", Shape::Gauge), "x_seconds");
    assert_eq!(metric_name("a..b-c", "", Shape::Gauge), "a_b_c");
    // Token for token as Prometheus's normalizeName: a unit anywhere among the tokens is
    // not appended again; `total` moves to the end; `_ratio` only for gauges; leading and
    // trailing `_` go; a unit with an annotation is no unit.
    assert_eq!(
        metric_name("seconds.spent.waiting", "s", Shape::Gauge),
        "seconds_spent_waiting"
    );
    assert_eq!(
        metric_name("requests.total.served", "", Shape::Counter),
        "requests_served_total"
    );
    assert_eq!(metric_name("queue.fill", "1", Shape::UpDown), "queue_fill");
    assert_eq!(metric_name("_x__y_", "", Shape::Gauge), "x_y");
    assert_eq!(metric_name("size", "By{packet}", Shape::Gauge), "size");
    assert_eq!(
        metric_name("rate", "{req}/s", Shape::Gauge),
        "rate_per_second"
    );
    assert_eq!(metric_name("ops", "1/s", Shape::Gauge), "ops_per_second");
    assert_eq!(metric_name("2xx", "", Shape::Counter), "_2xx_total");
    assert_eq!(
        metric_name("net.io", "KiBy/min", Shape::Counter),
        "net_io_kibibytes_per_min_total"
    );
    assert_eq!(label_name("http.route"), "http_route");
    assert_eq!(label_name("1x"), "key_1x");
}

#[test]
fn an_export_becomes_series_with_job_and_instance() {
    let point = |v: f64, attrs| NumberDataPoint {
        attributes: attrs,
        time_unix_nano: 5_000_000_000,
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    };
    let req = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "checkout"),
                    kv("service.instance.id", "pod-1"),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![
                    Metric {
                        name: "orders".into(),
                        unit: "{order}".into(),
                        data: Some(Data::Sum(Sum {
                            data_points: vec![point(7.0, vec![kv("http.route", "/pay")])],
                            aggregation_temporality: AggregationTemporality::Cumulative as i32,
                            is_monotonic: true,
                        })),
                        ..Default::default()
                    },
                    Metric {
                        name: "deltas".into(),
                        data: Some(Data::Sum(Sum {
                            data_points: vec![point(1.0, vec![])],
                            aggregation_temporality: AggregationTemporality::Delta as i32,
                            is_monotonic: true,
                        })),
                        ..Default::default()
                    },
                    Metric {
                        name: "temp".into(),
                        data: Some(Data::Gauge(Gauge {
                            data_points: vec![point(21.5, vec![])],
                        })),
                        ..Default::default()
                    },
                    Metric {
                        name: "latency".into(),
                        unit: "ms".into(),
                        data: Some(Data::Histogram(Histogram {
                            data_points: vec![HistogramDataPoint {
                                time_unix_nano: 5_000_000_000,
                                count: 3,
                                sum: Some(60.0),
                                bucket_counts: vec![1, 2, 0],
                                explicit_bounds: vec![10.0, 50.0],
                                ..Default::default()
                            }],
                            aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        })),
                        ..Default::default()
                    },
                    Metric {
                        name: "wait".into(),
                        unit: "s".into(),
                        data: Some(Data::ExponentialHistogram(ExponentialHistogram {
                            data_points: vec![ExponentialHistogramDataPoint {
                                time_unix_nano: 5_000_000_000,
                                count: 5,
                                sum: Some(7.5),
                                // Scale 1: index 1 is (√2, 2], index 2 is (2, 2√2].
                                scale: 1,
                                positive: Some(Buckets {
                                    offset: 1,
                                    bucket_counts: vec![4, 1],
                                }),
                                ..Default::default()
                            }],
                            aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        })),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let t = translate(&req).unwrap();
    assert_eq!(t.skipped, 1);
    let find = |name: &str, extra: Option<(&str, &str)>| {
        t.samples
            .iter()
            .find(|s| {
                s.labels.contains(&("__name__".into(), name.into()))
                    && extra.is_none_or(|(k, v)| s.labels.contains(&(k.into(), v.into())))
            })
            .map(|s| (s.labels.clone(), s.t, s.v))
    };
    let (labels, time, v) = find("orders_total", None).unwrap();
    assert_eq!((time, v), (5000, 7.0));
    assert_eq!(
        labels,
        vec![
            ("__name__".to_string(), "orders_total".to_string()),
            ("http_route".into(), "/pay".into()),
            ("instance".into(), "pod-1".into()),
            ("job".into(), "checkout".into()),
        ]
    );
    assert_eq!(find("temp", None).unwrap().2, 21.5);
    assert_eq!(
        find("latency_milliseconds_bucket", Some(("le", "10")))
            .unwrap()
            .2,
        1.0
    );
    assert_eq!(
        find("latency_milliseconds_bucket", Some(("le", "50")))
            .unwrap()
            .2,
        3.0
    );
    assert_eq!(
        find("latency_milliseconds_bucket", Some(("le", "+Inf")))
            .unwrap()
            .2,
        3.0
    );
    assert_eq!(find("latency_milliseconds_sum", None).unwrap().2, 60.0);
    assert_eq!(find("latency_milliseconds_count", None).unwrap().2, 3.0);
    assert!(find("deltas_total", None).is_none());
    // The exponential histogram, as the classic one it equals at its boundaries.
    let wait: Vec<(String, f64)> = t
        .samples
        .iter()
        .filter(|s| {
            s.labels
                .contains(&("__name__".into(), "wait_seconds_bucket".into()))
        })
        .map(|s| {
            (
                s.labels.iter().find(|l| l.0 == "le").unwrap().1.clone(),
                s.v,
            )
        })
        .collect();
    let b = |i| lookout_protocol::native_histogram::bound(1, i);
    assert!((b(1) - std::f64::consts::SQRT_2).abs() < 1e-15);
    assert_eq!(
        wait,
        vec![
            (le_label(b(1)), 0.0),
            ("2".into(), 4.0),
            (le_label(b(3)), 5.0),
            ("+Inf".into(), 5.0)
        ]
    );
    assert_eq!(find("wait_seconds_count", None).unwrap().2, 5.0);
    assert_eq!(find("wait_seconds_sum", None).unwrap().2, 7.5);
    let kinds: Vec<_> = t
        .families
        .iter()
        .map(|f| (f.name.as_str(), f.kind))
        .collect();
    assert!(kinds.contains(&("orders", "counter")));
    assert!(kinds.contains(&("latency_milliseconds", "histogram")));
}

fn gauge_export(description: &str, points: Vec<NumberDataPoint>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "g".into(),
                    description: description.into(),
                    data: Some(Data::Gauge(Gauge {
                        data_points: points,
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn gauge_point(attributes: Vec<KeyValue>) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        time_unix_nano: 1_000_000_000,
        value: Some(number_data_point::Value::AsDouble(1.0)),
        ..Default::default()
    }
}

#[test]
fn nul_bytes_never_reach_the_store_and_labels_keep_remote_writes_limits() {
    let mut attrs = vec![kv("a\0b", "x\0y"), kv("long", &"v".repeat(10_000))];
    for i in 0..100 {
        attrs.push(kv(&format!("k{i:03}"), "1"));
    }
    let t = translate(&gauge_export("help\0me", vec![gauge_point(attrs)])).unwrap();
    assert_eq!(t.families[0].help, "helpme");
    let l = &t.samples[0].labels;
    assert!(l
        .iter()
        .all(|(k, v)| !k.contains('\0') && !v.contains('\0')));
    assert!(l.contains(&("a_b".into(), "xy".into())));
    assert!(l.len() <= MAX_LABELS, "{}", l.len());
    assert!(l.iter().all(|(_, v)| v.len() <= MAX_VALUE_LEN));
}

#[test]
fn attributes_cannot_replace_the_name_or_generated_labels_and_clashes_are_joined() {
    let attrs = vec![
        kv("__name__", "evil"),
        kv("a_b", "2"),
        kv("a.b", "1"),
        kv("quantile", "x"),
    ];
    let t = translate(&gauge_export("", vec![gauge_point(attrs)])).unwrap();
    let l = &t.samples[0].labels;
    assert!(l.contains(&("__name__".into(), "g".into())), "{l:?}");
    assert!(l.contains(&("key__name__".into(), "evil".into())), "{l:?}");
    // Sorted by the attribute's key: `a.b` before `a_b`.
    assert!(l.contains(&("a_b".into(), "1;2".into())), "{l:?}");
    assert_eq!(l.iter().filter(|(k, _)| k == "__name__").count(), 1);
}

#[test]
fn an_export_that_would_translate_to_too_much_is_refused() {
    // Few bytes on the wire, but each point repeats 2 KiB of attributes.
    let attrs: Vec<KeyValue> = (0..60)
        .map(|i| kv(&format!("k{i}"), &"v".repeat(4000)))
        .collect();
    let points = (0..300).map(|_| gauge_point(attrs.clone())).collect();
    assert_eq!(translate(&gauge_export("", points)), Err(TooMuch));
    let fine = (0..3).map(|_| gauge_point(attrs.clone())).collect();
    assert_eq!(translate(&gauge_export("", fine)).unwrap().samples.len(), 3);
}
