//! Tests of the remote-write decoders: both versions bit-exact, refusals with reasons, and
//! every budget checked before the work it bounds.

use super::*;

fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> Series {
    Series {
        labels: labels
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
        samples: samples.to_vec(),
    }
}

#[test]
fn both_versions_decode_to_the_same_batch_bit_exactly() {
    let stale = f64::from_bits(STALE_NAN_BITS);
    let s = vec![series(
        &[("__name__", "up"), ("job", "node")],
        // No -0.0 here: prost's encoder skips a double equal to the default 0.0, so this
        // test encoder cannot send it (Prometheus's Go encoder compares bits and does).
        &[(1, 1.5), (2, f64::NAN), (3, stale), (4, f64::NEG_INFINITY)],
    )];
    let m = vec![Metadata {
        metric: "up".into(),
        kind: MetricType::Gauge,
        help: "Is it up".into(),
        unit: String::new(),
    }];
    for version in [Version::V1, Version::V2] {
        let body = match version {
            Version::V1 => encode::v1(&s, &m),
            Version::V2 => encode::v2(&s, &m),
        };
        let b = decode(&body, version).unwrap();
        assert_eq!(b.series.len(), 1);
        let got: Vec<u64> = b.series[0].samples.iter().map(|x| x.1.to_bits()).collect();
        let want: Vec<u64> = s[0].samples.iter().map(|x| x.1.to_bits()).collect();
        assert_eq!(got, want);
        assert_eq!(b.metadata, m);
    }
}

#[test]
fn labels_are_sorted_and_empty_values_dropped() {
    let s = vec![series(
        &[("zone", "a"), ("__name__", "x"), ("empty", "")],
        &[(1, 1.0)],
    )];
    let b = decode(&encode::v1(&s, &[]), Version::V1).unwrap();
    assert_eq!(
        b.series[0].labels,
        vec![("__name__".into(), "x".into()), ("zone".into(), "a".into())]
    );
}

#[test]
fn invalid_input_is_refused_with_a_reason() {
    let bad_name = vec![series(&[("__name__", "x"), ("a-b", "1")], &[(1, 1.0)])];
    let e = decode(&encode::v1(&bad_name, &[]), Version::V1).unwrap_err();
    assert!(e.to_string().contains("invalid label name"), "{e}");
    let no_name = vec![series(&[("a", "1")], &[(1, 1.0)])];
    assert!(decode(&encode::v2(&no_name, &[]), Version::V2).is_err());
    let many: Vec<(String, String)> = (0..MAX_LABELS + 1)
        .map(|i| (format!("l{i}"), "v".to_string()))
        .collect();
    let wide = vec![Series {
        labels: many,
        samples: vec![(1, 1.0)],
    }];
    let e = decode(&encode::v1(&wide, &[]), Version::V1).unwrap_err();
    assert!(e.to_string().contains("labels"), "{e}");
    assert!(decode(b"\xff\xff\xff garbage", Version::V1).is_err());
    // A million labels in one series are counted on the wire, never allocated.
    let label = [0x0a, 0x05, 0x0a, 0x01, b'a', 0x12, 0x00];
    let mut ts = Vec::new();
    for _ in 0..1_000_000 {
        ts.extend_from_slice(&label);
    }
    let mut raw = vec![0x0a];
    let mut n = ts.len();
    while n >= 0x80 {
        raw.push((n as u8) | 0x80);
        n >>= 7;
    }
    raw.push(n as u8);
    raw.extend_from_slice(&ts);
    let e = decode(&encode::snappy(&raw), Version::V1).unwrap_err();
    assert!(e.to_string().contains("1000000 labels"), "{e}");
    assert!(decode(&encode::snappy(b"\x0a\xff"), Version::V1).is_err());
}

#[test]
fn a_snappy_bomb_is_refused_before_decompressing() {
    // A header claiming 1 GiB (varint) followed by almost nothing.
    let mut body = Vec::new();
    let mut n: u64 = 1 << 30;
    while n >= 0x80 {
        body.push((n as u8) | 0x80);
        n >>= 7;
    }
    body.push(n as u8);
    body.extend_from_slice(&[0; 16]);
    assert_eq!(
        decode(&body, Version::V1),
        Err(RemoteWriteError::TooLarge(1 << 30))
    );
}

