"""Auto-arm schedules and open/close supervision (issue 13): the pure rules (DST, holidays,
missed runs, the forced retry), the scheduler's passes against real PostgreSQL with a fake `now`
(partition state ingested as edges send it, command results settled as ingest settles them), and
the REST routes (roles, scope, validation, versions, audit, the morning report)."""
from __future__ import annotations

import asyncio
import uuid
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import asyncpg
import msgspec
import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import REGISTRY

from hub.commands import codes, scheduler
from hub.commands.domain import Status
from hub.commands.repository import ResultEvent, apply_results
from hub.commands.schedules import VIOLATED_FORCE_POSSIBLE, Due, Outcome, ScheduleError, check_days, decide_due, \
    due_between, local_instant, settle_run, zone_of
from hub.commands.supervision import Kind, Window, check_window, deadline_missed, deadlines, unexpected_opening
from hub.config import AutoArmSettings
from hub.secret_box import SecretBox
from shared.clock import FakeClock
from shared.commands import CommandResult, Outcome as ResultOutcome
from shared.envelope import Priority
from support.api import as_role, json_of
from support.site import Site
from support.waiting import wait_until

WARSAW = "Europe/Warsaw"
UTC = timezone.utc
CODE = "73915482"  # distinctive, so a scan of every text column finds it only if it leaked
EVERY_DAY = [1, 2, 3, 4, 5, 6, 7]
# Sunday 22 November 2026: Warsaw is on CET (UTC+1), so 22:00 local is 21:00 UTC.
DUE = datetime(2026, 11, 22, 21, 0, tzinfo=UTC)
LOOKBACK = timedelta(minutes=10)

SQL_SCHEDULE = """
INSERT INTO auto_arm_schedules (panel_id, partition, at_time, days, time_zone, mode, force_on_violation, enabled,
                                checked_until, created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'user:1') RETURNING id
"""
SQL_SUPERVISION = """
INSERT INTO partition_supervision (panel_id, partition, time_zone, days, open_from, open_until, close_by,
                                   checked_until, created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'user:1') RETURNING id
"""
SQL_RUNS = "SELECT * FROM auto_arm_runs ORDER BY id"
SQL_COMMANDS = "SELECT * FROM satel_commands ORDER BY created_at, force"
SQL_OPEN_CLOSE = "SELECT * FROM bundle_alarms WHERE alarm_type = 'OPEN_CLOSE' ORDER BY id"
SQL_TEXT_COLUMNS = """
SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c
JOIN information_schema.tables t ON t.table_name = c.table_name AND t.table_schema = c.table_schema
WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
  AND c.data_type IN ('text', 'character varying', 'jsonb', 'json', 'bytea', 'ARRAY')
"""


# --- the pure rules -------------------------------------------------------------------------------

def test_spring_forward_gap_runs_at_the_first_valid_instant_once() -> None:
    zone = zone_of(WARSAW)
    # 29 March 2026: Warsaw's clocks jump from 02:00 to 03:00; 02:30 does not exist.
    assert local_instant(date(2026, 3, 29), time(2, 30), zone) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    dues = due_between(time(2, 30), (7,), zone, datetime(2026, 3, 28, tzinfo=UTC), datetime(2026, 3, 30, tzinfo=UTC))
    assert dues == [Due(datetime(2026, 3, 29, 1, 0, tzinfo=UTC), date(2026, 3, 29))]
    # A zone that skipped a whole day (Samoa, 30 December 2011): the first instant after it.
    assert local_instant(date(2011, 12, 30), time(12), zone_of("Pacific/Apia")) == \
        datetime(2011, 12, 30, 10, 0, tzinfo=UTC)


def test_autumn_ambiguous_time_runs_once_at_its_first_occurrence() -> None:
    zone = zone_of(WARSAW)
    # 25 October 2026: 02:00-03:00 happens twice; the first 02:30 is CEST (00:30 UTC).
    dues = due_between(time(2, 30), EVERY_DAY, zone, datetime(2026, 10, 24, 12, tzinfo=UTC),
                       datetime(2026, 10, 25, 12, tzinfo=UTC))
    assert dues == [Due(datetime(2026, 10, 25, 0, 30, tzinfo=UTC), date(2026, 10, 25))]


def test_due_between_keeps_weekdays_and_the_open_closed_interval() -> None:
    zone = zone_of(WARSAW)
    week = due_between(time(22), (1, 7), zone, DUE - timedelta(days=7), DUE + timedelta(days=7))
    assert [d.local_day.isoweekday() for d in week] == [1, 7, 1, 7]  # start excluded, end included
    assert due_between(time(22), EVERY_DAY, zone, DUE, DUE + timedelta(hours=1)) == []  # start excluded
    assert [d.at for d in due_between(time(22), EVERY_DAY, zone, DUE - timedelta(seconds=1), DUE)] == [DUE]


def test_schedule_inputs_are_checked_naming_the_field() -> None:
    assert check_days([7, 1, 1]) == (1, 7)
    for days in ([], [0], [8]):
        with pytest.raises(ScheduleError) as err:
            check_days(days)
        assert err.value.field == "days"
    with pytest.raises(ScheduleError) as err:
        zone_of("Mars/Olympus")
    assert err.value.field == "time_zone"
    with pytest.raises(ScheduleError) as err:
        check_window(time(9), time(8), time(22))
    assert err.value.field == "open_until"
    with pytest.raises(ScheduleError) as err:
        check_window(time(7), time(9), time(9))
    assert err.value.field == "close_by"


