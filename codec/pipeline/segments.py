"""Where a video is cut into independent segments: at scene changes (cheap frame-difference
statistics) and at a maximum length; never by the number of workers, so the cuts (and the
bytes) depend on the content and options alone."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction

import cv2
import numpy as np

from vcodec.frames import GOP_SIZE, Gop

THUMB_FACTOR = 8  # frames are compared as luma thumbnails this many times smaller per side
# a scene change: a frame whose mean absolute thumbnail difference to the one before is at
# least SCENE_DIFF levels and SCENE_RATIO times the mean of the last GOP's
SCENE_DIFF, SCENE_RATIO = 20.0, 4.0
MIN_SCENE_FRAMES = 8  # a scene change closer than this to the segment's start is no cut (a flash)
# the longest segment: every cut is a keyframe, which a still camera pays dearly for (10 s
# segments cost +6.2 % and +11.5 % against one segment on two fixed cameras, docs/results.md)
DEFAULT_SEGMENT_SECONDS = 60.0


def longest_segment(fps: Fraction, seconds: float) -> int:
    """The most frames a segment holds: ``seconds`` of video in whole GOPs (at least one)."""
    return max(GOP_SIZE, int(seconds * fps) // GOP_SIZE * GOP_SIZE)


@dataclass
class SegmentGop:
    """A GOP of segment ``segment`` (0, 1, ...); its ``gop.start`` counts from the segment's
    first frame."""

    segment: int
    gop: Gop


class _Cutter:
    """The cut rules over a stream of frames (see the module's constants)."""

    def __init__(self, fps: Fraction, seconds: float) -> None:
        self.max_frames = longest_segment(fps, seconds)
        self.previous: np.ndarray | None = None
        self.recent: list[float] = []  # the last GOP's differences

    def difference(self, y: np.ndarray) -> float | None:
        h, w = y.shape
        size = (max(1, w // THUMB_FACTOR), max(1, h // THUMB_FACTOR))
        thumb = cv2.resize(y, size, interpolation=cv2.INTER_AREA).astype(np.float32)
        previous, self.previous = self.previous, thumb
        return None if previous is None else float(np.abs(thumb - previous).mean())

    def scene_change(self, diff: float | None) -> bool:
        if diff is None:
            return False
        level = np.mean(self.recent) if self.recent else 0.0
        self.recent = (self.recent + [diff])[-GOP_SIZE:]
        return diff >= SCENE_DIFF and diff >= SCENE_RATIO * level


def segment_gops(
    gops: Iterable[Gop], fps: Fraction, seconds: float = DEFAULT_SEGMENT_SECONDS
) -> Iterator[SegmentGop]:
    """The frames of ``gops`` regrouped into segments of GOPs of GOP_SIZE frames (a segment's
    last GOP, and one cut short by a scene change, may be shorter), one GOP in memory."""
    cutter = _Cutter(fps, seconds)
    segment, length = 0, 0
    window: list[tuple[np.ndarray, ...]] = []

    def emit() -> SegmentGop:
        gop = Gop.from_frames(window, length)
        return SegmentGop(segment, gop)

    for gop in gops:
        for t in range(gop.n_frames):
            diff = cutter.difference(gop.y[t])
            scene = cutter.scene_change(diff)
            if scene and length + len(window) >= MIN_SCENE_FRAMES:
                if window:
                    yield emit()
                segment, length, window = segment + 1, 0, []
            window.append((gop.y[t], gop.u[t], gop.v[t]))
            if len(window) < GOP_SIZE:
                continue
            yield emit()
            length += len(window)
            window = []
            if length >= cutter.max_frames:
                segment, length = segment + 1, 0
    if window:
        yield emit()
