"""Where a video is cut into independent segments: into windows of at most --segment-seconds
(a grid from the first frame, whole GOPs), and each window at its scene changes (cheap
frame-difference statistics, seen within the window). Never by the number of workers, so the
cuts (and the bytes) depend on the content and options alone; and a window's cuts on its own
frames alone, so a worker can read and cut its window without a first pass over the input."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
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
    """The frames of a window (the most a segment holds): ``seconds`` of video in whole GOPs
    (at least one)."""
    return max(GOP_SIZE, int(seconds * fps) // GOP_SIZE * GOP_SIZE)


@dataclass
class SegmentGop:
    """A GOP of segment ``segment`` (0, 1, ...); its ``gop.start`` counts from the segment's
    first frame."""

    segment: int
    gop: Gop


class _Cutter:
    """The scene-change rule over a stream of frames (see the module's constants)."""

    def __init__(self) -> None:
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


def regroup(gops: Iterable[Gop], size: int = GOP_SIZE) -> Iterator[Gop]:
    """The frames of ``gops`` in GOPs of ``size`` (the last may be shorter), ``start`` from 0;
    a GOP that already is one is passed on as it is."""
    window: list[tuple[np.ndarray, ...]] = []
    start = 0
    for gop in gops:
        if not window and gop.n_frames == size:
            yield gop if gop.start == start else replace(gop, start=start)
            start += size
            continue
        for t in range(gop.n_frames):
            window.append((gop.y[t], gop.u[t], gop.v[t]))
            if len(window) == size:
                yield Gop.from_frames(window, start)
                start, window = start + size, []
    if window:
        yield Gop.from_frames(window, start)


def window_gops(gops: Iterable[Gop], frames: int) -> Iterator[tuple[int, Gop]]:
    """(window, GOP): the frames of ``gops`` in GOPs of GOP_SIZE (``start`` from the first
    frame), each with its window of ``frames`` frames (longest_segment: whole GOPs)."""
    for gop in regroup(gops):
        yield gop.start // frames, gop


def scene_segments(gops: Iterable[Gop]) -> Iterator[SegmentGop]:
    """The frames of one window regrouped into its segments (a cut at each scene change), in
    GOPs of GOP_SIZE frames (a segment's last GOP may be shorter), one GOP in memory. The rule
    sees this window's frames alone, so a window's cuts do not depend on who reads it."""
    cutter = _Cutter()
    segment, length = 0, 0
    window: list[tuple[np.ndarray, ...]] = []

    def emit() -> SegmentGop:
        return SegmentGop(segment, Gop.from_frames(window, length))

    for gop in gops:
        for t in range(gop.n_frames):
            scene = cutter.scene_change(cutter.difference(gop.y[t]))
            if scene and length + len(window) >= MIN_SCENE_FRAMES:
                if window:
                    yield emit()
                segment, length, window = segment + 1, 0, []
            window.append((gop.y[t], gop.u[t], gop.v[t]))
            if len(window) == GOP_SIZE:
                yield emit()
                length += len(window)
                window = []
    if window:
        yield emit()
