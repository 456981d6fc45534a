//! The Prometheus text exposition format (0.0.4) and OpenMetrics 1.0 text, as a scrape target
//! serves them, parsed into samples.
//!
//! Hand-written rather than a crate: the kept crates on the registry (`prometheus-parse`,
//! `openmetrics-parser`) either read one of the two formats only, or allocate per line beyond
//! what the input holds; this parser reads both in one pass over an already size-capped body and
//! allocates only what it returns. It is fuzzed (fuzz/fuzz_targets/prometheus_scrape.rs).
//!
//! What follows Prometheus: a malformed line fails the whole scrape (Prometheus then writes
//! `up 0`), `# HELP`/`# TYPE` (and OpenMetrics `# UNIT`) become metadata, other comments are
//! ignored, sample timestamps are milliseconds in the text format and seconds in OpenMetrics,
//! OpenMetrics exemplars (`# {…} v`) are skipped, and a repeated label name in one sample is an
//! error. OpenMetrics bodies must end with `# EOF`.
//!
//! Linear in the body: metadata is found by name in a map and repeated labels in a set, since
//! a 16 MiB body can hold hundreds of thousands of families or millions of labels on one line.
//! A sample may carry at most [`MAX_LABELS`] labels, and [`parse_budgeted`] asks a memory
//! budget before the parsed samples outgrow what it granted.

use std::collections::{HashMap, HashSet};

use crate::remote_write::{Metadata, MetricType};

/// The most labels one sample may carry; more fails the scrape. Prometheus has no fixed cap
/// (its `label_limit` is per job and off by default), but no real target comes near this, and
/// it bounds the work one line can cause.
pub const MAX_LABELS: usize = 1000;

/// How many bytes of parsed samples are asked of the budget at once.
const BUDGET_STEP: usize = 64 * 1024;

/// Which format a body is in, from the answer's `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4` (also anything unknown, as Prometheus falls back to it).
    Text,
    /// `application/openmetrics-text`.
    OpenMetrics,
}

/// What Prometheus sends as `Accept` when scraping (OpenMetrics preferred, then the text
/// format), so targets answer Lookout as they answer Prometheus.
pub const ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

impl Format {
    /// The format of an answer with this `Content-Type`.
    pub fn of(content_type: Option<&str>) -> Format {
        match content_type {
            Some(ct)
                if ct
                    .trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/openmetrics-text") =>
            {
                Format::OpenMetrics
            }
            _ => Format::Text,
        }
    }
}

/// One scraped sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric name.
    pub name: String,
    /// Its labels as exposed (unsorted, no `__name__`).
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
    /// The sample's own timestamp, ms, when the target gave one.
    pub timestamp_ms: Option<i64>,
}

/// A parsed body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scraped {
    /// The samples, in body order.
    pub samples: Vec<Sample>,
    /// Type, help and unit per metric family.
    pub metadata: Vec<Metadata>,
}

/// The message of a parse refused by its memory budget.
pub const OVER_BUDGET: &str = "the parsed samples exceed the scrape memory budget";

/// Parses a whole body; an error names the line.
pub fn parse(body: &[u8], format: Format) -> Result<Scraped, String> {
    parse_budgeted(body, format, &mut |_| true)
}

/// Like [`parse`], calling `reserve(bytes)` before the parsed samples and metadata grow by
/// `bytes` more (an estimate of their heap and inline size, asked in steps); when it answers
/// `false` parsing stops with [`OVER_BUDGET`]. So a body of many tiny series cannot turn into
/// many times its own size in memory unchecked.
pub fn parse_budgeted(
    body: &[u8],
    format: Format,
    reserve: &mut dyn FnMut(usize) -> bool,
) -> Result<Scraped, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("body is not UTF-8: {e}"))?;
    let om = format == Format::OpenMetrics;
    let mut out = Scraped::default();
    let mut meta: Vec<Metadata> = Vec::new();
    let mut meta_at: HashMap<String, usize> = HashMap::new();
    let mut used = 0usize;
    let mut granted = 0usize;
    let mut charge = |bytes: usize| -> Result<(), String> {
        used = used.saturating_add(bytes);
        while used > granted {
            if !reserve(BUDGET_STEP) {
                return Err(OVER_BUDGET.to_string());
            }
            granted += BUDGET_STEP;
        }
        Ok(())
    };
    let mut eof = false;
    let mut lines = text.split('\n').enumerate().peekable();
    while let Some((i, raw)) = lines.next() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if eof {
            if line.is_empty() && lines.peek().is_none() {
                continue;
            }
            return Err(format!("line {}: data after # EOF", i + 1));
        }
        let at = |e: String| format!("line {}: {e}", i + 1);
        if let Some(rest) = line.strip_prefix('#') {
            if om && rest == " EOF" {
                eof = true;
                continue;
            }
            let families = meta.len();
            comment(rest, &mut meta, &mut meta_at).map_err(at)?;
            if meta.len() > families {
                // The entry, its name twice (list and map), help and unit.
                charge(std::mem::size_of::<Metadata>() + 64 + 2 * rest.len()).map_err(at)?;
            }
            continue;
        }
        if line.trim().is_empty() {
            if om && !line.is_empty() {
                return Err(at("blank line".into()));
            }
            continue;
        }
        let s = sample(line, om).map_err(at)?;
        let labels: usize = s.labels.iter().map(|(k, v)| 48 + k.len() + v.len()).sum();
        charge(std::mem::size_of::<Sample>() + s.name.len() + labels).map_err(at)?;
        out.samples.push(s);
    }
    if om && !eof {
        return Err("OpenMetrics body does not end with # EOF".into());
    }
    out.metadata = meta;
    Ok(out)
}

