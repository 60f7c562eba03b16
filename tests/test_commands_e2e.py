"""Panel commands from the hub, end to end with real processes (issue 13): the hub's API →
PostgreSQL and its outbox → VIGIL_COMMANDS → the edge's leaf → a real `python -m edge run` → the
emulated panel → `cmd.result` in the journal → back to the hub. Each test gives commands as an
admin would and checks what the panel did and what the hub shows."""
from __future__ import annotations

import asyncio
import json
import signal
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, AsyncIterator

import msgspec
import pytest

from edge.config import EdgeConfig
from edge.local_auth import read_cli_token, token_path
from firmware_bridges.satel.emulator import SatelEmulator, catalog
from firmware_bridges.satel.emulator.site import SAMPLE_USER_CODE
from firmware_bridges.satel.protocol import ResultCode
from hub.commands.domain import CommandRequest, check_request
from hub.commands.repository import Requester, create_command, panel_facts
from hub.config import HubConfig
from shared import subjects
from shared.commands import PanelCommand, Source, encode_command
from shared.sealing import seal
from shared.signing import Signer
from shared.process import ManagedProcess
from support.topology import Topology
from support.waiting import wait_until

pytestmark = pytest.mark.slow

PANEL = "panel-1"
MASTER = ("master@example.com", "commands e2e master password")
FINAL = {"ACK", "NACK", "TIMEOUT", "EXPIRED"}


def _panels(port: int, **overrides: object) -> str:
    return json.dumps([{"id": PANEL, "host": "127.0.0.1", "port": port, "reconnect_min_s": 0.05,
                        "reconnect_max_s": 0.5, "request_timeout_s": 1.0, "poll_interval_s": 0.1, **overrides}])


def _http(method: str, url: str, body: dict[str, Any] | None = None, token: str | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, Any]:
    sent = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {}) | (headers or {})
    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body is not None else None,
                                     headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@dataclass
class Site:
    """A hub, an edge with one emulated panel, and an admin's token."""

    topology: Topology
    emulator: SatelEmulator
    hub: HubConfig
    hub_proc: ManagedProcess
    edge: ManagedProcess | None
    panel_id: int
    token: str
    edge_config: EdgeConfig | None = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.hub.http_port}/api/v1"

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> tuple[int, Any]:
        return await asyncio.to_thread(_http, method, self.api + path, body, self.token, headers)

    async def give(self, **body: Any) -> dict[str, Any]:
        status, command = await self.call("POST", f"/panels/{self.panel_id}/commands", {"reason": "e2e", **body})
        assert status == 202, command
        assert command["status"] == "PENDING"
        return command

    async def settled(self, command_id: str, timeout: float = 60) -> dict[str, Any]:
        """The command once it has a final status (never stuck in ARMING)."""
        result: dict[str, Any] = {}

        async def final() -> bool:
            status, body = await self.call("GET", f"/commands/{command_id}")
            assert status == 200, body
            result.update(body)
            return body["status"] in FINAL

        await wait_until(final, timeout=timeout, what=f"command {command_id} settled")
        return result

    async def partition_armed(self, number: int) -> bool | None:
        raw = await self.topology.pool.fetchval(
            "SELECT state FROM panel_state WHERE panel_id = $1 AND element = 'partition' AND number = $2",
            self.panel_id, number)
        return msgspec.json.decode(raw).get("armed") if raw else None

    async def results(self, command_id: str) -> int:
        """How many cmd.result events the hub stored for a command."""
        return await self.topology.pool.fetchval(
            "SELECT count(*) FROM events WHERE kind = 'cmd.result' AND corr = $1", command_id)


async def _login(hub: HubConfig) -> str:
    status, body = await asyncio.to_thread(_http, "POST", f"http://127.0.0.1:{hub.http_port}/api/v1/auth/login",
                                           {"email": MASTER[0], "password": MASTER[1]})
    assert status == 200, body
    return body["access_token"]


