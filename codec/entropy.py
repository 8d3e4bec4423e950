"""The one module that talks to constriction: range coding under integer frequency tables.

Determinism (DESIGN §4): a model is a tuple of integer counts. The probabilities handed to
constriction are those counts divided by their sum in float64, which is exact IEEE arithmetic on
every machine, and constriction quantises them with a fixed integer algorithm, so an encoder and
a decoder on any device derive identical tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import constriction
import numpy as np

from vcodec.errors import MalformedError

ADAPTIVE_INCREMENT = 32  # added to an adaptive symbol's count each time it is used


def rd_lambda(qp: int) -> float:
    """Lagrangian for D (sum of squared 8-bit errors) + lambda * R (bits): x264's mode lambda."""
    return 0.85 * 2.0 ** ((qp - 12) / 3)


# The slope -dD/dR of vcodec's x265 base layer between neighbouring --qp (27-32, ..., 42-47),
# median over the clips of the parameter module's first training database (7 clips): 4.9, 6.7,
# 7.9 and 6.9 times rd_lambda.
BASE_LAMBDA_FACTOR = 6.8


def base_lambda(qp: int) -> float:
    """The exchange rate of the base layer's bits for SSE: D + base_lambda * R (bits) is what
    the Wiener filters' choices minimise."""
    return BASE_LAMBDA_FACTOR * rd_lambda(qp)


_ROWS = constriction.stream.model.Categorical(perfect=False)  # probabilities given per symbol


@dataclass(frozen=True)
class FrequencyTable:
    """An adaptive-free categorical model: symbol i has probability counts[i] / sum(counts)."""

    counts: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.counts) < 1 or any(c <= 0 or int(c) != c for c in self.counts):
            raise ValueError(f"counts must be positive integers, got {self.counts}")

    @classmethod
    def uniform(cls, size: int) -> FrequencyTable:
        return cls((1,) * size)

    @property
    def size(self) -> int:
        return len(self.counts)

    @cached_property
    def model(self) -> constriction.stream.model.Categorical:
        counts = np.asarray(self.counts, dtype=np.float64)
        return constriction.stream.model.Categorical(counts / counts.sum(), perfect=False)


class SymbolEncoder:
    """Collects symbols, each under its own table; ``finish()`` returns the compressed bytes."""

    def __init__(self) -> None:
        self._coder = constriction.stream.queue.RangeEncoder()

    def encode(self, symbol: int, table: FrequencyTable) -> None:
        if not 0 <= symbol < table.size:
            raise ValueError(f"symbol {symbol} outside an alphabet of {table.size}")
        self._coder.encode(np.array([symbol], dtype=np.int32), table.model)

    def encode_array(self, symbols: np.ndarray, table: FrequencyTable) -> None:
        """Encode many symbols, all under one table (one call into the coder)."""
        symbols = np.asarray(symbols, dtype=np.int32).ravel()
        if symbols.size and not (0 <= symbols.min() and symbols.max() < table.size):
            raise ValueError(f"symbols outside an alphabet of {table.size}")
        if symbols.size:
            self._coder.encode(symbols, table.model)

    def encode_adaptive(self, symbols: np.ndarray, size: int) -> None:
        """Encode symbols under an adaptive categorical model (samples.adaptive_probabilities)."""
        symbols = np.asarray(symbols, dtype=np.int32).ravel()
        self.encode_rows(symbols, adaptive_probabilities(symbols, size))

    def encode_rows(self, symbols: np.ndarray, rows: np.ndarray) -> None:
        """Encode symbol i under the probabilities ``rows[i]`` (float64 [n, size], each row
        integer counts divided by their sum, so that a decoder derives the same rows)."""
        symbols = np.asarray(symbols, dtype=np.int32).ravel()
        if symbols.size:
            self._coder.encode(symbols, _ROWS, np.asarray(rows, dtype=np.float64))

    def finish(self) -> bytes:
        """The compressed 32-bit words, big-endian, without their trailing zero bytes."""
        words = self._coder.get_compressed()
        return np.asarray(words, dtype=">u4").tobytes().rstrip(b"\0")


class SymbolDecoder:
    """Reads back, in the same order and with the same tables, what a SymbolEncoder wrote."""

    def __init__(self, data: bytes) -> None:
        if data.endswith(b"\0"):
            raise MalformedError("range-coded data ends in a zero byte, which encoders strip")
        padded = data + bytes(-len(data) % 4 + 8)  # restore the stripped zeros (and a margin)
        words = np.frombuffer(padded, dtype=">u4").astype(np.uint32)
        self._coder = constriction.stream.queue.RangeDecoder(words)

    def decode(self, table: FrequencyTable) -> int:
        return int(self._decode(table.model, 1)[0])

    def decode_array(self, n: int, table: FrequencyTable) -> np.ndarray:
        if n == 0:
            return np.zeros(0, dtype=np.int32)
        return np.asarray(self._decode(table.model, n), dtype=np.int32)

    def decode_row(self, row: np.ndarray) -> int:
        """One symbol under the probabilities ``row`` (the encoder's ``encode_rows`` row)."""
        return int(self._decode(_ROWS, np.asarray(row, dtype=np.float64)[None])[0])

    def _decode(self, model: object, arg: object) -> np.ndarray:
        """constriction's decode; damaged data that no encoder could write is MalformedError
        (constriction raises AssertionError or ValueError for it)."""
        try:
            return self._coder.decode(model, arg)
        except (AssertionError, ValueError, RuntimeError) as exc:
            raise MalformedError(f"range-coded data does not decode ({exc}): damaged") from None

    def decode_adaptive(self, n: int, size: int) -> np.ndarray:
        """Read back what ``encode_adaptive`` wrote: the same counts, grown symbol by symbol."""
        counts = np.ones(size, dtype=np.int64)
        out = np.zeros(n, dtype=np.int32)
        for i in range(n):
            out[i] = symbol = self.decode_row(counts / counts.sum())
            counts[symbol] += ADAPTIVE_INCREMENT
        return out


def adaptive_probabilities(symbols: np.ndarray, size: int) -> np.ndarray:
    """[N, size] probabilities of an adaptive categorical model seeing ``symbols`` in order.

    Counts start at 1 and grow by ADAPTIVE_INCREMENT per use; row i holds the counts before
    symbol i, divided by their sum (exact float64 of integers: identical on every machine).
    """
    onehot = np.zeros((symbols.size, size), dtype=np.int64)
    onehot[np.arange(symbols.size), symbols] = ADAPTIVE_INCREMENT
    counts = 1 + np.cumsum(onehot, axis=0) - onehot
    return counts / counts.sum(axis=1, keepdims=True)