/// A `# HELP`, `# TYPE` or `# UNIT` line into `meta`; other comments are ignored.
fn comment(
    rest: &str,
    meta: &mut Vec<Metadata>,
    meta_at: &mut HashMap<String, usize>,
) -> Result<(), String> {
    let rest = rest.trim_start_matches([' ', '\t']);
    let (kw, rest) = rest.split_once([' ', '\t']).unwrap_or((rest, ""));
    if !matches!(kw, "HELP" | "TYPE" | "UNIT") {
        return Ok(());
    }
    let rest = rest.trim_start_matches([' ', '\t']);
    let (name, value) = rest.split_once([' ', '\t']).unwrap_or((rest, ""));
    if !is_metric_name(name) {
        return Err(format!("# {kw}: invalid metric name {name:?}"));
    }
    let idx = match meta_at.get(name) {
        Some(i) => *i,
        None => {
            meta.push(Metadata {
                metric: name.to_string(),
                kind: MetricType::Unknown,
                help: String::new(),
                unit: String::new(),
            });
            meta_at.insert(name.to_string(), meta.len() - 1);
            meta.len() - 1
        }
    };
    let Some(m) = meta.get_mut(idx) else {
        return Ok(());
    };
    match kw {
        "HELP" => m.help = unescape_help(value),
        "UNIT" => m.unit = value.trim().to_string(),
        _ => {
            m.kind = match value.trim() {
                "counter" => MetricType::Counter,
                "gauge" => MetricType::Gauge,
                "histogram" => MetricType::Histogram,
                "gaugehistogram" => MetricType::GaugeHistogram,
                "summary" => MetricType::Summary,
                "info" => MetricType::Info,
                "stateset" => MetricType::StateSet,
                "untyped" | "unknown" => MetricType::Unknown,
                other => return Err(format!("# TYPE {name}: unknown type {other:?}")),
            }
        }
    }
    Ok(())
}

