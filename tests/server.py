"""Run a real `qa serve` (uvicorn) on a free loopback port for tests that need a live server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def live_server(corpus: Path, index: Path, *extra_args: str, env: dict | None = None, timeout: float = 120):
    """Yield the base URL of a `qa serve` child process; it builds the index first if there is none."""
    port = free_port()
    child_env = {**os.environ, **(env or {})}
    log = open(index.parent / f"server-{port}.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "qa.cli", "serve", "--corpus", str(corpus), "--index", str(index),
         "--port", str(port), *extra_args],
        env=child_env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"qa serve exited with {proc.returncode}: {Path(log.name).read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"qa serve did not become healthy: {Path(log.name).read_text()[-2000:]}")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextmanager
def uvicorn_thread(app, timeout: float = 30):
    """Yield the base URL of a real uvicorn serving `app` on loopback from a thread of this process.

    For tests that need the real HTTP stack (raw paths, streamed bodies) around an app built on the
    session's already-loaded model, where a `qa serve` child would load the model again."""
    import threading

    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
