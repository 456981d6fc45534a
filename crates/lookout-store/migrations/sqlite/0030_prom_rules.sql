-- Prometheus rule files (see lookout-server/src/prometheus/rules/ and docs/rules.md).
-- A rule file per project and name, as uploaded or read from the config file's `rule_files:`
-- (managed_by 'config': the config reconciler replaces and deletes those, the API the others).
-- The YAML text is kept as written, so the page can show and edit it as its author wrote it.
CREATE TABLE prom_rule_files (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    managed_by TEXT,
    content TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (project_id, name)
);
-- One row per evaluated group: when it was last evaluated and the state of its rules (health,
-- last error, and each alert's pending/firing since, as JSON). Written in the same fenced
-- transaction as the incidents an evaluation opens or resolves, so a restart or a failover
-- continues `for` and `keep_firing_for` where they were and never fires twice.
CREATE TABLE prom_rule_state (
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    file TEXT NOT NULL,
    group_name TEXT NOT NULL,
    evaluated_at INTEGER NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (project_id, file, group_name)
);
