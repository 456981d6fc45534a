-- Per-project limits (PostgreSQL): how long and how many error events are kept, and an optional
-- ingest rate limit in events per minute (NULL: off, the default).
ALTER TABLE projects ADD COLUMN retention_days BIGINT NOT NULL DEFAULT 90;
ALTER TABLE projects ADD COLUMN max_events BIGINT NOT NULL DEFAULT 1000000;
ALTER TABLE projects ADD COLUMN rate_limit_per_minute BIGINT;
CREATE INDEX error_events_project_time ON error_events (project_id, timestamp);