def test_a_due_run_is_holiday_then_missed_then_already_armed_then_armed() -> None:
    due = Due(DUE, date(2026, 11, 22))
    late = DUE + timedelta(hours=2)
    assert decide_due(due, late, LOOKBACK, frozenset({due.local_day}), armed=True).outcome is Outcome.HOLIDAY
    missed = decide_due(due, late, LOOKBACK, frozenset(), armed=True)
    assert (missed.outcome, missed.reason) == (Outcome.MISSED, "missed")
    assert decide_due(due, DUE + LOOKBACK, LOOKBACK, frozenset(), armed=True).outcome is Outcome.ALREADY_ARMED
    assert decide_due(due, DUE, LOOKBACK, frozenset(), armed=False).outcome is Outcome.PENDING


@pytest.mark.parametrize("status, code, forced, force_on_violation, outcome, retry, reason", [
    (Status.SENT, None, False, True, None, False, None),
    (Status.ACK, 0, False, False, Outcome.ARMED, False, None),
    (Status.ACK, 0, True, True, Outcome.ARMED, False, None),
    (Status.NACK, VIOLATED_FORCE_POSSIBLE, False, True, Outcome.PENDING, True, None),
    (Status.NACK, VIOLATED_FORCE_POSSIBLE, False, False, Outcome.FAILED, False, "violated_zone"),
    (Status.NACK, VIOLATED_FORCE_POSSIBLE, True, True, Outcome.FAILED, False, "nack"),  # once only
    (Status.NACK, 0x01, False, True, Outcome.FAILED, False, "nack"),  # another refusal: force would not help
    (Status.TIMEOUT, None, False, True, Outcome.FAILED, False, "timeout"),
    (Status.EXPIRED, None, False, True, Outcome.FAILED, False, "expired"),
])
def test_settle_run(status: Status, code: int | None, forced: bool, force_on_violation: bool,
                    outcome: Outcome | None, retry: bool, reason: str | None) -> None:
    verdict = settle_run(status, code, "panel said so", forced, force_on_violation)
    if outcome is None:
        assert verdict is None
        return
    assert verdict is not None
    assert (verdict.outcome, verdict.retry_with_force, verdict.reason) == (outcome, retry, reason)


def test_supervision_rules() -> None:
    window = Window(WARSAW, (1, 2, 3, 4, 5), time(7), time(9), time(22, 15))
    monday = datetime(2026, 11, 23, tzinfo=UTC)
    found = deadlines(window, monday, monday + timedelta(days=1), frozenset())
    assert [(d.kind, d.due.at) for d in found] == [
        (Kind.FAILED_TO_OPEN, datetime(2026, 11, 23, 8, 0, tzinfo=UTC)),
        (Kind.FAILED_TO_CLOSE, datetime(2026, 11, 23, 21, 15, tzinfo=UTC))]
    assert deadlines(window, monday, monday + timedelta(days=1), frozenset({date(2026, 11, 23)})) == []
    assert deadline_missed(Kind.FAILED_TO_CLOSE, armed=False) and not deadline_missed(Kind.FAILED_TO_CLOSE, armed=True)
    assert deadline_missed(Kind.FAILED_TO_OPEN, armed=True) and not deadline_missed(Kind.FAILED_TO_OPEN, armed=False)
    local = zone_of(WARSAW)
    at = lambda h, m=0, day=23: datetime(2026, 11, day, h, m, tzinfo=local)  # noqa: E731
    assert unexpected_opening(window, at(6, 59), frozenset()) == date(2026, 11, 23)
    assert unexpected_opening(window, at(7), frozenset()) is None
    assert unexpected_opening(window, at(22, 14), frozenset()) is None
    assert unexpected_opening(window, at(22, 15), frozenset()) == date(2026, 11, 23)
    assert unexpected_opening(window, at(5, day=22), frozenset()) is None  # Sunday: not supervised
    assert unexpected_opening(window, at(5), frozenset({date(2026, 11, 23)})) is None


def test_auto_arm_settings_need_a_lookback_longer_than_two_passes() -> None:
    assert AutoArmSettings().interval_s == 15 and AutoArmSettings().lookback_s == 600
    with pytest.raises(ValueError, match="lookback_s"):
        AutoArmSettings(interval_s=15, lookback_s=20)
    with pytest.raises(ValueError, match="lookback_s"):
        AutoArmSettings(lookback_s=7200)
    with pytest.raises(ValueError, match="interval_s"):
        AutoArmSettings(interval_s=0)


# --- the scheduler against PostgreSQL -------------------------------------------------------------

