-- Edges are created by an ADMIN before the box exists (docs/architecture.md §10 "Enrolment"): the
-- row waits without a key until the box enrols with a one-time token, then carries the box's
-- Ed25519 public key and its NATS leaf credential (bcrypt hash only; the password went to the box).
ALTER TABLE edges ALTER COLUMN public_key DROP NOT NULL;
ALTER TABLE edges ALTER COLUMN key_id DROP NOT NULL;
ALTER TABLE edges ADD COLUMN object_id bigint REFERENCES objects (id);
ALTER TABLE edges ADD COLUMN created_by text;
ALTER TABLE edges ADD COLUMN enrolled_at timestamptz;
ALTER TABLE edges ADD COLUMN leaf_password_hash text;
ALTER TABLE edges ADD COLUMN hardware_id text;
-- Edges added before enrolment existed were keyed by hand: they count as enrolled then.
UPDATE edges SET enrolled_at = created_at WHERE public_key IS NOT NULL;
ALTER TABLE edges ADD CONSTRAINT edges_key_pair CHECK ((public_key IS NULL) = (key_id IS NULL));

-- One-time enrolment tokens: only a SHA-256 of the token is kept (the token is 256 random bits,
-- so a plain hash is enough); single use, with an expiry; a new token for an edge voids the old.
CREATE TABLE edge_enrolment_tokens (
    id          bigserial PRIMARY KEY,
    edge_id     text NOT NULL REFERENCES edges (edge_id),
    token_hash  bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    used_from   text,
    voided_at   timestamptz,
    CHECK (expires_at > created_at)
);
CREATE INDEX edge_enrolment_tokens_edge ON edge_enrolment_tokens (edge_id);
