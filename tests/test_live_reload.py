"""A real server answers every question, whole, while documents are added and removed through its API."""

from __future__ import annotations

import re
import shutil
import threading
from collections import Counter

import httpx

from conftest import FIXTURES, REPORT
from server import live_server

DOCS = FIXTURES / "incremental"
TOKEN = "live-reload-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
QUESTIONS = [
    "What does Article II ask of the allies?",
    "Which minerals need resilient supply chains?",
    "Where does the maritime working group meet?",
    "What happens to the tariff on American beef?",
]
UPLOADS = ["shipbuilding-notes.html", "trade-fact-sheet.md", "export-controls.pdf"]


def problems_with(body: dict) -> list[str]:
    """What would make an answer half-answered: missing parts, or citations that point at nothing."""
    problems = []
    if set(body) != {"question", "answer", "abstained", "confidence", "took_ms", "passages"}:
        return [f"fields {sorted(body)}"]
    if not body["answer"].strip():
        problems.append("empty answer")
    ranks = [p["rank"] for p in body["passages"]]
    if ranks != list(range(1, len(ranks) + 1)):
        problems.append(f"ranks {ranks}")
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", body["answer"])}
    if not body["abstained"] and (not cited or not cited <= set(ranks)):
        problems.append(f"answer cites {sorted(cited)} of passages {ranks}")
    for p in body["passages"]:
        if not p["text"] or p["end"] - p["start"] != len(p["text"]):
            problems.append(f"passage {p['rank']} text does not match its offsets")
        if any(not 0 <= a < b <= len(p["text"]) for a, b in p["highlights"]):
            problems.append(f"passage {p['rank']} highlights {p['highlights']} outside its text")
    return problems


def test_queries_never_fail_while_documents_are_added_and_removed(tmp_path):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    corpus.mkdir()
    shutil.copy(REPORT, corpus)
    shutil.copy(DOCS / "joint-statement.txt", corpus)
    outcomes: Counter[str] = Counter()
    failures: list[str] = []
    stop = threading.Event()

    with live_server(corpus, index, env={"QA_ADMIN_TOKEN": TOKEN}) as base:

        def ask_forever(worker: int) -> None:
            with httpx.Client(base_url=base, timeout=60) as http:
                n = worker
                while not stop.is_set():
                    question = QUESTIONS[n % len(QUESTIONS)]
                    n += 1
                    try:
                        r = http.post("/ask", json={"question": question, "k": 5})
                        problems = [f"status {r.status_code}: {r.text[:200]}"] if r.status_code != 200 else (
                            problems_with(r.json()))
                    except (httpx.HTTPError, ValueError) as exc:
                        problems = [f"{type(exc).__name__}: {exc}"]
                    outcomes["failed" if problems else "ok"] += 1
                    failures.extend(f"{question}: {p}" for p in problems)

        askers = [threading.Thread(target=ask_forever, args=(i,)) for i in range(3)]
        for t in askers:
            t.start()
        writes = 0
        try:
            with httpx.Client(base_url=base, timeout=120, headers=AUTH) as http:
                for _round in range(2):
                    for name in UPLOADS:
                        r = http.post("/documents", files={"file": (name, (DOCS / name).read_bytes())})
                        assert r.status_code == 201, r.text
                        # the write answered only once live: the next question already sees it
                        body = http.post("/ask", json={"question": "tariffs, shipyards and export controls",
                                                       "documents": [f"uploads/{name}"]}).json()
                        assert body["passages"] and body["passages"][0]["doc_id"] == f"uploads/{name}"
                        writes += 1
                    for name in UPLOADS:
                        assert http.delete(f"/documents/uploads/{name}").status_code == 204
                        assert http.get(f"/documents/uploads/{name}").status_code == 404
                        writes += 1
                asked_during_writes = sum(outcomes.values())
        finally:
            stop.set()
            for t in askers:
                t.join(120)

    assert failures == []
    assert writes == 12 and outcomes["failed"] == 0
    assert asked_during_writes >= 24, outcomes  # the questions really did overlap the switches
