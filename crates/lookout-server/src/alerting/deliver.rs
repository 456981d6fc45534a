//! The outbox worker and the channels it delivers to: generic webhook (HMAC-SHA256 signed),
//! Slack-compatible incoming webhooks (Slack, Mattermost), Discord, ntfy, PagerDuty Events API v2
//! and email over SMTP.
//!
//! Every message carries the title, severity, urgency, service, the incident's link, the signed
//! acknowledge and resolve links, and the runbook's link and summary. Messages are built when
//! sent, from the incident as it is then.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{links, Alerting};
use lookout_core::time::{iso, now_ms};
use lookout_outbound::HttpClient;
use lookout_store::alerting::outbox::{self, NotificationRow, MAX_ATTEMPTS};
use lookout_store::alerting::{self as astore, incidents};

/// How long a claimed notification is ours before another replica may retry it (by the
/// database's clock).
const LEASE_MS: i64 = 60_000;
/// A send starts only while this much of the lease is left after the send's own timeout, as
/// measured on this replica's monotonic clock from just before the claim: a replica that stalled
/// (paused, swapped out, its clock stepped) past its lease sends nothing another replica may
/// already have sent.
const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// Numbers this replica's claims: each claim's fencing token is the replica's name and this.
static CLAIMS: AtomicU64 = AtomicU64::new(0);
/// Longest wait between polls when nothing wakes the worker.
const POLL: Duration = Duration::from_secs(1);
/// Per-send timeout.
pub(crate) const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Who notifications say they come from.
pub(crate) const USER_AGENT: &str = concat!("Lookout/", env!("CARGO_PKG_VERSION"));

/// Everything a message says.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Message {
    /// `triggered`, `escalated`, `repeated`, `ack_timeout`, `acknowledged`, `resolved`.
    pub event: String,
    /// Incident id.
    pub incident_id: i64,
    /// Title.
    pub title: String,
    /// Current state.
    pub status: String,
    /// Severity.
    pub severity: String,
    /// Urgency.
    pub urgency: String,
    /// Service.
    pub service: Option<String>,
    /// Source host or resource.
    pub source: Option<String>,
    /// Dedup key.
    pub dedup_key: String,
    /// The incident page.
    pub url: String,
    /// Signed one-click acknowledge link.
    pub acknowledge_url: String,
    /// Signed one-click resolve link.
    pub resolve_url: String,
    /// The runbook's page or external link.
    pub runbook_url: Option<String>,
    /// The runbook's first lines.
    pub runbook_summary: Option<String>,
    /// When the incident opened, RFC 3339.
    pub created_at: String,
}

impl Message {
    /// One line for chat: `[TRIGGERED] critical · api: title`.
    pub fn headline(&self) -> String {
        let service = self
            .service
            .as_deref()
            .map(|s| format!(" · {s}"))
            .unwrap_or_default();
        format!(
            "[{}] {}{service}: {}",
            self.event.to_uppercase().replace('_', " "),
            self.severity,
            self.title
        )
    }

    /// Several lines of Markdown (Slack, Mattermost, Discord, email).
    pub fn markdown(&self, link: impl Fn(&str, &str) -> String) -> String {
        let mut s = format!(
            "{}\n{} · {} urgency · incident #{}\n{} · {} · {}",
            self.headline(),
            self.status,
            self.urgency,
            self.incident_id,
            link("Open incident", &self.url),
            link("Acknowledge", &self.acknowledge_url),
            link("Resolve", &self.resolve_url),
        );
        if let Some(u) = &self.runbook_url {
            s.push_str(&format!("\nRunbook: {}", link("runbook", u)));
        }
        if let Some(sum) = &self.runbook_summary {
            s.push_str(&format!("\n> {sum}"));
        }
        s
    }
}

/// Runs the worker until `stop` resolves.
pub async fn run(a: Alerting, owner: String, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        let wait = match round(&a, &owner).await {
            Ok(0) => match outbox::next_due_in(a.store()).await {
                Ok(Some(ms)) => Duration::from_millis(u64::try_from(ms).unwrap_or(0))
                    .clamp(Duration::from_millis(10), POLL),
                _ => POLL,
            },
            // More may be waiting: go again at once, but let a shutdown in first.
            Ok(_) => Duration::ZERO,
            Err(e) => {
                tracing::warn!(error = %e, "Notification delivery failed; retrying.");
                POLL
            }
        };
        tokio::select! {
            biased;
            () = &mut stop => break,
            () = tokio::time::sleep(wait) => {}
            () = a.outbox_wake().notified() => {}
        }
    }
}

