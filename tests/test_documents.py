"""Object documents over HTTP on a real PostgreSQL: upload, list, download and delete, each refusal
with its error and nothing stored, the size cap enforced while the body streams in, object scope,
Idempotency-Key on a streamed upload, and the audit row of every upload, download and deletion."""
from __future__ import annotations

import asyncio
import hashlib
import os
from typing import Any, AsyncIterator
from urllib.parse import quote

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from hub.api.server import build_http
from hub.config import DocumentSettings
from hub.documents import DocumentRefused, clean_filename, content_disposition, judge
from hub.secret_box import SecretBox
from support.api import HeaderAuthenticator, as_role, json_of, start_client

CAP = 256 * 1024
ADMIN = as_role("ADMIN", 2)
OPERATOR = as_role("OPERATOR", 3)
BOUNDARY = "vigil-test-boundary-7MA4YWxkTrZu0gW"

PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + os.urandom(200 * 1024) + b"\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(3000)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + os.urandom(3000)
WEBP = b"RIFF\x24\x10\x00\x00WEBPVP8 " + os.urandom(3000)

SQL_COUNT = "SELECT count(*) FROM object_documents"
SQL_AUDIT = "SELECT actor, action, target_id, details::text AS details FROM audit_log WHERE action LIKE 'document.%' ORDER BY id"


def part(name: str, data: bytes, filename: str | None = None, content_type: str | None = None,
         extra: str = "") -> bytes:
    """One multipart/form-data part, written out by hand so a test controls every header."""
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
    head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
    if content_type is not None:
        head += f"Content-Type: {content_type}\r\n"
    return (head + extra + "\r\n").encode() + data + b"\r\n"


def form(*parts: bytes) -> tuple[bytes, dict[str, str]]:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode(), {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def pdf_form(data: bytes = PDF, filename: str = "plan.pdf", content_type: str = "application/pdf",
             title: str | None = None) -> tuple[bytes, dict[str, str]]:
    parts = [part("file", data, filename, content_type)]
    if title is not None:
        parts.insert(0, part("title", title.encode()))
    return form(*parts)


@pytest.fixture
async def client(db: asyncpg.Pool) -> AsyncIterator[TestClient]:
    c = await start_client(build_http(db, HeaderAuthenticator(), [], SecretBox.generate(),
                                      documents=DocumentSettings(max_bytes=CAP)))
    yield c
    await c.close()


@pytest.fixture
async def objects(db: asyncpg.Pool) -> tuple[int, int]:
    """Two objects, and the users the test headers stand for (for the uploader's email)."""
    await db.execute("INSERT INTO users (id, email, role, password_hash, created_at, updated_at) "
                     "VALUES (2, 'admin2@arc.example', 'ADMIN', 'x', now(), now())")
    a = await db.fetchval("INSERT INTO objects (name) VALUES ('Magazyn Łódź') RETURNING id")
    b = await db.fetchval("INSERT INTO objects (name) VALUES ('Bank Żoliborz') RETURNING id")
    return a, b


async def upload(client: TestClient, object_id: int, body: tuple[bytes, dict[str, str]],
                 headers: dict[str, str] = ADMIN) -> tuple[int, Any]:
    data, content_type = body
    resp = await client.post(f"/api/v1/objects/{object_id}/documents", data=data, headers={**headers, **content_type})
    return resp.status, await json_of(resp)


async def test_upload_list_download_delete_round_trip_with_audit(client: TestClient, db: asyncpg.Pool,
                                                                 objects: tuple[int, int]) -> None:
    a, _ = objects
    status, doc = await upload(client, a, pdf_form(filename="schemat piętra 1.pdf", title="Schemat — piętro 1"))
    assert status == 201, doc
    digest = hashlib.sha256(PDF).hexdigest()
    assert doc["sha256"] == digest and doc["size_bytes"] == len(PDF) and doc["media_type"] == "application/pdf"
    assert doc["filename"] == "schemat piętra 1.pdf" and doc["title"] == "Schemat — piętro 1"
    assert doc["object_id"] == a and doc["url"] == f"/api/v1/documents/{doc['id']}"
    assert doc["uploaded_by"] == "user:2" and doc["uploaded_by_email"] == "admin2@arc.example"
    listed = await json_of(await client.get(f"/api/v1/objects/{a}/documents", headers=OPERATOR))
    assert listed == [doc]

    resp = await client.get(doc["url"], headers=OPERATOR)
    body = await resp.read()
    assert resp.status == 200 and body == PDF and hashlib.sha256(body).hexdigest() == digest
    assert resp.headers["Content-Type"] == "application/pdf"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Content-Disposition"] == (
        "attachment; filename=\"schemat pietra 1.pdf\"; filename*=UTF-8''" + quote("schemat piętra 1.pdf", safe=""))
    assert "sandbox" in resp.headers["Content-Security-Policy"] and "no-store" in resp.headers["Cache-Control"]

    assert (await client.delete(doc["url"], headers=OPERATOR)).status == 403
    resp = await client.delete(doc["url"], headers=ADMIN)
    assert resp.status == 204
    assert (await client.get(doc["url"], headers=OPERATOR)).status == 404
    assert (await client.delete(doc["url"], headers=ADMIN)).status == 404
    assert await json_of(await client.get(f"/api/v1/objects/{a}/documents", headers=OPERATOR)) == []
    assert await db.fetchval(SQL_COUNT) == 0

    audit = await db.fetch(SQL_AUDIT)
    assert [(r["actor"], r["action"], r["target_id"]) for r in audit] == [
        ("user:2", "document.upload", str(doc["id"])), ("user:3", "document.download", str(doc["id"])),
        ("user:2", "document.delete", str(doc["id"]))]
    for row in audit:
        assert digest in row["details"] and "schemat pi" in row["details"] and f'"object_id": {a}' in row["details"]


