"""Where index generations live, and who may write them.

An index directory holds generation folders (gen-<ns>, each a manifest), the segments they list
(segments/seg-<ns>), the pointer file CURRENT naming the published generation, a lock file that
admits one writer at a time, and that writer's progress file (so any process, a server, can
report a build or a merge it is not running). Publishing renames a complete folder into place,
then replaces CURRENT (os.replace is atomic), so a reader sees the old generation or the new one,
never a mix. The published generation and the one before it are kept (a reader may have just
resolved the old pointer), with every segment either lists; other generations and segments go.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import signal
import time
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

from qa.errors import BuildInProgress
from qa.indexing.store import MANIFEST, SEGMENTS, live_documents

log = logging.getLogger(__name__)

POINTER = "CURRENT"
LOCK = ".lock"
MERGE_LOCK = ".merge-lock"  # held by a merge while it holds or waits for LOCK (writer_lock)
PROGRESS = ".progress.json"  # written by the running build so any process (a server) can report it
LAST_BUILD = ".last-build.json"  # what the last build did to each document it touched (the library shows it)
MERGING = "merging"  # the progress phase of a background merge (merging.py)
PROGRESS_EVERY = 0.25  # seconds between progress file writes
MAX_TRACKED = 1000  # documents whose state a build reports one by one; a larger build reports totals only

Progress = Callable[[str, int, int], None]  # (phase, done, total)


def checkpoint(step: str) -> None:
    """A named point of a write or a merge where a crash must leave the published index whole.
    Test-only: with QA_TEST_KILL_AT=step the process kills itself there with SIGKILL, so that
    tests/test_segments.py stops a real writer at exactly that point; unset, nothing happens."""
    if os.environ.get("QA_TEST_KILL_AT") == step:
        os.kill(os.getpid(), signal.SIGKILL)


def read_small(path: str) -> str | None:
    """The text of a small file (a pointer, shards.json), or None when there is none. Every question
    reads these: os-level calls, as pathlib's read_text and even open()'s text layer cost more than
    the reads themselves."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8")


def current_generation(index_dir: Path) -> Path | None:
    """The published generation's folder, or None when nothing has been published."""
    name = (read_small(os.path.join(index_dir, POINTER)) or "").strip()
    return index_dir / name if name and os.path.isfile(os.path.join(index_dir, name, MANIFEST)) else None


def segment_sizes(index_dir: Path) -> list[tuple[str, int, int, int]]:
    """(name, live passages, bytes, passages written) of each segment of the published generation,
    from segment.json files only; [] when there is none (or it predates segments)."""
    gen = current_generation(index_dir)
    if gen is None:
        return []
    out = []
    for entry in json.loads((gen / MANIFEST).read_text()).get("segments", []):
        info = json.loads((index_dir / SEGMENTS / entry["name"] / "segment.json").read_text())
        gone = set(entry.get("deleted", []))
        live = sum(about["chunks"] for d, about in info["documents"].items() if d not in gone)
        out.append((entry["name"], live, int(info.get("bytes", 0)), int(info["chunks"])))
    return out


def read_manifest(index_dir: Path) -> dict | None:
    """The published manifest, with "documents" (doc_id -> sha256) of its live documents filled in
    from the segments (format 5 lists segments, not documents)."""
    gen = current_generation(index_dir)
    if gen is None:
        return None
    manifest = json.loads((gen / MANIFEST).read_text())
    if "segments" in manifest:
        live = live_documents(index_dir, manifest)
        manifest["documents"] = {d: about["sha256"] for d, about in sorted(live.items())}
    return manifest


@contextmanager
def writer_lock(index_dir: Path, wait: bool = False, merge: bool = False):
    """One writer per index directory, across processes. Raises BuildInProgress unless `wait`.

    A merge (`merge`) also holds MERGE_LOCK for as long as it holds or waits for the writer lock,
    so that a write finding the lock taken by a merge waits for it instead of being turned away."""
    index_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        if merge:
            merging_handle = stack.enter_context(open(index_dir / MERGE_LOCK, "a+"))
            fcntl.flock(merging_handle, fcntl.LOCK_EX)
        handle = stack.enter_context(open(index_dir / LOCK, "a+"))
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            running = read_progress(index_dir)
            how_far = f" ({running['phase']} {running['done']}/{running['total']})" if running else ""
            busy = f"another build is running on {index_dir}{how_far}"
            if not (wait or merge or _held(index_dir / MERGE_LOCK)):
                raise BuildInProgress(
                    f"{busy}; try again when it has finished (`qa index --wait` waits for it)"
                ) from exc
            log.warning("%s; waiting for it to finish", busy)  # so a waiting `qa index` is not mute
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)  # before MERGE_LOCK (the stack closes it after)


def _held(path: Path) -> bool:
    """Whether another open file holds a flock on path (a merge holds MERGE_LOCK)."""
    try:
        with open(path) as probe:
            fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(probe, fcntl.LOCK_UN)
            return False
    except FileNotFoundError:
        return False  # no merge ever ran here
    except BlockingIOError:
        return True