#[test]
fn shared_symbols_cannot_amplify_a_small_body() {
    // One 4 KiB symbol referenced by 63 labels of each of 64 series names 16 MiB of text
    // in a body of a few KiB: refused before copying, as too large.
    let big = "v".repeat(MAX_VALUE_LEN);
    let mut symbols = vec![String::new(), "__name__".into(), "x".into(), big];
    let mut refs = vec![1, 2];
    for i in 0..63u32 {
        symbols.push(format!("l{i}"));
        refs.extend([4 + i, 3]);
    }
    let ts = TimeSeriesV2 {
        labels_refs: refs,
        samples: vec![SampleProto {
            value: 1.0,
            timestamp: 1,
        }],
        histograms: vec![],
        exemplars: vec![],
        metadata: None,
    };
    let req = RequestV2 {
        symbols,
        timeseries: vec![ts; 64],
    };
    let raw = req.encode_to_vec();
    assert!(raw.len() < 20_000, "{}", raw.len());
    assert!(matches!(
        decode_v2(&raw),
        Err(RemoteWriteError::TooLarge(n)) if n > MAX_COPIED
    ));
    // A symbol longer than a value may be is refused before it is copied.
    let req = RequestV2 {
        symbols: vec![
            String::new(),
            "__name__".into(),
            "x".repeat(MAX_VALUE_LEN + 1),
        ],
        timeseries: vec![TimeSeriesV2 {
            labels_refs: vec![1, 2],
            samples: vec![],
            histograms: vec![],
            exemplars: vec![],
            metadata: None,
        }],
    };
    let e = decode_v2(&req.encode_to_vec()).unwrap_err();
    assert!(e.to_string().contains("at most 4096"), "{e}");
}

#[test]
fn too_many_series_or_samples_are_refused_from_the_wire_count() {
    // 200,000 empty series are 2 bytes each on the wire: counted, never decoded.
    let raw: Vec<u8> = [0x0a, 0x00].repeat(MAX_SERIES + 1);
    assert!(matches!(
        decode_v1(&raw),
        Err(RemoteWriteError::TooMany(m)) if m.contains("series")
    ));
    let counts = prescan(&[0x0a, 0x00].repeat(10), Version::V1).unwrap();
    assert_eq!(counts.series, 10);
    assert!(counts.struct_bytes() >= 10 * std::mem::size_of::<Series>());
    // One series of 600,000 empty samples.
    let samples: Vec<u8> = [0x12, 0x00].repeat(MAX_SAMPLES + 1);
    let mut raw = vec![0x0a];
    let mut n = samples.len();
    while n >= 0x80 {
        raw.push((n as u8) | 0x80);
        n >>= 7;
    }
    raw.push(n as u8);
    raw.extend_from_slice(&samples);
    assert!(matches!(
        decode_v1(&raw),
        Err(RemoteWriteError::TooMany(m)) if m.contains("samples")
    ));
}

#[test]
fn nul_bytes_are_refused_with_400() {
    let s = vec![series(&[("__name__", "x"), ("a", "b\0c")], &[(1, 1.0)])];
    for version in [Version::V1, Version::V2] {
        let body = match version {
            Version::V1 => encode::v1(&s, &[]),
            Version::V2 => encode::v2(&s, &[]),
        };
        let e = decode(&body, version).unwrap_err();
        assert!(e.to_string().contains("NUL"), "{e}");
    }
    let ok = vec![series(&[("__name__", "x")], &[(1, 1.0)])];
    let m = vec![Metadata {
        metric: "x".into(),
        kind: MetricType::Gauge,
        help: "h\0".into(),
        unit: String::new(),
    }];
    for version in [Version::V1, Version::V2] {
        let body = match version {
            Version::V1 => encode::v1(&ok, &m),
            Version::V2 => encode::v2(&ok, &m),
        };
        let e = decode(&body, version).unwrap_err();
        assert!(e.to_string().contains("NUL"), "{e}");
    }
}

#[test]
fn metadata_is_capped_per_distinct_metric() {
    let meta = |n: usize| -> Vec<Metadata> {
        (0..n)
            .map(|i| Metadata {
                metric: format!("m{i}"),
                kind: MetricType::Gauge,
                help: String::new(),
                unit: String::new(),
            })
            .collect()
    };
    let e = decode(&encode::v1(&[], &meta(MAX_METADATA + 1)), Version::V1).unwrap_err();
    assert!(matches!(e, RemoteWriteError::TooMany(_)), "{e}");
    // 2.0: 10,001 series of one metric each carry its metadata: one distinct entry.
    let s: Vec<Series> = (0..=MAX_METADATA)
        .map(|i| series(&[("__name__", "up"), ("i", &i.to_string())], &[(1, 1.0)]))
        .collect();
    let up = Metadata {
        metric: "up".into(),
        ..meta(1).remove(0)
    };
    let b = decode(&encode::v2(&s, &[up]), Version::V2).unwrap();
    assert_eq!((b.series.len(), b.metadata.len()), (MAX_METADATA + 1, 1));
}

