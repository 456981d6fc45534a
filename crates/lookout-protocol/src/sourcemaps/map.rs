//! One decoded source map (the kept `sourcemap` crate's), with the minified file it belongs to:
//! token lookups at UTF-16 columns and original function names from the minified identifiers.

use std::collections::HashMap;

use sourcemap::{DecodedMap, SourceMap, SourceView};

use super::bundle::bad;
use crate::ProtocolError;

/// A decoded source map, with the minified file it belongs to when known (for function names).
pub struct LoadedMap {
    pub(super) map: SourceMap,
    minified: Option<SourceView>,
    /// Per line of the minified file: whether it is ASCII (then columns are byte offsets).
    ascii_lines: Vec<bool>,
    /// For non-ASCII lines only: `(UTF-16 column, byte offset)` every [`COLUMN_STEP`] characters,
    /// built once per map so a column is found by a search and a walk of at most a step, never
    /// by walking a (often single, megabytes long) line from its start on every lookup.
    columns: HashMap<u32, Vec<(u32, u32)>>,
    /// Indexes of the tokens at a `function` keyword of the minified file, ascending: found once
    /// per map, so naming a frame's function is a search in this list rather than reading the
    /// minified text at every token before the frame (most of what resolving a frame cost).
    declarations: Vec<u32>,
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
    let mut loaded = LoadedMap {
        map,
        minified,
        ascii_lines,
        columns,
        declarations: Vec::new(),
    };
    if loaded.minified.is_some() {
        loaded.declarations = (0..loaded.map.get_token_count())
            .filter(|&i| {
                loaded.map.get_token(i as usize).is_some_and(|t| {
                    loaded.minified_ident(t.get_dst_line(), t.get_dst_col()) == Some("function")
                })
            })
            .collect();
    }
    Ok(loaded)
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
            .saturating_add(self.declarations.len() * 4)
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
    pub(super) fn original_function_name(
        &self,
        line: u32,
        col: u32,
        minified: &str,
    ) -> Option<String> {
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
        // The `function` keywords in [first, last), nearest first: each is followed by the
        // token of the name it declares.
        let below = self.declarations.partition_point(|&d| d < last);
        for &decl in self.declarations.get(..below)?.iter().rev() {
            if decl < first {
                break;
            }
            let Some(name_token) = self.map.get_token(decl as usize + 1) else {
                continue;
            };
            if self.minified_ident(name_token.get_dst_line(), name_token.get_dst_col())
                == Some(minified)
            {
                return name_token.get_name().map(str::to_string);
            }
        }
        None
    }
}
