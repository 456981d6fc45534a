//! Importers for common benchmark outputs: each file becomes a list of measures (a name, tags,
//! a unit, which direction is better, and the value) that `lookout regress push|check` sends as
//! series points.
//!
//! Formats: Criterion (`target/criterion/**/new/estimates.json`, mean), hyperfine `--export-json`
//! (mean), pytest-benchmark `--benchmark-json` (mean), Google Benchmark `--benchmark_format=json`
//! (the `mean` aggregate when repetitions ran, else the run; real time), k6 `--summary-export`
//! (p95, average, request rate and failure rate, per scenario where k6 split them) and Lookout's own
//! load summaries (p95, req/s and error rate per scenario).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use lookout_load::Summary;

/// One figure to record.
#[derive(Debug, Clone, PartialEq)]
pub struct Measure {
    pub name: String,
    pub tags: BTreeMap<String, String>,
    pub unit: String,
    pub lower_is_better: bool,
    pub value: f64,
}

/// What a file held.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    pub format: Format,
    pub measures: Vec<Measure>,
    /// The commit the file names, if it names one (pytest-benchmark does).
    pub commit: Option<String>,
}

/// The formats read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Criterion,
    Hyperfine,
    PytestBenchmark,
    GoogleBenchmark,
    K6,
    Lookout,
}

impl Format {
    /// The name used on the command line (`--format`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Criterion => "criterion",
            Format::Hyperfine => "hyperfine",
            Format::PytestBenchmark => "pytest-benchmark",
            Format::GoogleBenchmark => "google-benchmark",
            Format::K6 => "k6",
            Format::Lookout => "lookout",
        }
    }

    pub fn parse(s: &str) -> Option<Format> {
        [
            Format::Criterion,
            Format::Hyperfine,
            Format::PytestBenchmark,
            Format::GoogleBenchmark,
            Format::K6,
            Format::Lookout,
        ]
        .into_iter()
        .find(|f| f.name() == s)
    }
}

fn measure(name: impl Into<String>, unit: &str, lower_is_better: bool, value: f64) -> Measure {
    Measure {
        name: name.into(),
        tags: BTreeMap::new(),
        unit: unit.into(),
        lower_is_better,
        value,
    }
}

/// Reads a file, or a Criterion directory (`target/criterion`), in the given or detected format.
pub fn import_path(path: &Path, format: Option<Format>) -> Result<Imported, String> {
    if path.is_dir() {
        if format.is_some_and(|f| f != Format::Criterion) {
            return Err(format!(
                "{}: a directory is read as Criterion output",
                path.display()
            ));
        }
        return criterion_dir(path);
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = import_json(&text, format).map_err(|e| format!("{}: {e}", path.display()))?;
    if out.format == Format::Criterion {
        // A lone estimates.json: named by its directories, as in a Criterion tree.
        let name = criterion_name(path.parent().unwrap_or(Path::new("")), None);
        for m in &mut out.measures {
            m.name.clone_from(&name);
        }
    }
    Ok(out)
}

/// Reads JSON text in the given or detected format.
pub fn import_json(text: &str, format: Option<Format>) -> Result<Imported, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("JSON: {e}"))?;
    let format = match format {
        Some(f) => f,
        None => detect(&v).ok_or(
            "not a format Lookout reads (Criterion, hyperfine, pytest-benchmark, Google Benchmark, k6 summary export, Lookout load summary)",
        )?,
    };
    let (measures, commit) = match format {
        Format::Criterion => (vec![criterion_estimate(&v, "criterion")?], None),
        Format::Hyperfine => (hyperfine(&v)?, None),
        Format::PytestBenchmark => pytest(&v)?,
        Format::GoogleBenchmark => (google(&v)?, None),
        Format::K6 => (k6(&v)?, None),
        Format::Lookout => {
            let (summary, test) = match v.get("summary") {
                Some(s) => (s.clone(), v.get("name").and_then(Value::as_str)),
                None => (v.clone(), None),
            };
            let s: Summary =
                serde_json::from_value(summary).map_err(|e| format!("Lookout summary: {e}"))?;
            (lookout_summary(test, &s), None)
        }
    };
    if measures.is_empty() {
        return Err(format!(
            "{}: no benchmark results in the file",
            format.name()
        ));
    }
    if let Some(m) = measures.iter().find(|m| !m.value.is_finite()) {
        return Err(format!("{}: {} is not a finite number", m.name, m.value));
    }
    Ok(Imported {
        format,
        measures,
        commit,
    })
}

