-- Uptime monitoring (PostgreSQL): monitors, their state, raw results (24 h), rollups, state changes,
-- cron check-ins, maintenance windows and public status pages.
CREATE TABLE monitors (
    id BIGSERIAL PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    project_id BIGINT REFERENCES projects(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    slug TEXT,
    spec TEXT NOT NULL,
    paused BIGINT NOT NULL DEFAULT 0,
    parent_id BIGINT,
    push_token TEXT UNIQUE,
    shard BIGINT NOT NULL,
    managed_by TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX monitors_by_shard ON monitors (shard, updated_at);
CREATE UNIQUE INDEX monitors_cron_slug ON monitors (project_id, slug);

CREATE TABLE monitor_state (
    monitor_id BIGINT PRIMARY KEY REFERENCES monitors(id) ON DELETE CASCADE,
    health TEXT NOT NULL,
    alerted BIGINT NOT NULL DEFAULT 0,
    failures BIGINT NOT NULL DEFAULT 0,
    successes BIGINT NOT NULL DEFAULT 0,
    last_check_at BIGINT,
    last_ok BIGINT,
    last_latency_us BIGINT,
    last_failure TEXT,
    last_failure_at BIGINT,
    cert_expires_at BIGINT,
    cert_chain_valid BIGINT,
    cert_warned BIGINT NOT NULL DEFAULT 0,
    cron_slot BIGINT,
    changed_at BIGINT,
    last_ping_at BIGINT
);

-- One row per check; `ok` 1/0, `maintenance` 1 inside a window; message only on failure.
CREATE TABLE monitor_results (
    monitor_id BIGINT NOT NULL,
    at BIGINT NOT NULL,
    ok BIGINT NOT NULL,
    maintenance BIGINT NOT NULL,
    latency_us BIGINT,
    message TEXT,
    PRIMARY KEY (monitor_id, at)
);

-- width: 'm' minute, 'h' hour, 'd' day; bucket = start, ms.
CREATE TABLE monitor_rollups (
    monitor_id BIGINT NOT NULL,
    width TEXT NOT NULL,
    bucket BIGINT NOT NULL,
    up BIGINT NOT NULL,
    down BIGINT NOT NULL,
    maintenance BIGINT NOT NULL,
    latency_avg_us BIGINT,
    latency_p95_us BIGINT,
    latency_max_us BIGINT,
    PRIMARY KEY (monitor_id, width, bucket)
);

CREATE TABLE monitor_changes (
    id BIGSERIAL PRIMARY KEY,
    monitor_id BIGINT NOT NULL REFERENCES monitors(id) ON DELETE CASCADE,
    at BIGINT NOT NULL,
    from_health TEXT NOT NULL,
    to_health TEXT NOT NULL,
    reason TEXT NOT NULL,
    alerted BIGINT NOT NULL
);
CREATE INDEX monitor_changes_by_monitor ON monitor_changes (monitor_id, at);

CREATE TABLE cron_checkins (
    id BIGSERIAL PRIMARY KEY,
    monitor_id BIGINT NOT NULL REFERENCES monitors(id) ON DELETE CASCADE,
    check_in_id TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    duration_ms BIGINT,
    environment TEXT,
    recorded BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX cron_checkins_by_id ON cron_checkins (monitor_id, check_in_id);
CREATE INDEX cron_checkins_pending ON cron_checkins (monitor_id, recorded, started_at);

CREATE TABLE maintenance_windows (
    id BIGSERIAL PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    starts_at BIGINT,
    ends_at BIGINT,
    recurrence TEXT,
    monitor_ids TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE status_pages (
    id BIGSERIAL PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    slug TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    logo_url TEXT,
    monitor_ids TEXT NOT NULL,
    managed_by TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE status_incidents (
    id BIGSERIAL PRIMARY KEY,
    page_id BIGINT NOT NULL REFERENCES status_pages(id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    impact TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    resolved_at BIGINT
);
CREATE INDEX status_incidents_by_page ON status_incidents (page_id, created_at);

CREATE TABLE status_incident_updates (
    id BIGSERIAL PRIMARY KEY,
    incident_id BIGINT NOT NULL REFERENCES status_incidents(id) ON DELETE CASCADE,
    at BIGINT NOT NULL,
    status TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX status_incident_updates_by_incident ON status_incident_updates (incident_id, at);

-- How far each rollup width has been computed (ms): buckets before it are final.
CREATE TABLE uptime_marks (
    name TEXT PRIMARY KEY,
    done_until BIGINT NOT NULL
);
