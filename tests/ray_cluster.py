"""A real 2-node Ray cluster for the Ray tests (tests/test_ray_build.py, tests/test_ray_serve.py), isolated
so that it works on a machine where Ray never ran and leaves nothing behind.

Ray puts its default folder at $RAY_TMPDIR/ray (else $TMPDIR/ray, else /tmp/ray) whatever `temp_dir`
the head gets: `Cluster.add_node` writes the cluster's address there. So RAY_TMPDIR points at a private
folder, removed afterwards with everything Ray wrote; usage stats are off; actors import the `qa` under
test (PYTHONPATH), not another installed copy.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import qa

ISOLATING = ("RAY_USAGE_STATS_ENABLED", "PYTHONPATH", "RAY_TMPDIR")


def require_ray(serve: bool = False) -> None:
    """Skip without Ray (or Ray Serve), except in CI (CI=true), where CI installs the ray extra: fail."""
    try:
        import ray  # noqa: F401
        from ray.cluster_utils import Cluster  # noqa: F401
        if serve:
            from ray import serve as _  # noqa: F401
    except ImportError:
        what = "Ray Serve" if serve else "Ray"
        message = f"{what} is not installed: pip install 'alliance-qa[ray]' (CI installs it with the dev extra)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)


def private_ray_folder() -> str:
    """A new folder under the temp dir, or under /tmp when that path is too long for Ray's sockets
    (a Unix socket path holds at most 107 bytes, and Ray adds about 70)."""
    base = tempfile.gettempdir()
    folder = tempfile.mkdtemp(prefix="qa-ray-", dir=base if len(base) <= 32 else "/tmp")
    os.makedirs(os.path.join(folder, "ray"))
    return folder


@contextlib.contextmanager
def two_node_cluster() -> Iterator[tuple]:
    """A head and a worker node (1 CPU each), this process connected to them: (cluster, worker node).
    On leaving: Ray shut down, the nodes stopped, the private folder removed, the environment restored."""
    import ray
    from ray.cluster_utils import Cluster

    saved = {k: os.environ.get(k) for k in ISOLATING}
    temp = private_ray_folder()
    nodes = None
    try:
        os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
        os.environ["RAY_TMPDIR"] = temp
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(Path(qa.__file__).resolve().parents[1]), saved["PYTHONPATH"]) if p)
        nodes = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 1, "include_dashboard": False, "temp_dir": os.path.join(temp, "ray")})
        worker = nodes.add_node(num_cpus=1)
        nodes.wait_for_nodes()
        ray.init(address=nodes.address, logging_level="WARNING", log_to_driver=False)
        yield nodes, worker
    finally:
        ray.shutdown()
        if nodes is not None:
            nodes.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
