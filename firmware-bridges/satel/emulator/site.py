"""The sample site the emulator starts with: a small office with two partitions."""

from __future__ import annotations

from .devices import Output, Partition, User, Zone
from .panel import Clock, Panel, utc_clock

#: Code of the sample site's administrator (partitions 1 and 2).
SAMPLE_USER_CODE = "1234"
#: Code of the sample site's cleaner (partition 1 only).
SAMPLE_CLEANER_CODE = "5678"


def sample_panel(*, clock: Clock = utc_clock, code_prefix: str = "") -> Panel:
    """8 named zones in 2 partitions, 2 outputs, two users; zone 8 also reads a temperature."""
    zones = [
        Zone(1, "Wejście główne", 1, reaction=2),
        Zone(2, "Korytarz", 1),
        Zone(3, "Biuro", 1),
        Zone(4, "Sala konferencji", 1),
        Zone(5, "Magazyn", 2),
        Zone(6, "Brama garażu", 2, reaction=2),
        Zone(7, "Okno zaplecza", 2),
        Zone(8, "Serwerownia", 2, temperature_raw=153),  # 21.5 °C
    ]
    return Panel(
        zones={zone.number: zone for zone in zones},
        partitions={1: Partition(1, "Biuro"), 2: Partition(2, "Magazyn")},
        outputs={1: Output(1, "Syrena", function=1), 2: Output(2, "Oświetlenie", function=24)},
        users=[
            User(1, "Administrator", SAMPLE_USER_CODE, frozenset({1, 2})),
            User(2, "Sprzątanie", SAMPLE_CLEANER_CODE, frozenset({1})),
        ],
        code_prefix=code_prefix,
        clock=clock,
    )
