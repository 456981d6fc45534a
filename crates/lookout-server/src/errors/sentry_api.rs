//! The part of Sentry's web API that `sentry-cli` 3.x speaks to upload source maps:
//! chunk-upload options and chunk upload, artifact-bundle assemble (also its status poll),
//! releases new / finalize / info, and the legacy release-files upload of older pipelines.
//!
//! Authenticated by a Lookout API token as `--auth-token` (Bearer); uploads need the member role,
//! checked with the other request-part extractors before any body byte is read. `{org}` is the
//! organization's slug (`default`), projects are named by slug. Every body has a cap (413), and
//! at most [`MAX_UPLOADS_IN_FLIGHT`] uploads are read at once (more get 503 with `Retry-After`),
//! so uploads hold a bounded amount of memory whatever clients send.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::auth::{Member, Principal};
use crate::error::{ApiError, ApiResult};
use crate::extract::{iso, ApiJson, ApiPath};
use crate::state::AppState;
use lookout_protocol::sourcemaps::{self as sm, BundleFile, BundleLimits, FileKind};
use lookout_store::errors::sourcemaps as store;
use lookout_store::tenancy;

/// Bytes of one chunk (Sentry's size: sentry-cli splits bundles into these).
pub const CHUNK_SIZE: usize = 8 * 1024 * 1024;
/// Chunks per upload request.
pub const CHUNKS_PER_REQUEST: usize = 4;
/// Largest upload request: the chunks plus multipart framing.
pub const MAX_REQUEST_BYTES: usize = CHUNK_SIZE * CHUNKS_PER_REQUEST + 1024 * 1024;
/// Largest artifact bundle (all its chunks), and largest legacy release file.
pub const MAX_BUNDLE_BYTES: u64 = 64 * 1024 * 1024;
/// Files in one artifact bundle (each is a row and an index entry).
pub const MAX_BUNDLE_FILES: usize = 10_000;
/// Upload requests read at the same time.
pub const MAX_UPLOADS_IN_FLIGHT: usize = 2;

/// The routes, under `/api/0/`, with and without the trailing slash sentry-cli sends.
pub fn routes() -> Router<AppState> {
    let mut r = Router::new();
    for slash in ["/", ""] {
        r = r
            .route(&format!("/api/0{slash}"), get(auth_info))
            .route(
                &format!("/api/0/organizations/{{org}}/chunk-upload{slash}"),
                get(chunk_options)
                    .post(upload_chunks)
                    .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES)),
            )
            .route(
                &format!("/api/0/organizations/{{org}}/artifactbundle/assemble{slash}"),
                post(assemble),
            )
            .route(
                &format!("/api/0/organizations/{{org}}/releases{slash}"),
                post(new_release),
            )
            .route(
                &format!("/api/0/organizations/{{org}}/releases/{{version}}{slash}"),
                get(release_info).put(update_release),
            )
            .route(
                &format!("/api/0/projects/{{org}}/{{project}}/releases{slash}"),
                post(new_project_release),
            )
            .route(
                &format!("/api/0/projects/{{org}}/{{project}}/releases/{{version}}/files{slash}"),
                get(list_release_files)
                    .post(upload_release_file)
                    .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES)),
            );
    }
    r
}

fn uploads() -> &'static std::sync::Arc<Semaphore> {
    static S: OnceLock<std::sync::Arc<Semaphore>> = OnceLock::new();
    S.get_or_init(|| std::sync::Arc::new(Semaphore::new(MAX_UPLOADS_IN_FLIGHT)))
}

/// A turn to read an upload body, or 503: a burst of uploads waits in the client, not in memory.
fn upload_turn() -> ApiResult<OwnedSemaphorePermit> {
    uploads().clone().try_acquire_owned().map_err(|_| {
        ApiError::Unavailable(format!(
            "{MAX_UPLOADS_IN_FLIGHT} uploads are being read; retry shortly"
        ))
    })
}