#[test]
fn content_types_choose_the_version() {
    use Version::*;
    assert_eq!(
        Version::from_content_type("application/x-protobuf"),
        Some(V1)
    );
    assert_eq!(
        Version::from_content_type("application/x-protobuf;proto=io.prometheus.write.v2.Request"),
        Some(V2)
    );
    assert_eq!(
        Version::from_content_type("application/x-protobuf; proto=prometheus.WriteRequest"),
        Some(V1)
    );
    assert_eq!(Version::from_content_type("application/json"), None);
    assert_eq!(
        Version::from_content_type("application/x-protobuf;proto=other"),
        None
    );
}

/// A schema-0 integer histogram at `t`: 2 observations in (1, 2], 1 in (4, 8], `extra` in the
/// zero bucket, delta-encoded as Prometheus sends it.
fn native(t: i64, extra: u64) -> histograms::HistogramProto {
    use histograms::{CountProto, HistogramProto, SpanProto, ZeroCountProto};
    HistogramProto {
        count: Some(CountProto::Int(3 + extra)),
        sum: 9.0,
        schema: 0,
        zero_threshold: 1e-3,
        zero_count: Some(ZeroCountProto::Int(extra)),
        positive_spans: vec![
            SpanProto {
                offset: 1,
                length: 1,
            },
            SpanProto {
                offset: 1,
                length: 1,
            },
        ],
        positive_deltas: vec![2, -1],
        timestamp: t,
        ..Default::default()
    }
}

fn labels_of(s: &Series) -> Vec<(&str, &str)> {
    s.labels
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect()
}

#[test]
fn native_histograms_arrive_as_the_classic_series_they_equal() {
    let labels = || {
        vec![
            LabelV1 {
                name: "__name__".into(),
                value: "rpc_seconds".into(),
            },
            LabelV1 {
                name: "job".into(),
                value: "api".into(),
            },
        ]
    };
    let v1 = WriteRequestV1 {
        timeseries: vec![TimeSeriesV1 {
            labels: labels(),
            samples: vec![],
            exemplars: vec![],
            histograms: vec![native(1_000, 0), native(2_000, 4)],
        }],
        metadata: vec![],
    };
    let symbols = vec![
        String::new(),
        "__name__".into(),
        "rpc_seconds".into(),
        "job".into(),
        "api".into(),
    ];
    let v2 = RequestV2 {
        symbols,
        timeseries: vec![TimeSeriesV2 {
            labels_refs: vec![1, 2, 3, 4],
            samples: vec![],
            histograms: vec![native(1_000, 0), native(2_000, 4)],
            exemplars: vec![],
            metadata: None,
        }],
    };
    for (version, raw) in [
        (Version::V1, v1.encode_to_vec()),
        (Version::V2, v2.encode_to_vec()),
    ] {
        let b = decode_raw(&raw, version, &mut |_| true).unwrap();
        assert_eq!((b.histograms, b.derived), (2, b.series.len()));
        let by_name: std::collections::BTreeMap<String, &Series> = b
            .series
            .iter()
            .map(|s| {
                let le = s.labels.iter().find(|l| l.0 == "le").map(|l| l.1.clone());
                (
                    format!(
                        "{}{}",
                        s.name(),
                        le.map(|l| format!("{{{l}}}")).unwrap_or_default()
                    ),
                    s,
                )
            })
            .collect();
        let keys: Vec<&str> = by_name.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "rpc_seconds_bucket{+Inf}",
                "rpc_seconds_bucket{0.001}",
                // Only positive buckets: the zero bucket is taken from 0, as Prometheus does.
                "rpc_seconds_bucket{0}",
                "rpc_seconds_bucket{1}",
                "rpc_seconds_bucket{2}",
                "rpc_seconds_bucket{4}",
                "rpc_seconds_bucket{8}",
                "rpc_seconds_count",
                "rpc_seconds_sum",
            ],
            "{version:?}"
        );
        let at = |k: &str| by_name[k].samples.clone();
        assert_eq!(at("rpc_seconds_count"), vec![(1_000, 3.0), (2_000, 7.0)]);
        assert_eq!(at("rpc_seconds_sum"), vec![(1_000, 9.0), (2_000, 9.0)]);
        assert_eq!(
            at("rpc_seconds_bucket{2}"),
            vec![(1_000, 2.0), (2_000, 6.0)]
        );
        assert_eq!(
            at("rpc_seconds_bucket{8}"),
            vec![(1_000, 3.0), (2_000, 7.0)]
        );
        // The zero bucket appears once it holds observations.
        assert_eq!(at("rpc_seconds_bucket{0.001}"), vec![(2_000, 4.0)]);
        let count = &b.series[b.native_counts[0]];
        assert_eq!(count.name(), "rpc_seconds_count");
        assert_eq!(
            labels_of(count),
            [("__name__", "rpc_seconds_count"), ("job", "api")]
        );
    }
}

