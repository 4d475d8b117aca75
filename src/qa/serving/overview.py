"""What the home page says about the index at a glance: its size, when it was built, and example
questions drawn from the documents' own section headings (so they are answerable by construction)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from qa.indexing.store import Generation

EXAMPLES = 4
# Headings are read from this many documents (by doc_id): enough for a few examples at any size.
DOCUMENTS_READ = 50
HEADING_WORDS = (1, 8)  # a longer heading is a sentence of the text, not a topic
_NUMBERING = re.compile(r"^\s*(?:\d{1,3}|[ivxlc]{1,6}|[a-z])[.)]\s+", re.IGNORECASE)
_LETTER = re.compile(r"[^\W\d_]")
_WORDS = re.compile(r"\w+")


@dataclass(frozen=True)
class Example:
    question: str
    doc_id: str
    title: str

    @property
    def href(self) -> str:
        return "/?" + urlencode({"q": self.question, "doc": self.doc_id})


@dataclass(frozen=True)
class Overview:
    documents: int
    passages: int
    created: str  # "29 November 2026, 14:53 UTC", or "" if the manifest does not say
    examples: list[Example]


def _words(text: str) -> list[str]:
    return _WORDS.findall(text.casefold())


def is_title(text: str, titles: list[str]) -> bool:
    """Whether a heading is a document's title, in another case, shortened or lengthened: the same
    words, or the words at the start of one of them (a title line cut by the reader, or a title with
    its subtitle)."""
    words = _words(text)
    for title in titles:
        other = _words(title)
        shorter, longer = sorted((words, other), key=len)
        if shorter and longer[:len(shorter)] == shorter and (len(shorter) >= 3 or shorter == longer):
            return True
    return False


def topic(heading: str, title: str | list[str]) -> str | None:
    """A heading fit to ask about ("3. Work toward a free and open digital economy." -> without the
    number and the full stop), or None for a document's title (`title`: its own, or every title in
    the index), a lead-in ("... the following:"), a byline ("A, B | Publisher") or a heading too
    short or too long to name a topic."""
    titles = [title] if isinstance(title, str) else title
    text = _NUMBERING.sub("", " ".join(heading.split())).rstrip(" .;")
    if not text or text.endswith(":") or "|" in text or is_title(text, titles) or is_title(heading, titles):
        return None
    if not _LETTER.search(text) or not HEADING_WORDS[0] <= len(text.split()) <= HEADING_WORDS[1]:
        return None
    return text


def example_questions(headings: list[tuple[str, str, list[str]]], limit: int = EXAMPLES) -> list[Example]:
    """Up to `limit` questions, taken in turn from each document (by doc_id) in its reading order, so
    several documents are represented; each is scoped to its document. Deterministic. A heading that
    is any document's title is never one: a question about a title is not about a section."""
    titles = [title for _, title, _ in headings]
    topics = [[(doc_id, title, t) for h in found if (t := topic(h, titles))] for doc_id, title, found in headings]
    examples: list[Example] = []
    for depth in range(max((len(t) for t in topics), default=0)):
        for doc_topics in topics:
            if depth < len(doc_topics) and len(examples) < limit:
                doc_id, title, text = doc_topics[depth]
                examples.append(Example(f"What does the section “{text}” say?", doc_id, title))
    return examples


def overview(gen: Generation) -> Overview:
    return Overview(gen.document_count, gen.chunk_count, _when(gen.manifest.get("created")),
                    example_questions(gen.headings(DOCUMENTS_READ)))


def _when(created: str | None) -> str:
    try:
        moment = datetime.fromisoformat(created or "")
    except ValueError:
        return ""
    zone = moment.tzname() or ""
    return f"{moment.day} {moment:%B %Y, %H:%M} {'UTC' if zone in ('UTC', 'UTC+00:00') else zone}".strip()
