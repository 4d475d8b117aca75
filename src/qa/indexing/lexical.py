"""Lexical (BM25) search over the chunks of one or more parts of an index, on raw-count postings.

Each part (a segment; later a shard) stores term-major postings of RAW term frequencies: per term
the positions of the chunks that hold it and how often, plus every chunk's length in terms. A
question's score is computed on the rows of its own terms only (about 40,000 entries and a few ms
at a million chunks) with statistics summed over every part's LIVE chunks (N, average length,
document frequency), so a passage's score does not depend on how the index is split: an index of
one part scores exactly as bm25s's method="lucene" did when it precomputed the scores (k1, b, idf
below; tf / (tf + k1 x (1 - b + b x length / average length))). Files are plain .npy arrays,
memory-mapped (server workers share the pages).
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import Stemmer

# Lucene's BM25 (idf = log(1 + (N - df + 0.5) / (df + 0.5))) never goes negative, so a term in
# more than half the chunks ("japan" in the report) still counts a little instead of penalising;
# k1 and b are SQLite FTS5's, which the pipeline's fusion weight was chosen with.
K1, B = 1.2, 0.75
# Every word, one character or more ("recommendation 3", "article ii"); bm25s's default drops 1-char words.
TOKEN_PATTERN = r"(?u)\b\w+\b"
# Words too common to help BM25; also the words answering.py ignores when it matches names.
STOPWORDS = frozenset(
    "a an and are as at be been by can could did do does for from had has have how i in is it its "
    "of on or should that the their them they this to was were what when where which who whom why "
    "will with would about into than then there these those you your me my we our".split()
)
FILES = {name: f"postings-{name}.npy" for name in ("indptr", "positions", "tf", "ids", "lengths", "chunk_lengths")}
# Each posting's chunk length, stored beside its tf since 2026-12-03: a part written before gathers them.
OPTIONAL = {"chunk_lengths"}
VOCAB = "postings-terms.json"  # the part's terms as strings, in row order
DF_CACHE_MAX = 100_000  # terms whose document frequency a Words keeps
# np.load parses each .npy header with ast.literal_eval, and CPython before 3.11.8 and 3.12.2 shares the
# AST builder's depth counter between threads (gh-106905): a reader opening a new generation's parts
# while a merge opens its sources could fail with "SystemError: AST constructor recursion depth
# mismatch". Parts are opened one at a time (a few header reads; the arrays are only mapped).
_OPENING = threading.Lock()

_TOKEN = re.compile(TOKEN_PATTERN)
_local = threading.local()  # a PyStemmer object must not be shared between threads


def _stem(words: list[str]) -> list[str]:
    if not hasattr(_local, "stemmer"):
        _local.stemmer = Stemmer.Stemmer("porter")
    return _local.stemmer.stemWords(words)


def words(text: str) -> list[str]:
    """The words of text, lower-cased, stopwords dropped, not yet stemmed (see `stem_words`)."""
    return [w for w in _TOKEN.findall(text.lower()) if w not in STOPWORDS]


def stem_words(words: list[str]) -> list[str]:
    return _stem(words)


def terms(text: str) -> list[str]:
    """The words of text as the index holds them: lower-cased, stopwords dropped, Porter-stemmed."""
    return _stem(words(text))


class Triples:
    """Postings as (term, chunk position, tf) triples, before they are sorted into rows."""

    def __init__(self, vocab: list[str], term: np.ndarray, position: np.ndarray, tf: np.ndarray) -> None:
        self.vocab, self.term, self.position, self.tf = vocab, term, position, tf

    @classmethod
    def of_texts(cls, texts: list[str]) -> tuple[Triples, np.ndarray]:
        """Tokenise texts (chunk positions 0..len-1): the triples and each chunk's length in terms."""
        vocab: dict[str, int] = {}
        term, position, tf, lengths = [], [], [], []
        for i, text in enumerate(texts):
            counts = Counter(terms(text))
            lengths.append(sum(counts.values()))
            for t, c in counts.items():
                term.append(vocab.setdefault(t, len(vocab)))
                position.append(i)
                tf.append(c)
        return (cls(list(vocab), np.array(term, dtype=np.int64), np.array(position, dtype=np.int64),
                     np.array(tf, dtype=np.float32)), np.array(lengths, dtype=np.int32))

    @classmethod
    def concatenate(cls, parts: list[Triples]) -> Triples:
        """One set of triples under one vocabulary (positions must already be the merged ones)."""
        vocab: dict[str, int] = {}
        terms_, positions, tfs = [], [], []
        for part in parts:
            remap = np.array([vocab.setdefault(t, len(vocab)) for t in part.vocab], dtype=np.int64)
            terms_.append(remap[part.term] if len(part.term) else part.term)
            positions.append(part.position)
            tfs.append(part.tf)
        cat = (lambda xs, dt: np.concatenate(xs).astype(dt, copy=False) if xs else np.zeros(0, dt))  # noqa: E731
        return cls(list(vocab), cat(terms_, np.int64), cat(positions, np.int64), cat(tfs, np.float32))


