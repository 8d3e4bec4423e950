"""encode(): video in, .vcx out, GOP by GOP (parameters, base layer, side info, chunks)."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import torch

from vcodec import __version__
from vcodec.bitstream.container import (
    BaseData,
    GopChunk,
    Samples,
    Segment,
    StreamHeader,
    VcxWriter,
    Wiener,
)
from vcodec.device import resolve_device
from vcodec.files import atomic_output
from vcodec.frames import GOP_SIZE, Gop, VideoInfo, yuv_mse
from vcodec.io import open_video, read_audio
from vcodec.models.registry import REGISTRY
from vcodec.pipeline.config import EncodeConfig
from vcodec.pipeline.side_info import GopParams
from vcodec.pipeline.stream import finish_stream, start_stream, without_models
from vcodec.stages.base_layer import BaseDecoder, BaseEncoder
from vcodec.stages.masks import MASK_MODELS, RECON_DTYPE, MaskCodec, held_prediction
from vcodec.stages.post import (
    POST_STRENGTHS,
    PostProcessor,
    best_strength,
    blend,
)
from vcodec.stages.roi import (
    RoiMap,
    qp_regions,
    roi_chunk,
    roi_finder,
    soften_background,
)
from vcodec.stages.scale import (
    ParamModule,
    base_qp,
    coded_size,
    crop_gop,
    downscale_gop,
    pad_gop,
    upscale_gop,
)
from vcodec.stages.temporal import (
    PREDICT_MODEL,
    TEMPORAL_MARGIN,
    FramePredictor,
    coded_frames,
    coded_part,
    expected_base_error,
    prediction_error,
)
from vcodec.stages.wiener import WienerEncoder

Progress = Callable[[int], None]  # called with the number of frames just done
SPOOL_BYTES = 64 << 20  # a spooled stream stays in memory up to this size


@dataclass(frozen=True)
class EncodeStats:
    frames: int
    bytes: int
    seconds: float
    width: int
    height: int
    fps: float

    @property
    def bpp(self) -> float:
        return 8 * self.bytes / max(1, self.frames * self.width * self.height)


def encode(
    src: str | Path,
    dst: str | Path,
    config: EncodeConfig = EncodeConfig(),
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> EncodeStats:
    """Encode the video file (or frame directory) ``src`` into the .vcx file ``dst``."""
    config = config.validate()
    start = time.perf_counter()
    with open_video(src) as reader, atomic_output(dst, force=force) as tmp:
        audio = read_audio(src)
        with open(tmp, "wb") as out:
            gops = reader.gops(GOP_SIZE, config.frames)
            frames = encode_gops(gops, reader.info, out, config, audio=audio, progress=progress)
        size = Path(tmp).stat().st_size
    info = reader.info
    return EncodeStats(
        frames, size, time.perf_counter() - start, info.width, info.height, float(info.fps)
    )


def encode_gops(
    gops: Iterable[Gop],
    info: VideoInfo,
    out: BinaryIO,
    config: EncodeConfig = EncodeConfig(),
    *,
    audio: bytes | None = None,
    progress: Progress | None = None,
) -> int:
    """Encode GOPs of ``info``'s size into an open binary stream; returns the frame count."""
    config = config.validate()
    device = resolve_device(config.device)
    pure = config.mode == "pure"
    masks = MaskCodec(config.qp, pure, device, config.mask_search) if pure or config.masks else None
    header = _header(info, config, masks is not None)
    if pure:
        writer = start_stream(out, header, audio)
        _encode_pure(gops, writer, masks, progress)
        return finish_stream(writer)
    if masks is None and not (_post(config) or _temporal(config) or _wiener(config)):
        writer = start_stream(out, header, audio)
        _HybridEncoder(writer, info, config, device, None, progress).run(gops)
        return finish_stream(writer)
    # With masks, post-processing or temporal scaling, the stream is spooled: a stage that no
    # GOP ended up using is then taken out (its models from the header, its SAMPLES chunks or
    # side-info symbol),
    # so that asking for it never costs more than going without.
    with tempfile.SpooledTemporaryFile(SPOOL_BYTES) as spool:
        writer = start_stream(spool, header, audio)
        hybrid = _HybridEncoder(writer, info, config, device, masks, progress)
        hybrid.run(gops)
        frames = finish_stream(writer)
        spool.seek(0)
        unused = set()
        if masks is not None and not hybrid.samples_on:
            unused |= set(MASK_MODELS)
        if _post(config) and not hybrid.post_on:
            unused.add(config.post_model)
        if _temporal(config) and not hybrid.temporal_on:
            unused.add(PREDICT_MODEL)
        if unused:
            without_models(spool, out, unused)
        else:
            shutil.copyfileobj(spool, out)
    return frames


