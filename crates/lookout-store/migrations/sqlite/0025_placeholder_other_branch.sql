-- Placeholder so this branch builds (build.rs wants versions without gaps): 0025 belongs to another
-- branch. DELETE THIS FILE WHEN MERGING; the real 0025 takes its place.
SELECT 1;
