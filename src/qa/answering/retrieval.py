"""Hybrid retrieval: dense (FAISS) and lexical (BM25) candidates, fused on a calibrated score."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from itertools import repeat

import numpy as np

from qa.answering.evidence import SentenceScores, fingerprint, with_cosines
from qa.indexing.embedding import not_loadable
from qa.indexing.lexical import Matched, terms, top
from qa.indexing.shards import ShardedGeneration
from qa.indexing.store import Generation, StoredChunk
from qa.reading.metadata import Metadata

# Fused score = (1 - LEXICAL_WEIGHT - TERM_WEIGHT) x cosine + LEXICAL_WEIGHT x BM25, both min-max
# normalised over the candidates, + TERM_WEIGHT x the share of the question's IDF the passage holds
# (`fuse`): scale-free signals that make sense on any text. Chosen by leaving one benchmark out across
# WikiQA (dense wins), SQuAD (BM25 wins) and the report's dev sets (bench/fusion_loo.py,
# docs/benchmarks.md); the old cosine + 0.1 x BM25 / best BM25 lost to BM25 alone on SQuAD.
FUSION = "minmax"
LEXICAL_WEIGHT = 0.1
TERM_WEIGHT = 0.2
# Candidates per method: fixed (at least 4 x the largest k), so the ranking does not depend on k
# and the first k passages for any k are the same.
CANDIDATES = 80
# An optional cross-encoder re-scores this many fused candidates (a fixed depth, >= the largest k,
# so that here too the ranking does not depend on k).
RERANK_DEPTH = 20
# A question that names a numbered part ("recommendation 3", "the fourth recommendation") is
# looked up in this many of the best-ranked documents.
REFERENCE_DOCUMENTS = 3
# Each of the best RERANK_DEPTH passages gains DOCUMENT_WEIGHT x its document's best score, so that
# with distractors the document that matches best keeps its other passages ahead ("after Abe came
# back", report + WikiQA: the report's passage rose from 5th to 3rd). Comparing documents on a fusion
# of their own weights (more meaning, for which document; more words, for which passage) was searched
# by bench/fusion_loo.py too and not adopted: its best settings tie with comparing them on the
# passages' own score, and one (0.8 cosine + 0.2 coverage, weight 1.0) lost a paraphrased question.
DOCUMENT_WEIGHT = 0.25
# Each of the best RERANK_DEPTH passages also gains SENTENCE_COSINE_WEIGHT x its best sentence's
# cosine + SENTENCE_TERM_WEIGHT x the largest share of the question's IDF one sentence holds
# (`evidence.best_sentence`), before documents are compared: a question is answered by a sentence,
# and a 200-token passage's own vector and word counts blur the one that answers. Chosen across
# WikiQA, SQuAD and the report's dev sets by the worst margin over the best single method
# (bench/fusion_loo.py, its best-sentence table; docs/benchmarks.md): SQuAD hit@1 0.769 -> 0.786 in replay.
SENTENCE_COSINE_WEIGHT = 0.3
SENTENCE_TERM_WEIGHT = 0.2


@dataclass(frozen=True)
class Hit:
    stored: StoredChunk
    dense: float
    lexical: float
    score: float
    referenced: bool = False  # the passage under the numbered heading the question names


def retrieve(
    gen: Generation,
    query: np.ndarray,
    question: str,
    k: int,
    doc_ids: list[str] | None = None,
    reranker: Reranker | None = None,
    weights: dict[str, float] | None = None,
    matched: Matched | None = None,
    sentences: SentenceScores | None = None,
) -> list[Hit]:
    """The best k passages. `weights`: the IDF of the question's distinct terms (Words.idf), when the
    caller has them already; computed here otherwise. `matched`: the question's terms against the
    index's postings (Generation.match, made with these weights), when the caller made it already.
    `sentences`: where the pool's sentence signals are kept for the answer (made here otherwise)."""
    n = CANDIDATES
    if weights is None:
        weights = gen.words.idf(list(dict.fromkeys(terms(question))))
    allowed = gen.chunk_ids_of(doc_ids) if doc_ids is not None else None
    found = gather(gen, query, question, n, allowed, weights, matched)
    dense, lexical, ranking, fused = pooled(found)
    pool = {i: found.passages[i] for i in ranking if i in found.passages}
    if len(pool) < len(ranking):  # one index: its passages are read now (shards sent theirs, `skyband`)
        pool.update(gen.chunks([i for i in ranking if i not in pool]))
    add_best_sentences(fused, pool, sentences or SentenceScores(query, weights))
    order = _by_document(ranking, pool, fused)
    best = order[: RERANK_DEPTH if reranker else k]
    hits = [Hit(pool[i], dense[i], lexical.get(i, 0.0), fused[i]) for i in best if i in pool]
    if reranker is not None and hits:
        scores = reranker.scores(question, [h.stored.chunk.text for h in hits])
        reranked = sorted(range(len(hits)), key=lambda i: -scores[i])  # stable: ties keep the fused order
        hits = [replace(hits[i], score=scores[i]) for i in reranked]
    reference = numbered_reference(question)
    if reference is not None:
        hits = _put_referenced_first(gen, query, reference, order, pool, hits)
    return hits[:k]


