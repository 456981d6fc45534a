//! Raw spans as stored: blocks of one export's spans from one resource, compressed, each with a
//! summary that lets a search skip it, and the keys of the traces it holds.
//!
//! A row per span cost the ingest path a B-tree insert per span into the table and each of its
//! indexes; at tens of thousands of spans a second that was the ceiling. A block costs one row,
//! plus one small trace-index entry per distinct trace, and reads decode only the blocks their
//! summaries cannot rule out. RED figures never read blocks: they come from the rollups.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::span::{fnv64, Category, Span};

/// Most spans in one block, so that one decode stays small however large an export is.
pub const MAX_SPANS: usize = 1024;

/// First byte of an encoded block: JSON spans, zstd-compressed.
const VERSION: u8 = 1;

/// Refuse to inflate a stored block beyond this (a corrupt row must not exhaust memory).
const MAX_DECODED: usize = 64 << 20;

/// What a search may learn about a block without decoding it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Earliest span start, ns.
    pub first_ns: i64,
    /// Latest span start, ns.
    pub last_ns: i64,
    /// Spans.
    pub spans: i64,
    /// Failed spans.
    pub errors: i64,
    /// Longest span of each category, ns, in [`Category`] order (request, db, external,
    /// internal); 0 when the block has none.
    pub max_ns: [i64; 4],
    /// Request spans.
    pub requests: i64,
    /// Failed request spans.
    pub request_errors: i64,
    /// Total duration of request spans, ns.
    pub request_ns: i64,
}

/// Index of `c` in [`Summary::max_ns`].
pub fn category_index(c: Category) -> usize {
    match c {
        Category::Request => 0,
        Category::Db => 1,
        Category::External => 2,
        Category::Internal => 3,
    }
}

/// One block ready to store.
#[derive(Debug, Clone)]
pub struct Block {
    /// Service of every span in it.
    pub service: String,
    /// Instance of every span in it.
    pub instance: Option<String>,
    /// Resource hash of every span in it.
    pub resource: String,
    /// See [`Summary`].
    pub summary: Summary,
    /// [`trace_key`] of each distinct trace in the block.
    pub trace_keys: Vec<i64>,
    /// The spans, encoded (see [`decode`]).
    pub payload: Vec<u8>,
}

/// The index key of a trace: its first 64 bits (trace ids are random), or a hash of an id that
/// is not hex. Two traces may share a key; readers compare the full id.
pub fn trace_key(trace_id: &str) -> i64 {
    match trace_id
        .get(..16)
        .and_then(|h| u64::from_str_radix(h, 16).ok())
    {
        Some(k) => k as i64,
        None => fnv64(trace_id.as_bytes()) as i64,
    }
}

/// Groups `spans` into blocks by resource (service, instance and resource attributes), in
/// arrival order, at most [`MAX_SPANS`] each.
pub fn blocks(spans: &[Span]) -> Vec<Block> {
    let mut groups: Vec<Vec<&Span>> = Vec::new();
    let mut by_resource: HashMap<(&str, Option<&str>, &str), usize> = HashMap::new();
    for s in spans {
        let key = (
            s.service.as_str(),
            s.instance.as_deref(),
            s.resource.as_str(),
        );
        let i = *by_resource.entry(key).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[i].push(s);
    }
    groups
        .iter()
        .flat_map(|g| g.chunks(MAX_SPANS))
        .map(block_of)
        .collect()
}

fn block_of(spans: &[&Span]) -> Block {
    let mut summary = Summary {
        first_ns: i64::MAX,
        last_ns: i64::MIN,
        ..Summary::default()
    };
    let mut keys: Vec<i64> = Vec::new();
    for s in spans {
        summary.first_ns = summary.first_ns.min(s.start_ns);
        summary.last_ns = summary.last_ns.max(s.start_ns);
        summary.spans += 1;
        summary.errors += i64::from(s.error);
        let m = &mut summary.max_ns[category_index(s.category)];
        *m = (*m).max(s.duration_ns);
        if s.category == Category::Request {
            summary.requests += 1;
            summary.request_errors += i64::from(s.error);
            summary.request_ns = summary.request_ns.saturating_add(s.duration_ns);
        }
        keys.push(trace_key(&s.trace_id));
    }
    keys.sort_unstable();
    keys.dedup();
    let first = spans[0];
    Block {
        service: first.service.clone(),
        instance: first.instance.clone(),
        resource: first.resource.clone(),
        summary,
        trace_keys: keys,
        payload: encode(spans),
    }
}

