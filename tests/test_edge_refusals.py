"""The edge learns from the hub's notices that its segments are refused, and says so loudly: the
refusal state (pure, fake clock) and a running agent fed by a hub-side NATS client."""
from __future__ import annotations

import html
from datetime import datetime, timezone
from typing import Any

import aiohttp
from prometheus_client import REGISTRY

from edge.refusals import RefusalState, local_time
from shared import subjects
from shared.clock import FakeClock
from shared.notices import SegmentsRefused, encode_notice
from shared.process import tcp_port_open
from support.edge_login import bearer
from support.topology import Topology
from support.waiting import wait_until


def _notice(edge: str = "site-1", detail: str = "key id <Zm9v> is not enrolled", quarantine_id: int = 7) -> SegmentsRefused:
    return SegmentsRefused(edge=edge, reason="unknown_key", detail=detail, key_id="Zm9v", seq_range="1-3",
                           quarantine_id=quarantine_id, at=datetime(2026, 1, 1, tzinfo=timezone.utc))


def _dropped(why: str) -> float:
    return REGISTRY.get_sample_value("vigil_edge_notices_dropped_total", {"why": why}) or 0.0


def _notices(reason: str) -> float:
    return REGISTRY.get_sample_value("vigil_edge_refusal_notices_total", {"reason": reason}) or 0.0


def test_refused_while_the_newest_notice_is_under_ten_minutes_old() -> None:
    clock = FakeClock()
    state = RefusalState(clock)
    assert not state.refused() and state.banner() is None and state.status()["last"] is None

    state.record(_notice(quarantine_id=1))
    first = clock.now()
    clock.advance(540)
    state.record(_notice(quarantine_id=2))
    assert state.refused() and state.count == 2
    assert state.banner() == (
        f"The hub refuses this box's segments: unknown_key (key id <Zm9v> is not enrolled), last at "
        f"{local_time(clock.now())}, 2 since {local_time(first)} — they are kept in the hub's quarantine; "
        "re-enrol or restore the key")

    clock.advance(599)
    assert state.refused()
    clock.advance(1)
    assert not state.refused() and state.banner() is None
    lapsed = state.status()
    assert (lapsed["refused"], lapsed["count"], lapsed["last"]["quarantine_id"]) == (False, 2, 2)

    state.record(_notice(quarantine_id=3))  # after a quiet window, a new streak
    assert state.refused() and state.count == 1 and state.first_at == clock.now()


async def _get(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as response:
        assert response.status == 200
        return await response.json() if response.content_type == "application/json" else await response.text()


async def test_a_running_edge_shows_the_hubs_refusal_and_drops_bad_notices(topology: Topology) -> None:
    config = topology.edge_config()
    await topology.enrol(config)
    topology.run_edge(config)
    base = f"http://127.0.0.1:{config.http_port}"
    await wait_until(lambda: tcp_port_open("127.0.0.1", config.http_port), timeout=30, what="the edge's local page")
    hub = await topology.connect_hub()
    subject = subjects.edge_notices(config.edge_id)
    # The page and status as the on-box tools see them (the login itself: test_edge_local_auth).
    async with aiohttp.ClientSession(headers=bearer(config)) as http:
        try:
            page = await _get(http, base + "/")
            assert '<div id="refused" role="alert" hidden></div>' in page
            assert "vigil_edge_segments_refused 0.0" in await _get(http, base + "/metrics")
            counted = _notices("unknown_key")

            async def last_quarantine_id() -> int | None:
                last = (await _get(http, base + "/api/v1/status"))["refusal"]["last"]
                return last and last["quarantine_id"]

            # Interest crosses the leaf link a moment after the agent subscribes: repeat until one
            # lands (those sent before are dropped by the hub's server, nobody listening yet).
            async def taken() -> bool:
                await hub.publish(subject, encode_notice(_notice(quarantine_id=1)))
                return await last_quarantine_id() == 1

            await wait_until(taken, timeout=30, what="the edge to take the hub's notice")

            async def fence(quarantine_id: int) -> None:
                """Publish a good notice and wait for it: on one connection and route, everything
                published before it has been handled by then."""
                await hub.publish(subject, encode_notice(_notice(quarantine_id=quarantine_id)))

                async def arrived() -> bool:
                    return await last_quarantine_id() == quarantine_id

                await wait_until(arrived, timeout=10, what=f"notice {quarantine_id}")

            await fence(2)
            seen = (await _get(http, base + "/api/v1/status"))["refusal"]["count"]
            assert _notices("unknown_key") == counted + seen

            malformed, other = _dropped("malformed"), _dropped("other_edge")
            for bad in (b"not json", b'{"edge": "site-1"}',
                        encode_notice(_notice()).replace(b'"unknown_key"', b'"Drop Tables"')):
                await hub.publish(subject, bad)
            await hub.publish(subject, encode_notice(_notice(edge="site-2", quarantine_id=99)))
            await fence(3)
            assert (_dropped("malformed"), _dropped("other_edge")) == (malformed + 3, other + 1)

            refusal = (await _get(http, base + "/api/v1/status"))["refusal"]
            assert refusal["count"] == seen + 1  # site-2's notice counted nowhere
            assert refusal["refused"] and refusal["banner"].startswith(
                "The hub refuses this box's segments: unknown_key (key id <Zm9v> is not enrolled), last at ")
            assert refusal["banner"].endswith(f", {seen + 1} since {local_time(datetime.fromisoformat(refusal['first_at']))}"
                                              " — they are kept in the hub's quarantine; re-enrol or restore the key")
            page = await _get(http, base + "/")
            assert f'<div id="refused" role="alert">{html.escape(refusal["banner"])}</div>' in page
            assert "&lt;Zm9v&gt;" in page  # the hub's detail is text, never markup
            assert "vigil_edge_segments_refused 1.0" in await _get(http, base + "/metrics")
        finally:
            await hub.close()
