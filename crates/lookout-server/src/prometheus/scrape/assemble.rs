//! From a parsed scrape to the series written: target labels merged (honor_labels or
//! `exported_` renaming), `metric_relabel_configs` run, label names validated after relabeling
//! (a sample with an invalid one is dropped and counted, never an error), duplicates dropped,
//! `sample_limit` enforced, timestamps as Prometheus sets them, and the staleness markers of
//! series that disappeared.

use std::collections::{BTreeMap, HashSet};

use lookout_protocol::exposition::{self, Scraped};
use lookout_protocol::relabel::{self, Rule};
use lookout_protocol::remote_write::{Series, STALE_NAN_BITS};

/// What a scrape becomes.
#[derive(Debug, Default)]
pub struct Assembled {
    /// One sample per series, labels sorted.
    pub series: Vec<Series>,
    /// Samples in the body.
    pub scraped: usize,
    /// Samples left after metric relabeling (and label validation).
    pub post_relabel: usize,
    /// Samples dropped for an invalid label or metric name after relabeling.
    pub invalid: usize,
    /// Samples dropped because their series came twice in one scrape.
    pub duplicates: usize,
    /// The canonical labels of the series written at the scrape's time (explicit timestamps
    /// excluded, as Prometheus tracks staleness only for those).
    pub seen: HashSet<Vec<(String, String)>>,
}

/// How a target's labels meet the scraped ones.
pub struct Options<'a> {
    /// The target's labels (`job`, `instance`, …).
    pub target: &'a [(String, String)],
    /// Scraped labels win over target labels.
    pub honor_labels: bool,
    /// Explicit timestamps kept.
    pub honor_timestamps: bool,
    /// Metric relabeling.
    pub rules: &'a [Rule],
    /// 0: none.
    pub sample_limit: u64,
    /// The scrape's time, ms (its start, as Prometheus uses).
    pub now_ms: i64,
}

/// A scrape failed by `sample_limit`: why, and its counts (`scraped`, `post_relabel`) for the
/// report series, as Prometheus still reports them with `up 0`. No series are kept.
pub type Refused = Box<(String, Assembled)>;

/// Merges, relabels and checks every sample; an error fails the scrape (sample_limit).
///
/// Past `sample_limit` no more series are built: the rest is only relabeled and counted, so a
/// body of many series over the limit costs no memory beyond the limit.
pub fn assemble(scraped: Scraped, o: &Options<'_>) -> Result<Assembled, Refused> {
    let mut out = Assembled {
        scraped: scraped.samples.len(),
        ..Assembled::default()
    };
    let mut keys: HashSet<Vec<(String, String)>> = HashSet::new();
    let mut over = false;
    for s in scraped.samples {
        let mut l: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in s.labels {
            l.insert(k, v);
        }
        l.insert("__name__".into(), s.name);
        for (k, v) in o.target {
            if o.honor_labels {
                if l.get(k).is_none_or(String::is_empty) {
                    l.insert(k.clone(), v.clone());
                }
            } else {
                if let Some(existing) = l.remove(k) {
                    // Prometheus keeps a clashing scraped label as exported_<name>,
                    // prefixing again while that name is taken too.
                    let mut name = format!("exported_{k}");
                    while l.contains_key(&name) {
                        name = format!("exported_{name}");
                    }
                    l.insert(name, existing);
                }
                l.insert(k.clone(), v.clone());
            }
        }
        l.retain(|_, v| !v.is_empty());
        if !relabel::process(o.rules, &mut l) {
            continue;
        }
        let valid = l
            .get("__name__")
            .is_some_and(|n| exposition::is_metric_name(n))
            && l.keys().all(|k| exposition::is_label_name(k));
        if !valid {
            out.invalid += 1;
            continue;
        }
        if over {
            out.post_relabel += 1;
            continue;
        }
        let labels: Vec<(String, String)> = l.into_iter().collect();
        if !keys.insert(labels.clone()) {
            out.duplicates += 1;
            continue;
        }
        let t = match s.timestamp_ms {
            Some(t) if o.honor_timestamps => t,
            _ => {
                out.seen.insert(labels.clone());
                o.now_ms
            }
        };
        out.series.push(Series {
            labels,
            samples: vec![(t, s.value)],
        });
        out.post_relabel += 1;
        if o.sample_limit > 0 && out.post_relabel as u64 > o.sample_limit {
            // Failed: from here on only counted. Nothing built is written.
            over = true;
            out.series = Vec::new();
            out.seen = HashSet::new();
            keys = HashSet::new();
        }
    }
    if over {
        let why = format!(
            "sample_limit exceeded: {} samples after relabeling, limit {}",
            out.post_relabel, o.sample_limit
        );
        return Err(Box::new((why, out)));
    }
    Ok(out)
}

/// Staleness markers at `t` for every series of `before` not in `now`.
pub fn stale(
    before: &HashSet<Vec<(String, String)>>,
    now: &HashSet<Vec<(String, String)>>,
    t: i64,
) -> Vec<Series> {
    before
        .iter()
        .filter(|l| !now.contains(*l))
        .map(|l| Series {
            labels: l.clone(),
            samples: vec![(t, f64::from_bits(STALE_NAN_BITS))],
        })
        .collect()
}

