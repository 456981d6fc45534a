//! Rewriting an event's JavaScript frames: which files it needs maps for, URL candidates, and
//! each frame resolved to the original file, line, column, function and source context, the
//! minified frames kept under `raw_stacktrace`.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};

use super::bundle::normalize_debug_id;
use super::map::LoadedMap;

/// Where a frame's code came from: what a caller looks maps up by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FrameSource {
    /// The frame's `abs_path` (else `filename`), as sent.
    pub abs_path: String,
    /// The debug id `debug_meta.images` gives for that file, if any.
    pub debug_id: Option<String>,
}

/// The URLs a minified file may have been uploaded under, best first: the URL without query and
/// fragment, then `~/` and its path (Sentry's "any host" prefix).
pub fn url_candidates(abs_path: &str) -> Vec<String> {
    let url = abs_path.split(['?', '#']).next().unwrap_or(abs_path);
    let mut out = vec![url.to_string()];
    let path = match url.split_once("://") {
        Some((_, rest)) => rest.find('/').and_then(|i| rest.get(i..)),
        None => url.starts_with('/').then_some(url),
    };
    if let Some(p) = path {
        out.push(format!("~{p}"));
    }
    out.dedup();
    out
}

/// Resolves `reference` (a `Sourcemap` header, `sourceMappingURL` or a map's source) against
/// the URL of the file that names it, collapsing `.` and `..` segments (never above the root).
pub fn resolve_url(base: &str, reference: &str) -> String {
    if reference.contains("://") || reference.starts_with("~/") || reference.starts_with('/') {
        return reference.to_string();
    }
    let dir = match base.rfind('/') {
        Some(i) => base.get(..i).unwrap_or(""),
        None => return reference.to_string(),
    };
    // The part `..` cannot climb out of: `scheme://host`, `~`, or nothing for a path.
    let (root, path) = match dir.split_once("://") {
        Some((scheme, rest)) => match rest.find('/') {
            Some(i) => (
                format!("{scheme}://{}", rest.get(..i).unwrap_or("")),
                rest.get(i..).unwrap_or(""),
            ),
            None => (format!("{scheme}://{rest}"), ""),
        },
        None => match dir.strip_prefix('~') {
            Some(p) => ("~".to_string(), p),
            None => (String::new(), dir),
        },
    };
    let mut segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    for part in reference.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            p => segments.push(p),
        }
    }
    let joined = segments.join("/");
    if root.is_empty() && !dir.starts_with('/') {
        joined
    } else {
        format!("{root}/{joined}")
    }
}

fn frames_of(exc: &Value) -> Option<&Vec<Value>> {
    exc.pointer("/stacktrace/frames").and_then(Value::as_array)
}

fn exceptions_mut(body: &mut Value) -> Vec<&mut Value> {
    match body.get_mut("exception") {
        Some(Value::Object(o)) => match o.get_mut("values") {
            Some(Value::Array(a)) => a.iter_mut().collect(),
            _ => Vec::new(),
        },
        Some(Value::Array(a)) => a.iter_mut().collect(),
        _ => Vec::new(),
    }
}

fn debug_ids(body: &Value) -> HashMap<String, String> {
    body.pointer("/debug_meta/images")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|i| i.get("type").and_then(Value::as_str) == Some("sourcemap"))
        .filter_map(|i| {
            let file = i.get("code_file").and_then(Value::as_str)?;
            let id = i.get("debug_id").and_then(Value::as_str)?;
            Some((file.to_string(), normalize_debug_id(id)?))
        })
        .collect()
}

