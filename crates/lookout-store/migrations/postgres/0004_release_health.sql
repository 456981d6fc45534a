-- Release health (PostgreSQL): session counts per project, release, environment and UTC day.
CREATE TABLE release_health (
    project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    release TEXT NOT NULL,
    environment TEXT NOT NULL,
    day BIGINT NOT NULL,
    sessions BIGINT NOT NULL,
    errored BIGINT NOT NULL,
    crashed BIGINT NOT NULL,
    abnormal BIGINT NOT NULL,
    PRIMARY KEY (project_id, release, environment, day)
);