/// The report series Prometheus writes for each scrape, with the target's labels.
pub fn report(
    target: &[(String, String)],
    t: i64,
    up: bool,
    duration_s: f64,
    a: &Assembled,
    added: usize,
) -> Vec<Series> {
    let vals = [
        ("up", if up { 1.0 } else { 0.0 }),
        ("scrape_duration_seconds", duration_s),
        ("scrape_samples_scraped", a.scraped as f64),
        (
            "scrape_samples_post_metric_relabeling",
            a.post_relabel as f64,
        ),
        ("scrape_series_added", added as f64),
    ];
    vals.iter()
        .map(|(name, v)| Series {
            labels: with_name(target, name),
            samples: vec![(t, *v)],
        })
        .collect()
}

/// `target` plus `__name__`, sorted.
pub fn with_name(target: &[(String, String)], name: &str) -> Vec<(String, String)> {
    let mut l: Vec<(String, String)> = target
        .iter()
        .filter(|(k, _)| k != "__name__")
        .cloned()
        .collect();
    l.push(("__name__".into(), name.into()));
    l.sort();
    l
}

#[cfg(test)]
mod tests {
    use super::*;
    use lookout_protocol::exposition::{parse, Format};

    fn target() -> Vec<(String, String)> {
        vec![
            ("instance".into(), "h:1".into()),
            ("job".into(), "node".into()),
        ]
    }

    fn opts<'a>(t: &'a [(String, String)], rules: &'a [Rule], honor: bool) -> Options<'a> {
        Options {
            target: t,
            honor_labels: honor,
            honor_timestamps: true,
            rules,
            sample_limit: 0,
            now_ms: 1000,
        }
    }

    fn get<'a>(l: &'a [(String, String)], k: &str) -> Option<&'a str> {
        l.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn clashing_labels_are_exported_unless_honored() {
        let t = target();
        let body = b"m{job=\"inner\",x=\"\"} 1\nn 2 500\n";
        let a = assemble(parse(body, Format::Text).unwrap(), &opts(&t, &[], false)).unwrap();
        let m = &a.series[0].labels;
        assert_eq!(get(m, "job"), Some("node"));
        assert_eq!(get(m, "exported_job"), Some("inner"));
        assert_eq!(get(m, "x"), None, "empty labels are removed");
        assert_eq!(a.series[0].samples[0].0, 1000, "no timestamp: the scrape's");
        assert_eq!(
            a.series[1].samples[0].0, 500,
            "an explicit timestamp is kept"
        );
        assert_eq!(a.seen.len(), 1, "only series at the scrape's time go stale");
        let a = assemble(parse(body, Format::Text).unwrap(), &opts(&t, &[], true)).unwrap();
        assert_eq!(get(&a.series[0].labels, "job"), Some("inner"));
        assert_eq!(get(&a.series[0].labels, "instance"), Some("h:1"));
    }

    #[test]
    fn invalid_names_after_relabeling_are_dropped_and_counted() {
        let t = target();
        let rules = relabel::compile(&[
            serde_json::from_str(
                r#"{"source_labels":["__name__"],"regex":"bad","target_label":"__name__","replacement":"1bad"}"#,
            )
            .unwrap(),
            serde_json::from_str(r#"{"action":"drop","source_labels":["__name__"],"regex":"gone"}"#)
                .unwrap(),
        ])
        .unwrap();
        let body = b"bad 1\ngone 2\nok 3\n";
        let a = assemble(parse(body, Format::Text).unwrap(), &opts(&t, &rules, false)).unwrap();
        assert_eq!((a.scraped, a.post_relabel, a.invalid), (3, 1, 1));
    }

    #[test]
    fn sample_limit_fails_the_scrape_and_stale_marks_what_vanished() {
        let t = target();
        let mut o = opts(&t, &[], false);
        o.sample_limit = 1;
        let (e, counts) =
            *assemble(parse(b"a 1\nb 2\nc 3\n", Format::Text).unwrap(), &o).unwrap_err();
        assert!(e.contains("sample_limit") && e.contains("3 samples"), "{e}");
        assert_eq!(
            (counts.scraped, counts.post_relabel),
            (3, 3),
            "reported as Prometheus does"
        );
        assert!(counts.series.is_empty() && counts.seen.is_empty());
        o.sample_limit = 0;
        let first = assemble(parse(b"a 1\nb 2\n", Format::Text).unwrap(), &o).unwrap();
        let second = assemble(parse(b"a 1\n", Format::Text).unwrap(), &o).unwrap();
        let s = stale(&first.seen, &second.seen, 2000);
        assert_eq!(s.len(), 1);
        assert_eq!(get(&s[0].labels, "__name__"), Some("b"));
        assert_eq!(s[0].samples[0].1.to_bits(), STALE_NAN_BITS);
        let r = report(&t, 5, false, 0.5, &second, 0);
        assert_eq!(r.len(), 5);
        assert_eq!(get(&r[0].labels, "__name__"), Some("up"));
        assert_eq!(r[0].samples[0].1, 0.0);
    }
}