fn unescape_help(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('\\') => out.push('\\'),
                Some('"') => out.push('"'),
                Some(o) => {
                    out.push('\\');
                    out.push(o);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether `name` is a metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_metric_name(name: &str) -> bool {
    let mut b = name.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

/// Whether `name` is a label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_label_name(name: &str) -> bool {
    let mut b = name.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

fn skip_ws(s: &str) -> &str {
    s.trim_start_matches([' ', '\t'])
}

/// One sample line.
fn sample(line: &str, om: bool) -> Result<Sample, String> {
    let end = line.find(['{', ' ', '\t']).unwrap_or(line.len());
    let (name, mut rest) = line.split_at(end);
    if !is_metric_name(name) {
        return Err(format!("invalid metric name {name:?}"));
    }
    let mut labels: Vec<(String, String)> = Vec::new();
    if let Some(r) = skip_ws(rest).strip_prefix('{') {
        rest = label_set(r, &mut labels)?;
        repeated(&labels)?;
    }
    if !rest.starts_with([' ', '\t']) {
        return Err(format!("{name}: expected a space before the value"));
    }
    rest = skip_ws(rest);
    // An OpenMetrics exemplar follows ` # `; it is not stored.
    let body = match (om, rest.find(" # ")) {
        (true, Some(i)) => &rest[..i],
        _ => rest,
    };
    let mut parts = body.split([' ', '\t']).filter(|p| !p.is_empty());
    let value = parts
        .next()
        .ok_or_else(|| format!("{name}: no value"))
        .and_then(|v| parse_value(v).ok_or_else(|| format!("{name}: invalid value {v:?}")))?;
    let timestamp_ms = match parts.next() {
        None => None,
        Some(t) if om => {
            let secs: f64 = t
                .parse()
                .ok()
                .filter(|s: &f64| s.is_finite())
                .ok_or_else(|| format!("{name}: invalid timestamp {t:?}"))?;
            let ms = secs * 1000.0;
            if ms.abs() > 9.0e15 {
                return Err(format!("{name}: timestamp {t:?} out of range"));
            }
            Some(ms.round() as i64)
        }
        Some(t) => Some(
            t.parse::<i64>()
                .map_err(|_| format!("{name}: invalid timestamp {t:?}"))?,
        ),
    };
    if parts.next().is_some() {
        return Err(format!("{name}: unexpected text after the timestamp"));
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
        timestamp_ms,
    })
}

/// A float as Prometheus writes them (`NaN`, `+Inf`, `-Inf`, decimal and exponent forms).
fn parse_value(v: &str) -> Option<f64> {
    match v {
        "NaN" | "nan" => Some(f64::NAN),
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ if v
            .bytes()
            .any(|b| b.is_ascii_alphabetic() && b != b'e' && b != b'E') =>
        {
            None
        }
        _ => v.parse().ok(),
    }
}

/// A label name given twice is an error; a set for long label lists, so the check stays linear.
fn repeated(labels: &[(String, String)]) -> Result<(), String> {
    if labels.len() <= 8 {
        for (i, (n, _)) in labels.iter().enumerate() {
            if labels.iter().take(i).any(|(m, _)| m == n) {
                return Err(format!("label {n} repeated"));
            }
        }
        return Ok(());
    }
    let mut names = HashSet::with_capacity(labels.len());
    for (n, _) in labels {
        if !names.insert(n.as_str()) {
            return Err(format!("label {n} repeated"));
        }
    }
    Ok(())
}

/// Reads `name="value",…}` after the `{`; returns the rest of the line after the `}`.
fn label_set<'a>(mut s: &'a str, labels: &mut Vec<(String, String)>) -> Result<&'a str, String> {
    loop {
        s = skip_ws(s);
        if let Some(r) = s.strip_prefix('}') {
            return Ok(r);
        }
        let end = s.find(['=', ' ', '\t']).ok_or("unterminated label set")?;
        let (name, r) = s.split_at(end);
        if !is_label_name(name) {
            return Err(format!("invalid label name {name:?}"));
        }
        if labels.len() >= MAX_LABELS {
            return Err(format!("more than {MAX_LABELS} labels"));
        }
        let r = skip_ws(r)
            .strip_prefix('=')
            .ok_or_else(|| format!("label {name}: expected ="))?;
        let r = skip_ws(r)
            .strip_prefix('"')
            .ok_or_else(|| format!("label {name}: expected a quoted value"))?;
        let mut value = String::new();
        let mut chars = r.char_indices();
        let after = loop {
            match chars.next() {
                None => return Err(format!("label {name}: unterminated value")),
                Some((i, '"')) => break &r[i + 1..],
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, c)) => {
                        value.push('\\');
                        value.push(c);
                    }
                    None => return Err(format!("label {name}: unterminated value")),
                },
                Some((_, c)) => value.push(c),
            }
        };
        labels.push((name.to_string(), value));
        s = skip_ws(after);
        if let Some(r) = s.strip_prefix(',') {
            s = r;
        } else if !s.starts_with('}') {
            return Err(format!("label {name}: expected , or }}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_parses_as_prometheus_reads_it() {
        let body = b"# HELP node_load1 1m load average.\n# TYPE node_load1 gauge\nnode_load1 0.5\n\
            # a comment\n\nhttp_requests_total{method=\"post\",code=\"200\",} 1027 1395066363000\n\
            msdos_file_access_time_seconds{path=\"C:\\\\DIR\\\\FILE.TXT\",error=\"Cannot find file:\\n\\\"FILE.TXT\\\"\"} 1.458255915e9\n\
            something_weird{problem=\"division by zero\"} +Inf -3982045\nnan_metric NaN\n";
        let s = parse(body, Format::Text).unwrap();
        assert_eq!(s.samples.len(), 5);
        assert_eq!(s.samples[0].name, "node_load1");
        assert_eq!(s.samples[0].timestamp_ms, None);
        assert_eq!(
            s.samples[1].labels,
            vec![
                ("method".to_string(), "post".to_string()),
                ("code".to_string(), "200".to_string())
            ]
        );
        assert_eq!(s.samples[1].timestamp_ms, Some(1_395_066_363_000));
        assert_eq!(s.samples[2].labels[0].1, "C:\\DIR\\FILE.TXT");
        assert_eq!(s.samples[2].labels[1].1, "Cannot find file:\n\"FILE.TXT\"");
        assert_eq!(s.samples[3].value, f64::INFINITY);
        assert_eq!(s.samples[3].timestamp_ms, Some(-3_982_045));
        assert!(s.samples[4].value.is_nan());
        assert_eq!(s.metadata.len(), 1);
        assert_eq!(s.metadata[0].kind, MetricType::Gauge);
        assert_eq!(s.metadata[0].help, "1m load average.");
    }

    #[test]
    fn openmetrics_needs_eof_and_takes_seconds_and_exemplars() {
        let body = b"# TYPE foo counter\n# UNIT foo seconds\nfoo_total{a=\"b\"} 17 1520879607.789 # {trace_id=\"x\"} 1 1520879607.7\nfoo_created 1520430000.123\n# EOF\n";
        let s = parse(body, Format::OpenMetrics).unwrap();
        assert_eq!(s.samples.len(), 2);
        assert_eq!(s.samples[0].timestamp_ms, Some(1_520_879_607_789));
        assert_eq!(s.samples[0].value, 17.0);
        assert_eq!(s.metadata[0].unit, "seconds");
        assert!(parse(b"foo 1\n", Format::OpenMetrics).is_err());
        assert!(parse(b"# EOF\nfoo 1\n", Format::OpenMetrics).is_err());
    }

    #[test]
    fn malformed_lines_fail_the_scrape_with_their_line() {
        for bad in [
            &b"foo{a=\"b\" 1\n"[..],
            b"foo{a=\"b\",a=\"c\"} 1\n",
            b"foo{1a=\"b\"} 1\n",
            b"foo bar\n",
            b"foo 1 2 3\n",
            b"foo 1 1.5\n",
            b"0foo 1\n",
            b"foo{a=\"unterminated} 1\n",
            b"# TYPE foo blob\n",
            b"foo\xff 1\n",
        ] {
            let e = parse(bad, Format::Text).unwrap_err();
            assert!(e.contains("line 1") || e.contains("UTF-8"), "{e}");
        }
        assert_eq!(
            Format::of(Some("application/openmetrics-text; version=1.0.0")),
            Format::OpenMetrics
        );
        assert_eq!(Format::of(Some("text/plain; version=0.0.4")), Format::Text);
        assert_eq!(Format::of(None), Format::Text);
    }

    #[test]
    fn a_line_of_millions_of_labels_is_refused_at_the_label_cap() {
        // The body the review built: one 16 MiB line of distinct empty labels. It must end
        // promptly with a clear refusal, not after ~1e12 comparisons.
        let mut body = String::from("m{");
        let mut i = 0;
        while body.len() < 16 << 20 {
            body.push_str(&format!("a{i}=\"\","));
            i += 1;
        }
        body.push_str("} 1\n");
        let e = parse(body.as_bytes(), Format::Text).unwrap_err();
        assert!(e.contains("more than 1000 labels"), "{e}");
        // At the cap a sample parses, and a repeat late in a long list is still found.
        let mut at_cap: Vec<String> = (0..MAX_LABELS).map(|i| format!("l{i}=\"v\"")).collect();
        let ok = format!("m{{{}}} 1\n", at_cap.join(","));
        assert_eq!(
            parse(ok.as_bytes(), Format::Text).unwrap().samples[0]
                .labels
                .len(),
            MAX_LABELS
        );
        at_cap[900] = "l3=\"w\"".into();
        let dup = format!("m{{{}}} 1\n", at_cap.join(","));
        let e = parse(dup.as_bytes(), Format::Text).unwrap_err();
        assert!(e.contains("label l3 repeated"), "{e}");
    }

    #[test]
    fn hundreds_of_thousands_of_families_parse_in_one_pass() {
        let mut body = String::new();
        for i in 0..300_000 {
            body.push_str(&format!("# TYPE a{i} gauge\n# HELP a{i} h\n"));
        }
        body.push_str("# TYPE a7 counter\na7 1\n");
        let s = parse(body.as_bytes(), Format::Text).unwrap();
        assert_eq!(s.metadata.len(), 300_000);
        assert_eq!(
            s.metadata[7].kind,
            MetricType::Counter,
            "a later # TYPE updates it"
        );
        assert_eq!(s.metadata[7].help, "h");
    }

    #[test]
    fn parsing_stops_when_the_budget_refuses_more() {
        let body: String = (0..100_000).map(|i| format!("s{i} 1\n")).collect();
        let mut granted = 0usize;
        let e = parse_budgeted(body.as_bytes(), Format::Text, &mut |n| {
            granted += n;
            granted <= 1 << 20
        })
        .unwrap_err();
        assert!(e.contains(OVER_BUDGET), "{e}");
        let mut asked = 0usize;
        let s = parse_budgeted(body.as_bytes(), Format::Text, &mut |n| {
            asked += n;
            true
        })
        .unwrap();
        assert_eq!(s.samples.len(), 100_000);
        assert!(
            asked >= s.samples.len() * std::mem::size_of::<Sample>(),
            "what was asked covers at least the samples themselves: {asked}"
        );
    }
}
