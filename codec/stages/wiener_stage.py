"""TEMPORARY home of WienerStage (moves into wiener.py once its speed work lands)."""

from __future__ import annotations

from vcodec.bitstream.container import Wiener
from vcodec.frames import Gop
from vcodec.stages.stage import GopContext, Stage
from vcodec.stages.wiener import WienerDecoder, WienerEncoder, apply_gop


class WienerStage(Stage):
    """The Wiener filters as a stage: per GOP and plane, least-squares filters from the
    encoder's decoded prediction to the source, sent in a WIENER chunk (before the GOP chunk)
    where they save more than their bits, applied last by the decoder in integer arithmetic."""

    name, chunk = "wiener", Wiener

    def __init__(self, qp: int, format_version: int) -> None:
        super().__init__()
        self.encoder = WienerEncoder(qp)
        self.decoder = WienerDecoder(format_version)

    def encode_gop(
        self, source: Gop, prediction: Gop, ctx: GopContext
    ) -> tuple[Gop, Wiener | None]:
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
