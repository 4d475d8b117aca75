"""Building and updating index generations.

A build runs under the index directory's writer lock, writes a complete new generation into a
temporary folder, then publishes it (generations.py). A crash at any point leaves the previous
generation published and intact; the next build removes the leftovers. Only documents whose
content hash changed are read, chunked and embedded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import faiss
import numpy as np

from qa.config import Settings
from qa.errors import CorpusMissing, DocumentError, IndexMismatch
from qa.indexing import lexical
from qa.indexing.embedding import Encoder
from qa.indexing.generations import (
    Progress,
    ProgressFile,
    current_generation,
    publish,
    remove_leftovers,
    writer_lock,
)
from qa.indexing.store import FORMAT_VERSION, MANIFEST, SCHEMA, STORE, VECTORS
from qa.indexing.vector_index import empty_index, fit_to_size, remove
from qa.reading.chunking import CHUNKER_VERSION, Chunk, chunk_document
from qa.reading.documents import Document, iter_corpus_files, read_document

ENCODE_SLICE = 256  # texts per progress step; the encoder batches within a slice

# How a build turns chunks into (chunk vectors, sentence vectors per chunk): `_embed` in this process,
# or distributed.RayEmbedding on a Ray cluster. Both must give the same vectors.
Embed = Callable[[Encoder, list[Chunk], Progress], tuple[np.ndarray, list[np.ndarray]]]


@dataclass
class BuildSummary:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # doc_id -> reason
    # doc_id -> {"chars", "passages", "warning"} of every document read in this build
    read: dict[str, dict] = field(default_factory=dict)
    rebuilt: bool = False
    reason: str = ""  # why every document was re-embedded, when one was
    documents: int = 0
    chunks: int = 0
    seconds: float = 0.0

    @property
    def touched(self) -> bool:
        return bool(self.added or self.changed or self.removed or self.rebuilt)

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        lines = [
            f"{'rebuilt' if self.rebuilt else 'updated' if self.touched else 'up to date'}: "
            f"{len(self.added)} added, {len(self.changed)} changed, {len(self.removed)} removed, "
            f"{len(self.kept)} kept, {len(self.skipped)} skipped; {self.documents} documents, "
            f"{self.chunks} chunks ({self.seconds:.1f}s)"
        ]
        if self.reason:
            lines.append(f"  full rebuild: {self.reason}")
        for label, names in (("added", self.added), ("changed", self.changed), ("removed", self.removed)):
            lines += [f"  {label}: {name}" for name in names]
        lines += [f"  skipped: {reason}" for reason in self.skipped.values()]
        for doc_id, report in self.read.items():
            if doc_id in self.skipped:
                continue  # its reason is above
            passages = f"{report['passages']} passage{'' if report['passages'] == 1 else 's'}"
            lines.append(f"  read: {doc_id}: {report['chars']} characters, {passages}")
            if report["warning"]:
                lines.append(f"  warning: {report['warning']}")
        return "\n".join(lines)


MIN_CHARS_PER_100_BYTES = 1


def reading_report(doc_id: str, chars: int, passages: int, size: int) -> dict:
    """What a reader made of a file, with a warning when it is suspiciously little: a scanned PDF
    without OCR, or markup whose text the reader missed, gives far less than 1 character per 100 bytes."""
    warning = None
    if chars == 0:
        warning = f"{doc_id}: no text came out of {size} bytes"
    elif chars * 100 < size * MIN_CHARS_PER_100_BYTES:
        warning = (f"{doc_id}: only {chars} characters of text came out of {size} bytes; a scan without "
                   f"OCR, or text the reader missed? Compare GET /documents/{doc_id} with the file")
    return {"chars": chars, "passages": passages, "warning": warning}


def chunker_settings(settings: Settings, max_seq_length: int) -> dict:
    return {"version": CHUNKER_VERSION, "target_tokens": min(settings.chunk_tokens, max_seq_length),
            "max_tokens": max_seq_length}


def check_compatible(manifest: dict, settings: Settings, encoder: Encoder | None = None) -> None:
    """Refuse an index that another format, model or chunker configuration built."""
    if manifest.get("format") != FORMAT_VERSION:
        raise IndexMismatch(f"index format {manifest.get('format')} is not this version's {FORMAT_VERSION}")
    if manifest.get("model") != settings.model:
        raise IndexMismatch(
            f"index built with model {manifest.get('model')!r}, settings use {settings.model!r}"
        )
    chunker = manifest.get("chunker", {})
    if chunker.get("version") != CHUNKER_VERSION or chunker.get("target_tokens") != min(
        settings.chunk_tokens, manifest.get("max_seq_length", 0)
    ):
        raise IndexMismatch(f"index built with chunker settings {chunker}, settings differ")
    if encoder is not None and (
        manifest.get("dimension") != encoder.dimension or manifest.get("max_seq_length") != encoder.max_seq_length
    ):
        raise IndexMismatch(
            f"index built for vectors of dimension {manifest.get('dimension')} and max_seq_length "
            f"{manifest.get('max_seq_length')}, the model gives {encoder.dimension} and {encoder.max_seq_length}"
        )


def hash_corpus(corpus_dir: Path) -> tuple[dict[str, tuple[Path, bytes]], dict[str, str]]:
    """doc_id -> (path, bytes) of every supported file in the corpus; doc_id -> why, of unreadable ones."""
    files, unreadable = {}, {}
    for doc_id, path in iter_corpus_files(corpus_dir):
        try:
            files[doc_id] = (path, path.read_bytes())
        except OSError as exc:
            unreadable[doc_id] = f"{doc_id}: cannot read file ({exc.strerror or exc})"
    return files, unreadable


def load_document(path: Path, doc_id: str, data: bytes) -> Document:
    """read_document, with any reader failure (a PDF library can raise almost anything) as DocumentError."""
    try:
        return read_document(path, doc_id, data)
    except DocumentError:
        raise
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop the build of every other one
        raise DocumentError(f"{doc_id}: cannot be read ({type(exc).__name__}: {exc})") from exc


def build_index(
    settings: Settings,
    get_encoder: Callable[[], Encoder],
    rebuild: bool = False,
    progress: Progress | None = None,
    wait: bool = False,
    prepare: Callable[[], None] | None = None,
    embed: Embed | None = None,
) -> BuildSummary:
    """Bring the index in line with the corpus; publish a new generation if anything changed.

    `prepare` runs under the writer lock before the corpus is scanned (an upload writes its file
    there), so no other writer can build between a corpus change and its indexing. `embed` encodes
    the new chunks (default: here, `_embed`); if it raises, nothing is published.
    """
    index_dir = settings.index_dir
    with writer_lock(index_dir, wait=wait):
        report = ProgressFile(index_dir, progress or (lambda *_: None))
        try:
            report("scanning", 0, 0)
            if prepare is not None:
                prepare()
            summary = _build_locked(settings, get_encoder, rebuild, report, embed)
        except BaseException as exc:
            report.finish(exc)
            raise
        report.finish()
        return summary


def _build_locked(
    settings: Settings, get_encoder, rebuild: bool, progress: ProgressFile, embed: Embed | None = None
) -> BuildSummary:
    began = time.perf_counter()
    index_dir = settings.index_dir
    if not settings.corpus_dir.is_dir():
        raise CorpusMissing(
            f"corpus folder {settings.corpus_dir} does not exist: check the --corpus path (or QA_CORPUS_DIR), "
            "or create the folder"
        )
    remove_leftovers(index_dir)
    old_gen = current_generation(index_dir)
    manifest = json.loads((old_gen / MANIFEST).read_text()) if old_gen else None
    summary = BuildSummary()
    if manifest is not None:
        try:
            check_compatible(manifest, settings)
        except IndexMismatch as exc:
            summary.reason = exc.reason  # never mix two configurations
        else:
            summary.reason = "--rebuild asked for" if rebuild else ""
    summary.rebuilt = bool(summary.reason)
    full = summary.rebuilt or manifest is None
    before: dict[str, str] = dict(manifest["documents"]) if manifest else {}

    files, unreadable = hash_corpus(settings.corpus_dir)
    hashes = {doc_id: hashlib.sha256(data).hexdigest() for doc_id, (_, data) in files.items()}
    summary.skipped.update(unreadable)
    summary.removed = sorted(set(before) - set(hashes) - set(unreadable))
    for doc_id, sha in hashes.items():
        if doc_id not in before:
            summary.added.append(doc_id)
        elif before[doc_id] != sha:
            summary.changed.append(doc_id)
        else:
            summary.kept.append(doc_id)
    to_read = sorted(hashes) if full else summary.added + summary.changed
    progress.mark(to_read + summary.removed, "queued")
    progress.mark(list(unreadable), "failed", "cannot read the file")

    # Read every file to index first: one that cannot be read is skipped, and in an update the
    # version already indexed (if any) stays, so nothing indexed is lost to a bad file.
    documents: list[Document] = []
    for i, doc_id in enumerate(to_read):
        progress("reading", i, len(to_read))
        path, data = files[doc_id]
        try:
            documents.append(load_document(path, doc_id, data))
            progress.mark([doc_id], "read")
        except DocumentError as exc:
            summary.skipped[doc_id] = str(exc)
            summary.read[doc_id] = {"chars": 0, "passages": 0, "warning": str(exc)}
            progress.mark([doc_id], "failed", str(exc))
    for names in (summary.added, summary.changed, summary.kept):
        names[:] = [d for d in names if d not in summary.skipped]
    indexed: dict[str, str] = {} if full else dict(before)  # doc_id -> sha256 of the new generation

    if not full and not (documents or summary.removed):
        # Nothing to embed or remove: the published generation stays, and the model is never loaded.
        summary.documents, summary.chunks = len(indexed), manifest["chunks"]
        summary.seconds = time.perf_counter() - began
        return summary

    encoder = get_encoder()
    limits = chunker_settings(settings, encoder.max_seq_length)
    chunks_of = {}
    for i, doc in enumerate(documents):
        progress("chunking", i, len(documents))
        chunks_of[doc.doc_id] = chunk_document(
            doc, encoder.tokenizer, limits["target_tokens"], limits["max_tokens"]
        )
        progress.mark([doc.doc_id], "chunked")
    for doc in documents:
        summary.read[doc.doc_id] = reading_report(
            doc.doc_id, len(doc.text), len(chunks_of[doc.doc_id]), len(files[doc.doc_id][1])
        )
    all_chunks = [c for doc in documents for c in chunks_of[doc.doc_id]]
    chunk_vectors, sentence_vectors = (embed or _embed)(encoder, all_chunks, progress)
    progress.mark([doc.doc_id for doc in documents], "embedded")

    progress("writing", 0, 1)
    for doc_id in summary.removed + summary.changed:
        indexed.pop(doc_id, None)
    indexed.update((doc.doc_id, doc.sha256) for doc in documents)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    fresh = {doc.doc_id for doc in documents}
    indexed_at: dict = (manifest or {}).get("indexed", {})
    created_before = (manifest or {}).get("created", now)
    staging = index_dir / f".build-{os.getpid()}-{time.time_ns()}"
    try:
        staging.mkdir(parents=True)
        stale = summary.removed + summary.changed
        total_chunks = _write_store(staging, None if full else old_gen, encoder.dimension, stale, documents,
                                    all_chunks, chunk_vectors, sentence_vectors, settings.exact_max_chunks)
        new_manifest = {
            "format": FORMAT_VERSION,
            "model": settings.model,
            "dimension": encoder.dimension,
            "max_seq_length": encoder.max_seq_length,
            "chunker": limits,
            "documents": dict(sorted(indexed.items())),
            "chunks": total_chunks,
            "created": now,
            # When each document was last (re)indexed; the library shows it. Older manifests lack it.
            "indexed": {doc_id: now if doc_id in fresh else indexed_at.get(doc_id, created_before)
                        for doc_id in sorted(indexed)},
        }
        (staging / MANIFEST).write_text(json.dumps(new_manifest, indent=2))
    except BaseException:  # Ctrl-C or a failure leaves nothing behind; kill -9 is cleaned up next time
        shutil.rmtree(staging, ignore_errors=True)
        raise
    publish(index_dir, staging)
    progress.mark([doc.doc_id for doc in documents], "ready")
    progress.mark(summary.removed, "removed")
    summary.documents, summary.chunks = len(indexed), total_chunks
    summary.seconds = time.perf_counter() - began
    return summary


def _write_store(
    staging: Path, base: Path | None, dimension: int, stale: list[str], documents: list[Document],
    chunks: list[Chunk], chunk_vectors: np.ndarray, sentence_vectors: list[np.ndarray], exact_max_chunks: int,
) -> int:
    """Write the chunk store and vectors into staging: a copy of `base` (None = start empty) with the
    documents in `stale` removed from every store and `documents` added. Returns the chunk count."""
    if base is None:
        vectors = empty_index(dimension)
    else:
        shutil.copy2(base / STORE, staging / STORE)
        vectors = faiss.read_index(str(base / VECTORS))
    db = sqlite3.connect(staging / STORE)
    db.executescript(SCHEMA)
    with db:
        for doc_id in stale:
            ids = [r[0] for r in db.execute("SELECT id FROM chunks WHERE doc_id = ?", (doc_id,))]
            if ids:
                remove(vectors, np.array(ids, dtype=np.int64))
            db.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
            db.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))
        next_id = (db.execute("SELECT COALESCE(MAX(id), 0) FROM chunks").fetchone()[0] or 0) + 1
        ids = np.arange(next_id, next_id + len(chunks), dtype=np.int64)
        db.executemany(
            "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(d.doc_id, d.title, d.sha256, d.text, json.dumps(d.sections), json.dumps(d.pages),
              json.dumps(d.metadata.to_row())) for d in documents],
        )
        db.executemany(
            "INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (int(cid), c.doc_id, c.ordinal, c.start, c.end, c.text, c.section, c.page,
                 json.dumps(c.sentences), sv.tobytes())
                for cid, c, sv in zip(ids, chunks, sentence_vectors, strict=True)
            ],
        )
        if len(chunks):
            vectors.add_with_ids(chunk_vectors, ids)
        rows = db.execute("SELECT id, text FROM chunks ORDER BY id").fetchall()
        all_ids = np.array([r[0] for r in rows], dtype=np.int64)
        vectors = fit_to_size(vectors, all_ids, exact_max_chunks)  # exact or HNSW, by size
        total = len(all_ids)
    db.close()
    lexical.write(staging, all_ids, [r[1] for r in rows])  # BM25 statistics are corpus-wide: all of it
    faiss.write_index(vectors, str(staging / VECTORS))
    return total


def _embed(encoder: Encoder, chunks: list[Chunk], progress: Progress):
    """Vectors of every chunk and, from the same pass, of every sentence of every chunk (for evidence).

    Chunks go to the encoder shortest first, so each slice (and each batch within it) holds texts
    of similar length and pads little; the results come back in the chunks' order."""
    order = sorted(range(len(chunks)), key=lambda i: len(chunks[i].text))
    matrix = np.zeros((len(chunks), encoder.dimension), dtype=np.float32)
    sentence_vectors: list[np.ndarray] = [np.zeros((0, encoder.dimension), dtype=np.float32)] * len(chunks)
    for i in range(0, len(chunks), ENCODE_SLICE):
        progress("embedding", i, len(chunks))
        picked = order[i : i + ENCODE_SLICE]
        vectors, per_chunk = encoder.encode_with_spans(
            [chunks[j].text for j in picked],
            [[(s - chunks[j].start, e - chunks[j].start) for s, e in chunks[j].sentences] for j in picked],
        )
        matrix[picked] = vectors
        for j, sentences in zip(picked, per_chunk, strict=True):
            sentence_vectors[j] = sentences
    progress("embedding", len(chunks), len(chunks))
    return matrix, sentence_vectors
