-- Backup targets: the user's PostgreSQL clusters backed up through pgBackRest. pg_url (sealed
-- with the server's key, optional) is read for pg_stat_archiver; status is the newest summary of
-- `pgbackrest info` as JSON.
CREATE TABLE backup_targets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    stanza TEXT NOT NULL,
    config TEXT,
    run_as TEXT,
    pg_url TEXT,
    pg_bin TEXT,
    full_every_hours INTEGER NOT NULL,
    diff_every_hours INTEGER NOT NULL,
    drill_every_hours INTEGER NOT NULL,
    status TEXT,
    status_at INTEGER,
    created_at INTEGER NOT NULL
);
-- Backups taken and restore drills run, for the built-in backup (target 'lookout', no
-- target_id) and for targets. details is JSON (sizes, counts, timings).
CREATE TABLE backup_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    target TEXT NOT NULL,
    target_id INTEGER REFERENCES backup_targets(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    error TEXT,
    details TEXT
);
CREATE INDEX backup_runs_by_target ON backup_runs (target, kind, id);
