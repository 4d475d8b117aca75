"""The fast (onnx) encoder backend gives the vectors of the torch one, exports itself once, and falls
back to torch for models it cannot reproduce."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import REPORT
from qa.indexing.embedding import Encoder, resolve_model_path
from qa.indexing.onnx_export import Unsupported, pipeline_of, weights_digest

MODEL_DIR = Path(resolve_model_path("sentence-transformers/all-MiniLM-L6-v2"))


@pytest.fixture(scope="module")
def torch_encoder() -> Encoder:
    """A second model instance, on torch: these tests are about comparing the two."""
    return Encoder(backend="torch")


def sample_texts() -> list[str]:
    report = REPORT.read_text(encoding="utf-8")
    paragraphs = [p for p in report.split("\n\n") if len(p) > 400][:6]
    return [
        "When did Japan first sell more to the US than it bought?",
        "TPP signing date",
        "Trade tensions were a consistent feature of the U.S.–Japan relationship.",
        "café naïve — “quoted” 日本の経済 ½ ©",
        "x",
        *[p[:1200] for p in paragraphs],  # chunk-sized texts of very different lengths, batched together
    ]


def test_onnx_is_the_default_and_its_vectors_equal_torch(encoder, torch_encoder):
    assert encoder.backend == "onnx" and torch_encoder.backend == "torch"
    assert encoder.dimension == torch_encoder.dimension
    assert encoder.max_seq_length == torch_encoder.max_seq_length
    texts = sample_texts()
    fast, reference = encoder.encode(texts), torch_encoder.encode(texts)
    assert np.min(np.sum(fast * reference, axis=1)) >= 0.9999
    for text in texts[:3]:
        assert encoder.encode_query(text) @ torch_encoder.encode_query(text) >= 0.9999


def test_sentence_vectors_pooled_in_the_chunk_pass_match_torch_and_find_the_sentence(encoder, torch_encoder):
    chunk = ("The yen weakened sharply in the spring. Shipbuilding orders doubled at Japanese yards. "
             "Rice harvests were poor in the north.")
    spans = [[(0, 39), (40, 86), (87, len(chunk))]]
    vectors, (sentences,) = encoder.encode_with_spans([chunk], spans)
    torch_vectors, (torch_sentences,) = torch_encoder.encode_with_spans([chunk], spans)
    assert vectors[0] @ encoder.encode([chunk])[0] >= 0.9999  # the chunk's own vector is unchanged
    assert np.min(np.sum(sentences * torch_sentences, axis=1)) >= 0.9999
    assert np.allclose(np.linalg.norm(sentences, axis=1), 1.0, atol=1e-5)
    query = encoder.encode_query("How did orders for ships change?")
    assert int(np.argmax(sentences @ query)) == 1


def test_indexed_text_is_never_truncated_but_a_long_question_is(encoder):
    long_text = "word " * 400
    with pytest.raises(ValueError, match="max_seq_length of 256"):
        encoder.encode(["fine", long_text])
    with pytest.raises(ValueError, match="max_seq_length"):
        encoder.encode_with_spans([long_text], [[(0, 10)]])
    assert np.isclose(np.linalg.norm(encoder.encode_query(long_text)), 1.0, atol=1e-5)


def test_the_export_is_made_on_first_use_then_reused(tmp_path, encoder):
    first = Encoder(cache_dir=tmp_path)
    (export,) = list(tmp_path.glob("*/model.onnx"))
    made = export.stat().st_mtime_ns
    second = Encoder(cache_dir=tmp_path)
    assert list(tmp_path.glob("*/model.onnx")) == [export] and export.stat().st_mtime_ns == made
    assert not list(tmp_path.glob("*/.model-*"))  # no partial export left behind
    texts = sample_texts()
    assert np.allclose(first.encode(texts), encoder.encode(texts), atol=1e-6)
    assert np.allclose(second.encode(texts), encoder.encode(texts), atol=1e-6)


def copy_of_model(folder, pooling: dict | None = None, config: dict | None = None):
    """The bundled model as symlinks, with its pooling or transformer config replaced."""
    for path in MODEL_DIR.rglob("*"):
        if path.is_file():
            target = folder / path.relative_to(MODEL_DIR)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(path, target)
    for name, override in (("1_Pooling/config.json", pooling), ("config.json", config)):
        if override is not None:
            data = json.loads((MODEL_DIR / name).read_text())
            (folder / name).unlink()
            (folder / name).write_text(json.dumps({**data, **override}))
    return folder


def test_changed_weights_or_config_get_their_own_export(tmp_path):
    same = weights_digest(copy_of_model(tmp_path / "same"))
    changed = weights_digest(copy_of_model(tmp_path / "changed", config={"layer_norm_eps": 1e-6}))
    assert same == weights_digest(MODEL_DIR) and changed != same


def test_pipelines_the_onnx_path_cannot_reproduce_are_refused(tmp_path):
    pipeline = pipeline_of(MODEL_DIR)
    assert (pipeline.pooling, pipeline.max_seq_length, pipeline.dimension) == ("mean", 256, 384)
    dense = copy_of_model(tmp_path / "dense")
    modules = json.loads((dense / "modules.json").read_text())
    (dense / "modules.json").unlink()
    dense_module = {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}
    (dense / "modules.json").write_text(json.dumps([*modules[:2], dense_module]))
    with pytest.raises(Unsupported, match="Dense"):
        pipeline_of(dense)


def test_an_unsupported_model_falls_back_to_torch_with_a_log_line(tmp_path, caplog):
    folder = copy_of_model(tmp_path / "max-pooled",
                           pooling={"pooling_mode_mean_tokens": False, "pooling_mode_max_tokens": True})
    with caplog.at_level(logging.WARNING, logger="qa.indexing.embedding"):
        fallback = Encoder(str(folder), backend="onnx", cache_dir=tmp_path / "cache")
    assert fallback.backend == "torch"
    assert "using the torch backend instead of onnx" in caplog.text and "max_tokens" in caplog.text
    assert not (tmp_path / "cache").exists()  # nothing was exported
    vectors, (sentences,) = fallback.encode_with_spans(["One sentence. Another one."], [[(0, 13), (14, 26)]])
    # With modules the span pooling cannot reproduce, each sentence is encoded on its own.
    assert np.allclose(sentences, fallback.encode(["One sentence.", "Another one."]), atol=1e-6)
