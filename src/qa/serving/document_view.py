"""The document view's text as pieces the template escapes one by one: the cited passage, its
evidence marks, and the section headings the reader found shown as headings. The title line, already
the page's <h1>, is left out of the text when the document opens with it.

Only the display changes: every piece is cut at the stored offsets, so marks and links stay exact.
"""

from __future__ import annotations

from dataclasses import dataclass

from qa.serving.citations import one_line


@dataclass(frozen=True)
class Piece:
    text: str
    marked: bool = False  # evidence
    heading: bool = False  # a section heading the reader found


def heading_spans(text: str, headings: list[str]) -> list[tuple[int, int]]:
    """Where each heading (given in reading order) stands in the text, each found after the last; a
    lead-in ("... the following:") is a sentence of the text, not a heading, and stays text."""
    spans, pos = [], 0
    for heading in headings:
        at = text.find(heading, pos) if heading.strip() and not heading.rstrip().endswith(":") else -1
        if at >= 0:
            spans.append((at, at + len(heading)))
            pos = at + len(heading)
    return spans


def title_end(text: str, title: str, spans: list[tuple[int, int]]) -> int:
    """The offset just after the title line when the text opens with the title (as its first line or
    its first heading), else 0."""
    lead = len(text) - len(text.lstrip())
    first_line = text[lead:].split("\n", 1)[0]
    if one_line(title) and one_line(first_line) == one_line(title):
        return lead + len(first_line)
    if spans and spans[0][0] == lead and one_line(text[spans[0][0]:spans[0][1]]) == one_line(title):
        return spans[0][1]
    return 0


def pieces(text: str, lo: int, hi: int, marks: list[tuple[int, int]], headings: list[tuple[int, int]]) -> list[Piece]:
    """text[lo:hi] cut at every mark and heading edge (all offsets into `text`). The line breaks
    around a heading are dropped: a heading is a block of its own, with its own spacing."""
    edges = sorted({lo, hi, *(x for span in marks + headings for x in span if lo < x < hi)})
    out: list[Piece] = []
    for a, b in zip(edges, edges[1:], strict=False):
        out.append(Piece(text[a:b], any(s <= a < e for s, e in marks), any(s <= a < e for s, e in headings)))
    for i, piece in enumerate(out):
        if piece.heading:
            continue
        body = piece.text
        if i + 1 < len(out) and out[i + 1].heading:
            body = body.rstrip()
        if i > 0 and out[i - 1].heading:
            body = body.lstrip()
        out[i] = Piece(body, piece.marked)
    return [piece for piece in out if piece.text]
