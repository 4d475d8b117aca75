"""kill -9 of a real `qa index` while it embeds: the old index keeps answering, the next build finishes."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from fastapi.testclient import TestClient

from conftest import FIXTURES, REPORT, make_settings
from qa.indexing.generations import LAST_BUILD, PROGRESS, current_generation, read_manifest, read_progress
from qa.indexing.store import SEGMENTS
from qa.service import Assistant
from qa.serving.api import create_app

TOPICS = ["semiconductors", "shipbuilding", "liquefied natural gas", "rare earths", "port cranes",
          "batteries", "fisheries", "rice tariffs", "satellites", "pharmaceuticals", "steel", "cables"]
VERBS = ["reviewed", "funded", "inspected", "postponed", "expanded", "audited", "announced", "studied"]
PLACES = ["Osaka", "Nagoya", "Seattle", "Houston", "Sapporo", "Norfolk", "Kobe", "Honolulu"]


def write_bulk_corpus(folder: Path, documents: int = 40, sentences: int = 40) -> None:
    """Enough distinct text that embedding it takes seconds, so the kill lands mid-embedding."""
    rng = random.Random(4)
    folder.mkdir(parents=True)
    for n in range(documents):
        lines = [f"Working paper {n} on {rng.choice(TOPICS)}", ""]
        for s in range(sentences):
            place, verb, topics = rng.choice(PLACES), rng.choice(VERBS), rng.sample(TOPICS, 2)
            lines.append(f"In session {s} the panel in {place} {verb} plans on {topics[0]} and {topics[1]} "
                         f"worth {rng.randint(2, 900)} million dollars.")
        (folder / f"paper-{n:03}.txt").write_text("\n".join(lines) + "\n")


def qa_index(corpus: Path, index: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "qa.cli", "index", "--corpus", str(corpus), "--index", str(index)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_kill_9_mid_build_keeps_the_old_index_and_the_next_build_finishes_the_job(tmp_path, encoder):
    settings = make_settings(tmp_path)
    corpus, index = settings.corpus_dir, settings.index_dir
    corpus.mkdir()
    shutil.copy(REPORT, corpus)
    shutil.copy(FIXTURES / "incremental" / "joint-statement.txt", corpus)
    server = Assistant(settings, encoder=encoder)  # stands for the running server
    server.reindex()
    old = current_generation(index)
    old_manifest = (old / "manifest.json").read_text()
    write_bulk_corpus(corpus / "papers")

    with TestClient(create_app(assistant=server)) as client:
        build = qa_index(corpus, index)
        deadline = time.monotonic() + 300
        while (running := read_progress(index)) is None or running["phase"] != "embedding":
            assert build.poll() is None, build.communicate()
            assert time.monotonic() < deadline, "the build never reached the embedding phase"
            time.sleep(0.02)
        # While it embeds, /health says how far it is, and questions are answered from the old index.
        health = client.get("/health").json()
        assert health["status"] == "ok" and health["documents"] == 2
        assert health["build"]["running"] is True and health["build"]["phase"] == "embedding"
        assert health["build"]["total"] >= 150  # chunks to embed

        os.kill(build.pid, signal.SIGKILL)
        build.wait(30)
        assert build.returncode == -signal.SIGKILL
        last = json.loads((index / PROGRESS).read_text())  # the dead build's last word: still embedding
        assert last["phase"] == "embedding" and last["done"] < last["total"]
        assert read_progress(index) is None  # ... which /health knows to ignore

        assert current_generation(index) == old and (old / "manifest.json").read_text() == old_manifest
        r = client.post("/ask", json={"question": "What does Article II ask of the allies?", "k": 5})
        assert r.status_code == 200 and r.json()["passages"]
        assert {p["doc_id"] for p in r.json()["passages"]} <= {REPORT.name, "joint-statement.txt"}
        health = client.get("/health").json()
        assert (health["status"], health["documents"], health["build"]["running"]) == ("ok", 2, False)

        # the next `qa index` does the whole job and leaves nothing of the killed one behind
        build = qa_index(corpus, index)
        out, err = build.communicate(timeout=600)
        assert build.returncode == 0, err
        assert out.startswith("updated: 40 added, 0 changed, 0 removed, 2 kept, 0 skipped; 42 documents")
        left = sorted(p.name for p in index.iterdir() if not p.name.startswith("gen-"))
        assert left == sorted([LAST_BUILD, ".lock", "CURRENT", SEGMENTS])  # and what this build did, for the library
        assert client.get("/health").json()["documents"] == 42  # the server follows without a restart
        assert len(read_manifest(index)["documents"]) == 42  # since format 5 read from the segments
        r = client.post("/ask", json={"question": "Working paper 7", "documents": ["papers/paper-007.txt"]})
        assert r.status_code == 200 and r.json()["passages"][0]["doc_id"] == "papers/paper-007.txt"
