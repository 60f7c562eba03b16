-- Refused segments are quarantined, never destroyed (docs/architecture.md §6): the raw segment and
-- its headers are kept with the reason, for `python -m hub quarantine list|replay|drop` once the
-- cause is fixed (edge re-keyed, key added). One unstorable envelope is quarantined alone
-- (`envelope_seq`), the rest of its segment stored.
ALTER TABLE ingest_rejects RENAME TO ingest_quarantine;
ALTER INDEX ingest_rejects_at RENAME TO ingest_quarantine_at;
ALTER TABLE ingest_quarantine ADD COLUMN headers jsonb NOT NULL DEFAULT '{}';
ALTER TABLE ingest_quarantine ADD COLUMN payload bytea;          -- NULL only for rows from before quarantine
ALTER TABLE ingest_quarantine ADD COLUMN envelope_seq bigint;
ALTER TABLE ingest_quarantine ADD COLUMN status text NOT NULL DEFAULT 'HELD'
    CHECK (status IN ('HELD', 'REPLAYED', 'DROPPED'));
ALTER TABLE ingest_quarantine ADD COLUMN resolved_at timestamptz;
ALTER TABLE ingest_quarantine ADD COLUMN resolved_by text;
UPDATE ingest_quarantine SET status = 'DROPPED', resolved_by = 'migration: no payload kept' WHERE payload IS NULL;
CREATE INDEX ingest_quarantine_held ON ingest_quarantine (edge_header, id) WHERE status = 'HELD';

-- What a hub-raised alarm is about, in words ("edge site-3: segments refused (unknown_key)").
ALTER TABLE bundle_alarms ADD COLUMN summary text;
