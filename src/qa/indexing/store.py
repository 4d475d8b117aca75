"""An index generation on disk: a manifest naming immutable segments and the deletions since each.

A segment (segments/seg-<ns>/) holds some documents: a SQLite chunk store, a FAISS index of their
chunk vectors under GLOBAL chunk ids, and BM25 postings of raw term counts (lexical.py); its
segment.json says which documents it holds. A generation (gen-<ns>/manifest.json) lists segments by
name with the doc_ids deleted from each since it was written, so a write adds a small segment or
marks deletions and never copies what did not change (segments.py writes them, build.py decides).
Readers open every file read-only (SQLite immutable), so lookups take no locks; an open segment
stays readable after its files are removed (Linux keeps unlinked files open), so a reader holding
an old generation answers while a merge publishes.

`Generation` searches its segments as parts (lexical.Words, vector_index.search_parts) and merges
their candidates; answering/ sees one index.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import faiss
import numpy as np

from qa.indexing import vector_index
from qa.indexing.lexical import Matched, Part, Postings, Words
from qa.indexing.naming import Naming
from qa.indexing.sentences import SentenceData
from qa.reading.chunking import Chunk
from qa.reading.metadata import Metadata

# 2: sentence vectors pooled from the chunk's pass (issue 6); HNSW vectors above a size threshold.
# 3: BM25 by bm25s postings (lexical.py) instead of SQLite FTS5.
# 4: readers keep every visible word (HTML divs, tables, PDF paragraphs, Markdown without markup);
#    documents carry their metadata (authors, publisher, date and where each was read; metadata.py);
#    the manifest records when each document was indexed ("indexed"), for the library page.
# 5: immutable segments with raw-count BM25 postings scored with global statistics (issue 21).
# 6: each chunk stores what the answer reads of its sentences (sentences.py: terms, title lines, roles).
FORMAT_VERSION = 6
MANIFEST = "manifest.json"
SEGMENTS = "segments"
SEGMENT = "segment.json"
STORE = "store.sqlite"
VECTORS = "vectors.faiss"

# Passages a segment keeps parsed (StoredChunk with its sentence data, sentences.py): reading and
# parsing one row costs about 10 us, its sentence data's JSON 60 us more, and a question reads twenty
# passages. Documents' data only (text, sentence vectors and terms: 5-20 KB a passage, so at most
# about 40 MB a segment), never a question's; the segment is immutable, so nothing goes stale.
PASSAGES_KEPT = 2048
# Segments under this many chunks (merging's smallest tier: one update's) are searched as one stacked
# exact index (`vector_parts`): a FAISS call costs about 20 us whatever its size.
SMALL_SEGMENT = 1_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY, title TEXT NOT NULL, sha256 TEXT NOT NULL, text TEXT NOT NULL,
    sections TEXT NOT NULL, pages TEXT NOT NULL, metadata TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY, doc_id TEXT NOT NULL REFERENCES documents(doc_id), ordinal INTEGER NOT NULL,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL, text TEXT NOT NULL, section TEXT, page INTEGER,
    sentences TEXT NOT NULL, sentence_vectors BLOB NOT NULL, sentence_data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id, ordinal);
"""


@dataclass(frozen=True)
class QueryCosines:
    """A passage's sentences' cosines with one question, computed where its sentence vectors are (a
    shard's replica) and sent instead of them, a hundredth of their size (evidence.with_cosines)."""

    query: bytes  # the question's vector's fingerprint (evidence.fingerprint): these are its cosines only
    products: bytes  # each sentence's, (sentence vectors @ query).tobytes(): bytes pickle 50 times faster
    dtype: str  # the products' (float32)
    best: float  # the best of the sentences that are not the title line, as evidence.best_sentence takes it

    @property
    def sentences(self) -> np.ndarray:
        """Each sentence's cosine with the question, as computed (read-only)."""
        return np.frombuffer(self.products, dtype=self.dtype)


