-- Teams and triage (PostgreSQL): teams and their members, issue assignment, the issue activity
-- stream (assignments and comments), per-project ownership rules, and per-user calendar feed
-- tokens.
-- slug: unique per organization, written `#slug` in ownership rules and `assigned:#slug`.
-- escalation_policy_id: who gets paged for issues the team owns ("notify owners" policies).
CREATE TABLE teams (
    id BIGSERIAL PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    slug TEXT NOT NULL,
    name TEXT NOT NULL,
    escalation_policy_id BIGINT REFERENCES escalation_policies(id) ON DELETE SET NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (org_id, slug)
);
CREATE TABLE team_members (
    team_id BIGINT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_by_user ON team_members (user_id);
-- An issue is assigned to at most one user or one team (never both); deleting either unassigns.
ALTER TABLE issues ADD COLUMN assignee_user_id BIGINT REFERENCES users(id) ON DELETE SET NULL;
ALTER TABLE issues ADD COLUMN assignee_team_id BIGINT REFERENCES teams(id) ON DELETE SET NULL;
CREATE INDEX issues_by_assignee_user ON issues (assignee_user_id);
CREATE INDEX issues_by_assignee_team ON issues (assignee_team_id);
-- kind: 'assigned', 'auto_assigned' (by ownership rules), 'unassigned', 'note' (a comment). actor_label: the email at the time (kept
-- when the user is deleted), or 'ownership rules'. data: JSON ({"text"} for a note,
-- {"assignee", "label"} for an assignment).
CREATE TABLE issue_activity (
    id BIGSERIAL PRIMARY KEY,
    issue_id BIGINT NOT NULL REFERENCES issues(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    actor_user_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
    actor_label TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX issue_activity_by_issue ON issue_activity (issue_id, id);
-- raw: the rules as written (Sentry's syntax); parsed again when read, checked when saved.
-- auto_assign: new issues are assigned to the owners of the last matching rule.
CREATE TABLE ownership_rules (
    project_id BIGINT PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
    raw TEXT NOT NULL,
    auto_assign BIGINT NOT NULL DEFAULT 1,
    updated_at BIGINT NOT NULL
);
-- One revocable token per user for the on-call iCalendar feed; only its SHA-256 is kept.
CREATE TABLE calendar_feed_tokens (
    user_id BIGINT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
