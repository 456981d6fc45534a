-- Alerting and on-call (SQLite): notification channels and users' contact methods, on-call
-- schedules and overrides, escalation policies, runbooks, alert policies, inbound integrations,
-- incidents with their timeline, and the notification outbox.
ALTER TABLE users ADD COLUMN name TEXT;

-- kind: webhook, slack, discord, mattermost, email, ntfy, pagerduty. config: JSON, secrets sealed.
-- user_id set: the channel is one of that user's contact methods, used for the urgencies listed.
CREATE TABLE alert_channels (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    config TEXT NOT NULL,
    user_id INTEGER REFERENCES users(id) ON DELETE CASCADE,
    urgencies TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX alert_channels_by_user ON alert_channels (user_id);

-- spec: the schedule's layers and time zone as JSON (PagerDuty's shape); overrides apart.
CREATE TABLE oncall_schedules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE schedule_overrides (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule_id INTEGER NOT NULL REFERENCES oncall_schedules(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    starts_at INTEGER NOT NULL,
    ends_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX schedule_overrides_by_schedule ON schedule_overrides (schedule_id, ends_at);

CREATE TABLE escalation_policies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- A runbook is Markdown kept in versions, or a link elsewhere.
CREATE TABLE runbooks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    url TEXT,
    version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE runbook_versions (
    runbook_id INTEGER NOT NULL REFERENCES runbooks(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_by TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (runbook_id, version)
);

-- spec: conditions, grouping, urgency, severity, service, escalation policy, runbook as JSON.
CREATE TABLE alert_policies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- kind: pagerduty, alertmanager, grafana, webhook. The key is looked up by its hash and kept
-- sealed so the API can show it again. spec: escalation policy, runbook, service, field mapping.
CREATE TABLE integrations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    key_sealed TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- scope: 'integration:<id>' or 'policy:<id>'; at most one open incident per (scope, dedup_key).
CREATE TABLE incidents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    title TEXT NOT NULL,
    status TEXT NOT NULL,
    urgency TEXT NOT NULL,
    severity TEXT NOT NULL,
    service TEXT,
    source TEXT,
    policy_id INTEGER,
    integration_id INTEGER,
    escalation_policy_id INTEGER,
    runbook_id INTEGER,
    runbook_version INTEGER,
    rule_index INTEGER NOT NULL,
    lap INTEGER NOT NULL,
    next_escalation_at INTEGER,
    ack_until INTEGER,
    alert_count INTEGER NOT NULL,
    details TEXT NOT NULL,
    checklist TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    acknowledged_at INTEGER,
    resolved_at INTEGER,
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX incidents_open_key ON incidents (scope, dedup_key) WHERE status <> 'resolved';
CREATE INDEX incidents_escalation_due ON incidents (next_escalation_at) WHERE next_escalation_at IS NOT NULL;
CREATE INDEX incidents_ack_due ON incidents (ack_until) WHERE ack_until IS NOT NULL;
CREATE INDEX incidents_by_created ON incidents (created_at);

-- The signals (monitors, issues) that an open policy incident stands for; it resolves itself
-- when the last one recovers.
CREATE TABLE incident_signals (
    incident_id INTEGER NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
    signal TEXT NOT NULL,
    open INTEGER NOT NULL,
    PRIMARY KEY (incident_id, signal)
);
CREATE INDEX incident_signals_by_signal ON incident_signals (signal, open);

-- kind: triggered, alert, notified, notify_failed, escalated, repeated, exhausted, acknowledged,
-- ack_timeout, resolved, note, checklist. actor: 'user:<email>', 'integration:<name>', 'system'.
CREATE TABLE incident_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id INTEGER NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    message TEXT NOT NULL,
    data TEXT
);
CREATE INDEX incident_log_by_incident ON incident_log (incident_id, id);

-- The outbox. idempotency_key is unique: the same page is never queued twice, and it is sent
-- to the receiver so a retry after a crash can be recognised there.
CREATE TABLE notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE,
    incident_id INTEGER NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
    channel_id INTEGER NOT NULL REFERENCES alert_channels(id) ON DELETE CASCADE,
    data TEXT NOT NULL,
    user_id INTEGER,
    event TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    sent_at INTEGER
);
CREATE INDEX notifications_due ON notifications (status, next_attempt_at);
CREATE INDEX notifications_by_incident ON notifications (incident_id);
