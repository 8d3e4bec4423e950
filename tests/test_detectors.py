"""Pretrained detectors on decoded frames: NanoDet through OpenCV, feature similarity."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SHARED_DATA, requires_data

from vcodec.errors import InputError
from vcodec.frames import Gop
from vcodec.models.detectors import NanoDet, cosine_similarity

NANODET = SHARED_DATA / "weights" / "nanodet-m_coco_onnx" / "nanodet-m_320.onnx"


def test_cosine_similarity() -> None:
    a = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    b = np.array([[2.0, 0.0], [-1.0, -1.0], [1.0, 0.0]])
    np.testing.assert_allclose(cosine_similarity(a, b), [1.0, -1.0, 0.0])


def test_missing_weights_are_an_input_error(tmp_path) -> None:
    with pytest.raises(InputError, match="no such detector"):
        NanoDet(tmp_path / "nanodet.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"not a network")
    with pytest.raises(InputError, match="cannot read"):
        NanoDet(tmp_path / "bad.onnx")


@requires_data
def test_nanodet_features_tell_frames_apart() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat(rng.integers(0, 256, (1, 12, 16)), 16, 1).repeat(16, 2)[:, :180, :240]
    frames = np.concatenate([y, y, 255 - y]).astype(np.uint8)
    chroma = np.full((3, 90, 120), 128, np.uint8)
    features = NanoDet(NANODET).features(Gop(frames, chroma, chroma.copy()))
    assert features.shape[0] == 3 and features.shape[1] > 1000
    same, other = (
        cosine_similarity(features[:1], features[1:2]),
        cosine_similarity(features[:1], features[2:]),
    )
    assert same[0] == pytest.approx(1.0) and other[0] < same[0]
