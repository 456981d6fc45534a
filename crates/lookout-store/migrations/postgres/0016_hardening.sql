-- Facts about this installation as a whole (postgres). 'set_up': when the first user was created.
-- The first-admin form (/setup) is offered only while this row is missing, so deleting users
-- can never reopen it to anonymous visitors.
CREATE TABLE instance_flags (
    name TEXT PRIMARY KEY,
    set_at BIGINT NOT NULL
);
-- Installations that already have users are set up.
INSERT INTO instance_flags (name, set_at)
SELECT 'set_up', created_at FROM users ORDER BY created_at LIMIT 1;
