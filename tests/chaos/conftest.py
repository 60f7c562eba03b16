"""The chaos suite's collection rules: scenarios marked `chaos_full` run only with
VIGIL_CHAOS=full (`make chaos`); the soak only with VIGIL_SOAK=1 (`make soak`). Deselected,
not skipped: `make test` stays quiet about what it was never meant to run."""
from __future__ import annotations

import os

import pytest

from support.chaos import full


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, drop = [], []
    for item in items:
        if item.get_closest_marker("chaos_full") and not full():
            drop.append(item)
        elif item.get_closest_marker("soak") and os.environ.get("VIGIL_SOAK") != "1":
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
