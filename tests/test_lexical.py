"""BM25 over the report's paragraphs: the scorer on raw-count postings ranks and scores exactly as
bm25s's own retrieve (method="lucene") does, the reference the fusion weights were chosen with."""

from __future__ import annotations

import gc
import sys
import threading

import bm25s
import numpy as np
import pytest

from conftest import REPORT
from qa.indexing import lexical

QUESTIONS = [
    "When did Japan first run a trade surplus with the United States?",
    "What does the report say about LNG and energy security?",
    "Toshiba radio sledgehammers Capitol",
    "recommendation 3",
    "How should the allies cooperate on infrastructure finance in Southeast Asia?",
]


def _tokenize(texts: list[str], return_ids: bool):
    """bm25s's tokenizer set up as the index's `lexical.terms` (the reference for these tests)."""
    return bm25s.tokenize(texts, token_pattern=lexical.TOKEN_PATTERN, stopwords=list(lexical.STOPWORDS),
                          stemmer=lexical.stem_words, return_ids=return_ids, show_progress=False)


@pytest.fixture(scope="module")
def paragraphs() -> list[str]:
    return [line.strip() for line in REPORT.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def index(paragraphs, tmp_path_factory) -> lexical.LexicalIndex:
    folder = tmp_path_factory.mktemp("bm25")
    ids = np.arange(1000, 1000 + 3 * len(paragraphs), 3)  # chunk ids are not positions
    lexical.write(folder, ids, paragraphs)
    return lexical.LexicalIndex(folder)


@pytest.mark.parametrize("question", QUESTIONS)
def test_ranking_equals_bm25s_retrieve(index, paragraphs, question):
    reference = bm25s.BM25(k1=lexical.K1, b=lexical.B, method="lucene")
    reference.index(_tokenize(paragraphs, return_ids=True), show_progress=False)
    query = _tokenize([question], return_ids=False)
    positions, scores = reference.retrieve(query, k=5, show_progress=False)
    matched = [(1000 + 3 * int(p), float(s)) for p, s in zip(positions[0], scores[0], strict=True) if s > 0]
    got = index.search(question, 5)
    assert got, "every question here shares words with the report"
    assert [round(s, 4) for _, s in got] == [round(s, 4) for _, s in matched]
    assert {i for i, _ in got} == {i for i, _ in matched}


def test_a_rare_name_finds_its_paragraph_first(index, paragraphs):
    best, _ = index.search("Toshiba", 3)[0]
    assert "Toshiba" in paragraphs[(best - 1000) // 3]


def test_a_filter_keeps_only_allowed_chunks(index):
    everything = index.search("trade tensions", 50)
    allowed = np.array([i for i, _ in everything[5:8]])
    assert [i for i, _ in index.search("trade tensions", 50, allowed)] == allowed.tolist()


def test_questions_without_indexed_words_find_nothing(index):
    assert index.search("the of and to", 5) == []
    assert index.search("zyxwvut qwerty", 5) == []
    assert index.search("?!", 5) == []


def test_n_cuts_a_stable_order(index):
    every = index.search("trade economic cooperation Japan", 1000)
    assert len(every) > 8
    assert every == sorted(every, key=lambda hit: (-hit[1], hit[0]))
    assert index.search("trade economic cooperation Japan", 7) == every[:7]


def test_an_empty_corpus_is_searchable(tmp_path):
    lexical.write(tmp_path, np.array([], dtype=np.int64), [])
    assert lexical.LexicalIndex(tmp_path).search("trade", 5) == []


@pytest.mark.parametrize("question", QUESTIONS)
def test_the_idf_share_read_off_the_postings_is_the_one_of_each_paragraphs_text(index, paragraphs, question):
    """Words.match reads each of the question's rows once for BM25 and for every chunk's share of its IDF;
    the share equals, to the bit, the one summed over the terms of the paragraph's own text, in the
    question's term order (a chunk holding none of its terms: 0)."""
    words = lexical.terms(question)
    weights = index.idf(list(dict.fromkeys(words)))
    ids = list(range(1000, 1000 + 3 * len(paragraphs), 3))
    shares = index.match(words, weights).coverage([*ids, 7])  # 7: no chunk of the index
    total = sum(weights.values())
    expected = [sum(w for t, w in weights.items() if t in set(lexical.terms(text))) / total for text in paragraphs]
    assert shares.tolist() == [*expected, 0.0]
    assert any(s > 0 for s in expected)


def test_a_questions_postings_are_slotted_by_chunk_as_np_unique_slots_them(index):
    """Words.match gathers each chunk's postings by `distinct` (a stable sort of the question's rows, each
    ascending): the chunks and each posting's slot are np.unique's, so the sums are the same bits. On the
    fixture's rows and on rows of a million-chunk part that overlap at random."""
    part = index.parts[0]
    cases = [[part.row(t)[0] for t in sorted(set(lexical.terms(q)))] for q in QUESTIONS]
    rng = np.random.default_rng(0)
    cases.append([np.sort(rng.choice(1_000_000, size, replace=False)).astype(np.int32) for size in (9000, 3000, 40)])
    overlapping = 0
    for rows in cases:
        positions = np.concatenate(rows).astype(np.int64)
        unique, slot = lexical.distinct(positions)
        expected_unique, expected_slot = np.unique(positions, return_inverse=True)
        assert unique.tolist() == expected_unique.tolist()
        assert slot.tolist() == expected_slot.tolist()
        overlapping += len(unique) < len(positions)
    assert overlapping >= 2, "chunks holding several of a question's terms"


def test_the_kept_candidates_answer_only_the_same_unfiltered_request(index):
    """Matched.top keeps its unfiltered answer (Assistant.ask makes it before encoding): asked again it
    gives the same; a filter or another n is still answered afresh, not from what was kept."""
    words = lexical.terms(QUESTIONS[1])
    matched = index.match(words)
    fresh = index.match(words)
    best = matched.top(8)
    assert matched.top(8) == best == fresh.top(8)
    assert matched.top(3) == fresh.top(3) == best[:3]
    allowed = np.array(sorted(i for i, _ in best[4:]), dtype=np.int64)
    assert matched.top(8, allowed) == fresh.top(8, allowed) == best[4:]


@pytest.mark.parametrize("ids", [np.arange(7, 207), np.r_[1:50, 60:61, 75:200], np.arange(1000, 1600, 3)])
def test_chunk_ids_at_positions_come_from_runs_of_consecutive_ids_as_from_the_ids_array(ids, tmp_path, monkeypatch):
    """A match's chunk ids are made from the runs of consecutive ids (one for a segment written at once;
    one between deleted documents after a merge), or read from the ids array past MAX_RUNS runs: the
    same ids either way, whatever positions are asked for."""
    lexical.write(tmp_path, ids, [f"word{i % 7} other{i % 3}" for i in range(len(ids))])
    postings = lexical.Postings(tmp_path)
    positions = np.flatnonzero(np.random.default_rng(len(ids)).random(len(ids)) < 0.3)
    assert postings.ids_at(positions).tolist() == ids[positions].tolist()
    assert postings.ids_at(np.arange(len(ids))).tolist() == ids.tolist()
    monkeypatch.setattr(lexical, "MAX_RUNS", 0)
    assert postings.ids_at(positions).tolist() == ids[positions].tolist()


def test_postings_store_each_chunk_length_and_score_the_same_bits_without_them(paragraphs, tmp_path):
    """Each posting's chunk length is stored beside its tf (a slice to read, not a gather over every
    chunk's length); a part written before they were stored gathers them: the same scores and shares,
    to the bit, either way."""
    ids = np.arange(50, 50 + len(paragraphs))
    lexical.write(tmp_path, ids, paragraphs)
    stored = lexical.LexicalIndex(tmp_path)
    assert "chunk_lengths" in stored.parts[0].postings.arrays
    (tmp_path / lexical.FILES["chunk_lengths"]).unlink()
    gathered = lexical.LexicalIndex(tmp_path)
    assert "chunk_lengths" not in gathered.parts[0].postings.arrays
    for question in QUESTIONS:
        words = lexical.terms(question)
        found = [[(i.tolist(), s.tolist(), c.tolist()) for _, i, s, c in index.match(words).found]
                 for index in (stored, gathered)]
        assert found[0] == found[1] and found[0]


def test_parts_open_from_many_threads_at_once(tmp_path):
    """Readers and a merge open parts at the same time; np.load's header parsing raised SystemError
    ("AST constructor recursion depth mismatch") on CPython 3.11.7 when two threads at different
    stack depths ran it together and a garbage collection switched threads inside it (gh-106905). A
    thread making garbage cycles and a low collection threshold make such switches frequent."""
    lexical.write(tmp_path, np.arange(4), ["maritime working group", "energy", "trade", "finance"])

    class Cycle:
        def __del__(self):  # Python code run by the collector: a point where threads switch
            for _ in range(3):
                pass

    errors: list[BaseException] = []

    def open_parts(depth: int) -> None:
        if depth:
            return open_parts(depth - 1)
        try:
            for _ in range(600):
                lexical.Postings(tmp_path)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    done = threading.Event()

    def make_garbage() -> None:
        while not done.is_set():
            a, b = Cycle(), Cycle()
            a.other, b.other = b, a

    threads = [threading.Thread(target=open_parts, args=(10 * n,)) for n in range(4)]
    garbage = threading.Thread(target=make_garbage)
    thresholds, interval = gc.get_threshold(), sys.getswitchinterval()
    gc.set_threshold(10, 1, 1)
    sys.setswitchinterval(1e-6)
    try:
        for thread in [garbage, *threads]:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        done.set()
        if garbage.is_alive():
            garbage.join()
        gc.set_threshold(*thresholds)
        sys.setswitchinterval(interval)
    assert not errors, errors[:1]
