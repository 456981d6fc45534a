-- Load-test runs reported by `lookout load --report-to`, and baseline series with their points
-- (per-run key figures now; benchmark pushes and importers join them with regression detection).
-- summary: the run's full summary as JSON (metrics, thresholds, checks, scenarios, per-second series).
CREATE TABLE load_runs (
    id BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    commit_sha TEXT,
    started_at BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    passed BIGINT NOT NULL,
    requests BIGINT NOT NULL,
    rps DOUBLE PRECISION NOT NULL,
    p95_ms DOUBLE PRECISION NOT NULL,
    error_rate DOUBLE PRECISION NOT NULL,
    summary TEXT NOT NULL,
    scenario_file TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX load_runs_by_project ON load_runs (project_id, id);

-- A series: a name plus tags (canonical JSON, keys sorted), a unit and which direction is better.
CREATE TABLE series (
    id BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    tags TEXT NOT NULL,
    unit TEXT NOT NULL,
    direction TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (project_id, name, tags)
);
-- source: where the point came from (`load_run:ID`, `push`, an importer).
CREATE TABLE series_points (
    id BIGSERIAL PRIMARY KEY,
    series_id BIGINT NOT NULL REFERENCES series(id) ON DELETE CASCADE,
    at BIGINT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    commit_sha TEXT,
    version TEXT,
    build TEXT,
    source TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX series_points_by_series ON series_points (series_id, at);