def lexical_candidates(gen: Generation, matched: Matched | None, doc_ids: list[str] | None) -> None:
    """BM25's candidates for `retrieve`, made from `matched` (Generation.match) before the question is
    encoded, while its arrays are in the CPU's caches (Matched.top keeps them); a sharded index's
    shards take their own (`gather`), and a document filter's wait for its chunk ids."""
    if matched is not None and doc_ids is None and not isinstance(gen, ShardedGeneration):
        matched.top(CANDIDATES)


def pooled(found: Candidates, depth: int = RERANK_DEPTH,
           ) -> tuple[dict[int, float], dict[int, float], list[int], dict[int, float]]:
    """The whole index's candidates fused: (cosine and BM25 of each, the best `depth` by fused score then
    id, their fused scores)."""
    dense = dict(found.dense)
    for i, _ in found.lexical:  # BM25's candidates that the dense search did not find: their cosine
        dense.setdefault(i, found.cosine[i])
    lexical = dict(found.lexical)
    n = len(dense)
    ids = np.fromiter(dense, dtype=np.int64, count=n)
    floor = min(lexical.values(), default=0.0)
    scores = fused_scores(np.fromiter(dense.values(), dtype=np.float64, count=n),
                          np.fromiter(map(lexical.get, dense, repeat(floor, n)), dtype=np.float64, count=n),
                          np.fromiter(map(found.coverage.__getitem__, dense), dtype=np.float64, count=n))
    best = np.lexsort((ids, -scores))[:depth]  # by score, then id
    ranking = ids[best].tolist()  # MAX_K <= RERANK_DEPTH: the first k never depend on k
    fused = dict(zip(ranking, scores[best].tolist(), strict=True))  # the pool's scores, from here on
    return dense, lexical, ranking, fused


# A shard's candidate dominated by this many others of its own shard, that rank before it in every
# signal, cannot be among the pool's RERANK_DEPTH (`skyband`). A margin on the cosine: beyond float error.
COSINE_MARGIN = 1e-6


@dataclass
class Candidates:
    """What one part of an index (the whole index, or one shard) finds for a question: its top-n by cosine
    (`dense`) and by BM25 with global statistics (`lexical`), each best first; the cosine of each BM25
    candidate computed from its vector (`cosine`); the coverage of every candidate; and, from a shard,
    the passages that could enter the pool (`skyband`) with their documents' metadata, so that the app
    needs no second round. `merged` makes the shards' candidates the whole index's."""

    dense: list[tuple[int, float]]
    lexical: list[tuple[int, float]]
    cosine: dict[int, float]
    coverage: dict[int, float]
    passages: dict[int, StoredChunk] = field(default_factory=dict)
    metadata: dict[str, Metadata] = field(default_factory=dict)


