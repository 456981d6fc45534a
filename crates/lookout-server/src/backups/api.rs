//! `/api/v1/backups` (Lookout's own backup and a summary of every target) and
//! `/api/v1/backup-targets` (the user's PostgreSQL clusters backed up through pgBackRest):
//! create and delete targets, take a backup or run a restore drill now, check archiving with
//! setup guidance, and read the history.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::not_found;
use crate::auth::{Admin, Principal};
use crate::backups::view::{builtin_view, run_view, target_view};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;
use lookout_store::backup::catalog::{self, NewTarget, TargetRow};

/// Lookout's own backup and every target.
#[utoipa::path(get, path = "/api/v1/backups", tag = "backups",
    responses((status = 200, body = crate::api::schemas_ops::BackupsOverview)))]
pub async fn overview(State(state): State<AppState>, _who: Principal) -> ApiResult<Json<Value>> {
    let mut targets = Vec::new();
    for t in catalog::list_targets(state.store()).await? {
        targets.push(target_view(&state, &t).await?);
    }
    Ok(Json(
        json!({"builtin": builtin_view(&state).await?, "targets": targets}),
    ))
}

/// Restores Lookout's own backup now and checks it (admin). 201 with the drill, whose `ok`
/// says whether it passed.
#[utoipa::path(post, path = "/api/v1/backups/drill", tag = "backups",
    responses((status = 201, body = crate::api::schemas_ops::BackupRunView), (status = 409, body = ErrorBody)))]
pub async fn drill_builtin(
    State(state): State<AppState>,
    _who: Admin,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if state.store().backup_run().await.is_none() {
        return Err(ApiError::Conflict(
            "backups are off: start the server with --backup-dir".into(),
        ));
    }
    let run = crate::backups::drill_builtin(state.store())
        .await
        .map_err(ApiError::Internal)?;
    crate::backups::publish_drill(state.store(), &run)
        .await
        .map_err(ApiError::Internal)?;
    Ok((StatusCode::CREATED, Json(run_view(&run))))
}

/// The body of create.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetBody {
    pub name: String,
    pub stanza: String,
    #[serde(default)]
    pub config: Option<String>,
    #[serde(default)]
    pub run_as: Option<String>,
    /// `postgres://…` for pg_stat_archiver (sealed; never shown again).
    #[serde(default)]
    pub pg_url: Option<String>,
    #[serde(default)]
    pub pg_bin: Option<String>,
    #[serde(default)]
    pub full_every_hours: Option<i64>,
    #[serde(default)]
    pub diff_every_hours: Option<i64>,
    #[serde(default)]
    pub drill_every_hours: Option<i64>,
}

async fn validate(state: &AppState, b: &TargetBody) -> ApiResult<NewTarget> {
    let word = |field: &str, v: &str| {
        if v.is_empty()
            || v.len() > 100
            || !v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            Err(ApiError::Validation(format!(
                "{field}: 1-100 letters, digits, '-', '_' or '.'"
            )))
        } else {
            Ok(v.to_string())
        }
    };
    let path = |field: &str, v: &Option<String>| match v {
        Some(p) if !p.starts_with('/') || p.chars().any(char::is_control) => {
            Err(ApiError::Validation(format!("{field}: an absolute path")))
        }
        _ => Ok(v.clone()),
    };
    let hours = |field: &str, v: Option<i64>, default: i64| {
        let h = v.unwrap_or(default);
        if !(0..=24 * 366).contains(&h) {
            return Err(ApiError::Validation(format!("{field}: 0-8784 hours")));
        }
        Ok(h)
    };
    let pg_url_sealed = match &b.pg_url {
        Some(u) => {
            // A URL of the user's database, parsed as the PostgreSQL driver will (not Lookout's store).
            if u.parse::<sqlx::postgres::PgConnectOptions>().is_err()
                || !(u.starts_with("postgres://") || u.starts_with("postgresql://"))
            {
                return Err(ApiError::Validation(
                    "pg_url: a postgres:// connection string".into(),
                ));
            }
            // Refused now rather than at every status read; each read judges the host again.
            if let Some(why) = lookout_dbhealth::refusal_now(u, state.alerting().outbound()).await {
                return Err(ApiError::Validation(format!("pg_url: {why}")));
            }
            Some(state.sealer().seal(u))
        }
        None => None,
    };
    let full_every_hours = hours("full_every_hours", b.full_every_hours, 24)?;
    if full_every_hours == 0 {
        return Err(ApiError::Validation(
            "full_every_hours: at least 1 (a stanza needs full backups)".into(),
        ));
    }
    Ok(NewTarget {
        name: word("name", b.name.trim())?,
        stanza: word("stanza", b.stanza.trim())?,
        config: path("config", &b.config)?,
        run_as: b.run_as.as_deref().map(|u| word("run_as", u)).transpose()?,
        pg_url_sealed,
        pg_bin: path("pg_bin", &b.pg_bin)?,
        full_every_hours,
        diff_every_hours: hours("diff_every_hours", b.diff_every_hours, 0)?,
        drill_every_hours: hours("drill_every_hours", b.drill_every_hours, 168)?,
    })
}

