"""The mask codec's numbers: sample quantiser, RD lambda, and the integer sample-value models.

Every probability the range coder sees comes from integers (DESIGN §4): a sample model is one
of ``len(GEOMETRIC_RATIOS)`` two-sided geometric tables built by integer recursion, picked per
GOP and context by the encoder and sent as an index; mask indices use adaptive counts.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

# 2^16 * r for the two-sided geometric tables P(q) ~ r^|q|; table j has a mean |q| of about
# 0.25 * 1.3^j. Integers, so every machine builds the same tables.
GEOMETRIC_RATIOS = (
    1200, 3021, 6146, 10611, 16153, 22316, 28614, 34644, 40135, 44943, 49031, 52426, 55197,
    57428, 59205, 60610, 61713, 62575, 63246, 63767, 64171, 64484, 64725, 64911, 65055, 65166,
    65251, 65317, 65367, 65406, 65436, 65459,
)  # fmt: skip
TABLE_ONE = 1 << 16  # the count of q = 0 in every geometric table
# Sample contexts: plane group (luma, chroma) x the density class of the patch mask.
DENSITY_CLASS_BOUNDS = (1 / 16, 1 / 4)  # density <= 1/16 -> class 0, <= 1/4 -> 1, else 2
DENSITY_CLASSES = len(DENSITY_CLASS_BOUNDS) + 1


def sample_step(qp: int, pure: bool) -> float:
    """The quantiser step of a sample, in 8-bit levels: doubles every 6 QP, like x264's."""
    return 2.0 ** ((qp - (10 if pure else 16)) / 6)


def max_level(step: float) -> int:
    """The largest |q| a sample can take: a residual spans -255..255 levels."""
    return int(np.ceil(255.0 / step))


def quantise(residual: np.ndarray, step: float) -> np.ndarray:
    """Residual in 8-bit levels -> integer levels q (int32), |q| <= max_level(step)."""
    limit = max_level(step)
    q = residual / step  # (in place from here: one temporary the size of the residual)
    np.rint(q, out=q)
    np.clip(q, -limit, limit, out=q)
    return q.astype(np.int32)


@lru_cache(maxsize=256)
def geometric_counts(table: int, limit: int) -> tuple[int, ...]:
    """Integer counts for q = -limit..limit under geometric table ``table`` (all >= 1)."""
    ratio = GEOMETRIC_RATIOS[table]
    half = [TABLE_ONE]
    for _ in range(limit):
        half.append(max(1, half[-1] * ratio >> 16))
    return tuple(half[:0:-1] + half)


@lru_cache(maxsize=64)
def geometric_bits(limit: int) -> np.ndarray:
    """[tables, 2 * limit + 1] cost in bits of each level under each geometric table."""
    rows = []
    for table in range(len(GEOMETRIC_RATIOS)):
        counts = np.asarray(geometric_counts(table, limit), dtype=np.float64)
        rows.append(-np.log2(counts / counts.sum()))
    return np.stack(rows)


def best_table(levels: np.ndarray, limit: int) -> tuple[int, float]:
    """The geometric table that codes ``levels`` in the fewest bits, and that many bits."""
    if levels.size == 0:
        return 0, 0.0
    hist = np.bincount(levels.ravel() + limit, minlength=2 * limit + 1)
    totals = geometric_bits(limit) @ hist
    table = int(np.argmin(totals))
    return table, float(totals[table])


def density_class(density: np.ndarray) -> np.ndarray:
    """Per-mask density class (0, 1, 2) from densities in [0, 1]."""
    return np.searchsorted(np.asarray(DENSITY_CLASS_BOUNDS), density, side="left")
