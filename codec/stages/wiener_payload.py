"""What a WIENER chunk holds (FORMAT.md, *Wiener filters*): the filters' geometry (diamond
taps, luma taps, class layouts) and their integer coefficients, range coded against the
plane's last filter; the encoder packs them, the decoder reads them back (WienerDecoder)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vcodec.bitstream.container import FORMAT_VERSION
from vcodec.entropy import FrequencyTable, SymbolDecoder, SymbolEncoder
from vcodec.errors import MalformedError

PRECISION_BITS = 7  # coefficients in units of 2^-7
RADII = (3, 2, 2)  # diamond radius of the Y, U and V filters: 12 and 6 tap pairs
# a chroma filter's luma taps: offsets (dy, dx) from the co-located luma pixel (2i, 2j)
LUMA_TAPS = (
    (0, -1), (0, 1), (-1, 0), (1, 0), (1, -1), (1, 1), (-1, -1), (-1, 1), (2, 0), (0, 2),
    (-2, 0), (0, -2),
)  # fmt: skip
CROSS_COMPONENT_VERSION = 6  # the first format version whose chroma filters have luma taps
LAYOUTS = (1, 6, 18)  # classes of a filter: one; by activity; by activity and direction
OFF, REUSE = 0, 1  # plane modes; 2 + i: a new filter under LAYOUTS[i]
MODE_TABLE = FrequencyTable.uniform(2 + len(LAYOUTS))
COEF_LIMIT = 2047  # |c| at most this (16 levels of offset)
# a coded value's zigzag z takes bucket bit_length(z): 0..13 (differences reach 2 COEF_LIMIT)
BUCKETS = 14


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


def _write_coefs(enc: SymbolEncoder, coefs: np.ndarray) -> None:
    """Zigzag values (0, -1, 1, -2 -> 0, 1, 2, 3) by bucket (their bit length, adaptive) and,
    within it, the bits below the leading one (uniform)."""
    z = np.where(coefs >= 0, 2 * coefs, -2 * coefs - 1).ravel()
    buckets = np.array([int(v).bit_length() for v in z], np.int32)
    enc.encode_adaptive(buckets, BUCKETS)
    for v, bucket in zip(z, buckets, strict=True):
        if bucket > 1:
            enc.encode(int(v) - (1 << (bucket - 1)), FrequencyTable.uniform(1 << (bucket - 1)))


def coded_against(last: PlaneFilter | None, layout: int, shape: tuple[int, int]) -> np.ndarray:
    """What a new filter's coefficients are coded against: the plane's last filter where it
    has the same layout, else zeros."""
    if last is not None and last.layout == layout:
        return last.coefs
    return np.zeros(shape, np.int64)


def _read_coefs(dec: SymbolDecoder, shape: tuple[int, int], base: np.ndarray) -> np.ndarray:
    buckets = dec.decode_adaptive(shape[0] * shape[1], BUCKETS)
    z = np.zeros(len(buckets), np.int64)
    for i, bucket in enumerate(buckets):
        if bucket == 1:
            z[i] = 1
        elif bucket > 1:
            low = dec.decode(FrequencyTable.uniform(1 << (bucket - 1)))
            z[i] = (1 << (bucket - 1)) + low
    coefs = np.where(z % 2 == 0, z // 2, -(z + 1) // 2).reshape(shape) + base
    if np.abs(coefs).max(initial=0) > COEF_LIMIT:
        raise MalformedError("Wiener filter: a coefficient out of range")
    return coefs


def coef_bits(coefs: np.ndarray) -> int:
    enc = SymbolEncoder()
    _write_coefs(enc, coefs)
    return 8 * len(enc.finish())


def pack(
    planes: list[tuple[int, PlaneFilter | None]], last: list[PlaneFilter | None] | None = None
) -> bytes:
    """The payload of three planes' (mode, filter): a new filter's mode (2 + layout) is
    followed by its coefficients less those it is coded against (``coded_against``: the
    plane's ``last`` filter where it has the same layout)."""
    enc = SymbolEncoder()
    for (mode, filt), previous in zip(planes, last or [None] * 3, strict=True):
        enc.encode(mode, MODE_TABLE)
        if mode >= 2:
            if filt is None or mode != 2 + filt.layout:
                raise ValueError(f"mode {mode} needs a filter of layout {mode - 2}")
            _write_coefs(enc, filt.coefs - coded_against(previous, filt.layout, filt.coefs.shape))
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
            base = coded_against(self.last[index], layout, shape)
            filt = PlaneFilter(layout, _read_coefs(dec, shape, base))
            self.last[index] = filt
            out.append(filt)
        return out
