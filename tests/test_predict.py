"""Temporal scaling: which frames the base layer carries, the frame predictor, static GOPs
dropping frames end to end, and moving ones not."""

from __future__ import annotations

import io
import zlib
from fractions import Fraction

import cv2
import numpy as np
import pytest
import torch
from test_mask_stream import clip
from test_postprocess import busy_net, random_gop
from typer.testing import CliRunner

from vcodec.bitstream.container import BaseData, Cut, End, VcxReader, VcxWriter, encode_header
from vcodec.cli.main import app
from vcodec.frames import Gop, VideoInfo
from vcodec.metrics import psnr
from vcodec.models.postprocess import PostNet
from vcodec.pipeline.config import EncodeConfig
from vcodec.pipeline.decoder import VcxDecoder
from vcodec.pipeline.encoder import encode_gops
from vcodec.pipeline.side_info import TEMPORAL_MODES, GopParams, unpack_side_info
from vcodec.stages.post import PostProcessor
from vcodec.stages.temporal import (
    PREDICT_MODEL,
    FramePredictor,
    between,
    coded_frames,
    coded_part,
    expected_base_error,
    midpoints,
    prediction_error,
    quietest_base_error,
)


def test_coded_frames() -> None:
    assert coded_frames(16, 2) == [0, 2, 4, 6, 8, 10, 12, 14, 15]
    assert coded_frames(5, 2) == [0, 2, 4] and coded_frames(4, 2) == [0, 2, 3]
    assert coded_frames(2, 2) == [0, 1] and coded_frames(1, 2) == [0]
    assert coded_frames(3, 1) == [0, 1, 2]


def test_side_info_with_a_temporal_step() -> None:
    assert GopParams(scale=1, post=0, step=2).pack().hex() == "0cccccc0"
    for post in (None, 3):
        for step in (1, 2):
            params = GopParams(scale=2, post=post, step=step)
            back = GopParams.unpack(params.pack(), post=post is not None, predict=True)
            assert back == params and back.temporal_step == step
    assert GopParams(scale=1).temporal_step == 1


def test_temporal_modes() -> None:
    """From format 8 the temporal symbol is one of five modes: step 1, step 2 (mean), step 2
    along the flow, step 4, step 8; format 7 had the first three. Golden words of both."""
    assert GopParams(scale=1, step=2, flow=True).pack().hex() == "333333"
    assert GopParams(scale=1, step=8, flow=False).pack().hex() == "666666"
    assert GopParams(scale=1, step=1, flow=False).pack().hex() == ""
    for step, flow in TEMPORAL_MODES:
        params = GopParams(scale=2, post=1, step=step, flow=flow)
        assert GopParams.unpack(params.pack(), post=True, flow=True) == params
    old = GopParams.unpack(bytes.fromhex("555555"), flow=True, version=7)  # a v7 stream's
    assert (old.step, old.flow) == (2, True)


