"""A bounded loopback load test of `qa serve`: N concurrent clients for S seconds, 1 and 2 workers.

    .venv/bin/python bench/load.py [--wikiqa PATH] [--workdir DIR] [--clients 32] [--seconds 30]

Same corpus and index as bench/latency.py (report + 619 WikiQA documents), fast backend. Each
client loops `POST /ask` with the next WikiQA question on its own keep-alive connection. Reports
requests per second, p50/p99 latency and errors (any non-200 or transport error). The clients run
on the same 2 cores as the server, so the figures are a floor for what the server alone can do.
Target: zero errors.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import tempfile
import time
from pathlib import Path

import httpx

from common import bench_parser, machine, parse_bench_args, percentiles, prepare, questions, serve


async def hammer(base: str, asked: list[str], clients: int, seconds: float) -> dict:
    times: list[float] = []
    errors: dict[str, int] = {}
    feed = itertools.cycle(asked)
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            while time.perf_counter() < deadline:
                t = time.perf_counter()
                try:
                    response = await http.post("/ask", json={"question": next(feed)})
                    problem = None if response.status_code == 200 else f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    problem = type(exc).__name__
                if problem:
                    errors[problem] = errors.get(problem, 0) + 1
                else:
                    times.append(time.perf_counter() - t)

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - began
    return {"requests_per_s": round(len(times) / elapsed, 1), "latency_ms": percentiles(times),
            "errors": errors, "seconds": round(elapsed, 1)}


def run(tsv: Path, workdir: Path, clients: int, seconds: float, workers: list[int]) -> dict:
    settings = prepare(tsv, workdir)
    asked = questions(tsv)
    out: dict = {"machine": machine(), "clients": clients, "seconds": seconds}
    for n in workers:
        with serve(settings, "onnx", workers=n) as (base, _):
            out[f"workers_{n}"] = asyncio.run(hammer(base, asked, clients, seconds))
    out["machine_at_end"] = machine()
    return out


def render(out: dict) -> str:
    lines = [out["machine"], f"{out['clients']} clients for {out['seconds']:.0f} s per row, fast backend", "",
             "| workers | requests/s | p50 ms | p99 ms | errors |", "| --- | --- | --- | --- | --- |"]
    for key, figures in out.items():
        if key.startswith("workers_"):
            latency = figures["latency_ms"]
            errors = sum(figures["errors"].values())
            lines.append(f"| {key.split('_')[1]} | {figures['requests_per_s']:.1f} | {latency['p50']:.1f} | "
                         f"{latency['p99']:.1f} | {errors} {figures['errors'] or ''} |")
    lines.append(f"at the end: {out['machine_at_end']}")
    return "\n".join(lines)


def main() -> None:
    parser = bench_parser(__doc__, "keep the corpus and index here (reused)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parse_bench_args(parser)
    with tempfile.TemporaryDirectory(prefix="qa-bench-load-") as tmp:
        workdir = (args.workdir or Path(tmp)).resolve()
        out = run(args.wikiqa, workdir, args.clients, args.seconds, args.workers)
    print(json.dumps(out, indent=2) if args.json else render(out))


if __name__ == "__main__":
    main()
