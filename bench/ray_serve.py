"""`qa serve --ray` (issue 24): /ask through Ray Serve on one node beside plain `qa serve` and beside a
no-op Serve application of the same shape, throughput with 1 and 2 replicas a shard, and each shard's
memory at 1, 2 and 4 shards; one run.

    .venv/bin/python bench/ray_serve.py [--wikiqa ../shared/bench/wikiqa/WikiQA-test.tsv] [--workdir DIR]
                                        [--questions N] [--seconds S] [--json]

Corpus: the report plus the 619 WikiQA-test documents (bench/wikiqa.py), indexed with 1, 2 and 4
shards. Questions: the first N WikiQA and dev-set questions (default 200), each asked once after a
warm-up, by one keep-alive client for each server, with k=5, every server in turn (each question goes to
all of them, in an order rotated question by question, so that the machine's drift over the run falls
on all alike):

- plain: `qa serve` (uvicorn, one worker) on the 1-shard index;
- serve 1 shard, serve 2 shards: the product on Ray Serve (proxy -> app -> a deployment per shard),
  Ray started here on one node (2 CPUs), 1 replica a shard, the two deployed side by side as two
  applications (route prefixes /shards-1 and /shards-2);
- no-op chain: proxy -> a FastAPI ingress deployment -> one shard deployment returning a constant,
  the app returning a constant: what Ray's two hops cost with no work in them.

Target: (serve - plain) p50 <= no-op chain p50 + 3 ms. Throughput: 4 client threads for S seconds
(default 15) on the 2-shard app with 1, then 2 replicas a shard. Memory: each shard opened in a
process of its own (ShardReplica, as a replica does), every question's candidates (dense, BM25, the
passages that could reach the answer) asked of it; the rise in resident memory over the process after
imports, and passages per GB of that rise.
Ray's files live in a temporary folder removed at the end (RAY_TMPDIR), as in the tests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

import common
from qa.config import Settings
from qa.indexing import shards as sharding
from qa.indexing.generations import segment_sizes
from qa.service import Assistant

WARM_UP = 10
CLIENTS = 4


def sharded(settings: Settings, count: int) -> Settings:
    """The same corpus indexed into `count` shards (reused when up to date)."""
    if count == 1:
        return settings
    out = settings.model_copy(update={"index_dir": settings.index_dir.with_name(f"index-{count}-shards")})
    print(Assistant(out).reindex(shards=count).describe().splitlines()[0], file=sys.stderr)
    return out


def timed(bases: dict[str, str], asked: list[str]) -> dict[str, dict]:
    """/ask p50 of each server in `bases` (name -> URL), asked in turn: each question goes to every
    server, in an order rotated question by question, so that the machine's drift over the run (other
    load, Ray's background work) falls on all of them alike rather than on whichever ran last."""
    clients = {name: httpx.Client(base_url=base, timeout=60) for name, base in bases.items()}
    names = list(clients)
    try:
        for client in clients.values():
            for q in asked[:WARM_UP]:
                client.post("/ask", json={"question": q, "k": 5}).raise_for_status()
        times: dict[str, list[float]] = {name: [] for name in names}
        for n, q in enumerate(asked):
            for name in names[n % len(names):] + names[: n % len(names)]:
                t = time.perf_counter()
                clients[name].post("/ask", json={"question": q, "k": 5}).raise_for_status()
                times[name].append(time.perf_counter() - t)
    finally:
        for client in clients.values():
            client.close()
    return {name: common.percentiles(times[name]) for name in names}


def throughput(base: str, asked: list[str], seconds: float) -> dict:
    done, errors = [0], [0]
    stop = time.monotonic() + seconds
    lock = threading.Lock()

    def client(offset: int) -> None:
        with httpx.Client(base_url=base, timeout=60) as c:
            n = offset
            while time.monotonic() < stop:
                r = c.post("/ask", json={"question": asked[n % len(asked)], "k": 5})
                n += CLIENTS
                with lock:
                    done[0] += r.status_code == 200
                    errors[0] += r.status_code != 200

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"answers_per_s": round(done[0] / seconds, 1), "errors": errors[0]}


def noop_application():
    from fastapi import FastAPI
    from ray import serve

    @serve.deployment(ray_actor_options={"num_cpus": 0})
    class NoopShard:
        def candidates(self, question: str) -> list:
            return [(1, 0.5)]

    app = FastAPI()

    @serve.deployment(ray_actor_options={"num_cpus": 0})
    @serve.ingress(app)
    class NoopApp:
        def __init__(self, shard) -> None:
            self.shard = shard

        @app.post("/ask")
        def ask(self, body: dict) -> dict:
            self.shard.candidates.remote(body["question"]).result()
            return {"answer": "", "passages": []}

    return NoopApp.bind(NoopShard.bind())


