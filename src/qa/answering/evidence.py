"""How well each sentence of a passage answers a question: its meaning and the question's words.

Cosine alone picks the sentence that holds the answer for 0.76 of SQuAD's shared questions;
the question's rare words (IDF-weighted, stemmed) for 0.82; both together more, and the same holds
on WikiQA and the report (bench/fusion_loo.py). The two are on one scale, 0..1 and comparable
across passages, so the answer can weigh a sentence of one passage against another's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np

from qa.indexing import lexical
from qa.indexing.sentences import held_in_map, inverted, is_title_line, relative_spans
from qa.indexing.store import QueryCosines, StoredChunk
from qa.reading.sentence_roles import SentenceRole, sentence_roles

# Score = (1 - TERM_WEIGHT) x cosine + TERM_WEIGHT x the share of the question's IDF that the
# sentence holds. Chosen by leave-one-benchmark-out (bench/fusion_loo.py, docs/benchmarks.md).
# With the pair of highlights below, 1.0 (the first highlight by the question's words, ties by
# cosine; the second by cosine) held the answer most often on each benchmark left out.
TERM_WEIGHT = 1.0


def term_coverage(weights: dict[str, float], texts: list[str]) -> np.ndarray:
    """For each text, the share of the question's term weight (IDF of each of its stemmed content
    words, `weights`) that the text contains; 0 when the question has no content words."""
    total = sum(weights.values())
    if total <= 0:
        return np.zeros(len(texts))
    return set_coverage(weights, [stems(x) for x in texts])


def set_coverage(weights: dict[str, float], held: Sequence[frozenset[str] | set[str]]) -> np.ndarray:
    """`term_coverage` of texts given as their term sets (stored per sentence at build time)."""
    total = sum(weights.values())
    if total <= 0:
        return np.zeros(len(held))
    # Summed in the question's term order, not the set's (which changes with PYTHONHASHSEED): the
    # same answer in every process, to the last bit (the CLI's and the server's).
    return np.array([sum(w for t, w in weights.items() if t in have) / total for have in held])


# Stems of the words seen so far: stemming each sentence anew cost about 1 ms an answer (10 passages);
# a corpus's vocabulary is small enough to keep, and the cache is dropped if it ever is not.
_STEM_CACHE: dict[str, str] = {}
_STEM_CACHE_MAX = 500_000


def stems(text: str) -> set[str]:
    """The distinct terms of text as the index holds them (`lexical.terms`), stemmed through the cache."""
    words = set(lexical.words(text))
    missing = [w for w in words if w not in _STEM_CACHE]
    if missing:
        if len(_STEM_CACHE) > _STEM_CACHE_MAX:
            _STEM_CACHE.clear()
        _STEM_CACHE.update(zip(missing, lexical.stem_words(missing), strict=True))
    return {_STEM_CACHE[w] for w in words}


def sentence_scores(cosines: np.ndarray, coverage: np.ndarray, weight: float = TERM_WEIGHT) -> np.ndarray:
    """Meaning and words together, one score a sentence."""
    return (1 - weight) * cosines + weight * coverage


def highlight_order(
    cosines: np.ndarray, coverage: np.ndarray, weight: float = TERM_WEIGHT,
    complete: Callable[[int], bool] | None = None, opening: bool = False,
) -> list[int]:
    """Indices into the passage's sentences (given in passage order), best first: the best by
    `sentence_scores`, then the rest by cosine.

    The contract's two highlights then give each view its own pick: the sentence that holds the
    question's words, and the one closest in meaning (a paraphrase). On all three benchmarks this
    pair holds the answer more often than either view's top two (bench/fusion_loo.py).

    Sentences that hold the same words tie. A complete one wins (`complete(i)`: not a heading, a
    lead-in or a table cell, which only name a subject); then, in the passage that opens its
    document (`opening`), the earliest, as a document's first sentences say what its subject is;
    elsewhere the closest in meaning. With none of the question's words anywhere, cosine alone."""
    if not len(cosines):
        return []
    by_cosine = np.argsort(-cosines, kind="stable").tolist()
    if coverage.max() <= 0:
        return by_cosine
    scores = sentence_scores(cosines, coverage, weight)
    tied = np.flatnonzero(scores >= scores.max() - 1e-9).tolist()
    if len(tied) > 1:
        place = {i: n for n, i in enumerate(range(len(cosines)) if opening else by_cosine)}
        first = min(tied, key=lambda i: (complete is not None and not complete(i), place[i]))
    else:
        first = tied[0]
    return [first] + [i for i in by_cosine if i != first]