@pytest.mark.parametrize(("data", "filename", "content_type", "media_type"), [
    (PNG, "front.png", "image/png", "image/png"),
    (JPEG, "Brama wjazdowa.JPG", "image/jpeg", "image/jpeg"),
    (JPEG, "brama.jpeg", "application/octet-stream", "image/jpeg"),  # octet-stream claims nothing
    (WEBP, "hall.webp", "image/webp", "image/webp"),
    (PDF, "plan.pdf", None, "application/pdf"),  # no declared type: the content decides
    (PDF[:20], "tiny.pdf", "application/pdf", "application/pdf"),
], ids=["png", "jpeg", "jpeg-as-octet-stream", "webp", "pdf-untyped", "tiny-pdf"])
async def test_each_kept_kind_is_stored_as_its_content_says(client: TestClient, objects: tuple[int, int],
                                                            data: bytes, filename: str, content_type: str | None,
                                                            media_type: str) -> None:
    status, doc = await upload(client, objects[0], form(part("file", data, filename, content_type)))
    assert status == 201 and doc["media_type"] == media_type, doc
    resp = await client.get(doc["url"], headers=ADMIN)
    assert await resp.read() == data and resp.headers["Content-Type"] == media_type


SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
HTML = b"\xef\xbb\xbf\n  <html><script>fetch('/api/v1/audit')</script></html>"


@pytest.mark.parametrize(("body", "status", "code", "says"), [
    (pdf_form(b"Just some text, not a PDF at all", "plan.pdf"), 415, "unsupported_media_type", "is not a PDF, PNG"),
    (pdf_form(b"GIF89a" + os.urandom(100), "anim.gif", "image/gif"), 415, "unsupported_media_type", "is not a PDF"),
    (pdf_form(SVG, "plan.svg", "image/svg+xml"), 415, "unsupported_media_type", "SVG and HTML"),
    (pdf_form(SVG, "plan.pdf", "application/pdf"), 415, "unsupported_media_type", "SVG and HTML"),
    (pdf_form(HTML, "page.pdf", "application/pdf"), 415, "unsupported_media_type", "SVG and HTML"),
    (pdf_form(PDF, "plan.html", "text/html"), 415, "unsupported_media_type", "SVG and HTML"),
    (pdf_form(PDF, "plan.png", "application/pdf"), 415, "unsupported_media_type", "does not end in .pdf"),
    (pdf_form(PDF, "plan", "application/pdf"), 415, "unsupported_media_type", "does not end in .pdf"),
    (pdf_form(PNG, "plan.pdf", "application/pdf"), 415, "unsupported_media_type", "sent as application/pdf"),
    (pdf_form(PDF, "plan.pdf", "image/png"), 415, "unsupported_media_type", "its content is PDF"),
    (pdf_form(b"", "plan.pdf"), 422, "invalid", "the file is empty"),
    (form(part("title", b"no file here")), 422, "invalid", "form field `file`"),
    (form(part("file", PDF, None, "application/pdf")), 422, "invalid", "needs a file name"),
    (form(part("file", PDF[:99], "a.pdf", "application/pdf"), part("file", PDF[:99], "b.pdf", "application/pdf")), 422,
     "invalid", "one file per upload"),
    (form(part("note", b"x"), part("file", PDF, "a.pdf", "application/pdf")), 422, "invalid", "unknown form field"),
    (pdf_form(title="t" * 201), 422, "invalid", "at most 200"),
    (pdf_form(title="line\nbreak"), 422, "invalid", "printable"),
    (form(part("file", PDF, "a.pdf", "application/pdf", extra="Content-Transfer-Encoding: base64\r\n")), 422,
     "invalid", "Content-Transfer-Encoding"),
    (form(part("file", PDF, "a.pdf", "application/pdf", extra="Content-Encoding: gzip\r\n")), 422,
     "invalid", "Content-Encoding"),
    (form(f"--{BOUNDARY}\r\nContent-Type: application/pdf\r\n\r\n".encode() + PDF[:99] + b"\r\n"), 422,
     "invalid", "needs a name"),
    ((part("file", PDF[:99], "a.pdf", "application/pdf"), {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}),
     400, "bad_multipart", "not valid multipart"),
    (form(part("file", PDF[:99], "a" * 20_000 + ".pdf", "application/pdf")), 400, "bad_multipart", "not valid multipart"),
    (form(f"--{BOUNDARY}\r\nContent-Disposition form-data\r\n\r\nx\r\n".encode()), 400, "bad_multipart",
     "not valid multipart"),
    ((b"this is not multipart at all", {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}), 400,
     "bad_multipart", "not valid multipart"),
    ((PDF, {"Content-Type": "multipart/form-data"}), 400, "bad_multipart", "not valid multipart"),
    ((PDF, {"Content-Type": "application/pdf"}), 415, "unsupported_media_type", "multipart/form-data"),
], ids=["text-as-pdf", "gif", "svg", "svg-as-pdf", "html-as-pdf", "html-name", "pdf-as-png-name", "no-extension",
        "png-as-pdf", "pdf-declared-png", "empty", "no-file", "no-filename", "two-files", "unknown-field",
        "long-title", "title-control-char", "base64-part", "gzip-part", "nameless-part", "no-closing-boundary",
        "part-header-too-long", "part-header-without-colon", "garbage", "no-boundary", "not-a-form"])
