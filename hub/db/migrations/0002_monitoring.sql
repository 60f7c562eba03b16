-- The monitoring data model: objects (sites), their panels, zones, partitions and outputs,
-- alarm bundles with optimistic locking, the outbox every live client resumes from, panel state,
-- dispatch and audit logs. Events move to a table partitioned by month.

CREATE TABLE objects (
    id                  bigserial PRIMARY KEY,
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    address             text NOT NULL DEFAULT '',
    type                text NOT NULL DEFAULT 'GENERIC',
    lat                 double precision CHECK (lat BETWEEN -90 AND 90),
    lon                 double precision CHECK (lon BETWEEN -180 AND 180),
    status              text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'SERVICE', 'CLOSED')),
    service_mode_until  timestamptz,
    service_mode_reason text,
    version             integer NOT NULL DEFAULT 1,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX objects_name ON objects (lower(name));

CREATE TABLE object_contacts (
    id         bigserial PRIMARY KEY,
    object_id  bigint NOT NULL REFERENCES objects (id) ON DELETE CASCADE,
    name       text NOT NULL,
    role       text NOT NULL DEFAULT '',
    phone      text NOT NULL DEFAULT '',
    email      text NOT NULL DEFAULT '',
    call_order integer NOT NULL DEFAULT 1,
    version    integer NOT NULL DEFAULT 1
);
CREATE INDEX object_contacts_object ON object_contacts (object_id, call_order);

CREATE TABLE object_procedures (
    id         bigserial PRIMARY KEY,
    object_id  bigint NOT NULL REFERENCES objects (id) ON DELETE CASCADE,
    alarm_type text NOT NULL,
    steps      text NOT NULL,
    version    integer NOT NULL DEFAULT 1,
    UNIQUE (object_id, alarm_type)
);

CREATE TABLE object_alarm_config (
    object_id         bigint NOT NULL REFERENCES objects (id) ON DELETE CASCADE,
    alarm_type        text NOT NULL,
    priority_override text CHECK (priority_override IN ('CRITICAL', 'HIGH', 'NORMAL', 'LOW')),
    requires_note     boolean,
    PRIMARY KEY (object_id, alarm_type)
);

CREATE TABLE panels (
    id                   bigserial PRIMARY KEY,
    object_id            bigint NOT NULL REFERENCES objects (id),
    edge_id              text NOT NULL REFERENCES edges (edge_id),
    source               text NOT NULL,   -- the panel's id on its edge (the envelopes' `source`)
    model                text NOT NULL DEFAULT '',
    host                 text NOT NULL DEFAULT '',
    port                 integer CHECK (port BETWEEN 1 AND 65535),
    integration_key_enc  bytea,           -- encrypted at rest; never returned by the API
    link_status          text NOT NULL DEFAULT 'UNKNOWN' CHECK (link_status IN ('CONNECTED', 'DISCONNECTED', 'UNKNOWN')),
    link_changed_at      timestamptz,
    link_seq             bigint NOT NULL DEFAULT 0,
    version              integer NOT NULL DEFAULT 1,
    UNIQUE (edge_id, source)
);

CREATE TABLE partitions (
    id       bigserial PRIMARY KEY,
    panel_id bigint NOT NULL REFERENCES panels (id) ON DELETE CASCADE,
    number   integer NOT NULL CHECK (number BETWEEN 1 AND 32),
    name     text NOT NULL DEFAULT '',
    UNIQUE (panel_id, number)
);

CREATE TABLE zones (
    id                bigserial PRIMARY KEY,
    panel_id          bigint NOT NULL REFERENCES panels (id) ON DELETE CASCADE,
    number            integer NOT NULL CHECK (number BETWEEN 1 AND 256),
    name              text NOT NULL DEFAULT '',
    partition_number  integer,
    default_priority  text NOT NULL DEFAULT 'NORMAL' CHECK (default_priority IN ('CRITICAL', 'HIGH', 'NORMAL', 'LOW')),
    -- {"<event kind>": "<priority>", "*": "<priority>"}: replaces the edge's priority for this zone.
    priority_override jsonb NOT NULL DEFAULT '{}',
    UNIQUE (panel_id, number)
);

