"""Object scope, walked over the whole API: a TECHNICIAN and a FIELD_WORKER assigned to object
Alpha only, with Alpha and Bravo each carrying an edge, a panel with zones, partitions and
outputs, contacts, a procedure, a secret, an alarm with events and a dispatch entry, panel state
and history, a robot with its reports, lease, commands and settings, a robot site plan, and stream
rows.

On every route they may call: lists and reports (JSON, CSV and PDF) hold Alpha's items and never
Bravo's; a get of Bravo's item is 404 with the very answer a missing id gets (the API's convention:
an object outside the assignment is not theirs to learn of, hub.api.permissions.require_object);
the WebSocket and SSE streams deliver Alpha's rows, caught up and live, and never Bravo's. Every
piece of Bravo's data carries the word "bravo", and no answer to these users may contain it.

The walk is driven off the route table (tests/test_api_roles.py): every GET route, and every other
route an assigned-only role may call, is either walked here or marked not object-scoped with the
reason, so a new route fails until someone decides how its scope is checked."""
from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import asyncpg
import pytest
from aiohttp import ClientResponse, FormData
from pypdf import PdfReader

from hub.edges.status import store_report
from shared.edge_status import EdgeStatusReport, LaneBacklog, LinkReport, encode_report
from support import robots as rb
from support.site import Site
from test_api_roles import F, M, O, ROLE_MATRIX, T, Route, ServedHub, app_routes, serving_hub
from test_robots_plan_api import png

WS: Route = ("GET", "/api/v1/ws")
TICKET: Route = ("POST", "/api/v1/auth/ws-ticket")
ASSIGNED_ONLY = (T, F)
MISSING_ID = 987654321
FOREIGN = "bravo"  # in every name of Bravo's data; never in an answer to a user assigned Alpha only
REVEAL_REASON = {"reason": "checking the recorder"}

SQL_USER_ID = "SELECT id FROM users WHERE email = $1"
SQL_BUNDLE_OF = "SELECT id FROM bundle_alarms WHERE object_id = $1"
SQL_OUTBOX = "SELECT sequence_id, topic, object_id FROM outbox ORDER BY sequence_id"
SQL_OUTBOX_HEAD = "SELECT value FROM outbox_counter"
SQL_TIE_EDGE = "UPDATE edges SET object_id = $2 WHERE edge_id = $1"
SQL_PANELS_ON = "SELECT source FROM panels WHERE edge_id = $1 ORDER BY source"
SQL_MISSED_RUN = """
INSERT INTO auto_arm_runs (schedule_id, panel_id, object_id, partition, due_at, outcome, detail, created_at, decided_at)
VALUES ($1, $2, $3, 1, $4, 'MISSED', 'no hub ran then', $4, $4)
"""


@dataclass
class Side:
    """One object and everything the API shows of it."""

    name: str
    site: Site
    object_id: int = 0
    panel_id: int = 0
    secret_id: int = 0
    alarm_id: int = 0
    document_id: int = 0
    schedule_id: int = 0
    supervision_id: int = 0
    command_id: str = ""
    robot_command_id: str = ""
    operator: str = ""  # the actor who claimed its alarm

    @property
    def edge_id(self) -> str:
        return self.site.edge_id

    @property
    def robot_id(self) -> str:
        return f"rb-{self.name}"


@dataclass
class World:
    hub: ServedHub
    db: asyncpg.Pool
    alpha: Side
    bravo: Side
    headers: dict[str, dict[str, str]] = field(default_factory=dict)  # role → a user assigned Alpha only


Check = Callable[[World, str, str], Awaitable[None]]  # (world, role, path template)


def _now() -> datetime:
    return datetime.now(timezone.utc)


async def _ok(resp: ClientResponse) -> Any:
    """A 200 answer's JSON (or text, for CSV), which must not mention Bravo."""
    text = await resp.text()
    assert resp.status == 200, f"{resp.method} {resp.url}: {resp.status} {text}"
    assert FOREIGN not in text.lower(), f"{resp.method} {resp.url} shows Bravo's data: {text}"
    return json.loads(text) if resp.content_type == "application/json" else text


async def _get(w: World, role: str, url: str) -> Any:
    return await _ok(await w.hub.client.get(url, headers=w.headers[role]))


