//! Prometheus's HTTP API for series, label names, label values and metadata, with its JSON
//! shapes (`{"status":"success","data":…}`, errors with `errorType`), as `promtool` and
//! Grafana's Prometheus data source call it: GET with a query string, or POST with a
//! form-encoded body (parameters from both are merged, as Prometheus merges them).
//!
//! `start` and `end` are Unix seconds (fractions allowed) or RFC 3339; without them every
//! stored series counts. `match[]` takes series selectors ([`lookout_protocol::selector`]).

use axum::body::Body;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use lookout_protocol::selector::{self, Op};
use lookout_store::prom::query::{self, ReadError};
use lookout_store::prom::{MatchOp, Matcher};
use serde_json::{json, Map, Value};

use super::{authenticate, PromError};
use crate::state::AppState;

/// Largest form body read.
const MAX_FORM: usize = 1024 * 1024;
/// Most `match[]` selectors in one request.
const MAX_SELECTORS: usize = 64;

/// The request's parameters: query string and, for a form POST, the body.
pub(super) struct Params(Vec<(String, String)>);

impl Params {
    fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated parameter (`rule_name[]=a&rule_name[]=b`).
    pub(super) fn many<'a>(&'a self, key: &'a str) -> Vec<&'a str> {
        self.all(key).filter(|v| !v.is_empty()).collect()
    }

    pub(super) fn one(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }
}

/// A read request as it came: method, query string, headers and the body not yet read (it is
/// read only after authentication, by [`begin`]).
pub struct PromRequest {
    method: Method,
    query: Option<String>,
    headers: HeaderMap,
    body: Body,
}

impl<S: Send + Sync> FromRequest<S> for PromRequest {
    type Rejection = std::convert::Infallible;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        Ok(PromRequest {
            method: parts.method,
            query: parts.uri.query().map(str::to_string),
            headers: parts.headers,
            body,
        })
    }
}

/// Authenticates for reading, then reads the parameters (the body only after authentication).
pub(super) async fn begin(state: &AppState, req: PromRequest) -> Result<(i64, Params), PromError> {
    let PromRequest {
        method,
        query,
        headers,
        body,
    } = req;
    let query = query.as_deref();
    let headers = &headers;
    let access = authenticate(state, headers, query, false).await?;
    if !access.read {
        return Err(PromError {
            status: StatusCode::FORBIDDEN,
            kind: "forbidden",
            message: "a DSN key may only write; read with an API token".into(),
            retry_after: None,
        });
    }
    let mut params: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    if method == Method::POST {
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !ct.starts_with("application/x-www-form-urlencoded") {
            return Err(PromError {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                kind: "bad_data",
                message: "POST takes an application/x-www-form-urlencoded body".into(),
                retry_after: None,
            });
        }
        let bytes = axum::body::to_bytes(body, MAX_FORM)
            .await
            .map_err(|_| PromError {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                kind: "bad_data",
                message: format!("form body over {MAX_FORM} bytes"),
                retry_after: None,
            })?;
        params.extend(url::form_urlencoded::parse(&bytes).into_owned());
    }
    Ok((access.project, Params(params)))
}

/// A Prometheus time parameter: Unix seconds (with fractions) or RFC 3339, in ms.
pub(super) fn time(name: &str, v: &str) -> Result<i64, PromError> {
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_finite() {
            return Ok((secs * 1000.0)
                .round()
                .clamp(i64::MIN as f64, i64::MAX as f64) as i64);
        }
    }
    chrono::DateTime::parse_from_rfc3339(v)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            PromError::bad_data(format!(
                "invalid parameter \"{name}\": cannot parse {v:?} to a valid timestamp"
            ))
        })
}

/// `start`/`end` as an inclusive range; `None` when neither is given.
fn range(p: &Params) -> Result<Option<(i64, i64)>, PromError> {
    let start = p.one("start").map(|v| time("start", v)).transpose()?;
    let end = p.one("end").map(|v| time("end", v)).transpose()?;
    if start.is_none() && end.is_none() {
        return Ok(None);
    }
    let (s, e) = (start.unwrap_or(i64::MIN / 2), end.unwrap_or(i64::MAX / 2));
    if e < s {
        return Err(PromError::bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    Ok(Some((s, e)))
}

/// The `match[]` selectors as store matchers.
fn selectors(p: &Params) -> Result<Vec<Vec<Matcher>>, PromError> {
    let raw: Vec<&str> = p.all("match[]").collect();
    if raw.len() > MAX_SELECTORS {
        return Err(PromError::bad_data(format!(
            "more than {MAX_SELECTORS} match[] selectors"
        )));
    }
    raw.into_iter()
        .map(|text| {
            let parsed = selector::parse(text)
                .map_err(|e| PromError::bad_data(format!("invalid match[] {text:?}: {e}")))?;
            let ms = parsed
                .into_iter()
                .map(|m| {
                    let op = match m.op {
                        Op::Eq => MatchOp::Eq,
                        Op::Ne => MatchOp::Ne,
                        Op::Re => MatchOp::Re,
                        Op::Nre => MatchOp::Nre,
                    };
                    Matcher::new(&m.name, op, &m.value).map_err(PromError::bad_data)
                })
                .collect::<Result<Vec<_>, _>>()?;
            if ms.iter().all(|m| m.matches("")) {
                return Err(PromError::bad_data(format!(
                    "invalid match[] {text:?}: vector selector must contain at least one \
                     non-empty matcher"
                )));
            }
            Ok(ms)
        })
        .collect()
}

/// `limit`: at most this many items (0 or absent: all).
fn limit(p: &Params) -> Result<usize, PromError> {
    match p.one("limit") {
        None => Ok(0),
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| PromError::bad_data("invalid parameter \"limit\": not a number")),
    }
}

pub(super) fn from_read(e: ReadError) -> PromError {
    match e {
        ReadError::TooManySeries | ReadError::TooManySamples(_) => PromError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            kind: "execution",
            message: e.to_string(),
            retry_after: None,
        },
        ReadError::Store(s) => s.into(),
    }
}

