"""`qa index --ray` throughput (issue 14): the local build, and Ray with 1 and 2 single-CPU nodes, beside
the ceiling of one and two plain single-thread encoder processes (no Ray) on the same passages.

    .venv/bin/python bench/ray_build.py [--wikiqa ../shared/bench/wikiqa/WikiQA-test.tsv] [--synthetic N]
                                        [--workdir DIR] [--json]

Two corpora: the 619 WikiQA-test documents (bench/wikiqa.py writes them) and N made-up documents of
a few sentences each (default 2,500, a larger build). For each, in one run and one after another:

- local: build_index in this process, the ONNX runtime on every core (what `qa index` does), first;
- plain x1, plain x2: 1 or 2 separate processes, each an encoder on one thread, taking the very work
  units a Ray build sends (the passages the local build embedded) from a queue; timed from the moment
  their models are loaded to the last result. This is the ceiling Ray is measured against;
- ray 1 node, ray 2 nodes, each right after its plain baseline: build_index with RayEmbedding on a
  `ray.cluster_utils.Cluster` on this machine (head, then head + worker, 1 CPU each), a fresh index.
  "embed" is the embedding step of the build, actors' start-up (model load) included; "encode"
  leaves the start-up out, as the plain processes' figure does.

Targets: ray 1 node >= 0.85 x plain x1; ray 2 nodes >= 0.85 x plain x2. On 2 cores, two of anything
share them with this driver and any other load (the load average is printed).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import common
import wikiqa
from qa.config import Settings
from qa.indexing.build import _embed, build_index
from qa.indexing.distributed import UNIT_BATCHES, RayEmbedding, work_units
from qa.indexing.embedding import BATCH_SIZE, Encoder

SRC = Path(__file__).resolve().parent.parent / "src"
WORDS = ("alliance tariff semiconductor shipyard export control investment treaty ministry supply chain "
         "energy grid storage minerals battery visa engineer port security audit steel beef pork wheat "
         "digital data customs duty software review panel committee secretariat round agreement partner "
         "cooperation research university standard quantum cable satellite fishery currency bank loan").split()


def synthetic(corpus: Path, documents: int) -> None:
    """`documents` made-up .txt files of 3-8 sentences of 8-20 words: one to two passages each."""
    rng = random.Random(14)
    (corpus / "synthetic").mkdir(parents=True, exist_ok=True)
    for n in range(documents):
        sentences = [" ".join(rng.choices(WORDS, k=rng.randint(8, 20))).capitalize() + "."
                     for _ in range(rng.randint(3, 8))]
        (corpus / "synthetic" / f"doc-{n:05d}.txt").write_text(f"Note {n}\n\n{' '.join(sentences)}\n")


class EmbedClock:
    """Seconds from the first "embedding" progress report to the next phase ("writing")."""

    def __init__(self) -> None:
        self.began = self.ended = 0.0

    def __call__(self, phase: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if phase == "embedding" and not self.began:
            self.began = now
        elif phase != "embedding" and self.began and not self.ended:
            self.ended = now

    @property
    def seconds(self) -> float:
        return self.ended - self.began


def timed_build(settings: Settings, encoder: Encoder, name: str, embed=None) -> dict:
    settings = settings.model_copy(update={"index_dir": settings.index_dir.parent / f"index-{name}"})
    shutil.rmtree(settings.index_dir, ignore_errors=True)
    clock = EmbedClock()
    began = time.perf_counter()
    summary = build_index(settings, lambda: encoder, progress=clock, embed=embed)
    build_s = time.perf_counter() - began
    row = {"passages": summary.chunks, "build_s": round(build_s, 2), "embed_s": round(clock.seconds, 2),
           "build_per_s": round(summary.chunks / build_s, 1), "embed_per_s": round(summary.chunks / clock.seconds, 1)}
    shutil.rmtree(settings.index_dir, ignore_errors=True)
    return row


def _plain_worker(payloads, tasks, results, ready, go) -> None:
    encoder = Encoder(threads=1)
    encoder.encode_with_spans(["warm-up text"], [[(0, 4)]])
    ready.put(os.getpid())
    go.wait()
    while (n := tasks.get()) is not None:
        encoder.encode_with_spans(*payloads[n])
        results.put(n)


def plain_processes(payloads: list, processes: int) -> dict:
    """Passages a second of `processes` single-thread encoders sharing a queue of the work units."""
    context = mp.get_context("spawn")
    tasks, results, ready, go = context.Queue(), context.Queue(), context.Queue(), context.Event()
    workers = [context.Process(target=_plain_worker, args=(payloads, tasks, results, ready, go))
               for _ in range(processes)]
    for w in workers:
        w.start()
    for _ in workers:
        ready.get()
    for n in range(len(payloads)):
        tasks.put(n)
    for _ in workers:
        tasks.put(None)
    began = time.perf_counter()
    go.set()
    for _ in payloads:
        results.get()
    seconds = time.perf_counter() - began
    for w in workers:
        w.join()
    passages = sum(len(texts) for texts, _ in payloads)
    return {"passages": passages, "encode_s": round(seconds, 2), "encode_per_s": round(passages / seconds, 1)}


def run(tsv: Path, synthetic_documents: int, workdir: Path) -> dict:
    import ray
    from ray.cluster_utils import Cluster

    corpora = {"WikiQA-test": workdir / "wikiqa" / "corpus", "synthetic": workdir / "synthetic" / "corpus"}
    wikiqa.write_corpus(wikiqa.load(tsv), corpora["WikiQA-test"])
    synthetic(corpora["synthetic"], synthetic_documents)
    settings = {name: Settings(corpus_dir=c, index_dir=c.parent / "index").resolved() for name, c in corpora.items()}
    encoder = Encoder()
    out: dict = {"machine_before": common.machine(), "rows": {name: {} for name in corpora}}

    payloads = {}
    for name, s in settings.items():
        captured: list = []

        def capture(enc, chunks, progress, captured=captured):
            captured.extend(chunks)
            return _embed(enc, chunks, progress)

        out["rows"][name]["local"] = timed_build(s, encoder, "local", embed=capture)
        units = work_units(encoder, captured, UNIT_BATCHES * BATCH_SIZE)
        payloads[name] = [([captured[j].text for j in unit],
                           [[(a - captured[j].start, b - captured[j].start) for a, b in captured[j].sentences]
                            for j in unit]) for unit in units]

    # Each Ray build right after its plain baseline, so both see the same background load.
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p)
    temp = tempfile.mkdtemp(prefix="qa-ray-bench-", dir="/tmp")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                            "temp_dir": temp})
    try:
        ray.init(address=cluster.address, logging_level="WARNING", log_to_driver=False)
        for nodes in (1, 2):
            if nodes == 2:
                cluster.add_node(num_cpus=1)
                cluster.wait_for_nodes()
            for name, s in settings.items():
                out["rows"][name][f"plain x{nodes}"] = plain_processes(payloads[name], nodes)
                embed = RayEmbedding(s, cluster.address)
                row = timed_build(s, encoder, f"ray{nodes}", embed=embed)
                row["encode_s"] = round(embed.seconds["encoding"], 2)
                row["encode_per_s"] = round(row["passages"] / embed.seconds["encoding"], 1)
                row["per_node"] = dict(embed.per_node)
                out["rows"][name][f"ray {nodes} node{'s' if nodes > 1 else ''}"] = row
                print(f"{name}: plain x{nodes} and ray {nodes} done ({common.machine()})", file=sys.stderr)
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
    out["machine_after"] = common.machine()
    for rows in out["rows"].values():
        for nodes, plain in (("ray 1 node", "plain x1"), ("ray 2 nodes", "plain x2")):
            rows[nodes]["encode_vs_plain"] = round(rows[nodes]["encode_per_s"] / rows[plain]["encode_per_s"], 2)
            rows[nodes]["embed_vs_plain"] = round(rows[nodes]["embed_per_s"] / rows[plain]["encode_per_s"], 2)
    return out


def render(out: dict) -> str:
    lines = [f"Machine: {out['machine_before']} (start); {out['machine_after']} (end).", "",
             "| corpus | run | passages | build s | build passages/s | embed passages/s | encode passages/s "
             "| embed / plain | encode / plain |", "|---|---|---|---|---|---|---|---|---|"]
    for name, rows in out["rows"].items():
        for run_name, r in rows.items():
            lines.append(" | ".join([f"| {name}", run_name, str(r["passages"]), str(r.get("build_s", "—")),
                                     str(r.get("build_per_s", "—")), str(r.get("embed_per_s", "—")),
                                     str(r.get("encode_per_s", "—")), str(r.get("embed_vs_plain", "—")),
                                     str(r.get("encode_vs_plain", "—"))]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = common.bench_parser(__doc__, "keep the corpora here (indexes are removed after each build)")
    parser.add_argument("--synthetic", type=int, default=2500, help="made-up documents in the larger corpus")
    args = common.parse_bench_args(parser)
    with tempfile.TemporaryDirectory(prefix="qa-bench-ray-") as tmp:
        out = run(args.wikiqa, args.synthetic, (args.workdir or Path(tmp)).resolve())
    print(json.dumps(out, indent=2) if args.json else render(out))


if __name__ == "__main__":
    main()
