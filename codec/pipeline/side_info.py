"""Per-GOP side info: the GOP chunk's symbols (scale, post strength, temporal step)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from vcodec.bitstream.container import FORMAT_VERSION
from vcodec.entropy import FrequencyTable, SymbolDecoder, SymbolEncoder
from vcodec.errors import MalformedError
from vcodec.stages.post import POST_STRENGTHS, post_model
from vcodec.stages.scale import SCALES
from vcodec.stages.temporal import PREDICT_MODEL

SCALE_TABLE = FrequencyTable.uniform(len(SCALES))
POST_TABLE = FrequencyTable.uniform(len(POST_STRENGTHS))
OLD_STEPS = (1, 2)  # the step symbol of versions 4-6
STEP_TABLE = FrequencyTable.uniform(len(OLD_STEPS))
# the first format version whose hybrid GOPs always code their temporal mode: step 1, step 2
# with the dropped frames made from their neighbours' mean (refined by predict-v1 when the
# header names it), or step 2 with them interpolated along the optical flow between them
ALWAYS_STEP_VERSION = 7
# (step, flow); version 7 has the first three, version 8 on also steps 4 and 8 (their dropped
# frames interpolated linearly between the coded frames around them)
TEMPORAL_MODES = ((1, False), (2, False), (2, True), (4, False), (8, False))
LONG_STEP_VERSION = 8
VERSION_7_MODES = 3  # TEMPORAL_MODES[:3]


@cache
def temporal_table(version: int) -> FrequencyTable:
    """The temporal mode's table in a stream of format ``version`` (7 on)."""
    modes = len(TEMPORAL_MODES) if version >= LONG_STEP_VERSION else VERSION_7_MODES
    return FrequencyTable.uniform(modes)


@dataclass(frozen=True)
class GopParams:
    """What the decoder must know about one GOP beyond the base layer."""

    scale: int = 1
    post: int | None = None  # index into POST_STRENGTHS; None: the stream has no post-processing
    # temporal step (temporal.STEPS); None: the stream has no frame prediction
    step: int | None = None
    # step 2: the dropped frames follow the optical flow; None: the stream (before version 7)
    # has no such choice
    flow: bool | None = None

    @property
    def strength(self) -> float:
        return 0.0 if self.post is None else POST_STRENGTHS[self.post]

    def pack(self) -> bytes:
        enc = SymbolEncoder()
        enc.encode(SCALES.index(self.scale), SCALE_TABLE)
        if self.post is not None:
            enc.encode(self.post, POST_TABLE)
        if self.flow is not None:  # written at this version only (FORMAT_VERSION)
            enc.encode(TEMPORAL_MODES.index((self.step, self.flow)), temporal_table(FORMAT_VERSION))
        elif self.step is not None:  # versions 4-6 (tests write old streams)
            enc.encode(OLD_STEPS.index(self.step), STEP_TABLE)
        return enc.finish()

    @classmethod
    def unpack(
        cls,
        data: bytes,
        post: bool = False,
        predict: bool = False,
        flow: bool = False,
        version: int = FORMAT_VERSION,
    ) -> GopParams:
        """``post``, ``predict``: whether the stream names the post-processing network and the
        frame-prediction network (each adds a symbol: post strength, then temporal step);
        ``flow``: the temporal symbol is a mode of TEMPORAL_MODES (version 7 on: ``version``
        says which of them)."""
        dec = SymbolDecoder(data)
        index = dec.decode(SCALE_TABLE)
        if index >= len(SCALES):
            raise MalformedError(f"GOP side info: scale index {index} out of range")
        strength = dec.decode(POST_TABLE) if post else None
        if strength is not None and strength >= len(POST_STRENGTHS):
            raise MalformedError(f"GOP side info: post strength index {strength} out of range")
        scale = SCALES[index]
        if flow:
            table = temporal_table(version)
            mode = dec.decode(table)
            if mode >= table.size:
                raise MalformedError(f"GOP side info: temporal mode {mode} out of range")
            step, moving = TEMPORAL_MODES[mode]
            return cls(scale=scale, post=strength, step=step, flow=moving)
        step = dec.decode(STEP_TABLE) if predict else None
        if step is not None and step >= len(OLD_STEPS):
            raise MalformedError(f"GOP side info: temporal step index {step} out of range")
        return cls(scale=scale, post=strength, step=None if step is None else OLD_STEPS[step])

    @property
    def temporal_step(self) -> int:
        return self.step or 1


def unpack_side_info(data: bytes, models: dict[str, str], version: int) -> GopParams:
    """A hybrid GOP's side info in a stream whose header names ``models``, of format
    ``version``: the post symbol when it names a post network; the temporal mode from version
    7, before it the step symbol when it names predict-v1."""
    post = post_model(models) is not None
    if version >= ALWAYS_STEP_VERSION:
        return GopParams.unpack(data, post=post, flow=True, version=version)
    return GopParams.unpack(data, post=post, predict=PREDICT_MODEL in models)
