"""The encoder: normalised vectors from the bundled model, and a clear error for a missing one."""

import numpy as np
import pytest

from qa.errors import ModelError
from qa.indexing.embedding import Encoder


def test_vectors_are_normalised_and_similar_texts_are_close(encoder):
    v = encoder.encode(["Trade tensions between Japan and the US", "US-Japan trade frictions", "Sourdough bread"])
    assert v.shape == (3, encoder.dimension) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.3
    assert encoder.max_seq_length == 256


def test_a_missing_model_gives_a_clear_error(tmp_path):
    with pytest.raises(ModelError) as info:
        Encoder(str(tmp_path / "no-such-model"))
    assert "no-such-model" in str(info.value) and "QA_MODEL" in str(info.value)
