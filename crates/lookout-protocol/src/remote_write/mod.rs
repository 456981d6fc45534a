//! Prometheus remote write: the 1.0 `prometheus.WriteRequest` and the 2.0
//! `io.prometheus.write.v2.Request` (symbol table), snappy block compressed, decoded into one
//! shape whatever the version: series with sorted labels and their float samples, plus metadata.
//!
//! The messages are declared here with `prost` derives rather than generated from the `.proto`
//! files: the build then needs no `protoc`, and only the fields Lookout reads are declared (prost
//! skips the others, so exemplars cost no allocation; they are counted from their repeated field
//! lengths only where a count is owed to the sender). Native histogram samples are stored as the
//! classic series they equal ([`histograms`]), appended after the float series.
//!
//! Every limit is checked before work that it bounds: the snappy header's decoded length before
//! decompressing (a 10 MiB body can claim 4 GiB), label counts and lengths before a series is
//! kept. Invalid input is an error naming what was wrong, never a panic: Prometheus drops a batch
//! answered with 400, so one bad series refuses the whole batch and nothing of it is half-stored.

pub mod encode;
mod histograms;

use prost::Message;

/// Largest decoded (snappy-decompressed) body: 40 times what Prometheus sends at its default
/// `max_samples_per_send`, and small enough that its decoding fits the ingest memory budget.
pub const MAX_DECODED: usize = 8 * 1024 * 1024;
/// Most labels one series may have (Mimir's default is 30; node_exporter's widest series has ~12).
pub const MAX_LABELS: usize = 64;
/// Longest label name, bytes.
pub const MAX_NAME_LEN: usize = 1024;
/// Longest label value, bytes.
pub const MAX_VALUE_LEN: usize = 4096;

/// Most series one request may hold (Prometheus sends at most `max_samples_per_send`, 2,000 by
/// default, so one series each at worst); more is refused 413 before prost allocates them.
pub const MAX_SERIES: usize = 100_000;
/// Most samples one request may hold, native histograms counted by the classic samples they
/// become (413 beyond).
pub const MAX_SAMPLES: usize = 500_000;
/// Most metadata entries one request may hold (Prometheus sends at most 500 per request).
pub const MAX_METADATA: usize = 10_000;
/// Most bytes of label names, values and metadata text a 2.0 batch may copy out of its symbol
/// table (shared symbols let a small body name far more text than it holds).
pub const MAX_COPIED: usize = MAX_DECODED;

/// Prometheus's staleness marker: a NaN with this exact bit pattern ends a series.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Why a body was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RemoteWriteError {
    /// The body, decompressed, would exceed [`MAX_DECODED`] (413).
    #[error("decoded body would be {0} bytes; at most {MAX_DECODED} are accepted")]
    TooLarge(usize),
    /// More series, samples or metadata in one request than accepted (413: the sender should
    /// lower `max_samples_per_send`).
    #[error("{0}")]
    TooMany(String),
    /// The caller's memory budget refused the bytes decoding needs (503, retried).
    #[error("the ingest memory budget is spent; retry later")]
    OverBudget,
    /// Not snappy block format, not the protobuf message, or data that breaks a rule (400).
    #[error("{0}")]
    Malformed(String),
}

fn bad(msg: impl Into<String>) -> RemoteWriteError {
    RemoteWriteError::Malformed(msg.into())
}

/// Which message a body holds, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `prometheus.WriteRequest` (remote write 1.0).
    V1,
    /// `io.prometheus.write.v2.Request` (remote write 2.0).
    V2,
}

impl Version {
    /// The version a `Content-Type` asks for; `None` for one that is not remote write.
    /// A bare `application/x-protobuf` is 1.0, as the 2.0 specification requires.
    pub fn from_content_type(ct: &str) -> Option<Version> {
        let mut parts = ct.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        if !media.eq_ignore_ascii_case("application/x-protobuf") {
            return None;
        }
        let mut version = Version::V1;
        for p in parts {
            if let Some(proto) = p.strip_prefix("proto=") {
                version = match proto.trim_matches('"') {
                    "prometheus.WriteRequest" => Version::V1,
                    "io.prometheus.write.v2.Request" => Version::V2,
                    _ => return None,
                };
            }
        }
        Some(version)
    }
}

/// The metric type of metadata, as both versions number it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// Unknown or unspecified.
    Unknown,
    /// Counter.
    Counter,
    /// Gauge.
    Gauge,
    /// Histogram.
    Histogram,
    /// Gauge histogram.
    GaugeHistogram,
    /// Summary.
    Summary,
    /// Info.
    Info,
    /// State set.
    StateSet,
}

