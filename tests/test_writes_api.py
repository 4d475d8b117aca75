"""Writes over HTTP (DESIGN.md): bearer token, uploads, deletes, /reindex; every refusal changes nothing."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from conftest import FIXTURES, indexed_assistant
from qa.config import Settings
from qa.indexing.generations import current_generation, writer_lock
from qa.service import Assistant
from qa.serving.api import create_app
from server import live_server

DOCS = FIXTURES / "incremental"
TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NOTE = b"Port security memo\n\nThe allies will inspect container cranes built abroad for hidden modems.\n"


def snapshot(assistant: Assistant) -> tuple:
    """What a refused write must leave as it was: the published generation and every corpus file."""
    corpus = assistant.settings.corpus_dir
    files = {p.relative_to(corpus).as_posix(): p.read_bytes() for p in corpus.rglob("*") if p.is_file()}
    return current_generation(assistant.settings.index_dir), files


def upload(client, name: str, data: bytes, headers=AUTH):
    return client.post("/documents", files={"file": (name, data)}, headers=headers)


def cited_docs(client, question: str, **body) -> set[str]:
    r = client.post("/ask", json={"question": question, "k": 10, **body})
    assert r.status_code == 200, r.text
    return {p["doc_id"] for p in r.json()["passages"]}


@pytest.fixture
def assistant(tmp_path, encoder) -> Assistant:
    files = [DOCS / "joint-statement.txt"]
    return indexed_assistant(tmp_path, encoder, files, admin_token=TOKEN, max_upload_bytes=4096)


@pytest.fixture
def client(assistant):
    with TestClient(create_app(assistant=assistant)) as c:
        yield c


def test_writes_are_disabled_without_a_token(tmp_path, encoder):
    a = indexed_assistant(tmp_path, encoder, [DOCS / "joint-statement.txt"])
    before = snapshot(a)
    with TestClient(create_app(assistant=a)) as c:
        for r in (upload(c, "memo.txt", NOTE), c.delete("/documents/joint-statement.txt", headers=AUTH),
                  c.post("/reindex", headers=AUTH)):
            assert r.status_code == 403 and "QA_ADMIN_TOKEN" in r.json()["detail"]
    assert snapshot(a) == before


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}])
def test_a_missing_or_wrong_token_gets_401(client, assistant, headers):
    before = snapshot(assistant)
    for r in (upload(client, "memo.txt", NOTE, headers), client.delete("/documents/joint-statement.txt",
              headers=headers), client.post("/reindex", headers=headers)):
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert snapshot(assistant) == before


def test_upload_is_live_at_once_same_content_is_a_noop_other_content_needs_replace(client, assistant):
    r = upload(client, "memo.txt", NOTE)
    assert r.status_code == 201 and r.json() == {
        "doc_id": "uploads/memo.txt", "chunks": 1, "read": {"chars": len(NOTE.decode()), "passages": 1, "warning": None}
    }
    assert (assistant.settings.corpus_dir / "uploads" / "memo.txt").read_bytes() == NOTE
    assert "uploads/memo.txt" in cited_docs(client, "Who inspects container cranes for modems?")

    published = current_generation(assistant.settings.index_dir)
    again = upload(client, "memo.txt", NOTE)
    assert again.status_code == 200 and again.json() == r.json()
    assert current_generation(assistant.settings.index_dir) == published  # nothing rebuilt

    newer = b"Port security memo\n\nShip-to-shore cranes get new software.\n"
    before = snapshot(assistant)
    taken = upload(client, "memo.txt", newer)
    assert taken.status_code == 409 and "the name uploads/memo.txt is taken" in taken.json()["detail"]
    assert "replace=true" in taken.json()["detail"]
    assert snapshot(assistant) == before

    replaced = client.post("/documents?replace=true", files={"file": ("memo.txt", newer)}, headers=AUTH)
    assert replaced.status_code == 201
    assert "modems" not in client.get("/documents/uploads/memo.txt").json()["text"]
    body = client.post("/ask", json={"question": "hidden modems in cranes", "k": 20}).json()
    assert not any("modems" in p["text"] for p in body["passages"])  # old chunks gone from all stores
    listed = [d["doc_id"] for d in client.get("/documents").json()]
    assert listed == ["joint-statement.txt", "uploads/memo.txt"]
    trash = client.get("/trash", headers=AUTH).json()
    assert [(e["doc_id"], e["reason"]) for e in trash] == [("uploads/memo.txt", "replaced")]


@pytest.mark.parametrize("name,question", [
    ("trade-fact-sheet.md", "What happens to the tariff on American beef?"),
    ("shipbuilding-notes.html", "Where does the maritime working group meet?"),
    ("export-controls.pdf", "How often are lithography tool licences reviewed?"),
])
def test_each_supported_type_can_be_uploaded(client, name, question):
    r = upload(client, name, (DOCS / name).read_bytes())
    assert r.status_code == 201, r.text
    assert cited_docs(client, question, k=1) == {f"uploads/{name}"}


@pytest.mark.parametrize("name,data,status,detail", [
    ("memo.docx", NOTE, 415, "file type '.docx' is not supported"),
    ("memo", NOTE, 415, "file type '(none)' is not supported"),
    ("../escape.txt", NOTE, 400, "must be a plain name without folders"),
    ("../../corpus/joint-statement.txt", NOTE, 400, "must be a plain name without folders"),
    ("sub/dir.txt", NOTE, 400, "must be a plain name without folders"),
    ("..\\escape.txt", NOTE, 400, "must be a plain name without folders"),
    ("big.txt", b"x " * 2049, 413, "larger than the 4.0 KiB upload limit"),
    ("big.txt", b"x " * 70_000, 413, "larger than"),  # refused by the body limit before it is read
    ("report.pdf", (DOCS / "corrupt.pdf").read_bytes(), 422, "uploads/report.pdf: not a readable PDF"),
    ("junk.txt", b"\x00\x01\x02binary", 422, "uploads/junk.txt: looks like a binary file"),
    ("empty.md", b"  \n", 422, "uploads/empty.md: the document has no text"),
])
def test_a_bad_upload_is_refused_with_a_clear_error_and_changes_nothing(client, assistant, name, data, status,
                                                                       detail):
    before = snapshot(assistant)
    r = upload(client, name, data)
    assert r.status_code == status, r.text
    assert detail in r.json()["detail"]
    assert snapshot(assistant) == before


def test_delete_removes_the_document_from_answers_and_the_corpus(client, assistant):
    upload(client, "memo.txt", NOTE)
    r = client.delete("/documents/uploads/memo.txt", headers=AUTH)
    assert r.status_code == 204
    assert client.get("/documents/uploads/memo.txt").status_code == 404
    assert not (assistant.settings.corpus_dir / "uploads" / "memo.txt").exists()  # moved to the trash
    assert "uploads/memo.txt" not in cited_docs(client, "Who inspects container cranes for modems?")
    before = snapshot(assistant)
    for unknown in ("uploads/memo.txt", "..%2F..%2Fetc%2Fpasswd.txt", "nothing.txt"):
        r = client.delete(f"/documents/{unknown}", headers=AUTH)
        assert r.status_code == 404 and "no document" in r.json()["detail"]
    assert snapshot(assistant) == before


def test_reindex_brings_the_index_in_line_with_the_corpus_folder(client, assistant):
    shutil.copy(DOCS / "trade-fact-sheet.md", assistant.settings.corpus_dir)
    (assistant.settings.corpus_dir / "joint-statement.txt").unlink()
    r = client.post("/reindex", headers=AUTH)
    assert r.status_code == 200
    body = r.json()
    assert (body["added"], body["removed"]) == (["trade-fact-sheet.md"], ["joint-statement.txt"])
    assert body["documents"] == 1
    assert cited_docs(client, "What happens to the tariff on American beef?") == {"trade-fact-sheet.md"}
    again = client.post("/reindex", headers=AUTH).json()
    assert again["kept"] == ["trade-fact-sheet.md"] and not again["added"] and not again["rebuilt"]


def test_writes_get_409_while_another_build_runs(client, assistant):
    before = snapshot(assistant)
    with writer_lock(assistant.settings.index_dir):  # as a `qa index` in another process would hold it
        delete = client.delete("/documents/joint-statement.txt", headers=AUTH)
        for r in (upload(client, "memo.txt", NOTE), delete, client.post("/reindex", headers=AUTH)):
            assert r.status_code == 409 and "another build is running" in r.json()["detail"]
        assert snapshot(assistant) == before  # the upload was not even written to the corpus
        assert client.post("/ask", json={"question": "critical minerals"}).status_code == 200
    assert upload(client, "memo.txt", NOTE).status_code == 201


def test_health_reports_a_running_build(client, assistant):
    assert client.get("/health").json()["build"] == {"running": False, "phase": "", "done": 0, "total": 0}
    release = threading.Event()
    started = threading.Event()

    def held_build():
        started.set()
        release.wait(30)

    shutil.copy(DOCS / "trade-fact-sheet.md", assistant.settings.corpus_dir)
    worker = threading.Thread(target=assistant.reindex, kwargs={"prepare": held_build})
    worker.start()
    try:
        started.wait(10)
        health = client.get("/health")
        assert health.status_code == 200
        assert health.json()["status"] == "ok" and health.json()["build"]["running"] is True
        assert health.json()["build"]["phase"] == "scanning"
        assert client.post("/reindex", headers=AUTH).status_code == 409
    finally:
        release.set()
        worker.join(60)
    assert client.get("/health").json()["build"]["running"] is False
    assert client.get("/health").json()["documents"] == 2


def test_upload_limit_defaults_to_20_mb_and_reads_the_environment(monkeypatch):
    assert Settings().max_upload_bytes == 20 * 1024 * 1024
    monkeypatch.setenv("QA_MAX_UPLOAD_BYTES", "2048")
    assert Settings().max_upload_bytes == 2048


def test_writes_through_a_real_server(tmp_path):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    corpus.mkdir()
    shutil.copy(DOCS / "joint-statement.txt", corpus)
    env = {"QA_ADMIN_TOKEN": TOKEN, "QA_MAX_UPLOAD_BYTES": "2048"}
    with live_server(corpus, index, env=env) as base, httpx.Client(base_url=base, timeout=60) as http:
        created = upload(http, "memo.txt", NOTE)
        assert created.status_code == 201 and created.json()["doc_id"] == "uploads/memo.txt"
        assert "uploads/memo.txt" in cited_docs(http, "Who inspects container cranes for modems?")
        assert upload(http, "memo.txt", NOTE).status_code == 200
        assert upload(http, "memo.txt", NOTE, {"Authorization": "Bearer nope"}).status_code == 401
        assert upload(http, "big.txt", b"x " * 1025).status_code == 413
        assert upload(http, "huge.txt", b"x " * 500_000).status_code == 413
        assert upload(http, "broken.pdf", (DOCS / "corrupt.pdf").read_bytes()).status_code == 422
        assert http.delete("/documents/uploads/memo.txt", headers=AUTH).status_code == 204
        assert http.get("/documents/uploads/memo.txt").status_code == 404
        assert http.post("/reindex", headers=AUTH).json()["kept"] == ["joint-statement.txt"]
        assert [e["doc_id"] for e in http.get("/trash", headers=AUTH).json()] == ["uploads/memo.txt"]
    files = sorted(p.relative_to(corpus).as_posix() for p in corpus.rglob("*") if p.is_file())
    assert [f for f in files if not f.startswith(".trash/")] == ["joint-statement.txt"]
    assert [f.rsplit("/", 1)[-1] for f in files if f.startswith(".trash/")] == ["entry.json", "memo.txt"]
    assert Path(index / "CURRENT").is_file()