fn detect(v: &Value) -> Option<Format> {
    let first = |key: &str| v.get(key).and_then(Value::as_array).and_then(|a| a.first());
    if v.get("mean")
        .and_then(|m| m.get("point_estimate"))
        .is_some()
    {
        Some(Format::Criterion)
    } else if first("results").is_some_and(|r| r.get("command").is_some()) {
        Some(Format::Hyperfine)
    } else if first("benchmarks").is_some_and(|b| b.get("stats").is_some()) {
        Some(Format::PytestBenchmark)
    } else if first("benchmarks").is_some_and(|b| b.get("real_time").is_some()) {
        Some(Format::GoogleBenchmark)
    } else if v.get("metrics").is_some_and(Value::is_object) {
        Some(Format::K6)
    } else if v.get("scenarios").is_some_and(Value::is_array)
        || v.get("summary")
            .is_some_and(|s| s.get("scenarios").is_some())
    {
        Some(Format::Lookout)
    } else {
        None
    }
}

fn num(v: &Value, path: &[&str]) -> Option<f64> {
    path.iter().try_fold(v, |v, k| v.get(*k))?.as_f64()
}

fn criterion_estimate(v: &Value, name: &str) -> Result<Measure, String> {
    let mean = num(v, &["mean", "point_estimate"])
        .ok_or("Criterion estimates: mean.point_estimate is missing")?;
    Ok(measure(name, "ns", true, mean))
}

/// `group/function/parameter`: the directories between the Criterion root and `new/`.
fn criterion_name(bench_dir: &Path, root: Option<&Path>) -> String {
    // benchmark.json, beside estimates.json, holds the id Criterion printed.
    if let Some(id) = std::fs::read_to_string(bench_dir.join("benchmark.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|b| b.get("full_id").and_then(Value::as_str).map(str::to_string))
    {
        return id;
    }
    let dir = if bench_dir.file_name().is_some_and(|n| n == "new") {
        bench_dir.parent().unwrap_or(bench_dir)
    } else {
        bench_dir
    };
    let parts: Vec<String> = match root.and_then(|r| dir.strip_prefix(r).ok()) {
        Some(rel) => rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect(),
        // A lone file: the directories above it up to Criterion's own (`target/criterion`).
        None => {
            let mut up: Vec<String> = dir
                .components()
                .rev()
                .filter_map(|c| match c {
                    std::path::Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
                    _ => None,
                })
                .take_while(|n| n != "criterion" && n != "target")
                .take(3)
                .collect();
            up.reverse();
            up
        }
    };
    parts.join("/")
}

fn criterion_dir(root: &Path) -> Result<Imported, String> {
    let mut files: Vec<PathBuf> = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                // `report/` holds HTML, `base/` and `change/` the previous run: only `new/` counts.
                let name = e.file_name();
                if name != "report" && name != "base" && name != "change" {
                    todo.push(p);
                }
            } else if p.file_name().is_some_and(|n| n == "estimates.json")
                && p.parent()
                    .and_then(Path::file_name)
                    .is_some_and(|n| n == "new")
            {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut measures = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", f.display()))?;
        let dir = f.parent().unwrap_or(root);
        let name = criterion_name(dir, Some(root));
        measures.push(criterion_estimate(&v, &name).map_err(|e| format!("{}: {e}", f.display()))?);
    }
    if measures.is_empty() {
        return Err(format!(
            "{}: no Criterion results (*/new/estimates.json)",
            root.display()
        ));
    }
    Ok(Imported {
        format: Format::Criterion,
        measures,
        commit: None,
    })
}

fn list<'a>(v: &'a Value, key: &str, format: &str) -> Result<&'a Vec<Value>, String> {
    v.get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| format!("{format}: \"{key}\" must be a list"))
}

