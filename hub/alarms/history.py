"""An alarm's record, read for people (docs/architecture.md §5 "Working an alarm"): its events in
words with the panel's zone, partition and output names, its dispatch log with the authors'
names, its checklist, and the merged timeline of all of it with the lifecycle moves.

The moves come from the audit log: every move writes its entry in the same transaction as the
change (hub.alarms.repository), and the audit log is append-only even against the hub (§5), so
it is the complete and trustworthy record of who moved the bundle when; a transitions table would
only copy it.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any, Iterable

import asyncpg
import msgspec

from hub.alarms.describe import PanelNames, describe_event, describe_move
from hub.alarms.outcomes import CALL_OUTCOMES
from hub.alarms.people import Who, name_of, people

MAX_EVENTS = 500
SQL_EVENTS = """
SELECT e.id::text AS id, e.edge_id, e.epoch, e.seq, e.ts, e.received_at, e.ts_suspect, e.kind, e.source, e.priority,
       e.body::text AS body, be.restore
FROM bundle_events be JOIN events e ON e.id = be.event_id AND e.minute = date_trunc('minute', be.ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
WHERE be.bundle_id = $1 ORDER BY e.ts, e.seq LIMIT $2
"""
# The configured names of the panels the events came from (empty names say nothing).
SQL_PANEL_NAMES = """
SELECT p.edge_id, p.source, n.element, n.number, n.name
FROM panels p
JOIN unnest($1::text[], $2::text[]) AS k(edge_id, source) ON k.edge_id = p.edge_id AND k.source = p.source
CROSS JOIN LATERAL (
    SELECT 'zone', number, name FROM zones WHERE panel_id = p.id AND name <> ''
    UNION ALL SELECT 'partition', number, name FROM partitions WHERE panel_id = p.id AND name <> ''
    UNION ALL SELECT 'output', number, name FROM outputs WHERE panel_id = p.id AND name <> ''
) AS n(element, number, name)
"""
SQL_DISPATCH = "SELECT * FROM dispatch_log WHERE bundle_id = $1 ORDER BY at, id"
# Lifecycle moves only: checklist ticks and dispatch entries have their own tables.
MOVES = ("alarm.claim", "alarm.start", "alarm.ack", "alarm.resolve", "alarm.close", "alarm.reaped",
         "alarm.auto_closed", "alarm.take_over", "alarm.escalated")
SQL_MOVES = """
SELECT id, at, actor, action, details::text AS details FROM audit_log
WHERE target_type = 'bundle_alarm' AND target_id = $1 AND action = ANY($2::text[])
ORDER BY at, id
"""
# Same-time entries in the order things happen: the event, then what people did about it.
_KIND_ORDER = {"event": 0, "transition": 1, "checklist": 2, "dispatch": 3}

Row = dict[str, Any]


async def panel_names(conn: asyncpg.Connection | asyncpg.Pool,
                      panels: Iterable[tuple[str, str]]) -> dict[tuple[str, str], PanelNames]:
    """(edge, source) → the names in that panel's config."""
    keys = sorted(set(panels))
    found: dict[tuple[str, str], dict[str, dict[int, str]]] = defaultdict(lambda: defaultdict(dict))
    for r in await conn.fetch(SQL_PANEL_NAMES, [k[0] for k in keys], [k[1] for k in keys]):
        found[(r["edge_id"], r["source"])][r["element"]][r["number"]] = r["name"]
    return {k: PanelNames(v["zone"], v["partition"], v["output"]) for k, v in found.items()}


async def events(conn: asyncpg.Connection | asyncpg.Pool, bundle_id: int) -> tuple[list[Row], bool]:
    """The bundle's events, oldest first, each with its `text`; and whether more than
    MAX_EVENTS exist (only the first MAX_EVENTS are returned)."""
    rows = [dict(r) for r in await conn.fetch(SQL_EVENTS, bundle_id, MAX_EVENTS + 1)]
    names = await panel_names(conn, ((r["edge_id"], r["source"]) for r in rows))
    for r in rows:
        r["body"] = msgspec.json.decode(r["body"])
        body = r["body"] if isinstance(r["body"], dict) else {}
        r["text"] = describe_event(r["kind"], body, names.get((r["edge_id"], r["source"]), PanelNames()))
    return rows[:MAX_EVENTS], len(rows) > MAX_EVENTS


def dispatch_out(row: Any, who_is: dict[str, Who]) -> Row:
    """A dispatch-log row for the API: the author as a person, the call outcome in words."""
    return {"id": row["id"], "bundle_id": row["bundle_id"], "object_id": row["object_id"],
            "author": who_is.get(row["author"]), "entry": row["entry"], "at": row["at"].isoformat(),
            "contact_id": row["contact_id"], "contact_name": row["contact_name"],
            "contact_phone": row["contact_phone"], "outcome": row["outcome"],
            "outcome_label": CALL_OUTCOMES.get(row["outcome"]) if row["outcome"] else None}


def step_out(row: Row, who_is: dict[str, Who]) -> Row:
    """A checklist row for the API."""
    return {"index": row["step"], "text": row["text"],
            "done_at": row["done_at"].isoformat() if row["done_at"] else None,
            "done_by": who_is.get(row["done_by"]) if row["done_by"] else None}


async def dispatch_log(conn: asyncpg.Connection | asyncpg.Pool, bundle_id: int) -> list[Any]:
    """The bundle's dispatch-log rows, oldest first."""
    return list(await conn.fetch(SQL_DISPATCH, bundle_id))


async def moves(conn: asyncpg.Connection | asyncpg.Pool, bundle_id: int) -> list[Row]:
    """The bundle's lifecycle moves from the audit log, oldest first."""
    rows = [dict(r) for r in await conn.fetch(SQL_MOVES, str(bundle_id), list(MOVES))]
    for r in rows:
        r["details"] = msgspec.json.decode(r["details"])
    return rows


def move_actors(rows: list[Row]) -> list[str]:
    """Everyone a move names: who made it, and for a take-over whom it was taken from and given to."""
    return [a for r in rows for a in (r["actor"], r["details"].get("previous"), r["details"].get("holder")) if a]


def merge_timeline(event_rows: list[Row], move_rows: list[Row], dispatch_rows: list[Any], checklist_rows: list[Row],
                   who_is: dict[str, Who]) -> list[Row]:
    """Everything that happened to a bundle as one list, oldest first: `{at, kind, text, who,
    details}` with kind event, transition, checklist or dispatch."""
    items: list[tuple[datetime, int, int, Row]] = []

    def add(at: datetime, kind: str, seq: int, text: str, actor: str | None, details: Row) -> None:
        items.append((at, _KIND_ORDER[kind], seq, {"at": at.isoformat(), "kind": kind, "text": text,
                                                   "who": who_is.get(actor) if actor else None, "details": details}))

    for i, e in enumerate(event_rows):
        add(e["ts"], "event", i, e["text"], None, {"event_id": e["id"], "kind": e["kind"], "source": e["source"],
                                                   "priority": e["priority"], "restore": e["restore"],
                                                   "received_at": e["received_at"].isoformat()})
    for m in move_rows:
        text = describe_move(m["action"], m["details"], m["actor"], lambda a: name_of(who_is.get(a) if a else None))
        add(m["at"], "transition", m["id"], text, m["actor"], {"action": m["action"], **m["details"]})
    for s in checklist_rows:
        if s["done_at"] is not None:
            add(s["done_at"], "checklist", s["step"], f"Step {s['step']} done: {s['text']}", s["done_by"],
                {"index": s["step"]})
    for d in dispatch_rows:
        add(d["at"], "dispatch", d["id"], d["entry"], d["author"],
            {"entry_id": d["id"], "contact_id": d["contact_id"], "contact_name": d["contact_name"],
             "contact_phone": d["contact_phone"], "outcome": d["outcome"]})
    items.sort(key=lambda item: item[:3])
    return [item[3] for item in items]


async def timeline(conn: asyncpg.Connection | asyncpg.Pool, bundle_id: int,
                   checklist_rows: list[Row]) -> tuple[list[Row], bool]:
    """The bundle's merged timeline (see merge_timeline), and whether its events were cut at
    MAX_EVENTS."""
    event_rows, truncated = await events(conn, bundle_id)
    move_rows = await moves(conn, bundle_id)
    dispatch_rows = await dispatch_log(conn, bundle_id)
    who_is = await people(conn, [*move_actors(move_rows), *(d["author"] for d in dispatch_rows),
                                 *(s["done_by"] for s in checklist_rows)])
    return merge_timeline(event_rows, move_rows, dispatch_rows, checklist_rows, who_is), truncated
