"""The NATS trust boundary (docs/architecture.md §4.1, issue 10): every port needs credentials, the
leaf port TLS with a certificate of the hub's CA, and an edge sees, sends and touches only its
own subjects. Real nats-servers with the configs Vigil generates; each test fails when its
protection is taken away.

What an edge may do is tested with an intruder who owns the box: a client of the edge's server
with no local limits, replies on the edge's own inbox (which the hub lets through), so only the
hub's permissions for the edge's leaf user stand in the way."""
from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from pathlib import Path
from typing import AsyncIterator

import asyncpg
import nats
import nats.errors
import nats.js.errors
import pytest
from nats.js.api import AckPolicy, ConsumerConfig

from hub.commands.publisher import consumer_config, ensure_commands_stream
from hub.config import load_hub_config
from hub.ingest.consumer import ensure_streams
from hub.nats_access import EdgeLeafUser, NatsAccessError, NatsRefused, leaf_user_name, render_users
from hub.nats_access import access as access_module
from hub.service import run_hub
from edge.leaf_credentials import EdgeNatsAuth
from edge.links.robots.streams import ensure_streams as ensure_robot_streams
from shared import robots as robots_wire
from shared import subjects
from shared.config import ConfigError
from shared.nats_server import (AGENT_USER, LeafRemote, NatsConfigError, NatsServer, NatsUser, TlsFiles,
                                hash_password, nats_server_binary, replica_leaf_user)
from shared.pki import ensure_ca, make_csr, sign_csr
from shared.process import ManagedProcess, free_port, tcp_port_open
from support.secure_nats import HOST, SecureNats
from support.waiting import wait_until

A, B = "site-a", "site-b"


@pytest.fixture
async def boundary(tmp_path: Path) -> AsyncIterator[SecureNats]:
    """The hub's server with VIGIL_EVENTS, and two enrolled edges' leaf servers linked to it."""
    secure = SecureNats(tmp_path)
    await secure.start()
    try:
        await secure.ensure_site(A)
        await secure.ensure_site(B)
        hub = await secure.connect_hub()
        await ensure_streams(hub)
        await hub.close()
        yield secure
    finally:
        await secure.stop()


async def _hub_user_of_leaves(secure: SecureNats) -> list[str | None]:
    return sorted(u or "" for u in (await secure.access.leaf_users()).values())


def _leaves_of(*edges: str) -> list[str]:
    """The leaf users the hub sees when `edges` are connected: each edge's site and replica leaves."""
    return sorted(user for edge in edges for user in (leaf_user_name(edge), replica_leaf_user(edge)))


async def _stored(hub: nats.NATS) -> list[str]:
    """Every subject stored in VIGIL_EVENTS (after the partition transform)."""
    js = hub.jetstream()
    info = await js.stream_info(subjects.EVENTS_STREAM, subjects_filter=">")
    return sorted((info.state.subjects or {}).keys())


async def _intruder(secure: SecureNats, edge: str) -> nats.NATS:
    """A client of the edge's server with no local limits, on the edge's reply inbox."""
    return await secure.connect_site_admin(edge, inbox_prefix=subjects.edge_inbox_prefix(edge))


async def _fence(client: nats.NATS, edge: str) -> None:
    """A JetStream publish on the edge's own subject, acknowledged: what the client sent before it
    on this connection has reached the hub by then (one connection, one route, in order)."""
    ack = await client.jetstream(domain=subjects.HUB_DOMAIN).publish(subjects.edge_events(edge), b"fence", timeout=5)
    assert (ack.stream, ack.domain) == (subjects.EVENTS_STREAM, subjects.HUB_DOMAIN)


# --- who may connect -------------------------------------------------------------------------


async def _leaf_attempt(secure: SecureNats, name: str, config_text: str, marker: str, log: str = "hub") -> None:
    """Start a leaf server from `config_text` and wait until `marker` shows in the hub's (or its
    own) log; it must never be counted among the hub's leaf connections."""
    conf = secure.root / "run" / f"{name}.conf"
    conf.write_text(config_text)
    proc = ManagedProcess(name, [nats_server_binary(), "-c", str(conf)], log_path=secure.root / "run" / f"{name}.log")
    before = secure.hub.leaf_count()
    watched = secure.hub.process.log_path if log == "hub" else proc.log_path
    seen = watched.read_text().count(marker) if watched.exists() else 0
    proc.start()
    try:
        await wait_until(lambda: watched.read_text().count(marker) > seen, timeout=20, what=f"{name}: '{marker}'")
        assert secure.hub.leaf_count() == before, f"{name} was let in"
        assert await _hub_user_of_leaves(secure) == _leaves_of(A, B)
    finally:
        proc.stop(10)


