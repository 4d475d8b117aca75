"""A sharded index (issue 24): documents split over N indexes by a stable hash of their doc_id, searched
as one with BM25 statistics summed over shards first, so that it answers exactly as one index does."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import FIXTURES, REPORT, make_settings
from qa.answering.document_questions import recognise
from qa.answering.retrieval import RERANK_DEPTH, candidates, numbered_reference
from qa.cli import main
from qa.config import Settings, replica_bounds
from qa.errors import ShardCountFixed
from qa.indexing import shards as sharding
from qa.indexing.generations import current_generation
from qa.indexing.lexical import terms
from qa.indexing.store import MANIFEST, SEGMENTS, Generation
from qa.service import Assistant
from test_segments import MORE_QUESTIONS, by_content, passages_of

FILES = [REPORT, *sorted((FIXTURES / "incremental").glob("*")), *sorted((FIXTURES / "distractors").glob("*")),
         *sorted((FIXTURES / "answers").glob("*"))]
SMALL_CHUNKS = 64  # model tokens: more passages to split and merge than the default's


def build(root: Path, encoder, shards: int, files: list[Path] = FILES) -> Assistant:
    (root / "corpus").mkdir(parents=True)
    for f in files:
        shutil.copy(f, root / "corpus")
    assistant = Assistant(make_settings(root, chunk_tokens=SMALL_CHUNKS), encoder=encoder)
    assistant.reindex(shards=shards)
    return assistant


def in_tie_order(hits: list[tuple[tuple, float]]) -> list[tuple[float, tuple]]:
    """Hits as (score, passage) sorted by score then passage: chunk ids break ties, and a shard's ids
    are not the unsharded index's."""
    return sorted(((round(s, 6), key) for key, s in hits), key=lambda h: (-h[0], h[1]))


def assert_equal_indexes(got: Assistant, want: Assistant) -> tuple[int, int, float]:
    """Same answers, passages, offsets, highlights; scores within 1e-6; the same raw candidates (BM25
    with global statistics, cosine) and IDF. Returns (answers compared, passages compared, largest gap)."""
    answers = passages = 0
    gap = 0.0
    for g, w in zip(passages_of(got), passages_of(want), strict=True):
        assert (g["answer"], g["abstained"]) == (w["answer"], w["abstained"]), g["question"]
        key = ("doc_id", "start", "end", "text", "section", "page", "highlights")
        assert [[p[k] for k in key] for p in g["passages"]] == [[p[k] for k in key] for p in w["passages"]]
        assert g["confidence"] == pytest.approx(w["confidence"], abs=1e-6)
        for p, q in zip(g["passages"], w["passages"], strict=True):
            gap = max(gap, abs(p["score"] - q["score"]))
        answers, passages = answers + 1, passages + len(g["passages"])
    assert gap <= 1e-6
    a, b = got.generation(), want.generation()
    assert (a.chunk_count, a.document_count) == (b.chunk_count, b.document_count)
    assert [(d.doc_id, d.title, d.chunks) for d in a.documents()] == [(d.doc_id, d.title, d.chunks)
                                                                       for d in b.documents()]
    for question in MORE_QUESTIONS:
        query = got.encoder.encode_query(question)
        for search, n, asked in ((Generation.lexical, 80, question), (Generation.dense, 40, query)):
            mine, theirs = (in_tie_order(by_content(g, search(g, asked, n))) for g in (a, b))
            assert len(mine) == len(theirs)
            cut = min((s for s, _ in theirs), default=0.0)  # the last score's ties may be cut differently
            assert [h for h in mine if h[0] > cut] == [h for h in theirs if h[0] > cut]
        words = ["japan", "beef", "lithographi", "zebra"]
        assert a.words.idf(words) == pytest.approx(b.words.idf(words), abs=1e-9)
        assert a.words.absent(words) == b.words.absent(words)
    return answers, passages, gap


def owners(assistant: Assistant) -> dict[str, int]:
    """doc_id -> the shard whose published generation holds it, read from the shards' own files."""
    out = {}
    for n, folder in enumerate(sharding.folders(assistant.settings.index_dir)):
        manifest = json.loads((current_generation(folder) / MANIFEST).read_text())
        for entry in manifest["segments"]:
            info = json.loads((folder / SEGMENTS / entry["name"] / "segment.json").read_text())
            for doc_id in set(info["documents"]) - set(entry["deleted"]):
                assert doc_id not in out, f"{doc_id} is live in two shards"
                out[doc_id] = n
    return out


@pytest.fixture(scope="module")
def unsharded(tmp_path_factory, encoder) -> Assistant:
    return build(tmp_path_factory.mktemp("one"), encoder, 1)


