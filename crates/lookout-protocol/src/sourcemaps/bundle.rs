//! Artifact bundles as `sentry-cli` builds them (a `SYSB` header, then a zip with
//! `manifest.json`): their limits, file kinds and reading, every map decoded at upload.

use std::collections::BTreeMap;
use std::io::Read;

use serde_json::Value;

use super::map::load_map;
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

pub(super) fn bad(msg: impl Into<String>) -> ProtocolError {
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
