"""`qa serve --workers 2`: every worker process answers from the newest published index."""

from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from conftest import FIXTURES, REPORT, make_settings
from qa.indexing.generations import current_generation
from qa.indexing.store import STORE
from qa.service import Assistant
from server import live_server

QUESTION = "Where does the working group on maritime industrial capacity meet?"
NEW_DOCUMENT = "shipbuilding-notes.html"


def server_pid(port: int) -> int:
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"serve" in argv and b"--port" in argv and str(port).encode() in argv:
                return int(proc.name)
    raise AssertionError(f"no qa serve process on port {port}")


def open_stores(pid: int) -> set[str]:
    """The segment folders whose chunk store process `pid` has open (since format 5 a generation
    lists segments, and each segment holds its own store)."""
    folders = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.endswith("/" + STORE):
            folders.add(Path(target).parent.name)
    return folders


def newest_segment(index_dir: Path) -> str:
    return json.loads((current_generation(index_dir) / "manifest.json").read_text())["segments"][-1]["name"]


def workers(parent: int) -> dict[int, set[str]]:
    """Child processes of the server that hold an index generation open, with those generations."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            stores = open_stores(int(proc.name)) if ppid == parent else set()
        except (OSError, ValueError):
            continue
        if stores:
            found[int(proc.name)] = stores
    return found


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return result


def test_every_worker_answers_from_a_newly_published_index(tmp_path, encoder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(REPORT, corpus / REPORT.name)
    settings = make_settings(tmp_path)
    publisher = Assistant(settings, encoder=encoder)
    publisher.reindex()
    first = newest_segment(settings.index_dir)

    with live_server(corpus, settings.index_dir, "--workers", "2") as base:
        parent = server_pid(int(base.rsplit(":", 1)[1]))
        started = wait_for(lambda: len(found := workers(parent)) == 2 and found, 120,
                           "two workers to open the index")
        assert all(first in stores for stores in started.values())

        shutil.copy(FIXTURES / "incremental" / NEW_DOCUMENT, corpus / NEW_DOCUMENT)
        assert publisher.reindex().added == [NEW_DOCUMENT]
        newest = newest_segment(settings.index_dir)  # holds the new document: opened with the new generation
        assert newest != first

        def ask(_) -> str:
            with httpx.Client(timeout=30) as client:  # a new connection each time, so both workers take some
                response = client.get(f"{base}/ask", params={"q": QUESTION, "k": 3})
            assert response.status_code == 200, response.text
            return response.json()["passages"][0]["doc_id"]

        answered_from: list[str] = []

        def every_worker_on_newest() -> bool:
            with ThreadPoolExecutor(8) as pool:
                answered_from.extend(pool.map(ask, range(16)))
            return all(newest in stores for stores in workers(parent).values())

        wait_for(every_worker_on_newest, 60, f"both workers to open {newest}")
        assert set(answered_from) == {NEW_DOCUMENT}  # no answer came from the old index after publication
