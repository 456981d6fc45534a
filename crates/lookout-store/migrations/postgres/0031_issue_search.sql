-- Issue lists at a team's full data (issue 31), PostgreSQL.
-- Issue search: the lowercased title and culprit of each issue in a table of their own with a
-- trigram index (pg_trgm, a contrib extension trusted since PostgreSQL 13, so a role with CREATE
-- on the database may create it), so `query=` finds substrings (what LIKE '%…%' on `issues` found) without reading
-- every issue of the project. A table of its own rather than indexes on `issues`: every event
-- updates its issue's row, and each new row version would add its trigrams to the index again.
-- The trigger keeps it in step with inserts and title or culprit changes (re-processing rewrites
-- culprits). SQLite has an FTS5 trigram
-- table of the same name (its 0031); the schema test leaves both out of the comparison.
CREATE TABLE issues_fts (
    issue_id BIGINT PRIMARY KEY REFERENCES issues(id) ON DELETE CASCADE,
    text TEXT NOT NULL
);
INSERT INTO issues_fts (issue_id, text) SELECT id, LOWER(title) || E'\n' || LOWER(culprit) FROM issues;
-- The index only makes search fast (the LIKE is the same with or without it), so where pg_trgm
-- cannot be had (a role without CREATE on the database, no contrib package, the extension in a
-- schema off the search path) the upgrade goes on with search unindexed and says so, rather
-- than refusing to start the server.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    EXECUTE 'CREATE INDEX issues_fts_trgm ON issues_fts USING gin (text gin_trgm_ops)';
EXCEPTION WHEN insufficient_privilege OR undefined_file OR feature_not_supported OR undefined_object THEN
    RAISE WARNING 'pg_trgm is not available (%): issue search works without its trigram index', SQLERRM;
END
$$;
CREATE FUNCTION issues_fts_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO issues_fts (issue_id, text) VALUES (NEW.id, LOWER(NEW.title) || E'\n' || LOWER(NEW.culprit))
    ON CONFLICT (issue_id) DO UPDATE SET text = excluded.text;
    RETURN NULL;
END
$$;
CREATE TRIGGER issues_fts_sync AFTER INSERT OR UPDATE OF title, culprit ON issues
    FOR EACH ROW EXECUTE FUNCTION issues_fts_sync();
-- The Errors page's 24-hour sparklines count each listed issue's events since a time: by issue
-- and time, a loud issue's recent events are one range instead of all its events.
CREATE INDEX error_events_issue_time ON error_events (issue_id, timestamp);
