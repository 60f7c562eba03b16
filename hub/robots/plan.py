"""An object's robot site plan (docs/architecture.md §5 "Robots", migration 0022): one of the
object's uploaded images chosen as the map the console draws its robots on, with the area it shows
in metres and where its bottom-left corner is in the site's coordinates. Which document may be a
plan (`check_document`, pure), the SQL, what the API and the live stream show of a plan, and its
outbox item (`robot.plan.updated`)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from hub.db.outbox import OutboxItem
from hub.robots.views import iso

PLAN_UPDATED = "robot.plan.updated"
#: The image kinds of hub.documents a browser draws (a PDF is a document, not a picture).
PLAN_MEDIA_TYPES = frozenset({"image/png", "image/jpeg", "image/webp"})

SQL_PLAN = """
SELECT p.*, d.title, d.filename, d.media_type, d.sha256
FROM robot_site_plans p JOIN object_documents d ON d.id = p.document_id
WHERE p.object_id = $1
"""
# Held until the transaction ends, so the document cannot go between the check and the write.
SQL_DOCUMENT = "SELECT id, object_id, filename, media_type FROM object_documents WHERE id = $1 FOR SHARE"
SQL_SET = """
INSERT INTO robot_site_plans (object_id, document_id, width_m, height_m, origin_x_m, origin_y_m, updated_by, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (object_id) DO UPDATE SET document_id = excluded.document_id, width_m = excluded.width_m,
    height_m = excluded.height_m, origin_x_m = excluded.origin_x_m, origin_y_m = excluded.origin_y_m,
    updated_by = excluded.updated_by, updated_at = excluded.updated_at
"""
SQL_DELETE = "DELETE FROM robot_site_plans WHERE object_id = $1 RETURNING document_id"


@dataclass(frozen=True)
class Placement:
    """Where a plan's image lies on the site: its size and its bottom-left corner, in metres."""

    width_m: float
    height_m: float
    origin_x_m: float = 0.0
    origin_y_m: float = 0.0


class PlanRefused(Exception):
    """The document cannot be this object's plan; the message says why, for the admin."""


def check_document(document: Any | None, object_id: int, document_id: int) -> None:
    """PlanRefused unless `document` (an object_documents row, or None when there is none) is an
    image of the object. A missing document and another object's read alike: which documents
    other objects have is not the caller's to learn."""
    if document is None or document["object_id"] != object_id:
        raise PlanRefused(f"document {document_id} is not a document of this object: upload the plan to it first")
    if document["media_type"] not in PLAN_MEDIA_TYPES:
        raise PlanRefused(f"{document['filename']} is {document['media_type']}: a plan must be a PNG, JPEG or "
                          f"WebP image")


async def plan(conn: asyncpg.Connection | asyncpg.Pool, object_id: int) -> Any | None:
    """The object's plan with its document's name and type, or None."""
    return await conn.fetchrow(SQL_PLAN, object_id)


async def document(conn: asyncpg.Connection, document_id: int) -> Any | None:
    """The document a plan would show, share-locked for the caller's transaction; None if missing."""
    return await conn.fetchrow(SQL_DOCUMENT, document_id)


async def set_plan(conn: asyncpg.Connection, object_id: int, document_id: int, placement: Placement, actor: str,
                   now: datetime) -> Any:
    """Make the document (checked with `check_document`) the object's plan, replacing any other;
    returns the plan as `plan` reads it."""
    await conn.execute(SQL_SET, object_id, document_id, placement.width_m, placement.height_m, placement.origin_x_m,
                       placement.origin_y_m, actor, now)
    return await plan(conn, object_id)


async def delete_plan(conn: asyncpg.Connection, object_id: int) -> int | None:
    """Remove the object's plan; the document it showed, or None when there was none."""
    return await conn.fetchval(SQL_DELETE, object_id)


def plan_json(row: Any | None) -> dict[str, Any] | None:
    """A plan as the API and the live stream show it (camelCase, as the robots' routes)."""
    if row is None:
        return None
    return {"objectId": row["object_id"], "documentId": row["document_id"], "title": row["title"],
            "filename": row["filename"], "mediaType": row["media_type"], "sha256": row["sha256"],
            "url": f"/api/v1/documents/{row['document_id']}", "widthM": row["width_m"], "heightM": row["height_m"],
            "originXM": row["origin_x_m"], "originYM": row["origin_y_m"], "updatedBy": row["updated_by"],
            "updatedAt": iso(row["updated_at"])}


def plan_update(object_id: int, row: Any | None) -> OutboxItem:
    """`robot.plan.updated`: the object's plan now (None: it has none), for the consoles showing
    its robots."""
    return OutboxItem(PLAN_UPDATED, object_id, {"objectId": object_id, "plan": plan_json(row)})
