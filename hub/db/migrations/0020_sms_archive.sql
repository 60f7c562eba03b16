-- The raw SMS archive (issue 14, docs/architecture.md §5 "SMS archive"): the text and full sender
-- of every message an edge's GSM link received, kept apart from `events` (PII). Ingest moves an
-- `sms.raw` event's body here and leaves in `events` only its SHA-256. Read by MASTER only; every
-- read is audited.
CREATE TABLE sms_raw_archive (
    event_id    uuid PRIMARY KEY,
    edge_id     text NOT NULL REFERENCES edges (edge_id),
    source      text NOT NULL,              -- the modem's id on the edge
    sha256      text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    sender      text NOT NULL,
    text        text NOT NULL,
    pdus        text[] NOT NULL,
    quality     text NOT NULL CHECK (quality IN ('complete', 'truncated', 'garbled', 'unparseable')),
    trusted     boolean NOT NULL,
    smsc_time   timestamptz,
    received_at timestamptz NOT NULL
);
CREATE INDEX sms_raw_archive_sha ON sms_raw_archive (sha256);
CREATE INDEX sms_raw_archive_received ON sms_raw_archive (received_at);