def _encode_pure(
    gops: Iterable[Gop], writer: VcxWriter, masks: MaskCodec, progress: Progress | None
) -> None:
    """Pure mode: each GOP coded by masked samples over the previous GOP's last frame."""
    previous = None
    for gop in gops:
        index = writer.gops
        writer.write(GopChunk(index, writer.frames, gop.n_frames, GopParams(scale=1).pack()))
        held = held_prediction(previous, gop.n_frames, gop.start, (gop.height, gop.width))
        payload, previous = masks.encode_gop(gop, held)
        writer.write(Samples(index, payload))
        if progress:
            progress(gop.n_frames)


class _HybridEncoder:
    """Base layer GOP by GOP. With post-processing, masks, temporal scaling or Wiener filters,
    the encoder decodes its own base layer, and each GOP's WIENER chunk, GOP chunk (its post
    strength and filters are chosen on the decoded frames), ROI chunk and SAMPLES follow once
    that GOP's frames are decoded; otherwise the GOP chunk (and ROI chunk) comes first."""

    def __init__(
        self,
        writer: VcxWriter,
        info: VideoInfo,
        config: EncodeConfig,
        device: torch.device,
        masks: MaskCodec | None,
        progress: Progress | None,
    ) -> None:
        self.writer, self.info, self.config, self.device = writer, info, config, device
        self.masks, self.progress = masks, progress
        self.samples_on = False  # whether any GOP has kept its samples
        self.post_on = False  # whether any GOP takes some of the post-processing correction
        self.temporal_on = False  # whether any GOP dropped frames from the base layer
        # the prediction the samples are coded over is post-processed in float64, so that the
        # decoder, on any device, rounds it alike
        dtype = RECON_DTYPE if masks else torch.float32
        self.post = PostProcessor(device, dtype, name=config.post_model) if _post(config) else None
        self.predictor = FramePredictor(device, dtype) if _temporal(config) else None
        self.wiener = WienerEncoder(config.qp) if _wiener(config) else None
        self.base_error: float | None = None  # the base layer's MSE on the last decoded GOP
        # --scale auto: the parameter module; with --roi, auto is s = 1 (see _scale)
        auto = config.scale == "auto" and config.roi == "none"
        self.params = ParamModule() if auto else None
        self.stream_scale: int | None = None  # --scale auto: the module's choice, once made
        self.roi = roi_finder(config.roi, config.roi_model, str(device))
        self.last_roi: RoiMap | None = None  # the previous GOP's map: the next one's context
        self.base: BaseEncoder | None = None
        self.local: BaseDecoder | None = None  # decodes our own base layer
        # (original, scale, temporal step, ROI map), in GOP order
        self.waiting: deque[tuple[Gop, int, int, RoiMap | None]] = deque()
        self.frames: list[tuple] = []

    @property
    def decodes(self) -> bool:
        stages = (self.masks, self.post, self.predictor, self.wiener)
        return any(stage is not None for stage in stages)

    def run(self, gops: Iterable[Gop]) -> None:
        scale = 0
        for gop in gops:
            gop_scale = self._scale(gop)
            if gop_scale != scale:
                self._end_segment()
                scale = gop_scale
                self.base = _start_segment(self.writer, self.info, self.config, scale)
                if self.decodes:
                    self.local = BaseDecoder(self.config.base, self.base.extradata)
            roi = self.roi.find(gop) if self.roi is not None else None
            if roi is not None:  # seed 002: from here on, the source is the reduced one
                gop = soften_background(gop, roi, self.config.background_scale)
            if not self.decodes:
                self._write_gop(gop, GopParams(scale=scale), roi)
            step = self._step(gop, scale, roi)
            height, width = coded_size(self.info.height, self.info.width, scale)
            coded = downscale_gop(pad_gop(coded_part(gop, step), height, width), scale, self.device)
            if self.decodes:
                self.waiting.append((gop, scale, step, roi))
            regions = qp_regions(roi, scale, coded.width, coded.height) if roi else None
            self._emit(self.base.encode(coded, regions))
            if self.decodes:
                self._finish_decoded()
            elif self.progress:
                self.progress(gop.n_frames)
        self._end_segment()

    def _scale(self, gop: Gop) -> int:
        """--scale, or with auto the parameter module's choice on the stream's first GOP,
        kept for the whole stream: the module was trained on whole-stream choices, and each
        change of scale starts a segment (an I-frame). With --roi, auto is s = 1: the regions
        of interest keep their full resolution (seed 002), only the background is reduced."""
        if self.config.scale != "auto":
            return int(self.config.scale)
        if self.stream_scale is None:
            self.stream_scale = self.params.scale(gop, self.config.qp) if self.params else 1
        return self.stream_scale

    def _step(self, gop: Gop, scale: int, roi: RoiMap | None) -> int:
        """Step 2 where the source's dropped frames are more predictable than the base layer's
        own error (TEMPORAL_MARGIN x that of the last decoded GOP, or of a low guess before
        any), else 1. With regions of interest, their pixels must be that predictable: the
        bits they are given buy nothing on a frame the decoder predicts."""
        if self.predictor is None or gop.n_frames < 3:
            return 1
        error = self.base_error
        if error is None:
            error = expected_base_error(base_qp(self.config.qp, scale))
        where = None
        if roi is not None and roi.cells.any() and not roi.cells.all():
            where = roi.pixels(gop.height, gop.width)
        return 2 if prediction_error(gop, 2, where) <= TEMPORAL_MARGIN * error else 1

    def _write_gop(self, gop: Gop, params: GopParams, roi: RoiMap | None) -> int:
        """The GOP chunk, and after it the GOP's ROI chunk when there is a map."""
        index = self.writer.gops
        self.writer.write(GopChunk(index, self.writer.frames, gop.n_frames, params.pack()))
        if roi is not None:
            self.writer.write(roi_chunk(index, roi, self.last_roi))
            self.last_roi = roi
        return index

    def _end_segment(self) -> None:
        """Flush the base encoder; every GOP of the segment is written before the next one."""
        if self.base is None:
            return
        self._emit(self.base.flush())
        if self.local is not None:
            self.frames += self.local.flush()
            self._finish_decoded()

    def _emit(self, packets: list[bytes]) -> None:
        if not packets:
            return
        data = b"".join(packets)
        self.writer.write(BaseData(data))
        if self.local is not None:
            self.frames += self.local.decode(data)

    def _finish_decoded(self) -> None:
        """Write the GOP chunk (and SAMPLES) of every waiting GOP whose base layer is decoded."""
        while self.waiting and len(self.frames) >= _count(self.waiting[0][0], self.waiting[0][2]):
            gop, scale, step, roi = self.waiting.popleft()
            count = _count(gop, step)
            base = Gop.from_frames(self.frames[:count], gop.start)
            del self.frames[:count]
            prediction = crop_gop(upscale_gop(base, scale, self.device), gop.height, gop.width)
            self.base_error = yuv_mse(coded_part(gop, step), prediction)
            qp = base_qp(self.config.qp, scale)
            if self.predictor is not None:
                prediction = self.predictor(prediction, gop.n_frames, step, qp, scale)
                self.temporal_on |= step > 1
            strength = None
            if self.post is not None:
                cleaned = self.post(prediction, qp, scale)
                strength = best_strength(gop, prediction, cleaned)
                self.post_on |= strength > 0
                prediction = blend(prediction, cleaned, POST_STRENGTHS[strength])
            if self.wiener is not None:
                filters, prediction = self.wiener.encode_gop(gop, prediction)
                if filters is not None:
                    self.writer.write(Wiener(self.writer.gops, filters))
            step_symbol = step if self.predictor is not None else None
            params = GopParams(scale=scale, post=strength, step=step_symbol)
            index = self._write_gop(gop, params, roi)
            if self.masks is not None:
                payload, _ = self.masks.encode_gop(gop, prediction)
                self.samples_on |= self.masks.is_on(payload)
                self.writer.write(Samples(index, payload))
            if self.progress:
                self.progress(gop.n_frames)