@pytest.mark.slow
@pytest.mark.parametrize("count", [2, 3])
def test_a_sharded_index_answers_as_the_unsharded_one(tmp_path, encoder, unsharded, count, monkeypatch):
    sharded = build(tmp_path, encoder, count)
    folders = sharding.folders(sharded.settings.index_dir)
    assert [f.name for f in folders] == [f"shard-{i}-of-{count}" for i in range(count)]
    held = owners(sharded)
    assert held == {d: sharding.shard_of(d, count) for d in unsharded.generation().manifest["documents"]}
    assert len(set(held.values())) == count  # every shard holds documents: the merge is really exercised
    answers, passages, gap = assert_equal_indexes(sharded, unsharded)
    print(f"{count} shards: {answers} answers and {passages} passages equal to the unsharded index's, "
          f"largest score gap {gap:.2e}")
    assert sharded.generation().manifest["documents"] == unsharded.generation().manifest["documents"]
    some = unsharded.generation().documents()[0].doc_id
    assert sharded.document(some).text == unsharded.document(some).text
    # Every passage the answer reads came with the shards' candidates (retrieval.skyband): none is
    # fetched afterwards, so on Ray Serve an ordinary question is one round to the shards.
    gen, fetched = sharded.generation(), []
    monkeypatch.setattr(gen, "chunks", lambda ids: fetched.append(ids) or Generation.chunks(gen, ids))
    ordinary = [q for q in MORE_QUESTIONS if numbered_reference(q) is None and recognise(q) is None]
    for question in ordinary:
        assert sharded.ask(question, k=8).passages
    assert len(ordinary) >= 5 and fetched == []


def test_writes_go_to_the_shard_that_owns_the_document(tmp_path, encoder):
    files = sorted((FIXTURES / "incremental").glob("*.txt")) + sorted((FIXTURES / "distractors").glob("*"))
    sharded = build(tmp_path / "sharded", encoder, 2, files)
    memo = (FIXTURES / "ingest" / "trade-memo.md").read_bytes()
    doc_id, chunks, changed = sharded.add_document("trade-memo.md", memo)
    assert changed and chunks > 0
    assert owners(sharded)[doc_id] == sharding.shard_of(doc_id, 2)
    sharded.add_document("trade-memo.md", memo.replace(b"memo", b"memorandum"), replace=True)
    assert owners(sharded)[doc_id] == sharding.shard_of(doc_id, 2)
    victim = "basketball.txt"
    sharded.delete_document(victim)
    assert victim not in owners(sharded)
    assert victim not in sharded.generation().manifest["documents"]
    entry = next(e for e in sharded.trash() if e.doc_id == victim)
    sharded.restore(entry.id)
    assert owners(sharded)[victim] == sharding.shard_of(victim, 2)

    # The same corpus, indexed once without shards, answers the same questions the same way.
    unsharded = Assistant(Settings(corpus_dir=tmp_path / "sharded" / "corpus", index_dir=tmp_path / "one",
                                   chunk_tokens=SMALL_CHUNKS), encoder=encoder)
    unsharded.reindex()
    assert_equal_indexes(sharded, unsharded)


def test_the_shard_count_is_fixed_until_a_rebuild_changes_it(tmp_path, encoder):
    files = sorted((FIXTURES / "distractors").glob("*")) + sorted((FIXTURES / "answers").glob("*"))
    sharded = build(tmp_path, encoder, 2, files)
    before = sorted(p.name for p in sharded.settings.index_dir.iterdir())
    answer = sharded.ask("Where do the museum's stored objects go?").to_dict()

    with pytest.raises(ShardCountFixed, match=r"has 2 shards; `qa index --rebuild --shards 3`"):
        sharded.reindex(shards=3)
    result = CliRunner().invoke(main, ["index", "--corpus", str(tmp_path / "corpus"), "--index",
                                       str(sharded.settings.index_dir), "--shards", "3"])
    assert result.exit_code != 0 and "has 2 shards" in result.output and "nothing was changed" in result.output
    assert sorted(p.name for p in sharded.settings.index_dir.iterdir()) == before  # nothing changed

    summary = sharded.reindex(rebuild=True, shards=3)
    assert summary.rebuilt and "3 shards asked for" in summary.reason
    assert [f.name for f in sharding.folders(sharded.settings.index_dir)] == [f"shard-{i}-of-3" for i in range(3)]
    assert not (sharded.settings.index_dir / "shard-0-of-2").exists()  # the old shards are gone
    got = sharded.ask("Where do the museum's stored objects go?").to_dict()
    assert [p["text"] for p in got["passages"]] == [p["text"] for p in answer["passages"]]
    assert got["answer"] == answer["answer"]

    sharded.reindex(rebuild=True, shards=1)  # back to one index in the folder itself
    assert sharding.folders(sharded.settings.index_dir) == [sharded.settings.index_dir]
    assert not list(sharded.settings.index_dir.glob("shard-*"))
    assert sharded.ask("Where do the museum's stored objects go?").to_dict()["answer"] == answer["answer"]


