"""`qa serve --ray`: the app on Ray Serve, one deployment per shard (docs/scaling.md).

Each shard deployment (`Shard`, R replicas) opens its shard's published generation, follows its
CURRENT, and answers what answering/ asks of a generation for that shard alone. The app deployment is
the FastAPI app of `qa serve` (create_app) over a `RayAssistant`, whose generation is a
`RemoteGeneration`: it encodes the question once, asks every shard ONCE, all at once (`gather`: each
shard's candidates, signals, and the passages that could reach the answer, retrieval.candidates: each
with its sentences' cosines with the question instead of its sentence vectors, its sentence data as
stored text), and merges with the code ShardedGeneration uses in one process (retrieval.merged). BM25
is Elasticsearch's DFS query-then-fetch, its first phase done here: the app maps every shard's postings and sums the
question's term statistics itself (lexical.Statistics), then every shard scores with the sums, so the
answer is the unsharded one. Rarer questions (a numbered part, a question about a document, a
documents filter) and the library's pages ask the shards in more rounds (docs/scaling.md).

The app writes (uploads, deletes, reindex) to the shard folders itself, like `qa serve`; it reads the
shards' small manifest files itself too (documents, counts), so the shard folders must be readable
where the app runs and where each shard's replicas run. A shard that cannot answer is asked again
(Serve routes to another replica); if it still cannot, the request fails with ShardUnavailable (503)
naming it: never a partial answer.
"""

from __future__ import annotations

import json
import pickle
import time
from pathlib import Path

import numpy as np
from ray import serve

from qa.answering.retrieval import Candidates, candidates, merged
from qa.config import Settings, replica_bounds
from qa.errors import IndexMissing, ShardUnavailable
from qa.indexing import shards as sharding
from qa.indexing.generations import current_generation
from qa.indexing.lexical import Statistics, Words, terms, top
from qa.indexing.sentences import SentenceData
from qa.indexing.store import MANIFEST, Generation, Segment, StoredChunk, StoredDocument, live_documents
from qa.reading.metadata import Metadata
from qa.service import Assistant

APP = "alliance-qa"
SHARD_CALLS = frozenset({"dense", "chunks", "chunk_vectors", "chunk_ids_of", "documents", "document", "named_by",
                         "documents_stating", "metadata_of", "chunk_covering", "headings", "page_counts"})
ATTEMPTS = 3  # a shard's replica that died: Serve sends the next try to another replica (or its replacement)
RETRY_PAUSE = 0.5  # seconds between tries
CALL_TIMEOUT = 30.0  # seconds: a shard that takes longer is reported unavailable
METADATA_KEPT = 4096  # documents' metadata kept from the shards' answers (a generation's; bounded)
# Passages' sentence data kept from the shards' answers, by chunk id (a generation's; bounded): a shard
# sends it as stored text, parsed here when an answer first reads it (twenty passages, 1 ms a question).
SENTENCE_DATA_KEPT = 4096


class ShardReplica:
    """One shard's generation in one replica: the Serve deployment `Shard` (made by `shard_deployment`)."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)
        self.gen: Generation | None = None

    def generation(self) -> Generation:
        """The shard's published generation, reopened when its CURRENT moves (as Assistant.generation)."""
        path = current_generation(self.folder)
        if path is None:
            raise IndexMissing(f"no index in {self.folder}")
        if self.gen is None or self.gen.path != path:
            opened = {s.name: s for s in self.gen.segments} if self.gen is not None else None
            self.gen = Generation(path, opened)
        return self.gen

    def candidates(self, query: np.ndarray, question: str, n: int, allowed: np.ndarray | None,
                   statistics: Statistics, weights: dict[str, float], depth: int, alone: bool = False) -> Candidates:
        """This shard's candidates for a question, BM25 scored with every shard's `statistics`, with the
        passages that could reach the answer (their sentences' cosines with the question, not their
        vectors) and their documents' metadata: the one round a question needs (retrieval.candidates;
        `alone`: the only shard asked, which sends the pool's passages only)."""
        gen = self.generation()
        matched = Words(gen.words.parts, statistics).match(terms(question), weights)
        return candidates(gen, matched, query, n, allowed, depth, metadata=True, alone=alone)

    def call(self, method: str, *args):
        if method not in SHARD_CALLS:
            raise ValueError(f"a shard does not answer {method!r}")
        return getattr(self.generation(), method)(*args)