def gather(gen: Generation, query: np.ndarray, question: str, n: int, allowed: np.ndarray | None,
           weights: dict[str, float], matched: Matched | None = None) -> Candidates:
    """The whole index's candidates: of one generation; of each shard, merged (the question matched over
    every shard's postings at once, so BM25 scores with the statistics of every shard summed); or, for a
    generation whose shards are served elsewhere (serving's RemoteGeneration), its own `gather`, one
    round to every shard. `matched`: Generation.match of the question, when the caller made it."""
    remote = getattr(gen, "gather", None)
    if remote is not None:
        return remote(query, question, n, allowed, weights, RERANK_DEPTH)
    if matched is None:
        matched = gen.words.match(terms(question), weights)
    if isinstance(gen, ShardedGeneration):
        alone = len(gen.shards) == 1
        return merged([candidates(g, matched.within(g.words.parts), query, n, allowed, RERANK_DEPTH, alone=alone)
                       for g in gen.shards], n)
    return candidates(gen, matched, query, n, allowed)


def candidates(gen: Generation, matched: Matched, query: np.ndarray, n: int, allowed: np.ndarray | None,
               depth: int = 0, metadata: bool = False, alone: bool = False) -> Candidates:
    """One part's candidates, from the question's terms matched against its postings (`matched`, a
    shard's scored with every shard's statistics) and from its vectors. `depth`: also the passages that
    could be among the best `depth` (and, with `metadata`, their documents' metadata), as a shard sends
    them (evidence.with_cosines): the `skyband`, or, for the only part asked (`alone`: its candidates
    are the whole index's), exactly the pool (`pooled`)."""
    lexical = matched.top(n, allowed)
    lexical_ids = [i for i, _ in lexical]
    dense = gen.dense(query, n, allowed)
    found_dense = dict(dense)
    cosine = {i: found_dense[i] for i in lexical_ids if i in found_dense}
    missing = [i for i in lexical_ids if i not in found_dense]
    if missing:  # one matrix product, as one index always did (its answers stay byte for byte)
        cosine.update(zip(missing, (gen.chunk_vectors(missing) @ query).tolist(), strict=True))
    found = Candidates(dense, lexical, cosine, {})
    ids = [*found_dense, *missing]  # every candidate once: the dense ones, then BM25's others
    found.coverage = dict(zip(ids, matched.coverage(ids).tolist(), strict=True))
    if depth:
        wanted = pooled(merged([found], n), depth)[2] if alone else skyband(found, depth)
        key = fingerprint(query)
        found.passages = {i: with_cosines(p, query, key) for i, p in gen.chunks(wanted).items()}
        if metadata:
            found.metadata = gen.metadata_of(sorted({p.chunk.doc_id for p in found.passages.values()}))
    return found


def skyband(found: Candidates, depth: int) -> list[int]:
    """The candidates of one shard that could be among the pool (the best `depth` by fused score over
    every shard's candidates); those dominated by `depth` others of the same shard cannot be.

    d dominates c when: d comes before c in this shard's dense top-n if c is in it, and in its BM25
    top-n if c is in it (so d is a candidate of the whole index whenever c is, and its BM25 as fused,
    max(own, lowest), is no lower); d's coverage >= c's; d's cosine (either value it may be fused with)
    >= c's, with d's id the lower (the ranking's tie-break) or a margin past float error. The fused
    score is a positive-weight sum of those signals, each mapped by an increasing min-max, so d ranks
    before c over every shard: a passage outside this skyband is never read."""
    ids = list(found.coverage)
    if len(ids) <= depth:
        return ids
    never = float("inf")
    dense_rank, lexical_rank = ({i: r for r, (i, _) in enumerate(hits)} for hits in (found.dense, found.lexical))
    dense = dict(found.dense)
    values = [[v for v in (dense.get(i), found.cosine.get(i)) if v is not None] for i in ids]
    low, high = np.array([min(v) for v in values]), np.array([max(v) for v in values])
    dr = np.array([dense_rank.get(i, never) for i in ids])
    lr = np.array([lexical_rank.get(i, never) for i in ids])
    cover = np.array([found.coverage[i] for i in ids])
    key = np.array(ids)
    # rows: d, columns: c
    before = (((dr[None, :] == never) | (dr[:, None] < dr[None, :]))
              & ((lr[None, :] == never) | (lr[:, None] < lr[None, :])))
    closer = (low[:, None] >= high[None, :]) & ((key[:, None] < key[None, :])
                                                | (low[:, None] >= high[None, :] + COSINE_MARGIN))
    dominated = before & closer & (cover[:, None] >= cover[None, :])
    np.fill_diagonal(dominated, False)
    return [i for i, d in zip(ids, dominated.sum(axis=0), strict=True) if d < depth]


