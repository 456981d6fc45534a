-- The issue list sorted by first seen, events or users (issue 31: sorting by events read and
-- sorted every issue of the project, 33 ms at 20,000 issues and growing with each one). With an
-- index per sort, in the list's order (the value, then id for ties), a page is read from the
-- index and stops at its limit, as the default last-seen order already did. times_seen changes
-- with every event, so ingest now updates one more index entry per event (user_count only when
-- a new user appears; first_seen never).
CREATE INDEX issues_project_times_seen ON issues (project_id, times_seen, id);
CREATE INDEX issues_project_user_count ON issues (project_id, user_count, id);
CREATE INDEX issues_project_first_seen ON issues (project_id, first_seen, id);
