//! A lenient model of a Sentry error event: what grouping, issue lists and the UI need, read
//! from whatever an SDK sent. Malformed fields are skipped rather than failing the event (as Relay
//! does); the full JSON is kept, with `event_id`, `timestamp` and defaults filled in.

use serde_json::{Map, Value};

use crate::ProtocolError;

/// Largest event payload accepted (Relay's limit).
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// One stack frame, as far as grouping and display need it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Frame {
    /// Source file as the SDK reports it.
    pub filename: Option<String>,
    /// Module or package path (Python module, Node module name).
    pub module: Option<String>,
    /// Function name.
    pub function: Option<String>,
    /// Line number (display only; never used for grouping).
    pub lineno: Option<i64>,
    /// The source line, where the platform sends it.
    pub context_line: Option<String>,
    /// Whether the frame is the application's own code.
    pub in_app: Option<bool>,
}

/// One exception of a chain.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Exception {
    /// Exception type (`ValueError`).
    pub ty: Option<String>,
    /// Its message.
    pub value: Option<String>,
    /// Module of the type.
    pub module: Option<String>,
    /// `mechanism.synthetic`: the type is made up by the SDK (e.g. Node `captureMessage`).
    pub synthetic: bool,
    /// Frames, caller first; the last is where it was raised.
    pub frames: Vec<Frame>,
}

/// An error event, normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorEvent {
    /// 32 lowercase hex characters.
    pub event_id: String,
    /// When it happened, ms since the epoch (clock drift corrected, clamped as Relay does).
    pub timestamp_ms: i64,
    /// `python`, `node`, … (`other` when absent).
    pub platform: String,
    /// `fatal`, `error`, `warning`, `info` or `debug`.
    pub level: String,
    /// Logger name.
    pub logger: Option<String>,
    /// Release (`name@version`).
    pub release: Option<String>,
    /// Environment (`production` when absent, as SDKs default).
    pub environment: String,
    /// Transaction (route) name.
    pub transaction: Option<String>,
    /// Host that sent it.
    pub server_name: Option<String>,
    /// The message as formatted.
    pub message: Option<String>,
    /// The message template (`logentry.message`), when sent apart from its parameters.
    pub message_template: Option<String>,
    /// The exception chain, oldest first; the last was raised.
    pub exceptions: Vec<Exception>,
    /// Client fingerprint, if any.
    pub fingerprint: Vec<String>,
    /// Tags, in the order sent.
    pub tags: Vec<(String, String)>,
    /// `user.id`, else email, username or IP: what counts as one affected user.
    pub user_key: Option<String>,
    /// The event as JSON, with normalised `event_id`, `timestamp` (RFC 3339), `level`, `platform`.
    pub body: Value,
}

/// Normalises an event id: 32 hex characters, with or without dashes, any case.
pub fn normalize_id(raw: &str) -> Option<String> {
    let hex: String = raw
        .chars()
        .filter(|c| *c != '-')
        .collect::<String>()
        .to_ascii_lowercase();
    (hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit())).then_some(hex)
}

/// A Sentry timestamp — RFC 3339 string or float seconds — in ms since the epoch.
pub fn parse_timestamp(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .filter(|f| f.is_finite())
            .map(|f| (f * 1000.0) as i64),
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_millis())
            .ok()
            .or_else(|| {
                // Naive UTC timestamps without an offset (some older SDKs).
                chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                    .ok()
                    .map(|t| t.and_utc().timestamp_millis())
            })
            .or_else(|| s.parse::<f64>().ok().map(|f| (f * 1000.0) as i64)),
        _ => None,
    }
}

fn string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `{"values": [...]}` or a bare list, as SDKs send either (borrowed: events are read on the
/// ingest hot path, and cloning their arrays showed in profiles).
fn values(v: Option<&Value>) -> &[Value] {
    match v {
        Some(Value::Array(a)) => a,
        Some(Value::Object(o)) => o
            .get("values")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice),
        _ => &[],
    }
}

fn frame(v: &Value) -> Frame {
    Frame {
        filename: string(v.get("filename")).or_else(|| string(v.get("abs_path"))),
        module: string(v.get("module")),
        function: string(v.get("function")),
        lineno: v.get("lineno").and_then(Value::as_i64),
        context_line: string(v.get("context_line")),
        in_app: v.get("in_app").and_then(Value::as_bool),
    }
}

