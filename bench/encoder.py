"""The encoder backends side by side in one run: same vectors? how fast? and the sentence-vector lever.

    .venv/bin/python bench/encoder.py [--wikiqa ../shared/bench/wikiqa/WikiQA-test.tsv] [--workdir DIR]
                                      [--skip-evidence]

1. Equivalence: cosine of the fast (onnx) and torch vectors for every WikiQA question and sentence
   (target >= 0.9999), and the overlap of each question's 10 nearest sentences (target >= 0.99).
2. Query encoding: p50 of one question at a time, per backend.
3. Raw throughput on the chunks of the report + WikiQA corpus, per backend and batch size (texts
   sorted by token length either way).
4. Sentence vectors for evidence: pooled from the chunk's own pass (the product) against each
   sentence encoded alone (the build before issue 6, restored here by replacing `_embed`): build
   time, and evidence@1/@3 on the report dev set and on WikiQA.

The build's chunks/s against the raw encoder on the same chunks is bench/incremental.py's figure.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

import qa.indexing.build
import qa.indexing.embedding
import wikiqa
from common import DEV_SET, bench_parser, machine, parse_bench_args, percentiles
from qa.answering.evaluation import evaluate, load_cases, summarise
from qa.config import Settings
from qa.indexing.embedding import Encoder
from qa.indexing.generations import current_generation
from qa.indexing.store import Generation
from qa.service import Assistant

BATCH_SIZES = (8, 16, 32, 64)


def equivalence(fast: Encoder, torch: Encoder, data: wikiqa.WikiQA) -> dict:
    asked = [q for q, _, _ in data.questions]
    sentences = sorted({s for _, doc in data.documents.values() for s in doc})
    q_fast = np.vstack([fast.encode_query(q) for q in asked])
    q_torch = np.vstack([torch.encode_query(q) for q in asked])
    s_fast, s_torch = fast.encode(sentences), torch.encode(sentences)
    cosines = np.concatenate([np.sum(q_fast * q_torch, axis=1), np.sum(s_fast * s_torch, axis=1)])
    top_fast = np.argsort(-(q_fast @ s_fast.T), axis=1)[:, :10]
    top_torch = np.argsort(-(q_torch @ s_torch.T), axis=1)[:, :10]
    overlap = np.array([len(set(a) & set(b)) / 10 for a, b in zip(top_fast, top_torch, strict=True)])
    return {"texts": len(cosines), "min_cosine": float(cosines.min()),
            "below_0_9999": int((cosines < 0.9999).sum()), "questions": len(asked),
            "top10_overlap_mean": float(overlap.mean()), "top10_overlap_min": float(overlap.min())}


def query_latency(encoder: Encoder, asked: list[str]) -> dict:
    for q in asked[:10]:
        encoder.encode_query(q)
    times = []
    for q in asked:
        t = time.perf_counter()
        encoder.encode_query(q)
        times.append(time.perf_counter() - t)
    return percentiles(times)


def throughput(encoder: Encoder, chunks: list[str]) -> dict:
    """Chunks per second at each batch size (the product's is qa.indexing.embedding.BATCH_SIZE)."""
    chosen, out = qa.indexing.embedding.BATCH_SIZE, {}
    try:
        for size in BATCH_SIZES:
            qa.indexing.embedding.BATCH_SIZE = size
            t = time.perf_counter()
            encoder.encode(chunks)
            out[size] = round(len(chunks) / (time.perf_counter() - t), 2)
    finally:
        qa.indexing.embedding.BATCH_SIZE = chosen
    return out


def embed_sentences_alone(encoder, chunks, progress):
    """The build before issue 6: every sentence encoded on its own, after its chunk."""
    vectors = encoder.encode([c.text for c in chunks])
    texts = [c.text[s - c.start : e - c.start] for c in chunks for s, e in c.sentences]
    flat, per_chunk, at = encoder.encode(texts), [], 0
    for c in chunks:
        per_chunk.append(flat[at : at + len(c.sentences)])
        at += len(c.sentences)
    return vectors, per_chunk


def evidence(encoder: Encoder, data: wikiqa.WikiQA, workdir: Path) -> dict:
    out = {}
    pooled = qa.indexing.build._embed
    strategies = (("pooled from the chunk pass", pooled), ("each sentence alone", embed_sentences_alone))
    for label, embed in strategies:
        qa.indexing.build._embed = embed
        try:
            for corpus_name in ("report", "report + WikiQA"):
                root = workdir / f"evidence-{label.split()[0]}-{corpus_name.split()[-1]}"
                (root / "corpus").mkdir(parents=True, exist_ok=True)
                (root / "corpus" / wikiqa.REPORT.name).write_bytes(wikiqa.REPORT.read_bytes())
                if corpus_name != "report":
                    wikiqa.write_corpus(data, root / "corpus")
                settings = Settings(corpus_dir=root / "corpus", index_dir=root / "index")
                assistant = Assistant(settings, encoder=encoder)
                t = time.perf_counter()
                summary = assistant.reindex(rebuild=True)
                build_s = time.perf_counter() - t
                cases = load_cases(DEV_SET) if corpus_name == "report" else wikiqa.cases_of(data)
                metrics = summarise(evaluate(assistant, cases), 5)
                out[f"{label} | {corpus_name}"] = {
                    "build_s": round(build_s, 1), "chunks": summary.chunks,
                    **{k: metrics[k] for k in ("evidence@1", "evidence@3", "hit@1", "false_abstentions",
                                               "abstained_unanswerable")},
                }
        finally:
            qa.indexing.build._embed = pooled
    return out


def run(tsv: Path, workdir: Path, with_evidence: bool) -> dict:
    data = wikiqa.load(tsv)
    out: dict = {"machine": machine()}
    fast, torch = Encoder(backend="onnx"), Encoder(backend="torch")
    out["equivalence"] = equivalence(fast, torch, data)
    asked = [q for q, _, _ in data.questions]
    out["query_ms"] = {"torch": query_latency(torch, asked), "onnx": query_latency(fast, asked)}

    corpus = workdir / "throughput" / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    (corpus / wikiqa.REPORT.name).write_bytes(wikiqa.REPORT.read_bytes())
    wikiqa.write_corpus(data, corpus)
    settings = Settings(corpus_dir=corpus, index_dir=workdir / "throughput" / "index")
    Assistant(settings, encoder=fast).reindex()
    gen = Generation(current_generation(settings.index_dir))  # the live chunks of every segment
    ids = gen.chunk_ids_of(sorted(gen.manifest["documents"])).tolist()
    stored = gen.chunks(ids)
    chunks = [stored[i].chunk.text for i in ids]
    out["chunks"] = len(chunks)
    out["chunks_per_s"] = {"onnx": throughput(fast, chunks), "torch": throughput(torch, chunks)}
    del torch
    if with_evidence:
        out["evidence"] = evidence(fast, data, workdir)
    out["machine_at_end"] = machine()
    return out


def render(out: dict) -> str:
    eq, q = out["equivalence"], out["query_ms"]
    lines = [
        out["machine"], "",
        f"equivalence: {eq['texts']} WikiQA questions and sentences, min cosine {eq['min_cosine']:.7f} "
        f"({eq['below_0_9999']} below 0.9999); top-10 sentence overlap on {eq['questions']} questions: "
        f"mean {eq['top10_overlap_mean']:.4f}, min {eq['top10_overlap_min']:.2f}",
        f"one query: torch p50 {q['torch']['p50']:.1f} ms, onnx p50 {q['onnx']['p50']:.1f} ms "
        f"(onnx / torch {q['onnx']['p50'] / q['torch']['p50']:.2f})", "",
        f"raw encoder on the corpus's {out['chunks']} chunks, chunks/s by batch size:", "",
        "| backend | " + " | ".join(f"batch {b}" for b in BATCH_SIZES) + " |",
        "| --- |" + " --- |" * len(BATCH_SIZES),
    ]
    for backend, row in out["chunks_per_s"].items():
        lines.append(f"| {backend} | " + " | ".join(f"{row[b]:.1f}" for b in BATCH_SIZES) + " |")
    if "evidence" in out:
        lines += ["", "| sentence vectors | corpus | build s | chunks | evidence@1 | evidence@3 | hit@1 | "
                      "false abstentions | unanswerable abstained |", "| --- |" + " --- |" * 8]
        for key, m in out["evidence"].items():
            label, corpus = key.split(" | ")
            lines.append(f"| {label} | {corpus} | {m['build_s']:.1f} | {m['chunks']} | {m['evidence@1']:.4f} "
                         f"| {m['evidence@3']:.4f} | {m['hit@1']:.4f} | {m['false_abstentions']} | "
                         f"{m['abstained_unanswerable']} |")
    lines.append(f"\nat the end: {out['machine_at_end']}")
    return "\n".join(lines)


def main() -> None:
    parser = bench_parser(__doc__, "keep corpora and indexes here")
    parser.add_argument("--skip-evidence", action="store_true", help="skip part 4 (four index builds)")
    args = parse_bench_args(parser)
    with tempfile.TemporaryDirectory(prefix="qa-bench-encoder-") as tmp:
        out = run(args.wikiqa, (args.workdir or Path(tmp)).resolve(), not args.skip_evidence)
    print(json.dumps(out, indent=2) if args.json else render(out))


if __name__ == "__main__":
    main()