class Hub:
    """A site with one panel on object Bank (and one on Shop), a stored user code, the secret box."""

    def __init__(self, site: Site, box: SecretBox) -> None:
        self.site = site
        self.box = box
        self.pool = site.pool
        self.panel = site.panels["panel-1"]
        self.object_id = site.objects["Bank"]

    async def tick(self, now: datetime) -> scheduler.TickResult:
        return await scheduler.tick(self.pool, self.box, now, lookback=LOOKBACK)

    async def schedule(self, at: time = time(22), *, days: list[int] = EVERY_DAY, zone: str = WARSAW,
                       force_on_violation: bool = False, enabled: bool = True, partition: int = 1, mode: int = 0,
                       checked_until: datetime = DUE - timedelta(hours=1)) -> int:
        return await self.pool.fetchval(SQL_SCHEDULE, self.panel, partition, at, days, zone, mode, force_on_violation,
                                        enabled, checked_until)

    async def supervise(self, partition: int = 1, *, days: list[int] = EVERY_DAY, open_from: time = time(7),
                        open_until: time = time(9), close_by: time = time(22, 15),
                        checked_until: datetime = DUE - timedelta(hours=1)) -> int:
        return await self.pool.fetchval(SQL_SUPERVISION, self.panel, partition, WARSAW, days, open_from, open_until,
                                        close_by, checked_until)

    async def partition(self, event: str, at: datetime, partition: int = 1) -> None:
        body = {"partition": partition, "mode": 0} if event == "armed" else {"partition": partition}
        await self.site.ingest(self.site.env(f"satel.partition.{event}", body, at, Priority.LOW))

    async def result(self, command_id: Any, outcome: ResultOutcome, code: int | None, at: datetime) -> None:
        """The edge's cmd.result for a command, settled as ingest settles it."""
        row = await self.pool.fetchrow("SELECT * FROM satel_commands WHERE id = $1", command_id)
        body = CommandResult(command_id=str(command_id), panel="panel-1", type="arm", source="AUTO_ARM",
                             who=row["requested_by"], outcome=outcome, code=code, reason=f"panel: {outcome.value}")
        async with self.pool.acquire() as conn, conn.transaction():
            await apply_results(conn, [ResultEvent(self.site.edge_id, str(uuid.uuid4()), at, body)], at)

    async def runs(self) -> list[asyncpg.Record]:
        return await self.pool.fetch(SQL_RUNS)

    async def commands(self) -> list[asyncpg.Record]:
        return await self.pool.fetch(SQL_COMMANDS)


@pytest.fixture
async def hub(db: asyncpg.Pool) -> Hub:
    site = await Site(db).setup({"panel-1": "Bank", "panel-9": "Shop"})
    box = SecretBox.generate()
    async with db.acquire() as conn:
        await codes.store_code(conn, box, site.panels["panel-1"], 0, CODE, "user:1", DUE - timedelta(days=1))
    return Hub(site, box)


def _failures(reason: str) -> float:
    return REGISTRY.get_sample_value("vigil_satel_auto_arm_failure_total", {"reason": reason}) or 0.0


async def _leaks(pool: asyncpg.Pool, secret: str) -> list[str]:
    """Every column of every table that holds `secret` in clear."""
    found = []
    for c in await pool.fetch(SQL_TEXT_COLUMNS):
        column = f'"{c["column_name"]}"'
        if c["data_type"] == "bytea":
            where = f"position(convert_to($1, 'UTF8') in {column}) > 0"
        else:
            where = f"{column}::text LIKE '%' || $1 || '%'"
        if await pool.fetchval(f'SELECT count(*) FROM "{c["table_name"]}" WHERE {where}', secret):
            found.append(f"{c['table_name']}.{c['column_name']}")
    return found


async def test_a_due_schedule_gives_exactly_one_auto_arm_command(hub: Hub) -> None:
    schedule = await hub.schedule()
    assert (await hub.tick(DUE - timedelta(seconds=5))).commands == 0
    # Two passes at once (two hub processes), then a later one: one run, one command.
    first = await asyncio.gather(hub.tick(DUE + timedelta(seconds=5)), hub.tick(DUE + timedelta(seconds=5)))
    assert sum(r.commands for r in first) == 1
    assert (await hub.tick(DUE + timedelta(seconds=20))).commands == 0
    [command] = await hub.commands()
    assert (command["type"], list(command["partitions"]), command["mode"], command["force"]) == ("arm", [1], 0, False)
    assert (command["source"], command["requested_by"], command["code_from"]) == \
        ("AUTO_ARM", f"auto-arm:{schedule}", "STORED")
    assert command["created_at"] == DUE + timedelta(seconds=5)
    assert command["expires_at"] == DUE + timedelta(seconds=5 + 300)
    assert await hub.pool.fetchval("SELECT count(*) FROM command_outbox WHERE command_id = $1", command["id"]) == 1
    [run] = await hub.runs()
    assert (run["schedule_id"], run["due_at"], run["outcome"], run["command_id"]) == \
        (schedule, DUE, "PENDING", command["id"])
    # A pass whose cursor is behind (a process that lost its update) still gives no second command.
    await hub.pool.execute("UPDATE auto_arm_schedules SET checked_until = $1", DUE - timedelta(minutes=1))
    assert (await hub.tick(DUE + timedelta(seconds=40))).commands == 0
    assert len(await hub.commands()) == 1 and len(await hub.runs()) == 1
    assert await _leaks(hub.pool, CODE) == []
    assert await _leaks(hub.pool, "auto-arm:") != []  # the scan does find what is there


async def test_already_armed_partition_is_skipped(hub: Hub) -> None:
    await hub.schedule()
    await hub.partition("armed", DUE - timedelta(hours=2))
    result = await hub.tick(DUE + timedelta(seconds=5))
    assert result.commands == 0 and result.outcomes == {"ALREADY_ARMED": 1}
    assert [(r["outcome"], r["command_id"]) for r in await hub.runs()] == [("ALREADY_ARMED", None)]
    assert await hub.commands() == []