fn exception(v: &Value) -> Option<Exception> {
    let ty = string(v.get("type"));
    let value = string(v.get("value"));
    if ty.is_none() && value.is_none() {
        return None; // Relay drops exceptions with neither
    }
    Some(Exception {
        ty,
        value,
        module: string(v.get("module")),
        synthetic: v
            .pointer("/mechanism/synthetic")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        frames: v
            .pointer("/stacktrace/frames")
            .and_then(Value::as_array)
            .map(|fs| fs.iter().map(frame).collect())
            .unwrap_or_default(),
    })
}

fn tags(v: Option<&Value>) -> Vec<(String, String)> {
    let clip = |s: String| s.chars().take(200).collect::<String>();
    match v {
        Some(Value::Object(m)) => m
            .iter()
            .filter_map(|(k, v)| Some((clip(k.clone()), clip(string(Some(v))?))))
            .collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|pair| {
                let p = pair.as_array()?;
                Some((clip(string(p.first())?), clip(string(p.get(1))?)))
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Where an event's clock disagrees with ours: Relay's rules.
pub struct Clock {
    /// When the server received it, ms.
    pub received_ms: i64,
    /// The envelope's `sent_at`, ms, if sent.
    pub sent_at_ms: Option<i64>,
}

/// Refuses a payload over [`MAX_EVENT_BYTES`] (before it is parsed, and again for a value the
/// caller parsed itself).
fn check_size(payload: &[u8]) -> Result<(), ProtocolError> {
    if payload.len() > MAX_EVENT_BYTES {
        return Err(ProtocolError::TooLarge(format!(
            "event exceeds {MAX_EVENT_BYTES} bytes"
        )));
    }
    Ok(())
}

/// Parses and normalises an error event payload.
pub fn parse_event(
    payload: &[u8],
    envelope_event_id: Option<&str>,
    clock: &Clock,
) -> Result<ErrorEvent, ProtocolError> {
    check_size(payload)?;
    match serde_json::from_slice(payload) {
        Ok(body) => parse_event_value(body, payload, envelope_event_id, clock),
        Err(e) => Err(ProtocolError::Malformed(format!(
            "event is not valid JSON: {e}"
        ))),
    }
}

/// [`parse_event`] of a payload already parsed: `body` must be what `payload` parses to (the
/// error processor has the value after symbolicating and the text it stores, and would
/// otherwise parse its own output again).
pub fn parse_event_value(
    body: Value,
    payload: &[u8],
    envelope_event_id: Option<&str>,
    clock: &Clock,
) -> Result<ErrorEvent, ProtocolError> {
    check_size(payload)?;
    let mut body: Map<String, Value> = match body {
        Value::Object(m) => m,
        _ => {
            return Err(ProtocolError::Malformed(
                "event is not a JSON object".into(),
            ))
        }
    };
    // The envelope header's id wins over the payload's (Sentry's rule); else one is made up.
    let event_id = envelope_event_id
        .and_then(normalize_id)
        .or_else(|| {
            body.get("event_id")
                .and_then(Value::as_str)
                .and_then(normalize_id)
        })
        .unwrap_or_else(|| derived_id(payload));
    let mut ts = body
        .get("timestamp")
        .and_then(parse_timestamp)
        .unwrap_or(clock.received_ms);
    if let Some(sent) = clock.sent_at_ms {
        let drift = clock.received_ms - sent;
        if drift.abs() > 60_000 {
            ts += drift; // the client's clock is off: shift its times by the same amount
        }
    }
    if ts > clock.received_ms + 60_000 || ts < clock.received_ms - 30 * 86_400_000 {
        ts = clock.received_ms;
    }
    let level = match string(body.get("level"))
        .map(|l| l.to_ascii_lowercase())
        .as_deref()
    {
        Some("fatal" | "critical") => "fatal",
        Some("warning" | "warn") => "warning",
        Some("info" | "log") => "info",
        Some("debug") => "debug",
        _ => "error",
    }
    .to_string();
    let platform = string(body.get("platform")).unwrap_or_else(|| "other".into());
    let logentry = body
        .get("logentry")
        .or_else(|| body.get("sentry.interfaces.Message"));
    let message_template = logentry.and_then(|l| string(l.get("message")));
    let message = logentry
        .and_then(|l| string(l.get("formatted")))
        .or_else(|| match body.get("message") {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Object(o)) => {
                string(o.get("formatted")).or_else(|| string(o.get("message")))
            }
            _ => None,
        })
        .or_else(|| message_template.clone());
    let exceptions: Vec<Exception> = values(body.get("exception"))
        .iter()
        .filter_map(exception)
        .collect();
    let mut exceptions = exceptions;
    if exceptions.is_empty() {
        // A crash reported through threads: use the crashed thread's stack.
        if let Some(t) = values(body.get("threads"))
            .iter()
            .find(|t| t.get("crashed").and_then(Value::as_bool) == Some(true))
        {
            if let Some(frames) = t.pointer("/stacktrace/frames").and_then(Value::as_array) {
                exceptions.push(Exception {
                    frames: frames.iter().map(frame).collect(),
                    ..Exception::default()
                });
            }
        }
    }
    let fingerprint = body
        .get("fingerprint")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| string(Some(v))).collect())
        .unwrap_or_default();
    let user = body.get("user");
    let user_key = user.and_then(|u| {
        string(u.get("id"))
            .or_else(|| string(u.get("email")))
            .or_else(|| string(u.get("username")))
            .or_else(|| string(u.get("ip_address")).filter(|ip| ip != "{{auto}}"))
    });
    let environment = string(body.get("environment")).unwrap_or_else(|| "production".into());
    body.insert("event_id".into(), Value::String(event_id.clone()));
    body.insert("level".into(), Value::String(level.clone()));
    body.insert("platform".into(), Value::String(platform.clone()));
    body.insert("environment".into(), Value::String(environment.clone()));
    if let Some(t) = chrono::DateTime::from_timestamp_millis(ts) {
        body.insert(
            "timestamp".into(),
            Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        );
    }
    Ok(ErrorEvent {
        event_id,
        timestamp_ms: ts,
        platform,
        level,
        logger: string(body.get("logger")),
        release: string(body.get("release")),
        environment,
        transaction: string(body.get("transaction")),
        server_name: string(body.get("server_name")),
        message,
        message_template,
        exceptions,
        fingerprint,
        tags: tags(body.get("tags")),
        user_key,
        body: Value::Object(body),
    })
}

