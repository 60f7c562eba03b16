"""The edge's local console (docs/architecture.md §7 "The local console"): what a guard on site
sees and does while the WAN is down. The pure parts live here — the live view built from the
agent's status and the panels' known state, the local alarm list read from the journal, whether
the hub is reachable, the `edge.local.ack` a guard's acknowledgement journals — and the HTTP side
(the page, its SSE stream, the ack route) in edge.local_api.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from importlib import resources
from typing import Any

import msgspec

from edge.links.satel import SatelLink
from shared.clock import Clock
from shared.bodies.local import LOCAL_ACK_KIND, MAX_NOTE, LocalAck
from shared.envelope import Envelope, Priority, decode_envelope, new_envelope
from shared.subjects import LANES

log = logging.getLogger("vigil.edge.console")

#: The console's files, served by the agent itself: nothing comes from outside the box.
STATIC = resources.files("edge.console").joinpath("static")
STATIC_FILES = {"console.js": "application/javascript", "console.css": "text/css"}
#: Nothing but this box: scripts, styles and the stream from the agent's own origin, no inline code.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
#: How many alarm rows (and acks) the console lists, newest first.
ALARM_LIMIT = 200
ACK_SOURCE = "console"


def index_html() -> str:
    """The console page, with the `<!--refusal-->` and `<!--who-->` slots the API fills."""
    return STATIC.joinpath("index.html").read_text()


def static_file(name: str) -> tuple[bytes, str] | None:
    """A console file's bytes and content type, or None for any name not shipped."""
    content_type = STATIC_FILES.get(name)
    return None if content_type is None else (STATIC.joinpath(name).read_bytes(), content_type)


def hub_reachable(status: Mapping[str, Any]) -> bool:
    """Whether the hub answers: the leaf connection is up, the last command pull reached the hub
    (edge.commands `pulling`: False from the start until one does), and no lane is backing off
    after a failed publish. Unknown counts as unreachable: the alarm sound is the safe side."""
    nats = status.get("nats") or {}
    commands = status.get("commands") or {}
    lanes = (status.get("forwarder") or {}).get("lanes") or {}
    return bool(nats.get("connected")) and commands.get("pulling") is True and "backoff" not in lanes.values()


def backlog(unforwarded: Mapping[str, int], oldest: Mapping[str, datetime | None], now: datetime) -> dict[str, Any]:
    """Per lane: rows waiting for the hub and the age in seconds of the oldest of them."""
    return {lane: {"rows": int(unforwarded.get(lane, 0)),
                   "oldest_age_s": None if oldest.get(lane) is None else round((now - oldest[lane]).total_seconds(), 1)}
            for lane in LANES}


def panel_view(link: SatelLink) -> dict[str, Any]:
    """One panel for the console: its link, and its partitions, zones and outputs by number with
    the names the link read from the panel (a number alone where none is known). Elements with no
    name and nothing active are not listed: the edge does not know they exist."""
    snap = msgspec.to_builtins(link.state.snapshot(push=link.push))
    zone_flags = {"violated": "violated", "tamper": "tamper", "alarm": "alarm", "tamper_alarm": "tamper_alarm",
                  "bypassed": "bypassed"}
    part_flags = {"entry_time": "entry_time", "exit_time": "exit_time", "alarm": "partition_alarm",
                  "fire_alarm": "fire_alarm"}

    def elements(names: Mapping[Any, str], lists: Mapping[str, str], extra: Iterable[int] = ()) -> list[dict[str, Any]]:
        numbers = {int(n) for n in names} | set(extra) | {n for key in lists.values() for n in snap[key]}
        return [{"number": n, "name": names.get(n) or names.get(str(n)) or "",
                 **{flag: n in snap[key] for flag, key in lists.items()}} for n in sorted(numbers)]

    armed = {int(p): mode for p, mode in snap["armed"].items()}
    partitions = elements(snap["partition_names"], part_flags, armed)
    for p in partitions:
        p["armed"], p["mode"] = p["number"] in armed, armed.get(p["number"])
    return {
        "panel": link.panel_id, "state": link.link_state.value, "since": link.since.isoformat(),
        "last_error": link.last_error, "released": link.release_info.as_dict() if link.release_info else None,
        "partitions": partitions,
        "zones": elements(snap["zone_names"], zone_flags),
        "outputs": elements(snap["output_names"], {"on": "outputs_on"}),
        "troubles": snap["troubles"], "service_mode": snap["service_mode"],
    }


def _body(env: Envelope) -> dict[str, Any]:
    body = msgspec.json.decode(env.body)
    return body if isinstance(body, dict) else {}


def alarm_list(rows: Iterable[tuple[int, bytes, bool]]) -> list[dict[str, Any]]:
    """The local alarm list from the journal's recent rows (Journal.recent_alarms, newest first):
    each CRITICAL/HIGH envelope with whether it reached the hub and the local acks of it. A row
    that does not decode is logged and left out, never the whole list."""
    alarms: list[dict[str, Any]] = []
    acks: dict[str, list[dict[str, Any]]] = {}
    for seq, data, forwarded in rows:
        try:
            env = decode_envelope(data)
            body = _body(env)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.error("a journal row does not decode; left out of the console", extra={"seq": seq, "error": str(exc)})
            continue
        if env.kind == LOCAL_ACK_KIND:
            acks.setdefault(str(body.get("acked_id")), []).append(
                {"who": body.get("who"), "at": body.get("at"), "note": body.get("note"), "forwarded": forwarded})
            continue
        alarms.append({"id": str(env.id), "seq": seq, "ts": env.ts.isoformat(), "kind": env.kind, "source": env.source,
                       "priority": env.priority.value, "body": body, "forwarded": forwarded})
    for alarm in alarms:
        alarm["acks"] = list(reversed(acks.get(alarm["id"], [])))  # oldest first
    return alarms


class AckRefused(ValueError):
    """A note the console will not journal (the message says why)."""


def check_note(note: object) -> str:
    """The guard's note, trimmed; raises AckRefused unless it is a non-empty string of at most MAX_NOTE."""
    if not isinstance(note, str) or not note.strip():
        raise AckRefused("note must be a non-empty string: say what you found or did")
    if len(note) > MAX_NOTE:
        raise AckRefused(f"note is longer than {MAX_NOTE} characters")
    return note.strip()


def local_ack(alarm: Mapping[str, Any], who: str, note: str, clock: Clock) -> Envelope:
    """The `edge.local.ack` envelope for a guard's acknowledgement of `alarm` (an entry of
    `alarm_list`); `corr` names the acknowledged envelope, so the hub finds its bundle. HIGH, so it
    travels the alarm lane behind the alarm it acknowledges (one lane keeps its order at the hub):
    an ack on the other lane could reach the hub first and find no bundle to join."""
    body = LocalAck(who=who, at=clock.now().isoformat(), note=note, acked_id=alarm["id"], acked_kind=alarm["kind"],
                    acked_source=alarm["source"])
    return new_envelope(LOCAL_ACK_KIND, ACK_SOURCE, Priority.HIGH, body, corr=alarm["id"], clock=clock)