@pytest.mark.parametrize("holiday_of, skipped", [("every", True), ("Bank", True), ("Shop", False)])
async def test_holidays_of_the_object_or_every_object_skip_the_run(hub: Hub, holiday_of: str, skipped: bool) -> None:
    await hub.schedule()
    object_id = None if holiday_of == "every" else hub.site.objects[holiday_of]
    await hub.pool.execute("INSERT INTO holidays (object_id, day, name, created_by) VALUES ($1, $2, 'Day', 'user:1')",
                           object_id, date(2026, 11, 22))
    await hub.tick(DUE + timedelta(seconds=5))
    [run] = await hub.runs()
    assert run["outcome"] == ("HOLIDAY" if skipped else "PENDING")
    assert len(await hub.commands()) == (0 if skipped else 1)


async def test_violated_zone_retried_once_with_force_then_armed(hub: Hub) -> None:
    await hub.schedule(force_on_violation=True)
    await hub.tick(DUE + timedelta(seconds=5))
    [first] = await hub.commands()
    await hub.result(first["id"], ResultOutcome.NACK, VIOLATED_FORCE_POSSIBLE, DUE + timedelta(seconds=6))
    assert (await hub.tick(DUE + timedelta(seconds=20))).commands == 1
    first, forced = await hub.commands()
    assert (forced["force"], forced["requested_by"], list(forced["partitions"])) == \
        (True, first["requested_by"], [1])
    [run] = await hub.runs()
    assert (run["outcome"], run["command_id"], run["forced_command_id"]) == ("PENDING", first["id"], forced["id"])
    assert (await hub.tick(DUE + timedelta(seconds=35))).commands == 0  # the forced one is still out
    await hub.result(forced["id"], ResultOutcome.ACK, 0, DUE + timedelta(seconds=36))
    assert (await hub.tick(DUE + timedelta(seconds=50))).outcomes == {"ARMED": 1}
    [run] = await hub.runs()
    assert (run["outcome"], run["decided_at"]) == ("ARMED", DUE + timedelta(seconds=50))
    assert "force" in run["detail"]
    assert len(await hub.commands()) == 2


@pytest.mark.parametrize("outcome, code, force_on_violation, reason, detail", [
    (ResultOutcome.NACK, VIOLATED_FORCE_POSSIBLE, False, "violated_zone", "does not arm with force"),
    (ResultOutcome.NACK, 0x01, True, "nack", "refused"),  # force would not help: no retry
    (ResultOutcome.TIMEOUT, None, True, "timeout", "TIMEOUT"),
    (ResultOutcome.EXPIRED, None, True, "expired", "EXPIRED"),
])
async def test_a_refused_or_unanswered_arm_fails_the_run_and_is_counted(
        hub: Hub, outcome: ResultOutcome, code: int | None, force_on_violation: bool, reason: str,
        detail: str) -> None:
    before = _failures(reason)
    await hub.schedule(force_on_violation=force_on_violation)
    await hub.tick(DUE + timedelta(seconds=5))
    [command] = await hub.commands()
    await hub.result(command["id"], outcome, code, DUE + timedelta(seconds=6))
    assert (await hub.tick(DUE + timedelta(seconds=20))).commands == 0
    [run] = await hub.runs()
    assert run["outcome"] == "FAILED" and detail in run["detail"], run["detail"]
    assert len(await hub.commands()) == 1
    assert _failures(reason) == before + 1
    await hub.tick(DUE + timedelta(seconds=35))
    assert _failures(reason) == before + 1  # a decided run is counted once


async def test_a_run_failed_on_the_hubs_timeout_is_armed_when_the_panels_late_ack_comes(hub: Hub) -> None:
    """The hub gave up waiting (TIMEOUT), the run FAILED; then the edge's ACK arrives after a WAN
    cut: the partition was armed, and the run and the morning report say so."""
    await hub.schedule()
    await hub.tick(DUE + timedelta(seconds=5))
    [command] = await hub.commands()
    await hub.pool.execute("UPDATE satel_commands SET status = 'TIMEOUT', result_at = $2 WHERE id = $1",
                           command["id"], DUE + timedelta(minutes=6))
    await hub.tick(DUE + timedelta(minutes=6, seconds=5))
    [run] = await hub.runs()
    assert run["outcome"] == "FAILED"
    await hub.result(command["id"], ResultOutcome.ACK, 0, DUE + timedelta(minutes=8))
    assert (await hub.tick(DUE + timedelta(minutes=8, seconds=5))).outcomes == {"ARMED": 1}
    [run] = await hub.runs()
    assert run["outcome"] == "ARMED" and "came after the hub had stopped waiting" in run["detail"]
    assert (await hub.tick(DUE + timedelta(minutes=9))).outcomes == {}, "once"


async def test_a_run_due_while_no_hub_ran_is_missed_never_armed_late(hub: Hub) -> None:
    before = _failures("missed")
    await hub.schedule(checked_until=DUE - timedelta(hours=3))
    result = await hub.tick(DUE + timedelta(hours=2))
    assert result.outcomes == {"MISSED": 1} and result.commands == 0
    [run] = await hub.runs()
    assert (run["due_at"], run["outcome"], run["decided_at"]) == (DUE, "MISSED", DUE + timedelta(hours=2))
    assert "120 min late" in run["detail"]
    assert await hub.commands() == []
    assert _failures("missed") == before + 1


