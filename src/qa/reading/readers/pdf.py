"""PDF to text: lines joined into paragraphs, headings kept apart, running headers and page numbers left out.

pypdf, pypdfium2 and pdfplumber all give the same bare lines on the test fixtures; only the lines'
geometry tells a wrapped line (joined with a space) from a new paragraph, a heading (larger or bold)
from the sentence below it, and a header repeated on every page from text. pypdfium2 (PDFium, the
engine of Chromium's PDF viewer) reports position, font and size per character and was 8x faster
than pdfplumber doing the same (bench/readers.py); it also opened a file whose end-of-file marker
was cut off, which pypdf refused.
"""

from __future__ import annotations

import logging
import re
import statistics
import threading
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass

from qa.errors import DocumentError

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
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise DocumentError(f"{doc_id}: not a readable PDF ({exc})") from exc
    try:
        pages = []
        for number in range(1, len(pdf) + 1):
            page = pdf[number - 1]
            height = page.get_height()
            textpage = page.get_textpage()
            try:
                lines = _page_lines(textpage, height)
            finally:
                textpage.close()
                page.close()
            for line in lines:
                line.in_margin = line.top < height * MARGIN or line.bottom > height * (1 - MARGIN)
            pages.append((number, lines))
        return pages
    except pdfium.PdfiumError as exc:
        raise DocumentError(f"{doc_id}: not a readable PDF ({exc})") from exc
    finally:
        pdf.close()


def _page_lines(textpage, height: float) -> list[Line]:
    """The page's lines as PDFium lays them out (it ends each line with a generated line break),
    each with its box from the font's loose character boxes, its commonest font size, and whether
    its font is bold."""
    import pypdfium2.raw as raw

    handle = textpage.raw
    lines: list[Line] = []
    chars: list[str] = []
    boxes: list[tuple[float, float, float, float]] = []
    sizes: Counter[float] = Counter()
    first = -1

    def end_line() -> None:
        text = " ".join("".join(chars).split())
        if text and boxes:
            left, right = min(b[0] for b in boxes), max(b[2] for b in boxes)
            top, bottom = height - max(b[3] for b in boxes), height - min(b[1] for b in boxes)
            lines.append(Line(text, top, bottom, left, right, sizes.most_common(1)[0][0], _bold(handle, first)))
        chars.clear()
        boxes.clear()
        sizes.clear()

    for i in range(textpage.count_chars()):
        code = raw.FPDFText_GetUnicode(handle, i)
        char = chr(code) if 0 < code < 0x110000 and not 0xD800 <= code < 0xE000 else ""
        if char in ("\r", "\n"):
            end_line()
            continue
        if char == "\x02":  # a hyphen PDFium found at a line end
            char = "-"
        if not chars:
            first = i
        chars.append(char)
        if char.strip():
            boxes.append(textpage.get_charbox(i, loose=True))
            sizes[round(raw.FPDFText_GetFontSize(handle, i), 1)] += 1
    end_line()
    return lines


def _bold(handle, index: int) -> bool:
    import ctypes

    import pypdfium2.raw as raw

    if index < 0:
        return False
    buffer = ctypes.create_string_buffer(128)
    flags = ctypes.c_int(0)
    raw.FPDFText_GetFontInfo(handle, index, buffer, len(buffer), ctypes.byref(flags))
    name = buffer.value.decode("latin-1", "replace")
    heavy = re.search(r"bold|black|heavy|demi", name, re.IGNORECASE)
    return bool(heavy) or raw.FPDFText_GetFontWeight(handle, index) >= 600


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
    # A paragraph of one short line without closing punctuation is a title set in body type.
    return [(heading or _standalone_title(group), _join(group)) for heading, group in blocks]


def _standalone_title(group: list[Line]) -> bool:
    text = group[0].text
    return len(group) == 1 and len(text) <= 120 and not text.endswith((".", "!", "?", ",", ";", ":"))


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
    # A short line ends its paragraph when it ends a sentence, or when it is a title line in body type
    # (much shorter, no closing punctuation) and the next line starts like a new sentence.
    width = prev.x1 - prev.x0
    if _SENTENCE_END.search(prev.text) and width < widest * 0.8:
        return False
    title_like = width < widest * 0.7 and not prev.text.endswith((",", ";", "-", "\u00ad"))
    return not (title_like and line.text[:1].isupper())


def _join(lines: list[Line]) -> str:
    text = lines[0].text
    for line in lines[1:]:
        text += line.text if text.endswith(("-", "\u00ad")) else " " + line.text
    return text.replace("\u00ad", "")


class _NamedWarnings(logging.Handler):
    """Re-logs a PDF library's warnings for one thread's file with the file's name in front."""

    def __init__(self, doc_id: str) -> None:
        super().__init__(logging.WARNING)
        self.doc_id = doc_id
        self.thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            log.warning("%s: %s", self.doc_id, record.getMessage())


# PDFium reports nothing through logging; pypdf does ("EOF marker not found"), for the modules that
# open PDFs with it (document metadata).
PDF_LOGGERS = ("pypdf",)


@contextmanager
def pdf_warnings_named(doc_id: str):
    """Within this block, pypdf's warnings come out once, as "<doc_id>: <warning>"."""
    handler = _NamedWarnings(doc_id)
    saved = []
    for name in PDF_LOGGERS:
        library = logging.getLogger(name)
        saved.append((library, library.propagate))
        library.addHandler(handler)
        library.propagate = False  # once, with the name, not twice
    try:
        yield
    finally:
        for library, propagate in saved:
            library.removeHandler(handler)
            library.propagate = propagate
