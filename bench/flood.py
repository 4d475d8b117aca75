"""A bounded loopback flood of `qa serve` with normal and hostile requests: zero 5xx is the target.

    .venv/bin/python bench/flood.py [--corpus corpus] [--clients 32] [--seconds 30] [--baseline-seconds 10]

One `qa serve` (the configured backend) over --corpus, indexed fresh in a temporary folder. Each
client loops over a fixed mix on its own keep-alive connection: questions by POST and GET, answer
pages and document views, the document list, and hostile input (lone surrogates, FTS5 syntax,
control characters, malformed JSON, out-of-range k, path traversal, a body over the 64 KB limit),
each with the status it must get. First 1 client for --baseline-seconds (the baseline), then
--clients clients for --seconds, against the same server in the same run. Reports requests/s,
p50/p99 latency, 5xx count, other unexpected statuses and transport errors, and the ratios of the
flood to the baseline. The clients share the server's 2 cores, so throughput is a floor.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from common import machine, percentiles, serve
from qa.config import Settings

ROOT = Path(__file__).resolve().parent.parent
JSON = {"content-type": "application/json"}


def request_mix() -> list[tuple[str, dict, int]]:
    """(name, httpx request arguments, expected status), cycled through by every client."""
    ask = lambda body: {"method": "POST", "url": "/ask", "json": body}  # noqa: E731
    raw = lambda content: {"method": "POST", "url": "/ask", "content": content, "headers": JSON}  # noqa: E731
    get = lambda url, **params: {"method": "GET", "url": url, "params": params}  # noqa: E731
    return [
        ("ask", ask({"question": "What does Article II of the 1960 treaty call for?"}), 200),
        ("ask", ask({"question": "Why did members of Congress smash a Toshiba radio?", "k": 3}), 200),
        ("ask", ask({"question": "What should the allies do about digital trade?", "k": 10}), 200),
        ("ask GET", get("/ask", q="anti-corruption cooperation", k=2), 200),
        ("answer page", get("/", q="What is the Indo-Pacific Economic Cooperation Dialogue?"), 200),
        ("document view", get("/view/article-ii-mandate.txt", start=824, end=1812, hl="149-327"), 200),
        ("documents", get("/documents"), 200),
        ("document", get("/documents/article-ii-mandate.txt"), 200),
        ("health", get("/health"), 200),
        ("hostile 200", ask({"question": '" * NEAR AND OR NOT ( ) : ^ - trade'}), 200),
        ("hostile 200", ask({"question": "trade\x00\x1b[31m\u202e rules 😀"}), 200),
        ("hostile 200", get("/", q="<script>alert(1)</script><img src=x onerror=alert(2)>"), 200),
        ("hostile 422", raw(b'{"question": "trade \\ud800"}'), 422),
        ("hostile 422", raw(b'{"question": '), 422),
        ("hostile 422", ask({"question": "   "}), 422),
        ("hostile 422", ask({"question": "x" * 2001}), 422),
        ("hostile 422", ask({"question": "trade", "k": 0}), 422),
        ("hostile 422", ask({"question": "trade", "documents": ["a"] * 101}), 422),
        ("hostile 404", get("/documents/..%2F..%2Fetc%2Fpasswd"), 404),
        ("hostile 404", get("/view/%2e%2e/%2e%2e/etc/passwd"), 404),
        ("hostile 413", raw(b'{"question": "' + b"x" * 70_000 + b'"}'), 413),
    ]


async def flood(base: str, clients: int, seconds: float) -> dict:
    mix = request_mix()
    times: list[float] = []
    ask_times: list[float] = []
    statuses: Counter = Counter()
    unexpected: Counter = Counter()
    transport: Counter = Counter()
    deadline = time.perf_counter() + seconds

    async def client(offset: int) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            for name, request, expected in itertools.islice(itertools.cycle(mix), offset, None):
                if time.perf_counter() >= deadline:
                    return
                began = time.perf_counter()
                try:
                    response = await http.request(**request)
                except httpx.HTTPError as exc:
                    transport[type(exc).__name__] += 1
                    continue
                took = time.perf_counter() - began
                times.append(took)
                if name == "ask":
                    ask_times.append(took)
                statuses[response.status_code] += 1
                if response.status_code != expected:
                    unexpected[f"{name}: {response.status_code} (expected {expected})"] += 1

    began = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    elapsed = time.perf_counter() - began
    return {
        "clients": clients, "seconds": round(elapsed, 1), "requests": len(times),
        "requests_per_s": round(len(times) / elapsed, 1), "latency_ms": percentiles(times),
        "ask_latency_ms": percentiles(ask_times), "5xx": sum(n for s, n in statuses.items() if s >= 500),
        "statuses": dict(sorted(statuses.items())), "unexpected": dict(unexpected),
        "transport_errors": dict(transport),
    }


def run(corpus: Path, clients: int, seconds: float, baseline_seconds: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="qa-flood-") as work:
        settings = Settings(corpus_dir=corpus.resolve(), index_dir=Path(work) / "index")
        out: dict = {"machine": machine(), "corpus": str(corpus), "backend": settings.backend}
        with serve(settings, settings.backend) as (base, _):
            out["baseline"] = asyncio.run(flood(base, 1, baseline_seconds))
            out["flood"] = asyncio.run(flood(base, clients, seconds))
    out["machine_at_end"] = machine()
    base_rps, flood_rps = out["baseline"]["requests_per_s"], out["flood"]["requests_per_s"]
    out["ratios"] = {
        "requests_per_s": round(flood_rps / base_rps, 2) if base_rps else None,
        "p50": round(out["flood"]["latency_ms"]["p50"] / out["baseline"]["latency_ms"]["p50"], 2),
        "p99": round(out["flood"]["latency_ms"]["p99"] / out["baseline"]["latency_ms"]["p99"], 2),
    }
    return out


def render(out: dict) -> str:
    lines = [f"{out['machine']}; backend {out['backend']}; corpus {out['corpus']}", "",
             "| run | clients | seconds | requests | requests/s | p50 ms | p99 ms | /ask p50 ms "
             "| /ask p99 ms | 5xx | unexpected status | transport errors |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for run_name in ("baseline", "flood"):
        r = out[run_name]
        lines.append(
            f"| {run_name} | {r['clients']} | {r['seconds']} | {r['requests']} | {r['requests_per_s']} | "
            f"{r['latency_ms']['p50']} | {r['latency_ms']['p99']} | {r['ask_latency_ms']['p50']} | "
            f"{r['ask_latency_ms']['p99']} | {r['5xx']} | {sum(r['unexpected'].values())} | "
            f"{sum(r['transport_errors'].values())} |"
        )
    ratios = out["ratios"]
    lines += ["", f"flood / baseline: requests/s x{ratios['requests_per_s']}, p50 x{ratios['p50']}, "
                  f"p99 x{ratios['p99']}", f"statuses in the flood: {out['flood']['statuses']}",
              f"at the end: {out['machine_at_end']}"]
    for run_name in ("baseline", "flood"):
        for label in ("unexpected", "transport_errors"):
            if out[run_name][label]:
                lines.append(f"{run_name} {label}: {out[run_name][label]}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "corpus", help="Corpus to serve.")
    parser.add_argument("--clients", type=int, default=32, help="Concurrent clients in the flood.")
    parser.add_argument("--seconds", type=float, default=30, help="Length of the flood.")
    parser.add_argument("--baseline-seconds", type=float, default=10, help="Length of the 1-client baseline.")
    parser.add_argument("--json", action="store_true", help="Print every figure as JSON.")
    args = parser.parse_args()
    out = run(args.corpus, args.clients, args.seconds, args.baseline_seconds)
    print(json.dumps(out, indent=2) if args.json else render(out))
    if out["flood"]["5xx"] or out["baseline"]["5xx"]:
        raise SystemExit("5xx responses under load: see the table")


if __name__ == "__main__":
    main()
