"""Shared test helpers: deterministic synthetic clips written with PyAV, the shared-data marker."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
_skip_without_data = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"needs the shared data at {SHARED_DATA}"
)


def requires_data(test: Callable) -> Callable:
    """Mark a test as `data` and skip it when ../shared/data is absent."""
    return pytest.mark.data(_skip_without_data(test))


AUDIO_RATE = 48000
AUDIO_FRAME = 1024  # samples per AAC frame


def synthetic_planes(width: int, height: int, frames: int) -> list[tuple[np.ndarray, ...]]:
    """The (y, u, v) 4:2:0 planes of the test clip: moving gradients, a moving square, noise."""
    rng = np.random.default_rng(1234)
    ch, cw = (height + 1) // 2, (width + 1) // 2
    yy, xx = np.mgrid[0:height, 0:width]
    cy, cx = np.mgrid[0:ch, 0:cw]
    side = max(2, min(width, height) // 4)
    out = []
    for t in range(frames):
        y = 40 + (xx * 160 // max(width, 1) + yy * 40 // max(height, 1) + 3 * t) % 160
        top, left = (2 * t) % max(1, height - side), (3 * t) % max(1, width - side)
        y[top : top + side, left : left + side] = 220
        y = y + rng.integers(-3, 4, y.shape)
        u = 128 + (cx * 60 // max(cw, 1) - 30 + t) % 50
        v = 100 + (cy * 50 // max(ch, 1) + 2 * t) % 60
        out.append(tuple(np.clip(p, 0, 255).astype(np.uint8) for p in (y, u, v)))
    return out


def write_test_clip(
    path: str | Path,
    width: int,
    height: int,
    frames: int,
    fps: Fraction = Fraction(25),
    audio: bool = False,
) -> None:
    """Write the synthetic clip: .y4m by hand, .mkv as lossless FFV1, .mp4/.264 as x264 crf 18.

    ``audio=True`` adds an AAC sine tone as long as the video (not possible in .y4m/.264).
    """
    path, fps = Path(path), Fraction(fps)
    planes = synthetic_planes(width, height, frames)
    if path.suffix == ".y4m":
        _write_y4m(path, planes, fps)
        return
    codec = {".mkv": "ffv1", ".mp4": "libx264", ".264": "libx264", ".h264": "libx264"}
    fmt = "h264" if path.suffix in (".264", ".h264") else None
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec[path.suffix], rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if stream.codec_context.name == "libx264":
            stream.options = {"crf": "18", "preset": "veryfast", "x264-params": "log=-1"}
        tone = _add_tone(out, frames / fps) if audio else []
        for t, yuv in enumerate(planes):
            frame = _yuv_frame(yuv)
            frame.pts, frame.time_base = t, 1 / fps
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        for packets in tone:
            out.mux(packets)


def _write_y4m(path: Path, planes: list[tuple[np.ndarray, ...]], fps: Fraction) -> None:
    height, width = planes[0][0].shape
    header = f"YUV4MPEG2 W{width} H{height} F{fps.numerator}:{fps.denominator} Ip A1:1 C420jpeg\n"
    with open(path, "wb") as f:
        f.write(header.encode())
        for yuv in planes:
            f.write(b"FRAME\n" + b"".join(p.tobytes() for p in yuv))


def _yuv_frame(yuv: tuple[np.ndarray, ...]) -> av.VideoFrame:
    height, width = yuv[0].shape
    frame = av.VideoFrame(width, height, "yuv420p")
    for plane, data in zip(frame.planes, yuv, strict=True):
        rows = np.zeros((plane.height, plane.line_size), np.uint8)
        rows[:, : plane.width] = data
        plane.update(rows)
    return frame


def _add_tone(out: av.container.OutputContainer, seconds: Fraction) -> list[av.Packet]:
    """Add an AAC stream to ``out`` and return the encoded packets of a 440 Hz tone."""
    stream = out.add_stream("aac", rate=AUDIO_RATE, layout="mono")
    n = int(seconds * AUDIO_RATE)
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / AUDIO_RATE)).astype(np.float32)
    packets = []
    for start in range(0, n, AUDIO_FRAME):
        chunk = tone[start : start + AUDIO_FRAME]
        frame = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
        frame.sample_rate, frame.pts = AUDIO_RATE, start
        packets += stream.encode(frame)
    return packets + stream.encode(None)


@pytest.fixture
def clip_factory(tmp_path: Path) -> Callable[..., Path]:
    """``make(name, width, height, frames, fps=25, audio=False)`` writes a clip in tmp_path."""

    def make(name: str, width: int, height: int, frames: int, **kwargs: object) -> Path:
        path = tmp_path / name
        write_test_clip(path, width, height, frames, **kwargs)
        return path

    return make
