"""One index generation on disk: a SQLite chunk store beside a FAISS index and a BM25 index.

A generation is immutable once published; a build writes a new one (index.py). Readers open
the SQLite file read-only and immutable, so lookups take no locks.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qa.indexing import vector_index
from qa.indexing.lexical import LexicalIndex
from qa.reading.chunking import Chunk
from qa.reading.metadata import Metadata

# 2: sentence vectors pooled from the chunk's pass (issue 6); HNSW vectors above a size threshold.
# 3: BM25 by bm25s postings (lexical.py) instead of SQLite FTS5.
# 4: readers keep every visible word (HTML divs, tables, PDF paragraphs, Markdown without markup);
#    documents carry their metadata (authors, publisher, date and where each was read; metadata.py);
#    the manifest records when each document was indexed ("indexed"), for the library page.
FORMAT_VERSION = 4
MANIFEST = "manifest.json"
STORE = "store.sqlite"
VECTORS = "vectors.faiss"

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY, title TEXT NOT NULL, sha256 TEXT NOT NULL, text TEXT NOT NULL,
    sections TEXT NOT NULL, pages TEXT NOT NULL, metadata TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY, doc_id TEXT NOT NULL REFERENCES documents(doc_id), ordinal INTEGER NOT NULL,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL, text TEXT NOT NULL, section TEXT, page INTEGER,
    sentences TEXT NOT NULL, sentence_vectors BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id, ordinal);
"""

@dataclass(frozen=True)
class StoredChunk:
    id: int
    chunk: Chunk
    title: str
    sentence_vectors: np.ndarray  # (len(chunk.sentences), dim) float32, normalised


@dataclass(frozen=True)
class StoredDocument:
    doc_id: str
    title: str
    text: str
    chunks: int
    metadata: Metadata = field(default_factory=Metadata)


class Generation:
    """A published, read-only index generation."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.manifest: dict = json.loads((path / MANIFEST).read_text())
        uri = f"file:{(path / STORE).as_posix()}?mode=ro&immutable=1"
        self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        self._db_lock = threading.Lock()
        self.vectors = vector_index.load(str(path / VECTORS))  # memory-mapped: workers share one copy
        self.words = LexicalIndex(path)
        self.dimension = int(self.manifest["dimension"])
        self.chunk_count = int(self.manifest["chunks"])
        self.document_count = len(self.manifest["documents"])

    def close(self) -> None:
        self._db.close()

    def _rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._db_lock:
            return self._db.execute(sql, params).fetchall()

    def chunk_ids_of(self, doc_ids: list[str]) -> np.ndarray:
        marks = ",".join("?" * len(doc_ids))
        rows = self._rows(f"SELECT id FROM chunks WHERE doc_id IN ({marks})", tuple(doc_ids))
        return np.array([r[0] for r in rows], dtype=np.int64)

    def dense(self, query: np.ndarray, n: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Top-n chunks by cosine similarity (inner product of normalised vectors)."""
        return vector_index.search(self.vectors, query, n, allowed)

    def lexical(self, question: str, n: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Top-n chunks by BM25 (only chunk ids in `allowed`, if given); positive, larger is better."""
        return self.words.search(question, n, allowed)

    def chunk_vectors(self, ids: list[int]) -> np.ndarray:
        return np.vstack([self.vectors.reconstruct(i) for i in ids]) if ids else np.zeros((0, self.dimension))

    def chunks(self, ids: list[int]) -> dict[int, StoredChunk]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._rows(
            'SELECT c.id, c.doc_id, c.ordinal, c.start, c."end", c.text, c.section, c.page, c.sentences, '
            f"c.sentence_vectors, d.title FROM chunks c JOIN documents d USING (doc_id) WHERE c.id IN ({marks})",
            tuple(ids),
        )
        out = {}
        for cid, doc_id, ordinal, start, end, text, section, page, sentences, blob, title in rows:
            spans = tuple(tuple(s) for s in json.loads(sentences))
            chunk = Chunk(doc_id, ordinal, start, end, text, section, page, spans)
            vecs = np.frombuffer(blob, dtype=np.float32).reshape(len(spans), self.dimension)
            out[cid] = StoredChunk(cid, chunk, title, vecs)
        return out

    def documents(self) -> list[StoredDocument]:
        rows = self._rows(
            "SELECT d.doc_id, d.title, COUNT(c.id), d.metadata FROM documents d LEFT JOIN chunks c USING (doc_id) "
            "GROUP BY d.doc_id ORDER BY d.doc_id"
        )
        return [StoredDocument(doc_id, title, "", n, _metadata(title, meta)) for doc_id, title, n, meta in rows]

    def document(self, doc_id: str) -> StoredDocument | None:
        rows = self._rows(
            "SELECT d.doc_id, d.title, d.text, (SELECT COUNT(*) FROM chunks c WHERE c.doc_id = d.doc_id), "
            "d.metadata FROM documents d WHERE d.doc_id = ?",
            (doc_id,),
        )
        if not rows:
            return None
        doc_id, title, text, n, meta = rows[0]
        return StoredDocument(doc_id, title, text, n, _metadata(title, meta))

    def titles(self) -> list[tuple[str, str]]:
        """(doc_id, title) of every document, without counting chunks."""
        return self._rows("SELECT doc_id, title FROM documents ORDER BY doc_id")

    def documents_stating(self, field: str) -> list[str]:
        """doc_ids whose metadata knows `field` ("authors", "publisher" or "date")."""
        return [r[0] for r in self._rows(
            "SELECT doc_id FROM documents WHERE json_extract(metadata, ?) IS NOT NULL ORDER BY doc_id", (f"$.{field}",)
        )]

    def metadata_of(self, doc_ids: list[str]) -> dict[str, Metadata]:
        """Metadata of each named document (unknown ids are left out)."""
        ids = sorted(set(doc_ids))
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._rows(f"SELECT doc_id, title, metadata FROM documents WHERE doc_id IN ({marks})", tuple(ids))
        return {doc_id: _metadata(title, meta) for doc_id, title, meta in rows}

    def chunk_covering(self, doc_id: str, offset: int) -> StoredChunk | None:
        """The chunk of doc_id that holds `offset` (the first chunk for an offset before it)."""
        rows = self._rows(
            "SELECT id FROM chunks WHERE doc_id = ? AND start <= ? ORDER BY start DESC LIMIT 1", (doc_id, offset)
        ) or self._rows("SELECT id FROM chunks WHERE doc_id = ? ORDER BY ordinal LIMIT 1", (doc_id,))
        return self.chunks([rows[0][0]])[rows[0][0]] if rows else None

    def headings(self, limit: int) -> list[tuple[str, str, list[str]]]:
        """(doc_id, title, section headings in reading order) of the first `limit` documents by doc_id."""
        rows = self._rows("SELECT doc_id, title, sections FROM documents ORDER BY doc_id LIMIT ?", (limit,))
        return [(doc_id, title, [heading for _, heading in json.loads(sections)]) for doc_id, title, sections in rows]

    def page_counts(self) -> dict[str, int]:
        """doc_id -> number of pages, for documents with pages (PDFs); the library lists it."""
        rows = self._rows("SELECT doc_id, json_array_length(pages) FROM documents")
        return {doc_id: n for doc_id, n in rows if n}


def _metadata(title: str, stored: str) -> Metadata:
    return Metadata.from_row(title, json.loads(stored or "{}"))
