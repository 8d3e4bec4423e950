"""Video files in: any input decoded to YUV 4:2:0 GOPs (and its audio), and the conversions
between PyAV frames and planes that the writers (writers.py) and base layer share."""

from __future__ import annotations

import bisect
import hashlib
import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, Interpolation

from vcodec.errors import InputError
from vcodec.frames import (
    COLOR_RANGE_PC,
    COLOR_RANGE_TV,
    COLOR_RANGE_UNSPECIFIED,
    COLOR_UNSPECIFIED,
    GOP_SIZE,
    Gop,
    VideoInfo,
)
from vcodec.notes import ReadLog

DEFAULT_FPS = Fraction(25)
# frames decoded on opening: their timestamps, in presentation order, give the frame rate
# (enough for B-frame reordering; a few frames of memory)
PEEK_FRAMES = 8
# with --frames N, demuxing stops this many packets after the Nth: enough for any reordering
REORDER_PACKETS = 64
RATE_TOLERANCE = Fraction(1, 20)  # a stated rate this close to the timestamps' is taken
MAX_RATE_DENOMINATOR = 1001
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")
RAW_FORMATS = {".264": "h264", ".h264": "h264", ".265": "hevc", ".h265": "hevc", ".hevc": "hevc"}
COLORSPACE_BT601 = 6  # AVCOL_SPC_SMPTE170M: what RGB sources are converted with
AVCOL_SPC_RGB = 0  # the identity matrix, meaningless for the YUV that gops() yields
# swscale flags for colour conversions: accurate to +-1 against the exact float formulas
ACCURATE = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
# ffmpeg's AVColorSpace -> swscale's matrix; anything else (unspecified) is BT.601, as in ffmpeg
SWS_MATRIX = {1: Colorspace.ITU709, 4: Colorspace.FCC, 7: Colorspace.SMPTE240M}
SWS_MATRIX |= {9: Colorspace.BT2020, 10: Colorspace.BT2020}
# VideoInfo's colour fields with their "unspecified" values
COLOUR_FIELDS = {
    "color_range": COLOR_RANGE_UNSPECIFIED,
    "colorspace": COLOR_UNSPECIFIED,
    "color_primaries": COLOR_UNSPECIFIED,
    "color_trc": COLOR_UNSPECIFIED,
}


@dataclass
class FrameIndex:
    """An input's frames as demuxing finds them: their presentation timestamps in order
    (``pts``), and each packet's timestamp and hash in the order they are stored."""

    pts: list[int]
    packets: list[tuple[int, bytes]]

    def digests(self, starts: list[int]) -> list[str]:
        """For each stretch of the input from one of ``starts`` (timestamps, rising) to the
        next, a hash of the packets shown in it, in stored order: what says that a stretch is
        the same as before (resume)."""
        digests = [hashlib.sha256(b"%d" % start) for start in starts]
        for pts, packet in self.packets:
            stretch = bisect.bisect_right(starts, pts) - 1
            if 0 <= stretch and (stretch + 1 < len(starts) or pts <= self.pts[-1]):
                digests[stretch].update(packet)
        return [d.hexdigest() for d in digests]


# --- reading --------------------------------------------------------------------------------


def open_video(path: str | Path, *, fps: Fraction | None = None) -> VideoReader:
    """Open a video file, a raw .264/.265 stream or a directory of PNG/JPG frames.

    ``fps`` overrides the rate the input states (frame directories default to 25).
    Raises InputError when the input is missing, not a video or has no decodable frame.
    """
    if fps is not None and fps <= 0:
        raise InputError(f"Cannot read {path} at {fps} frames per second: fps must be positive.")
    return VideoReader(Path(path), fps=None if fps is None else Fraction(fps))