@dataclass(frozen=True)
class StoredChunk:
    id: int
    chunk: Chunk
    title: str
    sentence_vectors: np.ndarray | None  # (len(chunk.sentences), dim) float32, normalised; None: see `cosines`
    data: SentenceData | None = None  # stored at build time; None: the answer computes it (sentences.py)
    cosines: QueryCosines | None = None  # their products with one question instead (a shard's passage)


@dataclass(frozen=True)
class StoredDocument:
    doc_id: str
    title: str
    text: str
    chunks: int
    metadata: Metadata = field(default_factory=Metadata)


class Segment:
    """One immutable segment, opened read-only; shared by every generation that lists it."""

    def __init__(self, path: Path, dimension: int) -> None:
        self.path = path
        self.name = path.name
        self.info: dict = json.loads((path / SEGMENT).read_text())
        uri = f"file:{(path / STORE).as_posix()}?mode=ro&immutable=1"
        self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        self._db_lock = threading.Lock()
        self.vectors = vector_index.load(str(path / VECTORS))  # memory-mapped: workers share one copy
        self.exact = vector_index.is_exact(self.vectors)
        self.postings = Postings(path)
        self.ids: np.ndarray = self.postings.ids  # the segment's chunk ids, ascending
        self._kept: dict[int, StoredChunk] = {}  # passages parsed already (PASSAGES_KEPT)
        self._metadata: dict[str, Metadata] = {}  # documents' metadata read already (as many)
        self.dimension = dimension

    @property
    def documents(self) -> dict[str, dict]:
        """doc_id -> {"sha256", "title", "chunks", "indexed"} of the documents written into it."""
        return self.info["documents"]

    def rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._db_lock:
            return self._db.execute(sql, params).fetchall()

    def chunk_ids_of(self, doc_ids: list[str]) -> np.ndarray:
        if not doc_ids:
            return np.zeros(0, dtype=np.int64)
        marks = ",".join("?" * len(doc_ids))
        rows = self.rows(f"SELECT id FROM chunks WHERE doc_id IN ({marks})", tuple(doc_ids))
        return np.array(sorted(r[0] for r in rows), dtype=np.int64)

    def holds(self, ids: np.ndarray) -> np.ndarray:
        """Which of `ids` are chunks of this segment."""
        return vector_index.members(self.ids, ids)

    def chunks(self, ids: list[int]) -> dict[int, StoredChunk]:
        """The stored passages `ids` (those of this segment), each read and parsed once (PASSAGES_KEPT)."""
        kept = self._kept  # shared by the server's threads: read at once, filled after
        found = {i: p for i in ids if (p := kept.get(i)) is not None}
        missing = [i for i in ids if i not in found]
        if not missing:
            return {i: found[i] for i in sorted(found)}  # by id, as SQLite returns the rows
        marks = ",".join("?" * len(missing))
        rows = self.rows(
            'SELECT c.id, c.doc_id, c.ordinal, c.start, c."end", c.text, c.section, c.page, c.sentences, '
            "c.sentence_vectors, d.title, c.sentence_data FROM chunks c JOIN documents d USING (doc_id) "
            f"WHERE c.id IN ({marks})",
            tuple(missing),
        )
        read = {}
        for cid, doc_id, ordinal, start, end, text, section, page, sentences, blob, title, data in rows:
            spans = tuple(tuple(s) for s in json.loads(sentences))
            chunk = Chunk(doc_id, ordinal, start, end, text, section, page, spans)
            vecs = np.frombuffer(blob, dtype=np.float32).reshape(len(spans), self.dimension)
            read[cid] = StoredChunk(cid, chunk, title, vecs, SentenceData.from_json(data))
        _remember(kept, read)  # a whole long document (a numbered part's lookup) passes by
        found.update(read)
        return {i: found[i] for i in sorted(found)}

    def metadata(self, doc_ids: list[str]) -> dict[str, Metadata]:
        """Metadata of these documents of the segment, each read once (every answer reads its passages')."""
        kept = self._metadata
        found = {d: m for d in doc_ids if (m := kept.get(d)) is not None}
        missing = [d for d in doc_ids if d not in found]
        if missing:
            marks = ",".join("?" * len(missing))
            rows = self.rows(f"SELECT doc_id, title, metadata FROM documents WHERE doc_id IN ({marks})",
                             tuple(missing))
            read = {doc_id: _metadata(title, meta) for doc_id, title, meta in rows}
            _remember(kept, read)  # every title's (a document named by title) passes by
            found.update(read)
        return found

    @cached_property
    def naming(self) -> Naming:
        """Its documents by the words that name them (naming.py), made when a question first names one."""
        rows = self.rows("SELECT doc_id, title, metadata FROM documents")
        return Naming((doc_id, title, _metadata(title, meta)) for doc_id, title, meta in rows)

    def close(self) -> None:
        self._db.close()


