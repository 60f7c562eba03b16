-- Enrolled edge boxes, the events they sent, and what ingest refused.

CREATE TABLE edges (
    edge_id      text PRIMARY KEY CHECK (edge_id ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    public_key   bytea NOT NULL CHECK (octet_length(public_key) = 32),
    key_id       text NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    -- Every seq committed for this edge, as ranges; the first range's upper bound gives the highest
    -- contiguous seq, the holes between ranges are the gaps.
    committed    int8multirange NOT NULL DEFAULT '{}',
    last_event_at timestamptz
);

CREATE TABLE events (
    id           uuid PRIMARY KEY,
    edge_id      text NOT NULL REFERENCES edges (edge_id),
    seq          bigint NOT NULL,
    ts           timestamptz NOT NULL,
    kind         text NOT NULL,
    source       text NOT NULL,
    priority     text NOT NULL CHECK (priority IN ('CRITICAL', 'HIGH', 'NORMAL', 'LOW')),
    corr         text,
    body         jsonb NOT NULL,
    lane         text NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (edge_id, seq)
);
CREATE INDEX events_ts ON events (ts);

CREATE TABLE ingest_rejects (
    id           bigserial PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    subject      text NOT NULL,
    edge_header  text,
    key_id       text,
    seq_range    text,
    reason       text NOT NULL,
    detail       text NOT NULL DEFAULT '',
    payload_size integer NOT NULL,
    stream_seq   bigint
);
CREATE INDEX ingest_rejects_at ON ingest_rejects (at);

-- Highest contiguous seq and missing-seq count per edge, for operators and metrics.
CREATE VIEW edge_seq_status AS
SELECT e.edge_id,
       CASE WHEN isempty(e.committed) OR lower(e.committed) <> 1 THEN 0
            ELSE (SELECT upper(r) - 1 FROM unnest(e.committed) AS r ORDER BY lower(r) LIMIT 1)
       END::bigint AS contiguous_seq,
       CASE WHEN isempty(e.committed) THEN 0 ELSE upper(e.committed) - 1 END::bigint AS highest_seq,
       CASE WHEN isempty(e.committed) THEN 0
            ELSE (upper(e.committed) - 1) - (SELECT sum(upper(r) - lower(r)) FROM unnest(e.committed) AS r)
       END::bigint AS missing
FROM edges e;
