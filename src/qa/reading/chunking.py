"""Sentence- and structure-aware chunking that never exceeds the model's token limit.

Every chunk is a slice of `Document.text`: `chunk.text == text[chunk.start:chunk.end]`.
A heading starts a new chunk and stays with the content below it (so a numbered recommendation
keeps its title line); sentences are packed up to `target_tokens`; a sentence is only cut when it
alone is longer than `max_tokens`, and then at token boundaries.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Protocol

from qa.reading.documents import Document

CHUNKER_VERSION = 2  # 2: abbreviations are recognised after any whitespace, not only a space

Span = tuple[int, int]


class Tokenizer(Protocol):
    def count(self, text: str) -> int:
        """Number of model tokens of `text`, special tokens included."""

    def offsets(self, text: str) -> list[Span]:
        """Character span of each token of `text`, special tokens excluded."""


@dataclass(frozen=True)
class Chunk:
    doc_id: str
    ordinal: int
    start: int
    end: int
    text: str
    section: str | None
    page: int | None
    sentences: tuple[Span, ...]  # absolute offsets in the document, inside [start, end)


_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st vs etc e.g i.e cf al no nos fig figs inc ltd co corp dept gov govt "
    "u.s u.k u.n e.u jan feb mar apr jun jul aug sep sept oct nov dec art sec vol pp p approx est".split()
)
_SENTENCE_END = re.compile(r"[.!?。！？]+[\"'”’)\]]*(?=\s)")
_NEXT_CHAR = re.compile(r"\s*(\S)")
_LIST_MARKER = re.compile(r"[ \t]*(?:[-*•◦▪‣–]|\d{1,3}[.)])[ \t]+\S")


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[Span]:
    """Sentence spans (absolute, whitespace-trimmed) of text[start:end]."""
    end = len(text) if end is None else end
    spans, begin = [], start
    for m in _SENTENCE_END.finditer(text, start, end):
        before = text[max(begin, m.start() - 20) : m.start()].split()  # abbreviations are short
        word = before[-1].lstrip("(\"'“‘").lower() if before else ""
        if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
            continue
        nxt = _NEXT_CHAR.match(text, m.end(), end)
        if nxt and nxt.group(1).islower():
            continue
        spans.append((begin, m.end()))
        begin = m.end()
    spans.append((begin, end))
    return [s for s in (_trim(text, a, b) for a, b in spans) if s[0] < s[1]]


def _trim(text: str, a: int, b: int) -> Span:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b


def _blocks(text: str) -> list[Span]:
    """Paragraphs (runs of non-blank lines), each list item a block of its own."""
    blocks: list[Span] = []
    pos = 0
    block_start = None
    for line in text.split("\n"):
        line_end = pos + len(line)
        if not line.strip():
            if block_start is not None:
                blocks.append((block_start, pos - 1))
                block_start = None
        elif _LIST_MARKER.match(line) and block_start is not None:
            blocks.append((block_start, pos - 1))
            block_start = pos
        elif block_start is None:
            block_start = pos
        pos = line_end + 1
    if block_start is not None:
        blocks.append((block_start, len(text)))
    return [s for s in (_trim(text, a, b) for a, b in blocks) if s[0] < s[1]]


def chunk_document(doc: Document, tokenizer: Tokenizer, target_tokens: int, max_tokens: int) -> list[Chunk]:
    """Split a document into chunks of at most `max_tokens` tokens (special tokens included)."""
    target_tokens = min(target_tokens, max_tokens)
    text = doc.text
    # A heading's unit starts where its line's text does, so Markdown's "## " stays with its title
    # instead of ending the chunk before it.
    heading_starts = {_line_text_start(text, start) for start, _ in doc.sections}
    boundaries = sorted(heading_starts | {start for start, _ in doc.pages})

    # Units: (start, end, is_heading). Blocks are also cut at headings and page starts.
    units: list[tuple[int, int, bool]] = []
    block_end: dict[int, int] = {}  # first unit of a block -> end offset of that block
    for a, b in _blocks(text):
        block_end[len(units)] = b
        cuts = [a] + [x for x in boundaries if a < x < b] + [b]
        for x, y in zip(cuts, cuts[1:], strict=False):
            x, y = _trim(text, x, y)
            if x >= y:
                continue
            if x in heading_starts:
                line_end = text.find("\n", x, y)
                line_end = y if line_end < 0 else line_end
                # A Markdown or HTML heading can be any length: it is cut to fit like a sentence.
                units += [(*piece, True) for piece in _fit(text, x, line_end, tokenizer, max_tokens)]
                x, y = _trim(text, line_end, y)
                if x >= y:
                    continue
            for s, e in split_sentences(text, x, y):
                for piece in _fit(text, s, e, tokenizer, max_tokens):
                    units.append((*piece, False))

    chunks: list[Chunk] = []
    current: list[tuple[int, int, bool]] = []

    def flush() -> None:
        if current:
            chunks.append(_make_chunk(doc, len(chunks), current))
            current.clear()

    for i, unit in enumerate(units):
        start, end, is_heading = unit
        has_body = any(not h for _, _, h in current)
        page_break = bool(current) and _page_of(doc, start) != _page_of(doc, current[0][0])
        if (is_heading and has_body) or page_break:
            flush()
        elif current:
            span_start = current[0][0]
            if has_body:
                # At a paragraph start, move the whole paragraph to a new chunk rather than split it.
                reach = block_end.get(i, end)
                too_long = tokenizer.count(text[span_start:reach]) > target_tokens or (
                    reach != end and tokenizer.count(text[span_start:end]) > target_tokens
                )
            else:  # only headings so far: they may stretch to max_tokens to keep their body
                too_long = tokenizer.count(text[span_start:end]) > max_tokens
            if too_long:
                flush()
        current.append(unit)
    flush()
    return chunks


def _fit(text: str, start: int, end: int, tokenizer: Tokenizer, max_tokens: int) -> list[Span]:
    """The sentence itself, or token-bounded pieces of it when it alone exceeds max_tokens.

    Pieces are cut after a token and abut each other, so characters the tokenizer drops (control
    characters, zero-width marks) stay inside a piece instead of falling between chunks."""
    if tokenizer.count(text[start:end]) <= max_tokens:
        return [(start, end)]
    offsets = tokenizer.offsets(text[start:end])
    pieces: list[Span] = []
    window = max_tokens - 2  # room for [CLS] and [SEP]
    i, a = 0, start
    while i < len(offsets):
        j = min(i + window, len(offsets))
        while True:
            b = end if j == len(offsets) else start + offsets[j - 1][1]
            if j - i <= 1 or tokenizer.count(text[a:b]) <= max_tokens:
                break
            j -= 1
        pieces.append(_trim(text, a, b))
        i, a = j, b
    return [p for p in pieces if p[0] < p[1]]


def _line_text_start(text: str, offset: int) -> int:
    start = text.rfind("\n", 0, offset) + 1
    while start < offset and text[start].isspace():
        start += 1
    return start


def _page_of(doc: Document, offset: int) -> int | None:
    if not doc.pages:
        return None
    i = bisect.bisect_right([s for s, _ in doc.pages], offset) - 1
    return doc.pages[max(i, 0)][1]


def _make_chunk(doc: Document, ordinal: int, units: list[tuple[int, int, bool]]) -> Chunk:
    start, end = units[0][0], units[-1][1]
    body_start = next((s for s, _, h in units if not h), start)
    section = None
    for offset, heading in doc.sections:
        if offset <= body_start:
            section = heading
    return Chunk(
        doc_id=doc.doc_id,
        ordinal=ordinal,
        start=start,
        end=end,
        text=doc.text[start:end],
        section=section,
        page=_page_of(doc, start),
        sentences=tuple((s, e) for s, e, _ in units),
    )
