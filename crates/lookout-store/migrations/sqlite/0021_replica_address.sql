-- Each replica's own address (its UI and API), so a replica cut off from the database can ask
-- the others whether they reach it (docs/operations.md, "What happens on each failure").
ALTER TABLE replicas ADD COLUMN address TEXT;