/// Adds a pgBackRest target (admin). Its status is read at once; backups and drills follow
/// their schedules (full every `full_every_hours`, default 24; differential every
/// `diff_every_hours`, default 0 = none; drill every `drill_every_hours`, default 168).
#[utoipa::path(post, operation_id = "backups_create", path = "/api/v1/backup-targets", tag = "backups", request_body = Object,
    responses((status = 201, body = crate::api::schemas_ops::BackupTargetView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    _who: Admin,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let b: TargetBody = serde_json::from_value(body)
        .map_err(|e| ApiError::Validation(format!("backup target: {e}")))?;
    let t = validate(&state, &b).await?;
    let row = catalog::create_target(state.store(), &t).await?;
    crate::backups::refresh_status(
        state.store(),
        state.sealer(),
        state.alerting().outbound(),
        &row,
    )
    .await;
    let row = catalog::get_target(state.store(), row.id).await?;
    tracing::info!(target = row.id, name = %row.spec.name, "Backup target created.");
    Ok((StatusCode::CREATED, Json(target_view(&state, &row).await?)))
}

/// Every target.
#[utoipa::path(get, operation_id = "backups_list", path = "/api/v1/backup-targets", tag = "backups",
    responses((status = 200, body = crate::api::schemas_ops::BackupTargetList)))]
pub async fn list(State(state): State<AppState>, _who: Principal) -> ApiResult<Json<Value>> {
    let mut items = Vec::new();
    for t in catalog::list_targets(state.store()).await? {
        items.push(target_view(&state, &t).await?);
    }
    Ok(Json(json!({"items": items})))
}

async fn target(state: &AppState, id: i64) -> ApiResult<TargetRow> {
    catalog::get_target(state.store(), id)
        .await
        .map_err(not_found("backup target"))
}

/// One target.
#[utoipa::path(get, operation_id = "backups_get_one", path = "/api/v1/backup-targets/{id}", tag = "backups",
    params(("id" = i64, Path, description = "Backup target id")),
    responses((status = 200, body = crate::api::schemas_ops::BackupTargetView), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    let t = target(&state, id).await?;
    Ok(Json(target_view(&state, &t).await?))
}

