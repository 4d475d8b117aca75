"""Merging segments in the background, as Lucene's TieredMergePolicy does, simplified.

Each update adds a small segment, and every segment costs a search (a FAISS lookup, a few postings
rows), so their number is bounded: segments are grouped in tiers of similar size (a tier spans a
factor of MERGE_FACTOR in live chunks, everything under TIER_FLOOR counting as the smallest), and a
tier holding MERGE_FACTOR segments has them merged into one of the next tier. A segment whose
deleted chunks pass PURGE_SHARE of it is rewritten without them; `everything` merges all segments
into one (Lucene's forceMerge(1)). The writer runs merges after publishing, under the writer lock,
never on the request path (a server runs them in a child process: merge_child.py); each merge
publishes a new generation like any other write. Other writers wait for a merge rather than being
turned away (writer_lock's MERGE_LOCK); the progress phase "merging" tells the library a merge is
running.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from qa.config import Settings
from qa.indexing.generations import (
    MERGING,
    ProgressFile,
    current_generation,
    publish_manifest,
    remove_leftovers,
    segment_sizes,
    writer_lock,
)
from qa.indexing.segments import merge_segments
from qa.indexing.store import FORMAT_VERSION, MANIFEST, Generation

MERGE_FACTOR = 10
TIER_FLOOR = 1_000  # live chunks: segments smaller than this are all one tier
PURGE_SHARE = 0.5


@dataclass
class MergeSummary:
    merges: list[dict] = field(default_factory=list)  # {"segments": n, "chunks": live chunks, "seconds"}
    peak_memory_mb: float | None = None  # the peak resident memory of the process that merged, when known

    def describe(self) -> str:
        if not self.merges:
            return ""
        return "\n".join(f"  merged {m['segments']} segments into one of {m['chunks']} passages "
                         f"({m['seconds']:.1f}s)" for m in self.merges)


def choose(sizes: list[tuple[int, int]], factor: int = MERGE_FACTOR) -> list[int]:
    """Indexes of the segments to merge next, given each one's (live chunks, chunks written); [] for none."""
    tiers: dict[int, list[int]] = {}
    for n, (live, _) in enumerate(sizes):
        tiers.setdefault(int(math.log(max(live, TIER_FLOOR) / TIER_FLOOR, factor)), []).append(n)
    for tier in sorted(tiers):
        if len(tiers[tier]) >= factor:
            return sorted(sorted(tiers[tier], key=lambda n: sizes[n][0])[:factor])
    purge = [n for n, (live, written) in enumerate(sizes) if written and written - live > PURGE_SHARE * written]
    return purge[:1]


def choose_all(sizes: list[tuple[int, int]]) -> list[int]:
    """Every segment, when they are several or hold deleted chunks (a forced merge into one); else []."""
    return list(range(len(sizes))) if len(sizes) > 1 or any(w > live for live, w in sizes) else []


def merge_needed(settings: Settings, factor: int = MERGE_FACTOR, everything: bool = False) -> bool:
    """Whether the policy would merge the published generation's segments (reads segment.json files only)."""
    sizes = [(live, written) for _, live, _, written in segment_sizes(settings.index_dir)]
    return bool(choose_all(sizes) if everything else choose(sizes, factor))


def merge_index(settings: Settings, wait: bool = True, factor: int = MERGE_FACTOR,
                everything: bool = False) -> MergeSummary:
    """Merge the published generation's segments until the policy asks for no more (`everything`:
    into one); publish each merge."""
    index_dir = settings.index_dir
    summary = MergeSummary()
    if not merge_needed(settings, factor, everything):  # the usual case: no lock taken, nothing written
        return summary
    with writer_lock(index_dir, wait=wait, merge=True):
        report = ProgressFile(index_dir, lambda *_: None)
        report(MERGING, 0, 0)
        try:
            remove_leftovers(index_dir)
            while (done := _merge_once(index_dir, settings, report, factor, everything)) is not None:
                summary.merges.append(done)
        finally:
            report.clear()
    return summary


def _merge_once(index_dir: Path, settings: Settings, report: ProgressFile, factor: int,
                everything: bool) -> dict | None:
    gen_path = current_generation(index_dir)
    if gen_path is None:
        return None
    manifest = json.loads((gen_path / MANIFEST).read_text())
    if manifest.get("format") != FORMAT_VERSION:
        return None
    gen = Generation(gen_path)
    try:
        sizes = [(part.size, len(segment.ids)) for segment, part in zip(gen.segments, gen.words.parts, strict=True)]
        chosen = choose_all(sizes) if everything else choose(sizes, factor)
        if not chosen:
            return None
        began = time.perf_counter()
        live = sum(sizes[n][0] for n in chosen)
        report(MERGING, 0, live)
        folder = merge_segments(index_dir, [gen.segments[n] for n in chosen], [gen.deleted[n] for n in chosen],
                                settings.exact_max_chunks)
        names = {gen.segments[n].name for n in chosen}
        kept = [e for e in manifest["segments"] if e["name"] not in names]
        at = min(chosen)  # the merged segment takes the place of the first one it replaces
        segments = kept[:at] + [{"name": folder.name, "deleted": []}] + kept[at:]
        publish_manifest(index_dir, {**manifest, "segments": segments,
                                     "created": datetime.now(UTC).isoformat(timespec="seconds")}, "merge")
        report(MERGING, live, live)
        return {"segments": len(chosen), "chunks": live, "seconds": time.perf_counter() - began}
    finally:
        gen.close()
