"""Writing immutable segments: one from newly embedded documents, or one merged from others.

A segment is written into a staging folder (.build-*), fsynced, then renamed into segments/; only
a published generation that lists it makes it part of the index, so a crash at any point leaves
at most an unreferenced folder, which the next writer removes (generations.remove_leftovers).
A merge reuses what the segments store (chunk vectors from FAISS, sentence vectors and rows from
SQLite, postings with their raw counts) and drops deleted documents: nothing is encoded or
tokenised again.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from pathlib import Path

import faiss
import numpy as np

from qa.indexing import lexical, pagecache
from qa.indexing.generations import checkpoint, fsync_tree
from qa.indexing.sentences import sentence_data
from qa.indexing.store import SCHEMA, SEGMENT, SEGMENTS, STORE, VECTORS, Segment
from qa.indexing.vector_index import empty_index, fit_to_size, hnsw, load, remove
from qa.reading.chunking import Chunk
from qa.reading.documents import Document


def write_segment(
    index_dir: Path, first_id: int, documents: list[Document], chunks: list[Chunk], chunk_vectors: np.ndarray,
    sentence_vectors: list[np.ndarray], exact_max_chunks: int, indexed: dict[str, str],
) -> Path:
    """A new segment holding `documents` (their chunks numbered from first_id, in order); returns its folder.
    `indexed`: doc_id -> when it was indexed (kept across merges and upgrades)."""
    staging = _staging(index_dir)
    try:
        ids = np.arange(first_id, first_id + len(chunks), dtype=np.int64)
        titles = {d.doc_id: d.title for d in documents}
        db = sqlite3.connect(staging / STORE)
        db.executescript(SCHEMA)
        with db:
            db.executemany(
                "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(d.doc_id, d.title, d.sha256, d.text, json.dumps(d.sections), json.dumps(d.pages),
                  json.dumps(d.metadata.to_row())) for d in documents],
            )
            db.executemany(
                "INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(int(cid), c.doc_id, c.ordinal, c.start, c.end, c.text, c.section, c.page,
                  json.dumps(c.sentences), np.asarray(sv, dtype=np.float32).tobytes(),
                  sentence_data(c, titles[c.doc_id]).to_json())
                 for cid, c, sv in zip(ids, chunks, sentence_vectors, strict=True)],
            )
        db.close()
        triples, lengths = lexical.Triples.of_texts([c.text for c in chunks])
        counts: dict[str, int] = {}
        for c in chunks:
            counts[c.doc_id] = counts.get(c.doc_id, 0) + 1
        about = {d.doc_id: {"sha256": d.sha256, "title": d.title, "chunks": counts.get(d.doc_id, 0),
                            "indexed": indexed[d.doc_id]} for d in documents}
        return _finish(index_dir, staging, ids, np.asarray(chunk_vectors, dtype=np.float32), triples, lengths,
                       about, exact_max_chunks, "write")
    except BaseException:  # Ctrl-C or a failure leaves nothing behind; kill -9 is cleaned up next time
        shutil.rmtree(staging, ignore_errors=True)
        raise


def merge_segments(
    index_dir: Path, segments: list[Segment], deleted: list[frozenset[str]], exact_max_chunks: int,
) -> Path:
    """One segment holding the live documents of `segments` (deleted doc_ids left out), chunk ids kept.
    Its files are written through a pagecache.Flusher: dirty pages are bounded, the new store is not
    left in the cache, nor the pages of the stores it copies that were not cached before."""
    staging = _staging(index_dir)
    try:
        with pagecache.Flusher(staging, dropped=frozenset({STORE}),
                               inputs=tuple(segment.path / STORE for segment in segments)) as flusher:
            flusher.folder = _merge_into(index_dir, staging, segments, deleted, exact_max_chunks)  # moved there
            return flusher.folder
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _merge_into(index_dir: Path, staging: Path, segments: list[Segment], deleted: list[frozenset[str]],
                exact_max_chunks: int) -> Path:
    keeps, live_ids = [], []
    for segment, gone in zip(segments, deleted, strict=True):
        dead = segment.chunk_ids_of(sorted(gone))
        keep = ~np.isin(np.asarray(segment.ids), dead)
        keeps.append(keep)
        live_ids.append(np.asarray(segment.ids)[keep])
    ids = np.sort(np.concatenate(live_ids)) if live_ids else np.zeros(0, dtype=np.int64)
    db = sqlite3.connect(staging / STORE, uri=True)
    db.executescript(SCHEMA)
    about: dict[str, dict] = {}
    for n, (segment, gone) in enumerate(zip(segments, deleted, strict=True)):
        db.execute("ATTACH DATABASE ? AS src", (f"file:{(segment.path / STORE).as_posix()}?mode=ro&immutable=1",))
        marks = ",".join("?" * len(gone))
        where = f"WHERE doc_id NOT IN ({marks})" if gone else ""
        with db:
            db.execute(f"INSERT INTO documents SELECT * FROM src.documents {where}", tuple(gone))
            db.execute(f"INSERT INTO chunks SELECT * FROM src.chunks {where}", tuple(gone))
        db.execute("DETACH DATABASE src")
        about.update({d: info for d, info in segment.documents.items() if d not in gone})
        if n == 0:
            checkpoint("merge:copying")  # half a store written
    db.close()
    parts, lengths = [], np.zeros(len(ids), dtype=np.int32)
    for segment, keep, mine in zip(segments, keeps, live_ids, strict=True):
        at = np.searchsorted(ids, mine)
        lengths[at] = np.asarray(segment.postings.lengths)[keep]
        new_position = np.full(len(segment.ids), -1, dtype=np.int64)
        new_position[keep] = at
        parts.append(segment.postings.triples(keep, new_position))
    # the postings first, their arrays freed before the vector index is read into memory: the merge's
    # peak memory is the larger of the two, not their sum (at 101,000 passages: 524 -> 483 MB)
    lexical.write_postings(staging, ids, lengths, lexical.Triples.concatenate(parts))
    del parts
    index = _merged_vectors(segments, keeps, live_ids, ids, exact_max_chunks)
    return _finish(index_dir, staging, ids, index, None, lengths, about, exact_max_chunks, "merge")


def _merged_vectors(segments: list[Segment], keeps: list[np.ndarray], live_ids: list[np.ndarray], ids: np.ndarray,
                    exact_max_chunks: int) -> faiss.Index:
    """The merged segment's vector index: the largest segment's own index, copied into memory, with
    its deleted chunks removed (tombstones in a graph) and the other segments' vectors added, then
    made the right kind for its size (vector_index.fit_to_size). Rebuilding a graph of every vector
    took most of a merge's time (213 s of a 100,000-passage merge here)."""
    largest = max(range(len(segments)), key=lambda n: len(segments[n].ids))
    index = faiss.read_index(str(segments[largest].path / VECTORS))  # not memory-mapped: it grows
    pagecache.drop(segments[largest].path / VECTORS)  # read whole: what no server maps need not stay cached
    gone = np.asarray(segments[largest].ids)[~keeps[largest]]
    if len(gone):
        remove(index, gone)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # a merge runs beside the questions: leave them the other cores
    try:
        for n, mine in enumerate(live_ids):
            if n != largest and len(mine):
                index.add_with_ids(segments[n].vectors.reconstruct_batch(mine), mine)
        return fit_to_size(index, ids, exact_max_chunks)
    finally:
        faiss.omp_set_num_threads(threads)


