"""The Wiener filter (seed 004's artifact removal, in closed form): per GOP and plane, the
encoder fits the least-squares filter from the decoded prediction to the source, one per
class of local activity and direction, and sends its integer coefficients; the decoder
applies them in integer arithmetic, so every machine gets the same pixels.

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

from vcodec.bitstream.container import FORMAT_VERSION
from vcodec.entropy import FrequencyTable, SymbolDecoder, SymbolEncoder, base_lambda
from vcodec.errors import MalformedError
from vcodec.frames import PSNR_YUV_WEIGHTS, Gop

PRECISION_BITS = 7  # coefficients in units of 2^-7
RADII = (3, 2, 2)  # diamond radius of the Y, U and V filters: 12 and 6 tap pairs
# a chroma filter's luma taps: offsets (dy, dx) from the co-located luma pixel (2i, 2j)
LUMA_TAPS = (
    (0, -1), (0, 1), (-1, 0), (1, 0), (1, -1), (1, 1), (-1, -1), (-1, 1), (2, 0), (0, 2),
    (-2, 0), (0, -2),
)  # fmt: skip
LUMA_PAD = 2  # the largest |offset| of LUMA_TAPS
CROSS_COMPONENT_VERSION = 6  # the first format version whose chroma filters have luma taps
# class boundaries on a pixel's activity: the 3x3 box sum of |2x - left - right| +
# |2x - up - down|
ACTIVITY_EDGES = (18, 45, 90, 180, 360)
DIRECTIONS = 3  # none, horizontal (gradient across columns twice that across rows), vertical
LAYOUTS = (1, 6, 18)  # classes of a filter: one; by activity; by activity and direction
OFF, REUSE = 0, 1  # plane modes; 2 + i: a new filter under LAYOUTS[i]
MODE_TABLE = FrequencyTable.uniform(2 + len(LAYOUTS))
COEF_LIMIT = 2047  # |c| at most this (16 levels of offset)
# a coded value's zigzag z takes bucket bit_length(z): 0..13 (differences reach 2 COEF_LIMIT)
BUCKETS = 14
MIN_CLASS_PIXELS = 64  # a class with fewer pixels per coefficient gets no filter (zeros)
RIDGE = 1e-3  # added to the normal equations' diagonal, per pixel: keeps them solvable
STATISTICS_ROWS = 256  # rows of a frame whose normal equations are summed at once
CHUNK_FRAMING_BYTES = 7  # a WIENER chunk's type, length, GOP index and CRC32
WEIGHT_RANGE = (0.25, 4.0)  # the bounds of a chroma plane's SSE worth (plane_weights)


def taps(radius: int) -> list[tuple[int, int]]:
    """One offset (dy, dx) of each +- pair of the diamond |dy| + |dx| <= radius."""
    return [
        (dy, dx)
        for dy in range(0, radius + 1)
        for dx in range(-radius, radius + 1)
        if 0 < abs(dy) + abs(dx) <= radius and (dy > 0 or dx > 0)
    ]


@dataclass(frozen=True)
class PlaneFilter:
    """One plane's filter: ``coefs`` int [classes, taps + 1] (the last column is c_0) in
    1/128, the classes those of LAYOUTS[``layout``]."""

    layout: int
    coefs: np.ndarray


def n_coefs(index: int, cross_component: bool = True) -> int:
    """Coefficients of one class of plane ``index``'s filter: taps, luma taps, offset."""
    luma = len(LUMA_TAPS) if index and cross_component else 0
    return len(taps(RADII[index])) + luma + 1


