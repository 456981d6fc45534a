-- Identity (PostgreSQL): invited users, invitation and password-reset links, server-wide settings
-- (the SMTP server account mail goes through), two-factor sign-in and the audit log.
-- status: 'active' (can sign in) or 'invited' (created by an admin, no password until the
-- invitation is accepted; password_hash is '' and verify_login never matches it).
ALTER TABLE users ADD COLUMN status TEXT NOT NULL DEFAULT 'active';
-- A single-use link sent by email. purpose: 'invite' or 'reset'. token_hash: SHA-256 of the
-- random part of the link (the link also carries an HMAC of it, checked before this table is
-- read); the link itself is never stored. A link works while used_at and revoked_at are NULL and
-- expires_at is in the future; using it sets used_at in the same transaction as its effect.
CREATE TABLE account_links (
    id BIGSERIAL PRIMARY KEY,
    purpose TEXT NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    created_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX account_links_by_user ON account_links (user_id, purpose, id);
-- Installation-wide settings by name; value: JSON, secrets in it sealed.
CREATE TABLE server_settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- Two-factor sign-in (TOTP, RFC 6238). totp_required: an admin requires it of this user (the
-- whole installation's requirement is the server setting 'security').
ALTER TABLE users ADD COLUMN totp_required BIGINT NOT NULL DEFAULT 0;
-- secret: the seed, sealed. confirmed_at: NULL while enrolling (not asked at sign-in until the
-- user has typed one right code). last_step: the newest 30-second step whose code was accepted;
-- a code is accepted only for a newer step, so one seen over a shoulder cannot be used again.
CREATE TABLE user_totp (
    user_id BIGINT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    secret TEXT NOT NULL,
    confirmed_at BIGINT,
    last_step BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
-- Single-use recovery codes: SHA-256 of each (64 random bits), used_at set when spent.
CREATE TABLE recovery_codes (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_at BIGINT
);
CREATE INDEX recovery_codes_by_user ON recovery_codes (user_id);
-- Audit log: append-only, newest by id. actor: 'user:ID', 'token:ID' or, for a failed sign-in,
-- 'email:ADDRESS'; actor_label: the email or token name at the time (kept when they are deleted).
-- action: 'session.login', 'session.login_failed', or the write as 'METHOD /path/{id}'. target:
-- the ids in the path. details: JSON, never a secret or a request body. address: the client.
CREATE TABLE audit_log (
    id BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    actor_label TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    details TEXT NOT NULL,
    address TEXT
);
CREATE INDEX audit_log_by_at ON audit_log (at);