async def _as_master(w: World, method: str, url: str, body: dict[str, Any] | None = None) -> Any:
    resp = await w.hub.client.request(method, url, headers=w.headers[M], json=body)
    data = await resp.json()
    assert resp.status in (200, 201, 202), data
    return data


async def _hidden(w: World, role: str, method: str, path: str, foreign_id: int | str, body: Any = None) -> None:
    """`path` with Bravo's id answers exactly as with an id that does not exist: 404."""
    answers = []
    for ident in (foreign_id, MISSING_ID):
        resp = await w.hub.client.request(method, path.format(id=ident), headers=w.headers[role], json=body)
        answer = await resp.json()
        assert resp.status == 404, f"{role} {method} {path} with id {ident}: {resp.status} {answer}"
        answers.append((answer["error"]["code"], answer["error"]["message"]))
    assert answers[0] == answers[1] and answers[0][0] == "not_found", f"{role} {method} {path}: {answers}"


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# --- the checks, one per kind of route ------------------------------------------------------------

def by_id(id_of: Callable[[Side], int | str], shows: Callable[[Any], bool]) -> Check:
    """A get under Alpha's id shows Alpha's data (`shows`); under Bravo's it is hidden."""
    async def check(w: World, role: str, path: str) -> None:
        body = await _get(w, role, path.format(id=id_of(w.alpha)))
        assert shows(body), f"{role} {path}: Alpha's data missing from {body}"
        await _hidden(w, role, "GET", path, id_of(w.bravo))
    return check


def _names(items: list[dict[str, Any]]) -> list[str]:
    return [i["name"] for i in items]


async def alarm_list(w: World, role: str, path: str) -> None:
    """Alpha's alarm only; filtering by Bravo's object finds nothing."""
    page = await _get(w, role, path)
    assert [a["id"] for a in page["items"]] == [w.alpha.alarm_id] and page["total"] == 1, page
    assert (await _get(w, role, f"{path}?object_id={w.bravo.object_id}"))["items"] == []


async def object_list(w: World, role: str, path: str) -> None:
    """Alpha only; searching for Bravo finds nothing."""
    page = await _get(w, role, path)
    assert [o["id"] for o in page["items"]] == [w.alpha.object_id] and page["total"] == 1, page
    assert (await _get(w, role, f"{path}?q={FOREIGN}"))["items"] == []


async def edge_list(w: World, role: str, path: str) -> None:
    """Alpha's edge only, and of its status report the links of Alpha's panels only."""
    items = (await _get(w, role, path))["items"]
    assert [e["edge_id"] for e in items] == [w.alpha.edge_id], items
    assert [link["id"] for link in items[0]["report"]["links"]] == ["panel-alpha"], items


async def _pdf_text(w: World, role: str, url: str) -> str:
    """A PDF answer's text, white space removed (table cells wrap), which must not mention Bravo."""
    resp = await w.hub.client.get(url, headers=w.headers[role])
    assert resp.status == 200 and resp.content_type == "application/pdf", f"{url}: {resp.status}"
    reader = PdfReader(io.BytesIO(await resp.read()))
    text = "".join("".join(page.extract_text() for page in reader.pages).split())
    assert FOREIGN not in text.lower(), f"{url} shows Bravo's data: {text}"
    return text


def report(key: str, expect: Callable[[World], list[str]]) -> Check:
    """A report's rows, as JSON, CSV and PDF, are Alpha's (`key` of each row == `expect`), and
    asking for Bravo's object gives none."""
    async def check(w: World, role: str, path: str) -> None:
        rows = (await _get(w, role, path))["items"]
        assert [str(r[key]) for r in rows] == expect(w), rows
        assert [r[key] for r in _csv(await _get(w, role, f"{path}?format=csv"))] == expect(w)
        pdf = await _pdf_text(w, role, f"{path}?format=pdf")
        assert all(value in pdf for value in expect(w)) and f"{len(expect(w))}rows." in pdf, pdf
        assert (await _get(w, role, f"{path}?object_id={w.bravo.object_id}"))["items"] == []
        assert _csv(await _get(w, role, f"{path}?object_id={w.bravo.object_id}&format=csv")) == []
    return check


