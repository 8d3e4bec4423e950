"""The post-processing stage: the network's geometry, stripes, streams that name it, training."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from test_mask_stream import clip, run
from typer.testing import CliRunner

from vcodec.bitstream.container import VcxReader
from vcodec.cli.main import app
from vcodec.errors import InputError
from vcodec.frames import Gop
from vcodec.metrics import psnr
from vcodec.models.postprocess import LitePostNet, PostNet, multiply_adds
from vcodec.pipeline.config import EncodeConfig
from vcodec.pipeline.decoder import VcxDecoder
from vcodec.pipeline.encoder import encode_gops
from vcodec.stages import post as postprocess
from vcodec.stages.post import POST_MODEL, POST_STRENGTHS, PostProcessor, best_strength, blend
from vcodec.train.common import Checkpoint
from vcodec.train.post import PostExamples, PostTrainConfig, train_post


def random_gop(frames: int, height: int, width: int) -> Gop:
    rng = np.random.default_rng(7)
    ch, cw = (height + 1) // 2, (width + 1) // 2
    y = rng.integers(0, 256, (frames, height, width), dtype=np.uint8)
    u, v = (rng.integers(0, 256, (frames, ch, cw), dtype=np.uint8) for _ in range(2))
    return Gop(y, u, v, 32)


def busy_net() -> PostNet:
    """A randomly initialised network whose output depends on its whole receptive field."""
    torch.manual_seed(0)
    net = PostNet()
    torch.nn.init.normal_(net.tail.weight, std=0.05)
    return net.eval()


def test_untrained_network_is_the_identity() -> None:
    gop = random_gop(3, 37, 23)
    out = PostProcessor(torch.device("cpu"), net=PostNet())(gop, 30, 1)
    for a, b in zip(gop.planes(), out.planes(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert out.start == gop.start


def test_post_v2_fits_the_decode_budget() -> None:
    """DESIGN §9: ~500 multiply-adds a luma pixel; PostNet's interface; the identity untrained."""
    assert multiply_adds(LitePostNet()) <= 500 < multiply_adds(PostNet())
    gop = random_gop(3, 37, 23)
    out = PostProcessor(torch.device("cpu"), net=LitePostNet())(gop, 30, 2)
    for a, b in zip(gop.planes(), out.planes(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_stripes_match_the_whole_frame(monkeypatch) -> None:
    gop = random_gop(5, 150, 70)  # odd chroma, not a multiple of 4, two stripes and a rest
    post = PostProcessor(torch.device("cpu"), torch.float64, net=busy_net())
    whole = post(gop, 37, 2)
    monkeypatch.setattr(postprocess, "TILE_ROWS", 64)
    monkeypatch.setattr(postprocess, "FRAMES_PER_PASS", 2)
    striped = post(gop, 37, 2)
    for a, b in zip(whole.planes(), striped.planes(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(whole.y, gop.y)


def test_shipped_post_network_runs_where_it_helps(monkeypatch) -> None:
    """The encoder sends post-v1 when some GOP takes part of its correction; with none, the
    stream is laid out as a --no-post stream."""
    monkeypatch.setattr("vcodec.stages.post.best_strength", lambda *a: len(POST_STRENGTHS) - 1)
    data, with_post = run(EncodeConfig(qp=37, masks=False, post=True, device="cpu"))
    reader = VcxReader(io.BytesIO(data))
    assert reader.header.models.keys() == {POST_MODEL}
    assert 25 < with_post < 50
    monkeypatch.setattr("vcodec.stages.post.best_strength", lambda *a: 0)
    data, unused = run(EncodeConfig(qp=37, masks=False, post=True, device="cpu"))
    _, without = run(EncodeConfig(qp=37, masks=False, post=False, device="cpu"))
    assert VcxReader(io.BytesIO(data)).header.models == {}
    # (close, not equal: x265 is not bit-reproducible on tiny frames with frame threads)
    assert abs(unused - without) < 0.5 and abs(with_post - without) < 3


def test_unused_masks_leave_no_trace(monkeypatch) -> None:
    """With every GOP's samples switched off, the stream is laid out as the --no-masks stream:
    the same header and chunk sequence. (Not the same bytes: x265 is not bit-reproducible on
    tiny frames with frame threads.)"""
    monkeypatch.setattr("vcodec.stages.masks.rd_lambda", lambda qp: 1e12)
    info, gops = clip()
    layouts = []
    for masks in (True, False):
        buf = io.BytesIO()
        encode_gops(gops, info, buf, EncodeConfig(qp=32, masks=masks, device="cpu"))
        reader = VcxReader(io.BytesIO(buf.getvalue()))
        header = buf.getvalue()[: reader.offset]
        layouts.append((header, [type(c).__name__ for c in reader]))
    assert layouts[0] == layouts[1]
    assert "Samples" not in layouts[0][1]


def test_pure_streams_have_no_post_processing() -> None:
    data, _ = run(EncodeConfig(qp=32, mode="pure", device="cpu"), frames=4)
    assert POST_MODEL not in VcxReader(io.BytesIO(data)).header.models


def test_train_post_command(tmp_path, clip_factory) -> None:
    (tmp_path / "clips").mkdir()
    clip_factory("clips/a.y4m", 64, 64, 6)
    runner = CliRunner()
    cache, out = tmp_path / "post.npz", tmp_path / "post.pt"
    args = ["train", "post", "--data", str(tmp_path / "clips"), "--cache", str(cache)]
    args += ["--frames", "6", "--steps", "2", "--device", "cpu", "--out", str(out)]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "sha256" in r.output and cache.exists()
    r = runner.invoke(app, args)  # the output exists: refused before any work
    assert r.exit_code == 6 and "--force" in r.output
    r = runner.invoke(app, [*args, "--init", str(out), "--force"])  # fine-tunes from the cache
    assert r.exit_code == 0, r.output
    PostNet().load_state_dict(torch.load(out, weights_only=True))
    r = runner.invoke(app, [*args, "--model", "post-v2", "--force"])
    assert r.exit_code == 0, r.output
    LitePostNet().load_state_dict(torch.load(out, weights_only=True))
    r = runner.invoke(app, [*args, "--model", "post-v9", "--force"])
    assert r.exit_code == 3 and "--model must be one of" in r.output


def test_killed_training_resumes_from_its_checkpoint(tmp_path) -> None:
    """A run killed after its checkpoint and rerun ends with the weights of an unbroken run."""
    rng = np.random.default_rng(3)
    n, s = 8, 16
    examples = PostExamples(
        *(rng.integers(0, 256, shape, dtype=np.uint8) for shape in [
            (n, 3, s, s), (n, 3, s // 2, s // 2), (n, 3, s // 2, s // 2),
            (n, s, s), (n, s // 2, s // 2), (n, s // 2, s // 2)]),
        np.full(n, 32), np.ones(n, dtype=np.int64),
    )  # fmt: skip
    config = PostTrainConfig(steps=6, batch=2)

    def fresh() -> LitePostNet:
        torch.manual_seed(1)
        return LitePostNet()

    whole = train_post(examples, config, init=fresh())

    class Killed(Exception):
        pass

    def kill_at_5(step: int, gain: float) -> None:
        if step == 5:
            raise Killed

    ckpt = tmp_path / "post.pt.ckpt"
    try:
        train_post(examples, config, init=fresh(), progress=kill_at_5,
                   checkpoint=Checkpoint(ckpt, {"run": 1}, every=2))  # fmt: skip
    except Killed:
        pass
    assert ckpt.exists()
    with pytest.raises(InputError, match="another run"):
        train_post(examples, config, init=fresh(), checkpoint=Checkpoint(ckpt, {"run": 2}))
    seen = []
    resumed = train_post(
        examples, config, init=fresh(), progress=lambda step, gain: seen.append(step),
        checkpoint=Checkpoint(ckpt, {"run": 1}, every=2),
    )  # fmt: skip
    assert seen == [5, 6] and not ckpt.exists()  # from the checkpoint after step 4
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_best_strength_and_blend() -> None:
    original = random_gop(2, 16, 16)
    base = Gop(*(np.clip(p.astype(int) + 20, 0, 255).astype(np.uint8) for p in original.planes()))
    assert best_strength(original, base, original) == len(POST_STRENGTHS) - 1
    assert best_strength(original, original, base) == 0
    half = blend(base, original, 0.5)
    assert np.abs(half.y.astype(int) - base.y).max() <= 10
    assert blend(base, original, 0.0) is base


def test_scale_switches_with_late_gop_chunks(monkeypatch) -> None:
    """A stream may change s from GOP to GOP (the encoder's --scale auto does not, today):
    each change starts a segment, and with post-processing every GOP chunk comes after its
    frames but before the next segment."""
    choices = iter([1, 2, 1])
    monkeypatch.setattr("vcodec.stages.scale.ScaleStage.choose", lambda self, gop: next(choices))
    info, gops = clip(64, 48, 40)
    buf = io.BytesIO()
    encode_gops(gops, info, buf, EncodeConfig(qp=37, scale="auto", masks=False, device="cpu"))
    kinds = [type(c).__name__ for c in VcxReader(io.BytesIO(buf.getvalue()))]
    assert kinds.count("Segment") == 3 and kinds.count("GopChunk") == 3
    assert kinds.index("BaseData") < kinds.index("GopChunk")  # the GOP chunk follows its frames
    buf.seek(0)
    decoded = list(VcxDecoder(buf, "cpu").gops())
    assert [g.n_frames for g in decoded] == [16, 16, 8]
    assert (
        psnr(np.concatenate([g.y for g in gops]), np.concatenate([g.y for g in decoded])).mean()
        > 25
    )
