"""Tells the hub how this box is, every `status_report.interval_s` (30 s): the journal's backlog per
lane and the age of its oldest row, the device links, the box's clock and journal epoch
(shared.edge_status). The hub keeps only the latest report per edge, outside the events table.

Each report is a core NATS request on `vigil.edge.<edge>.status`, signed with the edge's key. The
hub answers once it has the report, so the agent knows whether it was heard: an unanswered report
(leaf link down, no hub listening, hub too slow) is sent again after `retry_s` rather than a whole
interval later. That is what puts a report at the hub right after the WAN returns — the agent's own
connection is to the site's server, which stays up through a WAN cut, so a reconnect callback would
miss exactly that case.

Each lane also says how fast it drains: rows the hub acknowledged per second since the previous
report (`forwarded_per_s`, from the forwarder's counts), so the hub can show "catching up: N
events, ~T s left". While rows wait, reports go every `catchup_interval_s` (5 s) instead.
"""
from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import Protocol

import msgspec
import nats.errors
from nats.aio.client import Client as NatsClient
from prometheus_client import Counter

from edge.config import StatusReportSettings
from edge.hub_clock import HubClock
from edge.journal import Journal, JournalError
from shared import subjects
from shared.backoff import sleep_or_stop
from shared.clock import SYSTEM_CLOCK, Clock
from shared.edge_status import (EdgeStatusReport, LaneBacklog, LinkReport, decode_answer, encode_report,
                                report_headers)
from shared.signing import Signer

log = logging.getLogger("vigil.edge.status")

REPORTS = Counter("vigil_edge_status_reports_total",
                  "Status reports by outcome: answered by the hub, unanswered, failed (journal unreadable)", ["outcome"])

# How long the hub may take to answer a report before it counts as unheard; "no responders" (the
# leaf link is down) comes back at once.
REPLY_TIMEOUT_S = 2.0


def _agent_version() -> str:
    try:
        return importlib.metadata.version("vigil")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


AGENT_VERSION = _agent_version()


class DeviceLink(Protocol):
    """What a report reads of a Satel link (edge.links.satel.SatelLink)."""

    panel_id: str
    link_state: Enum
    since: datetime


class ModemLink(Protocol):
    """What a report reads of a GSM link (edge.links.gsm.GsmLink)."""

    modem_id: str
    state: str
    since: datetime


class RobotView(Protocol):
    """What a report reads of a robot (edge.links.robots.RobotTracker)."""

    robot_id: str
    connection: str | None
    connection_since: datetime | None


def link_reports(satel: Sequence[DeviceLink], gsm: Sequence[ModemLink] = (),
                 robots: Iterable[RobotView] = ()) -> Callable[[], list[LinkReport]]:
    """The links part of a report, read afresh for each report; a robot's state is its
    connection (ONLINE, OFFLINE, CONNECTION_BROKEN, or UNKNOWN before its first word)."""
    robots = list(robots)
    return lambda: [*(LinkReport("satel", link.panel_id, str(link.link_state.value), link.since) for link in satel),
                    *(LinkReport("gsm", link.modem_id, link.state, link.since) for link in gsm),
                    *(LinkReport("robot", robot.robot_id, robot.connection or "UNKNOWN", robot.connection_since)
                      for robot in robots)]


def drain_rates(previous: tuple[float, Mapping[str, int]] | None, now: float,
                counts: Mapping[str, int]) -> dict[str, float | None]:
    """Rows forwarded per second per lane between `previous` (monotonic time, cumulative counts)
    and now; None for every lane without a previous sample (or no time between them)."""
    if previous is None or now <= previous[0]:
        return {lane: None for lane in counts}
    at, before = previous
    return {lane: round(max(0, n - before.get(lane, 0)) / (now - at), 1) for lane, n in counts.items()}


