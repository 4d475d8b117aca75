"""The FAISS index of chunk vectors: exact below a size threshold, IVF above it, memory-mapped on load.

Exact search (IndexFlatIP) costs time in proportion to the number of vectors (about 23 ms at 100k
on this machine), so above `exact_max_chunks` an inverted-file index (IVFFlat) scans only the
`nprobe` lists nearest the query. Both are keyed by chunk id and support `remove_ids`, so
incremental updates work at any size; below the threshold the index is exactly what a full build
would give. Vectors are stored uncompressed in both, so `reconstruct` is exact.

Files are opened memory-mapped: several server workers share one copy of the vectors in the page
cache, and opening a generation does not read it all.
"""

from __future__ import annotations

import math

import faiss
import numpy as np

# Lists scanned per query: recall@10 against exact search stays >= 0.95 with 2*sqrt(n) lists
# (see bench/scale.py and docs/benchmarks.md).
NPROBE = 24
TRAINING_POINTS_PER_LIST = 50  # k-means sample; faiss warns below 39
# A document filter this small is scored exactly: an IVF scan of nprobe lists may hold few of its ids.
EXACT_FILTER_MAX = 50_000


def empty_index(dimension: int) -> faiss.Index:
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))


def lists_for(n: int) -> int:
    return max(1, min(int(2 * math.sqrt(n)), n // TRAINING_POINTS_PER_LIST))


def is_exact(index: faiss.Index) -> bool:
    return not isinstance(index, faiss.IndexIVF)


def fit_to_size(index: faiss.Index, ids: np.ndarray, exact_max_chunks: int) -> faiss.Index:
    """The index of the right kind for its size, holding the same vectors under the same ids.

    `ids` are every id in `index`. An exact index that grew past the threshold becomes IVF; an IVF
    index that shrank to the threshold becomes exact again; an IVF index whose size drifted a
    factor of 2 from what its lists were trained for is retrained. Otherwise it is returned as is.
    """
    n = len(ids)
    if n <= exact_max_chunks:
        if is_exact(index):
            return index
        return _rebuild(empty_index(index.d), index, ids)
    if not is_exact(index):
        trained_for = index.nlist
        if 0.5 <= trained_for / lists_for(n) <= 2:
            return index
    return _rebuild(None, index, ids)


def _rebuild(target: faiss.Index | None, source: faiss.Index, ids: np.ndarray) -> faiss.Index:
    vectors = source.reconstruct_batch(ids) if len(ids) else np.zeros((0, source.d), dtype=np.float32)
    if target is None:
        target = ivf(vectors)
    target.add_with_ids(vectors, ids)
    return target


def ivf(vectors: np.ndarray) -> faiss.IndexIVFFlat:
    """An empty IVFFlat index (inner product) with lists trained on a sample of `vectors`."""
    n, dimension = vectors.shape
    nlist = lists_for(n)
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dimension), dimension, nlist, faiss.METRIC_INNER_PRODUCT)
    sample = min(n, nlist * TRAINING_POINTS_PER_LIST)
    rows = np.random.default_rng(0).choice(n, sample, replace=False) if sample < n else slice(None)
    index.cp.max_points_per_centroid = TRAINING_POINTS_PER_LIST
    index.train(np.ascontiguousarray(vectors[rows]))
    index.nprobe = min(NPROBE, nlist)
    index.set_direct_map_type(faiss.DirectMap.Hashtable)  # for reconstruct and remove_ids by chunk id
    return index


def load(path: str) -> faiss.Index:
    """Open an index file memory-mapped and read-only."""
    return faiss.read_index(path, faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)


def search(
    index: faiss.Index, query: np.ndarray, n: int, allowed: np.ndarray | None = None
) -> list[tuple[int, float]]:
    """Top-n ids by inner product, optionally among `allowed` ids only."""
    if index.ntotal == 0 or (allowed is not None and len(allowed) == 0):
        return []
    query = query.reshape(1, -1).astype(np.float32, copy=False)
    params = None
    if allowed is not None:
        if is_exact(index):
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed))
        elif len(allowed) <= EXACT_FILTER_MAX:
            return _exact_among(index, query[0], n, allowed)
        else:
            params = faiss.SearchParametersIVF(sel=faiss.IDSelectorBatch(allowed), nprobe=index.nprobe)
    scores, ids = index.search(query, min(n, index.ntotal), params=params)
    return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]


def _exact_among(
    index: faiss.Index, query: np.ndarray, n: int, allowed: np.ndarray
) -> list[tuple[int, float]]:
    scores = index.reconstruct_batch(allowed) @ query
    top = np.argsort(-scores, kind="stable")[:n]
    return [(int(allowed[i]), float(scores[i])) for i in top]
