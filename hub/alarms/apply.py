"""The lifecycle's part of an ingest batch, inside the batch's transaction: enrich priorities,
bundle alarms, update panel state and link status, and write the outbox rows for all of it.

Set-based on purpose: a handful of statements per batch, whatever its size, so ingest keeps its
throughput with the lifecycle on.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from hub.db.bulk import rows_json
from hub.alarms.bundling import AlarmInput, WorkingBundle, enrich_priority, in_service_mode, plan_bundles
from hub.alarms.classify import LINK, NORMAL_STATE, NOTE_REQUIRED, ROBOT, SYSTEM, Meaning
from hub.alarms.lifecycle import Status
from hub.db.outbox import OutboxItem

log = logging.getLogger("vigil.hub.alarms.apply")

SQL_CONTEXT = """
SELECT p.id AS panel_id, p.edge_id, p.source, p.object_id, o.status, o.service_mode_until
FROM panels p JOIN objects o ON o.id = p.object_id
JOIN unnest($1::text[], $2::text[]) AS k(edge_id, source) ON k.edge_id = p.edge_id AND k.source = p.source
"""
# A source that is no panel (the box's GSM modem, its robots) belongs to the object its edge serves.
SQL_EDGE_CONTEXT = """
SELECT e.edge_id, o.id AS object_id, o.status, o.service_mode_until
FROM edges e JOIN objects o ON o.id = e.object_id
WHERE e.edge_id = ANY($1::text[])
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
# An acknowledgement given on site joins the bundle(s) holding the event it acknowledges, as a
# record only (no count, no status). An ack whose alarm is not stored yet joins nothing.
SQL_JOIN_LOCAL_ACKS = """
INSERT INTO bundle_events (bundle_id, event_id, ts, restore)
SELECT be.bundle_id, u.event_id, u.at, false
FROM json_to_recordset($1::json) AS u(event_id uuid, at timestamptz, acked uuid)
JOIN bundle_events be ON be.event_id = u.acked
ON CONFLICT DO NOTHING
RETURNING bundle_id
"""
SQL_BUNDLES_BY_ID = "SELECT * FROM bundle_alarms WHERE id = ANY($1::int8[]) ORDER BY id"
SQL_NEW_BUNDLE_IDS = "SELECT nextval(pg_get_serial_sequence('bundle_alarms', 'id')) FROM generate_series(1, $1)"
SQL_INSERT_BUNDLES = """
INSERT INTO bundle_alarms (id, object_id, group_key, alarm_type, status, priority, service_mode, requires_note,
                           first_event_at, last_event_at, event_count, last_alarm_ord, restored_ord, edge_id, source,
                           offline_happened_at, offline_reported_at, summary, created_at, updated_at)
SELECT u.id, u.object_id, u.group_key, u.alarm_type, u.status, u.priority, u.service_mode, u.requires_note,
       u.first_event_at, u.last_event_at, u.event_count, u.last_alarm_ord, u.restored_ord, u.edge_id, u.source,
       u.offline_happened_at, u.offline_reported_at, u.summary, $2, $2
FROM json_to_recordset($1::json) AS u(id int8, object_id int8, group_key text, alarm_type text, status text,
    priority text, service_mode bool, requires_note bool, first_event_at timestamptz, last_event_at timestamptz,
    event_count int4, last_alarm_ord int8, restored_ord int8, edge_id text, source text,
    offline_happened_at timestamptz, offline_reported_at timestamptz, summary text)
"""
SQL_UPDATE_BUNDLES = """
UPDATE bundle_alarms b SET priority = u.priority, service_mode = u.service_mode, requires_note = u.requires_note,
    first_event_at = u.first_event_at, last_event_at = u.last_event_at, event_count = u.event_count,
    last_alarm_ord = u.last_alarm_ord, restored_ord = u.restored_ord, offline_happened_at = u.offline_happened_at,
    offline_reported_at = u.offline_reported_at, summary = u.summary, version = b.version + 1, updated_at = $2
FROM json_to_recordset($1::json) AS u(id int8, priority text, service_mode bool, requires_note bool,
    first_event_at timestamptz, last_event_at timestamptz, event_count int4, last_alarm_ord int8, restored_ord int8,
    offline_happened_at timestamptz, offline_reported_at timestamptz, summary text)
WHERE b.id = u.id
"""
SQL_BUNDLE_EVENTS = """
INSERT INTO bundle_events (bundle_id, event_id, ts, restore)
SELECT u.bundle_id, u.event_id, u.at, u.restore
FROM json_to_recordset($1::json) AS u(bundle_id int8, event_id uuid, at timestamptz, restore bool)
ON CONFLICT DO NOTHING
"""
# Older events never overwrite newer state: the order key (epoch, seq) decides, whichever lane
# came first.
SQL_UPSERT_STATE = """
INSERT INTO panel_state (panel_id, element, number, state, ord, updated_at)
SELECT u.panel_id, u.element, u.number, u.state, u.ord, u.updated_at
FROM json_to_recordset($1::json) AS u(panel_id int8, element text, number int4, state jsonb, ord int8,
                                      updated_at timestamptz)
ON CONFLICT (panel_id, element, number) DO UPDATE
SET state = panel_state.state || excluded.state, ord = excluded.ord, updated_at = excluded.updated_at
WHERE panel_state.ord < excluded.ord
"""
# Elements of a panel a snapshot does not name, and no newer event touched, back to normal.
SQL_RESET_UNNAMED = """
UPDATE panel_state ps
SET state = ps.state || (CASE ps.element WHEN 'zone' THEN $6 WHEN 'partition' THEN $7 ELSE $8 END)::jsonb,
    ord = $2, updated_at = $3
WHERE ps.panel_id = $1 AND ps.ord < $2
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
# Panels whose planned stop outlasted the grace, not yet alarmed; marked in the same statement so
# the next sweep does not raise it again.
SQL_OVERDUE_PLANNED_STOPS = """
UPDATE panels p SET link_alarm_raised = true
WHERE p.link_status = 'DISCONNECTED' AND p.link_planned AND NOT p.link_alarm_raised AND p.link_changed_at < $1
RETURNING p.id, p.object_id, p.edge_id, p.source, p.link_ord, p.link_changed_at
"""
SQL_LINK = """
UPDATE panels p SET link_status = u.status, link_changed_at = u.at, link_ord = u.ord, link_planned = u.planned,
                    link_alarm_raised = false
