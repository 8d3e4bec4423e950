"""Tests of the quality metrics: PSNR against known MSEs, MS-SSIM bands and settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_msssim import ms_ssim

from vcodec.frames import Gop, yuv_mse
from vcodec.metrics import (
    PSNR_CAP_DB,
    MetricAccumulator,
    _ms_ssim_levels,
    gop_metrics,
    msssim_settings,
    msssim_y,
    psnr,
)


def textured(frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """[T, H, W] uint8 frames of smooth texture plus a little noise, in 20..235."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = 128 + 60 * np.sin(xx / 5.0) * np.cos(yy / 7.0)
    out = [base + 3 * t + rng.normal(0, 4, base.shape) for t in range(frames)]
    return np.clip(np.stack(out), 20, 235).astype(np.uint8)


def noisy(frames: np.ndarray, sigma: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(frames + rng.normal(0, sigma, frames.shape), 0, 255).astype(np.uint8)


def make_gop(y: np.ndarray) -> Gop:
    t, h, w = y.shape
    u = np.full((t, (h + 1) // 2, (w + 1) // 2), 128, np.uint8)
    return Gop(y=y, u=u, v=u.copy())


def test_yuv_mse_is_exact_over_pixels_and_frames() -> None:
    """PSNR-YUV-weighted MSE in exact integers: over a mask of pixels (chroma takes every other
    row and column of it) and over chosen frames of the reference, no copy made."""
    rng = np.random.default_rng(5)
    planes = [rng.integers(0, 256, (5, h, w), dtype=np.uint8) for h, w in ((8, 12), (4, 6), (4, 6))]
    other = [rng.integers(0, 256, p.shape, dtype=np.uint8) for p in planes]
    a, b = Gop(*planes), Gop(*other)

    def mse(x, y):
        return float(((x.astype(np.float64) - y) ** 2).mean())

    assert yuv_mse(a, b) == (6 * mse(a.y, b.y) + mse(a.u, b.u) + mse(a.v, b.v)) / 8
    where = rng.random((8, 12)) < 0.4
    c = where[::2, ::2]
    expect = 6 * mse(a.y[:, where], b.y[:, where]) + mse(a.u[:, c], b.u[:, c])
    assert yuv_mse(a, b, where) == (expect + mse(a.v[:, c], b.v[:, c])) / 8
    frames = [1, 3, 4]
    part = Gop(b.y[frames], b.u[frames], b.v[frames])
    assert yuv_mse(a, part, frames=frames) == yuv_mse(
        Gop(a.y[frames], a.u[frames], a.v[frames]), part
    )
    assert yuv_mse(a, a) == 0.0


def test_psnr_of_a_known_mse() -> None:
    ref = textured(3, 32, 48)
    out = psnr(ref, ref + 1)  # MSE 1 in every frame (no value reaches 255)
    assert out.dtype == np.float64 and out.shape == (3,)
    np.testing.assert_allclose(out, 10 * np.log10(255.0**2), rtol=1e-12)
    assert out[0] == pytest.approx(48.1308, abs=1e-4)
    second = ref.copy()
    second[1, :, :24] += 2  # MSE 2 in frame 1 only
    np.testing.assert_allclose(psnr(ref, second), [PSNR_CAP_DB, 10 * np.log10(255.0**2 / 2), 100])


def test_psnr_cap_and_peak() -> None:
    ref = textured(2, 16, 16)
    assert PSNR_CAP_DB == 100.0
    assert np.all(psnr(ref, ref) == PSNR_CAP_DB)
    assert psnr(ref, ref + 1, peak=1.0)[0] == pytest.approx(0.0)
    with pytest.raises(ValueError):
        psnr(ref, ref[:, :8])


def test_gop_metrics_psnr_yuv_weighting() -> None:
    y = textured(2, 32, 32)
    ref = make_gop(y)
    test = Gop(y=y + 1, u=ref.u + 2, v=ref.v.copy())  # Y: MSE 1, U: MSE 4, V: identical
    out = gop_metrics(ref, test)
    assert set(out) == {"psnr_y", "psnr_u", "psnr_v", "psnr_yuv", "msssim_y"}
    expected = (6 * out["psnr_y"] + out["psnr_u"] + out["psnr_v"]) / 8
    np.testing.assert_allclose(out["psnr_yuv"], expected)
    np.testing.assert_allclose(out["psnr_u"], 10 * np.log10(255.0**2 / 4))
    np.testing.assert_allclose(out["psnr_v"], PSNR_CAP_DB)


@pytest.mark.parametrize(("height", "width"), [(64, 64), (144, 176), (33, 47)])
def test_msssim_identical_and_noisy(height: int, width: int) -> None:
    ref = textured(3, height, width)
    same = msssim_y(ref, ref)
    assert same.shape == (3,) and same.dtype == np.float64
    np.testing.assert_allclose(same, 1.0, atol=1e-5)
    light, heavy = msssim_y(ref, noisy(ref, 4)), msssim_y(ref, noisy(ref, 25))
    assert np.all(heavy < light) and np.all(light < 0.999) and np.all(heavy > 0.2)


def test_msssim_settings() -> None:
    assert msssim_settings(1080, 1920) == (11, 5)
    assert msssim_settings(360, 640) == (11, 5)
    assert msssim_settings(161, 200) == (11, 5)
    assert msssim_settings(160, 200) == (9, 5)  # the window shrinks first
    assert msssim_settings(144, 176) == (9, 5)
    assert msssim_settings(64, 64) == (3, 5)
    assert msssim_settings(32, 40) == (3, 4)  # then the levels
    assert msssim_settings(3, 3) == (3, 1)
    for side in range(3, 200):
        win, levels = msssim_settings(side, side + 5)
        assert side > (win - 1) * 2 ** (levels - 1) and win % 2 == 1
    with pytest.raises(ValueError):
        msssim_settings(2, 100)


def test_fewer_levels_path_matches_pytorch_msssim() -> None:
    ref, test = textured(2, 144, 176), noisy(textured(2, 144, 176), 10)
    x, y = (torch.from_numpy(a).float().unsqueeze(1) for a in (ref, test))
    ours = _ms_ssim_levels(x, y, win_size=9, levels=5)
    theirs = ms_ssim(x, y, data_range=255, size_average=False, win_size=9)
    torch.testing.assert_close(ours, theirs)


def test_msssim_batches_frames() -> None:
    ref = textured(20, 64, 64)  # more than one batch of 16
    test = noisy(ref, 10)
    whole = msssim_y(ref, test)
    np.testing.assert_allclose(whole[16:], msssim_y(ref[16:], test[16:]), rtol=1e-6)


def test_accumulator_averages_frames() -> None:
    acc = MetricAccumulator()
    with pytest.raises(ValueError):
        acc.mean()
    y = textured(5, 64, 64)
    first, second = make_gop(y[:3]), make_gop(y[3:])
    acc.add(first, first)
    acc.add(second, make_gop(noisy(y[3:], 8)), device="cpu")
    assert acc.frames == 5
    per_frame = acc.per_frame()
    assert all(v.shape == (5,) for v in per_frame.values())
    assert np.all(per_frame["psnr_y"][:3] == PSNR_CAP_DB) and np.all(per_frame["psnr_y"][3:] < 40)
    mean = acc.mean()
    assert mean["psnr_y"] == pytest.approx(float(np.mean(per_frame["psnr_y"])))
    assert set(mean) == set(per_frame) and all(isinstance(v, float) for v in mean.values())