fn frame_path(f: &Value) -> Option<&str> {
    f.get("abs_path")
        .or_else(|| f.get("filename"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Whether an event has frames a source map could resolve: JavaScript with line and column.
pub fn wants_symbolication(body: &Value) -> bool {
    let js = matches!(
        body.get("platform").and_then(Value::as_str),
        Some("javascript" | "node")
    );
    js && !sources(body).is_empty()
}

/// Distinct sources looked up per event at most: each costs a few queries, and real stacks
/// come from a handful of files.
pub const MAX_SOURCES_PER_EVENT: usize = 32;

/// The distinct sources of an event's frames that have a line and a column, from the frames
/// [`symbolicate`] may resolve, at most [`MAX_SOURCES_PER_EVENT`].
pub fn sources(body: &Value) -> Vec<FrameSource> {
    let ids = debug_ids(body);
    let mut out: Vec<FrameSource> = Vec::new();
    let mut seen = 0usize;
    let excs: Vec<&Value> = match body.get("exception") {
        Some(Value::Object(o)) => o
            .get("values")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default(),
        Some(Value::Array(a)) => a.iter().collect(),
        _ => Vec::new(),
    };
    for exc in excs {
        for f in frames_of(exc).into_iter().flatten() {
            if f.get("lineno").and_then(Value::as_u64).is_none()
                || f.get("colno").and_then(Value::as_u64).is_none()
            {
                continue;
            }
            let Some(path) = frame_path(f) else { continue };
            seen += 1;
            if seen > MAX_FRAMES_PER_EVENT || out.len() >= MAX_SOURCES_PER_EVENT {
                return out;
            }
            let s = FrameSource {
                abs_path: path.to_string(),
                debug_id: ids.get(path).cloned(),
            };
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    out
}

/// A map that serves frames of one source, and how it was found (shown on the frame).
#[derive(Debug, Clone)]
pub struct FoundMap {
    /// The decoded map.
    pub map: Arc<LoadedMap>,
    /// The map's URL, for display.
    pub url: String,
    /// `debug-id` or `release`.
    pub via: &'static str,
}

/// How an event's frames fared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Frames resolved through a map.
    pub resolved: usize,
    /// Frames with a line and column but no map (or no mapping at that position).
    pub unresolved: usize,
}

/// Lines of source context either side of the frame's line.
const CONTEXT_LINES: u32 = 5;
/// Longest context line kept; minified or generated lines are cut around the column.
const MAX_CONTEXT_LINE: usize = 300;

fn trim_line(line: &str) -> String {
    if line.len() <= MAX_CONTEXT_LINE {
        return line.to_string();
    }
    let mut end = MAX_CONTEXT_LINE;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{} {{snip}}", line.get(..end).unwrap_or(""))
}

/// The file name users know: the map's source without bundler prefixes and leading `./`/`../`.
fn clean_source(source: &str) -> String {
    let mut s = source;
    if let Some((scheme, rest)) = s.split_once("://") {
        // `webpack://app/./src/x.js`: drop the scheme and the bundle's name.
        if scheme == "webpack" || scheme == "webpack-internal" {
            s = rest.split_once('/').map_or(rest, |(_, p)| p);
        } else {
            return source.to_string();
        }
    }
    loop {
        if let Some(r) = s.strip_prefix("./") {
            s = r;
        } else if let Some(r) = s.strip_prefix("../") {
            s = r;
        } else {
            break;
        }
    }
    s.to_string()
}

/// The module name Sentry derives for JavaScript: the path without extension.
fn module_of(filename: &str) -> String {
    let path = filename.split(['?', '#']).next().unwrap_or(filename);
    match path.rfind('.') {
        Some(i) if path.get(i..).is_some_and(|e| !e.contains('/')) => {
            path.get(..i).unwrap_or(path).to_string()
        }
        _ => path.to_string(),
    }
}

/// Puts the frames as sent back where symbolication replaced them, so an event can be resolved
/// again with other maps (re-processing).
pub fn restore_raw(body: &mut Value) {
    for exc in exceptions_mut(body) {
        let Some(o) = exc.as_object_mut() else {
            continue;
        };
        if let Some(raw) = o.remove("raw_stacktrace") {
            o.insert("stacktrace".into(), raw);
        }
    }
}

/// Frames resolved per event at most; the rest stay minified. Real stacks are far shorter (V8
/// keeps 10–50 frames), and an event is processed with a budget whatever its sender puts in it.
pub const MAX_FRAMES_PER_EVENT: usize = 250;
/// Time one event's frames may take to resolve; frames left when it runs out stay minified.
pub const EVENT_BUDGET: std::time::Duration = std::time::Duration::from_secs(2);

/// Resolves an event's frames in place with the maps found for its sources, within
/// [`MAX_FRAMES_PER_EVENT`] and [`EVENT_BUDGET`]. Frames that cannot be resolved (or are over
/// the budget) stay as sent; frames from `node_modules` are marked not in-app either way.
pub fn symbolicate(body: &mut Value, maps: &HashMap<FrameSource, FoundMap>) -> Outcome {
    symbolicate_with(body, maps, &mut FrameMemo::default())
}

/// Positions remembered per memo at most: an entry holds a frame's context lines (eleven lines
/// of at most 300 bytes), so a memo stays under about 4 MB.
const MEMO_ENTRIES: usize = 1_024;

/// Frames already resolved, by map and position, for the events of one batch.
///
/// Events of one issue share their stack, and a burst of them is when processing speed
/// matters: the second and later ones then copy what the first one's lookups, context lines and
/// names produced instead of repeating them (the resolution depends only on the map, the
/// position, the minified name, the caller's name and whether the frame has a module).
#[derive(Default)]
pub struct FrameMemo {
    entries: HashMap<MemoKey, Option<Resolution>>,
    /// The maps the keys point at, held so a pointer cannot be reused by another map while
    /// the memo lives.
    maps: Vec<Arc<LoadedMap>>,
}

#[derive(PartialEq, Eq, Hash)]
struct MemoKey {
    map: usize,
    url: String,
    via: &'static str,
    at: Position,
}

/// Everything of a frame its resolution depends on, besides the map.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Position {
    line: u64,
    col: u64,
    /// The frame's minified function name.
    function: Option<String>,
    /// The original name the caller's token gave (a callee's original name is often its call
    /// site's token name).
    caller: Option<String>,
    has_module: bool,
}

/// What resolving a frame writes into it.
#[derive(Clone)]
struct Resolution {
    /// Keys set on the frame.
    set: Vec<(&'static str, Value)>,
    /// The map has no source content: stale context keys are removed.
    clear_context: bool,
    /// The original token's name there (the callee's name for the next frame), if any.
    token_name: Option<String>,
}

impl FrameMemo {
    fn resolve(&mut self, found: &FoundMap, at: Position) -> Option<Resolution> {
        let key = MemoKey {
            map: Arc::as_ptr(&found.map) as usize,
            url: found.url.clone(),
            via: found.via,
            at,
        };
        if let Some(known) = self.entries.get(&key) {
            return known.clone();
        }
        let resolved = resolution(found, &key.at);
        if self.entries.len() < MEMO_ENTRIES {
            if !self.maps.iter().any(|m| Arc::ptr_eq(m, &found.map)) {
                self.maps.push(found.map.clone());
            }
            self.entries.insert(key, resolved.clone());
        }
        resolved
    }
}

/// [`symbolicate`] remembering resolved positions in `memo` across the events of a batch.
pub fn symbolicate_with(
    body: &mut Value,
    maps: &HashMap<FrameSource, FoundMap>,
    memo: &mut FrameMemo,
) -> Outcome {
    let deadline = std::time::Instant::now() + EVENT_BUDGET;
    let ids = debug_ids(body);
    let mut outcome = Outcome::default();
    let mut attempted = 0usize;
    for exc in exceptions_mut(body) {
        let Some(frames) = exc
            .pointer_mut("/stacktrace/frames")
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        let raw = frames.clone();
        let mut changed = false;
        // Frames are caller first; a callee's original name is often the caller's token name.
        let mut caller_name: Option<String> = None;
        for f in frames.iter_mut() {
            let path = frame_path(f).map(str::to_string);
            let line = f.get("lineno").and_then(Value::as_u64);
            let col = f.get("colno").and_then(Value::as_u64);
            let within_budget = attempted < MAX_FRAMES_PER_EVENT
                && (!attempted.is_multiple_of(16) || std::time::Instant::now() < deadline);
            let found = match (&path, line, col) {
                (Some(p), Some(_), Some(_)) if within_budget => maps.get(&FrameSource {
                    abs_path: p.clone(),
                    debug_id: ids.get(p).cloned(),
                }),
                _ => None,
            };
            let next_caller = match (found, line, col) {
                (Some(found), Some(line), Some(col)) => {
                    attempted += 1;
                    let at = Position {
                        line,
                        col,
                        function: f
                            .get("function")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        caller: caller_name.clone(),
                        has_module: f.get("module").is_some(),
                    };
                    let resolved = memo.resolve(found, at);
                    match resolved.and_then(|r| apply(f, r)) {
                        Some(name) => {
                            outcome.resolved += 1;
                            changed = true;
                            name
                        }
                        None => {
                            outcome.unresolved += 1;
                            None
                        }
                    }
                }
                (None, Some(_), Some(_)) => {
                    outcome.unresolved += 1;
                    None
                }
                _ => None,
            };
            caller_name = next_caller;
            let in_node_modules = f
                .get("filename")
                .or_else(|| f.get("abs_path"))
                .and_then(Value::as_str)
                .is_some_and(|p| p.contains("/node_modules/") || p.starts_with("node_modules/"));
            if in_node_modules && f.get("in_app").and_then(Value::as_bool) != Some(false) {
                f["in_app"] = Value::Bool(false);
                changed = true;
            }
        }
        if changed {
            if let Some(o) = exc.as_object_mut() {
                o.insert("raw_stacktrace".into(), json!({ "frames": raw }));
            }
        }
    }
    outcome
}

/// What resolving a frame at `at` writes into it; `None` if the map has no mapping there.
fn resolution(found: &FoundMap, at: &Position) -> Option<Resolution> {
    let Position {
        line,
        col,
        ref function,
        ref caller,
        has_module,
    } = *at;
    let (function, caller) = (function.as_deref(), caller.as_deref());
    let map = &found.map.map;
    let (l0, c0) = (
        u32::try_from(line.checked_sub(1)?).ok()?,
        u32::try_from(col.checked_sub(1)?).ok()?,
    );
    let token = map.lookup_token(l0, c0)?;
    // A token on another line is a mapping of some earlier code, not of this position.
    if token.get_dst_line() != l0 {
        return None;
    }
    let source = token.get_source()?;
    let src_line = token.get_src_line();
    let original_fn = match function {
        Some(name) if !name.is_empty() && name != "?" => {
            let short = name.rsplit('.').next().unwrap_or(name);
            found.map.original_function_name(l0, c0, short)
        }
        _ => None,
    }
    .or_else(|| caller.map(str::to_string))
    .or_else(|| function.map(str::to_string));
    let filename = clean_source(source);
    let mut set: Vec<(&'static str, Value)> = Vec::with_capacity(12);
    if has_module {
        set.push(("module", Value::String(module_of(&filename))));
    }
    set.push(("abs_path", Value::String(resolve_url(&found.url, source))));
    set.push(("lineno", json!(u64::from(src_line) + 1)));
    set.push(("colno", json!(u64::from(token.get_src_col()) + 1)));
    if let Some(name) = original_fn {
        set.push(("function", Value::String(name)));
    }
    let mut clear_context = false;
    if let Some(view) = map.get_source_view(token.get_src_id()) {
        let lines = |from: u32, to: u32| -> Vec<Value> {
            (from..to)
                .filter_map(|i| view.get_line(i))
                .map(|l| Value::String(trim_line(l)))
                .collect()
        };
        if let Some(cl) = view.get_line(src_line) {
            set.push((
                "pre_context",
                Value::Array(lines(src_line.saturating_sub(CONTEXT_LINES), src_line)),
            ));
            set.push(("context_line", Value::String(trim_line(cl))));
            set.push((
                "post_context",
                Value::Array(lines(
                    src_line + 1,
                    src_line.saturating_add(1 + CONTEXT_LINES),
                )),
            ));
        }
    } else {
        clear_context = true;
    }
    set.push(("in_app", Value::Bool(!filename.contains("node_modules/"))));
    set.push(("filename", Value::String(filename)));
    set.push((
        "data",
        json!({ "sourcemap": found.url, "resolved_with": found.via, "symbolicated": true }),
    ));
    Some(Resolution {
        set,
        clear_context,
        token_name: token
            .get_name()
            .filter(|n| !n.is_empty())
            .map(str::to_string),
    })
}

/// Writes a resolution into a frame; returns the token name for the next frame, or `None` when
/// the frame is not an object.
fn apply(f: &mut Value, r: Resolution) -> Option<Option<String>> {
    let obj = f.as_object_mut()?;
    if r.clear_context {
        for k in ["pre_context", "context_line", "post_context"] {
            obj.remove(k);
        }
    }
    for (k, v) in r.set {
        obj.insert(k.to_string(), v);
    }
    Some(r.token_name)
}
