-- Database targets checked on a schedule by database health. url is sealed (encrypted with the
-- server's key); verify holds the YAML verification rules, if any.
CREATE TABLE db_targets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    url TEXT NOT NULL,
    verify TEXT,
    interval_seconds INTEGER NOT NULL,
    slow_ms REAL NOT NULL,
    slow_calls INTEGER NOT NULL,
    enabled INTEGER NOT NULL,
    next_check_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (project_id, name)
);
-- One run of the checks: the report (findings, verifications, slow queries) as JSON, or why it
-- could not run.
CREATE TABLE db_checks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    target_id INTEGER NOT NULL REFERENCES db_targets(id) ON DELETE CASCADE,
    started_at INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    error TEXT,
    report TEXT
);
CREATE INDEX db_checks_by_target ON db_checks (target_id, id);
-- Statement statistics per check, for trends between snapshots (they survive a stats reset).
CREATE TABLE db_query_stats (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    check_id INTEGER NOT NULL REFERENCES db_checks(id) ON DELETE CASCADE,
    target_id INTEGER NOT NULL,
    at INTEGER NOT NULL,
    queryid TEXT NOT NULL,
    query TEXT NOT NULL,
    calls INTEGER NOT NULL,
    total_ms REAL NOT NULL,
    rows_returned INTEGER NOT NULL
);
CREATE INDEX db_query_stats_by_query ON db_query_stats (target_id, queryid, at);