async def test_no_stored_code_fails_the_run_with_a_clear_detail(hub: Hub) -> None:
    before = _failures("no_user_code")
    await hub.pool.execute("DELETE FROM panel_user_codes")
    await hub.schedule()
    await hub.tick(DUE + timedelta(seconds=5))
    [run] = await hub.runs()
    assert run["outcome"] == "FAILED" and "no user code is stored" in run["detail"]
    assert "user-codes" in run["detail"]
    assert await hub.commands() == [] and _failures("no_user_code") == before + 1


async def test_a_revoked_edge_fails_the_run(hub: Hub) -> None:
    await hub.pool.execute("UPDATE edges SET revoked_at = $1", DUE - timedelta(days=1))
    await hub.schedule()
    await hub.tick(DUE + timedelta(seconds=5))
    [run] = await hub.runs()
    assert run["outcome"] == "FAILED" and "revoked" in run["detail"]
    assert await hub.commands() == []


async def test_spring_forward_schedule_at_02_30_runs_once_at_03_00(hub: Hub) -> None:
    gap_day = datetime(2026, 3, 29, tzinfo=UTC)
    await hub.schedule(time(2, 30), checked_until=gap_day - timedelta(hours=2))
    assert (await hub.tick(gap_day + timedelta(minutes=59, seconds=55))).commands == 0  # 01:59:55 CET
    assert (await hub.tick(gap_day + timedelta(hours=1, seconds=5))).commands == 1  # 03:00:05 CEST
    assert (await hub.tick(gap_day + timedelta(hours=1, minutes=30, seconds=5))).commands == 0  # 03:30 CEST
    [run] = await hub.runs()
    assert run["due_at"] == gap_day + timedelta(hours=1)
    assert len(await hub.commands()) == 1


async def test_autumn_schedule_at_02_30_runs_once(hub: Hub) -> None:
    fall_day = datetime(2026, 10, 25, tzinfo=UTC)
    await hub.schedule(time(2, 30), checked_until=fall_day - timedelta(hours=2))
    assert (await hub.tick(fall_day + timedelta(minutes=30, seconds=5))).commands == 1  # 02:30 CEST
    assert (await hub.tick(fall_day + timedelta(hours=1, minutes=30, seconds=5))).commands == 0  # 02:30 CET
    assert len(await hub.runs()) == 1


async def test_a_disabled_schedule_records_nothing_and_stays_caught_up(hub: Hub) -> None:
    schedule = await hub.schedule(enabled=False)
    await hub.tick(DUE + timedelta(seconds=5))
    assert await hub.runs() == [] and await hub.commands() == []
    assert await hub.pool.fetchval("SELECT checked_until FROM auto_arm_schedules WHERE id = $1", schedule) == \
        DUE + timedelta(seconds=5)
    # Enabled again later: what fell due while it was off is not recorded as missed.
    await hub.pool.execute("UPDATE auto_arm_schedules SET enabled = true")
    await hub.tick(DUE + timedelta(hours=2))
    assert await hub.runs() == []


async def test_a_schedule_with_an_unknown_zone_is_skipped_and_the_others_run(hub: Hub,
                                                                             caplog: pytest.LogCaptureFixture) -> None:
    bad = await hub.schedule(zone="Mars/Olympus")
    await hub.schedule()
    assert (await hub.tick(DUE + timedelta(seconds=5))).commands == 1
    assert f"auto-arm schedule {bad} skipped" in caplog.text
    # Not moved on: its runs are decided once its zone is known again.
    assert await hub.pool.fetchval("SELECT checked_until FROM auto_arm_schedules WHERE id = $1", bad) == \
        DUE - timedelta(hours=1)


async def test_failed_to_close_when_a_zone_stays_violated_past_the_deadline(hub: Hub) -> None:
    await hub.partition("disarmed", DUE - timedelta(hours=13))  # 09:00 local: within the day, no alarm
    await hub.site.ingest(hub.site.env("satel.zone.violation", {"zone": 3}, DUE - timedelta(minutes=5), Priority.LOW))
    await hub.schedule(force_on_violation=False)
    await hub.supervise(close_by=time(22, 15))
    await hub.tick(DUE + timedelta(seconds=5))
    [command] = await hub.commands()
    await hub.result(command["id"], ResultOutcome.NACK, VIOLATED_FORCE_POSSIBLE, DUE + timedelta(seconds=6))
    assert (await hub.tick(DUE + timedelta(seconds=20))).alarms == 0
    assert [r["outcome"] for r in await hub.runs()] == ["FAILED"]
    deadline = DUE + timedelta(minutes=15)
    assert (await hub.tick(deadline - timedelta(seconds=5))).alarms == 0
    assert (await hub.tick(deadline + timedelta(seconds=5))).alarms == 1
    for later in (20, 60, 600):
        assert (await hub.tick(deadline + timedelta(seconds=later))).alarms == 0
    [bundle] = await hub.pool.fetch(SQL_OPEN_CLOSE)
    assert (bundle["object_id"], bundle["group_key"], bundle["priority"], bundle["event_count"]) == \
        (hub.object_id, f"object:{hub.object_id}", "NORMAL", 1)
    assert "failed to close" in bundle["summary"] and "22:15" in bundle["summary"]
    [alarm] = await hub.pool.fetch("SELECT * FROM supervision_alarms")
    assert (alarm["kind"], alarm["local_day"], alarm["at"], alarm["bundle_id"]) == \
        ("FAILED_TO_CLOSE", date(2026, 11, 22), deadline, bundle["id"])
    topics = [r["topic"] for r in await hub.pool.fetch(
        "SELECT topic FROM outbox WHERE payload->'bundle'->>'alarm_type' = 'OPEN_CLOSE'")]
    assert topics == ["alarm.new"]


