"""Nothing lost, nothing silent (issue 12): Unicode upload names, the trash and restores, loud errors."""

from __future__ import annotations

import shutil
import unicodedata

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from conftest import FIXTURES, REPORT, indexed_assistant
from qa.cli import main
from qa.service import Assistant, InvalidRequest, sanitise_filename
from qa.serving.api import create_app

TOKEN = "trash-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JAPAN = "日本メモ.txt"
CHINA = "中国メモ.txt"
JAPAN_NOTE = b"Japan memo\n\nTokyo will host the chip working group in April.\n"
CHINA_NOTE = b"China memo\n\nThe rare earth export licences are reviewed every quarter.\n"


@pytest.fixture
def assistant(tmp_path, encoder) -> Assistant:
    return indexed_assistant(tmp_path, encoder, [FIXTURES / "incremental" / "joint-statement.txt"], admin_token=TOKEN)


@pytest.fixture
def client(assistant):
    with TestClient(create_app(assistant=assistant)) as c:
        yield c


def upload(client, name: str, data: bytes, query: str = ""):
    return client.post(f"/documents{query}", files={"file": (name, data)}, headers=AUTH)


def test_two_unicode_uploads_coexist_under_their_own_names(client, assistant):
    assert upload(client, JAPAN, JAPAN_NOTE).json()["doc_id"] == f"uploads/{JAPAN}"
    assert upload(client, CHINA, CHINA_NOTE).json()["doc_id"] == f"uploads/{CHINA}"
    listed = {d["doc_id"] for d in client.get("/documents").json()}
    assert {f"uploads/{JAPAN}", f"uploads/{CHINA}"} <= listed
    assert "chip working group" in client.get(f"/documents/uploads/{JAPAN}").json()["text"]
    assert "rare earth" in client.get(f"/documents/uploads/{CHINA}").json()["text"]
    assert sorted(p.name for p in (assistant.settings.corpus_dir / "uploads").iterdir()) == sorted([JAPAN, CHINA])


def test_upload_names_are_normalised_to_nfc_and_control_characters_refused():
    decomposed = unicodedata.normalize("NFD", "café.txt")
    assert sanitise_filename(decomposed) == unicodedata.normalize("NFC", "café.txt")
    for bad in ("memo\x07.txt", "line\nbreak.txt", "evil\u202etxt.md", ".hidden.txt", "a/b.txt", "a\\b.txt"):
        with pytest.raises(InvalidRequest) as info:
            sanitise_filename(bad)
        assert info.value.field == "file"


def test_a_deleted_document_goes_to_the_trash_and_is_restored(client, assistant):
    corpus = assistant.settings.corpus_dir
    original = (corpus / "joint-statement.txt").read_bytes()
    assert client.delete("/documents/joint-statement.txt", headers=AUTH).status_code == 204
    assert client.get("/documents/joint-statement.txt").status_code == 404
    assert client.get("/trash").status_code in (401, 403)  # the admin token is needed to see it
    entries = client.get("/trash", headers=AUTH).json()
    assert [(e["doc_id"], e["reason"]) for e in entries] == [("joint-statement.txt", "deleted")]
    assert entries[0]["at"].endswith("+00:00")

    # No build, rebuild included, touches the trash or reads it as corpus.
    summary = assistant.reindex(rebuild=True)
    assert summary.documents == 0 and len(client.get("/trash", headers=AUTH).json()) == 1

    r = client.post(f"/trash/{entries[0]['id']}/restore", headers=AUTH)
    assert r.status_code == 200 and r.json() == {"doc_id": "joint-statement.txt"}
    assert (corpus / "joint-statement.txt").read_bytes() == original
    assert client.get("/documents/joint-statement.txt").status_code == 200
    assert client.get("/trash", headers=AUTH).json() == []
    assert client.post(f"/trash/{entries[0]['id']}/restore", headers=AUTH).status_code == 404


def test_restoring_onto_a_taken_name_needs_replace(client, assistant):
    upload(client, "memo.txt", JAPAN_NOTE)
    client.delete("/documents/uploads/memo.txt", headers=AUTH)
    upload(client, "memo.txt", CHINA_NOTE)  # the name is free again, and taken by another file
    entry = client.get("/trash", headers=AUTH).json()[0]
    refused = client.post(f"/trash/{entry['id']}/restore", headers=AUTH)
    assert refused.status_code == 409 and "the name uploads/memo.txt is taken" in refused.json()["detail"]
    assert "rare earth" in client.get("/documents/uploads/memo.txt").json()["text"]

    r = client.post(f"/trash/{entry['id']}/restore?replace=true", headers=AUTH)
    assert r.status_code == 200
    assert "chip working group" in client.get("/documents/uploads/memo.txt").json()["text"]
    left = client.get("/trash", headers=AUTH).json()
    assert [(e["doc_id"], e["reason"]) for e in left] == [("uploads/memo.txt", "replaced")]


def test_a_name_taken_409_is_told_apart_from_a_running_build(client):
    upload(client, "memo.txt", JAPAN_NOTE)
    taken = upload(client, "memo.txt", CHINA_NOTE)
    assert taken.status_code == 409
    assert "taken" in taken.json()["detail"] and "another build" not in taken.json()["detail"]
    assert upload(client, "memo.txt", CHINA_NOTE, "?replace=true").status_code == 201


def test_unknown_or_empty_document_filters_answer_422_naming_them(client):
    r = client.post("/ask", json={"question": "critical minerals", "documents": ["nope.txt", "joint-statement.txt"]})
    assert r.status_code == 422 and "'nope.txt'" in r.json()["detail"] and "joint-statement" not in r.json()["detail"]
    r = client.post("/ask", json={"question": "critical minerals", "documents": []})
    assert r.status_code == 422 and "documents" in r.json()["detail"]
    r = client.get("/ask", params={"q": "critical minerals", "documents": "nope.txt"})
    assert r.status_code == 422 and "'nope.txt'" in r.json()["detail"]


def test_get_ask_filters_by_repeated_documents_parameters(client):
    upload(client, CHINA, CHINA_NOTE)
    question = "How often are rare earth export licences reviewed?"
    everything = client.get("/ask", params={"q": question, "k": 5}).json()
    assert {p["doc_id"] for p in everything["passages"]} == {"joint-statement.txt", f"uploads/{CHINA}"}
    only = client.get("/ask", params=[("q", question), ("k", "5"), ("documents", "joint-statement.txt")]).json()
    assert {p["doc_id"] for p in only["passages"]} == {"joint-statement.txt"}


@pytest.mark.parametrize("command", [["index"], ["serve", "--port", "1"]])
def test_a_mistyped_corpus_folder_fails_loudly(tmp_path, command):
    result = CliRunner().invoke(main, [*command, "--corpus", str(tmp_path / "nope"), "--index", str(tmp_path / "i")])
    assert result.exit_code == 1
    assert f"corpus folder {tmp_path / 'nope'} does not exist" in result.output
    assert "up to date" not in result.output


def test_qa_index_reports_what_it_read(tmp_path):
    (tmp_path / "corpus").mkdir()
    shutil.copy(REPORT, tmp_path / "corpus")
    (tmp_path / "corpus" / "scan.html").write_text("<div>" * 300 + "</div>" * 300)
    result = CliRunner().invoke(main, ["index", "--corpus", str(tmp_path / "corpus"), "--index", str(tmp_path / "i")])
    assert result.exit_code == 3, result.output  # one file skipped
    assert f"read: {REPORT.name}: {len(REPORT.read_text())} characters," in result.output
    assert "skipped: scan.html: the document has no text" in result.output
