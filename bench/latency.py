"""/ask latency, torch backend against the fast (onnx) one, in-process and over HTTP, in one run.

    .venv/bin/python bench/latency.py [--wikiqa ../shared/bench/wikiqa/WikiQA-test.tsv] [--workdir DIR]

Corpus: the report plus the 619 WikiQA-test documents (bench/wikiqa.py writes them), indexed once.
Questions: the 633 WikiQA questions and the report's dev set, each asked once per backend after a
warm-up. In-process is the wall time of `Assistant.ask`; HTTP is the wall time of `POST /ask` from
one keep-alive client to a real `qa serve` on loopback. Start-up is the time from launching
`qa serve` on the existing index to its first answer. Targets (fast backend): in-process p50 <= 10
ms, HTTP p50 <= 15 ms.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from common import bench_parser, machine, parse_bench_args, percentiles, prepare, questions, serve
from qa.config import Settings
from qa.service import Assistant

BACKENDS = ("torch", "onnx")
WARM_UP = 10




def in_process(settings: Settings, backend: str, asked: list[str]) -> dict:
    began = time.perf_counter()
    assistant = Assistant(settings.model_copy(update={"backend": backend}))
    assistant.ask(asked[0])
    first_answer_s = time.perf_counter() - began
    for q in asked[:WARM_UP]:
        assistant.ask(q)
    times, top = [], []
    for q in asked:
        t = time.perf_counter()
        answer = assistant.ask(q)
        times.append(time.perf_counter() - t)
        top.append([p.doc_id for p in answer.passages])
    return {"ask": percentiles(times), "first_answer_in_new_process_s": round(first_answer_s, 2), "top": top,
            "backend_used": assistant.encoder.backend}




def over_http(settings: Settings, backend: str, asked: list[str]) -> dict:
    with serve(settings, backend) as (base, startup_s), httpx.Client(base_url=base, timeout=30) as client:
        for q in asked[:WARM_UP]:
            client.post("/ask", json={"question": q})
        times = []
        for q in asked:
            t = time.perf_counter()
            response = client.post("/ask", json={"question": q})
            times.append(time.perf_counter() - t)
            assert response.status_code == 200, response.text
    return {"ask": percentiles(times), "startup_to_first_answer_s": round(startup_s, 2)}


def run(tsv: Path, workdir: Path) -> dict:
    settings = prepare(tsv, workdir)
    asked = questions(tsv)
    out: dict = {"machine": machine(), "questions": len(asked)}
    for backend in BACKENDS:
        out[backend] = {"in_process": in_process(settings, backend, asked)}
    tops = [out[b]["in_process"].pop("top") for b in BACKENDS]
    same = [a == b for a, b in zip(*tops, strict=True)]
    out["same_passages_both_backends"] = round(float(np.mean(same)), 4)
    for backend in BACKENDS:
        out[backend]["http"] = over_http(settings, backend, asked)
    out["machine_at_end"] = machine()
    return out


def render(out: dict) -> str:
    lines = [out["machine"], f"{out['questions']} questions, each asked once per backend after a warm-up", "",
             "| backend | in-process p50 / p95 ms | HTTP p50 / p95 ms | qa serve launch to first answer |",
             "| --- | --- | --- | --- |"]
    for backend in BACKENDS:
        local, http = out[backend]["in_process"]["ask"], out[backend]["http"]
        lines.append(f"| {backend} | {local['p50']:.1f} / {local['p95']:.1f} | {http['ask']['p50']:.1f} / "
                     f"{http['ask']['p95']:.1f} | {http['startup_to_first_answer_s']:.1f} s |")
    torch, onnx = out["torch"], out["onnx"]
    local_ratio = onnx["in_process"]["ask"]["p50"] / torch["in_process"]["ask"]["p50"]
    http_ratio = onnx["http"]["ask"]["p50"] / torch["http"]["ask"]["p50"]
    lines += ["", f"fast / torch p50: in-process {local_ratio:.2f}, HTTP {http_ratio:.2f}",
              f"questions with the same passages on both backends: {out['same_passages_both_backends']:.4f}",
              f"at the end: {out['machine_at_end']}"]
    return "\n".join(lines)




def main() -> None:
    parser = bench_parser(__doc__, "keep the corpus and index here (reused)")
    args = parse_bench_args(parser)
    with tempfile.TemporaryDirectory(prefix="qa-bench-latency-") as tmp:
        out = run(args.wikiqa, (args.workdir or Path(tmp)).resolve())
    print(json.dumps(out, indent=2) if args.json else render(out))


if __name__ == "__main__":
    main()
