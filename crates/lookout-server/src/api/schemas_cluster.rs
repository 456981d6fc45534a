//! Schemas of `GET /api/v1/operations`: Lookout watching itself. Unlike most of
//! [`super::schemas_ops`] these types are not only descriptions: `operations::view` builds them
//! and the handler serialises them, so the document and the answer cannot drift apart.

use serde::Serialize;
use utoipa::ToSchema;

/// The installation as this replica sees it: replicas, the work they hold, consumer lag, the
/// outbox, and this replica's readiness.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OperationsView {
    /// The replica that answered (`null` when the server runs without a cluster, in tests).
    pub replica: Option<String>,
    /// Whether this replica is ready (`/readyz` would answer 200).
    pub ready: bool,
    /// Why not, when not ready.
    pub not_ready_reason: Option<String>,
    /// The database's clock at the reading, RFC 3339.
    pub database_time: String,
    /// How far this replica's clock is from the database's, ms (positive: it runs fast), as
    /// measured by its heartbeats; times it schedules by are corrected by it.
    pub clock_offset_ms: i64,
    /// A replica silent for longer than this is lost and its work taken over, ms.
    pub live_window_ms: i64,
    /// Live replicas.
    pub replicas_live: i64,
    /// Every replica the database knows, newest heartbeat first.
    pub replicas: Vec<ReplicaView>,
    /// Every lease: uptime shards (`uptime.shard.N`), the heartbeat URL's pinger.
    pub leases: Vec<LeaseView>,
    /// Every event-stream consumer and how far behind it is.
    pub consumers: Vec<ConsumerView>,
    /// The alerting outbox's backlog.
    pub outbox: OutboxView,
    /// The optional shared Redis (`--redis-url`).
    pub redis: RedisView,
}

/// The optional Redis the replicas share for limits, the query cache and wake-ups.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RedisView {
    /// Whether one is configured (`--redis-url`); without it every limit is per replica.
    pub configured: bool,
    /// Whether it answered a `PING` just now, from this replica.
    pub reachable: bool,
    /// Where it is, without credentials.
    pub location: Option<String>,
}

/// One replica.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReplicaView {
    /// Its name (host, process id and a random suffix).
    pub name: String,
    /// The Lookout version it runs.
    pub version: String,
    /// `live` or `lost` (no heartbeat within the live window).
    pub state: String,
    /// Whether this is the replica that answered.
    pub this: bool,
    /// When it started, RFC 3339.
    pub started_at: String,
    /// Its last heartbeat, RFC 3339.
    pub last_heartbeat_at: String,
    /// How old that heartbeat is, ms.
    pub heartbeat_age_ms: i64,
    /// How far its clock is from the database's, ms (positive: it runs fast).
    pub clock_offset_ms: i64,
    /// How many leases it holds.
    pub leases_held: i64,
}

/// One lease: a piece of work one replica at a time does.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LeaseView {
    /// Its name (`uptime.shard.3`, `cluster.heartbeat_url`).
    pub name: String,
    /// Who holds it; `null` when free.
    pub owner: Option<String>,
    /// The fencing token of the current claim; every write done under it carries it.
    pub fence: i64,
    /// When the current holder took it, RFC 3339.
    pub taken_at: Option<String>,
    /// How long the current holder has held it, ms.
    pub held_ms: Option<i64>,
    /// Until when the claim lasts without renewal, RFC 3339.
    pub lease_until: Option<String>,
    /// Whether the holder is a live replica (`false`: it will be taken over).
    pub owner_live: bool,
}

/// One consumer of an ordered stream.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConsumerView {
    /// Its name (`alerting.policies`, `errors.processor`, …).
    pub consumer: String,
    /// The stream it follows: `domain_events`, `ingest_items` or `apm_parts`.
    pub stream: String,
    /// The sequence number processed up to.
    pub position: i64,
    /// The stream's newest sequence number.
    pub head: i64,
    /// Items published and not yet processed (`head - position`, never negative).
    pub lag: i64,
    /// The replica serving it now, if its lease is current.
    pub served_by: Option<String>,
    /// When it last moved, RFC 3339.
    pub updated_at: String,
}

/// The notification outbox.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OutboxView {
    /// Notifications due now and not yet delivered.
    pub pending: i64,
    /// When the longest-waiting of them fell due, RFC 3339.
    pub oldest_pending_at: Option<String>,
    /// Notifications waiting for a later time (a notification rule's delayed step, a retry).
    pub scheduled: i64,
}
