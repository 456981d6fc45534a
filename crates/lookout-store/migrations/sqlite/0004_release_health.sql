-- Release health (SQLite): session counts per project, release, environment and UTC day.
CREATE TABLE release_health (
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    release TEXT NOT NULL,
    environment TEXT NOT NULL,
    day INTEGER NOT NULL,
    sessions INTEGER NOT NULL,
    errored INTEGER NOT NULL,
    crashed INTEGER NOT NULL,
    abnormal INTEGER NOT NULL,
    PRIMARY KEY (project_id, release, environment, day)
);
