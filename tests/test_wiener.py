"""The Wiener filter: integer application, the encoder's choice, and its payload."""

from __future__ import annotations

import numpy as np
import pytest

from vcodec.bitstream.container import FORMAT_VERSION
from vcodec.entropy import SymbolEncoder
from vcodec.errors import MalformedError
from vcodec.frames import Gop
from vcodec.stages.stage import GopContext
from vcodec.stages.wiener import WienerEncoder, WienerStage, apply, apply_gop
from vcodec.stages.wiener_payload import (
    LAYOUTS,
    LUMA_TAPS,
    MODE_TABLE,
    OFF,
    REUSE,
    PlaneFilter,
    WienerDecoder,
    n_coefs,
    pack,
    taps,
)


def _blurred(seed: int = 0, frames: int = 4) -> tuple[Gop, Gop]:
    """A textured GOP and a blurred, noisy copy of it (what a coarse base layer looks like)."""
    rng = np.random.default_rng(seed)
    shape = (frames, 48, 64)
    y = np.repeat(np.repeat(rng.integers(20, 235, (frames, 12, 16)), 4, 1), 4, 2).astype(float)
    y += rng.normal(0, 6, shape)
    blur = (y + np.roll(y, 1, 1) + np.roll(y, -1, 1) + np.roll(y, 1, 2) + np.roll(y, -1, 2)) / 5
    noisy = blur + rng.normal(0, 2, shape)
    c = np.full((frames, 24, 32), 128, np.uint8)

    def u8(a: np.ndarray) -> np.ndarray:
        return np.clip(np.round(a), 0, 255).astype(np.uint8)

    return Gop(u8(y), c, c.copy()), Gop(u8(noisy), c, c.copy())


def test_taps_are_one_of_each_pair_of_the_diamond() -> None:
    assert len(taps(2)) == 6 and len(taps(3)) == 12
    assert (0, 1) in taps(2) and (0, -1) not in taps(2) and (1, -1) in taps(2)


def test_apply_is_integer_arithmetic() -> None:
    plane = np.arange(2 * 5 * 6, dtype=np.uint8).reshape(2, 5, 6) * 4
    coefs = np.zeros((1, 7), np.int64)
    assert np.array_equal(apply(plane, 2, PlaneFilter(0, coefs)), plane)  # zeros: identity
    coefs[0, -1] = 128  # an offset of one level
    assert np.array_equal(apply(plane, 2, PlaneFilter(0, coefs)), np.minimum(plane + 1, 255))
    coefs = np.zeros((1, 7), np.int64)
    coefs[0, taps(2).index((0, 1))] = 64  # half the horizontal second difference
    flat = np.full((1, 3, 5), 100, np.uint8)
    flat[0, 1, 2] = 120  # a spike: -40 across it, +20 beside it
    out = apply(flat, 2, PlaneFilter(0, coefs))
    assert out[0, 1].tolist() == [100, 110, 100, 110, 100]


def test_encoder_fits_filters_that_lower_the_error_and_the_decoder_agrees() -> None:
    encoder, decoder = WienerEncoder(qp=37), WienerDecoder()
    for seed in range(3):  # later GOPs may reuse the last filter
        source, decoded = _blurred(seed)
        payload, filtered = encoder.encode_gop(source, decoded)
        assert payload is not None
        filters = decoder.read(payload)
        assert filters[0] is not None and filters[1] is None  # flat chroma: nothing to gain
        assert np.array_equal(apply_gop(decoded, filters).y, filtered.y)
        before, after = (np.mean((g.y.astype(float) - source.y) ** 2) for g in (decoded, filtered))
        assert after < 0.8 * before


def test_the_stage_leaves_still_gops_at_long_steps_alone() -> None:
    """A GOP at temporal step 4 or 8 is mostly interpolated frames: the stage sends no filter
    there (it bought nothing on intel_car for ~5 ms a frame); at steps 1 and 2 it fits one."""
    source, decoded = _blurred()
    for step, sent in ((1, True), (2, True), (4, False), (8, False)):
        stage = WienerStage(qp=37, format_version=FORMAT_VERSION)
        out, chunk = stage.encode_gop(
            source, decoded, GopContext(0, source.n_frames, 37, step=step)
        )
        assert (chunk is not None) == sent
        assert sent or out is decoded


def test_no_payload_where_the_prediction_is_already_the_source() -> None:
    source, _ = _blurred()
    payload, out = WienerEncoder(qp=37).encode_gop(source, source)
    assert payload is None and out is source


