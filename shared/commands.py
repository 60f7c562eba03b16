"""Hub→edge panel commands on the wire (docs/architecture.md §4.3): the command the hub publishes
on `vigil.edge.<edge>.cmd`, and the `cmd.result` event body the edge journals for it.

A command names its panel by the panel's id on the edge (the envelopes' `source`). The user code
is never in clear: `sealed_code` is sealed to the owning edge's key (`shared.sealing`) with the
command id as associated data. `expires_at` is the hub's clock; the edge compares it with its own
clock corrected by the offset it measured against the hub (`edge.hub_clock`).
"""
from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Literal

import msgspec

COMMAND_VERSION = 1
RESULT_KIND = "cmd.result"

#: What a panel command may ask, and which list of numbers it needs.
CommandType = Literal["arm", "disarm", "clear_alarm", "outputs_on", "outputs_off", "bypass", "unbypass"]
ITEMS_OF: dict[str, str] = {
    "arm": "partitions", "disarm": "partitions", "clear_alarm": "partitions",
    "outputs_on": "outputs", "outputs_off": "outputs", "bypass": "zones", "unbypass": "zones",
}


class Source(str, enum.Enum):
    """Who gave the command: a person (MANUAL) or an auto-arm schedule (AUTO_ARM). A manual
    command runs before an automatic one waiting on the same panel."""

    MANUAL = "MANUAL"
    AUTO_ARM = "AUTO_ARM"


class Outcome(str, enum.Enum):
    """How the edge settled a command. ACK: the panel did it. NACK: refused (by the panel, with
    its 0xEF code, or by the edge before the panel: not its panel, link down, code unreadable).
    TIMEOUT: sent to the panel, no readable answer: it may or may not have been carried out.
    EXPIRED: it reached the edge after its expiry and was not executed."""

    ACK = "ACK"
    NACK = "NACK"
    TIMEOUT = "TIMEOUT"
    EXPIRED = "EXPIRED"


Numbers = Annotated[list[Annotated[int, msgspec.Meta(ge=1, le=256)]], msgspec.Meta(max_length=256)]
UtcTime = Annotated[datetime, msgspec.Meta(tz=True)]


class PanelCommand(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One command for one panel of one edge, as the hub publishes it."""

    id: str
    edge: str
    panel: str
    type: CommandType
    source: Source
    who: str  # "user:<login>" or "auto-arm:<schedule id>"; never a code
    issued_at: UtcTime
    expires_at: UtcTime
    sealed_code: bytes  # sealed to the edge's key, bound to `id`
    partitions: Numbers = msgspec.field(default_factory=list)
    zones: Numbers = msgspec.field(default_factory=list)
    outputs: Numbers = msgspec.field(default_factory=list)
    mode: Annotated[int, msgspec.Meta(ge=0, le=3)] = 0
    force: bool = False
    v: int = COMMAND_VERSION

    def items(self) -> list[int]:
        """The numbers this command acts on (partitions, zones or outputs, by its type)."""
        return list(getattr(self, ITEMS_OF[self.type]))


class CommandResult(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of a `cmd.result` event (its envelope's `corr` is the command id)."""

    command_id: str
    panel: str
    type: str
    source: str
    who: str
    outcome: Outcome
    code: int | None  # the panel's 0xEF result code, when the panel answered
    reason: str


def encode_command(command: PanelCommand) -> bytes:
    """The bytes published on the edge's command subject."""
    return msgspec.json.encode(command)


def decode_command(data: bytes) -> PanelCommand:
    """A command from the wire; msgspec.ValidationError/DecodeError when it is not one."""
    return msgspec.json.decode(data, type=PanelCommand)
