"""Per-GOP coding parameters (the scale s) and their side info: a v0 rule, later seed 004."""

from __future__ import annotations

from dataclasses import dataclass

from vcodec.bitstream.errors import MalformedError

from .entropy import FrequencyTable, SymbolDecoder, SymbolEncoder

SCALES = (1, 2)  # spatial down-scaling factors a GOP may use; side info codes the index
SCALE_TABLE = FrequencyTable.uniform(len(SCALES))
# A GOP at half size is coded at a lower QP, so that --qp keeps a smooth rate: at s = 2 with
# qp - 5 the rate lands next to the s = 1 rate at the same --qp (bikes, qp 42: 0.0118 vs 0.0138
# bpp), where it would drop 3x with no offset.
BASE_QP_OFFSET = {1: 0, 2: 5}
# v0 rule, from benchmarks/scale_rule.py (32 frames of carphone 176x144, bikes 640x272,
# intel_car 768x432, bigbuckbunny and flower 1280x720; x265 medium, bicubic up-scaling): a
# half-size base layer at CRF 37 beat the full-size curve at the same rate on every clip
# (+0.4 to +1.3 dB PSNR-YUV); at CRF 32 it won on three clips and lost on two (-0.35, -0.17 dB);
# lower, full size won. So s = 2 from --qp 42 (CRF 37). On 176x144 clips the whole-curve BD-rate
# vs x265 got worse with s = 2 (`vcodec bench`, 50 frames, carphone +4.1 %, dance +2.3 %
# PSNR-YUV), so frames under 240 lines stay at s = 1.
AUTO_SCALE2_MIN_QP = 42
AUTO_SCALE2_MIN_HEIGHT = 240


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


def base_qp(qp: int, scale: int) -> int:
    """The base layer's QP (CRF) for a GOP at ``scale`` under the user's --qp."""
    return max(0, qp - BASE_QP_OFFSET[scale])


def auto_scale(qp: int, height: int) -> int:
    """v0's scale rule from the QP and the frame height (see the constants above)."""
    return 2 if qp >= AUTO_SCALE2_MIN_QP and height >= AUTO_SCALE2_MIN_HEIGHT else 1