def _site_text(secure: SecureNats, edge: str, remote: LeafRemote, name: str) -> str:
    """The config of a leaf server like the edge's own, but reaching the hub with `remote` (its
    site leaf alone: no replica leaf)."""
    config = secure.sites[edge].auth.server_config(name, HOST, free_port(), free_port(), secure.root / name, name)
    return dataclasses.replace(config, leaf=remote, replica_password_hash=None).render()


async def test_a_leaf_without_credentials_or_with_a_wrong_password_is_refused(boundary: SecureNats) -> None:
    good = boundary.sites[A].auth.remote()
    wrong = LeafRemote(good.url, good.user, "not-the-password", good.tls)
    await _leaf_attempt(boundary, "wrong-password", _site_text(boundary, A, wrong, "wrong-password"),
                        "Authorization Violation", log="own")
    text = _site_text(boundary, A, good, "no-credentials").replace(f"{good.user}:{good.password}@", "")
    assert good.password not in text
    await _leaf_attempt(boundary, "no-credentials", text, "Authorization Violation", log="own")
    # Another edge's certificate with this edge's password: both are checked, neither identifies alone.
    other_cert = LeafRemote(good.url, leaf_user_name(B), good.password, boundary.sites[B].auth.remote().tls)
    await _leaf_attempt(boundary, "mixed", _site_text(boundary, A, other_cert, "mixed"), "Authorization Violation", log="own")


async def test_a_leaf_with_the_hubs_own_user_is_refused(boundary: SecureNats) -> None:
    good = boundary.sites[A].auth.remote()
    hub_login = boundary.auth.login()
    as_hub = LeafRemote(good.url, hub_login["user"], hub_login["password"], good.tls)
    await _leaf_attempt(boundary, "as-hub", _site_text(boundary, A, as_hub, "as-hub"), "Authorization Violation", log="own")


async def test_a_leaf_with_a_certificate_of_another_ca_is_refused(boundary: SecureNats, tmp_path: Path) -> None:
    good = boundary.sites[A].auth.remote()
    rogue_ca = ensure_ca(tmp_path / "rogue-ca", "Vigil hub CA")  # same name, another key
    key = tmp_path / "rogue" / "leaf.key"
    cert = tmp_path / "rogue" / "leaf.pem"
    cert.write_text(sign_csr(rogue_ca, make_csr(key, leaf_user_name(A)), leaf_user_name(A)))
    rogue = LeafRemote(good.url, good.user, good.password, TlsFiles(cert, key, good.tls.ca))
    await _leaf_attempt(boundary, "rogue-cert", _site_text(boundary, A, rogue, "rogue-cert"),
                        "certificate signed by unknown authority")


async def test_a_leaf_without_a_client_certificate_is_refused(boundary: SecureNats) -> None:
    good = boundary.sites[A].auth.remote()
    text = _site_text(boundary, A, good, "no-cert")
    text = "\n".join(line for line in text.splitlines() if "cert_file" not in line and "key_file" not in line)
    await _leaf_attempt(boundary, "no-cert", text, "client didn't provide a certificate")


async def test_a_plaintext_leaf_is_refused(boundary: SecureNats) -> None:
    """The leaf port announces TLS as required, and a leaf that speaks plain NATS after the INFO
    gets no answer but a closed connection."""
    port = boundary.hub.config.leaf_port
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        info = json.loads((await asyncio.wait_for(reader.readline(), 10)).decode().removeprefix("INFO "))
        assert info["tls_required"] is True and info["tls_verify"] is True
        creds = boundary.sites[A].auth.remote()
        connect = {"user": creds.user, "pass": creds.password, "name": "plaintext", "headers": True}
        writer.write(f"CONNECT {json.dumps(connect)}\r\nPING\r\n".encode())
        await writer.drain()
        rest = await asyncio.wait_for(reader.read(), 20)  # until the hub closes
    finally:
        writer.close()
    assert b"PONG" not in rest and b"+OK" not in rest
    assert await _hub_user_of_leaves(boundary) == _leaves_of(A, B)


