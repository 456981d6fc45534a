//! JavaScript source maps: the artifact bundles `sentry-cli` uploads, and resolving minified
//! stack frames to the original file, line, column, function and source context.
//!
//! Decoding is the kept `sourcemap` crate's (regular and index maps, `sourcesContent`); this
//! module only reads bundles, picks which map serves which frame, and rewrites the event JSON.
//! No IO: the caller finds the maps (by debug id, else release + dist + URL) and hands them in.
//!
//! Event shape after symbolication, as Sentry writes it: each frame carries the resolved
//! `filename`, `abs_path`, `lineno`, `colno`, `function`, `pre_context`/`context_line`/
//! `post_context`; the exception keeps the frames as sent under `raw_stacktrace`.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::Arc;

use serde_json::{json, Value};
use sourcemap::{DecodedMap, SourceMap, SourceView};

use crate::ProtocolError;

/// What a bundle may hold; over it the upload is refused as a whole.
#[derive(Debug, Clone, Copy)]
pub struct BundleLimits {
    /// Files in one bundle.
    pub max_files: usize,
    /// Bytes of one file, uncompressed.
    pub max_file_bytes: u64,
    /// Bytes of all files, uncompressed.
    pub max_total_bytes: u64,
}

impl Default for BundleLimits {
    fn default() -> Self {
        BundleLimits {
            max_files: 10_000,
            max_file_bytes: 32 * 1024 * 1024,
            max_total_bytes: 256 * 1024 * 1024,
        }
    }
}

/// What a file in a bundle is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// Minified (bundled) JavaScript.
    MinifiedSource,
    /// A source map.
    SourceMap,
    /// An original source file.
    Source,
}

impl FileKind {
    /// The name stored and shown (`minified_source`, `source_map`, `source`).
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::MinifiedSource => "minified_source",
            FileKind::SourceMap => "source_map",
            FileKind::Source => "source",
        }
    }

    /// Reads a stored or manifest name; unknown kinds are `None`.
    pub fn parse(s: &str) -> Option<FileKind> {
        match s {
            "minified_source" => Some(FileKind::MinifiedSource),
            "source_map" => Some(FileKind::SourceMap),
            "source" => Some(FileKind::Source),
            _ => None,
        }
    }
}

/// One file of an artifact bundle.
#[derive(Debug, Clone, PartialEq)]
pub struct BundleFile {
    /// What it is.
    pub kind: FileKind,
    /// Its URL (`~/static/app.min.js`).
    pub url: String,
    /// The debug id `sentry-cli sourcemaps inject` gave it, normalised.
    pub debug_id: Option<String>,
    /// For minified files: the `Sourcemap` reference (relative to `url`).
    pub sourcemap_ref: Option<String>,
    /// Its bytes.
    pub content: Vec<u8>,
}

/// An artifact bundle: a zip (optionally behind symbolic's `SYSB` header) with `manifest.json`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ArtifactBundle {
    /// The bundle's release attribute, if any.
    pub release: Option<String>,
    /// The bundle's dist attribute, if any.
    pub dist: Option<String>,
    /// Its files.
    pub files: Vec<BundleFile>,
}

/// Normalises a debug id to lowercase `8-4-4-4-12`; `None` if it is not 32 hex digits.
pub fn normalize_debug_id(raw: &str) -> Option<String> {
    let hex: String = raw.chars().filter(|c| *c != '-').collect();
    // Debug ids may carry an appendix (`…-a`); source maps never use one, so it is dropped.
    let hex = hex.get(..32)?.to_ascii_lowercase();
    if !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    Some(format!(
        "{}-{}-{}-{}-{}",
        hex.get(..8)?,
        hex.get(8..12)?,
        hex.get(12..16)?,
        hex.get(16..20)?,
        hex.get(20..32)?
    ))
}

fn bad(msg: impl Into<String>) -> ProtocolError {
    ProtocolError::Malformed(msg.into())
}

