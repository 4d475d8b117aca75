"""`qa serve --ray`: a sharded index served on Ray Serve (a deployment per shard, the app merging) answers
as the unsharded index does in one process; an upload is answered within seconds; losing a worker node
gives complete answers or a 503 naming the shard, never a partial one.

One real 2-node `ray.cluster_utils.Cluster` and one Serve application for the module, isolated by
tests/ray_cluster.py (Ray's files in a private folder, removed after; no usage stats).
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest

from conftest import FIXTURES, REPORT, make_settings
from qa.service import Assistant
from ray_cluster import require_ray, two_node_cluster
from server import free_port
from test_segments import MORE_QUESTIONS

pytestmark = pytest.mark.ray

FILES = [REPORT, *sorted((FIXTURES / "incremental").glob("*.txt")), *sorted((FIXTURES / "answers").glob("*"))]
CHUNK_TOKENS = 64
TOKEN = "ray-serve-test-token"
KEY = ("doc_id", "start", "end", "text", "section", "page", "highlights")


def corpus(root: Path) -> Path:
    (root / "corpus").mkdir(parents=True)
    for f in FILES:
        shutil.copy(f, root / "corpus")
    return root


@pytest.fixture(scope="module")
def unsharded(tmp_path_factory, encoder) -> Assistant:
    assistant = Assistant(make_settings(corpus(tmp_path_factory.mktemp("one")), chunk_tokens=CHUNK_TOKENS),
                          encoder=encoder)
    assistant.reindex()
    return assistant


@pytest.fixture(scope="module")
def served(tmp_path_factory, encoder):
    """A 2-shard index on a head and a worker node (1 CPU each), 2 replicas a shard:
    (cluster, worker, url, settings)."""
    require_ray(serve=True)
    from ray import serve

    from qa.serving.ray_serve import APP, application

    settings = make_settings(corpus(tmp_path_factory.mktemp("sharded")), chunk_tokens=CHUNK_TOKENS,
                             admin_token=TOKEN)
    Assistant(settings, encoder=encoder).reindex(shards=2)
    with two_node_cluster() as (nodes, worker):
        try:
            port = free_port()
            # One HTTP proxy, on the head: every node here is 127.0.0.1, and the worker's proxy would share the port.
            serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port})
            serve.run(application(settings.resolved(), replicas=2), name=APP, route_prefix="/")
            yield nodes, worker, f"http://127.0.0.1:{port}", settings.resolved()
        finally:
            with contextlib.suppress(Exception):  # Serve may not have started; the cluster goes anyway
                serve.shutdown()


def expected(assistant: Assistant, question: str) -> dict:
    body = assistant.ask(question, k=8).to_dict()
    body.pop("took_ms")
    return body


def same(got: dict, want: dict) -> bool:
    """The same answer and passages, scores within 1e-6."""
    return ((got["answer"], got["abstained"]) == (want["answer"], want["abstained"])
            and [[p[k] for k in KEY] for p in got["passages"]] == [[p[k] for k in KEY] for p in want["passages"]]
            and all(abs(p["score"] - q["score"]) <= 1e-6 for p, q in zip(got["passages"], want["passages"],
                                                                         strict=True))
            and abs(got["confidence"] - want["confidence"]) <= 1e-6)


def test_through_ray_serve_a_sharded_index_answers_as_the_unsharded_one(served, unsharded):
    _, _, url, _ = served
    with httpx.Client(base_url=url, timeout=60) as client:
        for question in MORE_QUESTIONS:
            r = client.post("/ask", json={"question": question, "k": 8})
            assert r.status_code == 200, r.text
            assert same(r.json(), expected(unsharded, question)), question
        docs = client.get("/documents").json()
        assert sorted(d["doc_id"] for d in docs) == sorted(unsharded.generation().manifest["documents"])
        doc_id = REPORT.name
        assert client.get(f"/documents/{doc_id}").json()["text"] == unsharded.document(doc_id).text
        page = client.get("/", params={"q": MORE_QUESTIONS[0]}, headers={"accept": "text/html"})
        assert page.status_code == 200 and "Cited passages" in page.text
        library = client.get("/library")
        assert library.status_code == 200 and "joint-statement.txt" in library.text


def test_an_upload_through_the_app_is_answered_within_seconds(served):
    _, _, url, _ = served
    memo = (FIXTURES / "ingest" / "trade-memo.md").read_bytes()
    with httpx.Client(base_url=url, timeout=120) as client:
        r = client.post("/documents", files={"file": ("trade-memo.md", memo)},
                        headers={"authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 201, r.text
        uploaded = time.monotonic()
        while True:
            r = client.post("/ask", json={"question": "What does the trade memo say?", "k": 5,
                                          "documents": ["uploads/trade-memo.md"]})
            if r.status_code == 200 and r.json()["passages"]:
                break
            assert time.monotonic() - uploaded < 5, r.text
            time.sleep(0.2)
        assert {p["doc_id"] for p in r.json()["passages"]} == {"uploads/trade-memo.md"}
        r = client.delete("/documents/uploads/trade-memo.md", headers={"authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 204


def test_a_shard_that_cannot_answer_gives_a_503_naming_it_never_a_partial_answer(served, unsharded):
    """An app whose second shard is a deployment of an application of its own, then deleted: the same
    question answered in full before, a 503 naming shard 1 after (every try failed), never passages."""
    from ray import serve

    from qa.indexing import shards as sharding
    from qa.serving.ray_serve import App, Shard

    _, _, url, settings = served
    first, second = (str(f) for f in sharding.folders(settings.index_dir))
    question = MORE_QUESTIONS[0]
    try:
        serve.run(Shard.options(name="shard-1").bind(second), name="lonely-shard", route_prefix=None)
        lonely = serve.get_deployment_handle("shard-1", app_name="lonely-shard")
        own = Shard.options(name="shard-0").bind(first)
        serve.run(App.options(name="app").bind(settings.model_dump(mode="json"), own, lonely), name="partial",
                  route_prefix="/partial")
        with httpx.Client(base_url=f"{url}/partial", timeout=120) as client:
            r = client.post("/ask", json={"question": question, "k": 8})
            assert r.status_code == 200 and same(r.json(), expected(unsharded, question)), r.text
            serve.delete("lonely-shard")
            r = client.post("/ask", json={"question": question, "k": 8})
            assert r.status_code == 503, r.text
            assert "shard 1 of 2" in r.json()["detail"] and "passages" not in r.json(), r.text
            assert client.get("/health").status_code == 200  # the app itself still answers what needs no shard
    finally:
        for app in ("partial", "lonely-shard"):
            with contextlib.suppress(Exception):
                serve.delete(app)


def test_losing_a_worker_node_gives_whole_answers_or_a_503_naming_the_shard(served, unsharded):
    nodes, worker, url, settings = served
    questions = MORE_QUESTIONS[:4]
    want = {q: expected(unsharded, q) for q in questions}
    seen: list[tuple[float, int, str]] = []  # (seconds since the node went, status, detail), from then on
    stop = threading.Event()
    gone = [0.0]

    def ask_on() -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            n = 0
            while not stop.is_set():
                question = questions[n % len(questions)]
                n += 1
                try:
                    r = client.post("/ask", json={"question": question, "k": 8})
                except httpx.HTTPError as exc:  # no answer at all: counted, and fails the test below
                    seen.append((time.monotonic() - gone[0], 0, repr(exc)))
                    continue
                if not gone[0]:
                    continue
                status = r.status_code
                if status == 200 and not same(r.json(), want[question]):
                    status = -1  # a partial or different answer
                seen.append((time.monotonic() - gone[0], status, r.text[:300]))

    from ray import serve
    from ray._private import state  # the GCS's actor table; ray.util.state needs the dashboard, off here

    from qa.serving.ray_serve import APP, application

    def placed() -> tuple[list[dict], list[str]]:
        replicas = [a for a in state.actors().values() if a["State"] in ("ALIVE", 2)
                    and ":shard-" in a["ActorClassName"]]
        return replicas, sorted(a["ActorClassName"].split(":")[-1] for a in replicas
                                if a["Address"]["NodeID"] == worker.node_id)

    replicas, on_worker = placed()
    for _ in range(3):  # Serve spreads replicas as best it can: deploy again if none landed on the worker
        if len(replicas) == 4 and on_worker:
            break
        serve.delete(APP)
        serve.run(application(settings, replicas=2), name=APP, route_prefix="/")
        replicas, on_worker = placed()
    assert len(replicas) == 4 and on_worker, ("no shard replica runs on the worker node: nothing would be lost",
                                              replicas)
    client = threading.Thread(target=ask_on)
    client.start()
    try:
        time.sleep(1.0)
        nodes.remove_node(worker)
        gone[0] = time.monotonic()
        while time.monotonic() < gone[0] + 30:
            last = seen[-5:]
            if time.monotonic() > gone[0] + 3 and len(last) == 5 and all(status == 200 for _, status, _ in last):
                break
            time.sleep(0.2)
    finally:
        stop.set()
        client.join(90)
    failures = [(t, status, detail) for t, status, detail in seen if status != 200]
    answered = len(seen) - len(failures)
    last_failure = max((t for t, _, _ in failures), default=0.0)
    print(f"\nnode removed (it held {', '.join(on_worker)}): {len(seen)} answers in {seen[-1][0]:.1f} s, "
          f"{answered} complete and equal, "
          f"{len(failures)} 503s naming a shard, the last {last_failure:.1f} s after the node went")
    for t, status, detail in failures:
        assert status == 503 and "shard" in detail, (t, status, detail)
    assert seen[-5:] and all(status == 200 for _, status, _ in seen[-5:])  # back, within the 30 s
    assert seen[-1][0] < 30