impl MetricType {
    fn from_i32(v: i32) -> MetricType {
        match v {
            1 => MetricType::Counter,
            2 => MetricType::Gauge,
            3 => MetricType::Histogram,
            4 => MetricType::GaugeHistogram,
            5 => MetricType::Summary,
            6 => MetricType::Info,
            7 => MetricType::StateSet,
            _ => MetricType::Unknown,
        }
    }

    /// The name Prometheus's `/api/v1/metadata` answers with.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Unknown => "unknown",
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
        }
    }

    /// The inverse of [`MetricType::as_str`].
    pub fn parse(s: &str) -> MetricType {
        match s {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "gaugehistogram" => MetricType::GaugeHistogram,
            "summary" => MetricType::Summary,
            "info" => MetricType::Info,
            "stateset" => MetricType::StateSet,
            _ => MetricType::Unknown,
        }
    }
}

/// One series of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Labels sorted by name, including `__name__`, none empty-valued.
    pub labels: Vec<(String, String)>,
    /// (timestamp ms, value), as sent.
    pub samples: Vec<(i64, f64)>,
}

impl Series {
    /// The metric name (`__name__`).
    pub fn name(&self) -> &str {
        self.labels
            .iter()
            .find(|(k, _)| k == "__name__")
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

/// Metadata of one metric family.
#[derive(Debug, Clone, PartialEq)]
pub struct Metadata {
    /// Metric family name.
    pub metric: String,
    /// Its type.
    pub kind: MetricType,
    /// Help text.
    pub help: String,
    /// Unit.
    pub unit: String,
}

/// A decoded batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// Series with float samples (series without any are kept out).
    pub series: Vec<Series>,
    /// Metadata sent with the batch.
    pub metadata: Vec<Metadata>,
    /// Native histogram samples received, each converted into classic series.
    pub histograms: usize,
    /// How many series at the end of `series` were made from native histograms.
    pub derived: usize,
    /// Index in `series` of each native series' `_count` series (one sample per histogram
    /// sample, so what is kept of it is what is kept of the histograms).
    pub native_counts: Vec<usize>,
    /// Exemplars received (not stored: reported as not written).
    pub exemplars: usize,
}

impl Batch {
    /// Samples in the batch, those made from native histograms included.
    pub fn samples(&self) -> usize {
        self.series.iter().map(|s| s.samples.len()).sum()
    }

    /// Appends the classic series made from native histograms.
    fn add_derived(&mut self, d: histograms::Derived) {
        let first = self.series.len();
        self.histograms = d.histograms;
        self.derived = d.series.len();
        self.native_counts = d.counts.into_iter().map(|i| first + i).collect();
        self.series.extend(d.series);
    }
}

/// The decoded length a snappy block body's header claims (checked against a budget before
/// [`decode`] allocates it).
pub fn decoded_len(body: &[u8]) -> Result<usize, RemoteWriteError> {
    snap::raw::decompress_len(body)
        .map_err(|e| bad(format!("body is not snappy block format: {e}")))
}

/// Decompresses a snappy block body, refusing before allocating when its header claims more than
/// [`MAX_DECODED`] bytes.
pub fn unsnappy(body: &[u8]) -> Result<Vec<u8>, RemoteWriteError> {
    let len = decoded_len(body)?;
    if len > MAX_DECODED {
        return Err(RemoteWriteError::TooLarge(len));
    }
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| bad(format!("body is not snappy block format: {e}")))
}

/// Decodes a snappy-compressed body of `version`.
pub fn decode(body: &[u8], version: Version) -> Result<Batch, RemoteWriteError> {
    let raw = unsnappy(body)?;
    decode_raw(&raw, version, &mut |_| true)
}

/// Decodes an uncompressed body of `version`; a 2.0 body's symbol copies are asked of
/// `reserve` first (a 1.0 body's strings are no larger than the body itself).
pub fn decode_raw(
    raw: &[u8],
    version: Version,
    reserve: &mut dyn FnMut(usize) -> bool,
) -> Result<Batch, RemoteWriteError> {
    match version {
        Version::V1 => decode_v1_within(raw, reserve),
        Version::V2 => decode_v2_within(raw, reserve),
    }
}

/// Reads a protobuf varint at `*i`.
fn varint(buf: &[u8], i: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*i)?;
        *i += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