def test_damaged_payloads() -> None:
    enc = SymbolEncoder()
    enc.encode(REUSE, MODE_TABLE)
    with pytest.raises(MalformedError, match="REUSE before"):
        WienerDecoder().read(enc.finish())
    with pytest.raises(MalformedError):
        WienerDecoder().read(b"\x12\x00")
    assert len(LAYOUTS) + 2 == MODE_TABLE.size


def test_version_5_payload_golden_bytes() -> None:
    """Before format version 6 a chroma filter had no luma taps: 7 coefficients a class."""
    coefs = np.zeros((1, 7), np.int64)
    coefs[0, :3] = (5, -3, 0)
    coefs[0, -1] = -130
    luma = PlaneFilter(0, np.array([list(range(-6, 7))]))
    payload = pack([(2, luma), (OFF, None), (2, PlaneFilter(0, coefs))])
    assert payload.hex() == "7572d3cd1b7eda829a785f47e252d89a"
    filters = WienerDecoder(format_version=5).read(payload)
    assert filters[2].coefs.tolist() == coefs.tolist()


def test_payload_golden_bytes() -> None:
    coefs = np.zeros((1, 19), np.int64)  # V: 6 taps, 12 luma taps, the offset
    coefs[0, :3] = (5, -3, 0)
    coefs[0, 6:8] = (9, -2)
    coefs[0, -1] = -130
    luma = PlaneFilter(0, np.array([list(range(-6, 7))]))
    payload = pack([(2, luma), (OFF, None), (2, PlaneFilter(0, coefs))])
    assert payload.hex() == "7572d3cd1b7eda829a785f47e165d0f37938867f"
    decoder = WienerDecoder()
    filters = decoder.read(payload)
    assert filters[1] is None
    assert filters[0].coefs.tolist() == luma.coefs.tolist()
    assert filters[2].coefs.tolist() == coefs.tolist()
    # the next GOP's filters are coded against these: the same ones cost a few bytes
    again = pack([(2, luma), (OFF, None), (2, PlaneFilter(0, coefs))], filters)
    assert again.hex() == "667e6876"
    assert [f.coefs.tolist() for f in decoder.read(again) if f] == [
        luma.coefs.tolist(),
        coefs.tolist(),
    ]
    with pytest.raises(ValueError, match="layout"):
        pack([(3, luma), (OFF, None), (OFF, None)])


def test_plane_weights_follow_psnr_yuv() -> None:
    from vcodec.stages.wiener import WEIGHT_RANGE, plane_weights

    # chroma with an eighth of luma's SSE: each unit of it moves PSNR-YUV 8/6 as much
    assert plane_weights([800.0, 100.0, 100.0]) == pytest.approx([1.0, 8 / 6, 8 / 6])
    assert plane_weights([800.0, 1.0, 0.0]) == [1.0, WEIGHT_RANGE[1], 1.0]


def test_chroma_filters_read_luma_detail() -> None:
    """A chroma filter's luma taps: where the decoded chroma lost what luma still shows (here
    chroma that follows luma's texture, decoded flat), the filter takes it back from luma."""
    source, decoded = _blurred(frames=4)
    detail = source.y[:, ::2, ::2].astype(float) - source.y.mean()
    chroma = np.clip(np.round(128 + 0.3 * detail), 0, 255).astype(np.uint8)
    source = Gop(source.y, chroma, source.v)
    encoder, decoder = WienerEncoder(qp=37), WienerDecoder()
    payload, filtered = encoder.encode_gop(source, decoded)
    filters = decoder.read(payload)
    assert filters[1] is not None and filters[1].coefs.shape[1] == n_coefs(1) == 19
    assert np.array_equal(apply_gop(decoded, filters).u, filtered.u)
    before, after = (np.mean((g.u.astype(float) - chroma) ** 2) for g in (decoded, filtered))
    assert after < 0.5 * before
    one = np.zeros((1, 19), np.int64)
    one[0, 6 + LUMA_TAPS.index((0, 1))] = 128  # + (y right of the co-located one - y there)
    y = np.zeros((1, 3, 5), np.uint8)
    y[0, :, 1] = 10  # luma column 1: the right neighbour of chroma column 0's pixel (0)
    flat = np.full((1, 2, 3), 100, np.uint8)
    out = apply(flat, 2, PlaneFilter(0, one), y)
    assert out[0].tolist() == [[110, 100, 100]] * 2  # y[2i, 2j + 1] - y[2i, 2j]: 10 at j = 0