def upgrade_format_4(index_dir: Path, generation: Path, manifest: dict, exact_max_chunks: int) -> Path:
    """One segment holding a format-4 generation's documents, chunk ids and vectors as they are:
    its store (same schema) and, without tombstones, its FAISS file are hard-linked (both immutable),
    the BM25 postings are counted again from the stored texts; nothing is encoded."""
    staging = _staging(index_dir)
    try:
        shutil.copy2(generation / STORE, staging / STORE)  # it gains the sentence data (format 6)
        add_sentence_data(staging / STORE)
        db = sqlite3.connect(f"file:{(staging / STORE).as_posix()}?mode=ro&immutable=1", uri=True)
        rows = db.execute("SELECT id, text FROM chunks ORDER BY id").fetchall()
        titles = db.execute("SELECT d.doc_id, d.title, COUNT(c.id) FROM documents d LEFT JOIN chunks c "
                            "USING (doc_id) GROUP BY d.doc_id").fetchall()
        db.close()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        old = load(str(generation / VECTORS))
        reuse = old.ntotal == len(ids)  # no tombstones: the file serves as it is
        if reuse:
            _link_or_copy(generation / VECTORS, staging / VECTORS)
        vectors = None if reuse else (old.reconstruct_batch(ids) if len(ids) else np.zeros((0, old.d), np.float32))
        triples, lengths = lexical.Triples.of_texts([r[1] for r in rows])
        indexed = manifest.get("indexed", {})
        about = {doc_id: {"sha256": manifest["documents"][doc_id], "title": title, "chunks": n,
                          "indexed": indexed.get(doc_id, manifest.get("created", ""))} for doc_id, title, n in titles}
        return _finish(index_dir, staging, ids, vectors, triples, lengths, about, exact_max_chunks, "upgrade")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def add_sentence_data(store: Path) -> None:
    """Give a format-5 store's chunks the sentence data format 6 stores (sentences.py), from their texts."""
    db = sqlite3.connect(store)
    try:
        if "sentence_data" not in {row[1] for row in db.execute("PRAGMA table_info(chunks)")}:
            db.execute("ALTER TABLE chunks ADD COLUMN sentence_data TEXT NOT NULL DEFAULT ''")
        rows = db.execute('SELECT c.id, c.doc_id, c.ordinal, c.start, c."end", c.text, c.section, c.page, '
                          "c.sentences, d.title FROM chunks c JOIN documents d USING (doc_id)").fetchall()
        with db:
            db.executemany("UPDATE chunks SET sentence_data = ? WHERE id = ?", [
                (sentence_data(Chunk(doc_id, ordinal, start, end, text, section, page,
                                     tuple(tuple(s) for s in json.loads(spans))), title).to_json(), cid)
                for cid, doc_id, ordinal, start, end, text, section, page, spans, title in rows])
        db.execute("VACUUM")
    finally:
        db.close()


