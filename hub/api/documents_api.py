"""Object documents: schematics, photos and PDFs uploaded to an object, kept in PostgreSQL
(docs/architecture.md §5, "Object documents").

An upload is multipart/form-data with one `file` part and an optional `title`. The file streams in
a chunk at a time and is refused (413) the moment it passes `documents.max_bytes`, so an oversized
body is never read whole; its type is judged from its first bytes (hub.documents) before the rest
is read. Uploads, downloads (a site's schematics are sensitive) and deletions are audited. Roles
that see only their assigned objects get 404 for any other object's documents."""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Any

import msgspec
from aiohttp import BodyPartReader, web
from aiohttp.hdrs import CONTENT_ENCODING, CONTENT_TRANSFER_ENCODING, CONTENT_TYPE
from aiohttp.http_exceptions import HttpProcessingError

from hub.api.app import deps, idempotently
from hub.api.crud import audit
from hub.api.errors import ApiError, invalid, not_found
from hub.api.objects_api import visible_object
from hub.api.permissions import object_filter
from hub.api.routing import Call, Router
from hub.config import DocumentSettings
from hub.documents import SNIFF_BYTES, DocumentRefused, Kind, clean_filename, content_disposition, judge

router = Router()

SETTINGS_KEY = "documents"
CHUNK_BYTES = 64 * 1024
MAX_TITLE = 200
# Room for the form's boundaries, part headers and title around the file: a declared body larger
# than the cap plus this is refused before a byte of it is read.
FORM_OVERHEAD = 64 * 1024
IDENTITY_TRANSFER = ("", "binary", "8bit", "7bit")
IDENTITY_CONTENT = ("", "identity")
UPLOAD_FORM = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {"type": "string", "format": "binary",
                 "description": "PDF, PNG, JPEG or WebP; its part's Content-Type and file name must agree with it"},
        "title": {"type": "string", "maxLength": MAX_TITLE},
    },
}

DOCUMENT_COLUMNS = "id, object_id, title, filename, media_type, size_bytes, sha256, uploaded_by, uploaded_at"
# A document's metadata (never its bytes) with the uploader's email.
WITH_UPLOADER = """
SELECT d.*, u.email AS uploaded_by_email FROM d
LEFT JOIN users u ON u.id = CASE WHEN d.uploaded_by ~ '^user:[0-9]{1,18}$' THEN substr(d.uploaded_by, 6)::int8 END
"""
SQL_INSERT = f"""
WITH d AS (
    INSERT INTO object_documents (object_id, title, filename, media_type, size_bytes, sha256, content, uploaded_by)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    RETURNING {DOCUMENT_COLUMNS}
) {WITH_UPLOADER}
"""
SQL_LIST = f"""
WITH d AS (SELECT {DOCUMENT_COLUMNS} FROM object_documents WHERE object_id = $1) {WITH_UPLOADER}
ORDER BY d.uploaded_at DESC, d.id DESC
"""
# Object scope in the statement itself: a document of an object outside the caller's assignment
# is not found, exactly like one that does not exist.
SQL_CONTENT = """
SELECT object_id, filename, media_type, sha256, size_bytes, content FROM object_documents
WHERE id = $1 AND ($2::int8[] IS NULL OR object_id = ANY($2))
"""
SQL_DELETE = f"""
DELETE FROM object_documents WHERE id = $1 AND ($2::int8[] IS NULL OR object_id = ANY($2))
RETURNING {DOCUMENT_COLUMNS}
"""


class DocumentOut(msgspec.Struct):
    id: int
    object_id: int
    title: str
    filename: str
    media_type: str  # what the content is (judged by the hub), and what a download is served as
    size_bytes: int
    sha256: str  # hex digest of the stored bytes
    uploaded_by: str  # the actor, as the audit log names it
    uploaded_by_email: str | None
    uploaded_at: str
    url: str  # GET it to download the file