/// `{"status":"success","data":…}`, with a warning when `limit` cut the answer.
fn success(data: Value, truncated: bool) -> Response {
    let mut body = json!({"status": "success", "data": data});
    if truncated {
        body["warnings"] = json!(["results truncated due to limit"]);
    }
    Json(body).into_response()
}

fn cut<T>(mut v: Vec<T>, limit: usize) -> (Vec<T>, bool) {
    if limit > 0 && v.len() > limit {
        v.truncate(limit);
        (v, true)
    } else {
        (v, false)
    }
}

/// The one path of the listing endpoints: authenticate, read the parameters, list, then cut
/// the list at `limit` (with Prometheus's warning) and answer it.
async fn listing<F, Fut>(state: AppState, req: PromRequest, list: F) -> Result<Response, PromError>
where
    F: FnOnce(AppState, i64, Params) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Value>, PromError>>,
{
    let (project, p) = begin(&state, req).await?;
    let limit = limit(&p)?;
    let (items, truncated) = cut(list(state, project, p).await?, limit);
    Ok(success(Value::Array(items), truncated))
}

fn strings(v: Vec<String>) -> Vec<Value> {
    v.into_iter().map(Value::String).collect()
}

/// `/prometheus/api/v1/series`: the label sets `match[]` selects.
pub async fn series(
    State(state): State<AppState>,
    req: PromRequest,
) -> Result<Response, PromError> {
    listing(state, req, |state, project, p| async move {
        let sel = selectors(&p)?;
        if sel.is_empty() {
            return Err(PromError::bad_data("no match[] parameter provided"));
        }
        let found = query::series(state.store(), project, &sel, range(&p)?)
            .await
            .map_err(from_read)?;
        Ok(found
            .into_iter()
            .map(|labels| {
                Value::Object(
                    labels
                        .into_iter()
                        .map(|(k, v)| (k, Value::String(v)))
                        .collect::<Map<_, _>>(),
                )
            })
            .collect())
    })
    .await
}

/// `/prometheus/api/v1/labels`: label names.
pub async fn labels(
    State(state): State<AppState>,
    req: PromRequest,
) -> Result<Response, PromError> {
    listing(state, req, |state, project, p| async move {
        let names = query::label_names(state.store(), project, &selectors(&p)?, range(&p)?)
            .await
            .map_err(from_read)?;
        Ok(strings(names))
    })
    .await
}

/// `/prometheus/api/v1/label/{name}/values`: a label's values.
pub async fn label_values(
    State(state): State<AppState>,
    Path(name): Path<String>,
    req: PromRequest,
) -> Result<Response, PromError> {
    listing(state, req, |state, project, p| async move {
        if !lookout_protocol::remote_write::valid_label_name(&name) {
            return Err(PromError::bad_data(format!(
                "invalid label name: {:?}",
                name.chars().take(64).collect::<String>()
            )));
        }
        let values =
            query::label_values(state.store(), project, &name, &selectors(&p)?, range(&p)?)
                .await
                .map_err(from_read)?;
        Ok(strings(values))
    })
    .await
}

/// `/prometheus/api/v1/metadata`: type, help and unit per metric family.
pub async fn metadata(
    State(state): State<AppState>,
    req: PromRequest,
) -> Result<Response, PromError> {
    let (project, p) = begin(&state, req).await?;
    let limit = match p.one("limit") {
        None => 10_000,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n > 0 => n.min(10_000),
            Ok(_) => 10_000,
            Err(_) => {
                return Err(PromError::bad_data(
                    "invalid parameter \"limit\": not a number",
                ))
            }
        },
    };
    let rows = query::metadata(state.store(), project, p.one("metric"), limit).await?;
    let mut data = Map::new();
    for m in rows {
        data.insert(
            m.metric,
            json!([{"type": m.kind, "help": m.help, "unit": m.unit}]),
        );
    }
    Ok(success(Value::Object(data), false))
}
