-- Operator authentication: users and their object assignments, the RS256 signing key ring,
-- refresh-token session families, and the brute-force throttle. Every time below is written by
-- the hub from its clock (not now()), so expiry logic is the same in every process and in tests.

CREATE TABLE users (
    id                   bigserial PRIMARY KEY,
    email                text NOT NULL CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
    display_name         text NOT NULL DEFAULT '' CHECK (length(display_name) <= 200),
    -- SYSTEM is the hub itself and never a stored user.
    role                 text NOT NULL CHECK (role IN ('MASTER', 'ADMIN', 'OPERATOR', 'TECHNICIAN', 'FIELD_WORKER')),
    password_hash        text NOT NULL,                -- Argon2id, PHC string
    must_change_password boolean NOT NULL DEFAULT false,
    active               boolean NOT NULL DEFAULT true,
    failed_logins        integer NOT NULL DEFAULT 0,   -- consecutive; reset by a success or a lockout
    locked_until         timestamptz,
    version              integer NOT NULL DEFAULT 1,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL
);
CREATE UNIQUE INDEX users_email ON users (email);
CREATE INDEX users_role ON users (role) WHERE active;

CREATE TABLE user_object_assignments (
    user_id   bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    object_id bigint NOT NULL REFERENCES objects (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, object_id)
);
CREATE INDEX user_object_assignments_object ON user_object_assignments (object_id);

-- Access-token signing keys. The newest key without `superseded_at` signs; every key verifies
-- until `retire_after` (set when it is superseded: late enough that every token it signed has
-- expired), after which housekeeping deletes it. The private key is AES-GCM encrypted with the
-- hub's secret file (hub.secret_box), bound to its kid.
CREATE TABLE auth_signing_keys (
    kid             text PRIMARY KEY,
    private_key_enc bytea NOT NULL,
    created_at      timestamptz NOT NULL,
    superseded_at   timestamptz,
    retire_after    timestamptz,
    CHECK ((superseded_at IS NULL) = (retire_after IS NULL))
);
CREATE UNIQUE INDEX auth_signing_keys_one_active ON auth_signing_keys ((true)) WHERE superseded_at IS NULL;

-- A session family: one login and every refresh token descending from it. Revoking the family
-- (logout, reuse of a spent refresh token, deactivation, password reset) ends all of them, and
-- the access tokens that name it.
CREATE TABLE auth_sessions (
    id             uuid PRIMARY KEY,
    user_id        bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at     timestamptz NOT NULL,
    last_used_at   timestamptz NOT NULL,
    ip             text NOT NULL,
    revoked_at     timestamptz,
    revoked_reason text
);
CREATE INDEX auth_sessions_user ON auth_sessions (user_id) WHERE revoked_at IS NULL;

-- Refresh tokens, stored only as SHA-256 of the random token. A spent token stays (used_at set)
-- while its family lives, so presenting it again is recognised as reuse.
CREATE TABLE auth_refresh_tokens (
    token_hash bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    session_id uuid NOT NULL REFERENCES auth_sessions (id) ON DELETE CASCADE,
    issued_at  timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX auth_refresh_tokens_session ON auth_refresh_tokens (session_id, expires_at);

-- Failed logins per client IP in the sliding window, and the IPs blocked for it.
CREATE TABLE auth_ip_failures (
    id bigserial PRIMARY KEY,
    ip text NOT NULL,
    at timestamptz NOT NULL
);
CREATE INDEX auth_ip_failures_ip ON auth_ip_failures (ip, at);

CREATE TABLE auth_ip_blocks (
    ip            text PRIMARY KEY,
    blocked_until timestamptz NOT NULL
);
