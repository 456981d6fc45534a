-- Backup targets: the user's PostgreSQL clusters backed up through pgBackRest. pg_url (sealed
-- with the server's key, optional) is read for pg_stat_archiver; status is the newest summary of
-- `pgbackrest info` as JSON.
CREATE TABLE backup_targets (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    stanza TEXT NOT NULL,
    config TEXT,
    run_as TEXT,
    pg_url TEXT,
    pg_bin TEXT,
    full_every_hours BIGINT NOT NULL,
    diff_every_hours BIGINT NOT NULL,
    drill_every_hours BIGINT NOT NULL,
    status TEXT,
    status_at BIGINT,
    created_at BIGINT NOT NULL
);
-- Backups taken and restore drills run, for the built-in backup (target 'lookout', no
-- target_id) and for targets. details is JSON (sizes, counts, timings).
CREATE TABLE backup_runs (
    id BIGSERIAL PRIMARY KEY,
    target TEXT NOT NULL,
    target_id BIGINT REFERENCES backup_targets(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    ok BIGINT NOT NULL,
    error TEXT,
    details TEXT
);
CREATE INDEX backup_runs_by_target ON backup_runs (target, kind, id);
