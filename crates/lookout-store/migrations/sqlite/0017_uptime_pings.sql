-- Uptime (sqlite): "check now" and the heartbeat ping log.
-- check_requested_at: set by "Check now" and by a heartbeat's ping while it is not up; the
-- shard's runner sees it change and runs the monitor's check at once, through its usual path,
-- so the runner stays the only writer of the monitor's state.
ALTER TABLE monitors ADD COLUMN check_requested_at INTEGER;
-- The last pings of each heartbeat monitor (the push endpoint keeps the newest 100 per monitor).
CREATE TABLE heartbeat_pings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    monitor_id INTEGER NOT NULL REFERENCES monitors(id) ON DELETE CASCADE,
    at INTEGER NOT NULL,
    source TEXT,
    method TEXT NOT NULL
);
CREATE INDEX heartbeat_pings_by_monitor ON heartbeat_pings (monitor_id, id);