/// Claims and sends one batch concurrently; returns how many were handled.
async fn round(a: &Alerting, owner: &str) -> lookout_store::Result<usize> {
    let token = format!("{owner}#{}", CLAIMS.fetch_add(1, Ordering::Relaxed));
    // Taken before the claim: the lease ends no earlier, by any clock, than this plus its length.
    let lease_end = Instant::now() + Duration::from_millis(LEASE_MS.unsigned_abs());
    let claimed = outbox::claim(a.store(), &token, LEASE_MS, 50).await?;
    let n = claimed.len();
    let sends = claimed.into_iter().map(|row| async move {
        let result = send(a, &row, lease_end).await;
        (row, result)
    });
    let results = futures_util::future::join_all(sends).await;
    finish(a, owner, &token, &results).await?;
    Ok(n)
}

/// Records the outcomes of a round, each with a timeline entry, in one transaction (one commit
/// for the batch rather than one per page). A page whose lease was lost meanwhile is left alone.
async fn finish(
    a: &Alerting,
    owner: &str,
    token: &str,
    results: &[(NotificationRow, Outcome)],
) -> lookout_store::Result<()> {
    // The database's clock: sent and retry times compare with the other replicas' records.
    let now = lookout_store::cluster::db_now(a.store())
        .await
        .unwrap_or_else(|_| now_ms());
    let mut tx = a.store().begin_write().await?;
    let mut recorded = Vec::with_capacity(results.len());
    for (row, result) in results {
        let who = match row.user_id {
            Some(u) => format!(" to user {u}"),
            None => String::new(),
        };
        let ok = match result {
            Outcome::Lapsed => {
                tracing::warn!(replica = owner, notification = row.id, "Not sending: this replica's claim on the page lapsed; another replica sends it.");
                false
            }
            Outcome::Skipped(via, why) => {
                let ok = outbox::mark_skipped(&mut tx, row.id, token, why, now).await?;
                if ok {
                    incidents::log(
                        &mut tx,
                        row.incident_id,
                        now,
                        "notify_skipped",
                        "system",
                        &format!("Not notified{who} via {via} ({}): {why}", row.event),
                        Some(
                            &json!({"channel_id": row.channel_id, "user_id": row.user_id,
                                     "notification_id": row.id}),
                        ),
                    )
                    .await?;
                }
                ok
            }
            Outcome::Sent(via) => {
                let ok = outbox::mark_sent(&mut tx, row.id, token, now).await?;
                if ok {
                    incidents::log(
                        &mut tx,
                        row.incident_id,
                        now,
                        "notified",
                        "system",
                        &format!("Notified{who} via {via} ({})", row.event),
                        Some(
                            &json!({"channel_id": row.channel_id, "user_id": row.user_id,
                                     "notification_id": row.id}),
                        ),
                    )
                    .await?;
                }
                ok
            }
            Outcome::Failed(e) => {
                let attempts = row.attempts + 1;
                let retry =
                    (attempts < MAX_ATTEMPTS).then(|| 1000 * (1i64 << attempts.min(10)).min(600));
                let ok = outbox::mark_failed(&mut tx, row.id, token, e, retry).await?;
                if ok {
                    let msg = match retry {
                        Some(t) => {
                            format!(
                                "Notification{who} failed ({e}); retrying at {}",
                                iso(now + t)
                            )
                        }
                        None => format!(
                            "Notification{who} failed ({e}); gave up after {attempts} tries"
                        ),
                    };
                    incidents::log(
                        &mut tx,
                        row.incident_id,
                        now,
                        "notify_failed",
                        "system",
                        &msg,
                        None,
                    )
                    .await?;
                }
                ok
            }
        };
        if ok {
            recorded.push((row, result.label()));
        }
    }
    tx.commit().await?;
    for (row, result) in recorded {
        let created_at = row.created_at;
        // One line per page, naming the replica that sent it: with several replicas, the one
        // place to find who delivered (or skipped, or retries) a page.
        tracing::info!(
            replica = owner,
            incident = row.incident_id,
            notification = row.id,
            channel = row.channel_id,
            user = row.user_id,
            event = %row.event,
            result,
            idempotency_key = %row.idempotency_key,
            "Notification recorded."
        );
        metrics::counter!("lookout_alerting_notifications_total", "result" => result).increment(1);
        if result == "sent" {
            metrics::histogram!("lookout_alerting_notification_delay_seconds")
                .record((now - created_at) as f64 / 1000.0);
        }
    }
    Ok(())
}