def on_serve(asked: list[str], seconds: float, layouts: dict[int, Settings], plain: str) -> dict:
    """Ray on this one node, every application deployed at once on the same proxy (the no-op chain at
    /noop, the product at /shards-1 and /shards-2), then timed in turn with plain `qa serve` (`plain`)."""
    import ray
    from ray import serve

    from qa.serving.ray_serve import application

    out = {}
    port = common.free_port()
    base = f"http://127.0.0.1:{port}"
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    try:
        began = time.perf_counter()
        serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port})
        serve.run(noop_application(), name="noop", route_prefix="/noop")
        out["serve_start_s"] = round(time.perf_counter() - began, 1)
        bases = {"plain qa serve": plain, "noop chain": f"{base}/noop"}
        for count, settings in layouts.items():
            began = time.perf_counter()
            serve.run(application(settings, replicas=1), name=f"qa-{count}", route_prefix=f"/shards-{count}")
            out[f"deploy {count} shard(s) s"] = round(time.perf_counter() - began, 1)
            bases[f"serve {count} shard{'s' * (count > 1)}"] = f"{base}/shards-{count}"
        out.update(timed(bases, asked))
        count = max(layouts)  # throughput: that application alone on the node
        for name in ["noop", *(f"qa-{n}" for n in layouts if n != count)]:
            serve.delete(name)
        out["throughput 1 replica"] = throughput(f"{base}/shards-{count}", asked, seconds)
        serve.run(application(layouts[count], replicas=2), name=f"qa-{count}", route_prefix=f"/shards-{count}")
        timed({"warm-up": f"{base}/shards-{count}"}, asked[:WARM_UP])
        out["throughput 2 replicas"] = throughput(f"{base}/shards-{count}", asked, seconds)
        serve.delete(f"qa-{count}")
    finally:
        serve.shutdown()
        ray.shutdown()
    return out


MEMORY_PROBE = r"""
import json, sys, numpy as np
from pathlib import Path
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
from qa.serving.ray_serve import ShardReplica
from qa.indexing.lexical import terms
queries = np.load(sys.argv[2])
questions = json.loads(Path(sys.argv[3]).read_text())
before = rss()
shard = ShardReplica(sys.argv[1])
gen = shard.generation()
for q, v in zip(questions, queries):
    stats = gen.words.part_statistics(sorted(set(terms(q))))
    shard.candidates(v, q, 80, None, stats, gen.words.idf(list(dict.fromkeys(terms(q)))), 20)
print(json.dumps({"passages": gen.chunk_count, "rss_rise": rss() - before}))
"""


def memory(layouts: dict[int, Settings], asked: list[str], workdir: Path) -> dict:
    encoder = Assistant(layouts[1]).encoder
    np.save(workdir / "queries.npy", np.vstack([encoder.encode_query(q) for q in asked]))
    (workdir / "questions.json").write_text(json.dumps(asked))
    out = {}
    for count, settings in layouts.items():
        rows = []
        for folder in sharding.folders(settings.index_dir):
            probe = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(folder), str(workdir / "queries.npy"),
                                    str(workdir / "questions.json")], capture_output=True, text=True, check=True)
            found = json.loads(probe.stdout.strip().splitlines()[-1])
            found["disk_bytes"] = sum(size[2] for size in segment_sizes(folder))
            rows.append(found)
        out[count] = {"passages per shard": [r["passages"] for r in rows],
                      "MiB resident per shard": [round(r["rss_rise"] / 2**20, 1) for r in rows],
                      "MiB on disk per shard": [round(r["disk_bytes"] / 2**20, 1) for r in rows],
                      "passages per GB resident": round(sum(r["passages"] for r in rows)
                                                        / (sum(r["rss_rise"] for r in rows) / 1e9))}
    return out


def main() -> None:
    parser = common.bench_parser(__doc__, "where the corpus and indexes are kept (default: a temporary folder)")
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = common.parse_bench_args(parser)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="qa-ray-serve-"))
    ray_folder = Path(tempfile.mkdtemp(prefix="qa-ray-", dir="/tmp"))
    # RAY_AUTH_MODE: a cluster started by ray.init would otherwise write a token to ~/.ray
    os.environ.update({"RAY_TMPDIR": str(ray_folder), "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"})
    try:
        settings = common.prepare(args.wikiqa, workdir)
        layouts = {n: sharded(settings, n) for n in (1, 2, 4)}
        asked = common.questions(args.wikiqa)[: args.questions]
        results = {"machine": common.machine(), "questions": len(asked)}
        with common.serve(settings, settings.backend) as (base, _):  # plain, timed in turn with Serve's
            results.update(on_serve(asked, args.seconds, {1: layouts[1], 2: layouts[2]}, base))
        results["memory"] = memory(layouts, asked, workdir)
        results["machine after"] = common.machine()
    finally:
        shutil.rmtree(ray_folder, ignore_errors=True)
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    plain = results["plain qa serve"]["p50"]
    results["overhead p50 ms (serve 1 shard - plain)"] = round(results["serve 1 shard"]["p50"] - plain, 2)
    results["overhead p50 ms (serve 2 shards - plain)"] = round(results["serve 2 shards"]["p50"] - plain, 2)
    results["target: overhead <= no-op chain p50 + 3 ms"] = round(results["noop chain"]["p50"] + 3, 2)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
