"""Task-driven training (seed 003): NanoDet's FPN in torch, the colour conversion before it, the
feature loss in `train_post`, and streams naming the task-trained post-processing network."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA, requires_data
from test_mask_stream import clip
from typer.testing import CliRunner

from vcodec.bitstream.container import VcxReader
from vcodec.cli.main import app
from vcodec.errors import InputError, MalformedError
from vcodec.frames import Gop
from vcodec.models.detectors import NANODET_MEAN, NANODET_STD, bgr_frame
from vcodec.models.postprocess import PostNet
from vcodec.pipeline.config import EncodeConfig
from vcodec.pipeline.decoder import VcxDecoder
from vcodec.pipeline.encoder import encode_gops
from vcodec.stages.post import POST_MODEL, POST_MODELS, POST_STRENGTHS, post_model
from vcodec.train.post import PostExamples, PostTrainConfig, train_post, weighted_mse
from vcodec.train.task import FeatureLoss, NanoDetFeatures, yuv_to_bgr

NANODET = SHARED_DATA / "weights" / "nanodet-m_coco_onnx" / "nanodet-m_416.onnx"


def test_yuv_to_bgr_matches_the_benchs_conversion() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(16, 236, (1, 32, 48), dtype=np.uint8)
    u, v = (rng.integers(16, 241, (1, 16, 24), dtype=np.uint8) for _ in range(2))
    ours = yuv_to_bgr(*(torch.from_numpy(p).double() for p in (y, u, v)))[0]
    theirs = bgr_frame(Gop(y, u, v), 0).astype(float)  # what the detectors are given
    assert np.abs(ours.permute(1, 2, 0).numpy() - theirs).mean() < 2.0


def tiny_examples(n: int = 4, s: int = 32) -> PostExamples:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, s, s), dtype=np.uint8)
    xc = rng.integers(0, 256, (n, s // 2, s // 2), dtype=np.uint8)
    three = lambda a: np.repeat(a[:, None], 3, 1)  # noqa: E731
    return PostExamples(three(x // 8 * 8), three(xc), three(xc), x, xc, xc,
                        np.full(n, 32), np.ones(n, np.int64))  # fmt: skip


def test_train_post_adds_the_task_loss() -> None:
    """With a task loss that only a brighter luma lowers, the trained network brightens."""
    ex = tiny_examples()
    calls = []

    def brighter(out: tuple, target: tuple) -> torch.Tensor:
        calls.append(1)
        return -out[0].mean()

    def mean_gain(net: PostNet) -> float:
        planes = [torch.from_numpy(getattr(ex, k)).float() for k in ("py", "pu", "pv")]
        cond = torch.tensor([[32 / 51, 0.0]]).expand(len(ex), -1)
        with torch.no_grad():
            return float(net(*planes, cond)[0].mean() - planes[0][:, 1].mean())

    config = PostTrainConfig(steps=20, batch=2, lr=1e-2)
    plain = train_post(ex, config)
    tasked = train_post(ex, PostTrainConfig(steps=20, batch=2, lr=1e-2, task_weight=100.0),
                        task_loss=brighter)  # fmt: skip
    assert len(calls) == 20
    assert mean_gain(tasked) > mean_gain(plain) + 1.0


def test_detector_errors_are_one_line(tmp_path) -> None:
    with pytest.raises(InputError, match="no such detector"):
        NanoDetFeatures(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    with pytest.raises(InputError, match="not an ONNX file"):
        NanoDetFeatures(tmp_path / "junk.onnx")
    r = CliRunner().invoke(app, ["train", "post", "--task-detector", "yolo:x.pt", "--steps", "1",
                                 "--out", str(tmp_path / "p.pt")])  # fmt: skip
    assert r.exit_code == 3 and "onnx-nanodet:PATH" in r.output


@requires_data
def test_nanodet_port_matches_opencv() -> None:
    """The whole graph, heads included, against OpenCV's run of the same file."""
    import cv2

    image = np.random.default_rng(0).integers(0, 256, (1, 3, 416, 416)).astype(np.float32)
    ours = NanoDetFeatures(NANODET)
    with torch.no_grad():
        got = ours(torch.from_numpy(image), whole=True)
    net = cv2.dnn.readNet(str(NANODET))
    shape = (1, 3, 1, 1)
    mean, std = (np.array(v, np.float32).reshape(shape) for v in (NANODET_MEAN, NANODET_STD))
    net.setInput((image - mean) / std)
    names = list(net.getUnconnectedOutLayersNames())
    ref = dict(zip(names, net.forward(names), strict=True))
    for g, name in zip(got, ours.graph_outputs, strict=True):
        assert np.abs(g.numpy().ravel() - np.asarray(ref[name]).ravel()).max() < 1e-3
    feats = NanoDetFeatures(NANODET)(torch.rand(2, 3, 64, 96) * 255)  # any batch, any size
    assert [tuple(f.shape) for f in feats] == [(2, 96, 8, 12), (2, 96, 4, 6), (2, 96, 2, 3)]


@requires_data
def test_feature_loss_is_zero_on_the_original_and_has_gradients() -> None:
    loss = FeatureLoss(NANODET)
    rng = np.random.default_rng(1)
    target = tuple(
        torch.from_numpy(rng.integers(0, 256, (2, s, s)).astype(np.float32)) for s in (64, 32, 32)
    )
    assert loss(target, target).item() < 1e-6
    out = tuple(t.clone().requires_grad_() for t in target)
    blurred = (out[0].roll(1, -1), out[1], out[2])
    value = loss(blurred, target)
    value.backward()
    assert value.item() > 0.01 and out[0].grad.abs().sum() > 0
    assert not any(p.requires_grad for p in loss.parameters())  # the detector stays frozen
    assert weighted_mse(target, target).item() == 0


@pytest.mark.parametrize("name", ["post-task-v1", "post-v2"])
def test_streams_name_the_post_model_they_were_encoded_with(monkeypatch, name: str) -> None:
    monkeypatch.setattr("vcodec.stages.post.best_strength", lambda *a: len(POST_STRENGTHS) - 1)
    info, gops = clip(64, 48, 16)
    buf = io.BytesIO()
    config = EncodeConfig(qp=40, masks=False, post=True, temporal=False, wiener=False,
                          post_model=name, device="cpu")  # fmt: skip
    encode_gops(gops, info, buf, config)
    models = VcxReader(io.BytesIO(buf.getvalue())).header.models
    assert post_model(models) == name and POST_MODEL not in models
    buf.seek(0)
    assert sum(g.n_frames for g in VcxDecoder(buf, "cpu").gops()) == 16
    with pytest.raises(InputError, match="--post-model"):
        EncodeConfig(post_model="post-v9").validate()
    with pytest.raises(MalformedError, match="two post-processing"):
        post_model(dict.fromkeys(POST_MODELS, "00000000"))
