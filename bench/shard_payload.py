"""What one shard sends the app on Ray Serve for a question (`ShardReplica.candidates`): its pickled size,
the time to pickle and unpickle it, the passages it carries, and the shard's own time, per shard answer.

    # after bench/ray_serve.py --workdir DIR (its indexes, questions.json and queries.npy):
    PYTHONPATH=$PWD/src .venv/bin/python bench/shard_payload.py --workdir DIR

Every question of DIR/questions.json is asked of each shard of DIR/index (1 shard, `alone`: it sends
the pool) and DIR/index-2-shards, as the app asks: BM25 statistics summed over the shards, the question's
vector from DIR/queries.npy (no model loaded). Ray sends a return value under 100 KB inline, larger ones
through its object store. The code measured is the `qa` on the path, printed first; against an older
commit's src, `alone` is passed only where its ShardReplica takes it.
"""

from __future__ import annotations

import argparse
import inspect
import json
import pickle
import time
from pathlib import Path

import numpy as np

import qa
from qa.indexing import shards as sharding
from qa.indexing.generations import current_generation
from qa.indexing.lexical import terms
from qa.serving.ray_serve import ShardReplica

INLINE = 100 * 1024  # Ray's max_direct_call_object_size


def measure(index: Path, questions: list[str], queries: np.ndarray) -> dict:
    folders = sharding.folders(index)
    replicas = [ShardReplica(str(f)) for f in folders]
    whole = sharding.open_generation(index, [current_generation(f) for f in folders])  # the app's postings
    extra = [len(replicas) == 1] if "alone" in inspect.signature(ShardReplica.candidates).parameters else []
    took, dumps, loads, size, passages = [], [], [], [], []
    for question, query in zip(questions, queries, strict=True):
        statistics = whole.words.part_statistics(sorted(set(terms(question))))
        weights = whole.words.idf(list(dict.fromkeys(terms(question))))
        for replica in replicas:
            began = time.perf_counter()
            found = replica.candidates(query, question, 80, None, statistics, weights, 20, *extra)
            took.append(time.perf_counter() - began)
            began = time.perf_counter()
            sent = pickle.dumps(found, protocol=5)
            dumps.append(time.perf_counter() - began)
            began = time.perf_counter()
            pickle.loads(sent)
            loads.append(time.perf_counter() - began)
            size.append(len(sent))
            passages.append(len(found.passages))

    def ms(x: list[float]) -> float:
        return round(1000 * float(np.median(x)), 2)

    return {"shard answers": len(size), "shard's candidates ms p50": ms(took), "pickle ms p50": ms(dumps),
            "unpickle ms p50": ms(loads), "KB p50": round(float(np.median(size)) / 1000, 1),
            "KB max": round(max(size) / 1000, 1),
            "share inline (< 100 KiB)": round(float(np.mean(np.array(size) < INLINE)), 2),
            "passages p50": int(np.median(passages)), "passages max": max(passages)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, required=True, help="bench/ray_serve.py's --workdir")
    args = parser.parse_args()
    questions = json.loads((args.workdir / "questions.json").read_text())
    queries = np.load(args.workdir / "queries.npy")
    print(f"qa from {Path(qa.__file__).parent}")
    out = {name: measure(args.workdir / name, questions, queries) for name in ("index", "index-2-shards")}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
