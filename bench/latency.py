"""/ask latency beside query encoding, in-process and over HTTP, with a breakdown and 32 concurrent clients.

    .venv/bin/python bench/latency.py --workdir DIR [--wikiqa TSV] [--squad JSON] [--json]

Corpora (written and indexed in DIR as bench/same_answers.py writes them, so one DIR serves both):
the report alone (its question sets in tests/data), the report with the 619 WikiQA-test documents
(WikiQA's 633 questions and the report's sets) and, in-process only, the 16 SQuAD articles (the
2,828 shared questions). Every figure asks each question once, in order, after a warm-up of other
text; nothing caches questions, their vectors or answers, so none is reused. Encoding alone and
in-process take the questions in turn, and HTTP takes them 16 at a time between (`interleaved`):
timed each in its own pass, as before 2026-12-03, a slow minute of the machine landed on one step,
and the same code's report + WikiQA gap read 1.40 ms in one run and 3.31 in the next.

- encode: `Assistant.encoder.encode_query(text)` alone, each question once.
- in-process: the wall time of `Assistant.ask`, with its parts timed inside the same calls (wall time,
  and the asking thread's CPU time, which the machine's other load moves far less): encode,
  retrieve (`retrieve`), evidence (`answers.assess` without the confidence signals), confidence
  (`confidence.signals`), compose (`compose` without `assess`); "other" is the rest (the generation
  check, the question's terms, IDF and postings (`Generation.match`, BM25 and IDF shares: made before
  encoding since 4015193, so no longer in retrieve), the document-question check, metadata).
- HTTP: `POST /ask` from one keep-alive client to a real `qa serve` on loopback; `GET /health` the
  same way. The single client is the standard library's `http.client` (about 0.5 ms a request lighter
  than httpx, which is the client's cost, not the server's); "HTTP - took_ms" is each request's wall time
  less the `took_ms` the server measured inside `Assistant.ask`: what HTTP adds (framework, loopback,
  client), free of the ask's own variation between the in-process run and the server's. Then 32
  concurrent keep-alive clients (httpx, asyncio) sharing the questions, each asked once: questions a
  second, p50 under that load, and the CPU time of the server process and of the clients a question
  (with 2 cores, their sum beside 2 x the wall time a question says whether the cores are the limit).

Targets (issue 22): in-process p50 <= encode p50 + 2 ms (report, report + WikiQA), + 3 ms (SQuAD);
HTTP p50 <= in-process p50 + 1.5 ms. The machine's load is printed before and after each corpus.
This script imports no bench/ module that puts its own src first: it measures the `qa` on the path.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import contextmanager
from http.client import HTTPConnection
from pathlib import Path

import httpx
import numpy as np

from same_answers import REPORT, SQUAD, WIKIQA, _write, report_sets, squad_corpus, wikiqa_corpus

WARM_UP = ["warm-up question one", "what is this about", "who wrote it", "when did it happen", "why"]
CONCURRENT = 32
BLOCK = 16  # questions one group of steps takes in a row (`interleaved`)
HEALTH_CALLS = 300
PARTS = ("encode", "retrieve", "evidence", "confidence", "compose", "other")


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def p(values: list[float], q: float = 50) -> float:
    return round(float(np.percentile(np.asarray(values) * 1000, q)), 2) if values else float("nan")


def corpora(workdir: Path, wikiqa: Path, squad: Path) -> dict[str, tuple[Path, list[str], bool]]:
    """name -> (corpus folder, questions, over HTTP too)."""
    out = {}
    report = workdir / "report" / "corpus"
    _write(report / REPORT.name, REPORT.read_text(encoding="utf-8"))
    out["report"] = (report, list(dict.fromkeys(report_sets())), True)
    if wikiqa.is_file():
        folder = workdir / "wikiqa" / "corpus"
        out["report + WikiQA"] = (folder, list(dict.fromkeys(wikiqa_corpus(wikiqa, folder) + report_sets())), True)
    if squad.is_file():
        folder = workdir / "squad" / "corpus"
        out["SQuAD"] = (folder, list(dict.fromkeys(squad_corpus(squad, folder))), False)
    return out


class Timed:
    """Wraps a function, adding each call's wall seconds to `spent[name]` and the CPU seconds of the
    calling thread to `cpu[name]` (which other processes' load disturbs far less than wall time)."""

    def __init__(self, spent: dict[str, float], cpu: dict[str, float], name: str, fn) -> None:
        self.spent, self.cpu, self.name, self.fn = spent, cpu, name, fn

    def __call__(self, *args, **kwargs):
        began, began_cpu = time.perf_counter(), time.thread_time()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.spent[self.name] += time.perf_counter() - began
            self.cpu[self.name] += time.thread_time() - began_cpu


class InProcess:
    """An Assistant in this process: `encode_alone` times encoding alone, `ask` times Assistant.ask with its
    parts timed inside the same call (wall time, and the asking thread's CPU time)."""

    def __init__(self, folder: Path) -> None:
        import qa.answering.answers as answers
        import qa.answering.confidence as confidence
        import qa.service as service
        from qa.config import Settings

        self.assistant = service.Assistant(Settings(corpus_dir=folder, index_dir=folder.parent / "index"))
        print(self.assistant.reindex().describe().splitlines()[0], file=sys.stderr)
        self.encode, self.asks, self.cpu_after = [], [], []
        self.parts, self.cpu_parts = defaultdict(list), defaultdict(list)
        self.spent: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self._encode_query = self.assistant.encoder.encode_query
        self._modules = (service, answers, confidence)
        self._saved = (service.retrieve, service.compose, answers.assess, confidence.signals)

    def __enter__(self) -> InProcess:
        for q in WARM_UP:
            self.assistant.ask(q)
        service, answers, confidence = self._modules
        spent, cpu = self.spent, self.cpu
        service.retrieve = Timed(spent, cpu, "retrieve", service.retrieve)
        service.compose = Timed(spent, cpu, "compose+", service.compose)
        answers.assess = Timed(spent, cpu, "assess", answers.assess)
        confidence.signals = Timed(spent, cpu, "confidence", confidence.signals)
        self.assistant.encoder.encode_query = Timed(spent, cpu, "encode", self._encode_query)
        return self

    def __exit__(self, *exc) -> None:
        service, answers, confidence = self._modules
        service.retrieve, service.compose, answers.assess, confidence.signals = self._saved
        del self.assistant.encoder.encode_query

    def encode_alone(self, question: str) -> None:
        t = time.perf_counter()
        self._encode_query(question)
        self.encode.append(time.perf_counter() - t)

    def ask(self, question: str) -> None:
        self.spent.clear()
        self.cpu.clear()
        t, t_cpu = time.perf_counter(), time.thread_time()
        self.assistant.ask(question)
        total, total_cpu = time.perf_counter() - t, time.thread_time() - t_cpu
        self.asks.append(total)
        for k, v in _split(self.spent, total).items():
            self.parts[k].append(v)
        for k, v in _split(self.cpu, total_cpu).items():
            self.cpu_parts[k].append(v)
        self.cpu_after.append(total_cpu - self.cpu["encode"])

    def figures(self) -> dict:
        return {"encode_p50": p(self.encode), "ask_p50": p(self.asks), "ask_p95": p(self.asks, 95),
                "parts_p50": {k: p(self.parts[k]) for k in PARTS},
                "parts_mean": {k: round(float(np.mean(self.parts[k])) * 1000, 2) for k in PARTS},
                "cpu_parts_p50": {k: p(self.cpu_parts[k]) for k in PARTS},
                "cpu_after_encoding_p50": p(self.cpu_after)}


def _split(times: dict[str, float], total: float) -> dict[str, float]:
    out = {"encode": times["encode"], "retrieve": times["retrieve"],
           "evidence": times["assess"] - times["confidence"], "confidence": times["confidence"],
           "compose": times["compose+"] - times["assess"]}
    out["other"] = total - sum(out.values())
    return out


@contextmanager
def serve(folder: Path, timeout: float = 300):
    """A `qa serve` child (the `qa` on this path) on a free loopback port; yields its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tempfile.NamedTemporaryFile("w+", prefix="qa-serve-", suffix=".log")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "qa.cli", "serve", "--corpus", str(folder), "--index",
                             str(folder.parent / "index"), "--port", str(port), "--workers", "1"],
                            stdout=log, stderr=subprocess.STDOUT)
    base, began = f"http://127.0.0.1:{port}", time.perf_counter()
    try:
        while True:
            if proc.poll() is not None or time.perf_counter() - began > timeout:
                log.seek(0)
                raise RuntimeError(f"qa serve did not answer: {log.read()[-2000:]}")
            try:
                if httpx.get(f"{base}/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        yield base, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def concurrently(base: str, questions: list[str], clients: int, pid: int) -> dict:
    queue: asyncio.Queue[str] = asyncio.Queue()
    for q in questions:
        queue.put_nowait(q)
    times: list[float] = []

    async def client() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=120) as c:
            while not queue.empty():
                q = queue.get_nowait()
                t = time.perf_counter()
                r = await c.post("/ask", json={"question": q})
                times.append(time.perf_counter() - t)
                assert r.status_code == 200, r.text

    began, server_cpu, client_cpu = time.perf_counter(), cpu_seconds(pid), time.process_time()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - began
    n = len(questions)
    return {"questions_per_s": round(n / wall, 1), "p50_under_load": p(times), "p95_under_load": p(times, 95),
            "cores_busy": round((cpu_seconds(pid) - server_cpu + time.process_time() - client_cpu) / wall, 2),
            "server_cpu_ms_per_question": round((cpu_seconds(pid) - server_cpu) / n * 1000, 2),
            "client_cpu_ms_per_question": round((time.process_time() - client_cpu) / n * 1000, 2)}


class OverHttp:
    """One keep-alive `http.client` connection to a `qa serve` child: `ask` times POST /ask."""

    def __init__(self, base: str) -> None:
        self.client = HTTPConnection(*base.removeprefix("http://").split(":"), timeout=60)
        self.asks, self.added, self.health = [], [], []

    def request(self, method: str, path: str, body: bytes | None = None) -> bytes:
        self.client.request(method, path, body, {"content-type": "application/json"} if body else {})
        response = self.client.getresponse()
        data = response.read()
        assert response.status == 200, data
        return data

    def warm_and_health(self) -> None:
        for q in WARM_UP:
            self.request("POST", "/ask", json.dumps({"question": q}).encode())
        for _ in range(HEALTH_CALLS):
            t = time.perf_counter()
            self.request("GET", "/health")
            self.health.append(time.perf_counter() - t)

    def ask(self, question: str) -> None:
        body = json.dumps({"question": question}).encode()
        t = time.perf_counter()
        answer = self.request("POST", "/ask", body)
        self.asks.append(time.perf_counter() - t)
        self.added.append(self.asks[-1] - json.loads(answer)["took_ms"] / 1000)

    def figures(self) -> dict:
        return {"ask_p50": p(self.asks), "ask_p95": p(self.asks, 95), "added_p50": p(self.added),
                "health_p50": p(self.health)}


def interleaved(questions: list[str], groups: list[dict[str, Callable[[str], None]]], block: int = BLOCK) -> None:
    """Every question once through each step. The groups take the questions `block` at a time in turn,
    the order of the groups rotated from one block to the next; inside a group, the steps take each
    question in turn, their order rotated from one question to the next. So a slow minute of the machine
    lands on every step alike (timed each in its own pass, it landed on one), and encoding alone
    follows an ask as an ask's own encoding does, while the server, a process of its own, takes its
    questions in a row, as from one client. "encode" takes the question half the list away: the
    in-process Assistant never encodes a question just before asking it."""
    n = len(questions)
    for b, start in enumerate(range(0, n, block)):
        for group in groups[b % len(groups):] + groups[:b % len(groups)]:
            names = list(group)
            for i in range(start, min(start + block, n)):
                turn = i % len(names)
                for name in names[turn:] + names[:turn]:
                    group[name](questions[(i + n // 2) % n] if name == "encode" else questions[i])


def measure(folder: Path, questions: list[str], http: bool, crowd: list[str]) -> dict:
    """In-process (and over HTTP, for `http`) figures of one corpus, the steps interleaved (`interleaved`);
    then the 32 clients on their own questions (`crowd`, each asked once)."""
    local = InProcess(folder)  # builds the index the server then opens
    with contextlib.ExitStack() as stack:
        groups: list[dict[str, Callable[[str], None]]] = [{"encode": local.encode_alone, "ask": local.ask}]
        if http:
            base, pid = stack.enter_context(serve(folder))
            remote = OverHttp(base)
            remote.warm_and_health()
            groups.append({"http": remote.ask})
        with local:
            interleaved(questions, groups)
        out = {"in_process": local.figures()}
        if http:
            remote.client.close()
            out["http"] = remote.figures()
            out["http"]["concurrent"] = asyncio.run(concurrently(base, crowd, CONCURRENT, pid))
    return out


def run(workdir: Path, wikiqa: Path, squad: Path) -> dict:
    out = {}
    plan = corpora(workdir, wikiqa, squad)
    squad_questions = plan["SQuAD"][1] if "SQuAD" in plan else []
    for name, (folder, questions, http) in plan.items():
        row = {"questions": len(questions), "load_before": load()}
        # 32 clients: the SQuAD questions (not otherwise asked of this corpus), or the same ones
        crowd = squad_questions[:max(len(questions), 600)] or questions
        row.update(measure(folder, questions, http, crowd))
        row["load_after"] = load()
        out[name] = row
    return out


def render(out: dict) -> str:
    lines = ["| corpus (questions) | encode p50 | in-process p50 / p95 | after encoding | " + " | ".join(PARTS)
             + " | HTTP p50 / p95 | HTTP - in-process | HTTP - took_ms | /health p50 | load before → after |",
             "|---" * 14 + "|"]
    for name, row in out.items():
        local, http = row["in_process"], row.get("http")
        parts = local["parts_p50"]
        cells = [f"{name} ({row['questions']})", f"{local['encode_p50']:.1f}",
                 f"{local['ask_p50']:.1f} / {local['ask_p95']:.1f}", f"{local['ask_p50'] - local['encode_p50']:.2f}",
                 *(f"{parts[k]:.2f}" for k in PARTS)]
        if http:
            cells += [f"{http['ask_p50']:.1f} / {http['ask_p95']:.1f}", f"{http['ask_p50'] - local['ask_p50']:.2f}",
                      f"{http['added_p50']:.2f}", f"{http['health_p50']:.2f}"]
        else:
            cells += ["—"] * 4
        cells.append(f"{row['load_before']} → {row['load_after']}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "CPU time of the asking thread, p50 (ms; other processes' load moves it far less than wall time):",
              "| corpus | after encoding | " + " | ".join(PARTS[1:]) + " |", "|---" * (2 + len(PARTS[1:])) + "|"]
    for name, row in out.items():
        local = row["in_process"]
        lines.append(f"| {name} | {local['cpu_after_encoding_p50']:.2f} | "
                     + " | ".join(f"{local['cpu_parts_p50'][k]:.2f}" for k in PARTS[1:]) + " |")
    lines += ["", f"{CONCURRENT} concurrent clients (httpx, asyncio, in this process) on one `qa serve` worker:",
              "| corpus | questions/s | p50 / p95 under load | cores busy (server + clients) "
              "| server CPU ms a question | clients' CPU ms a question |", "|---" * 6 + "|"]
    for name, row in out.items():
        if "http" in row:
            c = row["http"]["concurrent"]
            lines.append(f"| {name} | {c['questions_per_s']} | {c['p50_under_load']:.0f} / {c['p95_under_load']:.0f} | "
                         f"{c['cores_busy']:.2f} | {c['server_cpu_ms_per_question']:.1f} | "
                         f"{c['client_cpu_ms_per_question']:.1f} |")
    lines.append("\nms. 'encode p50': encode_query alone; the parts (encode among them) are each one's p50 inside "
                 "Assistant.ask; 'after encoding' is in-process p50 - encode p50; 'HTTP - took_ms': each request's "
                 "wall time less the server's own time of Assistant.ask in it.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True, help="corpora and indexes, reused between runs")
    parser.add_argument("--wikiqa", type=Path, default=WIKIQA, help="WikiQA-test.tsv")
    parser.add_argument("--squad", type=Path, default=SQUAD, help="squad-v2.0-16-articles.json")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    import qa

    print(f"qa from {Path(qa.__file__).parent}; {os.cpu_count()} cores; load {load()}", file=sys.stderr)
    out = run(args.workdir.resolve(), args.wikiqa, args.squad)
    print(json.dumps(out, indent=2) if args.json else render(out))


if __name__ == "__main__":
    main()