def write_postings(folder: Path, chunk_ids: np.ndarray, lengths: np.ndarray, triples: Triples) -> None:
    """Write term-major postings: terms sorted, each row's positions ascending."""
    order_terms = sorted(range(len(triples.vocab)), key=triples.vocab.__getitem__)
    rank = np.empty(len(order_terms), dtype=np.int64)
    rank[order_terms] = np.arange(len(order_terms))
    row = rank[triples.term] if len(triples.term) else triples.term
    order = np.lexsort((triples.position, row))
    counts = np.bincount(row, minlength=len(order_terms)) if len(row) else np.zeros(len(order_terms), np.int64)
    arrays = {
        "indptr": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        "positions": triples.position[order].astype(np.int32),
        "tf": triples.tf[order].astype(np.float32),
        "ids": np.asarray(chunk_ids, dtype=np.int64),
        "lengths": np.asarray(lengths, dtype=np.int32),
    }
    wide = len(lengths) and int(np.max(lengths)) >= 2**16
    arrays["chunk_lengths"] = arrays["lengths"][arrays["positions"]].astype(np.uint32 if wide else np.uint16)
    for name, values in arrays.items():
        np.save(folder / FILES[name], values)
    (folder / VOCAB).write_text(json.dumps([triples.vocab[i] for i in order_terms]))


def write(folder: Path, chunk_ids: np.ndarray, texts: list[str]) -> None:
    """Index `texts` (the chunks `chunk_ids`, in that order, ascending) into folder's postings files."""
    triples, lengths = Triples.of_texts(texts)
    write_postings(folder, chunk_ids, lengths, triples)


