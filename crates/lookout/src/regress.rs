//! `lookout regress`: push benchmark figures to a server, check a series for a fresh regression
//! (for CI), and find the change points of a series file without a server.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use crate::cli::{DetectArgs, PointArgs, RegressCommand, ServerArgs};
use lookout_regress::import::{self, Format, Imported, Measure};
use lookout_regress::{detect, format_value, input, Options};

/// Runs a `lookout regress` verb; the process exit status.
pub fn main(cmd: RegressCommand) -> u8 {
    let (result, error_code) = match cmd {
        RegressCommand::Analyze {
            file,
            column,
            higher_is_better,
            detect,
            json,
        } => (
            analyze(&file, column.as_deref(), !higher_is_better, &detect, json).map(|()| 0),
            1,
        ),
        RegressCommand::Push {
            series,
            value,
            unit,
            higher_is_better,
            point,
            server,
        } => (
            block_on(push(
                series.as_deref(),
                value,
                unit,
                !higher_is_better,
                &point,
                &server,
            )),
            1,
        ),
        // 1 means "regressed": a check that could not run says so with 2.
        RegressCommand::Check {
            series,
            point,
            server,
            json,
        } => (block_on(check(&series, &point, &server, json)), 2),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        error_code
    })
}

fn block_on(f: impl std::future::Future<Output = Result<u8>>) -> Result<u8> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(f)
}

fn analyze(
    file: &Path,
    column: Option<&str>,
    lower_is_better: bool,
    d: &DetectArgs,
    as_json: bool,
) -> Result<()> {
    if !(d.p_value > 0.0 && d.p_value < 1.0) {
        bail!("--p-value must be between 0 and 1");
    }
    let text = if file == Path::new("-") {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        s
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
    };
    let points = input::parse(&text, column).map_err(|e| anyhow!("{}: {e}", file.display()))?;
    let values: Vec<f64> = points.iter().map(|p| p.value).collect();
    let opt = Options {
        max_p_value: d.p_value,
        min_magnitude: d.min_magnitude,
        window: d.window,
        ..Options::default()
    };
    let cps = detect(&values, &opt);
    let direction = |c: &lookout_regress::ChangePoint| {
        if c.is_regression(lower_is_better) {
            "regression"
        } else {
            "improvement"
        }
    };
    if as_json {
        let out: Vec<Value> = cps
            .iter()
            .map(|c| {
                json!({"index": c.index, "before": c.before, "after": c.after,
                       "change": c.after - c.before,
                       "change_percent": c.change_percent, "p_value": c.p_value,
                       "direction": direction(c), "mean_before": c.mean_before,
                       "mean_after": c.mean_after, "commit": points[c.index].commit,
                       "at": points[c.index].at})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "{} points, {} change point{} (p <= {}, {} is better)",
        values.len(),
        cps.len(),
        if cps.len() == 1 { "" } else { "s" },
        d.p_value,
        if lower_is_better { "lower" } else { "higher" }
    );
    if !cps.is_empty() {
        println!(
            "\n  {:>6}  {:<12}  {:>12}  {:>12}  {:>9}  {:>9}  direction",
            "index", "commit", "before", "after", "change", "p-value"
        );
    }
    for c in &cps {
        let commit: String = points[c.index]
            .commit
            .as_deref()
            .unwrap_or("-")
            .chars()
            .take(12)
            .collect();
        println!(
            "  {:>6}  {:<12}  {:>12}  {:>12}  {:>9}  {:>9.1e}  {}",
            c.index,
            commit,
            format_value(c.before),
            format_value(c.after),
            percent(c.change_percent),
            c.p_value,
            direction(c)
        );
    }
    Ok(())
}

fn percent(p: Option<f64>) -> String {
    p.map_or_else(|| "n/a".into(), |p| format!("{p:+.1}%"))
}

/// The series an imported measure goes to: the measure's own name, `--series` when the file held
/// one result, or `--series/<measure>` when it held several.
fn series_name(prefix: Option<&str>, measure: &str, results: usize) -> String {
    match prefix {
        None => measure.to_string(),
        Some(p) if results == 1 => p.to_string(),
        Some(p) => format!("{p}/{measure}"),
    }
}

fn parse_tags(tags: &[String]) -> Result<BTreeMap<String, String>> {
    tags.iter()
        .map(|t| {
            t.split_once('=')
                .filter(|(k, _)| !k.trim().is_empty())
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| anyhow!("--tag {t:?}: expected KEY=VALUE"))
        })
        .collect()
}

/// The server's API, for `push` and `check`.
struct Client(crate::remote::Client);

impl Client {
    fn new(s: &ServerArgs) -> Result<Client> {
        crate::remote::Client::new(&s.server, &s.token).map(Client)
    }

    async fn push(&self, name: &str, body: &Value) -> Result<Value> {
        self.0
            .post(&["api", "v1", "series", name, "points"], body)
            .await
            .with_context(|| format!("pushing to series {name:?}"))
    }

    async fn get(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Value> {
        self.0.get(segments, query).await
    }
}

fn read_file(point: &PointArgs) -> Result<Option<Imported>> {
    let Some(path) = &point.file else {
        return Ok(None);
    };
    let format = point.format.as_deref().and_then(Format::parse);
    import::import_path(path, format)
        .map(Some)
        .map_err(|e| anyhow!(e))
}

/// Pushes imported measures (`source`: `push` or the importer's format); returns each series'
/// state as the server answered.
async fn push_measures(
    client: &Client,
    prefix: Option<&str>,
    imported: &Imported,
    source: &str,
    point: &PointArgs,
    server: &ServerArgs,
) -> Result<Vec<Value>> {
    let extra = parse_tags(&point.tags)?;
    let commit = point.commit.clone().or_else(|| imported.commit.clone());
    let mut out = Vec::new();
    for m in &imported.measures {
        let name = series_name(prefix, &m.name, imported.measures.len());
        let body = push_body(m, &extra, commit.as_deref(), server, source);
        out.push(client.push(&name, &body).await?);
    }
    Ok(out)
}

fn push_body(
    m: &Measure,
    extra: &BTreeMap<String, String>,
    commit: Option<&str>,
    server: &ServerArgs,
    source: &str,
) -> Value {
    let mut tags = m.tags.clone();
    tags.extend(extra.clone());
    json!({
        "project": server.project,
        "tags": tags,
        "unit": m.unit,
        "direction": if m.lower_is_better { "lower_is_better" } else { "higher_is_better" },
        "value": m.value,
        "commit": commit,
        "source": source,
    })
}

async fn push(
    series: Option<&str>,
    value: Option<f64>,
    unit: Option<String>,
    lower_is_better: bool,
    point: &PointArgs,
    server: &ServerArgs,
) -> Result<u8> {
    let client = Client::new(server)?;
    let imported = match (value, read_file(point)?) {
        (Some(v), None) => {
            let Some(name) = series else {
                bail!("--value needs --series");
            };
            Imported {
                format: Format::Lookout,
                measures: vec![Measure {
                    name: name.to_string(),
                    tags: BTreeMap::new(),
                    unit: unit.unwrap_or_default(),
                    lower_is_better,
                    value: v,
                }],
                commit: None,
            }
        }
        (None, Some(imported)) => imported,
        _ => bail!("give --value or --file"),
    };
    let (prefix, source) = match value {
        Some(_) => (None, "push"),
        None => (series, imported.format.name()),
    };
    let states = push_measures(&client, prefix, &imported, source, point, server).await?;
    for s in &states {
        println!("{}", state_line(s));
    }
    Ok(0)
}

/// One line per series: its name and tags, its length, and its newest change.
fn state_line(state: &Value) -> String {
    let s = &state["series"];
    let head = series_label(s);
    let n = s["points"].as_i64().unwrap_or(0);
    match state["regression"].as_object() {
        Some(_) => format!(
            "REGRESSION  {head}: {}",
            change_text(&state["regression"], s)
        ),
        None => {
            let cps = state["change_points"].as_array().map_or(0, Vec::len);
            let plural = |k: usize| if k == 1 { "" } else { "s" };
            format!(
                "ok          {head}: no regression ({n} point{}, {cps} change point{})",
                plural(n as usize),
                plural(cps)
            )
        }
    }
}

fn series_label(s: &Value) -> String {
    let tags = s["tags"].as_object();
    lookout_regress::series_label(
        s["name"].as_str().unwrap_or_default(),
        tags.into_iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default())),
    )
}

