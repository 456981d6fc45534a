-- Placeholder on branch h-incops only: version 0018 belongs to the on-call forms branch
-- (0018_enable_flags.sql there). Migrations must run without gaps, so this branch carries an
-- empty 0018 to build and test its 0019; on merge, take the other branch's file.
SELECT 1;