FROM unnest($1::int8[], $2::text[], $3::timestamptz[], $4::int8[], $5::bool[]) AS u(id, status, at, ord, planned)
WHERE p.id = u.id AND p.link_ord < u.ord
RETURNING p.id, p.object_id, p.link_status, p.link_changed_at, p.link_planned
"""


@dataclass(frozen=True)
class IngestedEvent:
    """A newly stored event with what the lifecycle needs of it."""

    id: str
    edge_id: str
    ord: int       # order key: journal epoch, then seq (hub.ingest.commit.order_key)
    at: datetime   # window time: the edge's ts, or the receive time when its clock is off
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
        "restored": get("restored_ord") > get("last_alarm_ord"),
        "edge_id": get("edge_id"),
        "source": get("source"),
        # Read back from the panel's event log after an outage: when it happened, when we heard.
        "happened_offline_at": iso_or_none(get("offline_happened_at")),
        "reported_at": iso_or_none(get("offline_reported_at")),
        "summary": get("summary"),
        "escalated_at": iso_or_none(get("escalated_at")),  # still NEW past its threshold (housekeeping)
    }


def iso_or_none(at: datetime | None) -> str | None:
    """An optional time as ISO 8601, as bundles carry them to clients."""
    return at.isoformat() if at is not None else None


async def apply_lifecycle(conn: asyncpg.Connection, events: list[IngestedEvent], now: datetime) -> list[OutboxItem]:
    """Run enrichment, bundling, panel state and link status for newly stored events; returns the
    outbox items the caller writes last, in the same transaction."""
    relevant = [e for e in events if e.meaning.matters]
    if not relevant:
        return []
    panels = await _panels(conn, relevant, now)
    outbox: list[OutboxItem] = []
    outbox += await _bundle(conn, relevant, panels, now)
    outbox += await _local_acks(conn, relevant)
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


async def _edge_objects(conn: asyncpg.Connection, edge_ids: set[str], now: datetime) -> dict[str, tuple[int, bool]]:
    """Each edge's object and whether it is in service mode, for alarms from sources that are no
    panel (a temperature SMS names a sensor, not a panel)."""
    if not edge_ids:
        return {}
    rows = await conn.fetch(SQL_EDGE_CONTEXT, sorted(edge_ids))
    return {r["edge_id"]: (r["object_id"], in_service_mode(r["status"], r["service_mode_until"], now)) for r in rows}


async def _bundle(conn: asyncpg.Connection, events: list[IngestedEvent], panels: dict[tuple[str, str], _Panel],
                  now: datetime) -> list[OutboxItem]:
    alarm_events = [e for e in events if e.meaning.opens or e.meaning.restores]
    if not alarm_events:
        return []
    sites = await _edge_objects(conn, {e.edge_id for e in alarm_events if (e.edge_id, e.source) not in panels}, now)
    wanted = {(p.panel_id, z) for e in alarm_events if (p := panels.get((e.edge_id, e.source))) and (z := _zone_of(e))}
    overrides = await _zone_overrides(conn, wanted)
    inputs: list[AlarmInput] = []
    for e in alarm_events:
        panel = panels.get((e.edge_id, e.source))
        site = sites.get(e.edge_id) if panel is None else None
        object_id = panel.object_id if panel else site[0] if site else None
        alarm_type = e.meaning.opens or e.meaning.restores
        assert alarm_type is not None
        group_key = group_key_of(alarm_type, object_id, e.edge_id, e.source)
        service = panel.service_mode if panel else site[1] if site else False
        zone = _zone_of(e)
        override = overrides.get((panel.panel_id, zone)) if panel and zone else None
        inputs.append(AlarmInput(
            event_id=e.id, at=e.at, ord=e.ord, edge_id=e.edge_id, source=e.source, group_key=group_key,
            object_id=object_id, alarm_type=alarm_type, restore=e.meaning.opens is None,
            priority=enrich_priority(e.priority, e.kind, override, service), service_mode=service,
            requires_note=alarm_type in NOTE_REQUIRED, happened_offline_at=e.meaning.happened_offline_at,
        ))
    return await _apply_inputs(conn, inputs, now)


async def _local_acks(conn: asyncpg.Connection, events: list[IngestedEvent]) -> list[OutboxItem]:
    """Put each on-site acknowledgement on its alarm's bundle (after the batch's own alarms are
    bundled, so an alarm and its ack in one batch meet); an `alarm.updated` lets open consoles
    show it. The bundle itself is not changed."""
    acks = [e for e in events if e.meaning.acknowledges]
    if not acks:
        return []
    rows = await conn.fetch(SQL_JOIN_LOCAL_ACKS, rows_json(
        {"event_id": e.id, "at": e.at, "acked": e.meaning.acknowledges} for e in acks))
    bundle_ids = sorted({r["bundle_id"] for r in rows})
    if len(rows) < len(acks):
        log.warning("on-site acknowledgements of alarms the hub does not hold joined no bundle",
                    extra={"acks": len(acks), "joined": len(rows)})
    if not bundle_ids:
        return []
    return [OutboxItem("alarm.updated", r["object_id"], {"bundle": bundle_payload(dict(r))})
            for r in await conn.fetch(SQL_BUNDLES_BY_ID, bundle_ids)]


def group_key_of(alarm_type: str, object_id: int | None, edge_id: str, source: str) -> str:
    """What an alarm bundles with: its object's alarms of the same type, or its panel's while no
    object claims it. A robot's alarms bundle per robot (its edge and id), so two robots of one
    site are two bundles and one robot's restore ends its own."""
    if alarm_type == ROBOT:
        return f"robot:{edge_id}/{source}"
    return f"object:{object_id}" if object_id is not None else f"panel:{edge_id}/{source}"