def merged(parts: list[Candidates], n: int) -> Candidates:
    """The whole index's candidates from its shards': the n best of every shard's n best by score then
    id (as one index cuts them), the rest joined."""
    def best(lists: list[list[tuple[int, float]]]) -> list[tuple[int, float]]:
        hits = [h for hits in lists for h in hits]
        if not hits:
            return []
        return top(np.array([i for i, _ in hits], dtype=np.int64), np.array([s for _, s in hits]), n)

    out = Candidates(best([p.dense for p in parts]), best([p.lexical for p in parts]), {}, {})
    for p in parts:
        out.cosine.update(p.cosine)
        out.coverage.update(p.coverage)
        out.passages.update(p.passages)
        out.metadata.update(p.metadata)
    return out


def fuse(dense: dict[int, float], lexical: dict[int, float], coverage: dict[int, float] | None = None,
         weight: float = LEXICAL_WEIGHT, term_weight: float = TERM_WEIGHT, method: str = FUSION,
         ) -> dict[int, float]:
    """One score a candidate from its cosine (`dense`, every candidate), its BM25 (`lexical`, those
    BM25 found; the others count as its lowest) and the share of the question's IDF it holds
    (`coverage`, 0..1 already; missing counts 0).

    "minmax": cosine and BM25 each mapped onto [0, 1] over the candidates; "zscore": (score - mean)
    / std; "rrf": 60 / (60 + rank) (the last two for bench/fusion_loo.py to compare). Then
    (1 - weight - term_weight) x cosine + weight x BM25 + term_weight x coverage.
    """
    ids = list(dense)
    floor = min(lexical.values(), default=0.0)
    scores = fused_scores(np.array([dense[i] for i in ids], dtype=np.float64),
                          np.array([lexical.get(i, floor) for i in ids], dtype=np.float64),
                          np.array([(coverage or {}).get(i, 0.0) for i in ids], dtype=np.float64),
                          weight, term_weight, method)
    return dict(zip(ids, scores.tolist(), strict=True))


def fused_scores(cos: np.ndarray, bm25: np.ndarray, cover: np.ndarray, weight: float = LEXICAL_WEIGHT,
                 term_weight: float = TERM_WEIGHT, method: str = FUSION) -> np.ndarray:
    """`fuse` on arrays: each candidate's cosine, BM25 (the lowest found for those BM25 did not find)
    and coverage, in one order."""
    norm = {"minmax": _minmax, "zscore": _zscore, "rrf": _reciprocal_ranks}.get(method)
    if norm is None:
        raise ValueError(f"fusion method {method!r}: use minmax, zscore or rrf")
    return (1 - weight - term_weight) * norm(cos) + weight * norm(bm25) + term_weight * cover


def add_best_sentences(
    fused: dict[int, float], pool: dict[int, StoredChunk], sentences: SentenceScores,
    cosine_weight: float = SENTENCE_COSINE_WEIGHT, term_weight: float = SENTENCE_TERM_WEIGHT,
) -> None:
    """Add each pooled passage's best-sentence signals (evidence.best_sentence, of the question
    `sentences` scores for) to its fused score, in place."""
    for i, stored in pool.items():
        cosine, share = sentences.best(stored)
        fused[i] += cosine_weight * cosine + term_weight * share


