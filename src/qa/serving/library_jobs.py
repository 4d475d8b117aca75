"""Writes from the browser run here, one at a time in a background thread of the server, so an upload
or a rebuild answers at once and the library shows its indexing (the JSON API's writes still answer
only once live). A job waits its turn behind any other writer (a JSON write, `qa index`) instead of
failing with "build in progress"."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from qa.errors import BuildInProgress

log = logging.getLogger(__name__)

KEEP_FINISHED = 20  # finished jobs remembered, newest first, for the library's "recent changes"
WAIT_FOR_WRITER = 30 * 60.0  # seconds a job waits for another writer before it gives up
RETRY_EVERY = 0.5


@dataclass
class Job:
    id: int
    action: str  # "upload", "replace", "delete", "restore", "rebuild"
    doc_id: str  # "" for a rebuild
    state: str = "queued"  # queued, running, done, failed
    reason: str = ""
    at: str = ""


class Jobs:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qa-library")
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._active: list[Job] = []
        self._finished: deque[Job] = deque(maxlen=KEEP_FINISHED)

    def submit(self, action: str, doc_id: str, work: Callable[[], object]) -> Job:
        job = Job(next(self._ids), action, doc_id, at=_now())
        with self._lock:
            self._active.append(job)
        self._pool.submit(self._run, job, work)
        return job

    def _run(self, job: Job, work: Callable[[], object]) -> None:
        job.state = "running"
        deadline = time.monotonic() + WAIT_FOR_WRITER
        try:
            while True:
                try:
                    work()
                    break
                except BuildInProgress:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(RETRY_EVERY)
            job.state = "done"
        except Exception as exc:  # noqa: BLE001 - the reason is shown in the library, not lost in a log
            job.state, job.reason = "failed", str(exc) or type(exc).__name__
            log.warning("library %s of %r failed: %s", job.action, job.doc_id, job.reason)
        finally:
            job.at = _now()
            with self._lock:
                self._active.remove(job)
                self._finished.appendleft(job)

    def active(self) -> list[Job]:
        with self._lock:
            return list(self._active)

    def finished(self) -> list[Job]:
        with self._lock:
            return list(self._finished)

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """For tests and shutdown: True once nothing is queued or running."""
        deadline = time.monotonic() + timeout
        while self.active():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
