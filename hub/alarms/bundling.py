"""Priority enrichment and bundling, as pure functions over one ingest batch.

A new alarm event joins the newest open bundle of the same group (object) and alarm type when it
happened at most BUNDLE_WINDOW after that bundle's last event; otherwise it opens a new bundle. A
RESOLVED or CLOSED bundle is never open, so an event after resolution re-triggers a new bundle.
Restores update the open bundle they end but never open one. The window slides with each joining
event: a burst, however long, stays one bundle; a quiet gap longer than the window starts anew.

Times here are the hub's window times (`AlarmInput.at`): the edge's ts, or the hub's receive time
when the edge's clock is off by more than the tolerance, so one event dated a year ahead cannot
hold a bundle open for a year. Alarm vs restore is decided by order keys (journal epoch, then
seq), never by clocks.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Mapping

from hub.alarms.lifecycle import Status

BUNDLE_WINDOW = timedelta(minutes=15)
PRIORITY_RANK = {"CRITICAL": 0, "HIGH": 1, "NORMAL": 2, "LOW": 3}
SUPPRESSED_PRIORITY = "LOW"


def enrich_priority(
    edge_priority: str, kind: str, zone_override: Mapping[str, Any] | None, service_mode: bool
) -> str:
    """The edge's default priority, replaced by the zone's override for this kind (or its `*`
    entry), and suppressed while the object is in service mode."""
    priority = edge_priority
    if zone_override:
        override = zone_override.get(kind, zone_override.get("*"))
        if override in PRIORITY_RANK:
            priority = override
    return SUPPRESSED_PRIORITY if service_mode else priority


def higher(a: str, b: str) -> str:
    """The more urgent of two priorities."""
    return a if PRIORITY_RANK[a] <= PRIORITY_RANK[b] else b


def in_service_mode(status: str | None, until: datetime | None, now: datetime) -> bool:
    """An object is in service mode while its status says so, or until its service end time."""
    return status == "SERVICE" or (until is not None and until > now)


@dataclass(frozen=True)
class AlarmInput:
    """One alarm or restore event, enriched, as bundling needs it."""

    event_id: str | None  # None for an alarm the hub raises itself (no edge event behind it)
    at: datetime          # window time: see the module docstring
    ord: int              # order key: ordinal of the journal epoch * 2^40 + seq
    edge_id: str
    source: str
    group_key: str
    object_id: int | None
    alarm_type: str
    restore: bool
    priority: str
    service_mode: bool
    requires_note: bool
    # When the panel logged it, for an alarm read back from its event log that happened while the
    # edge or its link was down ("happened 14:02, reported 14:09").
    happened_offline_at: datetime | None = None
    summary: str | None = None  # what a hub-raised alarm is about, in words

    @property
    def key(self) -> tuple[str, str]:
        return (self.group_key, self.alarm_type)


@dataclass
class WorkingBundle:
    """A bundle being updated by a batch: an existing open one (`id` set) or a new one."""

    group_key: str
    alarm_type: str
    object_id: int | None
    status: Status
    priority: str
    service_mode: bool
    requires_note: bool
    first_event_at: datetime
    last_event_at: datetime
    event_count: int
    last_alarm_ord: int
    restored_ord: int
    edge_id: str
    source: str
    offline_happened_at: datetime | None = None
    offline_reported_at: datetime | None = None
    summary: str | None = None
    escalated_at: datetime | None = None  # carried through unchanged, for the outbox payload
    id: int | None = None
    version: int = 1
    events: list[AlarmInput] = field(default_factory=list)

    @property
    def is_new(self) -> bool:
        return self.id is None

    @property
    def key(self) -> tuple[str, str]:
        return (self.group_key, self.alarm_type)

    @property
    def restored(self) -> bool:
        """True when the newest restore is newer (by order key) than the newest alarm."""
        return self.restored_ord > self.last_alarm_ord


def _open_new(inp: AlarmInput) -> WorkingBundle:
    return WorkingBundle(
        group_key=inp.group_key, alarm_type=inp.alarm_type, object_id=inp.object_id, status=Status.NEW,
        priority=inp.priority, service_mode=inp.service_mode, requires_note=inp.requires_note,
        first_event_at=inp.at, last_event_at=inp.at, event_count=1, last_alarm_ord=inp.ord, restored_ord=0,
        edge_id=inp.edge_id, source=inp.source, events=[inp],
        offline_happened_at=inp.happened_offline_at, offline_reported_at=inp.at if inp.happened_offline_at else None,
        summary=inp.summary,
    )


def plan_bundles(inputs: list[AlarmInput], open_bundles: list[WorkingBundle]) -> list[WorkingBundle]:
    """Apply a batch's alarm and restore events, in order, to the open bundles; returns every
    bundle the batch touched (updated ones and new ones), each with the events it took."""
    newest: dict[tuple[str, str], WorkingBundle] = {}
    for bundle in sorted(open_bundles, key=lambda b: b.last_event_at):
        newest[bundle.key] = bundle
    touched: dict[int, WorkingBundle] = {}
    for inp in inputs:
        bundle = newest.get(inp.key)
        if inp.restore:
            if bundle is None:
                continue  # nothing open to end: a restore never opens a bundle
            bundle.restored_ord = max(bundle.restored_ord, inp.ord)
        elif bundle is None or inp.at - bundle.last_event_at > BUNDLE_WINDOW:
            bundle = _open_new(inp)
            newest[inp.key] = bundle
            touched[id(bundle)] = bundle
            continue
        else:
            bundle.last_alarm_ord = max(bundle.last_alarm_ord, inp.ord)
            if inp.happened_offline_at and not bundle.offline_happened_at:
                bundle.offline_happened_at, bundle.offline_reported_at = inp.happened_offline_at, inp.at
            was_suppressed = bundle.service_mode
            # Leaving service mode restores normal handling: one normal event un-suppresses the
            # bundle, and its suppressed priority says nothing about urgency.
            bundle.service_mode = bundle.service_mode and inp.service_mode
            if was_suppressed and not bundle.service_mode:
                bundle.priority = inp.priority
            else:
                bundle.priority = higher(bundle.priority, inp.priority)
            bundle.requires_note = bundle.requires_note or inp.requires_note
            bundle.summary = inp.summary or bundle.summary
        bundle.last_event_at = max(bundle.last_event_at, inp.at)
        bundle.first_event_at = min(bundle.first_event_at, inp.at)
        bundle.event_count += 1
        bundle.events.append(inp)
        touched[id(bundle)] = bundle
    return list(touched.values())
