"""PDF to text: lines joined into paragraphs, headings kept apart, running headers and page numbers left out.

pdfplumber (over pdfminer.six) is used because it reports each line's position, font and size:
pypdf, pypdfium2 and pdfplumber's own extract_text all give the same bare lines on the test
fixtures, and only the geometry tells a wrapped line (joined with a space) from a new paragraph,
a heading (larger or bold) from the sentence below it, and a header repeated on every page from text.
"""

from __future__ import annotations

import io
import logging
import re
import statistics
import threading
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass

from ..errors import DocumentError

log = logging.getLogger(__name__)

MARGIN = 0.08  # running headers and footers sit above and below this share of the page (1 inch = 0.09)
HEADING_SIZE = 1.15  # a line this much larger than body text is a heading
PARAGRAPH_GAP = 1.3  # a line further below the previous one than this many line pitches starts a paragraph
_PAGE_NUMBER = re.compile(r"^\W*(?:page\s*)?\d{1,4}(?:\s*(?:of|/)\s*\d{1,4})?\W*$", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?:]['\"”’)]*$")


@dataclass
class Line:
    text: str
    top: float
    bottom: float
    x0: float
    x1: float
    size: float
    bold: bool
    in_margin: bool = False


def pdf_text(data: bytes, doc_id: str) -> tuple[str, list[tuple[int, int]], list[tuple[int, str]]]:
    """(text, pages as (offset, page number), sections as (offset, heading))."""
    with _library_warnings_named(doc_id):
        pages = _read_lines(data, doc_id)
    furniture = _running_lines(pages)
    body = _body_size([line for _, lines in pages for line in lines])
    text, page_starts, sections = "", [], []
    for number, lines in pages:
        kept = [line for line in lines if (number, id(line)) not in furniture]
        blocks = _blocks(kept, body)
        if not blocks:
            continue
        if text:
            text += "\n\n"
        page_starts.append((len(text), number))
        for j, (is_heading, words) in enumerate(blocks):
            if j:
                text += "\n\n"
            if is_heading:
                sections.append((len(text), words))
            text += words
    if not text.strip():
        raise DocumentError(f"{doc_id}: the PDF has no extractable text (a scan without OCR?)")
    return text, page_starts, sections


def _read_lines(data: bytes, doc_id: str) -> list[tuple[int, list[Line]]]:
    import pdfplumber

    try:
        with pdfplumber.open(io.BytesIO(data)) as pdf:
            pages = []
            for number, page in enumerate(pdf.pages, start=1):
                lines = [_line(raw) for raw in page.extract_text_lines(return_chars=True, strip=True)]
                top, bottom = page.height * MARGIN, page.height * (1 - MARGIN)
                for line in lines:
                    line.in_margin = line.top < top or line.bottom > bottom
                pages.append((number, [line for line in lines if line.text]))
            return pages
    except Exception as exc:  # noqa: BLE001 - pdfminer raises many unrelated types on a broken file
        raise DocumentError(f"{doc_id}: not a readable PDF ({type(exc).__name__}: {exc})") from exc


def _line(raw: dict) -> Line:
    chars = [c for c in raw.get("chars", []) if c.get("text", "").strip()]
    sizes = Counter(round(float(c.get("size", 0)), 1) for c in chars)
    size = sizes.most_common(1)[0][0] if sizes else 0.0
    bold = bool(chars) and all(re.search(r"bold|black|heavy", str(c.get("fontname", "")), re.I) for c in chars)
    return Line(" ".join(raw["text"].split()), raw["top"], raw["bottom"], raw["x0"], raw["x1"], size, bold)


def _running_lines(pages: list[tuple[int, list[Line]]]) -> set[tuple[int, int]]:
    """(page, id(line)) of page furniture: the first or last lines of a page, in its margin, that
    repeat on two or more pages (digits aside, so "Page 3" repeats "Page 2") or are only a page
    number. A page's text is never all furniture: a one-line page keeps its line."""
    def key(line: Line) -> str:
        return re.sub(r"\d+", "#", line.text.lower())

    def edges(lines: list[Line]) -> list[Line]:
        return [ln for ln in lines[:2] + lines[-2:] if ln.in_margin and len(ln.text) <= 100]

    seen = Counter(k for _, lines in pages for k in {key(ln) for ln in edges(lines)})
    furniture = set()
    for number, lines in pages:
        found = {id(ln) for ln in edges(lines) if seen[key(ln)] >= 2 or _PAGE_NUMBER.match(ln.text)}
        if len(found) < len(lines):
            furniture |= {(number, i) for i in found}
    return furniture


def _body_size(lines: list[Line]) -> float:
    weights: Counter[float] = Counter()
    for line in lines:
        weights[line.size] += len(line.text)
    return weights.most_common(1)[0][0] if weights else 0.0


def _is_heading(line: Line, body: float) -> bool:
    if len(line.text) > 150 or not body:
        return False
    if line.size >= body * HEADING_SIZE:
        return True
    return line.bold and line.size >= body * 0.95 and not line.text.endswith((".", ",", ";"))


def _blocks(lines: list[Line], body: float) -> list[tuple[bool, str]]:
    """(is_heading, text) paragraphs of one page's lines, in order."""
    pitches = [b.top - a.top for a, b in zip(lines, lines[1:], strict=False)
               if b.top > a.top and abs(a.size - b.size) < 0.5]
    pitch = statistics.median(pitches) if pitches else 0.0
    widest = max((line.x1 - line.x0 for line in lines), default=0.0)
    blocks: list[tuple[bool, list[Line]]] = []
    for line in lines:
        heading = _is_heading(line, body)
        if blocks and _continues(blocks[-1], line, heading, pitch, widest):
            blocks[-1][1].append(line)
        else:
            blocks.append((heading, [line]))
    return [(heading, _join(group)) for heading, group in blocks]


def _continues(block: tuple[bool, list[Line]], line: Line, heading: bool, pitch: float, widest: float) -> bool:
    was_heading, group = block
    prev = group[-1]
    if heading != was_heading or abs(line.size - prev.size) >= 0.5:
        return False
    gap = line.top - prev.top
    if gap <= 0 or (pitch and gap > pitch * PARAGRAPH_GAP):
        return False  # a new column, or a blank line's worth of space
    if heading:
        return True  # a heading that wraps
    if line.x0 > prev.x0 + prev.size:
        return False  # an indented first line
    # A short line that ends a sentence ends its paragraph.
    return not (_SENTENCE_END.search(prev.text) and prev.x1 - prev.x0 < widest * 0.8)


def _join(lines: list[Line]) -> str:
    text = lines[0].text
    for line in lines[1:]:
        text += line.text if text.endswith(("-", "\u00ad")) else " " + line.text
    return text.replace("\u00ad", "")


class _NamedWarnings(logging.Handler):
    """Re-logs the PDF library's warnings for one thread's file with the file's name in front."""

    def __init__(self, doc_id: str) -> None:
        super().__init__(logging.WARNING)
        self.doc_id = doc_id
        self.thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            log.warning("%s: %s", self.doc_id, record.getMessage())


@contextmanager
def _library_warnings_named(doc_id: str):
    library = logging.getLogger("pdfminer")
    handler = _NamedWarnings(doc_id)
    library.addHandler(handler)
    propagate = library.propagate
    library.propagate = False  # once, with the name, not twice
    try:
        yield
    finally:
        library.removeHandler(handler)
        library.propagate = propagate
