//! Encoders for tests, benches and the fuzz corpus: the same messages remote write decodes,
//! written. (prost omits a value of -0.0, equal to the default; Prometheus's encoder keeps it.)

use super::*;

/// A 1.0 `WriteRequest`, snappy block compressed.
pub fn v1(series: &[Series], metadata: &[Metadata]) -> Vec<u8> {
    let req = WriteRequestV1 {
        timeseries: series
            .iter()
            .map(|s| TimeSeriesV1 {
                labels: s
                    .labels
                    .iter()
                    .map(|(n, v)| LabelV1 {
                        name: n.clone(),
                        value: v.clone(),
                    })
                    .collect(),
                samples: s
                    .samples
                    .iter()
                    .map(|&(timestamp, value)| SampleProto { value, timestamp })
                    .collect(),
                exemplars: vec![],
                histograms: vec![],
            })
            .collect(),
        metadata: metadata
            .iter()
            .map(|m| MetricMetadataV1 {
                r#type: m.kind as i32,
                metric_family_name: m.metric.clone(),
                help: m.help.clone(),
                unit: m.unit.clone(),
            })
            .collect(),
    };
    snappy(&req.encode_to_vec())
}

/// A 2.0 `Request` with its symbol table, snappy block compressed; metadata is attached to
/// the series whose name it describes.
pub fn v2(series: &[Series], metadata: &[Metadata]) -> Vec<u8> {
    let mut symbols = vec![String::new()];
    let mut sym = |s: &str| -> u32 {
        match symbols.iter().position(|x| x == s) {
            Some(i) => i as u32,
            None => {
                symbols.push(s.to_string());
                (symbols.len() - 1) as u32
            }
        }
    };
    let mut timeseries = Vec::new();
    for s in series {
        let mut refs = Vec::new();
        for (n, v) in &s.labels {
            refs.push(sym(n));
            refs.push(sym(v));
        }
        let meta = metadata
            .iter()
            .find(|m| m.metric == s.name())
            .map(|m| MetadataV2 {
                r#type: m.kind as i32,
                help_ref: sym(&m.help),
                unit_ref: sym(&m.unit),
            });
        timeseries.push(TimeSeriesV2 {
            labels_refs: refs,
            samples: s
                .samples
                .iter()
                .map(|&(timestamp, value)| SampleProto { value, timestamp })
                .collect(),
            histograms: vec![],
            exemplars: vec![],
            metadata: meta,
        });
    }
    snappy(
        &RequestV2 {
            symbols,
            timeseries,
        }
        .encode_to_vec(),
    )
}

/// A 2.0 `Request` of one series carrying native histogram samples `(time, histogram)`, sent as
/// float histograms (absolute counts), snappy block compressed.
pub fn v2_native(
    labels: &[(String, String)],
    samples: &[(i64, crate::native_histogram::NativeHistogram)],
) -> Vec<u8> {
    use histograms::{CountProto, HistogramProto, SpanProto, ZeroCountProto};
    let mut symbols = vec![String::new()];
    let mut labels_refs = Vec::new();
    for (n, v) in labels {
        for s in [n, v] {
            labels_refs.push(symbols.len() as u32);
            symbols.push(s.clone());
        }
    }
    // One span per run of consecutive indices.
    let spans = |buckets: &[(i64, f64)]| {
        let mut sorted = buckets.to_vec();
        sorted.sort_by_key(|b| b.0);
        let (mut spans, mut counts, mut next) = (Vec::<SpanProto>::new(), Vec::new(), None);
        for (i, c) in sorted {
            match (next, spans.last_mut()) {
                (Some(n), Some(last)) if n == i => last.length += 1,
                _ => spans.push(SpanProto {
                    offset: (i - next.unwrap_or(0)) as i32,
                    length: 1,
                }),
            }
            counts.push(c);
            next = Some(i + 1);
        }
        (spans, counts)
    };
    let histograms = samples
        .iter()
        .map(|(t, h)| {
            let (positive_spans, positive_counts) = spans(&h.positive);
            let (negative_spans, negative_counts) = spans(&h.negative);
            HistogramProto {
                count: Some(CountProto::Float(h.count)),
                sum: h.sum,
                schema: h.schema,
                zero_threshold: h.zero_threshold,
                zero_count: Some(ZeroCountProto::Float(h.zero_count)),
                negative_spans,
                negative_counts,
                positive_spans,
                positive_counts,
                timestamp: *t,
                custom_values: h.custom_bounds.clone(),
                ..Default::default()
            }
        })
        .collect();
    snappy(
        &RequestV2 {
            symbols,
            timeseries: vec![TimeSeriesV2 {
                labels_refs,
                samples: vec![],
                histograms,
                exemplars: vec![],
                metadata: None,
            }],
        }
        .encode_to_vec(),
    )
}

/// Snappy block format.
pub fn snappy(raw: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(raw)
        .unwrap_or_default()
}
