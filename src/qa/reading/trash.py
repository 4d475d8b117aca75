"""The trash: deleted files and the old versions of replaced ones, so that no write loses a file.

It lives in <corpus>/.trash: a hidden folder, so the corpus scan never reads it as documents, and
inside the corpus, so a move there is a rename on the same file system. No build, rebuild or
clean-up (`make clean-index` touches only the index folder) removes anything from it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from qa.errors import NotFound

TRASH = ".trash"
ENTRY = "entry.json"
_ENTRY_ID = re.compile(r"[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}")


@dataclass(frozen=True)
class TrashEntry:
    id: str
    doc_id: str
    reason: str  # "deleted" | "replaced"
    at: str  # ISO 8601, UTC
    # What tells two versions of one file apart (entries written before these fields have them filled
    # in from the file when listed; a missing title stays "").
    title: str = ""  # the document's title as it was indexed
    size: int | None = None  # bytes
    sha256: str = ""  # of the file's bytes

    def to_dict(self) -> dict:
        return asdict(self)


class Trash:
    def __init__(self, corpus_dir: Path) -> None:
        self.root = corpus_dir / TRASH

    def put(self, path: Path, doc_id: str, reason: str, title: str = "") -> TrashEntry:
        """Move the file at `path` (the document doc_id, titled `title`) into a new entry of its own."""
        now = datetime.now(UTC)
        size, sha256 = _fingerprint(path)
        entry = TrashEntry(f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}", doc_id, reason,
                           now.isoformat(timespec="seconds"), title, size, sha256)
        folder = self.root / entry.id
        folder.mkdir(parents=True)
        os.replace(path, folder / path.name)
        # Written after the move: a crash between the two leaves the file in the trash folder, unlisted
        # but not lost, rather than an entry whose file is still in the corpus.
        tmp = folder / f".{ENTRY}.tmp"
        tmp.write_text(json.dumps(entry.to_dict()))
        os.replace(tmp, folder / ENTRY)
        return entry

    def entries(self) -> list[TrashEntry]:
        """Every entry, newest first."""
        found = []
        for meta in self.root.glob(f"*/{ENTRY}"):
            try:
                entry = TrashEntry(**json.loads(meta.read_text()))
                written = meta.stat().st_mtime_ns
            except (OSError, ValueError, TypeError):
                continue  # an entry damaged by hand: its file stays where it is
            if not entry.sha256:  # written before entries recorded size and hash
                size, sha256 = _fingerprint(self.file_of(entry))
                entry = replace(entry, size=size, sha256=sha256)
            found.append((entry.id[:16], written, entry))
        # The id's time is to the second: two entries of one second are told apart by when each was written.
        return [entry for *_, entry in sorted(found, key=lambda f: f[:2], reverse=True)]

    def get(self, entry_id: str) -> TrashEntry:
        meta = self.root / entry_id / ENTRY
        if not _ENTRY_ID.fullmatch(entry_id) or not meta.is_file():
            raise NotFound(f"no trash entry {entry_id!r}: GET /trash lists them")
        return TrashEntry(**json.loads(meta.read_text()))

    def file_of(self, entry: TrashEntry) -> Path:
        return self.root / entry.id / Path(entry.doc_id).name

    def take_back(self, entry: TrashEntry, target: Path) -> None:
        """Move the entry's file to `target` and forget the entry."""
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.file_of(entry), target)
        shutil.rmtree(self.root / entry.id, ignore_errors=True)


def _fingerprint(path: Path) -> tuple[int | None, str]:
    """(size in bytes, sha256 of the bytes) of a file; (None, "") when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return path.stat().st_size, digest.hexdigest()
    except OSError:
        return None, ""