async def _refused(url: str, **login: str) -> str:
    try:
        nc = await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=5, **login)
    except (nats.errors.Error, OSError, asyncio.TimeoutError) as exc:
        return str(exc)
    await nc.close()
    return ""


async def test_client_ports_take_only_their_users(boundary: SecureNats) -> None:
    hub_url = boundary.hub.url
    site = boundary.sites[A]
    assert "Authorization Violation" in await _refused(hub_url)
    assert "Authorization Violation" in await _refused(site.server.url)
    assert "Authorization Violation" in await _refused(site.server.url, user=AGENT_USER, password="guess")
    # An edge's leaf password is no good on the hub's client port (leaf connections only), and
    # the system user is no good on an edge.
    leaf = site.auth.remote()
    assert "Authorization Violation" in await _refused(hub_url, user=leaf.user, password=leaf.password)
    system = boundary.auth.system_password_file.read_text().strip()
    assert "Authorization Violation" in await _refused(site.server.url, user="sys", password=system)

    hub = await boundary.connect_hub()
    agent = await boundary.connect_agent(A)
    try:
        assert hub.is_connected and agent.is_connected
    finally:
        await hub.close()
        await agent.close()


# --- what an edge may do ---------------------------------------------------------------------


async def test_an_edges_own_forwarding_gets_its_pub_ack(boundary: SecureNats) -> None:
    agent = await boundary.connect_agent(A)
    hub = await boundary.connect_hub()
    try:
        ack = await agent.jetstream(domain=subjects.HUB_DOMAIN).publish(subjects.edge_alarms(A), b"seg",
                                                                         headers={"Nats-Msg-Id": "a-1"}, timeout=5)
        assert (ack.stream, ack.domain, ack.seq) == (subjects.EVENTS_STREAM, subjects.HUB_DOMAIN, 1)
        stored = await _stored(hub)
        assert len(stored) == 1 and stored[0].startswith(f"vigil.edge.{A}.alarm.")
    finally:
        await agent.close()
        await hub.close()


async def test_an_edge_cannot_publish_on_another_edges_subjects(boundary: SecureNats) -> None:
    intruder = await _intruder(boundary, A)
    hub = await boundary.connect_hub()
    try:
        js = intruder.jetstream(domain=subjects.HUB_DOMAIN)
        for subject in (subjects.edge_events(B), subjects.edge_alarms(B), "vigil.edge.ghost.evt"):
            with pytest.raises((nats.errors.NoRespondersError, nats.errors.TimeoutError, nats.js.errors.Error)):
                await js.publish(subject, b"forged", timeout=1)
        await intruder.publish(subjects.edge_events(B), b"forged, core")  # no reply asked: still never stored
        await _fence(intruder, A)
        stored = await _stored(hub)
        assert stored and all(s.startswith(f"vigil.edge.{A}.") for s in stored), stored
    finally:
        await intruder.close()
        await hub.close()


async def test_an_edge_cannot_use_the_hubs_jetstream_api(boundary: SecureNats) -> None:
    """Purge or delete the stream, create or delete consumers, read stream info: nothing answers."""
    intruder = await _intruder(boundary, A)
    hub = await boundary.connect_hub()
    try:
        hub_js = hub.jetstream()
        await _fence(intruder, A)
        await hub_js.add_consumer(subjects.EVENTS_STREAM, ConsumerConfig(durable_name="ingest-evt-p0",
                                                                         ack_policy=AckPolicy.EXPLICIT))
        js = intruder.jetstream(domain=subjects.HUB_DOMAIN, timeout=1)
        attempts = [
            js.purge_stream(subjects.EVENTS_STREAM),
            js.delete_stream(subjects.EVENTS_STREAM),
            js.stream_info(subjects.EVENTS_STREAM),
            js.add_consumer(subjects.EVENTS_STREAM, ConsumerConfig(durable_name="intruder")),
            js.delete_consumer(subjects.EVENTS_STREAM, "ingest-evt-p0"),
            js.account_info(),
        ]
        for attempt in attempts:
            with pytest.raises((nats.errors.NoRespondersError, nats.errors.TimeoutError, nats.js.errors.Error)):
                await attempt
        # Raw requests on the API subjects, in case the client library checks anything itself.
        for verb in (f"STREAM.PURGE.{subjects.EVENTS_STREAM}", f"STREAM.DELETE.{subjects.EVENTS_STREAM}",
                     f"CONSUMER.DELETE.{subjects.EVENTS_STREAM}.ingest-evt-p0"):
            with pytest.raises((nats.errors.NoRespondersError, nats.errors.TimeoutError)):
                await intruder.request(f"$JS.{subjects.HUB_DOMAIN}.API.{verb}", b"", timeout=1)
        await _fence(intruder, A)
        info = await hub_js.stream_info(subjects.EVENTS_STREAM)
        assert info.state.messages == 2
        assert [c.name for c in await hub_js.consumers_info(subjects.EVENTS_STREAM)] == ["ingest-evt-p0"]
    finally:
        await intruder.close()
        await hub.close()


