"""The FAISS index of chunk vectors: exact below a size threshold, HNSW above it, memory-mapped on load.

Exact search (IndexFlatIP) costs time in proportion to the number of vectors (about 23 ms at 100k
on this machine), so above `exact_max_chunks` a graph index (HNSW) visits a few thousand of them
instead. On mixtures of WikiQA sentence vectors, whose nearest neighbours are nearly tied, HNSW
kept recall@10 >= 0.95 where IVF needed to scan far more lists for less (docs/benchmarks.md).

Both are keyed by chunk id. Below the threshold the index is exactly what a full build would give.
HNSW cannot remove vectors, so a removed chunk's entry is a tombstone (its id set to -1, which
searches skip) until tombstones pass a fifth of the index, when it is rebuilt from the live vectors.
Vectors are stored uncompressed in both, so `reconstruct` is exact.

Files are opened memory-mapped: several server workers share one copy of the vectors in the page
cache, and opening a generation does not read it all.
"""

from __future__ import annotations

import faiss
import numpy as np

HNSW_NEIGHBOURS = 32  # M: links per vector
# efConstruction 128, efSearch 256: recall@10 against exact 0.987 at 1M synthetic chunks, 0.8 ms a
# search. efConstruction 64 built twice as fast but needed efSearch 1024 (2.7 ms) for 0.95.
HNSW_BUILD_DEPTH = 128
HNSW_SEARCH_DEPTH = 256
MAX_TOMBSTONE_SHARE = 0.2
# A document filter this small is scored exactly: a filtered graph search can miss allowed ids.
EXACT_FILTER_MAX = 50_000
DEAD = -1
_LIVE = faiss.IDSelectorRange(0, 2**62)  # every real chunk id; tombstones (-1) fall outside


def empty_index(dimension: int) -> faiss.Index:
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))


def is_exact(index: faiss.Index) -> bool:
    return isinstance(faiss.downcast_index(index.index), faiss.IndexFlat)


def remove(index: faiss.Index, ids: np.ndarray) -> None:
    """Remove chunk ids: for real from an exact index, as tombstones from a graph index."""
    if is_exact(index):
        index.remove_ids(ids)
        return
    id_map = faiss.vector_to_array(index.id_map)
    id_map[np.isin(id_map, ids)] = DEAD
    faiss.copy_array_to_vector(id_map, index.id_map)
    index.construct_rev_map()


def fit_to_size(index: faiss.Index, ids: np.ndarray, exact_max_chunks: int) -> faiss.Index:
    """The index of the right kind for its size, holding the same vectors under the same ids.

    `ids` are the live ids in `index`. An exact index that grew past the threshold becomes HNSW; an
    HNSW index that shrank to the threshold becomes exact again, and one with too many tombstones
    is rebuilt. Otherwise the index is returned as it is.
    """
    exact = len(ids) <= exact_max_chunks
    if exact == is_exact(index) and (exact or index.ntotal - len(ids) <= MAX_TOMBSTONE_SHARE * index.ntotal):
        return index
    vectors = index.reconstruct_batch(ids) if len(ids) else np.zeros((0, index.d), dtype=np.float32)
    rebuilt = empty_index(index.d) if exact else hnsw(index.d)
    rebuilt.add_with_ids(vectors, ids)
    return rebuilt


def hnsw(dimension: int) -> faiss.Index:
    graph = faiss.IndexHNSWFlat(dimension, HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
    graph.hnsw.efConstruction = HNSW_BUILD_DEPTH
    graph.hnsw.efSearch = HNSW_SEARCH_DEPTH
    return faiss.IndexIDMap2(graph)


def load(path: str) -> faiss.Index:
    """Open an index file memory-mapped and read-only."""
    return faiss.read_index(path, faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)


def search_parts(
    parts: list[tuple[faiss.Index, np.ndarray, np.ndarray, bool]], query: np.ndarray, n: int,
    allowed: np.ndarray | None = None,
) -> list[tuple[int, float]]:
    """Top-n ids by inner product over several indexes, each given as (index, its ids ascending, its
    deleted ids, whether it is exact); optionally among `allowed` ids only. Each part's top n, merged by
    score then id: with exact indexes, the top n of one index holding every live vector."""
    found = []
    for index, ids, dead, exact in parts:
        if allowed is not None:
            mine = allowed[members(ids, allowed)]
            found.append(_search(index, query, n, mine[~np.isin(mine, dead)] if len(dead) else mine, exact=exact))
        else:
            found.append(_search(index, query, n, excluded=dead if len(dead) else None, exact=exact))
    if not found:
        return []
    ids, scores = found[0] if len(found) == 1 else (np.concatenate(x) for x in zip(*found, strict=True))
    best = np.lexsort((ids, -scores))[:n]  # by score, then id
    return list(zip(ids[best].tolist(), scores[best].tolist(), strict=True))


def members(sorted_ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Which of `values` are in `sorted_ids` (ascending): a binary search each, where np.isin would
    sort a million ids again for every question."""
    if not len(sorted_ids) or not len(values):
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_ids, values), len(sorted_ids) - 1)  # ndarray.clip costs 5x more
    return np.asarray(sorted_ids[at] == values)


def search(
    index: faiss.Index, query: np.ndarray, n: int, allowed: np.ndarray | None = None,
    excluded: np.ndarray | None = None, exact: bool | None = None,
) -> list[tuple[int, float]]:
    """Top-n ids by inner product, optionally among `allowed` ids only, or all but `excluded`. `exact`:
    `is_exact(index)`, when the caller knows it (a segment's index never changes kind)."""
    ids, scores = _search(index, query, n, allowed, excluded, exact)
    return list(zip(ids.tolist(), scores.tolist(), strict=True))


def _search(
    index: faiss.Index, query: np.ndarray, n: int, allowed: np.ndarray | None = None,
    excluded: np.ndarray | None = None, exact: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """`search` as two arrays, ids and scores, best first."""
    total = index.ntotal
    if total == 0 or (allowed is not None and len(allowed) == 0):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    if exact is None:
        exact = is_exact(index)
    query = query.reshape(1, -1).astype(np.float32, copy=False)
    selector = faiss.IDSelectorBatch(allowed) if allowed is not None else None
    if excluded is not None:
        dead = faiss.IDSelectorBatch(excluded)  # locals: FAISS holds no reference to the inner selectors
        keep = faiss.IDSelectorNot(dead)
        selector = keep if exact else faiss.IDSelectorAnd(_LIVE, keep)
    if exact:
        params = faiss.SearchParameters(sel=selector) if selector is not None else None
    elif allowed is not None and len(allowed) <= EXACT_FILTER_MAX:
        return _exact_among(index, query[0], n, allowed)
    else:
        params = faiss.SearchParametersHNSW(sel=selector or _LIVE, efSearch=max(HNSW_SEARCH_DEPTH, n))
    # One query is too small to share out: FAISS's OpenMP threads only waited on onnxruntime's and
    # other requests' (in-process /ask p50 about halved on 2 cores). The setting is per calling thread.
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        scores, ids = index.search(query, min(n, total), params=params)
    finally:
        faiss.omp_set_num_threads(threads)
    if exact and selector is None:  # a flat index finds min(n, all) vectors: no empty slot (-1) to drop
        return ids[0], scores[0]
    found = ids[0] >= 0
    return ids[0][found], scores[0][found]


def _exact_among(
    index: faiss.Index, query: np.ndarray, n: int, allowed: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    scores = index.reconstruct_batch(allowed) @ query
    top = np.argsort(-scores, kind="stable")[:n]
    return np.asarray(allowed, dtype=np.int64)[top], scores[top]
