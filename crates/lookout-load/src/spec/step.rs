//! One step of an iteration, compiled: a request with its templates, checks, extractions and
//! think time, or a pause. Names an earlier step extracted become template variables here.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json_path::JsonPath;

use super::raw::{OneOrMany, RawStep};
use super::{nonzero, CheckInfo, Data, RequestInfo};
use crate::duration;
use crate::template::{Scope, Template};

/// One step of an iteration.
#[derive(Debug)]
pub enum Step {
    Request(Box<RequestStep>),
    /// Pause for a random time in `[min, max]`.
    Sleep(Duration, Duration),
}

/// A request step, compiled.
#[derive(Debug)]
pub struct RequestStep {
    /// Index into [`Plan::requests`].
    pub id: usize,
    pub method: String,
    pub url: Template,
    pub headers: Vec<(String, Template)>,
    pub body: Option<Template>,
    pub timeout: Duration,
    pub checks: Vec<Check>,
    pub extracts: Vec<Extract>,
    pub think: Option<(Duration, Duration)>,
    /// Whether a check or extraction reads the body as JSON.
    pub needs_json: bool,
    /// Whether URL, headers and body have no template, so each VU renders the request once.
    pub fixed: bool,
}

/// A compiled check.
#[derive(Debug)]
pub struct Check {
    /// Index into [`Plan::checks`].
    pub id: usize,
    pub kind: CheckKind,
}

/// What a check tests.
#[derive(Debug)]
pub enum CheckKind {
    Status(Vec<u16>),
    /// Header (lower-case name) present and containing the text.
    Header(String, String),
    BodyContains(String),
    JsonPath(JsonPath, serde_json::Value),
    /// Duration below (or at most, when the flag is set) the limit.
    Duration(Duration, bool),
}

/// A compiled extraction into a VU's slot.
#[derive(Debug)]
pub struct Extract {
    pub slot: usize,
    pub from: ExtractFrom,
}

/// Where an extraction reads.
#[derive(Debug)]
pub enum ExtractFrom {
    JsonPath(JsonPath),
    /// Lower-case header name.
    Header(String),
    Regex(regex::Regex),
}

/// A think time: `1s`, or `1s..3s` for a uniformly random pause.
pub(super) fn think(at: &str, text: &str) -> Result<(Duration, Duration), String> {
    let (lo, hi) = match text.split_once("..") {
        Some((a, b)) => (duration::parse(a), duration::parse(b)),
        None => (duration::parse(text), duration::parse(text)),
    };
    let (lo, hi) = (
        lo.map_err(|e| format!("{at}: {e}"))?,
        hi.map_err(|e| format!("{at}: {e}"))?,
    );
    if hi < lo {
        return Err(format!("{at}: the range ends before it starts"));
    }
    Ok((lo, hi))
}