async def test_an_edge_cannot_acknowledge_the_hubs_messages(boundary: SecureNats) -> None:
    intruder = await _intruder(boundary, A)
    hub = await boundary.connect_hub()
    try:
        await _fence(intruder, A)
        hub_js = hub.jetstream()
        sub = await hub_js.pull_subscribe(f"vigil.edge.{A}.evt.*", durable="ingest-test", stream=subjects.EVENTS_STREAM)
        [msg] = await sub.fetch(1, timeout=5)  # delivered, not acknowledged
        assert msg.reply.startswith(f"$JS.ACK.{subjects.EVENTS_STREAM}.ingest-test.")
        for payload in (b"+ACK", b"+TERM"):
            await intruder.publish(msg.reply, payload)
        await _fence(intruder, A)
        info = await hub_js.consumer_info(subjects.EVENTS_STREAM, "ingest-test")
        assert info.num_ack_pending == 1 and info.ack_floor.stream_seq == 0
    finally:
        await intruder.close()
        await hub.close()


async def test_an_edge_receives_only_its_own_subjects(boundary: SecureNats) -> None:
    """Subscribed to everything, the edge's server gets nothing from the hub but its own subjects
    (the agent's user may not even subscribe to these locally)."""
    local = await _intruder(boundary, A)
    hub = await boundary.connect_hub()
    got: list[str] = []

    async def collect(msg: nats.aio.msg.Msg) -> None:
        got.append(msg.subject)

    try:
        for wildcard in ("vigil.>", ">", "_INBOX.>"):
            await local.subscribe(wildcard, cb=collect)
        await local.flush()

        async def own_notice_arrives() -> bool:
            # Interest crosses the leaf link a moment after the subscription.
            await hub.publish(subjects.edge_notices(A), b"hello")
            await hub.flush()
            await asyncio.sleep(0.05)
            return subjects.edge_notices(A) in got

        await wait_until(own_notice_arrives, timeout=20, what="A's own notice")
        got.clear()
        for subject in (subjects.edge_notices(B), subjects.edge_commands(B), "vigil.hub.internal", "_INBOX.hub.1",
                        f"{subjects.edge_inbox_prefix(B)}.x", subjects.edge_notices(A)):
            await hub.publish(subject, b"n")
        await hub.flush()
        await wait_until(lambda: subjects.edge_notices(A) in got, timeout=10, what="the fence notice")
        assert set(got) == {subjects.edge_notices(A)}, got
    finally:
        await local.close()
        await hub.close()


async def _commands_stream(secure: SecureNats) -> nats.NATS:
    """The hub's VIGIL_COMMANDS with both edges' consumers, and one command queued for each."""
    hub = await secure.connect_hub()
    await ensure_commands_stream(hub)
    js = hub.jetstream()
    for edge in (A, B):
        await js.add_consumer(subjects.COMMANDS_STREAM, consumer_config(edge))
        await js.publish(subjects.edge_commands(edge), f"command for {edge}".encode())
    return hub


async def _pull(client: nats.NATS, edge: str) -> bytes:
    """One command from `edge`'s consumer, pulled and acknowledged across the leaf."""
    js = client.jetstream(domain=subjects.HUB_DOMAIN)
    pull = await js.pull_subscribe_bind(durable=subjects.command_consumer(edge), stream=subjects.COMMANDS_STREAM,
                                        inbox_prefix=f"{subjects.edge_inbox_prefix(edge)}.".encode())
    [msg] = await pull.fetch(1, timeout=10)
    await msg.ack_sync(timeout=10)
    return msg.data


