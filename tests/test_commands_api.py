"""Panel commands at the hub's API and in its database (issue 13): what a request may ask, stored
codes that are write-only and never anywhere in clear, Idempotency-Key without the code, results
settled only by the owning edge and only once, and the hub's own TIMEOUT. The whole path with real
processes is tests/test_commands_e2e.py."""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg
import msgspec
import nats.errors
import nats.js.errors
import pytest
from aiohttp.test_utils import TestClient

from hub.api.commands_api import CommandIn
from hub.api.idempotency import body_hash
from hub.commands.publisher import CommandPublisher, ensure_commands_stream
from hub.commands.repository import ResultEvent, apply_results, time_out_overdue
from hub.secret_box import SecretBox
from hub.secret_rotation import reseal_all
from shared import subjects
from shared.commands import CommandResult, Outcome, decode_command
from shared.sealing import open_sealed
from shared.signing import Signer
from support.api import as_role, json_of
from support.topology import Topology
from support.waiting import wait_until
from test_secret_replays import _text_anywhere

ADMIN = as_role("ADMIN", 2)
CODE = "90817263"  # distinctive: a search for it finds nothing else


@pytest.fixture
async def edge(db: asyncpg.Pool) -> Signer:
    signer = Signer.generate()
    await db.execute("INSERT INTO edges (edge_id, public_key, key_id) VALUES ('site-1', $1, $2)", signer.public_raw,
                     signer.key_id)
    return signer


@pytest.fixture
async def panel(db: asyncpg.Pool, edge: Signer) -> int:
    object_id = await db.fetchval("INSERT INTO objects (name) VALUES ('Pharmacy') RETURNING id")
    return await db.fetchval("INSERT INTO panels (object_id, edge_id, source) VALUES ($1, 'site-1', 'panel-1') "
                             "RETURNING id", object_id)


