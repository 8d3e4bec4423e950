"""The parameter module: GOP features, the scale it picks, its RD database and training command."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from test_mask_stream import clip
from test_postprocess import random_gop
from typer.testing import CliRunner

from vcodec.bitstream.container import Segment, VcxReader
from vcodec.cli.main import app
from vcodec.errors import InputError
from vcodec.frames import Gop
from vcodec.models.params import FEATURES, ParamNet
from vcodec.pipeline.config import EncodeConfig
from vcodec.pipeline.encoder import encode_gops
from vcodec.stages.scale import PARAMS_MIN_QP, SCALES, ParamModule, gop_features
from vcodec.train.params import (
    DATABASE_QPS,
    ParamsDatabase,
    ParamsDataConfig,
    ParamsTrainConfig,
    choice_report,
    clip_windows,
    curve_at,
    train_params,
)


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
    monkeypatch.setattr(
        "vcodec.stages.scale.ParamModule.scale", lambda self, gop, qp: next(choices)
    )
    info, gops = clip(192, 144, 40)

    def segments(scale: str) -> list[tuple[int, int]]:
        buf = io.BytesIO()
        config = EncodeConfig(qp=37, base="x265", scale=scale, masks=False, device="cpu")
        encode_gops(gops, info, buf, config)
        chunks = VcxReader(io.BytesIO(buf.getvalue()))
        return [(c.width, c.height) for c in chunks if isinstance(c, Segment)]

    assert segments("auto") == segments("2") != segments("1")  # one segment, at s = 2


def test_auto_scale_keeps_regions_of_interest_sharp(monkeypatch) -> None:
    """With --roi the module is not asked: the stream stays at s = 1 (seed 002 reduces only the
    background)."""
    monkeypatch.setattr("vcodec.stages.scale.ParamModule.scale", lambda self, gop, qp: 2)
    info, gops = clip(192, 144, 16)
    buf = io.BytesIO()
    config = EncodeConfig(qp=37, roi="motion", masks=False, device="cpu")
    encode_gops(gops, info, buf, config)
    chunks = VcxReader(io.BytesIO(buf.getvalue()))
    assert [(c.width, c.height) for c in chunks if isinstance(c, Segment)] == [(192, 144)]


def _database(psnr: list[list[float]], bits: list[list[float]], qps: list[int]) -> ParamsDatabase:
    n = len(qps)
    return ParamsDatabase(
        np.zeros((n, FEATURES)), np.array(psnr), np.array(bits), np.array(qps),
        np.array(["a"] * n),
    )  # fmt: skip


def test_curve_at_is_monotone_and_linear_in_log_rate() -> None:
    log_rate = np.log([1000.0, 2000.0, 3000.0, 4000.0])
    psnr = np.array([30.0, 33.0, 32.0, 36.0])  # 3000 does not raise the PSNR: dropped
    at = np.log([500.0, 1000.0, 2000.0, 2828.4271, 8000.0])
    expected = [27.0, 30.0, 33.0, 34.5, 39.0]  # 3 dB per doubling, extended at both ends
    assert np.allclose(curve_at(log_rate, psnr, at), expected)


def test_database_scores_each_point_against_the_other_curve() -> None:
    """s = 1: 3 dB per doubling; s = 2 lies 0.47 dB above it at low rates, below at the top."""
    db = _database(
        psnr=[[30.0, 29.5], [33.0, 32.5], [36.0, 34.5]],
        bits=[[1000.0, 800.0], [2000.0, 1600.0], [4000.0, 3200.0]],
        qps=[42, 37, 32],
    )
    margin = 3 * np.log2(2 / 1.6) - 0.5
    assert np.allclose(db.margin[:, 1], [margin, margin, margin - 1.0], atol=1e-9)
    assert (db.margin[:2, 0] < 0).all() and db.margin[2, 0] > 0
    assert list(db.best) == [1, 1, 0]
    assert np.allclose(db.loss_db[np.arange(3), db.best], 0)
    report = choice_report(db, np.array([0, 1, 0]))  # s = 1 at qp 42: below s = 2's curve
    assert np.isclose(report["agree_pct"], 200 / 3)
    assert np.isclose(report["worst_db"], db.loss_db[0, 0]) and report["worst_db"] > 0.4
    assert choice_report(db, db.best) == {"agree_pct": 100.0, "mean_db": 0.0, "worst_db": 0.0}


def test_train_params_learns_a_qp_threshold() -> None:
    """Rows whose only difference is the QP feature: s = 2 wins from qp 40."""
    qps = np.arange(22, 52, 2)
    db = _database(np.zeros((len(qps), 2)).tolist(), np.ones((len(qps), 2)).tolist(), list(qps))
    db.features[:, 0] = qps / 51
    high = qps >= 40
    # s = 2's points 0.5 dB above s = 1's curve from qp 40, below it under; same rates
    db.psnr[:, 0] = 50 - qps
    db.psnr[:, 1] = db.psnr[:, 0] + np.where(high, 0.5, -0.5)
    db.bits[:, 0] = db.bits[:, 1] = 2.0 ** (-qps / 6)
    net = train_params(db, ParamsTrainConfig(steps=500))
    with torch.no_grad():
        choice = net(torch.from_numpy(db.features).float()).argmax(1).numpy()
    assert list(choice) == list(high.astype(int))


def _gops(n: int, last: int = 16) -> list[Gop]:
    sizes = [16] * (n - 1) + [last]
    return [Gop(*(np.zeros((k, 2, 2), np.uint8),) * 3, start=16 * i) for i, k in enumerate(sizes)]


def test_database_windows() -> None:
    """Windows of whole GOPs every window_stride frames while the clip lasts; a clip shorter
    than one window gives its full GOPs once."""
    starts = lambda windows: [(s, [g.start for g in w]) for s, w in windows]  # noqa: E731
    long = starts(
        clip_windows(iter(_gops(50, last=4)), ParamsDataConfig(frames=32, window_stride=320))
    )
    assert long == [(0, [0, 16]), (320, [320, 336]), (640, [640, 656])]
    short = starts(clip_windows(iter(_gops(3, last=5)), ParamsDataConfig(frames=64)))
    assert short == [(0, [0, 16])]
    first = starts(clip_windows(iter(_gops(50)), ParamsDataConfig(frames=32, window_stride=0)))
    assert first == [(0, [0, 16])]
    with pytest.raises(InputError, match="window-stride"):
        list(clip_windows(iter(_gops(4)), ParamsDataConfig(frames=64, window_stride=32)))


def test_train_params_command(tmp_path, clip_factory) -> None:
    (tmp_path / "clips").mkdir()
    clip_factory("clips/a.y4m", 64, 48, 16)
    out, cache = tmp_path / "params.pt", tmp_path / "db.npz"
    args = ["train", "params", "--data", str(tmp_path / "clips"), "--cache", str(cache)]
    r = CliRunner().invoke(app, [*args, "--frames", "16", "--steps", "5", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "sha256" in r.output and "same choice as the search" in r.output
    db = ParamsDatabase.load(cache)
    assert db.psnr.shape == (len(DATABASE_QPS), len(SCALES)) and (db.bits > 0).all()
    ParamNet().load_state_dict(torch.load(out, weights_only=True))
