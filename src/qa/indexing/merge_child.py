"""A server's background merge, run in a child process at the lowest CPU priority.

A merge in a thread of the server shared its GIL and both cores with the questions (/ask p95 5.8x
during a merge of a million passages). In a child process it shares no GIL, and at nice 19 the
scheduler gives it only the CPU time the questions leave (a nice-19 task weighs 15 against 1024 for
a nice-0 one); FAISS's OpenMP threads are capped at one (OMP_NUM_THREADS), as merge_segments does
in-process. The model is not needed: the child imports the indexing stage only.

The child takes the writer lock and publishes exactly as `merging.merge_index` does in `qa index`,
so crash safety is the same: killed at any point (kill -9, the server stopping it), it leaves the
published generation whole, its lock is released by the kernel, and the next writer removes what
it left. It prints a JSON summary on its last line; a child that fails raises MergeFailed with its
exit status and the end of its stderr in the parent.

    python -m qa.indexing.merge_child --index DIR [--exact-max-chunks N] [--factor N] [--everything]
                                      [--keep-page-cache]

--keep-page-cache writes as merges did before pagecache.py (the kernel's page cache left alone): the
baseline of bench/merge_pages.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from qa.config import Settings
from qa.errors import QAError
from qa.indexing import pagecache
from qa.indexing.merging import MERGE_FACTOR, MergeSummary, merge_index

NICENESS = 19  # the lowest CPU priority: the merge gets the cores only when questions do not want them
STDERR_KEPT = 2000  # characters of a failed child's stderr quoted in MergeFailed


class MergeFailed(QAError):
    """The merge child exited without merging (an error, a signal); the published index is as it was."""


def merge_in_child(settings: Settings, factor: int = MERGE_FACTOR, everything: bool = False,
                   started: Callable[[subprocess.Popen], None] | None = None,
                   keep_page_cache: bool = False) -> MergeSummary:
    """Run merging.merge_index on settings' index in a child process at nice NICENESS and wait for it.
    `started` receives the child once it runs (so that a server can stop it on shutdown);
    `keep_page_cache`: the child merges as before pagecache.py (a benchmark's baseline)."""
    package_root = str(Path(__file__).resolve().parents[2])  # the child runs this very code
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "qa.indexing.merge_child", "--index", str(settings.index_dir),
               "--exact-max-chunks", str(settings.exact_max_chunks), "--factor", str(factor)]
    command += (["--everything"] if everything else []) + (["--keep-page-cache"] if keep_page_cache else [])
    child = subprocess.Popen(command, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    # set from the parent: the child's imports already run at the low priority (its threads inherit it);
    # a child that has exited already (OSError) tells how by its status below
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, child.pid, NICENESS)
    if started is not None:
        started(child)
    out, err = child.communicate()
    if child.returncode != 0:
        how = f"killed by signal {-child.returncode}" if child.returncode < 0 else f"exit status {child.returncode}"
        raise MergeFailed(f"the merge process ({how}) did not merge; the index stays as it was. "
                          f"{err.strip()[-STDERR_KEPT:]}".strip())
    result = json.loads(out.strip().splitlines()[-1])
    return MergeSummary(result["merges"], result["peak_memory_mb"])


def main(argv: list[str] | None = None) -> None:
    # SIGTERM (a server stopping) becomes SystemExit, so that the staging folder is removed on the way out
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    parser = argparse.ArgumentParser(prog="python -m qa.indexing.merge_child", description=__doc__.split("\n")[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--exact-max-chunks", type=int, default=None)
    parser.add_argument("--factor", type=int, default=MERGE_FACTOR)
    parser.add_argument("--everything", action="store_true", help="merge every segment into one")
    parser.add_argument("--keep-page-cache", action="store_true", help="leave the page cache to the kernel")
    args = parser.parse_args(argv)
    pagecache.SPARE = not args.keep_page_cache
    given = {"exact_max_chunks": args.exact_max_chunks} if args.exact_max_chunks is not None else {}
    settings = Settings(index_dir=args.index, **given).resolved()
    summary = merge_index(settings, wait=True, factor=args.factor, everything=args.everything)
    print(json.dumps({"merges": summary.merges, "peak_memory_mb": round(peak_resident_kb() / 1024, 1)}))


def peak_resident_kb() -> int:
    """This process's peak resident memory in kB: VmHWM, which belongs to the memory map that exec
    made. Not getrusage's ru_maxrss: Linux carries it over from the process that started this one
    (the 10.3 GB "child" at 1M passages was the bench's own peak when it spawned the child)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # no /proc: the best there is


if __name__ == "__main__":
    main()
