-- A WebSocket ticket belongs to the session that asked for it, so the stream it opens ends when
-- that session does (logout, password change, refresh-token reuse). NULL: issued before this.
ALTER TABLE ws_tickets ADD COLUMN session_id uuid REFERENCES auth_sessions (id) ON DELETE CASCADE;