def test_classes_pick_the_coefficients() -> None:
    plane = np.full((1, 8, 12), 100, np.uint8)
    plane[0, :, 6:] = 200  # a vertical edge: strong horizontal gradient beside it
    for layout in (1, 2):
        coefs = np.zeros((LAYOUTS[layout], 13), np.int64)
        coefs[0, -1] = 128  # one level up in class 0 (flat) alone
        out = apply(plane, 3, PlaneFilter(layout, coefs)).astype(int) - plane
        assert out[0, :, :3].tolist() == [[1] * 3] * 8  # flat, away from the edge
        assert not out[0, :, 4:8].any()  # at the edge: a busy class


def _reference_apply(
    plane: np.ndarray, radius: int, filt: PlaneFilter, luma: np.ndarray | None
) -> np.ndarray:
    """The filter's integer formula, in int64 numpy, pixel class by pixel class (the
    definition FORMAT.md gives), for checking the float32 implementation bit for bit."""
    out = np.empty_like(plane)
    edges = (18, 45, 90, 180, 360)
    for t in range(plane.shape[0]):
        x = plane[t].astype(np.int64)
        h, w = x.shape
        p = np.pad(x, radius + 1, mode="edge")
        r = radius + 1
        acc = np.zeros((h, w), np.int64)
        c = p[1:-1, 1:-1]
        gh = np.pad(
            np.abs(2 * c - p[1:-1, :-2] - p[1:-1, 2:])[r - 1 : r - 1 + h, r - 1 : r - 1 + w],
            1,
            mode="edge",
        )
        gv = np.pad(
            np.abs(2 * c - p[:-2, 1:-1] - p[2:, 1:-1])[r - 1 : r - 1 + h, r - 1 : r - 1 + w],
            1,
            mode="edge",
        )
        bh = sum(gh[i : i + h, j : j + w] for i in range(3) for j in range(3))
        bv = sum(gv[i : i + h, j : j + w] for i in range(3) for j in range(3))
        finest = np.searchsorted(edges, bh + bv, side="right") * 3
        finest += np.where(bh > 2 * bv, 1, np.where(bv > 2 * bh, 2, 0))
        cls = finest // (LAYOUTS[-1] // LAYOUTS[filt.layout])
        coefs = filt.coefs.astype(np.int64)[cls]  # [h, w, n]
        values = [
            p[r + dy : r + dy + h, r + dx : r + dx + w]
            + p[r - dy : r - dy + h, r - dx : r - dx + w]
            - 2 * x
            for dy, dx in taps(radius)
        ]
        if luma is not None and filt.coefs.shape[1] > len(values) + 1:
            y = np.pad(luma[t].astype(np.int64), 2, mode="edge")
            rows = np.minimum(2 * np.arange(h), luma.shape[1] - 1)[:, None] + 2
            cols = np.minimum(2 * np.arange(w), luma.shape[2] - 1)[None, :] + 2
            values += [y[rows + dy, cols + dx] - y[rows, cols] for dy, dx in LUMA_TAPS]
        acc = coefs[..., -1] + sum(coefs[..., k] * v for k, v in enumerate(values))
        out[t] = np.clip(x + ((acc + 64) >> 7), 0, 255)
    return out


@pytest.mark.parametrize("layout", range(len(LAYOUTS)))
def test_float32_apply_is_the_integer_formula_bit_for_bit(layout: int) -> None:
    """Random planes with coefficients at the limit (+-2047): the float32 filter gives the
    integer formula's pixels, chroma with luma taps and odd sizes included."""
    rng = np.random.default_rng(layout)
    for radius, shape, chroma in ((3, (2, 37, 53), False), (2, (2, 19, 27), True)):
        n = n_coefs(1) if chroma else len(taps(radius)) + 1
        for extreme in (False, True):
            plane = rng.integers(0, 256, shape).astype(np.uint8)
            if extreme:  # a checkerboard of 0 and 255: the largest second differences
                plane = ((np.indices(shape).sum(0) % 2) * 255).astype(np.uint8)
            coefs = rng.integers(-2047, 2048, (LAYOUTS[layout], n))
            if extreme:
                coefs = np.where(rng.random(coefs.shape) < 0.5, -2047, 2047)
            luma = (
                rng.integers(0, 256, (2, 2 * shape[1] - 1, 2 * shape[2] - 1)).astype(np.uint8)
                if chroma
                else None
            )
            filt = PlaneFilter(layout, coefs)
            assert np.array_equal(
                apply(plane, radius, filt, luma), _reference_apply(plane, radius, filt, luma)
            )
