"""Procedures as checklists (docs/architecture.md §5 "Working an alarm"), as pure functions.

An object's procedure for an alarm type is free text, one step a line. The bundle's checklist is
those steps, copied when the bundle is first worked (claimed, or its first tick), so a later
edit of the procedure never rewrites what was ticked. A step is ticked once, with the time and
who; ticking it again keeps the first tick.
"""
from __future__ import annotations

import re

from hub.alarms.lifecycle import Bundle, LifecycleError, NotClaimant, Status

# A line's own numbering or bullet ("1.", "2)", "-", "*", "•"): the checklist numbers steps itself.
_MARKER = re.compile(r"^\s*(?:\d{1,3}[.)]|[-*•])\s+")
MAX_STEPS = 100
# Ticks are work on the alarm: from start (IN_PROGRESS) until it is resolved.
TICKABLE = (Status.IN_PROGRESS, Status.ACK)


class NotWorked(LifecycleError):
    """A step can be ticked only while the bundle is being worked."""

    code = "not_being_worked"


def procedure_steps(text: str) -> list[str]:
    """The steps of a procedure's text: one per non-empty line, without its own numbering or
    bullet, at most MAX_STEPS (a procedure is a short list, not a manual)."""
    steps = [_MARKER.sub("", line).strip() for line in text.splitlines()]
    return [s for s in steps if s][:MAX_STEPS]


def check_tick(bundle: Bundle, user: str, supervisor: bool) -> None:
    """Raise unless `user` may tick a step of `bundle` now: the bundle is IN_PROGRESS or ACK, and
    `user` holds it or is a supervisor."""
    if bundle.status not in TICKABLE:
        raise NotWorked(f"bundle {bundle.id} is {bundle.status.value}: steps are ticked while it is "
                        f"{' or '.join(s.value for s in TICKABLE)}")
    if not supervisor and bundle.claimed_by != user:
        raise NotClaimant(f"bundle {bundle.id} is claimed by {bundle.claimed_by}")
