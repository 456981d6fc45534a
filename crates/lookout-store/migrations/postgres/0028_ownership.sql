-- Team ownership, and per-user notification rules (below).
-- Schedules, escalation policies, alert policies, monitors, projects and APM
-- services may be owned by one team (NULL: nobody in particular). Deleting the team leaves the
-- object unowned rather than deleting it: the object still pages people.
ALTER TABLE oncall_schedules ADD COLUMN team_id BIGINT REFERENCES teams(id) ON DELETE SET NULL;
ALTER TABLE escalation_policies ADD COLUMN team_id BIGINT REFERENCES teams(id) ON DELETE SET NULL;
ALTER TABLE alert_policies ADD COLUMN team_id BIGINT REFERENCES teams(id) ON DELETE SET NULL;
ALTER TABLE monitors ADD COLUMN team_id BIGINT REFERENCES teams(id) ON DELETE SET NULL;
ALTER TABLE projects ADD COLUMN team_id BIGINT REFERENCES teams(id) ON DELETE SET NULL;
ALTER TABLE apm_services ADD COLUMN team_id BIGINT REFERENCES teams(id) ON DELETE SET NULL;
-- SLOs share the schedules' storage code, so they carry the column too (not yet exposed).
ALTER TABLE slos ADD COLUMN team_id BIGINT REFERENCES teams(id) ON DELETE SET NULL;
CREATE INDEX oncall_schedules_by_team ON oncall_schedules (team_id);
CREATE INDEX escalation_policies_by_team ON escalation_policies (team_id);
CREATE INDEX alert_policies_by_team ON alert_policies (team_id);
CREATE INDEX monitors_by_team ON monitors (team_id);
CREATE INDEX projects_by_team ON projects (team_id);
CREATE INDEX apm_services_by_team ON apm_services (team_id);
-- Per-user notification rules (as PagerDuty has them): for each urgency, an ordered list of
-- (contact method, delay in minutes). A user without rules for an urgency is paged through
-- every contact method for it at once. Deleting the contact method deletes its rules.
CREATE TABLE notification_rules (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    urgency TEXT NOT NULL,
    position BIGINT NOT NULL,
    channel_id BIGINT NOT NULL REFERENCES alert_channels(id) ON DELETE CASCADE,
    delay_minutes BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (user_id, urgency, position)
);
-- Where a team membership came from: 'manual' (an admin added it) or 'sso' (groups mapped to
-- teams at sign-in). The sign-in sync adds and removes only its own ('sso') rows.
ALTER TABLE team_members ADD COLUMN source TEXT NOT NULL DEFAULT 'manual';