async def test_an_edge_pulls_and_acknowledges_only_its_own_commands(boundary: SecureNats) -> None:
    """The agent's user pulls its own consumer and acknowledges what it took (the stream forgets
    it); an intruder on B's box cannot pull A's consumer, nor put a command into either edge's
    subject, its own included."""
    hub = await _commands_stream(boundary)
    agent = await boundary.connect_agent(A)  # its login carries its own inbox prefix
    intruder = await _intruder(boundary, B)
    try:
        async def pulled() -> bool:
            try:
                return await _pull(agent, A) == f"command for {A}".encode()
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
                return False  # the leaf's interest is still on its way

        await wait_until(pulled, timeout=30, what="A pulls its own command")
        js = hub.jetstream()
        assert (await js.consumer_info(subjects.COMMANDS_STREAM, subjects.command_consumer(A))).num_pending == 0
        with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
            await intruder.request(subjects.command_fetch_subject(A), b'{"batch": 1}', timeout=2)
        for subject in (subjects.edge_commands(A), subjects.edge_commands(B)):
            await intruder.publish(subject, b"forged")
        await _fence(intruder, B)
        info = await js.stream_info(subjects.COMMANDS_STREAM)
        assert info.state.messages == 1, "only B's own, hub-made command is in the stream"
        assert (await js.consumer_info(subjects.COMMANDS_STREAM, subjects.command_consumer(A))).num_pending == 0
        assert await _pull(intruder, B) == f"command for {B}".encode(), "B's box takes its own command"
    finally:
        await intruder.close()
        await agent.close()
        await hub.close()


async def test_the_agent_may_only_use_its_own_subjects_on_the_site(boundary: SecureNats) -> None:
    """On the edge's own server too: the agent's user sends only its edge's subjects (and commands
    to robots), never a robot's own subjects: it cannot speak for a robot."""
    agent = await boundary.connect_agent(A)
    admin = await boundary.connect_site_admin(A)
    got: list[str] = []

    async def collect(msg: nats.aio.msg.Msg) -> None:
        got.append(msg.subject)

    try:
        await admin.subscribe(">", cb=collect)
        await admin.flush()
        for subject in ("robots.status.r1", "robots.cmd.ack.r1", subjects.edge_notices(B), subjects.edge_notices(A)):
            await agent.publish(subject, b"x")
        await agent.flush()
        await wait_until(lambda: subjects.edge_notices(A) in got, timeout=10, what="the agent's own publish")
        assert got == [subjects.edge_notices(A)]
    finally:
        await agent.close()
        await admin.close()


async def test_a_robot_may_only_use_its_own_robot_subjects(boundary: SecureNats) -> None:
    site = boundary.site("site-r")
    site.server = NatsServer(dataclasses.replace(site.server.config, robots=(("r1", hash_password("robot-1")),)),
                             site.server.run_dir)
    robot = await nats.connect((await boundary.ensure_site("site-r")).server.url, user="r1", password="robot-1")
    admin = await boundary.connect_site_admin("site-r")
    got: list[str] = []

    async def collect(msg: nats.aio.msg.Msg) -> None:
        got.append(msg.subject)

    try:
        await admin.subscribe(">", cb=collect)
        await admin.flush()
        for subject in ("robots.status.r2", subjects.edge_events("site-r"), "robots.status.r1"):
            await robot.publish(subject, b"x")
        await robot.flush()
        await wait_until(lambda: "robots.status.r1" in got, timeout=10, what="the robot's own publish")
        assert got == ["robots.status.r1"]
        assert "Authorization Violation" in await _refused(site.server.url, user="r1", password="guess")
    finally:
        await robot.close()
        await admin.close()
    for bad in ("agent", "r.1", ""):
        with pytest.raises(NatsConfigError, match="robot id"):
            dataclasses.replace(site.server.config, robots=((bad, hash_password("x")),)).render()


