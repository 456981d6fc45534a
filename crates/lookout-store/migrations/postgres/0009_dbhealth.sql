-- Database targets checked on a schedule by database health. url is sealed (encrypted with the
-- server's key); verify holds the YAML verification rules, if any.
CREATE TABLE db_targets (
    id BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    url TEXT NOT NULL,
    verify TEXT,
    interval_seconds BIGINT NOT NULL,
    slow_ms DOUBLE PRECISION NOT NULL,
    slow_calls BIGINT NOT NULL,
    enabled BIGINT NOT NULL,
    next_check_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (project_id, name)
);
-- One run of the checks: the report (findings, verifications, slow queries) as JSON, or why it
-- could not run.
CREATE TABLE db_checks (
    id BIGSERIAL PRIMARY KEY,
    target_id BIGINT NOT NULL REFERENCES db_targets(id) ON DELETE CASCADE,
    started_at BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    ok BIGINT NOT NULL,
    error TEXT,
    report TEXT
);
CREATE INDEX db_checks_by_target ON db_checks (target_id, id);
-- Statement statistics per check, for trends between snapshots (they survive a stats reset).
CREATE TABLE db_query_stats (
    id BIGSERIAL PRIMARY KEY,
    check_id BIGINT NOT NULL REFERENCES db_checks(id) ON DELETE CASCADE,
    target_id BIGINT NOT NULL,
    at BIGINT NOT NULL,
    queryid TEXT NOT NULL,
    query TEXT NOT NULL,
    calls BIGINT NOT NULL,
    total_ms DOUBLE PRECISION NOT NULL,
    rows_returned BIGINT NOT NULL
);
CREATE INDEX db_query_stats_by_query ON db_query_stats (target_id, queryid, at);
