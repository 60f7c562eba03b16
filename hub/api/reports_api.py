"""Reports: alarm history, operator response times and how alarms ended (resolutions), as JSON or
streamed CSV."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from aiohttp import web

from hub.alarms.outcomes import RESOLUTIONS, ResolutionCode
from hub.alarms.repository import claimant_join
from hub.api.app import deps
from hub.api.common import record
from hub.api.errors import invalid
from hub.api.pdf_export import export_file
from hub.api.permissions import object_filter
from hub.api.routing import Call, Router
from hub.config import valid_time_zone

router = Router()
JSON_LIMIT = 5000


class ReportQuery(msgspec.Struct, forbid_unknown_fields=True):
    since: datetime | None = None
    until: datetime | None = None
    object_id: int | None = None
    resolution: list[ResolutionCode] = []
    format: Literal["json", "csv", "pdf"] = "json"


class AlarmReportQuery(ReportQuery, forbid_unknown_fields=True):
    # The IANA zone whose calendar days `per_day` counts in: the console sends the reader's.
    time_zone: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] = "UTC"


# When each bundle was claimed, acknowledged, resolved and closed comes from the audit log, which
# records every transition with its time.
SQL_HISTORY = """
SELECT b.id, b.object_id, o.name AS object_name, b.alarm_type, b.priority, b.status, b.event_count,
       b.first_event_at, t.claimed_at, t.acked_at, t.resolved_at, t.closed_at, t.claimed_by,
       cu.email AS claimed_by_email, b.resolution, b.resolution_note, b.escalated_at,
       extract(epoch FROM t.claimed_at - b.first_event_at)::float8 AS seconds_to_claim,
       extract(epoch FROM t.acked_at - b.first_event_at)::float8 AS seconds_to_ack
FROM bundle_alarms b
LEFT JOIN objects o ON o.id = b.object_id
LEFT JOIN LATERAL (
    SELECT min(at) FILTER (WHERE action = 'alarm.claim') AS claimed_at,
           min(at) FILTER (WHERE action = 'alarm.ack') AS acked_at,
           min(at) FILTER (WHERE action = 'alarm.resolve') AS resolved_at,
           min(at) FILTER (WHERE action IN ('alarm.close', 'alarm.auto_closed')) AS closed_at,
           (array_agg(actor ORDER BY at) FILTER (WHERE action = 'alarm.claim'))[1] AS claimed_by
    FROM audit_log a WHERE a.target_type = 'bundle_alarm' AND a.target_id = b.id::text
) t ON true
""" + claimant_join("t") + """
WHERE ($1::timestamptz IS NULL OR b.first_event_at >= $1) AND ($2::timestamptz IS NULL OR b.first_event_at < $2)
  AND ($3::int8 IS NULL OR b.object_id = $3) AND ($4::int8[] IS NULL OR b.object_id = ANY($4))
  AND (cardinality($5::text[]) = 0 OR b.resolution = ANY($5))
ORDER BY b.first_event_at, b.id
"""
HISTORY_COLUMNS = ("id", "object_id", "object_name", "alarm_type", "priority", "status", "event_count",
                   "first_event_at", "claimed_at", "acked_at", "resolved_at", "closed_at", "claimed_by",
                   "claimed_by_email", "seconds_to_claim", "seconds_to_ack", "resolution", "resolution_note",
                   "escalated_at")

SQL_RESPONSE_TIMES = f"""
SELECT claimed_by AS operator, min(claimed_by_email) AS operator_email, count(*) AS alarms,
       avg(seconds_to_claim) AS avg_seconds_to_claim,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds_to_claim) AS p50_seconds_to_claim,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds_to_claim) AS p90_seconds_to_claim,
       avg(seconds_to_ack) AS avg_seconds_to_ack,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds_to_ack) AS p50_seconds_to_ack,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds_to_ack) AS p90_seconds_to_ack