def kept_sentences(stored: StoredChunk) -> np.ndarray:
    """Indices of the passage's sentences, its document's title line aside (which resembles every
    question about the document without answering any)."""
    if stored.data is not None:
        return stored.data.kept
    chunk = stored.chunk
    return np.array([i for i in range(len(chunk.sentences)) if not is_title_line(chunk, stored.title, i)],
                    dtype=np.intp)


def best_sentence(stored: StoredChunk, query: np.ndarray, weights: dict[str, float]) -> tuple[float, float]:
    """(best cosine, best share of the question's IDF) among the passage's sentences, the title line
    aside: a long passage is as close to a question as its closest sentence, which its own vector,
    an average over all of them, hides. 0 for a passage with no other sentence. A question scoring
    many passages keeps its signals in one SentenceScores (`best`)."""
    return SentenceScores(query, weights).best(stored)


class SentenceScores:
    """One question's sentence signals of each passage it reads, each computed once (by passage id): the
    pool's best sentences (retrieval.add_best_sentences) and then the answer's evidence (answers.assess,
    which reads the first five of them again) take the same ones, to the same bits as sentence_cosines
    and sentence_coverage give them."""

    def __init__(self, query: np.ndarray, weights: dict[str, float]) -> None:
        self.query, self.weights = query, weights
        self.total = sum(weights.values())
        self._cosines: dict[int, np.ndarray] = {}
        self._held: dict[int, dict[int, float]] = {}
        self._coverage: dict[int, np.ndarray] = {}

    def cosines(self, stored: StoredChunk) -> np.ndarray:
        """`sentence_cosines`."""
        found = self._cosines.get(stored.id)
        if found is None:
            found = self._cosines[stored.id] = sentence_cosines(stored, self.query)
        return found

    def held(self, stored: StoredChunk) -> dict[int, float]:
        """`_held_weights` (read-only)."""
        found = self._held.get(stored.id)
        if found is None:
            found = self._held[stored.id] = _held_weights(stored, self.weights)
        return found

    def coverage(self, stored: StoredChunk) -> np.ndarray:
        """`sentence_coverage`."""
        found = self._coverage.get(stored.id)
        if found is None:
            found = self._coverage[stored.id] = _shares(self.held(stored), len(stored.chunk.sentences), self.total)
        return found

    def best(self, stored: StoredChunk) -> tuple[float, float]:
        """`best_sentence` of the passage. When every sentence is kept, the best cosine is the best of
        `cosines`, the very product `best_cosine` takes; a title line's passage takes its kept rows'."""
        keep = kept_sentences(stored)
        if not len(keep):
            return 0.0, 0.0
        if stored.cosines is None and len(keep) == len(stored.chunk.sentences):
            cosine = max(self.cosines(stored).tolist())
        else:
            cosine = best_cosine(stored, self.query, keep)
        if self.total <= 0:
            return cosine, 0.0
        held = self.held(stored)
        if len(keep) < len(stored.chunk.sentences):  # the title line is one of them
            kept = set(keep.tolist())
            held = {i: w for i, w in held.items() if i in kept}
        return cosine, max(held.values(), default=0) / self.total  # weights are >= 0: the max is held


def sentence_cosines(stored: StoredChunk, query: np.ndarray) -> np.ndarray:
    """Each of the passage's sentences' cosine with the question: its sentence vectors times the
    question's, or those very products as a shard computed them and sent them instead (`with_cosines`)."""
    if stored.cosines is not None:
        return _carried(stored, query).sentences
    return stored.sentence_vectors @ query


def best_cosine(stored: StoredChunk, query: np.ndarray, keep: np.ndarray) -> float:
    """The best cosine of the sentences `keep` (kept_sentences, not empty), or as a shard sent it."""
    if stored.cosines is not None:
        return _carried(stored, query).best
    vectors = stored.sentence_vectors
    # Every sentence kept (all but a document's first passage): the matrix as stored, not a copy; the
    # products are the same to the bit (a subset's are not always: BLAS blocks rows by position).
    return max(((vectors if len(keep) == len(vectors) else vectors[keep]) @ query).tolist())


