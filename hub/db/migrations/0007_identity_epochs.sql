-- De-duplication by identity, journal epochs, occurrence keys and the hub's own receive time
-- (docs/architecture.md §6). The per-minute `dedup_key` dropped genuine state changes (a second
-- restore, a second link drop within one clock minute); it goes.

-- 1. Journal epochs. A box whose journal is lost starts again at seq 1 under a new epoch, so
--    committed seqs are tracked per (edge, epoch). `ordinal` numbers an edge's epochs in the order
--    the hub first saw them; order keys (`ord` below) are ordinal * 2^40 + seq, so state set by a
--    new epoch always wins over the old epoch's, and within an epoch the seq decides.
CREATE TABLE edge_epochs (
    edge_id       text NOT NULL REFERENCES edges (edge_id),
    epoch         text NOT NULL,
    ordinal       integer NOT NULL CHECK (ordinal >= 0),
    start_seq     bigint NOT NULL CHECK (start_seq >= 1),
    committed     int8multirange NOT NULL DEFAULT '{}',
    first_seen_at timestamptz NOT NULL,
    last_event_at timestamptz,
    PRIMARY KEY (edge_id, epoch),
    UNIQUE (edge_id, ordinal)
);
-- What edges committed before epochs existed is epoch '' (ordinal 0): every stored order key
-- (bare seqs until now) stays valid, and any real epoch orders after it.
INSERT INTO edge_epochs (edge_id, epoch, ordinal, start_seq, committed, first_seen_at, last_event_at)
SELECT edge_id, '', 0, 1, committed, created_at, last_event_at FROM edges WHERE NOT isempty(committed);

DROP VIEW edge_seq_status;
ALTER TABLE edges DROP COLUMN committed;
-- The hub↔edge clock skew: the edge's ts minus the hub's receive time, from the freshest event of
-- the newest batch (a backlog looks like a clock behind, so the freshest event is the estimate).
ALTER TABLE edges ADD COLUMN clock_skew_s double precision;

-- Per epoch: the highest contiguous seq from the epoch's first seq, the highest seq, and how many
-- seqs below the highest are missing.
CREATE VIEW edge_epoch_status AS
SELECT ep.edge_id, ep.epoch, ep.ordinal, ep.start_seq, ep.first_seen_at, ep.last_event_at,
       CASE WHEN isempty(ep.committed) OR lower(ep.committed) <> ep.start_seq THEN ep.start_seq - 1
            ELSE (SELECT upper(r) - 1 FROM unnest(ep.committed) AS r ORDER BY lower(r) LIMIT 1)
       END::bigint AS contiguous_seq,
       CASE WHEN isempty(ep.committed) THEN 0 ELSE upper(ep.committed) - 1 END::bigint AS highest_seq,
       CASE WHEN isempty(ep.committed) THEN 0
            ELSE (upper(ep.committed) - ep.start_seq)
                 - (SELECT sum(upper(r) - greatest(lower(r), ep.start_seq)) FROM unnest(ep.committed) AS r
                    WHERE upper(r) > ep.start_seq)
       END::bigint AS missing
FROM edge_epochs ep;

-- Per edge: its current (newest) epoch's figures, and the missing seqs of all its epochs.
CREATE VIEW edge_seq_status AS
SELECT e.edge_id,
       cur.epoch,
       coalesce(cur.contiguous_seq, 0)::bigint AS contiguous_seq,
       coalesce(cur.highest_seq, 0)::bigint AS highest_seq,
       coalesce((SELECT sum(s.missing) FROM edge_epoch_status s WHERE s.edge_id = e.edge_id), 0)::bigint AS missing
FROM edges e
LEFT JOIN LATERAL (SELECT * FROM edge_epoch_status s WHERE s.edge_id = e.edge_id ORDER BY s.ordinal DESC LIMIT 1) cur
       ON true;

-- 2. Events: identity is (edge, epoch, seq) and the id; the minute key goes. `minute` stays the
--    partition key, computed from the hub's receive time for events whose ts is off by more than
--    the tolerance (`ts_suspect`), so one event dated a year ahead cannot land in a far partition.
ALTER TABLE events DROP CONSTRAINT events_partitioned_dedup_key_minute_key;
ALTER TABLE events DROP CONSTRAINT events_partitioned_edge_id_seq_minute_key;
ALTER TABLE events DROP COLUMN dedup_key;
ALTER TABLE events ADD COLUMN epoch text NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN occurrence text;
ALTER TABLE events ADD COLUMN ts_suspect boolean NOT NULL DEFAULT false;
ALTER TABLE events ADD CONSTRAINT events_edge_epoch_seq_minute_key UNIQUE (edge_id, epoch, seq, minute);

-- One physical occurrence that reaches the hub by two paths (state bitmap and the panel's event
-- log) is one event: the first envelope with a key is stored, later ones are merged into it. Not
-- a unique index on `events`, which would have to include the partition key.
CREATE TABLE event_occurrences (
    edge_id    text NOT NULL,
    occurrence text NOT NULL,
    event_id   uuid NOT NULL,
    merged     integer NOT NULL DEFAULT 0,  -- later envelopes of the same occurrence
    PRIMARY KEY (edge_id, occurrence)
);

-- 3. Order keys instead of bare seqs (see edge_epochs above): existing values are epoch-0 keys.
ALTER TABLE panel_state RENAME COLUMN seq TO ord;
ALTER TABLE panels RENAME COLUMN link_seq TO link_ord;
ALTER TABLE bundle_alarms RENAME COLUMN last_alarm_seq TO last_alarm_ord;
ALTER TABLE bundle_alarms RENAME COLUMN restored_seq TO restored_ord;

-- 4. A planned stop (agent shutdown, DLOADX release) shows the link down but raises no LINK alarm
--    during the grace period; `link_alarm_raised` says the grace ran out and the hub raised it.
ALTER TABLE panels ADD COLUMN link_planned boolean NOT NULL DEFAULT false;
ALTER TABLE panels ADD COLUMN link_alarm_raised boolean NOT NULL DEFAULT false;

-- 5. Alarms that happened while the edge or its link was down, read back from the panel's event
--    log: when they happened (the panel's clock) and when the hub heard of them.
ALTER TABLE bundle_alarms ADD COLUMN offline_happened_at timestamptz;
ALTER TABLE bundle_alarms ADD COLUMN offline_reported_at timestamptz;
