"""Building and updating index generations.

A build runs under the index directory's writer lock. An update writes ONE new segment holding the
documents added or changed (segments.py), marks the old versions of changed and removed documents
deleted in the segments holding them, and publishes a new manifest that lists the segments by
reference (generations.py); a full build writes one segment of everything. A crash at any point
leaves the previous generation published and intact; the next build removes the leftovers. Only
documents whose content hash changed are read, chunked and embedded. Merging segments is
merging.py's, after publishing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from qa.config import Settings
from qa.errors import CorpusMissing, DocumentError, IndexMismatch, ShardCountFixed
from qa.indexing import shards as sharding
from qa.indexing.embedding import Encoder
from qa.indexing.generations import (
    Progress,
    ProgressFile,
    current_generation,
    publish_manifest,
    remove_leftovers,
    writer_lock,
)
from qa.indexing.segments import upgrade_format_4, upgrade_format_5, write_segment
from qa.indexing.store import FORMAT_VERSION, MANIFEST, STORE, VECTORS, live_documents
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
    upgraded: str = ""  # what upgrading an index of an older format did, when it was
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
        if self.upgraded:
            lines.append(f"  upgraded: {self.upgraded}")
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
    shards: int | None = None,
) -> BuildSummary:
    """Bring the index in line with the corpus; publish a new generation if anything changed.

    `prepare` runs under the writer lock before the corpus is scanned (an upload writes its file
    there), so no other writer can build between a corpus change and its indexing. `embed` encodes
    the new chunks (default: here, `_embed`); if it raises, nothing is published. `shards`: how many
    shards a new index gets, or (with `rebuild`) an existing one is rebuilt into (shards.py); None keeps
    the index's count (1 for a new one).
    """
    index_dir = settings.index_dir
    with writer_lock(index_dir, wait=wait):
        report = ProgressFile(index_dir, progress or (lambda *_: None))
        try:
            report("scanning", 0, 0)
            if prepare is not None:
                prepare()
            summary = _build_sharded(settings, get_encoder, rebuild, report, embed, shards)
        except BaseException as exc:
            report.finish(exc)
            raise
        report.finish()
        return summary


def _build_sharded(
    settings: Settings, get_encoder, rebuild: bool, progress: ProgressFile, embed: Embed | None, shards: int | None,
) -> BuildSummary:
    """Build each shard in turn (each under its own writer lock, which merges take too), documents
    routed by shards.shard_of; a new shard count is built into new folders, then switched to."""
    index_dir = settings.index_dir
    current = sharding.folders(index_dir)
    n = shards or len(current)
    if n < 1:
        raise ShardCountFixed(f"--shards must be 1 or more, got {n}")
    exists = any(current_generation(folder) is not None for folder in current)
    if n != len(current) and exists and not rebuild:
        raise ShardCountFixed(f"the index in {index_dir} has {len(current)} shard{'s' * (len(current) != 1)}; "
                            f"`qa index --rebuild --shards {n}` rebuilds it into {n}; nothing was changed")
    if current == [index_dir] and n == 1:
        return _build_locked(settings, get_encoder, rebuild, progress, embed)
    targets = current if n == len(current) else sharding.new_folders(index_dir, n)
    summaries = []
    for i, folder in enumerate(targets):
        owner = None if n == 1 else (lambda doc_id, i=i: sharding.shard_of(doc_id, n) == i)
        shard_settings = settings.model_copy(update={"index_dir": folder})
        with writer_lock(folder, wait=True) if folder != index_dir else contextlib.nullcontext():
            summaries.append(_build_locked(shard_settings, get_encoder, rebuild, progress, embed, owner,
                                           sharding.first_chunk_id(i)))
    sharding.switch(index_dir, targets)
    summary = _combined(summaries)
    if targets != current and exists:
        summary.rebuilt = True
        summary.reason = (f"{n} shard{'s' * (n != 1)} asked for (the index had {len(current)}); each shard "
                          "published as it was built, then the index switched to the new shards at once")
    return summary


def _combined(summaries: list[BuildSummary]) -> BuildSummary:
    """One summary of the builds of every shard."""
    out = BuildSummary()
    for s in summaries:
        for name in ("added", "changed", "removed", "kept"):
            getattr(out, name).extend(getattr(s, name))
        out.skipped.update(s.skipped)
        out.read.update(s.read)
        out.rebuilt = out.rebuilt or s.rebuilt
        out.upgraded = out.upgraded or s.upgraded
        out.reason = out.reason or s.reason
        out.documents += s.documents
        out.chunks += s.chunks
        out.seconds += s.seconds
    for name in ("added", "changed", "removed", "kept"):
        getattr(out, name).sort()
    out.read = dict(sorted(out.read.items()))
    return out


def _build_locked(
    settings: Settings, get_encoder, rebuild: bool, progress: ProgressFile, embed: Embed | None = None,
    owns: Callable[[str], bool] | None = None, first_id: int = 1,
) -> BuildSummary:
    """Build one index folder (a shard's: the documents `owns` accepts, chunk ids from `first_id`)."""
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
    if manifest is not None and not rebuild and upgradable(old_gen, manifest, settings):
        progress("upgrading", 0, 1)
        was = manifest.get("format")
        manifest = _upgrade(index_dir, old_gen, manifest, settings)
        became = ("became one segment" if was == 4 else
                  f"had its {len(manifest['segments'])} segment{'s' * (len(manifest['segments']) != 1)} given "
                  "their sentences' terms, title lines and roles")
        summary.upgraded = (f"the format-{was} index {became} of format {FORMAT_VERSION} "
                            f"({manifest['document_count']} documents, {manifest['chunks']} passages); its "
                            "vectors were reused, nothing was encoded again")
    if manifest is not None:
        try:
            check_compatible(manifest, settings)
        except IndexMismatch as exc:
            summary.reason = exc.reason  # never mix two configurations
        else:
            summary.reason = "--rebuild asked for" if rebuild else ""
    summary.rebuilt = bool(summary.reason)
    full = summary.rebuilt or manifest is None
    before = _hashes_of(index_dir, manifest) if manifest else {}

    files, unreadable = hash_corpus(settings.corpus_dir)
    if owns is not None:
        files = {d: f for d, f in files.items() if owns(d)}
        unreadable = {d: why for d, why in unreadable.items() if owns(d)}
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
    if not full and not (documents or summary.removed):
        # Nothing to embed or remove: the published generation stays, and the model is never loaded.
        summary.documents, summary.chunks = len(before), manifest["chunks"]
        summary.seconds = time.perf_counter() - began
        return summary

    # A delete alone needs no model: its manifest keeps the published one's model settings.
    encoder = get_encoder() if documents or full else None
    sizes = (encoder.dimension, encoder.max_seq_length) if encoder else (manifest["dimension"],
                                                                          manifest["max_seq_length"])
    limits = chunker_settings(settings, sizes[1])
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
    chunk_vectors, sentence_vectors = (embed or _embed)(encoder, all_chunks, progress) if encoder else ([], [])
    progress.mark([doc.doc_id for doc in documents], "embedded")

    progress("writing", 0, 1)
    summary.documents, summary.chunks = write_update(
        settings, None if full else manifest, sizes, documents, all_chunks, chunk_vectors, sentence_vectors,
        summary.removed, first_id)
    progress.mark([doc.doc_id for doc in documents], "ready")
    progress.mark(summary.removed, "removed")
    summary.seconds = time.perf_counter() - began
    return summary


def write_update(
    settings: Settings, manifest: dict | None, sizes: tuple[int, int], documents: list[Document],
    chunks: list[Chunk], chunk_vectors: np.ndarray, sentence_vectors: list[np.ndarray], removed: list[str],
    first_id: int = 1,
) -> tuple[int, int]:
    """Write what an update changes and publish it (the caller holds the writer lock): one new segment
    with `documents` (their `chunks` in order, embedded), older versions of them and the `removed`
    doc_ids marked deleted in the segments holding them. manifest None: a new index of these
    documents alone, chunk ids from `first_id` (a shard's, shards.py). `sizes`: the model's (dimension,
    max_seq_length). Returns (documents, chunks)."""
    index_dir = settings.index_dir
    now = datetime.now(UTC).isoformat(timespec="seconds")
    live = {} if manifest is None else live_documents(index_dir, manifest)
    segments = [] if manifest is None else [dict(e, deleted=list(e.get("deleted", []))) for e in manifest["segments"]]
    for doc_id in removed + [d.doc_id for d in documents]:
        if doc_id in live:  # its old version: deleted in the segment that holds it
            home = live.pop(doc_id)["segment"]
            next(e for e in segments if e["name"] == home)["deleted"].append(doc_id)
    first_id = first_id if manifest is None else int(manifest["next_chunk_id"])
    if documents:
        folder = write_segment(index_dir, first_id, documents, chunks, chunk_vectors, sentence_vectors,
                               settings.exact_max_chunks, {d.doc_id: now for d in documents})
        segments.append({"name": folder.name, "deleted": []})
        counts = {d.doc_id: 0 for d in documents}
        for c in chunks:
            counts[c.doc_id] += 1
        live.update({d.doc_id: {"sha256": d.sha256, "chunks": counts[d.doc_id]} for d in documents})
    segments = _without_empty(index_dir, segments)
    total_chunks = sum(about["chunks"] for about in live.values())
    publish_manifest(index_dir, new_manifest(settings, sizes, segments, first_id + len(chunks), len(live),
                                             total_chunks, now))
    return len(live), total_chunks


UPGRADABLE_FORMAT = 4  # one generation of one store, FAISS index and BM25 index (before segments)
SEGMENTS_FORMAT = 5  # segments whose chunks do not store their sentences' data yet (sentences.py)


def upgradable(generation: Path, manifest: dict, settings: Settings) -> bool:
    """Whether a published generation is a format-4 or format-5 one this configuration built, so that
    it can become format 6 without encoding anything (`_upgrade`)."""
    if manifest.get("format") == SEGMENTS_FORMAT and "segments" in manifest:
        files = [generation.parent / "segments" / s["name"] / STORE for s in manifest["segments"]]
    elif manifest.get("format") == UPGRADABLE_FORMAT and "segments" not in manifest:
        files = [generation / name for name in (STORE, VECTORS)]
    else:
        return False
    if not all(f.is_file() for f in files):
        return False
    try:
        check_compatible({**manifest, "format": FORMAT_VERSION}, settings)
    except IndexMismatch:
        return False
    return True


def _upgrade(index_dir: Path, generation: Path, manifest: dict, settings: Settings) -> dict:
    """Publish a format-4 generation as one segment (segments.upgrade_format_4), or a format-5 one with
    each segment given its sentence data (segments.upgrade_format_5); returns the new manifest."""
    if manifest.get("format") == SEGMENTS_FORMAT:
        segments = [{**entry, "name": upgrade_format_5(index_dir, index_dir / "segments" / entry["name"]).name}
                    for entry in manifest["segments"]]
        upgraded = {**manifest, "format": FORMAT_VERSION, "segments": segments}
        publish_manifest(index_dir, upgraded)
        return upgraded
    folder = upgrade_format_4(index_dir, generation, manifest, settings.exact_max_chunks)
    info = json.loads((folder / "segment.json").read_text())
    upgraded = new_manifest(settings, (manifest["dimension"], manifest["max_seq_length"]),
                            [{"name": folder.name, "deleted": []}], (info["last_chunk_id"] or 0) + 1,
                            len(info["documents"]), info["chunks"], datetime.now(UTC).isoformat(timespec="seconds"))
    publish_manifest(index_dir, upgraded)
    return upgraded


def _hashes_of(index_dir: Path, manifest: dict) -> dict[str, str]:
    """doc_id -> sha256 of a published generation's documents (format 4 listed them in its manifest)."""
    if "segments" not in manifest:
        return dict(manifest.get("documents", {}))
    return {d: about["sha256"] for d, about in live_documents(index_dir, manifest).items()}


def new_manifest(settings: Settings, sizes: tuple[int, int], segments: list[dict], next_chunk_id: int,
                 documents: int, chunks: int, now: str) -> dict:
    """A format-6 manifest: the segments and their deletions, not a list of every document.
    `sizes`: the model's (dimension, max_seq_length)."""
    return {
        "format": FORMAT_VERSION,
        "model": settings.model,
        "dimension": sizes[0],
        "max_seq_length": sizes[1],
        "chunker": chunker_settings(settings, sizes[1]),
        "created": now,
        "next_chunk_id": next_chunk_id,  # chunk ids are never reused, so segments' results merge as they are
        "document_count": documents,
        "chunks": chunks,
        "segments": segments,
    }


def _without_empty(index_dir: Path, segments: list[dict]) -> list[dict]:
    """The segments that still hold a live document (one whose documents are all deleted is dropped)."""
    out = []
    for entry in segments:
        if entry["deleted"]:
            entry["deleted"] = sorted(set(entry["deleted"]))
            held = json.loads((index_dir / "segments" / entry["name"] / "segment.json").read_text())["documents"]
            if set(held) <= set(entry["deleted"]):
                continue
        out.append(entry)
    return out


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