@dataclass(frozen=True)
class Upload:
    """A file read from the form, with what the client said of it."""

    filename: str
    declared_type: str
    title: str
    kind: Kind
    content: bytes
    sha256: str

    def fingerprint(self) -> bytes:
        """What makes two uploads the same request, for Idempotency-Key: never the bytes
        themselves (the digest stands for them), so nothing large is hashed twice."""
        return "\n".join(("document", self.title, self.filename, self.declared_type, self.sha256)).encode()


def _document_out(row: Any) -> DocumentOut:
    return DocumentOut(row["id"], row["object_id"], row["title"], row["filename"], row["media_type"],
                       row["size_bytes"], row["sha256"], row["uploaded_by"], row["uploaded_by_email"],
                       row["uploaded_at"].isoformat(), f"/api/v1/documents/{row['id']}")


def _metadata(row: Any) -> dict[str, Any]:
    """What the audit log keeps of a document: enough to say which file it was, never its bytes."""
    return {"object_id": row["object_id"], "filename": row["filename"], "media_type": row["media_type"],
            "size_bytes": row["size_bytes"], "sha256": row["sha256"]}


def _too_large(max_bytes: int) -> ApiError:
    return ApiError(413, "file_too_large", f"the file is larger than {max_bytes} bytes "
                                           f"({max_bytes / 2**20:.1f} MiB), the most a document may be",
                    {"max_bytes": max_bytes})


def _refused(exc: DocumentRefused) -> ApiError:
    return ApiError(415, "unsupported_media_type", str(exc), {"field": "file"})


def _check_encoding(part: BodyPartReader) -> None:
    # RFC 7578 retired Content-Transfer-Encoding; an encoded part (base64, gzip) would make the
    # size cap and the type check see other bytes than the file's.
    if (part.headers.get(CONTENT_TRANSFER_ENCODING, "").strip().lower() not in IDENTITY_TRANSFER
            or part.headers.get(CONTENT_ENCODING, "").strip().lower() not in IDENTITY_CONTENT):
        raise invalid("send form parts as plain bytes, without Content-Transfer-Encoding or Content-Encoding",
                      {"field": part.name})


async def _read_title(part: BodyPartReader) -> str:
    raw = bytearray()
    while chunk := await part.read_chunk(CHUNK_BYTES):
        raw += chunk
        if len(raw) > MAX_TITLE * 4:  # four bytes per character at most in UTF-8
            break
    try:
        title = raw.decode().strip()
    except UnicodeDecodeError:
        raise invalid("the title is not UTF-8 text", {"field": "title"}) from None
    if len(title) > MAX_TITLE or any(not ch.isprintable() for ch in title):
        raise invalid(f"the title must be at most {MAX_TITLE} printable characters", {"field": "title"})
    return title


async def _read_file(part: BodyPartReader, max_bytes: int) -> Upload:
    """The file, read a chunk at a time: refused as soon as it passes `max_bytes`, or as soon as
    its first bytes show a kind the hub does not keep (or one its name or type disagree with)."""
    filename = clean_filename(part.filename or "")
    if not filename:
        raise invalid("the file part needs a file name", {"field": "file"})
    declared = part.headers.get(CONTENT_TYPE, "")
    content, digest, kind = bytearray(), hashlib.sha256(), None
    while chunk := await part.read_chunk(CHUNK_BYTES):
        if len(content) + len(chunk) > max_bytes:
            raise _too_large(max_bytes)
        content += chunk
        digest.update(chunk)
        if kind is None and len(content) >= SNIFF_BYTES:
            kind = judge(bytes(content[:SNIFF_BYTES]), declared, filename)
    if not content:
        raise invalid("the file is empty", {"field": "file"})
    if kind is None:  # a file shorter than a signature
        kind = judge(bytes(content), declared, filename)
    return Upload(filename, declared, "", kind, bytes(content), digest.hexdigest())