FROM ({SQL_HISTORY}) h
WHERE claimed_by IS NOT NULL
GROUP BY claimed_by ORDER BY claimed_by
"""
RESPONSE_COLUMNS = ("operator", "operator_email", "alarms", "avg_seconds_to_claim", "p50_seconds_to_claim",
                    "p90_seconds_to_claim", "avg_seconds_to_ack", "p50_seconds_to_ack", "p90_seconds_to_ack")

# How the alarms of the period ended: one row per resolution code (zero counts included, in the
# order pickers show them), then the alarms not resolved yet (resolution null).
SQL_RESOLUTIONS = f"""
WITH h AS MATERIALIZED (SELECT resolution FROM ({SQL_HISTORY}) x)
SELECT resolution, label, alarms FROM (
    SELECT c.code AS resolution, c.label, c.ord, (SELECT count(*) FROM h WHERE h.resolution = c.code) AS alarms
    FROM unnest($6::text[], $7::text[]) WITH ORDINALITY AS c(code, label, ord)
    UNION ALL
    SELECT NULL, 'Not resolved yet', NULL, (SELECT count(*) FROM h WHERE h.resolution IS NULL)
) r ORDER BY ord NULLS LAST
"""
RESOLUTION_COLUMNS = ("resolution", "label", "alarms")

# Alarms per calendar day of their first event in the zone $6, every day from the first to the
# last that has one, empty days as 0, so a chart's bars keep the calendar's spacing.
SQL_PER_DAY = f"""
WITH d AS MATERIALIZED (SELECT (first_event_at AT TIME ZONE $6::text)::date AS day FROM ({SQL_HISTORY}) x)
SELECT s.day::date AS day, count(d.day) AS alarms
FROM generate_series((SELECT min(day) FROM d)::timestamp, (SELECT max(day) FROM d)::timestamp, interval '1 day') AS s(day)
LEFT JOIN d ON d.day = s.day::date
GROUP BY s.day ORDER BY s.day
"""


def _filters(call: Call) -> tuple[object, ...]:
    """The report query's filters as SQL_HISTORY's parameters, limited to the caller's objects."""
    q: ReportQuery = call.query
    return q.since, q.until, q.object_id, object_filter(call.user), q.resolution


@router.get("/api/v1/reports/alarms", query=AlarmReportQuery, permission="alarms.view", tags=("reports",),
            produces="application/json")
async def alarm_history(call: Call) -> web.StreamResponse | dict:
    """Alarm history with claim/ack/resolve times, and as JSON also `per_day`: the alarms of each
    day in `time_zone` (all of them, past the item cap too); `format=csv` streams a CSV file."""
    q: AlarmReportQuery = call.query
    if not valid_time_zone(q.time_zone):
        raise invalid(f"{q.time_zone!r} is not an IANA time zone name", {"field": "time_zone"})
    args = _filters(call)
    if (file := await export_file(call, "alarm-history", "Alarm history", HISTORY_COLUMNS, SQL_HISTORY,
                                  *args)) is not None:
        return file
    rows = await deps(call).pool.fetch(SQL_HISTORY + f" LIMIT {JSON_LIMIT + 1}", *args)
    days = await deps(call).pool.fetch(SQL_PER_DAY, *args, q.time_zone)
    return {"items": [record(r) for r in rows[:JSON_LIMIT]], "truncated": len(rows) > JSON_LIMIT,
            "per_day": [{"day": d["day"].isoformat(), "alarms": d["alarms"]} for d in days]}


@router.get("/api/v1/reports/response-times", query=ReportQuery, permission="alarms.view", tags=("reports",))
async def response_times(call: Call) -> web.StreamResponse | dict:
    """Per operator: how fast alarms were claimed and acknowledged (seconds from the first event)."""
    args = _filters(call)
    if (file := await export_file(call, "response-times", "Operator response times", RESPONSE_COLUMNS,
                                  SQL_RESPONSE_TIMES, *args)) is not None:
        return file
    return {"items": [record(r) for r in await deps(call).pool.fetch(SQL_RESPONSE_TIMES, *args)]}


@router.get("/api/v1/reports/resolutions", query=ReportQuery, permission="alarms.view", tags=("reports",))
async def resolutions(call: Call) -> web.StreamResponse | dict:
    """How the period's alarms ended: a count per resolution (every code, zeros included), and the
    alarms not resolved yet."""
    args = (*_filters(call), list(RESOLUTIONS), list(RESOLUTIONS.values()))
    if (file := await export_file(call, "resolutions", "Alarm resolutions", RESOLUTION_COLUMNS, SQL_RESOLUTIONS,
                                  *args)) is not None:
        return file
    return {"items": [record(r) for r in await deps(call).pool.fetch(SQL_RESOLUTIONS, *args)]}
