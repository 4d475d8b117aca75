"""Encoding a build on a Ray cluster: `qa index --ray ADDRESS`.

Encoding is the cost of a build; reading and chunking are cheap and stay on the driver, as does
writing and publishing the generation (index.py). Here the new chunks go to one encoder actor per
CPU (or per GPU) of every node, in the work units the local build encodes: chunks ordered by length
across the whole build, cut into the same slices, then into whole encoder batches of the same texts.
So every ONNX call sees the batch it sees locally, and the vectors are the local build's.

Faults: a unit whose actor dies (its node was lost) is sent to another live actor; when no actor is
left, or nothing answers for STALL_SECONDS, the build stops with a message and, as with any failed
build, the published generation stays as it was.

Plain Ray actors rather than Ray Data: the work is a list of small independent units whose grouping
must not change, and a lost actor is a requeue of its units, nothing more.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections import Counter, deque
from collections.abc import Callable

import numpy as np

from qa.config import Settings
from qa.errors import QAError
from qa.indexing.build import ENCODE_SLICE
from qa.indexing.embedding import BATCH_SIZE, Encoder
from qa.indexing.generations import Progress
from qa.reading.chunking import Chunk

log = logging.getLogger(__name__)

INSTALL = "pip install 'alliance-qa[ray]'"
UNIT_BATCHES = 4  # encoder batches a task: 64 texts, small enough to share a 1,200-passage build evenly
IN_FLIGHT = 2  # units queued on each actor, so it never waits for the driver between two
MAX_ATTEMPTS = 3  # a unit whose actor died this often is not a lost node but a unit that kills encoders
STALL_SECONDS = 600.0  # no unit finished and no encoder started for this long: give up (first use exports the model)
STATUS_EVERY = 10.0  # seconds between per-node progress lines


class RayBuildError(QAError):
    """Ray is missing, the cluster cannot be reached, or it lost the encoders mid-build."""


def import_ray():
    try:
        import ray
    except ImportError as exc:
        raise RayBuildError(f"--ray needs Ray, which is not installed: {INSTALL}") from exc
    return ray


def work_units(encoder: Encoder, chunks: list[Chunk], unit_texts: int = UNIT_BATCHES * BATCH_SIZE) -> list[list[int]]:
    """Chunk positions in units of whole encoder batches, exactly the batches index._embed runs.

    _embed orders chunks by character length, takes ENCODE_SLICE at a time, and the encoder sorts
    a slice by token length (stable) and runs BATCH_SIZE at a time; a unit is consecutive batches of
    that order, which the encoder keeps as they are (already sorted)."""
    assert unit_texts % BATCH_SIZE == 0, "a unit must hold whole batches"
    order = sorted(range(len(chunks)), key=lambda i: len(chunks[i].text))
    units = []
    for i in range(0, len(order), ENCODE_SLICE):
        picked = order[i : i + ENCODE_SLICE]
        tokens = encoder.tokenizer.counts([chunks[j].text for j in picked])
        by_tokens = [picked[k] for k in np.argsort(tokens, kind="stable")]
        units += [by_tokens[k : k + unit_texts] for k in range(0, len(by_tokens), unit_texts)]
    return units


class EncoderActor:
    """One model on one CPU (or GPU) of one node; made a Ray actor class by `_actor_class`."""

    def __init__(self, model: str, backend: str, cache_dir, device: str) -> None:
        if backend == "torch" or device != "cpu":
            import torch

            torch.set_num_threads(1)
        if device != "cpu":
            backend = "torch"  # the ONNX export runs on CPU only
        self.encoder = Encoder(model, backend, cache_dir, device=device, threads=1)  # type: ignore[arg-type]

    def where(self) -> str:
        """host/node of this actor, as progress names it."""
        import ray

        return f"{socket.gethostname()}/{ray.get_runtime_context().get_node_id()[:6]}"

    def encode(self, texts: list[str], spans: list[list[tuple[int, int]]]):
        return self.encoder.encode_with_spans(texts, spans)


def _actor_class(ray):
    return ray.remote(max_restarts=0, max_task_retries=0)(EncoderActor)


class RayEmbedding:
    """The `embed` step of build_index on a Ray cluster; a context manager owning the connection.

    `address`: `local` starts a cluster in this process, `auto` joins the one this machine belongs
    to, anything else is passed to ray.init (host:port, ray://host:10001). An already connected
    process (tests, notebooks) is used as it is and left connected. Connecting waits for the first
    build that has something to encode. `status` receives per-node progress lines. `unit_texts`
    (whole encoder batches) is the work of a task: smaller units share a small build among more nodes.
    """

    def __init__(
        self, settings: Settings, address: str, status: Callable[[str], None] | None = None,
        unit_texts: int = UNIT_BATCHES * BATCH_SIZE,
    ) -> None:
        self.ray = import_ray()
        self.unit_texts = unit_texts
        self.settings = settings
        self.address = address
        self.status = status or (lambda line: None)
        self.per_node: Counter[str] = Counter()
        self.in_flight: Counter[str] = Counter()  # node -> units sent to it and not yet back
        self.lost: list[str] = []  # nodes whose encoders died during the build
        self.seconds: dict[str, float] = {}  # the last call's "starting" (to the first encoder up) and "encoding"
        self._connected_here = False
        if not self.ray.is_initialized():
            self._check_reachable()

    def __enter__(self) -> RayEmbedding:
        return self

    def __exit__(self, *exc) -> None:
        if self._connected_here:
            self.ray.shutdown()
            self._connected_here = False

    def _connect(self) -> None:
        ray = self.ray
        if ray.is_initialized():
            return
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        options = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": False}
        try:
            if self.address == "local":
                ray.init(**options)
            else:
                ray.init(address=self.address, **options)
        except Exception as exc:  # noqa: BLE001 - ray raises ConnectionError, ValueError, RuntimeError...
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise RayBuildError(
                f"cannot join the Ray cluster at {self.address!r} ({first}): start one with `ray start --head` "
                "and pass its address, use `--ray auto` on a machine that joined one, or `--ray local`"
            ) from exc
        self._connected_here = True

    def _check_reachable(self) -> None:
        """Fail in seconds on an address nothing listens at: ray.init retries for minutes."""
        host, sep, port = self.address.removeprefix("ray://").rpartition(":")
        if self.address in ("local", "auto") or not sep or not port.isdigit():
            return
        try:
            socket.create_connection((host, int(port)), timeout=10).close()
        except OSError as exc:
            raise RayBuildError(
                f"cannot join the Ray cluster at {self.address!r}: nothing answers there ({exc.strerror or exc}); "
                "start one with `ray start --head` and pass the address it prints, or use `--ray local`"
            ) from exc

    def _start_actors(self, wanted: int) -> list:
        """One actor per GPU of a node that has some, else per CPU; at most `wanted` in all."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        actor = _actor_class(self.ray)
        s = self.settings
        cache = str(s.cache_dir) if s.cache_dir else None
        actors = []
        for node in self.ray.nodes():
            if not node.get("Alive"):
                continue
            resources = node.get("Resources", {})
            gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 0))
            count, device, need = (gpus, "cuda", {"num_gpus": 1, "num_cpus": 0}) if gpus else (
                cpus, "cpu", {"num_cpus": 1})
            for _ in range(count):
                if len(actors) == wanted:
                    return actors
                placed = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
                actors.append(actor.options(scheduling_strategy=placed, **need).remote(
                    s.model, s.backend, cache, device))
        if not actors:
            raise RayBuildError(f"the Ray cluster at {self.address!r} has no node with a CPU or GPU to encode on")
        return actors

    def __call__(self, encoder: Encoder, chunks: list[Chunk], progress: Progress):
        """(chunk vectors, sentence vectors per chunk) of `chunks`, as index._embed returns them."""
        dimension = encoder.dimension
        matrix = np.zeros((len(chunks), dimension), dtype=np.float32)
        sentence_vectors: list[np.ndarray] = [np.zeros((0, dimension), dtype=np.float32)] * len(chunks)
        self.per_node, self.in_flight, self.lost, self.seconds = Counter(), Counter(), [], {}
        progress("embedding", 0, len(chunks))
        if not chunks:
            return matrix, sentence_vectors
        self._connect()
        units = work_units(encoder, chunks, self.unit_texts)
        payloads = [([chunks[j].text for j in unit],
                     [[(a - chunks[j].start, b - chunks[j].start) for a, b in chunks[j].sentences] for j in unit])
                    for unit in units]
        actors = self._start_actors(wanted=len(units))
        try:
            for n, (vectors, per_chunk) in self._run(actors, payloads, len(chunks), progress):
                matrix[units[n]] = vectors
                for j, sentences in zip(units[n], per_chunk, strict=True):
                    sentence_vectors[j] = sentences
        finally:
            for a in actors:
                self.ray.kill(a)
        progress("embedding", len(chunks), len(chunks))
        self.status(self.describe())
        return matrix, sentence_vectors

    def _run(self, actors: list, payloads: list, total: int, progress: Progress):
        """Yield (unit number, result) as units finish; requeue the units of encoders that die."""
        ray = self.ray
        pending = deque(range(len(payloads)))
        attempts: Counter[int] = Counter()
        starting = {actor.where.remote(): k for k, actor in enumerate(actors)}
        running: dict = {}  # ref -> (actor number, unit number)
        node_of: dict[int, str] = {}
        load: Counter[int] = Counter()
        done, last_status = 0, time.monotonic()
        began = up = time.perf_counter()

        def feed() -> None:
            for k in node_of:
                while load[k] < IN_FLIGHT and pending:
                    n = pending.popleft()
                    attempts[n] += 1
                    running[actors[k].encode.remote(*payloads[n])] = (k, n)
                    load[k] += 1
                    self.in_flight[node_of[k]] += 1

        while done < len(payloads):
            waiting = [*starting, *running]
            if not waiting:
                raise RayBuildError(
                    f"the Ray cluster at {self.address!r} lost every encoder "
                    f"({', '.join(self.lost) or 'none started'}) "
                    f"after {sum(self.per_node.values())} of {total} passages; nothing was published: "
                    "run `qa index` again once the cluster has nodes"
                )
            ready, _ = ray.wait(waiting, num_returns=1, timeout=STALL_SECONDS)
            if not ready:
                raise RayBuildError(
                    f"no encoder on the Ray cluster at {self.address!r} answered for {STALL_SECONDS:.0f} s "
                    f"({sum(self.per_node.values())} of {total} passages done); nothing was published"
                )
            ref = ready[0]
            if ref in starting:
                k = starting.pop(ref)
                if not node_of:
                    up = time.perf_counter()
                    self.seconds["starting"] = up - began
                try:
                    node_of[k] = ray.get(ref)
                except ray.exceptions.RayActorError as exc:
                    self.lost.append(f"an encoder that could not start ({_first_line(exc)})")
                feed()
                continue
            k, n = running.pop(ref)
            load[k] -= 1
            if k in node_of:
                self.in_flight[node_of[k]] -= 1
            try:
                result = ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.ObjectLostError) as exc:
                if k in node_of:
                    node = node_of.pop(k)
                    self.lost.append(node)
                    self.in_flight[node] -= load[k]  # its other units come back as errors too
                    log.warning("encoder on %s lost (%s); its work goes to the other nodes", node, _first_line(exc))
                    self.status(f"lost the encoder on {node}; its work goes to the other nodes")
                if attempts[n] >= MAX_ATTEMPTS:
                    raise RayBuildError(
                        f"a unit of {len(payloads[n][0])} passages killed {MAX_ATTEMPTS} encoders in a row "
                        f"(last: {_first_line(exc)}); nothing was published"
                    ) from exc
                pending.appendleft(n)
                feed()
                continue
            except ray.exceptions.RayTaskError as exc:  # the encoder raised: a bug or bad input, not a fault
                raise exc.as_instanceof_cause() from None
            yield n, result
            done += 1
            self.seconds["encoding"] = time.perf_counter() - up
            self.per_node[node_of.get(k, "?")] += len(payloads[n][0])
            progress("embedding", sum(self.per_node.values()), total)
            if time.monotonic() - last_status >= STATUS_EVERY:
                self.status(self.describe(total))
                last_status = time.monotonic()
            feed()

    def describe(self, total: int | None = None) -> str:
        """Passages embedded per node, e.g. `ray: 1200 passages: host-a/1f2e3d 640, host-b/9a8b7c 560`."""
        done = sum(self.per_node.values())
        nodes = ", ".join(f"{node} {n}" for node, n in sorted(self.per_node.items()))
        line = f"ray: {done}{'' if total is None else f' of {total}'} passages embedded: {nodes or 'none'}"
        return line + (f"; lost: {', '.join(self.lost)}" if self.lost else "")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