def _features(
    plane: np.ndarray, radius: int, luma: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Second differences of one frame [H, W] uint8, then with ``luma`` (the frame's luma
    plane, for a chroma plane) its LUMA_TAPS differences: int32 [taps, H, W]; and the classes
    of the finest layout, int [H, W]."""
    x = plane.astype(np.int32)
    h, w = x.shape
    p = np.pad(x, radius, mode="edge")
    r = radius
    diffs = np.stack(
        [
            p[r + dy : r + dy + h, r + dx : r + dx + w]
            + p[r - dy : r - dy + h, r - dx : r - dx + w]
            - 2 * x
            for dy, dx in taps(radius)
        ]
    )
    if luma is not None:
        diffs = np.concatenate([diffs, _luma_differences(luma, h, w)])
    return diffs, _classes(p[r - 1 : r + h + 1, r - 1 : r + w + 1])


def _luma_differences(luma: np.ndarray, h: int, w: int) -> np.ndarray:
    """int32 [LUMA_TAPS, h, w]: y[2i + dy, 2j + dx] - y[2i, 2j] of the chroma grid h x w
    (luma edge-replicated; an odd luma size's last chroma pixel sits on its last pixel)."""
    y = np.pad(luma.astype(np.int32), LUMA_PAD, mode="edge")
    rows = np.minimum(2 * np.arange(h), luma.shape[0] - 1)[:, None] + LUMA_PAD
    cols = np.minimum(2 * np.arange(w), luma.shape[1] - 1)[None, :] + LUMA_PAD
    centre = y[rows, cols]
    return np.stack([y[rows + dy, cols + dx] - centre for dy, dx in LUMA_TAPS])


def _classes(p: np.ndarray) -> np.ndarray:
    """Activity x direction class (0..17) of every pixel of an int32 frame padded by 1."""
    c = p[1:-1, 1:-1]
    gh = np.pad(np.abs(2 * c - p[1:-1, :-2] - p[1:-1, 2:]), 1, mode="edge")
    gv = np.pad(np.abs(2 * c - p[:-2, 1:-1] - p[2:, 1:-1]), 1, mode="edge")
    box_h, box_v = (_box3(g) for g in (gh, gv))
    activity = np.searchsorted(ACTIVITY_EDGES, box_h + box_v, side="right")
    direction = np.where(box_h > 2 * box_v, 1, np.where(box_v > 2 * box_h, 2, 0))
    return activity * DIRECTIONS + direction


def _box3(g: np.ndarray) -> np.ndarray:
    """3x3 box sums of a padded-by-1 array (the inner size)."""
    rows = g[:-2] + g[1:-1] + g[2:]
    return rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]


def _layout_classes(finest: np.ndarray, layout: int) -> np.ndarray:
    """The classes of LAYOUTS[layout] from the finest ones (3a + d: // 3 gives a, // 18 0)."""
    return finest // (LAYOUTS[-1] // LAYOUTS[layout])


def apply(
    plane: np.ndarray, radius: int, filt: PlaneFilter, luma: np.ndarray | None = None
) -> np.ndarray:
    """The filtered plane [T, H, W] uint8; ``luma`` [T, ...]: the luma a chroma filter with
    luma taps reads (the GOP's unfiltered prediction)."""
    if filt.coefs.shape[1] == len(taps(radius)) + 1:
        luma = None  # no luma taps (a stream before version 6)
    out = np.empty_like(plane)
    for t in range(plane.shape[0]):
        diffs, finest = _features(plane[t], radius, None if luma is None else luma[t])
        coefs = filt.coefs.astype(np.int32)
        if len(coefs) > 1:  # per pixel, its class's coefficients
            coefs = coefs[_layout_classes(finest, filt.layout)].transpose(2, 0, 1)
        else:
            coefs = coefs[0, :, None, None]
        acc = coefs[-1] + np.einsum("khw,khw->hw", coefs[:-1], diffs, dtype=np.int32)
        correction = (acc + (1 << (PRECISION_BITS - 1))) >> PRECISION_BITS
        out[t] = np.clip(plane[t].astype(np.int32) + correction, 0, 255)
    return out


@dataclass
class _Statistics:
    """Normal equations of one plane of one GOP per class of the finest layout: ``a``
    [18, n, n], ``b`` [18, n], ``rr`` [18] (sum of squared residuals), ``count`` [18]."""

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
    source: np.ndarray, decoded: np.ndarray, radius: int, luma: np.ndarray | None = None
) -> _Statistics:
    n = len(taps(radius)) + (0 if luma is None else len(LUMA_TAPS)) + 1
    classes = LAYOUTS[-1]
    a = np.zeros((classes, n, n))
    b = np.zeros((classes, n))
    rr = np.zeros(classes)
    count = np.zeros(classes)
    for t in range(source.shape[0]):
        diffs, finest = _features(decoded[t], radius, None if luma is None else luma[t])
        residual = source[t].astype(np.float64) - decoded[t]
        for top in range(0, finest.shape[0], STATISTICS_ROWS):  # float64 copies stay small
            rows = slice(top, top + STATISTICS_ROWS)
            cls = finest[rows].ravel()
            order = np.argsort(cls, kind="stable")  # pixels grouped by class
            x = np.ones((n, cls.size))
            x[:-1] = diffs[:, rows].reshape(n - 1, -1)
            x, r = x[:, order], residual[rows].ravel()[order]
            bounds = np.searchsorted(cls[order], np.arange(classes + 1))
            for k, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
                a[k] += x[:, lo:hi] @ x[:, lo:hi].T
                b[k] += x[:, lo:hi] @ r[lo:hi]
                rr[k] += r[lo:hi] @ r[lo:hi]
                count[k] += hi - lo
    return _Statistics(a, b, rr, count)


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