def hub_alarm(*, group_key: str, object_id: int | None, alarm_type: str, priority: str, edge_id: str, source: str,
              summary: str, ord_: int, now: datetime) -> AlarmInput:
    """An alarm the hub raises itself (no edge event behind it): it opens or joins a bundle like
    any alarm; `ord_` places it among the edge's events, so a later restore ends it."""
    return AlarmInput(
        event_id=None, at=now, ord=ord_, edge_id=edge_id, source=source, group_key=group_key, object_id=object_id,
        alarm_type=alarm_type, restore=False, priority=priority, service_mode=False,
        requires_note=alarm_type in NOTE_REQUIRED, summary=summary,
    )


async def raise_system_alarms(conn: asyncpg.Connection, refusals: list[tuple[str, str]],
                             now: datetime) -> list[OutboxItem]:
    """HIGH SYSTEM alarms about edges as a whole, one per (edge, what) — "edge site-3: segments
    refused (unknown_key)" — bundled together in one pass, however many a batch holds."""
    if not refusals:
        return []
    return await _apply_inputs(conn, [
        hub_alarm(group_key=f"edge:{edge_id}", object_id=None, alarm_type=SYSTEM, priority="HIGH", edge_id=edge_id,
                  source="hub", summary=f"edge {edge_id}: {what}", ord_=0, now=now)
        for edge_id, what in refusals], now)


