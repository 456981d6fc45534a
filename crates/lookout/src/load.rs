//! `lookout load run|quick`: builds the plan (from a file, or from `quick`'s flags), runs it on a
//! runtime sized to the machine, prints k6's summary and writes the requested exports.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use tokio::sync::watch;

use crate::cli::{LoadCommand, LoadOutputArgs};
use lookout_load::spec::{self, Format, Plan};
use lookout_load::summary;

/// k6's exit status for an invalid configuration.
const INVALID_CONFIG: u8 = 104;

/// Runs a `lookout load` verb and returns the process exit status.
pub fn main(cmd: LoadCommand) -> Result<u8> {
    let (plan, output, name, file_text) = match cmd {
        LoadCommand::Run { file, output } => {
            let plan = match spec::load(&file) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(INVALID_CONFIG);
                }
            };
            let name = output.name.clone().unwrap_or_else(|| {
                file.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "load".into())
            });
            let text = std::fs::read_to_string(&file).ok();
            (plan, output, name, text)
        }
        LoadCommand::Quick {
            url,
            connections,
            duration,
            requests,
            rate,
            method,
            headers,
            body,
            timeout,
            insecure,
            thresholds,
            output,
        } => {
            let plan = match quick_plan(
                &url,
                connections,
                &duration,
                requests,
                rate,
                &method,
                &headers,
                body,
                &timeout,
                insecure,
                &thresholds,
            ) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(INVALID_CONFIG);
                }
            };
            let name = output.name.clone().unwrap_or_else(|| url.clone());
            (plan, output, name, None)
        }
    };
    let out_json = match output.out.as_deref() {
        None => None,
        Some(o) => match o.strip_prefix("json=") {
            Some(path) => Some(path.into()),
            None => bail!("--out {o}: only json=FILE is supported"),
        },
    };
    let threads = output
        .threads
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        })
        .max(1);
    // The control runtime schedules and reports; VUs run on `threads` worker runtimes.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let (abort_tx, _) = watch::channel(false);
        let ctrl_c = {
            let tx = abort_tx.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    eprintln!("\ninterrupted: stopping and summarising");
                    let _ = tx.send(true);
                }
            })
        };
        let opts = lookout_load::RunOptions {
            quiet: output.quiet,
            out_json,
            workers: threads,
        };
        let result = lookout_load::run(plan, &opts, abort_tx).await;
        ctrl_c.abort();
        let summary = result.map_err(anyhow::Error::msg)?;
        print!("{}", summary::text(&summary));
        if let Some(path) = &output.summary_export {
            write_export(path, &summary)?;
        }
        let code = summary.exit_code() as u8;
        // A report that did not arrive must not hide a failed threshold (99), nor pass silently.
        if let Err(e) = report(&output, &name, file_text.as_deref(), &summary).await {
            eprintln!("error: {e:#}");
            return Ok(code.max(1));
        }
        Ok(code)
    })
}

fn write_export(path: &Path, s: &lookout_load::Summary) -> Result<()> {
    let text = serde_json::to_string_pretty(&summary::k6_export(s))?;
    std::fs::write(path, text).with_context(|| format!("--summary-export {}", path.display()))
}

async fn report(
    output: &LoadOutputArgs,
    name: &str,
    file: Option<&str>,
    s: &lookout_load::Summary,
) -> Result<()> {
    let (Some(server), Some(token)) = (&output.report_to, &output.token) else {
        return Ok(());
    };
    let body = lookout_load::report::RunReport {
        name,
        project: output.project.as_deref(),
        commit: output.commit.as_deref(),
        scenario_file: file,
        summary: s,
    };
    let url = lookout_load::report::send(server, token, &body)
        .await
        .map_err(anyhow::Error::msg)?;
    eprintln!("reported: {url}");
    Ok(())
}

/// The plan `quick` runs: one scenario, one request.
#[allow(clippy::too_many_arguments)]
fn quick_plan(
    url: &str,
    connections: u64,
    duration: &str,
    requests: Option<u64>,
    rate: Option<f64>,
    method: &str,
    headers: &[String],
    body: Option<String>,
    timeout: &str,
    insecure: bool,
    thresholds: &[String],
) -> Result<Plan, String> {
    let mut hdrs = serde_json::Map::new();
    for h in headers {
        let (k, v) = h
            .split_once(':')
            .ok_or_else(|| format!("--header {h:?}: write `Name: value`"))?;
        hdrs.insert(k.trim().to_string(), v.trim().into());
    }
    let mut scenario = serde_json::json!({
        "steps": [{"request": {"name": url, "method": method, "url": url, "headers": hdrs, "body": body, "timeout": timeout}}],
    });
    let s = scenario.as_object_mut().expect("an object");
    match (requests, rate) {
        (Some(n), _) => {
            s.insert("executor".into(), "shared-iterations".into());
            s.insert("vus".into(), connections.min(n).into());
            s.insert("iterations".into(), n.into());
        }
        (None, Some(r)) => {
            s.insert("executor".into(), "constant-arrival-rate".into());
            s.insert("rate".into(), r.into());
            s.insert("duration".into(), duration.into());
            s.insert("preAllocatedVUs".into(), connections.into());
        }
        (None, None) => {
            s.insert("executor".into(), "constant-vus".into());
            s.insert("vus".into(), connections.into());
            s.insert("duration".into(), duration.into());
        }
    }
    if body.is_none() {
        s["steps"][0]["request"]
            .as_object_mut()
            .expect("an object")
            .remove("body");
    }
    let mut ths = serde_json::Map::new();
    for t in thresholds {
        let (metric, expr) = t.split_once('=').ok_or_else(|| {
            format!("--threshold {t:?}: write METRIC=EXPR, e.g. http_req_duration=p(95)<500")
        })?;
        ths.entry(metric.trim().to_string())
            .or_insert_with(|| serde_json::Value::Array(vec![]))
            .as_array_mut()
            .expect("an array")
            .push(expr.trim().into());
    }
    let file = serde_json::json!({
        "scenarios": {"quick": scenario},
        "thresholds": ths,
        "insecureSkipTLSVerify": insecure,
    });
    // Through the same validation as a file, so flags get the same error messages.
    let text = serde_json::to_string(&file).map_err(|e| e.to_string())?;
    let env: HashMap<String, String> = std::env::vars().collect();
    spec::parse(&text, Format::Yaml, Path::new("."), &env).map_err(|e| {
        e.replace("scenarios.quick.", "")
            .replace("steps[0].request.", "")
    })
}
