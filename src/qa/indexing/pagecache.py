"""Keeping a merge from flooding the page cache that a server answers from (issue 21).

A merge of a million passages reads about 5 GB and writes 7.5 GB beside the index a server is
answering from. Left to the kernel, what it writes piles up as dirty pages (up to dirty_ratio, a
fifth of memory here: seconds of writeback that then queue before the server's reads) and stays
cached with what it read, so the server's own pages of the index it maps are evicted and its
questions fault to disk (/ask p95 1.41x to 2.64x during a merge at 1M; nice 19 governs the CPU only,
and ionice does nothing under mq-deadline). So a merge:

- writes its files through a `Flusher`: every FLUSH_EVERY seconds each file in its staging folder is
  fdatasync'ed, so dirty pages stay at what a fraction of a second writes, and its FAISS file through
  `write_index`, synced every SYNC_BYTES (written from memory in one burst, a million vectors' graph
  is 1.8 GB faster than any tick). The new store, of which a server reads only the few passages a
  question shows, is then dropped from the cache (POSIX_FADV_DONTNEED; it is clean once synced). The
  new vectors and postings stay cached: the server maps them right after the merge publishes and
  searches them whole (a cold HNSW graph costs thousands of page faults a question).
- drops what it read wholesale once read (`drop`): the largest segment's FAISS file. DONTNEED leaves
  pages that a process maps, so the server's hot pages of that file stay; only the rest goes.
- drops, once a second, the pages of the stores it copies that were not cached when it began
  (`Flusher`'s `inputs`, `uncached_ranges`): a server reads passages from them through the cache
  (pread, not a map), so DONTNEED on the whole file would take the server's pages too; the pages
  the copy brought in (at 1M, 5.4 GB read from disk) go, the ones that were there stay.

Nothing here changes what is written or when it is durable (the writer still fsyncs before it
publishes); `SPARE = False` makes merges write as before, for benchmarks' baselines.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
import threading
from pathlib import Path

import faiss
import numpy as np

FLUSH_EVERY = 0.25  # seconds: dirty pages stay at what a quarter of a second writes (100k passages: ~200 MB)
# ticks between drops of the inputs' pages: a server's cached pages scattered through a store make
# thousands of ranges (20,000 DONTNEED calls: 42 ms of CPU here), so once a second, not every tick
DROP_INPUTS_EVERY = 4
SYNC_BYTES = 64 * 2**20  # write_index: dirty pages of the FAISS file at most this many bytes
SPARE = True  # False: merges leave the page cache to the kernel, as they did before (bench baselines)


def drop(path: Path) -> None:
    """Drop path's clean cached pages that no process maps (a hint: errors are ignored)."""
    if not SPARE:
        return
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def write_index(index: faiss.Index, path: Path) -> None:
    """faiss.write_index to path, fdatasync'ed every SYNC_BYTES as it is written (when SPARE)."""
    if not SPARE:
        faiss.write_index(index, str(path))
        return
    with open(path, "wb") as f:
        pending = 0

        def write(data: bytes) -> int:
            nonlocal pending
            f.write(data)
            pending += len(data)
            if pending >= SYNC_BYTES:
                f.flush()
                os.fdatasync(f.fileno())
                pending = 0
            return len(data)

        writer = faiss.PyCallbackIOWriter(write)
        faiss.write_index(index, writer)
        del writer  # before the file closes: it hands over everything it was given


def resident(path: Path) -> np.ndarray:
    """Which pages of path are in the page cache (mincore on a read-only map of it)."""
    size = path.stat().st_size
    pages = -(-size // mmap.PAGESIZE)
    if not size:
        return np.zeros(0, dtype=bool)
    flags = np.zeros(pages, dtype=np.uint8)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ) as mapped:
        view = np.frombuffer(mapped, dtype=np.uint8)  # for its address; released before the map closes
        try:
            failed = ctypes.CDLL(None, use_errno=True).mincore(
                ctypes.c_void_p(view.ctypes.data), ctypes.c_size_t(size), flags.ctypes.data_as(ctypes.c_void_p))
        finally:
            del view
    if failed:
        raise OSError(ctypes.get_errno(), "mincore failed")
    return (flags & 1).astype(bool)


def uncached_ranges(path: Path) -> list[tuple[int, int]]:
    """(offset, length) in bytes of each run of path's pages not in the page cache now."""
    absent = ~resident(path)
    edges = np.flatnonzero(np.diff(np.concatenate([[False], absent, [False]]).astype(np.int8)))
    return [(int(a) * mmap.PAGESIZE, int(b - a) * mmap.PAGESIZE) for a, b in zip(edges[::2], edges[1::2], strict=True)]


class Flusher:
    """While open, a thread fdatasyncs every file in `folder` each FLUSH_EVERY seconds and drops the
    cached pages of those named in `dropped` once synced; once more on leaving. Files are held open
    by descriptor once seen; set `folder` to where the folder was moved (segments._finish renames it)
    for the last pass to find the files written since the last tick. `inputs`: files the merge reads
    through the cache, whose pages not cached when it began are dropped every DROP_INPUTS_EVERY ticks."""

    def __init__(self, folder: Path, dropped: frozenset[str] = frozenset(), inputs: tuple[Path, ...] = ()) -> None:
        self.folder, self.dropped, self.inputs = folder, dropped, inputs
        self._open: dict[str, int] = {}  # file name -> descriptor
        self._read: list[tuple[int, list[tuple[int, int]]]] = []  # input descriptor, its ranges to drop
        self._stop = threading.Event()
        self._running = False
        self._thread = threading.Thread(target=self._run, name="merge-flusher", daemon=True)

    def __enter__(self) -> Flusher:
        self._running = SPARE  # read once: the bench's baseline switches SPARE off and on around merges
        if self._running:
            for path in self.inputs:
                with contextlib.suppress(OSError):
                    ranges = uncached_ranges(path)
                    self._read.append((os.open(path, os.O_RDONLY), ranges))
            self._thread.start()
        return self

    def __exit__(self, failed, *_) -> None:
        if not self._running:
            return
        self._stop.set()
        self._thread.join()
        if failed is None:  # a failed merge's folder is about to be removed: nothing worth syncing
            self._flush()
        for fd in [*self._open.values(), *(fd for fd, _ in self._read)]:
            os.close(fd)
        self._open.clear()
        self._read.clear()

    def _run(self) -> None:
        ticks = 0
        while not self._stop.wait(FLUSH_EVERY):
            ticks += 1
            self._flush(inputs=ticks % DROP_INPUTS_EVERY == 0)

    def _flush(self, inputs: bool = True) -> None:
        with contextlib.suppress(OSError):  # the folder renamed or removed (a failed merge): keep what is open
            for path in self.folder.iterdir():
                if path.name not in self._open and path.is_file() and not path.name.endswith("-journal"):
                    with contextlib.suppress(OSError):
                        self._open[path.name] = os.open(path, os.O_RDONLY)
        for name, fd in list(self._open.items()):
            with contextlib.suppress(OSError):
                os.fdatasync(fd)
                if name in self.dropped:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        for fd, ranges in self._read if inputs else ():
            for offset, length in ranges:
                with contextlib.suppress(OSError):
                    os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