def _write_coefs(enc: SymbolEncoder, coefs: np.ndarray) -> None:
    """Zigzag values (0, -1, 1, -2 -> 0, 1, 2, 3) by bucket (their bit length, adaptive) and,
    within it, the bits below the leading one (uniform)."""
    z = np.where(coefs >= 0, 2 * coefs, -2 * coefs - 1).ravel()
    buckets = np.array([int(v).bit_length() for v in z], np.int32)
    enc.encode_adaptive(buckets, BUCKETS)
    for v, bucket in zip(z, buckets, strict=True):
        if bucket > 1:
            enc.encode(int(v) - (1 << (bucket - 1)), FrequencyTable.uniform(1 << (bucket - 1)))


def _predicted(last: PlaneFilter | None, layout: int, shape: tuple[int, int]) -> np.ndarray:
    """What a new filter's coefficients are coded against: the plane's last filter where it
    has the same layout, else zeros."""
    if last is not None and last.layout == layout:
        return last.coefs
    return np.zeros(shape, np.int64)


def _read_coefs(dec: SymbolDecoder, shape: tuple[int, int], predicted: np.ndarray) -> np.ndarray:
    buckets = dec.decode_adaptive(shape[0] * shape[1], BUCKETS)
    z = np.zeros(len(buckets), np.int64)
    for i, bucket in enumerate(buckets):
        if bucket == 1:
            z[i] = 1
        elif bucket > 1:
            low = dec.decode(FrequencyTable.uniform(1 << (bucket - 1)))
            z[i] = (1 << (bucket - 1)) + low
    coefs = np.where(z % 2 == 0, z // 2, -(z + 1) // 2).reshape(shape) + predicted
    if np.abs(coefs).max(initial=0) > COEF_LIMIT:
        raise MalformedError("Wiener filter: a coefficient out of range")
    return coefs


def _coef_bits(coefs: np.ndarray) -> int:
    enc = SymbolEncoder()
    _write_coefs(enc, coefs)
    return 8 * len(enc.finish())


class WienerEncoder:
    """Fits and chooses each GOP's filters; remembers each plane's last sent filter (REUSE)."""

    def __init__(self, qp: int) -> None:
        self.lam = base_lambda(qp)
        self.last: list[PlaneFilter | None] = [None, None, None]

    def encode_gop(self, source: Gop, prediction: Gop) -> tuple[bytes | None, Gop]:
        """The GOP's Wiener payload and the filtered prediction; (None, ``prediction``) where
        no filter saves more than its bits and the chunk's framing cost."""
        pairs = list(zip(source.planes(), prediction.planes(), strict=True))
        lumas = _luma_inputs(prediction)
        stats = [
            _statistics(src, dec, radius, luma)
            for (src, dec), radius, luma in zip(pairs, RADII, lumas, strict=True)
        ]
        weights = plane_weights([float(s.rr.sum()) for s in stats])  # the base layer's SSE
        choices = [
            self._choose(index, src, dec, luma, st, self.lam / weight)
            for index, ((src, dec), luma, st, weight) in enumerate(
                zip(pairs, lumas, stats, weights, strict=True)
            )
        ]
        payload = pack([(mode, filt) for mode, filt, _, _ in choices], self.last)
        saving = sum(w * c[3] for w, c in zip(weights, choices, strict=True))
        saving -= self.lam * 8 * CHUNK_FRAMING_BYTES
        if all(mode == OFF for mode, *_ in choices) or saving <= 0:
            return None, prediction
        for index, (mode, filt, _, _) in enumerate(choices):
            if mode >= 2:
                self.last[index] = filt
        return payload, Gop(*(c[2] for c in choices), prediction.start)

    def _choose(
        self,
        index: int,
        source: np.ndarray,
        decoded: np.ndarray,
        luma: np.ndarray | None,
        stats: _Statistics,
        lam: float,
    ) -> tuple[int, PlaneFilter | None, np.ndarray, float]:
        """The plane's (mode, filter, output, saving in D + lam R) by D + lam R: D from its
        normal equations ``stats`` plus the output's rounding noise (1/12 a pixel), then
        checked on the real output."""
        radius = RADII[index]
        base = float(stats.rr.sum())
        rounding = stats.count.sum() / 12
        candidates = [] if self.last[index] is None else [(REUSE, self.last[index], 0)]
        for layout, used in itertools.product(range(len(LAYOUTS)), _coefficient_sets(index)):
            coefs = _solve(stats.merged(layout), used)
            if coefs.any():
                bits = _coef_bits(coefs - _predicted(self.last[index], layout, coefs.shape))
                candidates.append((2 + layout, PlaneFilter(layout, coefs), bits))
        best = (base, OFF, None, 0)
        for mode, filt, bits in candidates:
            cost = stats.merged(filt.layout).sse(filt.coefs) + rounding + lam * bits
            if cost < best[0]:
                best = (cost, mode, filt, bits)
        _, mode, filt, bits = best
        if filt is None:
            return OFF, None, decoded, 0.0
        out = apply(decoded, radius, filt, luma)
        saving = base - _sse(source, out) - lam * bits
        if saving <= 0:
            return OFF, None, decoded, 0.0
        return mode, filt, out, saving


def _sse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sum((a.astype(np.float64) - b) ** 2))


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