class VideoReader:
    """A decoded input: ``info`` describes it, ``gops()`` streams its frames as YUV 4:2:0.

    Each ``gops()`` call starts again from the first frame; after one, ``notes()`` says what
    it converted or found (pixel formats, a variable frame rate, a truncated input). Use it as
    a context manager (or call ``close()``) to release the open file.
    """

    def __init__(self, path: Path, fps: Fraction | None = None, describe: bool = True) -> None:
        """``describe``: decode the first frames now, for ``info`` (a worker reading one
        stretch with frames_between needs none: it has the driver's)."""
        if not path.exists():
            raise InputError(f"Input {path} does not exist.")
        self.path = path
        self._container: av.container.InputContainer | None = None
        self.log = ReadLog()
        self._frames = self._start()
        self._peeked = None
        if not describe:
            return
        peeked = list(itertools.islice(self._frames, PEEK_FRAMES))
        if not peeked:
            self.close()
            raise InputError(f"Input {path} has no decodable video frame.")
        self._peeked: list[av.VideoFrame] | None = peeked
        self.info = self._describe(peeked, fps)

    def gops(self, gop_size: int = GOP_SIZE, max_frames: int | None = None) -> Iterator[Gop]:
        """Yield GOPs of up to ``gop_size`` frames (the last may be shorter), one in memory."""
        if gop_size < 1:
            raise ValueError(f"gop_size must be at least 1, got {gop_size}.")
        frames = self._restart()
        if max_frames is not None:
            frames = itertools.islice(frames, max_frames)
        start = 0
        while (gop := self._read_gop(frames, gop_size, start)) is not None:
            yield gop
            start += gop.n_frames
        self.log.ended = max_frames is None or start < max_frames

    def index(self, max_frames: int | None = None) -> FrameIndex | None:
        """The input's frames found by demuxing alone (no decoding): their presentation
        timestamps in order and each packet's hash (the first ``max_frames``). None where that
        cannot stand for the decoded frames: a folder of images, a raw stream without
        timestamps, a demuxing error, or timestamps that differ from the first frames
        decoded."""
        if self._container is None and self.path.is_dir():
            return None
        fmt = RAW_FORMATS.get(self.path.suffix.lower())
        packets: list[tuple[int, bytes]] = []
        try:
            with av.open(str(self.path), format=fmt) as container:
                for packet in container.demux(container.streams.video[0]):
                    if packet.size == 0:  # a flush packet, or an AVI tick with no frame
                        continue
                    if packet.pts is None:
                        return None
                    packets.append((packet.pts, hashlib.blake2b(bytes(packet)).digest()))
                    if max_frames is not None and len(packets) >= max_frames + REORDER_PACKETS:
                        break
        except (av.error.FFmpegError, OSError):
            return None
        pts = sorted(p for p, _ in packets)[:max_frames]
        peeked = sorted(f.pts for f in self._peeked or () if f.pts is not None)
        if not pts or peeked[: len(pts)] != pts[: len(peeked)]:
            return None
        return FrameIndex(pts, packets)

    def frames_between(
        self, first: int, start_pts: int | None, end_pts: int | None, seek: bool = True
    ) -> Iterator[Gop]:
        """One-frame GOPs of a stretch of the input (``start`` counting from its first). With
        timestamps (an index's): the frames from ``start_pts`` up to ``end_pts`` (None: to the
        end), decoded from the keyframe before ``start_pts`` where ``seek``, else from the
        input's start. Without: the frames from frame ``first`` on, decoded from the start."""
        self.close()
        self._peeked = None
        self._frames = self._start()
        frames: Iterator[av.VideoFrame] = self._frames
        if start_pts is None:
            frames = itertools.islice(frames, first, None)
        elif seek and self._container is not None:
            stream = self._container.streams.video[0]
            self._container.seek(start_pts, stream=stream, backward=True)
            frames = _container_frames(self._container, self.log)
        return stretch(frames, start_pts, end_pts, self.log)

    def notes(self) -> list[str]:
        """What the last ``gops()`` pass converted or found, one line each (FORMAT.md, notes)."""
        return self.log.notes(self.info)

    def close(self) -> None:
        self._frames.close()
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _restart(self) -> Iterator[av.VideoFrame]:
        if self._peeked is not None:  # the frames decoded for `info` open the first pass
            peeked, self._peeked = self._peeked, None
            return itertools.chain(peeked, self._frames)
        self.close()
        self._frames = self._start()
        return self._frames

    def _start(self) -> Iterator[av.VideoFrame]:
        self.log = ReadLog(timed=not self.path.is_dir())
        if self.path.is_dir():
            return _directory_frames(self.path)
        fmt = RAW_FORMATS.get(self.path.suffix.lower())
        try:
            container = av.open(str(self.path), format=fmt)
        except (av.error.FFmpegError, OSError, UnicodeDecodeError) as e:
            raise InputError(f"Input {self.path} is not a readable video ({reason(e)}).") from e
        if not container.streams.video:
            container.close()
            raise InputError(f"Input {self.path} has no video stream.")
        self._container = container
        return _container_frames(container, self.log)

    def _describe(self, frames: list[av.VideoFrame], fps: Fraction | None) -> VideoInfo:
        frame = frames[0]
        if self._container is None:  # a frame directory
            count, rate, stream = len(frame_files(self.path)), None, None
        else:
            stream = self._container.streams.video[0]
            rate = frame_rate(frames, stream.average_rate, stream.guessed_rate)
            count = stream.frames or None
            ticks = stream.time_base and stream.average_rate == 1 / stream.time_base
            if count and rate and ticks and rate != stream.average_rate:
                # an AVI at one packet a tick counts the empty packets standing for the ticks
                # with no frame (its B-frames' placeholders, a lower rate's gaps)
                count = round(count * rate / stream.average_rate)
        colour = _colour(frame, None if stream is None else stream.codec_context)
        fps = fps or (Fraction(rate) if rate else DEFAULT_FPS)
        return VideoInfo(frame.width, frame.height, fps, count, *colour)

    def _read_gop(self, frames: Iterator[av.VideoFrame], size: int, start: int) -> Gop | None:
        """Convert up to ``size`` frames straight into the GOP's arrays; None at the end."""
        h, w = self.info.height, self.info.width
        y = np.empty((size, h, w), np.uint8)
        u, v = (np.empty((size, *self.info.chroma_size), np.uint8) for _ in range(2))
        n = 0
        for frame in itertools.islice(frames, size):
            if (frame.width, frame.height) != (w, h):
                raise InputError(
                    f"Input {self.path} changes frame size mid-stream "
                    f"({w}x{h} to {frame.width}x{frame.height}), which is not supported."
                )
            y[n], u[n], v[n] = _yuv420(frame)
            self.log.add(frame)
            n += 1
        return Gop(y[:n], u[:n], v[:n], start=start) if n else None