async def raise_hub_alarms(conn: asyncpg.Connection, alarms: list[AlarmInput], now: datetime) -> list[OutboxItem]:
    """Open or join bundles for alarms the hub raises itself (made with `hub_alarm`), in the
    caller's transaction; returns the outbox items for the caller to write last."""
    return await _apply_inputs(conn, alarms, now) if alarms else []


async def _apply_inputs(conn: asyncpg.Connection, inputs: list[AlarmInput], now: datetime) -> list[OutboxItem]:
    """Bundle alarm and restore inputs against the open bundles and write the result."""
    keys = sorted({i.key for i in inputs})
    open_rows = await conn.fetch(SQL_OPEN_BUNDLES, [k[0] for k in keys], [k[1] for k in keys])
    open_bundles = [
        WorkingBundle(
            id=r["id"], version=r["version"], group_key=r["group_key"], alarm_type=r["alarm_type"], object_id=r["object_id"],
            status=Status(r["status"]), priority=r["priority"], service_mode=r["service_mode"],
            requires_note=r["requires_note"], first_event_at=r["first_event_at"], last_event_at=r["last_event_at"],
            event_count=r["event_count"], last_alarm_ord=r["last_alarm_ord"], restored_ord=r["restored_ord"],
            edge_id=r["edge_id"], source=r["source"], offline_happened_at=r["offline_happened_at"],
            offline_reported_at=r["offline_reported_at"], summary=r["summary"], escalated_at=r["escalated_at"],
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
        {"bundle_id": b.id, "event_id": i.event_id, "at": i.at, "restore": i.restore}
        for b in touched for i in b.events if i.event_id is not None))
    return [OutboxItem("alarm.new" if id(b) in new_ids else "alarm.updated", b.object_id, {"bundle": bundle_payload(b)})
            for b in touched]


def _bundle_row(b: WorkingBundle) -> dict[str, Any]:
    return {
        "id": b.id, "object_id": b.object_id, "group_key": b.group_key, "alarm_type": b.alarm_type,
        "status": b.status.value, "priority": b.priority, "service_mode": b.service_mode,
        "requires_note": b.requires_note, "first_event_at": b.first_event_at, "last_event_at": b.last_event_at,
        "event_count": b.event_count, "last_alarm_ord": b.last_alarm_ord, "restored_ord": b.restored_ord,
        "edge_id": b.edge_id, "source": b.source, "offline_happened_at": b.offline_happened_at,
        "offline_reported_at": b.offline_reported_at, "summary": b.summary,
    }


