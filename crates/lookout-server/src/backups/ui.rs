//! The Backups page: Lookout's own backup (directory, restorable window, newest shipment, size,
//! newest drill) and every pgBackRest target (newest backup, its age and size, WAL archive
//! lag, newest drill and its result). The figures come from the API's views.

use askama::Template;
use axum::extract::State;
use serde_json::Value;

use crate::state::AppState;
use crate::ui::error::UiResult;
use crate::ui::extract::Page;
use crate::ui::fmt::{self, When};
use crate::ui::layout::{render, PageCtx};

/// Lookout's own backup, ready to show.
pub struct Builtin {
    pub enabled: bool,
    pub dir: String,
    /// The restorable window: oldest and newest moments a restore can reach.
    pub from: Option<When>,
    pub to: Option<When>,
    pub size: String,
    pub snapshots: String,
    pub drill: Option<When>,
    pub drill_state: String,
    pub drill_bad: bool,
}

/// A target row.
pub struct TargetLine {
    pub name: String,
    pub stanza: String,
    pub last_backup: Option<When>,
    pub backup_state: String,
    pub backup_bad: bool,
    pub size: String,
    pub wal_lag: String,
    pub drill: Option<When>,
    pub drill_state: String,
    pub drill_bad: bool,
}

#[derive(Template)]
#[template(path = "backups.html")]
struct BackupsPage {
    title: String,
    ctx: PageCtx,
    builtin: Builtin,
    targets: Vec<TargetLine>,
}

fn text(v: &Value, default: &str) -> String {
    v.as_str()
        .map_or_else(|| default.to_string(), str::to_string)
}

/// `3.2 MiB` from bytes.
fn size(v: &Value) -> String {
    v.as_u64().map_or("—".into(), fmt::bytes)
}

/// (when, state, bad) of a run view; no time when it never ran.
fn run_line(run: &Value) -> (Option<When>, String, bool) {
    if run.is_null() {
        return (None, "not run yet".into(), false);
    }
    let at = When::parse(run["at"].as_str());
    if run["ok"] == true {
        (at, "passed".into(), false)
    } else {
        let err: String = text(&run["error"], "failed").chars().take(160).collect();
        (at, format!("failed: {err}"), true)
    }
}

/// `GET /backups`.
pub async fn page(State(state): State<AppState>, Page { ctx, .. }: Page) -> UiResult {
    let b = crate::backups::view::builtin_view(&state).await?;
    let (drill, drill_state, drill_bad) = run_line(&b["last_drill"]);
    let builtin = Builtin {
        enabled: b["enabled"] == true,
        dir: text(&b["dir"], ""),
        from: When::parse(b["restorable_from"].as_str()),
        to: When::parse(b["restorable_to"].as_str()),
        size: size(&b["total_bytes"]),
        snapshots: fmt::grouped(b["snapshots"].as_i64().unwrap_or(0)),
        drill,
        drill_state,
        drill_bad,
    };
    let rows = lookout_store::backup::catalog::list_targets(state.store()).await?;
    let mut targets = Vec::new();
    for t in &rows {
        let v = crate::backups::view::target_view(&state, t).await?;
        let (_, backup_state, backup_bad) = run_line(&v["last_backup"]);
        let (drill, drill_state, drill_bad) = run_line(&v["last_drill"]);
        targets.push(TargetLine {
            name: t.spec.name.clone(),
            stanza: t.spec.stanza.clone(),
            last_backup: When::parse(v["last_backup_at"].as_str()),
            backup_state,
            backup_bad,
            size: size(&v["repo_size_bytes"]),
            wal_lag: v["wal_lag_segments"].as_i64().map_or("—".into(), |n| {
                format!(
                    "{} segment{}",
                    fmt::grouped(n),
                    if n == 1 { "" } else { "s" }
                )
            }),
            drill,
            drill_state,
            drill_bad,
        });
    }
    Ok(render(&BackupsPage {
        title: "Backups".into(),
        ctx,
        builtin,
        targets,
    }))
}
