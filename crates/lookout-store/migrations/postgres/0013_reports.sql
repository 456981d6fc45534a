-- Reports and SLOs (PostgreSQL). report_settings: one JSON spec per organization (schedule, time
-- zone, channels, outcome targets). slos: service-level objectives, a name and a JSON spec like
-- the alerting objects. reports: every generated report, its body as JSON, kept for the UI.
-- report_deliveries: the outbox of scheduled reports, one row per report and channel.
CREATE TABLE report_settings (
    org_id BIGINT PRIMARY KEY REFERENCES organizations(id) ON DELETE CASCADE,
    spec TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE slos (
    id BIGSERIAL PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE reports (
    id BIGSERIAL PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    period_start BIGINT NOT NULL,
    period_end BIGINT NOT NULL,
    scheduled BIGINT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX reports_scheduled ON reports (org_id, kind, period_end) WHERE scheduled = 1;
CREATE INDEX reports_by_end ON reports (org_id, period_end);
CREATE TABLE report_deliveries (
    report_id BIGINT NOT NULL REFERENCES reports(id) ON DELETE CASCADE,
    channel_id BIGINT NOT NULL REFERENCES alert_channels(id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT,
    sent_at BIGINT,
    PRIMARY KEY (report_id, channel_id)
);
CREATE INDEX report_deliveries_due ON report_deliveries (status, next_attempt_at);
-- What reports read by time: error events of a project in a period, and domain events of a kind
-- (issue.regressed, db.finding) in a period.
CREATE INDEX error_events_by_time ON error_events (project_id, timestamp);
CREATE INDEX domain_events_by_kind ON domain_events (kind, created_at);
