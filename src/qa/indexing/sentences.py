"""What the answer reads of each sentence that depends on the documents alone, computed when a chunk is
written and stored with it (issue 22): each sentence's distinct terms, the chunk's own, which
sentences are the document's title line, and each sentence's role (reading/sentence_roles.py).

Terms are stored as the index's term strings (`lexical.terms`: lower-cased, stopwords dropped,
Porter-stemmed), not as ids into a segment's vocabulary, so a merge copies them as they are. The query
path used to split and stem every sentence of twenty passages per question to get these.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import astuple
from functools import cached_property

import numpy as np

from qa.indexing import lexical
from qa.reading.chunking import Chunk
from qa.reading.sentence_roles import SentenceRole, sentence_roles

_SPACE = re.compile(r"\s+")


def one_line(text: str) -> str:
    """Text with every run of whitespace made one space, as a sentence is quoted."""
    return _SPACE.sub(" ", text).strip()


def term_set(text: str) -> frozenset[str]:
    """The distinct terms of text as the index holds them (`lexical.terms`)."""
    return frozenset(lexical.terms(text))


class SentenceData:
    """One chunk's stored sentence data. Read from the store it stays its stored JSON text until first
    asked for (`from_json`), and is sent between processes as that text (`__reduce__`): a shard sends
    some fifty passages a question, of which the answer reads twenty. What an answer reads for a few
    passages only (the term sets, the roles) is made from the stored values when first asked for; the
    term -> sentences map that every pooled passage's sentences are scored by is made straight from them."""

    _PARSED = frozenset({"_terms", "_chunk_terms", "title_lines", "_roles"})

    def __init__(self, terms: Sequence[Iterable[str]], chunk_terms: Iterable[str],
                 title_lines: tuple[bool, ...], roles: tuple[SentenceRole, ...] | list[list]) -> None:
        self._terms = terms  # each sentence's distinct terms (sets, or the stored sorted lists)
        self._chunk_terms = chunk_terms  # the whole chunk text's distinct terms
        self.title_lines = title_lines  # whether each sentence is the document's title line
        self._roles = roles

    def __getattr__(self, name: str):
        """The parsed fields of data read from the store, parsed (all at once) when first read."""
        stored = self.__dict__.get("_json")
        if stored is None or name not in SentenceData._PARSED:
            raise AttributeError(name)
        data = json.loads(stored)
        terms = data["terms"]  # the stored sorted lists
        title = data["title"]
        self.__dict__.update(_terms=terms, _chunk_terms=data["chunk"],
                             title_lines=tuple(i in title for i in range(len(terms))), _roles=data["roles"])
        return self.__dict__[name]

    @cached_property
    def terms(self) -> tuple[frozenset[str], ...]:
        """Each sentence's distinct terms."""
        return tuple(map(frozenset, self._terms))

    @cached_property
    def chunk_terms(self) -> frozenset[str]:
        return frozenset(self._chunk_terms)

    @cached_property
    def term_sentences(self) -> dict[str, list[int]]:
        """term -> the indices of the sentences holding it (`inverted`), made once per parsed chunk."""
        return inverted(self._terms)

    def held(self, weights: dict[str, float]) -> dict[int, float]:
        """sentence index -> the summed weights of the question's terms it holds (sentences holding none
        left out), summed in the question's term order (`weights`'s): the same shares to the last bit
        either way. The first time, read off each sentence's stored terms; from the second on, off the
        term -> sentences map (`term_sentences`, made then), which only the question's few terms are
        looked up in: most passages of a large index are scored once, and making the map cost them
        two to ten times what reading their lists does. A question scores a passage once (its pool's
        and its answer's signals are kept in evidence.SentenceScores), or, called without one, up to
        twice (its pool, its answer) by one `weights` dict: that counts once."""
        holding = self.__dict__.get("term_sentences")
        if holding is None:
            scored_by = self.__dict__.get("_scored_by")
            if scored_by is None or scored_by == id(weights):
                self.__dict__["_scored_by"] = id(weights)
                return held_in_lists(self._terms, weights)
            holding = self.term_sentences
        return held_in_map(holding, weights)

    @cached_property
    def kept(self) -> np.ndarray:
        """Indices of the sentences that are not the document's title line (every one, but in the first
        passage of a document)."""
        title = self.title_lines
        return np.flatnonzero(~np.asarray(title, dtype=bool)) if any(title) else np.arange(len(title), dtype=np.intp)

    @cached_property
    def roles(self) -> tuple[SentenceRole, ...]:
        return tuple(r if isinstance(r, SentenceRole) else SentenceRole(*r) for r in self._roles)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SentenceData) and (self.terms, self.chunk_terms, self.title_lines, self.roles) == (
            other.terms, other.chunk_terms, other.title_lines, other.roles)

    def __reduce__(self):
        return SentenceData.from_json, (self.to_json(),)

    def to_json(self) -> str:
        stored = self.__dict__.get("_json")
        if stored is not None:
            return stored
        return json.dumps({"terms": [sorted(t) for t in self.terms], "chunk": sorted(self.chunk_terms),
                           "title": [i for i, t in enumerate(self.title_lines) if t],
                           "roles": [list(astuple(r)) for r in self.roles]}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> SentenceData:
        """Data as stored: parsed when a field is first read."""
        data = cls.__new__(cls)
        data._json = text
        return data


def inverted(terms: Sequence[Iterable[str]]) -> dict[str, list[int]]:
    """term -> the indices (ascending) of the sentences whose terms hold it: a question's share of IDF
    per sentence then looks up the question's few terms only (evidence.sentence_coverage). Made on a
    passage's first read after the index opens (a quarter of that read's cost), so without a list made
    and dropped per term, nor a second pass to tuples; read-only for its callers."""
    found: dict[str, list[int]] = {}
    for i, held in enumerate(terms):
        for t in held:
            at = found.get(t)
            if at is None:
                found[t] = [i]
            else:
                at.append(i)
    return found


def held_in_map(holding: dict[str, list[int]], weights: dict[str, float]) -> dict[int, float]:
    """`SentenceData.held` from a term -> sentences map (`inverted`)."""
    held: dict[int, float] = {}
    for t, w in weights.items():
        for i in holding.get(t, ()):
            held[i] = held.get(i, 0) + w
    return held


def held_in_lists(terms: Sequence[Iterable[str]], weights: dict[str, float]) -> dict[int, float]:
    """`SentenceData.held` from each sentence's terms (sets, or the stored sorted lists)."""
    held: dict[int, float] = {}
    items = weights.items()
    for i, have in enumerate(terms):
        total, hit = 0, False
        for t, w in items:
            if t in have:
                total += w
                hit = True
        if hit:
            held[i] = total
    return held


def relative_spans(chunk: Chunk) -> tuple[tuple[int, int], ...]:
    return tuple((a - chunk.start, b - chunk.start) for a, b in chunk.sentences)


def is_title_line(chunk: Chunk, title: str, i: int) -> bool:
    """Whether sentence `i` of the chunk is its document's title line (only the first chunk has one)."""
    if chunk.ordinal != 0:
        return False
    a, b = chunk.sentences[i]
    return one_line(chunk.text[a - chunk.start:b - chunk.start]) == one_line(title)


def sentence_data(chunk: Chunk, title: str) -> SentenceData:
    spans = relative_spans(chunk)
    return SentenceData(
        tuple(term_set(chunk.text[a:b]) for a, b in spans),
        term_set(chunk.text),
        tuple(is_title_line(chunk, title, i) for i in range(len(spans))),
        sentence_roles(chunk.text, spans),
    )
