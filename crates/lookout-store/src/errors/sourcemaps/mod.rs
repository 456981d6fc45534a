//! Source maps: upload chunks, artifact bundles and their files, legacy release files, releases
//! created by `sentry-cli`, and the lookup (with a bounded cache) that symbolication uses.
//!
//! A bundle is assembled from chunks the client sent earlier, checked against its checksum,
//! read (every map must decode) and written with its files in one transaction: an upload is
//! either all there or not at all. Maps are found by debug id first, then by release, dist and
//! URL (`~/` matching any host), following the minified file's `Sourcemap` reference.
//!
//! The lookup and its cache are in `lookup`, re-processing an issue's events in `reprocess`.

mod lookup;
mod reprocess;

pub use lookup::{found_map, symbolicate_event, MapCache};
pub use reprocess::{reprocess_issue, Reprocessed, REPROCESS_LIMIT, REPROCESS_PAGE};

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use sha1::Digest;
use sqlx::Row;

use crate::page::{Cursor, Page};
use crate::{Result, Store, StoreError};
use lookout_core::time::now_ms;
use lookout_protocol::sourcemaps::{ArtifactBundle, BundleFile};

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
