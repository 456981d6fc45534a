//! Source maps: upload chunks, artifact bundles and their files, legacy release files, releases
//! created by `sentry-cli`, and the lookup (with a bounded cache) that symbolication uses.
//!
//! A bundle is assembled from chunks the client sent earlier, checked against its checksum,
//! read (every map must decode) and written with its files in one transaction: an upload is
//! either all there or not at all. Maps are found by debug id first, then by release, dist and
//! URL (`~/` matching any host), following the minified file's `Sourcemap` reference.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use sha1::Digest;
use sqlx::Row;

use crate::page::{Cursor, Page};
use crate::{Result, Store, StoreError};
use lookout_core::time::now_ms;
use lookout_protocol::sourcemaps::{
    self as sm, ArtifactBundle, BundleFile, FoundMap, FrameSource, Outcome,
};

/// Unassembled chunks are deleted this long after upload.
pub const CHUNK_TTL_MS: i64 = 3_600_000;
/// Bundles and release files are deleted this long after upload (Sentry keeps them 90 days).
pub const FILE_RETENTION_MS: i64 = 90 * 86_400_000;

/// Bumped whenever this process stores or deletes source files, so remembered lookups ("no map
/// for this file") end at once instead of after [`LOOKUP_TTL`]. Other replicas notice within it.
static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn files_changed() {
    GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

fn generation() -> u64 {
    GENERATION.load(std::sync::atomic::Ordering::Relaxed)
}

/// The SHA-1 of bytes, lowercase hex: how chunks and bundles are named.
pub fn sha1_hex(data: &[u8]) -> String {
    hex::encode(sha1::Sha1::digest(data))
}

/// The id of the project with this slug in the organization with this slug.
pub async fn project_by_slug(store: &Store, org_slug: &str, slug: &str) -> Result<Option<i64>> {
    let row = sqlx::query(
        "SELECT p.id FROM projects p JOIN organizations o ON o.id = p.org_id
         WHERE o.slug = $1 AND p.slug = $2",
    )
    .bind(org_slug)
    .bind(slug)
    .fetch_optional(store.pool())
    .await?;
    Ok(row.map(|r| r.try_get("id")).transpose()?)
}

/// Stores uploaded chunks (already checked against their checksums); known ones are kept.
pub async fn put_chunks(store: &Store, chunks: &[(String, Vec<u8>)]) -> Result<()> {
    let now = now_ms();
    let _turn = store.write_gate().await;
    let mut tx = store.begin_write().await?;
    for (checksum, data) in chunks {
        sqlx::query(
            "INSERT INTO upload_chunks (checksum, size, data, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (checksum) DO NOTHING",
        )
        .bind(checksum)
        .bind(i64::try_from(data.len()).unwrap_or(i64::MAX))
        .bind(data.as_slice())
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Which of these chunks the server has, with their sizes.
pub async fn known_chunks(store: &Store, checksums: &[String]) -> Result<HashMap<String, i64>> {
    let mut out = HashMap::new();
    for c in checksums {
        if out.contains_key(c) {
            continue;
        }
        let hit = sqlx::query("SELECT size FROM upload_chunks WHERE checksum = $1")
            .bind(c)
            .fetch_optional(store.pool())
            .await?;
        if let Some(r) = hit {
            out.insert(c.clone(), r.try_get("size")?);
        }
    }
    Ok(out)
}

/// The chunks' bytes, concatenated in order; `None` if one went missing meanwhile. The caller
/// checked their total size with [`known_chunks`].
pub async fn concat_chunks(store: &Store, checksums: &[String]) -> Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    for c in checksums {
        let Some(r) = sqlx::query("SELECT data FROM upload_chunks WHERE checksum = $1")
            .bind(c)
            .fetch_optional(store.pool())
            .await?
        else {
            return Ok(None);
        };
        let data: Vec<u8> = r.try_get("data")?;
        out.extend_from_slice(&data);
    }
    Ok(Some(out))
}

/// Projects (of these) that already hold the bundle with this checksum.
pub async fn bundle_holders(
    store: &Store,
    project_ids: &[i64],
    checksum: &str,
) -> Result<HashSet<i64>> {
    let mut out = HashSet::new();
    for p in project_ids {
        let hit = sqlx::query(
            "SELECT 1 AS one FROM artifact_bundles WHERE project_id = $1 AND checksum = $2",
        )
        .bind(p)
        .bind(checksum)
        .fetch_optional(store.pool())
        .await?;
        if hit.is_some() {
            out.insert(*p);
        }
    }
    Ok(out)
}

/// Stores a read bundle for each project, with its files, in one transaction. The request's
/// release and dist win over the bundle's own attributes (as in Sentry).
pub async fn store_bundle(
    store: &Store,
    project_ids: &[i64],
    checksum: &str,
    release: Option<&str>,
    dist: Option<&str>,
    bundle: &ArtifactBundle,
) -> Result<()> {
    let now = now_ms();
    let release = release.map(str::to_string).or(bundle.release.clone());
    let dist = dist.map(str::to_string).or(bundle.dist.clone());
    let size: usize = bundle.files.iter().map(|f| f.content.len()).sum();
    let _turn = store.write_gate().await;
    let mut tx = store.begin_write().await?;
    for &project_id in project_ids {
        let Some(row) = sqlx::query(
            "INSERT INTO artifact_bundles (project_id, checksum, release, dist, file_count, size, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (project_id, checksum) DO NOTHING RETURNING id",
        )
        .bind(project_id)
        .bind(checksum)
        .bind(release.clone())
        .bind(dist.clone())
        .bind(i64::try_from(bundle.files.len()).unwrap_or(i64::MAX))
        .bind(i64::try_from(size).unwrap_or(i64::MAX))
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?
        else {
            continue; // this project has it already
        };
        let bundle_id: i64 = row.try_get("id")?;
        for f in &bundle.files {
            insert_file(
                &mut tx,
                project_id,
                Some(bundle_id),
                f,
                release.as_deref(),
                dist.as_deref(),
                now,
            )
            .await?;
        }
    }
    tx.commit().await?;
    files_changed();
    Ok(())
}

async fn insert_file(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    project_id: i64,
    bundle_id: Option<i64>,
    f: &BundleFile,
    release: Option<&str>,
    dist: Option<&str>,
    now: i64,
) -> Result<i64> {
    let row = sqlx::query(
        "INSERT INTO source_files (project_id, bundle_id, kind, url, debug_id, release, dist, sourcemap_ref, sha1, size, data, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
    )
    .bind(project_id)
    .bind(bundle_id)
    .bind(f.kind.as_str())
    .bind(&f.url)
    .bind(f.debug_id.clone())
    .bind(release.map(str::to_string))
    .bind(dist.map(str::to_string))
    .bind(f.sourcemap_ref.clone())
    .bind(sha1_hex(&f.content))
    .bind(i64::try_from(f.content.len()).unwrap_or(i64::MAX))
    .bind(f.content.as_slice())
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.try_get("id")?)
}

/// Stores one legacy release file (`POST …/releases/{version}/files/`). A file with the same
/// release, dist and name is replaced, as Sentry does. Returns its id.
pub async fn put_release_file(
    store: &Store,
    project_id: i64,
    release: &str,
    dist: Option<&str>,
    file: &BundleFile,
) -> Result<i64> {
    let now = now_ms();
    let _turn = store.write_gate().await;
    let mut tx = store.begin_write().await?;
    sqlx::query(
        "DELETE FROM source_files WHERE project_id = $1 AND bundle_id IS NULL AND release = $2
           AND COALESCE(dist, '') = $3 AND url = $4",
    )
    .bind(project_id)
    .bind(release)
    .bind(dist.unwrap_or(""))
    .bind(&file.url)
    .execute(&mut *tx)
    .await?;
    let id = insert_file(&mut tx, project_id, None, file, Some(release), dist, now).await?;
    tx.commit().await?;
    files_changed();
    Ok(id)
}

/// A stored source file as lists show it (without its bytes).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SourceFileInfo {
    /// Numeric id.
    pub id: i64,
    /// The artifact bundle it came in; `None` for legacy release files.
    pub bundle_id: Option<i64>,
    /// `minified_source`, `source_map` or `source`.
    pub kind: String,
    /// Its URL (`~/static/app.min.js`).
    pub url: String,
    /// Debug id, if injected.
    pub debug_id: Option<String>,
    /// Release it belongs to, if any.
    pub release: Option<String>,
    /// Dist, if any.
    pub dist: Option<String>,
    /// Bytes.
    pub size: i64,
    /// Uploaded, ms.
    pub created_at: i64,
}

