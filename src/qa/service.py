"""The one object the CLI, the API and the web UI share: the loaded model and the open index."""

from __future__ import annotations

import hashlib
import logging
import re
import sqlite3
import subprocess
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from qa.answering.answers import Answer, compose
from qa.answering.document_questions import answer_about_document, attach_metadata, recognise
from qa.answering.evidence import SentenceScores
from qa.answering.retrieval import Reranker, lexical_candidates, retrieve
from qa.config import Settings
from qa.errors import DocumentError, IndexMismatch, IndexMissing, NameTaken, NotFound, QAError
from qa.indexing import lexical
from qa.indexing import shards as sharding
from qa.indexing.build import BuildSummary, Embed, build_index, check_compatible, load_document, reading_report
from qa.indexing.embedding import Encoder
from qa.indexing.generations import MERGING, read_progress, segment_sizes
from qa.indexing.merge_child import merge_in_child
from qa.indexing.merging import MergeSummary, merge_index, merge_needed
from qa.indexing.store import Generation, StoredDocument
from qa.reading.documents import SUPPORTED_SUFFIXES
from qa.reading.trash import Trash, TrashEntry

MAX_QUESTION_CHARS = 2000
MAX_K = 20
UPLOADS = "uploads"
STOP_GRACE_S = 5.0  # how long a stopping server lets a merge child clean up after SIGTERM before SIGKILL

log = logging.getLogger(__name__)


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
    documents: dict = field(default_factory=dict)  # doc_id -> {"state", "reason"?} (generations.py)


@dataclass
class SegmentState:
    sizes: list[tuple[str, int, int, int]]  # (name, live passages, bytes, passages written) of each segment
    merging: bool

    def describe(self) -> str:
        """"3 segments (1,204, 10 and 8 passages; 5.2 MiB), merging"."""
        counts = [f"{size[1]:,}" for size in self.sizes]
        listed = ", ".join(counts[:-1]) + (" and " if len(counts) > 1 else "") + (counts[-1] if counts else "")
        size = sum(size[2] for size in self.sizes) / 2**20
        line = f"{len(self.sizes)} segment{'' if len(self.sizes) == 1 else 's'} ({listed} passages; {size:.1f} MiB)"
        return line + (", merging" if self.merging else "")


