-- The live stream (hub.stream): single-use WebSocket tickets, and a wake-up for every hub
-- process's outbox feed whenever outbox rows commit.

-- A ticket lets a browser open the WebSocket (which cannot carry an Authorization header). Only
-- SHA-256 of the random ticket is stored; redeeming sets used_at in one conditional UPDATE, so
-- a ticket opens one connection on whichever hub process gets it. Times come from the hub's
-- clock (as in 0003), not now().
CREATE TABLE ws_tickets (
    ticket_hash bytea PRIMARY KEY CHECK (octet_length(ticket_hash) = 32),
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    issued_at   timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX ws_tickets_user_expiry ON ws_tickets (user_id, expires_at);

-- One notification per INSERT statement (not per row: a batch of 500 outbox rows is one wake-up),
-- carrying only the highest sequence id. NOTIFY is delivered at COMMIT, and listeners read the
-- rows themselves (`sequence_id > last`), so the payload never nears NOTIFY's 8000-byte limit
-- and a lost notification costs latency (the poll fallback), never a row.
CREATE FUNCTION outbox_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('vigil_outbox', (SELECT max(sequence_id)::text FROM new_rows));
    RETURN NULL;
END $$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
