//! `/api/v1/projects/{id}/events/{event_id}/attachments`: the files SDKs sent with an event,
//! listed and downloaded (the issue page links here).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::not_found;
use crate::auth::Principal;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{iso, ApiPath};
use crate::state::AppState;
use lookout_store::errors::attachments::{self, AttachmentInfo};

/// An attachment as the API lists it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttachmentView {
    /// Its id.
    pub id: String,
    /// File name as sent.
    pub filename: String,
    /// MIME type as sent (the download is always `application/octet-stream`).
    pub content_type: Option<String>,
    /// Bytes.
    pub size: i64,
    /// Received, RFC 3339.
    pub created_at: String,
    /// Where to download it.
    pub download_url: String,
}

fn event_key(raw: &str) -> String {
    lookout_protocol::event::normalize_id(raw).unwrap_or_else(|| raw.to_string())
}

/// The download path of an attachment.
pub fn download_path(project_id: i64, a: &AttachmentInfo) -> String {
    format!(
        "/api/v1/projects/{project_id}/events/{}/attachments/{}",
        a.event_id, a.id
    )
}

/// Lists an event's attachments.
#[utoipa::path(get, operation_id = "attachments_list", path = "/api/v1/projects/{id}/events/{event_id}/attachments", tag = "errors",
    params(("id" = i64, Path, description = "Project id"), ("event_id" = String, Path, description = "Event id")),
    responses((status = 200, body = Vec<AttachmentView>), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath((id, event_id)): ApiPath<(i64, String)>,
) -> ApiResult<Json<Vec<AttachmentView>>> {
    lookout_store::tenancy::get_project(state.store(), id)
        .await
        .map_err(not_found("project"))?;
    let items = attachments::list(state.store(), id, &event_key(&event_id)).await?;
    Ok(Json(
        items
            .into_iter()
            .map(|a| AttachmentView {
                download_url: download_path(id, &a),
                id: a.id,
                filename: a.filename,
                content_type: a.content_type,
                size: a.size,
                created_at: iso(a.created_at),
            })
            .collect(),
    ))
}

/// A file name safe inside a quoted `Content-Disposition` value.
fn disposition_name(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' && c != '/' {
                c
            } else {
                '_'
            }
        })
        .take(200)
        .collect();
    if clean.is_empty() {
        "attachment".into()
    } else {
        clean
    }
}

/// Downloads one attachment. It is always served as `application/octet-stream` with
/// `Content-Disposition: attachment`: the bytes come from an SDK, and a browser must never
/// render them as a page of this origin.
#[utoipa::path(get, operation_id = "attachments_download", path = "/api/v1/projects/{id}/events/{event_id}/attachments/{attachment_id}", tag = "errors",
    params(("id" = i64, Path, description = "Project id"), ("event_id" = String, Path, description = "Event id"),
           ("attachment_id" = String, Path, description = "Attachment id")),
    responses((status = 200, description = "The attachment's bytes", content_type = "application/octet-stream"), (status = 404, body = ErrorBody)))]
pub async fn download(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath((id, event_id, attachment_id)): ApiPath<(i64, String, String)>,
) -> ApiResult<Response> {
    let (a, data) = attachments::get(state.store(), id, &event_key(&event_id), &attachment_id)
        .await
        .map_err(not_found("attachment"))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", disposition_name(&a.filename)),
            ),
            (header::CACHE_CONTROL, "private, no-store".to_string()),
        ],
        data,
    )
        .into_response())
}