/// An id for an event that came without one: a hash of its bytes, so a retried send dedupes.
fn derived_id(payload: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(payload))
        .chars()
        .take(32)
        .collect()
}

impl ErrorEvent {
    /// The exception that was raised: the last of the chain.
    pub fn raised(&self) -> Option<&Exception> {
        self.exceptions.last()
    }

    /// The issue title: `Type: first line of value`, or the message, as sent (not normalised).
    pub fn title(&self) -> String {
        let first_line = |s: &str| {
            s.lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(200)
                .collect::<String>()
        };
        match self.raised() {
            Some(e) if !e.synthetic && e.ty.is_some() => match &e.value {
                Some(v) => format!("{}: {}", e.ty.as_deref().unwrap_or(""), first_line(v)),
                None => e.ty.clone().unwrap_or_default(),
            },
            Some(e) if self.message.is_none() => e
                .value
                .as_deref()
                .map(first_line)
                .unwrap_or_else(|| "<unlabeled event>".into()),
            _ => self
                .message
                .as_deref()
                .map(first_line)
                .unwrap_or_else(|| "<unlabeled event>".into()),
        }
    }

    /// Where it happened: the crashing in-app frame (`module in function`), else the transaction.
    pub fn culprit(&self) -> String {
        let frames = self
            .raised()
            .map(|e| e.frames.as_slice())
            .unwrap_or_default();
        let frame = frames
            .iter()
            .rev()
            .find(|f| f.in_app == Some(true))
            .or_else(|| frames.last());
        match frame {
            Some(f) => {
                let place = f
                    .module
                    .clone()
                    .or_else(|| f.filename.clone())
                    .unwrap_or_else(|| "?".into());
                match &f.function {
                    Some(func) => format!("{place} in {func}"),
                    None => place,
                }
            }
            None => self.transaction.clone().unwrap_or_default(),
        }
    }
}
