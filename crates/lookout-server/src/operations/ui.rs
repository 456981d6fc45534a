//! The Operations page (`/operations`, admin): the same reading as `GET /api/v1/operations`,
//! shaped for people — relative times with the absolute on hover, durations in units, lost
//! replicas, stale leases and lagging consumers marked.

use askama::Template;
use axum::extract::State;

use crate::api::schemas_cluster::OperationsView;
use crate::state::AppState;
use crate::ui::error::UiResult;
use crate::ui::extract::{Admin, Page};
use crate::ui::fmt::{self, When};
use crate::ui::layout::{render, PageCtx};

/// A replica row.
pub struct ReplicaLine {
    pub name: String,
    pub version: String,
    pub live: bool,
    pub this: bool,
    pub started: Option<When>,
    pub heartbeat_age: String,
    pub offset: String,
    /// The leases it holds, by name (shards shortened to their number).
    pub work: String,
}

/// A lease row.
pub struct LeaseLine {
    pub name: String,
    pub owner: String,
    pub owner_live: bool,
    pub held: String,
    pub fence: i64,
}

/// A consumer row.
pub struct ConsumerLine {
    pub consumer: String,
    pub stream: String,
    pub lag: String,
    pub behind: bool,
    pub served_by: String,
    pub updated: Option<When>,
}

#[derive(Template)]
#[template(path = "operations.html")]
struct OperationsPage {
    title: String,
    ctx: PageCtx,
    replica: String,
    ready: bool,
    not_ready_reason: String,
    offset: String,
    live: i64,
    replicas: Vec<ReplicaLine>,
    leases: Vec<LeaseLine>,
    consumers: Vec<ConsumerLine>,
    outbox_pending: String,
    /// The shared Redis's state, as a sentence.
    redis: String,
    /// Whether that is fine (none configured, or reachable).
    redis_ok: bool,
    outbox_oldest: Option<When>,
}

/// `+12 ms` / `−3 ms`: which way a clock is off matters.
fn offset(ms: i64) -> String {
    let d = fmt::duration_ms(ms.unsigned_abs() as f64);
    if ms < 0 {
        format!("−{d}")
    } else {
        format!("+{d}")
    }
}

/// The work each replica holds, for its row: `uptime shards 0, 3, 7 · cluster.heartbeat_url`.
fn work_of(v: &OperationsView, replica: &str) -> String {
    let mut shards = Vec::new();
    let mut other = Vec::new();
    for l in v
        .leases
        .iter()
        .filter(|l| l.owner.as_deref() == Some(replica) && l.owner_live)
    {
        match l.name.strip_prefix("uptime.shard.") {
            Some(n) => shards.push(n.to_string()),
            None => other.push(l.name.clone()),
        }
    }
    if !shards.is_empty() {
        other.insert(0, format!("uptime shards {}", shards.join(", ")));
    }
    if other.is_empty() {
        "—".into()
    } else {
        other.join(" · ")
    }
}

/// `GET /operations`.
pub async fn page(State(state): State<AppState>, Page { ctx, .. }: Page<Admin>) -> UiResult {
    let v = super::view::read(state.store(), state.cluster()).await?;
    let replicas = v
        .replicas
        .iter()
        .map(|r| ReplicaLine {
            name: r.name.clone(),
            version: r.version.clone(),
            live: r.state == "live",
            this: r.this,
            started: When::parse(Some(&r.started_at)),
            heartbeat_age: fmt::duration_ms(r.heartbeat_age_ms as f64),
            offset: offset(r.clock_offset_ms),
            work: work_of(&v, &r.name),
        })
        .collect();
    let leases = v
        .leases
        .iter()
        .map(|l| LeaseLine {
            name: l.name.clone(),
            owner: l.owner.clone().unwrap_or_else(|| "free".into()),
            owner_live: l.owner_live,
            held: l.held_ms.map_or("—".into(), fmt::span),
            fence: l.fence,
        })
        .collect();
    let consumers = v
        .consumers
        .iter()
        .map(|c| ConsumerLine {
            consumer: c.consumer.clone(),
            stream: c.stream.clone(),
            lag: fmt::grouped(c.lag),
            behind: c.lag > 0,
            served_by: c.served_by.clone().unwrap_or_else(|| "nobody".into()),
            updated: When::parse(Some(&c.updated_at)),
        })
        .collect();
    Ok(render(&OperationsPage {
        title: "Operations".into(),
        ctx,
        replica: v.replica.clone().unwrap_or_else(|| "—".into()),
        ready: v.ready,
        not_ready_reason: v.not_ready_reason.clone().unwrap_or_default(),
        offset: offset(v.clock_offset_ms),
        live: v.replicas_live,
        replicas,
        leases,
        consumers,
        redis: match (&v.redis.location, v.redis.reachable) {
            (None, _) => "not configured: limits are per replica".into(),
            (Some(l), true) => format!("{l}: reachable"),
            (Some(l), false) => format!("{l}: unreachable, limits per replica until it answers"),
        },
        redis_ok: !v.redis.configured || v.redis.reachable,
        outbox_pending: fmt::grouped(v.outbox.pending),
        outbox_oldest: When::parse(v.outbox.oldest_pending_at.as_deref()),
    }))
}
