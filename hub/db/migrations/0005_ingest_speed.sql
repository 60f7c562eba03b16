-- Ingest speed with the lifecycle on. Events no longer carry a foreign key to edges: every
-- envelope's edge was verified against `edges` just before the insert and edges are revoked,
-- never deleted, so the per-row check bought nothing but a lookup per event. The (edge_id, seq)
-- index duplicated the unique (edge_id, seq, minute) one, whose leading columns serve the same
-- lookups.
ALTER TABLE events DROP CONSTRAINT IF EXISTS events_partitioned_edge_id_fkey;
DROP INDEX IF EXISTS events_edge_seq_idx;