def _minmax(x: np.ndarray) -> np.ndarray:
    span = float(x.max() - x.min()) if len(x) else 0.0
    return (x - x.min()) / span if span > 0 else np.ones_like(x)


def _zscore(x: np.ndarray) -> np.ndarray:
    std = float(x.std()) if len(x) else 0.0
    return (x - x.mean()) / std if std > 0 else np.zeros_like(x)


def _reciprocal_ranks(x: np.ndarray) -> np.ndarray:
    ranks = np.empty(len(x))
    ranks[np.argsort(-x, kind="stable")] = np.arange(1, len(x) + 1)
    return 60.0 / (60.0 + ranks)  # x 60: on the scale of the other methods (1 for the best)


def _by_document(ids: list[int], stored: dict[int, StoredChunk], fused: dict[int, float]) -> list[int]:
    """Re-rank `ids` with DOCUMENT_WEIGHT x the best score of each passage's document added (in place
    in `fused`): a passage of the document that best matches the question comes before a slightly
    closer passage of a document that matches it less. One document alone keeps its order."""
    doc_best: dict[str, float] = {}
    for i in ids:
        if i in stored:
            doc = stored[i].chunk.doc_id
            doc_best[doc] = max(doc_best.get(doc, fused[i]), fused[i])
    for i in ids:
        if i in stored:
            fused[i] += DOCUMENT_WEIGHT * doc_best[stored[i].chunk.doc_id]
    return sorted(ids, key=lambda i: (-fused[i], i))


_PART = r"(recommendation|section|chapter|finding|step|item|principle|proposal)s?"
# These name any numbered part; the others only one that the document calls so ("recommendations").
_GENERIC_PARTS = {"section", "chapter", "item"}
_ORDINALS = ("first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth "
             "thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth twentieth").split()
_REFERENCE = re.compile(
    rf"\b{_PART}\s+(?:no\.?\s*|number\s+|#)?(\d{{1,3}})\b"
    rf"|\b({'|'.join(_ORDINALS)}|\d{{1,3}}(?:st|nd|rd|th))\s+{_PART}\b",
    re.IGNORECASE,
)


def numbered_reference(question: str) -> tuple[str, int] | None:
    """("recommendation", 3) for "recommendation 3", "the third recommendation", "3rd recommendation"."""
    m = _REFERENCE.search(question)
    if m is None:
        return None
    if m.group(1):
        return m.group(1).lower(), int(m.group(2))
    word = m.group(3).lower()
    number = _ORDINALS.index(word) + 1 if word in _ORDINALS else int(word[:-2])
    return m.group(4).lower(), number


def _put_referenced_first(
    gen: Generation, query: np.ndarray, reference: tuple[str, int], order: list[int],
    pool: dict[int, StoredChunk], hits: list[Hit],
) -> list[Hit]:
    """Move the passage under the heading numbered as the question says to first place.

    Embeddings cannot tell "recommendation 3" from "recommendation 4", but a heading's number can.
    The heading is looked for in the best-ranked documents that use the part's name (a document
    about recommendations, for "recommendation 3"), in their ranking order.
    """
    part, number = reference
    heading = re.compile(rf"\W*(?:{part}\s+)?{number}\s*[.):]\s", re.IGNORECASE)
    doc_ids = list(dict.fromkeys(pool[i].chunk.doc_id for i in order if i in pool))
    for doc_id in doc_ids[:REFERENCE_DOCUMENTS]:
        chunks = gen.chunks([int(i) for i in gen.chunk_ids_of([doc_id])])  # they hold the whole text
        if part not in _GENERIC_PARTS and all(part not in c.chunk.text.lower() for c in chunks.values()):
            continue
        for cid in sorted(chunks, key=lambda i: chunks[i].chunk.ordinal):
            if heading.match(chunks[cid].chunk.section or ""):
                cosine = float(gen.chunk_vectors([cid])[0] @ query)
                first = Hit(chunks[cid], cosine, 0.0, max([h.score for h in hits], default=cosine), referenced=True)
                return [first] + [h for h in hits if h.stored.id != cid]
    return hits


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
