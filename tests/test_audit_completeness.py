"""Audit completeness (issue 11): every way data leaves the hub as a file, and every edge keyed by
hand, leaves an audit row naming who and what."""
from __future__ import annotations

import os
import subprocess
import sys
import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from shared.signing import Signer, b64url
from support.api import as_role

MASTER = as_role("MASTER", 1)


@pytest.mark.parametrize("path", ["/api/v1/audit?format=csv&action=x", "/api/v1/reports/alarms?format=csv",
                                  "/api/v1/reports/response-times?format=csv",
                                  "/api/v1/reports/resolutions?format=csv",
                                  "/api/v1/reports/auto-arm?format=csv"])
async def test_every_csv_export_is_audited_with_its_filters(api_client: TestClient, db: asyncpg.Pool, path: str) -> None:
    resp = await api_client.get(path, headers=MASTER)
    assert resp.status == 200 and resp.content_type == "text/csv"
    await resp.read()
    row = await db.fetchrow("SELECT actor, action, target_type, target_id, details FROM audit_log "
                            "WHERE action = 'data.exported'")
    assert row is not None and row["actor"] == "user:1" and row["target_type"] == "export"
    assert row["target_id"].endswith(".csv") and '"format": "csv"' in row["details"]


async def test_an_edge_keyed_by_hand_is_audited(db_dsn: str, db: asyncpg.Pool) -> None:
    # A key starting with "-" (1 in 64 are) must be taken as the key, not as an option.
    key = next(k for k in (b64url(Signer.generate().public_raw) for _ in range(10_000)) if k.startswith("-"))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}, "VIGIL_HUB_DATABASE_URL": db_dsn}
    done = subprocess.run([sys.executable, "-m", "hub", "edge", "add", "site-77", key], capture_output=True,
                          text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    row = await db.fetchrow("SELECT actor, details FROM audit_log WHERE action = 'edge.keyed' AND target_id = 'site-77'")
    assert row is not None and row["actor"].startswith("cli:") and "key_id" in row["details"]
