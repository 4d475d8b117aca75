"""Markdown to text without its markup: what a reader of the rendered page sees.

markdown-it-py parses (CommonMark, plus tables and strikethrough); headings stay section headings,
while `#` markers, emphasis, link syntax, inline HTML and YAML front matter never reach the text.
"""

from __future__ import annotations

import re

from markdown_it import MarkdownIt
from markdown_it.token import Token

from qa.reading.readers import join_blocks
from qa.reading.readers.html import CELL_SEPARATOR, html_text

_FRONT_MATTER = re.compile(r"\A(?:\ufeff)?---[ \t]*\n.*?\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_PARSER = MarkdownIt("commonmark").enable(["table", "strikethrough"])


def markdown_text(source: str) -> tuple[str, list[tuple[int, str]], str]:
    """(text, sections as (offset, heading), title): paragraphs separated by a blank line, a
    table one line a row, list items each a paragraph (an ordered item keeps its number)."""
    source = _FRONT_MATTER.sub("", source, count=1)
    blocks = list(_blocks(_PARSER.parse(source)))
    text, sections = join_blocks(blocks)
    title = sections[0][1] if sections else text.split("\n", 1)[0].strip()[:200]
    return text, sections, title


def _blocks(tokens: list[Token]):
    item_numbers: list[str] = []  # the number of each open ordered list item, "" for a bullet
    pending_number = ""
    row: list[str] | None = None
    rows: list[str] = []
    for i, tok in enumerate(tokens):
        kind = tok.type
        if kind == "list_item_open":
            number = tok.info if tok.markup in (".", ")") else ""
            item_numbers.append(number)
            pending_number = f"{number}{tok.markup} " if number else ""
        elif kind == "list_item_close":
            item_numbers.pop()
            pending_number = ""
        elif kind == "heading_open":
            words = " ".join(_inline(tokens[i + 1]).split())
            if words:
                yield "heading", words
        elif kind == "paragraph_open" and row is None:
            words = _paragraph(_inline(tokens[i + 1]))
            if words:
                yield "paragraph", pending_number + words
                pending_number = ""
        elif kind in ("fence", "code_block"):
            code = tok.content.rstrip()
            if code.strip():
                yield "pre", code
        elif kind == "html_block":
            text, _, _ = html_text(tok.content)
            if text.strip():
                yield "paragraph", text
        elif kind == "tr_open":
            row = []
        elif kind == "inline" and row is not None:
            row.append(" ".join(_inline(tok).split()))
        elif kind == "tr_close" and row is not None:
            if any(row):
                rows.append(CELL_SEPARATOR.join(row))
            row = None
        elif kind == "table_close":
            if rows:
                yield "table", "\n".join(rows)
            rows = []


def _inline(token: Token) -> str:
    parts = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type == "softbreak":
            parts.append(" ")
        elif child.type == "hardbreak":
            parts.append("\n")
        elif child.type == "image":
            parts.append(child.content)  # its alt text
    return "".join(parts)


def _paragraph(raw: str) -> str:
    lines = (" ".join(line.split()) for line in raw.split("\n"))
    return "\n".join(line for line in lines if line)
