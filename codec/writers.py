"""Video files out: GOPs written as y4m, mp4/mkv (x264, with the source's audio) or PNG frames."""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace

from vcodec.errors import InputError
from vcodec.files import is_stdio, special_file
from vcodec.frames import COLOR_RANGE_PC, COLOR_RANGE_TV, Gop, VideoInfo
from vcodec.io import ACCURATE, SWS_MATRIX, frame_from_planes, reason

OUTPUT_FORMATS = ("y4m", "mp4", "mkv", "png")
SUPPORTED_OUTPUTS = ".y4m, .mp4, .mkv or a directory of PNG frames"
STREAM_FORMATS = ("y4m", "mkv")  # what goes to standard output, a pipe or a device


def open_writer(
    path: str | Path,
    info: VideoInfo,
    *,
    fmt: str | None = None,
    lossless: bool = False,
    crf: int = 12,
    audio: bytes | None = None,
) -> VideoWriter:
    """A writer for GOPs of ``info``'s size and rate; ``fmt`` wins over the path's suffix.

    - ``y4m``: raw frames, bit-exact at any size (colour range kept as XCOLORRANGE).
    - ``mp4``/``mkv``: libx264, preset medium, ``crf`` (or ``qp=0``, bit-exact, when lossless),
      colour tags kept. H.264 cannot store odd sizes in 4:2:0, so odd-sized video is written
      as 4:4:4 (High 4:4:4 profile) with each chroma sample repeated over its 2x2 block; the
      reader averages it back, so lossless odd-sized files still round-trip bit-exactly. Some
      hardware players do not play 4:4:4; write .y4m or PNGs when that matters. Matroska
      keeps times in ms: usual rates (30000/1001, 12, 25/2) survive, exotic ones get rounded.
    - ``png``: a directory of ``%06d.png`` RGB frames (matrix and range from ``info``).

    ``audio`` (bytes from ``read_audio``) is muxed unchanged into mp4/mkv; y4m and PNG
    directories cannot carry audio and drop it.
    """
    path = Path(path)
    fmt = output_format(path, fmt)
    if fmt == "y4m":
        return Y4mWriter(path, info)
    if fmt == "png":
        return PngWriter(path, info)
    return X264Writer(path, info, container_format=fmt, lossless=lossless, crf=crf, audio=audio)


def output_format(path: str | Path, fmt: str | None = None) -> str:
    """The output format: ``fmt`` when given, else from the suffix (a directory or no suffix
    means PNG frames). Raises InputError for anything else."""
    path = Path(path)
    suffix = path.suffix.lower()
    stream = is_stdio(path) or special_file(path) is not None  # written in place, in order
    if fmt is None and suffix in (".y4m", ".mp4", ".mkv"):
        fmt = suffix[1:]
    elif fmt is None and stream:
        fmt = "y4m"
    elif fmt is None and (path.is_dir() or not suffix):
        fmt = "png"
    if stream and fmt not in STREAM_FORMATS:
        raise InputError(
            f"Cannot write {fmt} to {'standard output' if is_stdio(path) else path}: a pipe or "
            f"device takes {' or '.join(STREAM_FORMATS)} (--format)."
        )
    if fmt not in OUTPUT_FORMATS:
        shown = f" as {fmt!r}" if fmt else ""
        raise InputError(f"Cannot write {path}{shown}: supported outputs are {SUPPORTED_OUTPUTS}.")
    return fmt


