"""The parameter module: GOP features, the scale it picks, its RD database and training command."""

from __future__ import annotations

import io

import numpy as np
import torch
from test_mask_stream import clip
from test_postprocess import random_gop
from typer.testing import CliRunner

from vcodec.bitstream.container import Segment, VcxReader
from vcodec.cli.main import app
from vcodec.encoder import EncodeConfig, encode_gops
from vcodec.models.params import FEATURES, ParamNet
from vcodec.params import PARAMS_MIN_QP, SCALES, ParamModule, gop_features
from vcodec.train.params import ParamsDatabase, choice_report


def test_features_are_bounded_and_see_detail() -> None:
    noisy = random_gop(16, 72, 88)
    flat = random_gop(16, 72, 88)
    flat.y[:] = 100
    f_noisy, f_flat = gop_features(noisy, 37), gop_features(flat, 37)
    assert f_noisy.shape == (FEATURES,)
    assert torch.all((f_noisy >= 0) & (f_noisy <= 1.5))
    assert f_flat[1] == 0 and f_flat[2] == 0 and f_flat[3] == 0  # nothing lost, still, flat
    assert f_noisy[1] > 0.5 and f_noisy[0] == 37 / 51
    tiny = random_gop(1, 1, 1)
    assert torch.isfinite(gop_features(tiny, 22)).all()


def test_shipped_module_picks_a_scale() -> None:
    module = ParamModule()
    assert module.scale(random_gop(16, 48, 64), 32) in SCALES
    assert module.scale(random_gop(16, 48, 64), PARAMS_MIN_QP - 1) == 1  # below its training


def test_auto_scale_is_chosen_once_per_stream(monkeypatch) -> None:
    """--scale auto: the module decides on the first GOP and the stream keeps that scale (one
    segment), whatever it would say of later GOPs."""
    choices = iter([2, 1, 1])
    monkeypatch.setattr("vcodec.params.ParamModule.scale", lambda self, gop, qp: next(choices))
    info, gops = clip(192, 144, 40)

    def segments(scale: str) -> list[tuple[int, int]]:
        buf = io.BytesIO()
        encode_gops(gops, info, buf, EncodeConfig(qp=37, scale=scale, masks=False, device="cpu"))
        chunks = VcxReader(io.BytesIO(buf.getvalue()))
        return [(c.width, c.height) for c in chunks if isinstance(c, Segment)]

    assert segments("auto") == segments("2") != segments("1")  # one segment, at s = 2


def test_choice_report() -> None:
    cost = np.array([[100.0, 200.0], [100.0, 50.0]])
    db = ParamsDatabase(
        np.zeros((2, FEATURES)), cost, np.zeros((2, 2)), np.zeros((2, 2)), np.array([32, 32]),
        np.array(["a", "b"]),
    )  # fmt: skip
    best = choice_report(db, np.array([0, 1]))
    assert best == {"agree_pct": 100.0, "cost_pct": 0.0, "cost_db": 0.0, "worst_db": 0.0}
    wrong = choice_report(db, np.array([1, 1]))
    assert wrong["agree_pct"] == 50 and np.isclose(wrong["cost_pct"], 50)
    assert np.isclose(wrong["worst_db"], 10 * np.log10(2))


def test_train_params_command(tmp_path, clip_factory) -> None:
    (tmp_path / "clips").mkdir()
    clip_factory("clips/a.y4m", 64, 48, 16)
    out, cache = tmp_path / "params.pt", tmp_path / "db.npz"
    args = ["train", "params", "--data", str(tmp_path / "clips"), "--cache", str(cache)]
    r = CliRunner().invoke(app, [*args, "--frames", "16", "--steps", "5", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "sha256" in r.output and "same choice as the search" in r.output
    db = ParamsDatabase.load(cache)
    assert db.cost.shape == (5, len(SCALES)) and (db.bits > 0).all()
    ParamNet().load_state_dict(torch.load(out, weights_only=True))