class Assistant:
    """Answers questions from the newest published index generation, reloading it when it changes."""

    def __init__(self, settings: Settings | None = None, encoder: Encoder | None = None) -> None:
        self.settings = (settings or Settings()).resolved()
        self._encoder = encoder
        self._reranker: Reranker | None = None
        self._encoder_lock = threading.Lock()
        self._gen: Generation | None = None
        self._gen_name: str | None = None
        self._shard_folders: list[Path] | None = None  # of the generation open (sharding.stamp)
        self._stamp: tuple | None = None  # sharding.stamp when it was last found current
        self._gen_lock = threading.Lock()
        self._merge_lock = threading.Lock()
        self._merger: threading.Thread | None = None
        self._merge_again = False
        self._merge_everything = False
        self._merge_child: subprocess.Popen | None = None
        self._stopping = False
        self.last_merge: MergeSummary | None = None  # what the last background merge did (the bench reads it)

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
    def answers_without_waiting(self) -> bool:
        """Whether a question now costs this process's CPU for milliseconds and nothing else: the model
        (and any reranker) loaded and an index open, so nothing to load first. The server then answers it
        on its event loop rather than in a worker thread (serving/quick_ask.py). A publish by another
        process still makes the next question reopen the index (memory-mapped: 0.5-1.1 s at 1M, bench/scale.py)."""
        return (self._encoder is not None and self._gen is not None
                and (not self.settings.reranker or self._reranker is not None))

    @property
    def reranker(self) -> Reranker | None:
        """The cross-encoder of QA_RERANKER, loaded once; None when none is configured."""
        if self.settings.reranker and self._reranker is None:
            with self._encoder_lock:
                if self._reranker is None:
                    self._reranker = Reranker(self.settings.reranker)
        return self._reranker

    def generation(self) -> Generation:
        """The published generation, reopened whenever the pointer has moved (cheap: one stat call per
        pointer file while nothing is published). A sharded index opens as one generation over every
        shard's (shards.py)."""
        stamp = sharding.stamp(self.settings.index_dir, self._shard_folders)  # before reading the pointers
        if stamp is not None and stamp == self._stamp and self._gen is not None:
            return self._gen
        for attempt in range(3):
            paths = sharding.published(self.settings.index_dir)
            if paths is None:
                raise IndexMissing(f"no index in {self.settings.index_dir}: run `qa index` to build one")
            key = sharding.generation_key(paths)
            if key == self._gen_name:
                break
            with self._gen_lock:
                if key == self._gen_name:
                    break
                try:
                    opened = self._gen.segments if self._gen is not None else None
                    # segments it shares with the last one stay open
                    gen = sharding.open_generation(self.settings.index_dir, paths, opened)
                except (OSError, sqlite3.Error, RuntimeError):
                    # Writers keep the generation before the newest; two publishes since we read the
                    # pointer removed this one: read the pointer again.
                    if attempt == 2:
                        raise
                    continue
                check_compatible(gen.manifest, self.settings, self.encoder)
                self._gen, self._gen_name = gen, key
                break
        assert self._gen is not None
        # a publish since `stamp` was taken changes the files again: the next question looks again
        self._shard_folders, self._stamp = [path.parent for path in paths], stamp
        return self._gen

    @property
    def build_state(self) -> BuildState:
        """The build running on this index directory, in this process or another (`qa index`)."""
        running = read_progress(self.settings.index_dir)
        if running is None or running["phase"] == MERGING:  # a merge is not a build: writes wait for it
            return BuildState()
        return BuildState(True, running["phase"], running["done"], running["total"],
                          running.get("documents") or {})

    @property
    def segments(self) -> SegmentState:
        """The published index's segments (count and sizes, of every shard) and whether a merge is running."""
        folders = sharding.folders(self.settings.index_dir)
        running = [read_progress(folder) for folder in folders]
        return SegmentState([size for folder in folders for size in segment_sizes(folder)],
                            any(r is not None and r["phase"] == MERGING for r in running))

    def _shard_settings(self) -> list[Settings]:
        """The settings of each shard's own index folder (one: these settings)."""
        return [self.settings.model_copy(update={"index_dir": folder})
                for folder in sharding.folders(self.settings.index_dir)]

    # -- reading ---------------------------------------------------------------------------
    def ask(self, question: str, k: int = 5, documents: list[str] | None = None) -> Answer:
        question = validate_question(question)
        if not 1 <= k <= MAX_K:
            raise InvalidRequest("k", f"must be between 1 and {MAX_K}, got {k}")
        gen = self.generation()  # loads the model on first use; not part of the answer's time
        if documents is not None:
            check_documents(documents, gen.manifest["documents"])
        began = time.perf_counter()
        # What needs no question vector comes first: the question's terms and IDF (once), their postings
        # (BM25 and each passage's share of that IDF) and whether it asks about a document itself, on
        # caches that encoding has not yet evicted.
        words = lexical.terms(question)
        term_weights, absent = gen.words.statistics(list(dict.fromkeys(words)))
        matched = gen.match(words, term_weights)
        lexical_candidates(gen, matched, documents)
        document_question = recognise(question)  # None for most questions
        query = self.encoder.encode_query(question)
        sentences = SentenceScores(query, term_weights)  # the pool's, then the answer's
        hits = retrieve(gen, query, question, k, documents, self.reranker, term_weights, matched, sentences)
        answer = (answer_about_document(question, query, hits, gen, documents, k, document_question)
                  if document_question is not None else None)
        answer = answer or compose(question, query, hits, self.settings.min_confidence, term_weights, absent,
                                   sentences)
        attach_metadata(answer, gen)
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
        prepare: Callable[[], None] | None = None, embed: Embed | None = None, merge: bool = True,
        shards: int | None = None,
    ) -> BuildSummary:
        """Bring the index in line with the corpus folder; returns once the result is live.

        Another writer holding the index lock raises BuildInProgress (HTTP 409) unless `wait` (a
        running merge is waited for). `prepare` changes the corpus under the same lock (an upload,
        a delete); `embed` encodes elsewhere than in this process (distributed.RayEmbedding). With
        `merge`, a write that changed the index then merges segments in the background, in a child
        process (`merge_in_background`); `qa index` merges in the foreground instead (`merge`). `shards`: the
        shard count of a new index, or (with `rebuild`) the one to rebuild into (shards.py)."""
        bar = None

        def progress(phase: str, done: int, total: int) -> None:
            nonlocal bar
            if show_progress and phase == "embedding":
                if bar is None:
                    from tqdm import tqdm

                    bar = tqdm(total=total, desc="embedding", unit="chunk")
                bar.update(done - bar.n)

        try:
            summary = build_index(self.settings, lambda: self.encoder, rebuild, progress, wait, prepare, embed,
                                  shards)
        finally:
            if bar is not None:
                bar.close()
        if self._encoder is not None:  # a server: open the new generation now, not in the next answer
            self.generation()
        if merge and summary.touched:
            self.merge_in_background()
        return summary

    def merge(self, wait: bool = True) -> MergeSummary:
        """Merge segments as the tiered policy asks (merging.py), under the writer lock; publishes each merge.
        Each shard merges its own segments, under its own lock."""
        summary = MergeSummary()
        for settings in self._shard_settings():
            summary.merges += merge_index(settings, wait=wait).merges
        if self._encoder is not None and summary.merges:
            self.generation()
        return summary

    def merge_in_background(self, everything: bool = False) -> None:
        """Merge in a thread of its own, so that the write that asked for it has already answered; the
        thread runs each shard's merge in a child process at the lowest CPU priority (merge_child.py),
        so that questions keep the GIL and the cores. One merging thread at a time; a request while it
        runs makes it look again when done. `everything`: merge all segments into one."""
        if not any(merge_needed(s, everything=everything) for s in self._shard_settings()):
            return  # the usual case: no thread, lock, process or progress
        with self._merge_lock:
            self._merge_again = True
            self._merge_everything |= everything
            if self._merger is not None and self._merger.is_alive():
                return
            self._merger = threading.Thread(target=self._merge_while_asked, name="qa-merge", daemon=True)
            self._merger.start()

    @property
    def merging(self) -> bool:
        """Whether this process's background merge is running (the library reads any process's: segments)."""
        return self._merger is not None and self._merger.is_alive()

    @property
    def merge_pid(self) -> int | None:
        """The process id of the running merge child, or None."""
        child = self._merge_child
        return child.pid if child is not None and child.returncode is None else None

    def stop_merging(self) -> None:
        """Stop a background merge (the server shutting down) rather than wait for it: a merge of a
        million passages takes minutes, longer than a service manager waits, and a stopped merge
        loses only its own work (the index stays as it was; the next write's merge does it again).
        The child gets SIGTERM (it removes its staging folder), then SIGKILL after STOP_GRACE_S."""
        with self._merge_lock:
            self._merge_again, self._stopping = False, True
            child, merger = self._merge_child, self._merger
        try:
            if child is not None and child.poll() is None:
                child.terminate()
                try:
                    child.wait(STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    child.kill()
            if merger is not None:
                merger.join(STOP_GRACE_S + 5)
        finally:
            with self._merge_lock:
                self._stopping = False

    def _merge_started(self, child: subprocess.Popen) -> None:
        with self._merge_lock:
            self._merge_child = child
            if self._stopping:  # stop_merging ran between this child's launch and now
                child.terminate()

    def _merge_while_asked(self) -> None:
        while True:
            with self._merge_lock:
                if not self._merge_again or self._stopping:
                    return
                self._merge_again, everything = False, self._merge_everything
                self._merge_everything = False
            summary = MergeSummary()
            try:
                for settings in self._shard_settings():
                    if self._stopping:
                        return
                    if merge_needed(settings, everything=everything):
                        done = merge_in_child(settings, everything=everything, started=self._merge_started)
                        summary.merges += done.merges
                        summary.peak_memory_mb = max(summary.peak_memory_mb or 0, done.peak_memory_mb or 0)
                if summary.merges:
                    self.last_merge = summary
                    log.info("background merge:\n%s", summary.describe())
                    if self._encoder is not None:  # a server: open the merged generation now, not in a question
                        self.generation()
            except Exception as exc:  # noqa: BLE001 - a failed merge leaves the published index as it was
                if self._stopping:
                    log.info("the background merge was stopped: %s", exc)
                else:
                    log.exception("merging the index's segments failed; the index stays as it was")
            finally:
                with self._merge_lock:
                    self._merge_child = None

    def add_document(self, filename: str, data: bytes, replace: bool = False) -> tuple[str, int, bool]:
        """Store an upload as uploads/<name> and index it. Returns (doc_id, chunks, changed_anything).

        A file that cannot be read is refused before anything is written; the same content again
        changes nothing and builds nothing; other content under a taken name raises NameTaken unless
        `replace`, and then the old version goes to the trash."""
        name = sanitise_filename(filename)
        doc_id = f"{UPLOADS}/{name}"
        load_document(Path(name), doc_id, data)
        target = self.settings.corpus_dir / UPLOADS / name
        same = _same_bytes(target, data)
        if same and self._indexed_sha(doc_id) == hashlib.sha256(data).hexdigest():
            return doc_id, self.document(doc_id).chunks, False
        if target.exists() and not same and not replace:
            raise _name_taken(doc_id)

        def store() -> None:
            if target.exists() and not _same_bytes(target, data):
                if not replace:  # another upload took the name since the check above
                    raise _name_taken(doc_id)
                Trash(self.settings.corpus_dir).put(target, doc_id, "replaced", self._indexed_title(doc_id))
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{name}.tmp")
            tmp.write_bytes(data)
            tmp.replace(target)

        summary = self.reindex(prepare=store)
        if doc_id in summary.skipped:
            raise DocumentError(summary.skipped[doc_id])
        changed = doc_id in summary.added or doc_id in summary.changed
        return doc_id, self.document(doc_id).chunks, changed

    def reading(self, doc_id: str) -> dict:
        """{"chars", "passages", "warning"}: what the reader made of the indexed file doc_id."""
        doc = self.document(doc_id)
        path = corpus_path(self.settings.corpus_dir, doc_id)
        size = path.stat().st_size if path is not None and path.is_file() else 0
        return reading_report(doc_id, len(doc.text), doc.chunks, size)

    def delete_document(self, doc_id: str) -> None:
        """Move the file to the trash and drop it from the index; `restore` brings it back."""
        self.document(doc_id)  # 404 for an unknown id
        path = corpus_path(self.settings.corpus_dir, doc_id)
        if path is None:
            raise NotFound(f"no document {doc_id!r} in the corpus")

        def to_trash() -> None:
            if path.is_file():  # a file already removed by hand is only dropped from the index
                Trash(self.settings.corpus_dir).put(path, doc_id, "deleted", self._indexed_title(doc_id))

        self.reindex(prepare=to_trash)

    def trash(self) -> list[TrashEntry]:
        return Trash(self.settings.corpus_dir).entries()

    def restore(self, entry_id: str, replace: bool = False) -> str:
        """Put a trashed file back under its doc_id and index it. A file now holding that name raises
        NameTaken unless `replace`, and then that file goes to the trash in its place."""
        trash = Trash(self.settings.corpus_dir)
        entry = trash.get(entry_id)
        target = corpus_path(self.settings.corpus_dir, entry.doc_id)
        if target is None:
            raise NotFound(f"trash entry {entry_id!r} names {entry.doc_id!r}, which is outside the corpus")

        def put_back() -> None:
            trash.get(entry_id)  # another restore may have taken it meanwhile
            if target.exists():
                if not replace:
                    raise _name_taken(entry.doc_id, restoring=True)
                trash.put(target, entry.doc_id, "replaced", self._indexed_title(entry.doc_id))
            trash.take_back(entry, target)

        self.reindex(prepare=put_back)
        return entry.doc_id

    def _indexed_title(self, doc_id: str) -> str:
        """The title the index holds for doc_id (the version about to go to the trash), or ""."""
        try:
            found = self.generation().document(doc_id)
        except (IndexMissing, IndexMismatch):
            return ""
        return found.title if found else ""

    def _indexed_sha(self, doc_id: str) -> str | None:
        try:
            return self.generation().manifest["documents"].get(doc_id)
        except (IndexMissing, IndexMismatch):
            return None


def _name_taken(doc_id: str, restoring: bool = False) -> NameTaken:
    how = "POST /trash/{id}/restore?replace=true" if restoring else "upload with ?replace=true"
    return NameTaken(f"file: the name {doc_id} is taken by another file; {how} to replace it (the current "
                     "version goes to the trash), or use another name")


def _same_bytes(path: Path, data: bytes) -> bool:
    try:
        return path.read_bytes() == data
    except OSError:
        return False


def check_documents(documents: list[str], indexed) -> None:
    """A filter naming no document, or one not indexed, would silently answer from nothing."""
    if not documents:
        raise InvalidRequest("documents", "must name at least one doc_id, or be null to search every document")
    unknown = sorted({d for d in documents if d not in indexed})
    if unknown:
        named = ", ".join(map(repr, unknown[:10])) + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
        raise InvalidRequest("documents", f"unknown doc_id {named}: GET /documents lists the indexed ones")


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


# Refused in a name: control characters, line and paragraph separators, and the bidirectional
# overrides that make a name display as another one (U+202A-U+202E, U+2066-U+2069).
_REFUSED_IN_NAMES = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
MAX_NAME_BYTES = 255


def sanitise_filename(filename: str) -> str:
    """The upload's own name (NFC), refused rather than rewritten when it cannot be a plain file name:
    two different names must never end up as one file."""
    name = unicodedata.normalize("NFC", filename or "").strip()
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise InvalidRequest("file", f"file name {filename!r} must be a plain name without folders")
    bad = _REFUSED_IN_NAMES.search(name)
    if bad:
        raise InvalidRequest("file", f"file name {filename!r} contains the control character "
                             f"U+{ord(bad.group()):04X}: rename the file")
    if name.startswith("."):
        raise InvalidRequest("file", f"file name {name!r} starts with '.': hidden files are not indexed; rename it")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise InvalidRequest("file", f"file name is {len(name.encode())} bytes long; at most {MAX_NAME_BYTES}")
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