CREATE TABLE outputs (
    id       bigserial PRIMARY KEY,
    panel_id bigint NOT NULL REFERENCES panels (id) ON DELETE CASCADE,
    number   integer NOT NULL CHECK (number BETWEEN 1 AND 256),
    name     text NOT NULL DEFAULT '',
    UNIQUE (panel_id, number)
);

-- Events, partitioned by month. The partition key is the event's minute (UTC), not its exact
-- time: PostgreSQL requires every unique constraint of a partitioned table to contain the
-- partition key, and with `minute` the three we need keep their meaning: a retried envelope has
-- the same id, edge/seq and minute, and `dedup_key` already contains the minute.
CREATE TABLE events_partitioned (
    id          uuid NOT NULL,
    edge_id     text NOT NULL REFERENCES edges (edge_id),
    seq         bigint NOT NULL,
    ts          timestamptz NOT NULL,
    minute      timestamptz NOT NULL,
    kind        text NOT NULL,
    source      text NOT NULL,
    priority    text NOT NULL CHECK (priority IN ('CRITICAL', 'HIGH', 'NORMAL', 'LOW')),
    corr        text,
    body        jsonb NOT NULL,
    lane        text NOT NULL,
    dedup_key   text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, minute),
    UNIQUE (edge_id, seq, minute),
    UNIQUE (dedup_key, minute)
) PARTITION BY RANGE (minute);
CREATE TABLE events_default PARTITION OF events_partitioned DEFAULT;
CREATE INDEX events_ts_idx ON events_partitioned (ts);
CREATE INDEX events_edge_seq_idx ON events_partitioned (edge_id, seq);