class RemoteGeneration(Generation):
    """Every shard's published generation, served by its Shard deployment: Generation's methods, each
    asked of the shards that hold what it needs and merged. Documents and counts come from the shards'
    manifest files, read here."""

    def __init__(self, index_dir: Path, paths: list[Path], handles: list, settings: Settings,  # noqa: D107
                 opened: list[Segment] | None = None) -> None:
        self.handles = handles
        # Every shard's postings, memory-mapped (FAISS and SQLite opened, never read here): the question's
        # BM25 statistics and IDF are summed here, not asked of the shards in a round of their own.
        self.local = sharding.open_generation(index_dir, paths, opened)
        self.path = index_dir / sharding.generation_key(paths)
        manifests = [json.loads((p / MANIFEST).read_text()) for p in paths]
        live = {d: about for p, m in zip(paths, manifests, strict=True) for d, about in
                live_documents(p.parent, m).items()}
        self.dimension = int(manifests[0]["dimension"])
        self.segments = []  # held by the replicas
        self.manifest = {**manifests[0], "documents": {d: live[d]["sha256"] for d in sorted(live)},
                         "indexed": {d: about["indexed"] for d, about in live.items()}, "shards": len(paths)}
        self.words = self.local.words
        self.document_count = len(live)
        self.chunk_count = sum(int(m.get("chunks", 0)) for m in manifests)
        self._metadata: dict[str, Metadata] = {}  # of documents whose passages the shards sent
        self._sentence_data: dict[int, SentenceData] = {}  # of passages the shards sent (SENTENCE_DATA_KEPT)
        self._listings: dict[tuple, list] = {}

    # -- asking the shards ----------------------------------------------------------------------
    def ask(self, calls: dict[int, tuple]) -> dict[int, object]:
        """{shard: (method, *args)} asked of every named shard at once; {shard: result}. A shard that fails
        is asked again; one that fails ATTEMPTS times raises ShardUnavailable naming it."""
        pending = {i: self._send(i, call) for i, call in calls.items()}
        out = {}
        for i, response in pending.items():
            for attempt in range(1, ATTEMPTS + 1):
                try:
                    out[i] = response.result(timeout_s=CALL_TIMEOUT)
                    break
                except Exception as exc:  # noqa: BLE001 - a dead replica, a lost node, a timeout: Ray's errors
                    if isinstance(exc, IndexMissing):
                        raise
                    if attempt == ATTEMPTS:
                        raise ShardUnavailable(
                            f"shard {i} of {len(self.handles)} (deployment shard-{i}) cannot answer right now "
                            f"({type(exc).__name__}); no partial answer was given: try again in a few seconds"
                        ) from exc
                    time.sleep(RETRY_PAUSE)
                    response = self._send(i, calls[i])
        return out

    def _send(self, shard: int, call: tuple):
        method, *args = call
        handle = self.handles[shard]
        if method == "candidates":
            return handle.candidates.remote(*args)
        return handle.call.remote(method, *args)

    def everywhere(self, method: str, *args) -> list:
        found = self.ask({i: (method, *args) for i in range(len(self.handles))})
        return [found[i] for i in range(len(self.handles))]

    def by_shard(self, ids: list[int]) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for i in ids:
            out.setdefault(sharding.shard_of_chunk(int(i)) if len(self.handles) > 1 else 0, []).append(int(i))
        return out

    def owner(self, doc_id: str) -> int:
        return sharding.shard_of(doc_id, len(self.handles))

    def gather(self, query: np.ndarray, question: str, n: int, allowed: np.ndarray | None,
               weights: dict[str, float], depth: int) -> Candidates:
        """The whole index's candidates (retrieval.gather): one call to every shard at once, with the
        question's BM25 statistics summed here beforehand (DFS query-then-fetch without its first round)."""
        statistics = self.words.part_statistics(sorted(set(terms(question))))
        asked = self._allowed(allowed)
        found = self.ask({i: ("candidates", query, question, n, mine, statistics, weights, depth, len(asked) == 1)
                          for i, mine in asked.items()})
        out = merged([pickle.loads(sent) for sent in found.values()], n)  # from our own Shard deployments
        if len(self._metadata) > METADATA_KEPT:
            self._metadata.clear()
        self._metadata.update(out.metadata)
        kept = self._sentence_data  # shared by the app's threads: each get and set is atomic
        if len(kept) > SENTENCE_DATA_KEPT:
            kept.clear()
        for i, passage in out.passages.items():
            if passage.data is not None:
                known = kept.setdefault(i, passage.data)
                if known is not passage.data:  # parsed already, if an answer read it
                    out.passages[i] = StoredChunk(passage.id, passage.chunk, passage.title, passage.sentence_vectors,
                                                  known, passage.cosines)
        return out

    # -- Generation's methods -----------------------------------------------------------------
    def close(self) -> None:
        pass

    def match(self, words: list[str], weights: dict[str, float]) -> None:
        """None: the shards match the question against their postings, in `gather`'s one round."""
        return None

    def chunk_ids_of(self, doc_ids: list[str]) -> np.ndarray:
        found = self.ask({i: ("chunk_ids_of", [d for d in doc_ids if self.owner(d) == i])
                          for i in set(map(self.owner, doc_ids))})
        parts = [np.asarray(v, dtype=np.int64) for v in found.values()]
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)

    def _allowed(self, allowed: np.ndarray | None) -> dict[int, np.ndarray | None]:
        if allowed is None:
            return dict.fromkeys(range(len(self.handles)))
        return {i: np.asarray(mine, dtype=np.int64) for i, mine in self.by_shard(list(allowed)).items()}

    def dense(self, query: np.ndarray, n: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        found = self.ask({i: ("dense", query, n, mine) for i, mine in self._allowed(allowed).items()})
        return _merged(found.values(), n)

    def lexical(self, question: str, n: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        return self.words.search(question, n, allowed)  # the postings are mapped here (retrieve asks `gather`)

    def chunk_vectors(self, ids: list[int]) -> np.ndarray:
        if not ids:
            return np.zeros((0, self.dimension))
        by_shard = self.by_shard(ids)
        found = self.ask({i: ("chunk_vectors", mine) for i, mine in by_shard.items()})
        rows = {c: v for i, mine in by_shard.items() for c, v in zip(mine, found[i], strict=True)}
        return np.vstack([rows[int(i)] for i in ids])

    def chunks(self, ids: list[int]) -> dict[int, StoredChunk]:
        out: dict[int, StoredChunk] = {}
        for found in self.ask({i: ("chunks", mine) for i, mine in self.by_shard(ids).items()}).values():
            out.update(found)
        return out

    def _listing(self, method: str, *args):
        """A whole-index listing of every shard, kept until a shard publishes (a new RemoteGeneration)."""
        key = (method, *args)
        if key not in self._listings:
            self._listings[key] = self.everywhere(method, *args)
        return self._listings[key]

    def documents(self) -> list[StoredDocument]:
        return sorted((d for part in self._listing("documents") for d in part), key=lambda d: d.doc_id)

    def document(self, doc_id: str) -> StoredDocument | None:
        return self.ask({self.owner(doc_id): ("document", doc_id)})[self.owner(doc_id)]

    def named_by(self, terms: frozenset[str]) -> list[tuple[str, str]]:
        return sorted(t for part in self.everywhere("named_by", terms) for t in part)

    def documents_stating(self, field: str) -> list[str]:
        return sorted(d for part in self._listing("documents_stating", field) for d in part)

    def metadata_of(self, doc_ids: list[str]) -> dict[str, Metadata]:
        kept = self._metadata  # sent with the passages; another request's gather may clear it meanwhile
        out = {d: m for d in doc_ids if (m := kept.get(d)) is not None}
        doc_ids = [d for d in doc_ids if d not in out]
        wanted = {i: [d for d in doc_ids if self.owner(d) == i] for i in set(map(self.owner, doc_ids))}
        for found in self.ask({i: ("metadata_of", mine) for i, mine in wanted.items()}).values():
            out.update(found)
        return out

    def chunk_covering(self, doc_id: str, offset: int) -> StoredChunk | None:
        return self.ask({self.owner(doc_id): ("chunk_covering", doc_id, offset)})[self.owner(doc_id)]

    def headings(self, limit: int) -> list[tuple[str, str, list[str]]]:
        return sorted(h for part in self._listing("headings", limit) for h in part)[:limit]

    def page_counts(self) -> dict[str, int]:
        return {d: n for part in self._listing("page_counts") for d, n in part.items()}

    def segment_sizes(self) -> list[tuple[str, int, int]]:
        return []


def _merged(found, n: int) -> list[tuple[int, float]]:
    """The n best of every shard's n best, by score then id (as search_parts and Words.search cut)."""
    hits = [h for part in found for h in part]
    if not hits:
        return []
    return top(np.array([i for i, _ in hits], dtype=np.int64), np.array([s for _, s in hits]), n)


class RayAssistant(Assistant):
    """The Assistant of the app on Ray Serve: writes as any Assistant, reads through the shard deployments."""

    def __init__(self, settings: Settings, handles: list) -> None:
        super().__init__(settings)
        self.handles = handles

    @property
    def answers_without_waiting(self) -> bool:
        """Never: a question waits on the shard deployments, so the server asks it in a worker thread."""
        return False

    def generation(self) -> Generation:
        paths = sharding.published(self.settings.index_dir)
        if paths is None:
            raise IndexMissing(f"no index in {self.settings.index_dir}: run `qa index` to build one")
        key = sharding.generation_key(paths)
        if key != self._gen_name:
            with self._gen_lock:
                if key != self._gen_name:
                    if len(paths) != len(self.handles):
                        raise ShardUnavailable(f"the index now has {len(paths)} shards, the deployments serve "
                                               f"{len(self.handles)}: restart `qa serve --ray`")
                    from qa.indexing.build import check_compatible

                    opened = self._gen.local.segments if isinstance(self._gen, RemoteGeneration) else None
                    gen = RemoteGeneration(self.settings.index_dir, paths, self.handles, self.settings, opened)
                    check_compatible(gen.manifest, self.settings, self.encoder)
                    self._gen, self._gen_name = gen, key
        assert self._gen is not None
        return self._gen


@serve.deployment(ray_actor_options={"num_cpus": 0})
class Shard(ShardReplica):
    """A shard's replica on Ray Serve (its methods are ShardReplica's)."""

    def candidates(self, *args) -> bytes:  # type: ignore[override]
        """ShardReplica's candidates, pickled here: Ray carries one bytes object back to the app in
        about half the time it takes to carry the Candidates as they are (docs/benchmarks.md)."""
        return pickle.dumps(super().candidates(*args), protocol=pickle.HIGHEST_PROTOCOL)


# The app writes the corpus, the uploads and the trash: it runs on the head node, beside them.
@serve.deployment(ray_actor_options={"num_cpus": 0, "resources": {"node:__internal_head__": 0.001}})
@serve.ingress()
class App:
    """The FastAPI app of `qa serve` (create_app), over a RayAssistant asking the shard deployments."""

    def __init__(self, settings: dict, *shards) -> None:
        self.settings = Settings(**settings).resolved()
        self.shards = list(shards)

    def __serve_build_asgi_app__(self):
        from qa.serving.api import create_app

        return create_app(assistant=RayAssistant(self.settings, self.shards))


def replica_options(replicas: int | tuple[int, int]) -> dict:
    """A shard deployment's Serve options for R replicas, or (MIN, MAX): Serve's autoscaling between them
    (it adds a replica when a replica has more than its target of requests in flight)."""
    low, high = (replicas, replicas) if isinstance(replicas, int) else replicas
    if low == high:
        return {"num_replicas": low}
    return {"autoscaling_config": {"min_replicas": low, "max_replicas": high, "initial_replicas": low}}


def application(settings: Settings, replicas: int | tuple[int, int] = 1):
    """The Serve application: one Shard deployment per shard folder (`replicas` each, or autoscaled
    between (MIN, MAX)) and the App."""
    folders = sharding.folders(settings.index_dir)
    shards = [Shard.options(name=f"shard-{i}", **replica_options(replicas)).bind(str(folder))
              for i, folder in enumerate(folders)]
    return App.options(name="app").bind(settings.model_dump(mode="json"), *shards)


def run(settings: Settings, address: str, host: str, port: int, replicas: int | tuple[int, int]) -> None:
    """Start (or join) Ray, start Serve's HTTP proxy at host:port, deploy, and serve until interrupted."""
    import ray

    ray.init(address=None if address == "local" else address, logging_level="WARNING")
    serve.start(http_options={"host": host, "port": port})
    serve.run(application(settings, replicas), name=APP, route_prefix="/", blocking=True)


def from_env(args: dict | None = None):
    """An application builder for Serve's config (KubeRay RayService's `import_path`):
    settings from QA_* variables, replicas ("R" or "MIN-MAX") from `args["replicas"]` or QA_REPLICAS
    (default 1)."""
    import os

    replicas = replica_bounds(str((args or {}).get("replicas", os.environ.get("QA_REPLICAS", "1"))))
    return application(Settings().resolved(), replicas)