async def test_a_robot_cannot_read_another_robots_commands_nor_command_itself(boundary: SecureNats) -> None:
    """Subscribed to its own and another robot's command subjects, r1 gets only its own; a command
    it sends itself, or another robot's status, reaches nobody."""
    site = boundary.site("site-rc")
    site.server = NatsServer(dataclasses.replace(site.server.config, robots=(
        ("r1", hash_password("robot-1")), ("r2", hash_password("robot-2")))), site.server.run_dir)
    url = (await boundary.ensure_site("site-rc")).server.url
    denied: list[str] = []

    async def on_error(exc: Exception) -> None:
        denied.append(str(exc))

    robot = await nats.connect(url, user="r1", password="robot-1", error_cb=on_error)
    agent = await boundary.connect_agent("site-rc")
    admin = await boundary.connect_site_admin("site-rc")
    at_robot: list[str] = []
    seen: list[str] = []

    async def robot_got(msg: nats.aio.msg.Msg) -> None:
        at_robot.append(msg.subject)

    async def admin_saw(msg: nats.aio.msg.Msg) -> None:
        seen.append(msg.subject)

    try:
        for subject in ("robots.cmd.r2", "robots.settings.desired.r2", "robots.cmd.>", "robots.cmd.r1"):
            await robot.subscribe(subject, cb=robot_got)
        await robot.flush()
        await wait_until(lambda: len(denied) >= 3, timeout=10, what="the refused subscriptions")
        assert all("permissions violation for subscription" in d.lower() for d in denied), denied
        for subject in ("robots.cmd.r2", "robots.settings.desired.r2", "robots.cmd.r1"):
            await agent.publish(subject, b"c")
        await agent.flush()
        await wait_until(lambda: "robots.cmd.r1" in at_robot, timeout=10, what="r1's own command")
        assert at_robot == ["robots.cmd.r1"]
        await admin.subscribe("robots.>", cb=admin_saw)
        await admin.flush()
        for subject in ("robots.cmd.r1", "robots.settings.desired.r1", "robots.status.r2", "robots.cmd.ack.r2",
                        "robots.status.r1"):
            await robot.publish(subject, b"x")
        await robot.flush()
        await wait_until(lambda: "robots.status.r1" in seen, timeout=10, what="r1's own status")
        assert seen == ["robots.status.r1"], "no command to itself, nothing in another robot's name"
    finally:
        for client in (robot, agent, admin):
            await client.close()


async def test_the_agents_jetstream_is_the_boxs_own_and_never_the_hubs(boundary: SecureNats) -> None:
    """The agent's `$JS.API.>` is its own server's JetStream (the robot streams live there, never at
    the hub); the hub's JetStream (`$JS.hub.API.>`) stays closed to it but for its command pulls."""
    agent = await boundary.connect_agent(A)
    hub = await boundary.connect_hub()
    try:
        await ensure_robot_streams(agent, 3600, 1024 * 1024 * 8)
        local = agent.jetstream()
        assert (await local.account_info()).domain == boundary.sites[A].server.config.domain
        assert (await local.stream_info(robots_wire.EVENTS_STREAM)).config.name == robots_wire.EVENTS_STREAM
        with pytest.raises(nats.js.errors.NotFoundError):
            await hub.jetstream().stream_info(robots_wire.EVENTS_STREAM)
        at_hub = agent.jetstream(domain=subjects.HUB_DOMAIN, timeout=1)
        for attempt in (at_hub.stream_info(subjects.EVENTS_STREAM), at_hub.account_info(),
                        at_hub.add_stream(name="ROBOT_EVENTS", subjects=["robots.x.*"])):
            with pytest.raises((nats.errors.NoRespondersError, nats.errors.TimeoutError, nats.js.errors.Error)):
                await attempt
        for verb in (f"STREAM.INFO.{subjects.EVENTS_STREAM}", f"STREAM.PURGE.{subjects.EVENTS_STREAM}"):
            with pytest.raises((nats.errors.NoRespondersError, nats.errors.TimeoutError)):
                await agent.request(f"$JS.{subjects.HUB_DOMAIN}.API.{verb}", b"", timeout=1)
        assert [s.config.name for s in await hub.jetstream().streams_info()] == [subjects.EVENTS_STREAM]
    finally:
        await agent.close()
        await hub.close()

# --- revocation and changes ------------------------------------------------------------------


async def _leaf_refused_after(secure: SecureNats, edge: str, mark: int) -> bool:
    log = secure.sites[edge].server.process.log_path.read_text()
    return log.count("Authorization Violation") > mark


