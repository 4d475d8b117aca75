"""What the product benches share: the machine line, percentiles, the report + WikiQA corpus, a live
`qa serve`, and the command line every bench takes (--wikiqa, --workdir, --json)."""

from __future__ import annotations

import argparse
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np

import wikiqa
from qa.answering.evaluation import load_cases
from qa.config import Settings
from qa.service import Assistant

DEV_SET = wikiqa.ROOT / "tests" / "data" / "dev_questions.jsonl"


def machine() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{platform.machine()}, {os.cpu_count()} cores, no GPU; load average {load}"


def percentiles(seconds: list[float]) -> dict:
    ms = np.array(seconds) * 1000
    return {"p50": round(float(np.percentile(ms, 50)), 2), "p95": round(float(np.percentile(ms, 95)), 2),
            "p99": round(float(np.percentile(ms, 99)), 2), "n": len(ms)}


def prepare(tsv: Path, workdir: Path) -> Settings:
    """The report + WikiQA corpus in workdir, indexed (reused when it is already up to date)."""
    corpus = workdir / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    (corpus / wikiqa.REPORT.name).write_bytes(wikiqa.REPORT.read_bytes())
    wikiqa.write_corpus(wikiqa.load(tsv), corpus)
    settings = Settings(corpus_dir=corpus, index_dir=workdir / "index").resolved()
    print(Assistant(settings).reindex().describe().splitlines()[0], file=sys.stderr)
    return settings


def questions(tsv: Path) -> list[str]:
    asked = [q for q, _, _ in wikiqa.load(tsv).questions] + [c.question for c in load_cases(DEV_SET)]
    return list(dict.fromkeys(asked))


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serve(settings: Settings, backend: str, workers: int = 1, timeout: float = 300):
    """A `qa serve` child on a free loopback port; yields (base URL, seconds from launch to first answer)."""
    port = free_port()
    env = {**os.environ, "QA_BACKEND": backend}
    log = tempfile.NamedTemporaryFile("w+", prefix="qa-serve-", suffix=".log")  # noqa: SIM115 - closed below
    began = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "qa.cli", "serve", "--corpus", str(settings.corpus_dir), "--index",
         str(settings.index_dir), "--port", str(port), "--workers", str(workers)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            if proc.poll() is not None or time.perf_counter() - began > timeout:
                log.seek(0)
                raise RuntimeError(f"qa serve did not answer: {log.read()[-2000:]}")
            try:
                if httpx.post(f"{base}/ask", json={"question": "warm-up"}, timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        yield base, time.perf_counter() - began
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def bench_parser(doc: str, workdir_help: str) -> argparse.ArgumentParser:
    """A bench's command line: its docstring's first paragraph, --wikiqa, --workdir and --json."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--wikiqa", type=Path, default=wikiqa.DEFAULT_TSV, help="WikiQA-test.tsv")
    parser.add_argument("--workdir", type=Path, default=None, help=workdir_help)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    return parser


def parse_bench_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    args = parser.parse_args()
    if not args.wikiqa.is_file():
        parser.error(f"--wikiqa: no file {args.wikiqa}; pass the path of WikiQA-test.tsv")
    return args