/// Calls `f(field, wire type, payload)` for each field of a message; `false` on bad framing.
fn fields(buf: &[u8], mut f: impl FnMut(u64, u64, &[u8])) -> bool {
    let mut i = 0;
    while i < buf.len() {
        let Some(key) = varint(buf, &mut i) else {
            return false;
        };
        let start = i;
        let end = match key & 7 {
            0 => match varint(buf, &mut i) {
                Some(_) => i,
                None => return false,
            },
            1 => i + 8,
            2 => match varint(buf, &mut i).and_then(|n| usize::try_from(n).ok()) {
                Some(n) => match i.checked_add(n) {
                    Some(e) => {
                        i = e;
                        let payload = buf.get(e - n..e);
                        match payload {
                            Some(p) => {
                                f(key >> 3, 2, p);
                                continue;
                            }
                            None => return false,
                        }
                    }
                    None => return false,
                },
                None => return false,
            },
            5 => i + 4,
            _ => return false,
        };
        if end > buf.len() {
            return false;
        }
        i = end;
        f(key >> 3, key & 7, buf.get(start..end).unwrap_or_default());
    }
    true
}

/// What a body holds, counted on the wire by [`prescan`] before any of it is decoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Series messages.
    pub series: usize,
    /// Sample messages (float samples).
    pub samples: usize,
    /// Label halves (names and values) over all series.
    pub label_halves: usize,
    /// Metadata messages (1.0) or series carrying one (2.0).
    pub metadata: usize,
    /// Native histogram messages.
    pub histograms: usize,
    /// Wire bytes of native histogram messages (their packed counts grow up to 8 times).
    pub histogram_bytes: usize,
}

impl Counts {
    /// Bytes the decoded batch's structures take beyond the decoded body itself: each series,
    /// sample, label pair and metadata struct, so an empty series of 2 wire bytes is reserved as
    /// the ~100 bytes it becomes.
    pub fn struct_bytes(&self) -> usize {
        use std::mem::size_of;
        // prost's per-message structs and then ours: twice each, both live while converting.
        2 * (self.series * (size_of::<Series>() + size_of::<Vec<u32>>() * 4)
            + self.samples * size_of::<(i64, f64)>()
            + self.label_halves * size_of::<String>()
            + self.metadata * size_of::<Metadata>()
            + self.histograms * size_of::<histograms::HistogramProto>()
            + self.histogram_bytes * 8)
    }
}

/// Counts each series' labels, the series and the samples on the wire before prost allocates
/// them: one series with a million labels, or a million empty series, is refused having cost a
/// scan, not a million allocations.
pub fn prescan(raw: &[u8], version: Version) -> Result<Counts, RemoteWriteError> {
    let (series_field, metadata_field, histogram_field) = match version {
        Version::V1 => (1, 3, 4),
        Version::V2 => (5, u64::MAX, 3),
    };
    let mut worst = 0usize;
    let mut counts = Counts::default();
    let framed = fields(raw, |field, wire, payload| {
        if field == metadata_field {
            counts.metadata += 1;
        }
        if field != series_field || wire != 2 {
            return;
        }
        counts.series += 1;
        let mut n = 0usize;
        fields(payload, |f, w, p| {
            if f == 2 {
                counts.samples += 1;
            }
            if f == histogram_field && w == 2 {
                counts.histograms += 1;
                counts.histogram_bytes += p.len();
            }
            if f == 5 && version == Version::V2 {
                counts.metadata += 1;
            }
            if f == 1 {
                // Halves of labels: a 1.0 label message is a whole label; a 2.0 reference (one
                // per final varint byte of a packed run) is a name or a value.
                n += match (version, w) {
                    (Version::V2, 2) => p.iter().filter(|b| **b < 0x80).count(),
                    (Version::V2, _) => 1,
                    (Version::V1, _) => 2,
                };
            }
        });
        worst = worst.max(n / 2);
        counts.label_halves += n;
    });
    if !framed {
        return Err(bad("body is not a protobuf message (bad field framing)"));
    }
    if worst > MAX_LABELS {
        return Err(too_many_labels(worst));
    }
    if counts.series > MAX_SERIES {
        return Err(RemoteWriteError::TooMany(format!(
            "{} series in one request; at most {MAX_SERIES} are accepted",
            counts.series
        )));
    }
    if counts.samples + counts.histograms > MAX_SAMPLES {
        return Err(RemoteWriteError::TooMany(format!(
            "{} samples in one request; at most {MAX_SAMPLES} are accepted",
            counts.samples + counts.histograms
        )));
    }
    // 2.0 repeats a metric's metadata on every series of it: there the cap is on distinct
    // metrics, checked while decoding.
    if version == Version::V1 && counts.metadata > MAX_METADATA {
        return Err(too_much_metadata());
    }
    Ok(counts)
}

