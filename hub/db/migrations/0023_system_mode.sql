-- The centre's maintenance switch (docs/architecture.md §5 "System modes"): an admin's choice, one
-- row at most (no row: not in maintenance). DEGRADED and NORMAL are worked out from the hub's
-- health, never stored.
CREATE TABLE system_mode (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    maintenance boolean NOT NULL,
    reason      text,
    set_by      text NOT NULL,
    set_at      timestamptz NOT NULL
);
