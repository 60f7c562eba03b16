-- Auto-arm schedules and open/close supervision (issue 13, docs/architecture.md §5 "Auto-arm and
-- open/close supervision"). Times of day are local to the row's IANA time zone (checked by the
-- API against zoneinfo's list); days are ISO weekdays, 1 = Monday .. 7 = Sunday.

CREATE TABLE auto_arm_schedules (
    id                 bigserial PRIMARY KEY,
    panel_id           bigint NOT NULL REFERENCES panels (id) ON DELETE CASCADE,
    partition          integer NOT NULL CHECK (partition BETWEEN 1 AND 32),
    at_time            time NOT NULL,
    days               integer[] NOT NULL CHECK (cardinality(days) BETWEEN 1 AND 7
                                                 AND days <@ ARRAY[1, 2, 3, 4, 5, 6, 7]),
    time_zone          text NOT NULL CHECK (length(time_zone) BETWEEN 1 AND 64),
    mode               smallint NOT NULL DEFAULT 0 CHECK (mode BETWEEN 0 AND 3),
    force_on_violation boolean NOT NULL DEFAULT false,
    enabled            boolean NOT NULL DEFAULT true,
    expires_in_s       integer NOT NULL DEFAULT 300 CHECK (expires_in_s BETWEEN 5 AND 3600),
    -- The scheduler has decided every run due up to here (hub.commands.scheduler): a run due after
    -- it and before the tick's time is new; one due longer ago than the lookback is MISSED.
    checked_until      timestamptz NOT NULL DEFAULT now(),
    created_by         text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    version            integer NOT NULL DEFAULT 1
);
CREATE INDEX auto_arm_schedules_panel ON auto_arm_schedules (panel_id, partition);

-- Days no schedule runs and no supervision judges: one object's (object_id) or every object's
-- (object_id NULL). `day` is a calendar date in the schedule's or supervision's own time zone.
CREATE TABLE holidays (
    id         bigserial PRIMARY KEY,
    object_id  bigint REFERENCES objects (id) ON DELETE CASCADE,
    day        date NOT NULL,
    name       text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    version    integer NOT NULL DEFAULT 1,
    UNIQUE NULLS NOT DISTINCT (object_id, day)
);
CREATE INDEX holidays_day ON holidays (day);

-- Every run of a schedule and how it ended. UNIQUE (schedule_id, due_at): several hub processes
-- deciding the same due run insert one row between them, and only the one that inserted it gives
-- the command. A run outlives its schedule (schedule_id set NULL) for the morning report, so it
-- carries its panel, object and partition itself.
CREATE TABLE auto_arm_runs (
    id                bigserial PRIMARY KEY,
    schedule_id       bigint REFERENCES auto_arm_schedules (id) ON DELETE SET NULL,
    panel_id          bigint NOT NULL REFERENCES panels (id) ON DELETE CASCADE,
    object_id         bigint NOT NULL REFERENCES objects (id) ON DELETE CASCADE,
    partition         integer NOT NULL,
    due_at            timestamptz NOT NULL,
    outcome           text NOT NULL CHECK (outcome IN ('ARMED', 'ALREADY_ARMED', 'HOLIDAY', 'PENDING', 'FAILED',
                                                       'MISSED')),
    command_id        uuid REFERENCES satel_commands (id) ON DELETE SET NULL,
    forced_command_id uuid REFERENCES satel_commands (id) ON DELETE SET NULL,  -- the one retry with force
    detail            text NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL,
    decided_at        timestamptz,  -- NULL while PENDING
    UNIQUE (schedule_id, due_at)
);
CREATE INDEX auto_arm_runs_panel ON auto_arm_runs (panel_id, due_at DESC);
CREATE INDEX auto_arm_runs_pending ON auto_arm_runs (id) WHERE outcome = 'PENDING';
CREATE INDEX auto_arm_runs_report ON auto_arm_runs (due_at) WHERE outcome IN ('FAILED', 'MISSED');

-- Open/close supervision of one partition: disarmed (opened) between open_from and open_until,
-- armed (closed) by close_by, on `days`. Windows within one local day (no overnight shifts).
CREATE TABLE partition_supervision (
    id              bigserial PRIMARY KEY,
    panel_id        bigint NOT NULL REFERENCES panels (id) ON DELETE CASCADE,
    partition       integer NOT NULL CHECK (partition BETWEEN 1 AND 32),
    time_zone       text NOT NULL CHECK (length(time_zone) BETWEEN 1 AND 64),
    days            integer[] NOT NULL CHECK (cardinality(days) BETWEEN 1 AND 7
                                              AND days <@ ARRAY[1, 2, 3, 4, 5, 6, 7]),
    open_from       time NOT NULL,
    open_until      time NOT NULL,
    close_by        time NOT NULL,
    enabled         boolean NOT NULL DEFAULT true,
    -- Deadlines (open_until, close_by) up to here are judged.
    checked_until   timestamptz NOT NULL DEFAULT now(),
    -- The newest panel_state_history row judged for an early disarm.
    history_cursor  bigint NOT NULL DEFAULT 0,
    created_by      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    version         integer NOT NULL DEFAULT 1,
    UNIQUE (panel_id, partition),
    CONSTRAINT partition_supervision_window CHECK (open_from < open_until AND open_until < close_by)
);

-- Each supervision alarm raised, at most once per (supervision, kind, local day): several hub
-- processes and every later tick find the row and raise nothing again. Kept after its
-- supervision is deleted, for the morning report.
CREATE TABLE supervision_alarms (
    id             bigserial PRIMARY KEY,
    supervision_id bigint REFERENCES partition_supervision (id) ON DELETE SET NULL,
    panel_id       bigint NOT NULL REFERENCES panels (id) ON DELETE CASCADE,
    object_id      bigint NOT NULL REFERENCES objects (id) ON DELETE CASCADE,
    partition      integer NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('FAILED_TO_CLOSE', 'FAILED_TO_OPEN', 'UNEXPECTED_OPENING')),
    local_day      date NOT NULL,
    at             timestamptz NOT NULL,  -- the deadline, or the disarm's time
    priority       text NOT NULL CHECK (priority IN ('CRITICAL', 'HIGH', 'NORMAL', 'LOW')),
    bundle_id      bigint REFERENCES bundle_alarms (id),
    detail         text NOT NULL DEFAULT '',
    raised_at      timestamptz NOT NULL,
    UNIQUE (supervision_id, kind, local_day)
);
CREATE INDEX supervision_alarms_at ON supervision_alarms (at);

-- Supervision reads a partition's disarms after its cursor on every tick.
CREATE INDEX panel_state_history_disarms ON panel_state_history (panel_id, number, id)
    WHERE element = 'partition' AND kind = 'satel.partition.disarmed';
