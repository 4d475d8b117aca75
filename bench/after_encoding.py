"""What an ask costs after encoding, and why it is not smaller: three probes on one corpus (issue 22).

    PYTHONPATH=$PWD/src .venv/bin/python bench/after_encoding.py --workdir DIR [--wikiqa TSV]

DIR is bench/latency.py's (its report + WikiQA corpus and index; written there if missing). Each
figure is a p50 over the 806 questions, each asked once per pass, in ms:

- "warm": `Assistant.ask` with every question's vector computed beforehand (encoding replaced by a
  lookup), so what follows encoding runs on caches the encoder has not just emptied;
- "cold": the same asks with real encoding, less the encoding timed inside them (two passes each,
  alternated: warm, cold, warm, cold);
- "helper thread": encoding one question alone, then again beside a thread running 0.3 ms of Python
  (what moving the lexical half of an ask beside the encoder would cost it);
- "stacked products": how many of the pool's sentence cosines change in the last bit when the pool's
  sentence vectors are multiplied as one stacked matrix instead of passage by passage (random pools
  shaped like the product's: 20 passages of 1-8 sentences, 384 dimensions).
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import numpy as np

from same_answers import WIKIQA, report_sets, wikiqa_corpus


def p50(seconds: list[float]) -> float:
    return round(float(np.median(seconds)) * 1000, 3)


def after_encoding(assistant, questions: list[str], vectors: dict | None) -> float:
    """p50 of each ask less the encoding inside it; `vectors`: look the question's vector up instead."""
    encode = assistant.encoder.encode_query
    inside: list[float] = []

    def timed(text: str) -> np.ndarray:
        t = time.perf_counter()
        vector = vectors[text] if vectors is not None else encode(text)
        inside.append(time.perf_counter() - t)
        return vector

    assistant.encoder.encode_query = timed
    try:
        walls = []
        for q in questions:
            t = time.perf_counter()
            assistant.ask(q)
            walls.append(time.perf_counter() - t)
    finally:
        del assistant.encoder.encode_query
    return p50([w - e for w, e in zip(walls, inside, strict=True)])


def beside_a_thread(encode, questions: list[str], busy_s: float = 0.0003) -> tuple[float, float]:
    """p50 of encoding alone, and of encoding while a thread runs `busy_s` of Python."""
    def busy() -> None:
        began = time.perf_counter()
        while time.perf_counter() - began < busy_s:
            pass

    alone, beside = [], []
    for q in questions:
        t = time.perf_counter()
        encode(q)
        alone.append(time.perf_counter() - t)
        t = time.perf_counter()
        helper = threading.Thread(target=busy)
        helper.start()
        encode(q)
        helper.join()
        beside.append(time.perf_counter() - t)
    return p50(alone), p50(beside)


def stacked_products(trials: int = 2000, seed: int = 0) -> tuple[int, int]:
    """(products that differ, products) between passage-by-passage and stacked matrix products."""
    rng = np.random.default_rng(seed)
    differ = total = 0
    for _ in range(trials):
        pool = [rng.standard_normal((k, 384)).astype(np.float32) for k in rng.integers(1, 9, size=20)]
        query = rng.standard_normal(384).astype(np.float32)
        each = np.concatenate([vectors @ query for vectors in pool])
        differ += int((each != np.vstack(pool) @ query).sum())
        total += len(each)
    return differ, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True, help="bench/latency.py's folder")
    parser.add_argument("--wikiqa", type=Path, default=WIKIQA, help="WikiQA-test.tsv")
    args = parser.parse_args()
    import qa.service as service
    from qa.config import Settings

    folder = args.workdir.resolve() / "wikiqa" / "corpus"
    questions = list(dict.fromkeys(wikiqa_corpus(args.wikiqa, folder) + report_sets()))
    assistant = service.Assistant(Settings(corpus_dir=folder, index_dir=folder.parent / "index"))
    assistant.reindex()
    for q in ("warm-up question one", "what is this about", "who wrote it"):
        assistant.ask(q)
    vectors = {q: assistant.encoder.encode_query(q) for q in questions}
    runs = {"warm": [], "cold": []}
    for _ in range(2):
        runs["warm"].append(after_encoding(assistant, questions, vectors))
        runs["cold"].append(after_encoding(assistant, questions, None))
    alone, beside = beside_a_thread(assistant.encoder.encode_query, questions[:200])
    differ, total = stacked_products()
    print(f"{len(questions)} questions, report + WikiQA; p50 ms after encoding, two passes each")
    print(f"warm (vectors looked up): {runs['warm']}")
    print(f"cold (real encoding first): {runs['cold']}")
    print(f"encoding alone {alone} ms; beside a thread running 0.3 ms of Python {beside} ms")
    print(f"stacked products: {differ:,} of {total:,} differ in the last bit")


if __name__ == "__main__":
    main()
