"""The edge agent process: journal, forwarder, device links and sources and the local page, with a
clean SIGTERM (stop links and sources, let in-flight segments settle, close the journal)."""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import nats
import nats.errors
from aiohttp import web

from edge.commands import CommandRunner
from edge.config import EdgeConfig
from edge.demo_source import run_demo_source
from edge.discovery import advertise_agent
from edge.forwarder import Forwarder, ForwarderSettings
from edge.hub_clock import HubClock
from edge.journal import Journal
from edge.links.gsm.link import GsmLink
from edge.links.gsm.templates import load_templates
from edge.links.robots import RobotLink, RobotRelay
from edge.links.satel import SatelLink
from edge.local_api import build_app
from edge.probe import run_probe
from edge.readiness import readiness
from edge.local_auth import LocalAuth
from edge.refusals import RefusalState, listen_for_refusals
from edge.replication import ReplicationError, Replicator, hub_replica_login
from edge.status_report import StatusReporter, link_reports
from shared import subjects
from shared.backoff import Backoff, sleep_or_stop
from shared.config import ConfigError
from shared.eventloop import stop_on_signals
from shared.private_file import read_private_file
from shared.signing import load_key_file

log = logging.getLogger("vigil.edge")


async def _prune_loop(journal: Journal, stop: asyncio.Event, interval_s: float) -> None:
    while not await sleep_or_stop(interval_s, stop):
        pruned = await journal.prune()
        if pruned:
            log.info("pruned %d forwarded journal rows past retention", pruned)


def local_nats_login(config: EdgeConfig) -> dict[str, str]:
    """`nats.connect` keyword arguments for the agent's user on the site's server: its user and
    password (none without a password file), and the reply inbox its permissions allow, so the
    hub's PubAcks reach it. Raises ConfigError when the password file cannot be read."""
    login = {"inbox_prefix": subjects.edge_inbox_prefix(config.edge_id)}
    if config.nats_password_file:
        login["user"] = config.nats_user
        login["password"] = read_private_file(Path(config.nats_password_file), "agent NATS password file", ConfigError)
    return login


async def _connect_local_nats(config: EdgeConfig, login: dict[str, str], stop: asyncio.Event) -> nats.NATS | None:
    """Connect to the site's leaf server, retrying with backoff: the journal keeps working
    meanwhile, and nothing is lost while the leaf server is still starting."""
    backoff = Backoff(0.2, 5.0)
    while True:
        try:
            return await nats.connect(
                config.nats_url, name=f"vigil-edge-{config.edge_id}", max_reconnect_attempts=-1,
                reconnect_time_wait=0.5, connect_timeout=2, **login,  # type: ignore[arg-type]
            )
        except (OSError, nats.errors.Error, asyncio.TimeoutError) as exc:
            delay = backoff.next_delay()
            log.warning("local NATS %s unreachable (%s); retrying in %.1f s", config.nats_url, exc, delay)
            if await sleep_or_stop(delay, stop):
                return None


