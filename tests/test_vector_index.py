"""The vector index: exact below the size threshold (identical results), HNSW above it (recall held
through updates), opened memory-mapped."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import FIXTURES, REPORT, make_settings
from qa.indexing import vector_index
from qa.indexing.store import VECTORS
from qa.service import Assistant

QUESTIONS = [
    "When did Japan first sell more to the US than it bought?",
    "How far will Japan cut tariffs on American beef?",
    "Which minerals are covered by the supply chain agreement?",
    "Where could Japanese shipyards repair navy vessels?",
    "Will data have to be stored on local servers?",
]


def unit_rows(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def clustered(n: int, dimension: int = 48, clusters: int = 40, seed: int = 0) -> np.ndarray:
    """Points around a few centres, like topic-grouped chunks: neighbours are close but not copies."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dimension))
    return unit_rows(centres[rng.integers(0, clusters, n)] + 0.6 * rng.standard_normal((n, dimension)))


def exact_top(vectors: np.ndarray, ids: np.ndarray, query: np.ndarray, n: int) -> list[int]:
    return [int(ids[i]) for i in np.argsort(-(vectors @ query), kind="stable")[:n]]


def recall_at_10(index, vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray) -> float:
    found = [
        len({i for i, _ in vector_index.search(index, q, 10)} & set(exact_top(vectors, ids, q, 10))) / 10
        for q in queries
    ]
    return float(np.mean(found))


def test_below_the_threshold_search_is_exact_and_a_round_trip_through_hnsw_changes_nothing():
    vectors, ids = clustered(3000), np.arange(1, 3001, dtype=np.int64)
    queries = clustered(20, seed=1)
    index = vector_index.empty_index(vectors.shape[1])
    index.add_with_ids(vectors, ids)
    for q in queries:
        assert [i for i, _ in vector_index.search(index, q, 10)] == exact_top(vectors, ids, q, 10)

    grown = vector_index.fit_to_size(index, ids, exact_max_chunks=1000)
    assert not vector_index.is_exact(grown)
    vector_index.remove(grown, ids[500:])
    shrunk = vector_index.fit_to_size(grown, ids[:500], exact_max_chunks=1000)
    fresh = vector_index.empty_index(vectors.shape[1])
    fresh.add_with_ids(vectors[:500], ids[:500])
    assert vector_index.is_exact(shrunk) and shrunk.ntotal == 500
    for q in queries:
        assert vector_index.search(shrunk, q, 10) == vector_index.search(fresh, q, 10)


def test_above_the_threshold_recall_holds_through_removals_and_additions():
    vectors, ids = clustered(6000), np.arange(1, 6001, dtype=np.int64)
    queries = clustered(50, seed=1)
    index = vector_index.empty_index(vectors.shape[1])
    index.add_with_ids(vectors[:5000], ids[:5000])
    index = vector_index.fit_to_size(index, ids[:5000], exact_max_chunks=1000)
    assert not vector_index.is_exact(index)
    assert recall_at_10(index, vectors[:5000], ids[:5000], queries) >= 0.95

    # A few removals become tombstones: never returned, and the graph is kept.
    gone = ids[:400]
    vector_index.remove(index, gone)
    live = ids[400:5000]
    assert vector_index.fit_to_size(index, live, exact_max_chunks=1000) is index
    assert not {i for q in queries for i, _ in vector_index.search(index, q, 50)} & set(gone.tolist())
    assert recall_at_10(index, vectors[400:5000], live, queries) >= 0.95

    # Many more removals, and additions: the graph is rebuilt from the live vectors alone.
    index.add_with_ids(vectors[5000:], ids[5000:])
    vector_index.remove(index, ids[400:1600])
    live = ids[1600:]
    rebuilt = vector_index.fit_to_size(index, live, exact_max_chunks=1000)
    assert rebuilt is not index and rebuilt.ntotal == len(live)
    assert recall_at_10(rebuilt, vectors[1600:], live, queries) >= 0.95

    allowed = live[::97]  # a document filter: exact among the allowed ids
    assert [i for i, _ in vector_index.search(rebuilt, queries[0], 5, allowed)] == exact_top(
        vectors[1600:][::97], allowed, queries[0], 5)


def build(root, encoder, documents: list[str], **settings) -> Assistant:
    corpus = root / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for name in documents:
        source = REPORT if name == REPORT.name else FIXTURES / "incremental" / name
        shutil.copy(source, corpus / name)
    assistant = Assistant(make_settings(root, **settings), encoder=encoder)
    assistant.reindex()
    return assistant


def passages(assistant: Assistant) -> list[list[tuple[str, int, int]]]:
    return [[(p.doc_id, p.start, p.end) for p in assistant.ask(q, k=5).passages] for q in QUESTIONS]


@pytest.fixture
def documents() -> list[str]:
    return [REPORT.name, "joint-statement.txt", "trade-fact-sheet.md", "shipbuilding-notes.html"]


def test_the_product_picks_the_index_type_by_size_and_answers_alike(tmp_path, encoder, documents):
    exact = build(tmp_path / "exact", encoder, documents)
    graph = build(tmp_path / "graph", encoder, documents, exact_max_chunks=5)
    assert vector_index.is_exact(exact.generation().segments[0].vectors)
    assert not vector_index.is_exact(graph.generation().segments[0].vectors)
    assert passages(graph) == passages(exact)

    # Memory-mapped: the published file itself is mapped, so worker processes share its pages.
    mapped = (graph.generation().segments[0].path / VECTORS).as_posix()
    assert any(line.rstrip().endswith(mapped) for line in Path("/proc/self/maps").read_text().splitlines())

    # An incremental update above the threshold: same documents and chunks as a full build.
    (graph.settings.corpus_dir / "joint-statement.txt").unlink()
    summary = graph.reindex()
    assert summary.removed == ["joint-statement.txt"]
    assert not vector_index.is_exact(graph.generation().segments[0].vectors)  # deletions only: marked
    rebuilt = build(tmp_path / "rebuilt", encoder, [d for d in documents if d != "joint-statement.txt"])
    assert graph.generation().chunk_count == rebuilt.generation().chunk_count
    assert passages(graph) == passages(rebuilt)
    assert all(doc != "joint-statement.txt" for row in passages(graph) for doc, _, _ in row)
