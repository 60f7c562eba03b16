"""Temperature SMS at the hub (issue 14): the raw text and full sender reach only the archive
(MASTER only, every read audited and counted), ordinary events carry a digest and a masked
number, and a temperature alarm from the box's modem lands on the box's object needing a note."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import msgspec
import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import REGISTRY

from shared.bodies.gsm import RawSms, TemperatureSms, mask_number, sms_digest
from shared.envelope import Priority
from support.api import as_role, json_of
from support.site import T0, Site
from test_secret_replays import _text_anywhere

NUMBER = "+48600123012"
TEXT = "Efento: sensor 282C02 'Chłodnia 1' temperature 9.4°C above threshold 8.0°C"
MASTER, ADMIN = as_role("MASTER", 1), as_role("ADMIN", 2)


def _reads() -> float:
    return sum(REGISTRY.get_sample_value("vigil_sms_raw_archive_access_total", {"what": w}) or 0.0 for w in ("list", "one"))


async def _site(db: asyncpg.Pool) -> Site:
    site = await Site(db).setup({"panel-1": "Cold store"})
    await db.execute("UPDATE edges SET object_id = $1 WHERE edge_id = $2", site.objects["Cold store"], site.edge_id)
    return site


def _raw(site: Site, **overrides: Any) -> Any:
    digest = sms_digest(NUMBER, TEXT)
    body = msgspec.to_builtins(RawSms(sender=NUMBER, text=TEXT, sha256=digest, pdus=["07911326"], quality="complete",
                                      trusted=True)) | overrides
    return site.env("sms.raw", body, T0, Priority.NORMAL, source="gsm-1")


def _alarm(site: Site) -> Any:
    body = TemperatureSms(kind="alarm", sensor="Chłodnia 1", vendor="efento", template="efento-en-alarm",
                          quality="complete", sender=mask_number(NUMBER), sha256=sms_digest(NUMBER, TEXT), value=9.4,
                          threshold=8.0, direction="above")
    return site.env("sms.temp.alarm", msgspec.to_builtins(body), T0, Priority.HIGH, source="gsm-1")


async def test_the_raw_text_goes_only_to_the_archive_and_a_master_reads_it_audited(
        db: asyncpg.Pool, api_client: TestClient) -> None:
    site = await _site(db)
    raw, alarm = _raw(site), _alarm(site)
    assert await site.ingest(raw, alarm) == 2
    assert await site.ingest(raw) == 0, "a retried envelope is not archived twice"
    stored = msgspec.json.decode(await db.fetchval("SELECT body::text FROM events WHERE kind = 'sms.raw'"))
    assert stored == {"sha256": sms_digest(NUMBER, TEXT), "archived": True}
    # Only the archive holds the text and the full number; events and everything else carry neither.
    assert await _text_anywhere(db, "Chłodnia 1' temperature") == ["sms_raw_archive.text"]
    assert await _text_anywhere(db, NUMBER) == ["sms_raw_archive.sender"]
    assert await db.fetchval("SELECT count(*) FROM sms_raw_archive") == 1

    assert (await api_client.get("/api/v1/sms-archive", headers=ADMIN)).status == 403
    before = _reads()
    page = await json_of(await api_client.get(f"/api/v1/sms-archive?sha256={sms_digest(NUMBER, TEXT)}",
                                              headers=MASTER))
    [message] = page["items"]
    assert (message["text"], message["sender"], message["quality"]) == (TEXT, NUMBER, "complete")
    one = await json_of(await api_client.get(f"/api/v1/sms-archive/{message['event_id']}", headers=MASTER))
    assert one["pdus"] == ["07911326"]
    assert (await api_client.get("/api/v1/sms-archive/not-an-id", headers=MASTER)).status == 404
    assert _reads() == before + 2
    audits = await db.fetch("SELECT actor, details::text AS details FROM audit_log WHERE action = 'sms_archive.read' "
                            "ORDER BY id")
    assert [a["actor"] for a in audits] == ["user:1", "user:1"]
    assert all(message["event_id"] in a["details"] and TEXT not in a["details"] for a in audits)


async def test_a_temperature_alarm_from_the_modem_lands_on_the_boxs_object_and_needs_a_note(
        db: asyncpg.Pool, api_client: TestClient) -> None:
    site = await _site(db)
    await site.ingest(_alarm(site))
    bundle = await db.fetchrow("SELECT * FROM bundle_alarms WHERE alarm_type = 'TEMPERATURE'")
    assert bundle["object_id"] == site.objects["Cold store"] and bundle["requires_note"]
    detail = await json_of(await api_client.get(f"/api/v1/alarms/{bundle['id']}", headers=MASTER))
    assert any(e.get("text") == "Temperature alarm: Chłodnia 1 9.4 °C (above 8 °C)" for e in detail["events"]), \
        detail["events"]
    assert NUMBER not in str(detail) and "+48 600 *** 012" in str(detail)
    normal = msgspec.to_builtins(TemperatureSms(kind="normal", sensor="Chłodnia 1", vendor="efento", template="t",
                                                quality="complete", sender="+48 600 *** 012", sha256="0" * 64, value=6.1))
    await site.ingest(site.env("sms.temp.normal", normal, T0 + timedelta(minutes=5), Priority.LOW, source="gsm-1"))
    assert (await db.fetchrow("SELECT * FROM bundle_alarms WHERE id = $1", bundle["id"]))["restored_ord"] > 0
    battery = msgspec.to_builtins(TemperatureSms(kind="battery_low", sensor="282C02", vendor="efento", template="t",
                                                 quality="complete", sender="+48 600 *** 012", sha256="1" * 64))
    await site.ingest(site.env("sms.temp.battery_low", battery, T0 + timedelta(minutes=6), Priority.NORMAL,
                               source="gsm-1"))
    assert await db.fetchval("SELECT alarm_type FROM bundle_alarms WHERE id <> $1", bundle["id"]) == "TROUBLE"


async def test_an_unreadable_raw_body_is_stored_without_it(db: asyncpg.Pool) -> None:
    site = await _site(db)
    assert await site.ingest(_raw(site, quality="not-a-quality")) == 1
    assert await db.fetchval("SELECT body::text FROM events WHERE kind = 'sms.raw'") == '{"archived": false}'
    assert await _text_anywhere(db, NUMBER) == []


@pytest.mark.parametrize(("sender", "shown"), [
    ("+48600123012", "+48 600 *** 012"), ("+4915112345678", "+4915 112 *** 678"), ("600123012", "******012"),
    ("+1555", "+*555"), ("Efento", "Efento"), ("12", "12")])
def test_numbers_are_masked_and_names_kept(sender: str, shown: str) -> None:
    assert mask_number(sender) == shown


async def test_a_modem_off_the_network_is_trouble_on_the_boxs_object_until_it_recovers(db: asyncpg.Pool) -> None:
    site = await _site(db)
    await site.ingest(site.env("edge.link.degraded", {"link": "gsm-1", "reason": "registration lost"}, T0,
                               Priority.NORMAL, source="gsm-1"))
    bundle = await db.fetchrow("SELECT * FROM bundle_alarms WHERE alarm_type = 'TROUBLE'")
    assert bundle["object_id"] == site.objects["Cold store"] and bundle["restored_ord"] == 0
    await site.ingest(site.env("edge.link.recovered", {"link": "gsm-1", "reason": "registration lost"},
                               T0 + timedelta(minutes=1), Priority.LOW, source="gsm-1"))
    assert (await db.fetchrow("SELECT * FROM bundle_alarms WHERE id = $1", bundle["id"]))["restored_ord"] > 0
