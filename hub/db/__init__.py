"""The hub's PostgreSQL plumbing: the pool, numbered migrations, the outbox writer, and bulk
parameters for set-based SQL."""