fn change_text(c: &Value, s: &Value) -> String {
    let unit = s["unit"].as_str().unwrap_or_default();
    let num = |k: &str| c[k].as_f64().map_or("?".into(), format_value);
    format!(
        "{} ({}{} {unit}: {} {unit} -> {} {unit}, medians), p = {:.1e}, from point {} of {}{}, {}",
        percent(c["change_percent"].as_f64()),
        if c["change"].as_f64().unwrap_or(0.0) >= 0.0 {
            "+"
        } else {
            ""
        },
        num("change"),
        num("before"),
        num("after"),
        c["p_value"].as_f64().unwrap_or(1.0),
        c["index"].as_i64().unwrap_or(0) + 1,
        s["points"].as_i64().unwrap_or(0),
        c["commit"]
            .as_str()
            .map(|c| format!(", commit {c}"))
            .unwrap_or_default(),
        c["at"].as_str().unwrap_or_default(),
    )
}

async fn check(series: &str, point: &PointArgs, server: &ServerArgs, as_json: bool) -> Result<u8> {
    let client = Client::new(server)?;
    let states = match read_file(point)? {
        Some(imported) => {
            let source = imported.format.name();
            push_measures(&client, Some(series), &imported, source, point, server).await?
        }
        None => {
            let wanted = parse_tags(&point.tags)?;
            let mut query = vec![("name", series)];
            if let Some(p) = &server.project {
                query.push(("project", p));
            }
            let list = client.get(&["api", "v1", "series"], &query).await?;
            let mut states = Vec::new();
            for s in list["items"].as_array().into_iter().flatten() {
                let matches = wanted
                    .iter()
                    .all(|(k, v)| s["tags"][k].as_str() == Some(v.as_str()));
                if matches {
                    let id = s["id"].as_i64().unwrap_or_default().to_string();
                    states.push(client.get(&["api", "v1", "series", &id], &[]).await?);
                }
            }
            if states.is_empty() {
                bail!(
                    "no series named {series:?} with those tags on {}",
                    server.server
                );
            }
            states
        }
    };
    let regressed = states.iter().any(|s| s["regression"].is_object());
    if as_json {
        let out: Vec<Value> = states
            .iter()
            .map(|s| {
                json!({"series": s["series"], "regression": s["regression"],
                            "change_points": s["change_points"]})
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"regressed": regressed, "series": out}))?
        );
    } else {
        for s in &states {
            println!("{}", state_line(s));
        }
    }
    Ok(u8::from(regressed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imported_results_are_named_under_the_series() {
        assert_eq!(series_name(None, "fib/20", 3), "fib/20");
        assert_eq!(series_name(Some("bench"), "fib/20", 1), "bench");
        assert_eq!(series_name(Some("bench"), "fib/20", 3), "bench/fib/20");
        assert!(parse_tags(&["=x".into()]).is_err());
        assert_eq!(
            parse_tags(&["branch=main".into()]).unwrap()["branch"],
            "main"
        );
    }
}
