"""Hybrid retrieval: dense (FAISS) and lexical (BM25) candidates, fused on a calibrated score."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .embedding import not_loadable
from .store import Generation, StoredChunk

# Fused score = cosine + LEXICAL_WEIGHT * BM25 / best BM25 among the candidates. Cosine carries
# most of the ranking (it was far better than BM25 alone); BM25 breaks ties on rare exact terms.
# Weights 0.2+ and adding the best sentence's cosine were worse on the dev set and no better on
# WikiQA (docs/benchmarks.md); plain reciprocal-rank fusion was worse than dense alone.
LEXICAL_WEIGHT = 0.1
# Candidates per method: fixed (at least 4 x the largest k), so the ranking does not depend on k
# and the first k passages for any k are the same.
CANDIDATES = 80
# An optional cross-encoder re-scores this many fused candidates (a fixed depth, >= the largest k,
# so that here too the ranking does not depend on k).
RERANK_DEPTH = 20


@dataclass(frozen=True)
class Hit:
    stored: StoredChunk
    dense: float
    lexical: float
    score: float


def retrieve(
    gen: Generation,
    query: np.ndarray,
    question: str,
    k: int,
    doc_ids: list[str] | None = None,
    reranker: Reranker | None = None,
) -> list[Hit]:
    n = CANDIDATES
    allowed = gen.chunk_ids_of(doc_ids) if doc_ids is not None else None
    dense = dict(gen.dense(query, n, allowed))
    lexical = dict(gen.lexical(question, n, doc_ids))
    missing = [i for i in lexical if i not in dense]
    if missing:
        dense.update(zip(missing, (gen.chunk_vectors(missing) @ query).tolist(), strict=True))
    top_lexical = max(lexical.values(), default=0.0) or 1.0
    fused = {i: d + LEXICAL_WEIGHT * lexical.get(i, 0.0) / top_lexical for i, d in dense.items()}
    best = sorted(fused, key=lambda i: (-fused[i], i))[: RERANK_DEPTH if reranker else k]
    stored = gen.chunks(best)
    hits = [Hit(stored[i], dense[i], lexical.get(i, 0.0), fused[i]) for i in best if i in stored]
    if reranker is not None and hits:
        scores = reranker.scores(question, [h.stored.chunk.text for h in hits])
        order = sorted(range(len(hits)), key=lambda i: -scores[i])  # stable: ties keep the fused order
        hits = [replace(hits[i], score=scores[i]) for i in order]
    return hits[:k]


class Reranker:
    """An optional cross-encoder (QA_RERANKER) that re-scores (question, passage) pairs.

    None ships with the product and none is reachable offline, so it is off by default and its
    effect on quality is unmeasured (docs/benchmarks.md). The passage score becomes its score.
    """

    def __init__(self, model: str) -> None:
        from sentence_transformers import CrossEncoder

        try:
            self._model = CrossEncoder(model, device="cpu")
        except Exception as exc:  # noqa: BLE001 - any loader failure means the same thing to the user
            raise not_loadable("reranker", model, model, "QA_RERANKER (or unset it)", exc) from exc

    def scores(self, question: str, texts: list[str]) -> list[float]:
        pairs = [(question, t) for t in texts]
        return [float(s) for s in self._model.predict(pairs, show_progress_bar=False)]