/// Refuses a body whose declared length is over `cap` before reading any of it.
fn check_length(headers: &HeaderMap, cap: usize) -> ApiResult<()> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > cap as u64 => Err(ApiError::TooLarge(format!(
            "the upload is {n} bytes; at most {cap} are accepted per request"
        ))),
        _ => Ok(()),
    }
}

/// The organization named in the path must be this instance's.
async fn check_org(state: &AppState, org: &str) -> ApiResult<i64> {
    let o = tenancy::default_org(state.store()).await?;
    if o.slug != org {
        return Err(ApiError::NotFound("organization"));
    }
    Ok(o.id)
}

async fn project_ids(state: &AppState, org: &str, slugs: &[String]) -> ApiResult<Vec<i64>> {
    let mut ids = Vec::new();
    for s in slugs {
        match store::project_by_slug(state.store(), org, s).await? {
            Some(id) => ids.push(id),
            None => {
                return Err(ApiError::Validation(format!(
                    "project {s:?} does not exist in organization {org:?}"
                )))
            }
        }
    }
    Ok(ids)
}

/// `GET /api/0/`: who the token is (sentry-cli's `info` and login checks).
async fn auth_info(who: Principal) -> Json<Value> {
    let scopes: &[&str] = if who.role() >= lookout_core::Role::Member {
        &[
            "org:read",
            "project:read",
            "project:releases",
            "project:write",
        ]
    } else {
        &["org:read", "project:read"]
    };
    Json(json!({ "user": null, "auth": { "scopes": scopes } }))
}

/// `GET …/chunk-upload/`: how to upload. The URL is relative, so sentry-cli sends chunks to the
/// server it was pointed at, with its token.
async fn chunk_options(
    State(state): State<AppState>,
    _who: Member,
    ApiPath(org): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    check_org(&state, &org).await?;
    Ok(Json(json!({
        "url": format!("/api/0/organizations/{org}/chunk-upload/"),
        "chunkSize": CHUNK_SIZE,
        "chunksPerRequest": CHUNKS_PER_REQUEST,
        "maxFileSize": MAX_BUNDLE_BYTES,
        "maxRequestSize": MAX_REQUEST_BYTES - 1024 * 1024,
        "concurrency": MAX_UPLOADS_IN_FLIGHT,
        "hashAlgorithm": "sha1",
        "compression": ["gzip"],
        "accept": ["artifact_bundles", "sources"],
    })))
}

/// `POST …/chunk-upload/`: multipart fields `file` or `file_gzip`, each named by the SHA-1 of
/// its uncompressed bytes. All chunks are checked before any is stored.
async fn upload_chunks(
    State(state): State<AppState>,
    _who: Member,
    ApiPath(org): ApiPath<String>,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult<StatusCode> {
    check_length(&headers, MAX_REQUEST_BYTES)?;
    check_org(&state, &org).await?;
    let _turn = upload_turn()?;
    let mut multipart = multipart.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let mut chunks: Vec<(String, Vec<u8>)> = Vec::new();
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        let gzip = match field.name() {
            Some("file") => false,
            Some("file_gzip") => true,
            _ => continue,
        };
        let checksum = field.file_name().unwrap_or_default().to_ascii_lowercase();
        if checksum.len() != 40 || !checksum.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(ApiError::BadRequest(
                "each chunk's file name must be the SHA-1 of its bytes".into(),
            ));
        }
        if chunks.len() >= CHUNKS_PER_REQUEST {
            return Err(ApiError::TooLarge(format!(
                "at most {CHUNKS_PER_REQUEST} chunks per request"
            )));
        }
        let raw = field.bytes().await.map_err(multipart_error)?;
        let data = if gzip {
            lookout_protocol::decompress::decode(Some("gzip"), &raw, CHUNK_SIZE).map_err(|e| {
                match e {
                    // Over the chunk size once decompressed: too large, like a plain chunk.
                    lookout_protocol::ProtocolError::TooLarge(_) => {
                        ApiError::TooLarge(format!("chunk {checksum} exceeds {CHUNK_SIZE} bytes"))
                    }
                    e => ApiError::BadRequest(format!("chunk {checksum} does not decompress: {e}")),
                }
            })?
        } else {
            raw.to_vec()
        };
        if data.len() > CHUNK_SIZE {
            return Err(ApiError::TooLarge(format!(
                "chunk {checksum} exceeds {CHUNK_SIZE} bytes"
            )));
        }
        let actual = store::sha1_hex(&data);
        if actual != checksum {
            return Err(ApiError::BadRequest(format!(
                "chunk {checksum} has checksum {actual}: it was damaged in transit; nothing was stored"
            )));
        }
        chunks.push((checksum, data));
    }
    store::put_chunks(state.store(), &chunks).await?;
    Ok(StatusCode::OK)
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(format!(
            "the upload exceeds {MAX_REQUEST_BYTES} bytes per request"
        )),
        _ => ApiError::BadRequest(e.body_text()),
    }
}

