-- The hub may run as a role that owns no table (docs/architecture.md §5.4): migrations run as the
-- owner role, the hub process connects as a runtime role granted only what it uses. Then the
-- audit log's append-only trigger holds against the hub itself: only a table's owner may disable
-- its triggers, and the runtime role is granted neither UPDATE nor DELETE on audit_log.

-- Monthly partitions are created by the hub at run time; CREATE TABLE ... PARTITION OF needs the
-- parent's owner, so the function runs as its owner. The search path is pinned (pg_temp last, as
-- the PostgreSQL manual asks of SECURITY DEFINER functions) so a caller cannot shadow a table.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION ensure_event_partitions(timestamptz, integer) SECURITY DEFINER '
                   'SET search_path = %I, pg_temp', current_schema());
END $$;
REVOKE EXECUTE ON FUNCTION ensure_event_partitions(timestamptz, integer) FROM PUBLIC;

-- What the runtime role may do, granted by the owner after every migration run (so tables added by
-- later migrations are covered). Row access on every table; on audit_log append and read only; the
-- migration history read only. No TRUNCATE, REFERENCES or TRIGGER anywhere.
CREATE FUNCTION grant_hub_runtime(runtime name) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO %I', current_schema(), runtime);
    EXECUTE format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %I TO %I', current_schema(), runtime);
    EXECUTE format('REVOKE UPDATE, DELETE ON audit_log FROM %I', runtime);
    EXECUTE format('REVOKE INSERT, UPDATE, DELETE ON schema_migrations FROM %I', runtime);
    EXECUTE format('GRANT EXECUTE ON FUNCTION ensure_event_partitions(timestamptz, integer) TO %I', runtime);
END $$;
REVOKE EXECUTE ON FUNCTION grant_hub_runtime(name) FROM PUBLIC;
