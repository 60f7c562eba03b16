"""The journal keeps each device link's place in its device's own log, across a reopen."""
from __future__ import annotations

from pathlib import Path

from edge.journal import Journal


async def test_journal_cursors_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    journal = await Journal.open(path, max_bytes=1 << 20, retention_s=60)
    assert await journal.get_cursor("satel.event_log.p1") is None
    await journal.set_cursor("satel.event_log.p1", "000001:00112233445566ff")
    await journal.set_cursor("satel.event_log.p1", "000002:00112233445566ff")
    await journal.set_cursor("satel.event_log.p2", "empty")
    await journal.close()
    journal = await Journal.open(path, max_bytes=1 << 20, retention_s=60)
    try:
        assert await journal.get_cursor("satel.event_log.p1") == "000002:00112233445566ff"
        assert await journal.get_cursor("satel.event_log.p2") == "empty"
    finally:
        await journal.close()
