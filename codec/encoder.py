"""encode(): video in, .vcx out, GOP by GOP (parameters, base layer, side info, chunks)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import torch

from vcodec import __version__
from vcodec.bitstream.container import (
    MODES,
    BaseData,
    GopChunk,
    Samples,
    Segment,
    StreamHeader,
    VcxWriter,
)
from vcodec.bitstream.errors import InputError
from vcodec.models.registry import REGISTRY

from .base_layer import PRESETS, BaseDecoder, BaseEncoder, get_codec
from .files import atomic_output
from .frames import GOP_SIZE, Gop, VideoInfo
from .io import open_video, read_audio
from .masks import MASK_MODELS, MASK_SEARCHES, MaskCodec, held_prediction
from .params import SCALES, GopParams, auto_scale, base_qp
from .resample import coded_size, crop_gop, downscale_gop, pad_gop, upscale_gop

Progress = Callable[[int], None]  # called with the number of frames just done


@dataclass(frozen=True)
class EncodeConfig:
    """Encoder settings; the CLI's options map one to one onto these fields."""

    qp: int = 32  # quality: higher = smaller, on x264's 0-51 scale
    base: str = "x265"  # base-layer codec: x265, x264, av1
    scale: str = "auto"  # "auto" (v0 rule), "1" or "2"
    preset: str = "medium"  # base-layer encoder preset
    frames: int | None = None  # encode at most this many frames
    device: str = "auto"  # where the resampling/networks run: auto, cpu, cuda
    mode: str = "hybrid"  # hybrid: base layer + masked samples; pure: masked samples alone
    masks: bool = True  # hybrid only: send masked enhancement samples (False: v0's base only)
    mask_search: str = "net"  # net: the selection network; exhaustive: RD search (reference)

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
    writer = VcxWriter(out, _header(info, config, masks is not None))
    if audio:
        writer.write_audio(audio)
    if pure:
        _encode_pure(gops, writer, masks, progress)
    else:
        _HybridEncoder(writer, info, config, device, masks, progress).run(gops)
    if writer.gops == 0:
        raise InputError("the input has no frames to encode")
    writer.close()
    return writer.frames


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
    """Base layer GOP by GOP; with masks, each GOP's samples once its base layer is decoded."""

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
        self.base: BaseEncoder | None = None
        self.local: BaseDecoder | None = None  # decodes our own base layer for the residual
        self.waiting: deque[tuple[int, Gop, int]] = deque()  # (GOP index, original, scale)
        self.frames: list[tuple] = []

    def run(self, gops: Iterable[Gop]) -> None:
        scale = 0
        for gop in gops:
            params = GopParams(scale=_scale_for(self.config, self.info))
            if params.scale != scale:
                self._end_segment()
                scale = params.scale
                self.base = _start_segment(self.writer, self.info, self.config, scale)
                if self.masks is not None:
                    self.local = BaseDecoder(self.config.base, self.base.extradata)
            index = self.writer.gops
            self.writer.write(GopChunk(index, self.writer.frames, gop.n_frames, params.pack()))
            height, width = coded_size(self.info.height, self.info.width, scale)
            coded = downscale_gop(pad_gop(gop, height, width), scale, self.device)
            self._emit(self.base.encode(coded))
            if self.masks is None:
                if self.progress:
                    self.progress(gop.n_frames)
            else:
                self.waiting.append((index, gop, scale))
                self._enhance()
        self._end_segment()

    def _end_segment(self) -> None:
        if self.base is None:
            return
        self._emit(self.base.flush())
        if self.local is not None:
            self.frames += self.local.flush()
            self._enhance()

    def _emit(self, packets: list[bytes]) -> None:
        if not packets:
            return
        data = b"".join(packets)
        self.writer.write(BaseData(data))
        if self.local is not None:
            self.frames += self.local.decode(data)

    def _enhance(self) -> None:
        """Code the samples of every waiting GOP whose base layer is decoded."""
        while self.waiting and len(self.frames) >= self.waiting[0][1].n_frames:
            index, gop, scale = self.waiting.popleft()
            base = Gop.from_frames(self.frames[: gop.n_frames], gop.start)
            del self.frames[: gop.n_frames]
            prediction = crop_gop(upscale_gop(base, scale, self.device), gop.height, gop.width)
            payload, _ = self.masks.encode_gop(gop, prediction)
            self.writer.write(Samples(index, payload))
            if self.progress:
                self.progress(gop.n_frames)


def _header(info: VideoInfo, config: EncodeConfig, masks: bool) -> StreamHeader:
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
        models={name: REGISTRY[name].sha256 for name in MASK_MODELS} if masks else {},
        encoder=f"vcodec {__version__}",
    )


def _scale_for(config: EncodeConfig, info: VideoInfo) -> int:
    if config.scale == "auto":
        return auto_scale(config.qp, info.height)
    return int(config.scale)


def _start_segment(
    writer: VcxWriter, info: VideoInfo, config: EncodeConfig, scale: int
) -> BaseEncoder:
    height, width = coded_size(info.height, info.width, scale)
    qp = base_qp(config.qp, scale)
    encoder = BaseEncoder(config.base, width // scale, height // scale, info.fps, qp, config.preset)
    writer.write(Segment(config.base, width // scale, height // scale, encoder.extradata))
    return encoder


def _write_packets(writer: VcxWriter, packets: list[bytes]) -> None:
    if packets:
        writer.write(BaseData(b"".join(packets)))
