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

/// Snappy block format.
pub fn snappy(raw: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(raw)
        .unwrap_or_default()
}