def test_the_shard_of_a_document_is_a_stable_hash_of_its_doc_id():
    # sha256, not Python's hash(): the same in every process and on every machine
    assert [sharding.shard_of(d, 3) for d in ("article-ii-mandate.txt", "uploads/memo.pdf", "a")] == \
        [int.from_bytes(__import__("hashlib").sha256(d.encode()).digest()[:8], "big") % 3
         for d in ("article-ii-mandate.txt", "uploads/memo.pdf", "a")]
    assert {sharding.shard_of(f"doc-{i}", 4) for i in range(100)} == {0, 1, 2, 3}


def test_qa_ask_reads_a_sharded_index_in_one_process(tmp_path, encoder):
    files = sorted((FIXTURES / "answers").glob("*"))
    sharded = build(tmp_path, encoder, 2, files)
    result = CliRunner().invoke(main, ["ask", "--corpus", str(tmp_path / "corpus"), "--index",
                                       str(sharded.settings.index_dir), "--json", MORE_QUESTIONS[0]],
                                env={"QA_CHUNK_TOKENS": str(SMALL_CHUNKS)})
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    want = sharded.ask(MORE_QUESTIONS[0]).to_dict()
    assert [p["text"] for p in body["passages"]] == [p["text"] for p in want["passages"]]


@pytest.mark.parametrize(("given", "said"), [("0", "must be 1 to 256"), ("3-1", "MIN at most MAX"),
                                             ("two", "not a replica count"), ("1-", "not a replica count"),
                                             ("1-999", "must be 1 to 256")])
def test_qa_serve_rejects_a_bad_replica_count_and_changes_nothing(tmp_path, given, said):
    (tmp_path / "corpus").mkdir()
    shutil.copy(REPORT, tmp_path / "corpus")
    result = CliRunner().invoke(main, ["serve", "--corpus", str(tmp_path / "corpus"), "--index",
                                       str(tmp_path / "index"), "--ray", "local", "--replicas", given])
    assert result.exit_code == 2 and said in result.output and "--replicas" in result.output, result.output
    assert not (tmp_path / "index").exists()  # nothing was built


def test_replicas_min_max_become_serve_autoscaling_bounds_and_r_a_fixed_count():
    pytest.importorskip("ray.serve")
    from qa.serving.ray_serve import Shard, replica_options

    assert replica_bounds("2") == (2, 2) and replica_options(replica_bounds("2")) == {"num_replicas": 2}
    bounds = replica_options(replica_bounds(" 1-4 "))
    assert bounds == {"autoscaling_config": {"min_replicas": 1, "max_replicas": 4, "initial_replicas": 1}}
    assert Shard.options(name="shard-0", **bounds)  # Serve accepts them (it validates the config here)


@pytest.mark.parametrize("alone", [True, False], ids=["the only shard asked", "one of several"])
def test_what_a_shard_sends_gives_the_one_process_answers_to_the_bit(unsharded, monkeypatch, alone):
    """A shard's replica sends its candidates and the passages that could reach the answer, each with its
    sentences' cosines with the question instead of their vectors and its sentence data as stored text
    (retrieval.candidates); pickled as Ray sends it, the app answers from it exactly as one process does.
    The only shard asked sends the pool's passages alone, at most RERANK_DEPTH."""
    want = passages_of(unsharded)
    gen = unsharded.generation()
    sent: list[tuple[int, int]] = []

    def gather(query, question, n, allowed, weights, depth):
        matched = gen.words.match(terms(question), weights)
        found = candidates(gen, matched, query, n, allowed, depth, metadata=True, alone=alone)
        assert all(p.sentence_vectors is None and p.cosines is not None for p in found.passages.values())
        wire = pickle.dumps(found, protocol=5)
        sent.append((len(found.passages), len(wire)))
        return pickle.loads(wire)

    monkeypatch.setattr(gen, "gather", gather, raising=False)
    assert passages_of(unsharded) == want
    assert len(sent) >= len(MORE_QUESTIONS) and all(n > 0 for n, _ in sent)
    if alone:
        assert max(n for n, _ in sent) <= RERANK_DEPTH
    # Cosines and stored text: about 2 KB a passage, where the sentence vectors alone were 384 x 4 bytes a sentence.
    assert sum(size for _, size in sent) / sum(n for n, _ in sent) < 4000, sent
