"""The one object the CLI, the API and the web UI share: the loaded model and the open index."""

from __future__ import annotations

import hashlib
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from . import lexical
from .answering import Answer, compose
from .config import Settings
from .documents import SUPPORTED_SUFFIXES
from .embedding import Encoder
from .errors import DocumentError, IndexMismatch, IndexMissing, NotFound, QAError
from .generations import current_generation, read_progress
from .index import BuildSummary, build_index, check_compatible, load_document
from .retrieval import Reranker, retrieve
from .store import Generation, StoredDocument

MAX_QUESTION_CHARS = 2000
MAX_K = 20
UPLOADS = "uploads"


class InvalidRequest(QAError):
    """A question, k or document filter outside what the contract allows; names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass
class BuildState:
    running: bool = False
    phase: str = ""
    done: int = 0
    total: int = 0


class Assistant:
    """Answers questions from the newest published index generation, reloading it when it changes."""

    def __init__(self, settings: Settings | None = None, encoder: Encoder | None = None) -> None:
        self.settings = (settings or Settings()).resolved()
        self._encoder = encoder
        self._reranker: Reranker | None = None
        self._encoder_lock = threading.Lock()
        self._gen: Generation | None = None
        self._gen_name: str | None = None
        self._gen_lock = threading.Lock()

    # -- resources -------------------------------------------------------------------------
    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            with self._encoder_lock:
                if self._encoder is None:
                    s = self.settings
                    self._encoder = Encoder(s.model, s.backend, s.cache_dir)
        return self._encoder

    @property
    def reranker(self) -> Reranker | None:
        """The cross-encoder of QA_RERANKER, loaded once; None when none is configured."""
        if self.settings.reranker and self._reranker is None:
            with self._encoder_lock:
                if self._reranker is None:
                    self._reranker = Reranker(self.settings.reranker)
        return self._reranker

    def generation(self) -> Generation:
        """The published generation, reopened whenever the pointer has moved (cheap: one small read)."""
        for attempt in range(3):
            path = current_generation(self.settings.index_dir)
            if path is None:
                raise IndexMissing(f"no index in {self.settings.index_dir}: run `qa index` to build one")
            if path.name == self._gen_name:
                break
            with self._gen_lock:
                if path.name == self._gen_name:
                    break
                try:
                    gen = Generation(path)
                except (OSError, sqlite3.Error, RuntimeError):
                    # Writers keep the generation before the newest; two publishes since we read the
                    # pointer removed this one: read the pointer again.
                    if attempt == 2:
                        raise
                    continue
                check_compatible(gen.manifest, self.settings, self.encoder)
                self._gen, self._gen_name = gen, path.name
                break
        assert self._gen is not None
        return self._gen

    @property
    def build_state(self) -> BuildState:
        """The build running on this index directory, in this process or another (`qa index`)."""
        running = read_progress(self.settings.index_dir)
        if running is None:
            return BuildState()
        return BuildState(True, running["phase"], running["done"], running["total"])

    # -- reading ---------------------------------------------------------------------------
    def ask(self, question: str, k: int = 5, documents: list[str] | None = None) -> Answer:
        question = validate_question(question)
        if not 1 <= k <= MAX_K:
            raise InvalidRequest("k", f"must be between 1 and {MAX_K}, got {k}")
        gen = self.generation()  # loads the model on first use; not part of the answer's time
        began = time.perf_counter()
        query = self.encoder.encode_query(question)
        hits = retrieve(gen, query, question, k, documents, self.reranker)
        answer = compose(question, query, hits, self.settings.min_confidence,
                         gen.words.idf(list(dict.fromkeys(lexical.terms(question)))))
        answer.took_ms = round((time.perf_counter() - began) * 1000, 2)
        return answer

    def documents(self) -> list[StoredDocument]:
        return self.generation().documents()

    def document(self, doc_id: str) -> StoredDocument:
        found = self.generation().document(doc_id)
        if found is None:
            raise NotFound(f"no document {doc_id!r} in the index")
        return found

    # -- writing ---------------------------------------------------------------------------
    def reindex(
        self, rebuild: bool = False, wait: bool = False, show_progress: bool = False,
        prepare: Callable[[], None] | None = None,
    ) -> BuildSummary:
        """Bring the index in line with the corpus folder; returns once the result is live.

        Another writer holding the index lock raises BuildInProgress (HTTP 409) unless `wait`.
        `prepare` changes the corpus under the same lock (an upload, a delete)."""
        bar = None

        def progress(phase: str, done: int, total: int) -> None:
            nonlocal bar
            if show_progress and phase == "embedding":
                if bar is None:
                    from tqdm import tqdm

                    bar = tqdm(total=total, desc="embedding", unit="chunk")
                bar.update(done - bar.n)

        try:
            summary = build_index(self.settings, lambda: self.encoder, rebuild, progress, wait, prepare)
        finally:
            if bar is not None:
                bar.close()
        if self._encoder is not None:  # a server: open the new generation now, not in the next answer
            self.generation()
        return summary

    def add_document(self, filename: str, data: bytes) -> tuple[str, int, bool]:
        """Store an upload as uploads/<name> and index it. Returns (doc_id, chunks, changed_anything).

        A file that cannot be read is refused before anything is written; the same content again
        changes nothing and builds nothing."""
        name = sanitise_filename(filename)
        doc_id = f"{UPLOADS}/{name}"
        load_document(Path(name), doc_id, data)
        target = self.settings.corpus_dir / UPLOADS / name
        if self._indexed_sha(doc_id) == hashlib.sha256(data).hexdigest() and _same_bytes(target, data):
            return doc_id, self.document(doc_id).chunks, False

        def store() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{name}.tmp")
            tmp.write_bytes(data)
            tmp.replace(target)

        summary = self.reindex(prepare=store)
        if doc_id in summary.skipped:
            raise DocumentError(summary.skipped[doc_id])
        changed = doc_id in summary.added or doc_id in summary.changed
        return doc_id, self.document(doc_id).chunks, changed

    def delete_document(self, doc_id: str) -> None:
        self.document(doc_id)  # 404 for an unknown id
        path = corpus_path(self.settings.corpus_dir, doc_id)
        if path is None:
            raise NotFound(f"no document {doc_id!r} in the corpus")
        self.reindex(prepare=lambda: path.unlink(missing_ok=True))

    def _indexed_sha(self, doc_id: str) -> str | None:
        try:
            return self.generation().manifest["documents"].get(doc_id)
        except (IndexMissing, IndexMismatch):
            return None


def _same_bytes(path: Path, data: bytes) -> bool:
    try:
        return path.read_bytes() == data
    except OSError:
        return False


# A question needs one character that is not blank to Python (str.isspace) nor to JSON Schema's
# ECMAScript \s (which adds U+FEFF and U+180E and omits U+001C-U+001F and U+0085): the API schema's
# pattern, so that what the schema accepts and what the server accepts are the same questions.
QUESTION_PATTERN = r"[^\s\x1c-\x1f\x85\ufeff\u180e]"


def validate_question(question: str) -> str:
    if not isinstance(question, str) or not re.search(QUESTION_PATTERN, question):
        raise InvalidRequest("question", "must not be empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise InvalidRequest("question", f"must be at most {MAX_QUESTION_CHARS} characters, got {len(question)}")
    reject_lone_surrogates("question", question)
    return question.strip()


_SURROGATE = re.compile(r"[\ud800-\udfff]")


def reject_lone_surrogates(field: str, text: str) -> None:
    """JSON may escape half a UTF-16 pair ("\\ud800"); such text cannot be encoded or tokenized."""
    found = _SURROGATE.search(text)
    if found:
        where = f"U+{ord(found.group()):04X} at {found.start()}"
        raise InvalidRequest(field, f"contains a lone surrogate {where}: send valid Unicode text")


_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


def sanitise_filename(filename: str) -> str:
    """A plain file name for uploads/: no folders, no hidden files, a supported suffix."""
    if not filename or "/" in filename or "\\" in filename or "\x00" in filename or filename in (".", ".."):
        raise InvalidRequest("file", f"file name {filename!r} must be a plain name without folders")
    name = _UNSAFE.sub("_", filename).strip(" .") or "upload"
    suffix = PurePosixPath(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnsupportedType(f"file type {suffix or '(none)'!r} is not supported; use {', '.join(SUPPORTED_SUFFIXES)}")
    return name


class UnsupportedType(QAError):
    """An upload whose file type the readers do not handle."""


def corpus_path(corpus_dir: Path, doc_id: str) -> Path | None:
    """The file behind doc_id, or None if doc_id would lead outside the corpus directory."""
    root = corpus_dir.resolve()
    candidate = (root / doc_id).resolve()
    if not candidate.is_relative_to(root) or candidate == root:
        return None
    return candidate