def test_long_steps_interpolate_linearly() -> None:
    """Step k carries frames t mod k = 0 and the last; a dropped frame is the linear
    interpolation of the coded frames around it, rounded half up (at step 2, their mean)."""
    assert coded_frames(16, 4) == [0, 4, 8, 12, 15] and coded_frames(16, 8) == [0, 8, 15]
    assert coded_frames(5, 8) == [0, 4] and coded_frames(9, 8) == [0, 8]
    a, b = np.full((2, 2), 10, np.uint8), np.full((2, 2), 21, np.uint8)
    assert [int(between(a, b, k, 4)[0, 0]) for k in range(5)] == [10, 13, 16, 18, 21]
    x, y = np.arange(256, dtype=np.uint8), np.arange(256, dtype=np.uint8)[::-1].copy()
    assert np.array_equal(between(x, y, 1, 2), ((x.astype(int) + y + 1) // 2).astype(np.uint8))
    frames = np.arange(16, dtype=np.uint8)[:, None, None] * 10 + np.zeros((1, 4, 4), np.uint8)
    chroma = frames[:, :2, :2].copy()
    gop = Gop(frames.copy(), chroma, chroma.copy())
    for step in (2, 4, 8):
        still = midpoints(gop, step)
        assert np.array_equal(still.y, gop.y)  # a linear ramp is its own interpolation
        assert prediction_error(gop, step) == 0.0


def _panning(frames: int = 96, width: int = 128, height: int = 96, speed: int = 3):
    """A textured scene panning ``speed`` pixels a frame: no frame is its neighbours' mean."""
    rng = np.random.default_rng(7)
    big = rng.integers(30, 220, (height // 4, (width + speed * frames) // 4 + 1))
    big = cv2.GaussianBlur(big.repeat(4, 0).repeat(4, 1).astype(np.float32), (5, 5), 1.5)
    ys = np.stack([big[:height, speed * t : speed * t + width] for t in range(frames)])
    y = ys.round().astype(np.uint8)
    u = np.ascontiguousarray(y[:, ::2, ::2] // 2 + 60)
    gops = [
        Gop(y[s : s + 16], u[s : s + 16], u[s : s + 16].copy(), s) for s in range(0, frames, 16)
    ]
    return VideoInfo(width, height, Fraction(25)), gops


def test_flow_midpoint_follows_a_pan() -> None:
    _, gops = _panning()
    gop = gops[0]
    assert prediction_error(gop, 2, flow=True) < prediction_error(gop, 2) / 20
    inside = np.zeros((gop.height, gop.width), bool)
    inside[8:-8, 8:-8] = True  # (the edges lose what enters or leaves the frame)
    assert prediction_error(gop, 2, inside, flow=True) < 3


def test_a_panning_scene_drops_frames_along_the_flow() -> None:
    """At --scale 1: the parameter module picks s = 2 for this 128x96 scene, and x265 on its
    64x64 base frames gives other bits from run to run (+-1 %, even with one thread; not at
    176x144 and up), and with them other temporal decisions (CI once saw 2.4 dB lost)."""
    info, gops = _panning()
    data = _encode(info, gops, qp=40, scale="1")
    reader = VcxReader(io.BytesIO(data))
    params = [
        unpack_side_info(c.side_info, reader.header.models, reader.version)
        for c in VcxReader(io.BytesIO(data))
        if type(c).__name__ == "GopChunk"
    ]
    # (the first three GOPs are decided before any is decoded: x265's look-ahead)
    assert all(p.step == 2 and p.flow for p in params[3:])
    plain = _encode(info, gops, qp=40, flow=False, scale="1")
    ref = np.concatenate([g.y for g in gops])
    quality = [
        psnr(ref, np.concatenate([g.y for g in VcxDecoder(io.BytesIO(d), "cpu").gops()])).mean()
        for d in (data, plain)
    ]
    # fewer bytes, at about the quality of coding every frame (x265 at qp 40 on noise: ~27 dB)
    assert len(data) < len(plain) and quality[0] > quality[1] - 1.5


def test_midpoints_and_the_predictor_keep_coded_frames() -> None:
    gop = random_gop(6, 20, 18)
    mid = midpoints(gop, 2)
    expected = (gop.y[0].astype(int) + gop.y[2] + 1) // 2
    np.testing.assert_array_equal(mid.y[1], expected)
    np.testing.assert_array_equal(mid.y[[0, 2, 4, 5]], gop.y[[0, 2, 4, 5]])
    assert prediction_error(gop, 1) == 0.0 and prediction_error(gop, 2) > 0
    # the untrained network is the identity: the dropped frames are the midpoints
    plain = FramePredictor(torch.device("cpu"), net=PostNet())
    out = plain(coded_part(gop, 2), 6, 2, 37, 1)
    np.testing.assert_array_equal(out.y, mid.y)
    busy = FramePredictor(torch.device("cpu"), net=busy_net())(coded_part(gop, 2), 6, 2, 37, 1)
    np.testing.assert_array_equal(busy.y[[0, 2, 4, 5]], gop.y[[0, 2, 4, 5]])
    assert not np.array_equal(busy.y[1], mid.y[1])
    assert busy.start == gop.start
    # only the dropped frames go through the network, each as it would in a whole pass
    whole = PostProcessor(torch.device("cpu"), net=busy_net())(mid, 37, 1)
    np.testing.assert_array_equal(busy.y[[1, 3]], whole.y[[1, 3]])


def _still(frames: int = 48, width: int = 96, height: int = 64):
    """A still, textured scene: every frame is its neighbours' mean."""
    rng = np.random.default_rng(5)
    y0 = rng.integers(40, 200, (height // 8, width // 8)).repeat(8, 0).repeat(8, 1)
    y0 = y0 + rng.integers(-3, 4, y0.shape)
    gops = []
    for start in range(0, frames, 16):
        n = min(16, frames - start)
        y = np.repeat(y0[None], n, axis=0).astype(np.uint8)
        u = np.full((n, height // 2, width // 2), 120, np.uint8)
        gops.append(Gop(y, u, u.copy(), start))
    return VideoInfo(width, height, Fraction(25)), gops


def _encode(info, gops, **settings) -> bytes:
    buf = io.BytesIO()
    settings = {"qp": 32, "base": "x265", "masks": False, "device": "cpu", "flow": True} | settings
    encode_gops(gops, info, buf, EncodeConfig(**settings))
    return buf.getvalue()


@pytest.mark.parametrize("predict_net", [False, True])
def test_a_static_scene_drops_frames_and_decodes_whole(predict_net) -> None:
    """A still scene drops 7 frames in 8 (step 8, their coded neighbours' interpolation), or
    every other with predict-v1 (its refinement is for one-frame gaps; named in the header);
    every hybrid GOP codes its step."""
    info, gops = _still()
    data = _encode(info, gops, predict_net=predict_net)
    reader = VcxReader(io.BytesIO(data))
    assert (PREDICT_MODEL in reader.header.models) == predict_net
    steps = [
        unpack_side_info(c.side_info, reader.header.models, reader.version).temporal_step
        for c in VcxReader(io.BytesIO(data))
        if type(c).__name__ == "GopChunk"
    ]
    assert steps == ([2, 2, 2] if predict_net else [8, 8, 8])
    decoded = list(VcxDecoder(io.BytesIO(data), "cpu").gops())
    assert [g.n_frames for g in decoded] == [16, 16, 16]
    ref, out = np.concatenate([g.y for g in gops]), np.concatenate([g.y for g in decoded])
    assert psnr(ref, out).min() > 35
    without = _encode(info, gops, temporal=False)
    assert VcxReader(io.BytesIO(without)).header.models.keys() <= {"post-v1"}
    base = [sum(len(c.data) for c in VcxReader(io.BytesIO(d)) if isinstance(c, BaseData))
            for d in (data, without)]  # fmt: skip
    assert base[0] < base[1]


def test_a_version_7_stream_decodes_as_before() -> None:
    """Version 8 only added temporal modes (and 9 CUT chunks): a stream whose GOPs all keep
    every frame (mode 0 codes no bytes under either table), without its CUT, reads alike under
    the version byte 7."""
    info, gops = clip(64, 48, 40)
    original = _encode(info, gops, post=False)
    reader = VcxReader(io.BytesIO(original))
    uncut = io.BytesIO()
    writer = VcxWriter(uncut, reader.header)
    for chunk in reader:
        if not isinstance(chunk, (Cut, End)):
            writer.write(chunk)
    writer.close()
    data = bytearray(uncut.getvalue())
    head = len(encode_header(VcxReader(io.BytesIO(original)).header)) - 4
    data[3] = 7
    data[head : head + 4] = zlib.crc32(bytes(data[:head])).to_bytes(4, "little")
    assert VcxReader(io.BytesIO(bytes(data))).version == 7
    old, new = (list(VcxDecoder(io.BytesIO(bytes(d)), "cpu").gops()) for d in (data, original))
    assert [g.n_frames for g in old] == [16, 16, 8]
    for a, b in zip(old, new, strict=True):
        assert all(np.array_equal(p, q) for p, q in zip(a.planes(), b.planes(), strict=True))


def test_moving_content_keeps_every_frame_and_no_trace_of_the_stage() -> None:
    info, gops = clip(64, 48, 40)
    data = _encode(info, gops, post=False)
    assert VcxReader(io.BytesIO(data)).header.models == {}
    assert [g.n_frames for g in VcxDecoder(io.BytesIO(data), "cpu").gops()] == [16, 16, 8]


def test_the_guess_of_the_base_layer_error_follows_content_qp_and_scale() -> None:
    """Before it has decoded a GOP the encoder guesses the base layer's error from the content:
    more texture, a higher QP or a smaller scale, more error; a flat GOP the least x265 reached
    on a static scene."""
    rng = np.random.default_rng(3)
    y = np.broadcast_to(rng.integers(0, 256, (1, 64, 96), dtype=np.uint8), (16, 64, 96))
    textured = Gop(
        y.copy(), np.full((16, 32, 48), 128, np.uint8), np.full((16, 32, 48), 128, np.uint8)
    )
    flat = Gop(np.full_like(textured.y, 90), textured.u, textured.v)
    guess = expected_base_error
    assert guess(flat, 32, 1) == quietest_base_error(32) < guess(textured, 32, 1)
    assert guess(textured, 27, 1) < guess(textured, 32, 1) < guess(textured, 37, 1)
    assert guess(textured, 32, 1) < guess(textured, 32, 2)


def test_train_predict_command(tmp_path, clip_factory) -> None:
    (tmp_path / "clips").mkdir()
    clip_factory("clips/a.y4m", 64, 64, 6)
    cache, out = tmp_path / "post.npz", tmp_path / "predict.pt"
    args = ["train", "predict", "--data", str(tmp_path / "clips"), "--cache", str(cache)]
    args += ["--frames", "6", "--steps", "2", "--device", "cpu", "--out", str(out)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "sha256" in r.output and cache.exists()
    PostNet().load_state_dict(torch.load(out, weights_only=True))


def test_base_auto_takes_av1_still_or_moving_and_x265_where_settings_were_measured() -> None:
    """--base auto (the default) is SVT-AV1, on a still scene too (with one keyframe per
    segment it beat x265 with temporal scaling on every fixed camera measured), with the stages
    that do not pay there off; --roi, --task and --mode pure take x265. The header names the
    base taken, never auto."""
    for scene in (_still, _panning):
        info, gops = scene()
        data = _encode(info, gops, base="auto", flow=False)
        assert VcxReader(io.BytesIO(data)).header.base_codec == "av1"
        decoded = list(VcxDecoder(io.BytesIO(data), "cpu").gops())
        assert sum(g.n_frames for g in decoded) == sum(g.n_frames for g in gops)
    auto = EncodeConfig().validate()
    assert auto.base == "av1" and auto.temporal is False and auto.wiener is False
    for fields in ({"roi": "motion"}, {"task": "detect"}, {"mode": "pure"}):
        assert EncodeConfig(**fields).validate().base == "x265"
