-- Error tracking (PostgreSQL). See lookout-store/src/errors/ for how these tables are used.
-- The ingest inbox: every item an SDK sent and we acknowledged, in arrival order. Consumers
-- (the error processor now; APM, cron monitors and release health later) follow it by cursor.
CREATE TABLE ingest_items (
    seq BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    event_id TEXT,
    received_at BIGINT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX ingest_items_received ON ingest_items (received_at);
CREATE TABLE issues (
    id BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    culprit TEXT NOT NULL,
    level TEXT NOT NULL,
    platform TEXT NOT NULL,
    status TEXT NOT NULL,
    substatus TEXT,
    resolved_in_release TEXT,
    ignore_until BIGINT,
    ignore_until_count BIGINT,
    merged_into BIGINT,
    grouping_version TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    times_seen BIGINT NOT NULL,
    user_count BIGINT NOT NULL,
    first_release TEXT,
    last_release TEXT
);
CREATE INDEX issues_project_last_seen ON issues (project_id, last_seen);
CREATE TABLE issue_hashes (
    project_id BIGINT NOT NULL,
    hash TEXT NOT NULL,
    issue_id BIGINT NOT NULL REFERENCES issues(id) ON DELETE CASCADE,
    PRIMARY KEY (project_id, hash)
);
CREATE INDEX issue_hashes_issue ON issue_hashes (issue_id);
CREATE TABLE error_events (
    id BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    issue_id BIGINT NOT NULL REFERENCES issues(id) ON DELETE CASCADE,
    event_id TEXT NOT NULL,
    timestamp BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    level TEXT NOT NULL,
    release TEXT,
    environment TEXT NOT NULL,
    user_key TEXT,
    title TEXT NOT NULL,
    hashes TEXT NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (project_id, event_id)
);
CREATE INDEX error_events_issue ON error_events (issue_id, id);
CREATE TABLE issue_users (
    issue_id BIGINT NOT NULL REFERENCES issues(id) ON DELETE CASCADE,
    user_key TEXT NOT NULL,
    PRIMARY KEY (issue_id, user_key)
);
CREATE TABLE issue_tags (
    issue_id BIGINT NOT NULL REFERENCES issues(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    times_seen BIGINT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    PRIMARY KEY (issue_id, key, value)
);
CREATE TABLE attachments (
    id TEXT PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    event_id TEXT NOT NULL,
    filename TEXT NOT NULL,
    content_type TEXT,
    size BIGINT NOT NULL,
    data BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX attachments_event ON attachments (project_id, event_id);
CREATE TABLE client_report_counts (
    project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    reason TEXT NOT NULL,
    category TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    PRIMARY KEY (project_id, reason, category)
);
ALTER TABLE projects ADD COLUMN grouping_version TEXT NOT NULL DEFAULT 'lookout:1';