/// Reads one zip entry, refusing more than `cap` bytes whatever its header claims.
fn read_entry<R: Read + std::io::Seek>(
    zip: &mut zip::ZipArchive<R>,
    name: &str,
    cap: u64,
) -> Result<Option<Vec<u8>>, ProtocolError> {
    let entry = match zip.by_name(name) {
        Ok(e) => e,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(bad(format!("bundle file {name:?} is unreadable: {e}"))),
    };
    let mut out = Vec::new();
    entry
        .take(cap + 1)
        .read_to_end(&mut out)
        .map_err(|e| bad(format!("bundle file {name:?} is unreadable: {e}")))?;
    if out.len() as u64 > cap {
        return Err(ProtocolError::TooLarge(format!(
            "bundle file {name:?} exceeds {cap} bytes"
        )));
    }
    Ok(Some(out))
}

/// Reads an artifact bundle as `sentry-cli` builds it. Every source map in it must decode, so a
/// bad map is refused at upload with its name, never discovered while processing events.
pub fn read_artifact_bundle(
    bytes: &[u8],
    limits: &BundleLimits,
) -> Result<ArtifactBundle, ProtocolError> {
    // symbolic's source bundles put an 8-byte header ("SYSB" + version) before the zip, and the
    // zip's offsets count it: the archive is read from the first byte, not after the header.
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| bad(format!("bundle is not a zip archive: {e}")))?;
    let manifest = read_entry(&mut zip, "manifest.json", 16 * 1024 * 1024)?
        .ok_or_else(|| bad("bundle has no manifest.json"))?;
    // The manifest counts toward the total: it is held in memory with the files.
    let mut total = manifest.len() as u64;
    if total > limits.max_total_bytes {
        return Err(ProtocolError::TooLarge(format!(
            "bundle files exceed {} bytes in all",
            limits.max_total_bytes
        )));
    }
    let manifest: Value = serde_json::from_slice(&manifest)
        .map_err(|e| bad(format!("manifest.json is not JSON: {e}")))?;
    let attr = |k: &str| {
        manifest
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let entries = manifest
        .get("files")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("manifest.json has no files"))?;
    if entries.len() > limits.max_files {
        return Err(ProtocolError::TooLarge(format!(
            "bundle has {} files; at most {} are accepted",
            entries.len(),
            limits.max_files
        )));
    }
    let mut files = Vec::new();
    for (path, info) in entries {
        let Some(kind) = info
            .get("type")
            .and_then(Value::as_str)
            .and_then(FileKind::parse)
        else {
            continue; // RAM bundles and unknown kinds: nothing we resolve with
        };
        let Some(url) = info.get("url").and_then(Value::as_str) else {
            continue;
        };
        // Header names are case-insensitive (`debug-id`, `Sourcemap`).
        let headers: BTreeMap<String, String> = info
            .get("headers")
            .and_then(Value::as_object)
            .map(|h| {
                h.iter()
                    .filter_map(|(k, v)| Some((k.to_ascii_lowercase(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let content = match read_entry(&mut zip, path, limits.max_file_bytes)? {
            Some(c) => c,
            None => read_entry(&mut zip, &format!("files/{path}"), limits.max_file_bytes)?
                .ok_or_else(|| {
                    bad(format!(
                        "manifest names {path:?}, which is not in the bundle"
                    ))
                })?,
        };
        total += content.len() as u64;
        if total > limits.max_total_bytes {
            return Err(ProtocolError::TooLarge(format!(
                "bundle files exceed {} bytes in all",
                limits.max_total_bytes
            )));
        }
        if kind == FileKind::SourceMap {
            load_map(&content, None).map_err(|e| match e {
                ProtocolError::TooLarge(m) => ProtocolError::TooLarge(format!("{url}: {m}")),
                e => bad(format!("{url}: {e}")),
            })?;
        }
        files.push(BundleFile {
            kind,
            url: url.to_string(),
            debug_id: headers.get("debug-id").and_then(|d| normalize_debug_id(d)),
            sourcemap_ref: headers
                .get("sourcemap")
                .or_else(|| headers.get("x-sourcemap"))
                .cloned(),
            content,
        });
    }
    Ok(ArtifactBundle {
        release: attr("release"),
        dist: attr("dist"),
        files,
    })
}

/// A decoded source map, with the minified file it belongs to when known (for function names).
pub struct LoadedMap {
    map: SourceMap,
    minified: Option<SourceView>,
    /// Per line of the minified file: whether it is ASCII (then columns are byte offsets).
    ascii_lines: Vec<bool>,
    /// For non-ASCII lines only: `(UTF-16 column, byte offset)` every [`COLUMN_STEP`] characters,
    /// built once per map so a column is found by a search and a walk of at most a step, never
    /// by walking a (often single, megabytes long) line from its start on every lookup.
    columns: HashMap<u32, Vec<(u32, u32)>>,
}

/// Characters between two remembered columns of a non-ASCII line: 8 bytes per 64 characters.
const COLUMN_STEP: usize = 64;

fn column_index(line: &str) -> Vec<(u32, u32)> {
    let mut out = Vec::with_capacity(line.len() / COLUMN_STEP + 1);
    let mut units = 0u32;
    for (n, (i, ch)) in line.char_indices().enumerate() {
        if n.is_multiple_of(COLUMN_STEP) {
            out.push((units, u32::try_from(i).unwrap_or(u32::MAX)));
        }
        units = units.saturating_add(ch.len_utf16() as u32);
    }
    out
}

impl std::fmt::Debug for LoadedMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedMap")
            .field("sources", &self.map.get_source_count())
            .field("minified", &self.minified.is_some())
            .finish()
    }
}

/// Whether bytes look like a source map (the `sourcemap` crate's sniffing).
pub fn is_sourcemap(data: &[u8]) -> bool {
    sourcemap::is_sourcemap_slice(data)
}

/// Tokens (mappings) one map may have. A decoded token takes about [`BYTES_PER_TOKEN`] bytes, so
/// this bounds a decoded map near 56 MB whatever its file size; real bundles of several MB have
/// a few hundred thousand.
pub const MAX_MAP_TOKENS: u32 = 2_000_000;
/// Memory of one decoded token (position, source, name indexes and the crate's indexes).
pub const BYTES_PER_TOKEN: usize = 28;

/// Decodes a source map (regular or index; index maps are flattened once here). A map over
/// [`MAX_MAP_TOKENS`] is refused as too large.
pub fn load_map(map: &[u8], minified: Option<&[u8]>) -> Result<LoadedMap, ProtocolError> {
    let map = match sourcemap::decode_slice(map) {
        Ok(DecodedMap::Regular(m)) => m,
        Ok(DecodedMap::Index(i)) => i
            .flatten()
            .map_err(|e| bad(format!("index source map does not flatten: {e}")))?,
        Ok(_) => return Err(bad("Hermes source maps are not supported")),
        Err(sourcemap::Error::BadJson(e)) => {
            return Err(bad(format!("source map is not JSON: {e}")))
        }
        Err(e) => return Err(bad(format!("source map does not decode: {e}"))),
    };
    if map.get_token_count() > MAX_MAP_TOKENS {
        return Err(ProtocolError::TooLarge(format!(
            "source map has {} mappings; at most {MAX_MAP_TOKENS} are accepted",
            map.get_token_count()
        )));
    }
    let minified = minified.and_then(|m| std::str::from_utf8(m).ok());
    let ascii_lines = minified
        .map(|m| m.split('\n').map(str::is_ascii).collect())
        .unwrap_or_default();
    let columns = minified
        .map(|m| {
            m.split('\n')
                .enumerate()
                .filter(|(_, l)| !l.is_ascii())
                .map(|(i, l)| (u32::try_from(i).unwrap_or(u32::MAX), column_index(l)))
                .collect()
        })
        .unwrap_or_default();
    let minified = minified.map(|s| SourceView::from_string(s.to_string()));
    Ok(LoadedMap {
        map,
        minified,
        ascii_lines,
        columns,
    })
}

/// Tokens walked back from a frame's position looking for `function <name>` (as the `sourcemap`
/// crate's own guess does).
const NAME_SEARCH_TOKENS: u32 = 128;

/// Longest minified function name looked for (minified names are a few characters).
const MAX_NAME_CHARS: usize = 256;

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

impl LoadedMap {
    /// About how much memory the decoded map holds, given the bytes of its files (kept as
    /// source views): what caches count, since a decoded map costs many times its file.
    pub fn estimated_bytes(&self, file_bytes: usize) -> usize {
        let columns: usize = self.columns.values().map(|c| c.len() * 8).sum();
        (self.map.get_token_count() as usize)
            .saturating_mul(BYTES_PER_TOKEN)
            .saturating_add(file_bytes)
            .saturating_add(columns)
            .saturating_add(self.ascii_lines.len())
    }

    /// The minified identifier a token points at.
    fn minified_ident(&self, line: u32, col: u32) -> Option<&str> {
        let text = self.minified.as_ref()?.get_line(line)?;
        // Columns count UTF-16 units: on an ASCII line (nearly every bundle) they are byte
        // offsets; elsewhere the nearest remembered column before it is found and at most
        // [`COLUMN_STEP`] characters are walked from there.
        let start = if self.ascii_lines.get(line as usize) == Some(&true) {
            col as usize
        } else {
            let index = self.columns.get(&line)?;
            let at = index.partition_point(|&(units, _)| units <= col);
            let (mut units, byte) = *index.get(at.checked_sub(1)?)?;
            let byte = byte as usize;
            let mut start = text.len();
            for (i, ch) in text.get(byte..)?.char_indices().take(COLUMN_STEP + 1) {
                if units >= col {
                    start = byte + i;
                    break;
                }
                units = units.saturating_add(ch.len_utf16() as u32);
            }
            start
        };
        let rest = text.get(start..)?;
        // Only names up to MAX_NAME_CHARS are compared: a longer identifier is cut there (and
        // then matches nothing), never scanned to its end.
        let end = rest
            .char_indices()
            .take(MAX_NAME_CHARS + 1)
            .find(|(_, c)| !is_ident_char(*c))
            .map_or_else(
                || {
                    rest.char_indices()
                        .nth(MAX_NAME_CHARS + 1)
                        .map_or(rest.len(), |(i, _)| i)
                },
                |(i, _)| i,
            );
        rest.get(..end).filter(|s| !s.is_empty())
    }

    /// The original name of the function a minified frame is in: the nearest `function <name>`
    /// before the position whose `<name>` is the frame's minified function name, mapped back.
    fn original_function_name(&self, line: u32, col: u32, minified: &str) -> Option<String> {
        if self.minified.is_none()
            || minified.len() > MAX_NAME_CHARS
            || !minified.chars().all(is_ident_char)
        {
            return None;
        }
        // The last token at or before the position (tokens are sorted by position).
        let (mut lo, mut hi) = (0u32, self.map.get_token_count());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let t = self.map.get_token(mid as usize)?;
            if (t.get_dst_line(), t.get_dst_col()) <= (line, col) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let last = lo.checked_sub(1)?;
        let first = last.saturating_sub(NAME_SEARCH_TOKENS);
        let mut later: Option<sourcemap::Token<'_>> = None;
        for idx in (first..=last).rev() {
            let t = self.map.get_token(idx as usize)?;
            if let Some(name_token) = later {
                let is_decl = self.minified_ident(t.get_dst_line(), t.get_dst_col())
                    == Some("function")
                    && self.minified_ident(name_token.get_dst_line(), name_token.get_dst_col())
                        == Some(minified);
                if is_decl {
                    return name_token.get_name().map(str::to_string);
                }
            }
            later = Some(t);
        }
        None
    }
}

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
                    match resolve_frame(f, found, line, col, caller_name.as_deref()) {
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

/// Resolves one frame; returns `None` if the map has no mapping at its position, else the name of
/// the original token there (the callee's name when this frame is a call site), if it has one.
fn resolve_frame(
    f: &mut Value,
    found: &FoundMap,
    line: u64,
    col: u64,
    caller_name: Option<&str>,
) -> Option<Option<String>> {
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
    let minified_fn = f
        .get("function")
        .and_then(Value::as_str)
        .map(str::to_string);
    let original_fn = match minified_fn.as_deref() {
        Some(name) if !name.is_empty() && name != "?" => {
            let short = name.rsplit('.').next().unwrap_or(name);
            found.map.original_function_name(l0, c0, short)
        }
        _ => None,
    }
    .or_else(|| caller_name.map(str::to_string))
    .or(minified_fn);
    let filename = clean_source(source);
    let obj = f.as_object_mut()?;
    if obj.contains_key("module") {
        obj.insert("module".into(), Value::String(module_of(&filename)));
    }
    obj.insert(
        "abs_path".into(),
        Value::String(resolve_url(&found.url, source)),
    );
    obj.insert("filename".into(), Value::String(filename.clone()));
    obj.insert("lineno".into(), json!(u64::from(src_line) + 1));
    obj.insert("colno".into(), json!(u64::from(token.get_src_col()) + 1));
    if let Some(name) = original_fn {
        obj.insert("function".into(), Value::String(name));
    }
    if let Some(view) = map.get_source_view(token.get_src_id()) {
        let lines = |from: u32, to: u32| -> Vec<Value> {
            (from..to)
                .filter_map(|i| view.get_line(i))
                .map(|l| Value::String(trim_line(l)))
                .collect()
        };
        if let Some(cl) = view.get_line(src_line) {
            obj.insert(
                "pre_context".into(),
                Value::Array(lines(src_line.saturating_sub(CONTEXT_LINES), src_line)),
            );
            obj.insert("context_line".into(), Value::String(trim_line(cl)));
            obj.insert(
                "post_context".into(),
                Value::Array(lines(
                    src_line + 1,
                    src_line.saturating_add(1 + CONTEXT_LINES),
                )),
            );
        }
    } else {
        for k in ["pre_context", "context_line", "post_context"] {
            obj.remove(k);
        }
    }
    let in_app = !filename.contains("node_modules/");
    obj.insert("in_app".into(), Value::Bool(in_app));
    obj.insert(
        "data".into(),
        json!({ "sourcemap": found.url, "resolved_with": found.via, "symbolicated": true }),
    );
    Some(
        token
            .get_name()
            .filter(|n| !n.is_empty())
            .map(str::to_string),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // esbuild 0.25 `--bundle --format=iife --minify --sourcemap` of
    // `function checkout(cart) {\n  throw new Error("empty cart");\n}\ncheckout([]);\n`.
    const MINIFIED: &str = "(()=>{function r(t){throw new Error(\"empty cart\")}r([]);})();\n";
    const MAP: &str = r#"{"version": 3, "sources": ["../cart.js"], "sourcesContent": ["function checkout(cart) {\n  throw new Error(\"empty cart\");\n}\ncheckout([]);\n"], "mappings": "MAAA,SAASA,EAASC,EAAM,CACtB,MAAM,IAAI,MAAM,YAAY,CAC9B,CACAD,EAAS,CAAC,CAAC", "names": ["checkout", "cart"]}"#;

    fn found() -> FoundMap {
        FoundMap {
            map: Arc::new(load_map(MAP.as_bytes(), Some(MINIFIED.as_bytes())).unwrap()),
            url: "~/static/app.min.js.map".into(),
            via: "release",
        }
    }

    fn event() -> Value {
        json!({"platform": "javascript", "exception": {"values": [{"type": "Error", "value": "empty cart",
        "stacktrace": {"frames": [
            {"abs_path": "http://localhost/static/app.min.js", "filename": "app.min.js", "function": "?", "lineno": 1, "colno": 51},
            {"abs_path": "http://localhost/static/app.min.js", "filename": "app.min.js", "function": "r", "lineno": 1, "colno": 27},
            {"abs_path": "http://localhost/node_modules/lib/x.js", "function": "x", "lineno": 1, "colno": 1}
        ]}}]}})
    }

    #[test]
    fn frames_resolve_to_the_original_file_line_function_and_context() {
        let mut body = event();
        let key = FrameSource {
            abs_path: "http://localhost/static/app.min.js".into(),
            debug_id: None,
        };
        let maps = HashMap::from([(key, found())]);
        let out = symbolicate(&mut body, &maps);
        assert_eq!(
            out,
            Outcome {
                resolved: 2,
                unresolved: 1
            },
            "{body:#}"
        );
        let exc = &body["exception"]["values"][0];
        let top = &exc["stacktrace"]["frames"][1];
        assert_eq!(top["filename"], "cart.js");
        assert_eq!(top["lineno"], 2);
        assert_eq!(top["function"], "checkout");
        assert_eq!(top["context_line"], "  throw new Error(\"empty cart\");");
        assert_eq!(top["pre_context"], json!(["function checkout(cart) {"]));
        assert_eq!(top["in_app"], true);
        // The minified frame is kept, and a node_modules frame is not the app's code.
        assert_eq!(exc["raw_stacktrace"]["frames"][1]["function"], "r");
        assert_eq!(exc["raw_stacktrace"]["frames"][1]["colno"], 27);
        assert_eq!(exc["stacktrace"]["frames"][2]["in_app"], false);
    }

    #[test]
    fn bad_maps_are_refused_and_out_of_range_mappings_do_not_resolve_context() {
        let e = load_map(b"not json", None).unwrap_err().to_string();
        assert!(e.contains("not JSON"), "{e}");
        // A mapping to source #1 when there is one source.
        let bad_source = r#"{"version":3,"sources":["a.js"],"names":[],"mappings":"ACAA"}"#;
        let e = load_map(bad_source.as_bytes(), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("source #1"), "{e}");
        // A mapping to line 49 of a two-line source: the frame gets the line, no context.
        let far = r#"{"version":3,"sources":["a.js"],"sourcesContent":["x\ny\n"],"names":[],"mappings":"AAgDA"}"#;
        let found = FoundMap {
            map: Arc::new(load_map(far.as_bytes(), None).unwrap()),
            url: "~/a.min.js.map".into(),
            via: "release",
        };
        let mut body = json!({"exception": {"values": [{"type": "E", "stacktrace": {"frames": [
            {"abs_path": "~/a.min.js", "lineno": 1, "colno": 1}]}}]}});
        let key = FrameSource {
            abs_path: "~/a.min.js".into(),
            debug_id: None,
        };
        symbolicate(&mut body, &HashMap::from([(key, found)]));
        let f = &body["exception"]["values"][0]["stacktrace"]["frames"][0];
        assert_eq!(f["lineno"], 49);
        assert!(f.get("context_line").is_none());
    }

    /// One source-map VLQ for a non-negative value.
    fn vlq(v: u32) -> String {
        const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let (mut v, mut out) = (v << 1, String::new());
        loop {
            let mut digit = v & 31;
            v >>= 5;
            if v > 0 {
                digit |= 32;
            }
            out.push(B64[digit as usize] as char);
            if v == 0 {
                return out;
            }
        }
    }

    #[test]
    fn a_long_non_ascii_line_resolves_names_and_frames_past_the_cap_stay_minified() {
        // The same bundle behind a 200,000-character non-ASCII comment on its single line: each
        // name lookup used to walk the line from its start, 128 times per frame.
        let pad = 200_000u32;
        let minified = format!("/*{}*/{MINIFIED}", "é".repeat(pad as usize));
        let map = MAP.replacen("\"MAAA,", &format!("\"{},", vlq(6 + pad + 4)), 1);
        let found = FoundMap {
            map: Arc::new(load_map(map.as_bytes(), Some(minified.as_bytes())).unwrap()),
            url: "~/static/app.min.js.map".into(),
            via: "release",
        };
        let frame = json!({"abs_path": "http://localhost/static/app.min.js", "function": "r",
            "lineno": 1, "colno": 27 + pad + 4});
        let n = MAX_FRAMES_PER_EVENT + 50;
        let mut body = json!({"platform": "javascript", "exception": {"values": [{"type": "Error",
            "stacktrace": {"frames": vec![frame; n]}}]}});
        let key = FrameSource {
            abs_path: "http://localhost/static/app.min.js".into(),
            debug_id: None,
        };
        let out = symbolicate(&mut body, &HashMap::from([(key, found)]));
        assert_eq!(
            out,
            Outcome {
                resolved: MAX_FRAMES_PER_EVENT,
                unresolved: 50
            }
        );
        let frames = &body["exception"]["values"][0]["stacktrace"]["frames"];
        assert_eq!(frames[0]["function"], "checkout");
        assert_eq!(frames[0]["filename"], "cart.js");
        assert_eq!(frames[0]["lineno"], 2);
        assert_eq!(frames[n - 1]["function"], "r", "over the cap: as sent");
        // Every frame from its own file: only the first few files are looked up.
        let frames: Vec<Value> = (0..n)
            .map(|i| json!({"abs_path": format!("~/{i}.js"), "lineno": 1, "colno": 1}))
            .collect();
        let body = json!({"platform": "node", "exception": {"values": [{"type": "E",
            "stacktrace": {"frames": frames}}]}});
        assert_eq!(sources(&body).len(), MAX_SOURCES_PER_EVENT);
    }

    fn bundle(files: usize) -> Vec<u8> {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default();
        let mut manifest = serde_json::Map::new();
        for i in 0..files {
            zip.start_file(format!("files/m{i}"), opts).unwrap();
            zip.write_all(MAP.as_bytes()).unwrap();
            manifest.insert(
                format!("m{i}"),
                json!({"url": format!("~/m{i}.js.map"), "type": "source_map"}),
            );
        }
        zip.start_file("manifest.json", opts).unwrap();
        zip.write_all(json!({"files": manifest}).to_string().as_bytes())
            .unwrap();
        zip.finish().unwrap().into_inner()
    }

    #[test]
    fn bundles_over_their_file_count_or_unpacked_size_are_refused() {
        let limits = BundleLimits {
            max_files: 2,
            max_file_bytes: 1 << 20,
            max_total_bytes: 2 * MAP.len() as u64,
        };
        let b = read_artifact_bundle(&bundle(1), &limits).unwrap();
        assert_eq!(b.files.len(), 1);
        // Two maps fill the total exactly; the manifest counts too.
        let e = read_artifact_bundle(&bundle(2), &limits).unwrap_err();
        assert!(matches!(e, ProtocolError::TooLarge(_)), "{e}");
        let e = read_artifact_bundle(&bundle(3), &limits).unwrap_err();
        assert!(e.to_string().contains("at most 2"), "{e}");
    }

    #[test]
    fn urls_match_exactly_or_by_path_under_tilde() {
        assert_eq!(
            url_candidates("https://cdn.example.com/static/app.min.js?v=3"),
            vec![
                "https://cdn.example.com/static/app.min.js",
                "~/static/app.min.js"
            ]
        );
        assert_eq!(
            url_candidates("app:///static/app.min.js"),
            vec!["app:///static/app.min.js", "~/static/app.min.js"]
        );
        assert_eq!(
            resolve_url("~/static/app.min.js", "app.min.js.map"),
            "~/static/app.min.js.map"
        );
        assert_eq!(
            resolve_url("~/static/app.min.js.map", "../../src/cart.js"),
            "~/src/cart.js"
        );
        assert_eq!(
            resolve_url("https://cdn.example.com/js/app.js.map", "./src/./a.js"),
            "https://cdn.example.com/js/src/a.js"
        );
        assert_eq!(
            normalize_debug_id("C0FFEE00AAAA4BBB8CCC123456789ABC").as_deref(),
            Some("c0ffee00-aaaa-4bbb-8ccc-123456789abc")
        );
        assert_eq!(normalize_debug_id("nope"), None);
    }
}
