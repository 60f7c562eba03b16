"""The rules of a panel command, pure: what a request must name, how its status moves, and what
the console shows meanwhile. No database, no network; the clock is passed in."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

from shared.commands import ITEMS_OF, Outcome

#: How long a command may wait for the edge, by default and at most.
DEFAULT_EXPIRES_S = 60
MIN_EXPIRES_S, MAX_EXPIRES_S = 5, 3600
_LIMITS = {"partitions": 32, "zones": 256, "outputs": 256}
_CODE_DIGITS = (4, 8)


class Status(str, enum.Enum):
    """PENDING: committed, not yet in JetStream. SENT: JetStream has it. Then the outcome."""

    PENDING = "PENDING"
    SENT = "SENT"
    ACK = "ACK"
    NACK = "NACK"
    TIMEOUT = "TIMEOUT"
    EXPIRED = "EXPIRED"

    @property
    def open(self) -> bool:
        """Still waiting for an outcome (the console shows the element transitional)."""
        return self in (Status.PENDING, Status.SENT)


class CommandError(Exception):
    """A command that cannot be given as asked; `field` names the offending input, if one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NoUserCode(CommandError):
    """Neither a typed code nor a stored one for what the command names."""


@dataclass(frozen=True)
class CommandRequest:
    """What someone asks of a panel; `user_code` None means "use the stored code"."""

    type: str
    reason: str
    partitions: tuple[int, ...] = ()
    zones: tuple[int, ...] = ()
    outputs: tuple[int, ...] = ()
    mode: int | None = None
    force: bool = False
    user_code: str | None = field(default=None, repr=False)
    expires_in_s: int = DEFAULT_EXPIRES_S

    @property
    def items(self) -> tuple[int, ...]:
        return getattr(self, ITEMS_OF[self.type])


def check_request(req: CommandRequest) -> CommandRequest:
    """The request with its numbers sorted and de-duplicated; CommandError naming the field when it
    asks something a panel cannot do (a type's own list empty or another list given, a number out
    of range, a mode or force on anything but arm, a code that is not 4-8 digits, a bad expiry)."""
    if req.type not in ITEMS_OF:
        raise CommandError(f"unknown command type {req.type!r}; known: {', '.join(ITEMS_OF)}", "type")
    own = ITEMS_OF[req.type]
    lists = {"partitions": req.partitions, "zones": req.zones, "outputs": req.outputs}
    if not lists[own]:
        raise CommandError(f"{req.type} needs at least one of {own}", own)
    for name, numbers in lists.items():
        if name != own and numbers:
            raise CommandError(f"{req.type} acts on {own}, not {name}", name)
        bad = [n for n in numbers if not 1 <= n <= _LIMITS[name]]
        if bad:
            raise CommandError(f"{name} must be numbers 1..{_LIMITS[name]}; got {bad}", name)
    if req.type != "arm" and (req.mode is not None or req.force):
        raise CommandError("mode and force apply to arm only", "mode" if req.mode is not None else "force")
    if req.mode is not None and not 0 <= req.mode <= 3:
        raise CommandError("mode must be 0..3", "mode")
    if not req.reason.strip():
        raise CommandError("say why: reason must not be empty", "reason")
    if req.user_code is not None:
        check_user_code(req.user_code)
    if not MIN_EXPIRES_S <= req.expires_in_s <= MAX_EXPIRES_S:
        raise CommandError(f"expires_in_s must be {MIN_EXPIRES_S}..{MAX_EXPIRES_S}", "expires_in_s")
    items = tuple(sorted(set(lists[own])))
    return CommandRequest(req.type, req.reason.strip(), **{own: items}, mode=req.mode if req.type == "arm" else None,
                          force=req.force, user_code=req.user_code, expires_in_s=req.expires_in_s)


def check_user_code(code: str, field: str = "user_code") -> None:
    """CommandError naming `field` unless `code` is a panel user code: 4-8 digits."""
    low, high = _CODE_DIGITS
    if not (code.isascii() and code.isdigit() and low <= len(code) <= high):
        raise CommandError(f"{field} must be {low}-{high} digits", field)


def code_partitions(req: CommandRequest) -> tuple[int, ...]:
    """The partitions a stored code must cover: a partition command's partitions; for zones and
    outputs, the panel's own code (partition 0)."""
    return req.partitions if ITEMS_OF[req.type] == "partitions" else ()


def pick_stored_code(stored: dict[int, str], partitions: tuple[int, ...]) -> str:
    """The stored code for a command: one code that covers every partition it names (each
    partition's own, else the panel's); NoUserCode when none is stored or two partitions differ."""
    if not partitions:
        if 0 not in stored:
            raise NoUserCode("no user code is stored for this panel: type one", "user_code")
        return stored[0]
    codes = set()
    for p in partitions:
        code = stored.get(p, stored.get(0))
        if code is None:
            raise NoUserCode(f"no user code is stored for partition {p}: type one", "user_code")
        codes.add(code)
    if len(codes) > 1:
        raise NoUserCode("the partitions named have different stored codes: give one command per partition",
                         "partitions")
    return codes.pop()


@dataclass(frozen=True)
class Settlement:
    """What an edge's result does to a command: its new status, and whether it came after the hub
    had given up waiting (TIMEOUT or EXPIRED set by the hub)."""

    status: Status
    late: bool


def settle(current: Status, settled_by_edge: bool, outcome: Outcome) -> Settlement | None:
    """The edge's outcome for a command in `current`; None when it changes nothing. The edge's word
    is final: its first result settles the command, replacing a status the hub set on its own
    (TIMEOUT after the deadline, EXPIRED before sending); a second result (a redelivery) is
    ignored."""
    if settled_by_edge:
        return None
    return Settlement(Status(outcome.value), late=not current.open)


def transitional(type_: str) -> str | None:
    """What the console shows a partition as while the command is open."""
    return {"arm": "ARMING", "disarm": "DISARMING"}.get(type_)