// ---- remote write 1.0 (prometheus/prompb/remote.proto, types.proto) ----

#[derive(Clone, PartialEq, Message)]
struct WriteRequestV1 {
    #[prost(message, repeated, tag = "1")]
    timeseries: Vec<TimeSeriesV1>,
    #[prost(message, repeated, tag = "3")]
    metadata: Vec<MetricMetadataV1>,
}

#[derive(Clone, PartialEq, Message)]
struct TimeSeriesV1 {
    #[prost(message, repeated, tag = "1")]
    labels: Vec<LabelV1>,
    #[prost(message, repeated, tag = "2")]
    samples: Vec<SampleProto>,
    #[prost(message, repeated, tag = "3")]
    exemplars: Vec<Skipped>,
    #[prost(message, repeated, tag = "4")]
    histograms: Vec<histograms::HistogramProto>,
}

/// A message whose contents Lookout does not read: only counted.
#[derive(Clone, PartialEq, Message)]
struct Skipped {}

#[derive(Clone, PartialEq, Message)]
struct LabelV1 {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    value: String,
}

#[derive(Clone, PartialEq, Message)]
struct SampleProto {
    #[prost(double, tag = "1")]
    value: f64,
    #[prost(int64, tag = "2")]
    timestamp: i64,
}

#[derive(Clone, PartialEq, Message)]
struct MetricMetadataV1 {
    #[prost(int32, tag = "1")]
    r#type: i32,
    #[prost(string, tag = "2")]
    metric_family_name: String,
    #[prost(string, tag = "4")]
    help: String,
    #[prost(string, tag = "5")]
    unit: String,
}

/// Decodes an uncompressed 1.0 `WriteRequest`.
pub fn decode_v1(raw: &[u8]) -> Result<Batch, RemoteWriteError> {
    decode_v1_within(raw, &mut |_| true)
}