class ProgressFile:
    """Progress of the build holding the lock, as a small JSON file replaced atomically (throttled):
    the phase, and each affected document's state (queued, read, chunked, embedded, ready, removed,
    failed with its reason), so a browser reloading the library, or another process, sees the same."""

    def __init__(self, index_dir: Path, report: Progress) -> None:
        self.path = index_dir / PROGRESS
        self.report = report
        self.last = ("", 0.0)
        self.states: dict[str, dict] = {}
        self.tracked = True
        self.started = datetime.now(UTC).isoformat(timespec="seconds")

    def __call__(self, phase: str, done: int, total: int) -> None:
        self.report(phase, done, total)
        now = time.monotonic()
        if phase == self.last[0] and now - self.last[1] < PROGRESS_EVERY and done < total:
            return
        self.last = (phase, now)
        self._write(phase, done, total)

    def _write(self, phase: str, done: int, total: int) -> None:
        state = {"pid": os.getpid(), "phase": phase, "done": done, "total": total, "started": self.started,
                 "documents": self.states}
        tmp = self.path.with_name(f"{PROGRESS}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.path)

    def mark(self, doc_ids: list[str], state: str, reason: str = "") -> None:
        """Record documents' state; written with the next progress report."""
        if len(self.states) + len(doc_ids) > MAX_TRACKED:
            self.tracked = False  # a bulk build: per-document states would cost more than they tell
        if not self.tracked:
            self.states.clear()
            return
        for doc_id in doc_ids:
            self.states[doc_id] = {"state": state, "reason": reason} if reason else {"state": state}

    def finish(self, error: BaseException | None = None) -> None:
        """Keep what this build did to each document (LAST_BUILD) and remove the progress file.
        A build that stopped half-way marks its unfinished documents failed, with the reason."""
        if error is not None:
            reason = f"the build stopped: {error or type(error).__name__}"
            for doc_id, entry in self.states.items():
                if entry["state"] not in ("ready", "removed", "failed"):
                    self.states[doc_id] = {"state": "failed", "reason": reason}
        if self.states:
            last = {"finished": datetime.now(UTC).isoformat(timespec="seconds"), "documents": self.states}
            tmp = self.path.with_name(f"{LAST_BUILD}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(last))
            os.replace(tmp, self.path.with_name(LAST_BUILD))
        self.clear()

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def read_last_build(index_dir: Path) -> dict | None:
    """{"finished", "documents": {doc_id: {"state", "reason"?}}} of the last build that touched documents."""
    try:
        return json.loads((index_dir / LAST_BUILD).read_text())
    except (OSError, ValueError):
        return None


def read_progress(index_dir: Path) -> dict | None:
    """{"pid", "phase", "done", "total", "started", "documents"} of the running build; None when none runs."""
    try:
        state = json.loads((index_dir / PROGRESS).read_text())
        os.kill(int(state["pid"]), 0)  # a build killed with -9 leaves the file behind
    except PermissionError:
        pass  # the builder runs as another user: it is alive
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state


def fsync_tree(folder: Path, files: bool = True) -> None:
    """fsync the files of folder (unless not `files`) and the folder itself."""
    for path in folder.iterdir() if files else ():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_manifest(index_dir: Path, manifest: dict, kind: str = "write") -> Path:
    """Publish a generation made of `manifest` (its segments already in place); returns its folder.
    `kind` ("write" or "merge") names the crash checkpoints on the way."""
    staging = index_dir / f".build-{os.getpid()}-{time.time_ns()}"
    staging.mkdir(parents=True)
    try:
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    checkpoint(f"{kind}:generation-staged")
    return publish(index_dir, staging, kind)


def publish(index_dir: Path, staging: Path, kind: str = "write") -> Path:
    fsync_tree(staging)
    final = index_dir / f"gen-{time.time_ns()}"
    staging.rename(final)
    checkpoint(f"{kind}:generation-placed")
    pointer_tmp = index_dir / f"{POINTER}.tmp"
    pointer_tmp.write_text(final.name + "\n")
    with open(pointer_tmp, "rb") as handle:
        os.fsync(handle.fileno())
    previous = current_generation(index_dir)
    os.replace(pointer_tmp, index_dir / POINTER)
    fd = os.open(index_dir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    checkpoint(f"{kind}:published")
    # Keep the previous generation a while: a reader may have just resolved the old pointer.
    for old in index_dir.glob("gen-*"):
        if old not in (final, previous):
            shutil.rmtree(old, ignore_errors=True)
    remove_unlisted_segments(index_dir)
    return final


def remove_unlisted_segments(index_dir: Path) -> None:
    """Remove segment folders that no generation left on disk lists (writers only, under the lock).
    A reader that opened one keeps its open files: Linux frees them when the last one closes."""
    listed = set()
    for gen in index_dir.glob("gen-*"):
        try:
            listed |= {entry["name"] for entry in json.loads((gen / MANIFEST).read_text()).get("segments", [])}
        except (OSError, ValueError):
            continue  # a generation without a readable manifest is a leftover, removed with it
    for segment in (index_dir / SEGMENTS).glob("seg-*"):
        if segment.name not in listed:
            shutil.rmtree(segment, ignore_errors=True)


def remove_leftovers(index_dir: Path) -> None:
    """Remove what interrupted builds left behind (we hold the lock, so their writers are gone):
    staging folders, a half-written pointer, and generations never published or long replaced.
    The newest generation before the published one stays: a reader may still be opening it."""
    for leftover in index_dir.glob(".build-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    for tmp in [index_dir / f"{POINTER}.tmp", *index_dir.glob(f"{PROGRESS}.*.tmp"),
                *index_dir.glob(f"{LAST_BUILD}.*.tmp")]:
        tmp.unlink(missing_ok=True)
    published = current_generation(index_dir)
    if published is None:
        remove_unlisted_segments(index_dir)
        return
    older = sorted((g for g in index_dir.glob("gen-*") if _gen_time(g) < _gen_time(published)), key=_gen_time)
    for gen in index_dir.glob("gen-*"):
        if gen != published and gen not in older[-1:]:
            shutil.rmtree(gen, ignore_errors=True)
    remove_unlisted_segments(index_dir)


def _gen_time(gen: Path) -> int:
    try:
        return int(gen.name.removeprefix("gen-"))
    except ValueError:
        return -1
