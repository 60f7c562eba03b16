-- Robots at the hub (issue 15, docs/architecture.md §4.4 and §5 "Robots").
--
-- What a robot reports (identity, capability, status, connection, reported settings, telemetry)
-- is written by ingest only, from the events its edge journals; the API edits the hub's own
-- metadata (display name, tags, notes, enabled) and sends commands and desired settings.

-- The registry: one row per robot, made by the first event that names it, owned by that edge for
-- good (an event about the same robot id from another edge never moves it). `object_id` follows
-- the object its edge serves. Status and connection are the newest by order key (`*_ord`: journal
-- epoch, then seq), whichever lane came first. `fencing_seq` is the last fencing token handed out:
-- every new lease takes the next one, so tokens never repeat, also after a release or an expiry.
CREATE TABLE robots (
    robot_id          text PRIMARY KEY CHECK (robot_id ~ '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$'),
    edge_id           text NOT NULL REFERENCES edges (edge_id),
    object_id         bigint REFERENCES objects (id) ON DELETE SET NULL,
    display_name      text NOT NULL DEFAULT '' CHECK (length(display_name) <= 200),
    tags              text[] NOT NULL DEFAULT '{}' CHECK (cardinality(tags) <= 32),
    notes             text NOT NULL DEFAULT '' CHECK (length(notes) <= 4000),
    enabled           boolean NOT NULL DEFAULT true,
    first_seen_at     timestamptz NOT NULL,
    last_seen_at      timestamptz NOT NULL,
    connection        text NOT NULL DEFAULT 'UNKNOWN'
                      CHECK (connection IN ('UNKNOWN', 'ONLINE', 'OFFLINE', 'CONNECTION_BROKEN')),
    connection_since  timestamptz,
    connection_reason text NOT NULL DEFAULT '',
    connection_ord    bigint NOT NULL DEFAULT 0,
    status            jsonb,                 -- the latest shared.robots.Status, camelCase
    status_at         timestamptz,
    status_ord        bigint NOT NULL DEFAULT 0,
    telemetry         jsonb,                 -- the latest kept sample: battery and pose between status changes
    telemetry_at      timestamptz,
    telemetry_ord     bigint NOT NULL DEFAULT 0,
    fencing_seq       bigint NOT NULL DEFAULT 0,
    updated_at        timestamptz NOT NULL
);
CREATE INDEX robots_object ON robots (object_id);
CREATE INDEX robots_edge ON robots (edge_id);

-- Snapshots with their history: one row per report, the latest is the newest by order key.
CREATE TABLE robot_identity (
    id          bigserial PRIMARY KEY,
    robot_id    text NOT NULL REFERENCES robots (robot_id) ON DELETE CASCADE,
    event_id    uuid NOT NULL UNIQUE,
    ord         bigint NOT NULL,
    message_id  text NOT NULL,
    sent_at     timestamptz NOT NULL,        -- the robot's clock
    received_at timestamptz NOT NULL,        -- the hub's
    identity    jsonb NOT NULL
);
CREATE INDEX robot_identity_latest ON robot_identity (robot_id, ord DESC);

CREATE TABLE robot_capability (
    id          bigserial PRIMARY KEY,
    robot_id    text NOT NULL REFERENCES robots (robot_id) ON DELETE CASCADE,
    event_id    uuid NOT NULL UNIQUE,
    ord         bigint NOT NULL,
    message_id  text NOT NULL,
    sent_at     timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    capability  jsonb NOT NULL
);
CREATE INDEX robot_capability_latest ON robot_capability (robot_id, ord DESC);

CREATE TABLE robot_settings_reported (
    id                 bigserial PRIMARY KEY,
    robot_id           text NOT NULL REFERENCES robots (robot_id) ON DELETE CASCADE,
    event_id           uuid NOT NULL UNIQUE,
    ord                bigint NOT NULL,
    message_id         text NOT NULL,
    sent_at            timestamptz NOT NULL,
    received_at        timestamptz NOT NULL,
    settings           jsonb NOT NULL,       -- shared.robots.Settings, camelCase: all of it
    applied_message_id text
);
CREATE INDEX robot_settings_reported_latest ON robot_settings_reported (robot_id, ord DESC);