class VideoWriter:
    """Writes GOPs in order; ``close()`` (or leaving the ``with`` block) finishes the file."""

    def __init__(self, path: Path, info: VideoInfo) -> None:
        self.path, self.info = path, info
        self.frames_written = 0

    def write(self, gop: Gop) -> None:
        size, chroma = (self.info.height, self.info.width), self.info.chroma_size
        if gop.y.shape[1:] != size or gop.u.shape[1:] != chroma or gop.v.shape[1:] != chroma:
            raise ValueError(f"GOP planes {gop.y.shape}, {gop.u.shape} do not fit {self.info}.")
        for t in range(gop.n_frames):
            self._write_frame(gop.y[t], gop.u[t], gop.v[t])
            self.frames_written += 1

    def close(self) -> None:
        """Finish the output; calling it again does nothing."""

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
            return
        with contextlib.suppress(Exception):  # the original error matters more than this one
            self.close()

    def _write_frame(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        raise NotImplementedError


class Y4mWriter(VideoWriter):
    """YUV4MPEG2 written by hand: exact bytes, any size."""

    def __init__(self, path: Path, info: VideoInfo) -> None:
        super().__init__(path, info)
        fps = Fraction(info.fps)
        header = (
            f"YUV4MPEG2 W{info.width} H{info.height} F{fps.numerator}:{fps.denominator}"
            " Ip A1:1 C420jpeg XYSCSS=420JPEG"
        )
        ranges = {COLOR_RANGE_PC: " XCOLORRANGE=FULL", COLOR_RANGE_TV: " XCOLORRANGE=LIMITED"}
        header += ranges.get(info.color_range, "")
        self._file = _open_output(path)
        self._file.write(header.encode("ascii") + b"\n")

    def _write_frame(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        self._file.write(b"FRAME\n")
        for plane in (y, u, v):
            self._file.write(np.ascontiguousarray(plane, np.uint8).tobytes())

    def close(self) -> None:
        self._file.close()


def _open_output(path: Path) -> BinaryIO:
    """The file to write ``path`` into: standard output for ``-`` (closing it only flushes)."""
    if is_stdio(path):
        return _Unclosed(sys.stdout.buffer)
    try:
        return open(path, "wb")
    except OSError as e:
        raise InputError(f"Cannot write {path} ({reason(e)}).") from e


class _Unclosed(io.RawIOBase):
    """Standard output for a writer: written through, flushed on close, never closed."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:
        self.stream.write(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self.stream.flush()
        super().close()


class PngWriter(VideoWriter):
    """A directory of RGB PNGs, ``000000.png`` onwards."""

    def __init__(self, path: Path, info: VideoInfo) -> None:
        super().__init__(path, info)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"Cannot create the frame directory {path} ({reason(e)}).") from e
        full = info.color_range == COLOR_RANGE_PC
        self._src_range = ColorRange.JPEG if full else ColorRange.MPEG
        self._matrix = SWS_MATRIX.get(info.colorspace, Colorspace.ITU601)

    def _write_frame(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        frame = frame_from_planes(y, u, v)
        rgb = frame.reformat(
            format="rgb24",
            src_colorspace=self._matrix,
            src_color_range=self._src_range,
            dst_color_range=ColorRange.JPEG,
            interpolation=ACCURATE,
        )
        rgb.save(self.path / f"{self.frames_written:06d}.png")


class X264Writer(VideoWriter):
    """H.264 (libx264) in mp4 or mkv, optionally with an audio stream carried unchanged."""

    def __init__(
        self,
        path: Path,
        info: VideoInfo,
        *,
        container_format: str,
        lossless: bool,
        crf: int,
        audio: bytes | None,
    ) -> None:
        super().__init__(path, info)
        self._odd = bool(info.width % 2 or info.height % 2)
        self._time_base = 1 / Fraction(info.fps)  # frame pts count frames
        fmt = "mp4" if container_format == "mp4" else "matroska"
        try:
            target = _open_output(path) if is_stdio(path) else str(path)
            self._out = av.open(target, "w", format=fmt)
        except (av.error.FFmpegError, OSError) as e:
            raise InputError(f"Cannot write {path} ({reason(e)}).") from e
        self._video = self._add_video(lossless, crf)
        self._audio_in, self._audio_out, self._audio_next = None, None, None
        self._audio_packets: Iterator[av.Packet] = iter(())
        if audio is not None:
            self._add_audio(audio)
        self._closed = False

    def _add_video(self, lossless: bool, crf: int) -> av.VideoStream:
        info = self.info
        stream = self._out.add_stream("libx264", rate=info.fps)
        stream.width, stream.height = info.width, info.height
        stream.pix_fmt = "yuv444p" if self._odd else "yuv420p"
        stream.time_base = self._time_base
        ctx = stream.codec_context
        ctx.color_range, ctx.colorspace = info.color_range, info.colorspace
        ctx.color_primaries, ctx.color_trc = info.color_primaries, info.color_trc
        quality = {"qp": "0"} if lossless else {"crf": str(crf)}
        stream.options = {"preset": "medium", **quality, "x264-params": "log=-1"}
        return stream

    def _add_audio(self, audio: bytes) -> None:
        try:
            self._audio_in = av.open(io.BytesIO(audio), format="matroska")
            template = self._audio_in.streams.audio[0]
            self._audio_out = self._out.add_stream_from_template(template)
        except (av.error.FFmpegError, IndexError, ValueError) as e:
            self._release()
            raise InputError(f"Cannot carry this audio into {self.path} ({reason(e)}).") from e
        packets = self._audio_in.demux(template)
        self._audio_packets = (p for p in packets if p.dts is not None)
        self._audio_next = next(self._audio_packets, None)

    def _write_frame(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        if self._odd:  # 4:4:4: each chroma sample over its 2x2 block, cropped to the frame
            h, w = y.shape
            u, v = (np.repeat(np.repeat(c, 2, 0), 2, 1)[:h, :w] for c in (u, v))
        frame = frame_from_planes(y, u, v, self._video.pix_fmt)
        info = self.info
        frame.color_range, frame.colorspace = info.color_range, info.colorspace
        frame.color_primaries, frame.color_trc = info.color_primaries, info.color_trc
        frame.pts, frame.time_base = self.frames_written, self._time_base
        self._mux_audio_until(self.frames_written / Fraction(info.fps))
        self._out.mux(self._video.encode(frame))

    def _mux_audio_until(self, seconds: Fraction | None) -> None:
        """Mux the audio packets that start by ``seconds`` (all of them when None)."""
        while self._audio_next is not None:
            packet = self._audio_next
            if seconds is not None and packet.dts * packet.time_base > seconds:
                return
            packet.stream = self._audio_out
            self._out.mux(packet)
            self._audio_next = next(self._audio_packets, None)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._out.mux(self._video.encode(None))
            self._mux_audio_until(None)
        finally:
            self._release()

    def _release(self) -> None:
        self._closed = True
        for container in (self._out, self._audio_in):
            if container is not None:
                container.close()
