"""Supervisor take-over (issue 12): a MASTER or ADMIN takes a worked alarm from the operator who
holds it, or hands it to another, with a reason, at the version they saw; audited; and the
previous holder's console sees it leave their hands on the live stream."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import asyncpg
from aiohttp.test_utils import TestClient

from hub.api.permissions import MATRIX
from hub.api.principal import Role
from support.api import as_role
from support.operator_work import (ADMIN, ADMIN_ID, ANN, ANN_ID, BOB, BOB_ID, MASTER, MASTER_ID, TECH_ID, add_person,
                                   assert_error, audit, get, outbox, post, scene, walk)
from test_stream_helpers import read_ws, running_hub

ANN_WHO = {"id": ANN_ID, "email": "ann@x.test", "name": "Ann Operator"}
MASTER_WHO = {"id": MASTER_ID, "email": "master@x.test", "name": "Maria Master"}


def test_supervise_is_masters_and_admins() -> None:
    assert MATRIX["alarms.supervise"] == frozenset({Role.MASTER, Role.ADMIN})


async def test_a_master_takes_over_with_a_reason_audited_and_announced(api_client: TestClient,
                                                                       db: asyncpg.Pool) -> None:
    s = await scene(db)
    bundle_id = await s.alarm()
    worked = await walk(api_client, bundle_id, ANN, "claim", "start")
    path = f"/api/v1/alarms/{bundle_id}/take-over"
    taken = await post(api_client, path, {"version": worked["version"], "reason": " Ann's shift ended "}, MASTER)
    assert (taken["status"], taken["version"], taken["claimed_by"], taken["claimed_by_user"]) == (
        "IN_PROGRESS", worked["version"] + 1, f"user:{MASTER_ID}", MASTER_WHO)
    [entry] = await audit(db, "alarm.take_over")
    assert entry["actor"] == f"user:{MASTER_ID}" and entry["target_id"] == str(bundle_id)
    assert entry["details"] == {"from": "IN_PROGRESS", "to": "IN_PROGRESS", "previous": f"user:{ANN_ID}",
                                "holder": f"user:{MASTER_ID}", "reason": "Ann's shift ended"}
    announced = (await outbox(db))[-1]
    assert (announced["topic"], announced["object_id"]) == ("alarm.updated", s.object_id)
    assert announced["payload"]["bundle"]["claimed_by"] == f"user:{MASTER_ID}"
    assert announced["payload"]["take_over"] == {"previous": ANN_WHO, "by": MASTER_WHO, "to": MASTER_WHO,
                                                 "reason": "Ann's shift ended"}
    # It left Ann's hands: she can no longer move it; the master carries on.
    assert_error(await post(api_client, f"/api/v1/alarms/{bundle_id}/ack", {"version": taken["version"]}, ANN,
                            status=409), "not_claimant")
    acked = await post(api_client, f"/api/v1/alarms/{bundle_id}/ack", {"version": taken["version"]}, MASTER)
    assert acked["status"] == "ACK"
    # Taken over in ACK as well, back to Ann this time.
    back = await post(api_client, path, {"version": acked["version"], "reason": "back", "to_user_id": ANN_ID}, MASTER)
    assert (back["status"], back["claimed_by"]) == ("ACK", f"user:{ANN_ID}")


async def test_an_admin_reassigns_but_cannot_hold_an_alarm(api_client: TestClient, db: asyncpg.Pool) -> None:
    s = await scene(db)
    bundle_id = await s.alarm()
    claimed = await walk(api_client, bundle_id, ANN, "claim")
    path = f"/api/v1/alarms/{bundle_id}/take-over"
    assert_error(await post(api_client, path, {"version": claimed["version"], "reason": "mine"}, ADMIN, status=403),
                 "forbidden")
    moved = await post(api_client, path, {"version": claimed["version"], "reason": "Ann is on a call",
                                          "to_user_id": BOB_ID}, ADMIN)
    # A claim taken over gives its new holder the full claim time to start it.
    assert (moved["status"], moved["claimed_by"]) == ("CLAIMING", f"user:{BOB_ID}")
    assert datetime.fromisoformat(moved["claim_expires_at"]) > datetime.fromisoformat(claimed["claim_expires_at"])
    [entry] = await audit(db, "alarm.take_over")
    assert (entry["actor"], entry["details"]["previous"], entry["details"]["holder"]) == (
        f"user:{ADMIN_ID}", f"user:{ANN_ID}", f"user:{BOB_ID}")
    assert (await outbox(db))[-1]["payload"]["take_over"]["by"]["name"] == "Adam Admin"
    started = await post(api_client, f"/api/v1/alarms/{bundle_id}/start", {"version": moved["version"]}, BOB)
    assert started["claimed_by"] == f"user:{BOB_ID}"


async def test_refusals_change_nothing(api_client: TestClient, db: asyncpg.Pool) -> None:
    s = await scene(db)
    await add_person(db, 6, "gone@x.test", "OPERATOR", active=False)
    await add_person(db, 7, "field@x.test", "FIELD_WORKER")
    bundle_id = await s.alarm()
    path = f"/api/v1/alarms/{bundle_id}/take-over"
    # NEW: nobody holds it, so there is nothing to take over (claim it instead).
    assert_error(await post(api_client, path, {"version": 1, "reason": "x"}, MASTER, status=409), "illegal_transition")
    worked = await walk(api_client, bundle_id, ANN, "claim", "start")
    v = worked["version"]
    before = await db.fetchrow("SELECT * FROM bundle_alarms WHERE id = $1", bundle_id)
    outbox_rows = len(await outbox(db))
    cases = [
        ({"version": v - 1, "reason": "x"}, MASTER, 409, "conflict", None),
        ({"version": v, "reason": "   "}, MASTER, 422, "reason_required", "reason"),
        ({"version": v, "reason": ""}, MASTER, 422, "invalid", "reason"),
        ({"version": v}, MASTER, 422, "invalid", "reason"),
        ({"version": v, "reason": "x" * 1001}, MASTER, 422, "invalid", "reason"),
        ({"version": v, "reason": "x", "to_user_id": ANN_ID}, MASTER, 409, "already_holder", None),
        ({"version": v, "reason": "x", "to_user_id": 424242}, MASTER, 422, "invalid", "to_user_id"),
        ({"version": v, "reason": "x", "to_user_id": 6}, MASTER, 422, "invalid", "to_user_id"),  # deactivated
        ({"version": v, "reason": "x", "to_user_id": TECH_ID}, MASTER, 422, "invalid", "to_user_id"),
        ({"version": v, "reason": "x", "to_user_id": 7}, MASTER, 422, "invalid", "to_user_id"),
        ({"version": v, "reason": "x", "to_user_id": ADMIN_ID}, MASTER, 422, "invalid", "to_user_id"),
        ({"version": v, "reason": "x", "to_user_id": 0}, MASTER, 422, "invalid", "to_user_id"),
        ({"version": v, "reason": "x", "extra": 1}, MASTER, 422, "invalid", None),
        ({"version": v, "reason": "x"}, BOB, 403, "forbidden", None),  # an operator is no supervisor
        ({"version": v, "reason": "x"}, as_role("TECHNICIAN", TECH_ID, [s.object_id]), 403, "forbidden", None),
        ({"version": v, "reason": "x"}, as_role("FIELD_WORKER", 7, [s.object_id]), 403, "forbidden", None),
    ]
    for body, headers, status, code, field in cases:
        assert_error(await post(api_client, path, body, headers, status=status), code, field)
    assert_error(await post(api_client, "/api/v1/alarms/424242/take-over", {"version": 1, "reason": "x"}, MASTER,
                            status=404), "not_found")
    assert await db.fetchrow("SELECT * FROM bundle_alarms WHERE id = $1", bundle_id) == before
    assert len(await outbox(db)) == outbox_rows and await audit(db, "alarm.take_over") == []
    # Past its working life it cannot be taken either.
    resolved = await walk(api_client, bundle_id, ANN, "ack", "resolve")
    assert_error(await post(api_client, path, {"version": resolved["version"], "reason": "x"}, MASTER, status=409),
                 "illegal_transition")


async def test_the_previous_holder_sees_it_leave_their_hands_live(db: asyncpg.Pool, db_dsn: str,
                                                                  tmp_path: Path) -> None:
    s = await scene(db, people=False)
    async with running_hub(db, db_dsn, tmp_path) as hub:
        ann = await hub.user("ann@x.test")
        master = await hub.user("master@x.test", "MASTER")
        master_id = (await get(hub.client, "/api/v1/auth/me", master))["id"]
        bundle_id = await s.alarm()
        claimed = await walk(hub.client, bundle_id, ann, "claim")
        head = await db.fetchval("SELECT value FROM outbox_counter")
        ws = await hub.ws(ann, cursor=head)
        await post(hub.client, f"/api/v1/alarms/{bundle_id}/take-over",
                   {"version": claimed["version"], "reason": "escalated to the shift lead"}, master)
        [change] = [m for m in await read_ws(ws, head + 1) if m["type"] == "change"]
        assert (change["topic"], change["object_id"]) == ("alarm.updated", s.object_id)
        assert change["payload"]["bundle"]["id"] == bundle_id
        assert change["payload"]["bundle"]["claimed_by"] == f"user:{master_id}"
        assert change["payload"]["take_over"]["reason"] == "escalated to the shift lead"
        assert change["payload"]["take_over"]["previous"]["email"] == "ann@x.test"
        await ws.close()
