"""`qa index` updates: only what changed is embedded, and the result equals a full rebuild."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from conftest import FIXTURES, REPORT, make_settings
from qa.errors import BuildInProgress
from qa.indexing import segments as qa_segments
from qa.indexing.generations import LAST_BUILD, current_generation, read_manifest, writer_lock
from qa.indexing.store import SEGMENTS, STORE, Generation
from qa.service import Assistant

DOCS = FIXTURES / "incremental"
QUESTIONS = [
    "Which minerals do the allies want resilient supply chains for?",
    "What happens to the tariff on American beef?",
    "Where does the maritime working group meet?",
    "Who reviews licences for lithography tools?",
    "What does Article II of the treaty ask of the two countries?",
    "How should export restrictions be handled?",
]


class CountingEncoder:
    """The real encoder, recording every text it is asked to embed."""

    def __init__(self, encoder) -> None:
        self._encoder = encoder
        self.texts: list[str] = []

    def __getattr__(self, name):
        return getattr(self._encoder, name)

    def encode(self, texts, show_progress=False):
        self.texts += texts
        return self._encoder.encode(texts, show_progress)

    def encode_with_spans(self, texts, spans):
        self.texts += texts
        return self._encoder.encode_with_spans(texts, spans)

    def encode_query(self, text):
        return self._encoder.encode_query(text)


def qa_cli(*args: str, check_rc: int | None = 0, **kw) -> subprocess.CompletedProcess:
    """Run the `qa` command in a child process, as a user would."""
    proc = subprocess.run([sys.executable, *kw.pop("pyflags", []), "-m", "qa.cli", *args],
                          capture_output=True, text=True, timeout=kw.pop("timeout", 120), **kw)
    if check_rc is not None:
        assert proc.returncode == check_rc, proc.stdout + proc.stderr
    return proc


def stored_chunks(index_dir: Path) -> dict[tuple, np.ndarray]:
    """Everything stored about each live chunk, keyed by its content, with its dense vector
    (read through the generation: since format 5 the files live in segments)."""
    gen = Generation(current_generation(index_dir))
    ids = gen.chunk_ids_of(sorted(gen.manifest["documents"])).tolist()
    stored, vectors = gen.chunks(ids), gen.chunk_vectors(ids)
    out = {}
    for i, vector in zip(ids, vectors, strict=True):
        c = stored[i].chunk
        out[(c.doc_id, c.ordinal, c.start, c.end, c.text, c.section, c.page, c.sentences)] = vector
    assert len(out) == len(ids) == gen.chunk_count == gen.words.n, "stores disagree on the number of chunks"
    return out


def answers(assistant: Assistant) -> list[dict]:
    out = []
    for question in QUESTIONS:
        body = assistant.ask(question, k=5).to_dict()
        body.pop("took_ms")
        out.append(body)
    return out


def assert_same_answers(got: list[dict], want: list[dict]) -> None:
    for g, w in zip(got, want, strict=True):
        assert g["answer"] == w["answer"] and g["abstained"] == w["abstained"], g["question"]
        key = ("doc_id", "start", "end", "text", "section", "page", "highlights")
        assert [[p[k] for k in key] for p in g["passages"]] == [[p[k] for k in key] for p in w["passages"]]
        scores = [p["score"] for p in w["passages"]]
        assert [p["score"] for p in g["passages"]] == pytest.approx(scores, abs=1e-4)


@pytest.fixture
def corpus(tmp_path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    shutil.copy(REPORT, folder / REPORT.name)
    shutil.copy(DOCS / "joint-statement.txt", folder)
    shutil.copy(DOCS / "trade-fact-sheet.md", folder)
    return folder


def test_updates_equal_a_full_rebuild_and_embed_only_what_changed(tmp_path, corpus, encoder):
    counting = CountingEncoder(encoder)
    assistant = Assistant(make_settings(tmp_path), encoder=counting)
    first = assistant.reindex()
    assert sorted(first.added) == ["article-ii-mandate.txt", "joint-statement.txt", "trade-fact-sheet.md"]

    # add: only the new document is embedded
    shutil.copy(DOCS / "shipbuilding-notes.html", corpus)
    (corpus / "briefings").mkdir()
    shutil.copy(DOCS / "export-controls.pdf", corpus / "briefings")
    counting.texts.clear()
    added = assistant.reindex()
    assert (added.added, added.changed, added.removed) == (
        ["briefings/export-controls.pdf", "shipbuilding-notes.html"], [], [])
    assert len(added.kept) == 3
    new_texts = assistant.document("shipbuilding-notes.html").text + assistant.document(
        "briefings/export-controls.pdf").text
    assert counting.texts and all(t in new_texts for t in counting.texts)

    # change: the old chunks leave every store, the new ones come in
    statement = corpus / "joint-statement.txt"
    review = "\nA ministerial review of the critical minerals partnership takes place every spring.\n"
    statement.write_text(statement.read_text().replace("graphite", "rare earth elements") + review)
    counting.texts.clear()
    changed = assistant.reindex()
    assert (changed.added, changed.changed, changed.removed) == ([], ["joint-statement.txt"], [])
    assert all(t in statement.read_text() for t in counting.texts)
    assert "graphite" not in json.dumps([p.text for p in assistant.ask("graphite supply", k=20).passages])

    # delete: the document disappears from the chunk store, the vectors and the lexical index
    (corpus / "trade-fact-sheet.md").unlink()
    counting.texts.clear()
    removed = assistant.reindex()
    assert (removed.added, removed.changed, removed.removed) == ([], [], ["trade-fact-sheet.md"])
    assert counting.texts == []
    gen = assistant.generation()
    assert gen.lexical("beef tariffs pork", 10) == []
    assert "trade-fact-sheet.md" not in {d.doc_id for d in assistant.documents()}

    # the same corpus built from scratch elsewhere
    other = tmp_path / "other"
    shutil.copytree(corpus, other / "corpus")
    full = Assistant(make_settings(other), encoder=encoder)
    full.reindex()

    assert [(d.doc_id, d.title, d.chunks) for d in assistant.documents()] == [
        (d.doc_id, d.title, d.chunks) for d in full.documents()]
    for d in full.documents():
        assert assistant.document(d.doc_id).text == full.document(d.doc_id).text
    incremental_chunks = stored_chunks(assistant.settings.index_dir)
    full_chunks = stored_chunks(full.settings.index_dir)
    assert incremental_chunks.keys() == full_chunks.keys()
    for key, vector in full_chunks.items():
        np.testing.assert_allclose(incremental_chunks[key], vector, atol=1e-5)
    assert_same_answers(answers(assistant), answers(full))
    got, want = (read_manifest(a.settings.index_dir) for a in (assistant, full))
    assert (got["documents"], got["chunks"]) == (want["documents"], want["chunks"])


def test_nothing_changed_does_not_load_the_model(tmp_path, corpus, encoder):
    Assistant(make_settings(tmp_path), encoder=encoder).reindex()
    published = current_generation(tmp_path / "index")
    # -X importtime lists every module the command imported: the model's libraries must not be among them
    args = ("index", "--corpus", str(corpus), "--index", str(tmp_path / "index"))
    proc = qa_cli(*args, pyflags=["-X", "importtime"])
    assert proc.stdout.startswith("up to date: 0 added, 0 changed, 0 removed, 3 kept, 0 skipped")
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "faiss" in imported  # the check sees real imports
    assert not {"torch", "sentence_transformers", "transformers"} & imported
    assert current_generation(tmp_path / "index") == published


def test_unreadable_files_are_skipped_and_reported_and_keep_their_old_version(tmp_path, corpus, encoder):
    assistant = Assistant(make_settings(tmp_path), encoder=encoder)
    assistant.reindex()
    old_statement = assistant.document("joint-statement.txt").text
    (corpus / "joint-statement.txt").write_bytes(b"\xff\xfe\x00binary junk\x00")  # changed, now unreadable
    (corpus / "empty.txt").write_text("   \n")
    (corpus / "broken.pdf").write_bytes((DOCS / "corrupt.pdf").read_bytes())
    shutil.copy(DOCS / "shipbuilding-notes.html", corpus)

    summary = assistant.reindex()
    assert set(summary.skipped) == {"joint-statement.txt", "empty.txt", "broken.pdf"}
    assert summary.added == ["shipbuilding-notes.html"] and summary.changed == []
    assert assistant.document("joint-statement.txt").text == old_statement
    top = assistant.ask("Which minerals need resilient supply chains?").passages[0]
    assert top.doc_id == "joint-statement.txt"
    assert assistant.document("shipbuilding-notes.html")

    # From the CLI: each skipped file named, and a nonzero exit status (nothing else changed, so fast)
    proc = qa_cli("index", "--corpus", str(corpus), "--index", str(tmp_path / "index"), check_rc=3)
    for name in ("joint-statement.txt: looks like a binary file", "empty.txt: the document has no text",
                 "broken.pdf: not a readable PDF"):
        assert f"skipped: {name}" in proc.stdout


def test_a_file_that_cannot_be_opened_is_skipped_not_removed(tmp_path, corpus, encoder, monkeypatch):
    """Tests run as root, which reads any file: the permission error is injected at the one read."""
    assistant = Assistant(make_settings(tmp_path), encoder=encoder)
    assistant.reindex()
    locked = corpus / "trade-fact-sheet.md"
    real_read = Path.read_bytes

    def read_bytes(path: Path) -> bytes:
        if path == locked:
            raise PermissionError(13, "Permission denied")
        return real_read(path)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    summary = assistant.reindex()
    assert summary.skipped == {locked.name: f"{locked.name}: cannot read file (Permission denied)"}
    assert summary.removed == [] and not summary.touched
    assert "trade-fact-sheet.md" in {d.doc_id for d in assistant.documents()}


def test_chunker_or_model_change_rebuilds_everything(tmp_path, corpus, encoder):
    Assistant(make_settings(tmp_path), encoder=encoder).reindex()
    smaller = Assistant(make_settings(tmp_path, chunk_tokens=64), encoder=encoder)
    summary = smaller.reindex()
    assert summary.rebuilt and "chunker settings" in summary.reason
    assert "full rebuild: index built with chunker settings" in summary.describe()
    assert len(summary.added) == 0 and len(summary.kept) == 3  # no content changed; all re-embedded

    # never a mix: exactly what a fresh build with the new settings stores
    fresh = Assistant(make_settings(tmp_path / "fresh", chunk_tokens=64), encoder=encoder)
    shutil.copytree(corpus, tmp_path / "fresh" / "corpus")
    fresh.reindex()
    assert stored_chunks(tmp_path / "index").keys() == stored_chunks(tmp_path / "fresh" / "index").keys()

    # an index whose manifest names another model is rebuilt with the configured one
    manifest_path = current_generation(tmp_path / "index") / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "model": "someone/other-model"}))
    summary = smaller.reindex()
    assert summary.rebuilt and "someone/other-model" in summary.reason
    rebuilt = json.loads((current_generation(tmp_path / "index") / "manifest.json").read_text())
    assert rebuilt["model"] == smaller.settings.model


def test_rebuild_flag_reembeds_everything(tmp_path, corpus, encoder):
    counting = CountingEncoder(encoder)
    assistant = Assistant(make_settings(tmp_path), encoder=counting)
    assistant.reindex()
    embedded_first = len(counting.texts)
    counting.texts.clear()
    summary = assistant.reindex(rebuild=True)
    assert summary.rebuilt and summary.reason == "--rebuild asked for"
    assert len(counting.texts) == embedded_first


def test_second_writer_gets_a_clear_message_or_waits(tmp_path, corpus, encoder):
    settings = make_settings(tmp_path)
    Assistant(settings, encoder=encoder).reindex()
    args = ("index", "--corpus", str(corpus), "--index", str(tmp_path / "index"))
    with writer_lock(settings.index_dir):
        refused = qa_cli(*args, check_rc=1)
        assert "another build is running on" in refused.stderr and "--wait" in refused.stderr
        with pytest.raises(BuildInProgress):
            Assistant(settings, encoder=encoder).reindex()
        waiting = subprocess.Popen([sys.executable, "-m", "qa.cli", *args, "--wait"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        watchdog = threading.Timer(60, waiting.kill)  # a child that never says it waits must not hang us
        watchdog.start()
        said = ""
        while "waiting for it to finish" not in said and (line := waiting.stderr.readline()):
            said += line  # returns once the child has reached the lock we hold and said so
        watchdog.cancel()
        assert "another build is running on" in said and "waiting for it to finish" in said, said
        assert waiting.poll() is None  # still blocked on the lock
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, said + err
    assert out.startswith("up to date")


def test_old_generations_and_leftovers_are_cleaned_up(tmp_path, corpus, encoder, monkeypatch):
    assistant = Assistant(make_settings(tmp_path), encoder=encoder)
    index_dir = tmp_path / "index"
    assistant.reindex()
    for name in ("notes-1.txt", "notes-2.txt", "notes-3.txt"):
        (corpus / name).write_text(f"Meeting {name}: the allies discussed port security.\n")
        assistant.reindex()
    gens = sorted(index_dir.glob("gen-*"))
    assert len(gens) == 2 and current_generation(index_dir) == gens[-1]  # the published one, the one before

    # what a kill -9 leaves: a staging folder, a half-written pointer, a renamed but unpublished generation
    (index_dir / ".build-999-1").mkdir()
    (index_dir / ".build-999-1" / STORE).write_bytes(b"partial")
    (index_dir / "CURRENT.tmp").write_text("gen-9\n")
    orphan = index_dir / "gen-9999999999999999999"
    orphan.mkdir()
    listed = {e["name"] for g in gens for e in json.loads((g / "manifest.json").read_text())["segments"]}
    (index_dir / SEGMENTS / "seg-1").mkdir()  # a segment written, its generation never published
    summary = assistant.reindex()  # nothing changed: no new generation, but leftovers go
    assert not summary.touched
    left = sorted(p.name for p in index_dir.iterdir())
    assert left == sorted([LAST_BUILD, ".lock", "CURRENT", SEGMENTS, *(g.name for g in gens)])
    assert {p.name for p in (index_dir / SEGMENTS).iterdir()} == listed  # the retained generations' segments

    # Ctrl-C while the new generation is being written: nothing left behind, old one still published
    def interrupted(*_):
        raise KeyboardInterrupt

    (corpus / "notes-4.txt").write_text("Meeting four: the allies discussed energy.\n")
    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(qa_segments.faiss, "write_index", interrupted)
        assistant.reindex()
    assert current_generation(index_dir) == gens[-1] and not list(index_dir.glob(".build-*"))
    assert assistant.reindex().added == ["notes-4.txt"]