class Postings:
    """One part's postings, read-only and memory-mapped."""

    def __init__(self, folder: Path) -> None:
        # Plain ndarray views of the memory maps (the pages stay shared): np.memmap's subclass hooks ran
        # on every slice and cost more than the slicing itself on a question's few dozen rows.
        with _OPENING:
            self.arrays = {name: np.asarray(np.load(folder / file, mmap_mode="r")) for name, file in FILES.items()
                           if name not in OPTIONAL or (folder / file).is_file()}
        self.vocab: list[str] = json.loads((folder / VOCAB).read_text())
        self.rows = {t: i for i, t in enumerate(self.vocab)}
        self.ids: np.ndarray = self.arrays["ids"]
        self.lengths: np.ndarray = self.arrays["lengths"]

    @cached_property
    def _runs(self) -> tuple[np.ndarray, np.ndarray]:
        """Where each run of consecutive chunk ids starts (positions) and its id less its position."""
        ids = np.asarray(self.ids, dtype=np.int64)
        starts = np.concatenate([[0], np.flatnonzero(np.diff(ids) != 1) + 1]) if len(ids) else np.zeros(0, np.int64)
        return starts, ids[starts] - starts

    def ids_at(self, positions: np.ndarray) -> np.ndarray:
        """The chunk ids (int64) at these positions: from the runs of consecutive ids, as a segment written
        at once is one run and a merged one has a run between deleted documents, not by reading the ids
        array (8 MB at a million chunks, mostly out of the CPU's caches by then)."""
        starts, offsets = self._runs
        if not len(starts) or len(starts) > MAX_RUNS:
            return np.asarray(self.ids[positions], dtype=np.int64)
        if len(starts) == 1:
            return positions + offsets[0]
        return positions + offsets[np.searchsorted(starts, positions, side="right") - 1]

    def row_with_lengths(self, term: str, lengths: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(positions, tf) of the chunks holding term and, with `lengths`, each posting's chunk length:
        read as one slice, as stored beside the tf, where gathering them from `lengths` read memory the
        encoder had just evicted (at a million chunks, 0.4-0.5 ms a question); gathered for a part
        written before they were stored."""
        t = self.rows.get(term)
        if t is None:
            return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int32)
        arrays = self.arrays
        indptr = arrays["indptr"]
        a, b = int(indptr[t]), int(indptr[t + 1])
        positions = arrays["positions"][a:b]
        if not lengths:
            return positions, arrays["tf"][a:b], None
        stored = arrays.get("chunk_lengths")
        return positions, arrays["tf"][a:b], stored[a:b] if stored is not None else self.lengths[positions]

    def triples(self, keep: np.ndarray, new_position: np.ndarray) -> Triples:
        """The postings of the chunks at positions where `keep`, renumbered by `new_position`."""
        indptr = np.asarray(self.arrays["indptr"])
        term = np.repeat(np.arange(len(self.vocab), dtype=np.int64), np.diff(indptr))
        position = np.asarray(self.arrays["positions"], dtype=np.int64)
        live = keep[position]
        return Triples(self.vocab, term[live], new_position[position[live]],
                       np.asarray(self.arrays["tf"])[live])


class Part:
    """Postings of one part with the mask of its live chunks (None: all live)."""

    def __init__(self, postings: Postings, live: np.ndarray | None = None) -> None:
        self.postings, self.live = postings, live

    def row(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        return self.row_with_lengths(term, lengths=False)[:2]

    def row_with_lengths(self, term: str, lengths: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Postings.row_with_lengths of the live chunks only."""
        positions, tf, chunk_lengths = self.postings.row_with_lengths(term, lengths)
        if self.live is not None and len(positions):
            keep = self.live[positions]
            positions, tf = positions[keep], tf[keep]
            chunk_lengths = chunk_lengths[keep] if chunk_lengths is not None else None
        return positions, tf, chunk_lengths

    @property
    def size(self) -> int:
        return int(self.live.sum()) if self.live is not None else len(self.postings.ids)

    @property
    def total_length(self) -> int:
        lengths = np.asarray(self.postings.lengths, dtype=np.int64)
        return int(lengths[self.live].sum() if self.live is not None else lengths.sum())


@dataclass(frozen=True)
class Statistics:
    """What BM25 needs beyond a part's own postings: live passages, their total length in terms, and
    the document frequency of some terms. Summed over shards before any shard scores (DFS)."""

    n: int
    total_length: int
    df: dict[str, int]

    @staticmethod
    def total(each: list[Statistics]) -> Statistics:
        df: Counter[str] = Counter()
        for s in each:
            df.update(s.df)
        return Statistics(sum(s.n for s in each), sum(s.total_length for s in each),
                          {t: df[t] for t in dict.fromkeys(t for s in each for t in s.df)})


# Runs of consecutive chunk ids past which Postings.ids_at reads the ids array instead.
MAX_RUNS = 4096


class Words:
    """BM25 over several parts with statistics summed over all of them: the lexical half of
    "search several parts and merge". idf, absent terms and coverage are global too. With
    `statistics` (of every shard, Statistics.total), the parts are one shard's and score as the whole."""

    def __init__(self, parts: list[Part], statistics: Statistics | None = None) -> None:
        self.parts = parts
        self.known_df: dict[str, int] = statistics.df if statistics is not None else {}
        self.n = statistics.n if statistics is not None else sum(p.size for p in parts)
        total = statistics.total_length if statistics is not None else sum(p.total_length for p in parts)
        self.average_length = total / self.n if self.n else 0.0
        # A question asks for its terms' df several times (search, coverage, idf, absent), once per part
        # each: kept, as the parts never change (bounded, for a long-lived server).
        self._dfs: dict[str, int] = {}

    def _df(self, term: str) -> int:
        if term in self.known_df:
            return self.known_df[term]
        df = self._dfs.get(term)
        if df is None:
            if len(self._dfs) > DF_CACHE_MAX:
                self._dfs.clear()
            df = self._dfs[term] = sum(len(p.row(term)[0]) for p in self.parts)
        return df

    def part_statistics(self, terms: list[str]) -> Statistics:
        """These parts' own statistics, for the terms given (as `terms` gives them): what a shard
        reports so that every shard scores with the sum (Statistics.total)."""
        return Statistics(sum(p.size for p in self.parts), sum(p.total_length for p in self.parts),
                          {t: sum(len(p.row(t)[0]) for p in self.parts) for t in terms})

    def idf(self, words: list[str]) -> dict[str, float]:
        """Lucene's IDF of each term (as `terms` gives them) over the live chunks; a term no chunk
        holds gets the largest IDF there is."""
        return {w: _idf(self.n, self._df(w)) for w in words}

    def statistics(self, words: list[str]) -> tuple[dict[str, float], frozenset[str]]:
        """`idf` and `absent` of the same terms, each term's document frequency counted once."""
        df = {w: self._df(w) for w in words}
        return {w: _idf(self.n, d) for w, d in df.items()}, frozenset(w for w, d in df.items() if d == 0)

    def absent(self, words: list[str]) -> frozenset[str]:
        """The terms (as `terms` gives them) that no live chunk holds: a question whose focal term
        the corpus never uses cannot be answered by it, however close its passages come in meaning."""
        return frozenset(w for w in words if self._df(w) == 0)

    def search(self, question: str, n: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Top-n (chunk id, BM25 score) by score then id over every part; only chunks in `allowed`."""
        return self.match(terms(question)).top(n, allowed)

    def match(self, words: list[str], weights: dict[str, float] | None = None) -> Matched:
        """The question's terms (`words`, as `terms` gives them) against the postings, each row read once:
        every chunk holding any of them with its BM25 score and its share of the question's IDF
        (`weights`: Words.idf of the same terms; computed when not given). It needs no question vector."""
        query = sorted(set(words))
        if weights is None:
            weights = self.idf(list(dict.fromkeys(words)))
        idf = {t: _idf(self.n, self._df(t)) for t in query}
        total = sum(weights.values())
        found = []
        for part in self.parts:
            rows = {t: part.row_with_lengths(t) for t in query}
            held_terms = [t for t in query if len(rows[t][0])]
            if not held_terms:
                continue
            sizes = [len(rows[t][0]) for t in held_terms]
            positions = np.concatenate([rows[t][0] for t in held_terms]).astype(np.int64)
            tf = np.concatenate([rows[t][1] for t in held_terms]).astype(np.float64)
            chunk_lengths = np.concatenate([rows[t][2] for t in held_terms]).astype(np.float64)
            weight = np.repeat([idf[t] for t in held_terms], sizes)
            norm = K1 * (1 - B + B * chunk_lengths / self.average_length)
            unique, slot = distinct(positions)  # each posting's slot: where its chunk's sums gather
            scores = np.bincount(slot, weights=weight * tf / (tf + norm), minlength=len(unique))
            # Each chunk's IDF share summed in the question's term order, one term at a time (as it always
            # was): the same shares to the last bit in every process.
            held = np.zeros(len(unique))
            starts = dict(zip(held_terms, np.cumsum([0, *sizes]).tolist(), strict=False))
            for t, w in weights.items():
                if t in starts:
                    held[slot[starts[t]:starts[t] + len(rows[t][0])]] += w
            shares = held / total if total > 0 else np.zeros(len(unique))
            found.append((part, part.postings.ids_at(unique), scores, shares))
        return Matched(found)


class Matched:
    """What one reading of the question's rows found (Words.match): by part, the ids (ascending) of the
    chunks holding any of its terms, their BM25 scores and their shares of the question's IDF."""

    def __init__(self, found: list[tuple[Part, np.ndarray, np.ndarray, np.ndarray]]) -> None:
        self.found = found
        self._top: tuple[int, list[tuple[int, float]]] | None = None  # the last unfiltered `top`

    def within(self, parts: list[Part]) -> Matched:
        """What these parts found (one shard's, of a sharded index: scored with every shard's statistics)."""
        return Matched([f for f in self.found if any(f[0] is p for p in parts)])

    def top(self, n: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """The n best (chunk id, BM25 score) by score then id; only chunks in `allowed`. Unfiltered, it is
        kept (read-only for callers): Assistant.ask makes it before encoding the question, on arrays `match`
        has just made (in the CPU's caches, where encoding would evict them: 37 against 75 µs a question)."""
        if allowed is None and self._top is not None and self._top[0] == n:
            return self._top[1]
        found_ids, found_scores = [], []
        for _, ids, scores, _ in self.found:
            if allowed is not None:
                keep = np.isin(ids, allowed)
                ids, scores = ids[keep], scores[keep]
            found_ids.append(ids)
            found_scores.append(scores)
        if len(found_ids) == 1:  # one part: its arrays as they are
            best = top(found_ids[0], found_scores[0], n)
        else:
            best = top(np.concatenate(found_ids), np.concatenate(found_scores), n) if found_ids else []
        if allowed is None:
            self._top = (n, best)
        return best

    def coverage(self, chunk_ids: list[int]) -> np.ndarray:
        """For each chunk, the share of the question's IDF that it holds (0 for a chunk holding none of
        its terms), read off the postings: no chunk text is needed."""
        wanted = np.asarray(chunk_ids, dtype=np.int64)
        out = np.zeros(len(wanted))
        for _, ids, _, shares in self.found:
            at = np.minimum(np.searchsorted(ids, wanted), len(ids) - 1)
            held = ids[at] == wanted
            out[held] = shares[at[held]]
        return out


def top(ids: np.ndarray, scores: np.ndarray, n: int) -> list[tuple[int, float]]:
    """The n best (id, score) by score then id."""
    if len(scores) > n:  # everything tied with the n-th best, then a stable cut by id
        keep = scores >= np.partition(scores, len(scores) - n)[len(scores) - n]
        ids, scores = ids[keep], scores[keep]
    order = np.lexsort((ids, -scores))[:n]
    return list(zip(ids[order].tolist(), scores[order].tolist(), strict=True))


def distinct(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(positions, return_inverse=True): the distinct positions ascending, and each one's index
    among them. The positions are a question's rows one after another, each ascending: numpy's stable
    sort merges such runs, where np.unique's quicksort sorts them anew. At a million passages (bench/scale.py's
    index, 200 WikiQA questions, 45,000 postings at p50) Words.match took 1.35 ms p50 this way, against
    3.9 with a slot per chunk of the part (arrays of a million) and 1.9-2.0 with np.unique. np.bincount sums
    a chunk's postings in their order in `positions` whatever the slots: the same bits."""
    order = np.argsort(positions, kind="stable")
    ordered = positions[order]
    first = np.ones(len(ordered), dtype=bool)
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    slot = np.empty(len(ordered), dtype=np.intp)
    slot[order] = np.cumsum(first) - 1
    return ordered[first], slot


def _idf(n: int, df: int) -> float:
    return float(np.log(1 + (n - df + 0.5) / (df + 0.5)))


class LexicalIndex(Words):
    """The BM25 index of one folder's postings, all chunks live (one part)."""

    def __init__(self, folder: Path) -> None:
        super().__init__([Part(Postings(folder))])

    @property
    def chunk_ids(self) -> list[int]:
        return self.parts[0].postings.ids.tolist()
