"""HTML to text as a browser shows it: every visible word in reading order, one block a paragraph.

BeautifulSoup's tree is walked by hand rather than handed to an HTML-to-text converter because the
reader must also say where each heading starts in the text it returns (chunk sections and offsets
depend on it), which converters do not report.
"""

from __future__ import annotations

import re

from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.element import CData, Comment, Declaration, Doctype, ProcessingInstruction

from qa.reading.readers import join_blocks

HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
# Elements a browser lays out as blocks: their content starts and ends a paragraph.
BLOCKS = frozenset({
    "address", "article", "aside", "blockquote", "body", "center", "dd", "details", "dialog", "div", "dl",
    "dt", "fieldset", "figcaption", "figure", "footer", "form", "header", "hgroup", "hr", "html", "legend",
    "li", "main", "nav", "ol", "p", "section", "summary", "ul", "caption",
})
# Never shown as text: code, metadata, embedded media and form controls.
INVISIBLE = frozenset({
    "script", "style", "noscript", "template", "head", "title", "meta", "link", "svg", "math", "iframe",
    "object", "embed", "canvas", "audio", "video", "select", "textarea", "input", "img", "picture", "map",
})
_HIDDEN_STYLE = re.compile(r"(?:display\s*:\s*none|visibility\s*:\s*hidden)", re.IGNORECASE)
_SPACES = re.compile(r"[^\S\n]+")
_WHITESPACE = re.compile(r"\s+")
CELL_SEPARATOR = " | "


def html_text(html: str) -> tuple[str, list[tuple[int, str]], str]:
    """(text, sections as (offset, heading), title). Paragraphs are separated by a blank line; a
    table is one paragraph with one line a row and its cells separated by " | "."""
    soup = BeautifulSoup(html, "html.parser")
    title_tag = soup.find("title")
    page_title = " ".join(title_tag.get_text(" ").split()) if title_tag else ""
    blocks = _Walker().blocks(soup)
    text, sections = join_blocks(blocks)
    first_heading = next((w for k, w in blocks if k == "heading"), "")
    first_line = text.split("\n", 1)[0].strip()[:200]
    return text, sections, page_title or first_heading or first_line


def is_hidden(tag: Tag) -> bool:
    if tag.name in INVISIBLE:
        return True
    attrs = tag.attrs or {}
    return (
        "hidden" in attrs
        or str(attrs.get("aria-hidden", "")).lower() == "true"
        or bool(_HIDDEN_STYLE.search(str(attrs.get("style", ""))))
    )


def _is_text(node) -> bool:
    skipped = (Comment, CData, ProcessingInstruction, Declaration, Doctype)
    return isinstance(node, NavigableString) and not isinstance(node, skipped)


class _Walker:
    """Collects (kind, text) blocks: "heading", "paragraph", "table" or "pre"."""

    def __init__(self) -> None:
        self.out: list[tuple[str, str]] = []
        self.buffer: list[str] = []

    def blocks(self, root: Tag) -> list[tuple[str, str]]:
        self._walk(root)
        self._flush()
        return self.out

    def _flush(self) -> None:
        text = _lines("".join(self.buffer))
        self.buffer.clear()
        if text:
            self.out.append(("paragraph", text))

    def _walk(self, node: Tag) -> None:
        for child in node.children:
            if _is_text(child):
                self.buffer.append(_WHITESPACE.sub(" ", str(child)))  # source line breaks are spaces
            elif isinstance(child, Tag) and not is_hidden(child):
                self._element(child)

    def _element(self, tag: Tag) -> None:
        name = tag.name
        if name == "br":
            self.buffer.append("\n")
        elif name in HEADINGS:
            self._flush()
            heading = " ".join(inline_text(tag).split())
            if heading:
                self.out.append(("heading", heading))
        elif name == "table":
            self._flush()
            self._table(tag)
        elif name == "pre":
            self._flush()
            text = "\n".join(line.rstrip() for line in _raw_text(tag).strip("\n").split("\n")).strip()
            if text:
                self.out.append(("pre", text))
        elif name in BLOCKS:
            self._flush()
            self._walk(tag)
            self._flush()
        else:
            self._walk(tag)

    def _table(self, table: Tag) -> None:
        caption = table.find("caption")
        if caption is not None and caption.find_parent("table") is table and not is_hidden(caption):
            words = " ".join(inline_text(caption).split())
            if words:
                self.out.append(("paragraph", words))
        rows = []
        for row in table.find_all("tr"):
            if row.find_parent("table") is not table or _hidden_above(row, table):
                continue
            cells = [" ".join(inline_text(cell).split()) for cell in row.find_all(["td", "th"], recursive=False)
                     if not is_hidden(cell)]
            if any(cells):
                rows.append(CELL_SEPARATOR.join(cells))
        if rows:
            self.out.append(("table", "\n".join(rows)))


def _hidden_above(tag: Tag, stop: Tag) -> bool:
    parent = tag.parent
    while parent is not None and parent is not stop:
        if is_hidden(parent):
            return True
        parent = parent.parent
    return False


def inline_text(tag: Tag) -> str:
    """Visible text of an element on one line (a heading, a table cell); nested blocks become spaces."""
    parts: list[str] = []

    def walk(node: Tag) -> None:
        for child in node.children:
            if _is_text(child):
                parts.append(str(child))
            elif isinstance(child, Tag) and not is_hidden(child):
                block = child.name in BLOCKS or child.name in HEADINGS or child.name in ("br", "tr", "td", "th")
                if block:
                    parts.append(" ")
                walk(child)
                if block:
                    parts.append(" ")

    walk(tag)
    return "".join(parts)


def _raw_text(tag: Tag) -> str:
    return "".join(str(s) for s in tag.descendants if _is_text(s) and not _hidden_above(s, tag))


def _lines(raw: str) -> str:
    """Whitespace collapsed as a browser does, keeping the line breaks that <br> made."""
    lines = (" ".join(_SPACES.sub(" ", line).split()) for line in raw.replace("\r", " ").split("\n"))
    return "\n".join(line for line in lines if line)
