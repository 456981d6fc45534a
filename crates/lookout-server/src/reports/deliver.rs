//! Sends stored reports through notification channels: email as HTML with a plain-text part,
//! webhooks as JSON (signed like incident webhooks), Slack and Mattermost as a summary with
//! links, Discord and ntfy as the same summary. PagerDuty channels take incidents, not reports.
//!
//! Deliveries are claimed with a lease, so a replica that dies mid-send leaves the delivery to
//! another, and retried with backoff (1, 2, 4, 8 minutes) before being given up on.

use serde_json::json;

use super::model::Report;
use super::render;
use crate::alerting::deliver::{channel_field, check, post_signed};
use crate::alerting::{deliver_email, Alerting};
use lookout_outbound::HttpClient;
use lookout_store::alerting as astore;
use lookout_store::reports::{self as rstore, Delivery};
use lookout_store::Result;

/// A claimed delivery is ours for this long.
const LEASE_MS: i64 = 120_000;
/// Attempts before giving up.
const MAX_ATTEMPTS: i64 = 5;
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Sends every due delivery; returns how many were sent.
pub async fn send_due(a: &Alerting, now: i64) -> Result<usize> {
    let due = rstore::claim_due(a.store(), now, LEASE_MS, 20).await?;
    if due.is_empty() {
        return Ok(0);
    }
    // Reports are bigger than pages, so they get longer; the same outbound policy applies.
    let http = HttpClient::new(
        a.outbound().clone(),
        SEND_TIMEOUT,
        crate::alerting::deliver::USER_AGENT,
    );
    let mut sent = 0;
    for d in due {
        let outcome = send(a, &http, &d).await;
        let now = lookout_core::time::now_ms();
        match &outcome {
            Ok(()) => {
                sent += 1;
                tracing::info!(
                    report = d.report_id,
                    channel = d.channel_id,
                    "Report delivered."
                );
                rstore::finish_delivery(a.store(), &d, Ok(()), now).await?;
            }
            Err(e) => {
                let attempts = d.attempts + 1;
                let retry = (attempts < MAX_ATTEMPTS).then(|| now + 60_000 * (1 << (attempts - 1)));
                tracing::warn!(report = d.report_id, channel = d.channel_id, attempts, error = %e,
                    "Report delivery failed.");
                rstore::finish_delivery(a.store(), &d, Err((e.as_str(), retry)), now).await?;
            }
        }
    }
    Ok(sent)
}

async fn send(a: &Alerting, http: &HttpClient, d: &Delivery) -> std::result::Result<(), String> {
    let (row, body) = rstore::get(a.store(), d.report_id)
        .await
        .map_err(|e| format!("report {}: {e}", d.report_id))?;
    let report: Report =
        serde_json::from_value(body.clone()).map_err(|e| format!("report {}: {e}", row.id))?;
    let channel = astore::channel_get(a.store(), d.channel_id)
        .await
        .map_err(|e| format!("channel {}: {e}", d.channel_id))?;
    let open = |field: &str| channel_field(a, &channel, field);
    let url = open("url")?.unwrap_or_default();
    let link = format!("{}/reports/{}", report.base_url, row.id);
    let key = format!("report-{}-{}", row.id, d.channel_id);
    match channel.kind.as_str() {
        "email" => {
            let html = render::html(&report, &report.base_url, None);
            let text = format!("{}\n{link}\n", render::text(&report));
            deliver_email::send_mail(a, &channel, &render::headline(&report), text, html).await
        }
        "webhook" => {
            let body = serde_json::to_vec(&json!({
                "event": "report", "report_id": row.id, "url": link,
                "report": body, "idempotency_key": key,
            }))
            .map_err(|e| e.to_string())?;
            post_signed(a, http, &channel, &url, &key, body).await
        }
        "slack" => {
            let text = render::summary(&report, |label, u| format!("<{u}|{label}>"));
            check(http.post(&url)?.json(&json!({ "text": text })).send().await).await
        }
        "mattermost" | "discord" => {
            let text = render::summary(&report, |label, u| format!("[{label}]({u})"));
            let body = if channel.kind == "discord" {
                // Discord's content limit.
                json!({ "content": text.chars().take(2000).collect::<String>() })
            } else {
                json!({ "text": text })
            };
            check(http.post(&url)?.json(&body).send().await).await
        }
        "ntfy" => {
            let mut req = http
                .post(&url)?
                .header("Title", render::headline(&report))
                .header("Tags", "bar_chart")
                .header("Click", &link);
            if let Some(token) = open("token")? {
                req = req.bearer_auth(token);
            }
            check(
                req.body(render::summary(&report, |label, u| format!("{label}: {u}")))
                    .send()
                    .await,
            )
            .await
        }
        other => Err(format!("{other} channels take incidents, not reports")),
    }
}