#[test]
fn invalid_or_oversized_native_histograms_are_refused() {
    let one = |h: histograms::HistogramProto| {
        WriteRequestV1 {
            timeseries: vec![TimeSeriesV1 {
                labels: vec![LabelV1 {
                    name: "__name__".into(),
                    value: "h".into(),
                }],
                samples: vec![],
                exemplars: vec![],
                histograms: vec![h],
            }],
            metadata: vec![],
        }
        .encode_to_vec()
    };
    let mut h = native(1, 0);
    h.positive_deltas.push(1);
    let e = decode_v1(&one(h)).unwrap_err();
    assert!(e.to_string().contains("spans hold 2 buckets but 3"), "{e}");
    let mut h = native(1, 0);
    h.schema = 20;
    assert!(decode_v1(&one(h))
        .unwrap_err()
        .to_string()
        .contains("schema 20"));
    // The expansion is asked of the budget before it is made.
    let e = decode_v1_within(&one(native(1, 0)), &mut |_| false).unwrap_err();
    assert_eq!(e, RemoteWriteError::OverBudget);
    // The test encoder's float histograms (spans from indices) decode to the same buckets.
    let n = crate::native_histogram::NativeHistogram {
        schema: 1,
        count: 6.0,
        sum: 3.0,
        positive: vec![(-3, 1.0), (-2, 2.0), (4, 3.0)],
        ..Default::default()
    };
    let body = encode::v2_native(&[("__name__".into(), "f".into())], &[(7, n.clone())]);
    let b = decode(&body, Version::V2).unwrap();
    let want = n.to_classic().unwrap();
    let mut got: Vec<(f64, f64)> = b
        .series
        .iter()
        .filter_map(|s| {
            let le = s
                .labels
                .iter()
                .find(|l| l.0 == "le")?
                .1
                .parse::<f64>()
                .ok()?;
            Some((le, s.samples[0].1))
        })
        .filter(|b| b.0.is_finite())
        .collect();
    got.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert_eq!(got, want.buckets);
    // A stale histogram marks its count, sum and +Inf bucket stale.
    let mut h = native(5, 0);
    h.sum = f64::from_bits(STALE_NAN_BITS);
    let b = decode_v1(&one(h)).unwrap();
    assert_eq!(b.series.len(), 3);
    assert!(b
        .series
        .iter()
        .all(|s| s.samples.len() == 1 && s.samples[0].1.to_bits() == STALE_NAN_BITS));
}

#[test]
fn expanded_histograms_count_against_the_request_caps() {
    let labels = vec![("__name__".to_string(), "h".to_string())];
    // One histogram becomes 7 series (4 boundaries, +Inf, _count, _sum) and 7 samples.
    let e = histograms::Derived::default()
        .add(
            labels.clone(),
            &[native(1, 0)],
            (MAX_SAMPLES - 3, 0),
            &mut |_| true,
        )
        .unwrap_err();
    assert!(matches!(e, RemoteWriteError::TooMany(m) if m.contains("samples")));
    let e = histograms::Derived::default()
        .add(
            labels.clone(),
            &[native(1, 0)],
            (0, MAX_SERIES - 3),
            &mut |_| true,
        )
        .unwrap_err();
    assert!(matches!(e, RemoteWriteError::TooMany(m) if m.contains("series")));
    let mut d = histograms::Derived::default();
    d.add(labels, &[native(1, 0)], (0, MAX_SERIES - 7), &mut |_| true)
        .unwrap();
    assert_eq!((d.series.len(), d.samples), (7, 7));
}