def _count(gop: Gop, step: int) -> int:
    return len(coded_frames(gop.n_frames, step))


def _temporal(config: EncodeConfig) -> bool:
    """Whether GOPs may drop frames from the base layer (predicted by the decoder)."""
    return config.mode == "hybrid" and config.temporal


def _wiener(config: EncodeConfig) -> bool:
    """Whether GOPs may carry Wiener filters (fitted on the encoder's own decoded frames)."""
    return config.mode == "hybrid" and config.wiener


def _post(config: EncodeConfig) -> bool:
    """Whether the stream's base layer goes through the post-processing network."""
    return config.mode == "hybrid" and config.post


def _header(info: VideoInfo, config: EncodeConfig, masks: bool) -> StreamHeader:
    models = [config.post_model] if _post(config) else []
    models += [PREDICT_MODEL] if _temporal(config) else []
    models += list(MASK_MODELS) if masks else []
    return StreamHeader(
        width=info.width,
        height=info.height,
        fps_num=info.fps.numerator,
        fps_den=info.fps.denominator,
        color_range=info.color_range,
        colorspace=info.colorspace,
        color_primaries=info.color_primaries,
        color_trc=info.color_trc,
        gop_size=GOP_SIZE,
        mode=config.mode,
        base_codec=config.base,
        qp=config.qp,
        models={name: REGISTRY[name].model_id for name in models},
        encoder=f"vcodec {__version__}",
    )


def _start_segment(
    writer: VcxWriter, info: VideoInfo, config: EncodeConfig, scale: int
) -> BaseEncoder:
    height, width = coded_size(info.height, info.width, scale)
    qp = base_qp(config.qp, scale)
    encoder = BaseEncoder(
        config.base,
        width // scale,
        height // scale,
        info.fps,
        qp,
        config.preset,
        config.roi != "none",
    )
    writer.write(Segment(config.base, width // scale, height // scale, encoder.extradata))
    return encoder