-- Creates the monthly partitions from `from_month` for `months` months; moving rows out of the
-- default partition first when one of the new ranges already holds some there.
CREATE FUNCTION ensure_event_partitions(from_month timestamptz, months integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    created integer := 0;
    start_at timestamptz;
    end_at timestamptz;
    part text;
BEGIN
    FOR i IN 0 .. months - 1 LOOP
        start_at := date_trunc('month', from_month AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' + make_interval(months => i);
        end_at := start_at + interval '1 month';
        part := 'events_' || to_char(start_at AT TIME ZONE 'UTC', 'YYYY_MM');
        IF to_regclass(part) IS NULL THEN
            EXECUTE format('CREATE TEMP TABLE _moving ON COMMIT DROP AS SELECT * FROM events_default WHERE minute >= %L AND minute < %L', start_at, end_at);
            EXECUTE format('DELETE FROM events_default WHERE minute >= %L AND minute < %L', start_at, end_at);
            EXECUTE format('CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)', part, start_at, end_at);
            EXECUTE 'INSERT INTO events SELECT * FROM _moving';
            DROP TABLE _moving;
            created := created + 1;
        END IF;
    END LOOP;
    RETURN created;
END $$;

INSERT INTO events_partitioned (id, edge_id, seq, ts, minute, kind, source, priority, corr, body, lane, dedup_key, received_at)
SELECT id, edge_id, seq, ts, date_trunc('minute', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', kind, source, priority, corr,
       body, lane, id::text, received_at
FROM events;
DROP TABLE events;
ALTER TABLE events_partitioned RENAME TO events;
SELECT ensure_event_partitions(now() - interval '1 month', 4);

CREATE TABLE bundle_alarms (
    id               bigserial PRIMARY KEY,
    object_id        bigint REFERENCES objects (id),
    -- What the bundle groups by: 'object:<id>', or 'panel:<edge>/<source>' for a source no
    -- object claims yet (its alarms still reach the operators).
    group_key        text NOT NULL,
    alarm_type       text NOT NULL,
    status           text NOT NULL DEFAULT 'NEW'
                     CHECK (status IN ('NEW', 'CLAIMING', 'IN_PROGRESS', 'ACK', 'RESOLVED', 'CLOSED')),
    priority         text NOT NULL CHECK (priority IN ('CRITICAL', 'HIGH', 'NORMAL', 'LOW')),
    service_mode     boolean NOT NULL DEFAULT false,
    requires_note    boolean NOT NULL DEFAULT false,
    version          integer NOT NULL DEFAULT 1,
    claimed_by       text,
    claim_expires_at timestamptz,
    ack_note         text,
    first_event_at   timestamptz NOT NULL,
    last_event_at    timestamptz NOT NULL,
    event_count      integer NOT NULL DEFAULT 0,
    last_alarm_seq   bigint NOT NULL DEFAULT 0,  -- newest opening/joining event's seq
    restored_seq     bigint NOT NULL DEFAULT 0,  -- newest restore's seq; restored when > last_alarm_seq
    edge_id          text NOT NULL,
    source           text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bundle_alarms_open ON bundle_alarms (group_key, alarm_type, last_event_at DESC)
    WHERE status NOT IN ('RESOLVED', 'CLOSED');
CREATE INDEX bundle_alarms_status ON bundle_alarms (status, priority);
CREATE INDEX bundle_alarms_claims ON bundle_alarms (claim_expires_at) WHERE status = 'CLAIMING';
CREATE INDEX bundle_alarms_resolved ON bundle_alarms (updated_at) WHERE status = 'RESOLVED';

CREATE TABLE bundle_events (
    bundle_id bigint NOT NULL REFERENCES bundle_alarms (id),
    event_id  uuid NOT NULL,
    ts        timestamptz NOT NULL,
    restore   boolean NOT NULL DEFAULT false,
    PRIMARY KEY (bundle_id, event_id)
);

-- The outbox: one row per change an operator must see, written in the same transaction as the
-- change. sequence_id comes from outbox_counter, a single row every writer updates as the last
-- statement of its transaction: the row lock it takes serialises writers from that point to
-- their commit, so ids are handed out in commit order and a reader of `sequence_id > cursor`
-- can never see id N+1 committed while N is still to come (a sequence could hand N to a
-- transaction that commits after N+1's).
CREATE TABLE outbox_counter (
    id    boolean PRIMARY KEY DEFAULT true CHECK (id),
    value bigint NOT NULL
);
INSERT INTO outbox_counter VALUES (true, 0);

CREATE TABLE outbox (
    sequence_id bigint PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now(),
    topic       text NOT NULL,      -- alarm.new, alarm.updated, panel.state, panel.link
    object_id   bigint,
    payload     jsonb NOT NULL
);
CREATE INDEX outbox_created ON outbox (created_at);

CREATE TABLE panel_state (
    panel_id   bigint NOT NULL REFERENCES panels (id) ON DELETE CASCADE,
    element    text NOT NULL CHECK (element IN ('partition', 'zone', 'output')),
    number     integer NOT NULL,
    state      jsonb NOT NULL,
    seq        bigint NOT NULL,     -- the edge seq of the event that set it: older events never win
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (panel_id, element, number)
);

CREATE TABLE panel_state_history (
    id       bigserial PRIMARY KEY,
    panel_id bigint NOT NULL REFERENCES panels (id) ON DELETE CASCADE,
    element  text NOT NULL,
    number   integer NOT NULL,
    kind     text NOT NULL,
    state    jsonb NOT NULL,
    at       timestamptz NOT NULL,
    event_id uuid NOT NULL
);
CREATE INDEX panel_state_history_panel ON panel_state_history (panel_id, at);

CREATE TABLE dispatch_log (
    id        bigserial PRIMARY KEY,
    object_id bigint REFERENCES objects (id),
    bundle_id bigint REFERENCES bundle_alarms (id),
    author    text NOT NULL,
    entry     text NOT NULL CHECK (length(entry) BETWEEN 1 AND 4000),
    at        timestamptz NOT NULL DEFAULT now(),
    CHECK (object_id IS NOT NULL OR bundle_id IS NOT NULL)
);
CREATE INDEX dispatch_log_bundle ON dispatch_log (bundle_id, at);
CREATE INDEX dispatch_log_object ON dispatch_log (object_id, at);

CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    action      text NOT NULL,
    target_type text NOT NULL,
    target_id   text NOT NULL,
    details     jsonb NOT NULL DEFAULT '{}',
    request_id  text
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_target ON audit_log (target_type, target_id);