async def _give(boxed_client: TestClient, panel: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    resp = await boxed_client.post(f"/api/v1/panels/{panel}/commands", json={"reason": "test", **body},
                             headers=ADMIN | (headers or {}))
    return resp.status, await json_of(resp)


@pytest.mark.parametrize(("body", "field"), [
    ({"type": "arm", "zones": [1]}, "partitions"),
    ({"type": "arm", "partitions": [1], "zones": [2]}, "zones"),
    ({"type": "disarm", "partitions": [1], "mode": 1}, "mode"),
    ({"type": "outputs_on", "outputs": [1], "force": True}, "force"),
    ({"type": "arm", "partitions": [33]}, "partitions"),
    ({"type": "bypass", "zones": [0]}, "zones"),
    ({"type": "arm", "partitions": [1], "mode": 4}, "mode"),
    ({"type": "arm", "partitions": [1], "user_code": "12a4"}, "user_code"),
    ({"type": "arm", "partitions": [1], "user_code": "123"}, "user_code"),
    ({"type": "arm", "partitions": [1], "expires_in_s": 1}, "expires_in_s"),
    ({"type": "arm", "partitions": [1], "reason": "   "}, "reason"),
])
async def test_a_command_a_panel_cannot_take_is_refused_naming_the_field(
        boxed_client: TestClient, db: asyncpg.Pool, panel: int, body: dict[str, Any], field: str) -> None:
    status, answer = await _give(boxed_client, panel, {"user_code": "1234", **body})
    assert status == 422, answer
    assert answer["error"]["details"]["field"] == field, answer
    assert await db.fetchval("SELECT count(*) FROM satel_commands") == 0
    assert await db.fetchval("SELECT count(*) FROM command_outbox") == 0


async def test_the_code_travels_sealed_to_the_owning_edge_and_is_nowhere_in_clear(
        boxed_client: TestClient, db: asyncpg.Pool, panel: int, edge: Signer) -> None:
    status, command = await _give(boxed_client, panel, {"type": "arm", "partitions": [2, 1, 2], "mode": 2,
                                                  "user_code": CODE})
    assert status == 202 and command["status"] == "PENDING" and command["partitions"] == [1, 2]
    assert command["transitional"] == "ARMING" and command["code_from"] == "TYPED"
    payload = bytes(await db.fetchval("SELECT payload FROM command_outbox WHERE command_id = $1",
                                      uuid.UUID(command["id"])))
    wire = decode_command(payload)
    assert (wire.edge, wire.panel, wire.type, wire.partitions, wire.mode) == ("site-1", "panel-1", "arm", [1, 2], 2)
    assert open_sealed(edge.private_raw(), wire.sealed_code, command["id"].encode()) == CODE.encode()
    assert await _text_anywhere(db, CODE) == []
    [audit] = await db.fetch("SELECT details FROM audit_log WHERE action = 'panel.command.requested'")
    assert CODE not in audit["details"] and '"code_from": "TYPED"' in audit["details"]
    update = await db.fetchval("SELECT payload::text FROM outbox WHERE topic = 'command.updated'")
    assert command["id"] in update and CODE not in update


async def test_stored_codes_are_write_only_used_when_none_is_typed_and_resealed_by_rotation(
        boxed_client: TestClient, db: asyncpg.Pool, panel: int, edge: Signer, box: SecretBox) -> None:
    status, answer = await _give(boxed_client, panel, {"type": "disarm", "partitions": [1]})
    assert status == 422 and answer["error"]["code"] == "user_code_required"
    put = await boxed_client.put(f"/api/v1/panels/{panel}/user-codes/1", json={"code": CODE}, headers=ADMIN)
    assert put.status == 200 and CODE not in await put.text()
    other = await boxed_client.put(f"/api/v1/panels/{panel}/user-codes/2", json={"code": "5555"}, headers=ADMIN)
    assert other.status == 200
    bad = await boxed_client.put(f"/api/v1/panels/{panel}/user-codes/3", json={"code": "12"}, headers=ADMIN)
    assert bad.status == 422 and (await json_of(bad))["error"]["details"]["field"] == "code"
    replayed = await boxed_client.put(f"/api/v1/panels/{panel}/user-codes/1", json={"code": CODE},
                                headers=ADMIN | {"Idempotency-Key": "k1"})
    assert replayed.status == 400  # a code is never kept for replay
    listed = await json_of(await boxed_client.get(f"/api/v1/panels/{panel}/user-codes", headers=ADMIN))
    assert [c["partition"] for c in listed] == [1, 2] and CODE not in str(listed)
    status, command = await _give(boxed_client, panel, {"type": "disarm", "partitions": [1]})
    assert status == 202 and command["code_from"] == "STORED"
    wire = decode_command(bytes(await db.fetchval("SELECT payload FROM command_outbox")))
    assert open_sealed(edge.private_raw(), wire.sealed_code, command["id"].encode()) == CODE.encode()
    status, mixed = await _give(boxed_client, panel, {"type": "disarm", "partitions": [1, 2]})
    assert status == 422 and "different stored codes" in mixed["error"]["message"]
    async with db.acquire() as conn:
        counts = await reseal_all(conn, box)
    assert counts["panel_user_codes"] == 2
    assert await _text_anywhere(db, CODE) == []
    gone = await boxed_client.delete(f"/api/v1/panels/{panel}/user-codes/1", headers=ADMIN)
    assert gone.status == 204
    assert (await boxed_client.delete(f"/api/v1/panels/{panel}/user-codes/1", headers=ADMIN)).status == 404


async def test_idempotency_key_replays_the_command_without_keeping_the_code(
        boxed_client: TestClient, db: asyncpg.Pool, panel: int) -> None:
    body = {"type": "arm", "partitions": [1], "user_code": CODE}
    status, first = await _give(boxed_client, panel, body, {"Idempotency-Key": "arm-1"})
    status2, again = await _give(boxed_client, panel, body, {"Idempotency-Key": "arm-1"})
    assert status == status2 == 202 and first["id"] == again["id"]
    assert await db.fetchval("SELECT count(*) FROM satel_commands") == 1
    # What the key remembers is the request without its code (a digest of 8 digits is no secret).
    [digest] = [r["body_hash"] for r in await db.fetch("SELECT body_hash FROM idempotency_keys")]
    without = msgspec.json.encode(CommandIn(type="arm", reason="test", partitions=[1]))
    assert digest == body_hash("POST", f"/api/v1/panels/{panel}/commands", without)
    assert await _text_anywhere(db, CODE) == []
    status3, other = await _give(boxed_client, panel, {"type": "disarm", "partitions": [1], "user_code": CODE},
                                 {"Idempotency-Key": "arm-1"})
    assert status3 == 422 and other["error"]["code"] == "idempotency_key_reused"


async def test_a_revoked_edge_takes_no_command_and_an_unknown_panel_is_404(
        boxed_client: TestClient, db: asyncpg.Pool, panel: int) -> None:
    assert (await _give(boxed_client, 999999, {"type": "arm", "partitions": [1], "user_code": "1234"}))[0] == 404
    assert (await boxed_client.get(f"/api/v1/commands/{uuid.uuid4()}", headers=ADMIN)).status == 404
    assert (await boxed_client.get("/api/v1/commands/not-a-uuid", headers=ADMIN)).status == 404
    await db.execute("UPDATE edges SET revoked_at = now()")
    status, answer = await _give(boxed_client, panel, {"type": "arm", "partitions": [1], "user_code": "1234"})
    assert status == 409 and answer["error"]["code"] == "edge_revoked"
    assert await db.fetchval("SELECT count(*) FROM satel_commands") == 0


def _result(command_id: str, outcome: Outcome, code: int | None = None) -> CommandResult:
    return CommandResult(command_id=command_id, panel="panel-1", type="arm", source="MANUAL", who="user:2",
                         outcome=outcome, code=code, reason=outcome.value.lower())


async def _settle(db: asyncpg.Pool, edge_id: str, body: CommandResult) -> list[Any]:
    async with db.acquire() as conn, conn.transaction():
        return await apply_results(conn, [ResultEvent(edge_id, str(uuid.uuid4()), datetime.now(timezone.utc), body)],
                                   datetime.now(timezone.utc))


async def test_only_the_owning_edge_settles_a_command_and_only_its_first_result_counts(
        boxed_client: TestClient, db: asyncpg.Pool, panel: int) -> None:
    _, command = await _give(boxed_client, panel, {"type": "arm", "partitions": [1], "user_code": "1234"})
    await db.execute("INSERT INTO edges (edge_id, public_key, key_id) VALUES ('site-2', $1, 'k2')", b"\x01" * 32)
    assert await _settle(db, "site-2", _result(command["id"], Outcome.ACK)) == []  # not its command
    assert await _settle(db, "site-1", _result("not-a-uuid", Outcome.ACK)) == []
    [update] = await _settle(db, "site-1", _result(command["id"], Outcome.NACK, 0x11))
    assert update.payload["command"]["status"] == "NACK" and update.payload["command"]["result_code"] == 0x11
    assert await _settle(db, "site-1", _result(command["id"], Outcome.ACK)) == []  # a redelivery's second result
    got = await json_of(await boxed_client.get(f"/api/v1/commands/{command['id']}", headers=ADMIN))
    assert got["status"] == "NACK" and got["transitional"] is None and not got["late"]


async def test_the_hub_times_out_a_silent_command_and_the_edges_late_word_replaces_it(
        boxed_client: TestClient, db: asyncpg.Pool, panel: int) -> None:
    _, command = await _give(boxed_client, panel, {"type": "arm", "partitions": [1], "user_code": "1234",
                                             "expires_in_s": 5})
    await db.execute("UPDATE satel_commands SET status = 'SENT'")
    now = datetime.now(timezone.utc)
    async with db.acquire() as conn, conn.transaction():
        assert await time_out_overdue(conn, now, timedelta(seconds=30)) == []  # not yet past the grace
        [timed_out] = await time_out_overdue(conn, now + timedelta(seconds=40), timedelta(seconds=30))
    assert timed_out.payload["command"]["status"] == "TIMEOUT"
    [late] = await _settle(db, "site-1", _result(command["id"], Outcome.ACK, 0))
    assert late.payload["command"]["status"] == "ACK" and late.payload["command"]["late"] is True


async def test_a_command_the_publisher_never_sent_expires_and_leaves_nothing_to_send(
        boxed_client: TestClient, db: asyncpg.Pool, panel: int) -> None:
    """NATS down (or the publisher failing) for longer than a command's life: housekeeping ends it
    EXPIRED and drops its outbox row, so nothing is sent late and no partition stays ARMING."""
    _, command = await _give(boxed_client, panel, {"type": "arm", "partitions": [1], "user_code": "1234",
                                                   "expires_in_s": 5})
    now = datetime.now(timezone.utc)
    async with db.acquire() as conn, conn.transaction():
        assert await time_out_overdue(conn, now, timedelta(seconds=30)) == []
        [expired] = await time_out_overdue(conn, now + timedelta(seconds=40), timedelta(seconds=30))
    assert expired.payload["command"]["status"] == "EXPIRED" and expired.payload["command"]["transitional"] is None
    assert "not sent" in expired.payload["command"]["result_reason"]
    assert await db.fetchval("SELECT count(*) FROM command_outbox") == 0


async def test_a_publish_that_fails_keeps_the_command_queued_until_nats_takes_it(
        topology: Topology, boxed_client: TestClient, db: asyncpg.Pool, panel: int) -> None:
    """JetStream does not take the command (here: no VIGIL_COMMANDS stream yet): the outbox row
    stays, with the attempt and the error; once the stream is there the same row is sent, once."""
    _, command = await _give(boxed_client, panel, {"type": "arm", "partitions": [1], "user_code": "1234"})
    nc = await topology.connect_hub()
    try:
        publisher = CommandPublisher(nc, db)
        with pytest.raises((nats.errors.Error, asyncio.TimeoutError)):
            await publisher.publish_once()
        row = await db.fetchrow("SELECT attempts, last_error FROM command_outbox")
        assert row["attempts"] == 1 and row["last_error"]
        assert await db.fetchval("SELECT status FROM satel_commands") == "PENDING"
        await ensure_commands_stream(nc)
        assert await publisher.publish_once() is False
        assert await db.fetchval("SELECT status FROM satel_commands") == "SENT"
        assert await db.fetchval("SELECT count(*) FROM command_outbox") == 0
        info = await nc.jetstream().stream_info(subjects.COMMANDS_STREAM)
        assert info.state.messages == 1
        consumer = await nc.jetstream().consumer_info(subjects.COMMANDS_STREAM, subjects.command_consumer("site-1"))
        assert consumer.num_pending == 1, "the edge's consumer made before the first publish"
        [update] = await db.fetch("SELECT payload FROM outbox WHERE topic = 'command.updated' ORDER BY sequence_id "
                                  "DESC LIMIT 1")
        assert command["id"] in update["payload"] and '"SENT"' in update["payload"]
    finally:
        await nc.close()


async def test_an_edge_enrolled_while_the_hub_runs_gets_its_consumer_before_any_command(
        topology: Topology, db: asyncpg.Pool, edge: Signer) -> None:
    """So the new box's pulls find something to wait on instead of failing until its first command."""
    nc = await topology.connect_hub()
    stop = asyncio.Event()
    try:
        await ensure_commands_stream(nc)
        publisher = CommandPublisher(nc, db, interval_s=0.05, consumer_check_s=0.1)
        await publisher.ensure_consumers()
        running = asyncio.create_task(publisher.run(stop))
        await db.execute("INSERT INTO edges (edge_id, public_key, key_id) VALUES ('site-new', $1, 'k-new')",
                         Signer.generate().public_raw)

        async def made() -> bool:
            try:
                await nc.jetstream().consumer_info(subjects.COMMANDS_STREAM, subjects.command_consumer("site-new"))
            except nats.js.errors.NotFoundError:
                return False
            return True

        await wait_until(made, timeout=10, what="the new edge's consumer")
        stop.set()
        await asyncio.wait_for(running, 10)
    finally:
        stop.set()
        await nc.close()


async def test_the_publisher_never_sends_a_command_past_its_expiry(
        topology: Topology, boxed_client: TestClient, db: asyncpg.Pool, panel: int) -> None:
    _, command = await _give(boxed_client, panel, {"type": "arm", "partitions": [1], "user_code": "1234",
                                                   "expires_in_s": 5})
    nc = await topology.connect_hub()
    try:
        await ensure_commands_stream(nc)
        late = datetime.now(timezone.utc) + timedelta(seconds=6)
        assert await CommandPublisher(nc, db, now=lambda: late).publish_once() is False
        row = await db.fetchrow("SELECT status, result_reason FROM satel_commands WHERE id = $1",
                                uuid.UUID(command["id"]))
        assert row["status"] == "EXPIRED" and row["result_reason"].startswith("not sent")
        assert await db.fetchval("SELECT count(*) FROM command_outbox") == 0
        assert (await nc.jetstream().stream_info(subjects.COMMANDS_STREAM)).state.messages == 0
    finally:
        await nc.close()
