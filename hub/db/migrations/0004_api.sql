-- What the operator API keeps: idempotency keys, versions on the panel's parts, CCTV secrets,
-- import runs. The audit log becomes append-only for the application.

ALTER TABLE zones ADD COLUMN version integer NOT NULL DEFAULT 1;
ALTER TABLE partitions ADD COLUMN version integer NOT NULL DEFAULT 1;
ALTER TABLE outputs ADD COLUMN version integer NOT NULL DEFAULT 1;

CREATE TABLE idempotency_keys (
    user_id      bigint NOT NULL,
    key          text NOT NULL,
    method       text NOT NULL,
    path         text NOT NULL,
    body_hash    text NOT NULL,
    status       integer,          -- NULL while the first request is still running
    response     bytea,
    content_type text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- Recorder and camera passwords, encrypted with the hub's secret file (never stored in clear).
CREATE TABLE object_secrets (
    id          bigserial PRIMARY KEY,
    object_id   bigint NOT NULL REFERENCES objects (id) ON DELETE CASCADE,
    label       text NOT NULL CHECK (length(label) BETWEEN 1 AND 200),
    username    text NOT NULL DEFAULT '',
    secret_enc  bytea NOT NULL,
    version     integer NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX object_secrets_object ON object_secrets (object_id);

CREATE TABLE import_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    filename    text NOT NULL,
    format      text NOT NULL,
    rows_total  integer NOT NULL,
    rows_ok     integer NOT NULL,
    imported    boolean NOT NULL,
    errors      jsonb NOT NULL DEFAULT '[]'
);

-- The application may only append to the audit log. A trigger holds for every role, including
-- the owner the hub connects as (a REVOKE would not bind the table owner).
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