def _remember(kept: dict, read: dict) -> None:
    """Keep what was just read in `kept`, a segment's bounded cache (PASSAGES_KEPT entries, emptied when
    full: it is shared by the server's threads, so it is only ever added to or cleared whole); a read
    larger than the bound passes by."""
    if len(read) > PASSAGES_KEPT:
        return
    if len(kept) + len(read) > PASSAGES_KEPT:
        kept.clear()
    kept.update(read)


def vector_parts(segments: list[Segment], dead: list[np.ndarray],
                 ) -> list[tuple[faiss.Index, np.ndarray, np.ndarray, bool]]:
    """What a question's vector search goes over: (index, its ids ascending, its deleted ids, whether
    it is exact) of each segment, with the small exact ones (under SMALL_SEGMENT chunks: the fresh
    segments of single updates) stacked into one exact index, so that twenty unmerged updates cost one
    search, not twenty. An exact index scores each vector alone: a vector's score is its segment's."""
    parts = [(s.vectors, s.ids, d, s.exact) for s, d in zip(segments, dead, strict=True)]
    is_small = [exact and index.ntotal < SMALL_SEGMENT for index, _, _, exact in parts]
    if sum(is_small) < 2:
        return parts
    small = [p for p, yes in zip(parts, is_small, strict=True) if yes]
    ids = np.concatenate([i for _, i, _, _ in small])
    stacked = vector_index.empty_index(small[0][0].d)
    stacked.add_with_ids(np.vstack([index.reconstruct_batch(i) for index, i, _, _ in small]), ids)
    dead_ids = np.sort(np.concatenate([d for _, _, d, _ in small]))
    return [p for p, yes in zip(parts, is_small, strict=True) if not yes] + [(stacked, np.sort(ids), dead_ids, True)]


