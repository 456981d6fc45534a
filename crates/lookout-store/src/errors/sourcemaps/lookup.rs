//! Finding the map for a frame's source (debug id first, then release, dist and URL), the bounded
//! cache of lookups and decoded maps, and symbolicating one event with them.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha1::Digest;
use sqlx::Row;

use super::generation;
use crate::{Result, Store, StoreError};
use lookout_protocol::sourcemaps::{self as sm, FoundMap, FrameSource, Outcome};

/// A stored file's identity and what a lookup needs of it.
struct FileRow {
    id: i64,
    url: String,
    sourcemap_ref: Option<String>,
}

async fn file_where(
    store: &Store,
    sql: &str,
    project_id: i64,
    binds: &[Option<String>],
) -> Result<Option<FileRow>> {
    let mut q = sqlx::query(sql).bind(project_id);
    for b in binds {
        q = q.bind(b.clone());
    }
    let Some(r) = q.fetch_optional(store.pool()).await? else {
        return Ok(None);
    };
    Ok(Some(FileRow {
        id: r.try_get("id")?,
        url: r.try_get("url")?,
        sourcemap_ref: r.try_get("sourcemap_ref")?,
    }))
}

/// A file's bytes; `None` if it was deleted since it was found (on this or another replica).
async fn file_data(store: &Store, id: i64) -> Result<Option<Vec<u8>>> {
    let row = sqlx::query("SELECT data FROM source_files WHERE id = $1")
        .bind(id)
        .fetch_optional(store.pool())
        .await?;
    Ok(row.map(|r| r.try_get("data")).transpose()?)
}

/// Where a frame's map is: the map file, the minified file (for function names), how found.
#[derive(Debug, Clone)]
struct Located {
    map_id: i64,
    minified_id: Option<i64>,
    url: String,
    via: &'static str,
}

/// Finds the map for a frame source: by debug id, else by release + dist + URL candidates.
async fn locate(
    store: &Store,
    project_id: i64,
    src: &FrameSource,
    release: Option<&str>,
    dist: Option<&str>,
) -> Result<Option<Located>> {
    const COLS: &str = "id, url, sourcemap_ref";
    if let Some(id) = &src.debug_id {
        let map = file_where(
            store,
            &format!("SELECT {COLS} FROM source_files WHERE project_id = $1 AND debug_id = $2 AND kind = 'source_map' ORDER BY id DESC LIMIT 1"),
            project_id,
            &[Some(id.clone())],
        )
        .await?;
        if let Some(map) = map {
            let minified = file_where(
                store,
                &format!("SELECT {COLS} FROM source_files WHERE project_id = $1 AND debug_id = $2 AND kind = 'minified_source' ORDER BY id DESC LIMIT 1"),
                project_id,
                &[Some(id.clone())],
            )
            .await?;
            return Ok(Some(Located {
                map_id: map.id,
                minified_id: minified.map(|m| m.id),
                url: map.url,
                via: "debug-id",
            }));
        }
    }
    let Some(release) = release else {
        return Ok(None);
    };
    let by_url = |kind: &'static str, url: String| {
        let sql = format!(
            "SELECT {COLS} FROM source_files WHERE project_id = $1 AND release = $2
               AND COALESCE(dist, '') = $3 AND url = $4 AND kind = '{kind}' ORDER BY id DESC LIMIT 1"
        );
        let binds = [
            Some(release.to_string()),
            Some(dist.unwrap_or("").to_string()),
            Some(url),
        ];
        async move { file_where(store, &sql, project_id, &binds).await }
    };
    for cand in sm::url_candidates(&src.abs_path) {
        let minified = by_url("minified_source", cand.clone()).await?;
        let map_urls = match &minified {
            Some(m) => match &m.sourcemap_ref {
                Some(r) => vec![sm::resolve_url(&m.url, r)],
                None => vec![format!("{}.map", m.url)],
            },
            None => vec![format!("{cand}.map")],
        };
        for mu in map_urls {
            if let Some(map) = by_url("source_map", mu).await? {
                return Ok(Some(Located {
                    map_id: map.id,
                    minified_id: minified.as_ref().map(|m| m.id),
                    url: map.url,
                    via: "release",
                }));
            }
        }
    }
    Ok(None)
}

/// Decoded maps by file id, bounded by their estimated decoded size; lookups remembered for a minute or
/// until this process stores or deletes source files (a map uploaded through another replica
/// applies within the minute; re-processing skips the memory).
pub struct MapCache {
    inner: Mutex<CacheInner>,
    max_bytes: usize,
}

/// What a lookup is remembered under: the project and a SHA-1 of the frame's source, release
/// and dist. Those come from events, so the key is fixed-size whatever a sender puts in them.
type LookupKey = (i64, [u8; 20]);

/// Frame paths longer than this are not looked up (no uploaded file has such a URL).
const MAX_LOOKUP_PATH: usize = 2048;

fn lookup_key(
    project_id: i64,
    src: &FrameSource,
    release: Option<&str>,
    dist: Option<&str>,
) -> LookupKey {
    let mut h = sha1::Sha1::new();
    // Each part is length-prefixed, so no two different tuples hash the same bytes.
    let parts = [
        Some(src.abs_path.as_str()),
        src.debug_id.as_deref(),
        release,
        dist,
    ];
    for p in parts {
        match p {
            Some(p) => {
                h.update((p.len() as u64 + 1).to_le_bytes());
                h.update(p.as_bytes());
            }
            None => h.update(0u64.to_le_bytes()),
        }
    }
    (project_id, h.finalize().into())
}