/// The assemble request.
#[derive(Debug, Deserialize)]
pub struct AssembleRequest {
    /// SHA-1 of the whole bundle.
    pub checksum: String,
    /// SHA-1 of each chunk, in order.
    pub chunks: Vec<String>,
    /// Project slugs.
    #[serde(default)]
    pub projects: Vec<String>,
    /// Release (`--release`).
    pub version: Option<String>,
    /// Dist (`--dist`).
    pub dist: Option<String>,
}

fn assemble_answer(state: &str, missing: &[String], detail: Option<String>) -> Json<Value> {
    Json(json!({ "state": state, "missingChunks": missing, "detail": detail }))
}

/// `POST …/artifactbundle/assemble/`: `not_found` with the chunks still missing, `ok` once the
/// bundle is stored (assembly is done in the request, so a poll answers `ok` at once), or
/// `error` with what is wrong with the bundle.
async fn assemble(
    State(state): State<AppState>,
    _who: Member,
    ApiPath(org): ApiPath<String>,
    ApiJson(req): ApiJson<AssembleRequest>,
) -> ApiResult<Json<Value>> {
    check_org(&state, &org).await?;
    let checksum = req.checksum.to_ascii_lowercase();
    if req.projects.is_empty() {
        return Err(ApiError::Validation(
            "projects must name at least one project (sentry-cli --project)".into(),
        ));
    }
    let max_chunks = (MAX_BUNDLE_BYTES as usize).div_ceil(CHUNK_SIZE);
    if req.chunks.len() > max_chunks {
        return Err(ApiError::TooLarge(format!(
            "a bundle may have at most {max_chunks} chunks ({MAX_BUNDLE_BYTES} bytes)"
        )));
    }
    // Release and dist are copied into every file's row: checked before anything is read.
    let version = req.version.as_deref().filter(|v| !v.is_empty());
    let dist = req.dist.as_deref().filter(|d| !d.is_empty());
    if let Some(v) = version {
        check_version(v)?;
    }
    if let Some(d) = dist {
        check_dist(d)?;
    }
    let projects = project_ids(&state, &org, &req.projects).await?;
    let st = state.store();
    let holders = store::bundle_holders(st, &projects, &checksum).await?;
    let todo: Vec<i64> = projects
        .iter()
        .copied()
        .filter(|p| !holders.contains(p))
        .collect();
    if todo.is_empty() {
        return Ok(assemble_answer("ok", &[], None));
    }
    let chunks: Vec<String> = req.chunks.iter().map(|c| c.to_ascii_lowercase()).collect();
    let known = store::known_chunks(st, &chunks).await?;
    let mut missing: Vec<String> = chunks
        .iter()
        .filter(|c| !known.contains_key(*c))
        .cloned()
        .collect();
    missing.dedup();
    if !missing.is_empty() {
        return Ok(assemble_answer("not_found", &missing, None));
    }
    let total: i64 = chunks.iter().filter_map(|c| known.get(c)).sum();
    if total as u64 > MAX_BUNDLE_BYTES {
        return Err(ApiError::TooLarge(format!(
            "the bundle is {total} bytes; at most {MAX_BUNDLE_BYTES} are accepted"
        )));
    }
    let _turn = upload_turn()?;
    let Some(bytes) = store::concat_chunks(st, &chunks).await? else {
        // Expired between the check and the read: ask for them again.
        return Ok(assemble_answer("not_found", &chunks, None));
    };
    if store::sha1_hex(&bytes) != checksum {
        return Ok(assemble_answer(
            "error",
            &[],
            Some("the chunks do not add up to the bundle's checksum".into()),
        ));
    }
    // Unpacked, a bundle may hold no more than it may be packed: zip ratios are no budget.
    let limits = BundleLimits {
        max_files: MAX_BUNDLE_FILES,
        max_file_bytes: MAX_BUNDLE_BYTES,
        max_total_bytes: MAX_BUNDLE_BYTES,
    };
    let bundle = match tokio::task::spawn_blocking(move || {
        sm::read_artifact_bundle(&bytes, &limits)
    })
    .await
    {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => return Ok(assemble_answer("error", &[], Some(e.to_string()))),
        Err(e) => return Err(ApiError::Internal(format!("bundle reading stopped: {e}"))),
    };
    // The manifest's own release and dist (used when the request names none) obey the same rules.
    let named = [
        (
            version.is_none(),
            bundle.release.as_deref().map(check_version),
            "release",
        ),
        (
            dist.is_none(),
            bundle.dist.as_deref().map(check_dist),
            "dist",
        ),
    ];
    for (used, check, what) in named {
        if let (true, Some(Err(e))) = (used, check) {
            let detail = format!("manifest.json's {what}: {e}");
            return Ok(assemble_answer("error", &[], Some(detail)));
        }
    }
    store::store_bundle(st, &todo, &checksum, version, dist, &bundle).await?;
    tracing::info!(
        bundle = %checksum,
        files = bundle.files.len(),
        projects = todo.len(),
        "Artifact bundle stored."
    );
    Ok(assemble_answer("ok", &[], None))
}