def with_cosines(stored: StoredChunk, query: np.ndarray, key: bytes | None = None) -> StoredChunk:
    """The passage as a shard sends it for a question: its sentences' cosines with the question, from
    the very expressions the answer uses (`sentence_cosines`, `best_cosine`, so the same to the bit),
    instead of the sentence vectors (n x 384 floats: a shard's answer was 0.5 MB of them). `key`: the
    question's `fingerprint`, when the caller has it."""
    keep = kept_sentences(stored)
    best = best_cosine(stored, query, keep) if len(keep) else 0.0
    products = sentence_cosines(stored, query)
    carried = QueryCosines(key or fingerprint(query), products.tobytes(), products.dtype.str, best)
    return StoredChunk(stored.id, stored.chunk, stored.title, None, stored.data, carried)


def fingerprint(query: np.ndarray) -> bytes:
    """A question vector's digest: a passage's carried cosines are used with their own question only."""
    return hashlib.blake2b(np.ascontiguousarray(query).tobytes(), digest_size=8).digest()


def _carried(stored: StoredChunk, query: np.ndarray) -> QueryCosines:
    carried = stored.cosines
    assert carried is not None
    if carried.query != fingerprint(query):
        raise ValueError(f"passage {stored.id} carries its sentences' cosines with another question")
    return carried


def sentence_coverage(stored: StoredChunk, weights: dict[str, float]) -> np.ndarray:
    """`term_coverage` of each of the passage's sentences, from their stored terms."""
    return _shares(_held_weights(stored, weights), len(stored.chunk.sentences), sum(weights.values()))


def _shares(held: dict[int, float], sentences: int, total: float) -> np.ndarray:
    """Each sentence's summed weight (`_held_weights`) over the question's `total`; zeros for a
    question without weight."""
    shares = np.zeros(sentences)
    if total <= 0:
        return shares
    if held:
        shares[list(held)] = list(held.values())
    return shares / total


def _held_weights(stored: StoredChunk, weights: dict[str, float]) -> dict[int, float]:
    """sentence index -> the summed weights of the question's terms it holds (sentences holding none
    left out), summed in the question's term order as `set_coverage` does: the same shares to the
    last bit (SentenceData.held)."""
    if stored.data is not None:
        return stored.data.held(weights)
    return held_in_map(term_sentences(stored), weights)


def term_sentences(stored: StoredChunk) -> dict[str, list[int]]:
    """term -> indices of the passage's sentences that hold it (sentences.inverted)."""
    if stored.data is not None:
        return stored.data.term_sentences
    return _term_sentences(stored.chunk.text, relative_spans(stored.chunk))


def sentence_terms(stored: StoredChunk) -> tuple[frozenset[str], ...]:
    """Each of the passage's sentences' distinct terms: stored with the index (sentences.py), or
    computed and cached for a chunk made elsewhere."""
    if stored.data is not None:
        return stored.data.terms
    return _sentence_stems(stored.chunk.text, relative_spans(stored.chunk))


def chunk_terms(stored: StoredChunk) -> frozenset[str]:
    """The passage's distinct terms (stored, or computed for a chunk made elsewhere)."""
    return stored.data.chunk_terms if stored.data is not None else frozenset(stems(stored.chunk.text))


# Chunks the index stores carry their sentences' terms and roles (sentences.py); a chunk made
# elsewhere (a test's, a bench's) has them computed and kept for the most recent ones.
SENTENCE_STEM_CACHE = 8192


@lru_cache(maxsize=SENTENCE_STEM_CACHE)
def _term_sentences(text: str, spans: tuple[tuple[int, int], ...]) -> dict[str, list[int]]:
    return inverted(_sentence_stems(text, spans))


@lru_cache(maxsize=SENTENCE_STEM_CACHE)
def _sentence_stems(text: str, spans: tuple[tuple[int, int], ...]) -> tuple[frozenset[str], ...]:
    return tuple(frozenset(stems(text[a:b])) for a, b in spans)


def roles(stored: StoredChunk) -> tuple[SentenceRole, ...]:
    """What each of the passage's sentences says (a reason, a date, a lead-in, ...: sentence_roles):
    stored with the index at build time (sentences.py), computed and kept for a chunk made elsewhere."""
    if stored.data is not None:
        return stored.data.roles
    return _roles(stored.chunk.text, relative_spans(stored.chunk))


@lru_cache(maxsize=SENTENCE_STEM_CACHE)
def _roles(text: str, spans: tuple[tuple[int, int], ...]) -> tuple[SentenceRole, ...]:
    return sentence_roles(text, spans)