async def _panel_state(conn: asyncpg.Connection, events: list[IngestedEvent],
                       panels: dict[tuple[str, str], _Panel]) -> list[OutboxItem]:
    changes = [(p, e, st) for e in events if (p := panels.get((e.edge_id, e.source))) for st in e.meaning.changes]
    snapshots = _latest_snapshots(events, panels)
    if not changes and not snapshots:
        return []
    # One upsert row per element: fold the batch's changes in order.
    merged: dict[tuple[int, str, int], tuple[dict[str, Any], int, datetime]] = {}
    for panel, e, st in sorted(changes, key=lambda pes: pes[1].ord):
        key = (panel.panel_id, st.element, st.number)
        prev_state = merged[key][0] if key in merged else {}
        merged[key] = ({**prev_state, **st.state}, e.ord, e.at)
    if merged:
        await conn.execute(SQL_UPSERT_STATE, rows_json(
            {"panel_id": k[0], "element": k[1], "number": k[2], "state": st, "ord": ord_, "updated_at": at}
            for k, (st, ord_, at) in merged.items()))
    # A snapshot names everything active: what it leaves out is normal again (unless an event
    # newer than the snapshot says otherwise).
    for panel, e in snapshots:
        named = [(st.element, st.number) for st in e.meaning.changes]
        for r in await conn.fetch(SQL_RESET_UNNAMED, panel.panel_id, e.ord, e.at, [n[0] for n in named],
                                  [n[1] for n in named], *(msgspec.json.encode(NORMAL_STATE[el]).decode()
                                                           for el in ("zone", "partition", "output"))):
            merged[(panel.panel_id, r["element"], r["number"])] = (msgspec.json.decode(r["state"]), e.ord, e.at)
    # The timeline keeps every element's transitions, zones' included: an operator asks "when did
    # detector 3 trip, and when did it restore" as often as when a partition armed.
    timeline = [(p, e, st) for p, e, st in changes if e.meaning.state is not None]
    if timeline:
        await conn.execute(SQL_STATE_HISTORY, rows_json(
            {"panel_id": p.panel_id, "element": st.element, "number": st.number, "kind": e.kind, "state": st.state,
             "at": e.at, "event_id": e.id}
            for p, e, st in timeline))
    per_panel: dict[int, list[dict[str, Any]]] = defaultdict(list)
    objects = {panel.panel_id: panel.object_id for panel, _, _ in changes}
    objects.update({panel.panel_id: panel.object_id for panel, _ in snapshots})
    for (panel_id, element, number), (state, _, at) in merged.items():
        per_panel[panel_id].append({"element": element, "number": number, "state": state, "at": at.isoformat()})
    return [OutboxItem("panel.state", objects[pid], {"panel_id": pid, "changes": ch}) for pid, ch in per_panel.items()]


def _latest_snapshots(events: list[IngestedEvent],
                      panels: dict[tuple[str, str], _Panel]) -> list[tuple[_Panel, IngestedEvent]]:
    """Each panel's newest snapshot in the batch (an older one in the same batch says nothing more)."""
    latest: dict[int, tuple[_Panel, IngestedEvent]] = {}
    for e in events:
        panel = panels.get((e.edge_id, e.source))
        if e.meaning.snapshot is not None and panel and (panel.panel_id not in latest
                                                         or latest[panel.panel_id][1].ord < e.ord):
            latest[panel.panel_id] = (panel, e)
    return list(latest.values())


async def _links(conn: asyncpg.Connection, events: list[IngestedEvent], panels: dict[tuple[str, str], _Panel]) -> list[OutboxItem]:
    latest: dict[int, IngestedEvent] = {}
    for e in events:
        panel = panels.get((e.edge_id, e.source))
        if e.meaning.link_up is not None and panel and (panel.panel_id not in latest or latest[panel.panel_id].ord < e.ord):
            latest[panel.panel_id] = e
    if not latest:
        return []
    ids = sorted(latest)
    rows = await conn.fetch(
        SQL_LINK, ids, ["CONNECTED" if latest[i].meaning.link_up else "DISCONNECTED" for i in ids],
        [latest[i].at for i in ids], [latest[i].ord for i in ids], [latest[i].meaning.planned for i in ids],
    )
    return [
        OutboxItem("panel.link", r["object_id"], {"panel_id": r["id"], "link_status": r["link_status"],
                                                  "at": r["link_changed_at"].isoformat(), "planned": r["link_planned"]})
        for r in rows
    ]


async def raise_overdue_link_alarms(conn: asyncpg.Connection, now: datetime, grace: timedelta) -> list[OutboxItem]:
    """A planned stop (agent shutdown, DLOADX release) raised no LINK alarm; once it outlasts the
    grace it is an outage like any other: raise it now (the link's next `up` restores it)."""
    minutes = int(grace.total_seconds() // 60)
    overdue = [
        hub_alarm(group_key=f"object:{r['object_id']}", object_id=r["object_id"], alarm_type=LINK, priority="NORMAL",
                  edge_id=r["edge_id"], source=r["source"], ord_=r["link_ord"], now=now,
                  summary=f"panel {r['source']}: planned stop since {r['link_changed_at']:%H:%M} UTC outlasted "
                          f"{minutes} min")
        for r in await conn.fetch(SQL_OVERDUE_PLANNED_STOPS, now - grace)]
    return await _apply_inputs(conn, overdue, now) if overdue else []
