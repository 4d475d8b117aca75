"""An index made of segments (issue 21): updates add segments, deletions mark them, merges combine
them, and the answers equal those of one freshly built segment of the same documents."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from conftest import FIXTURES, REPORT, make_settings
from qa.indexing.generations import current_generation, segment_sizes
from qa.indexing.store import SEGMENTS, Generation
from qa.service import Assistant
from test_incremental import QUESTIONS

DOCS = FIXTURES / "incremental"
DISTRACTORS = sorted((FIXTURES / "distractors").glob("*"))[:3]
MORE_QUESTIONS = QUESTIONS + [
    "What did the joint statement say about port cranes?",
    "Which shipyards build the new frigates?",
    "Who wrote the report?",
    "Who are the authors of The Article II Mandate?",  # a document named by its title (Generation.named_by)
]


def passages_of(assistant: Assistant) -> list[dict]:
    out = []
    for question in MORE_QUESTIONS:
        body = assistant.ask(question, k=8).to_dict()
        body.pop("took_ms")
        out.append(body)
    return out


def by_content(gen: Generation, hits: list[tuple[int, float]]) -> list[tuple[tuple, float]]:
    """Hits keyed by (doc_id, ordinal): chunk ids differ between two indexes of the same documents."""
    stored = gen.chunks([i for i, _ in hits])
    return [((stored[i].chunk.doc_id, stored[i].chunk.ordinal), s) for i, s in hits]


def assert_equal_indexes(got: Assistant, want: Assistant) -> float:
    """Same passages, offsets, highlights and answers; scores within 1e-6. Returns the largest score gap."""
    gap = 0.0
    for g, w in zip(passages_of(got), passages_of(want), strict=True):
        assert (g["answer"], g["abstained"]) == (w["answer"], w["abstained"]), g["question"]
        key = ("doc_id", "start", "end", "text", "section", "page", "highlights")
        assert [[p[k] for k in key] for p in g["passages"]] == [[p[k] for k in key] for p in w["passages"]]
        assert g["confidence"] == pytest.approx(w["confidence"], abs=1e-6)
        for p, q in zip(g["passages"], w["passages"], strict=True):
            gap = max(gap, abs(p["score"] - q["score"]))
    assert gap <= 1e-6
    a, b = got.generation(), want.generation()
    assert (a.chunk_count, a.document_count) == (b.chunk_count, b.document_count)
    assert [(d.doc_id, d.title, d.chunks) for d in a.documents()] == [(d.doc_id, d.title, d.chunks)
                                                                       for d in b.documents()]
    for question in MORE_QUESTIONS:  # the raw candidate lists, BM25 with global statistics included
        lexical = by_content(a, a.lexical(question, 80)), by_content(b, b.lexical(question, 80))
        assert [k for k, _ in lexical[0]] == [k for k, _ in lexical[1]]
        assert [s for _, s in lexical[0]] == pytest.approx([s for _, s in lexical[1]], abs=1e-6)
        query = got.encoder.encode_query(question)
        dense = by_content(a, a.dense(query, 40)), by_content(b, b.dense(query, 40))
        assert [k for k, _ in dense[0]] == [k for k, _ in dense[1]]
        assert [s for _, s in dense[0]] == pytest.approx([s for _, s in dense[1]], abs=1e-6)
        words = ["japan", "beef", "lithographi", "zebra"]
        assert a.words.idf(words) == pytest.approx(b.words.idf(words), abs=1e-9)
        assert a.words.absent(words) == b.words.absent(words)
    return gap


def fresh_build(root: Path, corpus: Path, encoder) -> Assistant:
    shutil.copytree(corpus, root / "corpus")
    full = Assistant(make_settings(root), encoder=encoder)
    full.reindex(merge=False)
    assert len(full.generation().segments) == 1
    return full


def test_a_segmented_index_answers_as_a_fresh_one_segment_build(tmp_path, encoder):
    settings = make_settings(tmp_path / "seg")
    corpus = settings.corpus_dir
    corpus.mkdir(parents=True)
    assistant = Assistant(settings, encoder=encoder)
    shutil.copy(REPORT, corpus)
    shutil.copy(DOCS / "joint-statement.txt", corpus)
    assistant.reindex(merge=False)  # one segment of two documents
    files = [DOCS / "trade-fact-sheet.md", DOCS / "shipbuilding-notes.html", DOCS / "export-controls.pdf",
             *DISTRACTORS]
    for f in files:  # then one document at a time: one segment each
        shutil.copy(f, corpus)
        summary = assistant.reindex(merge=False)
        assert summary.added == [f.name]
    statement = corpus / "joint-statement.txt"  # replaced: a new segment, the old version marked deleted
    statement.write_text(statement.read_text().replace("port cranes", "harbour cranes and port cranes") +
                         "\nThe ministers will meet again in Kobe next spring.\n")
    assert assistant.reindex(merge=False).changed == ["joint-statement.txt"]
    (corpus / "trade-fact-sheet.md").unlink()  # deleted: marked only, no new segment
    (corpus / DISTRACTORS[0].name).unlink()
    summary = assistant.reindex(merge=False)
    assert sorted(summary.removed) == sorted(["trade-fact-sheet.md", DISTRACTORS[0].name])

    manifest = json.loads((current_generation(settings.index_dir) / "manifest.json").read_text())
    assert "documents" not in manifest  # a small manifest: segments and deletions
    # 1 + 6 + the replacement, less the fact sheet's and the distractor's, which had nothing left
    assert len(manifest["segments"]) == len(files)
    assert manifest["segments"][0]["deleted"] == ["joint-statement.txt"]

    full = fresh_build(tmp_path / "full", corpus, encoder)
    gap = assert_equal_indexes(assistant, full)

    merged = assistant.merge(wait=True)  # the default policy: too few segments to merge
    assert not merged.merges
    from qa.indexing import merging
    summary = merging.merge_index(settings, factor=2)  # merge everything, tier by tier
    assert summary.merges and len(segment_sizes(settings.index_dir)) < len(files)
    gap_after = assert_equal_indexes(assistant, full)
    sizes = segment_sizes(settings.index_dir)
    assert sum(size[1] for size in sizes) == full.generation().chunk_count
    listed = {size[0] for size in sizes}
    kept = {e["name"] for g in settings.index_dir.glob("gen-*")
            for e in json.loads((g / "manifest.json").read_text())["segments"]}
    assert {p.name for p in (settings.index_dir / SEGMENTS).iterdir()} == kept >= listed
    print(f"\nequality: largest score gap {gap:.2e} before the merge, {gap_after:.2e} after; "
          f"{len(files)} -> {len(sizes)} segments")


@pytest.mark.parametrize("exact_max_chunks", [20_000, 5])  # exact indexes, HNSW graphs
def test_merging_drops_deleted_passages_and_keeps_chunk_ids(tmp_path, encoder, exact_max_chunks):
    from qa.indexing import vector_index

    settings = make_settings(tmp_path, exact_max_chunks=exact_max_chunks)
    corpus = settings.corpus_dir
    corpus.mkdir()
    assistant = Assistant(settings, encoder=encoder)
    for f in (DOCS / "joint-statement.txt", DOCS / "trade-fact-sheet.md", DOCS / "shipbuilding-notes.html"):
        shutil.copy(f, corpus)
        assistant.reindex(merge=False)
    before = assistant.generation()
    ids = {d: before.chunk_ids_of([d]).tolist() for d in before.manifest["documents"]}
    (corpus / "trade-fact-sheet.md").unlink()
    assistant.reindex(merge=False)
    from qa.indexing import merging
    merging.merge_index(settings, factor=2)
    after = assistant.generation()
    assert len(after.segments) == 1 and len(after.segments[0].ids) == after.chunk_count
    assert {d: after.chunk_ids_of([d]).tolist() for d in after.manifest["documents"]} == {
        d: v for d, v in ids.items() if d != "trade-fact-sheet.md"}
    np.testing.assert_array_equal(after.chunk_vectors(ids["joint-statement.txt"]),
                                  before.chunk_vectors(ids["joint-statement.txt"]))
    assert vector_index.is_exact(after.segments[0].vectors) == (exact_max_chunks > after.chunk_count)
    for cid in ids["joint-statement.txt"] + ids["shipbuilding-notes.html"]:  # each finds itself first
        assert after.dense(after.chunk_vectors([cid])[0], 1)[0][0] == cid
    found = {i for i, _ in after.dense(encoder.encode_query("tariff on American beef"), 80)}
    assert found == set(ids["joint-statement.txt"] + ids["shipbuilding-notes.html"])  # no deleted passage


# -- crash safety -------------------------------------------------------------------------------
def small_document(n: int) -> str:
    return (f"Note {n} from the maritime working group\n\nIn meeting {n} the allies reviewed port security "
            f"in harbour {n} and agreed to share inspection records for {n * 7} container cranes.\n")


def leftovers(index_dir: Path) -> list[str]:
    """What a killed writer left: staging folders, generations and segments the published one does not need."""
    listed = {e["name"] for g in index_dir.glob("gen-*") if (g / "manifest.json").is_file()
              for e in json.loads((g / "manifest.json").read_text()).get("segments", [])}
    out = [p.name for p in index_dir.glob(".build-*")]
    out += [p.name for p in (index_dir / SEGMENTS).glob("seg-*") if p.name not in listed]
    published = current_generation(index_dir)
    older = sorted(g.name for g in index_dir.glob("gen-*") if g.name < published.name)
    out += [g.name for g in index_dir.glob("gen-*") if g.name not in (published.name, *older[-1:])]
    return sorted(out)


def killed_qa_index(settings, step: str) -> None:
    """`qa index` in a real child process that kills itself with SIGKILL at `step` (generations.checkpoint)."""
    import os
    import signal
    import subprocess
    import sys

    env = {**os.environ, "QA_TEST_KILL_AT": step}
    proc = subprocess.run([sys.executable, "-m", "qa.cli", "index", "--corpus", str(settings.corpus_dir),
                           "--index", str(settings.index_dir)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, (step, proc.returncode, proc.stdout + proc.stderr)


def assert_whole(settings, encoder, documents: set[str]) -> None:
    """A new reader opens the published generation, lists exactly `documents` and answers from them."""
    reader = Assistant(settings, encoder=encoder)
    assert {d.doc_id for d in reader.documents()} == documents
    answer = reader.ask("Where does the maritime working group meet?", k=3)
    assert answer.passages and all(p.doc_id in documents for p in answer.passages)


def assert_clean(index_dir: Path) -> None:
    assert leftovers(index_dir) == []
    assert not (index_dir / ".progress.json").exists()


@pytest.fixture
def writer(tmp_path, encoder) -> Assistant:
    settings = make_settings(tmp_path)
    settings.corpus_dir.mkdir()
    shutil.copy(REPORT, settings.corpus_dir)
    shutil.copy(DOCS / "joint-statement.txt", settings.corpus_dir)
    assistant = Assistant(settings, encoder=encoder)
    assistant.reindex(merge=False)
    return assistant


STEPS = ["segment-staged", "segment-placed", "generation-staged", "generation-placed", "published"]


def test_kill_9_during_an_add_leaves_the_index_whole_and_the_next_write_cleans_up(writer, encoder):
    settings, found = writer.settings, {}
    for n, step in enumerate(STEPS):
        before = {d.doc_id for d in writer.documents()}
        (settings.corpus_dir / f"note-{n}.txt").write_text(small_document(n))
        killed_qa_index(settings, f"write:{step}")
        found[step] = leftovers(settings.index_dir)
        # published: the pointer moved before the kill, so the new document is in; before it, it is not
        assert_whole(settings, encoder, before | {f"note-{n}.txt"} if step == "published" else before)
        summary = writer.reindex(merge=False)  # the next write finishes the job and cleans up
        assert summary.added == ([] if step == "published" else [f"note-{n}.txt"])
        assert_clean(settings.index_dir)
        assert_whole(settings, encoder, before | {f"note-{n}.txt"})
    print("\nleft by kill -9 during an add:", found)
    assert found["segment-staged"] and found["segment-placed"] and found["generation-staged"]


def test_kill_9_during_a_delete_leaves_the_index_whole(writer, encoder):
    settings, found = writer.settings, {}
    for n in range(3):
        (settings.corpus_dir / f"note-{n}.txt").write_text(small_document(n))
    writer.reindex(merge=False)
    for n, step in enumerate(["generation-staged", "generation-placed", "published"]):
        before = {d.doc_id for d in writer.documents()}
        (settings.corpus_dir / f"note-{n}.txt").unlink()
        killed_qa_index(settings, f"write:{step}")
        found[step] = leftovers(settings.index_dir)
        assert_whole(settings, encoder, before - {f"note-{n}.txt"} if step == "published" else before)
        assert writer.reindex(merge=False).removed == ([] if step == "published" else [f"note-{n}.txt"])
        assert_clean(settings.index_dir)
        assert_whole(settings, encoder, before - {f"note-{n}.txt"})
    print("\nleft by kill -9 during a delete:", found)


def test_kill_9_during_a_merge_leaves_the_index_whole(writer, encoder):
    from qa.indexing.merging import MERGE_FACTOR

    settings, found = writer.settings, {}
    for n in range(MERGE_FACTOR - 1):  # with the first segment: a full tier after the next add
        (settings.corpus_dir / f"note-{n}.txt").write_text(small_document(n))
        writer.reindex(merge=False)
    for n, step in enumerate(["copying", "segment-staged", "segment-placed", "generation-placed"]):
        (settings.corpus_dir / f"extra-{n}.txt").write_text(small_document(100 + n))
        expected = {d.doc_id for d in writer.documents()} | {f"extra-{n}.txt"}
        segments = len(segment_sizes(settings.index_dir))
        killed_qa_index(settings, f"merge:{step}")  # the add is published, then its merge is killed
        found[step] = leftovers(settings.index_dir)
        assert len(segment_sizes(settings.index_dir)) == segments + 1  # the add's generation, unmerged
        assert_whole(settings, encoder, expected)
        assert writer.reindex(merge=False).added == []  # nothing to index; the leftovers go
        assert_clean(settings.index_dir)
    merged = writer.merge()  # the next merge succeeds
    assert merged.merges and len(segment_sizes(settings.index_dir)) < MERGE_FACTOR
    assert_clean(settings.index_dir)
    assert_whole(settings, encoder, expected)
    print("\nleft by kill -9 during a merge:", found)


def test_a_reader_holding_an_old_generation_answers_while_a_merge_publishes_and_files_go(writer, encoder):
    import threading

    from qa.answering.retrieval import retrieve
    from qa.indexing import merging

    settings = writer.settings
    for n in range(3):
        (settings.corpus_dir / f"note-{n}.txt").write_text(small_document(n))
        writer.reindex(merge=False)
    reader = Assistant(settings, encoder=encoder)
    held = reader.generation()  # a request in flight holds this generation
    old_segments = [s.path for s in held.segments]
    question = "Where does the maritime working group meet?"
    query = encoder.encode_query(question)

    def answer_from_held() -> list:
        hits = retrieve(held, query, question, 5)
        return [(h.stored.id, round(h.score, 9), held.document(h.stored.chunk.doc_id).text[:40]) for h in hits]

    baseline = answer_from_held()
    errors: list[BaseException] = []
    done = threading.Event()

    def keep_asking() -> None:
        while not done.is_set():
            try:
                reader.ask(question, k=3)  # follows the pointer
                assert answer_from_held() == baseline
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                return

    asking = threading.Thread(target=keep_asking)
    asking.start()
    try:
        assert merging.merge_index(settings, factor=2).merges  # publishes the merged generation
        (settings.corpus_dir / "note-9.txt").write_text(small_document(9))
        writer.reindex(merge=False)  # one more publish: the pre-merge generation and its segments go
    finally:
        done.set()
        asking.join(60)
    assert not errors, errors
    assert not any(p.exists() for p in old_segments)  # the merged-away segments' files are gone
    assert answer_from_held() == baseline  # and the held generation still answers from them
    assert reader.ask(question, k=3).passages


# -- upgrading format 4 -------------------------------------------------------------------------
def format_4_copy(source: Path, target: Path) -> None:
    """The index at `source` (one segment) laid out as format 4 wrote it: one generation folder with
    the chunk store and FAISS file themselves (same schema), a manifest listing every document."""
    from qa.indexing.store import STORE, VECTORS

    gen = Generation(current_generation(source))
    (segment,) = gen.segments
    folder = target / "gen-1000"
    folder.mkdir(parents=True)
    shutil.copy(segment.path / STORE, folder / STORE)
    db = sqlite3.connect(folder / STORE)  # format 4 stored no sentence data (format 6 does)
    db.execute("ALTER TABLE chunks DROP COLUMN sentence_data")
    db.commit()
    db.close()
    shutil.copy(segment.path / VECTORS, folder / VECTORS)
    manifest = {k: v for k, v in gen.manifest.items() if k not in ("segments", "next_chunk_id", "document_count")}
    (folder / "manifest.json").write_text(json.dumps({**manifest, "format": 4, "chunks": gen.chunk_count}))
    (target / "CURRENT").write_text("gen-1000\n")


class CountingEncoder:
    """The real encoder, counting the passages it is asked to encode (queries aside)."""

    def __init__(self, encoder) -> None:
        self._encoder, self.passages = encoder, 0

    def __getattr__(self, name):
        return getattr(self._encoder, name)

    def encode_with_spans(self, texts, spans):
        self.passages += len(texts)
        return self._encoder.encode_with_spans(texts, spans)


def test_a_format_4_index_is_upgraded_into_one_segment_without_encoding(tmp_path, encoder):
    original = Assistant(make_settings(tmp_path / "v5"), encoder=encoder)
    original.settings.corpus_dir.mkdir(parents=True)
    for f in (REPORT, DOCS / "joint-statement.txt", DOCS / "trade-fact-sheet.md"):
        shutil.copy(f, original.settings.corpus_dir)
    original.reindex(merge=False)
    settings = make_settings(tmp_path / "v4")
    shutil.copytree(original.settings.corpus_dir, settings.corpus_dir)
    format_4_copy(original.settings.index_dir, settings.index_dir)

    counting = CountingEncoder(encoder)
    upgraded = Assistant(settings, encoder=counting)
    summary = upgraded.reindex()
    assert counting.passages == 0  # the stored vectors were reused
    assert "upgraded: the format-4 index became one segment" in summary.describe()
    assert summary.kept == sorted(p.name for p in settings.corpus_dir.iterdir()) and not summary.added
    assert len(upgraded.generation().segments) == 1
    assert assert_equal_indexes(upgraded, original) == 0.0

    # and it updates like any segmented index
    shutil.copy(DOCS / "shipbuilding-notes.html", settings.corpus_dir)
    assert upgraded.reindex().added == ["shipbuilding-notes.html"]
    assert counting.passages > 0 and len(upgraded.generation().segments) == 2


# -- merge policy -------------------------------------------------------------------------------
def test_the_tiered_policy_merges_segments_of_similar_size_and_purges_deletions():
    from qa.indexing.merging import MERGE_FACTOR, choose

    small = [(10, 10)] * (MERGE_FACTOR - 1)
    assert choose(small) == []  # a tier not yet full
    assert choose([(50_000, 50_000)] + small + [(12, 12)]) == list(range(1, MERGE_FACTOR + 1))  # the big one waits
    tier_two = [(20_000, 20_000)] * MERGE_FACTOR  # a tier spans a factor of MERGE_FACTOR from TIER_FLOOR
    assert choose([(10, 10)] + tier_two) == list(range(1, MERGE_FACTOR + 1))
    assert choose([(5_000, 5_000), (40, 100)]) == [1]  # more than half deleted: rewritten without them


def test_writes_merge_in_the_background_and_a_write_during_a_merge_waits_for_it(writer):
    from qa.indexing.merging import MERGE_FACTOR

    settings = writer.settings
    for n in range(MERGE_FACTOR - 2):
        (settings.corpus_dir / f"note-{n}.txt").write_text(small_document(n))
        writer.reindex(merge=False)
    assert len(segment_sizes(settings.index_dir)) == MERGE_FACTOR - 1
    doc_id, _, _ = writer.add_document("upload-1.txt", small_document(50).encode())  # tier full: merge starts
    # the write answered with its document live; the merge runs behind it, and a write meanwhile waits
    assert doc_id in {d.doc_id for d in writer.documents()}
    writer.add_document("upload-2.txt", small_document(51).encode())
    writer._merger.join(120)
    sizes = segment_sizes(settings.index_dir)
    assert len(sizes) < MERGE_FACTOR and sum(s[1] for s in sizes) == writer.generation().chunk_count
    assert {"uploads/upload-1.txt", "uploads/upload-2.txt"} <= {d.doc_id for d in writer.documents()}
    assert not writer.segments.merging and "segment" in writer.segments.describe()
    from fastapi.testclient import TestClient

    from qa.serving.api import create_app

    with TestClient(create_app(assistant=writer)) as client:
        page = client.get("/library").text
    assert f'<p class="segments">Index: {writer.segments.describe()}</p>' in page


# -- the server's background merge: a child process at the lowest CPU priority ------------------
def fill_a_tier_but_one(writer: Assistant) -> None:
    from qa.indexing.merging import MERGE_FACTOR

    for n in range(MERGE_FACTOR - 2):  # with the first segment: one add short of a full tier
        (writer.settings.corpus_dir / f"note-{n}.txt").write_text(small_document(n))
        writer.reindex(merge=False)
    assert len(segment_sizes(writer.settings.index_dir)) == MERGE_FACTOR - 1


def test_kill_9_of_the_background_merge_child_is_logged_and_leaves_the_index_whole(writer, encoder, monkeypatch,
                                                                                   caplog):
    from qa.indexing.merging import MERGE_FACTOR

    settings = writer.settings
    fill_a_tier_but_one(writer)
    # the merge child (it inherits the environment) kills itself with SIGKILL once its segment is in place
    monkeypatch.setenv("QA_TEST_KILL_AT", "merge:segment-placed")
    with caplog.at_level("INFO", logger="qa.service"):
        doc_id, _, _ = writer.add_document("upload-1.txt", small_document(50).encode())  # tier full: merge starts
        writer._merger.join(120)
    assert "merging the index's segments failed" in caplog.text and "killed by signal 9" in caplog.text
    expected = {d.doc_id for d in writer.documents()}
    assert doc_id in expected and len(segment_sizes(settings.index_dir)) == MERGE_FACTOR  # published, unmerged
    assert leftovers(settings.index_dir)  # the dead child's merged segment, listed by no generation
    assert_whole(settings, encoder, expected)
    assert writer.last_merge is None

    monkeypatch.delenv("QA_TEST_KILL_AT")
    writer.add_document("upload-2.txt", small_document(51).encode())  # cleans up, and its merge succeeds
    writer._merger.join(120)
    assert len(segment_sizes(settings.index_dir)) < MERGE_FACTOR
    assert writer.last_merge.merges and writer.last_merge.peak_memory_mb > 0  # as the child measured it
    assert_clean(settings.index_dir)
    assert_whole(settings, encoder, expected | {"uploads/upload-2.txt"})


def cached_share(path: Path) -> float:
    """The share of path's pages in the page cache."""
    from qa.indexing.pagecache import resident

    return float(resident(path).mean())


