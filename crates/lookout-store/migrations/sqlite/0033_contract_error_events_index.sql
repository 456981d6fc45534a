-- error_events had two identical (project_id, timestamp) indexes (0003's and 0013's): every
-- stored event paid for both. 0003's stays. A contract migration only by the letter: no version
-- names either index (the planner picks one), so replicas of the previous version run on without
-- it as they did with it.
DROP INDEX IF EXISTS error_events_by_time;