/// A new release (`sentry-cli releases new`).
#[derive(Debug, Deserialize)]
pub struct NewRelease {
    /// The version.
    pub version: String,
    /// Project slugs.
    #[serde(default)]
    pub projects: Vec<String>,
    /// When it was released (RFC 3339), if already.
    #[serde(rename = "dateReleased")]
    pub date_released: Option<String>,
}

/// Changes to a release (`sentry-cli releases finalize` sets `dateReleased`).
#[derive(Debug, Deserialize)]
pub struct ReleaseChanges {
    /// When it was released (RFC 3339).
    #[serde(rename = "dateReleased")]
    pub date_released: Option<String>,
    /// Projects to add.
    #[serde(default)]
    pub projects: Vec<String>,
}

fn parse_date(s: Option<&str>) -> ApiResult<Option<i64>> {
    s.map(|d| {
        chrono::DateTime::parse_from_rfc3339(d)
            .map(|t| t.timestamp_millis())
            .map_err(|_| ApiError::Validation(format!("dateReleased {d:?} is not RFC 3339")))
    })
    .transpose()
}

fn release_json(r: &store::Release) -> Value {
    json!({
        "version": r.version,
        "shortVersion": r.version,
        "url": null,
        "dateCreated": iso(r.created_at),
        "dateReleased": r.released_at.map(iso),
        "lastEvent": null,
        "newGroups": 0,
        "projects": r.projects.iter().map(|s| json!({"slug": s, "name": s})).collect::<Vec<_>>(),
    })
}

/// Longest dist accepted: dists name builds (`web`, `android-123`), and each is copied into
/// every stored file's row.
pub const MAX_DIST_LEN: usize = 64;

fn check_dist(d: &str) -> ApiResult<()> {
    if d.len() > MAX_DIST_LEN || d.chars().any(char::is_control) {
        return Err(ApiError::Validation(format!(
            "dist must be at most {MAX_DIST_LEN} characters without control characters"
        )));
    }
    Ok(())
}

