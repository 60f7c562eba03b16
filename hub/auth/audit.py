"""Security events appended to `audit_log`: who, what, on whom, from which IP, in which request."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from shared.logs import request_id

SQL_AUDIT = """
INSERT INTO audit_log (at, actor, action, target_type, target_id, details, request_id)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)
"""

SYSTEM_ACTOR = "system:auth"


def user_actor(user_id: int) -> str:
    """How the audit log names a user (as Principal.actor does)."""
    return f"user:{user_id}"


async def audit(conn: asyncpg.Connection | asyncpg.Pool, at: datetime, actor: str, action: str,
                target_type: str, target_id: str | int, ip: str | None, **details: Any) -> None:
    """Append one audit row; `details` never holds a password, token or secret."""
    payload = {"ip": ip, **details} if ip is not None else details
    await conn.execute(SQL_AUDIT, at, actor, action, target_type, str(target_id), json.dumps(payload, default=str),
                       request_id.get())
