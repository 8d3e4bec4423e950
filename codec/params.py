"""Per-GOP coding parameters (the scale s) and their side info: a v0 rule, later seed 004."""

from __future__ import annotations

from dataclasses import dataclass

from vcodec.bitstream.errors import MalformedError

from .entropy import FrequencyTable, SymbolDecoder, SymbolEncoder

SCALES = (1, 2)  # spatial down-scaling factors a GOP may use; side info codes the index
SCALE_TABLE = FrequencyTable.uniform(len(SCALES))
# v0 rule: a GOP is coded at half resolution when the rate is low and the picture large enough
# that half of it still carries the content. Measured with benchmarks/scale_rule.py.
AUTO_SCALE2_MIN_QP = 37
AUTO_SCALE2_MIN_HEIGHT = 288


@dataclass(frozen=True)
class GopParams:
    """What the decoder must know about one GOP beyond the base layer."""

    scale: int = 1

    def pack(self) -> bytes:
        enc = SymbolEncoder()
        enc.encode(SCALES.index(self.scale), SCALE_TABLE)
        return enc.finish()

    @classmethod
    def unpack(cls, data: bytes) -> GopParams:
        dec = SymbolDecoder(data)
        index = dec.decode(SCALE_TABLE)
        if index >= len(SCALES):
            raise MalformedError(f"GOP side info: scale index {index} out of range")
        return cls(scale=SCALES[index])


def auto_scale(qp: int, height: int) -> int:
    """v0's scale rule from the QP and the frame height (see the constants above)."""
    return 2 if qp >= AUTO_SCALE2_MIN_QP and height >= AUTO_SCALE2_MIN_HEIGHT else 1