async def read_upload(request: web.Request, max_bytes: int) -> Upload:
    """The form's file and title; 413, 415 or 422 (naming the field) for anything else."""
    if request.content_length is not None and request.content_length > max_bytes + FORM_OVERHEAD:
        raise _too_large(max_bytes)
    title, upload = "", None
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise invalid("a nested multipart part is not accepted")
            _check_encoding(part)
            if part.name == "file" and upload is None:
                upload = await _read_file(part, max_bytes)
            elif part.name == "file":
                raise invalid("send one file per upload", {"field": "file"})
            elif part.name == "title":
                title = await _read_title(part)
            elif part.name is None:
                raise invalid("every form part needs a name (Content-Disposition: form-data; name=...)")
            else:
                raise invalid(f"unknown form field {part.name!r}: send `file` and optionally `title`",
                              {"field": part.name})
    except DocumentRefused as exc:
        raise _refused(exc) from None
    except (ValueError, HttpProcessingError, web.HTTPException) as exc:
        # How aiohttp's multipart reader says the body is malformed (no boundary, a broken part,
        # part headers too long or too many).
        raise ApiError(400, "bad_multipart", "the body is not valid multipart/form-data", {"reason": str(exc)}) from None
    if upload is None:
        raise invalid("send the document as the form field `file`", {"field": "file"})
    return dataclasses.replace(upload, title=title)  # the title may come before or after the file


def _settings(call: Call) -> DocumentSettings:
    return deps(call).extra[SETTINGS_KEY]  # type: ignore[no-any-return]


async def _store(call: Call, object_id: int, upload: Upload) -> web.Response:
    async with deps(call).pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(SQL_INSERT, object_id, upload.title, upload.filename, upload.kind.media_type,
                                  len(upload.content), upload.sha256, upload.content, call.user.actor)
        await audit(conn, call, "document.upload", "document", row["id"], {**_metadata(row), "title": row["title"]})
    return web.Response(body=msgspec.json.encode(_document_out(row)), status=201, content_type="application/json")


@router.post("/api/v1/objects/{id}/documents", form=UPLOAD_FORM, consumes=("multipart/form-data",),
             response=DocumentOut, status=201, permission="objects.edit", tags=("objects",))
async def upload_document(call: Call) -> web.StreamResponse:
    """Upload a document to an object (multipart/form-data: `file`, optional `title`)."""
    object_id = call.path_int("id")
    await visible_object(call, object_id)  # before a byte of the file is read
    upload = await read_upload(call.request, _settings(call).max_bytes)
    # The body was streamed, never kept: the key is matched on a digest of what was read.
    return await idempotently(call, upload.fingerprint(), lambda: _store(call, object_id, upload))


@router.get("/api/v1/objects/{id}/documents", response=list[DocumentOut], permission="objects.view", tags=("objects",))
async def list_documents(call: Call) -> list[DocumentOut]:
    """The object's documents, newest first (without their content)."""
    object_id = call.path_int("id")
    await visible_object(call, object_id)
    return [_document_out(r) for r in await deps(call).pool.fetch(SQL_LIST, object_id)]


@router.get("/api/v1/documents/{id}", permission="objects.view", produces="application/octet-stream",
            tags=("objects",))
async def download_document(call: Call) -> web.Response:
    """Download a document, as the type its content was found to be; every download is audited."""
    document_id = call.path_int("id")
    pool = deps(call).pool
    row = await pool.fetchrow(SQL_CONTENT, document_id, object_filter(call.user))
    if row is None:
        raise not_found("document")
    await audit(pool, call, "document.download", "document", document_id, _metadata(row))
    return web.Response(body=row["content"], headers={
        "Content-Type": row["media_type"],
        "Content-Disposition": content_disposition(row["filename"]),
        # The browser must take the stored type as it is, save the file rather than show it, and
        # run nothing in it should it be shown anyway.
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, no-store",
    })


@router.delete("/api/v1/documents/{id}", permission="objects.edit", status=204, tags=("objects",))
async def delete_document(call: Call) -> None:
    """Delete a document for good; the audit log keeps its name, size and digest."""
    document_id = call.path_int("id")
    async with deps(call).pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(SQL_DELETE, document_id, object_filter(call.user))
        if row is None:
            raise not_found("document")
        await audit(conn, call, "document.delete", "document", document_id,
                    {**_metadata(row), "title": row["title"], "uploaded_by": row["uploaded_by"],
                     "uploaded_at": row["uploaded_at"].isoformat()})