/// The per-span fields of a stored span (service, instance and resource are the block's).
#[derive(Serialize)]
struct Out<'a> {
    t: &'a str,
    s: &'a str,
    p: Option<&'a str>,
    n: &'a str,
    k: i64,
    b: i64,
    d: i64,
    st: i64,
    e: bool,
    c: &'static str,
    o: &'a str,
    sc: &'a str,
    h: Option<i64>,
    ds: Option<&'a str>,
    dq: Option<&'a str>,
    pe: Option<&'a str>,
    x: &'a str,
}

#[derive(Deserialize)]
struct In {
    t: String,
    s: String,
    p: Option<String>,
    n: String,
    k: i64,
    b: i64,
    d: i64,
    st: i64,
    e: bool,
    c: String,
    o: String,
    sc: String,
    h: Option<i64>,
    ds: Option<String>,
    dq: Option<String>,
    pe: Option<String>,
    x: String,
}

fn encode(spans: &[&Span]) -> Vec<u8> {
    let out: Vec<Out> = spans
        .iter()
        .map(|s| Out {
            t: &s.trace_id,
            s: &s.span_id,
            p: s.parent_span_id.as_deref(),
            n: &s.name,
            k: s.kind,
            b: s.start_ns,
            d: s.duration_ns,
            st: s.status,
            e: s.error,
            c: s.category.as_str(),
            o: &s.operation,
            sc: &s.status_class,
            h: s.http_status,
            ds: s.db_system.as_deref(),
            dq: s.db_statement.as_deref(),
            pe: s.peer.as_deref(),
            x: &s.detail,
        })
        .collect();
    // Serialising plain structs into a Vec cannot fail.
    let json = serde_json::to_vec(&out).unwrap_or_default();
    let mut bytes = vec![VERSION];
    bytes.extend(compress(&json));
    bytes
}

/// zstd level 1 (the ingest path pays for this on every export; it still shrinks spans ~8x),
/// with one compression context per thread: a fresh context allocates and clears megabytes,
/// which under ingest cost more than the compression itself (measured with perf).
pub(crate) fn compress(bytes: &[u8]) -> Vec<u8> {
    thread_local! {
        static CONTEXT: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    CONTEXT.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = zstd::bulk::Compressor::new(1).ok();
        }
        match c.as_mut() {
            Some(z) => z.compress(bytes).unwrap_or_default(),
            None => zstd::bulk::compress(bytes, 1).unwrap_or_default(),
        }
    })
}

/// Why a stored block could not be read.
#[derive(Debug, thiserror::Error)]
#[error("unreadable span block: {0}")]
pub struct BlockError(String);