/// Builds the message for a notification.
pub async fn message(a: &Alerting, row: &NotificationRow) -> lookout_store::Result<Message> {
    let inc = incidents::get(a.store(), row.incident_id).await?;
    let (runbook_url, runbook_summary) =
        match inc.runbook_id {
            Some(id) => match astore::runbook_get(a.store(), id, inc.runbook_version).await {
                Ok(r) => (
                    Some(r.url.clone().unwrap_or_else(|| {
                        format!("{}/incidents/{}#runbook", a.public_url(), inc.id)
                    })),
                    summary(&r.body),
                ),
                Err(_) => (None, None),
            },
            None => (None, None),
        };
    Ok(Message {
        event: row.event.clone(),
        incident_id: inc.id,
        title: inc.title.clone(),
        status: inc.status.clone(),
        severity: inc.severity.clone(),
        urgency: inc.urgency.clone(),
        service: inc.service.clone(),
        source: inc.source.clone(),
        dedup_key: inc.dedup_key.clone(),
        url: format!("{}/incidents/{}", a.public_url(), inc.id),
        acknowledge_url: links::signed(a, inc.id, "acknowledge"),
        resolve_url: links::signed(a, inc.id, "resolve"),
        runbook_url,
        runbook_summary,
        created_at: iso(inc.created_at),
    })
}

/// The first paragraph of a Markdown runbook, without its heading, cut at 280 characters.
fn summary(body: &str) -> Option<String> {
    let para: Vec<&str> = body
        .lines()
        .map(str::trim)
        .skip_while(|l| l.is_empty() || l.starts_with('#'))
        .take_while(|l| !l.is_empty())
        .collect();
    let s = para.join(" ");
    if s.is_empty() {
        return None;
    }
    Some(match s.char_indices().nth(280) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    })
}

/// What became of one claimed notification.
#[derive(Debug)]
enum Outcome {
    /// Delivered, via the channel named.
    Sent(String),
    /// Not sent, via the channel named, for the reason given (the channel is disabled, or a
    /// notification rule's later step found the incident handled); not retried.
    Skipped(String, &'static str),
    /// Not delivered, and why; retried with backoff.
    Failed(String),
    /// Not sent because too little of the claim's lease was left: nothing is recorded, and the
    /// page is claimed again (by any replica) once the lease ends.
    Lapsed,
}

impl Outcome {
    /// The `result` label of `lookout_alerting_notifications_total`.
    fn label(&self) -> &'static str {
        match self {
            Outcome::Sent(_) => "sent",
            Outcome::Skipped(..) => "skipped",
            Outcome::Failed(_) => "failed",
            Outcome::Lapsed => "lapsed",
        }
    }
}

/// Why a page to a disabled channel was not sent (the notification's `last_error`).
pub const SKIPPED: &str = "skipped: channel disabled";

/// Why a notification rule's later step was not sent: the incident was acknowledged, resolved,
/// reassigned or snoozed before its delay ran out (the step is skipped in that change's
/// transaction; the send-time check repeats it in case a page slipped through).
pub const HANDLED: &str =
    "skipped: acknowledged, resolved, reassigned or snoozed before this notification rule's delay";

/// Sends one notification, unless its channel is disabled. The channel is read when the page
/// is sent, not when it was queued, so switching a channel off also holds back what is queued.
/// Nothing is sent unless the send can end [`LEASE_MARGIN`] before `lease_end`.
async fn send(a: &Alerting, row: &NotificationRow, lease_end: Instant) -> Outcome {
    let channel = match astore::channel_get(a.store(), row.channel_id).await {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(format!("channel {}: {e}", row.channel_id)),
    };
    let via = format!("{} \"{}\"", channel.kind, channel.name);
    if !channel.enabled {
        return Outcome::Skipped(via, SKIPPED);
    }
    // A notification rule's later step goes out only while the incident is still unhandled; a
    // responder request's only while the incident is open (it asks for help with an incident
    // someone may well have acknowledged already).
    if row.data["delay_minutes"].as_i64().unwrap_or(0) > 0 {
        match incidents::get(a.store(), row.incident_id).await {
            Ok(inc) if crate::alerting::engine::delayed_page_moot(&row.event, &inc.status) => {
                return Outcome::Skipped(via, HANDLED)
            }
            Ok(_) => {}
            Err(e) => return Outcome::Failed(e.to_string()),
        }
    }
    let msg = match message(a, row).await {
        Ok(m) => m,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    if Instant::now() + SEND_TIMEOUT + LEASE_MARGIN > lease_end {
        return Outcome::Lapsed;
    }
    match deliver(a, &channel, &msg, &row.idempotency_key).await {
        Ok(_) => Outcome::Sent(via),
        Err(e) => Outcome::Failed(e),
    }
}

/// What a receiver answered to a delivered message: its HTTP status (none for email) and the
/// first bytes of its body, as the channel form's **Send test** shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The HTTP status.
    pub status: Option<u16>,
    /// The start of the answer's body (at most 200 characters).
    pub body: String,
}