async def _start(topology: Topology, emulator: SatelEmulator, *, start_edge: bool = True,
                 hub_overrides: dict[str, Any] | None = None, **panel: object) -> Site:
    config = topology.edge_config()
    await topology.enrol(config)
    object_id = await topology.pool.fetchval("INSERT INTO objects (name) VALUES ('Jeweller Nowak') RETURNING id")
    panel_id = await topology.pool.fetchval(
        "INSERT INTO panels (object_id, edge_id, source) VALUES ($1, 'site-1', $2) RETURNING id", object_id, PANEL)
    await topology.pool.execute("INSERT INTO partitions (panel_id, number, name) VALUES ($1, 1, 'Shop'), ($1, 2, 'Office')",
                                panel_id)
    hub = topology.hub_config(auth={"secret_file": str(topology.root / "hub-secret.key"), "master_email": MASTER[0],
                                    "master_password": MASTER[1]}, **(hub_overrides or {}))
    hub_proc = await topology.spawn_hub(hub)
    site = Site(topology, emulator, hub, hub_proc, None, panel_id, await _login(hub))
    if start_edge:
        await _start_edge(site, **panel)
    return site


async def _start_edge(site: Site, name: str = "edge", **panel: object) -> None:
    site.edge_config = config = site.topology.edge_config()
    site.edge = await site.topology.spawn_edge(config, name, VIGIL_EDGE_SATEL_PANELS=_panels(site.emulator.port, **panel))

    async def connected() -> bool:
        return await site.topology.pool.fetchval("SELECT link_status FROM panels WHERE id = $1",
                                                 site.panel_id) == "CONNECTED"

    await wait_until(connected, timeout=60, what="the panel's link up at the hub")


@pytest.fixture
async def emulator() -> AsyncIterator[SatelEmulator]:
    async with SatelEmulator(port=0) as emu:
        yield emu


async def test_arm_and_disarm_from_the_hub_reach_the_panel_and_come_back(topology: Topology,
                                                                        emulator: SatelEmulator) -> None:
    """Arm with a typed code, disarm with the stored one: each ACKs, the panel does it, the hub
    shows the partition's new state, and no code is anywhere in the hub's database."""
    site = await _start(topology, emulator)
    armed = await site.give(type="arm", partitions=[1], mode=0, user_code=SAMPLE_USER_CODE, reason="closing time")
    assert armed["transitional"] == "ARMING" and armed["code_from"] == "TYPED"
    done = await site.settled(armed["id"])
    assert done["status"] == "ACK" and done["result_code"] == 0 and done["transitional"] is None, done
    assert done["sent_at"] and done["result_at"] and not done["late"]
    assert emulator.panel.partition(1).armed_mode == 0
    await wait_until(lambda: site.partition_armed(1), timeout=30, what="partition 1 armed at the hub")

    status, _ = await site.call("PUT", f"/panels/{site.panel_id}/user-codes/0", {"code": SAMPLE_USER_CODE})
    assert status == 200
    disarm = await site.give(type="disarm", partitions=[1], reason="cleaner arrives")
    assert disarm["code_from"] == "STORED" and disarm["transitional"] == "DISARMING"
    assert (await site.settled(disarm["id"]))["status"] == "ACK"
    assert emulator.panel.partition(1).armed_mode is None

    async def disarmed() -> bool:
        return await site.partition_armed(1) is False

    await wait_until(disarmed, timeout=30, what="partition 1 disarmed at the hub")
    status, page = await site.call("GET", f"/panels/{site.panel_id}/commands")
    assert [c["id"] for c in page["items"]] == [disarm["id"], armed["id"]]
    shown = await topology.pool.fetchval(
        "SELECT coalesce(nullif(display_name, ''), email) FROM users WHERE email = $1", MASTER[0])
    assert page["items"][0]["requested_name"] == shown, "named as people know them"
    # Audited twice each (requested at the hub, result from the edge), never with the code.
    audit = await topology.pool.fetch(
        "SELECT action, details::text AS details FROM audit_log WHERE action LIKE 'panel.command%' ORDER BY id")
    assert [a["action"] for a in audit].count("panel.command.requested") == 2
    assert [a["action"] for a in audit].count("panel.command") == 2
    await _no_code_anywhere(topology)


