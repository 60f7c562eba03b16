"""Rotating the hub's secret (issue 11): sealed values carry their key's id; `python -m hub secrets
rotate` seals every stored secret again under a new key (values from before key ids included),
`prune` then drops keys nothing uses; a running hub process follows the file without a restart."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hub.api.panels_api import integration_key_aad
from hub.api.secrets_api import object_secret_aad
from hub.secret_box import (FORMAT_V1, SecretBox, SecretBoxError, add_current_key, read_secret_file, sealed_key_id)

SQL_OBJECT = "INSERT INTO objects (name) VALUES ('Bank') RETURNING id"
SQL_SECRET = "INSERT INTO object_secrets (object_id, label, secret_enc) VALUES ($1, $2, $3) RETURNING id"
SQL_EDGE = "INSERT INTO edges (edge_id, public_key, key_id) VALUES ('site-1', $1, 'k')"
SQL_PANEL = "INSERT INTO panels (object_id, edge_id, source) VALUES ($1, 'site-1', 'panel-1') RETURNING id"
SQL_PANEL_KEY = "UPDATE panels SET integration_key_enc = $2 WHERE id = $1"


def _legacy_seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """A value as hubs sealed it before key ids: 0x01 | nonce | ciphertext."""
    nonce = os.urandom(12)
    return FORMAT_V1 + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _hub(dsn: str, secret_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}, "VIGIL_HUB_DATABASE_URL": dsn,
           "VIGIL_HUB_AUTH_SECRET_FILE": str(secret_file)}
    return subprocess.run([sys.executable, "-m", "hub", *args], capture_output=True, text=True, timeout=60, env=env)


def test_a_box_follows_its_file_and_names_the_key_of_each_value(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    running = SecretBox.from_file(path)  # a hub process that started before the rotation
    old = running.encrypt(b"recorder", b"aad")
    assert sealed_key_id(old) == running.current_key_id
    new_kid = add_current_key(path)  # the CLI, in another process
    rotated = SecretBox.from_file(path)
    fresh = rotated.encrypt(b"camera", b"aad")
    assert sealed_key_id(fresh) == new_kid != running.current_key_id
    assert running.decrypt(fresh, b"aad") == b"camera"  # no restart needed
    assert running.encrypt(b"x", b"aad")[1:9].hex() == new_kid  # and it seals under the new key now
    assert rotated.decrypt(old, b"aad") == b"recorder"
    with pytest.raises(SecretBoxError, match="does not hold"):
        SecretBox.generate().decrypt(fresh, b"aad")


async def test_rotate_reseals_everything_then_prune_drops_the_old_keys(db: asyncpg.Pool, db_dsn: str,
                                                                     tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    box = SecretBox.from_file(path)
    [first_key] = read_secret_file(path)
    object_id = await db.fetchval(SQL_OBJECT)
    aad = object_secret_aad(object_id)
    ids = [await db.fetchval(SQL_SECRET, object_id, "NVR", box.encrypt(b"nvr-pass", aad)),
           await db.fetchval(SQL_SECRET, object_id, "old NVR", _legacy_seal(first_key, b"legacy-pass", aad))]
    await db.execute(SQL_EDGE, b"\x00" * 32)
    panel_id = await db.fetchval(SQL_PANEL, object_id)
    panel_aad = integration_key_aad(panel_id)
    await db.execute(SQL_PANEL_KEY, panel_id, box.encrypt(b"ethm-key", panel_aad))

    # Prune refuses while a value from before key ids exists: nobody could tell which key it needs.
    refused = _hub(db_dsn, path, "secrets", "prune")
    assert refused.returncode == 1 and "secrets rotate` first" in refused.stderr

    done = _hub(db_dsn, path, "secrets", "rotate")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["resealed"]["object_secrets"] == 2 and answer["resealed"]["panels"] == 1
    after = SecretBox.from_file(path)
    assert after.current_key_id == answer["key_id"] and len(after.key_ids) == 2
    rows = {r["id"]: bytes(r["secret_enc"]) for r in await db.fetch("SELECT id, secret_enc FROM object_secrets")}
    assert {sealed_key_id(v) for v in rows.values()} == {answer["key_id"]}
    assert [after.decrypt(rows[i], aad) for i in ids] == [b"nvr-pass", b"legacy-pass"]
    panel_key = bytes(await db.fetchval("SELECT integration_key_enc FROM panels WHERE id = $1", panel_id))
    assert sealed_key_id(panel_key) == answer["key_id"] and after.decrypt(panel_key, panel_aad) == b"ethm-key"
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'secrets.rotated'") == 1

    pruned = _hub(db_dsn, path, "secrets", "prune")
    assert pruned.returncode == 0, pruned.stderr
    assert json.loads(pruned.stdout)["removed"] == [box.current_key_id]
    final = SecretBox.from_file(path)
    assert final.key_ids == [answer["key_id"]]
    assert [final.decrypt(rows[i], aad) for i in ids] == [b"nvr-pass", b"legacy-pass"]
    assert final.decrypt(panel_key, panel_aad) == b"ethm-key"


async def test_prune_keeps_a_key_a_value_still_uses(db: asyncpg.Pool, db_dsn: str, tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    old_box = SecretBox.from_file(path)
    add_current_key(path)
    object_id = await db.fetchval(SQL_OBJECT)
    # Sealed under the old key after the rotation (a value the rotation did not see).
    sealed = old_box.encrypt(b"late", object_secret_aad(object_id))
    await db.fetchval(SQL_SECRET, object_id, "late", sealed)
    assert _hub(db_dsn, path, "secrets", "prune").returncode == 0
    assert SecretBox.from_file(path).decrypt(sealed, object_secret_aad(object_id)) == b"late"