def test_the_merge_child_leaves_its_new_store_out_of_the_page_cache_and_its_vectors_in(writer, encoder):
    """A merge beside a server does not fill the page cache with what the server will not read: the
    merged store (a question reads a few of its passages) is dropped once synced, the vectors and
    postings (searched whole) stay cached, and of the stores it copied only the pages cached before
    it stay; the child reports its own peak memory, not the server's."""
    import os

    from qa.indexing.merge_child import merge_in_child
    from qa.indexing.pagecache import resident
    from qa.indexing.segments import merge_segments
    from qa.indexing.store import STORE, VECTORS

    settings = writer.settings
    if not Path("/proc/self/status").exists():
        pytest.skip("no /proc")
    fill_a_tier_but_one(writer)
    expected = {d.doc_id for d in writer.documents()}
    gen = Generation(current_generation(settings.index_dir))
    source = gen.segments[0].path / STORE  # as a server left it: some pages cached (its questions'), some not
    fd = os.open(source, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.pread(fd, 4096, 0)
    os.close(fd)
    before = resident(source)
    # the merge itself, looked at before anything opens what it wrote (opening a store reads its first pages)
    merged = merge_segments(settings.index_dir, gen.segments, gen.deleted, settings.exact_max_chunks)
    gen.close()
    if cached_share(merged / VECTORS) < 0.5:
        pytest.skip("written files are not kept in this file system's page cache (tmpfs?)")
    assert cached_share(merged / STORE) == 0.0
    assert cached_share(merged / "postings-positions.npy") == 1.0
    assert before.any() and not before.all()  # the merge read all of it: what it brought in went again
    assert (resident(source) == before).all()
    summary = merge_in_child(settings, everything=True)  # the server's way (it removes the folder above)
    assert summary.merges and len(segment_sizes(settings.index_dir)) == 1
    own = int(next(line.split()[1] for line in Path("/proc/self/status").read_text().splitlines()
                   if line.startswith("VmRSS:")))
    assert summary.peak_memory_mb < own / 1024  # this process holds the model; the child does not
    assert_whole(settings, encoder, expected)


def merge_lock_held(index_dir: Path) -> bool:
    """Whether a merge holds MERGE_LOCK (it takes it before waiting for the writer lock)."""
    import fcntl

    from qa.indexing.generations import MERGE_LOCK

    if not (index_dir / MERGE_LOCK).exists():
        return False
    with open(index_dir / MERGE_LOCK) as probe:
        try:
            fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(probe, fcntl.LOCK_UN)
        return False


def test_a_stopping_server_stops_its_merge_child_instead_of_waiting_for_it(writer, encoder, caplog):
    import os
    import time

    from fastapi.testclient import TestClient

    from qa.indexing.generations import writer_lock
    from qa.indexing.merging import MERGE_FACTOR
    from qa.serving.api import create_app

    settings = writer.settings
    fill_a_tier_but_one(writer)
    (settings.corpus_dir / "note-last.txt").write_text(small_document(60))
    writer.reindex(merge=False)  # a full tier, not merged yet
    published = current_generation(settings.index_dir)
    # another writer holds the index, so the merge child waits for it: a merge that does not end by itself
    with caplog.at_level("INFO", logger="qa.service"), writer_lock(settings.index_dir):
        with TestClient(create_app(assistant=writer)) as client:
            writer.merge_in_background()
            while (pid := writer.merge_pid) is None or not merge_lock_held(settings.index_dir):
                assert writer.merging, caplog.text  # the child is started, then waits in writer_lock
                time.sleep(0.01)
            assert os.getpriority(os.PRIO_PROCESS, pid) == 19  # the lowest CPU priority
            r = client.post("/ask", json={"question": "Where does the maritime working group meet?"})
            assert r.status_code == 200 and r.json()["passages"]
        # leaving the block stops the server: had it waited for the merge, it would never have returned
        assert not writer.merging and "the background merge was stopped" in caplog.text
        assert "exit status 143" in caplog.text  # SIGTERM: it left by SystemExit, removing what it had begun
    try:
        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive
    assert current_generation(settings.index_dir) == published
    assert len(segment_sizes(settings.index_dir)) == MERGE_FACTOR
    assert_clean(settings.index_dir)
    assert writer.merge().merges  # nothing left locked: the next merge runs