async def _no_code_anywhere(topology: Topology) -> None:
    """The user code is in no text or JSON column of the hub's database (it travels sealed)."""
    columns = await topology.pool.fetch(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND data_type IN ('text', 'jsonb', 'json', 'character varying')")
    for c in columns:
        hits = await topology.pool.fetchval(
            f'SELECT count(*) FROM "{c["table_name"]}" WHERE "{c["column_name"]}"::text LIKE $1', f"%{SAMPLE_USER_CODE}%")
        assert hits == 0, f"{c['table_name']}.{c['column_name']} holds the user code"


async def test_a_wrong_code_and_a_violated_zone_are_nacked_and_force_arms(topology: Topology,
                                                                         emulator: SatelEmulator) -> None:
    site = await _start(topology, emulator)
    wrong = await site.settled((await site.give(type="arm", partitions=[1], user_code="9999"))["id"])
    assert wrong["status"] == "NACK" and wrong["result_code"] == ResultCode.USER_CODE_NOT_FOUND
    assert wrong["result_reason"] == "user code not found"
    emulator.violate_zone(1)  # zone 1 is in partition 1
    refused = await site.settled((await site.give(type="arm", partitions=[1], user_code=SAMPLE_USER_CODE))["id"])
    assert refused["status"] == "NACK" and refused["result_code"] == ResultCode.CANNOT_ARM_USE_FORCE
    assert "force arming is possible" in refused["result_reason"]
    assert emulator.panel.partition(1).armed_mode is None
    forced = await site.settled((await site.give(type="arm", partitions=[1], force=True,
                                                 user_code=SAMPLE_USER_CODE))["id"])
    assert forced["status"] == "ACK" and emulator.panel.partition(1).armed_mode == 0


async def test_an_unanswered_command_is_a_timeout_and_the_link_comes_back(topology: Topology,
                                                                           emulator: SatelEmulator) -> None:
    site = await _start(topology, emulator, poll_interval_s=5.0)
    emulator.set_response_delay(2.0)  # beyond the link's 1 s request timeout
    late = await site.settled((await site.give(type="outputs_on", outputs=[1], user_code=SAMPLE_USER_CODE))["id"])
    assert late["status"] == "TIMEOUT" and "may or may not" in late["result_reason"], late
    emulator.set_response_delay(0)

    async def reconnected() -> bool:  # the unanswered request closed the connection
        return await topology.pool.fetchval("SELECT count(*) FROM events WHERE kind = 'edge.link.up'") >= 2

    await wait_until(reconnected, timeout=60, what="the link back up after the timeout")
    again = await site.settled((await site.give(type="outputs_on", outputs=[1], user_code=SAMPLE_USER_CODE))["id"])
    assert again["status"] == "ACK"


async def test_a_command_older_than_its_expiry_after_a_wan_cut_is_never_executed(topology: Topology,
                                                                                emulator: SatelEmulator) -> None:
    """The WAN is cut for longer than the command's expiry: the hub gives up (TIMEOUT), the edge
    gets it when the link returns, does not run it, and its EXPIRED replaces the hub's guess."""
    site = await _start(topology, emulator, hub_overrides={"commands": {"settle_grace_s": 5}})
    assert topology.proxy is not None
    topology.proxy.cut()
    command = await site.give(type="arm", partitions=[1], user_code=SAMPLE_USER_CODE, expires_in_s=5)

    async def status() -> str:
        return (await site.call("GET", f"/commands/{command['id']}"))[1]["status"]

    async def hub_gave_up() -> bool:
        return await status() == "TIMEOUT"

    await wait_until(hub_gave_up, timeout=60, what="the hub's TIMEOUT after expiry + grace")
    topology.proxy.restore()
    done = await site.settled(command["id"])

    async def expired() -> bool:
        return await status() == "EXPIRED"

    await wait_until(expired, timeout=60, what="the edge's EXPIRED after the WAN returns")
    done = (await site.call("GET", f"/commands/{command['id']}"))[1]
    assert done["late"] and "after it expired" in done["result_reason"]
    assert emulator.panel.partition(1).armed_mode is None, "an expired command must never run"
    assert await site.results(command["id"]) == 1


async def test_a_hub_killed_after_commit_or_after_publish_loses_and_doubles_nothing(topology: Topology,
                                                                                    emulator: SatelEmulator) -> None:
    """Commands committed while no hub publishes are sent when one comes back; a command published
    whose outbox row survived (a hub killed between publish and commit) is published again and
    still runs once."""
    site = await _start(topology, emulator)
    site.hub_proc.send_signal(signal.SIGKILL)
    assert await asyncio.to_thread(site.hub_proc.proc.wait, 30) == -signal.SIGKILL  # type: ignore[union-attr]
    # What the API commits, written while no hub process runs (the crash right after COMMIT).
    now = datetime.now(timezone.utc)
    async with topology.pool.acquire() as conn, conn.transaction():
        panel = await panel_facts(conn, site.panel_id)
        first = await create_command(conn, panel, check_request(CommandRequest("arm", "crash 1", partitions=(1,))),
                                     SAMPLE_USER_CODE, "TYPED", Requester("user:1", "test"), now)
        second = await create_command(conn, panel, check_request(CommandRequest("outputs_on", "crash 2", outputs=(2,))),
                                      SAMPLE_USER_CODE, "TYPED", Requester("user:1", "test"), now)
    # The second was published already when the hub died: JetStream has it, the outbox row too.
    hub_nats = await topology.connect_hub()
    try:
        row = await topology.pool.fetchrow("SELECT subject, payload FROM command_outbox WHERE command_id = $1",
                                           second["id"])
        await hub_nats.jetstream().publish(row["subject"], bytes(row["payload"]),
                                           headers={subjects.H_MSG_ID: str(second["id"])})
    finally:
        await hub_nats.close()
    site.hub_proc = await topology.spawn_hub(site.hub, "hub-2")
    site.token = await _login(site.hub)
    for command in (first, second):
        assert (await site.settled(str(command["id"])))["status"] == "ACK"
    assert emulator.panel.partition(1).armed_mode == 0 and 2 in emulator.panel.outputs_on()
    # Once each: one result event per command, and the panel logged one arming.
    for command in (first, second):
        assert await site.results(str(command["id"])) == 1
    assert not await topology.pool.fetchval("SELECT count(*) FROM command_outbox")


def _wire(edge_key: bytes, *, panel: str = PANEL, type_: str = "arm", items: dict[str, list[int]] | None = None,
          expires_in_s: float = 60, seal_key: bytes | None = None, code: str = SAMPLE_USER_CODE) -> PanelCommand:
    """A command as the hub publishes it, for tests that put one into VIGIL_COMMANDS themselves."""
    command_id = str(uuid.uuid4())
    now = datetime.now(timezone.utc)
    return PanelCommand(id=command_id, edge="site-1", panel=panel, type=type_, source=Source.MANUAL,  # type: ignore[arg-type]
                        who="user:1", issued_at=now, expires_at=now + timedelta(seconds=expires_in_s),
                        sealed_code=seal(seal_key or edge_key, code.encode(), command_id.encode()),
                        **(items or {"partitions": [1]}))


async def _publish(topology: Topology, *commands: PanelCommand, copies: int = 1) -> None:
    """Publish each command `copies` times, each copy under a new message id (JetStream's
    de-duplication does not see them as one), and wait until the edge has taken them all."""
    hub_nats = await topology.connect_hub()
    js = hub_nats.jetstream()
    try:
        for command in commands:
            for _ in range(copies):
                await js.publish(subjects.edge_commands("site-1"), encode_command(command),
                                 headers={subjects.H_MSG_ID: str(uuid.uuid4())})

        async def drained() -> bool:
            info = await js.consumer_info(subjects.COMMANDS_STREAM, subjects.command_consumer("site-1"))
            return info.num_pending == 0 and info.num_ack_pending == 0

        await wait_until(drained, timeout=60, what="every copy taken and acknowledged by the edge")
    finally:
        await hub_nats.close()


async def _result_bodies(topology: Topology, command_id: str) -> list[dict[str, Any]]:
    async def stored() -> bool:
        return await topology.pool.fetchval("SELECT count(*) FROM events WHERE kind = 'cmd.result' AND corr = $1",
                                            command_id) > 0

    await wait_until(stored, timeout=60, what=f"the result of {command_id} at the hub")
    return [msgspec.json.decode(r["body"]) for r in await topology.pool.fetch(
        "SELECT body::text AS body FROM events WHERE kind = 'cmd.result' AND corr = $1", command_id)]


async def test_a_redelivered_command_runs_once(topology: Topology, emulator: SatelEmulator) -> None:
    """The same command delivered twice (an ack lost on the WAN; here published again past
    JetStream's de-duplication) runs on the panel once: the second copy is acknowledged as done."""
    site = await _start(topology, emulator)
    edge_key = bytes(await topology.pool.fetchval("SELECT public_key FROM edges WHERE edge_id = 'site-1'"))
    command = _wire(edge_key)
    await _publish(topology, command, copies=3)
    [result] = await _result_bodies(topology, command.id)
    assert result["outcome"] == "ACK"
    assert sum(1 for r in emulator.panel.events.records() if r.code == catalog.ARMING and r.restore) == 1, "armed once"
    log = (topology.root / "run" / "edge.log").read_text()
    assert log.count("delivered again; it ran already") == 2
    # The box's own page says commands reach it, and how the last one ended.
    assert site.edge_config is not None
    status = await asyncio.to_thread(_edge_status, site.edge_config)
    assert status["commands"]["pulling"] is True and status["commands"]["running"] == 0
    assert status["commands"]["last_result"] == {"id": command.id, "type": "arm", "panel": PANEL, "outcome": "ACK"}


def _edge_status(config: EdgeConfig) -> Any:
    """The agent's status, asked as the on-box tools ask it (with its token file)."""
    token = read_cli_token(token_path(config.data_dir))
    request = urllib.request.Request(f"http://127.0.0.1:{config.http_port}/api/v1/status",
                                     headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


async def test_the_edge_refuses_what_is_not_its_own_or_not_sealed_for_it(topology: Topology,
                                                                         emulator: SatelEmulator) -> None:
    """A command for a panel the box does not own, one whose code was sealed to another key, and
    one already past its expiry: none reaches the panel, each has its result."""
    await _start(topology, emulator)
    edge_key = bytes(await topology.pool.fetchval("SELECT public_key FROM edges WHERE edge_id = 'site-1'"))
    foreign = _wire(edge_key, panel="panel-9")
    other_key = _wire(edge_key, seal_key=Signer.generate().public_raw)
    stale = _wire(edge_key, expires_in_s=-1)
    await _publish(topology, foreign, other_key, stale)
    [r1] = await _result_bodies(topology, foreign.id)
    assert r1["outcome"] == "NACK" and "not on edge site-1" in r1["reason"]
    [r2] = await _result_bodies(topology, other_key.id)
    assert r2["outcome"] == "NACK" and "not sealed for this edge" in r2["reason"]
    [r3] = await _result_bodies(topology, stale.id)
    assert r3["outcome"] == "EXPIRED"
    assert not any(r.code == catalog.ARMING and r.restore for r in emulator.panel.events.records())


async def test_an_edge_killed_while_the_panel_acts_never_runs_the_command_again(topology: Topology,
                                                                                emulator: SatelEmulator) -> None:
    """SIGKILL the agent after the command reached the panel and before its result was journaled:
    JetStream delivers it again to the restarted agent, which does not run it a second time and
    reports TIMEOUT (the panel may have acted — here it did)."""
    site = await _start(topology, emulator, hub_overrides={"commands": {"ack_wait_s": 5}}, poll_interval_s=5.0)
    emulator.set_response_delay(0.8)  # inside the link's 1 s timeout: time to kill the agent
    before = emulator.server.stats.frames_received
    command = await site.give(type="arm", partitions=[1], user_code=SAMPLE_USER_CODE)

    async def at_the_panel() -> bool:
        return any(r.code == catalog.ARMING and r.restore for r in emulator.panel.events.records())

    await wait_until(at_the_panel, timeout=30, what="the arm at the panel")
    assert site.edge is not None
    site.edge.send_signal(signal.SIGKILL)
    assert await asyncio.to_thread(site.edge.proc.wait, 30) == -signal.SIGKILL  # type: ignore[union-attr]
    assert emulator.server.stats.frames_received > before
    emulator.set_response_delay(0)
    await _start_edge(site, "edge-2", poll_interval_s=5.0)
    done = await site.settled(command["id"], timeout=120)
    assert done["status"] == "TIMEOUT" and "stopped while it ran" in done["result_reason"], done
    assert sum(1 for r in emulator.panel.events.records() if r.code == catalog.ARMING and r.restore) == 1
    assert await site.results(command["id"]) == 1
