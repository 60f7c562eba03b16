-- Hub→edge panel commands (issue 13, docs/architecture.md §4.3 and §5 "Panel commands").
--
-- satel_commands: one row per command, from the request to its outcome. status moves
-- PENDING (committed, not yet in JetStream) → SENT (JetStream has it) → ACK | NACK | TIMEOUT |
-- EXPIRED; an edge's result replaces a hub-side TIMEOUT or EXPIRED when it comes late (`late`).
-- The user code is never here: it travels sealed to the edge in command_outbox.payload, a row
-- deleted once JetStream has the command.
CREATE TABLE satel_commands (
    id             uuid PRIMARY KEY,
    panel_id       bigint NOT NULL REFERENCES panels (id) ON DELETE CASCADE,
    object_id      bigint NOT NULL REFERENCES objects (id),
    edge_id        text NOT NULL REFERENCES edges (edge_id),
    type           text NOT NULL CHECK (type IN ('arm', 'disarm', 'clear_alarm', 'outputs_on', 'outputs_off',
                                                 'bypass', 'unbypass')),
    partitions     integer[] NOT NULL DEFAULT '{}',
    zones          integer[] NOT NULL DEFAULT '{}',
    outputs        integer[] NOT NULL DEFAULT '{}',
    mode           smallint NOT NULL DEFAULT 0 CHECK (mode BETWEEN 0 AND 3),
    force          boolean NOT NULL DEFAULT false,
    source         text NOT NULL CHECK (source IN ('MANUAL', 'AUTO_ARM')),
    requested_by   text NOT NULL,            -- actor: user:<id>, or auto-arm:<schedule id>
    requested_name text NOT NULL DEFAULT '', -- who, as people read it (the user's name or email)
    reason         text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    code_from      text NOT NULL CHECK (code_from IN ('TYPED', 'STORED')),
    status         text NOT NULL DEFAULT 'PENDING'
                   CHECK (status IN ('PENDING', 'SENT', 'ACK', 'NACK', 'TIMEOUT', 'EXPIRED')),
    created_at     timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    sent_at        timestamptz,
    result_at      timestamptz,
    result_code    integer,                   -- the panel's 0xEF code, when it answered
    result_reason  text,
    result_event   uuid,                      -- the cmd.result event that settled it
    late           boolean NOT NULL DEFAULT false,
    request_id     text,
    CHECK (expires_at > created_at)
);
CREATE INDEX satel_commands_panel ON satel_commands (panel_id, created_at DESC);
CREATE INDEX satel_commands_open ON satel_commands (expires_at) WHERE status IN ('PENDING', 'SENT');

-- Commands committed and not yet published; the publisher deletes the row in the transaction
-- that marks the command SENT (or EXPIRED), so a crash between commit and publish loses nothing.
CREATE TABLE command_outbox (
    command_id uuid PRIMARY KEY REFERENCES satel_commands (id) ON DELETE CASCADE,
    subject    text NOT NULL,
    payload    bytea NOT NULL,               -- the encoded shared.commands.PanelCommand
    created_at timestamptz NOT NULL,
    attempts   integer NOT NULL DEFAULT 0,
    last_error text
);

-- User codes an admin stored for a panel (partition 0) or one partition, for commands given
-- without a typed code (auto-arm always). Sealed at rest with the hub's secret (key id inside).
CREATE TABLE panel_user_codes (
    id         bigserial PRIMARY KEY,
    panel_id   bigint NOT NULL REFERENCES panels (id) ON DELETE CASCADE,
    partition  integer NOT NULL CHECK (partition BETWEEN 0 AND 32),
    code_enc   bytea NOT NULL,
    updated_by text NOT NULL,
    updated_at timestamptz NOT NULL,
    UNIQUE (panel_id, partition)
);