async def test_a_revoked_edge_is_dropped_within_five_seconds_and_cannot_come_back(boundary: SecureNats) -> None:
    site_a, site_b = boundary.sites[A], boundary.sites[B]
    b_before = {cid for cid, user in (await boundary.access.leaf_users()).items() if user in _leaves_of(B)}
    violations = site_a.server.process.log_path.read_text().count("Authorization Violation")
    started = asyncio.get_running_loop().time()
    await boundary.access.revoke(A, [site_b.leaf_user])

    async def a_gone() -> bool:
        users = set((await boundary.access.leaf_users()).values())
        return not users & {leaf_user_name(A), replica_leaf_user(A)}

    await wait_until(a_gone, timeout=5, what="the revoked edge's leaf connection to go")
    assert asyncio.get_running_loop().time() - started < 5
    await wait_until(lambda: _leaf_refused_after(boundary, A, violations), timeout=20,
                     what="the revoked edge's reconnect to be refused")
    assert not site_a.server.leaf_connected()
    users = await boundary.access.leaf_users()
    assert sorted(users.values()) == _leaves_of(B)
    assert set(users) == b_before, "the remaining edge's connection must not be dropped"
    with pytest.raises(ValueError, match="cannot be among the remaining"):
        await boundary.access.revoke(B, [site_b.leaf_user])


async def test_a_new_leaf_password_drops_the_connection_made_with_the_old_one(boundary: SecureNats) -> None:
    site_a, site_b = boundary.sites[A], boundary.sites[B]
    violations = site_a.server.process.log_path.read_text().count("Authorization Violation")
    rekeyed = EdgeLeafUser(A, hash_password("a-new-password-the-box-does-not-have"))
    await boundary.access.apply([rekeyed, site_b.leaf_user])
    await wait_until(lambda: _leaf_refused_after(boundary, A, violations), timeout=20,
                     what="the old password's reconnect to be refused")
    assert sorted((await boundary.access.leaf_users()).values()) == _leaves_of(B)


async def test_a_revocation_while_the_server_cannot_be_asked_holds_after_its_restart(boundary: SecureNats) -> None:
    """The server is down: apply says so (it is not a refusal), and the file keeps the change, so
    the server starts without the revoked edge; NatsAccess finds the restarted server again."""
    site_a, site_b = boundary.sites[A], boundary.sites[B]
    boundary.hub.stop()
    violations = site_a.server.process.log_path.read_text().count("Authorization Violation")
    with pytest.raises(NatsAccessError) as failed:
        await boundary.access.revoke(A, [site_b.leaf_user])
    assert not isinstance(failed.value, NatsRefused)
    assert leaf_user_name(A) not in boundary.auth.users_file.read_text()
    await boundary.hub.start()
    await wait_until(lambda: _leaf_refused_after(boundary, A, violations), timeout=30,
                     what="the revoked edge refused by the restarted server")

    async def only_b() -> bool:
        try:
            return sorted((await boundary.access.leaf_users()).values()) == _leaves_of(B)
        except NatsAccessError:  # the system connection is still coming back
            return False

    await wait_until(only_b, timeout=30, what="B back, alone, and the restarted server found")
    await boundary.access.apply([site_b.leaf_user])


