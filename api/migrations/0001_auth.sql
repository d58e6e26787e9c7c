-- Users, refresh-token families, revoked access tokens and API keys of the query API.
-- Applied with search_path set to the auth schema, so names are unqualified.

CREATE TABLE users (
    user_id        text PRIMARY KEY,
    username       text NOT NULL UNIQUE,
    password_hash  text NOT NULL,
    role           text NOT NULL CHECK (role IN ('admin', 'operator', 'user', 'viewer')),
    tenant_id      text NOT NULL,
    disabled       boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX users_role ON users (role) WHERE NOT disabled;

-- Only the SHA-256 of a refresh token is kept; a used token points at its successor, and
-- presenting a used token again revokes its whole family.
CREATE TABLE refresh_tokens (
    jti            text PRIMARY KEY,
    token_hash     text NOT NULL UNIQUE,
    family_id      text NOT NULL,
    user_id        text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    issued_at      timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    replaced_by    text,
    revoked_at     timestamptz
);

CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE revoked_access_tokens (
    jti            text PRIMARY KEY,
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    key_id         text PRIMARY KEY,
    key_hash       text NOT NULL UNIQUE,
    name           text NOT NULL,
    user_id        text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    created_by     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at     timestamptz
);