async def test_armed_by_the_deadline_raises_no_failed_to_close(hub: Hub) -> None:
    await hub.supervise(close_by=time(22, 15))
    await hub.partition("armed", DUE + timedelta(minutes=2))
    await hub.tick(DUE + timedelta(minutes=15, seconds=5))
    assert await hub.pool.fetch(SQL_OPEN_CLOSE) == []


async def test_early_disarm_raises_a_high_open_close_alarm_once_a_day(hub: Hub) -> None:
    await hub.supervise(days=[1, 2, 3, 4, 5], checked_until=datetime(2026, 11, 23, 3, 0, tzinfo=UTC))
    monday_5am = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)  # 05:00 in Warsaw, before open_from 07:00
    await hub.partition("disarmed", monday_5am)
    assert (await hub.tick(monday_5am + timedelta(seconds=10))).alarms == 1
    [bundle] = await hub.pool.fetch(SQL_OPEN_CLOSE)
    assert bundle["priority"] == "HIGH" and "unexpected opening" in bundle["summary"] and "05:00" in bundle["summary"]
    # Armed and opened early again the same morning: still the one alarm of that day.
    await hub.partition("armed", monday_5am + timedelta(minutes=5))
    await hub.partition("disarmed", monday_5am + timedelta(minutes=20))
    assert (await hub.tick(monday_5am + timedelta(minutes=21))).alarms == 0
    # A disarm inside the day raises nothing, nor does the tick judging it twice.
    await hub.partition("disarmed", monday_5am + timedelta(hours=4))
    assert (await hub.tick(monday_5am + timedelta(hours=4, seconds=10))).alarms == 0
    [alarm] = await hub.pool.fetch("SELECT * FROM supervision_alarms")
    assert (alarm["kind"], alarm["priority"], alarm["at"]) == ("UNEXPECTED_OPENING", "HIGH", monday_5am)


async def test_a_disarm_on_a_day_not_supervised_raises_nothing(hub: Hub) -> None:
    await hub.supervise(days=[1, 2, 3, 4, 5])
    await hub.partition("disarmed", DUE - timedelta(hours=17))  # Sunday 05:00 local
    await hub.tick(DUE)
    assert await hub.pool.fetch(SQL_OPEN_CLOSE) == []
    assert await hub.pool.fetchval("SELECT history_cursor FROM partition_supervision") > 0  # judged, once


async def test_failed_to_open_when_still_armed_at_open_until(hub: Hub) -> None:
    monday = datetime(2026, 11, 23, tzinfo=UTC)
    await hub.supervise(1, checked_until=monday + timedelta(hours=7))
    await hub.supervise(2, checked_until=monday + timedelta(hours=7))
    await hub.partition("armed", monday - timedelta(hours=2), partition=1)  # nobody opened partition 1
    await hub.partition("armed", monday - timedelta(hours=2), partition=2)
    await hub.partition("disarmed", monday + timedelta(hours=7, minutes=30), partition=2)  # 08:30 local
    open_until = monday + timedelta(hours=8)  # 09:00 local
    assert (await hub.tick(open_until + timedelta(seconds=5))).alarms == 1
    [bundle] = await hub.pool.fetch(SQL_OPEN_CLOSE)
    assert bundle["priority"] == "NORMAL" and "partition 1: failed to open" in bundle["summary"]
    assert [(a["partition"], a["kind"]) for a in await hub.pool.fetch("SELECT * FROM supervision_alarms")] == \
        [(1, "FAILED_TO_OPEN")]


async def test_supervision_skips_holidays_and_deadlines_past_the_lookback(hub: Hub) -> None:
    monday = datetime(2026, 11, 23, tzinfo=UTC)
    await hub.pool.execute("INSERT INTO holidays (object_id, day, name, created_by) VALUES (NULL, $1, 'Day', 'x')",
                           date(2026, 11, 23))
    await hub.supervise(checked_until=monday)
    await hub.partition("armed", monday - timedelta(hours=2))
    await hub.tick(monday + timedelta(hours=8, seconds=5))  # open_until on a holiday
    # Tuesday: the hub was down from before 09:00 until 10:00; the state now says nothing of 09:00.
    await hub.tick(monday + timedelta(days=1, hours=9))
    assert await hub.pool.fetch(SQL_OPEN_CLOSE) == []


async def test_run_loop_wakes_the_publisher_and_stops(hub: Hub) -> None:
    await hub.schedule()
    clock = FakeClock(DUE + timedelta(seconds=5))
    stop = asyncio.Event()
    woken: list[bool] = []
    task = asyncio.create_task(scheduler.run(hub.pool, hub.box, stop, interval_s=0.05, clock=clock,
                                             wake=lambda: woken.append(True)))
    await wait_until(lambda: woken, what="the publisher woken after the arm command")
    stop.set()
    await asyncio.wait_for(task, 10)
    assert len(await hub.commands()) == 1 and woken == [True]


# --- the REST routes ------------------------------------------------------------------------------

ADMIN, OPERATOR = as_role("ADMIN", 1), as_role("OPERATOR", 2)
SCHEDULE_BODY = {"partition": 1, "at_time": "22:00", "days": [5, 1, 1], "time_zone": WARSAW}
SUPERVISION_BODY = {"partition": 1, "time_zone": WARSAW, "days": [1, 2, 3, 4, 5], "open_from": "07:00",
                    "open_until": "09:00", "close_by": "22:15"}


