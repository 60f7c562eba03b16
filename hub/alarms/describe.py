"""Alarm history in words (docs/architecture.md §5 "Working an alarm"): what an event says
("Zone 3 Biuro: alarm", "Partition 1 Parter: armed") and what a lifecycle move was ("Taken over
from Ann by Bob: shift change"). Pure functions over an event's kind and body, the panel's
configured names, and the people involved; the API renders them in English.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from hub.alarms.outcomes import CALL_OUTCOMES, resolution_label
from shared.bodies.core import JOURNAL_REFUSED_KIND
from shared.bodies.local import LOCAL_ACK_KIND

_ZONE_WORDS = {
    "violation": "violated", "restore": "restored", "tamper": "tamper", "tamper_restore": "tamper restored",
    "alarm": "alarm", "alarm_cleared": "alarm cleared", "tamper_alarm": "tamper alarm",
    "tamper_alarm_cleared": "tamper alarm cleared", "bypass": "bypassed", "unbypass": "bypass removed",
}
_PARTITION_WORDS = {
    "disarmed": "disarmed", "entry": "entry time started", "entry_end": "entry time ended",
    "exit": "exit time started", "exit_end": "exit time ended", "alarm": "alarm", "alarm_cleared": "alarm cleared",
    "fire_alarm": "fire alarm", "fire_alarm_cleared": "fire alarm cleared",
}


@dataclass(frozen=True)
class PanelNames:
    """The names a panel's zones, partitions and outputs have in the hub's panel config."""

    zones: Mapping[int, str] = field(default_factory=dict)
    partitions: Mapping[int, str] = field(default_factory=dict)
    outputs: Mapping[int, str] = field(default_factory=dict)


NO_NAMES = PanelNames()


def _int(body: Mapping[str, Any], key: str) -> int | None:
    value = body.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _element(label: str, number: int, configured: Mapping[int, str], body_name: Any) -> str:
    """"Zone 3 Biuro": the hub's configured name first, else the name the panel sent, else none."""
    name = configured.get(number) or (body_name.strip() if isinstance(body_name, str) else "")
    return f"{label} {number} {name}" if name else f"{label} {number}"


def _zone(body: Mapping[str, Any], names: PanelNames, number: int | None = None) -> str | None:
    n = number if number is not None else _int(body, "zone")
    return _element("Zone", n, names.zones, body.get("name")) if n is not None else None


def _partition(body: Mapping[str, Any], names: PanelNames, number: int | None = None) -> str | None:
    n = number if number is not None else _int(body, "partition")
    return _element("Partition", n, names.partitions, body.get("name")) if n is not None else None


def _trouble(body: Mapping[str, Any]) -> str:
    what = body.get("trouble")
    if isinstance(what, str) and what:
        return f"Trouble {what}"
    return f"Trouble (part {_int(body, 'part')}, bit {_int(body, 'bit')})"


def _log_record(body: Mapping[str, Any], names: PanelNames) -> str:
    text = body.get("text")
    words = f"Panel log: {text if isinstance(text, str) and text else 'record'}"
    zone, partition, user = _int(body, "zone"), _int(body, "partition"), _int(body, "user")
    where = ([_element("Zone", zone, names.zones, None)] if zone else []) + \
        ([_element("Partition", partition, names.partitions, None)] if partition else [])
    if where:
        words += f" — {', '.join(where)}"
    if user is not None:
        words += f", user {user}"
    if body.get("offline") is True:
        recorded = body.get("recorded_at")
        words += f" (while offline, panel time {recorded})" if isinstance(recorded, str) else " (while offline)"
    return words


def _link(kind: str, body: Mapping[str, Any]) -> str:
    link = body.get("link") if isinstance(body.get("link"), str) and body.get("link") else "device"
    if kind == "edge.link.up":
        return f"Link {link}: up"
    reason = body.get("reason") if isinstance(body.get("reason"), str) else ""
    if kind == "edge.link.degraded":
        return f"Link {link}: {reason or '?'}"
    if kind == "edge.link.recovered":
        return f"Link {link}: no longer {reason or '?'}"
    words = f"Link {link}: down" + (f" ({reason})" if reason else "")
    return words + (", planned" if body.get("planned") is True else "")


def _command(body: Mapping[str, Any]) -> str:
    items = body.get("items") if isinstance(body.get("items"), list) else []
    on = f" {', '.join(str(i) for i in items)}" if items else ""
    who = f" by {body['who']}" if isinstance(body.get("who"), str) and body["who"] else ""
    return f"Command {body.get('command', '?')}{on}{who}: {body.get('result', '?')}"


