-- The edge's store-and-forward journal. One row per observation; `envelope` holds the exact
-- bytes the hub will verify. `lane` is 'alarm' for CRITICAL/HIGH rows, 'evt' otherwise.
CREATE TABLE IF NOT EXISTS journal (
    seq          INTEGER PRIMARY KEY,
    id           TEXT    NOT NULL UNIQUE,
    ts           TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    priority     TEXT    NOT NULL,
    lane         TEXT    NOT NULL,
    envelope     BLOB    NOT NULL,
    size         INTEGER NOT NULL,
    forwarded_at REAL
);
CREATE INDEX IF NOT EXISTS journal_unforwarded ON journal (lane, seq) WHERE forwarded_at IS NULL;
CREATE INDEX IF NOT EXISTS journal_forwarded ON journal (forwarded_at) WHERE forwarded_at IS NOT NULL;
-- Telemetry samples, the first rows to go under disk pressure (edge.journal_pressure.SAMPLE_KIND).
CREATE INDEX IF NOT EXISTS journal_samples ON journal (seq) WHERE kind = 'robot.telemetry';
-- The last seq ever assigned survives pruning, so seqs never repeat even if every row is gone.
CREATE TABLE IF NOT EXISTS journal_meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
-- The journal's epoch (shared.envelope.JournalEpoch): one row, made with the journal. A new
-- journal (a reinstalled box) is a new epoch, so the hub never mistakes its seqs for old ones.
CREATE TABLE IF NOT EXISTS journal_epoch (
    id         TEXT    NOT NULL,
    start_seq  INTEGER NOT NULL,
    created_at TEXT    NOT NULL
);
-- Where a device link got to in its device's own log (e.g. the last Satel event log record it
-- journaled), so a restart reads on from there. A link writes its cursor only after the records
-- it covers are appended.
CREATE TABLE IF NOT EXISTS link_cursors (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- Every hub command id this box has taken (edge.commands), written before the command runs: a
-- command JetStream delivers again (an ack lost, the agent killed mid-command) is never run twice.
CREATE TABLE IF NOT EXISTS commands_seen (
    id          TEXT PRIMARY KEY,
    received_at TEXT NOT NULL
);
