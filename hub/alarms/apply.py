"""The lifecycle's part of an ingest batch, inside the batch's transaction: enrich priorities,
bundle alarms, update panel state and link status, and write the outbox rows for all of it.

Set-based on purpose: a handful of statements per batch, whatever its size, so ingest keeps its
throughput with the lifecycle on.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from hub.db.bulk import rows_json
from hub.alarms.bundling import AlarmInput, WorkingBundle, enrich_priority, in_service_mode, plan_bundles
from hub.alarms.classify import NORMAL_STATE, NOTE_REQUIRED, Meaning
from hub.alarms.lifecycle import Status
from hub.db.outbox import OutboxItem

SQL_CONTEXT = """
SELECT p.id AS panel_id, p.edge_id, p.source, p.object_id, o.status, o.service_mode_until
FROM panels p JOIN objects o ON o.id = p.object_id
JOIN unnest($1::text[], $2::text[]) AS k(edge_id, source) ON k.edge_id = p.edge_id AND k.source = p.source
"""
SQL_ZONE_OVERRIDES = """
SELECT z.panel_id, z.number, z.priority_override
FROM zones z JOIN unnest($1::int8[], $2::int4[]) AS k(panel_id, number) ON k.panel_id = z.panel_id AND k.number = z.number
WHERE z.priority_override <> '{}'::jsonb
"""
SQL_OPEN_BUNDLES = """
SELECT b.* FROM bundle_alarms b
JOIN unnest($1::text[], $2::text[]) AS k(group_key, alarm_type) ON k.group_key = b.group_key AND k.alarm_type = b.alarm_type
WHERE b.status NOT IN ('RESOLVED', 'CLOSED')
ORDER BY b.id
FOR UPDATE OF b
"""
SQL_NEW_BUNDLE_IDS = "SELECT nextval(pg_get_serial_sequence('bundle_alarms', 'id')) FROM generate_series(1, $1)"
SQL_INSERT_BUNDLES = """
INSERT INTO bundle_alarms (id, object_id, group_key, alarm_type, status, priority, service_mode, requires_note,
                           first_event_at, last_event_at, event_count, last_alarm_seq, restored_seq, edge_id, source,
                           created_at, updated_at)
SELECT u.id, u.object_id, u.group_key, u.alarm_type, u.status, u.priority, u.service_mode, u.requires_note,
       u.first_event_at, u.last_event_at, u.event_count, u.last_alarm_seq, u.restored_seq, u.edge_id, u.source, $2, $2
FROM json_to_recordset($1::json) AS u(id int8, object_id int8, group_key text, alarm_type text, status text,
    priority text, service_mode bool, requires_note bool, first_event_at timestamptz, last_event_at timestamptz,
    event_count int4, last_alarm_seq int8, restored_seq int8, edge_id text, source text)
"""
SQL_UPDATE_BUNDLES = """
UPDATE bundle_alarms b SET priority = u.priority, service_mode = u.service_mode, requires_note = u.requires_note,
    first_event_at = u.first_event_at, last_event_at = u.last_event_at, event_count = u.event_count,
    last_alarm_seq = u.last_alarm_seq, restored_seq = u.restored_seq, version = b.version + 1, updated_at = $2
FROM json_to_recordset($1::json) AS u(id int8, priority text, service_mode bool, requires_note bool,
    first_event_at timestamptz, last_event_at timestamptz, event_count int4, last_alarm_seq int8, restored_seq int8)
WHERE b.id = u.id
"""
SQL_BUNDLE_EVENTS = """
INSERT INTO bundle_events (bundle_id, event_id, ts, restore)
SELECT u.bundle_id, u.event_id, u.ts, u.restore
FROM json_to_recordset($1::json) AS u(bundle_id int8, event_id uuid, ts timestamptz, restore bool)
ON CONFLICT DO NOTHING
"""
# Older events never overwrite newer state: the edge seq decides, whichever lane came first.
SQL_UPSERT_STATE = """
INSERT INTO panel_state (panel_id, element, number, state, seq, updated_at)
SELECT u.panel_id, u.element, u.number, u.state, u.seq, u.updated_at
FROM json_to_recordset($1::json) AS u(panel_id int8, element text, number int4, state jsonb, seq int8,
                                      updated_at timestamptz)
