"""Where one /ask's time goes on Ray Serve (issue 24), stage by stage, beside plain `qa serve` and the
no-op chain of bench/ray_serve.py; one run.

    # after bench/ray_serve.py --workdir DIR (its indexes: DIR/index, DIR/index-2-shards):
    PYTHONPATH=$PWD/src .venv/bin/python bench/serve_breakdown.py --workdir DIR [--questions N] [--rounds R]
        [--env RAY_SERVE_X=V ...] [--no-access-log] [--replica-access-log-off-too]
    QA_TRACE_PROFILE=gather,"shard work" ...   # also a cProfile of those stages in each process

Every process of a request stamps its stages with time.time_ns (one machine: one clock) into a file of
its own: the client (sent, received), the app's ASGI app (first byte in, last byte out), the
Assistant's ask, the encoder, retrieval's gather, the app's round to the shards (RemoteGeneration.ask)
and its handle calls, the shard's own work (ShardReplica.candidates) and the JSON body. The stamps are
put in by patching those functions as a process starts (Ray's `worker_process_setup_hook`; in plain
`qa serve`, a uvicorn child, before the app is made): the product's code runs as it is. A request's
stages are the stamps between its client's two; printed: each stage's p50 (and thread CPU) for plain
`qa serve`, the no-op chain and the product on Serve with 1 and 2 shards, each round on fresh servers
with questions not asked before, plus OMP_NUM_THREADS in each process and the shard calls by method.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

HERE = Path(__file__).resolve().parent
WARM_UP = 10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the stamps, installed in each process -----------------------------------------------------------
def _writer():
    folder = os.environ["QA_TRACE_DIR"]
    out = open(Path(folder) / f"{os.getpid()}.jsonl", "a", buffering=1)  # noqa: SIM115 - the process's life
    lock = threading.Lock()

    def write(record: dict) -> None:
        with lock:
            out.write(json.dumps(record) + "\n")

    return write


def install_stamps() -> None:
    """Patch the stages' functions to stamp their start and end (in this process)."""
    write = _writer()

    def stamped(name, fn, detail=None):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            began, cpu, own = time.time_ns(), time.process_time_ns(), time.thread_time_ns()
            try:
                return fn(*args, **kwargs)
            finally:
                record = {"stage": name, "start": began, "end": time.time_ns(),
                          "process cpu": time.process_time_ns() - cpu, "thread cpu": time.thread_time_ns() - own}
                if detail is not None:
                    record["detail"] = detail(*args)
                write(record)

        return wrapper

    profile = os.environ.get("QA_TRACE_PROFILE")
    if profile:  # a cProfile of the stages named, kept across calls, written every 20 calls
        import cProfile

        profiler, calls = cProfile.Profile(), [0]
        plain = stamped

        def stamped(name, fn, detail=None):  # noqa: F811 - the stamp, profiled
            if name not in profile.split(","):
                return plain(name, fn, detail)

            def profiled(*args, **kwargs):
                profiler.enable()
                try:
                    return fn(*args, **kwargs)
                finally:
                    profiler.disable()
                    calls[0] += 1
                    if calls[0] % 20 == 0:
                        profiler.dump_stats(Path(os.environ["QA_TRACE_DIR"]) / f"{os.getpid()}.prof")

            return plain(name, profiled, detail)

    from qa.answering import retrieval
    from qa.indexing.embedding import Encoder
    from qa.service import Assistant
    from qa.serving import api

    Assistant.ask = stamped("assistant.ask", Assistant.ask)
    Encoder.encode_query = stamped("encode", Encoder.encode_query)
    retrieval.gather = stamped("gather", retrieval.gather)
    api.answer_response = stamped("json body", api.answer_response)
    made = api.create_app

    def create_app(*args, **kwargs):
        app = made(*args, **kwargs)
        app.add_middleware(AsgiStamp, write=write)
        about = {"stage": "process", "pid": os.getpid(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
                 "cpus": len(os.sched_getaffinity(0))}
        if "torch" in sys.modules:
            about["torch threads"] = sys.modules["torch"].get_num_threads()
        write(about)
        return app

    api.create_app = create_app
    try:
        from qa.serving import ray_serve
    except ImportError:
        return
    ray_serve.ShardReplica.candidates = stamped("shard work", ray_serve.ShardReplica.candidates)
    ray_serve.RemoteGeneration.ask = stamped("shard round", ray_serve.RemoteGeneration.ask)
    ray_serve.RemoteGeneration._send = stamped("handle call", ray_serve.RemoteGeneration._send,
                                                lambda gen, shard, call: call[0])


class AsgiStamp:
    """The app's first and last moment with an HTTP request (outside FastAPI and its middleware)."""

    def __init__(self, app, write=None) -> None:
        self.app, self.write = app, write or _writer()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        began = time.time_ns()

        async def stamped_send(message):
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.write({"stage": "app asgi", "start": began, "end": time.time_ns(), "path": scope["path"]})

        await self.app(scope, receive, stamped_send)


def noop_application():
    """bench/ray_serve.py's no-op chain (proxy -> FastAPI ingress -> one shard deployment, constants),
    with the same stamps: the route's body as "assistant.ask", its call as "shard round"."""
    from fastapi import FastAPI
    from ray import serve

    @serve.deployment(ray_actor_options={"num_cpus": 0})
    class NoopShard:
        def __init__(self) -> None:
            self.write = _writer()

        def candidates(self, question: str) -> list:
            self.write({"stage": "shard work", "start": time.time_ns(), "end": time.time_ns()})
            return [(1, 0.5)]

    app = FastAPI()
    app.add_middleware(AsgiStamp)

    @serve.deployment(ray_actor_options={"num_cpus": 0})
    @serve.ingress(app)
    class NoopApp:
        def __init__(self, shard) -> None:
            self.shard = shard
            self.write = _writer()

        @app.post("/ask")
        def ask(self, body: dict) -> dict:
            began = time.time_ns()
            self.shard.candidates.remote(body["question"]).result()
            self.write({"stage": "shard round", "start": began, "end": time.time_ns()})
            self.write({"stage": "assistant.ask", "start": began, "end": time.time_ns()})
            return {"answer": "", "passages": []}

    return NoopApp.bind(NoopShard.bind())


def setup_hook() -> None:
    if os.environ.get("QA_TRACE_DIR"):
        install_stamps()


# -- the client and the reading of the stamps --------------------------------------------------------
def client(base: str, asked: list[str], trace: Path, label: str) -> None:
    out = []
    with httpx.Client(base_url=base, timeout=60) as c:
        for q in asked[:WARM_UP]:
            c.post("/ask", json={"question": q, "k": 5}).raise_for_status()
        time.sleep(0.3)
        for q in asked:
            began = time.time_ns()
            c.post("/ask", json={"question": q, "k": 5}).raise_for_status()
            out.append({"stage": "client", "start": began, "end": time.time_ns(), "label": label})
    with open(trace / "client.jsonl", "a") as f:
        for r in out:
            f.write(json.dumps(r) + "\n")


def breakdown(trace: Path) -> dict:
    records = [json.loads(line) for f in trace.glob("*.jsonl") for line in f.read_text().splitlines()]
    about = [r for r in records if r["stage"] == "process"]
    stamps = sorted((r for r in records if r["stage"] not in ("client", "process")), key=lambda r: r["start"])
    starts = np.array([r["start"] for r in stamps])
    rows: dict[str, list[dict]] = {}
    calls: dict[str, int] = {}
    for req in (r for r in records if r["stage"] == "client"):
        lo, hi = np.searchsorted(starts, [req["start"], req["end"]])
        inside: dict[str, list[dict]] = {}
        for r in stamps[lo:hi]:
            inside.setdefault(r["stage"], []).append(r)
        def at(name: str, end: bool = False, inside: dict = inside) -> int | None:
            return inside[name][0]["end" if end else "start"] if name in inside else None

        def span(a, b):
            return None if a is None or b is None else b - a

        works = inside.get("shard work", [])
        first_work = min((w["start"] for w in works), default=None)
        last_work = max((w["end"] for w in works), default=None)
        t = {"total": req["end"] - req["start"],
             "client -> app ASGI (proxy, router, replica)": span(req["start"], at("app asgi")),
             "ASGI -> route (body from the proxy, validation, thread pool)": span(at("app asgi"), at("assistant.ask")),
             "route -> encode (terms, statistics, match)": span(at("assistant.ask"), at("encode")),
             "encode": span(at("encode"), at("encode", True)),
             "encode -> gather": span(at("encode", True), at("gather")),
             "gather (in process)": None if works else span(at("gather"), at("gather", True)),
             "gather/route -> shard start (sums, send, Ray)": span(at("gather") or at("shard round"), first_work),
             "shard work (max over shards)": max((w["end"] - w["start"] for w in works), default=None),
             "shard end -> round back (pickle, Ray, unpickle)": span(last_work, at("shard round", True)),
             "round end -> gather end (merge)": span(at("shard round", True), at("gather", True)) if works else None,
             "handle calls (.remote)": sum(r["end"] - r["start"] for r in inside.get("handle call", [])) or None,
             "gather end -> ask end (compose, metadata)": span(at("gather", True), at("assistant.ask", True)),
             "json body": span(at("json body"), at("json body", True)),
             "route end -> ASGI end (thread pool, send)": span(at("assistant.ask", True), at("app asgi", True)),
             "ASGI end -> client (back through Serve)": span(at("app asgi", True), req["end"])}
        for name in ("encode", "assistant.ask", "gather"):
            for kind in ("process cpu", "thread cpu"):
                if name in inside and kind in inside[name][0]:
                    t[f"{name}: {kind}"] = inside[name][0][kind]
        for kind in ("process cpu", "thread cpu"):
            if works and kind in works[0]:
                t[f"shard work: {kind} (sum)"] = sum(w[kind] for w in works)
        t = {k: v for k, v in t.items() if v is not None}
        rows.setdefault(req["label"], []).append(t)
        for r in inside.get("handle call", []):
            calls[r["detail"]] = calls.get(r["detail"], 0) + 1
    table = {label: {k: round(float(np.median([r[k] for r in rs if k in r])) / 1e6, 2) for k in rs[0]}
             for label, rs in rows.items()}
    for label, rs in rows.items():  # how much of the total the stages leave unexplained
        table[label]["p95 total"] = round(float(np.percentile([r["total"] for r in rs], 95)) / 1e6, 2)
    return {"processes": about, "shard calls by method": calls, "stages p50 ms": table}


def plain_server(settings_json: str, port: int) -> None:
    """A `qa serve` as cli.py starts it, with the stamps (run in a child by --plain-port)."""
    install_stamps()
    import uvicorn

    from qa.config import Settings
    from qa.serving import api

    uvicorn.run(api.create_app(Settings(**json.loads(settings_json)).resolved()), host="127.0.0.1", port=port,
                log_level="warning")


def wait_up(base: str, proc: subprocess.Popen | None = None) -> None:
    for _ in range(1200):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("the plain server exited")
        try:
            if httpx.post(f"{base}/ask", json={"question": "warm-up"}, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{base} did not answer")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True, help="bench/ray_serve.py's --workdir")
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2, help="plain, 1 shard, 2 shards: this many times each")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="an environment variable for every Ray process (e.g. a RAY_SERVE_* option)")
    parser.add_argument("--no-access-log", action="store_true", help="Serve's LoggingConfig(enable_access_log=False)")
    parser.add_argument("--replica-access-log-off-too", action="store_true",
                        help="also the no-op chain and 1 shard with the replicas' access logs off (in the same round)")
    parser.add_argument("--plain-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_port:
        return plain_server(args.settings, args.plain_port)
    sys.path.insert(0, str(HERE))
    import common
    import wikiqa
    from qa.config import Settings

    asked = common.questions(wikiqa.DEFAULT_TSV if wikiqa.DEFAULT_TSV.is_file()
                             else Path("/work/shared/bench/wikiqa/WikiQA-test.tsv"))[: args.questions * args.rounds]
    layouts = {1: args.workdir / "index", 2: args.workdir / "index-2-shards"}
    corpus = args.workdir / "corpus"
    trace = Path(tempfile.mkdtemp(prefix="qa-trace-"))
    ray_folder = Path(tempfile.mkdtemp(prefix="qa-ray-", dir="/tmp"))
    os.environ.update({"RAY_TMPDIR": str(ray_folder), "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled",
                       "QA_TRACE_DIR": str(trace),
                       "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
                       **dict(e.split("=", 1) for e in args.env)})
    logs = {"logging_config": {"enable_access_log": False}} if args.no_access_log else {}
    apps = [("", logs)]
    if args.replica_access_log_off_too:  # the applications again, their replicas' access logs off
        apps.append((", replicas' access log off", {"logging_config": {"enable_access_log": False}}))
    import ray
    from ray import serve

    from qa.serving.ray_serve import application

    settings = {n: Settings(corpus_dir=corpus, index_dir=folder).resolved() for n, folder in layouts.items()}
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    def plain_server_child() -> tuple[subprocess.Popen, str]:
        plain_port = free_port()
        child = subprocess.Popen([sys.executable, __file__, "--workdir", str(args.workdir), "--plain-port",
                                  str(plain_port), "--settings", settings[1].model_dump_json()])
        wait_up(f"http://127.0.0.1:{plain_port}", child)
        return child, f"http://127.0.0.1:{plain_port}"

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="WARNING", log_to_driver=False,
             runtime_env={"worker_process_setup_hook": "serve_breakdown.setup_hook",
                          "env_vars": {"QA_TRACE_DIR": str(trace)}})
    try:
        serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port}, **logs)
        for r in range(args.rounds):  # each round: fresh servers, questions not asked before
            these = asked[r * args.questions: (r + 1) * args.questions]
            plain, plain_base = plain_server_child()
            client(plain_base, these, trace, "plain qa serve")
            plain.terminate()
            plain.wait(timeout=30)
            for variant, options in apps:
                serve.run(noop_application(), name="noop", route_prefix="/", **options)
                client(base, these, trace, f"no-op chain{variant}")
                serve.delete("noop")
                for n in layouts if not variant else [1]:
                    serve.run(application(settings[n], replicas=1), name="qa", route_prefix="/", **options)
                    wait_up(base)
                    client(base, these, trace, f"serve {n} shard(s){variant}")
                    serve.delete("qa")
        found = breakdown(trace)
        p50 = {label: stages["total"] for label, stages in found["stages p50 ms"].items()}
        found["beyond the no-op chain, ms (serve - plain - no-op)"] = {
            label: round(p50[label] - p50["plain qa serve"] - p50["no-op chain"], 2) for label in p50
            if label.startswith("serve")}
        print(json.dumps(found, indent=1))
        for prof in trace.glob("*.prof"):
            import pstats

            print(f"== profile of process {prof.stem}")
            pstats.Stats(str(prof)).sort_stats("tottime").print_stats(25)
    finally:
        serve.shutdown()
        ray.shutdown()
        shutil.rmtree(ray_folder, ignore_errors=True)
        shutil.rmtree(trace, ignore_errors=True)


if __name__ == "__main__":
    main()
