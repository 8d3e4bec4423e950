"""decode(): .vcx in, video out; VcxDecoder runs the header's plan of stages back over the base
layer and streams reconstructed GOPs for any consumer."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from itertools import chain
from pathlib import Path
from typing import BinaryIO

from vcodec.bitstream.container import (
    AudioPiece,
    BaseData,
    Cut,
    End,
    GopChunk,
    Roi,
    Samples,
    Segment,
    StreamHeader,
    StreamLimits,
    VcxReader,
    Wiener,
)
from vcodec.device import resolve_device
from vcodec.errors import MalformedError
from vcodec.files import atomic_output
from vcodec.frames import Gop, VideoInfo
from vcodec.models.registry import require
from vcodec.pipeline.jobs import frames_handled_here
from vcodec.pipeline.plan import Plan, decoder_plan
from vcodec.pipeline.side_info import GopParams, unpack_side_info
from vcodec.pipeline.stream import open_vcx
from vcodec.stages.base_layer import BaseDecoder
from vcodec.stages.masks import MaskCodec, held_prediction, recon_model
from vcodec.stages.post import post_model
from vcodec.stages.roi import RoiMap
from vcodec.stages.scale import base_qp, check_base_size
from vcodec.stages.stage import Cost, GopContext
from vcodec.stages.temporal import PREDICT_MODEL, coded_frames
from vcodec.writers import open_writer, output_format

Progress = Callable[[int], None]


@dataclass(frozen=True)
class DecodeStats:
    frames: int
    seconds: float


@dataclass
class _Waiting:
    """A GOP whose GOP chunk is read, waiting for its base frames (and SAMPLES)."""

    chunk: GopChunk
    params: GopParams
    segment: Segment | None
    wiener: bytes | None  # its WIENER chunk's payload, if it had one

    @property
    def count(self) -> int:
        """How many base-layer frames it takes (fewer than its frames at a temporal step > 1)."""
        return len(coded_frames(self.chunk.n_frames, self.params.temporal_step))


# frames the base layer may deliver before their GOP chunk (an encoder's look-ahead flushed at
# a segment's end): WAITING_PIXELS of them, or WAITING_GOPS GOPs where that is more
WAITING_PIXELS = 1 << 30
WAITING_GOPS = 4


class VcxDecoder:
    """Reads a .vcx stream: ``info`` and ``audio`` at once, then ``gops()`` yields the video."""

    def __init__(
        self, stream: BinaryIO, device: str = "auto", limits: StreamLimits | None = None
    ) -> None:
        """``limits`` (frame size, GOP length) are checked on the header before anything is
        allocated for the stream (LimitError)."""
        frames_handled_here()
        self.device = resolve_device(device)
        self._reader = VcxReader(stream, limits)
        self.header = self._reader.header
        for name, model_id in self.header.models.items():
            require(name, model_id)
        self.pure = self.header.mode == "pure"
        self.plan: Plan | None = None
        self.masks: MaskCodec | None = None  # pure mode's
        self.segment_header = self.header  # the header as the current segment sees it
        self._cut_gop = self._cut_frame = 0  # where the current segment starts
        self._rois: list[RoiMap] = []  # the ROI maps of the segments before the current one
        if self.pure:
            _check_pure(self.header)
        self.base_cost = Cost()
        self._chunks = iter(self._reader)
        pieces = []
        self._first = next(self._chunks)
        while isinstance(self._first, AudioPiece):
            pieces.append(self._first.data)
            self._first = next(self._chunks)
        self.audio = b"".join(pieces) or None
        if not isinstance(self._first, Cut):  # else the CUT starts the stages, with its models
            self._start_segment(self.header)

    def _start_segment(self, header: StreamHeader) -> None:
        """The stages of a segment (of the whole stream before format 9) from its header."""
        self.segment_header = header
        if self.pure:
            recon = _check_pure(header)
            self.masks = MaskCodec(header.qp, True, self.device, None, recon_model=recon)
        else:
            self.plan = decoder_plan(header, self._reader.version, self.device)

    def _cut(self, cut: Cut) -> None:
        """A new segment: its stages start afresh, with its base codec, qp and models."""
        if self.plan is not None and self.plan.roi is not None:
            self._rois += self.plan.roi.maps
        models = {name: self.header.models[name] for name in cut.models}
        self._start_segment(replace(self.header, base_codec=cut.base, qp=cut.qp, models=models))
        self._cut_gop, self._cut_frame = cut.first_gop, cut.first_frame

    @property
    def info(self) -> VideoInfo:
        h = self.header
        return VideoInfo(
            width=h.width,
            height=h.height,
            fps=Fraction(h.fps_num, h.fps_den),
            color_range=h.color_range,
            colorspace=h.colorspace,
            color_primaries=h.color_primaries,
            color_trc=h.color_trc,
        )

    @property
    def rois(self) -> list[RoiMap]:
        """The ROI chunks' maps read so far, in GOP order."""
        return self._rois + self.plan.roi.maps if self.plan is not None else []

    def costs(self) -> dict[str, dict[str, float | int]]:
        """Seconds spent so far decoding the base layer and in each stage."""
        stages = self.plan.costs() if self.plan is not None else {}
        return {"base": self.base_cost.as_dict()} | stages

    def gops(self) -> Iterator[Gop]:
        chunks = chain([self._first], self._chunks)
        if self.pure:
            yield from self._pure_gops(chunks)
            return
        base: BaseDecoder | None = None
        segment: Segment | None = None
        pending: deque[_Waiting] = deque()
        wiener: bytes | None = None  # the next GOP's filters, from its WIENER chunk
        frames: list[tuple] = []
        samples: dict[int, bytes] = {}
        for chunk in chunks:
            if isinstance(chunk, (Segment, Cut, End)) and base is not None:
                with self.base_cost.timed():
                    frames += base.flush()
                yield from self._ready(pending, frames, samples)
            if isinstance(chunk, Cut):
                if pending or frames:
                    raise MalformedError(
                        f"the segment before GOP {chunk.first_gop} ends with {len(frames)} "
                        f"base frames left over and {len(pending)} GOPs waiting"
                    )
                self._cut(chunk)
                base = segment = None
            elif isinstance(chunk, Segment):
                size = (chunk.width, chunk.height)
                segment, base = chunk, BaseDecoder(chunk.codec, chunk.extradata, size)
            elif isinstance(chunk, GopChunk):
                if segment is None:
                    raise MalformedError(f"GOP {chunk.index} comes before any SEGMENT chunk")
                params = unpack_side_info(
                    chunk.side_info, self.segment_header.models, self._reader.version
                )
                pending.append(_Waiting(chunk, params, segment, wiener))
                wiener = None
                yield from self._ready(pending, frames, samples)  # its frames may be here
            elif isinstance(chunk, Wiener):
                wiener = chunk.data
            elif isinstance(chunk, Samples):
                if self.plan.masks is None:
                    raise MalformedError("a SAMPLES chunk in a stream without the mask codec")
                samples[chunk.gop] = chunk.data
                yield from self._ready(pending, frames, samples)
            elif isinstance(chunk, BaseData):
                if base is None:
                    raise MalformedError("base-layer data comes before any SEGMENT chunk")
                with self.base_cost.timed():
                    frames += base.decode(chunk.data)
                self._check_ahead(pending, frames)
                yield from self._ready(pending, frames, samples)
            elif isinstance(chunk, Roi):
                self.plan.roi.read(chunk, self.header.height, self.header.width)
            elif isinstance(chunk, AudioPiece):
                raise MalformedError("an AUDIO chunk follows the video; audio must come first")
            elif isinstance(chunk, End) and (pending or frames):
                raise MalformedError(
                    f"the base layer, GOP and SAMPLES chunks disagree on the frame count "
                    f"({len(frames)} frames left over, {len(pending)} GOPs still waiting)"
                )

    def _check_ahead(self, pending: deque[_Waiting], frames: list[tuple]) -> None:
        """MalformedError when the base layer has delivered more frames ahead of their GOP
        chunks than an encoder's look-ahead explains (WAITING_PIXELS of them, at least
        WAITING_GOPS GOPs): the frames a decoder holds stay bounded by the stream's limits."""
        ahead = len(frames) - sum(w.count for w in pending)
        limit = max(
            WAITING_GOPS * self.header.gop_size,
            WAITING_PIXELS // (self.header.width * self.header.height),
        )
        if ahead > limit:
            raise MalformedError(
                f"the base layer runs {ahead} frames ahead of its GOP chunks (at most {limit})"
            )

    def _pure_gops(self, chunks: Iterator) -> Iterator[Gop]:
        """Pure mode: GOP chunks, each followed by its SAMPLES over the last decoded frame."""
        pending: deque[GopChunk] = deque()
        previous: Gop | None = None  # the last decoded GOP of the segment
        size = (self.header.height, self.header.width)
        for chunk in chunks:
            if isinstance(chunk, Cut):
                if pending:
                    raise MalformedError(f"{len(pending)} GOPs have no SAMPLES chunk")
                self._cut(chunk)
                previous = None
            elif isinstance(chunk, GopChunk):
                pending.append(chunk)
            elif isinstance(chunk, Samples):
                if not pending:
                    raise MalformedError(f"SAMPLES of GOP {chunk.gop} before its GOP chunk")
                gop = pending.popleft()
                start = gop.first_frame - self._cut_frame
                held = held_prediction(previous, gop.n_frames, start, size)
                previous = self.masks.decode_gop(chunk.data, held)
                yield replace(previous, start=gop.first_frame)
            elif isinstance(chunk, (Segment, BaseData, Wiener)):
                raise MalformedError("a pure-mode stream has no base layer")
            elif isinstance(chunk, AudioPiece):
                raise MalformedError("an AUDIO chunk follows the video; audio must come first")
            elif isinstance(chunk, End) and pending:
                raise MalformedError(f"{len(pending)} GOPs have no SAMPLES chunk")

    def _ready(
        self, pending: deque[_Waiting], frames: list[tuple], samples: dict[int, bytes]
    ) -> Iterator[Gop]:
        """Yield every pending GOP whose base-layer frames (and samples) have all arrived."""
        while pending and len(frames) >= pending[0].count:
            waiting = pending[0]
            index = waiting.chunk.index
            if self.plan.masks is not None and index not in samples:
                return
            pending.popleft()
            taken = frames[: waiting.count]
            del frames[: waiting.count]
            yield self._reconstruct(waiting, taken, samples.pop(index, None))

    def _reconstruct(self, waiting: _Waiting, frames: list[tuple], samples: bytes | None) -> Gop:
        """The GOP (FORMAT.md): its base frames through the plan's stages, in order: up-scaled
        and cropped, dropped frames predicted, post-processed at its strength, through its
        Wiener filters, then its SAMPLES."""
        chunk, params = waiting.chunk, waiting.params
        expected = check_base_size(waiting.segment, self.header, params.scale, chunk.index)
        if any(f[0].shape != expected for f in frames):
            raise MalformedError(f"GOP {chunk.index}: base layer size does not match its scale")
        # GOP numbers and frames as the segment's encoder saw them: from its start
        qp = self.segment_header.qp
        ctx = GopContext(chunk.index - self._cut_gop, chunk.n_frames, qp, params.scale)
        ctx.base_qp, ctx.step = base_qp(qp, params.scale), params.temporal_step
        chunks = {"wiener": waiting.wiener, "masks": samples}  # chunk payloads by stage
        gop = Gop.from_frames(frames, chunk.first_frame - self._cut_frame)
        for stage in self.plan.after_base():
            payload = params if stage.side_info else chunks.get(stage.name)
            gop = stage.decode_gop(gop, payload, ctx)
        return replace(gop, start=chunk.first_frame)