/// Sends `msg` through `channel` — the one delivery path, used by the outbox worker and by a
/// channel's test notification, so a test goes where a page would, under the same outbound
/// policy — and answers what the receiver said; an error says why it failed.
pub async fn deliver(
    a: &Alerting,
    channel: &astore::ChannelRow,
    msg: &Message,
    idempotency_key: &str,
) -> Result<Receipt, String> {
    let http = a.http();
    let open = |field: &str| channel_field(a, channel, field);
    // Slack, Discord and Mattermost webhook URLs are credentials: they are stored sealed.
    let url = open("url")?.unwrap_or_default();
    let url = url.as_str();
    let receipt = match channel.kind.as_str() {
        "webhook" => {
            let body = serde_json::to_vec(&json!({
                "event": msg.event, "incident": &msg,
                "idempotency_key": idempotency_key,
            }))
            .map_err(|e| e.to_string())?;
            post_signed_answer(a, http, channel, url, idempotency_key, body).await?
        }
        "slack" | "mattermost" => {
            let text = msg.markdown(|label, url| format!("<{url}|{label}>"));
            let body = if channel.kind == "mattermost" {
                json!({ "text": msg.markdown(|label, url| format!("[{label}]({url})")) })
            } else {
                json!({ "text": text })
            };
            answer(http.post(url)?.json(&body).send().await).await?
        }
        "discord" => {
            let color = match msg.severity.as_str() {
                "critical" => 0xd6_33_3a,
                "error" => 0xe8_6a_1a,
                "warning" => 0xe0_b0_00,
                _ => 0x3b_82_f6,
            };
            let body = json!({
                "content": msg.headline(),
                "embeds": [{
                    "title": msg.title, "url": msg.url, "color": color,
                    "description": msg.markdown(|label, url| format!("[{label}]({url})")),
                }],
            });
            answer(http.post(url)?.json(&body).send().await).await?
        }
        "ntfy" => {
            let priority = match (msg.event.as_str(), msg.urgency.as_str()) {
                ("acknowledged" | "resolved", _) => "3",
                (_, "high") => "5",
                _ => "3",
            };
            let mut req = http
                .post(url)?
                .header("Title", msg.headline())
                .header("Priority", priority)
                .header("Tags", format!("rotating_light,{}", msg.severity))
                .header("Click", &msg.url)
                .header(
                    "Actions",
                    format!(
                        "http, Acknowledge, {}, method=POST, clear=true; view, Open, {}",
                        msg.acknowledge_url, msg.url
                    ),
                );
            if let Some(token) = open("token")? {
                req = req.bearer_auth(token);
            }
            answer(
                req.body(msg.markdown(|label, url| format!("{label}: {url}")))
                    .send()
                    .await,
            )
            .await?
        }
        "pagerduty" => {
            let key = open("routing_key")?.ok_or("routing_key is missing")?;
            let url = if url.is_empty() {
                "https://events.pagerduty.com/v2/enqueue"
            } else {
                url
            };
            let action = match msg.event.as_str() {
                "acknowledged" => "acknowledge",
                "resolved" => "resolve",
                _ => "trigger",
            };
            // A test has no incident: its own key, resolved right after (below), so it does
            // not leave an open alert on the PagerDuty service.
            let test = msg.event == "test";
            let dedup = if test {
                msg.dedup_key.clone()
            } else {
                format!("lookout-{}", msg.incident_id)
            };
            let body = json!({
                "routing_key": key,
                "event_action": action,
                "dedup_key": dedup,
                "payload": {
                    "summary": msg.title,
                    "source": msg.source.clone().or(msg.service.clone()).unwrap_or_else(|| "lookout".into()),
                    "severity": msg.severity,
                    "component": msg.service,
                    "custom_details": {"urgency": msg.urgency, "runbook": msg.runbook_url,
                                       "runbook_summary": msg.runbook_summary},
                },
                "links": [{"href": msg.url, "text": "Lookout incident"}],
                "client": "Lookout", "client_url": msg.url,
            });
            let receipt = answer(http.post(url)?.json(&body).send().await).await?;
            if test {
                let resolve = json!({"routing_key": key, "event_action": "resolve",
                                     "dedup_key": dedup});
                answer(http.post(url)?.json(&resolve).send().await).await?;
            }
            receipt
        }
        "email" => {
            super::deliver_email::send(a, channel, msg).await?;
            Receipt {
                status: None,
                body: "accepted by the SMTP server".into(),
            }
        }
        other => return Err(format!("unknown channel type {other}")),
    };
    Ok(receipt)
}

