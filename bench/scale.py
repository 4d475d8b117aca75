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

Reported per size: build time (store + vector index + BM25; no encoding), disk and memory per
chunk, generation load time, vector search p50 and recall@10 against exact search (same run: exact
search p50 as the baseline), lexical (BM25) p50 against the SQLite FTS5 search the product used
before (same run, same texts), and `/ask` in-process p50. Targets at 1M: vector search p50 <= 5 ms
at recall@10 >= 0.95; `/ask` p50 <= 25 ms.

Segments (issue 21), through the product's writer (build.write_update) and merge: adding one
document of 10 passages and publishing, p50 over 20 (`update_one_document_s`), with the bytes each
wrote and the check that the next search finds it; `/ask` p50 with those 20 small segments unmerged
against one segment (same run, each question asked of both in turn); deleting one document and
publishing, p50 over 20; and `/ask`
p50/p95 while a merge of every segment (all the passages) runs as the server's background merge does
(Assistant.merge_in_background: a child process at nice 19), against without (asked just before and
just after it), with the merge's time and the child's peak resident memory (its own VmHWM) and
peak private memory (sampled between questions); then, 20 more small segments later, the same-run
baseline: the same merge as it ran before, in a thread of the answering process at its priority
(merging.merge_index), writing as merges did before pagecache.py (SPARE off). Before the
segments figures the bench hands the heap it freed back to the system (`release_freed_memory`:
glibc's malloc_trim): the synthetic passages it built the index from are deleted, but their memory
stayed resident in the process's heap (100k passages built without the encoder: 835 MB private, 88 MB after),
which a server never holds (`bench_private_mb`: before and after). Targets at 1M: add p50 <= 1 s
writing <= 16 MB; 20 segments' /ask p50 <= 1.2x one segment's; /ask p95 during the merge <= 2x;
delete p50 <= 1 s.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import re
import shutil
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

import faiss
import numpy as np

import wikiqa
from common import bench_parser, machine, parse_bench_args, percentiles
from qa.answering.retrieval import CANDIDATES
from qa.config import Settings
from qa.indexing import pagecache, vector_index
from qa.indexing.build import write_update
from qa.indexing.embedding import Encoder
from qa.indexing.generations import current_generation, writer_lock
from qa.indexing.lexical import STOPWORDS
from qa.indexing.merging import merge_index
from qa.indexing.store import MANIFEST, STORE, VECTORS, Generation
from qa.reading.chunking import Chunk
from qa.reading.documents import Document
from qa.service import Assistant

CHUNKS_PER_DOCUMENT = 10


def memory_kb(pid: int | str = "self") -> dict[str, int]:
    """A process's private (anonymous) and file-backed resident memory, in kB ({} once it has exited)."""
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    except (OSError, ValueError):
        return {}
    return {k: int(fields[k].split()[0]) for k in ("RssAnon", "RssFile") if k in fields}


def synthesise(n: int, sentences: list[str], vectors: np.ndarray, seed: int, folder: str = "synthetic"):
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
        doc_id = f"{folder}/{start // CHUNKS_PER_DOCUMENT:07d}.txt"
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
    """Write and publish one generation of one segment through the product's writer; returns the seconds taken."""
    began = time.perf_counter()
    with writer_lock(settings.index_dir):
        write_update(settings, None, (encoder.dimension, encoder.max_seq_length), documents, chunks, vectors,
                     sentence_vectors, [])
    return time.perf_counter() - began


def manifest_of(settings: Settings) -> dict:
    return json.loads((current_generation(settings.index_dir) / MANIFEST).read_text())


def written_bytes(settings: Settings, before: set[str]) -> int:
    """Bytes of the files that appeared in the index folder (a new segment, a new generation)."""
    files = [p for p in settings.index_dir.rglob("*") if p.is_file() and str(p) not in before]
    return sum(p.stat().st_size for p in files)


def update(settings: Settings, encoder: Encoder, document, chunks, vectors, sentence_vectors,
           removed: list[str] | None = None) -> tuple[float, int]:
    """Add `document` (None: none) and delete `removed`, and publish, as `qa index` does after an
    upload or a deletion: a new small segment and a new manifest. Returns (seconds, bytes written)."""
    before = {str(p) for p in settings.index_dir.rglob("*")}
    began = time.perf_counter()
    with writer_lock(settings.index_dir):
        write_update(settings, manifest_of(settings), (encoder.dimension, encoder.max_seq_length),
                     [document] if document else [], chunks, np.ascontiguousarray(vectors, dtype=np.float32),
                     sentence_vectors, removed or [])
    seconds = time.perf_counter() - began
    return seconds, written_bytes(settings, before)


class PinnedAssistant(Assistant):
    """An Assistant that keeps answering from one generation, whatever is published after it."""

    def __init__(self, settings: Settings, encoder: Encoder, generation: Generation) -> None:
        super().__init__(settings, encoder=encoder)
        self.pinned = generation

    def generation(self) -> Generation:
        return self.pinned


def segments_figures(settings: Settings, encoder: Encoder, assistant: Assistant, questions: list[str],
                     extra, again) -> dict:
    """Add 20 documents one at a time, ask with 20 unmerged segments, delete 20, ask during a merge (the
    server's, then 20 more added, the baseline's)."""
    documents, chunks, vectors, sentence_vectors = extra
    out: dict = {}
    held = memory_kb()
    release_freed_memory()
    out["bench_private_mb"] = {"before_trim": round(held.get("RssAnon", 0) / 1024),
                               "after": round(memory_kb().get("RssAnon", 0) / 1024)}
    one_segment = PinnedAssistant(settings, encoder, assistant.generation())  # keeps the 1-segment state open
    adds, written, found = [], [], 0
    for k, doc in enumerate(documents):
        span = slice(k * CHUNKS_PER_DOCUMENT, (k + 1) * CHUNKS_PER_DOCUMENT)
        seconds, size = update(settings, encoder, doc, chunks[span], vectors[span], sentence_vectors[span])
        adds.append(seconds)
        written.append(size)
        gen = assistant.generation()  # the next question's generation
        hits = gen.chunks([i for i, _ in gen.lexical(chunks[span][0].text, 5)])
        found += doc.doc_id in {c.chunk.doc_id for c in hits.values()}
    out["update_one_document_s"] = round(float(np.median(adds)), 3)
    out["add_one_document_ms"] = percentiles(adds)
    out["add_bytes_written"] = int(np.median(written))
    out["added_found_by_next_search"] = f"{found}/{len(documents)}"
    out["segments_unmerged"] = len(assistant.generation().segments)
    # each question asked of both states in turn (one segment, pinned; the 20 added), so that a change
    # in the machine's other load weighs on both alike
    one_segment_s, many_s = [], []
    for q in questions:
        one_segment_s += timed_each(one_segment.ask, [q])[1]
        many_s += timed_each(assistant.ask, [q])[1]
    del one_segment
    out["ask_ms_one_segment"] = percentiles(one_segment_s)
    out["ask_ms_unmerged_segments"] = percentiles(many_s)
    deletes = [update(settings, encoder, None, [], np.zeros((0, encoder.dimension)), [], [d.doc_id])[0]
               for d in documents]
    out["delete_one_document_ms"] = percentiles(deletes)
    # put the 20 back, so the merge has small segments to fold in as well as the big one
    add_each(settings, encoder, extra)
    gen = assistant.generation()
    _, quiet_s = timed_each(assistant.ask, questions)
    # the merge as the server runs it after a write (Assistant.merge_in_background: a child process at
    # nice 19), of every segment into one (the tiered policy would leave the big one alone)
    peak_private = [0]

    def child_merging() -> bool:
        pid = assistant.merge_pid
        if pid is not None:
            peak_private[0] = max(peak_private[0], memory_kb(pid).get("RssAnon", 0))
        return assistant.merging

    during, wall = asks_while(assistant, questions, lambda: assistant.merge_in_background(everything=True),
                              child_merging)
    done = assistant.last_merge
    if done is None or not done.merges:
        raise SystemExit("the background merge did not merge: see the log above")
    # "without": the questions asked just before and just after the merge, so that a change in the
    # machine's other load during the merge weighs on both sides alike; "just after" alone as well, as
    # the merged store starts uncached (pagecache.py), so its first questions read their passages from disk
    after_s = timed_each(assistant.ask, questions)[1]
    out["ask_ms_without_merge"] = percentiles(quiet_s + after_s)
    out["ask_ms_just_before_merge"], out["ask_ms_just_after_merge"] = percentiles(quiet_s), percentiles(after_s)
    out["merge"] = {"passages": gen.chunk_count, "segments": len(gen.segments), "seconds": round(wall, 1),
                    "merging_s": round(sum(m["seconds"] for m in done.merges), 1),
                    "peak_resident_mb": round(done.peak_memory_mb), "peak_private_mb": round(peak_private[0] / 1024),
                    "ask_ms_during": percentiles(during)}
    out["merge"]["p95_ratio"] = round(out["merge"]["ask_ms_during"]["p95"] / out["ask_ms_without_merge"]["p95"], 2)
    out["merge"]["p95_ratio_to_just_before"] = round(
        out["merge"]["ask_ms_during"]["p95"] / out["ask_ms_just_before_merge"]["p95"], 2)
    out["segments_after_merge"] = len(Generation(current_generation(settings.index_dir)).segments)
    # the same-run baseline: 20 more small segments, then the merge as it ran before the child process
    # (merging.merge_index in a thread of the answering process, at its priority)
    add_each(settings, encoder, again)
    gen = assistant.generation()
    _, quiet_s = timed_each(assistant.ask, questions)
    worker = threading.Thread(target=merge_index, args=(settings,), kwargs={"everything": True})
    pagecache.SPARE = False  # as merges wrote before pagecache.py
    try:
        during, wall = asks_while(assistant, questions, worker.start, worker.is_alive)
    finally:
        pagecache.SPARE = True
    out["ask_ms_without_merge_baseline"] = percentiles(quiet_s + timed_each(assistant.ask, questions)[1])
    out["thread_merge_baseline"] = {"passages": gen.chunk_count, "segments": len(gen.segments),
                                    "seconds": round(wall, 1), "ask_ms_during": percentiles(during)}
    out["thread_merge_baseline"]["p95_ratio"] = round(
        out["thread_merge_baseline"]["ask_ms_during"]["p95"] / out["ask_ms_without_merge_baseline"]["p95"], 2)
    return out


def release_freed_memory() -> None:
    """Hand the heap this process freed back to the system (glibc's malloc_trim): freed small blocks
    (a million Chunk objects, sentence-vector arrays, SQLite rows) stay resident in glibc's heap."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def add_each(settings: Settings, encoder: Encoder, extra) -> None:
    """Add extra's documents one at a time (a small segment each)."""
    documents, chunks, vectors, sentence_vectors = extra
    for k, doc in enumerate(documents):
        span = slice(k * CHUNKS_PER_DOCUMENT, (k + 1) * CHUNKS_PER_DOCUMENT)
        update(settings, encoder, doc, chunks[span], vectors[span], sentence_vectors[span])


def asks_while(assistant: Assistant, questions: list[str], start, running) -> tuple[list[float], float]:
    """Ask one question after another from start() until running() says no; (seconds of each, wall seconds)."""
    began, during = time.perf_counter(), []
    start()
    while running():
        t = time.perf_counter()
        assistant.ask(questions[len(during) % len(questions)])
        during.append(time.perf_counter() - t)
    return during, time.perf_counter() - began


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
    extra = synthesise(20 * CHUNKS_PER_DOCUMENT, sentences, vectors, seed=n + 1, folder="added")  # 20 to add
    again = synthesise(20 * CHUNKS_PER_DOCUMENT, sentences, vectors, seed=n + 2, folder="again")  # 20 more
    del documents, chunks, sentence_vectors
    path = Generation(current_generation(settings.index_dir)).segments[0].path
    out: dict = {"chunks": n, "build_s": round(build_s, 1)}
    out["disk_bytes_per_chunk"] = {name: round((path / name).stat().st_size / n) for name in (VECTORS, STORE)}
    out["disk_bytes_per_chunk"]["bm25"] = round(sum(f.stat().st_size for f in path.glob("postings-*")) / n)

    truth, exact_s = exact_search(chunk_vectors, query_vectors)
    out["exact_search_ms"] = percentiles(exact_s)
    del chunk_vectors  # so the memory figures below count only what the server holds

    before = memory_kb()
    assistant = Assistant(settings, encoder=encoder)
    t = time.perf_counter()
    generation = assistant.generation()  # what a server worker opens
    out["load_ms"] = round((time.perf_counter() - t) * 1000, 1)
    index = generation.segments[0].vectors
    out["index_type"] = "exact" if vector_index.is_exact(index) else "HNSW"
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
    out.update(segments_figures(settings, encoder, assistant, questions, extra, again))
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
             row("add one document (10 passages) and publish: p50 / p95 of 20; bytes written",
                 lambda r: f"{r['add_one_document_ms']['p50']:.0f} / {r['add_one_document_ms']['p95']:.0f} ms; "
                           f"{r['add_bytes_written'] / 2**20:.2f} MiB"),
             row("found by the next search", lambda r: r["added_found_by_next_search"]),
             row("delete one document and publish: p50 / p95 of 20",
                 lambda r: f"{r['delete_one_document_ms']['p50']:.0f} / {r['delete_one_document_ms']['p95']:.0f} ms"),
             row("/ask p50: 1 + 20 unmerged segments (one segment, same run)",
                 lambda r: f"{r['ask_ms_unmerged_segments']['p50']:.1f} ms ({r['ask_ms_one_segment']['p50']:.1f} ms)"),
             row("/ask p50 / p95 during a background merge of every passage (without, same run): p95 ratio",
                 lambda r: f"{r['merge']['ask_ms_during']['p50']:.1f} / {r['merge']['ask_ms_during']['p95']:.1f} ms "
                           f"({r['ask_ms_without_merge']['p50']:.1f} / {r['ask_ms_without_merge']['p95']:.1f} ms): "
                           f"{r['merge']['p95_ratio']:.2f}x"),
             row("baseline, same run: /ask p50 / p95 during that merge in a thread at normal priority (without)",
                 lambda r: f"{r['thread_merge_baseline']['ask_ms_during']['p50']:.1f} / "
                           f"{r['thread_merge_baseline']['ask_ms_during']['p95']:.1f} ms "
                           f"({r['ask_ms_without_merge_baseline']['p50']:.1f} / "
                           f"{r['ask_ms_without_merge_baseline']['p95']:.1f} ms): "
                           f"{r['thread_merge_baseline']['p95_ratio']:.2f}x, "
                           f"{r['thread_merge_baseline']['seconds']:.1f} s"),
             row("that merge: passages, segments, time (merging itself), child's peak resident / private memory",
                 lambda r: f"{r['merge']['passages']:,}, {r['merge']['segments']}, {r['merge']['seconds']:.1f} s "
                           f"({r['merge']['merging_s']:.1f} s), {r['merge']['peak_resident_mb']} / "
                           f"{r['merge']['peak_private_mb']} MB"),
             row("/ask p95 just before / just after that merge: the ratio to just before",
                 lambda r: f"{r['ask_ms_just_before_merge']['p95']:.1f} / "
                           f"{r['ask_ms_just_after_merge']['p95']:.1f} ms: "
                           f"{r['merge']['p95_ratio_to_just_before']:.2f}x"),
             row("the bench's private memory before the segments figures: held / after malloc_trim",
                 lambda r: f"{r['bench_private_mb']['before_trim']} / {r['bench_private_mb']['after']} MB"),
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
