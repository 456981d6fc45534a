-- Incident actions (sqlite): reassign, snooze, responder requests and merge.
-- assigned_user_id: the user an incident was reassigned to; none means the current escalation
-- rule's targets hold it. Cleared when escalation moves on to another rule.
ALTER TABLE incidents ADD COLUMN assigned_user_id INTEGER;
-- snoozed_until: the end of a snooze. A snoozed incident is acknowledged with ack_until at the
-- same instant; when it passes, the incident triggers again and the current level is paged
-- (an acknowledgement that times out starts over at the first rule instead).
ALTER TABLE incidents ADD COLUMN snoozed_until INTEGER;
-- merged_into: the incident this one was merged into. A later event with this incident's
-- (scope, dedup_key) joins that incident while it is open.
ALTER TABLE incidents ADD COLUMN merged_into INTEGER;
CREATE INDEX incidents_by_key ON incidents (scope, dedup_key, id);
-- Additional responders paged for an incident without changing who it is assigned to.
-- target_type: 'user' or 'escalation_policy'; target_name: its name when requested (kept if the
-- target is deleted later). The pages sent for a request carry its id in their data.
CREATE TABLE incident_responders (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id INTEGER NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
    target_type TEXT NOT NULL,
    target_id INTEGER NOT NULL,
    target_name TEXT NOT NULL,
    message TEXT,
    requested_by TEXT NOT NULL,
    requested_at INTEGER NOT NULL
);
CREATE INDEX incident_responders_by_incident ON incident_responders (incident_id, id);
