"""The Wiener filter (seed 004's artifact removal, in closed form): per GOP and plane, the
encoder fits the least-squares filter from the decoded prediction to the source, one per
class of local activity and direction, and sends its integer coefficients (coded in
wiener_payload.py); the decoder applies them in integer arithmetic, so every machine gets the
same pixels.

A filter corrects a pixel x by the second differences of its neighbours in a diamond:
``x' = clip(x + ((sum_k c_k (x[p+o_k] + x[p-o_k] - 2x) + c_0 + 64) >> 7))``, with the
coefficients c in 1/128 (PRECISION_BITS) and planes edge-replicated. A chroma filter also
takes luma's detail (cross-component, format version 6 on): the differences of the decoded
luma around the chroma pixel's co-located one, ``y[2p+o] - y[2p]`` for o in LUMA_TAPS (or
leaves them at zero where they do not pay). Each plane of a GOP is off, reuses the plane's
last sent filter, or sends a new one under one of the LAYOUTS, by D + lambda R, D weighted
per plane as PSNR-YUV weighs it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from vcodec.bitstream.container import Wiener
from vcodec.entropy import base_lambda
from vcodec.frames import PSNR_YUV_WEIGHTS, Gop
from vcodec.lazy import lazy_module
from vcodec.stages.stage import GopContext, Stage
from vcodec.stages.wiener_payload import (
    COEF_LIMIT,
    LAYOUTS,
    LUMA_TAPS,
    OFF,
    PRECISION_BITS,
    RADII,
    REUSE,
    PlaneFilter,
    WienerDecoder,
    coded_against,
    coef_bits,
    n_coefs,
    pack,
    taps,
)

torch = lazy_module("torch")
F = lazy_module("torch.nn.functional")

LUMA_PAD = 2  # the largest |offset| of LUMA_TAPS
# class boundaries on a pixel's activity: the 3x3 box sum of |2x - left - right| +
# |2x - up - down|
ACTIVITY_EDGES = (18, 45, 90, 180, 360)
DIRECTIONS = 3  # none, horizontal (gradient across columns twice that across rows), vertical
MIN_CLASS_PIXELS = 64  # a class with fewer pixels per coefficient gets no filter (zeros)
RIDGE = 1e-3  # added to the normal equations' diagonal, per pixel: keeps them solvable
# the encoder's normal equations sample every 2nd or 4th row and column (_stride), at a phase
# that moves from frame to frame, keeping at least this many pixels a frame: 16 frames of them
# fit 18 x 25 coefficients as well as all pixels do, at a quarter or a sixteenth of the cost
STATISTICS_SAMPLES = 1 << 13
CHUNK_FRAMING_BYTES = 7  # a WIENER chunk's type, length, GOP index and CRC32
WEIGHT_RANGE = (0.25, 4.0)  # the bounds of a chroma plane's SSE worth (plane_weights)
ALL = (slice(None), slice(None))  # every pixel of a frame


def _frame_tensor(plane: np.ndarray) -> torch.Tensor:
    """One frame [H, W] uint8 as float32, centred on 0 (x - 128): every sum the filter forms
    is then an integer of magnitude below 2^24, which float32 holds exactly (see ``apply``)."""
    return torch.from_numpy(plane).to(torch.float32).sub_(128)


def _padded(x: torch.Tensor, pad: int) -> torch.Tensor:
    return F.pad(x[None], (pad, pad, pad, pad), mode="replicate")[0]


def _pair_sums(
    p: torch.Tensor, radius: int, h: int, w: int, sel: tuple[slice, slice] = ALL
) -> list[torch.Tensor]:
    """x[p + o] + x[p - o] of every tap o of the diamond, from the frame padded by ``radius``,
    at the pixels ``sel`` picks."""
    r = radius
    return [
        p[r + dy : r + dy + h, r + dx : r + dx + w][sel]
        + p[r - dy : r - dy + h, r - dx : r - dx + w][sel]
        for dy, dx in taps(radius)
    ]


def _luma_differences(
    luma: np.ndarray, h: int, w: int, sel: tuple[slice, slice] = ALL
) -> list[torch.Tensor]:
    """y[2i + dy, 2j + dx] - y[2i, 2j] of the chroma grid h x w for each of LUMA_TAPS (luma
    edge-replicated; an odd luma size's last chroma pixel sits on its last pixel), at the
    chroma pixels ``sel`` picks."""
    if (luma.shape[0] + 1) // 2 != h or (luma.shape[1] + 1) // 2 != w:
        raise ValueError(f"chroma {h}x{w} is not half of luma {luma.shape[0]}x{luma.shape[1]}")
    y = _padded(torch.from_numpy(luma).to(torch.float32), LUMA_PAD)
    q = LUMA_PAD

    def grid(dy: int, dx: int) -> torch.Tensor:
        return y[q + dy : q + dy + 2 * h - 1 : 2, q + dx : q + dx + 2 * w - 1 : 2][sel]

    centre = grid(0, 0)
    return [grid(dy, dx) - centre for dy, dx in LUMA_TAPS]


def _box3(g: torch.Tensor) -> torch.Tensor:
    """3x3 box sums of a padded-by-1 array (the inner size)."""
    rows = g[:-2] + g[1:-1] + g[2:]
    return rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]


def _classes(
    p: torch.Tensor, h: int, w: int, layout: int, sel: tuple[slice, slice] = ALL
) -> torch.Tensor:
    """The class under LAYOUTS[layout] of the pixels ``sel`` picks, int64, from the frame padded by
    at least 1 (by ``(p.shape[0] - h) // 2``): activity (the 3x3 box sum of |2x - left -
    right| + |2x - up - down|, second differences edge-replicated at the frame's border) by
    ACTIVITY_EDGES, times DIRECTIONS, plus the direction (horizontal where the box's
    horizontal part is more than twice the vertical one, vertical the other way, else none);
    the coarser layouts are the finest's (_layout_classes). Layout 0 (one class) needs none."""
    r = (p.shape[0] - h) // 2
    c = p[r : r + h, r : r + w]
    gh = (2 * c - p[r : r + h, r - 1 : r - 1 + w] - p[r : r + h, r + 1 : r + 1 + w]).abs_()
    gv = (2 * c - p[r - 1 : r - 1 + h, r : r + w] - p[r + 1 : r + 1 + h, r : r + w]).abs_()
    box_h, box_v = (_box3(_padded(g, 1))[sel] for g in (gh, gv))
    activity = torch.bucketize(
        box_h + box_v, torch.tensor(ACTIVITY_EDGES, dtype=torch.float32), right=True
    )
    if LAYOUTS[layout] == len(ACTIVITY_EDGES) + 1:
        return activity
    activity *= DIRECTIONS
    activity += box_h > 2 * box_v
    activity += 2 * (box_v > 2 * box_h)
    return _layout_classes(activity, layout)


def _layout_classes(finest: np.ndarray | torch.Tensor, layout: int) -> np.ndarray | torch.Tensor:
    """The classes of LAYOUTS[layout] from the finest ones (3a + d: // 3 gives a, // 18 0)."""
    return finest // (LAYOUTS[-1] // LAYOUTS[layout])


def apply(
    plane: np.ndarray, radius: int, filt: PlaneFilter, luma: np.ndarray | None = None
) -> np.ndarray:
    """The filtered plane [T, H, W] uint8; ``luma`` [T, ...]: the luma a chroma filter with
    luma taps reads (the GOP's unfiltered prediction).

    In float32 and still exact: pixels are centred (x - 128, which second differences do not
    see), so a pair sum is within [-256, 254], a luma difference within +-255, and every
    partial sum of ``sum_k c_k pair_k - 2 x sum_k c_k + c_0`` within 2047 (12 * 256 + 24 *
    128) + 2047 < 2^24, an integer float32 holds exactly in any order of addition; the
    rounding ``floor((acc + 64) / 128)`` divides by a power of two. So every machine and
    every library version gets the integer formula's pixels."""
    n_taps = len(taps(radius))
    if filt.coefs.shape[1] == n_taps + 1:
        luma = None  # no luma taps (a stream before version 6)
    coefs = torch.from_numpy(filt.coefs.astype(np.float32))
    columns = [coefs[:, k].contiguous() for k in range(coefs.shape[1])]
    centre = -2 * coefs[:, :n_taps].sum(1)
    h, w = plane.shape[1:]
    out = np.empty_like(plane)
    for t in range(plane.shape[0]):
        x = _frame_tensor(plane[t])
        p = _padded(x, radius)
        inputs = _pair_sums(p, radius, h, w)
        if luma is not None:
            inputs += _luma_differences(luma[t], h, w)
        if len(filt.coefs) == 1:  # one class: scalar coefficients
            acc = x * float(centre[0])
            acc += float(columns[-1][0])
            for column, value in zip(columns, inputs, strict=False):
                acc.add_(value, alpha=float(column[0]))
        else:
            cls = _classes(p, h, w, filt.layout)
            acc = torch.take(columns[-1], cls)
            acc.addcmul_(torch.take(centre, cls), x)
            for column, value in zip(columns, inputs, strict=False):
                acc.addcmul_(torch.take(column, cls), value)
        correction = acc.add_(1 << (PRECISION_BITS - 1)).div_(1 << PRECISION_BITS).floor_()
        out[t] = x.add_(correction).add_(128).clamp_(0, 255).to(torch.uint8).numpy()
    return out


@dataclass
class _Statistics:
    """Normal equations of one plane of one GOP per class of the finest layout: ``a``
    [18, n, n], ``b`` [18, n], ``rr`` [18] (sum of squared residuals), ``count`` [18]; from
    a sample of the pixels (_stride), scaled to the whole plane."""

    a: np.ndarray
    b: np.ndarray
    rr: np.ndarray
    count: np.ndarray

    def merged(self, layout: int) -> _Statistics:
        """The statistics of LAYOUTS[layout]'s classes (sums of the finest ones)."""
        n = LAYOUTS[layout]
        if n == len(self.count):
            return self
        group = _layout_classes(np.arange(len(self.count)), layout)
        sums = [np.stack([v[group == g].sum(0) for g in range(n)]) for v in (self.a, self.b)]
        counts = [np.bincount(group, v, n) for v in (self.rr, self.count)]
        return _Statistics(*sums, *counts)

    def sse(self, coefs: np.ndarray) -> float:
        """Expected SSE of integer ``coefs`` [classes, n] (before the output's rounding)."""
        c = coefs / (1 << PRECISION_BITS)
        quad = np.einsum("ki,kij,kj->", c, self.a, c)
        return float(self.rr.sum() - 2 * np.einsum("ki,ki->", c, self.b) + quad)


def _statistics(
    source: np.ndarray,
    decoded: np.ndarray,
    radius: int,
    luma: np.ndarray | None = None,
    classify: bool = True,
) -> _Statistics:
    """The normal equations of the pixels on a _stride(h, w) grid of each frame (at a phase
    that moves from frame to frame), scaled to the whole plane: the GOP's sampled features
    are sorted by class and each class's block is one float32 matrix product. With
    ``classify`` False every pixel is put in class 0 (for LAYOUTS[0] alone)."""
    n = len(taps(radius)) + (0 if luma is None else len(LUMA_TAPS)) + 1
    classes = LAYOUTS[-1]
    h, w = decoded.shape[1:]
    s = _stride(h, w)
    columns, residuals, labels = [], [], []
    for t in range(source.shape[0]):
        sel = (slice(t % s, None, s), slice(t // s % s, None, s))  # this frame's phase
        x = _frame_tensor(decoded[t])
        p = _padded(x, radius)
        if classify:
            labels.append(_classes(p, h, w, len(LAYOUTS) - 1, sel).reshape(-1))
        centre = x[sel]
        features = [v.sub_(centre).sub_(centre) for v in _pair_sums(p, radius, h, w, sel)]
        if luma is not None:
            features += _luma_differences(luma[t], h, w, sel)
        features.append(torch.ones_like(centre))
        columns.append(torch.stack([f.reshape(-1) for f in features]))
        src = torch.from_numpy(source[t][sel[0], sel[1]]).to(torch.float32)
        residuals.append(src.sub_(128).sub_(centre).reshape(-1))
    feats, r = torch.cat(columns, 1), torch.cat(residuals)
    bounds = [0] + [r.numel()] * classes  # unclassified: everything in class 0
    if classify:
        cls = torch.cat(labels)
        order = torch.argsort(cls, stable=True)
        bounds = torch.searchsorted(cls[order], torch.arange(classes + 1)).tolist()
        feats, r = feats[:, order], r[order]
    a = np.zeros((classes, n, n))
    b = np.zeros((classes, n))
    rr = np.zeros(classes)
    count = np.zeros(classes)
    for k, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        if hi > lo:
            xk, rk = feats[:, lo:hi], r[lo:hi]
            a[k], b[k] = (xk @ xk.T).numpy(), (xk @ rk).numpy()
            rr[k], count[k] = float(rk @ rk), hi - lo
    area = s * s  # the pixels each sampled one stands for
    return _Statistics(a * area, b * area, rr * area, count * area)


def _stride(h: int, w: int) -> int:
    """The statistics' sampling stride of an h x w plane: the largest of 1, 2, 4 that leaves
    it STATISTICS_SAMPLES pixels a frame."""
    return max(s for s in (1, 2, 4) if s == 1 or h * w >= STATISTICS_SAMPLES * s * s)


def _solve(stats: _Statistics, used: np.ndarray) -> np.ndarray:
    """Integer coefficients [classes, n] of the least-squares filters over the coefficients
    ``used`` (bool [n]; the others 0), zeros for classes with too few pixels."""
    n = int(used.sum())
    out = np.zeros(stats.b.shape, np.int64)
    for k in range(len(stats.count)):
        if stats.count[k] < MIN_CLASS_PIXELS * n:
            continue
        ridge = RIDGE * stats.count[k] * np.eye(n)
        c = np.linalg.solve(stats.a[k][np.ix_(used, used)] + ridge, stats.b[k][used])
        out[k, used] = np.clip(np.round(c * (1 << PRECISION_BITS)), -COEF_LIMIT, COEF_LIMIT)
    return out


def _coefficient_sets(index: int) -> list[np.ndarray]:
    """Which coefficients a plane's filter may use: all; for chroma also all but the luma
    taps (a chroma-only filter, where luma's detail is not worth its coefficients)."""
    n = n_coefs(index)
    sets = [np.ones(n, bool)]
    if index:
        chroma_only = np.ones(n, bool)
        chroma_only[len(taps(RADII[index])) : -1] = False
        sets.append(chroma_only)
    return sets


class WienerEncoder:
    """Fits and chooses each GOP's filters; remembers each plane's last sent filter (REUSE).
    With ``output`` False (no later stage reads the filtered frames) it does not filter them:
    its choices come from the normal equations alone, so they are the same either way."""

    def __init__(self, qp: int, output: bool = True, layouts: int = len(LAYOUTS)) -> None:
        self.lam = base_lambda(qp)
        self.output = output
        self.layouts = layouts  # LAYOUTS[:layouts] are tried
        self.last: list[PlaneFilter | None] = [None, None, None]

    def encode_gop(self, source: Gop, prediction: Gop) -> tuple[bytes | None, Gop]:
        """The GOP's Wiener payload and the filtered prediction; (None, ``prediction``) where
        no filter saves more than its bits and the chunk's framing cost."""
        pairs = list(zip(source.planes(), prediction.planes(), strict=True))
        lumas = _luma_inputs(prediction)
        stats = [
            _statistics(src, dec, radius, luma, self.layouts > 1)
            for (src, dec), radius, luma in zip(pairs, RADII, lumas, strict=True)
        ]
        weights = plane_weights([float(s.rr.sum()) for s in stats])  # the base layer's SSE
        choices = [
            self._choose(index, st, self.lam / weight)
            for index, (st, weight) in enumerate(zip(stats, weights, strict=True))
        ]
        saving = sum(w * c[2] for w, c in zip(weights, choices, strict=True))
        saving -= self.lam * 8 * CHUNK_FRAMING_BYTES
        if all(mode == OFF for mode, *_ in choices) or saving <= 0:
            return None, prediction
        payload = pack([(mode, filt) for mode, filt, _ in choices], self.last)
        for index, (mode, filt, _) in enumerate(choices):
            if mode >= 2:
                self.last[index] = filt
        if self.output:
            prediction = apply_gop(prediction, [filt for _, filt, _ in choices])
        return payload, prediction

    def _choose(
        self, index: int, stats: _Statistics, lam: float
    ) -> tuple[int, PlaneFilter | None, float]:
        """The plane's (mode, filter, saving in D + lam R) by D + lam R, D from its normal
        equations ``stats`` plus the output's rounding noise (1/12 of a level a pixel)."""
        base = float(stats.rr.sum())
        rounding = stats.count.sum() / 12
        candidates = [] if self.last[index] is None else [(REUSE, self.last[index], 0)]
        for layout, used in itertools.product(range(self.layouts), _coefficient_sets(index)):
            coefs = _solve(stats.merged(layout), used)
            if coefs.any():
                bits = coef_bits(coefs - coded_against(self.last[index], layout, coefs.shape))
                candidates.append((2 + layout, PlaneFilter(layout, coefs), bits))
        best = (base, OFF, None)
        for mode, filt, bits in candidates:
            cost = stats.merged(filt.layout).sse(filt.coefs) + rounding + lam * bits
            if cost < best[0]:
                best = (cost, mode, filt)
        cost, mode, filt = best
        return mode, filt, base - cost


def plane_weights(sse: list[float]) -> list[float]:
    """What a unit of SSE on each plane is worth against one on luma, for PSNR-YUV (6 Y + U +
    V) / 8 of the per-plane PSNRs: a plane's PSNR moves by its relative change of SSE, so the
    worth is (w_p / w_Y) (SSE_Y / SSE_p), within WEIGHT_RANGE."""
    low, high = WEIGHT_RANGE
    out = [1.0]
    for weight, plane in zip(PSNR_YUV_WEIGHTS[1:], sse[1:], strict=True):
        worth = weight / PSNR_YUV_WEIGHTS[0] * sse[0] / plane if plane > 0 and sse[0] > 0 else 1
        out.append(min(high, max(low, worth)))
    return out


def _luma_inputs(gop: Gop) -> list[np.ndarray | None]:
    """What each plane's filter reads besides the plane: for U and V, the GOP's unfiltered
    luma (the encoder's and the decoder's prediction, before the Y filter)."""
    return [None, gop.y, gop.y]


def apply_gop(gop: Gop, filters: list[PlaneFilter | None]) -> Gop:
    """``gop`` with each plane through its filter (None: as it is)."""
    lumas = _luma_inputs(gop)
    planes = [
        p if f is None else apply(p, radius, f, luma)
        for p, radius, f, luma in zip(gop.planes(), RADII, filters, lumas, strict=True)
    ]
    return Gop(*planes, gop.start)


# from this temporal step a GOP's frames are mostly interpolated: a filter bought nothing there
# (intel_car) for ~5 ms a frame, so the stage leaves such GOPs alone
LONG_STEP = 4


class WienerStage(Stage):
    """The Wiener filters as a stage: per GOP and plane, least-squares filters from the
    encoder's decoded prediction to the source, sent in a WIENER chunk (before the GOP chunk)
    where they save more than their bits, applied last by the decoder in integer arithmetic;
    not on GOPs at temporal step LONG_STEP and up. ``output``: whether a later stage reads the
    encoder's filtered frames; ``layouts``: the encoder tries LAYOUTS[:layouts] (at 720p one
    class takes ~8 ms a luma frame to apply, 18 classes ~31 ms)."""

    name, chunk = "wiener", Wiener

    def __init__(
        self, qp: int, format_version: int, output: bool = True, layouts: int = len(LAYOUTS)
    ) -> None:
        super().__init__()
        self.encoder = WienerEncoder(qp, output, layouts)
        self.decoder = WienerDecoder(format_version)

    def encode_gop(
        self, source: Gop, prediction: Gop, ctx: GopContext
    ) -> tuple[Gop, Wiener | None]:
        if ctx.step >= LONG_STEP:
            return prediction, None
        with self.timed():
            filters, prediction = self.encoder.encode_gop(source, prediction)
        if filters is None:
            return prediction, None
        self._used = True
        return prediction, Wiener(ctx.index, filters)

    def decode_gop(self, prediction: Gop, payload: bytes | None, ctx: GopContext) -> Gop:
        if payload is None:
            return prediction
        with self.timed():
            return apply_gop(prediction, self.decoder.read(payload))
