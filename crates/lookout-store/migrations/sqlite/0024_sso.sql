-- Single sign-on with OpenID Connect.
-- A sign-in under way: created when the browser is sent to the provider, deleted (in the same
-- statement that reads it) when the provider sends it back, so a replayed state finds nothing.
-- state_hash: SHA-256 of the random state, which the browser also holds in a cookie; the PKCE
-- verifier and nonce live only here and in the provider's answer. Rows expire after 10 minutes.
CREATE TABLE sso_logins (
    state_hash TEXT PRIMARY KEY,
    nonce TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    next TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sso_logins_expiry ON sso_logins (expires_at);
-- Which provider account a user signs in as: (issuer, subject) is the stable identity; the email
-- may change at the provider and is only used to link an existing account the first time.
CREATE TABLE user_identities (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_login_at INTEGER NOT NULL,
    UNIQUE (issuer, subject)
);
CREATE INDEX user_identities_user ON user_identities (user_id);
