-- Each edge's latest status report (shared/edge_status.py; docs/architecture.md §4): one row per
-- edge, replaced by every newer report and never grown, so reports stay out of `events`.
-- Newer means a later (run, report_n) within the same journal epoch, or another epoch (a new
-- journal); never the edge's clock. `reported_at` is the edge's clock when it sent the report,
-- `received_at` the database's when the hub stored it: "connected" is judged on that one.
CREATE TABLE edge_status (
    edge_id      text PRIMARY KEY REFERENCES edges (edge_id),
    epoch        text NOT NULL,
    run          bigint NOT NULL,
    report_n     bigint NOT NULL,
    interval_s   double precision NOT NULL CHECK (interval_s > 0),
    report       jsonb NOT NULL,
    reported_at  timestamptz NOT NULL,
    received_at  timestamptz NOT NULL
);