fn check_version(v: &str) -> ApiResult<()> {
    if v.is_empty() || v.len() > 200 || v.contains(['\n', '\r', '\t', '/']) || v == "." || v == ".."
    {
        return Err(ApiError::Validation(
            "version must be 1-200 characters without slashes or whitespace control characters"
                .into(),
        ));
    }
    Ok(())
}

async fn new_release(
    State(state): State<AppState>,
    _who: Member,
    ApiPath(org): ApiPath<String>,
    ApiJson(req): ApiJson<NewRelease>,
) -> ApiResult<Response> {
    let org_id = check_org(&state, &org).await?;
    check_version(&req.version)?;
    let projects = project_ids(&state, &org, &req.projects).await?;
    let released = parse_date(req.date_released.as_deref())?;
    let r = store::upsert_release(state.store(), org_id, &req.version, &projects, released).await?;
    Ok((StatusCode::CREATED, Json(release_json(&r))).into_response())
}

/// `releases new` with one `--project` posts to the project's releases.
async fn new_project_release(
    State(state): State<AppState>,
    _who: Member,
    ApiPath((org, project)): ApiPath<(String, String)>,
    ApiJson(mut req): ApiJson<NewRelease>,
) -> ApiResult<Response> {
    if !req.projects.contains(&project) {
        req.projects.push(project);
    }
    let org_id = check_org(&state, &org).await?;
    check_version(&req.version)?;
    let projects = project_ids(&state, &org, &req.projects).await?;
    let released = parse_date(req.date_released.as_deref())?;
    let r = store::upsert_release(state.store(), org_id, &req.version, &projects, released).await?;
    Ok((StatusCode::CREATED, Json(release_json(&r))).into_response())
}

