"""The one interface every stage around the base layer implements, and its cost account.

A stage (after CompressAI's latent codecs: one small contract, many parts) sees each GOP three
times: ``before_base`` (what the base layer codes: a reduced background, dropped frames, a
smaller frame), ``encode_gop`` once the encoder has decoded its own base layer (it refines the
prediction and returns its payload) and, in the decoder, ``decode_gop`` (the same refinement
from the payload). A payload is side info (``side_info``: a dict of the GopParams fields it
fills; the decoder hands the stage the GOP's GopParams) or a chunk (``chunk``: the container
type it travels in; the decoder hands the stage its payload bytes). ``used()`` says whether
any GOP took the stage, so that an unused one leaves the stream. Each stage keeps its own
seconds and bytes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from vcodec.frames import Gop


@dataclass
class Cost:
    """What a stage spent on a stream: wall-clock seconds and the bytes of its payloads."""

    seconds: float = 0.0
    bytes: int = 0

    def as_dict(self) -> dict[str, float | int]:
        return {"seconds": round(self.seconds, 4), "bytes": self.bytes}

    @contextmanager
    def timed(self) -> Iterator[None]:
        """Adds the enclosed work's wall-clock seconds to this cost."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - start


@dataclass
class GopContext:
    """What the pipeline knows of one GOP while its stages run.

    ``scale`` and ``step`` are the GOP's spatial scale and temporal step; ``base_qp`` the base
    layer's QP at that scale; ``roi`` the GOP's ROI map (or None); ``n_frames`` its frames.
    """

    index: int
    n_frames: int
    qp: int
    scale: int = 1
    base_qp: int = 0
    step: int = 1
    roi: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


class Stage:
    """Base class: a stage that does nothing. Subclasses override what they take part in."""

    name: str = ""
    seed: str = ""  # the design document the stage comes from ("000".."004"), or ""
    side_info: bool = False  # its payload is GopParams fields (the GOP chunk's symbols)
    chunk: type | None = None  # the container chunk type its payload travels in

    def __init__(self) -> None:
        self.cost = Cost()
        self._used = False

    def models(self) -> tuple[str, ...]:
        """Registry names of the networks the stream's header must name while the stage is on."""
        return ()

    def before_base(self, source: Gop, ctx: GopContext) -> Gop:
        """What the base layer (and the stages after this one) see of ``source``."""
        return source

    def encode_gop(self, source: Gop, prediction: Gop, ctx: GopContext) -> tuple[Gop, Any]:
        """(refined prediction, payload or None) of one GOP, on the encoder's decoded frames."""
        return prediction, None

    def decode_gop(self, prediction: Gop, payload: Any, ctx: GopContext) -> Gop:
        """The decoder's refinement of ``prediction`` from the GOP's ``payload``."""
        return prediction

    def used(self) -> bool:
        """Whether any GOP took this stage (an unused stage leaves the stream)."""
        return self._used

    def timed(self):
        """Adds the enclosed work's wall-clock seconds to this stage's cost."""
        return self.cost.timed()
