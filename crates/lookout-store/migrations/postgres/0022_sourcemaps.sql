-- Source maps (PostgreSQL): what sentry-cli uploads, and releases it creates. See
-- lookout-store/src/errors/sourcemaps.rs.
-- Chunks of an upload in progress, by the SHA-1 of their (uncompressed) bytes: a chunk the
-- server already has is not sent again. Deleted an hour after upload, assembled or not.
CREATE TABLE upload_chunks (
    checksum TEXT PRIMARY KEY,
    size BIGINT NOT NULL,
    data BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX upload_chunks_created ON upload_chunks (created_at);
-- An assembled artifact bundle, once per project and checksum (re-uploads are no-ops).
CREATE TABLE artifact_bundles (
    id BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    checksum TEXT NOT NULL,
    release TEXT,
    dist TEXT,
    file_count BIGINT NOT NULL,
    size BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (project_id, checksum)
);
-- Files of bundles, and legacy release files (no bundle). Looked up by debug id first, then by
-- release, dist and URL.
CREATE TABLE source_files (
    id BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    bundle_id BIGINT REFERENCES artifact_bundles(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    url TEXT NOT NULL,
    debug_id TEXT,
    release TEXT,
    dist TEXT,
    sourcemap_ref TEXT,
    -- SHA-1 of data, hex: sentry-cli's listing compares it, so it is never computed on read.
    sha1 TEXT NOT NULL,
    size BIGINT NOT NULL,
    data BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX source_files_debug_id ON source_files (project_id, debug_id);
CREATE INDEX source_files_url ON source_files (project_id, release, url);
CREATE INDEX source_files_bundle ON source_files (bundle_id);
-- Releases created with `sentry-cli releases new` (events name releases on their own too).
CREATE TABLE releases (
    id BIGSERIAL PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    version TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    released_at BIGINT,
    UNIQUE (org_id, version)
);
CREATE TABLE release_projects (
    release_id BIGINT NOT NULL REFERENCES releases(id) ON DELETE CASCADE,
    project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    PRIMARY KEY (release_id, project_id)
);
-- What users said about an error: `user_report` items and the feedback events of current SDKs,
-- tied to the event they name (and through it to its issue).
CREATE TABLE user_reports (
    id BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    event_id TEXT,
    name TEXT,
    email TEXT,
    comments TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX user_reports_event ON user_reports (project_id, event_id);