/// [`decode_v1`], asking `reserve` for the series native histograms expand into.
pub fn decode_v1_within(
    raw: &[u8],
    reserve: &mut dyn FnMut(usize) -> bool,
) -> Result<Batch, RemoteWriteError> {
    let counts = prescan(raw, Version::V1)?;
    let req = WriteRequestV1::decode(raw)
        .map_err(|e| bad(format!("not a prometheus.WriteRequest: {e}")))?;
    let mut batch = Batch::default();
    let mut derived = histograms::Derived::default();
    for ts in req.timeseries {
        batch.exemplars += ts.exemplars.len();
        let labels: Vec<(String, String)> =
            ts.labels.into_iter().map(|l| (l.name, l.value)).collect();
        if !ts.histograms.is_empty() {
            derived.add(
                labels.clone(),
                &ts.histograms,
                (counts.samples, counts.series),
                reserve,
            )?;
        }
        push_series(&mut batch, labels, ts.samples)?;
    }
    batch.add_derived(derived);
    for m in req.metadata {
        if !valid_metric_name(&m.metric_family_name) {
            return Err(bad(format!(
                "metadata names an invalid metric {:?}",
                clip(&m.metric_family_name)
            )));
        }
        if m.help.len() > MAX_VALUE_LEN || m.unit.len() > MAX_VALUE_LEN {
            return Err(bad(format!(
                "metadata of {:?} is over {MAX_VALUE_LEN} bytes",
                clip(&m.metric_family_name)
            )));
        }
        no_nul("metadata help", &m.help)?;
        no_nul("metadata unit", &m.unit)?;
        batch.metadata.push(Metadata {
            metric: m.metric_family_name,
            kind: MetricType::from_i32(m.r#type),
            help: m.help,
            unit: m.unit,
        });
    }
    Ok(batch)
}

// ---- remote write 2.0 (prometheus/prompb/io/prometheus/write/v2/types.proto) ----

#[derive(Clone, PartialEq, Message)]
struct RequestV2 {
    #[prost(string, repeated, tag = "4")]
    symbols: Vec<String>,
    #[prost(message, repeated, tag = "5")]
    timeseries: Vec<TimeSeriesV2>,
}

#[derive(Clone, PartialEq, Message)]
struct TimeSeriesV2 {
    #[prost(uint32, repeated, tag = "1")]
    labels_refs: Vec<u32>,
    #[prost(message, repeated, tag = "2")]
    samples: Vec<SampleProto>,
    #[prost(message, repeated, tag = "3")]
    histograms: Vec<histograms::HistogramProto>,
    #[prost(message, repeated, tag = "4")]
    exemplars: Vec<Skipped>,
    #[prost(message, optional, tag = "5")]
    metadata: Option<MetadataV2>,
}

#[derive(Clone, PartialEq, Message)]
struct MetadataV2 {
    #[prost(int32, tag = "1")]
    r#type: i32,
    #[prost(uint32, tag = "3")]
    help_ref: u32,
    #[prost(uint32, tag = "4")]
    unit_ref: u32,
}

/// Decodes an uncompressed 2.0 `Request`, resolving its symbol references.
pub fn decode_v2(raw: &[u8]) -> Result<Batch, RemoteWriteError> {
    decode_v2_within(raw, &mut |_| true)
}

/// [`decode_v2`], asking `reserve` for the bytes of text the batch copies out of its symbol
/// table before copying them ([`RemoteWriteError::OverBudget`] when it says no).
pub fn decode_v2_within(
    raw: &[u8],
    reserve: &mut dyn FnMut(usize) -> bool,
) -> Result<Batch, RemoteWriteError> {
    prescan(raw, Version::V2)?;
    let req = RequestV2::decode(raw)
        .map_err(|e| bad(format!("not an io.prometheus.write.v2.Request: {e}")))?;
    // The specification makes the first symbol the empty string.
    if req.symbols.first().is_some_and(|s| !s.is_empty()) {
        return Err(bad("symbols[0] must be the empty string"));
    }
    let sym = |r: u32| -> Result<&str, RemoteWriteError> {
        req.symbols
            .get(r as usize)
            .map(String::as_str)
            .ok_or_else(|| bad(format!("symbol reference {r} is out of range")))
    };
    let mut batch = Batch::default();
    // Symbols are shared, so a small body can reference one 4 KiB symbol from every label of
    // every series: a first pass checks each symbol's length and sums the bytes the batch would
    // copy out of the table, against a cap and the caller's budget, before any copy.
    let mut copied = 0usize;
    for ts in &req.timeseries {
        if ts.labels_refs.len() % 2 != 0 {
            return Err(bad("labels_refs must hold name and value pairs"));
        }
        if ts.labels_refs.len() / 2 > MAX_LABELS {
            return Err(too_many_labels(ts.labels_refs.len() / 2));
        }
        for pair in ts.labels_refs.chunks_exact(2) {
            if let [n, v] = pair {
                let (n, v) = (sym(*n)?, sym(*v)?);
                check_label_sizes(n, v)?;
                copied = copied.saturating_add(n.len() + v.len());
            }
        }
        if let Some(m) = &ts.metadata {
            copied = copied.saturating_add(sym(m.help_ref)?.len() + sym(m.unit_ref)?.len());
        }
        if copied > MAX_COPIED {
            return Err(RemoteWriteError::TooLarge(copied));
        }
    }
    if !reserve(copied) {
        return Err(RemoteWriteError::OverBudget);
    }
    let mut seen_metadata: std::collections::HashSet<String> = std::collections::HashSet::new();
    let floats: usize = req.timeseries.iter().map(|t| t.samples.len()).sum();
    let float_series = req.timeseries.len();
    let mut derived = histograms::Derived::default();
    for ts in &req.timeseries {
        batch.exemplars += ts.exemplars.len();
        let mut labels = Vec::with_capacity(ts.labels_refs.len() / 2);
        for pair in ts.labels_refs.chunks_exact(2) {
            if let [n, v] = pair {
                labels.push((sym(*n)?.to_string(), sym(*v)?.to_string()));
            }
        }
        if !ts.histograms.is_empty() {
            derived.add(
                labels.clone(),
                &ts.histograms,
                (floats, float_series),
                reserve,
            )?;
        }
        // The metadata names the series' metric, read from the labels before they are kept
        // (a series carrying only histograms adds no float series); a series with an invalid
        // name refuses the batch below anyway.
        let metric = labels
            .iter()
            .find(|(k, _)| k == "__name__")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        // Only for a series that carries data, as before native histograms were kept.
        let carries = !ts.samples.is_empty() || !ts.histograms.is_empty();
        if let Some(m) = ts.metadata.as_ref().filter(|_| carries) {
            let kind = MetricType::from_i32(m.r#type);
            let (help, unit) = (sym(m.help_ref)?, sym(m.unit_ref)?);
            if !metric.is_empty()
                && (kind != MetricType::Unknown || !help.is_empty() || !unit.is_empty())
            {
                // Checked before anything is copied; the name is copied only when new.
                if help.len() > MAX_VALUE_LEN || unit.len() > MAX_VALUE_LEN {
                    return Err(bad(format!(
                        "metadata of {:?} is over {MAX_VALUE_LEN} bytes",
                        clip(metric)
                    )));
                }
                no_nul("metadata help", help)?;
                no_nul("metadata unit", unit)?;
                if !seen_metadata.contains(metric) {
                    if seen_metadata.len() >= MAX_METADATA {
                        return Err(too_much_metadata());
                    }
                    let metric = metric.to_string();
                    seen_metadata.insert(metric.clone());
                    batch.metadata.push(Metadata {
                        metric,
                        kind,
                        help: help.to_string(),
                        unit: unit.to_string(),
                    });
                }
            }
        }
        push_series(&mut batch, labels, ts.samples.clone())?;
    }
    batch.add_derived(derived);
    Ok(batch)
}

// ---- shared validation ----

fn too_much_metadata() -> RemoteWriteError {
    RemoteWriteError::TooMany(format!(
        "more than {MAX_METADATA} metadata entries in one request"
    ))
}

/// PostgreSQL refuses text holding NUL, so a stored NUL would make every retry of the batch fail
/// in storage (503, retried forever): refused here with 400 instead.
fn no_nul(what: &str, s: &str) -> Result<(), RemoteWriteError> {
    if s.contains('\0') {
        return Err(bad(format!("{what} holds a NUL byte")));
    }
    Ok(())
}

/// A label's name and value lengths, checked before either is copied.
fn check_label_sizes(k: &str, v: &str) -> Result<(), RemoteWriteError> {
    if k.len() > MAX_NAME_LEN {
        return Err(bad(format!(
            "a label name of {} bytes; at most {MAX_NAME_LEN} are accepted",
            k.len()
        )));
    }
    if v.len() > MAX_VALUE_LEN {
        return Err(bad(format!(
            "label {} has a value of {} bytes; at most {MAX_VALUE_LEN} are accepted",
            clip(k),
            v.len()
        )));
    }
    Ok(())
}

fn too_many_labels(n: usize) -> RemoteWriteError {
    bad(format!(
        "a series has {n} labels; at most {MAX_LABELS} are accepted"
    ))
}

/// At most 64 characters of untrusted text, for error messages.
fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Validates and sorts one series' labels (empty values dropped, as Prometheus reads them).
pub(super) fn check_labels(
    mut labels: Vec<(String, String)>,
) -> Result<Vec<(String, String)>, RemoteWriteError> {
    if labels.len() > MAX_LABELS {
        return Err(too_many_labels(labels.len()));
    }
    // An empty value means "no such label" in Prometheus's data model.
    labels.retain(|(_, v)| !v.is_empty());
    for (k, v) in &labels {
        check_label_sizes(k, v)?;
        if !valid_label_name(k) {
            return Err(bad(format!("invalid label name {:?}", clip(k))));
        }
        no_nul("a label value", v)?;
    }
    labels.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    if let Some(w) = labels
        .windows(2)
        .find(|w| matches!(w, [a, b] if a.0 == b.0))
    {
        let name = w.first().map(|l| l.0.as_str()).unwrap_or("");
        return Err(bad(format!("duplicate label name {name:?} in one series")));
    }
    let name = labels
        .iter()
        .find(|(k, _)| k == "__name__")
        .map(|(_, v)| v.as_str());
    match name {
        None => return Err(bad("a series has no __name__ label")),
        Some(n) if !valid_metric_name(n) => {
            return Err(bad(format!("invalid metric name {:?}", clip(n))))
        }
        Some(_) => {}
    }
    Ok(labels)
}

/// Validates, sorts and keeps one series (with at least one sample).
fn push_series(
    batch: &mut Batch,
    labels: Vec<(String, String)>,
    samples: Vec<SampleProto>,
) -> Result<(), RemoteWriteError> {
    let labels = check_labels(labels)?;
    if samples.is_empty() {
        return Ok(());
    }
    batch.series.push(Series {
        labels,
        samples: samples
            .into_iter()
            .map(|s| (s.timestamp, s.value))
            .collect(),
    });
    Ok(())
}

/// A label name as Prometheus (before UTF-8 names) accepts it: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn valid_label_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// A metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn valid_metric_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

#[cfg(test)]
mod tests;
