-- APM. Raw spans, kept for search and drill-down until retention removes them.
CREATE TABLE apm_spans (
    seq BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL,
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_span_id TEXT,
    service TEXT NOT NULL,
    instance TEXT,
    name TEXT NOT NULL,
    kind BIGINT NOT NULL,
    start_ns BIGINT NOT NULL,
    duration_ns BIGINT NOT NULL,
    status BIGINT NOT NULL,
    error BIGINT NOT NULL,
    category TEXT NOT NULL,
    operation TEXT NOT NULL,
    status_class TEXT NOT NULL,
    http_status BIGINT,
    db_system TEXT,
    db_statement TEXT,
    peer TEXT,
    resource TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX apm_spans_trace ON apm_spans (trace_id);
CREATE INDEX apm_spans_service_time ON apm_spans (project_id, service, start_ns);
-- Database calls by statement, for the Databases page's "called from" (APM joined with
-- pg_stat_statements); partial, so other spans cost nothing here.
CREATE INDEX apm_spans_statement ON apm_spans (db_statement, start_ns) WHERE db_statement IS NOT NULL;
-- What each export adds to the rollups (lookout_apm::rollup::Part as JSON), written with its
-- spans, in commit order (seq): the rollup consumer folds each part exactly once.
CREATE TABLE apm_parts (
    seq BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL,
    payload TEXT NOT NULL
);
-- Recent ends of calls between services (client spans, and request spans with a parent), kept
-- by the rollup consumer to pair a call's two spans whichever arrives first.
CREATE TABLE apm_links (
    project_id BIGINT NOT NULL,
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_span_id TEXT,
    service TEXT NOT NULL,
    client BIGINT NOT NULL,
    at_ms BIGINT NOT NULL
);
CREATE INDEX apm_links_trace ON apm_links (trace_id);
CREATE INDEX apm_links_age ON apm_links (at_ms);
-- Resource attributes, stored once per distinct set (spans refer to them by hash).
CREATE TABLE apm_resources (
    project_id BIGINT NOT NULL,
    hash TEXT NOT NULL,
    attributes TEXT NOT NULL,
    PRIMARY KEY (project_id, hash)
);
-- RED rollups: one row per (tier, bucket, service, category, operation, status class, error).
-- Tier 0 = minute, 1 = hour, 2 = day; every page and query reads these rows.
CREATE TABLE apm_rollups (
    project_id BIGINT NOT NULL,
    tier BIGINT NOT NULL,
    service TEXT NOT NULL,
    bucket BIGINT NOT NULL,
    category TEXT NOT NULL,
    operation TEXT NOT NULL,
    status_class TEXT NOT NULL,
    error BIGINT NOT NULL,
    count BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    sum_ms DOUBLE PRECISION NOT NULL,
    min_ms DOUBLE PRECISION NOT NULL,
    max_ms DOUBLE PRECISION NOT NULL,
    sketch BYTEA NOT NULL,
    PRIMARY KEY (project_id, tier, service, bucket, category, operation, status_class, error)
);
CREATE INDEX apm_rollups_time ON apm_rollups (project_id, tier, bucket);
-- Calls between services, and from services to databases and external hosts, per minute and hour.
CREATE TABLE apm_edges (
    project_id BIGINT NOT NULL,
    tier BIGINT NOT NULL,
    bucket BIGINT NOT NULL,
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    target_kind TEXT NOT NULL,
    count BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    sum_ms DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (project_id, tier, bucket, source, target, target_kind)
);
-- Services seen, with their Apdex target and the duration from which a database call is slow.
CREATE TABLE apm_services (
    project_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    apdex_t_ms DOUBLE PRECISION NOT NULL,
    slow_query_ms DOUBLE PRECISION NOT NULL DEFAULT 100,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    PRIMARY KEY (project_id, name)
);
CREATE TABLE apm_logs (
    seq BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL,
    time_ns BIGINT NOT NULL,
    service TEXT NOT NULL,
    severity_number BIGINT NOT NULL,
    severity TEXT NOT NULL,
    body TEXT NOT NULL,
    trace_id TEXT,
    span_id TEXT,
    attributes TEXT NOT NULL
);
CREATE INDEX apm_logs_trace ON apm_logs (trace_id);
CREATE INDEX apm_logs_time ON apm_logs (project_id, time_ns);
-- Metric series (name, service and attributes) with the cumulative state that turns cumulative
-- points into deltas, and their per-minute values.
CREATE TABLE apm_metric_series (
    id BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    service TEXT NOT NULL,
    attributes TEXT NOT NULL,
    kind TEXT NOT NULL,
    unit TEXT NOT NULL,
    bounds TEXT,
    state TEXT,
    last_seen BIGINT NOT NULL,
    UNIQUE (project_id, name, service, attributes)
);
CREATE TABLE apm_metric_points (
    series_id BIGINT NOT NULL REFERENCES apm_metric_series(id) ON DELETE CASCADE,
    minute BIGINT NOT NULL,
    points BIGINT NOT NULL,
    count DOUBLE PRECISION NOT NULL,
    sum DOUBLE PRECISION NOT NULL,
    min DOUBLE PRECISION,
    max DOUBLE PRECISION,
    last DOUBLE PRECISION,
    buckets TEXT,
    sketch BYTEA,
    quantiles TEXT,
    PRIMARY KEY (series_id, minute)
);