def _check_pure(header: StreamHeader) -> str:
    """A pure-mode header's reconstruction network; MalformedError if it names none, or a
    network of the base layer's."""
    recon = recon_model(header.models)
    if recon is None:
        raise MalformedError("a pure-mode stream must name the mask codec's models")
    if post_model(header.models) or PREDICT_MODEL in header.models:
        raise MalformedError("a pure-mode stream has no base layer to post-process")
    return recon


def decode(
    src: str | Path,
    dst: str | Path,
    *,
    force: bool = False,
    fmt: str | None = None,
    lossless: bool = False,
    device: str = "auto",
    progress: Progress | None = None,
    limits: StreamLimits | None = None,
) -> DecodeStats:
    """Decode the .vcx file ``src`` into a video file or PNG folder ``dst`` (a stream over
    ``limits`` is refused before anything is written). A stream with audio decoded to y4m or
    PNG frames, which cannot carry it, is warned about (VcxWarning)."""
    import warnings

    from vcodec.errors import VcxWarning

    start = time.perf_counter()
    fmt = output_format(dst, fmt)
    with open_vcx(src) as stream:
        decoder = VcxDecoder(stream, device, limits)
        with atomic_output(dst, force=force, directory=fmt == "png", inputs=[src]) as tmp:
            frames = 0
            with open_writer(
                tmp, decoder.info, fmt=fmt, lossless=lossless, audio=decoder.audio
            ) as writer:
                for gop in decoder.gops():
                    writer.write(gop)
                    frames += gop.n_frames
                    if progress:
                        progress(gop.n_frames)
    if decoder.audio and fmt in ("y4m", "png"):
        warnings.warn(
            f"the stream's audio was not written: {fmt} cannot carry it (decode to .mp4 or "
            ".mkv to keep it)",
            VcxWarning,
            stacklevel=2,
        )
    return DecodeStats(frames, time.perf_counter() - start)
