"""Tests of the built-in sample clip: shapes, colour facts, determinism and motion."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from vcodec.eval.sample import make_sample, rgb_to_yuv420
from vcodec.frames import COLOR_RANGE_TV


@pytest.mark.parametrize(("width", "height"), [(96, 64), (97, 63)])
def test_shapes_dtypes_and_gops(width: int, height: int) -> None:
    info, gops = make_sample(width, height, frames=20, gop_size=16)
    assert (info.width, info.height, info.frame_count, info.fps) == (width, height, 20, 25)
    assert info.color_range == COLOR_RANGE_TV
    assert (info.colorspace, info.color_primaries, info.color_trc) == (6, 6, 6)
    assert [g.start for g in gops] == [0, 16] and [g.n_frames for g in gops] == [16, 4]
    for gop in gops:
        assert gop.y.shape[1:] == (height, width)
        assert gop.u.shape[1:] == gop.v.shape[1:] == info.chroma_size
        assert all(p.dtype == np.uint8 for p in gop.planes())
        assert 16 <= gop.y.min() and gop.y.max() <= 235  # limited range
        assert 16 <= min(gop.u.min(), gop.v.min()) and max(gop.u.max(), gop.v.max()) <= 240


def test_deterministic() -> None:
    _, first = make_sample(96, 64, frames=6, fps=Fraction(30000, 1001))
    _, second = make_sample(96, 64, frames=6, fps=Fraction(30000, 1001))
    for a, b in zip(first, second, strict=True):
        for pa, pb in zip(a.planes(), b.planes(), strict=True):
            np.testing.assert_array_equal(pa, pb)


def test_motion_texture_and_flat_areas() -> None:
    _, gops = make_sample(96, 64, frames=20)
    y = np.concatenate([g.y for g in gops]).astype(np.int16)
    change = np.abs(np.diff(y, axis=0)).mean(axis=(1, 2))
    assert np.all(change > 0.5)  # every frame moves
    assert y.std() > 20  # texture and contrast, not a flat field


def test_bt601_limited_range_colours() -> None:
    rgb = np.zeros((1, 2, 2, 3), np.float32)
    colours = {(0, 0, 0): (16, 128, 128), (1, 1, 1): (235, 128, 128), (1, 0, 0): (81, 90, 240)}
    for colour, expected in colours.items():
        rgb[:] = colour
        y, u, v = rgb_to_yuv420(rgb)
        assert (y[0, 0, 0], u[0, 0, 0], v[0, 0, 0]) == expected
        assert u.shape == (1, 1, 1)


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        make_sample(1, 64, frames=2)
    with pytest.raises(ValueError):
        make_sample(64, 64, frames=0)