/// The spans of an encoded block, with the block's `service`, `instance` and `resource`.
pub fn decode(
    bytes: &[u8],
    service: &str,
    instance: Option<&str>,
    resource: &str,
) -> Result<Vec<Span>, BlockError> {
    let Some((&VERSION, body)) = bytes.split_first() else {
        return Err(BlockError("unknown version".into()));
    };
    let json = zstd::bulk::decompress(body, MAX_DECODED).map_err(|e| BlockError(e.to_string()))?;
    let spans: Vec<In> = serde_json::from_slice(&json).map_err(|e| BlockError(e.to_string()))?;
    Ok(spans
        .into_iter()
        .map(|s| Span {
            trace_id: s.t,
            span_id: s.s,
            parent_span_id: s.p,
            service: service.to_string(),
            instance: instance.map(str::to_string),
            name: s.n,
            kind: s.k,
            start_ns: s.b,
            duration_ns: s.d,
            status: s.st,
            error: s.e,
            category: match s.c.as_str() {
                "request" => Category::Request,
                "db" => Category::Db,
                "external" => Category::External,
                _ => Category::Internal,
            },
            operation: s.o,
            status_class: s.sc,
            http_status: s.h,
            db_system: s.ds,
            db_statement: s.dq,
            peer: s.pe,
            resource: resource.to_string(),
            detail: s.x,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(trace: &str, service: &str, category: Category, ms: i64, error: bool) -> Span {
        Span {
            trace_id: trace.into(),
            span_id: format!("{:016x}", ms),
            parent_span_id: None,
            service: service.into(),
            instance: Some("i-1".into()),
            name: "GET /x".into(),
            kind: 2,
            start_ns: 1_700_000_000_000_000_000 + ms,
            duration_ns: ms * 1_000_000,
            status: 0,
            error,
            category,
            operation: "GET /x".into(),
            status_class: "2xx".into(),
            http_status: Some(200),
            db_system: None,
            db_statement: None,
            peer: None,
            resource: "r1".into(),
            detail: r#"{"attributes":{"a":"\"quoted\""}}"#.into(),
        }
    }

    #[test]
    fn a_block_round_trips_and_summarises_its_spans() {
        let t1 = "0af7651916cd43dd8448eb211c80319c";
        let spans = vec![
            span(t1, "shop", Category::Request, 120, true),
            span(t1, "shop", Category::Db, 30, false),
            span(
                "ffffffffffffffff0000000000000001",
                "shop",
                Category::Request,
                80,
                false,
            ),
        ];
        let b = blocks(&spans);
        assert_eq!(b.len(), 1);
        let s = &b[0].summary;
        assert_eq!(
            (s.spans, s.errors, s.requests, s.request_errors),
            (3, 1, 2, 1)
        );
        assert_eq!(s.max_ns, [120_000_000, 30_000_000, 0, 0]);
        assert_eq!(s.request_ns, 200_000_000);
        assert_eq!(s.first_ns, spans[1].start_ns);
        assert_eq!(s.last_ns, spans[0].start_ns);
        assert_eq!(b[0].trace_keys.len(), 2);
        assert!(b[0].trace_keys.contains(&trace_key(t1)));
        let back = decode(&b[0].payload, "shop", Some("i-1"), "r1").unwrap();
        assert_eq!(back, spans);
    }

    #[test]
    fn spans_of_different_resources_go_to_different_blocks_and_big_exports_are_split() {
        let mut spans: Vec<Span> = (0..MAX_SPANS as i64 + 5)
            .map(|i| {
                span(
                    "0af7651916cd43dd8448eb211c80319c",
                    "a",
                    Category::Internal,
                    i,
                    false,
                )
            })
            .collect();
        spans.push(span(
            "0af7651916cd43dd8448eb211c80319c",
            "b",
            Category::Request,
            1,
            false,
        ));
        let b = blocks(&spans);
        let sizes: Vec<(String, i64)> = b
            .iter()
            .map(|b| (b.service.clone(), b.summary.spans))
            .collect();
        assert_eq!(
            sizes,
            [
                ("a".into(), MAX_SPANS as i64),
                ("a".into(), 5),
                ("b".into(), 1)
            ]
        );
    }

    #[test]
    fn trace_keys_read_hex_ids_and_hash_anything_else() {
        assert_eq!(trace_key("0000000000000010ffffffffffffffff"), 16);
        assert_eq!(trace_key("ffffffffffffffff0000000000000000"), -1);
        assert_eq!(trace_key("not-hex"), trace_key("not-hex"));
        assert_ne!(trace_key("not-hex"), trace_key("not-hey"));
    }

    #[test]
    fn a_corrupt_block_is_an_error_not_a_panic() {
        assert!(decode(&[], "s", None, "r").is_err());
        assert!(decode(&[9, 1, 2], "s", None, "r").is_err());
        assert!(decode(&[VERSION, 1, 2, 3], "s", None, "r").is_err());
    }
}
