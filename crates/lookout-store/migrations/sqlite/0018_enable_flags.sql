-- Enable/disable for notification channels (SQLite). Schedules and escalation policies keep
-- their `enabled` flag in their JSON spec, as alert policies and integrations do; a channel's
-- config is its type's settings, so the flag is a column of its own. 1 = on (every channel
-- that exists before this migration stays on); a channel that is off delivers nothing.
ALTER TABLE alert_channels ADD COLUMN enabled INTEGER NOT NULL DEFAULT 1;
