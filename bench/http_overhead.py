"""Where an HTTP /ask spends the time beyond `Assistant.ask`: measured inside the server, per phase.

    .venv/bin/python bench/http_overhead.py --workdir DIR [--corpus report|wikiqa] [--questions N]

Serves the app as `qa serve` does (uvicorn, one worker, httptools and uvloop when installed, log level
info) on loopback, wrapped in an outermost ASGI middleware that times each request: from the app's
entry to `Assistant.ask`'s start ("before ask": middlewares, routing, body, validation, the trip to the
thread pool), `ask` itself, from its end to the response's start ("after ask": serialising, the trip
back), and the sending of the response (with uvicorn's access log); the event loop thread's CPU time in
the request; and the client's wall time (`http.client`, one keep-alive connection). Two servers run
side by side, uvicorn's access log on and off, and the questions alternate between them so the
machine's load falls on both alike; `/health` is timed the same way. The corpora are bench/latency.py's
(run it once with the same --workdir first). This script imports no bench/ module that puts its own src
first: it measures the `qa` on the path.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from http.client import HTTPConnection
from pathlib import Path

import numpy as np

from same_answers import WIKIQA, report_sets, wikiqa_corpus

PHASES = ("client", "server", "before_ask", "ask", "after_ask", "send", "loop_cpu")

SERVER = r'''
import json, sys, threading, time
from pathlib import Path
import uvicorn
from qa.config import Settings
from qa.serving.api import create_app

folder, port, access = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
app = create_app(Settings(corpus_dir=folder, index_dir=folder.parent / "index"))
assistant, records, marks = app.state.assistant, [], {}
ask = assistant.ask

def timed_ask(*args, **kwargs):
    marks["ask_began"] = time.perf_counter()
    try:
        return ask(*args, **kwargs)
    finally:
        marks["ask_ended"] = time.perf_counter()

assistant.ask = timed_ask

class Timing:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["path"] == "/_timings":
            body = json.dumps(records).encode()
            records.clear()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            return await send({"type": "http.response.body", "body": body})
        marks.clear()
        began, cpu, started = time.perf_counter(), time.thread_time(), []

        async def timed_send(message):
            if message["type"] == "http.response.start":
                started.append(time.perf_counter())
            await send(message)

        await self.app(scope, receive, timed_send)
        ended = time.perf_counter()
        row = {"path": scope["path"], "server": ended - began, "loop_cpu": time.thread_time() - cpu,
               "send": ended - started[0]}
        if "ask_began" in marks:
            row.update(before_ask=marks["ask_began"] - began, ask=marks["ask_ended"] - marks["ask_began"],
                       after_ask=started[0] - marks["ask_ended"])
        records.append(row)

uvicorn.run(Timing(app), host="127.0.0.1", port=port, log_level="info", access_log=access)
'''


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def request(conn: HTTPConnection, method: str, path: str, body: bytes | None = None) -> bytes:
    conn.request(method, path, body, {"content-type": "application/json"} if body else {})
    response = conn.getresponse()
    data = response.read()
    assert response.status == 200, data
    return data


def measure(folder: Path, questions: list[str]) -> dict:
    servers, conns = {}, {}
    try:
        for access in ("on", "off"):
            port = free_port()
            servers[access] = subprocess.Popen(
                [sys.executable, "-c", SERVER, str(folder), str(port), "1" if access == "on" else "0"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            conns[access] = HTTPConnection("127.0.0.1", port, timeout=60)
        for access, conn in conns.items():
            for _ in range(3000):
                assert servers[access].poll() is None, "the server stopped; run it by hand to see why"
                try:
                    request(conn, "GET", "/health")
                    break
                except (OSError, AssertionError):
                    conn.close()
                    time.sleep(0.1)
            for q in ("warm-up question one", "who wrote it", "when did it happen"):
                request(conn, "POST", "/ask", json.dumps({"question": q}).encode())
            request(conn, "GET", "/_timings")
        client: dict[tuple[str, str], list[float]] = {(a, p): [] for a in conns for p in ("/ask", "/health")}
        for n, q in enumerate(questions):
            access = ("on", "off")[n % 2]
            for path, body in (("/ask", json.dumps({"question": q}).encode()), ("/health", None)):
                began = time.perf_counter()
                request(conns[access], "POST" if body else "GET", path, body)
                client[access, path].append(time.perf_counter() - began)
        out = {}
        for access, conn in conns.items():
            rows = json.loads(request(conn, "GET", "/_timings"))
            for path in ("/ask", "/health"):
                mine = [r for r in rows if r["path"] == path]
                cells = {"client": client[access, path], **{k: [r[k] for r in mine if k in r] for k in PHASES[1:]}}
                out[f"{path}, access log {access}"] = {k: round(float(np.median(v)) * 1000, 3) if v else None
                                                       for k, v in cells.items()}
        return out
    finally:
        for conn in conns.values():
            conn.close()
        for proc in servers.values():
            proc.terminate()
            proc.wait(timeout=30)


def render(out: dict) -> str:
    lines = ["| p50, ms | " + " | ".join(PHASES) + " | client - ask |", "|---" * (len(PHASES) + 2) + "|"]
    for name, row in out.items():
        rest = f"{row['client'] - row['ask']:.2f}" if row["ask"] is not None else "—"
        lines.append(f"| {name} | " + " | ".join("—" if row[k] is None else f"{row[k]:.2f}" for k in PHASES)
                     + f" | {rest} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True, help="bench/latency.py's --workdir (its indexes)")
    parser.add_argument("--corpus", choices=("report", "wikiqa"), default="wikiqa")
    parser.add_argument("--wikiqa", type=Path, default=WIKIQA, help="WikiQA-test.tsv")
    parser.add_argument("--questions", type=int, default=800)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    folder = args.workdir.resolve() / args.corpus / "corpus"
    if not (folder.parent / "index").is_dir():
        parser.error(f"no index in {folder.parent}: run bench/latency.py --workdir {args.workdir} first")
    questions = report_sets() if args.corpus == "report" else wikiqa_corpus(args.wikiqa, folder) + report_sets()
    questions = list(dict.fromkeys(questions))[: args.questions]
    import qa

    print(f"qa from {Path(qa.__file__).parent}; load {', '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{len(questions)} questions", file=sys.stderr)
    out = measure(folder, questions)
    print(f"load after {', '.join(f'{x:.2f}' for x in os.getloadavg())}", file=sys.stderr)
    print(json.dumps(out, indent=2) if args.json else render(out))


if __name__ == "__main__":
    main()