async def resolution_counts(w: World, role: str, path: str) -> None:
    """The counts per resolution cover Alpha's one alarm only, and none for Bravo's object."""
    def total(items: list[dict[str, Any]]) -> int:
        return sum(int(r["alarms"]) for r in items)
    assert total((await _get(w, role, path))["items"]) == 1
    assert total(_csv(await _get(w, role, f"{path}?format=csv"))) == 1
    assert total((await _get(w, role, f"{path}?object_id={w.bravo.object_id}"))["items"]) == 0


async def document_download(w: World, role: str, path: str) -> None:
    """Alpha's document downloads whole; Bravo's is hidden."""
    resp = await w.hub.client.get(path.format(id=w.alpha.document_id), headers=w.headers[role])
    assert resp.status == 200 and await resp.read() == _document_bytes(w.alpha)
    await _hidden(w, role, "GET", path, w.bravo.document_id)


async def holiday_list(w: World, role: str, path: str) -> None:
    """Alpha's holiday only; asking for those of Bravo's object is hidden as a missing object is."""
    page = await _get(w, role, path)
    assert [h["name"] for h in page["items"]] == ["alpha stocktaking"], page
    answers = []
    for object_id in (w.bravo.object_id, MISSING_ID):
        resp = await w.hub.client.get(f"{path}?object_id={object_id}", headers=w.headers[role])
        assert resp.status == 404, f"{role} {path}?object_id={object_id}: {resp.status}"
        answers.append((await resp.json())["error"]["message"])
    assert answers[0] == answers[1]


async def reveal(w: World, role: str, path: str) -> None:
    """Alpha's secret is revealed; Bravo's is hidden (not refused: its existence is not theirs)."""
    resp = await w.hub.client.post(path.format(id=w.alpha.secret_id), headers=w.headers[role], json=REVEAL_REASON)
    assert (await _ok(resp))["secret"] == "alpha recorder password"
    await _hidden(w, role, "POST", path, w.bravo.secret_id, REVEAL_REASON)


async def robot_list(w: World, role: str, path: str) -> None:
    """Alpha's robot only; asking for Bravo's object finds nothing."""
    page = await _get(w, role, path)
    assert [r["robotId"] for r in page["items"]] == [w.alpha.robot_id] and page["total"] == 1, page
    assert (await _get(w, role, f"{path}?objectId={w.bravo.object_id}"))["items"] == []


