"""Segments as jobs: what a worker needs to code one (its frames, or where to read them, found
by a first pass), the result it sends back, and the order-keeping join of results with the
segments resume kept."""

from __future__ import annotations

import hashlib
import itertools
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from vcodec.frames import GOP_SIZE, Gop, VideoInfo
from vcodec.pipeline.config import EncodeConfig
from vcodec.pipeline.segments import SegmentGop, segment_gops

if TYPE_CHECKING:
    from vcodec.io import VideoReader


@dataclass(frozen=True)
class SegmentSource:
    """Where a worker reads a segment itself: the input's path, the segment's first frame and
    frame count, and that frame's presentation timestamp to seek to (None: read from the
    start). The input must be visible to the worker at ``path`` (a shared file system)."""

    path: str
    first_frame: int
    frames: int
    seek_pts: int | None


@dataclass
class SegmentJob:
    """One segment to code: its GOPs (``start`` from the segment's first frame) or its
    ``source``, the stream's size and rate, the config, the sha256 of its frames when known
    beforehand (``digest``: what resume checks, and what a worker's own reading must give)."""

    index: int
    info: VideoInfo
    config: EncodeConfig
    gops: Iterable[Gop] | None = None
    source: SegmentSource | None = None
    digest: str = ""
    frames: int = 0
    target: str = ""  # what the user asked of it (targets.Target.label), else its qp
    read_digest: str = field(default="", compare=False)  # what reading it gave

    def read(self, seek: bool = True) -> Iterator[Gop]:
        """Its GOPs, read once; ``read_digest`` and ``frames`` are set once they are all read.
        ``seek``: a source is read from the keyframe before the segment (else from the
        input's start: slow, but exact where seeking is not)."""
        digest, frames = hashlib.sha256(), 0
        for gop in self.gops if self.gops is not None else self._from_source(seek):
            for plane in gop.planes():
                digest.update(np.ascontiguousarray(plane).data)
            frames += gop.n_frames
            yield gop
        self.read_digest, self.frames = digest.hexdigest(), frames

    def _from_source(self, seek: bool) -> Iterator[Gop]:
        from vcodec.io import open_video

        source = self.source
        with open_video(Path(source.path)) as reader:
            frames = reader.frames_at(source.first_frame, source.seek_pts if seek else None)
            yield from regroup(itertools.islice(frames, source.frames))


@dataclass
class SegmentResult:
    """A coded segment: a .vcx of its own (stream.segment_stream), its stages' costs, and the
    sha256 of the frames it was coded from."""

    data: bytes
    costs: dict[str, dict[str, Any]]
    digest: str = ""
    frames: int = 0


SegmentRunner = Callable[[Iterator[SegmentJob]], Iterator[SegmentResult]]


def regroup(gops: Iterable[Gop], size: int = GOP_SIZE) -> Iterator[Gop]:
    """The frames of ``gops`` in GOPs of ``size`` (the last may be shorter), ``start`` from 0."""
    window: list[tuple[np.ndarray, ...]] = []
    start = 0
    for gop in gops:
        for t in range(gop.n_frames):
            window.append((gop.y[t], gop.u[t], gop.v[t]))
            if len(window) == size:
                yield Gop.from_frames(window, start)
                start, window = start + size, []
    if window:
        yield Gop.from_frames(window, start)


def inline_jobs(
    gops: Iterable[SegmentGop], info: VideoInfo, config: EncodeConfig, materialise: bool
) -> Iterator[SegmentJob]:
    """Jobs over segment-tagged GOPs read here. Each job's GOPs stream from the input (code a
    job before asking for the next) unless ``materialise``: then they are held, and its
    digest known before coding (what resume needs)."""
    for index, group in itertools.groupby(gops, key=lambda g: g.segment):
        members: Iterable[Gop] = (g.gop for g in group)
        job = SegmentJob(index, info, config, gops=members)
        if materialise:
            job.gops = list(members)
            for _ in job.read():
                pass
            job.digest = job.read_digest
        yield job


def zip_results(
    jobs: Iterator[SegmentJob], run: SegmentRunner, store: Any
) -> Iterator[tuple[SegmentJob, SegmentResult]]:
    """Each job with its result, in order: a segment the store kept is taken from it, the
    others go to ``run`` (which keeps their order) and into the store."""
    done: deque[tuple[SegmentJob, SegmentResult | None]] = deque()

    def todo() -> Iterator[SegmentJob]:
        for job in jobs:
            kept = store.kept(job) if store is not None and job.digest else None
            done.append((job, None if kept is None else SegmentResult(kept, {}, job.digest)))
            if kept is None:
                yield job

    results = run(todo())
    ready: deque[SegmentResult] = deque()  # the runner's results, in the order of its jobs
    exhausted = False
    while done or not exhausted:
        job, kept = done[0] if done else (None, None)
        if job is not None and kept is not None:
            done.popleft()
            yield job, kept
        elif job is not None and ready:
            done.popleft()
            result = ready.popleft()
            job.digest, job.frames = result.digest, result.frames or job.frames
            if store is not None:
                store.keep(job, result.data)
            yield job, result
        elif exhausted:
            raise RuntimeError(f"segment {job.index} came back from no worker")
        else:
            try:
                ready.append(next(results))
            except StopIteration:
                exhausted = True


def plan_sources(
    reader: VideoReader, path: str | Path, config: EncodeConfig
) -> Iterator[SegmentJob]:
    """The first pass for workers that read their own frames: each segment, as soon as it is
    cut, with its first frame, length, frames' sha256 and the timestamp to seek to (where the
    timestamps so far rise frame by frame), nothing coded; workers start on it meanwhile."""
    first, checked, rising = 0, 1, True
    gops = reader.gops(GOP_SIZE, config.frames)
    tagged = segment_gops(gops, reader.info.fps, config.segment_seconds)
    for job in inline_jobs(tagged, reader.info, config, materialise=False):
        for _ in job.read():
            pass
        pts = reader.log.pts
        rising = rising and all(pts[i - 1] < pts[i] for i in range(checked, len(pts)))
        checked = len(pts)
        seek = pts[first] if rising and len(pts) > first else None
        source = SegmentSource(str(path), first, job.frames, seek)
        yield replace(job, gops=None, digest=job.read_digest, source=source)
        first += job.frames


def set_threads(threads: int) -> None:
    """The stages' own threads (torch, OpenCV) follow --threads: a float sum's order, and so
    a decision taken on it, then depends on --threads alone, not on the machine's cores.
    Torch is told now if loaded, else by OMP_NUM_THREADS when a stage loads it."""
    if not threads:
        return
    cv2.setNumThreads(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    else:
        os.environ["OMP_NUM_THREADS"] = str(threads)