-- Commands and desired settings for robots, from the request to the robot's last word. status:
-- REQUESTED (committed, not yet in JetStream) → SENT → ACKED (the robot's WAITING) → RUNNING →
-- FINISHED | FAILED | CANCELLED | TIMEOUT. `ack_status` keeps the exact word (REJECTED_STALE_TOKEN
-- …). `settled_by_hub`: the hub ended it on its own (TIMEOUT: no word in time, or never sent); the
-- edge's late word then replaces it and sets `late`. No foreign key to edges: ingest holds its
-- edges' rows locked while it settles commands, and an insert here would wait for that lock while
-- holding the robot's, which ingest wants next.
CREATE TABLE robot_commands (
    id             uuid PRIMARY KEY,
    robot_id       text NOT NULL REFERENCES robots (robot_id) ON DELETE CASCADE,
    edge_id        text NOT NULL,
    object_id      bigint,
    kind           text NOT NULL CHECK (kind IN ('cmd', 'settings.desired')),
    command_type   text NOT NULL CHECK (length(command_type) BETWEEN 1 AND 64),
    args           jsonb NOT NULL DEFAULT '{}'::jsonb,
    settings       jsonb,
    fencing_token  bigint,                   -- the lease's; NULL for estop and cancel
    lease_id       uuid,
    cancel_of      uuid REFERENCES robot_commands (id) ON DELETE SET NULL,
    requested_by   text NOT NULL,            -- actor: user:<id>
    requested_name text NOT NULL DEFAULT '',
    reason         text CHECK (length(reason) <= 500),
    status         text NOT NULL DEFAULT 'REQUESTED'
                   CHECK (status IN ('REQUESTED', 'SENT', 'ACKED', 'RUNNING', 'FINISHED', 'FAILED', 'TIMEOUT',
                                     'CANCELLED')),
    ack_status     text,
    ack_by         text CHECK (ack_by IN ('robot', 'edge')),
    detail         text NOT NULL DEFAULT '',
    progress       double precision CHECK (progress BETWEEN 0 AND 1),
    late           boolean NOT NULL DEFAULT false,
    settled_by_hub boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    sent_at        timestamptz,
    acked_at       timestamptz,
    finished_at    timestamptz,
    updated_at     timestamptz NOT NULL,
    request_id     text,
    CHECK (expires_at > created_at)
);
CREATE INDEX robot_commands_robot ON robot_commands (robot_id, created_at DESC);
CREATE INDEX robot_commands_open ON robot_commands (expires_at) WHERE status IN ('REQUESTED', 'SENT');

-- Robot commands committed and not yet published (the panel commands' command_outbox, for the
-- other kind: one publisher loop sends both, hub.commands.publisher). The row goes in the
-- transaction that marks the command SENT.
CREATE TABLE robot_command_outbox (
    command_id uuid PRIMARY KEY REFERENCES robot_commands (id) ON DELETE CASCADE,
    subject    text NOT NULL,
    payload    bytea NOT NULL,               -- the encoded shared.robots.RobotCommand
    created_at timestamptz NOT NULL,
    attempts   integer NOT NULL DEFAULT 0,
    last_error text
);

-- What the hub wants a robot to run with (the last PUT), who asked, and the command that carried it.
CREATE TABLE robot_settings_desired (
    robot_id    text PRIMARY KEY REFERENCES robots (robot_id) ON DELETE CASCADE,
    settings    jsonb NOT NULL,
    command_id  uuid NOT NULL REFERENCES robot_commands (id),
    set_by      text NOT NULL,
    set_by_name text NOT NULL DEFAULT '',
    set_at      timestamptz NOT NULL
);

-- Leases: who may command a robot now. At most one open lease per robot (released_at NULL); an
-- open lease past expires_at is over all the same (every check compares the time), and is closed
-- as EXPIRED by the next take or by housekeeping. A lease taken by force ends the previous one as
-- FORCED, naming who and why on it.
CREATE TABLE robot_leases (
    id            uuid PRIMARY KEY,
    robot_id      text NOT NULL REFERENCES robots (robot_id) ON DELETE CASCADE,
    holder_id     bigint NOT NULL,
    holder_actor  text NOT NULL,
    holder_name   text NOT NULL DEFAULT '',
    fencing_token bigint NOT NULL,
    taken_at      timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    released_at   timestamptz,
    ended_how     text CHECK (ended_how IN ('RELEASED', 'EXPIRED', 'FORCED')),
    forced_by     text,
    force_reason  text CHECK (length(force_reason) <= 500),
    UNIQUE (robot_id, fencing_token),
    CHECK ((released_at IS NULL) = (ended_how IS NULL))
);
CREATE UNIQUE INDEX robot_leases_open ON robot_leases (robot_id) WHERE released_at IS NULL;
CREATE INDEX robot_leases_expiring ON robot_leases (expires_at) WHERE released_at IS NULL;

-- Telemetry samples, in daily partitions on the hub's window time (`at`), so retention
-- (robots.telemetry_retention_days) drops whole days. A sample outside every partition lands in
-- the default one until its day's partition is made. No foreign key: rows go with their partition.
CREATE TABLE robot_telemetry (
    robot_id    text NOT NULL,
    at          timestamptz NOT NULL,
    event_id    uuid NOT NULL,
    sent_at     timestamptz NOT NULL,
    x           double precision NOT NULL,
    y           double precision NOT NULL,
    theta       double precision NOT NULL,
    battery_pct double precision NOT NULL,
    speed_mps   double precision NOT NULL,   -- as sent: a silly value must not make a sample unstorable
    state       text,
    extra       jsonb NOT NULL DEFAULT '{}'::jsonb,
    skipped     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (robot_id, at, event_id)
) PARTITION BY RANGE (at);
CREATE TABLE robot_telemetry_default PARTITION OF robot_telemetry DEFAULT;

-- Daily partitions, made ahead by the hub at run time (as events' monthly ones, migration 0013:
-- only the owner may attach a partition, so the function runs as its owner). Rows of the day
-- that wait in the default partition move into the new one.
CREATE FUNCTION ensure_robot_telemetry_partitions(from_day timestamptz, days integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    created integer := 0;
    start_at timestamptz;
    end_at timestamptz;
    part text;
BEGIN
    FOR i IN 0 .. days - 1 LOOP
        start_at := date_trunc('day', from_day AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' + make_interval(days => i);
        end_at := start_at + interval '1 day';
        part := 'robot_telemetry_' || to_char(start_at AT TIME ZONE 'UTC', 'YYYY_MM_DD');
        IF to_regclass(part) IS NULL THEN
            EXECUTE format('CREATE TEMP TABLE _moving_telemetry ON COMMIT DROP AS SELECT * FROM robot_telemetry_default '
                           'WHERE at >= %L AND at < %L', start_at, end_at);
            EXECUTE format('DELETE FROM robot_telemetry_default WHERE at >= %L AND at < %L', start_at, end_at);
            EXECUTE format('CREATE TABLE %I PARTITION OF robot_telemetry FOR VALUES FROM (%L) TO (%L)',
                           part, start_at, end_at);
            EXECUTE 'INSERT INTO robot_telemetry SELECT * FROM _moving_telemetry';
            DROP TABLE _moving_telemetry;
            created := created + 1;
        END IF;
    END LOOP;
    RETURN created;
END $$;

-- Retention: drop every daily partition that ends at or before `cutoff`, and delete older rows
-- from the default partition. Returns how many partitions went.
CREATE FUNCTION drop_robot_telemetry_before(cutoff timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    dropped integer := 0;
    part record;
BEGIN
    FOR part IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'robot_telemetry'::regclass AND c.relname ~ '^robot_telemetry_\d{4}_\d{2}_\d{2}$'
    LOOP
        IF (to_date(right(part.relname, 10), 'YYYY_MM_DD') + 1)::timestamp AT TIME ZONE 'UTC' <= cutoff THEN
            EXECUTE format('DROP TABLE %I', part.relname);
            dropped := dropped + 1;
        END IF;
    END LOOP;
    DELETE FROM robot_telemetry_default WHERE at < cutoff;
    RETURN dropped;
END $$;

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION ensure_robot_telemetry_partitions(timestamptz, integer) SECURITY DEFINER '
                   'SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION drop_robot_telemetry_before(timestamptz) SECURITY DEFINER '
                   'SET search_path = %I, pg_temp', current_schema());
END $$;
REVOKE EXECUTE ON FUNCTION ensure_robot_telemetry_partitions(timestamptz, integer) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION drop_robot_telemetry_before(timestamptz) FROM PUBLIC;
SELECT ensure_robot_telemetry_partitions(now() - interval '1 day', 4);

-- The runtime role's grants (migration 0013), now with the telemetry partition functions.
CREATE OR REPLACE FUNCTION grant_hub_runtime(runtime name) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO %I', current_schema(), runtime);
    EXECUTE format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %I TO %I', current_schema(), runtime);
    EXECUTE format('REVOKE UPDATE, DELETE ON audit_log FROM %I', runtime);
    EXECUTE format('REVOKE INSERT, UPDATE, DELETE ON schema_migrations FROM %I', runtime);
    EXECUTE format('GRANT EXECUTE ON FUNCTION ensure_event_partitions(timestamptz, integer) TO %I', runtime);
    EXECUTE format('GRANT EXECUTE ON FUNCTION ensure_robot_telemetry_partitions(timestamptz, integer) TO %I', runtime);
    EXECUTE format('GRANT EXECUTE ON FUNCTION drop_robot_telemetry_before(timestamptz) TO %I', runtime);
END $$;
