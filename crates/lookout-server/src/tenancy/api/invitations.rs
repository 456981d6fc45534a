//! `/api/v1/invitations` and `/api/v1/settings/mail` (admin): pending invitations, sent again
//! or withdrawn, and the SMTP server invitations and password resets are emailed through.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::auth::Admin;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{iso, ApiJson, ApiPath};
use crate::state::AppState;
use crate::tenancy::links::{self, MailSettings};
use lookout_core::time::now_ms;
use lookout_core::Role;
use lookout_store::identity;

/// A pending invitation.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationView {
    /// The invited user's id (also the invitation's).
    pub user_id: i64,
    /// Where it was sent.
    pub email: String,
    /// The name the admin gave, if any (the invitee chooses theirs).
    pub name: Option<String>,
    /// The role the user gets.
    #[schema(value_type = String)]
    pub role: Role,
    /// The admin who sent the newest link.
    pub invited_by: Option<i64>,
    /// When the newest link was sent, RFC 3339.
    pub sent_at: String,
    /// When it stops working, RFC 3339.
    pub expires_at: String,
    /// The newest link expired: send it again.
    pub expired: bool,
}

/// Pending invitations, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationList {
    /// Every pending invitation.
    pub items: Vec<InvitationView>,
}

/// A link just sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct SentLink {
    /// The new single-use link (the previous one no longer works).
    pub invite_url: String,
    /// Whether it was emailed through the server's SMTP settings.
    pub invite_emailed: bool,
    /// When it stops working, RFC 3339.
    pub expires_at: String,
}

/// Lists pending invitations (admin).
#[utoipa::path(get, operation_id = "invitations_list", path = "/api/v1/invitations", tag = "users",
    responses((status = 200, body = InvitationList), (status = 403, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, _who: Admin) -> ApiResult<Json<InvitationList>> {
    let now = now_ms();
    let items = identity::pending_invitations(state.store())
        .await?
        .into_iter()
        .map(|i| InvitationView {
            user_id: i.user.id,
            email: i.user.email,
            name: i.user.name,
            role: i.user.role,
            invited_by: i.invited_by,
            sent_at: iso(i.sent_at),
            expires_at: iso(i.expires_at),
            expired: i.expires_at <= now,
        })
        .collect();
    Ok(Json(InvitationList { items }))
}

/// Sends an invitation again with a new link; the old link stops working (admin).
#[utoipa::path(post, operation_id = "invitations_resend", path = "/api/v1/invitations/{id}/resend", tag = "users",
    params(("id" = i64, Path, description = "The invited user's id")),
    responses((status = 200, body = SentLink), (status = 404, body = ErrorBody)))]
pub async fn resend(
    State(state): State<AppState>,
    who: Admin,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<SentLink>> {
    let sent = links::resend(&state, id, who.user_id()).await?;
    Ok(Json(SentLink {
        invite_url: sent.url,
        invite_emailed: sent.emailed,
        expires_at: iso(sent.expires_at),
    }))
}

/// Withdraws an invitation: the invited user is deleted and the link stops working (admin).
#[utoipa::path(delete, operation_id = "invitations_revoke", path = "/api/v1/invitations/{id}", tag = "users",
    params(("id" = i64, Path, description = "The invited user's id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    _who: Admin,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    links::revoke(&state, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The SMTP server for account mail (admin); `null` when none is set. The password is shown as
/// `********`.
#[utoipa::path(get, operation_id = "mail_settings_get", path = "/api/v1/settings/mail", tag = "users",
    responses((status = 200, body = Option<MailSettings>), (status = 403, body = ErrorBody)))]
pub async fn get_mail(State(state): State<AppState>, _who: Admin) -> ApiResult<Json<Value>> {
    Ok(Json(links::redacted(links::mail_settings(&state).await?)))
}

/// Sets the SMTP server for account mail (admin); answers the stored settings.
#[utoipa::path(put, operation_id = "mail_settings_put", path = "/api/v1/settings/mail", tag = "users",
    request_body = MailSettings,
    responses((status = 200, body = MailSettings), (status = 422, body = ErrorBody)))]
pub async fn put_mail(
    State(state): State<AppState>,
    _who: Admin,
    ApiJson(body): ApiJson<MailSettings>,
) -> ApiResult<Json<Value>> {
    links::save_mail_settings(&state, body).await?;
    tracing::info!("Account mail settings changed.");
    Ok(Json(links::redacted(links::mail_settings(&state).await?)))
}
