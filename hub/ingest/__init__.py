"""Ingest: signed segments from JetStream → verify → commit to PostgreSQL → ack.

`consumer` runs one worker per held (lane, partition); `partitions` decides which process holds
which; `pull` feeds a worker its batches; `verify` checks a segment's signature and shape;
`commit` writes one batch (events, lifecycle effects, refusals, outbox) in one transaction;
`edge_keys` caches the enrolled edges' keys. See docs/architecture.md §6.
"""