/// Deletes a target and its history (the backups themselves stay in pgBackRest's repository).
#[utoipa::path(delete, operation_id = "backups_delete", path = "/api/v1/backup-targets/{id}", tag = "backups",
    params(("id" = i64, Path, description = "Backup target id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    _who: Admin,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    catalog::delete_target(state.store(), id)
        .await
        .map_err(not_found("backup target"))?;
    Ok(StatusCode::NO_CONTENT)
}

/// `{"type": "full" | "diff" | "incr"}` (default full).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BackupBody {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

/// Takes a backup now and waits for it (admin). 201 with the run; `ok` false and `error`
/// when pgBackRest failed.
#[utoipa::path(post, path = "/api/v1/backup-targets/{id}/backup", tag = "backups",
    params(("id" = i64, Path, description = "Backup target id")), request_body = Object,
    responses((status = 201, body = crate::api::schemas_ops::BackupRunView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn backup_now(
    State(state): State<AppState>,
    _who: Admin,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let b: BackupBody =
        serde_json::from_value(body).map_err(|e| ApiError::Validation(format!("backup: {e}")))?;
    let kind = b.kind.unwrap_or_else(|| "full".into());
    if !["full", "diff", "incr"].contains(&kind.as_str()) {
        return Err(ApiError::Validation("type: full, diff or incr".into()));
    }
    let t = target(&state, id).await?;
    let run = crate::backups::backup_target(state.store(), &t, &kind)
        .await
        .map_err(ApiError::Internal)?;
    crate::backups::refresh_status(
        state.store(),
        state.sealer(),
        state.alerting().outbound(),
        &t,
    )
    .await;
    Ok((StatusCode::CREATED, Json(run_view(&run))))
}

/// `{"to": RFC 3339}`: restore the state at that moment instead of the newest.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DrillBody {
    #[serde(default)]
    pub to: Option<String>,
}

/// Runs a restore drill now into a scratch cluster and waits for it (admin). 201 with the run:
/// its details hold every restored table's row count, pg_amcheck's verdict and the timings.
#[utoipa::path(post, path = "/api/v1/backup-targets/{id}/drill", tag = "backups",
    params(("id" = i64, Path, description = "Backup target id")), request_body = Object,
    responses((status = 201, body = crate::api::schemas_ops::BackupRunView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn drill(
    State(state): State<AppState>,
    _who: Admin,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let b: DrillBody =
        serde_json::from_value(body).map_err(|e| ApiError::Validation(format!("drill: {e}")))?;
    let to =
        b.to.as_deref()
            .map(|t| {
                chrono::DateTime::parse_from_rfc3339(t)
                    .map(|d| d.timestamp_millis())
                    .map_err(|_| ApiError::Validation(format!("to: {t:?} is not an RFC 3339 time")))
            })
            .transpose()?;
    let t = target(&state, id).await?;
    let run = crate::backups::drill_target(
        state.store(),
        state.sealer(),
        state.alerting().outbound(),
        &t,
        to,
    )
    .await
    .map_err(ApiError::Internal)?;
    crate::backups::publish_drill(state.store(), &run)
        .await
        .map_err(ApiError::Internal)?;
    Ok((StatusCode::CREATED, Json(run_view(&run))))
}

/// What PostgreSQL and pgBackRest need for a target: the settings to add, and the commands.
pub fn guidance(t: &TargetRow) -> String {
    let config = t
        .spec
        .config
        .as_ref()
        .map(|c| format!(" --config={c}"))
        .unwrap_or_default();
    let s = &t.spec.stanza;
    format!(
        "postgresql.conf (then restart PostgreSQL):\n  wal_level = replica\n  archive_mode = on\n  archive_command = 'pgbackrest{config} --stanza={s} archive-push %p'\n  max_wal_senders = 3\n\n\
         pgbackrest.conf:\n  [global]\n  repo1-path=/var/lib/pgbackrest\n  repo1-retention-full=2\n  start-fast=y\n\n  [{s}]\n  pg1-path=/var/lib/postgresql/<version>/main\n\n\
         then, as the PostgreSQL user:\n  pgbackrest{config} --stanza={s} stanza-create\n  pgbackrest{config} --stanza={s} check\n"
    )
}

/// Runs `pgbackrest check` (admin): whether WAL archiving reaches the repository, with the
/// setup guidance for this target.
#[utoipa::path(post, path = "/api/v1/backup-targets/{id}/check", tag = "backups",
    params(("id" = i64, Path, description = "Backup target id")),
    responses((status = 200, body = crate::api::schemas_ops::BackupCheck), (status = 404, body = ErrorBody)))]
pub async fn check(
    State(state): State<AppState>,
    _who: Admin,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    let t = target(&state, id).await?;
    let result = crate::backups::pgbackrest::check(&t).await;
    Ok(Json(json!({
        "ok": result.is_ok(), "error": result.as_ref().err(),
        "guidance": guidance(&t),
    })))
}

/// A target's backups and drills, newest first.
#[utoipa::path(get, path = "/api/v1/backup-targets/{id}/runs", tag = "backups",
    params(("id" = i64, Path, description = "Backup target id")),
    responses((status = 200, body = crate::api::schemas_ops::BackupRunList), (status = 404, body = ErrorBody)))]
pub async fn runs(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    let t = target(&state, id).await?;
    let rows = catalog::runs(state.store(), &t.spec.name, None, 100).await?;
    Ok(Json(
        json!({"items": rows.iter().map(run_view).collect::<Vec<_>>()}),
    ))
}
