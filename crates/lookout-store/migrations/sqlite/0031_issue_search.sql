-- Issue lists at a team's full data (issue 31), SQLite.
-- Issue search: a trigram full-text index over titles and culprits, so `query=` finds substrings
-- (what LIKE '%…%' found) without reading every issue of the project. External content: the
-- text lives once, in `issues`; the triggers keep the index in step with inserts, deletes and
-- title changes. PostgreSQL has pg_trgm indexes instead (its 0031), so the schema test leaves
-- both out of the comparison.
CREATE VIRTUAL TABLE issues_fts USING fts5(title, culprit, content = 'issues', content_rowid = 'id', tokenize = 'trigram');
INSERT INTO issues_fts (issues_fts) VALUES ('rebuild');
CREATE TRIGGER issues_fts_insert AFTER INSERT ON issues BEGIN
    INSERT INTO issues_fts (rowid, title, culprit) VALUES (new.id, new.title, new.culprit);
END;
CREATE TRIGGER issues_fts_delete AFTER DELETE ON issues BEGIN
    INSERT INTO issues_fts (issues_fts, rowid, title, culprit) VALUES ('delete', old.id, old.title, old.culprit);
END;
CREATE TRIGGER issues_fts_update AFTER UPDATE OF title, culprit ON issues BEGIN
    INSERT INTO issues_fts (issues_fts, rowid, title, culprit) VALUES ('delete', old.id, old.title, old.culprit);
    INSERT INTO issues_fts (rowid, title, culprit) VALUES (new.id, new.title, new.culprit);
END;
-- The Errors page's 24-hour sparklines count each listed issue's events since a time: by issue
-- and time, a loud issue's recent events are one range instead of all its events.
CREATE INDEX error_events_issue_time ON error_events (issue_id, timestamp);