async fn update_release(
    State(state): State<AppState>,
    _who: Member,
    ApiPath((org, version)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<ReleaseChanges>,
) -> ApiResult<Json<Value>> {
    let org_id = check_org(&state, &org).await?;
    if store::get_release(state.store(), org_id, &version)
        .await?
        .is_none()
    {
        return Err(ApiError::NotFound("release"));
    }
    let projects = project_ids(&state, &org, &req.projects).await?;
    let released = parse_date(req.date_released.as_deref())?;
    let r = store::upsert_release(state.store(), org_id, &version, &projects, released).await?;
    Ok(Json(release_json(&r)))
}

async fn release_info(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath((org, version)): ApiPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    let org_id = check_org(&state, &org).await?;
    let r = store::get_release(state.store(), org_id, &version)
        .await?
        .ok_or(ApiError::NotFound("release"))?;
    Ok(Json(release_json(&r)))
}

/// `GET /api/0/projects/{org}/{project}/releases/{version}/files/`: the release's legacy files,
/// which sentry-cli 2.x reads to skip files it uploaded before.
async fn list_release_files(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath((org, project, version)): ApiPath<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    check_org(&state, &org).await?;
    let project_id = store::project_by_slug(state.store(), &org, &project)
        .await?
        .ok_or(ApiError::NotFound("project"))?;
    // Up to a thousand rows per request: shares the uploads' turns, so listings cannot pile up.
    let _turn = upload_turn()?;
    let files = store::list_release_files(state.store(), project_id, &version).await?;
    Ok(Json(Value::Array(
        files
            .into_iter()
            .map(|f| {
                json!({ "id": f.id.to_string(), "name": f.name, "dist": f.dist, "size": f.size,
                        "sha1": f.sha1, "headers": {} })
            })
            .collect(),
    )))
}

/// `POST /api/0/projects/{org}/{project}/releases/{version}/files/`: one file per request, as
/// sentry-cli 2.x's `releases files … upload-sourcemaps` sends them (fields `file`, `name`,
/// `dist`, and `header` lines such as `Sourcemap:app.min.js.map`).
async fn upload_release_file(
    State(state): State<AppState>,
    _who: Member,
    ApiPath((org, project, version)): ApiPath<(String, String, String)>,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult<Response> {
    check_length(&headers, MAX_REQUEST_BYTES)?;
    check_org(&state, &org).await?;
    check_version(&version)?;
    let project_id = store::project_by_slug(state.store(), &org, &project)
        .await?
        .ok_or(ApiError::NotFound("project"))?;
    let _turn = upload_turn()?;
    let mut multipart = multipart.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let mut file: Option<(Option<String>, Vec<u8>)> = None;
    let mut name: Option<String> = None;
    let mut dist: Option<String> = None;
    let mut file_headers: HashMap<String, String> = HashMap::new();
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        let field_name = field.name().unwrap_or_default().to_string();
        match field_name.as_str() {
            "file" => {
                let fname = field.file_name().map(str::to_string);
                let data = field.bytes().await.map_err(multipart_error)?;
                if data.len() as u64 > MAX_BUNDLE_BYTES {
                    return Err(ApiError::TooLarge(format!(
                        "a release file may have at most {MAX_BUNDLE_BYTES} bytes"
                    )));
                }
                file = Some((fname, data.to_vec()));
            }
            "name" | "dist" | "header" => {
                let text = field.text().await.map_err(multipart_error)?;
                match field_name.as_str() {
                    "name" => name = Some(text),
                    "dist" => {
                        check_dist(&text)?;
                        dist = Some(text).filter(|d| !d.is_empty());
                    }
                    _ => {
                        if let Some((k, v)) = text.split_once(':') {
                            file_headers
                                .insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let (fname, mut data) =
        file.ok_or_else(|| ApiError::Validation("the file field is missing".into()))?;
    let url = name
        .or(fname)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::Validation("the name field is missing".into()))?;
    // What the file is: a map if it parses as one, minified source if it names a map.
    let kind = if url.ends_with(".map") || sm::is_sourcemap(&data) {
        // Decoding a map of up to MAX_BUNDLE_BYTES takes a while: off the async threads, still
        // under this upload's turn.
        let (data_back, checked) = tokio::task::spawn_blocking(move || {
            let checked = sm::load_map(&data, None).map(drop);
            (data, checked)
        })
        .await
        .map_err(|e| ApiError::Internal(format!("map decoding stopped: {e}")))?;
        data = data_back;
        checked.map_err(|e| match e {
            lookout_protocol::ProtocolError::TooLarge(m) => {
                ApiError::TooLarge(format!("{url}: {m}"))
            }
            e => ApiError::Validation(format!("{url}: {e}")),
        })?;
        FileKind::SourceMap
    } else if url.ends_with(".js") || url.ends_with(".mjs") || url.ends_with(".cjs") {
        FileKind::MinifiedSource
    } else {
        FileKind::Source
    };
    let file = BundleFile {
        kind,
        url: url.clone(),
        debug_id: file_headers
            .get("debug-id")
            .and_then(|d| sm::normalize_debug_id(d)),
        sourcemap_ref: file_headers
            .get("sourcemap")
            .or_else(|| file_headers.get("x-sourcemap"))
            .cloned(),
        content: data,
    };
    let size = file.content.len();
    let id = store::put_release_file(state.store(), project_id, &version, dist.as_deref(), &file)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": id.to_string(),
            "name": url,
            "dist": dist,
            "size": size,
            "sha1": store::sha1_hex(&file.content),
            "dateCreated": iso(lookout_core::time::now_ms()),
            "headers": file_headers,
        })),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_and_dists_copied_into_every_file_row_are_bounded() {
        assert!(check_version("web@1.2.3+build.7").is_ok());
        assert!(check_version(&"v".repeat(201)).is_err());
        assert!(check_version("a/b").is_err());
        assert!(check_dist("android-123").is_ok());
        let e = check_dist(&"d".repeat(MAX_DIST_LEN + 1)).unwrap_err();
        assert!(matches!(e, ApiError::Validation(_)), "{e}");
        assert!(check_dist("a\nb").is_err());
    }
}