#[allow(clippy::too_many_arguments)]
pub(super) fn step(
    scenario: usize,
    scenario_name: &str,
    at: &str,
    st: RawStep,
    env: &HashMap<String, String>,
    data: Option<&Data>,
    vars: &mut Vec<String>,
    requests: &mut Vec<RequestInfo>,
    checks: &mut Vec<CheckInfo>,
    scenario_tags: &BTreeMap<String, String>,
) -> Result<Step, String> {
    let req = match (st.request, &st.sleep) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "{at}: a step is either a `request` or a `sleep`, not both"
            ))
        }
        (None, Some(s)) => {
            if st.checks.is_some() || !st.extract.is_empty() || st.think.is_some() {
                return Err(format!(
                    "{at}: a `sleep` step takes no checks, extract or think"
                ));
            }
            let (lo, hi) = think(&format!("{at}.sleep"), s)?;
            return Ok(Step::Sleep(lo, hi));
        }
        (None, None) => return Err(format!("{at}: a step needs a `request` or a `sleep`")),
        (Some(r), None) => r,
    };
    let columns = data.map(|d| d.columns.as_slice());
    let scope = Scope {
        scenario: scenario_name,
        env,
        columns,
        vars,
    };
    let url = Template::compile(&req.url, &scope).map_err(|e| format!("{at}.request.url: {e}"))?;
    let prefix = url.fixed_prefix();
    if !(prefix.starts_with("http://") || prefix.starts_with("https://")) {
        return Err(format!(
            "{at}.request.url: must start with http:// or https://"
        ));
    }
    if let Some(fixed) = url.fixed() {
        let parsed = url::Url::parse(fixed).map_err(|e| format!("{at}.request.url: {e}"))?;
        if parsed.host_str().is_none() {
            return Err(format!("{at}.request.url: has no host"));
        }
    }
    let method = req
        .method
        .unwrap_or_else(|| "GET".into())
        .to_ascii_uppercase();
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(format!(
            "{at}.request.method: `{method}` is not an HTTP method"
        ));
    }
    let mut headers = Vec::new();
    let mut has_content_type = false;
    for (k, v) in &req.headers {
        if k.is_empty() || k.bytes().any(|b| b <= b' ' || b == b':' || b >= 0x7f) {
            return Err(format!("{at}.request.headers: `{k}` is not a header name"));
        }
        let lower = k.to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "host" | "content-length" | "transfer-encoding" | "connection"
        ) {
            return Err(format!(
                "{at}.request.headers.{k}: set by the client; leave it out"
            ));
        }
        has_content_type |= lower == "content-type";
        let t =
            Template::compile(v, &scope).map_err(|e| format!("{at}.request.headers.{k}: {e}"))?;
        headers.push((k.clone(), t));
    }
    let body = match req.body {
        None => None,
        Some(serde_json::Value::String(s)) => {
            Some(Template::compile(&s, &scope).map_err(|e| format!("{at}.request.body: {e}"))?)
        }
        Some(v) => {
            if !has_content_type {
                headers.push((
                    "Content-Type".into(),
                    Template::compile("application/json", &scope)?,
                ));
            }
            let s = serde_json::to_string(&v).map_err(|e| format!("{at}.request.body: {e}"))?;
            Some(Template::compile(&s, &scope).map_err(|e| format!("{at}.request.body: {e}"))?)
        }
    };
    let timeout = match &req.timeout {
        Some(t) => nonzero(
            at,
            "request.timeout",
            duration::parse(t).map_err(|e| format!("{at}.request.timeout: {e}"))?,
        )?,
        None => Duration::from_secs(60),
    };
    let id = requests.len();
    let name = req.name.unwrap_or_else(|| req.url.clone());
    let mut tags = scenario_tags.clone();
    tags.extend(req.tags);
    requests.push(RequestInfo {
        scenario,
        name: name.clone(),
        method: method.clone(),
        tags,
    });
    let mut compiled = Vec::new();
    let mut needs_json = false;
    let mut add = |kind: CheckKind, label: String, checks: &mut Vec<CheckInfo>| {
        compiled.push(Check {
            id: checks.len(),
            kind,
        });
        checks.push(CheckInfo {
            scenario,
            request: id,
            name: label,
        });
    };
    if let Some(c) = st.checks {
        if let Some(s) = c.status {
            let list = s.into_vec();
            let label = if list.len() == 1 {
                format!("{name}: status is {}", list[0])
            } else {
                format!("{name}: status in {list:?}")
            };
            add(CheckKind::Status(list), label, checks);
        }
        for (h, v) in c.header {
            add(
                CheckKind::Header(h.to_ascii_lowercase(), v.clone()),
                format!("{name}: header {h} contains {v:?}"),
                checks,
            );
        }
        for needle in c.body_contains.map(OneOrMany::into_vec).unwrap_or_default() {
            add(
                CheckKind::BodyContains(needle.clone()),
                format!("{name}: body contains {needle:?}"),
                checks,
            );
        }
        for (path, want) in c.jsonpath {
            let jp =
                JsonPath::parse(&path).map_err(|e| format!("{at}.checks.jsonpath.{path}: {e}"))?;
            needs_json = true;
            add(
                CheckKind::JsonPath(jp, want.clone()),
                format!("{name}: {path} == {want}"),
                checks,
            );
        }
        if let Some(d) = c.duration {
            let (inclusive, rest) = if let Some(r) = d.trim().strip_prefix("<=") {
                (true, r)
            } else if let Some(r) = d.trim().strip_prefix('<') {
                (false, r)
            } else {
                (false, d.trim())
            };
            let limit = duration::parse(rest).map_err(|e| format!("{at}.checks.duration: {e}"))?;
            add(
                CheckKind::Duration(limit, inclusive),
                format!(
                    "{name}: duration {} {}",
                    if inclusive { "<=" } else { "<" },
                    duration::human(limit)
                ),
                checks,
            );
        }
    }
    let mut extracts = Vec::new();
    for (var, ex) in st.extract {
        let eat = format!("{at}.extract.{var}");
        if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "{eat}: a name may hold only letters, digits and `_`"
            ));
        }
        let from = match (ex.jsonpath, ex.header, ex.regex) {
            (Some(p), None, None) => {
                needs_json = true;
                ExtractFrom::JsonPath(
                    JsonPath::parse(&p).map_err(|e| format!("{eat}.jsonpath: {e}"))?,
                )
            }
            (None, Some(h), None) => ExtractFrom::Header(h.to_ascii_lowercase()),
            (None, None, Some(r)) => {
                ExtractFrom::Regex(regex::Regex::new(&r).map_err(|e| format!("{eat}.regex: {e}"))?)
            }
            _ => {
                return Err(format!(
                    "{eat}: give exactly one of jsonpath, header, regex"
                ))
            }
        };
        let slot = match vars.iter().position(|v| *v == var) {
            Some(s) => s,
            None => {
                vars.push(var);
                vars.len() - 1
            }
        };
        extracts.push(Extract { slot, from });
    }
    let think = match &st.think {
        Some(t) => Some(think(&format!("{at}.think"), t)?),
        None => None,
    };
    let fixed = url.fixed().is_some()
        && headers.iter().all(|(_, t)| t.fixed().is_some())
        && body.as_ref().is_none_or(|b| b.fixed().is_some());
    Ok(Step::Request(Box::new(RequestStep {
        id,
        method,
        url,
        headers,
        body,
        timeout,
        checks: compiled,
        extracts,
        think,
        needs_json,
        fixed,
    })))
}
