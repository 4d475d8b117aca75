"""The words that name a document: its title's and its file name's terms, and its makers' (each author's
surname, the publisher's name and initials).

A question that names a document ("who wrote the Article II Mandate report?", "the CSIS report") is
compared with the documents whose naming words hold one of its terms, found through each segment's
`Naming` (term -> documents, made on the first such question after the segment opens), not with every
document: at 1,000,000 passages (100,000 documents) comparing it with every title took 3.5–7.3 s.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from qa.indexing import lexical
from qa.reading.metadata import Metadata

# A title's terms depend on the document alone: kept for the most recent titles.
TITLES_KEPT = 8192


@lru_cache(maxsize=TITLES_KEPT)
def title_terms(doc_id: str, title: str) -> tuple[frozenset[str], frozenset[str], int]:
    """The terms of the title and the file's name (`name_terms`), those of the title's main part (before a
    colon), and how many distinct terms the title has (1 for none)."""
    return (name_terms(doc_id, title), frozenset(lexical.terms(title.split(":", 1)[0])),
            len(set(lexical.terms(title)) or {""}))


def name_terms(doc_id: str, title: str) -> frozenset[str]:
    """The terms of the title and the file's name."""
    return frozenset(lexical.terms(f"{title} {doc_id.rsplit('.', 1)[0].replace('-', ' ')}"))


def makers(meta: Metadata | None) -> list[set[str]]:
    """The terms that name who made a document: each author's surname, the publisher's name, and its
    initials ("Centre for Strategic and International Studies": "CSIS")."""
    if meta is None:
        return []
    found = [set(lexical.terms(name.split()[-1])) for name in meta.authors or [] if name.split()]
    if meta.publisher:
        found.append(set(lexical.terms(meta.publisher)))
        initials = "".join(w[0] for w in re.findall(r"\b[A-Z]\w*", meta.publisher))
        if len(initials) >= 2:
            found.append(set(lexical.terms(initials)))
    return [m for m in found if m]


class Naming:
    """One segment's documents by the words that name them (`name_terms` and `makers`)."""

    def __init__(self, documents: Iterable[tuple[str, str, Metadata]]) -> None:
        self.titles: dict[str, str] = {}
        self._holding: dict[str, list[str]] = {}
        for doc_id, title, meta in documents:
            self.titles[doc_id] = title
            for term in name_terms(doc_id, title).union(*makers(meta)):
                self._holding.setdefault(term, []).append(doc_id)

    def holding(self, terms: Iterable[str]) -> set[str]:
        """The documents whose naming words hold any of `terms`."""
        return {doc_id for t in terms for doc_id in self._holding.get(t, ())}
