"""The page cache during a server's background merge: merged as before and through pagecache.py, in turn.

    .venv/bin/python bench/merge_pages.py [--passages 100000] [--rounds 1] [--wikiqa TSV] [--workdir DIR] [--json]

At 1M passages a merge's reads and writes (5.4 GB and 7.5 GB beside a 7.5 GB index, 23 GiB) evict
the server's pages; at 100k it all fits in memory, so what this measures is what the merge leaves
behind, not /ask: the peak of dirty + writeback memory (/proc/meminfo) while it runs, how much the
page cache grew (Cached: peak and at the end, against just before), what the child read and wrote
(/proc/<pid>/io) and its peak resident memory, private and file-backed, and how much of the merged
segment's files is cached when it is done (fincore). Passages are synthesised as in scale.py
(WikiQA sentence pairs, 10 a document) with random unit vectors: the merge's I/O does not depend on
what the vectors mean, and nothing is encoded. One segment of `--passages` is built once; each round
adds 20 documents (20 small segments) and merges everything in the server's child
(merge_child.merge_in_child), with `--keep-page-cache` (before) and without (now), alternated.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np

import wikiqa
from common import bench_parser, machine, parse_bench_args
from qa.config import Settings
from qa.indexing.build import write_update
from qa.indexing.generations import current_generation, writer_lock
from qa.indexing.merge_child import merge_in_child
from qa.indexing.store import SEGMENTS, STORE, Generation
from scale import CHUNKS_PER_DOCUMENT, add_each, memory_kb, synthesise

DIMENSION, MAX_SEQ_LENGTH = 384, 256  # the product's model's (no encoder is loaded)
SAMPLE_EVERY = 0.05  # seconds


def meminfo_kb() -> dict[str, int]:
    fields = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    return {k: int(fields[k].split()[0]) for k in ("Dirty", "Writeback", "Cached", "MemAvailable")}


def io_bytes(pid: int) -> dict[str, int]:
    try:
        fields = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    except (OSError, ValueError):
        return {}
    return {k: int(fields[k]) for k in ("read_bytes", "write_bytes")}


def cached_mb(folder: Path) -> dict[str, float]:
    """MB of each file of folder resident in the page cache (util-linux fincore)."""
    files = sorted(str(p) for p in folder.iterdir() if p.is_file() and p.stat().st_size > 2**20)
    if not files:
        return {}
    out = subprocess.run(["fincore", "--bytes", "--json", *files], capture_output=True, text=True, check=True)
    return {Path(row["file"]).name: round(int(row["res"]) / 2**20, 1)
            for row in json.loads(out.stdout)["fincore"]}


def sampled_merge(settings: Settings, keep_page_cache: bool) -> dict:
    """One merge of every segment in the child, /proc sampled every SAMPLE_EVERY s while it runs. The
    stores start uncached, as at 1M (where the merge read 5.4 GB from disk), whichever way ran before."""
    for store in settings.index_dir.glob(f"{SEGMENTS}/*/{STORE}"):
        fd = os.open(store, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
    before = meminfo_kb()
    peak = {"dirty_writeback": 0, "cached": before["Cached"], "rss_anon": 0, "rss_file": 0}
    io: dict[str, int] = {}
    child: list[subprocess.Popen] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(SAMPLE_EVERY):
            m = meminfo_kb()
            peak["dirty_writeback"] = max(peak["dirty_writeback"], m["Dirty"] + m["Writeback"])
            peak["cached"] = max(peak["cached"], m["Cached"])
            if child:
                io.update(io_bytes(child[0].pid))
                rss = memory_kb(child[0].pid)
                peak["rss_anon"] = max(peak["rss_anon"], rss.get("RssAnon", 0))
                peak["rss_file"] = max(peak["rss_file"], rss.get("RssFile", 0))

    sampler = threading.Thread(target=sample)
    sampler.start()
    began = time.perf_counter()
    try:
        summary = merge_in_child(settings, everything=True, started=child.append, keep_page_cache=keep_page_cache)
    finally:
        done.set()
        sampler.join()
    seconds = time.perf_counter() - began
    after = meminfo_kb()
    gen = Generation(current_generation(settings.index_dir))
    merged = gen.segments[0].path
    gen.close()
    mb = 1 / 1024
    return {"way": "before (--keep-page-cache)" if keep_page_cache else "now (pagecache.py)",
            "seconds": round(seconds, 1), "passages": summary.merges[0]["chunks"],
            "child_read_mb": round(io.get("read_bytes", 0) / 2**20),
            "child_write_mb": round(io.get("write_bytes", 0) / 2**20),
            "peak_dirty_writeback_mb": round(peak["dirty_writeback"] * mb),
            "dirty_writeback_before_mb": round((before["Dirty"] + before["Writeback"]) * mb),
            "cached_growth_peak_mb": round((peak["cached"] - before["Cached"]) * mb),
            "cached_growth_end_mb": round((after["Cached"] - before["Cached"]) * mb),
            "child_peak_rss_anon_mb": round(peak["rss_anon"] * mb),
            "child_peak_rss_file_mb": round(peak["rss_file"] * mb),
            "child_peak_resident_mb": summary.peak_memory_mb,
            "merged_segment_cached_mb": cached_mb(merged)}


def main() -> None:
    parser = bench_parser(__doc__, "keep the index here (reused when it exists)")
    parser.add_argument("--passages", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=1, help="merges each way, alternated")
    args = parse_bench_args(parser)
    workdir = (args.workdir or Path("/tmp/qa-bench-merge-pages")).resolve()
    settings = Settings(corpus_dir=workdir / "corpus", index_dir=workdir / f"index-{args.passages}").resolved()
    data = wikiqa.load(args.wikiqa)
    sentences = sorted({s for _, doc in data.documents.values() for s in doc})
    vectors = np.random.default_rng(0).standard_normal((len(sentences), DIMENSION)).astype(np.float32)
    if current_generation(settings.index_dir) is None:
        shutil.rmtree(settings.index_dir, ignore_errors=True)
        documents, chunks, chunk_vectors, sentence_vectors = synthesise(args.passages, sentences, vectors, seed=1)
        t = time.perf_counter()
        with writer_lock(settings.index_dir):
            write_update(settings, None, (DIMENSION, MAX_SEQ_LENGTH), documents, chunks, chunk_vectors,
                         sentence_vectors, [])
        print(f"built {args.passages} passages in {time.perf_counter() - t:.0f} s", flush=True)
        del documents, chunks, chunk_vectors, sentence_vectors

    class Sizes:  # what scale.update asks of an encoder
        dimension, max_seq_length = DIMENSION, MAX_SEQ_LENGTH

    out = {"machine": machine(), "passages": args.passages, "merges": []}
    for r in range(args.rounds):
        for keep in (True, False):
            extra = synthesise(20 * CHUNKS_PER_DOCUMENT, sentences, vectors, seed=100 + 2 * r + keep,
                               folder=f"added-{r}-{int(keep)}")
            add_each(settings, Sizes, extra)
            result = sampled_merge(settings, keep)
            print(json.dumps(result), flush=True)
            out["merges"].append(result)
    out["machine_at_end"] = machine()
    if args.json:
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
