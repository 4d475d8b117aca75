"""The product as a user runs it: `qa index`, `qa ask`, and a real uvicorn server on loopback."""

import json
import shutil
import subprocess
import sys

import httpx
import pytest

from conftest import REPORT
from qa.indexing.generations import current_generation, read_manifest
from qa.indexing.store import FORMAT_VERSION, MANIFEST
from server import live_server

QUESTION = "When did Japan first run a trade surplus with the United States?"


def qa(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qa.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    (root / "corpus").mkdir()
    shutil.copy(REPORT, root / "corpus" / REPORT.name)
    dirs = ("--corpus", str(root / "corpus"), "--index", str(root / "index"))
    first = qa("index", *dirs)
    assert first.returncode == 0, first.stderr
    return root, dirs, first


def test_qa_index_reports_what_it_did_then_is_up_to_date(built):
    _, dirs, first = built
    assert "1 added" in first.stdout and "article-ii-mandate.txt" in first.stdout
    again = qa("index", *dirs)
    assert again.returncode == 0 and "up to date" in again.stdout and "1 kept" in again.stdout


def test_cli_json_equals_the_http_answer(built):
    root, dirs, _ = built
    cli = qa("ask", QUESTION, "--k", "3", "--json", *dirs)
    assert cli.returncode == 0, cli.stderr
    from_cli = json.loads(cli.stdout)
    with live_server(root / "corpus", root / "index") as base:
        from_http = httpx.post(f"{base}/ask", json={"question": QUESTION, "k": 3}, timeout=30).json()
        page = httpx.get(f"{base}/", params={"q": QUESTION}, timeout=30).text
    from_cli.pop("took_ms"), from_http.pop("took_ms")
    assert from_cli == from_http
    assert "1965" in from_http["passages"][0]["text"] and "[1]" in from_http["answer"]
    assert '<a class="cite" href="#p1">[1]</a>' in page
    log = next(root.glob("server-*.log")).read_text()
    assert "Uvicorn running" in log and "POST /ask" not in log  # no access log unless asked for


def test_cli_text_answer_shows_markers_and_sources(built):
    _, dirs, _ = built
    out = qa("ask", QUESTION, *dirs)
    assert out.returncode == 0
    assert "[1]" in out.stdout and "article-ii-mandate.txt" in out.stdout and "1965" in out.stdout


def test_cli_answers_who_wrote_the_report_and_shows_each_source(built):
    _, dirs, _ = built
    out = qa("ask", "Who wrote the report?", "--k", "2", *dirs)
    assert out.returncode == 0, out.stderr
    first_line = out.stdout.splitlines()[0]
    assert first_line.endswith("was written by Yoichi Funabashi and Matthew P. Goodman [1].")
    about = "by Yoichi Funabashi, Matthew P. Goodman · Centre for Strategic and International Studies · 2018"
    assert about in out.stdout


def test_cli_errors_are_clear(built, tmp_path):
    _, dirs, _ = built
    empty = qa("ask", "   ", *dirs)
    assert empty.returncode == 1 and "question: must not be empty" in empty.stderr
    missing = qa("ask", QUESTION, "--corpus", str(tmp_path), "--index", str(tmp_path / "none"))
    assert missing.returncode == 1 and "run `qa index`" in missing.stderr


def test_serve_rebuilds_an_index_an_older_version_wrote(built, tmp_path):
    """Upgrading the product changes the index format; `qa serve` must not answer 503 until someone
    thinks of running `qa index`: it rebuilds first, then answers."""
    root, _, _ = built
    index = tmp_path / "index"
    shutil.copytree(root / "index", index)
    manifest_path = current_generation(index) / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    old = 3  # formats 4 and 5 are upgraded in place (tests/test_sentence_data.py); 3 is rebuilt
    manifest_path.write_text(json.dumps({**manifest, "format": old}))
    with live_server(root / "corpus", index, "--access-log") as base:
        answer = httpx.post(f"{base}/ask", json={"question": QUESTION, "k": 3}, timeout=30)
    assert answer.status_code == 200 and "1965" in answer.json()["passages"][0]["text"]
    assert read_manifest(index)["format"] == FORMAT_VERSION
    log = next(tmp_path.glob("server-*.log")).read_text()
    assert f"index format {old} is not this version's {FORMAT_VERSION}: building the index" in log
    assert '"POST /ask HTTP/1.1" 200' in log  # --access-log: a line per request