async def test_a_refused_upload_answers_why_and_stores_nothing(client: TestClient, db: asyncpg.Pool,
                                                               objects: tuple[int, int], body: tuple[bytes, dict],
                                                               status: int, code: str, says: str) -> None:
    got, answer = await upload(client, objects[0], body)
    assert got == status, answer
    assert set(answer["error"]) == {"code", "message", "request_id", "details"}
    assert answer["error"]["code"] == code and says in answer["error"]["message"], answer
    assert await db.fetchval(SQL_COUNT) == 0
    assert await db.fetch(SQL_AUDIT) == []


async def test_a_declared_body_over_the_cap_is_refused_before_it_is_read(client: TestClient, db: asyncpg.Pool,
                                                                         objects: tuple[int, int]) -> None:
    status, answer = await upload(client, objects[0], pdf_form(b"%PDF-1.7\n" + os.urandom(CAP + 70 * 1024)))
    assert status == 413 and answer["error"]["code"] == "file_too_large", answer
    assert answer["error"]["details"] == {"max_bytes": CAP}
    # One byte over the cap, within the form's allowance: refused while streaming.
    status, answer = await upload(client, objects[0], pdf_form(b"%PDF-1.7\n" + b"x" * (CAP - 8)))
    assert status == 413 and answer["error"]["code"] == "file_too_large", answer
    status, _ = await upload(client, objects[0], pdf_form(b"%PDF-1.7\n" + b"x" * (CAP - 9)))
    assert status == 201
    assert await db.fetchval(SQL_COUNT) == 1