#[derive(Default)]
struct CacheInner {
    maps: HashMap<i64, (Arc<sm::LoadedMap>, usize)>,
    order: VecDeque<i64>,
    bytes: usize,
    lookups: HashMap<LookupKey, (Instant, u64, Option<Located>)>,
}

/// How long a lookup's answer (found or not) is reused.
const LOOKUP_TTL: Duration = Duration::from_secs(60);
/// Lookups remembered at most (then the memory is cleared).
const MAX_LOOKUPS: usize = 10_000;

impl MapCache {
    /// A cache holding decoded maps of about `max_bytes` in all (see `LoadedMap::estimated_bytes`).
    pub fn new(max_bytes: usize) -> Self {
        MapCache {
            inner: Mutex::new(CacheInner::default()),
            max_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        // A panic while holding the lock leaves a consistent map (every write is one insert).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn located(
        &self,
        store: &Store,
        project_id: i64,
        src: &FrameSource,
        release: Option<&str>,
        dist: Option<&str>,
        fresh: bool,
    ) -> Result<Option<Located>> {
        let key = lookup_key(project_id, src, release, dist);
        if !fresh {
            if let Some((at, seen, hit)) = self.lock().lookups.get(&key) {
                if at.elapsed() < LOOKUP_TTL && *seen == generation() {
                    return Ok(hit.clone());
                }
            }
        }
        let seen = generation();
        let found = locate(store, project_id, src, release, dist).await?;
        let mut inner = self.lock();
        if inner.lookups.len() >= MAX_LOOKUPS {
            inner.lookups.clear();
        }
        inner
            .lookups
            .insert(key, (Instant::now(), seen, found.clone()));
        Ok(found)
    }

    async fn map(&self, store: &Store, at: &Located) -> Result<Option<Arc<sm::LoadedMap>>> {
        if let Some((m, _)) = self.lock().maps.get(&at.map_id) {
            return Ok(Some(m.clone()));
        }
        // A file deleted since the lookup means no map (or no function names), not an error.
        let Some(map) = file_data(store, at.map_id).await? else {
            return Ok(None);
        };
        let minified = match at.minified_id {
            Some(id) => file_data(store, id).await?,
            None => None,
        };
        let file_bytes = map.len() + minified.as_ref().map_or(0, Vec::len);
        // Decoding a large map takes a while: off the async threads.
        let loaded = tokio::task::spawn_blocking(move || sm::load_map(&map, minified.as_deref()))
            .await
            .map_err(|e| StoreError::Corrupt(format!("map decoding stopped: {e}")))?;
        let loaded = match loaded {
            Ok(m) => Arc::new(m),
            // Checked at upload; a map that fails now resolves nothing rather than failing events.
            Err(e) => {
                tracing::warn!(file = at.map_id, error = %e, "Stored source map does not decode; frames left as sent.");
                return Ok(None);
            }
        };
        let size = loaded.estimated_bytes(file_bytes);
        let mut inner = self.lock();
        // Decoded meanwhile by another event: that copy is kept, counted once.
        if let Some((m, _)) = inner.maps.get(&at.map_id) {
            return Ok(Some(m.clone()));
        }
        inner.maps.insert(at.map_id, (loaded.clone(), size));
        inner.order.push_back(at.map_id);
        inner.bytes += size;
        // A map alone over the budget is used for this event and not kept.
        while inner.bytes > self.max_bytes && !inner.order.is_empty() {
            if let Some(old) = inner.order.pop_front() {
                if let Some((_, s)) = inner.maps.remove(&old) {
                    inner.bytes -= s;
                }
            }
        }
        Ok(Some(loaded))
    }
}

/// The decoded map that serves frames of `src` in an event of `release` and `dist`, if one is
/// stored: a remembered lookup and a cached map when it can (`fresh` skips remembered lookups).
pub async fn found_map(
    store: &Store,
    cache: &MapCache,
    project_id: i64,
    src: &FrameSource,
    release: Option<&str>,
    dist: Option<&str>,
    fresh: bool,
) -> Result<Option<FoundMap>> {
    if src.abs_path.len() > MAX_LOOKUP_PATH {
        return Ok(None);
    }
    let Some(at) = cache
        .located(store, project_id, src, release, dist, fresh)
        .await?
    else {
        return Ok(None);
    };
    Ok(cache.map(store, &at).await?.map(|map| FoundMap {
        map,
        url: at.url.clone(),
        via: at.via,
    }))
}

/// Symbolicates an event's JSON in place. `fresh` skips remembered lookups (re-processing).
pub async fn symbolicate_event(
    store: &Store,
    cache: &MapCache,
    project_id: i64,
    body: &mut serde_json::Value,
    fresh: bool,
) -> Result<Outcome> {
    if !sm::wants_symbolication(body) {
        return Ok(Outcome::default());
    }
    let release = body
        .get("release")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string);
    let dist = body
        .get("dist")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string);
    let mut maps = HashMap::new();
    for src in sm::sources(body) {
        let found = found_map(
            store,
            cache,
            project_id,
            &src,
            release.as_deref(),
            dist.as_deref(),
            fresh,
        )
        .await?;
        if let Some(found) = found {
            maps.insert(src, found);
        }
    }
    if maps.is_empty() {
        return Ok(Outcome::default());
    }
    // Resolving walks maps (bounded per event by frames and time): off the async threads.
    let mut owned = std::mem::take(body);
    let (owned, outcome) = tokio::task::spawn_blocking(move || {
        let outcome = sm::symbolicate(&mut owned, &maps);
        (owned, outcome)
    })
    .await
    .map_err(|e| StoreError::Corrupt(format!("symbolication stopped: {e}")))?;
    *body = owned;
    Ok(outcome)
}