def stretch(
    frames: Iterator[av.VideoFrame], start_pts: int | None, end_pts: int | None, log: ReadLog
) -> Iterator[Gop]:
    """One-frame GOPs of the ``frames`` from ``start_pts`` up to ``end_pts`` (None: no bound),
    each added to ``log``."""
    if start_pts is not None:
        frames = itertools.dropwhile(lambda f: f.pts is None or f.pts < start_pts, frames)
    if end_pts is not None:
        frames = itertools.takewhile(lambda f: f.pts is None or f.pts < end_pts, frames)
    for n, frame in enumerate(frames):
        y, u, v = planes_from_frame(frame)
        log.add(frame)
        yield Gop(y[None], u[None], v[None], start=n)


@dataclass(frozen=True)
class Excerpt:
    """The packets that decode a stretch of an input, for a worker that cannot read the input
    itself: the codec, its extradata and time base, and each packet's (pts, dts, bytes) in
    stored order, from the keyframe before the stretch to the keyframe after it."""

    codec: str
    extradata: bytes
    time_base: Fraction
    packets: list[tuple[int | None, int | None, bytes]]

    def frames(self) -> Iterator[av.VideoFrame]:
        """The decoded frames, skipping packets that do not decode (as ffmpeg does)."""
        decoder = av.CodecContext.create(self.codec, "r")
        decoder.extradata = self.extradata or None
        decoder.thread_type = "AUTO"
        for pts, dts, data in self.packets:
            packet = av.Packet(data)
            packet.pts, packet.dts, packet.time_base = pts, dts, self.time_base
            try:
                yield from decoder.decode(packet)
            except av.error.FFmpegError:
                continue
        yield from decoder.decode(None)