ON CONFLICT (panel_id, element, number) DO UPDATE
SET state = panel_state.state || excluded.state, seq = excluded.seq, updated_at = excluded.updated_at
WHERE panel_state.seq < excluded.seq
"""
# Elements of a panel a snapshot does not name, and no newer event touched, back to normal.
SQL_RESET_UNNAMED = """
UPDATE panel_state ps
SET state = ps.state || (CASE ps.element WHEN 'zone' THEN $6 WHEN 'partition' THEN $7 ELSE $8 END)::jsonb,
    seq = $2, updated_at = $3
WHERE ps.panel_id = $1 AND ps.seq < $2
  AND NOT EXISTS (SELECT 1 FROM unnest($4::text[], $5::int4[]) AS k(element, number)
                  WHERE k.element = ps.element AND k.number = ps.number)
RETURNING ps.element, ps.number, ps.state::text AS state
"""
SQL_STATE_HISTORY = """
INSERT INTO panel_state_history (panel_id, element, number, kind, state, at, event_id)
SELECT u.panel_id, u.element, u.number, u.kind, u.state, u.at, u.event_id
FROM json_to_recordset($1::json) AS u(panel_id int8, element text, number int4, kind text, state jsonb,
                                      at timestamptz, event_id uuid)
"""
SQL_LINK = """
UPDATE panels p SET link_status = u.status, link_changed_at = u.at, link_seq = u.seq
FROM unnest($1::int8[], $2::text[], $3::timestamptz[], $4::int8[]) AS u(id, status, at, seq)
WHERE p.id = u.id AND p.link_seq < u.seq
RETURNING p.id, p.object_id, p.link_status, p.link_changed_at
"""



@dataclass(frozen=True)
class IngestedEvent:
    """A newly stored event with what the lifecycle needs of it."""

    id: str
    edge_id: str
    seq: int
    ts: datetime
    kind: str
    source: str
    priority: str
    meaning: Meaning


@dataclass(frozen=True)
class _Panel:
    panel_id: int
    object_id: int
    service_mode: bool


def bundle_payload(b: dict[str, Any] | WorkingBundle) -> dict[str, Any]:
    """What live clients get for an alarm bundle (outbox payload and API shape)."""
    get = b.get if isinstance(b, dict) else lambda k: getattr(b, k)
    status = get("status")
    return {
        "id": get("id"),
        "object_id": get("object_id"),
        "alarm_type": get("alarm_type"),
        "status": status.value if isinstance(status, Status) else status,
        "priority": get("priority"),
        "service_mode": get("service_mode"),
        "requires_note": get("requires_note"),
        "version": get("version"),
        "event_count": get("event_count"),
        "first_event_at": get("first_event_at").isoformat(),
        "last_event_at": get("last_event_at").isoformat(),
        "restored": get("restored_seq") > get("last_alarm_seq"),
        "edge_id": get("edge_id"),
        "source": get("source"),
    }


async def apply_lifecycle(conn: asyncpg.Connection, events: list[IngestedEvent], now: datetime) -> list[OutboxItem]:
    """Run enrichment, bundling, panel state and link status for newly stored events; returns the
    outbox items the caller writes last, in the same transaction."""
    relevant = [e for e in events if e.meaning.matters]
    if not relevant:
        return []
    panels = await _panels(conn, relevant, now)
    outbox: list[OutboxItem] = []
    outbox += await _bundle(conn, relevant, panels, now)
    outbox += await _panel_state(conn, relevant, panels)
    outbox += await _links(conn, relevant, panels)
    return outbox


async def _panels(conn: asyncpg.Connection, events: list[IngestedEvent], now: datetime) -> dict[tuple[str, str], _Panel]:
    keys = sorted({(e.edge_id, e.source) for e in events})
    rows = await conn.fetch(SQL_CONTEXT, [k[0] for k in keys], [k[1] for k in keys])
    return {
        (r["edge_id"], r["source"]): _Panel(r["panel_id"], r["object_id"], in_service_mode(r["status"], r["service_mode_until"], now))
        for r in rows
    }


async def _zone_overrides(conn: asyncpg.Connection, wanted: set[tuple[int, int]]) -> dict[tuple[int, int], dict[str, Any]]:
    if not wanted:
        return {}
    ordered = sorted(wanted)
    rows = await conn.fetch(SQL_ZONE_OVERRIDES, [w[0] for w in ordered], [w[1] for w in ordered])
    return {(r["panel_id"], r["number"]): msgspec.json.decode(r["priority_override"]) for r in rows}


def _zone_of(e: IngestedEvent) -> int | None:
    state = e.meaning.state
    return state.number if state is not None and state.element == "zone" else None


async def _bundle(conn: asyncpg.Connection, events: list[IngestedEvent], panels: dict[tuple[str, str], _Panel],
                  now: datetime) -> list[OutboxItem]:
    alarm_events = [e for e in events if e.meaning.opens or e.meaning.restores]
    if not alarm_events:
        return []
    wanted = {(p.panel_id, z) for e in alarm_events if (p := panels.get((e.edge_id, e.source))) and (z := _zone_of(e))}
    overrides = await _zone_overrides(conn, wanted)
    inputs: list[AlarmInput] = []
    for e in alarm_events:
        panel = panels.get((e.edge_id, e.source))
        group_key = f"object:{panel.object_id}" if panel else f"panel:{e.edge_id}/{e.source}"
        service = panel.service_mode if panel else False
        zone = _zone_of(e)
        override = overrides.get((panel.panel_id, zone)) if panel and zone else None
        alarm_type = e.meaning.opens or e.meaning.restores
        assert alarm_type is not None
        inputs.append(AlarmInput(
            event_id=e.id, ts=e.ts, seq=e.seq, edge_id=e.edge_id, source=e.source, group_key=group_key,
            object_id=panel.object_id if panel else None, alarm_type=alarm_type, restore=e.meaning.opens is None,
            priority=enrich_priority(e.priority, e.kind, override, service), service_mode=service,
            requires_note=alarm_type in NOTE_REQUIRED,
        ))
    keys = sorted({i.key for i in inputs})
    open_rows = await conn.fetch(SQL_OPEN_BUNDLES, [k[0] for k in keys], [k[1] for k in keys])
    open_bundles = [
        WorkingBundle(
            id=r["id"], version=r["version"], group_key=r["group_key"], alarm_type=r["alarm_type"], object_id=r["object_id"],
            status=Status(r["status"]), priority=r["priority"], service_mode=r["service_mode"],
            requires_note=r["requires_note"], first_event_at=r["first_event_at"], last_event_at=r["last_event_at"],
            event_count=r["event_count"], last_alarm_seq=r["last_alarm_seq"], restored_seq=r["restored_seq"],
            edge_id=r["edge_id"], source=r["source"],
        )
        for r in open_rows
    ]
    touched = plan_bundles(inputs, open_bundles)
    new = [b for b in touched if b.is_new]
    new_ids = {id(b) for b in new}
    if new:
        ids = [r[0] for r in await conn.fetch(SQL_NEW_BUNDLE_IDS, len(new))]
        for b, new_id in zip(new, ids):
            b.id = new_id
        await conn.execute(SQL_INSERT_BUNDLES, rows_json(_bundle_row(b) for b in new), now)
    old = [b for b in touched if id(b) not in new_ids]
    if old:
        await conn.execute(SQL_UPDATE_BUNDLES, rows_json(_bundle_row(b) for b in old), now)
        for b in old:
            b.version += 1
    await conn.execute(SQL_BUNDLE_EVENTS, rows_json(
        {"bundle_id": b.id, "event_id": i.event_id, "ts": i.ts, "restore": i.restore} for b in touched for i in b.events))
    return [OutboxItem("alarm.new" if id(b) in new_ids else "alarm.updated", b.object_id, {"bundle": bundle_payload(b)})
            for b in touched]


def _bundle_row(b: WorkingBundle) -> dict[str, Any]:
    return {
        "id": b.id, "object_id": b.object_id, "group_key": b.group_key, "alarm_type": b.alarm_type,
        "status": b.status.value, "priority": b.priority, "service_mode": b.service_mode,
        "requires_note": b.requires_note, "first_event_at": b.first_event_at, "last_event_at": b.last_event_at,
        "event_count": b.event_count, "last_alarm_seq": b.last_alarm_seq, "restored_seq": b.restored_seq,
        "edge_id": b.edge_id, "source": b.source,
    }


async def _panel_state(conn: asyncpg.Connection, events: list[IngestedEvent],
                       panels: dict[tuple[str, str], _Panel]) -> list[OutboxItem]:
    changes = [(p, e, st) for e in events if (p := panels.get((e.edge_id, e.source))) for st in e.meaning.changes]
    snapshots = _latest_snapshots(events, panels)
    if not changes and not snapshots:
        return []
    # One upsert row per element: fold the batch's changes in seq order.
    merged: dict[tuple[int, str, int], tuple[dict[str, Any], int, datetime]] = {}
    for panel, e, st in sorted(changes, key=lambda pes: pes[1].seq):
        key = (panel.panel_id, st.element, st.number)
        prev_state = merged[key][0] if key in merged else {}
        merged[key] = ({**prev_state, **st.state}, e.seq, e.ts)
    if merged:
        await conn.execute(SQL_UPSERT_STATE, rows_json(
            {"panel_id": k[0], "element": k[1], "number": k[2], "state": st, "seq": seq, "updated_at": ts}
            for k, (st, seq, ts) in merged.items()))
    # A snapshot names everything active: what it leaves out is normal again (unless an event
    # newer than the snapshot says otherwise).
    for panel, e in snapshots:
        named = [(st.element, st.number) for st in e.meaning.changes]
        for r in await conn.fetch(SQL_RESET_UNNAMED, panel.panel_id, e.seq, e.ts, [n[0] for n in named],
                                  [n[1] for n in named], *(msgspec.json.encode(NORMAL_STATE[el]).decode()
                                                           for el in ("zone", "partition", "output"))):
            merged[(panel.panel_id, r["element"], r["number"])] = (msgspec.json.decode(r["state"]), e.seq, e.ts)
    # The timeline keeps partition and output states; zones' (every violation of every detector)
    # would dwarf it and is in `events` already.
    timeline = [(p, e, st) for p, e, st in changes if st.element != "zone"]
    if timeline:
        await conn.execute(SQL_STATE_HISTORY, rows_json(
            {"panel_id": p.panel_id, "element": st.element, "number": st.number, "kind": e.kind, "state": st.state,
             "at": e.ts, "event_id": e.id}
            for p, e, st in timeline))
    per_panel: dict[int, list[dict[str, Any]]] = defaultdict(list)
    objects = {panel.panel_id: panel.object_id for panel, _, _ in changes}
    objects.update({panel.panel_id: panel.object_id for panel, _ in snapshots})
    for (panel_id, element, number), (state, seq, ts) in merged.items():
        per_panel[panel_id].append({"element": element, "number": number, "state": state, "seq": seq, "at": ts.isoformat()})
    return [OutboxItem("panel.state", objects[pid], {"panel_id": pid, "changes": ch}) for pid, ch in per_panel.items()]


def _latest_snapshots(events: list[IngestedEvent],
                      panels: dict[tuple[str, str], _Panel]) -> list[tuple[_Panel, IngestedEvent]]:
    """Each panel's newest snapshot in the batch (an older one in the same batch says nothing more)."""
    latest: dict[int, tuple[_Panel, IngestedEvent]] = {}
    for e in events:
        panel = panels.get((e.edge_id, e.source))
        if e.meaning.snapshot is not None and panel and (panel.panel_id not in latest
                                                         or latest[panel.panel_id][1].seq < e.seq):
            latest[panel.panel_id] = (panel, e)
    return list(latest.values())


async def _links(conn: asyncpg.Connection, events: list[IngestedEvent], panels: dict[tuple[str, str], _Panel]) -> list[OutboxItem]:
    latest: dict[int, IngestedEvent] = {}
    for e in events:
        panel = panels.get((e.edge_id, e.source))
        if e.meaning.link_up is not None and panel and (panel.panel_id not in latest or latest[panel.panel_id].seq < e.seq):
            latest[panel.panel_id] = e
    if not latest:
        return []
    ids = sorted(latest)
    rows = await conn.fetch(
        SQL_LINK, ids, ["CONNECTED" if latest[i].meaning.link_up else "DISCONNECTED" for i in ids],
        [latest[i].ts for i in ids], [latest[i].seq for i in ids],
    )
    return [
        OutboxItem("panel.link", r["object_id"], {"panel_id": r["id"], "link_status": r["link_status"],
                                                  "at": r["link_changed_at"].isoformat()})
        for r in rows
    ]
