"""Readers for .txt .md .html .pdf: one `Document` whose `text` every offset in the system refers to."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from qa.errors import DocumentError
from qa.reading.metadata import Metadata, read_metadata
from qa.reading.readers.html import html_text
from qa.reading.readers.markdown import markdown_text
from qa.reading.readers.pdf import pdf_text
from qa.reading.readers.text import decode

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
    pages: list[tuple[int, int]] = []
    if suffix == ".pdf":
        text, pages, sections = pdf_text(data, doc_id)
        title = sections[0][1] if sections and sections[0][0] == 0 else _first_line(text)
    elif suffix in (".html", ".htm"):
        text, sections, title = html_text(decode(data, doc_id))
    elif suffix == ".md":
        text, sections, title = markdown_text(decode(data, doc_id))
    elif suffix == ".txt":
        text = decode(data, doc_id)
        sections = _plain_headings(text)
        title = _first_line(text)
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


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:200]
    return ""


_NUMBERED_ITEM = re.compile(r"^[ \t]*\d{1,3}[.)][ \t]+\S")
_LIST_ITEM = re.compile(r"^[ \t]*(?:[-*•◦▪‣–]|\d{1,3}[.)])[ \t]+\S")


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
