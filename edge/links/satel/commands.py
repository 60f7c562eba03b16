"""Control commands for a Satel panel: typed outcomes and the bounded queue the link serves them from.

A command goes through the link's one session loop, between polls, so it never interleaves with
a poll on the module's single connection. The queue serves by priority, then in arrival order:
a person's command (the local page, or the hub's MANUAL) before an automatic one (an auto-arm
schedule), and every queued command before the next poll. The caller gets a `CommandOutcome`:

- ACK: the module answered 0xEF 00 (done) or 0xEF FF (accepted, being processed);
- NACK: the module answered another 0xEF code; `code` holds it and `reason` says what it means;
- TIMEOUT: the command was sent but no (readable) answer came in time: it may or may not have
  been carried out; or it waited in the queue past its deadline and was never sent;
- UNAVAILABLE: the command was not sent: the link is not connected, released for DLOADX,
  stopping, or its queue is full.
"""
from __future__ import annotations

import asyncio
import enum
import heapq
import itertools
from dataclasses import dataclass, field

from firmware_bridges.satel.protocol import Request, ResultAnswer, ResultCode

# What each refusal means, in words an installer or operator can act on.
_REASONS: dict[int, str] = {
    ResultCode.OK: "done",
    ResultCode.USER_CODE_NOT_FOUND: "user code not found",
    ResultCode.NO_ACCESS: "the user has no access to these partitions, zones or outputs",
    ResultCode.USER_DOES_NOT_EXIST: "user does not exist",
    ResultCode.USER_ALREADY_EXISTS: "user already exists",
    ResultCode.WRONG_CODE_OR_CODE_EXISTS: "wrong code, or the code already exists",
    ResultCode.TELEPHONE_CODE_EXISTS: "telephone code already exists",
    ResultCode.CODE_UNCHANGED: "changed code is the same",
    ResultCode.OTHER_ERROR: "other error",
    ResultCode.CANNOT_ARM_USE_FORCE: "cannot arm: a zone is violated or another obstacle; force arming is possible",
    ResultCode.CANNOT_ARM: "cannot arm (e.g. a tampered zone); force arming is not possible either",
    ResultCode.ACCEPTED: "accepted, being processed",
}


class CommandPriority(enum.IntEnum):
    """Lower goes first."""

    MANUAL = 0
    AUTOMATIC = 1


class CommandResult(str, enum.Enum):
    """How a command ended (see the module docstring)."""

    ACK = "ACK"
    NACK = "NACK"
    TIMEOUT = "TIMEOUT"
    UNAVAILABLE = "UNAVAILABLE"


@dataclass(frozen=True)
class CommandOutcome:
    """The typed outcome of one control command; `code` is the module's 0xEF result byte, if any."""

    result: CommandResult
    reason: str
    code: int | None = None

    @property
    def ok(self) -> bool:
        """The module carried the command out (or accepted it for processing)."""
        return self.result is CommandResult.ACK

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form for the local API."""
        return {"result": self.result.value, "code": self.code, "reason": self.reason}


def outcome_of(answer: ResultAnswer) -> CommandOutcome:
    """ACK or NACK for the module's 0xEF answer to a control command."""
    reason = _REASONS.get(answer.code, "other error" if 0x80 <= answer.code <= 0x8F else "unknown result")
    if answer.ok:
        return CommandOutcome(CommandResult.ACK, reason, answer.code)
    return CommandOutcome(CommandResult.NACK, reason, answer.code)


@dataclass
class CommandJob:
    """One queued command: the request, the caller's future, and when it stops being worth sending."""

    name: str
    request: Request
    deadline: float  # event-loop time
    priority: CommandPriority = CommandPriority.MANUAL
    future: asyncio.Future[CommandOutcome] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    def finish(self, outcome: CommandOutcome) -> None:
        """Hand the outcome to the caller (once; later outcomes are ignored)."""
        if not self.future.done():
            self.future.set_result(outcome)


class CommandQueue:
    """A bounded queue of command jobs, by priority then arrival; `put` refuses when full instead
    of growing."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"command queue size must be at least 1, got {maxsize}")
        self.maxsize = maxsize
        self._jobs: list[tuple[int, int, CommandJob]] = []
        self._arrival = itertools.count()

    def __len__(self) -> int:
        return len(self._jobs)

    def put(self, job: CommandJob) -> bool:
        """Queue `job`; False (and nothing queued) when the queue is full."""
        if len(self._jobs) >= self.maxsize:
            return False
        heapq.heappush(self._jobs, (job.priority, next(self._arrival), job))
        return True

    def take(self, now: float) -> CommandJob | None:
        """The first job by priority and arrival still before its deadline; jobs past it end as
        TIMEOUT, never sent."""
        while self._jobs:
            _, _, job = heapq.heappop(self._jobs)
            if job.future.done():  # the caller gave up already
                continue
            if now > job.deadline:
                job.finish(CommandOutcome(CommandResult.TIMEOUT, "not sent: waited in the queue past its deadline"))
                continue
            return job
        return None

    def fail_all(self, reason: str) -> int:
        """End every queued job as UNAVAILABLE (they were never sent); returns how many."""
        failed = 0
        while self._jobs:
            _, _, job = heapq.heappop(self._jobs)
            if not job.future.done():
                job.finish(CommandOutcome(CommandResult.UNAVAILABLE, reason))
                failed += 1
        return failed
