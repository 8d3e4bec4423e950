"""encode(): video in, .vcx out, GOP by GOP (parameters, base layer, side info, chunks)."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

import torch

from vcodec import __version__
from vcodec.bitstream.container import (
    MODES,
    BaseData,
    End,
    GopChunk,
    Samples,
    Segment,
    StreamHeader,
    VcxReader,
    VcxWriter,
    Wiener,
)
from vcodec.bitstream.errors import InputError
from vcodec.models.registry import REGISTRY

from .base_layer import PRESETS, BaseDecoder, BaseEncoder, get_codec
from .files import atomic_output
from .frames import GOP_SIZE, Gop, VideoInfo
from .io import open_video, read_audio
from .masks import MASK_MODELS, MASK_SEARCHES, RECON_DTYPE, MaskCodec, held_prediction
from .metrics import yuv_mse
from .params import POST_STRENGTHS, SCALES, GopParams, ParamModule, base_qp
from .postprocess import POST_MODEL, POST_MODELS, PostProcessor, best_strength, blend, post_model
from .predict import (
    PREDICT_MODEL,
    TEMPORAL_MARGIN,
    FramePredictor,
    coded_frames,
    coded_part,
    expected_base_error,
    prediction_error,
)
from .resample import coded_size, crop_gop, downscale_gop, pad_gop, upscale_gop
from .roi import (
    BACKGROUND_SCALES,
    ROI_SOURCES,
    RoiMap,
    qp_regions,
    roi_chunk,
    roi_finder,
    soften_background,
)
from .wiener import WienerEncoder

Progress = Callable[[int], None]  # called with the number of frames just done
SPOOL_BYTES = 64 << 20  # a spooled stream stays in memory up to this size


@dataclass(frozen=True)
class EncodeConfig:
    """Encoder settings; the CLI's options map one to one onto these fields."""

    qp: int = 32  # quality: higher = smaller, on x264's 0-51 scale
    base: str = "x265"  # base-layer codec: x265, x264, av1
    # "1", "2", or "auto": the parameter module's choice for the stream, on its first GOP
    scale: str = "auto"
    preset: str = "medium"  # base-layer encoder preset
    frames: int | None = None  # encode at most this many frames
    device: str = "auto"  # where the resampling/networks run: auto, cpu, cuda
    mode: str = "hybrid"  # hybrid: base layer + masked samples; pure: masked samples alone
    masks: bool = True  # hybrid only: send masked enhancement samples (False: v0's base only)
    mask_search: str = "net"  # net: the selection network; exhaustive: RD search (reference)
    post: bool = True  # hybrid only: the decoder runs the post-processing network on the base layer
    post_model: str = POST_MODEL  # which one (POST_MODELS): post-task-v1 for detection
    # hybrid only: static GOPs drop frames from the base layer, which the decoder predicts
    temporal: bool = True
    # hybrid only: per GOP and plane, a least-squares filter to the source where it pays
    wiener: bool = True
    # hybrid only: none, motion, yolo, nanodet: regions of interest steer the base layer
    roi: str = "none"
    roi_model: str | None = None  # --roi yolo / nanodet: the detector's weights
    # with --roi: the background is low-passed as a down- and up-scale by this factor would
    # leave it, before the base layer (seed 002's ROI downsampler; 1: left as it is)
    background_scale: int = 4

    def validate(self) -> EncodeConfig:
        get_codec(self.base)
        if not 0 <= self.qp <= 51:
            raise InputError(f"--qp must be between 0 and 51, got {self.qp}")
        if self.scale != "auto" and int(self.scale) not in SCALES:
            raise InputError(f"--scale must be auto or one of {SCALES}, got {self.scale}")
        if self.preset not in PRESETS:
            raise InputError(f"--preset must be one of {', '.join(PRESETS)}")
        if self.frames is not None and self.frames < 1:
            raise InputError(f"--frames must be at least 1, got {self.frames}")
        if self.mode not in MODES:
            raise InputError(f"--mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.mask_search not in MASK_SEARCHES:
            raise InputError(f"--mask-search must be one of {', '.join(MASK_SEARCHES)}")
        if self.roi not in ROI_SOURCES:
            raise InputError(f"--roi must be one of {', '.join(ROI_SOURCES)}, got {self.roi!r}")
        if self.roi != "none" and (self.mode == "pure" or not get_codec(self.base).roi):
            raise InputError("--roi steers the base layer's QP: it needs --base x264 or x265")
        if self.roi in ("yolo", "nanodet") and not self.roi_model:
            raise InputError(f"--roi {self.roi} needs --roi-model PATH (its weights)")
        if self.post_model not in POST_MODELS:
            raise InputError(f"--post-model must be one of {', '.join(POST_MODELS)}")
        if self.background_scale not in BACKGROUND_SCALES:
            raise InputError(
                f"--background-scale must be one of {', '.join(map(str, BACKGROUND_SCALES))}"
            )
        resolve_device(self.device)
        return self


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


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for, but no CUDA device is available")
    if name not in ("cpu", "cuda"):
        raise InputError(f"--device must be auto, cpu or cuda, got {name!r}")
    return torch.device(name)


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
    device = resolve_device(config.device)
    pure = config.mode == "pure"
    masks = MaskCodec(config.qp, pure, device, config.mask_search) if pure or config.masks else None
    header = _header(info, config, masks is not None)
    if pure:
        writer = _start(out, header, audio)
        _encode_pure(gops, writer, masks, progress)
        return _finish(writer)
    if masks is None and not (_post(config) or _temporal(config) or _wiener(config)):
        writer = _start(out, header, audio)
        _HybridEncoder(writer, info, config, device, None, progress).run(gops)
        return _finish(writer)
    # With masks, post-processing or temporal scaling, the stream is spooled: a stage that no
    # GOP ended up using is then taken out (its models from the header, its SAMPLES chunks or
    # side-info symbol),
    # so that asking for it never costs more than going without.
    with tempfile.SpooledTemporaryFile(SPOOL_BYTES) as spool:
        writer = _start(spool, header, audio)
        hybrid = _HybridEncoder(writer, info, config, device, masks, progress)
        hybrid.run(gops)
        frames = _finish(writer)
        spool.seek(0)
        unused = set()
        if masks is not None and not hybrid.samples_on:
            unused |= set(MASK_MODELS)
        if _post(config) and not hybrid.post_on:
            unused.add(config.post_model)
        if _temporal(config) and not hybrid.temporal_on:
            unused.add(PREDICT_MODEL)
        if unused:
            _without(spool, out, unused)
        else:
            shutil.copyfileobj(spool, out)
    return frames


def _start(out: BinaryIO, header: StreamHeader, audio: bytes | None) -> VcxWriter:
    writer = VcxWriter(out, header)
    if audio:
        writer.write_audio(audio)
    return writer


def _finish(writer: VcxWriter) -> int:
    if writer.gops == 0:
        raise InputError("the input has no frames to encode")
    writer.close()
    return writer.frames


def _without(stream: BinaryIO, out: BinaryIO, unused: set[str]) -> None:
    """Copy a hybrid stream leaving out the ``unused`` models: the mask codec's (its SAMPLES
    chunks, all off), the post-processing network's (its strength symbol, all 0) and the
    frame-prediction network's (its temporal step symbol, all 1)."""
    reader = VcxReader(stream)
    post = post_model(reader.header.models)
    predict = PREDICT_MODEL in reader.header.models
    drop_post, drop_step = post is not None and post in unused, PREDICT_MODEL in unused
    models = {k: v for k, v in reader.header.models.items() if k not in unused}
    writer = VcxWriter(out, replace(reader.header, models=models))
    for chunk in reader:
        if isinstance(chunk, End) or (isinstance(chunk, Samples) and MASK_MODELS[0] in unused):
            continue
        if isinstance(chunk, GopChunk) and (drop_post or drop_step):
            params = GopParams.unpack(chunk.side_info, post=post is not None, predict=predict)
            if drop_post:
                params = replace(params, post=None)
            if drop_step:
                params = replace(params, step=None)
            chunk = replace(chunk, side_info=params.pack())
        writer.write(chunk)
    writer.close()


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
