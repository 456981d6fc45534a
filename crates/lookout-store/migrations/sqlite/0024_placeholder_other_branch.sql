-- Placeholder so this branch builds (build.rs wants versions without gaps): 0024 belongs to another
-- branch. DELETE THIS FILE WHEN MERGING; the real 0024 takes its place.
SELECT 1;
