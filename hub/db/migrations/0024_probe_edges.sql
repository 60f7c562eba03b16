-- The synthetic probe (docs/architecture.md §5 "Synthetic probe"): an edge enrolled as a probe
-- journals a probe.tick every interval. The hub keeps when the last one reached its live stream
-- (probe_seen_at), and when it last raised the SYSTEM alarm for a silent probe (probe_alarmed_at:
-- one alarm per silence).
ALTER TABLE edges ADD COLUMN probe boolean NOT NULL DEFAULT false;
ALTER TABLE edges ADD COLUMN probe_seen_at timestamptz;
ALTER TABLE edges ADD COLUMN probe_alarmed_at timestamptz;
