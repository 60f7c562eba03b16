"""The pure parts of panel commands (issue 13): the seal to an edge's key, the hub's time at the
edge, the link's command order, and the hub's rules for requests, stored codes and results."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from edge.hub_clock import HubClock
from edge.links.satel.commands import CommandJob, CommandPriority, CommandQueue, CommandResult
from firmware_bridges.satel.protocol import ReadNewData
from hub.commands.domain import (CommandError, CommandRequest, NoUserCode, Status, check_request, pick_stored_code,
                                 settle)
from shared.clock import FakeClock
from shared.commands import Outcome
from shared.sealing import SealError, open_sealed, seal, x25519_private_from_ed25519, x25519_public_from_ed25519
from shared.signing import Signer


# --- the seal --------------------------------------------------------------------------------------

def test_an_edges_signing_key_converts_to_the_x25519_pair_the_seal_uses() -> None:
    for _ in range(20):
        signer = Signer.generate()
        private = x25519_private_from_ed25519(signer.private_raw())
        assert private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw) == \
            x25519_public_from_ed25519(signer.public_raw)


def test_a_sealed_code_opens_only_with_its_edges_key_for_its_command() -> None:
    edge, other = Signer.generate(), Signer.generate()
    sealed = seal(edge.public_raw, b"1234", b"command-1")
    assert open_sealed(edge.private_raw(), sealed, b"command-1") == b"1234"
    assert seal(edge.public_raw, b"1234", b"command-1") != sealed, "a fresh ephemeral key every time"
    with pytest.raises(SealError):
        open_sealed(other.private_raw(), sealed, b"command-1")  # another edge
    with pytest.raises(SealError):
        open_sealed(edge.private_raw(), sealed, b"command-2")  # moved to another command
    tampered = bytearray(sealed)
    tampered[-1] ^= 1
    with pytest.raises(SealError):
        open_sealed(edge.private_raw(), bytes(tampered), b"command-1")
    with pytest.raises(SealError):
        open_sealed(edge.private_raw(), sealed[:20], b"command-1")
    with pytest.raises(SealError):
        x25519_public_from_ed25519((1).to_bytes(32, "little"))  # the identity point


# --- the hub's time at the edge ---------------------------------------------------------------------

def test_a_box_clock_off_by_a_year_reads_the_hubs_time_after_one_answer() -> None:
    hub_now = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
    box = FakeClock(hub_now - timedelta(days=365))
    clock = HubClock(box)
    assert clock.now() == box.now(), "its own clock until it has heard the hub"
    clock.observe(box.now(), 0.2, hub_now + timedelta(seconds=0.1))
    assert abs((clock.now() - hub_now).total_seconds()) < 0.01
    box.advance(30)
    assert abs((clock.now() - (hub_now + timedelta(seconds=30))).total_seconds()) < 0.01
    clock.observe(box.now(), 9.0, hub_now)  # a slow round trip says too little: kept as it was
    assert abs((clock.now() - (hub_now + timedelta(seconds=30))).total_seconds()) < 0.01


# --- the link's queue ---------------------------------------------------------------------------------

async def test_the_queue_serves_people_before_schedules_and_each_in_arrival_order() -> None:
    queue = CommandQueue(8)
    loop = asyncio.get_running_loop()
    auto1 = CommandJob("auto 1", ReadNewData(), loop.time() + 60, CommandPriority.AUTOMATIC)
    manual1 = CommandJob("manual 1", ReadNewData(), loop.time() + 60)
    auto2 = CommandJob("auto 2", ReadNewData(), loop.time() + 60, CommandPriority.AUTOMATIC)
    manual2 = CommandJob("manual 2", ReadNewData(), loop.time() + 60)
    stale = CommandJob("stale", ReadNewData(), loop.time() - 1)
    for job in (auto1, manual1, stale, auto2, manual2):
        assert queue.put(job)
    taken = [job.name for job in iter(lambda: queue.take(loop.time()), None)]
    assert taken == ["manual 1", "manual 2", "auto 1", "auto 2"]
    assert stale.future.result().result is CommandResult.TIMEOUT, "past its deadline: never sent"


# --- the hub's rules ---------------------------------------------------------------------------------

def test_a_request_is_normalised_and_checked() -> None:
    req = check_request(CommandRequest("arm", "  closing  ", partitions=(3, 1, 3), mode=1, user_code="1234"))
    assert (req.partitions, req.reason, req.mode) == ((1, 3), "closing", 1)
    with pytest.raises(CommandError) as err:
        check_request(CommandRequest("fire_the_sprinklers", "x", partitions=(1,)))
    assert err.value.field == "type"


def test_a_stored_code_must_cover_every_partition_named() -> None:
    assert pick_stored_code({0: "1111"}, (1, 2)) == "1111"
    assert pick_stored_code({0: "1111", 2: "2222"}, (2,)) == "2222"
    assert pick_stored_code({1: "3333", 2: "3333"}, (1, 2)) == "3333"
    assert pick_stored_code({0: "1111"}, ()) == "1111"  # zones and outputs: the panel's code
    with pytest.raises(NoUserCode):
        pick_stored_code({1: "3333"}, (1, 2))
    with pytest.raises(NoUserCode):
        pick_stored_code({1: "3333"}, ())
    with pytest.raises(NoUserCode, match="different stored codes"):
        pick_stored_code({0: "1111", 2: "2222"}, (1, 2))


def test_the_edges_first_result_is_final_and_replaces_the_hubs_guess() -> None:
    assert settle(Status.SENT, False, Outcome.ACK).status is Status.ACK  # type: ignore[union-attr]
    assert not settle(Status.PENDING, False, Outcome.NACK).late  # type: ignore[union-attr]
    late = settle(Status.TIMEOUT, False, Outcome.EXPIRED)
    assert late is not None and late.status is Status.EXPIRED and late.late
    assert settle(Status.ACK, True, Outcome.TIMEOUT) is None
    assert settle(Status.TIMEOUT, True, Outcome.ACK) is None