async def test_a_streamed_body_over_the_cap_is_refused_before_it_is_all_sent(client: TestClient, db: asyncpg.Pool,
                                                                             objects: tuple[int, int]) -> None:
    """Chunked, so no length is declared: the hub must count as it reads. The client holds back
    the rest of a nominal 1 GiB body until it has the answer; a hub that read the whole body
    before answering would never answer, and the test would fail on the deadline."""
    answered, sent, chunk = asyncio.Event(), 0, b"\0" * (16 * 1024)
    head = part("file", b"", "huge.pdf", "application/pdf")[:-2] + b"%PDF-1.7\n"

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        yield head
        while sent < 4 * CAP:
            yield chunk
            sent += len(chunk)
        await asyncio.wait_for(answered.wait(), 60)  # a hub that waits for the rest never answers

    resp = await client.post(f"/api/v1/objects/{objects[0]}/documents", data=body(),
                             headers={**ADMIN, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    answered.set()
    answer = await json_of(resp)
    assert resp.status == 413 and answer["error"]["code"] == "file_too_large", answer
    assert sent <= 4 * CAP and "Content-Length" not in resp.request_info.headers
    assert await db.fetchval(SQL_COUNT) == 0


async def test_a_wrong_type_is_refused_from_its_first_bytes(client: TestClient, objects: tuple[int, int]) -> None:
    """The type is judged from the first bytes, before the rest is read: a body that stops short
    of its end (well under the cap, a few of the reader's chunks in) still gets its 415."""
    answered = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield part("file", b"", "plan.pdf", "application/pdf")[:-2] + b"MZ\x90\x00" + b"\0" * (CAP // 2)
        await asyncio.wait_for(answered.wait(), 60)

    resp = await client.post(f"/api/v1/objects/{objects[0]}/documents", data=body(),
                             headers={**ADMIN, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    answered.set()
    assert resp.status == 415 and "is not a PDF" in (await json_of(resp))["error"]["message"]


async def test_documents_of_another_object_are_not_found_for_assigned_roles(client: TestClient,
                                                                            objects: tuple[int, int]) -> None:
    a, b = objects
    _, mine = await upload(client, a, pdf_form(filename="a.pdf"))
    _, theirs = await upload(client, b, pdf_form(filename="b.pdf"))
    for role in ("TECHNICIAN", "FIELD_WORKER"):
        headers = as_role(role, 7, [a])
        assert [d["id"] for d in await json_of(await client.get(f"/api/v1/objects/{a}/documents", headers=headers))] \
            == [mine["id"]]
        assert await (await client.get(mine["url"], headers=headers)).read() == PDF
        answers = []
        for url in (f"/api/v1/objects/{b}/documents", theirs["url"], "/api/v1/documents/987654"):
            resp = await client.get(url, headers=headers)
            answers.append((resp.status, (await json_of(resp))["error"]["code"]))
        assert answers == [(404, "not_found")] * 3, role
        forbidden = await client.delete(mine["url"], headers=headers)
        assert forbidden.status == 403
        status, answer = await upload(client, a, pdf_form(), headers)
        assert status == 403 and answer["error"]["code"] == "forbidden"


async def test_upload_to_a_missing_object_is_404(client: TestClient, db: asyncpg.Pool) -> None:
    status, answer = await upload(client, 987654, pdf_form())
    assert status == 404 and answer["error"]["code"] == "not_found"
    assert await db.fetchval(SQL_COUNT) == 0


async def test_idempotency_key_on_a_streamed_upload(client: TestClient, db: asyncpg.Pool,
                                                    objects: tuple[int, int]) -> None:
    """The body is never kept, so the key is matched on the digest of what was read: the same file
    again is the first answer, another file under the same key is refused."""
    key = {**ADMIN, "Idempotency-Key": "upload-1"}
    data, content_type = pdf_form(title="Plan")
    first = await client.post(f"/api/v1/objects/{objects[0]}/documents", data=data, headers={**key, **content_type})
    again = await client.post(f"/api/v1/objects/{objects[0]}/documents", data=data, headers={**key, **content_type})
    assert first.status == again.status == 201 and await json_of(first) == await json_of(again)
    assert again.headers.get("Idempotent-Replayed") == "true"
    other, content_type = pdf_form(PDF + b"changed", title="Plan")
    refused = await client.post(f"/api/v1/objects/{objects[0]}/documents", data=other, headers={**key, **content_type})
    assert refused.status == 422 and (await json_of(refused))["error"]["code"] == "idempotency_key_reused"
    assert await db.fetchval(SQL_COUNT) == 1
    assert len(await db.fetch(SQL_AUDIT)) == 1


def test_file_names_are_cleaned_and_headers_cannot_be_bent() -> None:
    assert clean_filename("C:\\Users\\ops\\plan.pdf") == "plan.pdf"
    assert clean_filename("../../etc/passwd.pdf") == "passwd.pdf"
    assert clean_filename("inv\u202eoice\x00\r\n.pdf") == "invoice.pdf"  # bidi override, NUL, CR LF dropped
    long = clean_filename("a" * 400 + ".pdf")
    assert len(long) == 255 and long.endswith(".pdf")
    header = content_disposition('plan "x"; name=y%.pdf')
    assert header.startswith('attachment; filename="plan _x__ name=y_.pdf"; filename*=UTF-8\'\'')
    assert content_disposition("Łódź ściana.pdf").startswith('attachment; filename="_odz sciana.pdf"')


def test_judging_a_file_needs_its_content_name_and_type_to_agree() -> None:
    assert judge(b"%PDF-1.4", "application/pdf; charset=binary", "a.PDF").media_type == "application/pdf"
    with pytest.raises(DocumentRefused, match="SVG and HTML"):
        judge(b"\x89PNG\r\n\x1a\n", "image/png", "a.svg")
    with pytest.raises(DocumentRefused, match="SVG and HTML"):
        judge(b"%PDF-1.4", "image/svg+xml", "a.pdf")
    with pytest.raises(DocumentRefused, match="does not end in .jpg or .jpeg"):
        judge(b"\xff\xd8\xff\xe0", "image/jpeg", "a.pdf.exe")
    with pytest.raises(DocumentRefused, match="not a PDF, PNG, JPEG or WebP"):
        judge(b"RIFF\0\0\0\0WAVE", "image/webp", "a.webp")
