"""Lexical (BM25) search over a generation's chunks, built by bm25s and scored on its postings.

bm25s precomputes every (term, chunk) BM25 score into a term-major sparse matrix. A question sums
the rows of its own terms, so it touches only the chunks that contain them: about 40,000 entries
and 3 ms at a million chunks, where SQLite FTS5 computed bm25() row by row (47 ms) and bm25s's own
`retrieve` scores every chunk of the corpus (45 ms). Files are plain .npy arrays, memory-mapped.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import bm25s
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
FILES = {name: f"bm25-{name}.npy" for name in ("data", "indices", "indptr", "ids")}
VOCAB = "bm25-vocab.json"

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


def _tokenize(texts: list[str], return_ids: bool):
    return bm25s.tokenize(texts, token_pattern=TOKEN_PATTERN, stopwords=list(STOPWORDS), stemmer=_stem,
                          return_ids=return_ids, show_progress=False)


def write(folder: Path, chunk_ids: np.ndarray, texts: list[str]) -> None:
    """Index `texts` (the chunks `chunk_ids`, in that order) into folder's bm25-* files."""
    if len(texts):
        model = bm25s.BM25(k1=K1, b=B, method="lucene")
        model.index(_tokenize(texts, return_ids=True), show_progress=False)
        arrays, vocab = {k: model.scores[k] for k in ("data", "indices", "indptr")}, model.vocab_dict
    else:
        arrays, vocab = {"data": [], "indices": [], "indptr": [0]}, {}
    arrays["ids"] = chunk_ids
    dtypes = {"data": np.float32, "indices": np.int32, "indptr": np.int64, "ids": np.int64}
    for name, values in arrays.items():
        np.save(folder / FILES[name], np.asarray(values, dtype=dtypes[name]))
    (folder / VOCAB).write_text(json.dumps(vocab))


class LexicalIndex:
    """A generation's BM25 index, read-only and memory-mapped (server workers share the pages)."""

    def __init__(self, folder: Path) -> None:
        self._arrays = {name: np.load(folder / file, mmap_mode="r") for name, file in FILES.items()}
        self._vocab: dict[str, int] = json.loads((folder / VOCAB).read_text())

    @property
    def chunk_ids(self) -> list[int]:
        return self._arrays["ids"].tolist()

    def idf(self, words: list[str]) -> dict[str, float]:
        """Lucene's IDF of each term (as `terms` gives them) over the indexed chunks; a term no chunk
        holds gets the largest IDF there is."""
        indptr, n = self._arrays["indptr"], len(self._arrays["ids"])
        out = {}
        for w in words:
            t = self._vocab.get(w)
            df = int(indptr[t + 1] - indptr[t]) if t is not None and t + 1 < len(indptr) else 0
            out[w] = float(np.log(1 + (n - df + 0.5) / (df + 0.5)))
        return out

    def absent(self, words: list[str]) -> frozenset[str]:
        """The terms (as `terms` gives them) that no indexed chunk holds: a question whose focal term
        the corpus never uses cannot be answered by it, however close its passages come in meaning."""
        indptr = self._arrays["indptr"]
        return frozenset(w for w in words if (t := self._vocab.get(w)) is None or t + 1 >= len(indptr)
                         or indptr[t + 1] == indptr[t])

    def coverage(self, question: str, chunk_ids: list[int]) -> np.ndarray:
        """For each chunk, the share of the question's IDF (its distinct stemmed content words) that
        the chunk holds, read off the postings: no chunk text is needed."""
        weights = self.idf(list(dict.fromkeys(terms(question))))
        total = sum(weights.values())
        out = np.zeros(len(chunk_ids))
        if total <= 0 or not chunk_ids:
            return out
        wanted = np.asarray(chunk_ids, dtype=np.int64)
        indices, indptr, ids = (self._arrays[k] for k in ("indices", "indptr", "ids"))
        for word, weight in weights.items():
            t = self._vocab.get(word)
            if t is not None and t + 1 < len(indptr):
                out += weight * np.isin(wanted, ids[indices[indptr[t]:indptr[t + 1]]])
        return out / total

    def search(self, question: str, n: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Top-n (chunk id, BM25 score) by score then id; only chunks in `allowed` if it is given."""
        known = {self._vocab[t] for t in terms(question) if t in self._vocab}
        data, indices, indptr, ids = (self._arrays[k] for k in ("data", "indices", "indptr", "ids"))
        if not known:
            return []
        rows = [slice(indptr[t], indptr[t + 1]) for t in sorted(known)]
        positions, inverse = np.unique(np.concatenate([indices[r] for r in rows]), return_inverse=True)
        scores = np.bincount(inverse, weights=np.concatenate([data[r] for r in rows]))
        chunk_ids = ids[positions]
        if allowed is not None:
            keep = np.isin(chunk_ids, allowed)
            chunk_ids, scores = chunk_ids[keep], scores[keep]
        if len(scores) > n:  # everything tied with the n-th best, then a stable cut by id
            keep = scores >= -np.partition(-scores, n - 1)[n - 1]
            chunk_ids, scores = chunk_ids[keep], scores[keep]
        order = np.lexsort((chunk_ids, -scores))[:n]
        return [(int(i), float(s)) for i, s in zip(chunk_ids[order], scores[order], strict=True)]
