"""Rotating the hub's secret: every value sealed at rest is opened and sealed again under the
secret file's current key, in one transaction (`python -m hub secrets rotate`); keys no value uses
any more can then leave the file (`python -m hub secrets prune`)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from hub.api.panels_api import integration_key_aad
from hub.api.secrets_api import object_secret_aad
from hub.auth.keys import signing_key_aad
from hub.commands.codes import user_code_aad
from hub.secret_box import SecretBox, sealed_key_id


@dataclass(frozen=True)
class SealedColumn:
    """A column of sealed values: its table, row key, the column, and each row's associated data."""

    table: str
    key: str
    column: str
    aad: Callable[[Any], bytes]

    @property
    def select(self) -> str:
        return f"SELECT * FROM {self.table} WHERE {self.column} IS NOT NULL FOR UPDATE"

    @property
    def update(self) -> str:
        return f"UPDATE {self.table} SET {self.column} = $2 WHERE {self.key} = $1"


# Every sealed column the hub writes.
SEALED = (
    SealedColumn("auth_signing_keys", "kid", "private_key_enc", lambda r: signing_key_aad(r["kid"])),
    SealedColumn("object_secrets", "id", "secret_enc", lambda r: object_secret_aad(r["object_id"])),
    SealedColumn("panels", "id", "integration_key_enc", lambda r: integration_key_aad(r["id"])),
    SealedColumn("panel_user_codes", "id", "code_enc", lambda r: user_code_aad(r["panel_id"], r["partition"])),
)


async def reseal_all(conn: asyncpg.Connection, box: SecretBox) -> dict[str, int]:
    """Seal every value again under `box`'s current key, all or nothing; per table, how many.
    Raises SecretBoxError (and changes nothing) if any value does not open."""
    counts: dict[str, int] = {}
    async with conn.transaction():
        for col in SEALED:
            rows = await conn.fetch(col.select)
            for row in rows:
                plain = box.decrypt(bytes(row[col.column]), col.aad(row))
                await conn.execute(col.update, row[col.key], box.encrypt(plain, col.aad(row)))
            counts[col.table] = len(rows)
    return counts


async def key_ids_in_use(conn: asyncpg.Connection) -> dict[str | None, int]:
    """How many sealed values each key id seals (None: values from before key ids)."""
    used: dict[str | None, int] = {}
    for col in SEALED:
        for row in await conn.fetch(f"SELECT {col.column} AS v FROM {col.table} WHERE {col.column} IS NOT NULL"):
            kid = sealed_key_id(bytes(row["v"]))
            used[kid] = used.get(kid, 0) + 1
    return used