def _command_result(body: Mapping[str, Any]) -> str:
    """A hub command's outcome at the panel (`cmd.result`): what, by whom, and how it ended."""
    who = f" by {body['who']}" if isinstance(body.get("who"), str) and body["who"] else ""
    reason = f" ({body['reason']})" if isinstance(body.get("reason"), str) and body["reason"] else ""
    return f"Command {str(body.get('type', '?')).replace('_', ' ')} from the hub{who}: {body.get('outcome', '?')}{reason}"


def _number(body: Mapping[str, Any], key: str) -> float | None:
    value = body.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _temperature(kind: str, body: Mapping[str, Any]) -> str:
    """A temperature logger's SMS: sensor, value, threshold and which side of it."""
    sensor = body.get("sensor") if isinstance(body.get("sensor"), str) and body["sensor"] else None
    if sensor is None:
        return f"Temperature: {kind.replace('_', ' ')}"
    unit = f" °{body['unit']}" if body.get("unit") in ("C", "F") else ""
    value, threshold = _number(body, "value"), _number(body, "threshold")
    reading = f" {value:g}{unit}" if value is not None else ""
    if kind == "alarm":
        limit = f" ({body.get('direction') or 'beyond'} {threshold:g}{unit})" if threshold is not None else ""
        return f"Temperature alarm: {sensor}{reading}{limit}"
    if kind == "normal":
        return f"Temperature back to normal: {sensor}{reading}"
    if kind == "battery_low":
        return f"Temperature logger {sensor}: battery low"
    if kind == "lost_connection":
        return f"Temperature logger {sensor}: no measurements (connection lost)"
    return f"Temperature: {sensor} {kind.replace('_', ' ')}"


_ROBOT_ALARMS = {"estop": "emergency stop", "collision": "collision", "battery_critical": "battery critical",
                 "stuck": "stuck", "fault": "fault"}
_ROBOT_CONNECTION = {"ONLINE": "online", "OFFLINE": "offline", "CONNECTION_BROKEN": "connection broken"}


def _robot(kind: str, body: Mapping[str, Any]) -> str:
    """A robot's event: "Robot RB-001: emergency stop", "… emergency stop ended", its link."""
    robot = body.get("robot") if isinstance(body.get("robot"), str) and body["robot"] else "?"
    detail = body.get("detail") if isinstance(body.get("detail"), str) and body["detail"] else ""
    for prefix, suffix in (("robot.alarm.", ""), ("robot.restore.", " ended")):
        if kind.startswith(prefix):
            name = kind.removeprefix(prefix)
            words = f"Robot {robot}: {_ROBOT_ALARMS.get(name, name.replace('_', ' '))}{suffix}"
            return words + (f" ({detail})" if detail and not suffix else "")
    if kind == "robot.connection":
        state = body.get("state")
        reason = f" ({body['reason']})" if isinstance(body.get("reason"), str) and body["reason"] else ""
        return f"Robot {robot}: {_ROBOT_CONNECTION.get(state, str(state))}{reason}" if isinstance(state, str) \
            else f"Robot {robot}: connection"
    if kind == "robot.cmd.ack":
        return f"Robot {robot}: command {body.get('command_type', '?')} {body.get('status', '?')}" + \
            (f" ({detail})" if detail else "")
    return f"Robot {robot}: {kind.removeprefix('robot.').replace('.', ' ')}"


def _journal_refused(body: Mapping[str, Any]) -> str:
    """The edge journal's refusals: "Edge journal full (disk low): 3 CRITICAL, 1 HIGH events
    refused and lost between … and …"."""
    refused = body.get("refused") if isinstance(body.get("refused"), dict) else {}
    counts = ", ".join(f"{n} {p}" for p in ("CRITICAL", "HIGH", "NORMAL", "LOW")
                       if isinstance(n := refused.get(p), int) and not isinstance(n, bool) and n > 0)
    first, last = body.get("first_at"), body.get("last_at")
    when = f" between {first} and {last}" if isinstance(first, str) and isinstance(last, str) else ""
    why = " (disk low)" if body.get("low_disk") is True else ""
    return f"Edge journal full{why}: {counts or 'events'} refused and lost{when}"


