"""Where a video is cut into independent segments: at scene changes, where a still scene starts
to move (or stops), and at a maximum length, from cheap frame-difference statistics; never by
the number of workers, so the cuts (and the bytes) depend on the content and options alone."""

from __future__ import annotations

import hashlib
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
# an activity change: a GOP whose mean difference is ACTIVITY_RATIO times its segment's first
# GOP's, or that far below it (differences under ACTIVITY_FLOOR levels count as that floor:
# sensor noise), once the segment is MIN_SEGMENT_SECONDS long
ACTIVITY_RATIO, ACTIVITY_FLOOR = 4.0, 0.3
MIN_SEGMENT_SECONDS = 4.0
MIN_SCENE_FRAMES = 8  # a scene change closer than this to the segment's start is no cut (a flash)
DEFAULT_SEGMENT_SECONDS = 10.0  # the longest segment


@dataclass
class SegmentGop:
    """A GOP of segment ``segment`` (0, 1, ...); its ``gop.start`` counts from the segment's
    first frame."""

    segment: int
    gop: Gop


class _Cutter:
    """The cut rules over a stream of frames (see the module's constants)."""

    def __init__(self, fps: Fraction, seconds: float) -> None:
        self.max_frames = max(GOP_SIZE, int(seconds * fps) // GOP_SIZE * GOP_SIZE)
        self.min_frames = int(MIN_SEGMENT_SECONDS * fps)
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
    level: float | None = None  # the segment's first GOP's mean difference
    window: list[tuple[np.ndarray, ...]] = []
    diffs: list[float] = []

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
                segment, length, level, window, diffs = segment + 1, 0, None, [], []
            window.append((gop.y[t], gop.u[t], gop.v[t]))
            if diff is not None and len(window) > 1:
                diffs.append(diff)
            if len(window) < GOP_SIZE:
                continue
            activity = max(ACTIVITY_FLOOR, float(np.mean(diffs)) if diffs else 0.0)
            if level is None:
                level = activity
            elif length >= cutter.min_frames and max(activity / level, level / activity) >= (
                ACTIVITY_RATIO
            ):
                segment, length, level = segment + 1, 0, activity
            yield emit()
            length += len(window)
            window, diffs = [], []
            if length >= cutter.max_frames:
                segment, length, level = segment + 1, 0, None
    if window:
        yield emit()


def frames_digest(gops: Iterable[Gop]) -> str:
    """The sha256 of a segment's frames (planes in order): what resume checks a kept segment
    against, so a changed input never reuses it."""
    digest = hashlib.sha256()
    for gop in gops:
        for plane in gop.planes():
            digest.update(np.ascontiguousarray(plane).data)
    return digest.hexdigest()
