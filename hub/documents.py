"""Object documents (schematics, photos, PDFs): which files the hub keeps and how it names them.

A file is judged by its content, never by what the client says it is: the first bytes must be a
PDF, PNG, JPEG or WebP signature, and the declared media type and the file name's extension must
agree with that content. SVG and HTML are refused outright, whatever they claim to be: opened in a
browser they can run script. Pure functions; the API (hub/api/documents_api.py) maps
`DocumentRefused` to 415."""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from urllib.parse import quote

SNIFF_BYTES = 12  # the longest signature below (WebP: RIFF, size, WEBP)
MAX_FILENAME = 255
# Declared types that say nothing about the content: browsers send them for unknown extensions.
NO_CLAIM = ("", "application/octet-stream")
SCRIPTABLE_TYPES = frozenset({"image/svg+xml", "text/html", "application/xhtml+xml", "text/xml", "application/xml"})
SCRIPTABLE_EXTENSIONS = frozenset({".svg", ".svgz", ".html", ".htm", ".xhtml", ".xht", ".xml"})
_MARKUP_LEAD = b"\xef\xbb\xbf \t\r\n"  # a UTF-8 byte-order mark and white space before a `<`


@dataclass(frozen=True)
class Kind:
    """A kind of document the hub keeps."""

    label: str
    media_type: str
    extensions: tuple[str, ...]

    def matches(self, head: bytes) -> bool:
        """True when `head` (the file's first bytes) carries this kind's signature."""
        if self.media_type == "image/webp":
            return head[:4] == b"RIFF" and head[8:12] == b"WEBP"
        return head.startswith(_SIGNATURES[self.media_type])


_SIGNATURES = {"application/pdf": b"%PDF-", "image/png": b"\x89PNG\r\n\x1a\n", "image/jpeg": b"\xff\xd8\xff"}
KINDS = (
    Kind("PDF", "application/pdf", (".pdf",)),
    Kind("PNG", "image/png", (".png",)),
    Kind("JPEG", "image/jpeg", (".jpg", ".jpeg")),
    Kind("WebP", "image/webp", (".webp",)),
)
ACCEPTED = ", ".join(k.label for k in KINDS[:-1]) + f" or {KINDS[-1].label}"


class DocumentRefused(Exception):
    """The file is not one the hub keeps; the message says why, in words for the uploader."""


def _extension(filename: str) -> str:
    dot = filename.rfind(".")
    return filename[dot:].lower() if dot > 0 else ""


def clean_filename(raw: str) -> str:
    """The name to keep: its last path part, without control, format (bidi override) or unassigned
    characters, at most MAX_FILENAME characters with the extension kept."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in unicodedata.normalize("NFC", name) if unicodedata.category(ch)[0] != "C").strip()
    if len(name) > MAX_FILENAME:
        ext = _extension(name)[:16]
        name = name[:MAX_FILENAME - len(ext)] + ext
    return name


def _is_markup(head: bytes) -> bool:
    return head.lstrip(_MARKUP_LEAD)[:1] == b"<"


def judge(head: bytes, declared_type: str, filename: str) -> Kind:
    """The kind of a file from its first bytes (at least SNIFF_BYTES of them, or the whole file),
    provided its declared media type and its name agree; raises DocumentRefused otherwise."""
    declared = declared_type.split(";", 1)[0].strip().lower()
    extension = _extension(filename)
    if declared in SCRIPTABLE_TYPES or extension in SCRIPTABLE_EXTENSIONS or _is_markup(head):
        raise DocumentRefused("SVG and HTML files are refused: opened in a browser they can run script")
    kind = next((k for k in KINDS if k.matches(head)), None)
    if kind is None:
        raise DocumentRefused(f"the file's content is not a {ACCEPTED} file; only those are kept")
    if declared not in NO_CLAIM and declared != kind.media_type:
        raise DocumentRefused(f"the file is sent as {declared} but its content is {kind.label} ({kind.media_type})")
    if extension not in kind.extensions:
        raise DocumentRefused(f"the file name {filename!r} does not end in {' or '.join(kind.extensions)}, "
                              f"but its content is {kind.label}")
    return kind


def content_disposition(filename: str) -> str:
    """`attachment` with the name twice: an ASCII fallback (accents dropped, anything else that
    could end or bend the header made `_`) and the exact UTF-8 name (RFC 6266, RFC 8187)."""
    fallback = "".join(ch if " " <= ch <= "~" and ch not in '"\\;%' else "_"
                       for ch in unicodedata.normalize("NFKD", filename) if not unicodedata.combining(ch))
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