async def robot_telemetry(w: World, role: str, path: str) -> None:
    """Alpha's robot's samples; Bravo's robot is hidden."""
    since = (_now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ranged = f"{path}?since={since}"
    assert [s["pose"] for s in (await _get(w, role, ranged.format(id=w.alpha.robot_id)))["items"]] == [
        {"x": 1.0, "y": 2.0, "theta": 0.5}]
    await _hidden(w, role, "GET", ranged, w.bravo.robot_id)


async def robot_command(w: World, role: str, path: str) -> None:
    """Alpha's robot's command; Bravo's robot's is hidden as a missing robot's is."""
    got = await _get(w, role, path.format(id=w.alpha.robot_id, command_id=w.alpha.robot_command_id))
    assert got["reason"] == "alpha round", got
    answers = []
    for robot, command in ((w.bravo.robot_id, w.bravo.robot_command_id), (MISSING_ID, w.bravo.robot_command_id)):
        resp = await w.hub.client.get(path.format(id=robot, command_id=command), headers=w.headers[role])
        assert resp.status == 404, f"{role} {path} of {robot}: {resp.status}"
        answers.append((await resp.json())["error"]["message"])
    assert answers[0] == answers[1]
    resp = await w.hub.client.get(path.format(id=w.alpha.robot_id, command_id=w.bravo.robot_command_id),
                                  headers=w.headers[role])
    assert resp.status == 404  # Bravo's command under Alpha's robot: no such command of it


# --- the streams ----------------------------------------------------------------------------------

NextMessage = Callable[[], Awaitable[dict[str, Any]]]


async def _changes_until(next_message: NextMessage, cursor: int) -> list[dict[str, Any]]:
    """The changes received until a heartbeat at `cursor` or past it: every row up to there has
    then been sent or passed over for this client."""
    changes = []
    async with asyncio.timeout(20):
        while True:
            message = await next_message()
            assert message["type"] in ("change", "heartbeat"), message
            if message["type"] == "heartbeat" and message["cursor"] >= cursor:
                return changes
            if message["type"] == "change":
                changes.append(message)


def _visible(rows: list[asyncpg.Record], object_id: int, role: str, after: int, upto: int) -> list[int]:
    """The rows a stream owes the role: its object's, of the topics it sees; robot telemetry is
    live only, never caught up (hub.stream.delivery)."""
    sees_alarms = role in ROLE_MATRIX[("GET", "/api/v1/alarms")]
    sees_robots = role in ROLE_MATRIX[("GET", "/api/v1/robots")]
    return [r["sequence_id"] for r in rows if after < r["sequence_id"] <= upto and r["object_id"] == object_id
            and (sees_alarms or not r["topic"].startswith("alarm."))
            and (sees_robots or not r["topic"].startswith("robot.")) and r["topic"] != "robot.telemetry"]


@contextlib.asynccontextmanager
async def _websocket(w: World, role: str) -> AsyncIterator[NextMessage]:
    ticket = await _ok(await w.hub.client.post(TICKET[1], headers=w.headers[role]))
    async with w.hub.client.ws_connect(WS[1], params={"ticket": ticket["ticket"], "cursor": 0}) as ws:
        yield ws.receive_json


@contextlib.asynccontextmanager
async def _event_stream(w: World, role: str) -> AsyncIterator[NextMessage]:
    async with w.hub.client.get("/api/v1/events/stream", params={"cursor": 0}, headers=w.headers[role]) as resp:
        assert resp.status == 200

        async def next_event() -> dict[str, Any]:
            data = b""
            while (line := await resp.content.readline()) not in (b"\n", b""):
                if line.startswith(b"data: "):
                    data = line[len(b"data: "):]
            assert data, "the event stream ended"
            return json.loads(data)

        yield next_event


def stream(opener: Callable[[World, str], contextlib.AbstractAsyncContextManager[NextMessage]]) -> Check:
    """From cursor 0 the stream catches up with Alpha's rows only (those of its topics the role
    sees), then delivers Alpha's new rows live and none of Bravo's."""
    async def check(w: World, role: str, _path: str) -> None:
        caught_up_to = await w.db.fetchval(SQL_OUTBOX_HEAD)
        async with opener(w, role) as next_message:
            caught_up = await _changes_until(next_message, caught_up_to)
            await raise_alarm(w.bravo)
            await raise_alarm(w.alpha)
            live_to = await w.db.fetchval(SQL_OUTBOX_HEAD)
            live = await _changes_until(next_message, live_to)
        rows = await w.db.fetch(SQL_OUTBOX)
        assert {r["object_id"] for r in rows if r["sequence_id"] > caught_up_to} == {w.alpha.object_id,
                                                                                  w.bravo.object_id}
        for got, after, upto in ((caught_up, 0, caught_up_to), (live, caught_up_to, live_to)):
            expected = _visible(rows, w.alpha.object_id, role, after, upto)
            assert expected and [c["cursor"] for c in got] == expected, (role, got, expected)
            assert FOREIGN not in json.dumps(got).lower()
    return check


# --- the walk's table -----------------------------------------------------------------------------

SCOPED: dict[Route, Check] = {
    ("GET", "/api/v1/alarms"): alarm_list,
    ("GET", "/api/v1/alarms/{id}"): by_id(
        lambda s: s.alarm_id,
        lambda b: b["object_name"] == "Object alpha" and len(b["events"]) > 0
        and [d["entry"] for d in b["dispatch_log"]] == ["alpha patrol sent"]),
    ("GET", "/api/v1/objects"): object_list,
    ("GET", "/api/v1/objects/{id}"): by_id(
        lambda s: s.object_id,
        lambda b: _names(b["contacts"]) == ["alpha keyholder"] and len(b["procedures"]) == 1
        and [p["source"] for p in b["panels"]] == ["panel-alpha"]),
    ("GET", "/api/v1/objects/{id}/contacts"): by_id(lambda s: s.object_id, lambda b: _names(b) == ["alpha keyholder"]),
    ("GET", "/api/v1/objects/{id}/procedures"): by_id(
        lambda s: s.object_id, lambda b: [p["steps"] for p in b] == ["call the alpha keyholder"]),
    ("GET", "/api/v1/objects/{id}/secrets"): by_id(
        lambda s: s.object_id, lambda b: [x["label"] for x in b] == ["alpha recorder"]),
    ("GET", "/api/v1/objects/{id}/documents"): by_id(
        lambda s: s.object_id, lambda b: [d["filename"] for d in b] == ["alpha-site.png", "alpha-plan.pdf"]),
    ("GET", "/api/v1/documents/{id}"): document_download,
    ("GET", "/api/v1/panels/{id}"): by_id(
        lambda s: s.panel_id,
        lambda b: b["link_status"] == "CONNECTED" and _names(b["zones"]) == ["alpha door"]
        and _names(b["partitions"]) == ["alpha floor"] and _names(b["outputs"]) == ["alpha siren"]),
    ("GET", "/api/v1/panels/{id}/zones"): by_id(lambda s: s.panel_id, lambda b: _names(b) == ["alpha door"]),
    ("GET", "/api/v1/panels/{id}/partitions"): by_id(lambda s: s.panel_id, lambda b: _names(b) == ["alpha floor"]),
    ("GET", "/api/v1/panels/{id}/outputs"): by_id(lambda s: s.panel_id, lambda b: _names(b) == ["alpha siren"]),
    ("GET", "/api/v1/panels/{id}/state"): by_id(
        lambda s: s.panel_id, lambda b: {e["element"] for e in b["elements"]} == {"zone", "partition", "output"}),
    ("GET", "/api/v1/panels/{id}/history"): by_id(lambda s: s.panel_id, lambda b: b["total"] >= 3),
    ("GET", "/api/v1/reports/alarms"): report("id", lambda w: [str(w.alpha.alarm_id)]),
    ("GET", "/api/v1/reports/response-times"): report("operator", lambda w: [w.alpha.operator]),
    ("GET", "/api/v1/reports/resolutions"): resolution_counts,
    ("GET", "/api/v1/reports/auto-arm"): report("object_id", lambda w: [str(w.alpha.object_id)]),
    ("GET", "/api/v1/panels/{id}/auto-arm"): by_id(
        lambda s: s.panel_id, lambda b: [x["at_time"] for x in b] == ["22:00"]),
    ("GET", "/api/v1/auto-arm/{id}"): by_id(lambda s: s.schedule_id, lambda b: b["at_time"] == "22:00"),
    ("GET", "/api/v1/panels/{id}/auto-arm/runs"): by_id(
        lambda s: s.panel_id, lambda b: [r["outcome"] for r in b["items"]] == ["MISSED"]),
    ("GET", "/api/v1/panels/{id}/supervision"): by_id(
        lambda s: s.panel_id, lambda b: [x["close_by"] for x in b] == ["22:15"]),
    ("GET", "/api/v1/supervision/{id}"): by_id(lambda s: s.supervision_id, lambda b: b["open_from"] == "07:00"),
    ("GET", "/api/v1/holidays"): holiday_list,
    ("GET", "/api/v1/panels/{id}/commands"): by_id(
        lambda s: s.panel_id, lambda b: [c["reason"] for c in b["items"]] == ["alpha closing"]),
    ("GET", "/api/v1/commands/{id}"): by_id(lambda s: s.command_id, lambda b: b["reason"] == "alpha closing"),
    ("GET", "/api/v1/alarms/{id}/timeline"): by_id(
        lambda s: s.alarm_id, lambda b: any("alpha patrol sent" in item["text"] for item in b["items"])),
    ("GET", "/api/v1/edges"): edge_list,
    ("GET", "/api/v1/robots"): robot_list,
    ("GET", "/api/v1/robots/{id}"): by_id(
        lambda s: s.robot_id,
        lambda b: b["identity"]["identity"]["name"] == "alpha patrol" and b["state"] == "IDLE"),
    ("GET", "/api/v1/robots/{id}/identity"): by_id(
        lambda s: s.robot_id, lambda b: b["latest"]["identity"]["name"] == "alpha patrol"),
    ("GET", "/api/v1/robots/{id}/capability"): by_id(
        lambda s: s.robot_id, lambda b: b["latest"]["capability"]["heartbeatIntervalS"] == 5),
    ("GET", "/api/v1/robots/{id}/telemetry"): robot_telemetry,
    ("GET", "/api/v1/robots/{id}/lease"): by_id(
        lambda s: s.robot_id, lambda b: b["lease"]["fencingToken"] == 1),
    ("GET", "/api/v1/robots/{id}/commands"): by_id(
        lambda s: s.robot_id,
        lambda b: [c["commandType"] for c in b["items"]] == ["settings.desired", "goto"]),
    ("GET", "/api/v1/robots/{id}/commands/{command_id}"): robot_command,
    ("GET", "/api/v1/robots/{id}/settings/desired"): by_id(
        lambda s: s.robot_id, lambda b: b["desired"]["settings"] == {"maxSpeedMps": 1.0}),
    ("GET", "/api/v1/robots/{id}/settings/reported"): by_id(
        lambda s: s.robot_id, lambda b: b["reported"]["settings"] == {"cameraOn": True}),
    ("GET", "/api/v1/objects/{id}/robot-plan"): by_id(
        lambda s: s.object_id, lambda b: b["plan"]["filename"] == "alpha-site.png"),
    ("POST", "/api/v1/secrets/{id}/reveal"): reveal,
    WS: stream(_websocket),
    ("GET", "/api/v1/events/stream"): stream(_event_stream),
}

ADMINS_ONLY = "no assigned-only role may call it"
NOT_SCOPED: dict[Route, str] = {
    ("GET", "/api/v1/users"): ADMINS_ONLY,
    ("GET", "/api/v1/panels/{id}/user-codes"): ADMINS_ONLY,
    ("GET", "/api/v1/users/{id}"): ADMINS_ONLY,
    ("GET", "/api/v1/audit"): ADMINS_ONLY,
    ("GET", "/api/v1/sms-archive"): ADMINS_ONLY,
    ("GET", "/api/v1/sms-archive/{id}"): ADMINS_ONLY,
    ("GET", "/api/v1/auth/me"): "the caller's own account",
    ("POST", "/api/v1/auth/password"): "the caller's own password",
    ("PATCH", "/api/v1/auth/me/settings"): "the caller's own settings",
    ("GET", "/api/v1/meta/resolutions"): "a fixed code list, no object data",
    ("GET", "/api/v1/meta/call-outcomes"): "a fixed code list, no object data",
    ("GET", "/api/v1/system/mode"): "the centre's mode and failing dependencies, no object data",
    TICKET: "a ticket for the caller; what the stream then carries is walked under GET /api/v1/ws",
    ("GET", "/api/v1/auth/jwks"): "public: signing keys, no object data",
    ("GET", "/.well-known/jwks.json"): "public: signing keys, no object data",
    ("GET", "/api/v1/openapi.json"): "public: the API's description",
    ("GET", "/api/v1/health"): "public: liveness",
    ("GET", "/healthz"): "public: liveness",
    ("GET", "/readyz"): "public: readiness and task health",
    ("GET", "/metrics"): "public: route templates and counts, no object data",
    ("GET", "/"): "public: a redirect",
    ("GET", "/console"): "public: a redirect",
    ("GET", "/console/{tail}"): "public: static files",
}


def callers(route: Route) -> frozenset[str]:
    """Who may call `route`; the WebSocket is open to whoever may take a ticket for it."""
    return ROLE_MATRIX[TICKET] if route == WS else ROLE_MATRIX.get(route, frozenset())


# --- the fixture ----------------------------------------------------------------------------------

async def raise_alarm(side: Side) -> None:
    """A zone alarm at the side's panel: an alarm row and a panel state row in the outbox."""
    await side.site.ingest(side.site.env("satel.zone.alarm", {"zone": 1}, _now(), source=f"panel-{side.name}"))


def _document_bytes(side: Side) -> bytes:
    return f"%PDF-1.7 the {side.name} floor plan".encode()


async def _upload_document(w: World, side: Side, data: bytes | None = None, filename: str = "plan.pdf",
                           content_type: str = "application/pdf") -> int:
    form = FormData()
    form.add_field("file", _document_bytes(side) if data is None else data, filename=f"{side.name}-{filename}",
                   content_type=content_type)
    resp = await w.hub.client.post(f"/api/v1/objects/{side.object_id}/documents", data=form, headers=w.headers[M])
    assert resp.status == 201, await resp.text()
    return int((await resp.json())["id"])


async def _build_side(w: World, side: Side, operator: dict[str, str]) -> None:
    name, source = side.name, f"panel-{side.name}"
    await side.site.setup({source: f"Object {name}"})
    side.object_id, side.panel_id = side.site.objects[f"Object {name}"], side.site.panels[source]
    await w.db.execute(SQL_TIE_EDGE, side.edge_id, side.object_id)
    objects, panels = f"/api/v1/objects/{side.object_id}", f"/api/v1/panels/{side.panel_id}"
    await _as_master(w, "POST", f"{objects}/contacts", {"name": f"{name} keyholder"})
    await _as_master(w, "POST", f"{objects}/procedures", {"alarm_type": "BURGLARY", "steps": f"call the {name} keyholder"})
    side.secret_id = (await _as_master(w, "POST", f"{objects}/secrets",
                                       {"label": f"{name} recorder", "secret": f"{name} recorder password"}))["id"]
    side.document_id = await _upload_document(w, side)
    for plural, label in (("zones", "door"), ("partitions", "floor"), ("outputs", "siren")):
        await _as_master(w, "POST", f"{panels}/{plural}", {"number": 1, "name": f"{name} {label}"})
    side.schedule_id = (await _as_master(w, "POST", f"{panels}/auto-arm", {
        "partition": 1, "at_time": "22:00", "days": [1, 2, 3, 4, 5], "time_zone": "Europe/Warsaw"}))["id"]
    side.supervision_id = (await _as_master(w, "POST", f"{panels}/supervision", {
        "partition": 1, "time_zone": "Europe/Warsaw", "days": [1, 2, 3, 4, 5], "open_from": "07:00",
        "open_until": "09:00", "close_by": "22:15"}))["id"]
    await _as_master(w, "POST", "/api/v1/holidays", {"day": "2026-12-24", "object_id": side.object_id,
                                                     "name": f"{name} stocktaking"})
    await w.db.execute(SQL_MISSED_RUN, side.schedule_id, side.panel_id, side.object_id, _now())
    side.command_id = (await _as_master(w, "POST", f"{panels}/commands", {
        "type": "arm", "partitions": [1], "user_code": "1234", "reason": f"{name} closing"}))["id"]
    at = _now()
    await side.site.ingest(side.site.env("edge.link.up", {}, at, source=source),
                           side.site.env("satel.partition.armed", {"partition": 1, "mode": 0}, at, source=source),
                           side.site.env("satel.output.on", {"output": 1}, at, source=source))
    await _add_robot(w, side)
    await raise_alarm(side)
    side.alarm_id = await w.db.fetchval(SQL_BUNDLE_OF, side.object_id)
    claimed = await w.hub.client.post(f"/api/v1/alarms/{side.alarm_id}/claim", json={"version": 1}, headers=operator)
    side.operator = (await claimed.json())["claimed_by"]
    entry = await w.hub.client.post(f"/api/v1/alarms/{side.alarm_id}/dispatch-log", headers=operator,
                                    json={"entry": f"{name} patrol sent"})
    assert entry.status == 201
    current = await _as_master(w, "GET", objects)
    await _as_master(w, "POST", f"{objects}/service-mode",
                     {"version": current["version"], "on": True, "reason": f"{name} maintenance"})


async def _add_robot(w: World, side: Side) -> None:
    """A robot on the side's edge that reported itself, a sample and its settings, with a lease,
    a command and desired settings given by the master, and the site plan it is drawn on."""
    robot, at = side.robot_id, _now()
    await side.site.ingest(rb.identity(side.site, robot, name=f"{side.name} patrol", at=at),
                           rb.capability(side.site, robot, at=at), rb.status(side.site, robot, at=at),
                           rb.telemetry(side.site, robot, 1.0, 2.0, at=at),
                           rb.settings_reported(side.site, robot, {"cameraOn": True}, at=at))
    robots = f"/api/v1/robots/{robot}"
    lease = await _as_master(w, "POST", f"{robots}/lease", {})
    side.robot_command_id = (await _as_master(w, "POST", f"{robots}/commands", {
        "commandType": "goto", "payload": {"x": 1, "y": 2}, "leaseId": lease["leaseId"],
        "reason": f"{side.name} round"}))["commandId"]
    await _as_master(w, "PUT", f"{robots}/settings/desired", {"settings": {"maxSpeedMps": 1.0},
                                                              "leaseId": lease["leaseId"]})
    site_plan = await _upload_document(w, side, png(8, 4), "site.png", "image/png")
    await _as_master(w, "PUT", f"/api/v1/objects/{side.object_id}/robot-plan",
                     {"documentId": site_plan, "widthM": 40, "heightM": 20})


async def _report_links(db: asyncpg.Pool, edge_id: str) -> None:
    """The edge's status report, as the edge sends it: a link for every panel it runs."""
    links = [LinkReport("satel", r["source"], "up", _now()) for r in await db.fetch(SQL_PANELS_ON, edge_id)]
    report = EdgeStatusReport(edge=edge_id, epoch="a" * 32, run=1, n=1, sent_at=_now(), interval_s=30.0,
                              lanes={"alarm": LaneBacklog(0)}, links=links, journal_bytes=0, version="test")
    assert await store_report(db, report, encode_report(report))


async def _assign(w: World, email: str, role: str, object_id: int) -> None:
    """A user of `role` assigned to `object_id`, through the API as an administrator would."""
    w.headers[role] = await w.hub.user(email, role)
    user_id = await w.db.fetchval(SQL_USER_ID, email)
    version = (await _as_master(w, "GET", f"/api/v1/users/{user_id}"))["version"]
    await _as_master(w, "PUT", f"/api/v1/users/{user_id}/objects", {"version": version, "object_ids": [object_id]})


@pytest.fixture
async def world(db: asyncpg.Pool, db_dsn: str, tmp_path: Path) -> AsyncIterator[World]:
    async with serving_hub(db, db_dsn, tmp_path) as hub:
        w = World(hub, db, Side("alpha", Site(db, "edge-alpha")), Side("bravo", Site(db, "edge-bravo")))
        w.headers[M] = await hub.user("master@example.com", M)
        for side in (w.alpha, w.bravo):
            await _build_side(w, side, await hub.user(f"op-{side.name}@example.com", O))
        # One box can run panels of more than one object: Alpha's edge runs one of Bravo's too.
        await _as_master(w, "POST", "/api/v1/panels", {"object_id": w.bravo.object_id, "edge_id": w.alpha.edge_id,
                                                       "source": "panel-bravo-annex"})
        await w.alpha.site.ingest(w.alpha.site.env("satel.zone.alarm", {"zone": 1}, _now(), source="panel-bravo-annex"))
        for side in (w.alpha, w.bravo):
            await _report_links(db, side.edge_id)
        for role in ASSIGNED_ONLY:
            await _assign(w, f"{role.lower()}@example.com", role, w.alpha.object_id)
        yield w


# --- the tests ------------------------------------------------------------------------------------

async def test_every_route_that_shows_data_is_walked_or_marked_with_a_reason(
        db: asyncpg.Pool, db_dsn: str, tmp_path: Path) -> None:
    async with serving_hub(db, db_dsn, tmp_path) as hub:
        needed = {r for r in app_routes(hub.app) if r[0] == "GET"}
    needed |= {r for r, roles in ROLE_MATRIX.items() if roles & set(ASSIGNED_ONLY)}
    assert not set(SCOPED) & set(NOT_SCOPED)
    assert set(SCOPED) | set(NOT_SCOPED) == needed
    for route, why in NOT_SCOPED.items():
        if why == ADMINS_ONLY:
            assert not callers(route) & set(ASSIGNED_ONLY), route
    for route in SCOPED:
        assert callers(route) & set(ASSIGNED_ONLY), f"{route} is walked but no assigned-only role may call it"


@pytest.mark.parametrize("role", ASSIGNED_ONLY)
async def test_an_assigned_user_sees_only_their_objects_everywhere(world: World, role: str) -> None:
    walked = []
    for route, check in SCOPED.items():
        if role in callers(route):
            await check(world, role, route[1])
            walked.append(route)
    assert walked, role
