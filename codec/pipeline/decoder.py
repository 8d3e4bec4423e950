"""decode(): .vcx in, video out; VcxDecoder streams reconstructed GOPs for any consumer."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from itertools import chain
from pathlib import Path
from typing import BinaryIO

import torch

from vcodec.bitstream.container import (
    AudioPiece,
    BaseData,
    End,
    GopChunk,
    Roi,
    Samples,
    Segment,
    VcxReader,
    Wiener,
)
from vcodec.device import resolve_device
from vcodec.errors import MalformedError
from vcodec.files import atomic_output
from vcodec.frames import Gop, VideoInfo
from vcodec.io import open_writer, output_format
from vcodec.models.registry import require
from vcodec.pipeline.side_info import GopParams
from vcodec.pipeline.stream import open_vcx
from vcodec.stages.base_layer import BaseDecoder
from vcodec.stages.masks import MASK_MODELS, RECON_DTYPE, MaskCodec, held_prediction
from vcodec.stages.post import PostProcessor, blend, post_model
from vcodec.stages.roi import RoiMap, read_roi
from vcodec.stages.scale import base_qp, coded_size, crop_gop, upscale_gop
from vcodec.stages.temporal import PREDICT_MODEL, FramePredictor, coded_frames
from vcodec.stages.wiener import PlaneFilter, WienerDecoder, apply_gop

Progress = Callable[[int], None]


@dataclass(frozen=True)
class DecodeStats:
    frames: int
    seconds: float


class VcxDecoder:
    """Reads a .vcx stream: ``info`` and ``audio`` at once, then ``gops()`` yields the video."""

    def __init__(self, stream: BinaryIO, device: str = "auto") -> None:
        self.device = resolve_device(device)
        self._reader = VcxReader(stream)
        self.header = self._reader.header
        for name, model_id in self.header.models.items():
            require(name, model_id)
        self.pure = self.header.mode == "pure"
        self.masks: MaskCodec | None = None
        if all(name in self.header.models for name in MASK_MODELS):
            self.masks = MaskCodec(self.header.qp, self.pure, self.device, None)
        elif self.pure:
            raise MalformedError("a pure-mode stream must name the mask codec's models")
        self.post: PostProcessor | None = None
        post = post_model(self.header.models)
        if post is not None:
            if self.pure:
                raise MalformedError("a pure-mode stream has no base layer to post-process")
            # float64 where the output is the mask codec's prediction (as the encoder made it)
            dtype = RECON_DTYPE if self.masks else torch.float32
            self.post = PostProcessor(self.device, dtype, name=post)
        self.predictor: FramePredictor | None = None
        if PREDICT_MODEL in self.header.models:
            if self.pure:
                raise MalformedError("a pure-mode stream has no base layer to predict frames in")
            dtype = RECON_DTYPE if self.masks else torch.float32
            self.predictor = FramePredictor(self.device, dtype)
        self.rois: list[RoiMap] = []  # the ROI chunks' maps read so far, in GOP order
        self.wiener = WienerDecoder(self._reader.version)
        self._chunks = iter(self._reader)
        pieces = []
        self._first = next(self._chunks)
        while isinstance(self._first, AudioPiece):
            pieces.append(self._first.data)
            self._first = next(self._chunks)
        self.audio = b"".join(pieces) or None

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

    def gops(self) -> Iterator[Gop]:
        base: BaseDecoder | None = None
        segment: Segment | None = None
        # GOPs waiting for their frames: chunk, side info, segment, Wiener filters
        pending: deque[tuple[GopChunk, GopParams, Segment | None, list | None]] = deque()
        filters: list[PlaneFilter | None] | None = None  # the next GOP's, from its WIENER
        frames: list[tuple] = []
        samples: dict[int, bytes] = {}
        previous: Gop | None = None  # pure mode: the last decoded GOP
        for chunk in chain([self._first], self._chunks):
            if isinstance(chunk, (Segment, End)) and base is not None:
                frames += base.flush()
                yield from self._ready(pending, frames, samples)
            if isinstance(chunk, Segment):
                if self.pure:
                    raise MalformedError("a pure-mode stream has no base layer")
                segment, base = chunk, BaseDecoder(chunk.codec, chunk.extradata)
            elif isinstance(chunk, GopChunk):
                if segment is None and not self.pure:
                    raise MalformedError(f"GOP {chunk.index} comes before any SEGMENT chunk")
                params = GopParams.unpack(
                    chunk.side_info, post=self.post is not None, predict=self.predictor is not None
                )
                pending.append((chunk, params, segment, filters))
                filters = None
                yield from self._ready(pending, frames, samples)  # its frames may be here
            elif isinstance(chunk, Wiener):
                if self.pure:
                    raise MalformedError("a pure-mode stream has no base layer to filter")
                filters = self.wiener.read(chunk.data)
            elif isinstance(chunk, Samples):
                if self.masks is None:
                    raise MalformedError("a SAMPLES chunk in a stream without the mask codec")
                if self.pure:
                    gop = pending.popleft()[0]
                    size = (self.header.height, self.header.width)
                    held = held_prediction(previous, gop.n_frames, gop.first_frame, size)
                    previous = self.masks.decode_gop(chunk.data, held)
                    yield previous
                    continue
                samples[chunk.gop] = chunk.data
                yield from self._ready(pending, frames, samples)
            elif isinstance(chunk, BaseData):
                if base is None:
                    raise MalformedError("base-layer data comes before any SEGMENT chunk")
                frames += base.decode(chunk.data)
                yield from self._ready(pending, frames, samples)
            elif isinstance(chunk, Roi):
                last = self.rois[-1] if self.rois else None
                h, w = self.header.height, self.header.width
                self.rois.append(read_roi(chunk, h, w, last))
            elif isinstance(chunk, AudioPiece):
                raise MalformedError("an AUDIO chunk follows the video; audio must come first")
            elif isinstance(chunk, End) and (pending or frames):
                raise MalformedError(
                    f"the base layer, GOP and SAMPLES chunks disagree on the frame count "
                    f"({len(frames)} frames left over, {len(pending)} GOPs still waiting)"
                )

    def _ready(
        self, pending: deque, frames: list[tuple], samples: dict[int, bytes]
    ) -> Iterator[Gop]:
        """Yield every pending GOP whose base-layer frames (and samples) have all arrived."""
        while pending and len(frames) >= _count(*pending[0][:2]):
            chunk, params, segment, filters = pending[0]
            if self.masks is not None and chunk.index not in samples:
                return
            pending.popleft()
            count = _count(chunk, params)
            taken = frames[:count]
            del frames[:count]
            gop = self._reconstruct(chunk, params, segment, taken, filters)
            if self.masks is not None:
                gop = self.masks.decode_gop(samples.pop(chunk.index), gop)
            yield gop

    def _reconstruct(
        self,
        chunk: GopChunk,
        params: GopParams,
        segment: Segment,
        frames: list[tuple],
        filters: list[PlaneFilter | None] | None,
    ) -> Gop:
        """The GOP's prediction p (FORMAT.md): its base frames up-scaled and cropped, dropped
        frames predicted, post-processed at its strength, then through its Wiener filters."""
        h, w = self.header.height, self.header.width
        coded_h, coded_w = coded_size(h, w, params.scale)
        expected = (coded_h // params.scale, coded_w // params.scale)
        if (segment.height, segment.width) != expected or any(
            f[0].shape != expected for f in frames
        ):
            raise MalformedError(f"GOP {chunk.index}: base layer size does not match its scale")
        base = Gop.from_frames(frames, chunk.first_frame)
        gop = crop_gop(upscale_gop(base, params.scale, self.device), h, w)
        qp = base_qp(self.header.qp, params.scale)
        if self.predictor is not None:
            gop = self.predictor(gop, chunk.n_frames, params.temporal_step, qp, params.scale)
        if params.strength > 0:
            gop = blend(gop, self.post(gop, qp, params.scale), params.strength)
        return gop if filters is None else apply_gop(gop, filters)


def _count(chunk: GopChunk, params: GopParams) -> int:
    """How many base-layer frames a GOP takes (fewer than its frames at a temporal step > 1)."""
    return len(coded_frames(chunk.n_frames, params.temporal_step))


def decode(
    src: str | Path,
    dst: str | Path,
    *,
    force: bool = False,
    fmt: str | None = None,
    lossless: bool = False,
    device: str = "auto",
    progress: Progress | None = None,
) -> DecodeStats:
    """Decode the .vcx file ``src`` into a video file or PNG folder ``dst``."""
    start = time.perf_counter()
    fmt = output_format(dst, fmt)
    with open_vcx(src) as stream:
        decoder = VcxDecoder(stream, device)
        with atomic_output(dst, force=force, directory=fmt == "png") as tmp:
            frames = 0
            with open_writer(
                tmp, decoder.info, fmt=fmt, lossless=lossless, audio=decoder.audio
            ) as writer:
                for gop in decoder.gops():
                    writer.write(gop)
                    frames += gop.n_frames
                    if progress:
                        progress(gop.n_frames)
    return DecodeStats(frames, time.perf_counter() - start)