async def test_a_file_the_server_refuses_is_rolled_back_and_said(boundary: SecureNats,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    before = boundary.auth.users_file.read_text()
    monkeypatch.setattr(access_module, "render_users", lambda *args: "accounts { VIGIL: { users: [ { user: ")
    with pytest.raises(NatsRefused, match="refused RELOAD"):
        await boundary.access.apply([boundary.sites[B].leaf_user])
    assert boundary.auth.users_file.read_text() == before
    assert sorted(u or "" for u in (await boundary.access.leaf_users()).values()) == _leaves_of(A, B)


async def test_the_hub_applies_its_databases_edges_at_start(boundary: SecureNats, db: asyncpg.Pool,
                                                            db_dsn: str, tmp_path: Path) -> None:
    """B was revoked while the hub was down: the users file still lets it in, the database does
    not. The hub's start puts the file in line with the database and drops B's leaf."""
    site_a, site_b = boundary.sites[A], boundary.sites[B]
    await db.execute("INSERT INTO edges (edge_id, leaf_password_hash) VALUES ($1, $2), ($3, $4)",
                     A, site_a.leaf_user.password_bcrypt, B, site_b.leaf_user.password_bcrypt)
    await db.execute("UPDATE edges SET revoked_at = now(), leaf_password_hash = NULL WHERE edge_id = $1", B)
    config = load_hub_config(env={}, overrides={
        "database_url": db_dsn, "nats_url": boundary.hub.url, "http_port": free_port(),
        "auth": {"secret_file": str(tmp_path / "hub-secret.key")},
        **boundary.auth.hub_settings(manage_users=True, leaf_url=f"tls://{HOST}:{boundary.hub.config.leaf_port}")})
    stop = asyncio.Event()
    hub = asyncio.create_task(run_hub(config, stop, handle_signals=False))
    try:
        async def started() -> bool:
            if hub.done():
                hub.result()
            return await tcp_port_open(HOST, config.http_port)

        await wait_until(started, timeout=60, what="the hub to start")
        assert sorted((await boundary.access.leaf_users()).values()) == _leaves_of(A)
        assert leaf_user_name(B) not in boundary.auth.users_file.read_text()
    finally:
        stop.set()
        await asyncio.wait_for(hub, 30)


# --- configs refuse what would open the boundary ---------------------------------------------


def test_configs_hold_hashes_and_refuse_what_would_open_the_boundary(tmp_path: Path) -> None:
    with pytest.raises(NatsConfigError, match="bcrypt hash"):
        NatsUser("hub", "plain-password")
    with pytest.raises(NatsConfigError, match="bcrypt hash"):
        EdgeLeafUser(A, "plain-password")
    with pytest.raises(NatsConfigError, match="not a valid edge id"):
        EdgeLeafUser("Site.A", hash_password("x"))
    hashed = hash_password("x")
    with pytest.raises(NatsConfigError, match="repeated: edge-site-a"):
        render_users("hub", hashed, "sys", hashed, [EdgeLeafUser(A, hashed), EdgeLeafUser(A, hashed)])
    text = render_users("hub", hashed, "sys", hashed, [EdgeLeafUser(A, hashed)])
    assert '"vigil.edge.site-a.>", "_INBOX_site-a.>"' in text and '"_INBOX.>"' not in text
    # The JetStream API only as far as pulling and acknowledging its own commands; never publishing one.
    js_subjects = sorted(set(re.findall(r'"(\$JS[^"]*)"', text)))
    assert js_subjects == [f"$JS.ACK.{subjects.COMMANDS_STREAM}.cmd-site-a.>",
                           f"$JS.hub.API.CONSUMER.MSG.NEXT.{subjects.COMMANDS_STREAM}.cmd-site-a"]
    assert 'deny: ["vigil.edge.site-a.cmd"]' in text
    tls = TlsFiles(tmp_path / "c", tmp_path / "k", tmp_path / "ca")
    for url in ("nats-leaf://hub:7422", "tls://hub", "tls://u:p@hub:7422", "tls://hub:port"):
        with pytest.raises(NatsConfigError, match="tls://host:port"):
            LeafRemote(url, "u", "p", tls)
    auth = EdgeNatsAuth(tmp_path / "edge", A)
    with pytest.raises(NatsConfigError, match="leaf credentials"):
        auth.remote()  # never enrolled


def test_hub_nats_settings_are_checked_at_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="system_password_file is required"):
        load_hub_config(env={}, overrides={"nats_access": {"users_file": "u.conf"}, "nats_password_file": "p"})
    with pytest.raises(ConfigError, match="nats_password_file is required"):
        load_hub_config(env={}, overrides={"nats_access": {"users_file": "u.conf", "system_password_file": "s"}})
    with pytest.raises(ConfigError, match="tls://"):
        load_hub_config(env={}, overrides={"nats_access": {"leaf_url": "nats://hub:7422"}})
    config = load_hub_config(env={})
    assert (config.nats_user, config.nats_password_file, config.nats_access.users_file) == ("hub", "", "")


async def test_an_unreadable_password_file_stops_the_edge_agent_before_it_journals(tmp_path: Path) -> None:
    from edge.agent import run_edge
    from edge.config import load_edge_config
    from shared.signing import create_key_file

    password_file = tmp_path / "agent.password"
    password_file.write_text("secret\n")
    password_file.chmod(0o644)
    config = load_edge_config(env={}, overrides={"edge_id": A, "data_dir": str(tmp_path / "edge"),
                                                 "nats_password_file": str(password_file)})
    create_key_file(config.key_path)
    with pytest.raises(ConfigError, match="must be 600"):
        await run_edge(config, asyncio.Event(), handle_signals=False)
    assert not config.journal_path.exists()