async def run_edge(config: EdgeConfig, stop: asyncio.Event | None = None, *, handle_signals: bool = True) -> None:
    """Run the edge agent until `stop` is set or SIGTERM/SIGINT arrives (when
    `handle_signals`; tests embedding it pass False)."""
    stop = stop or asyncio.Event()
    if handle_signals:
        stop_on_signals(stop)

    # The key comes first: a box without the key the hub enrolled must not journal anything it
    # could only forward under another key (the hub would refuse it all), so it stops here,
    # before the journal is even opened.
    signer = load_key_file(config.key_path)
    login = local_nats_login(config)  # an unreadable password file stops the start here too
    replica_login = None
    if config.replication.enabled and config.replication.kind == "hub":
        try:
            replica_login = hub_replica_login(config)
        except ReplicationError as exc:
            raise ConfigError(f"replication: {exc}") from None
    journal = await Journal.open(
        config.journal_path, max_bytes=config.journal.max_bytes, retention_s=config.journal.retention_hours * 3600,
        disk=config.journal.disk_policy(),
    )
    # Litestream replicates the journal from its first write on, hub or no hub (edge.replication);
    # it stops only after the journal is closed, so its last sync holds the last row.
    replication_stop = asyncio.Event()
    replicator = Replicator(config.replication, config.journal_path, Path(config.data_dir) / "litestream",
                            hub=replica_login) if config.replication.enabled else None
    replication_task = asyncio.create_task(replicator.run(replication_stop), name="replication") \
        if replicator else None

    async def stop_replication() -> None:
        replication_stop.set()
        if replication_task is not None:
            await replication_task

    # Device links start first: the site is watched and journaled even while the local NATS
    # server (and so forwarding) is not there yet. A link finishes its request in flight (at most
    # request_timeout_s) when stopped, and records itself down.
    satel_links = [SatelLink(panel, journal) for panel in config.satel.panels]
    link_tasks = [asyncio.create_task(link.run(stop), name=f"satel-{link.panel_id}") for link in satel_links]
    # A modem's templates were checked when the config loaded (edge.config), so this cannot fail.
    gsm_links = [GsmLink(modem, journal, load_templates(Path(modem.templates_file) if modem.templates_file else None,
                                                        zone=modem.timezone)) for modem in config.gsm.modems]
    link_tasks += [asyncio.create_task(link.run(stop), name=f"gsm-{link.modem_id}") for link in gsm_links]
    nc = await _connect_local_nats(config, login, stop)
    if nc is None:
        await asyncio.gather(*link_tasks, return_exceptions=True)
        await journal.close()
        await stop_replication()
        return
    fw_cfg = config.forwarder
    forwarder = Forwarder(
        config.edge_id, journal, signer, nc,
        ForwarderSettings(
            segment_max_events=fw_cfg.segment_max_events, segment_max_bytes=fw_cfg.segment_max_bytes,
            window=fw_cfg.window, ack_timeout_s=fw_cfg.ack_timeout_s, evt_events_per_s=fw_cfg.evt_events_per_s,
        ),
    )
    forwarder.start()
    refusals = RefusalState()
    # On the forwarder's own leaf connection: the hub's notices reach this box the way its
    # segments leave it.
    await listen_for_refusals(nc, config.edge_id, refusals)

    # The hub's answers to status reports tell the box the hub's time; commands expire by it.
    hub_clock = HubClock()
    robot_relay = RobotRelay(config.edge_id, nc, journal, config.robots, hub_clock)
    # The robots talk to this box's own server: their link needs no hub, only the local NATS.
    robot_link = RobotLink(config.edge_id, config.robots, journal, nc, robot_relay) if config.robots.robots else None
    hub_commands = CommandRunner(config.edge_id, nc, journal, signer.private_raw(),
                                 {link.panel_id: link for link in satel_links}, hub_clock, robot_relay)

    def status() -> dict:
        return {
            "edge_id": config.edge_id,
            "key_id": signer.key_id,
            "journal": journal.stats(),
            # The local page's banner: rows lost before reaching the hub, appends refused.
            "disk_pressure": journal.pressure_status(),
            "forwarder": forwarder.status(),
            "refusal": refusals.status(),
            "nats": {"connected": nc.is_connected, "url": config.nats_url},
            "links": {"satel": [link.status() for link in satel_links], "gsm": [link.status() for link in gsm_links]},
            "robots": robot_link.status() if robot_link else {"robots": [], "commands": robot_relay.status()},
            "commands": hub_commands.status(),
            "replication": replicator.status() if replicator else {"state": "disabled"},
        }

    tasks: list[asyncio.Task[None]] = []

    async def ready() -> dict:
        return await readiness(journal, nc, tasks)

    # A new token for the on-box tools at every start (edge.local_auth); removed at a clean stop.
    auth = LocalAuth.start(config.data_dir)
    runner = web.AppRunner(build_app(status, auth, {link.panel_id: link for link in satel_links}, robot_link, journal,
                                     ready=ready), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, config.http_host, config.http_port).start()
    log.info("edge %s up: local page http://%s:%d, key %s", config.edge_id, config.http_host, config.http_port, signer.key_id)

    tasks.append(asyncio.create_task(_prune_loop(journal, stop, config.journal.prune_interval_s), name="journal-prune"))
    tasks += link_tasks
    reporter = StatusReporter(config.edge_id, journal, signer, nc,
                              link_reports(satel_links, gsm_links, robot_link.trackers.values() if robot_link else ()),
                              config.status_report, hub_clock=hub_clock, forwarded=lambda: forwarder.forwarded)
    tasks.append(asyncio.create_task(reporter.run(stop), name="status-report"))
    tasks.append(asyncio.create_task(hub_commands.run(stop), name="hub-commands"))
    # The relay outlives the command runner's pulls: on stop it settles what still waits.
    tasks.append(asyncio.create_task(robot_relay.run(stop), name="robot-commands"))
    if robot_link is not None:
        tasks.append(asyncio.create_task(robot_link.run(stop), name="robots"))
    if config.demo.enabled:
        tasks.append(asyncio.create_task(run_demo_source(journal, stop, config.demo.interval_s), name="demo-source"))
    if config.probe.enabled:
        tasks.append(asyncio.create_task(run_probe(journal, stop, config.probe.interval_s), name="probe"))
    if config.discovery.enabled:
        # The page's real port (runner.addresses), also when http_port 0 let the OS choose it.
        tasks.append(asyncio.create_task(advertise_agent(config, runner.addresses[0][1], stop), name="discovery"))

    await stop.wait()
    log.info("edge stopping")
    await asyncio.gather(*tasks, return_exceptions=True)
    await forwarder.drain(config.forwarder.drain_on_stop_s)
    await forwarder.stop()
    await runner.cleanup()
    auth.stop()
    await nc.drain()
    await journal.close()
    await stop_replication()
    log.info("edge stopped")
