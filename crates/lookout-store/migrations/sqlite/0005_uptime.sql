-- Uptime monitoring (SQLite): monitors, their state, raw results (24 h), rollups, state changes,
-- cron check-ins, maintenance windows and public status pages.
CREATE TABLE monitors (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    project_id INTEGER REFERENCES projects(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    slug TEXT,
    spec TEXT NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0,
    parent_id INTEGER,
    push_token TEXT UNIQUE,
    shard INTEGER NOT NULL,
    managed_by TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX monitors_by_shard ON monitors (shard, updated_at);
CREATE UNIQUE INDEX monitors_cron_slug ON monitors (project_id, slug);

CREATE TABLE monitor_state (
    monitor_id INTEGER PRIMARY KEY REFERENCES monitors(id) ON DELETE CASCADE,
    health TEXT NOT NULL,
    alerted INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    successes INTEGER NOT NULL DEFAULT 0,
    last_check_at INTEGER,
    last_ok INTEGER,
    last_latency_us INTEGER,
    last_failure TEXT,
    last_failure_at INTEGER,
    cert_expires_at INTEGER,
    cert_chain_valid INTEGER,
    cert_warned INTEGER NOT NULL DEFAULT 0,
    cron_slot INTEGER,
    changed_at INTEGER,
    last_ping_at INTEGER
);

-- One row per check; `ok` 1/0, `maintenance` 1 inside a window; message only on failure.
CREATE TABLE monitor_results (
    monitor_id INTEGER NOT NULL,
    at INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    maintenance INTEGER NOT NULL,
    latency_us INTEGER,
    message TEXT,
    PRIMARY KEY (monitor_id, at)
) WITHOUT ROWID;

-- width: 'm' minute, 'h' hour, 'd' day; bucket = start, ms.
CREATE TABLE monitor_rollups (
    monitor_id INTEGER NOT NULL,
    width TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    up INTEGER NOT NULL,
    down INTEGER NOT NULL,
    maintenance INTEGER NOT NULL,
    latency_avg_us INTEGER,
    latency_p95_us INTEGER,
    latency_max_us INTEGER,
    PRIMARY KEY (monitor_id, width, bucket)
) WITHOUT ROWID;

CREATE TABLE monitor_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    monitor_id INTEGER NOT NULL REFERENCES monitors(id) ON DELETE CASCADE,
    at INTEGER NOT NULL,
    from_health TEXT NOT NULL,
    to_health TEXT NOT NULL,
    reason TEXT NOT NULL,
    alerted INTEGER NOT NULL
);
CREATE INDEX monitor_changes_by_monitor ON monitor_changes (monitor_id, at);

CREATE TABLE cron_checkins (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    monitor_id INTEGER NOT NULL REFERENCES monitors(id) ON DELETE CASCADE,
    check_in_id TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    duration_ms INTEGER,
    environment TEXT,
    recorded INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX cron_checkins_by_id ON cron_checkins (monitor_id, check_in_id);
CREATE INDEX cron_checkins_pending ON cron_checkins (monitor_id, recorded, started_at);

CREATE TABLE maintenance_windows (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    starts_at INTEGER,
    ends_at INTEGER,
    recurrence TEXT,
    monitor_ids TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE status_pages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    slug TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    logo_url TEXT,
    monitor_ids TEXT NOT NULL,
    managed_by TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE status_incidents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    page_id INTEGER NOT NULL REFERENCES status_pages(id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    impact TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    resolved_at INTEGER
);
CREATE INDEX status_incidents_by_page ON status_incidents (page_id, created_at);

CREATE TABLE status_incident_updates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id INTEGER NOT NULL REFERENCES status_incidents(id) ON DELETE CASCADE,
    at INTEGER NOT NULL,
    status TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX status_incident_updates_by_incident ON status_incident_updates (incident_id, at);

-- How far each rollup width has been computed (ms): buckets before it are final.
CREATE TABLE uptime_marks (
    name TEXT PRIMARY KEY,
    done_until INTEGER NOT NULL
);
