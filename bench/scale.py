"""Scale: 100k and 1M chunks on one machine, synthesised from real WikiQA sentence vectors.

    .venv/bin/python bench/scale.py [--wikiqa ../shared/bench/wikiqa/WikiQA-test.tsv]
                                    [--sizes 100000 1000000] [--queries 200] [--workdir DIR]

Embedding a million real chunks would take about 30 hours here, so each chunk is a random pair
(i, j) of the WikiQA-test sentences (encoded by the product's encoder): its text is the two
sentences joined, its vector normalise(a·v_i + (1−a)·v_j) for a random a in [0.3, 0.7], and its two
sentence vectors v_i and v_j. Ten chunks make a document. The generation is written by the
product's own store writer (SQLite chunk store + the vector index chosen by size + BM25
postings), published, and opened the way the server opens it. Queries are WikiQA questions,
encoded by the product.

Reported per size: build time (store + vector index + BM25; no encoding), updating one document,
disk and memory per chunk, generation load time, vector search p50 and recall@10 against exact
search (same run: exact search p50 as the baseline), lexical (BM25) p50 against the SQLite FTS5
search the product used before (same run, same texts), and `/ask` in-process p50. Targets at 1M:
vector search p50 <= 5 ms at recall@10 >= 0.95; `/ask` p50 <= 25 ms.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sqlite3
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import faiss
import numpy as np

import wikiqa
from common import bench_parser, machine, parse_bench_args, percentiles
from qa.answering.retrieval import CANDIDATES
from qa.config import Settings
from qa.indexing import generations, vector_index
from qa.indexing.build import _write_store, chunker_settings
from qa.indexing.embedding import Encoder
from qa.indexing.generations import current_generation
from qa.indexing.lexical import STOPWORDS
from qa.indexing.store import FORMAT_VERSION, MANIFEST, STORE, VECTORS
from qa.reading.chunking import Chunk
from qa.reading.documents import Document
from qa.service import Assistant

CHUNKS_PER_DOCUMENT = 10


def memory_kb() -> dict[str, int]:
    """This process's private (anonymous) and file-backed resident memory, in kB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {k: int(fields[k].split()[0]) for k in ("RssAnon", "RssFile")}


def synthesise(n: int, sentences: list[str], vectors: np.ndarray, seed: int):
    """Documents, chunks, chunk vectors and sentence vectors of n chunks made of sentence pairs."""
    rng = np.random.default_rng(seed)
    first = rng.integers(0, len(sentences), n)
    second = (first + rng.integers(1, len(sentences), n)) % len(sentences)
    weight = rng.uniform(0.3, 0.7, n).astype(np.float32)[:, None]
    mixed = weight * vectors[first] + (1 - weight) * vectors[second]
    mixed /= np.linalg.norm(mixed, axis=1, keepdims=True)
    chunk_vectors = np.ascontiguousarray(mixed, dtype=np.float32)
    documents, chunks, sentence_vectors = [], [], []
    for start in range(0, n, CHUNKS_PER_DOCUMENT):
        doc_id = f"synthetic/{start // CHUNKS_PER_DOCUMENT:07d}.txt"
        parts, offset, doc_chunks = [], 0, []
        for k in range(start, min(start + CHUNKS_PER_DOCUMENT, n)):
            a, b = sentences[first[k]], sentences[second[k]]
            text = f"{a} {b}"
            doc_chunks.append(Chunk(doc_id, k - start, offset, offset + len(text), text, None, None,
                                    ((offset, offset + len(a)), (offset + len(a) + 1, offset + len(text)))))
            sentence_vectors.append(vectors[[first[k], second[k]]])
            parts.append(text)
            offset += len(text) + 2
        text = "\n\n".join(parts)
        documents.append(Document(doc_id, doc_id, text, hashlib.sha256(text.encode()).hexdigest()))
        chunks += doc_chunks
    return documents, chunks, chunk_vectors, sentence_vectors


