"""Format readers behind documents.read_document: each turns a file's bytes into text and its structure.

Every reader returns the exact text that chunk offsets refer to; structure (headings, pages) is
given as offsets into that same text.
"""

from __future__ import annotations


def join_blocks(blocks: list[tuple[str, str]]) -> tuple[str, list[tuple[int, str]]]:
    """(text, sections) of ("heading" | other kind, words) blocks: one paragraph a block, separated
    by a blank line, each heading a section at the offset where it starts in that text."""
    parts, sections, pos = [], [], 0
    for kind, words in blocks:
        if kind == "heading":
            sections.append((pos, words))
        parts.append(words)
        pos += len(words) + 2
    return "\n\n".join(parts), sections