class StatusReporter:
    """Builds, signs and sends this edge's status reports."""

    def __init__(self, edge_id: str, journal: Journal, signer: Signer, nc: NatsClient,
                 links: Callable[[], list[LinkReport]], settings: StatusReportSettings,
                 clock: Clock = SYSTEM_CLOCK, hub_clock: HubClock | None = None,
                 forwarded: Callable[[], Mapping[str, int]] | None = None) -> None:
        self.edge_id = edge_id
        self.journal = journal
        self.signer = signer
        self.nc = nc
        self.links = links
        self.settings = settings
        self.clock = clock
        self.hub_clock = hub_clock  # fed the hub's time from every answer
        self.forwarded = forwarded  # rows the hub acknowledged per lane so far (edge.forwarder.Forwarder)
        self._last_counts: tuple[float, dict[str, int]] | None = None
        self.next_interval_s = settings.interval_s
        self.run_no = 0  # set by start(): this agent start's number in the journal
        self.sent = 0
        self.last_outcome = "answered"  # the first report is logged only if it is not answered

    async def start(self) -> None:
        """Count this agent start in the journal; reports are numbered within it."""
        self.run_no = await self.journal.next_run()

    async def build(self) -> EdgeStatusReport:
        """The next report, as of now."""
        now = self.clock.now()
        rates: Mapping[str, float | None] = {}
        if self.forwarded is not None:
            counts = dict(self.forwarded())
            mono = self.clock.monotonic()
            rates = drain_rates(self._last_counts, mono, counts)
            self._last_counts = (mono, counts)
        lanes = {}
        for lane in subjects.LANES:
            oldest = await self.journal.oldest_unforwarded(lane)
            age = None if oldest is None else round(max(0.0, (now - oldest).total_seconds()), 3)
            lanes[lane] = LaneBacklog(self.journal.unforwarded[lane], age, rates.get(lane))
        # The report says when the next is due: sooner while a backlog drains.
        backlog = any(b.rows for b in lanes.values())
        self.next_interval_s = (min(self.settings.catchup_interval_s, self.settings.interval_s) if backlog
                                else self.settings.interval_s)
        self.sent += 1
        return EdgeStatusReport(
            edge=self.edge_id, epoch=self.journal.epoch.id, run=self.run_no, n=self.sent, sent_at=now,
            interval_s=self.next_interval_s, lanes=lanes, links=self.links(),
            journal_bytes=self.journal.total_bytes, version=AGENT_VERSION)

    async def send(self) -> str:
        """Send one report; its outcome: `answered` (the hub has it), `unanswered`, or `failed`
        (the journal could not be read, so there was nothing true to send)."""
        try:
            if not self.run_no:
                await self.start()
            report = await self.build()
        except (JournalError, sqlite3.Error) as exc:
            return self._outcome("failed", f"no report: the journal cannot be read ({exc})")
        payload = encode_report(report)
        started = time.monotonic()
        try:
            reply = await self.nc.request(subjects.edge_status(self.edge_id), payload, timeout=REPLY_TIMEOUT_S,
                                          headers=report_headers(self.signer, payload))
        except (nats.errors.Error, asyncio.TimeoutError) as exc:
            return self._outcome("unanswered", f"status report {report.run}.{report.n} not answered by the hub "
                                               f"({type(exc).__name__})")
        if self.hub_clock is not None and reply.data:
            try:
                answer = decode_answer(reply.data)
            except (msgspec.DecodeError, msgspec.ValidationError):
                log.warning("the hub's answer to a status report is unreadable", extra={"edge": self.edge_id})
            else:
                self.hub_clock.observe(report.sent_at, time.monotonic() - started, answer.hub_time)
        return self._outcome("answered", "the hub answers status reports")

    def _outcome(self, outcome: str, message: str) -> str:
        """Count the outcome; log it when it differs from the last one (not every retry)."""
        REPORTS.labels(outcome).inc()
        if outcome != self.last_outcome:
            level = logging.INFO if outcome == "answered" else logging.WARNING
            retry = "" if outcome == "answered" else f"; trying again every {self.settings.retry_s:.1f} s"
            log.log(level, message + retry, extra={"edge": self.edge_id, "outcome": outcome})
        self.last_outcome = outcome
        return outcome

    async def run(self, stop: asyncio.Event) -> None:
        """Report at once, then every interval (every `catchup_interval_s` while rows wait; after
        `retry_s` when not answered), until `stop`."""
        while True:
            answered = await self.send() == "answered"
            if await sleep_or_stop(self.next_interval_s if answered else self.settings.retry_s, stop):
                return