def publish(settings: Settings, encoder: Encoder, documents, chunks, vectors, sentence_vectors) -> float:
    """Write and publish one generation through the product's store writer; returns the seconds taken."""
    began = time.perf_counter()
    staging = settings.index_dir / ".build-scale"
    staging.mkdir(parents=True)
    total = _write_store(staging, None, encoder.dimension, [], documents, chunks, vectors, sentence_vectors,
                         settings.exact_max_chunks)
    limit = encoder.max_seq_length
    manifest = {
        "format": FORMAT_VERSION, "model": settings.model, "dimension": encoder.dimension,
        "max_seq_length": limit, "chunker": chunker_settings(settings, limit),
        "documents": {d.doc_id: d.sha256 for d in documents}, "chunks": total,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (staging / MANIFEST).write_text(json.dumps(manifest))
    generations.publish(settings.index_dir, staging)
    return time.perf_counter() - began


def update(settings: Settings, encoder: Encoder, document, chunks, vectors, sentence_vectors) -> float:
    """Re-index one document of the published generation as changed (its 10 chunks removed and added
    again) and publish the result, as `qa index` does after an edit; returns the seconds taken."""
    began = time.perf_counter()
    base = current_generation(settings.index_dir)
    staging = settings.index_dir / ".build-scale-update"
    staging.mkdir()
    total = _write_store(staging, base, encoder.dimension, [document.doc_id], [document], chunks,
                         np.ascontiguousarray(vectors), sentence_vectors, settings.exact_max_chunks)
    manifest = json.loads((base / MANIFEST).read_text()) | {"chunks": total}
    (staging / MANIFEST).write_text(json.dumps(manifest))
    generations.publish(settings.index_dir, staging)
    return time.perf_counter() - began


def timed_each(action, items) -> tuple[list, list[float]]:
    results, seconds = [], []
    for item in items:
        t = time.perf_counter()
        results.append(action(item))
        seconds.append(time.perf_counter() - t)
    return results, seconds


def exact_search(vectors: np.ndarray, queries: np.ndarray) -> tuple[list[set[int]], list[float]]:
    """The true 10 nearest chunk ids of each query, and the time exact search took (the baseline)."""
    baseline = faiss.IndexFlatIP(vectors.shape[1])
    baseline.add(vectors)
    found, seconds = timed_each(lambda q: baseline.search(q[None, :], 10)[1][0], queries)
    return [{int(i) + 1 for i in ids} for ids in found], seconds  # chunk ids start at 1


def fts5_baseline(store: Path, questions: list[str]) -> dict:
    """The lexical search the product used before (index format 2), on the same chunks in the same
    run: SQLite FTS5 (porter unicode61), bm25() on every matching row, the best CANDIDATES kept."""
    with tempfile.TemporaryDirectory(prefix="qa-bench-fts5-") as folder:
        db = sqlite3.connect(Path(folder) / "fts5.sqlite")
        db.execute("CREATE VIRTUAL TABLE f USING fts5(text, tokenize='porter unicode61')")
        db.execute("ATTACH DATABASE ? AS store", (f"file:{store}?mode=ro",))
        with db:
            db.execute("INSERT INTO f(rowid, text) SELECT id, text FROM store.chunks")
        sql = "SELECT rowid, -bm25(f) FROM f WHERE f MATCH ? ORDER BY bm25(f) LIMIT ?"

        def search(question: str) -> list:
            words = dict.fromkeys(w.lower() for w in re.findall(r"\w+", question) if w.lower() not in STOPWORDS)
            match = " OR ".join('"' + w.replace('"', '""') + '"' for w in words)
            return db.execute(sql, (match, CANDIDATES)).fetchall() if match else []

        _, seconds = timed_each(search, questions)
        db.close()
    return percentiles(seconds)


def one_size(n: int, workdir: Path, encoder: Encoder, sentences, vectors, questions, query_vectors) -> dict:
    settings = Settings(corpus_dir=workdir / f"corpus-{n}", index_dir=workdir / f"index-{n}").resolved()
    shutil.rmtree(settings.index_dir, ignore_errors=True)
    documents, chunks, chunk_vectors, sentence_vectors = synthesise(n, sentences, vectors, seed=n)
    build_s = publish(settings, encoder, documents, chunks, chunk_vectors, sentence_vectors)
    one_document = (documents[0], chunks[:CHUNKS_PER_DOCUMENT], chunk_vectors[:CHUNKS_PER_DOCUMENT],
                    sentence_vectors[:CHUNKS_PER_DOCUMENT])
    del documents, chunks, sentence_vectors
    path = current_generation(settings.index_dir)
    out: dict = {"chunks": n, "build_s": round(build_s, 1)}
    out["disk_bytes_per_chunk"] = {name: round((path / name).stat().st_size / n) for name in (VECTORS, STORE)}
    out["disk_bytes_per_chunk"]["bm25"] = round(sum(f.stat().st_size for f in path.glob("bm25-*")) / n)

    truth, exact_s = exact_search(chunk_vectors, query_vectors)
    out["exact_search_ms"] = percentiles(exact_s)
    del chunk_vectors  # so the memory figures below count only what the server holds

    before = memory_kb()
    assistant = Assistant(settings, encoder=encoder)
    t = time.perf_counter()
    generation = assistant.generation()  # what a server worker opens
    out["load_ms"] = round((time.perf_counter() - t) * 1000, 1)
    out["index_type"] = "exact" if vector_index.is_exact(generation.vectors) else "HNSW"
    index = generation.vectors
    found, search_s = timed_each(lambda q: vector_index.search(index, q, CANDIDATES), query_vectors)
    out["vector_search_ms"] = percentiles(search_s)
    overlap = [len({i for i, _ in f[:10]} & t) / 10 for f, t in zip(found, truth, strict=True)]
    out["recall_at_10"] = round(float(np.mean(overlap)), 4)
    _, lexical_s = timed_each(lambda q: generation.lexical(q, CANDIDATES), questions)
    out["lexical_ms"] = percentiles(lexical_s)
    out["fts5_ms"] = fts5_baseline(path / STORE, questions)

    t = time.perf_counter()
    assistant.ask(questions[0])
    out["first_answer_after_open_ms"] = round((time.perf_counter() - t) * 1000, 1)
    for q in questions[:10]:
        assistant.ask(q)
    _, ask_s = timed_each(assistant.ask, questions)
    out["ask_ms"] = percentiles(ask_s)
    after = memory_kb()
    out["memory_bytes_per_chunk"] = {
        "private": round((after["RssAnon"] - before["RssAnon"]) * 1024 / n),
        "shared_file_pages": round((after["RssFile"] - before["RssFile"]) * 1024 / n),
    }
    generation.close()
    out["update_one_document_s"] = round(update(settings, encoder, *one_document), 1)
    return out


def run(tsv: Path, workdir: Path, sizes: list[int], queries: int) -> dict:
    data = wikiqa.load(tsv)
    encoder = Encoder()
    sentences = sorted({s for _, doc in data.documents.values() for s in doc})
    t = time.perf_counter()
    vectors = encoder.encode(sentences)
    asked = [q for q, _, _ in data.questions]
    picked = np.random.default_rng(0).choice(len(asked), min(queries, len(asked)), replace=False)
    questions = [asked[i] for i in picked]
    query_vectors = np.vstack([encoder.encode_query(q) for q in questions])
    out: dict = {"machine": machine(), "sentences": len(sentences), "queries": len(questions),
                 "encode_sentences_s": round(time.perf_counter() - t, 1),
                 "exact_max_chunks": Settings().exact_max_chunks, "candidates": CANDIDATES}
    for n in sizes:
        began = time.perf_counter()
        out[str(n)] = one_size(n, workdir, encoder, sentences, vectors, questions, query_vectors)
        out[str(n)]["bench_s"] = round(time.perf_counter() - began, 1)
        print(json.dumps({str(n): out[str(n)]}), flush=True)
    out["machine_at_end"] = machine()
    return out


def render(out: dict) -> str:
    sizes = [k for k in out if k.isdigit()]

    def row(label: str, cell) -> str:
        return f"| {label} | " + " | ".join(cell(out[s]) for s in sizes) + " |"

    lines = [out["machine"],
             f"{out['sentences']} WikiQA sentences encoded in {out['encode_sentences_s']} s; "
             f"{out['queries']} WikiQA questions as queries; exact search up to {out['exact_max_chunks']} "
             f"chunks; {out['candidates']} candidates per search, as retrieval asks", "",
             "| | " + " | ".join(f"{int(s):,} chunks" for s in sizes) + " |",
             "| --- |" + " --- |" * len(sizes),
             row("vector index", lambda r: r["index_type"]),
             row("build (store + vector index + BM25, no encoding)", lambda r: f"{r['build_s']:.0f} s"),
             row("update one document (10 chunks) and publish", lambda r: f"{r['update_one_document_s']:.1f} s"),
             row("vector search p50 (exact search p50, same run)",
                 lambda r: f"{r['vector_search_ms']['p50']:.2f} ms ({r['exact_search_ms']['p50']:.1f} ms)"),
             row("recall@10 against exact", lambda r: f"{r['recall_at_10']:.4f}"),
             row("lexical (BM25) p50 / p95 (SQLite FTS5 p50 / p95, same run)",
                 lambda r: f"{r['lexical_ms']['p50']:.1f} / {r['lexical_ms']['p95']:.1f} ms "
                           f"({r['fts5_ms']['p50']:.1f} / {r['fts5_ms']['p95']:.1f} ms)"),
             row("/ask in-process p50 / p95",
                 lambda r: f"{r['ask_ms']['p50']:.1f} / {r['ask_ms']['p95']:.1f} ms"),
             row("generation load (memory-mapped)", lambda r: f"{r['load_ms']:.0f} ms"),
             row("first answer after opening", lambda r: f"{r['first_answer_after_open_ms']:.0f} ms"),
             row("disk per chunk: vectors / store / BM25",
                 lambda r: f"{r['disk_bytes_per_chunk'][VECTORS]} / {r['disk_bytes_per_chunk'][STORE]} / "
                           f"{r['disk_bytes_per_chunk']['bm25']} B"),
             row("resident per chunk after the queries: private / shared file pages",
                 lambda r: f"{r['memory_bytes_per_chunk']['private']} / "
                           f"{r['memory_bytes_per_chunk']['shared_file_pages']} B"),
             row("bench time for this size", lambda r: f"{r['bench_s']:.0f} s"),
             f"at the end: {out['machine_at_end']}"]
    return "\n".join(lines)


def main() -> None:
    parser = bench_parser(__doc__, "keep the indexes here (several GB at 1M)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200, help="WikiQA questions used as queries")
    args = parse_bench_args(parser)
    if any(n < 1 for n in args.sizes):
        parser.error("--sizes: every size must be a positive number of chunks")
    with tempfile.TemporaryDirectory(prefix="qa-bench-scale-") as tmp:
        out = run(args.wikiqa, (args.workdir or Path(tmp)).resolve(), args.sizes, args.queries)
    print(json.dumps(out, indent=2) if args.json else render(out))


if __name__ == "__main__":
    main()