def upgrade_format_5(index_dir: Path, segment: Path) -> Path:
    """A copy of a format-5 segment whose store holds the sentence data of format 6: the store is
    copied and filled in from its texts, every other file (vectors, postings) is hard-linked as it
    is; nothing is encoded."""
    staging = _staging(index_dir)
    try:
        for f in segment.iterdir():
            if f.name == STORE:
                shutil.copy2(f, staging / STORE)
            elif f.name != SEGMENT:
                _link_or_copy(f, staging / f.name)
        add_sentence_data(staging / STORE)
        info = json.loads((segment / SEGMENT).read_text())
        info["bytes"] = sum(p.stat().st_size for p in staging.iterdir())
        (staging / SEGMENT).write_text(json.dumps(info, indent=1))
        fsync_tree(staging)
        checkpoint("upgrade:segment-staged")
        folder = index_dir / SEGMENTS / f"seg-{time.time_ns()}"
        staging.rename(folder)
        fsync_tree(folder.parent, files=False)
        return folder
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _staging(index_dir: Path) -> Path:
    staging = index_dir / f".build-{os.getpid()}-{time.time_ns()}"
    staging.mkdir(parents=True)
    return staging


def _finish(
    index_dir: Path, staging: Path, ids: np.ndarray, vectors: np.ndarray | faiss.Index | None,
    triples: lexical.Triples | None, lengths: np.ndarray, about: dict[str, dict], exact_max_chunks: int, kind: str,
) -> Path:
    """Write the vectors (an index made already, or None: the file is there), postings (None: written
    already) and segment.json beside the store, then move the folder into segments/."""
    if isinstance(vectors, np.ndarray):
        index = empty_index(vectors.shape[1]) if len(ids) <= exact_max_chunks else hnsw(vectors.shape[1])
        if len(ids):
            index.add_with_ids(vectors, ids)
        vectors = index
    if vectors is not None:
        pagecache.write_index(vectors, staging / VECTORS)  # synced as it goes: no gigabyte dirty at once
    if triples is not None:
        lexical.write_postings(staging, ids, lengths, triples)
    info = {
        "documents": dict(sorted(about.items())),
        "chunks": len(ids),
        "first_chunk_id": int(ids[0]) if len(ids) else None,
        "last_chunk_id": int(ids[-1]) if len(ids) else None,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
    }
    info["bytes"] = sum(p.stat().st_size for p in staging.iterdir())
    (staging / SEGMENT).write_text(json.dumps(info, indent=1))
    fsync_tree(staging)
    checkpoint(f"{kind}:segment-staged")
    folder = index_dir / SEGMENTS / f"seg-{time.time_ns()}"
    folder.parent.mkdir(exist_ok=True)
    staging.rename(folder)
    fsync_tree(folder.parent, files=False)
    checkpoint(f"{kind}:segment-placed")
    return folder