def pack(
    planes: list[tuple[int, PlaneFilter | None]], last: list[PlaneFilter | None] | None = None
) -> bytes:
    """The payload of three planes' (mode, filter): a new filter's mode (2 + layout) is
    followed by its coefficients less those ``_predicted`` from the plane's ``last`` filter."""
    enc = SymbolEncoder()
    for (mode, filt), previous in zip(planes, last or [None] * 3, strict=True):
        enc.encode(mode, MODE_TABLE)
        if mode >= 2:
            if filt is None or mode != 2 + filt.layout:
                raise ValueError(f"mode {mode} needs a filter of layout {mode - 2}")
            _write_coefs(enc, filt.coefs - _predicted(previous, filt.layout, filt.coefs.shape))
    return enc.finish()


class WienerDecoder:
    """Reads GOP payloads in stream order (REUSE refers to the plane's last sent filter) of a
    stream of ``format_version`` (chroma filters have luma taps from CROSS_COMPONENT_VERSION)."""

    def __init__(self, format_version: int = FORMAT_VERSION) -> None:
        self.last: list[PlaneFilter | None] = [None, None, None]
        self.cross_component = format_version >= CROSS_COMPONENT_VERSION

    def read(self, data: bytes) -> list[PlaneFilter | None]:
        """The filters of one GOP's three planes (None: off)."""
        dec = SymbolDecoder(data)
        out: list[PlaneFilter | None] = []
        for index in range(3):
            mode = dec.decode(MODE_TABLE)
            if mode == OFF:
                out.append(None)
                continue
            if mode == REUSE:
                if self.last[index] is None:
                    raise MalformedError("Wiener filter: REUSE before any filter was sent")
                out.append(self.last[index])
                continue
            layout = mode - 2
            shape = (LAYOUTS[layout], n_coefs(index, self.cross_component))
            predicted = _predicted(self.last[index], layout, shape)
            filt = PlaneFilter(layout, _read_coefs(dec, shape, predicted))
            self.last[index] = filt
            out.append(filt)
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
