"""encode(): video in, .vcx out, GOP by GOP (parameters, base layer, side info, chunks)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import torch

from vcodec import __version__
from vcodec.bitstream.container import BaseData, GopChunk, Segment, StreamHeader, VcxWriter
from vcodec.bitstream.errors import InputError

from .base_layer import PRESETS, BaseEncoder, get_codec
from .files import atomic_output
from .frames import GOP_SIZE, Gop, VideoInfo
from .io import open_video, read_audio
from .params import SCALES, GopParams, auto_scale, base_qp
from .resample import coded_size, downscale_gop, pad_gop

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
    writer = VcxWriter(out, _header(info, config))
    if audio:
        writer.write_audio(audio)
    encoder: BaseEncoder | None = None
    scale = 0
    for gop in gops:
        params = GopParams(scale=_scale_for(config, info))
        if params.scale != scale:
            if encoder is not None:
                _write_packets(writer, encoder.flush())
            scale = params.scale
            encoder = _start_segment(writer, info, config, scale)
        writer.write(GopChunk(writer.gops, writer.frames, gop.n_frames, params.pack()))
        height, width = coded_size(info.height, info.width, scale)
        coded = downscale_gop(pad_gop(gop, height, width), scale, device)
        _write_packets(writer, encoder.encode(coded))
        if progress:
            progress(gop.n_frames)
    if encoder is None:
        raise InputError("the input has no frames to encode")
    _write_packets(writer, encoder.flush())
    writer.close()
    return writer.frames


def _header(info: VideoInfo, config: EncodeConfig) -> StreamHeader:
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
        mode="hybrid",
        base_codec=config.base,
        qp=config.qp,
        models={},
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
