//! `--report-to`: sends a finished run to a Lookout server (`POST /api/v1/load-runs`), which keeps
//! it, charts it and turns its key figures into baseline series points.

use serde::Serialize;

use crate::summary::Summary;

/// The body of `POST /api/v1/load-runs`.
#[derive(Debug, Serialize)]
pub struct RunReport<'a> {
    pub name: &'a str,
    /// Project id or slug; the server's first project when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<&'a str>,
    /// The scenario file as written, kept for re-runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scenario_file: Option<&'a str>,
    pub summary: &'a Summary,
}

/// Sends the report; returns the run's URL on the server.
pub async fn send(server: &str, token: &str, report: &RunReport<'_>) -> Result<String, String> {
    let url = format!("{}/api/v1/load-runs", server.trim_end_matches('/'));
    let resp = reqwest::Client::new()
        .post(&url)
        .bearer_auth(token)
        .json(report)
        .send()
        .await
        .map_err(|e| format!("--report-to {server}: {e}"))?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
    if !status.is_success() {
        let msg = body["error"]["message"]
            .as_str()
            .unwrap_or("no message")
            .to_string();
        return Err(format!("--report-to {server}: {status}: {msg}"));
    }
    let id = body["id"].as_i64().unwrap_or_default();
    Ok(format!("{}/load-tests/{id}", server.trim_end_matches('/')))
}
