"""At the hub, an acknowledgement given on an edge's local console (`edge.local.ack`, issue 16)
joins its alarm's bundle as a record, also in a later batch, and moves nothing; an ack that
names no stored alarm, or nothing readable, is stored and joins nothing. Real commit path on
a real PostgreSQL (tests/support/site.py)."""
from __future__ import annotations

from datetime import timedelta

import asyncpg

from hub.alarms import history
from hub.alarms.classify import NOTHING, classify
from shared.bodies.local import LOCAL_ACK_KIND
from shared.envelope import Priority
from support.site import T0, Site


def _ack(site: Site, acked_id: str, note: str, at_s: int) -> object:
    return site.env(LOCAL_ACK_KIND, {"who": "guard:ola", "at": (T0 + timedelta(seconds=at_s)).isoformat(), "note": note,
                                     "acked_id": acked_id, "acked_kind": "satel.zone.tamper", "acked_source": "panel-1"},
                    T0 + timedelta(seconds=at_s), Priority.HIGH, source="console")


def test_a_malformed_ack_means_nothing() -> None:
    assert classify(LOCAL_ACK_KIND, {"acked_id": "not-a-uuid"}) is NOTHING
    assert classify(LOCAL_ACK_KIND, {}) is NOTHING


async def test_an_ack_from_site_joins_the_bundle_in_a_later_batch_and_moves_nothing(db: asyncpg.Pool) -> None:
    site = await Site(db).setup({"panel-1": "Warehouse"})
    tamper = site.env("satel.zone.tamper", {"zone": 3, "name": "Recepcja"}, T0)
    await site.ingest(tamper)
    bundle = await db.fetchrow("SELECT b.* FROM bundle_alarms b JOIN bundle_events be ON be.bundle_id = b.id "
                               "WHERE be.event_id = $1", tamper.id)
    stray = _ack(site, "0190b0c0-0000-7000-8000-000000000000", "no such alarm", 20)
    await site.ingest(_ack(site, str(tamper.id), "cover loose", 10), stray,
                      site.env(LOCAL_ACK_KIND, {"acked_id": 5}, T0 + timedelta(seconds=30), Priority.HIGH, source="console"))
    after = await db.fetchrow("SELECT * FROM bundle_alarms WHERE id = $1", bundle["id"])
    assert (after["status"], after["event_count"], after["version"]) == (bundle["status"], bundle["event_count"],
                                                                         bundle["version"])
    events, _ = await history.events(db, bundle["id"])
    assert [e["text"] for e in events if e["kind"] == LOCAL_ACK_KIND] == ["Acknowledged on site by guard:ola: cover loose"]
    assert await db.fetchval("SELECT count(*) FROM bundle_events WHERE event_id = $1", stray.id) == 0
    assert await db.fetchval("SELECT count(*) FROM events WHERE kind = $1", LOCAL_ACK_KIND) == 3, "all stored"
    outbox = await db.fetch("SELECT payload::text AS payload FROM outbox WHERE topic = 'alarm.updated'")
    assert any(f'"id":{bundle["id"]}' in r["payload"].replace(" ", "") for r in outbox), "open consoles hear of it"