class Generation:
    """A published, read-only index generation: its segments searched as one index.

    `manifest` is the file's content with "documents" (doc_id -> sha256) and "indexed" (doc_id ->
    when) of the live documents filled in from the segments, as callers read them in format 4.
    `opened` lends segments already open (the previous generation's), so a publish reopens only
    the new ones."""

    def __init__(self, path: Path, opened: dict[str, Segment] | None = None) -> None:
        self.path = path
        stored: dict = json.loads((path / MANIFEST).read_text())
        self.dimension = int(stored["dimension"])
        index_dir = path.parent
        self.segments: list[Segment] = []
        self.deleted: list[frozenset[str]] = []
        for entry in stored.get("segments", []):
            segment = (opened or {}).get(entry["name"]) or Segment(index_dir / SEGMENTS / entry["name"], self.dimension)
            self.segments.append(segment)
            self.deleted.append(frozenset(entry.get("deleted", [])))
        self.home: dict[str, int] = {}  # doc_id -> index of the segment holding its live version
        hashes, indexed = {}, {}
        for n, (segment, deleted) in enumerate(zip(self.segments, self.deleted, strict=True)):
            for doc_id, about in segment.documents.items():
                if doc_id not in deleted:
                    self.home[doc_id] = n
                    hashes[doc_id], indexed[doc_id] = about["sha256"], about["indexed"]
        self.manifest = {**stored, "documents": dict(sorted(hashes.items())), "indexed": indexed}
        self.dead: list[np.ndarray] = [s.chunk_ids_of(sorted(d)) for s, d in zip(self.segments, self.deleted,
                                                                                 strict=True)]
        parts = []
        for segment, dead in zip(self.segments, self.dead, strict=True):
            live = None
            if len(dead):  # a binary search per deleted chunk, not a pass over the segment per one
                live = np.ones(len(segment.ids), dtype=bool)
                live[np.searchsorted(segment.ids, dead)] = False
            parts.append(Part(segment.postings, live))
        self.words = Words(parts)
        self.vector_parts = vector_parts(self.segments, self.dead)
        self.chunk_count = self.words.n
        self.document_count = len(self.home)

    def close(self) -> None:
        for segment in self.segments:
            segment.close()

    def _live(self, segment: int, doc_ids: list[str]) -> list[str]:
        return [d for d in doc_ids if self.home.get(d) == segment]

    def chunk_ids_of(self, doc_ids: list[str]) -> np.ndarray:
        found = [s.chunk_ids_of(self._live(n, doc_ids)) for n, s in enumerate(self.segments)]
        return np.sort(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)

    def dense(self, query: np.ndarray, n: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Top-n chunks by cosine similarity (inner product of normalised vectors), over every segment."""
        return vector_index.search_parts(self.vector_parts, query, n, allowed)

    def lexical(self, question: str, n: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Top-n chunks by BM25 (only chunk ids in `allowed`, if given); positive, larger is better."""
        return self.words.search(question, n, allowed)

    def match(self, words: list[str], weights: dict[str, float]) -> Matched | None:
        """The question's terms (as lexical.terms gives them) against the index's postings, with the IDF
        of each (lexical.Words.match). It needs no question vector, so the answer makes it before encoding
        the question; None where the shards match it themselves (serving's RemoteGeneration)."""
        return self.words.match(words, weights)

    def _by_segment(self, ids: list[int]) -> list[tuple[Segment, list[int]]]:
        wanted = np.asarray(ids, dtype=np.int64)
        out = []
        for segment in self.segments:
            mine = wanted[segment.holds(wanted)] if len(wanted) else wanted
            if len(mine):
                out.append((segment, mine.tolist()))
        return out

    def chunk_vectors(self, ids: list[int]) -> np.ndarray:
        if not ids:
            return np.zeros((0, self.dimension))
        wanted = np.asarray(ids, dtype=np.int64)
        if len(self.segments) == 1 and self.segments[0].holds(wanted).all():  # most indexes, most of the time
            return self.segments[0].vectors.reconstruct_batch(wanted)
        out = np.empty((len(ids), self.dimension), dtype=np.float32)
        found = np.zeros(len(ids), dtype=bool)
        for segment in self.segments:
            mine = segment.holds(wanted)
            if mine.any():
                out[mine] = segment.vectors.reconstruct_batch(wanted[mine])
                found |= mine
        if not found.all():
            raise KeyError(f"no chunk {int(wanted[~found][0])} in this generation")
        return out

    def chunks(self, ids: list[int]) -> dict[int, StoredChunk]:
        out: dict[int, StoredChunk] = {}
        for segment, mine in self._by_segment(ids):
            out.update(segment.chunks(mine))
        return out

    def _each(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Rows (doc_id first) of every segment, live documents only."""
        out = []
        for n, segment in enumerate(self.segments):
            out += [row for row in segment.rows(sql, params) if self.home.get(row[0]) == n]
        return out

    def documents(self) -> list[StoredDocument]:
        rows = self._each(
            "SELECT d.doc_id, d.title, COUNT(c.id), d.metadata FROM documents d LEFT JOIN chunks c USING (doc_id) "
            "GROUP BY d.doc_id")
        return [StoredDocument(doc_id, title, "", n, _metadata(title, meta)) for doc_id, title, n, meta in sorted(rows)]

    def document(self, doc_id: str) -> StoredDocument | None:
        n = self.home.get(doc_id)
        if n is None:
            return None
        rows = self.segments[n].rows(
            "SELECT d.doc_id, d.title, d.text, (SELECT COUNT(*) FROM chunks c WHERE c.doc_id = d.doc_id), "
            "d.metadata FROM documents d WHERE d.doc_id = ?",
            (doc_id,),
        )
        doc_id, title, text, count, meta = rows[0]
        return StoredDocument(doc_id, title, text, count, _metadata(title, meta))

    def named_by(self, terms: frozenset[str]) -> list[tuple[str, str]]:
        """(doc_id, title) of the live documents whose title, file name or makers hold any of `terms`
        (naming.py), by doc_id: those a question naming a document can mean, without reading every title."""
        found = []
        for n, segment in enumerate(self.segments):
            naming = segment.naming
            found += [(d, naming.titles[d]) for d in self._live(n, naming.holding(terms))]
        return sorted(found)

    def documents_stating(self, field: str) -> list[str]:
        """doc_ids whose metadata knows `field` ("authors", "publisher" or "date")."""
        return sorted(r[0] for r in self._each(
            "SELECT doc_id FROM documents WHERE json_extract(metadata, ?) IS NOT NULL", (f"$.{field}",)))

    def metadata_of(self, doc_ids: list[str]) -> dict[str, Metadata]:
        """Metadata of each named document (unknown ids are left out)."""
        out = {}
        for n, segment in enumerate(self.segments):
            ids = sorted(set(self._live(n, doc_ids)))
            if ids:
                out.update(segment.metadata(ids))
        return out

    def chunk_covering(self, doc_id: str, offset: int) -> StoredChunk | None:
        """The chunk of doc_id that holds `offset` (the first chunk for an offset before it)."""
        n = self.home.get(doc_id)
        if n is None:
            return None
        segment = self.segments[n]
        rows = segment.rows(
            "SELECT id FROM chunks WHERE doc_id = ? AND start <= ? ORDER BY start DESC LIMIT 1", (doc_id, offset)
        ) or segment.rows("SELECT id FROM chunks WHERE doc_id = ? ORDER BY ordinal LIMIT 1", (doc_id,))
        return segment.chunks([rows[0][0]])[rows[0][0]] if rows else None

    def headings(self, limit: int) -> list[tuple[str, str, list[str]]]:
        """(doc_id, title, section headings in reading order) of the first `limit` documents by doc_id."""
        rows = sorted(self._each("SELECT doc_id, title, sections FROM documents ORDER BY doc_id LIMIT ?",
                                 (limit + sum(map(len, self.deleted)),)))[:limit]
        return [(doc_id, title, [heading for _, heading in json.loads(sections)]) for doc_id, title, sections in rows]

    def page_counts(self) -> dict[str, int]:
        """doc_id -> number of pages, for documents with pages (PDFs); the library lists it."""
        rows = self._each("SELECT doc_id, json_array_length(pages) FROM documents")
        return {doc_id: n for doc_id, n in rows if n}

    def segment_sizes(self) -> list[tuple[str, int, int]]:
        """(name, live chunks, bytes on disk) of each segment, for `qa index` and the library."""
        return [(s.name, p.size, int(s.info.get("bytes", 0))) for s, p in zip(self.segments, self.words.parts,
                                                                               strict=True)]


def live_documents(index_dir: Path, manifest: dict) -> dict[str, dict]:
    """doc_id -> {"sha256", "title", "chunks", "indexed", "segment"} of a generation's live documents,
    read from the segments' segment.json only (a writer needs no more to plan an update)."""
    out = {}
    for entry in manifest.get("segments", []):
        info = json.loads((index_dir / SEGMENTS / entry["name"] / SEGMENT).read_text())
        gone = set(entry.get("deleted", []))
        out.update({d: {**about, "segment": entry["name"]} for d, about in info["documents"].items() if d not in gone})
    return out


def _metadata(title: str, stored: str) -> Metadata:
    return Metadata.from_row(title, json.loads(stored or "{}"))
