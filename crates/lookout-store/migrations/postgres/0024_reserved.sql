-- Placeholder for migration 0024, which another branch adds; the metrics branch (0025) needs
-- numbers without gaps to build on its own. Dropped when the branches are merged.
SELECT 1;