@pytest.fixture
async def panel(hub: Hub) -> int:
    return hub.panel


async def _audit(pool: asyncpg.Pool, action: str) -> list[dict[str, Any]]:
    rows = await pool.fetch("SELECT actor, target_id, details FROM audit_log WHERE action = $1 ORDER BY id", action)
    return [{"actor": r["actor"], "target_id": r["target_id"], **msgspec.json.decode(r["details"])} for r in rows]


async def test_schedule_routes_roles_versions_and_audit(api_client: TestClient, hub: Hub, panel: int) -> None:
    url = f"/api/v1/panels/{panel}/auto-arm"
    refused = await api_client.post(url, json=SCHEDULE_BODY, headers=OPERATOR)
    assert refused.status == 403
    resp = await api_client.post(url, json=SCHEDULE_BODY, headers=ADMIN)
    created = await json_of(resp)
    assert resp.status == 201, created
    assert (created["at_time"], created["days"], created["version"], created["enabled"]) == ("22:00", [1, 5], 1, True)
    assert created["next_due_at"] is not None and created["created_by"] == "user:1"
    listed = await json_of(await api_client.get(url, headers=OPERATOR))
    assert [s["id"] for s in listed] == [created["id"]]
    one = f"/api/v1/auto-arm/{created['id']}"
    assert (await json_of(await api_client.get(one, headers=OPERATOR)))["time_zone"] == WARSAW
    # A technician assigned elsewhere learns nothing of it.
    other = as_role("TECHNICIAN", 3, [hub.site.objects["Shop"]])
    assert (await api_client.get(one, headers=other)).status == 404
    assert (await api_client.get(url, headers=other)).status == 404

    stale = await api_client.patch(one, json={"version": 2, "enabled": False}, headers=ADMIN)
    assert stale.status == 409
    patched = await json_of(await api_client.patch(one, json={"version": 1, "at_time": "21:30:15", "enabled": False},
                                                   headers=ADMIN))
    assert (patched["at_time"], patched["enabled"], patched["version"], patched["next_due_at"]) == \
        ("21:30:15", False, 2, None)
    assert (await api_client.patch(one, json={"version": 2, "mode": 1}, headers=OPERATOR)).status == 403

    await hub.pool.execute("INSERT INTO auto_arm_runs (schedule_id, panel_id, object_id, partition, due_at, outcome, "
                           "detail, created_at, decided_at) VALUES ($1, $2, $3, 1, $4, 'MISSED', 'late', $4, $4)",
                           created["id"], panel, hub.object_id, DUE)
    assert (await api_client.delete(one, headers=OPERATOR)).status == 403
    assert (await api_client.delete(one, headers=ADMIN)).status == 204
    assert (await api_client.get(one, headers=ADMIN)).status == 404
    runs = await json_of(await api_client.get(f"{url}/runs", headers=OPERATOR))
    assert [(r["outcome"], r["schedule_id"]) for r in runs["items"]] == [("MISSED", None)] and runs["total"] == 1
    assert [a["target_id"] for a in await _audit(hub.pool, "auto_arm.create")] == [str(created["id"])]
    [update] = await _audit(hub.pool, "auto_arm.update")
    assert update["fields"] == ["at_time", "enabled"] and update["actor"] == "user:1"
    [deleted] = await _audit(hub.pool, "auto_arm.delete")
    assert (deleted["at_time"], deleted["time_zone"]) == ("21:30:15", WARSAW)


@pytest.mark.parametrize("change, field", [
    ({"time_zone": "Mars/Olympus"}, "time_zone"),
    ({"time_zone": "../../etc/passwd"}, "time_zone"),
    ({"days": []}, "days"),
    ({"days": [8]}, "days[0]"),
    ({"at_time": "25:00"}, "at_time"),
    ({"partition": 33}, "partition"),
    ({"mode": 4}, "mode"),
    ({"expires_in_s": 2}, "expires_in_s"),
])
async def test_schedule_validation_names_the_field(api_client: TestClient, hub: Hub, panel: int,
                                                   change: dict[str, Any], field: str) -> None:
    resp = await api_client.post(f"/api/v1/panels/{panel}/auto-arm", json={**SCHEDULE_BODY, **change}, headers=ADMIN)
    body = await json_of(resp)
    assert resp.status == 422 and body["error"]["details"]["field"] == field, body
    assert await hub.pool.fetchval("SELECT count(*) FROM auto_arm_schedules") == 0
    assert await hub.pool.fetchval("SELECT count(*) FROM audit_log") == 0


async def test_a_schedule_for_a_missing_panel_is_404(api_client: TestClient) -> None:
    assert (await api_client.post("/api/v1/panels/999/auto-arm", json=SCHEDULE_BODY, headers=ADMIN)).status == 404
    assert (await api_client.get("/api/v1/auto-arm/999", headers=ADMIN)).status == 404