/// Lists a project's uploaded files, newest first; optionally only one release's.
pub async fn list_files(
    store: &Store,
    project_id: i64,
    release: Option<&str>,
    cursor: &Cursor,
) -> Result<Page<SourceFileInfo>> {
    let limit = cursor.limit();
    let before = cursor.after_i64()?.unwrap_or(i64::MAX);
    let rows = sqlx::query(
        "SELECT id, bundle_id, kind, url, debug_id, release, dist, size, created_at FROM source_files
         WHERE project_id = $1 AND id < $2 AND ($3 IS NULL OR release = $3)
         ORDER BY id DESC LIMIT $4",
    )
    .bind(project_id)
    .bind(before)
    .bind(release.map(str::to_string))
    .bind(limit + 1)
    .fetch_all(store.pool())
    .await?;
    let items = rows
        .iter()
        .map(|r| {
            Ok(SourceFileInfo {
                id: r.try_get("id")?,
                bundle_id: r.try_get("bundle_id")?,
                kind: r.try_get("kind")?,
                url: r.try_get("url")?,
                debug_id: r.try_get("debug_id")?,
                release: r.try_get("release")?,
                dist: r.try_get("dist")?,
                size: r.try_get("size")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_rows(items, limit, |f| f.id.to_string()))
}

/// Deletes one uploaded file of a project (a bundle's other files stay).
pub async fn delete_file(store: &Store, project_id: i64, id: i64) -> Result<()> {
    let n = sqlx::query("DELETE FROM source_files WHERE project_id = $1 AND id = $2")
        .bind(project_id)
        .bind(id)
        .execute(store.pool())
        .await?
        .rows_affected();
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    files_changed();
    Ok(())
}

/// A release as `sentry-cli` sees it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Release {
    /// The version string.
    pub version: String,
    /// Created, ms.
    pub created_at: i64,
    /// Finalised (released), ms.
    pub released_at: Option<i64>,
    /// Slugs of its projects.
    pub projects: Vec<String>,
}

/// Creates a release (or adds projects to an existing one); sets its release date if given.
pub async fn upsert_release(
    store: &Store,
    org_id: i64,
    version: &str,
    project_ids: &[i64],
    released_at: Option<i64>,
) -> Result<Release> {
    let now = now_ms();
    let _turn = store.write_gate().await;
    let mut tx = store.begin_write().await?;
    sqlx::query(
        "INSERT INTO releases (org_id, version, created_at, released_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (org_id, version) DO UPDATE SET released_at = COALESCE(excluded.released_at, releases.released_at)",
    )
    .bind(org_id)
    .bind(version)
    .bind(now)
    .bind(released_at)
    .execute(&mut *tx)
    .await?;
    let id: i64 = sqlx::query("SELECT id FROM releases WHERE org_id = $1 AND version = $2")
        .bind(org_id)
        .bind(version)
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
    for p in project_ids {
        sqlx::query(
            "INSERT INTO release_projects (release_id, project_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(p)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    get_release(store, org_id, version)
        .await?
        .ok_or(StoreError::NotFound)
}

/// A release by version.
pub async fn get_release(store: &Store, org_id: i64, version: &str) -> Result<Option<Release>> {
    let Some(r) = sqlx::query(
        "SELECT id, version, created_at, released_at FROM releases WHERE org_id = $1 AND version = $2",
    )
    .bind(org_id)
    .bind(version)
    .fetch_optional(store.pool())
    .await?
    else {
        return Ok(None);
    };
    let id: i64 = r.try_get("id")?;
    let projects = sqlx::query(
        "SELECT p.slug FROM release_projects rp JOIN projects p ON p.id = rp.project_id
         WHERE rp.release_id = $1 ORDER BY p.slug",
    )
    .bind(id)
    .fetch_all(store.pool())
    .await?
    .iter()
    .map(|r| r.try_get("slug"))
    .collect::<std::result::Result<Vec<String>, _>>()?;
    Ok(Some(Release {
        version: r.try_get("version")?,
        created_at: r.try_get("created_at")?,
        released_at: r.try_get("released_at")?,
        projects,
    }))
}

/// What retention removed.
#[derive(Debug, Default, Clone, Copy)]
pub struct SourceRetention {
    /// Chunks.
    pub chunks: u64,
    /// Bundles and release files.
    pub files: u64,
}

/// Deletes stale chunks and expired bundles and release files.
pub async fn enforce_retention(store: &Store) -> Result<SourceRetention> {
    let now = now_ms();
    let chunks = sqlx::query("DELETE FROM upload_chunks WHERE created_at < $1")
        .bind(now - CHUNK_TTL_MS)
        .execute(store.pool())
        .await?
        .rows_affected();
    let cutoff = now - FILE_RETENTION_MS;
    let mut files = sqlx::query("DELETE FROM artifact_bundles WHERE created_at < $1")
        .bind(cutoff)
        .execute(store.pool())
        .await?
        .rows_affected();
    files += sqlx::query("DELETE FROM source_files WHERE bundle_id IS NULL AND created_at < $1")
        .bind(cutoff)
        .execute(store.pool())
        .await?
        .rows_affected();
    if files > 0 {
        files_changed();
    }
    Ok(SourceRetention { chunks, files })
}

// ---------------------------------------------------------------- lookup for symbolication

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
        if src.abs_path.len() > MAX_LOOKUP_PATH {
            continue;
        }
        let found = cache
            .located(
                store,
                project_id,
                &src,
                release.as_deref(),
                dist.as_deref(),
                fresh,
            )
            .await?;
        let Some(at) = found else {
            continue;
        };
        if let Some(map) = cache.map(store, &at).await? {
            maps.insert(
                src,
                FoundMap {
                    map,
                    url: at.url.clone(),
                    via: at.via,
                },
            );
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

/// What re-processing an issue's events did.
#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Reprocessed {
    /// Events looked at (the newest, up to the limit).
    pub events: u64,
    /// Events whose frames changed.
    pub updated: u64,
    /// Frames resolved in all.
    pub frames: u64,
}

/// Events re-processed per request, newest first: an issue with more keeps older events as
/// they are (new events are symbolicated on arrival anyway).
pub const REPROCESS_LIMIT: i64 = 1_000;
/// Events read per query while re-processing.
pub const REPROCESS_PAGE: i64 = 50;

/// Re-symbolicates an issue's newest events from their minified frames with the maps stored
/// now (for events that arrived before their maps), refreshes the issue's culprit, and adds the
/// resolved events' grouping hashes to the issue (later events arrive resolved).
pub async fn reprocess_issue(
    store: &Store,
    cache: &MapCache,
    issue_id: i64,
) -> Result<Reprocessed> {
    let mut out = Reprocessed::default();
    let mut updates: Vec<(i64, String)> = Vec::new();
    let mut newest_culprit: Option<String> = None;
    let mut new_hashes: Vec<(i64, String)> = Vec::new();
    let mut before = i64::MAX;
    let mut i = 0usize;
    // Paged, so at most a page of bodies is read at once (events can be 1 MB each).
    while out.events < REPROCESS_LIMIT as u64 {
        let rows = sqlx::query(
            "SELECT id, project_id, body FROM error_events WHERE issue_id = $1 AND id < $2
             ORDER BY id DESC LIMIT $3",
        )
        .bind(issue_id)
        .bind(before)
        .bind(REPROCESS_PAGE.min(REPROCESS_LIMIT - out.events as i64))
        .fetch_all(store.pool())
        .await?;
        if rows.is_empty() {
            break;
        }
        for r in &rows {
            before = r.try_get("id")?;
            let first = i == 0;
            i += 1;
            out.events += 1;
            reprocess_one(
                store,
                cache,
                r,
                first,
                &mut out,
                &mut updates,
                &mut newest_culprit,
                &mut new_hashes,
            )
            .await?;
        }
        // Written per page, so the rewritten bodies held at once are a page's too.
        out = apply_reprocessed(
            store,
            issue_id,
            out,
            std::mem::take(&mut updates),
            newest_culprit.take(),
            std::mem::take(&mut new_hashes),
        )
        .await?;
    }
    Ok(out)
}

/// Re-symbolicates one stored event, collecting its new body, culprit (for the newest) and
/// hashes; an event that fails to resolve is left as it is.
#[allow(clippy::too_many_arguments)]
async fn reprocess_one(
    store: &Store,
    cache: &MapCache,
    r: &sqlx::any::AnyRow,
    newest: bool,
    out: &mut Reprocessed,
    updates: &mut Vec<(i64, String)>,
    newest_culprit: &mut Option<String>,
    new_hashes: &mut Vec<(i64, String)>,
) -> Result<()> {
    let id: i64 = r.try_get("id")?;
    let project_id: i64 = r.try_get("project_id")?;
    let body: String = r.try_get("body")?;
    let Ok(mut v) = serde_json::from_str::<serde_json::Value>(&body) else {
        return Ok(());
    };
    sm::restore_raw(&mut v);
    let outcome = match symbolicate_event(store, cache, project_id, &mut v, true).await {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(event = id, error = %e, "Re-processing an event failed; left as it was.");
            return Ok(());
        }
    };
    if outcome.resolved == 0 {
        return Ok(());
    }
    out.frames += outcome.resolved as u64;
    let text = v.to_string();
    let clock = lookout_protocol::event::Clock {
        received_ms: now_ms(),
        sent_at_ms: None,
    };
    if let Ok(ev) = lookout_protocol::event::parse_event(text.as_bytes(), None, &clock) {
        if newest {
            *newest_culprit = Some(ev.culprit());
        }
        // New events with these frames resolve on arrival and hash differently from the
        // minified ones: their hashes join this issue, so they do not open another.
        let version: String = sqlx::query("SELECT grouping_version FROM projects WHERE id = $1")
            .bind(project_id)
            .fetch_one(store.pool())
            .await?
            .try_get("grouping_version")?;
        for h in lookout_protocol::grouping::hashes_with(&version, &ev).unwrap_or_default() {
            new_hashes.push((project_id, h));
        }
    }
    if text != body {
        updates.push((id, text));
    }
    Ok(())
}

/// Writes what re-processing found in one transaction.
async fn apply_reprocessed(
    store: &Store,
    issue_id: i64,
    mut out: Reprocessed,
    updates: Vec<(i64, String)>,
    newest_culprit: Option<String>,
    mut new_hashes: Vec<(i64, String)>,
) -> Result<Reprocessed> {
    if updates.is_empty() && newest_culprit.is_none() {
        return Ok(out);
    }
    let _turn = store.write_gate().await;
    let mut tx = store.begin_write().await?;
    for (id, body) in &updates {
        sqlx::query("UPDATE error_events SET body = $1 WHERE id = $2")
            .bind(body)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    new_hashes.sort();
    new_hashes.dedup();
    for (project_id, h) in &new_hashes {
        sqlx::query(
            "INSERT INTO issue_hashes (project_id, hash, issue_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(project_id)
        .bind(h)
        .bind(issue_id)
        .execute(&mut *tx)
        .await?;
    }
    if let Some(c) = newest_culprit {
        sqlx::query("UPDATE issues SET culprit = $1 WHERE id = $2")
            .bind(c)
            .bind(issue_id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    out.updated += updates.len() as u64;
    Ok(out)
}

/// A legacy release file as sentry-cli 2.x lists them before uploading (to skip unchanged ones).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReleaseFile {
    /// Numeric id.
    pub id: i64,
    /// Its name (URL).
    pub name: String,
    /// Dist, if any.
    pub dist: Option<String>,
    /// Bytes.
    pub size: i64,
    /// SHA-1 of its bytes.
    pub sha1: String,
}

/// Release files listed per request at most (sentry-cli pages by cursor; one page is enough to
/// skip re-uploads of any realistic release).
pub const RELEASE_FILES_PAGE: i64 = 1_000;

/// A project's legacy release files of one release.
pub async fn list_release_files(
    store: &Store,
    project_id: i64,
    release: &str,
) -> Result<Vec<ReleaseFile>> {
    sqlx::query(
        "SELECT id, url, dist, size, sha1 FROM source_files
         WHERE project_id = $1 AND release = $2 AND bundle_id IS NULL ORDER BY id LIMIT $3",
    )
    .bind(project_id)
    .bind(release)
    .bind(RELEASE_FILES_PAGE)
    .fetch_all(store.pool())
    .await?
    .iter()
    .map(|r| {
        Ok(ReleaseFile {
            id: r.try_get("id")?,
            name: r.try_get("url")?,
            dist: r.try_get("dist")?,
            size: r.try_get("size")?,
            sha1: r.try_get("sha1")?,
        })
    })
    .collect()
}
