"""Incremental indexing benchmark (issue 4): what a full build costs, and what one change costs.

Corpus: the report plus the 619 WikiQA test documents, each a .txt file holding its title line, a
blank line, then its sentences in SentenceID order. Measured in one run, with the model loaded once
in this process (as the running server holds it):

- the full build, its time per phase, and its chunks/s against the raw encoder throughput of the
  same model on the same chunk texts (target >= 0.85);
- adding, changing and deleting one document (target: adding one < 5% of the full build);
- `qa index` with nothing changed, as a child process from the command line (model not loaded).

    .venv/bin/python bench/incremental.py [--wikiqa PATH] [--workdir DIR] [--repeat N] [--json]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from qa.config import Settings
from qa.indexing.build import build_index
from qa.indexing.generations import current_generation
from qa.indexing.store import Generation
from qa.service import Assistant

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WIKIQA = ROOT.parent / "shared" / "bench" / "wikiqa" / "WikiQA-test.tsv"
REPORT = ROOT / "corpus" / "article-ii-mandate.txt"


def wikiqa_documents(tsv: Path) -> dict[str, str]:
    """DocumentID -> file text: the title, a blank line, the sentences in SentenceID order."""
    titles: dict[str, str] = {}
    sentences: dict[str, dict[int, str]] = defaultdict(dict)
    with open(tsv, encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
            titles[row["DocumentID"]] = row["DocumentTitle"]
            sentences[row["DocumentID"]][int(row["SentenceID"].rsplit("-", 1)[1])] = row["Sentence"]
    return {doc: f"{titles[doc]}\n\n{' '.join(s[i] for i in sorted(s))}\n" for doc, s in sentences.items()}


def timed(action) -> tuple[float, object]:
    began = time.perf_counter()
    result = action()
    return time.perf_counter() - began, result


def stored_chunk_texts(index_dir: Path) -> list[str]:
    """The chunk texts exactly as the build embedded them."""
    gen = Generation(current_generation(index_dir))  # the live chunks of every segment
    ids = gen.chunk_ids_of(sorted(gen.manifest["documents"])).tolist()
    stored = gen.chunks(ids)
    return [stored[i].chunk.text for i in ids]


class PhaseClock:
    """Seconds spent in each build phase, from the build's own progress reports."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._phase, self._since = "", time.perf_counter()

    def __call__(self, phase: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if phase != self._phase:
            if self._phase:
                self.seconds[self._phase] = self.seconds.get(self._phase, 0.0) + now - self._since
            self._phase, self._since = phase, now

    def stop(self) -> dict[str, float]:
        self("", 0, 0)
        return self.seconds


def run(wikiqa: Path, workdir: Path, limit: int | None = None, repeat: int = 2) -> dict:
    corpus, index = workdir / "corpus", workdir / "index"
    (corpus / "wikiqa").mkdir(parents=True)
    shutil.copy(REPORT, corpus / REPORT.name)
    documents = dict(list(wikiqa_documents(wikiqa).items())[:limit])
    for doc, text in documents.items():
        (corpus / "wikiqa" / f"{doc}.txt").write_text(text, encoding="utf-8")

    settings = Settings(corpus_dir=corpus, index_dir=index).resolved()
    assistant = Assistant(settings)
    load_s, encoder = timed(lambda: assistant.encoder)  # loaded once, as the server holds it
    encoder.encode(["warm-up"] * 32)
    out: dict = {"documents": len(documents) + 1, "model_load_s": load_s}

    # The full build (the same build_index the server's reindex runs, a clock on its phases) and
    # the raw encoder on the same chunk texts, alternated `repeat` times; the best of each counts,
    # so a burst of load from other processes hurts neither side more than the other.
    builds, raws = [], []
    for attempt in range(repeat):
        clock = PhaseClock()
        began = time.perf_counter()
        summary = build_index(settings, lambda: encoder, rebuild=attempt > 0, progress=clock)
        builds.append((time.perf_counter() - began, clock.stop()))
        chunks = stored_chunk_texts(index)
        began = time.perf_counter()
        encoder.encode(chunks)
        raws.append(time.perf_counter() - began)
    full_s, phases = min(builds, key=lambda b: b[0])
    raw_s = min(raws)
    out |= {"full_build_s": full_s, "full_builds_s": [b[0] for b in builds], "chunks": summary.chunks,
            "phases_s": phases, "raw_encode_chunks_s": raw_s, "raw_encodes_s": raws,
            "raw_chunks_per_s": len(chunks) / raw_s, "build_chunks_per_s": summary.chunks / full_s}
    out["throughput_ratio"] = out["build_chunks_per_s"] / out["raw_chunks_per_s"]

    # One document at a time, through Assistant.reindex: the server's path, new generation opened.
    first, second = sorted(documents)[:2]
    copy = documents[first].replace("\n\n", " (copy)\n\n", 1)
    (corpus / "added-note.txt").write_text(copy, encoding="utf-8")
    out["add_one_s"], summary = timed(assistant.reindex)
    assert summary.added == ["added-note.txt"], summary.describe()
    changed = corpus / "wikiqa" / f"{first}.txt"
    changed.write_text(changed.read_text(encoding="utf-8") + "An added closing sentence.\n", encoding="utf-8")
    out["change_one_s"], summary = timed(assistant.reindex)
    assert summary.changed == [f"wikiqa/{first}.txt"], summary.describe()
    (corpus / "wikiqa" / f"{second}.txt").unlink()
    out["delete_one_s"], summary = timed(assistant.reindex)
    assert summary.removed == [f"wikiqa/{second}.txt"], summary.describe()
    out["add_one_over_full"] = out["add_one_s"] / full_s

    command = [sys.executable, "-m", "qa.cli", "index", "--corpus", str(corpus), "--index", str(index)]
    out["cli_nothing_changed_s"], proc = timed(
        lambda: subprocess.run(command, capture_output=True, text=True)
    )
    assert proc.returncode == 0 and proc.stdout.startswith("up to date"), proc.stdout + proc.stderr
    out["cli_nothing_changed_summary"] = proc.stdout.splitlines()[0]
    return out


def report(out: dict) -> str:
    phases = ", ".join(f"{name} {s:.1f}" for name, s in out["phases_s"].items())
    rows = [
        ("documents / chunks", f"{out['documents']} / {out['chunks']}"),
        ("model load (in no time below)", f"{out['model_load_s']:.1f} s"),
        ("full build, best of " + str(len(out["full_builds_s"])),
         f"{out['full_build_s']:.1f} s = {out['build_chunks_per_s']:.1f} chunks/s"
         f" (all: {', '.join(f'{x:.1f}' for x in out['full_builds_s'])})"),
        ("  its phases, s", phases),
        ("raw encoder, same chunk texts, best",
         f"{out['raw_encode_chunks_s']:.1f} s = {out['raw_chunks_per_s']:.1f} chunks/s"
         f" (all: {', '.join(f'{x:.1f}' for x in out['raw_encodes_s'])})"),
        ("build / raw chunks/s (target >= 0.85)", f"{out['throughput_ratio']:.2f}"),
        ("add one document", f"{out['add_one_s']:.2f} s"),
        ("change one document", f"{out['change_one_s']:.2f} s"),
        ("delete one document", f"{out['delete_one_s']:.2f} s"),
        ("add one / full build (target < 5%)", f"{100 * out['add_one_over_full']:.2f}%"),
        ("`qa index`, nothing changed (CLI, wall)", f"{out['cli_nothing_changed_s']:.2f} s"),
    ]
    width = max(len(r[0]) for r in rows)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    head = f"{platform.machine()}, {os.cpu_count()} cores, load average {load} at the end of the run"
    return "\n".join([head, *(f"{k.ljust(width)}  {v}" for k, v in rows)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wikiqa", type=Path, default=DEFAULT_WIKIQA, help="WikiQA-test.tsv")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="a new or empty folder to keep the corpus and index in (default: temporary)")
    parser.add_argument("--limit", type=int, default=None, help="first N WikiQA documents only")
    parser.add_argument("--repeat", type=int, default=2, help="alternate N full builds and raw encodes")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if not args.wikiqa.is_file():
        parser.error(f"--wikiqa: no file {args.wikiqa}; pass the path of WikiQA-test.tsv")
    if args.workdir and args.workdir.exists() and any(args.workdir.iterdir()):
        parser.error(f"--workdir: {args.workdir} is not empty; pass a new or empty folder")
    with tempfile.TemporaryDirectory(prefix="qa-bench-incremental-") as tmp:
        out = run(args.wikiqa, (args.workdir or Path(tmp)).resolve(), args.limit, max(args.repeat, 1))
    print(json.dumps(out, indent=2) if args.json else report(out))


if __name__ == "__main__":
    main()