/// A channel's config field, opened when it is sealed (secrets, and chat webhook URLs).
pub(crate) fn channel_field(
    a: &Alerting,
    channel: &astore::ChannelRow,
    field: &str,
) -> Result<Option<String>, String> {
    match channel.config.get(field).and_then(Value::as_str) {
        Some(v) => a.sealer().open(v).map(Some),
        None => Ok(None),
    }
}

/// POSTs a JSON body to a webhook channel with its idempotency key, signed with HMAC-SHA256 in
/// `X-Lookout-Signature` when the channel has a secret.
pub(crate) async fn post_signed(
    a: &Alerting,
    http: &HttpClient,
    channel: &astore::ChannelRow,
    url: &str,
    key: &str,
    body: Vec<u8>,
) -> Result<(), String> {
    post_signed_answer(a, http, channel, url, key, body)
        .await
        .map(|_| ())
}

/// [`post_signed`], answering what the receiver said.
async fn post_signed_answer(
    a: &Alerting,
    http: &HttpClient,
    channel: &astore::ChannelRow,
    url: &str,
    key: &str,
    body: Vec<u8>,
) -> Result<Receipt, String> {
    let mut req = http
        .post(url)?
        .header("content-type", "application/json")
        .header("idempotency-key", key);
    if let Some(secret) = channel_field(a, channel, "secret")? {
        let sig = lookout_core::seal::hmac_sha256_hex(secret.as_bytes(), &body);
        req = req.header("x-lookout-signature", format!("sha256={sig}"));
    }
    answer(req.body(body).send().await).await
}

/// Treats non-2xx answers as failures, with the status and the start of the body.
pub(crate) async fn check(r: Result<reqwest::Response, reqwest::Error>) -> Result<(), String> {
    answer(r).await.map(|_| ())
}

/// Longest part of a receiver's answer kept: enough to read an error, not a whole page.
const ANSWER_BYTES: usize = 200;

/// [`check`], answering the status and the start of the body on success too.
async fn answer(r: Result<reqwest::Response, reqwest::Error>) -> Result<Receipt, String> {
    // The causes say why (refused connection, the outbound policy's refusal); the URL, which
    // reqwest's own Display includes and which can hold a webhook's secret path, is left out.
    let mut r = r.map_err(|e| lookout_outbound::describe(&e))?;
    let status = r.status();
    // Read only the start of the body: a receiver may answer with anything, of any length.
    let mut bytes = Vec::new();
    while bytes.len() < ANSWER_BYTES * 4 {
        match r.chunk().await {
            Ok(Some(c)) => bytes.extend_from_slice(&c),
            _ => break,
        }
    }
    let body: String = String::from_utf8_lossy(&bytes)
        .chars()
        .take(ANSWER_BYTES)
        .collect();
    if status.is_success() {
        return Ok(Receipt {
            status: Some(status.as_u16()),
            body,
        });
    }
    Err(format!("HTTP {}: {body}", status.as_u16()))
}

/// The channel types, the config fields each requires, and those that are secrets (sealed at
/// rest, shown as `********`).
pub const CHANNEL_TYPES: &[(&str, &[&str], &[&str])] = &[
    ("webhook", &["url"], &["secret"]),
    ("slack", &["url"], &["url"]),
    ("mattermost", &["url"], &["url"]),
    ("discord", &["url"], &["url"]),
    ("ntfy", &["url"], &["token"]),
    ("pagerduty", &[], &["routing_key"]),
    ("email", &["to", "from", "smtp_host"], &["password"]),
];
