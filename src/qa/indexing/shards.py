"""Shards: an index split by document into N indexes of its own, searched as one.

A sharded index folder holds SHARDS (shards.json: how many, and the folder of each) and one
folder per shard (shard-<i>-of-<n>), each an ordinary index with its own CURRENT, generations,
segments and writer lock. A document belongs to shard sha256(doc_id) mod N, the same on every
machine and in every Python. An index without shards.json is a 1-shard index: the folder itself.
N is fixed when the index is created; `qa index --rebuild --shards M` writes M new folders beside
the old ones, switches shards.json over (one atomic replace), then removes the old folders.

Chunk ids are never shared between shards: shard i numbers its chunks from i x ID_STRIDE + 1, so
the segments of every shard are parts of one index and `ShardedGeneration` searches them as such
(lexical.Words over every part: BM25 statistics summed over shards before scoring, as
Elasticsearch's DFS query-then-fetch does; vector_index.search_parts for the vectors), and a
sharded answer is the unsharded one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

from qa.indexing.generations import LOCK, POINTER, current_generation, read_small
from qa.indexing.lexical import Words
from qa.indexing.store import SEGMENTS, Generation, Segment

SHARDS = "shards.json"
ID_STRIDE = 2**40  # chunk ids per shard: a shard never runs out, and 2**23 shards fit in FAISS's int64 ids


def shard_of(doc_id: str, count: int) -> int:
    """The shard that owns doc_id: stable across processes and machines (not Python's hash())."""
    return int.from_bytes(hashlib.sha256(doc_id.encode("utf-8")).digest()[:8], "big") % count


def first_chunk_id(shard: int) -> int:
    return shard * ID_STRIDE + 1


def shard_of_chunk(chunk_id: int) -> int:
    return chunk_id // ID_STRIDE


def folders(index_dir: Path) -> list[Path]:
    """The folder of each shard, in shard order; [index_dir] for an index without shards."""
    text = read_small(os.path.join(index_dir, SHARDS))  # os-level: read on every question
    if text is None:
        return [index_dir]
    return [index_dir / name for name in json.loads(text)["folders"]]


def count(index_dir: Path) -> int:
    return len(folders(index_dir))


def new_folders(index_dir: Path, n: int) -> list[Path]:
    """Folders for an index of n shards: [index_dir] for one; names not in use for more."""
    if n == 1:
        return [index_dir]
    in_use = set(folders(index_dir))
    names = [index_dir / f"shard-{i}-of-{n}" for i in range(n)]
    if in_use & set(names):  # a rebuild into the same count: a distinct set of names
        stamp = time.time_ns()
        names = [index_dir / f"shard-{i}-of-{n}-{stamp}" for i in range(n)]
    return names


def switch(index_dir: Path, chosen: list[Path]) -> None:
    """Make `chosen` (each already published) the index's shards, then remove the folders they replace.
    The switch is one atomic replace of shards.json (or its removal, for one shard in index_dir)."""
    old = folders(index_dir)
    if chosen == old:
        return
    if chosen == [index_dir]:
        (index_dir / SHARDS).unlink()
    else:
        tmp = index_dir / f"{SHARDS}.tmp"
        tmp.write_text(json.dumps({"shards": len(chosen), "folders": [p.name for p in chosen]}, indent=1))
        os.replace(tmp, index_dir / SHARDS)
    for folder in old:
        if folder == index_dir:  # the unsharded index's own files; its lock stays (we hold it)
            (index_dir / POINTER).unlink(missing_ok=True)
            for gen in index_dir.glob("gen-*"):
                shutil.rmtree(gen, ignore_errors=True)
            shutil.rmtree(index_dir / SEGMENTS, ignore_errors=True)
        elif folder not in chosen:
            shutil.rmtree(folder, ignore_errors=True)


def published(index_dir: Path) -> list[Path] | None:
    """The published generation of each shard, or None when a shard has none."""
    found = [current_generation(folder) for folder in folders(index_dir)]
    return None if any(g is None for g in found) else found  # type: ignore[return-value]


def stamp(index_dir: Path, shard_folders: list[Path] | None) -> tuple | None:
    """What changes whenever the shards change or one of `shard_folders` publishes: the identity of
    shards.json and of each shard's CURRENT (both are only ever switched with os.replace, which gives
    the file a new inode). One stat call a file, where reading the pointers took six system calls on
    every question. None when the folders are not known yet."""
    if shard_folders is None:
        return None
    return tuple(_identity(os.path.join(path, name)) for path, name in
                 [(index_dir, SHARDS), *((folder, POINTER) for folder in shard_folders)])


def _identity(path: str) -> tuple[int, int, int, int, int] | None:
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    return found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns


def generation_key(paths: list[Path]) -> str:
    """One name for a set of shard generations: changes whenever any shard publishes."""
    return paths[0].name if len(paths) == 1 else "+".join(f"{p.parent.name}/{p.name}" for p in paths)


def open_generation(index_dir: Path, paths: list[Path], opened: list[Segment] | None = None) -> Generation:
    """The generation over these shard generations (one: a plain Generation). Segments in `opened`
    (the previous generation's) are reused where a shard still lists them."""
    def lent(path: Path) -> dict[str, Segment]:
        return {s.name: s for s in opened or [] if s.path.parent == path.parent / SEGMENTS}

    if len(paths) == 1:
        return Generation(paths[0], lent(paths[0]))
    return ShardedGeneration(index_dir, [Generation(p, lent(p)) for p in paths])


def lock_files(index_dir: Path) -> list[Path]:
    return [folder / LOCK for folder in folders(index_dir)]


class ShardedGeneration(Generation):
    """The published generations of every shard, searched as one generation: the same methods, the
    segments of all shards as its parts (Generation's methods go over `segments`, `home`, `words`)."""

    def __init__(self, index_dir: Path, shards: list[Generation]) -> None:  # noqa: D107 - no super(): no manifest
        self.shards = shards
        self.path = index_dir / generation_key([g.path for g in shards])  # a name only (web.py keys caches by it)
        self.dimension = shards[0].dimension
        self.segments = [s for g in shards for s in g.segments]
        self.deleted = [d for g in shards for d in g.deleted]
        self.dead = [d for g in shards for d in g.dead]
        self.home = {}
        offset = 0
        for g in shards:
            self.home.update({doc_id: n + offset for doc_id, n in g.home.items()})
            offset += len(g.segments)
        documents = {d: h for g in shards for d, h in g.manifest["documents"].items()}
        self.manifest = {**shards[0].manifest, "documents": dict(sorted(documents.items())),
                         "indexed": {d: w for g in shards for d, w in g.manifest["indexed"].items()},
                         "document_count": len(documents), "chunks": sum(g.chunk_count for g in shards),
                         "shards": len(shards)}
        self.words = Words([p for g in shards for p in g.words.parts])
        self.vector_parts = [p for g in shards for p in g.vector_parts]
        self.chunk_count = self.words.n
        self.document_count = len(self.home)
