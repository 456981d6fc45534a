-- Locations (SQLite): remote vantage points whose `lookout probe` agents check monitors from
-- elsewhere than the replicas. A monitor chooses them by name in its spec (`locations`, with
-- `local` for the replicas' own checker), so no join table: the spec stays the one definition.
-- token_hash: SHA-256 of the location's agent token (shown once); NULL once revoked, so a revoked
-- token can never match. offline: the last health the location was announced with
-- (location.offline / location.online), set by the runner that watches agents' reports.
CREATE TABLE locations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id INTEGER NOT NULL,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    token_hash TEXT UNIQUE,
    token_created_at INTEGER,
    revoked_at INTEGER,
    offline INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
-- Agents seen per location: agent_id is chosen by the agent (random per process start unless
-- given); last_seen_at moves at every request, so the pool's live agents are those seen within
-- the liveness timeout. buffered/dropped: results the agent holds or lost while the server was
-- unreachable, as it last reported them.
CREATE TABLE location_agents (
    location_id INTEGER NOT NULL REFERENCES locations(id) ON DELETE CASCADE,
    agent_id TEXT NOT NULL,
    version TEXT NOT NULL,
    first_seen_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    buffered INTEGER NOT NULL DEFAULT 0,
    dropped INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (location_id, agent_id)
);
-- Results reported by agents. The key is the check's scheduled time, so a batch retried after a
-- lost answer (or uploaded again after an agent restart) is stored once.
CREATE TABLE location_results (
    monitor_id INTEGER NOT NULL,
    location_id INTEGER NOT NULL,
    scheduled_at INTEGER NOT NULL,
    at INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    latency_us INTEGER,
    message TEXT,
    PRIMARY KEY (monitor_id, location_id, scheduled_at)
);
CREATE INDEX location_results_by_location ON location_results (location_id, at);
-- Each monitor's state as one location sees it: its own thresholds applied to its own results.
CREATE TABLE location_checks (
    monitor_id INTEGER NOT NULL,
    location_id INTEGER NOT NULL,
    health TEXT NOT NULL DEFAULT 'pending',
    failures INTEGER NOT NULL DEFAULT 0,
    successes INTEGER NOT NULL DEFAULT 0,
    last_scheduled_at INTEGER,
    last_check_at INTEGER,
    last_ok INTEGER,
    last_latency_us INTEGER,
    last_failure TEXT,
    changed_at INTEGER,
    PRIMARY KEY (monitor_id, location_id)
);
CREATE INDEX location_checks_by_location ON location_checks (location_id);
