"""The fixed vocabularies of operator work (docs/architecture.md §5 "Working an alarm"): how an
alarm ended (chosen at resolve, counted in the reports) and how a call to a contact went.

The codes are stored and filtered on, so they never change meaning; the labels are what people
read. Migration 0015 holds the same codes in CHECK constraints (tests/test_operator_work.py keeps
them equal), and the `Literal` types let the API refuse an unknown code by its field.
"""
from __future__ import annotations

from typing import Literal

ResolutionCode = Literal[
    "FALSE_ALARM", "TEST", "CONFIRMED_INTRUSION_POLICE", "CONFIRMED_FIRE_BRIGADE", "CONFIRMED_MEDICAL",
    "TECHNICAL_FAULT", "USER_ERROR", "WEATHER_ANIMAL", "CANCELLED_BY_CUSTOMER", "OTHER",
]
# In the order a picker shows them: the common outcomes first, OTHER last.
RESOLUTIONS: dict[str, str] = {
    "FALSE_ALARM": "False alarm (no cause found)",
    "TEST": "Test (announced by the customer or installer)",
    "CONFIRMED_INTRUSION_POLICE": "Confirmed intrusion — police dispatched",
    "CONFIRMED_FIRE_BRIGADE": "Confirmed fire — fire brigade dispatched",
    "CONFIRMED_MEDICAL": "Confirmed emergency — ambulance dispatched",
    "TECHNICAL_FAULT": "Technical fault (detector, panel, link, power)",
    "USER_ERROR": "User error (wrong code, forgot to disarm)",
    "WEATHER_ANIMAL": "Weather or animal",
    "CANCELLED_BY_CUSTOMER": "Cancelled by the customer with their password",
    "OTHER": "Other (see the note)",
}

CallOutcome = Literal["ANSWERED", "NO_ANSWER", "WRONG_NUMBER", "BUSY", "VOICEMAIL"]
CALL_OUTCOMES: dict[str, str] = {
    "ANSWERED": "answered",
    "NO_ANSWER": "no answer",
    "WRONG_NUMBER": "wrong number",
    "BUSY": "busy",
    "VOICEMAIL": "voicemail",
}


def resolution_label(code: str | None) -> str | None:
    """The words for a stored resolution code (None stays None)."""
    return RESOLUTIONS.get(code, code) if code is not None else None
