"""Readers for .txt .md .html .pdf: one `Document` whose `text` every offset in the system refers to."""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DocumentError
from .metadata import Metadata, read_metadata

SUPPORTED_SUFFIXES = (".txt", ".md", ".html", ".htm", ".pdf")


@dataclass(frozen=True)
class Document:
    doc_id: str
    title: str
    text: str
    sha256: str
    # (offset in text, heading) in document order; a chunk's section is the last one before it.
    sections: list[tuple[int, str]] = field(default_factory=list)
    # (offset in text where the page starts, 1-based page number); PDFs only.
    pages: list[tuple[int, int]] = field(default_factory=list)
    metadata: Metadata = field(default_factory=Metadata)  # authors, publisher, date (metadata.py)


def iter_corpus_files(corpus_dir: Path) -> Iterator[tuple[str, Path]]:
    """Yield (doc_id, path) for every supported file below corpus_dir, sorted by doc_id.

    Hidden files and folders are skipped, and so are symbolic links that lead outside the corpus.
    """
    root = corpus_dir.resolve()
    if not root.is_dir():
        return
    found = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.suffix.lower() not in SUPPORTED_SUFFIXES or not path.is_file():
            continue
        if not path.resolve().is_relative_to(root):
            continue
        found.append((rel.as_posix(), path))
    yield from sorted(found)


def read_document(path: Path, doc_id: str, data: bytes | None = None) -> Document:
    """Read one file into a Document; raises DocumentError naming the file when it cannot."""
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DocumentError(f"{doc_id}: cannot read file ({exc.strerror})") from exc
    suffix = path.suffix.lower()
    sha = hashlib.sha256(data).hexdigest()
    if suffix == ".pdf":
        text, pages = _pdf_text(data, doc_id)
        sections: list[tuple[int, str]] = []
        title = _first_line(text)
    elif suffix in (".html", ".htm"):
        text, sections, title = _html_text(_decode(data, doc_id))
        pages = []
    elif suffix in (".md", ".txt"):
        text = _decode(data, doc_id)
        sections = _markdown_headings(text) if suffix == ".md" else _plain_headings(text)
        title = sections[0][1] if suffix == ".md" and sections else _first_line(text)
        pages = []
    else:
        raise DocumentError(f"{doc_id}: unsupported file type {suffix!r} (use {', '.join(SUPPORTED_SUFFIXES)})")
    if not text.strip():
        raise DocumentError(f"{doc_id}: the document has no text")
    metadata = read_metadata(suffix, data, text)
    if suffix in (".md", ".pdf") and metadata.title:  # front matter's or the PDF's own title
        title = metadata.title
    # A byline or a date line is metadata, not a section heading.
    lines = [span for span in metadata.sources.values() if isinstance(span, tuple)]
    sections = [s for s in sections if not any(a <= s[0] < b for a, b in lines)]
    return Document(doc_id, title or Path(doc_id).name, text, sha, sections, pages, metadata)


def _decode(data: bytes, doc_id: str) -> str:
    if b"\x00" in data:
        raise DocumentError(f"{doc_id}: looks like a binary file, not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"{doc_id}: not valid UTF-8 text (byte {exc.start})") from exc
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:200]
    return ""


_MD_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_NUMBERED_ITEM = re.compile(r"^[ \t]*\d{1,3}[.)][ \t]+\S")
_LIST_ITEM = re.compile(r"^[ \t]*(?:[-*•◦▪‣–]|\d{1,3}[.)])[ \t]+\S")


def _markdown_headings(text: str) -> list[tuple[int, str]]:
    """(offset, heading) with the offset where the stripped heading starts: `# \x1f Title` is "Title"."""
    headings = []
    for m in _MD_HEADING.finditer(text):
        raw = m.group(1)
        if raw.strip():
            headings.append((m.start(1) + len(raw) - len(raw.lstrip()), raw.strip()))
    return headings


def _plain_headings(text: str) -> list[tuple[int, str]]:
    """Headings of plain text: short lines standing alone as a paragraph without a final full stop
    (titles, lead-ins ending in ':'), and the title line of a numbered item that has a body below it."""
    lines = []
    pos = 0
    for line in text.split("\n"):
        lines.append((pos, line))
        pos += len(line) + 1
    headings = []
    for i, (offset, line) in enumerate(lines):
        stripped = line.strip()
        if not stripped or len(stripped) > 160:
            continue
        prev_blank = i == 0 or not lines[i - 1][1].strip()
        next_line = lines[i + 1][1] if i + 1 < len(lines) else ""
        next_blank = not next_line.strip()
        start = offset + len(line) - len(line.lstrip())
        limit = 160 if stripped.endswith(":") else 120
        standalone = prev_blank and next_blank and len(stripped) <= limit
        title_like = standalone and not stripped.endswith((".", "!", "?", ",", ";"))
        item_title = _NUMBERED_ITEM.match(line) and not next_blank and not _LIST_ITEM.match(next_line)
        if title_like or item_title:
            headings.append((start, stripped))
    return headings


def _html_text(html: str) -> tuple[str, list[tuple[int, str]], str]:
    """Visible text of an HTML page, one block element a paragraph, with its h1-h6 as sections."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "head"]):
        if tag.name == "head":
            continue
        tag.decompose()
    title_tag = soup.find("title")
    page_title = title_tag.get_text(" ", strip=True) if title_tag else ""
    if soup.head:
        soup.head.decompose()
    blocks = []
    block_tags = ["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "blockquote", "td", "th", "dt", "dd",
                  "figcaption", "caption"]
    for el in soup.find_all(block_tags):
        if el.find_parent(block_tags):
            continue
        words = " ".join(el.get_text(" ", strip=True).split())
        if words:
            blocks.append((el.name, words))
    if not blocks:
        words = " ".join(soup.get_text(" ", strip=True).split())
        blocks = [("p", words)] if words else []
    parts, sections, pos = [], [], 0
    for name, words in blocks:
        if name in ("h1", "h2", "h3", "h4", "h5", "h6"):
            sections.append((pos, words))
        parts.append(words)
        pos += len(words) + 2
    text = "\n\n".join(parts)
    first_h1 = next((w for n, w in blocks if n == "h1"), "")
    return text, sections, page_title or first_h1 or _first_line(text)


def _pdf_text(data: bytes, doc_id: str) -> tuple[str, list[tuple[int, int]]]:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        page_texts = [(page.extract_text() or "").replace("\r\n", "\n").strip() for page in reader.pages]
    except (PyPdfError, ValueError, KeyError, TypeError, OSError, RecursionError) as exc:
        raise DocumentError(f"{doc_id}: not a readable PDF ({exc})") from exc
    text, pages = "", []
    for number, page_text in enumerate(page_texts, start=1):
        if not page_text:
            continue
        if text:
            text += "\n\n"
        pages.append((len(text), number))
        text += page_text
    if not text.strip():
        raise DocumentError(f"{doc_id}: the PDF has no extractable text (a scan without OCR?)")
    return text, pages
