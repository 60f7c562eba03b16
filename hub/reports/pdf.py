"""A report's rows as a PDF (docs/architecture.md §5, "Reports and exports"): a title, when and
by whom it was made, the filters applied, a table of the rows with its header on every page, and
"Page n of N" at the foot of each page. When the rows stopped at the row cap, the PDF says so
above the table.

Pure and synchronous: the API renders in a worker thread (hub/api/pdf_export.py). Text is set in
Noto Sans, a Unicode TTF shipped inside the fontpkg-noto-sans package (so a fresh machine with
only Python has it): the PDF core fonts and reportlab's own Vera lack ą ę ń ś ź ż."""
from __future__ import annotations

import functools
import io
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Sequence
from xml.sax.saxutils import escape

import fontpkg
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import LongTable, Paragraph, SimpleDocTemplate, Spacer, TableStyle

FONT = "VigilNotoSans"
PAGE = landscape(A4)
MARGIN = 12 * mm
TEXT_SIZE = 7.0
LEADING = 8.5
PADDING = 2.0
MIN_COLUMN = 28.0  # points
MAX_CELL_LINES = 24  # a longer cell is cut (…), so no row can outgrow a page
ELLIPSIS = "…"

_CELL = ParagraphStyle("cell", fontName=FONT, fontSize=TEXT_SIZE, leading=LEADING, splitLongWords=True)
_HEADER = ParagraphStyle("header", parent=_CELL, textColor=colors.white)
_TITLE = ParagraphStyle("title", fontName=FONT, fontSize=15, leading=19, spaceAfter=4)
_LINE = ParagraphStyle("line", fontName=FONT, fontSize=8.5, leading=11)
_WARNING = ParagraphStyle("warning", parent=_LINE, textColor=colors.HexColor("#a40000"))
_TABLE_STYLE = TableStyle([
    ("FONT", (0, 0), (-1, -1), FONT, TEXT_SIZE, LEADING),
    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#33415c")),
    ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#9aa3b5")),
    ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ("LEFTPADDING", (0, 0), (-1, -1), PADDING),
    ("RIGHTPADDING", (0, 0), (-1, -1), PADDING),
    ("TOPPADDING", (0, 0), (-1, -1), 1),
    ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
])
# reportlab's font registry is process-wide; one render at a time also keeps PDF work to one core,
# away from ingest.
_RENDER_LOCK = threading.Lock()


@dataclass(frozen=True)
class PdfReport:
    """What goes into the PDF. `rows` are already cut at `row_cap`; `truncated` says they were."""

    title: str
    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]
    filters: Sequence[tuple[str, str]]
    generated_at: datetime
    generated_by: str
    truncated: bool
    row_cap: int


@functools.cache
def _register_font() -> None:
    pdfmetrics.registerFont(TTFont(FONT, str(fontpkg.path("Noto Sans"))))


def cell_text(value: Any) -> str:
    """A value as a person reads it: times in UTC to the second, seconds to a tenth."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def fit_widths(natural: Sequence[float], total: float) -> list[float]:
    """Column widths within `total`: columns narrower than an even share keep their natural
    width, the others share what is left evenly."""
    widths = list(natural)
    if sum(widths) <= total:
        return widths
    flexible, remaining = set(range(len(widths))), total
    while flexible:
        share = remaining / len(flexible)
        narrow = {i for i in flexible if natural[i] <= share}
        if not narrow:
            for i in flexible:
                widths[i] = share
            break
        remaining -= sum(natural[i] for i in narrow)
        flexible -= narrow
    return widths


def _cut(text: str, text_width: float, room: float) -> str:
    """`text` shortened (…) to about what fits MAX_CELL_LINES lines of a column `room` wide."""
    keep = max(1, int(len(text) * room * MAX_CELL_LINES / text_width) - 1)
    return text[:keep] + ELLIPSIS


def _table(report: PdfReport, width: float) -> tuple[LongTable, bool]:
    """The rows' table (header repeated on every page) and whether any cell had to be cut."""
    texts = [[cell_text(v) for v in row] for row in report.rows]
    measured = [[pdfmetrics.stringWidth(t, FONT, TEXT_SIZE) for t in row] for row in texts]
    headers = [c.replace("_", " ") for c in report.columns]
    natural = []
    for i, header in enumerate(headers):
        longest_word = max(pdfmetrics.stringWidth(w, FONT, TEXT_SIZE) for w in header.split())
        natural.append(max([MIN_COLUMN, longest_word + 2 * PADDING] + [row[i] + 2 * PADDING for row in measured]))
    widths = fit_widths(natural, width)
    cut = False
    data: list[list[Any]] = [[Paragraph(escape(h), _HEADER) for h in headers]]
    for row, sizes in zip(texts, measured):
        cells: list[Any] = []
        for text, size, column in zip(row, sizes, widths):
            room = column - 2 * PADDING
            if size <= room:
                cells.append(text)  # a plain string: far cheaper to lay out than a paragraph
                continue
            if size > room * MAX_CELL_LINES:
                text, cut = _cut(text, size, room), True
            cells.append(Paragraph(escape(text), _CELL))
        data.append(cells)
    table = LongTable(data, colWidths=widths, repeatRows=1)
    table.setStyle(_TABLE_STYLE)
    return table, cut


def _numbered_canvas(footer: str) -> type[Canvas]:
    """A canvas that holds its pages back until the last, so each can say "Page n of N"."""
    class NumberedCanvas(Canvas):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._held: list[dict[str, Any]] = []

        def showPage(self) -> None:  # noqa: N802 (reportlab's name)
            self._held.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            for state in self._held:
                self.__dict__.update(state)
                self.setFont(FONT, TEXT_SIZE)
                self.setFillColor(colors.HexColor("#555555"))
                self.drawString(MARGIN, MARGIN / 2, footer)
                self.drawRightString(PAGE[0] - MARGIN, MARGIN / 2, f"Page {self._pageNumber} of {len(self._held)}")
                super().showPage()
            super().save()

    return NumberedCanvas


def render_pdf(report: PdfReport) -> bytes:
    """The report as PDF bytes."""
    with _RENDER_LOCK:
        _register_font()
        out = io.BytesIO()
        doc = SimpleDocTemplate(out, pagesize=PAGE, leftMargin=MARGIN, rightMargin=MARGIN, topMargin=MARGIN,
                                bottomMargin=MARGIN, title=report.title, author="Vigil hub", creator="Vigil hub")
        generated = cell_text(report.generated_at)
        filters = "; ".join(f"{k} = {v}" for k, v in report.filters) or "none"
        table, cut = _table(report, doc.width)
        story: list[Any] = [
            Paragraph(escape(report.title), _TITLE),
            Paragraph(escape(f"Generated {generated} UTC by {report.generated_by}. Times are UTC."), _LINE),
            Paragraph(escape(f"Filters: {filters}"), _LINE),
        ]
        if report.truncated:
            story.append(Paragraph(escape(
                f"Row limit reached: only the first {report.row_cap} rows are shown. Narrow the filters, "
                f"or export CSV for every row."), _WARNING))
        else:
            story.append(Paragraph(f"{len(report.rows)} rows.", _LINE))
        if cut:
            story.append(Paragraph(escape(f"Cells too long for the page are cut short ({ELLIPSIS}); "
                                          f"the CSV export has them whole."), _LINE))
        story += [Spacer(1, 3 * mm), table]
        doc.build(story, canvasmaker=_numbered_canvas(f"Vigil · {report.title} · {generated} UTC"))
        return out.getvalue()