def describe_event(kind: str, body: Mapping[str, Any], names: PanelNames = NO_NAMES) -> str:
    """One event in words, with the zone, partition and output names of its panel's config."""
    parts = kind.split(".")
    last = parts[-1]
    if kind.startswith("satel.zone.") and last in _ZONE_WORDS and (zone := _zone(body, names)):
        return f"{zone}: {_ZONE_WORDS[last]}"
    if kind == "satel.partition.armed" and (partition := _partition(body, names)):
        mode = _int(body, "mode")
        return f"{partition}: armed" + (f" (mode {mode})" if mode else "")
    if kind.startswith("satel.partition.") and last in _PARTITION_WORDS and (partition := _partition(body, names)):
        return f"{partition}: {_PARTITION_WORDS[last]}"
    if kind in ("satel.output.on", "satel.output.off") and (n := _int(body, "output")) is not None:
        return f"{_element('Output', n, names.outputs, body.get('name'))}: {last}"
    if kind in ("satel.trouble.on", "satel.trouble.off"):
        return f"{_trouble(body)}: {'started' if last == 'on' else 'ended'}"
    if kind == "satel.log.record":
        return _log_record(body, names)
    if kind == "satel.snapshot":
        return "Panel state read after connecting"
    if kind == "satel.clock.drift":
        drift = body.get("drift_s")
        return f"Panel clock off by {drift:.0f} s" if isinstance(drift, (int, float)) else "Panel clock has no valid date"
    if kind == "satel.clock.synced":
        return "Panel clock back in step"
    if kind == "satel.command":
        return _command(body)
    if kind == "cmd.result":
        return _command_result(body)
    if kind in ("edge.link.up", "edge.link.down", "edge.link.degraded", "edge.link.recovered"):
        return _link(kind, body)
    if kind == "edge.link.released":
        return (f"Link {body.get('link', '?')} released for {body.get('minutes', '?')} min by "
                f"{body.get('who', '?')}: {body.get('why', '')}").rstrip(": ")
    if kind.startswith("sms.temp."):
        return _temperature(last, body)
    if kind in ("sms.unparseable", "sms.untrusted"):
        sender = body.get("sender") if isinstance(body.get("sender"), str) else "?"
        if kind == "sms.untrusted":
            return f"SMS from a sender not on the list ({sender}): not an alarm, archived for review"
        return f"SMS from {sender} not understood ({body.get('quality', '?')}): archived for review"
    if kind.startswith("robot."):
        return _robot(kind, body)
    if kind == LOCAL_ACK_KIND:
        who = body.get("who") if isinstance(body.get("who"), str) else "?"
        note = body.get("note") if isinstance(body.get("note"), str) else ""
        return f"Acknowledged on site by {who}: {note}".rstrip(": ")
    if kind == JOURNAL_REFUSED_KIND:
        return _journal_refused(body)
    return kind


Person = Callable[[str | None], str]  # an actor (`user:<id>`, `system`) as people know them


def describe_move(action: str, details: Mapping[str, Any], actor: str, person: Person) -> str:
    """One lifecycle audit entry (`alarm.<move>`) in words; `person` names actors."""
    move = action.removeprefix("alarm.")
    note = details.get("note")
    if move == "claim":
        return f"Claimed by {person(actor)}"
    if move == "start":
        return f"Started by {person(actor)}"
    if move == "ack":
        return f"Acknowledged by {person(actor)}" + (f": {note}" if note else "")
    if move == "resolve":
        words = f"Resolved by {person(actor)}: {resolution_label(details.get('resolution')) or 'no resolution given'}"
        return words + (f" — {note}" if note else "")
    if move == "close":
        return f"Closed by {person(actor)}"
    if move == "reaped":
        return "Claim lapsed: back to NEW"
    if move == "auto_closed":
        return "Closed automatically"
    if move == "escalated":
        after = details.get("after_s")
        seconds = f"{after:g}" if isinstance(after, (int, float)) else "?"
        return f"Escalated: still NEW after {seconds} s ({details.get('priority', '?')})"
    if move == "take_over":
        previous, to = person(details.get("previous")), person(details.get("holder"))
        head = f"Taken over from {previous} by {to}" if details.get("holder") == actor \
            else f"Reassigned from {previous} to {to} by {person(actor)}"
        return f"{head}: {details.get('reason', '')}"
    return f"{move} by {person(actor)}"


def describe_call(contact_name: str, contact_phone: str | None, outcome: str) -> str:
    """A call to a contact in words: "Call to Jan Kowalski (+48 600 100 200): no answer"."""
    number = f" ({contact_phone})" if contact_phone else ""
    return f"Call to {contact_name}{number}: {CALL_OUTCOMES.get(outcome, outcome)}"


def tel_uri(phone: str) -> str | None:
    """A `tel:` URI (RFC 3966, global form when the number has its +) for a click-to-call link;
    None when the text holds no digits. Spaces, dashes, dots and brackets are dropped."""
    digits = "".join(ch for ch in phone if ch.isascii() and ch.isdigit())
    if not digits:
        return None
    return f"tel:{'+' if phone.strip().startswith('+') else ''}{digits}"