async def test_supervision_routes_validate_the_window_and_audit(api_client: TestClient, hub: Hub, panel: int) -> None:
    url = f"/api/v1/panels/{panel}/supervision"
    bad = await api_client.post(url, json={**SUPERVISION_BODY, "open_until": "06:00"}, headers=ADMIN)
    assert bad.status == 422 and (await json_of(bad))["error"]["details"]["field"] == "open_until"
    assert (await api_client.post(url, json=SUPERVISION_BODY, headers=OPERATOR)).status == 403
    resp = await api_client.post(url, json=SUPERVISION_BODY, headers=ADMIN)
    created = await json_of(resp)
    assert resp.status == 201 and created["close_by"] == "22:15", created
    duplicate = await api_client.post(url, json=SUPERVISION_BODY, headers=ADMIN)
    assert duplicate.status == 409
    one = f"/api/v1/supervision/{created['id']}"
    # The window is checked as it will be: close_by before the stored open_until.
    early = await api_client.patch(one, json={"version": 1, "close_by": "08:00"}, headers=ADMIN)
    assert early.status == 422 and (await json_of(early))["error"]["details"]["field"] == "close_by"
    patched = await json_of(await api_client.patch(one, json={"version": 1, "close_by": "21:00"}, headers=ADMIN))
    assert (patched["close_by"], patched["version"]) == ("21:00", 2)
    assert [s["id"] for s in await json_of(await api_client.get(url, headers=OPERATOR))] == [created["id"]]
    assert (await api_client.delete(one, headers=ADMIN)).status == 204
    assert [len(await _audit(hub.pool, f"supervision.{a}")) for a in ("create", "update", "delete")] == [1, 1, 1]


async def test_holiday_routes(api_client: TestClient, hub: Hub) -> None:
    bank, shop = hub.site.objects["Bank"], hub.site.objects["Shop"]
    assert (await api_client.post("/api/v1/holidays", json={"day": "2026-12-24"}, headers=OPERATOR)).status == 403
    every = await json_of(await api_client.post("/api/v1/holidays", json={"day": "2026-12-24", "name": "Wigilia"},
                                                headers=ADMIN))
    assert every["object_id"] is None
    again = await api_client.post("/api/v1/holidays", json={"day": "2026-12-24"}, headers=ADMIN)
    assert again.status == 409  # one global holiday a day
    own = await json_of(await api_client.post("/api/v1/holidays", json={"day": "2026-12-24", "object_id": bank},
                                              headers=ADMIN))
    await api_client.post("/api/v1/holidays", json={"day": "2026-12-27", "object_id": shop}, headers=ADMIN)
    assert (await api_client.post("/api/v1/holidays", json={"day": "2026-12-28", "object_id": 999},
                                  headers=ADMIN)).status == 404
    listed = await json_of(await api_client.get(f"/api/v1/holidays?object_id={bank}", headers=OPERATOR))
    assert [h["id"] for h in listed["items"]] == [every["id"], own["id"]]
    technician = as_role("TECHNICIAN", 3, [bank])
    seen = await json_of(await api_client.get("/api/v1/holidays", headers=technician))
    assert {h["object_id"] for h in seen["items"]} == {None, bank}
    assert (await api_client.get(f"/api/v1/holidays?object_id={shop}", headers=technician)).status == 404
    moved = await json_of(await api_client.patch(f"/api/v1/holidays/{own['id']}",
                                                 json={"version": 1, "day": "2026-12-31"}, headers=ADMIN))
    assert (moved["day"], moved["version"]) == ("2026-12-31", 2)
    assert (await api_client.delete(f"/api/v1/holidays/{own['id']}", headers=ADMIN)).status == 204
    assert (await api_client.delete(f"/api/v1/holidays/{own['id']}", headers=ADMIN)).status == 404
    assert [len(await _audit(hub.pool, f"holiday.{a}")) for a in ("create", "update", "delete")] == [3, 1, 1]


async def test_morning_report_lists_failed_and_missed_runs_and_supervision_alarms(
        api_client: TestClient, hub: Hub) -> None:
    await hub.schedule(checked_until=DUE - timedelta(days=1, hours=1))  # yesterday's run: missed
    await hub.supervise(close_by=time(22, 15))
    await hub.pool.execute("DELETE FROM panel_user_codes")  # today's: no code
    await hub.tick(DUE + timedelta(seconds=5))
    await hub.tick(DUE + timedelta(minutes=15, seconds=5))
    url = f"/api/v1/reports/auto-arm?since={(DUE - timedelta(days=2)).isoformat()}"
    report = await json_of(await api_client.get(url.replace("+", "%2B"), headers=OPERATOR))
    assert [(i["category"], i["what"]) for i in report["items"]] == [
        ("auto_arm", "MISSED"), ("auto_arm", "FAILED"), ("supervision", "FAILED_TO_CLOSE")]
    assert report["totals"] == {"FAILED": 1, "FAILED_TO_CLOSE": 1, "MISSED": 1}
    assert report["items"][2]["bundle_id"] is not None and report["items"][0]["object_name"] == "Bank"
    since_today = await json_of(await api_client.get(
        f"/api/v1/reports/auto-arm?since={DUE.isoformat()}".replace("+", "%2B"), headers=OPERATOR))
    assert [i["what"] for i in since_today["items"]] == ["FAILED", "FAILED_TO_CLOSE"]
    csv_resp = await api_client.get("/api/v1/reports/auto-arm?format=csv", headers=OPERATOR)
    lines = (await csv_resp.text()).splitlines()
    assert csv_resp.status == 200 and lines[0].startswith("at,category,what") and len(lines) == 4
    assert (await api_client.get("/api/v1/reports/auto-arm", headers=as_role("FIELD_WORKER", 4, []))).status == 403
    assert len(await _audit(hub.pool, "data.exported")) == 1
