"""Import of objects from CSV or XLSX: every row is validated first, then all are imported in one
transaction or none is, and each run is recorded in import_log."""
from __future__ import annotations

import asyncio
import csv
import io
import re
import zipfile
from typing import Any

import msgspec

from hub.api.app import deps
from hub.api.crud import audit
from hub.api.errors import ApiError
from hub.api.objects_api import ObjectIn
from hub.api.routing import Call, Router

router = Router()

CSV_TYPES = ("text/csv",)
XLSX_TYPES = ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",)
MAX_ROWS = 10_000
MAX_UNPACKED_BYTES = 64 * 2**20
COLUMNS = ("name", "address", "type", "lat", "lon")

SQL_INSERT = """
INSERT INTO objects (name, address, type, lat, lon)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::float8[])
"""
SQL_LOG = """
INSERT INTO import_log (actor, filename, format, rows_total, rows_ok, imported, errors)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb) RETURNING id
"""


class ImportResult(msgspec.Struct):
    import_id: int
    imported: bool
    rows_total: int
    rows_ok: int
    errors: list[dict[str, Any]]


def _rows_from_csv(raw: bytes) -> list[dict[str, Any]]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApiError(422, "invalid", "the CSV file is not UTF-8") from None
    return list(csv.DictReader(io.StringIO(text)))


def _rows_from_xlsx(raw: bytes) -> list[dict[str, Any]]:
    """The first sheet's rows, read in a worker thread (see import_objects). A workbook whose parts
    would unpack to more than MAX_UNPACKED_BYTES is refused before any XML is parsed (a zip bomb
    is a few kB on the wire); rows stop at MAX_ROWS + 1, so a huge sheet is never held whole; the
    XML is parsed by openpyxl through defusedxml (no entity expansion)."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            # A part never yields more than its declared size (zipfile stops there), so the sum
            # of declared sizes bounds what parsing can unpack.
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        raise ApiError(422, "invalid", "the file is not a readable XLSX workbook (not a zip archive)") from None
    if unpacked > MAX_UNPACKED_BYTES:
        raise ApiError(413, "file_too_large", f"the workbook unpacks to {unpacked / 2**20:.1f} MiB; at most "
                                              f"{MAX_UNPACKED_BYTES // 2**20} MiB is read")
    import openpyxl  # here, not at the top: ~85 ms of every hub start, for an admin's rare import

    try:
        book = openpyxl.load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
        sheet = book.worksheets[0]
        rows = sheet.iter_rows(values_only=True)
        header = [str(h).strip() if h is not None else "" for h in next(rows, ())]
        out: list[dict[str, Any]] = []
        for row in rows:
            if any(v is not None for v in row):
                out.append({h: v for h, v in zip(header, row) if h})
                if len(out) > MAX_ROWS:
                    break
    except ApiError:
        raise
    except Exception as exc:  # openpyxl and defusedxml raise many types for a damaged or hostile file
        raise ApiError(422, "invalid", f"the file is not a readable XLSX workbook ({type(exc).__name__})") from None
    return out


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in COLUMNS:
        value = row.get(key)
        if isinstance(value, str):
            value = value.strip()
        if value in ("", None):
            continue
        out[key] = value
    unknown = sorted(k for k in row if k and k not in COLUMNS)
    if unknown:
        out["__unknown__"] = unknown
    return out


def field_of(message: str) -> str | None:
    """The field a msgspec validation message is about."""
    match = re.search(r"at `\$\.([^`]+)`", message) or re.search(r"required field `([^`]+)`", message)
    return match.group(1) if match else None


def validate(rows: list[dict[str, Any]]) -> tuple[list[ObjectIn], list[dict[str, Any]]]:
    """Every row as an ObjectIn, and every row's errors (row numbers count the header as row 1)."""
    good: list[ObjectIn] = []
    errors: list[dict[str, Any]] = []
    names: dict[str, int] = {}
    for index, row in enumerate(rows, start=2):
        data = _clean(row)
        unknown = data.pop("__unknown__", None)
        if unknown:
            errors.append({"row": index, "field": unknown[0], "reason": f"unknown column(s): {', '.join(unknown)}"})
            continue
        try:
            obj = msgspec.convert(data, ObjectIn, strict=False)
        except msgspec.ValidationError as exc:
            message = str(exc)
            errors.append({"row": index, "field": field_of(message), "reason": message})
            continue
        key = obj.name.lower()
        if key in names:
            errors.append({"row": index, "field": "name", "reason": f"duplicates row {names[key]}"})
            continue
        names[key] = index
        good.append(obj)
    return good, errors


@router.post("/api/v1/admin/import/objects", body=bytes, consumes=CSV_TYPES + XLSX_TYPES, response=ImportResult,
             permission="objects.edit", tags=("admin",))
async def import_objects(call: Call) -> ImportResult:
    """Import objects from a CSV or XLSX file (columns: name, address, type, lat, lon): all or nothing."""
    request = call.request
    is_csv = request.content_type in CSV_TYPES
    # Unzipping and parsing a workbook takes CPU time: never on the event loop ingest shares.
    rows = _rows_from_csv(call.raw_body) if is_csv else await asyncio.to_thread(_rows_from_xlsx, call.raw_body)
    if not rows:
        raise ApiError(422, "invalid", "the file has no data rows")
    if len(rows) > MAX_ROWS:
        raise ApiError(422, "invalid", f"at most {MAX_ROWS} rows per import, got {len(rows)}")
    good, errors = validate(rows)
    filename = request.headers.get("X-Filename", "upload.csv" if is_csv else "upload.xlsx")[:200]
    imported = not errors
    async with deps(call).pool.acquire() as conn, conn.transaction():
        if imported:
            await conn.execute(SQL_INSERT, [o.name for o in good], [o.address for o in good], [o.type for o in good],
                               [o.lat for o in good], [o.lon for o in good])
        import_id = await conn.fetchval(SQL_LOG, call.user.actor, filename, "csv" if is_csv else "xlsx", len(rows),
                                        len(good), imported, msgspec.json.encode(errors).decode())
        await audit(conn, call, "object.import", "import", import_id, {"rows": len(rows), "imported": imported})
    if not imported:
        # The run is logged (committed above); the answer is the one error shape, rows in details.
        raise ApiError(422, "import_rejected", f"{len(errors)} row(s) are invalid; nothing was imported",
                       {"import_id": import_id, "rows_total": len(rows), "errors": errors})
    return ImportResult(import_id, True, len(rows), len(good), [])