def excerpt(path: str | Path, start_pts: int, end_pts: int | None) -> Excerpt:
    """The packets that decode the frames of ``path`` from ``start_pts`` up to ``end_pts``
    (None: to the end): from the keyframe at or before the first to the first keyframe shown
    at or after ``end_pts``. An open GOP's leading pictures before that keyframe are left out."""
    path = Path(path)
    with av.open(str(path), format=RAW_FORMATS.get(path.suffix.lower())) as container:
        stream = container.streams.video[0]
        container.seek(start_pts, stream=stream, backward=True)
        packets: list[tuple[int | None, int | None, bytes]] = []
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            ahead = end_pts is not None and packet.pts is not None and packet.pts >= end_pts
            if packets and ahead and packet.is_keyframe:
                break
            packets.append((packet.pts, packet.dts, bytes(packet)))
        context = stream.codec_context
        return Excerpt(
            context.name, bytes(context.extradata or b""), Fraction(stream.time_base), packets
        )


def frame_rate(frames: list[av.VideoFrame], *stated: Fraction | None) -> Fraction | None:
    """The frame rate the decoded ``frames``' timestamps show, in presentation order (the
    median interval): the first ``stated`` rate within RATE_TOLERANCE of it (they are exact
    where timestamps are rounded, as Matroska's milliseconds), else the timestamps' own.
    Without timestamps, the first stated rate."""
    pts = sorted(f.pts for f in frames if f.pts is not None)
    steps = sorted(b - a for a, b in zip(pts, pts[1:], strict=False) if b > a)
    stated_rates = [Fraction(r) for r in stated if r]
    if not steps or frames[0].time_base is None:
        return stated_rates[0] if stated_rates else None
    shown = 1 / (steps[len(steps) // 2] * Fraction(frames[0].time_base))
    for rate in stated_rates:
        if abs(rate - shown) <= RATE_TOLERANCE * shown:
            return rate
    return shown.limit_denominator(MAX_RATE_DENOMINATOR)


def _container_frames(
    container: av.container.InputContainer, log: ReadLog
) -> Iterator[av.VideoFrame]:
    """Decode the first video stream like ffmpeg does: skip undecodable packets, stop at a
    demuxing error (ffmpeg treats it as the end of the input); ``log`` counts both."""
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.error.FFmpegError as e:
            log.read_error = reason(e)
            return
        try:
            frames = packet.decode()
        except av.error.FFmpegError:  # ffmpeg logs a broken packet and goes on
            log.broken_packets += 1
            continue
        yield from frames


def reason(error: Exception) -> str:
    """The reason in an ffmpeg/OS error, without the path it repeats."""
    return getattr(error, "strerror", None) or str(error)


def frame_files(directory: Path) -> list[Path]:
    """A frame folder's images in the order they are frames (name order)."""
    return sorted(p for p in directory.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)


def _directory_frames(directory: Path) -> Iterator[av.VideoFrame]:
    files = frame_files(directory)
    if not files:
        raise InputError(f"Input directory {directory} holds no PNG or JPG frames.")
    for file in files:
        try:
            with av.open(str(file)) as image:
                yield next(image.decode(video=0))
        except (av.error.FFmpegError, OSError, StopIteration) as e:
            raise InputError(f"Frame {file} could not be decoded as an image ({reason(e)}).") from e


def _is_rgb_like(fmt: av.VideoFormat) -> bool:
    """RGB and palette pictures: they need a YUV matrix chosen for them (grey ones do not)."""
    return fmt.is_rgb or fmt.has_palette


def _colour(frame: av.VideoFrame, ctx: av.CodecContext | None) -> tuple[int, int, int, int]:
    """(range, matrix, primaries, trc) as ffmpeg ints: the frame's, else the stream's."""
    if _is_rgb_like(frame.format):
        return COLOR_RANGE_TV, COLORSPACE_BT601, frame.color_primaries, frame.color_trc
    values = []
    for name, unspecified in COLOUR_FIELDS.items():
        value = getattr(frame, name)
        if value == unspecified and ctx is not None:
            value = getattr(ctx, name)
        values.append(value)
    if frame.format.name.startswith("yuvj"):
        values[0] = COLOR_RANGE_PC
    if values[1] == AVCOL_SPC_RGB:  # grey pictures say "RGB"; no matrix fits what we hand out
        values[1] = COLOR_UNSPECIFIED
    return tuple(int(v) for v in values)


def _plane(plane: av.video.plane.VideoPlane) -> np.ndarray:
    """One 8-bit plane as a [height, width] view, without the line padding."""
    rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
    return rows[: plane.height, : plane.width]


def planes_from_frame(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A decoded frame as (y, u, v) 8-bit 4:2:0 arrays of its own (copies, any size)."""
    y, u, v = _yuv420(frame)
    return y.copy(), u.copy(), v.copy()


def _yuv420(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The frame's three 4:2:0 planes, converting only what is not 8-bit 4:2:0 already.

    8-bit 4:4:4 gets its chroma averaged over 2x2 blocks: the exact inverse of the chroma
    repetition the mp4/mkv writer uses for odd sizes, so lossless files round-trip bit-exactly.
    """
    name = frame.format.name
    if name in ("yuv444p", "yuvj444p"):
        y, u, v = (_plane(p) for p in frame.planes)
        return y, _halve(u), _halve(v)
    if name not in ("yuv420p", "yuvj420p"):
        frame = _reformat_to_420(frame)
    y, u, v = (_plane(p) for p in frame.planes)
    return y, u, v


def _halve(plane: np.ndarray) -> np.ndarray:
    """2x2 mean (rounded), the odd last row/column averaging with itself."""
    h, w = plane.shape
    p = np.pad(plane, ((0, h % 2), (0, w % 2)), mode="edge").astype(np.uint16)
    total = p[0::2, 0::2] + p[0::2, 1::2] + p[1::2, 0::2] + p[1::2, 1::2]
    return ((total + 2) // 4).astype(np.uint8)


def _reformat_to_420(frame: av.VideoFrame) -> av.VideoFrame:
    if _is_rgb_like(frame.format):  # RGB becomes BT.601 limited range, as `info` says
        return frame.reformat(
            format="yuv420p",
            dst_colorspace=Colorspace.ITU601,
            src_color_range=ColorRange.JPEG,
            dst_color_range=ColorRange.MPEG,
            interpolation=ACCURATE,
        )
    full = frame.color_range == COLOR_RANGE_PC or frame.format.name.startswith("yuvj")
    keep = ColorRange.JPEG if full else ColorRange.MPEG  # same matrix and range, only resampled
    return frame.reformat(
        format="yuv420p", src_color_range=keep, dst_color_range=keep, interpolation=ACCURATE
    )


def read_audio(path: str | Path, seconds: Fraction | None = None) -> bytes | None:
    """The input's first audio stream remuxed unchanged into an in-memory Matroska (.mka);
    with ``seconds``, only its packets that start before then (the video's duration under
    ``--frames``).

    None when there is no audio (always for raw .264/.265 streams and frame directories).
    """
    path = Path(path)
    if path.is_dir() or path.suffix.lower() in RAW_FORMATS:
        return None
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return None
            return _remux_audio(container, container.streams.audio[0], seconds)
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise InputError(f"The audio of {path} could not be read ({reason(e)}).") from e


def _remux_audio(
    container: av.container.InputContainer, stream: av.AudioStream, seconds: Fraction | None
) -> bytes:
    buffer = io.BytesIO()
    if seconds is not None:  # from where the file starts, as its video does
        seconds = Fraction(seconds) + Fraction(container.start_time or 0, av.time_base)
    # bitexact: no random segment UID or muxer version, so the same input gives the same bytes
    with av.open(buffer, "w", format="matroska", options={"fflags": "+bitexact"}) as output:
        out_stream = output.add_stream_from_template(stream)
        for packet in container.demux(stream):
            if packet.dts is None:  # the flush packet at the end, or one with no timing
                continue
            start = packet.pts if packet.pts is not None else packet.dts
            if seconds is not None and start * packet.time_base >= seconds:
                break
            packet.stream = out_stream
            output.mux(packet)
    return buffer.getvalue()


def frame_from_planes(
    y: np.ndarray, u: np.ndarray, v: np.ndarray, pix_fmt: str = "yuv420p"
) -> av.VideoFrame:
    """An 8-bit planar PyAV frame of any size, each plane padded to its line size."""
    frame = av.VideoFrame(y.shape[1], y.shape[0], pix_fmt)
    for plane, data in zip(frame.planes, (y, u, v), strict=True):
        rows = np.zeros((plane.height, plane.line_size), np.uint8)
        rows[:, : plane.width] = data
        plane.update(rows)
    return frame