fn hyperfine(v: &Value) -> Result<Vec<Measure>, String> {
    list(v, "results", "hyperfine")?
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let name = r
                .get("command")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("hyperfine: results[{i}].command is missing"))?;
            let mean = num(r, &["mean"])
                .ok_or_else(|| format!("hyperfine: results[{i}].mean is missing"))?;
            Ok(measure(name, "s", true, mean))
        })
        .collect()
}

fn pytest(v: &Value) -> Result<(Vec<Measure>, Option<String>), String> {
    let measures = list(v, "benchmarks", "pytest-benchmark")?
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let name = b
                .get("fullname")
                .or_else(|| b.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| format!("pytest-benchmark: benchmarks[{i}].name is missing"))?;
            let mean = num(b, &["stats", "mean"]).ok_or_else(|| {
                format!("pytest-benchmark: benchmarks[{i}].stats.mean is missing")
            })?;
            Ok(measure(name, "s", true, mean))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let commit = v
        .get("commit_info")
        .and_then(|c| c.get("id"))
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok((measures, commit))
}

fn google(v: &Value) -> Result<Vec<Measure>, String> {
    let benches = list(v, "benchmarks", "Google Benchmark")?;
    let ok = |b: &&Value| {
        !b.get("error_occurred")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    let is_mean = |b: &&Value| {
        b.get("run_type").and_then(Value::as_str) == Some("aggregate")
            && b.get("aggregate_name").and_then(Value::as_str) == Some("mean")
    };
    let aggregated = benches.iter().filter(ok).any(|b| is_mean(&b));
    benches
        .iter()
        .filter(ok)
        .filter(|b| {
            if aggregated {
                is_mean(b)
            } else {
                b.get("run_type").and_then(Value::as_str) != Some("aggregate")
            }
        })
        .enumerate()
        .map(|(i, b)| {
            let name = b
                .get("run_name")
                .or_else(|| b.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| format!("Google Benchmark: benchmarks[{i}].name is missing"))?;
            let t = num(b, &["real_time"])
                .ok_or_else(|| format!("Google Benchmark: {name}: real_time is missing"))?;
            let unit = b.get("time_unit").and_then(Value::as_str).unwrap_or("ns");
            Ok(measure(name, unit, true, t))
        })
        .collect()
}

/// k6's `--summary-export`: whole-run figures, and the same per scenario where the export has
/// `{scenario:NAME}` sub-metrics.
fn k6(v: &Value) -> Result<Vec<Measure>, String> {
    let metrics = v
        .get("metrics")
        .and_then(Value::as_object)
        .ok_or("k6: \"metrics\" must be an object")?;
    let mut out = Vec::new();
    for (key, m) in metrics {
        let (metric, tags) = match key.split_once('{') {
            None => (key.as_str(), BTreeMap::new()),
            Some((metric, rest)) => match rest.strip_suffix('}').and_then(|t| t.split_once(':')) {
                Some(("scenario", s)) => (metric, [("scenario".to_string(), s.to_string())].into()),
                _ => continue,
            },
        };
        let figures: &[(&str, &str, &str, bool)] = match metric {
            "http_req_duration" => &[
                ("p(95)", "http_req_duration.p95", "ms", true),
                ("avg", "http_req_duration.avg", "ms", true),
            ],
            "http_reqs" => &[("rate", "http_reqs.rate", "req/s", false)],
            "http_req_failed" => &[("value", "http_req_failed.rate", "ratio", true)],
            "iteration_duration" => &[("p(95)", "iteration_duration.p95", "ms", true)],
            _ => &[],
        };
        for (field, name, unit, lower) in figures {
            if let Some(x) = num(m, &[field]) {
                let mut me = measure(*name, unit, *lower, x);
                me.tags.clone_from(&tags);
                out.push(me);
            }
        }
    }
    Ok(out)
}

/// A Lookout load summary's key figures per scenario: the series every reported run feeds.
pub fn lookout_summary(test: Option<&str>, s: &Summary) -> Vec<Measure> {
    let mut out = Vec::new();
    for sc in &s.scenarios {
        let mut tags: BTreeMap<String, String> = [("scenario".to_string(), sc.name.clone())].into();
        if let Some(t) = test {
            tags.insert("test".into(), t.to_string());
        }
        for (name, unit, lower, value) in [
            ("load.p95_ms", "ms", true, sc.p95_ms),
            ("load.rps", "req/s", false, sc.rps),
            ("load.error_rate", "ratio", true, sc.error_rate),
        ] {
            let mut m = measure(name, unit, lower, value);
            m.tags.clone_from(&tags);
            out.push(m);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_format() {
        let cases = [
            (
                r#"{"mean":{"point_estimate":12.5}}"#,
                Format::Criterion,
                12.5,
            ),
            (
                r#"{"results":[{"command":"sleep 0.1","mean":0.105}]}"#,
                Format::Hyperfine,
                0.105,
            ),
            (
                r#"{"benchmarks":[{"name":"test_a","fullname":"t.py::test_a","stats":{"mean":0.002}}],"commit_info":{"id":"abc"}}"#,
                Format::PytestBenchmark,
                0.002,
            ),
            (
                r#"{"context":{},"benchmarks":[{"name":"BM_x","run_type":"iteration","real_time":7.0,"time_unit":"us"}]}"#,
                Format::GoogleBenchmark,
                7.0,
            ),
            (
                r#"{"metrics":{"http_req_duration":{"avg":10,"p(95)":20},"vus":{"value":1}}}"#,
                Format::K6,
                20.0, // p95 first
            ),
        ];
        for (text, format, first) in cases {
            let got = import_json(text, None).unwrap();
            assert_eq!(got.format, format);
            assert_eq!(got.measures[0].value, first, "{format:?}");
        }
        assert!(import_json("{}", None)
            .unwrap_err()
            .contains("not a format"));
    }

    #[test]
    fn a_lone_criterion_file_is_named_by_its_directories() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir
            .path()
            .join("target/criterion/fib/20/new/estimates.json");
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, r#"{"mean":{"point_estimate":5.0}}"#).unwrap();
        let got = import_path(&f, None).unwrap();
        assert_eq!(got.measures[0].name, "fib/20");
        let all = import_path(&dir.path().join("target/criterion"), None).unwrap();
        assert_eq!(all.measures[0].name, "fib/20");
    }

    #[test]
    fn google_prefers_the_mean_aggregate() {
        let text = r#"{"benchmarks":[
            {"name":"BM_x/repeats:3","run_name":"BM_x","run_type":"iteration","real_time":9.0,"time_unit":"ns"},
            {"name":"BM_x/repeats:3_mean","run_name":"BM_x","run_type":"aggregate","aggregate_name":"mean","real_time":8.0,"time_unit":"ns"},
            {"name":"BM_x/repeats:3_stddev","run_name":"BM_x","run_type":"aggregate","aggregate_name":"stddev","real_time":1.0,"time_unit":"ns"}]}"#;
        let got = import_json(text, None).unwrap();
        assert_eq!(got.measures.len(), 1);
        assert_eq!(
            (got.measures[0].name.as_str(), got.measures[0].value),
            ("BM_x", 8.0)
        );
    }

    #[test]
    fn k6_splits_scenarios_and_ignores_other_tags() {
        let text = r#"{"metrics":{"http_reqs":{"count":10,"rate":5},
            "http_reqs{scenario:api}":{"count":4,"rate":2},
            "http_reqs{status:200}":{"count":4,"rate":2}}}"#;
        let got = import_json(text, Some(Format::K6)).unwrap();
        assert_eq!(got.measures.len(), 2);
        assert!(!got.measures[0].lower_is_better);
        assert_eq!(
            got.measures[1].tags.get("scenario").map(String::as_str),
            Some("api")
        );
    }
}
